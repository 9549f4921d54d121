"""`jaxreg check PATH...`: discovery of CHECKS, output, exit codes, a --json that destroys nothing."""

import dataclasses
import json
import os
import pathlib
import runpy
import sys
import tempfile
import textwrap
import types

import pytest

import jaxreg
from jaxreg import _cli

HEADER = '''
import jax.numpy as jnp
import jaxreg

def loss(p, x):
  z = jaxreg.tap("z", x * p["w"])
  return 0.5 * jnp.sum(z ** 2)

def right(p, x):
  z = x * p["w"]
  return {"z": z, "params": {"w": jnp.sum(z * x)}}

def sign_slip(p, x):
  z = x * p["w"]
  return {"z": -z, "params": {"w": -jnp.sum(z * x)}}

P, X = {"w": jnp.array(0.5)}, jnp.array([1.0, -2.0, 3.0])
'''

# a module-level side effect: proves whether the file was imported at all
MARKER = '''
import pathlib
pathlib.Path(__file__).with_name("imported.marker").write_text("x")
'''


def _write(path, body):
  path.write_text(textwrap.dedent(HEADER) + textwrap.dedent(body))
  return path


GOOD = '''
CHECKS = [
    jaxreg.Case("right", "S3.1", "dC/dz = z", run=lambda: jaxreg.check(right, loss, P, X)),
    jaxreg.Case("slip", "S3.2", "dC/dz = -z (documented error)", expect="wrong",
                expect_first_wrong="z", run=lambda: jaxreg.check(sign_slip, loss, P, X),
                note="the source's sign error"),
]
'''


def test_all_met_exit_0_compact_lines_and_json(tmp_path, capsys):
  f = _write(tmp_path / "good.py", GOOD)
  out = tmp_path / "r.json"
  assert _cli.main(["check", str(f), "--json", str(out)]) == 0
  lines = capsys.readouterr().out.splitlines()
  # one line per case (status, item, name, verdict), then the summary; no reports
  assert len(lines) == 3, lines
  assert lines[0].split()[:4] == ["met", "S3.1", "right", "ok"]
  assert lines[1].split()[:6] == ["met", "S3.2", "slip", "wrong", "at", "z"]
  assert "documented error of the source" in lines[1]
  assert "2 cases, 2 met (1 documenting an error of their source), 0 not met" in lines[2]
  doc = json.loads(out.read_text())
  assert doc["summary"] == {"cases": 2, "met": 2, "not_met": []}
  c = doc["cases"][1]
  assert (c["name"], c["item"], c["expect"], c["met"]) == ("slip", "S3.2", "wrong", True)
  assert c["report"]["first_wrong"] == "z" and c["note"] == "the source's sign error"
  assert c["verdict"] == "wrong at z" and c["file"].endswith("good.py")
  # written atomically: no temporary file left beside it
  assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["good.py", "r.json"]


def test_verbose_prints_every_report(tmp_path, capsys):
  f = _write(tmp_path / "good.py", GOOD)
  assert _cli.main(["check", "-v", str(f)]) == 0
  text = capsys.readouterr().out
  assert text.count("claim: ") == 2 and "∂L/∂z" in text and "sign error" in text


def test_json_to_stdout_keeps_text_on_stderr(tmp_path, capsys):
  f = _write(tmp_path / "good.py", GOOD)
  assert _cli.main(["check", "-q", str(f), "--json", "-"]) == 0
  cap = capsys.readouterr()
  assert json.loads(cap.out)["summary"]["met"] == 2
  assert cap.err.startswith("met     S3.1   right")


def test_unmet_exit_1_with_full_reports_only_for_cases_not_met(tmp_path, capsys):
  f = _write(tmp_path / "bad.py", '''
CHECKS = [
    jaxreg.Case("fine", "S3.1", "dC/dz = z", run=lambda: jaxreg.check(right, loss, P, X)),
    jaxreg.Case("claims_right", "S3.2", "dC/dz = -z",
                run=lambda: jaxreg.check(sign_slip, loss, P, X)),
    jaxreg.Case("wrong_place", "S3.2", "x", expect="wrong", expect_first_wrong="params['w']",
                run=lambda: jaxreg.check(sign_slip, loss, P, X)),
    jaxreg.Case("raises", "S0", "x", run=lambda: 1 / 0),
]
''')
  assert _cli.main(["check", str(f)]) == 1
  out = capsys.readouterr().out
  assert "3 not met: claims_right, wrong_place, raises" in out
  lines = [l for l in out.splitlines() if l.startswith(("met", "NOT MET"))]
  assert [l.split()[0] for l in lines] == ["met", "NOT", "NOT", "NOT"]
  assert "wrong at z; expected the derivation to be correct" in lines[1]
  assert "expected the first wrong quantity to be \"params['w']\", got 'z'" in lines[2]
  assert "raised ZeroDivisionError" in lines[3]
  assert out.count("claim: ") == 3  # the full account of each case not met, none for "fine"
  assert "Traceback" in out and "1 / 0" in out
  assert _cli.main(["check", "-q", str(f)]) == 1
  out = capsys.readouterr().out
  assert "claim: " not in out and len(out.splitlines()) == 5


def test_folder_discovery_skips_underscore_files_and_files_without_checks(tmp_path, capsys):
  d = tmp_path / "derivs"
  (d / "sub").mkdir(parents=True)
  _write(d / "sub" / "a.py", GOOD)
  _write(d / "_helper.py", "raise RuntimeError('must not be imported')\n")
  _write(d / "plain.py", "X2 = 1\n")
  assert _cli.main(["check", "-q", str(d)]) == 0
  assert "2 cases, 2 met" in capsys.readouterr().out


def test_usage_and_import_errors_exit_2(tmp_path, capsys):
  assert _cli.main([]) == 2
  assert _cli.main(["check"]) == 2
  assert _cli.main(["check", "-v", "-q", str(tmp_path)]) == 2
  assert _cli.main(["check", str(tmp_path / "nope.py")]) == 2
  assert "no such file" in capsys.readouterr().err
  broken = tmp_path / "broken.py"
  broken.write_text("import not_a_module_xyz\n")
  assert _cli.main(["check", str(broken)]) == 2
  err = capsys.readouterr().err
  assert "broken.py: cannot import: ModuleNotFoundError" in err
  nochecks = tmp_path / "nochecks.py"
  nochecks.write_text("A = 1\n")
  assert _cli.main(["check", str(nochecks)]) == 2
  assert "defines no module-level CHECKS" in capsys.readouterr().err
  wrongtype = tmp_path / "wrongtype.py"
  wrongtype.write_text("CHECKS = [1]\n")
  assert _cli.main(["check", str(wrongtype)]) == 2
  assert "CHECKS[0] must be a jaxreg.Case" in capsys.readouterr().err


def test_duplicate_case_names_are_an_error_naming_them(tmp_path, capsys):
  f = _write(tmp_path / "dup.py", MARKER + '''
run = lambda: 1 / 0
CHECKS = [jaxreg.Case("a", "S0", "c", run), jaxreg.Case("b", "S0", "c", run),
          jaxreg.Case("a", "S0", "c", run), jaxreg.Case("b", "S0", "c", run),
          jaxreg.Case("c", "S0", "c", run)]
''')
  assert _cli.main(["check", str(f)]) == 2
  cap = capsys.readouterr()
  assert "dup.py: CHECKS has duplicate case names: 'a', 'b'" in cap.err
  assert cap.out == ""  # no case ran


def test_case_validation():
  with pytest.raises(ValueError, match="`expect` must be one of"):
    jaxreg.Case("x", "S0", "c", run=lambda: None, expect="fine")
  with pytest.raises(TypeError, match="`run` must be a zero-argument callable"):
    jaxreg.Case("x", "S0", "c", run=None)
  with pytest.raises(TypeError, match="`claim` must be a str, got int"):
    jaxreg.Case("x", "S0", 3, run=lambda: None)
  with pytest.raises(ValueError, match="`expect_first_wrong` needs expect='wrong', got expect='ok'"):
    jaxreg.Case("x", "S0", "c", run=lambda: None, expect_first_wrong="z")
  res = jaxreg.Case("x", "S0", "c", run=lambda: 3).evaluate()
  assert not res["met"] and "must return a jaxreg.Report" in res["reason"]
  assert res["verdict"] == "raised TypeError"


def test_outcome_in_a_few_words():
  from jaxreg._checker.case import outcome  # pylint: disable=import-outside-toplevel
  def report(ok=True, first_wrong=None, n_kink=0, error=None):  # what outcome reads of a Report
    return types.SimpleNamespace(ok=ok, first_wrong=first_wrong, n_kink=n_kink, error=error)
  assert outcome(report()) == "ok"
  assert outcome(report(n_kink=1)) == "kink (1 element)"
  assert outcome(report(n_kink=3)) == "kink (3 elements)"
  assert outcome(report(ok=False, first_wrong="x2")) == "wrong at x2"
  assert outcome(report(ok=False)) == "wrong (found by the referee)"
  assert outcome(report(ok=False, error="derivation raised KeyError: 'z'\nmore")) == \
      "error: derivation raised KeyError: 'z'"


def test_python_m_jaxreg_check(tmp_path, capsys, monkeypatch):
  # `python -m jaxreg` runs jaxreg/__main__.py as __main__: done here in-process (a fresh
  # interpreter would only re-import jax), with the command line it would see.
  f = _write(tmp_path / "good.py", GOOD)
  monkeypatch.setattr(sys, "argv", ["python -m jaxreg", "check", "-q", str(f)])
  with pytest.raises(SystemExit) as exit_:
    runpy.run_module("jaxreg", run_name="__main__", alter_sys=True)
  assert exit_.value.code == 0, capsys.readouterr().err
  assert "2 met" in capsys.readouterr().out


# --- --json never destroys anything, and is judged before anything runs --------------------------

def _refused(argv, capsys, *needles):
  assert _cli.main(argv) == 2
  cap = capsys.readouterr()
  err = cap.err.strip()
  assert "\n" not in err and err.startswith("jaxreg check: --json"), err
  assert cap.out == ""
  for n in needles:
    assert n in err, err


def test_json_taking_a_file_to_check_is_refused_and_the_file_kept(tmp_path, capsys):
  a = _write(tmp_path / "a.py", MARKER + GOOD)
  b = _write(tmp_path / "b.py", GOOD)
  before = a.read_text()
  _refused(["check", "--json", str(a), str(b)], capsys, "a.py", "refusing to write JSON to a .py")
  _refused(["check", str(b), "--json", str(tmp_path / "new.py")], capsys, "new.py")
  link = tmp_path / "out.json"
  link.symlink_to(a)
  _refused(["check", str(b), "--json", str(link)], capsys, "out.json")
  assert a.read_text() == before
  assert not (tmp_path / "imported.marker").exists()  # nothing was even imported


def test_json_naming_any_file_read_is_refused(tmp_path, capsys, monkeypatch):
  f = _write(tmp_path / "good.py", MARKER + GOOD)
  data = tmp_path / "data.json"
  data.write_text("{}")
  monkeypatch.setattr(_cli, "_files", lambda paths: [(f, True), (data, True)])
  _refused(["check", str(f), "--json", str(data)], capsys, "a file this command reads")
  assert data.read_text() == "{}" and not (tmp_path / "imported.marker").exists()


def _unwritable_folder(tmp_path):
  if os.geteuid() != 0:
    d = tmp_path / "ro"
    d.mkdir(mode=0o500)
    return d
  for d in (pathlib.Path("/sys"), pathlib.Path("/proc")):  # root may write anywhere else
    try:
      fd, p = tempfile.mkstemp(dir=d)
    except OSError:
      return d
    os.close(fd)
    os.unlink(p)
  pytest.skip("no folder here is read-only for this user")


def test_bad_json_folder_is_an_error_before_the_checks_run(tmp_path, capsys):
  f = _write(tmp_path / "good.py", MARKER + GOOD)
  _refused(["check", str(f), "--json", str(tmp_path / "no" / "r.json")], capsys, "does not exist")
  _refused(["check", str(f), "--json", str(tmp_path)], capsys, "is a folder")
  _refused(["check", str(f), "--json", ""], capsys, "expected a file path")
  _refused(["check", str(f), "--json", str(_unwritable_folder(tmp_path) / "r.json")], capsys,
           "cannot write in folder")
  assert not (tmp_path / "imported.marker").exists()
  assert _cli.main(["check", str(f), "--json"]) == 2  # the path is not optional
  assert "expected one argument" in capsys.readouterr().err


def test_a_failed_json_write_keeps_the_old_file(tmp_path, capsys, monkeypatch):
  f = _write(tmp_path / "good.py", GOOD)
  out = tmp_path / "r.json"
  out.write_text("old results")

  def no_space(src, dst):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "replace", no_space)
  assert _cli.main(["check", "-q", str(f), "--json", str(out)]) == 2
  assert "could not write: [Errno 28] No space left on device" in capsys.readouterr().err
  monkeypatch.undo()
  assert out.read_text() == "old results"
  assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["good.py", "r.json"]


# --- help and version ------------------------------------------------------------------------------

def test_help_shows_the_whole_convention(capsys):
  assert _cli.main(["check", "--help"]) == 0
  text = capsys.readouterr().out
  for needle in ("*.py", '"_"', "CHECKS", "jaxreg.Case", "unique", "Exit status", "0 every case",
                 "1 some case", "2 a usage", "--json PATH", "-v, --verbose", "-q, --quiet",
                 "--no-x64", "jax_enable_x64", "not be a .py file"):
    assert needle in text, needle
  for field in dataclasses.fields(jaxreg.Case):
    assert f"\n    {field.name} " in text, field.name


def test_help_example_is_a_working_checks_file(tmp_path, capsys):
  doc = _cli.__doc__
  example = textwrap.dedent(doc[doc.index("    import jax.numpy"):doc.index("\nOutput:")])
  (tmp_path / "square.py").write_text(example)
  assert _cli.main(["check", "-q", str(tmp_path)]) == 0
  assert "1 cases, 1 met" in capsys.readouterr().out


def test_version(capsys):
  assert _cli.main(["--version"]) == 0
  assert capsys.readouterr().out.strip() == f"jaxreg {jaxreg.__version__}"
