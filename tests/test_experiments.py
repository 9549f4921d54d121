"""jaxreg.experiments: structure and one qualitative fact per experiment (small, fast runs).

The full runs are ``scripts/experiments.py``; these use a few seeds and tiny nets,
with shapes shared between tests so that compiled functions are reused.
"""

import importlib.util
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg import experiments
from jaxreg.experiments import _probe, _report, activation_plots, leaky, vanishing

ROOT = pathlib.Path(__file__).resolve().parent.parent
SMALL = dict(n_seeds=8, width=8, batch=8)
DEPTHS = (2, 10)


@pytest.fixture(scope="module")
def vanish():
  return experiments.vanishing_gradients(DEPTHS, probes=vanishing.PROBES[:3], **SMALL)


@pytest.fixture(scope="module")
def leak():
  return experiments.leaky_amplification(DEPTHS, alphas=(0.3,), **SMALL)


@pytest.fixture(scope="module")
def curves():
  return experiments.activation_curves(n_points=201)


def test_vanishing_structure_and_sigmoid_vanishes(vanish):
  labels = tuple(p.label for p in vanishing.PROBES[:3])
  assert vanish.probes == labels
  assert vanish.norms.shape == (3, 2, 8) and np.isfinite(vanish.norms).all()
  assert len(vanish.by_depth) == 6 and len(vanish.factors) == 3
  sig, tanh, relu = (vanish.row(p, 10).median for p in labels)
  assert sig < tanh and sig < relu
  assert vanish.factor(labels[0]).median < 0.25 < vanish.factor(labels[1]).median
  s = vanishing.section(vanish, figure="v.png")
  assert s.claims == ("S3.5",) and s.verdict in _report.VERDICTS and "sigmoid, Glorot" in s.table


def test_probe_equals_an_mlp_of_that_depth():
  # The masked, scanned probe is the same function as a jaxreg.MLP of the given depth.
  probe = vanishing.PROBES[1]
  d = _probe.draw(probe, 10, **SMALL)
  depth = 3
  net = jaxreg.MLP((8,) * (depth + 1) + (1,), "tanh")
  params = [{"w": d.w[0, l], "b": d.b[0, l]} for l in range(depth)]
  params.append({"w": d.out_w[0], "b": d.out_b[0]})
  want = net.backprop(params, d.x[0], d.t[0])[0]["w"]
  got = jax.grad(_probe.probe_loss, argnums=1)(jnp.tanh, d.w[0], d.b[0], d.out_w[0], d.out_b[0],
                                                 depth, d.x[0], d.t[0])
  np.testing.assert_allclose(got[0], want, rtol=2e-5, atol=1e-7)
  assert np.abs(got[depth:]).max() == 0    # skipped layers get no gradient


def test_leaky_structure_and_no_one_plus_alpha_to_the_n(leak):
  assert leak.ratios.shape == (1, 2, 8) and (leak.ratios > 0).all()
  row = leak.row(0.3, 10)
  assert row.claimed == pytest.approx(1.3 ** 10) and row.gain == pytest.approx(1.09 ** 10)
  assert 1 < row.median < row.claimed / 2     # grows, but far less than (1.3)^10 ≈ 13.8
  s = leaky.section(leak)
  assert s.claims == ("S0.8",) and s.verdict == experiments.FAILS


def test_activation_curves(curves):
  assert [c.name for c in curves.curves] == [repr(a) for a in activation_plots.default_activations()]
  assert curves.x[0] == -5 and curves.x[-1] == 5 and curves.x.shape == (201,)
  sig = curves.curve("sigmoid")
  assert sig.df_max == 0.25 and sig.df_argmax == 0.0
  relu = curves.curve("relu")
  np.testing.assert_array_equal(relu.df[curves.x <= 0], 0)
  assert max(c.autodiff_error for c in curves.curves) <= activation_plots.TOLERANCE
  assert activation_plots.section(curves).verdict == experiments.HOLDS


def test_plots_write_pngs(tmp_path, vanish, leak, curves):
  for name, mod, result in (("v", vanishing, vanish), ("l", leaky, leak),
                            ("a", activation_plots, curves)):
    path = tmp_path / f"{name}.png"
    mod.plot(result, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_plot_without_matplotlib_names_the_extra(monkeypatch, curves, tmp_path):
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
  with pytest.raises(jaxreg.datasets.MissingExtraError, match=r"pip install 'jaxreg\[plot\]'"):
    activation_plots.plot(curves, str(tmp_path / "a.png"))


def test_importing_jaxreg_does_not_import_matplotlib_or_sklearn():
  code = ("import sys, jaxreg, jaxreg.experiments, jaxreg.datasets; "
          "print(sorted(m for m in ('matplotlib', 'sklearn') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       check=True)
  assert out.stdout.strip() == "[]"


def test_report_round_trip_and_readme(tmp_path):
  table = _report.markdown_table(["a", "b|c"], [[1, "x|y"]])
  assert table.splitlines()[0] == "| a | b\\|c |" and table.splitlines()[2] == "| 1 | x\\|y |"
  with pytest.raises(ValueError, match="row 0 has 1 cells, the header 2"):
    _report.markdown_table(["a", "b"], [[1]])
  s = _report.Section("leaky", "T", ("S0.8",), "c", "s", table, experiments.FAILS, "r", "l.png",
                      "cmd")
  assert _report.section_from_json(_report.section_to_json(s)) == s
  with pytest.raises(ValueError, match="`verdict` must be one of"):
    _report.render_section(s._replace(verdict="maybe"), 1)
  # The script renders the README from saved sections; the rest are "not run yet".
  spec = importlib.util.spec_from_file_location("experiments_script",
                                                ROOT / "scripts" / "experiments.py")
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  (tmp_path / "leaky.json").write_text(_report.section_to_json(s))
  assert script.main(["--readme-only", "--out", str(tmp_path)]) == 0
  text = (tmp_path / "README.md").read_text()
  assert "| 3 | T | S0.8 | does not hold |" in text and "![T](l.png)" in text
  assert text.count("Not run yet.") == len(experiments.PLANNED) + len(experiments.EXPERIMENTS) - 1


def test_bad_arguments_name_the_argument():
  with pytest.raises(ValueError, match="at least two distinct depths"):
    experiments.vanishing_gradients((5,), **SMALL)
  with pytest.raises(ValueError, match="`n_seeds` must be an int >= 1"):
    experiments.leaky_amplification(DEPTHS, n_seeds=0)
  with pytest.raises(ValueError, match="`alpha` must be in"):
    experiments.leaky_amplification(DEPTHS, alphas=(1.5,), **SMALL)
  with pytest.raises(TypeError, match="must be a jaxreg.experiments.Probe"):
    experiments.vanishing_gradients(DEPTHS, probes=[("relu", "he_normal")], **SMALL)
  with pytest.raises(ValueError, match="need `x_min` < `x_max`"):
    experiments.activation_curves(x_min=1, x_max=-1)


def test_docstring_examples_run():
  import doctest
  for mod in (vanishing, leaky, activation_plots):
    result = doctest.testmod(mod)
    assert result.attempted > 0 and result.failed == 0, mod.__name__
