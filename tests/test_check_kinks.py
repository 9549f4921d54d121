"""Kinks are conventions, not errors; and no false alarms on correct derivations."""


import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings

import jaxreg
from jaxreg._checker import diagnose, tolerance

import _check_seeds as seeds


def test_s0_h0_equals_1_gives_kink_not_wrong():
  p, x1, t = seeds.s0_data(hit_zero=True)
  assert float((x1 @ p["A"] + p["B"])[0, 1]) == 0.0
  r = jaxreg.check(seeds.s0_derivation, seeds.s0_loss, p, x1, t)
  assert r.ok, str(r)
  v = r.verdicts()
  assert v["x2"] == "kink" and v["params['B']"] == "kink"
  assert v["y"] == v["x3"] == "ok"
  assert r.row("x2").n_kink == 1
  assert r.n_kink >= 2
  assert "kink" in r.summary and "valid subgradient" in r.summary
  assert jaxreg.testing.assert_derivation(seeds.s0_derivation, seeds.s0_loss, p, x1, t,
                                          expect="kink")


def test_s0_4_l1_activity_at_zero_is_a_kink():
  p, x1, t = seeds.s0_data(hit_zero=True)
  r = jaxreg.check(seeds.s0_derivation, seeds.s0_loss, p, x1, t, kwargs={"lam": 0.01})
  assert r.ok, str(r)
  assert r.verdicts()["x2"] == "kink"


def test_jax_convention_h0_equals_0_is_plain_ok():
  p, x1, t = seeds.s0_data(hit_zero=True)

  def h0_is_0(params, x1, t):
    s = seeds.s0_derivation(params, x1, t)
    x2 = x1 @ params["A"] + params["B"]
    dx2 = s["x3"] * seeds.heaviside(x2, 0.0)
    s["x2"] = dx2
    s["params"]["A"], s["params"]["B"] = x1.T @ dx2, dx2.sum(0)
    return s

  r = jaxreg.check(h0_is_0, seeds.s0_loss, p, x1, t)
  assert r.ok and r.n_kink == 0


def test_a_value_outside_the_subdifferential_at_a_kink_is_wrong():
  # At x2 == 0 the one-sided derivatives of L w.r.t. x2 are 0 and ∂L/∂x3; 3× the latter is not between.
  p, x1, t = seeds.s0_data(hit_zero=True)

  def h0_is_3(params, x1, t):
    s = seeds.s0_derivation(params, x1, t)
    x2 = x1 @ params["A"] + params["B"]
    s["x2"] = s["x3"] * seeds.heaviside(x2, 3.0)
    return s

  r = jaxreg.check(h0_is_3, seeds.s0_loss, p, x1, t)
  assert r.first_wrong == "x2"
  assert "there is a kink" in r.row("x2").note and "not between them" in r.row("x2").note
  assert "x2 == 0" in r.row("x2").diagnosis


def test_abs_kink_sgn0_convention():
  # S2.3: d|w|/dw with sgn(0) = 0, jax.grad(jnp.abs)(0.) = 1: both valid.
  def loss(p):
    return jnp.sum(jnp.abs(p["w"])) + 0.5 * jnp.sum(p["w"] ** 2)

  def deriv(p):
    return {"w": jnp.sign(p["w"]) + p["w"]}

  p = {"w": jnp.array([1.5, 0.0, -2.0, 0.0])}
  r = jaxreg.check(deriv, loss, p)
  assert r.ok and r.rows[0].verdict == "kink" and r.rows[0].n_kink == 2


def test_maximum_half_convention_is_a_kink():
  # jnp.maximum(0, x) differentiates to ½ at 0; a derivation with relu'(0) = 0 disagrees at a kink.
  def loss(p, x):
    z = jaxreg.tap("z", x * p["w"])
    return jnp.sum(jnp.maximum(0.0, z))

  def deriv(p, x):
    z = x * p["w"]
    dz = (z > 0).astype(z.dtype)
    return {"z": dz, "params": {"w": jnp.sum(dz * x)}}

  x = jnp.array([1.0, 0.0, -1.0, 2.0])
  r = jaxreg.check(deriv, loss, {"w": jnp.array(0.5)}, x)
  # at x = 0 a change of w does not move z, so ∂L/∂w agrees; ∂L/∂z differs (½ vs 0) at a kink
  assert r.ok, str(r)
  assert r.verdicts() == {"z": "kink", "params['w']": "ok"}
  assert r.row("z").worst_index == (1,) and r.row("z").n_kink == 1   # x[1] == 0


def test_probe_cap_is_reported():
  p, x1, t = seeds.s0_data(m=40, hit_zero=True)
  x1 = x1.at[:30].set(0.0)      # 30 samples hit the kink in column 1
  r = jaxreg.check(seeds.s0_derivation, seeds.s0_loss, p, x1, t, max_probes=4)
  assert r.ok, str(r)
  assert r.row("x2").n_kink == 30
  assert "probed (cap)" in r.row("x2").note


def test_rows_past_the_total_probe_cap_still_get_one_probe_and_no_false_alarm():
  p, x1, t = seeds.s0_data(m=40, hit_zero=True)
  x1 = x1.at[:30].set(0.0)
  r = jaxreg.check(seeds.s0_derivation, seeds.s0_loss, p, x1, t, max_probes=4, max_probes_total=1)
  capped = [row for row in r.rows if row.note and "probe cap reached" in row.note]
  assert r.ok, str(r)
  assert capped and all(row.verdict == "kink" for row in capped), str(r)


# --------------------------------------------------------------- no false alarms
# Three shape × activation combinations (each compiles once); many values and scales.
# Weight scales up to 3 for tanh: far beyond, 1 − tanh² is computed with a relative error
# of ε/(1 − tanh²) (autodiff uses (1 − t)(1 + t)), which no float64 rtol of 1e-10 absorbs.
@settings(max_examples=200)
@given(seed=st.integers(0, 2**31 - 1), act=st.sampled_from(sorted(seeds.ACTS)),
       scale=st.sampled_from([1e-3, 0.1, 1.0, 3.0, 1e3]))
def test_no_false_alarm_on_random_correct_derivations(seed, act, scale):
  if act == "tanh" and scale > 3:
    scale = 3.0
  shape = (5, 4, 6, 2) if act != "leaky" else (3, 6, 6, 1)
  p, x, t = seeds.mlp_data(seed, sizes=shape, m=8, scale=scale)
  r = jaxreg.check(seeds.mlp_derivation, seeds.mlp_loss, p, x, t, kwargs={"act": act})
  assert r.ok, str(r)
  assert r.n_kink == 0
  assert r.referee.verdict == "ok"


@settings(max_examples=100)
@given(seed=st.integers(0, 2**31 - 1), hit=st.booleans(), lam=st.sampled_from([0.0, 0.01, 1.0]))
def test_no_false_alarm_on_s0_with_and_without_kinks(seed, hit, lam):
  p, x1, t = seeds.s0_data(seed, hit_zero=hit)
  r = jaxreg.check(seeds.s0_derivation, seeds.s0_loss, p, x1, t, kwargs={"lam": lam})
  assert r.ok, str(r)
  assert r.referee.verdict in ("ok", "kink")
  if not hit:
    assert r.n_kink == 0 and r.referee.verdict == "ok"
  else:
    assert r.verdicts()["x2"] == "kink"


_MODELS = [jaxreg.MLP((3, 5, 2), "relu", kernel_regularizer=jaxreg.penalties.l2(0.01)),
           jaxreg.MLP((4, 4, 4, 2), "tanh", loss="mse",
                      activity_regularizer=jaxreg.penalties.l1(0.1), activity_on="preactivation")]


@settings(max_examples=60)
@given(seed=st.integers(0, 2**31 - 1), which=st.sampled_from([0, 1]))
def test_no_false_alarm_on_mlp_backprop(seed, which):
  model = _MODELS[which]
  rng = np.random.default_rng(seed)
  params = jax.tree.map(jnp.asarray, [{"w": rng.normal(size=(a, b)), "b": rng.normal(size=b)}
                                      for a, b in zip(model.sizes[:-1], model.sizes[1:])])
  x = jnp.asarray(rng.normal(size=(6, model.sizes[0])))
  t = jnp.asarray(rng.normal(size=(6, model.sizes[-1])))
  r = jaxreg.check(model.backprop, model.loss, params, x, t)
  assert r.ok, str(r)


def test_rounding_level_difference_is_ok_or_diagnosed_as_such():
  # tanh saturated: the hand 1 − tanh² loses digits that autodiff's (1 − t)(1 + t) keeps, in
  # rows whose gradient is ~0 next to the computation's scale: judged against that scale, ok.
  p, x, t = seeds.mlp_data(72, sizes=(5, 3, 6, 1), m=8, scale=1000.0)
  r = jaxreg.check(seeds.mlp_derivation, seeds.mlp_loss, p, x, t, kwargs={"act": "tanh"})
  assert r.ok, str(r)
  assert 0 < r.row("a1").max_rel_err < 1e-12
  # A relative difference just above rtol on a row of its own scale is named for what it is.
  ref = np.linspace(1.0, 2.0, 5)
  d = diagnose.diagnose(ref * (1 + 3e-10), ref, tolerance.default_tolerances(np.float64), 2.0)
  assert "rounding level" in d and "looser rtol" in d


def test_relative_error_is_judged_against_the_row_scale():
  # An element whose reference cancels to ~0 is judged against floor·max|ref|, not itself.
  def loss(p):
    return jnp.sum(p["w"] ** 2) - 2 * p["w"][0] * 1.0

  p = {"w": jnp.array([1.0, 3.0])}          # ∂/∂w0 = 2·1 − 2 = 0 exactly
  deriv = lambda p: {"w": 2 * p["w"] - jnp.array([2.0, 0.0]) + jnp.array([1e-15, 0.0])}
  r = jaxreg.check(deriv, loss, p)
  assert r.ok, str(r)
  assert r.rows[0].max_abs_err > 0
