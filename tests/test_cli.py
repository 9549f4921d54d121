"""`jaxreg check PATH...`: discovery of CHECKS, exit codes, JSON output."""

import json
import subprocess
import sys
import textwrap

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


def test_all_met_exit_0_and_json(tmp_path, capsys):
  f = _write(tmp_path / "good.py", GOOD)
  out = tmp_path / "r.json"
  assert _cli.main(["check", str(f), "--json", str(out)]) == 0
  text = capsys.readouterr().out
  assert "2 cases, 2 met (1 documenting an error of their source), 0 not met" in text
  assert "∂L/∂z" in text and "sign error" in text
  doc = json.loads(out.read_text())
  assert doc["summary"] == {"cases": 2, "met": 2, "not_met": []}
  c = doc["cases"][1]
  assert (c["name"], c["item"], c["expect"], c["met"]) == ("slip", "S3.2", "wrong", True)
  assert c["report"]["first_wrong"] == "z" and c["note"] == "the source's sign error"
  assert c["file"].endswith("good.py")


def test_json_to_stdout_keeps_text_on_stderr(tmp_path, capsys):
  f = _write(tmp_path / "good.py", GOOD)
  assert _cli.main(["check", "-q", str(f), "--json"]) == 0
  cap = capsys.readouterr()
  assert json.loads(cap.out)["summary"]["met"] == 2
  assert "== S3.1 right" in cap.err


def test_unmet_expectation_exit_1(tmp_path, capsys):
  f = _write(tmp_path / "bad.py", '''
CHECKS = [
    jaxreg.Case("claims_right", "S3.2", "dC/dz = -z", run=lambda: jaxreg.check(sign_slip, loss, P, X)),
    jaxreg.Case("wrong_place", "S3.2", "x", expect="wrong", expect_first_wrong="params['w']",
                run=lambda: jaxreg.check(sign_slip, loss, P, X)),
    jaxreg.Case("raises", "S0", "x", run=lambda: 1 / 0),
]
''')
  assert _cli.main(["check", "-q", str(f)]) == 1
  out = capsys.readouterr().out
  assert "3 not met: claims_right, wrong_place, raises" in out
  assert "expected the first wrong quantity to be \"params['w']\", got 'z'" in out
  assert "ZeroDivisionError" in out


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


def test_case_validation():
  with pytest.raises(ValueError, match="`expect` must be one of"):
    jaxreg.Case("x", "S0", "c", run=lambda: None, expect="fine")
  with pytest.raises(TypeError, match="`run` must be a zero-argument callable"):
    jaxreg.Case("x", "S0", "c", run=None)
  res = jaxreg.Case("x", "S0", "c", run=lambda: 3).evaluate()
  assert not res["met"] and "must return a jaxreg.Report" in res["reason"]


def test_python_m_jaxreg_check(tmp_path):
  f = _write(tmp_path / "good.py", GOOD)
  p = subprocess.run([sys.executable, "-m", "jaxreg", "check", "-q", str(f)],
                     capture_output=True, text=True, timeout=120, check=False)
  assert p.returncode == 0, p.stderr
  assert "2 met" in p.stdout
