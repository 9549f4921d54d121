"""jaxreg check PATH... runs every derivation case found in the PATHs.

What is found:
  Each PATH is a .py file or a folder. Folders are searched recursively for
  *.py files whose name does not start with "_" (hidden folders, __pycache__
  and folders starting with "_" are skipped). Each file is imported as a
  module, its own folder first on sys.path while it imports (so sibling helper
  modules work). A file takes part when it defines a module-level CHECKS: a
  list of jaxreg.Case whose names are unique within the list. Files in a
  folder without CHECKS are skipped; a file named explicitly without CHECKS is
  a usage error. jax_enable_x64 is switched on before any file is imported
  (derivations are checked in float64); --no-x64 leaves it alone.

  jaxreg.Case(name, item, claim, run, expect="ok", expect_first_wrong=None,
              note="")
    name                short identifier, unique within its CHECKS list
    item                the claim it covers, e.g. "S0.2"
    claim               what the source claims, in a short sentence
    run                 zero-argument callable returning a jaxreg.Report,
                        typically lambda: jaxreg.check(...)
    expect              "ok": nothing wrong (kinks allowed); "kink": at least
                        one kink row and nothing wrong; "wrong": the source is
                        wrong and the check must say so
    expect_first_wrong  with expect="wrong": the row that must come first
                        among the wrong ones
    note                free text (e.g. why the source is wrong)

  A case is met when its report matches expect, so a case documenting an error
  of its source is met when the error is found. A file, e.g. derivs/square.py:

    import jax.numpy as jnp
    import jaxreg

    def loss(p, x):
      z = jaxreg.tap("z", x * p["w"])
      return 0.5 * jnp.sum(z ** 2)

    def mine(p, x):
      z = x * p["w"]
      return {"z": z, "params": {"w": jnp.sum(z * x)}}

    P, X = {"w": jnp.array(0.5)}, jnp.array([1.0, -2.0, 3.0])
    CHECKS = [jaxreg.Case("square", "S3.1", "dL/dz = z",
                          run=lambda: jaxreg.check(mine, loss, P, X))]

Output:
  One line per case (met or NOT MET, item, name, the report in a few words:
  ok, kink, or the first wrong step), the full report of every case not met,
  then one summary line. -v prints the full report of every case; -q only the
  lines. --json PATH also writes every result (the Case fields, file, met,
  verdict, reason, seconds and the full report) as JSON to PATH; --json -
  writes it to stdout and the text to stderr. PATH is checked before any case
  runs: it must not be a .py file nor any file this command reads, and its
  folder must exist and be writable. The file is replaced atomically once all
  cases have run.

Exit status:
  0 every case is met; 1 some case is not met (or its run raised); 2 a usage
  error, a bad --json PATH, a file that cannot be imported, or a bad CHECKS
  list (the file and the reason are printed); nothing is run then.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

_COUNTER = itertools.count()
_STDOUT = "-"


class _UsageError(Exception):
  pass


def _files(paths: list[str]) -> list[tuple[Path, bool]]:
  """``(file, named_explicitly)`` for every file to load, in order."""
  out = []
  for p in paths:
    path = Path(p)
    if path.is_file():
      if path.suffix != ".py":
        raise _UsageError(f"{p}: not a Python file (expected a .py file or a folder)")
      out.append((path, True))
    elif path.is_dir():
      for f in sorted(path.rglob("*.py")):
        rel = f.relative_to(path).parts
        if f.name.startswith("_") or any(part.startswith((".", "_")) for part in rel[:-1]):
          continue
        out.append((f, False))
    else:
      raise _UsageError(f"{p}: no such file or folder")
  return out


def _output(arg: str | None, reads: list[Path]) -> Path | None:
  """The ``--json`` target, refused unless writing it destroys nothing the user wrote.

  Args:
    arg: the value of ``--json`` (``None``: no JSON; ``"-"``: stdout).
    reads: every file this command will read.

  Returns:
    The path to write, or ``None`` for no file (no ``--json``, or stdout).

  Raises:
    _UsageError: naming the path and what is wrong with it.
  """
  if arg is None or arg == _STDOUT:
    return None
  if not arg:
    raise _UsageError("--json: expected a file path (or - for stdout), got an empty string")
  path = Path(arg)
  target = path.resolve()
  hint = (" (did --json take a file to check as its value? write --json PATH.json, or --json - "
          "for stdout)")
  if path.suffix.lower() == ".py" or target.suffix.lower() == ".py":
    raise _UsageError(f"--json {arg}: refusing to write JSON to a .py file{hint}")
  if any(target == f.resolve() for f in reads):
    raise _UsageError(f"--json {arg}: refusing to overwrite a file this command reads{hint}")
  if target.is_dir():
    raise _UsageError(f"--json {arg}: is a folder, expected a file path")
  folder = target.parent
  if not folder.is_dir():
    raise _UsageError(f"--json {arg}: folder {str(folder)!r} does not exist")
  try:  # the same call that will write it, so the answer cannot differ from the real one
    fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
  except OSError as e:
    raise _UsageError(f"--json {arg}: cannot write in folder {str(folder)!r}: "
                      f"{e.strerror or e}") from None
  os.close(fd)
  os.unlink(probe)
  return target


def _write_atomic(path: Path, text: str) -> None:
  """Writes ``text`` to a temporary file beside ``path``, then renames it over ``path``."""
  if path.exists():
    mode = path.stat().st_mode & 0o777
  else:
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o666 & ~umask
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  done = False
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    done = True
  finally:
    if not done:
      os.unlink(tmp)


def _load(path: Path):
  name = f"_jaxreg_check_{next(_COUNTER)}_{path.stem}"
  spec = importlib.util.spec_from_file_location(name, path)
  if spec is None or spec.loader is None:
    raise ImportError("not importable as a Python module")
  module = importlib.util.module_from_spec(spec)
  folder = str(path.resolve().parent)
  sys.path.insert(0, folder)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    sys.modules.pop(name, None)
    raise
  finally:
    try:
      sys.path.remove(folder)
    except ValueError:
      pass
  return module


def _collect(files: list[tuple[Path, bool]]):
  """``([(file, case), ...], [problem, ...])`` for the files to load."""
  from jaxreg._checker.case import Case, duplicate_names  # pylint: disable=import-outside-toplevel
  cases, problems = [], []
  for f, explicit in files:
    try:
      module = _load(f)
    except SystemExit as e:
      problems.append(f"{f}: cannot import: it called sys.exit({e.code})")
      continue
    except Exception as e:  # pylint: disable=broad-except  # the user's module, not jaxreg
      problems.append(f"{f}: cannot import: {type(e).__name__}: {e}")
      continue
    checks = getattr(module, "CHECKS", None)
    if checks is None:
      if explicit:
        problems.append(f"{f}: defines no module-level CHECKS (a list of jaxreg.Case)")
      continue
    if not isinstance(checks, (list, tuple)):
      problems.append(f"{f}: CHECKS must be a list of jaxreg.Case, got {type(checks).__name__}")
      continue
    bad = [i for i, c in enumerate(checks) if not isinstance(c, Case)]
    if bad:
      problems.append(f"{f}: CHECKS[{bad[0]}] must be a jaxreg.Case, got "
                      f"{type(checks[bad[0]]).__name__}")
      continue
    dups = duplicate_names(checks)
    if dups:
      problems.append(f"{f}: CHECKS has duplicate case names: {', '.join(map(repr, dups))} "
                      "(each name must be unique within the list)")
      continue
    cases.extend((f, c) for c in checks)
  return cases, problems


def _line(case, res, width: int) -> str:
  """One line: status, item, name, the report in a few words, and why a case is not met."""
  status = "met    " if res["met"] else "NOT MET"
  verdict = res["verdict"]
  if res["met"] and case.expect == "wrong":
    verdict += " (a documented error of the source)"
  elif not res["met"]:
    verdict += f"; {res['reason']}" if res["report"] is not None else f": {res['reason']}"
  return f"{status} {case.item:<6} {case.name:<{width}}  {verdict}  ({res['seconds']:.2f} s)"


def _details(f: Path, case, res) -> str:
  """The full account of one case: file, claim, expectation and report (or traceback)."""
  expect = case.expect + (f", first wrong {case.expect_first_wrong}"
                          if case.expect_first_wrong else "")
  lines = [f"  file: {f}", f"  claim: {case.claim}", f"  expect: {expect}"]
  if case.note:
    lines.append(f"  note: {case.note}")
  body = str(res["report"]) if res["report"] is not None else res["traceback"].rstrip()
  lines.append("  " + body.replace("\n", "\n  "))
  return "\n".join(lines) + "\n"


def _check(args) -> int:
  to_stdout = args.json == _STDOUT
  out = sys.stderr if to_stdout else sys.stdout
  try:
    files = _files(args.paths)
    json_path = _output(args.json, [f for f, _ in files])
  except _UsageError as e:
    print(f"jaxreg check: {e}", file=sys.stderr)
    return 2
  if not args.no_x64:
    import jax  # pylint: disable=import-outside-toplevel
    jax.config.update("jax_enable_x64", True)
  cases, problems = _collect(files)
  if problems:
    for p in problems:
      print(f"jaxreg check: {p}", file=sys.stderr)
    return 2
  if not cases:
    print("jaxreg check: no cases found (a file takes part by defining a module-level CHECKS "
          "list of jaxreg.Case)", file=sys.stderr)
    return 2
  width = min(max(len(c.name) for _, c in cases), 48)
  results = []
  t0 = time.perf_counter()
  for f, case in cases:
    res = case.evaluate()
    results.append((f, case, res))
    print(_line(case, res, width), file=out, flush=True)
    if args.verbose or (not res["met"] and not args.quiet):
      print(_details(f, case, res), file=out, flush=True)
  n_met = sum(r["met"] for _, _, r in results)
  n_wrong = sum(r["met"] and c.expect == "wrong" for _, c, r in results)
  failed = [c.name for _, c, r in results if not r["met"]]
  line = (f"jaxreg check: {len(results)} cases, {n_met} met ({n_wrong} documenting an error of "
          f"their source), {len(failed)} not met"
          + (f": {', '.join(failed)}" if failed else "") + f"  [{time.perf_counter() - t0:.1f} s]")
  print(line, file=out)
  if args.json is not None:
    doc = {"version": 1, "cases": [], "summary": {
        "cases": len(results), "met": n_met, "not_met": failed}}
    for f, case, res in results:
      d = case.to_dict()
      d.update({"file": str(f), "met": res["met"], "verdict": res["verdict"],
                "reason": res["reason"], "seconds": res["seconds"],
                "report": res["report"].to_dict() if res["report"] is not None else None})
      doc["cases"].append(d)
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if json_path is None:
      sys.stdout.write(text)
    else:
      try:
        _write_atomic(json_path, text)
      except OSError as e:
        print(f"jaxreg check: --json {args.json}: could not write: {e}", file=sys.stderr)
        return 2
  return 0 if not failed else 1


# The other commands (train, train-many, experiment, plot) live in _cli_train.py,
# _cli_train_many.py, _cli_experiment.py and _cli_plot.py, each with its own --help text as its
# module docstring.
class _Parser(argparse.ArgumentParser):
  """argparse with a one-line usage error (exit 2) that points to ``--help``."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
  from jaxreg import __version__  # pylint: disable=import-outside-toplevel
  from jaxreg import _cli_experiment, _cli_plot, _cli_train, _cli_train_many  # pylint: disable=import-outside-toplevel
  p = _Parser(prog="jaxreg", description="jaxreg command line: check derivations, train, "
              "run experiments, plot.")
  p.add_argument("--version", action="version", version=f"jaxreg {__version__}")
  sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
  c = sub.add_parser("check", help="run the derivation cases (CHECKS) in Python files or folders",
                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  c.add_argument("paths", nargs="+", metavar="PATH", help=".py files or folders")
  c.add_argument("--json", metavar="PATH",
                 help="also write every result as JSON to PATH ('-': stdout); never a .py file")
  loud = c.add_mutually_exclusive_group()
  loud.add_argument("-v", "--verbose", action="store_true",
                    help="print the full report of every case, not only of those not met")
  loud.add_argument("-q", "--quiet", action="store_true",
                    help="one line per case, no reports")
  c.add_argument("--no-x64", action="store_true", help="do not enable jax_enable_x64")
  _cli_train.add_parser(sub)
  _cli_train_many.add_parser(sub)
  _cli_experiment.add_parser(sub)
  _cli_plot.add_parser(sub)
  return p


def _subcommand(args) -> int:
  """Runs ``train``, ``train-many``, ``experiment`` or ``plot``; bad input: one line, exit 2."""
  from jaxreg import _cli_experiment, _cli_plot, _cli_train, _cli_train_many  # pylint: disable=import-outside-toplevel
  from jaxreg._data.extras import MissingExtraError  # pylint: disable=import-outside-toplevel
  module = {"train": _cli_train, "train-many": _cli_train_many, "experiment": _cli_experiment,
            "plot": _cli_plot}[args.command]
  try:
    return module.run(args)
  except module.UsageError as e:
    print(f"jaxreg {args.command}: error: {e}", file=sys.stderr)
    return 2
  except MissingExtraError as e:
    print(f"jaxreg {args.command}: {e}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
  """Entry point of the ``jaxreg`` console script; returns the exit status."""
  parser = _parser()
  try:
    args = parser.parse_args(argv)
  except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help and --version
    return int(e.code or 0)
  if args.command is None:
    print("jaxreg: error: a command is required: check, train, train-many, experiment or plot "
          "(see jaxreg --help)", file=sys.stderr)
    return 2
  if args.command != "check":
    return _subcommand(args)
  return _check(args)


if __name__ == "__main__":
  sys.exit(main())
