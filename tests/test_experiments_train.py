"""Experiments that train (jaxreg.experiments.race): structure and one qualitative fact each.

Few seeds and few epochs; the full runs are scripts (scripts/experiment_race.py).
"""

import json

import jax
import numpy as np
import pytest

from jaxreg import experiments
from jaxreg.experiments import _report, race


@pytest.fixture(scope="module")
def small_race():
  return experiments.activation_race(6, 60, activations=("sigmoid", "tanh", "relu"), n_boot=200)


def test_race_structure(small_race):
  r = small_race
  assert r.settings.activations == ("sigmoid", "tanh", "relu")
  assert [row.activation for row in r.rows] == ["sigmoid", "tanh", "relu"]
  for a in r.settings.activations:
    e = r.epochs[a]
    assert e.shape == (6,) and r.test_loss[a].shape == (6, 60)
    finite = e[np.isfinite(e)]
    assert np.all((finite >= 1) & (finite <= 60) & (finite == np.round(finite)))
    assert r.row(a).converged == finite.size
  assert [q.name for q in r.ratios] == ["sigmoid/tanh", "tanh/relu"]
  for q in r.ratios:
    assert q.verdict in (race.EXACT, race.ABOUT, race.ORDER_ONLY, race.WRONG)
    assert np.isnan(q.median) or q.lo <= q.median <= q.hi
  s = race.section(r, figure="race.png")
  assert s.claims == ("S1.6",) and s.verdict in _report.VERDICTS and "tanh" in s.table


def test_race_tanh_learns_faster_than_sigmoid(small_race):
  # The qualitative fact: after 60 epochs tanh's test loss is below sigmoid's in most runs
  # (sigmoid's derivative is at most 0.25, so its early progress is slow).
  last = {a: small_race.test_loss[a][:, -1] for a in ("sigmoid", "tanh")}
  assert np.median(last["tanh"]) < np.median(last["sigmoid"])
  assert small_race.row("sigmoid").converged <= small_race.row("tanh").converged


def test_race_json_schema(small_race):
  d = json.loads(json.dumps(race.to_json(small_race)))
  assert set(d["activations"]) == {"sigmoid", "tanh", "relu"}
  for a, v in d["activations"].items():
    assert len(v["epochs"]) == 6 and all(e is None or isinstance(e, int) for e in v["epochs"])
    assert v["converged"] == sum(e is not None for e in v["epochs"])
    assert v["median"] is None or isinstance(v["median"], float)
  assert set(d["ratios"]) == {"sigmoid/tanh", "tanh/relu"}
  assert all(len(v) == 3 for v in d["ratios"].values())


def test_playground_model_init_and_loss():
  m = race.playground_model("relu")
  p = m.init(jax.random.key(3))
  assert [layer["w"].shape for layer in p] == [(2, 3), (3, 3), (3, 1)]
  for layer in p:
    assert np.all(np.abs(np.asarray(layer["w"])) <= 0.5)
    np.testing.assert_array_equal(np.asarray(layer["b"]), np.float32(0.1))
  x = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
  t = np.array([[1.0], [-1.0]], np.float32)
  out = np.asarray(m.apply(p, x))
  assert np.all(np.abs(out) < 1)                    # tanh output
  assert float(m.loss(p, x, t)) == pytest.approx(0.5 * np.mean((out - t) ** 2), rel=1e-6)
  assert race.playground_model("relu") is m          # cached: one compile per activation


def test_first_below_and_bootstrap():
  loss = np.array([[0.3, 0.04, 0.01], [0.3, 0.2, 0.1], [np.nan, 0.01, 0.0]])
  np.testing.assert_array_equal(race.first_below(loss, 0.05), [2, np.inf, 2])
  slow = np.array([100.0, 120, 110, np.inf, 90])
  fast = np.array([10.0, 11, 12, 9, 10])
  lo, mid, hi = race.bootstrap_ratio(slow, fast, n_boot=500)
  assert lo <= 11 <= hi and lo > 5
  assert race.judge(8.0, 12.0, 10.0) == race.EXACT
  assert race.judge(10.6, 12.0, 10.0) == race.ABOUT
  assert race.judge(3.0, 5.0, 10.0) == race.ORDER_ONLY
  assert race.judge(0.5, 2.0, 10.0) == race.WRONG
  assert np.isnan(race.bootstrap_ratio(np.full(4, np.inf), np.full(4, np.inf), n_boot=50)[0])


def test_race_bad_arguments():
  with pytest.raises(ValueError, match="n_seeds"):
    experiments.activation_race(0, 10)
  with pytest.raises(ValueError, match="activation"):
    experiments.activation_race(2, 10, activations=("nope",))


def test_sparsity_structure_and_proximal_l1_zeros_weights():
  from jaxreg.experiments import sparsity
  rules = (sparsity.RULES[0], sparsity.RULES[2])   # L2 and proximal L1: two compiles
  r = experiments.l1_vs_l2((0.0, 1e-2), n_seeds=2, epochs=5, hidden=8, rules=rules)
  assert len(r.rows) == 2 * 2 and set(r.weights) == {"none"} | {lab for lab, _, _ in rules}
  for row in r.rows:
    assert 0 <= row.exact_zero <= row.near_zero <= 1 and 0 <= row.test_acc <= 1
  l2, prox = r.row("L2 weight decay", 1e-2), r.row("L1 proximal", 1e-2)
  assert l2.exact_zero == 0 < prox.exact_zero      # only the proximal step lands on 0
  # λ = 0 is the same unregularized run under every rule
  assert len({r.row(lab, 0.0).test_acc for lab, _, _ in rules}) == 1


def test_shift_one_pixel_moves_each_image_by_at_most_one_pixel():
  from jaxreg.experiments.regularizers import shift_one_pixel
  img = np.zeros((16, 8, 8), np.float32)
  img[:, 3, 4] = 1.0                                # one bright pixel away from the border
  out = np.asarray(shift_one_pixel(jax.random.key(0), img.reshape(16, 64))).reshape(16, 8, 8)
  assert out.shape == img.shape and np.all(out.sum((1, 2)) == 1)
  rows, cols = np.nonzero(out)[1], np.nonzero(out)[2]
  assert np.all(np.abs(rows - 3) <= 1) and np.all(np.abs(cols - 4) <= 1)
  assert len(set(zip(rows, cols))) > 1              # not the same shift for every image


def test_regularizers_structure_and_unreached_patience_changes_nothing():
  from jaxreg.experiments import regularizers
  methods = (regularizers.METHODS[0], regularizers.METHODS[-1])  # none, early stopping
  r = experiments.compare_regularizers(2, epochs=3, hidden=8, methods=methods, n_boot=100)
  assert [row.method for row in r.rows] == [m.name for m in methods]
  assert r.acc["none"].shape == (2,) and np.all((r.acc["none"] >= 0) & (r.acc["none"] <= 1))
  # patience 20 cannot trigger within 3 epochs: the same runs, the same accuracy
  np.testing.assert_array_equal(r.acc[methods[1].name], r.acc["none"])
  assert r.rows[1].diff_mean == 0
  s = regularizers.section(r)
  assert s.claims == ("S2.5", "S4.4", "S4.5", "S4.6", "S4.7") and s.verdict in _report.VERDICTS
