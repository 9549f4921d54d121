"""Every ```python block of README.md runs as written: in order, in one namespace, in a fresh interpreter.

A fresh interpreter, not this one: a reader pastes the blocks into plain Python, without this
suite's float64 switch (``tests/conftest.py``). Tracebacks point at README.md's own line numbers.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

RUNNER = r'''
import json, sys
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__"}
for line, source in blocks:
  print(f"--- README.md python block at line {line}", flush=True)
  # padded so that tracebacks name README.md's line numbers
  exec(compile("\n" * (line - 1) + source, "README.md", "exec"), namespace)
print("ALL BLOCKS RAN", flush=True)
'''


def python_blocks(text: str) -> list[tuple[int, str]]:
  """``(line of the first code line, code)`` for every fenced ```python block."""
  blocks = []
  for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, re.M | re.S):
    line = text.count("\n", 0, m.start(1)) + 1
    blocks.append((line, m.group(1)))
  return blocks


def test_python_blocks_are_found():
  text = "intro\n```python\na = 1\n```\n\n```bash\nls\n```\n```python\nb = a\n```\n"
  assert python_blocks(text) == [(3, "a = 1\n"), (10, "b = a\n")]


def test_every_python_block_of_the_readme_runs_in_order(tmp_path):
  blocks = python_blocks(README.read_text(encoding="utf-8"))
  assert len(blocks) >= 3
  spec = tmp_path / "blocks.json"
  spec.write_text(json.dumps(blocks), encoding="utf-8")
  work = tmp_path / "cwd"  # blocks may write files (a metrics log, say)
  work.mkdir()
  env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  # Compile time dominates these small programs; XLA's optimisation passes only add to it.
  env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
  proc = subprocess.run([sys.executable, "-c", RUNNER, str(spec)], cwd=work, env=env,
                        capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0 and "ALL BLOCKS RAN" in proc.stdout, (
      proc.stdout[-3000:] + proc.stderr[-6000:])
  assert proc.stdout.count("--- README.md python block") == len(blocks)



def test_ci_runs_the_readme_test_command_verbatim():
  text = README.read_text(encoding="utf-8")
  commands = re.search(r"^```bash\n(.*?)^```", text, re.M | re.S).group(1).splitlines()
  assert len(commands) == 2 and "scripts/main.py" in commands[0] and "pytest" in commands[1]
  ci = [l for l in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if l.strip() and not l.startswith(("#", "set ", "cd "))]
  assert ci == [commands[1]]
