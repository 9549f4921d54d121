"""jaxreg.check on the seed derivations (S0, S3) and on planted single errors."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg.testing import assert_derivation

import _check_seeds as seeds


# ------------------------------------------------------------------ seeds
def test_s0_2_chain_rule_is_correct(key):
  p, x1, t = seeds.s0_data()
  r = jaxreg.check(seeds.s0_derivation, seeds.s0_loss, p, x1, t)
  assert r.ok, str(r)
  assert [row.name for row in r.rows] == [
      "y", "x3", "x2", "params['A']", "params['B']", "params['C']", "params['D']"]
  assert all(row.verdict == "ok" for row in r.rows)
  assert r.first_wrong is None
  assert r.referee.verdict == "ok"
  assert "agree with autodiff" in r.summary


def test_s0_4_l1_activity_term_is_correct(key):
  p, x1, t = seeds.s0_data()
  r = jaxreg.check(seeds.s0_derivation, seeds.s0_loss, p, x1, t, kwargs={"lam": 0.01})
  assert r.ok, str(r)
  assert r.verdicts()["x2"] == "ok"


def test_s0_4_l1_alone_gives_lambda_2h_minus_1(key):
  # With the data term removed (t = y), ∂L/∂x2 is exactly λ(2H(x2) − 1).
  p, x1, _ = seeds.s0_data()
  lam = 0.25

  def only_l1(params, x1, t):
    x2 = jaxreg.tap("x2", x1 @ params["A"] + params["B"])
    return lam * jnp.sum(jnp.abs(x2))

  def deriv(params, x1, t):
    x2 = x1 @ params["A"] + params["B"]
    d = lam * (2 * seeds.heaviside(x2, 1.0) - 1)
    return {"x2": d, "params": {"A": x1.T @ d, "B": d.sum(0), "C": jnp.zeros_like(params["C"]),
                                "D": jnp.zeros_like(params["D"])}}

  assert_derivation(deriv, only_l1, p, x1, x1)


def test_s3_1_single_neuron_is_correct():
  rng = np.random.default_rng(0)
  p = {"W": jnp.asarray(rng.normal(size=3))}
  x = jnp.asarray(rng.normal(size=(8, 3)))
  y = jnp.asarray(rng.normal(size=8))
  r = assert_derivation(seeds.s31_derivation, seeds.s31_loss, p, x, y)
  assert [row.name for row in r.rows] == ["yhat", "z", "params['W']"]


def _s32_data(layers):
  x = jnp.array([1.5, -0.7, 0.3, -2.0, 0.9, 1.1])
  y = jnp.array([0.4, 0.2, -0.3, 0.1, 1.0, 0.5])
  p = {"w1": jnp.array(0.8), "w2": jnp.array(1.3), "w3": jnp.array(0.6)}
  return {k: v for k, v in p.items() if int(k[1]) <= layers}, x, y


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_s3_2_asker_derivation_is_wrong_at_the_first_step(layers):
  p, x, y = _s32_data(layers)
  r = jaxreg.check(seeds.s32_asker, seeds.s32_loss, p, x, y, kwargs={"layers": layers})
  assert not r.ok
  assert r.first_wrong == "yhat"
  row = r.row("yhat")
  assert row.verdict == "wrong"
  assert "sign error" in row.diagnosis
  assert "∂L/∂yhat is wrong" in r.summary and "very first step" in r.summary
  assert r.row(f"params['w{layers}']").verdict == "wrong"
  # the correct chain (S3.3) on the same network passes
  assert jaxreg.check(seeds.s32_correct, seeds.s32_loss, p, x, y, kwargs={"layers": layers}).ok


@pytest.mark.parametrize("layers", [2, 3])
def test_s3_2_asker_with_sign_fixed_breaks_at_the_missing_step(layers):
  # w1, w2 > 0 so the inner z's are >= 0: a missing Step there only matters where
  # z == 0, a kink (the asker's 1 is a valid subgradient). Step(z_L) is missing where
  # z_L = w_L x < 0 (the input layer): that is the first real error.
  p, x, y = _s32_data(layers)
  asker = functools.partial(seeds.s32_asker, sign_fixed=True)
  r = jaxreg.check(asker, seeds.s32_loss, p, x, y, kwargs={"layers": layers})
  assert r.first_wrong == f"z{layers}"
  assert r.verdicts()["yhat"] == "ok"
  assert r.verdicts()["z1"] == "kink"
  assert all(r.verdicts()[f"z{l}"] == "kink" for l in range(1, layers))
  assert f"z{layers} < 0" in r.row(f"z{layers}").diagnosis
  assert (f"so the factor ∂r{layers}/∂z{layers} between them is where the derivation breaks"
          in r.summary)


# ------------------------------------------------------------------ planted single errors
@pytest.fixture(scope="module")
def mlp():
  return seeds.mlp_data(3)


def test_mlp_derivation_correct(mlp):
  p, x, t = mlp
  r = jaxreg.check(seeds.mlp_derivation, seeds.mlp_loss, p, x, t)
  assert r.ok, str(r)
  assert [row.name for row in r.rows][:5] == ["y", "a2", "z2", "a1", "z1"]
  assert [row.name for row in r.rows][5:7] == ["params[0]['b']", "params[0]['w']"]


def test_planted_missing_activation_factor(mlp):
  p, x, t = mlp
  r = jaxreg.check(functools.partial(seeds.mlp_derivation, plant="missing_activation"), seeds.mlp_loss, p, x, t)
  assert r.first_wrong == "z2"
  assert [r.verdicts()[n] for n in ("y", "a2")] == ["ok", "ok"]
  assert "wrong only where z2 < 0" in r.row("z2").diagnosis
  assert "activation-derivative slip" in r.row("z2").diagnosis
  assert "∂L/∂y and ∂L/∂a2 agree with autodiff; ∂L/∂z2 is wrong" in r.summary
  assert "factor ∂a2/∂z2" in r.summary


def test_planted_transposed_matrix_param(mlp):
  p, x, t = mlp
  r = jaxreg.check(functools.partial(seeds.mlp_derivation, plant="transposed"), seeds.mlp_loss, p, x, t)
  assert r.first_wrong == "params[0]['w']"
  row = r.row("params[0]['w']")
  assert row.verdict == "shape"
  assert "transpose" in row.diagnosis
  assert all(v == "ok" for n, v in r.verdicts().items() if n != "params[0]['w']")


def test_planted_transposed_square_matrix_in_a_step(mlp):
  p, x, t = mlp     # W1 is 5×5: using W1 instead of W1ᵀ keeps the shape
  r = jaxreg.check(functools.partial(seeds.mlp_derivation, plant="transposed_tap"), seeds.mlp_loss, p, x, t)
  assert r.first_wrong == "a1"
  assert "factor ∂z2/∂a1" in r.summary


def test_planted_wrong_sign(mlp):
  p, x, t = mlp
  r = jaxreg.check(functools.partial(seeds.mlp_derivation, plant="sign"), seeds.mlp_loss, p, x, t)
  assert r.first_wrong == "y"
  assert "sign error" in r.row("y").diagnosis


def test_planted_missing_1_over_m(mlp):
  p, x, t = mlp
  r = jaxreg.check(functools.partial(seeds.mlp_derivation, plant="missing_1_over_m"), seeds.mlp_loss, p, x, t)
  assert r.first_wrong == "y"
  assert "a missing 1/m" in r.row("y").diagnosis
  assert "7 ×" in r.row("y").diagnosis


def test_planted_penalty_on_biases(mlp):
  p, x, t = mlp
  r = jaxreg.check(functools.partial(seeds.mlp_derivation, plant="bias_penalty"), seeds.mlp_loss, p, x, t)
  assert r.first_wrong == "params[0]['b']"
  taps_ok = [row.verdict for row in r.rows if row.kind == "tap"]
  assert set(taps_ok) == {"ok"}
  assert {row.name for row in r.rows if row.verdict == "wrong"} == {
      "params[0]['b']", "params[1]['b']", "params[2]['b']"}
  d = r.row("params[1]['b']").diagnosis
  assert "extra L2 term" in d and "0.02" in d
  assert "Every tapped quantity" in r.summary


def test_params_only_derivation_with_model_backprop(key):
  model = jaxreg.MLP((4, 6, 3), "tanh", kernel_regularizer=jaxreg.penalties.l2(0.1))
  params = model.init(key)
  x = jax.random.normal(key, (5, 4))
  t = jax.random.normal(jax.random.key(1), (5, 3))
  r = jaxreg.check(model.backprop, model.loss, params, x, t)
  assert r.ok, str(r)
  assert [row.name for row in r.rows] == ["params[0]['b']", "params[0]['w']",
                                          "params[1]['b']", "params[1]['w']"]
  # a model whose backprop forgets the kernel penalty
  bare = jaxreg.MLP((4, 6, 3), "tanh")
  r = jaxreg.check(bare.backprop, model.loss, params, x, t)
  assert r.first_wrong == "params[0]['w']"
  assert r.verdicts()["params[0]['b']"] == "ok"
  assert "L2 term of the loss" in r.row("params[0]['w']").diagnosis
  assert "No intermediate steps were given" in r.summary and "jaxreg.tap" in r.summary


# ------------------------------------------------------------------ the report
def test_report_dict_is_json_and_str_has_table(mlp):
  p, x, t = mlp
  r = jaxreg.check(functools.partial(seeds.mlp_derivation, plant="sign"), seeds.mlp_loss, p, x, t)
  d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
  assert d["ok"] is False and d["first_wrong"] == "y"
  assert d["rows"][0]["verdict"] == "wrong" and d["rows"][0]["worst_index"] is not None
  assert d["referee"]["verdict"] == "ok"
  s = str(r)
  assert "max abs err" in s and "verdict" in s and "referee" in s
  assert s.strip().endswith(r.summary)
  row = r.row("y")
  assert row.worst_user == pytest.approx(-row.worst_ref)


def test_float32_correct_derivation_passes(key):
  p, x, t = seeds.mlp_data(1, dtype=np.float32)
  r = jaxreg.check(seeds.mlp_derivation, seeds.mlp_loss, p, x, t, kwargs={"act": "tanh"})
  assert r.ok, str(r)
  assert r.dtype == "float32" and r.rtol == 1e-4


def test_tolerances_can_be_overridden(mlp):
  p, x, t = mlp

  def nearly(params, x, t):
    s = seeds.mlp_derivation(params, x, t)
    s["y"] = s["y"] * (1 + 1e-7)
    return s

  assert jaxreg.check(nearly, seeds.mlp_loss, p, x, t).first_wrong == "y"
  assert jaxreg.check(nearly, seeds.mlp_loss, p, x, t, rtol=1e-6).ok


# ------------------------------------------------------------------ referee
@jax.custom_vjp
def _bad_relu(x):
  return jnp.maximum(x, 0.0)


def _bad_relu_fwd(x):
  return _bad_relu(x), x


def _bad_relu_bwd(x, g):
  return (2.0 * g * (x > 0),)    # wrong: twice the derivative


_bad_relu.defvjp(_bad_relu_fwd, _bad_relu_bwd)


def test_referee_catches_a_wrong_custom_vjp(key):
  p, x1, t = seeds.s0_data()

  def loss(params, x1, t):
    x2 = jaxreg.tap("x2", x1 @ params["A"] + params["B"])
    y = _bad_relu(x2) @ params["C"] + params["D"]
    return 0.5 * jnp.sum((t - y) ** 2)

  def deriv(params, x1, t):     # what the buggy custom_vjp computes
    x2 = x1 @ params["A"] + params["B"]
    y = jax.nn.relu(x2) @ params["C"] + params["D"]
    dy = y - t
    dx2 = 2.0 * (dy @ params["C"].T) * (x2 > 0)
    return {"x2": dx2, "params": {"A": x1.T @ dx2, "B": dx2.sum(0),
                                  "C": jax.nn.relu(x2).T @ dy, "D": dy.sum(0)}}

  r = jaxreg.check(deriv, loss, p, x1, t)
  assert all(row.verdict == "ok" for row in r.rows)   # it matches the (wrong) reference…
  assert r.referee.verdict == "wrong"                  # …but the referee objects
  assert not r.ok
  assert "custom_vjp" in r.referee.detail and "referee" in r.summary


def test_referee_can_be_skipped(mlp):
  p, x, t = mlp
  r = jaxreg.check(seeds.mlp_derivation, seeds.mlp_loss, p, x, t, referee=0)
  assert r.ok and r.referee is None


def test_referee_seed_changes_directions(mlp):
  p, x, t = mlp
  a = jaxreg.check(seeds.mlp_derivation, seeds.mlp_loss, p, x, t, seed=0).referee
  b = jaxreg.check(seeds.mlp_derivation, seeds.mlp_loss, p, x, t, seed=1).referee
  assert a.verdict == b.verdict == "ok"
  assert a.max_rel_err != b.max_rel_err
