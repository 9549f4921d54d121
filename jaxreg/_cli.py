"""Command line: ``jaxreg check PATH...`` runs every derivation case found in PATHs.

Discovery convention:

* Each PATH is a ``.py`` file or a folder. Folders are searched recursively
  for ``*.py`` files whose name does not start with ``_`` (hidden folders,
  ``__pycache__`` and folders starting with ``_`` are skipped).
* A file is imported as a module (its own folder is put first on
  ``sys.path`` while it imports, so sibling helper modules work). It takes
  part when it defines a module-level ``CHECKS``: a list of
  :class:`jaxreg.Case`. Files in a folder without ``CHECKS`` are skipped; a
  file named explicitly without ``CHECKS`` is a usage error.
* Each case's ``run()`` returns a :class:`jaxreg.Report`; the case is *met*
  when the report matches its ``expect`` (``"ok"``: nothing wrong, kinks
  allowed; ``"kink"``: at least one kink row and nothing wrong; ``"wrong"``:
  found wrong, first at ``expect_first_wrong`` when that is given). A case
  documenting an error of its source (``expect="wrong"``) is met when the
  error is found.
* ``jax_enable_x64`` is switched on before any file is imported (derivations
  are checked in float64); ``--no-x64`` leaves it alone.

Output: every report, then one summary line. ``--json PATH`` also writes all
results (``Case.to_dict()`` fields, ``file``, ``met``, ``reason``, ``seconds``
and ``report``: ``Report.to_dict()``) as JSON; ``--json`` alone (or ``-``)
writes the JSON to stdout and the text to stderr. ``-q`` prints one line per case.

Exit status: 0 when every case is met, 1 when any is not (or its ``run``
raises), 2 for a usage error or a file that cannot be imported (the file and
the reason are printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import sys
import time
from pathlib import Path

_COUNTER = itertools.count()


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


def _collect(paths):
  from jaxreg._checker.case import Case  # pylint: disable=import-outside-toplevel
  cases, problems = [], []
  for f, explicit in _files(paths):
    try:
      module = _load(f)
    except SystemExit as e:
      problems.append(f"{f}: cannot import: it called sys.exit({e.code})")
      continue
    except Exception as e:  # pylint: disable=broad-except
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
    for i, c in enumerate(checks):
      if not isinstance(c, Case):
        problems.append(f"{f}: CHECKS[{i}] must be a jaxreg.Case, got {type(c).__name__}")
        break
    else:
      cases.extend((f, c) for c in checks)
  return cases, problems


def _check(args) -> int:
  to_stdout = args.json == "-"
  out = sys.stderr if to_stdout else sys.stdout
  if not args.no_x64:
    import jax  # pylint: disable=import-outside-toplevel
    jax.config.update("jax_enable_x64", True)
  try:
    cases, problems = _collect(args.paths)
  except _UsageError as e:
    print(f"jaxreg check: {e}", file=sys.stderr)
    return 2
  if problems:
    for p in problems:
      print(f"jaxreg check: {p}", file=sys.stderr)
    return 2
  if not cases:
    print("jaxreg check: no cases found (a file takes part by defining a module-level CHECKS "
          "list of jaxreg.Case)", file=sys.stderr)
    return 2
  results = []
  t0 = time.perf_counter()
  for f, case in cases:
    res = case.evaluate()
    results.append((f, case, res))
    status = "met" if res["met"] else "NOT MET"
    head = (f"== {case.item} {case.name} [{f}]: expect {case.expect}"
            + (f" (first wrong {case.expect_first_wrong})" if case.expect_first_wrong else "")
            + f" -> {status}: {res['reason']} ({res['seconds']:.2f} s)")
    print(head, file=out)
    if not args.quiet:
      print(f"   claim: {case.claim}", file=out)
      if res["report"] is not None:
        print("   " + str(res["report"]).replace("\n", "\n   "), file=out)
      elif "traceback" in res:
        print("   " + res["traceback"].rstrip().replace("\n", "\n   "), file=out)
      print(file=out)
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
      d.update({"file": str(f), "met": res["met"], "reason": res["reason"],
                "seconds": res["seconds"],
                "report": res["report"].to_dict() if res["report"] is not None else None})
      doc["cases"].append(d)
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    if to_stdout:
      print(text)
    else:
      Path(args.json).write_text(text + "\n", encoding="utf-8")
  return 0 if not failed else 1


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="jaxreg", description="jaxreg command line.")
  sub = p.add_subparsers(dest="command")
  c = sub.add_parser("check", help="run the derivation cases (CHECKS) in Python files or folders",
                     description=__doc__.split("\n\n")[1] if __doc__ else None)
  c.add_argument("paths", nargs="+", metavar="PATH", help=".py files or folders")
  c.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                 help="also write all results as JSON to PATH (stdout when no PATH or '-')")
  c.add_argument("-q", "--quiet", action="store_true", help="one line per case")
  c.add_argument("--no-x64", action="store_true", help="do not enable jax_enable_x64")
  return p


def main(argv: list[str] | None = None) -> int:
  """Entry point of the ``jaxreg`` console script; returns the exit status."""
  parser = _parser()
  try:
    args = parser.parse_args(argv)
  except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
    return int(e.code or 0)
  if args.command != "check":
    parser.print_usage(sys.stderr)
    print("jaxreg: a command is required: jaxreg check PATH...", file=sys.stderr)
    return 2
  return _check(args)


if __name__ == "__main__":
  sys.exit(main())
