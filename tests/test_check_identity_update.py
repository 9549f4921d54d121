"""check_identity (S0.7) and check_update (S2.2, S2.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg


ALPHA = 0.1


def leaky(x):
  return jax.nn.leaky_relu(x, ALPHA)


def s0_7_rhs(x):
  return (1 + ALPHA) * jax.nn.relu(x) - ALPHA * jnp.abs(x)


def test_s0_7_leaky_relu_identity_holds_with_a_kink_at_0():
  r = jaxreg.check_identity(leaky, s0_7_rhs, domain=(-3.0, 3.0))
  assert r.ok, str(r)
  assert r.verdicts() == {"value": "ok", "derivative": "kink"}
  assert r.row("derivative").n_kink == 1 and "x = 0" in r.row("derivative").note
  # autodiff of the right-hand side gives (1+α)·0 − α·1 = −α at 0, outside [α, 1]
  assert "g'(0) = -0.1 lies outside" in r.row("derivative").note
  assert "agree in value and derivative" in r.summary


def test_wrong_identity_is_wrong_only_on_the_negative_side():
  r = jaxreg.check_identity(leaky, lambda x: (1 + ALPHA) * jax.nn.relu(x) - ALPHA * x,
                            domain=(-3.0, 3.0))
  assert not r.ok and r.first_wrong == "value"
  assert "wrong only where x < 0" in r.row("value").diagnosis
  assert "identity is false" in r.summary


def test_same_values_different_derivative_away_from_kinks_is_wrong():
  # g has the right values but a custom derivative that is wrong for x > 1.
  @jax.custom_jvp
  def g(x):
    return jnp.tanh(x)

  @g.defjvp
  def g_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    d = 1 - jnp.tanh(x) ** 2
    return jnp.tanh(x), t * jnp.where(x > 1, 2 * d, d)

  r = jaxreg.check_identity(jnp.tanh, g, domain=(-2.0, 2.0))
  assert r.verdicts() == {"value": "ok", "derivative": "wrong"}
  assert "wrong only where x > 0" in r.row("derivative").diagnosis     # x in (1, 2]
  worst_x = float(r.row("derivative").note.split("worst at x = ")[1].split(":")[0])
  assert worst_x > 1


def test_kink_excused_only_when_one_sided_derivatives_match():
  # relu = (x + |x|)/2: autodiff gives 0 and ½ at 0, one-sided derivatives agree: a kink.
  r = jaxreg.check_identity(jax.nn.relu, lambda x: 0.5 * (x + jnp.abs(x)), domain=(-1.0, 1.0))
  assert r.ok and r.verdicts()["derivative"] == "kink"
  # relu vs x·H(x) written with a smooth-looking derivative that is wrong at 0 only:
  # g(x) = relu(x) + |x|³ has the same one-sided slopes; g(x) = relu(x) + 0.3|x| does not,
  # and its values differ too.
  r = jaxreg.check_identity(jax.nn.relu, lambda x: jax.nn.relu(x) + jnp.abs(x) ** 3 * 0,
                            domain=(-1.0, 1.0), points=[0.0])
  assert r.ok
  r = jaxreg.check_identity(jnp.abs, lambda x: jnp.where(x > 0, x, -x),
                            domain=(-1.0, 1.0))
  assert r.ok and r.verdicts()["derivative"] == "kink"      # abs gives 1 at 0, where gives -1


def test_a_derivative_outside_the_subdifferential_at_a_kink_is_remarked():
  @jax.custom_jvp
  def abs5(x):
    return jnp.abs(x)

  @abs5.defjvp
  def abs5_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.abs(x), t * jnp.where(x == 0, 5.0, jnp.sign(x))   # 5 at 0: not in [-1, 1]

  r = jaxreg.check_identity(jnp.abs, abs5, domain=(-1.0, 1.0))
  assert r.verdicts() == {"value": "ok", "derivative": "kink"}   # same function, same sides
  assert "g'(0) = 5 lies outside the one-sided derivatives [-1, 1]" in r.row("derivative").note


def test_check_identity_bad_inputs():
  with pytest.raises(ValueError, match="`domain` must be a pair"):
    jaxreg.check_identity(leaky, leaky, domain=3.0)
  with pytest.raises(ValueError, match="low < high"):
    jaxreg.check_identity(leaky, leaky, domain=(1.0, -1.0))
  r = jaxreg.check_identity(leaky, lambda x: jnp.sum(x), domain=(-1.0, 1.0))
  assert r.error is not None and "elementwise" in r.error and not r.ok


# ---------------------------------------------------------------- updates
ETA, LAM, N = 0.5, 5.0, 1000


def _pg(seed=0):
  rng = np.random.default_rng(seed)
  p = [{"w": jnp.asarray(rng.normal(size=(3, 2))), "b": jnp.asarray(rng.normal(size=2))},
       {"w": jnp.asarray(rng.normal(size=(2, 1))), "b": jnp.asarray(rng.normal(size=1))}]
  g = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), p)
  return p, g


def nielsen_l2(params, grads):
  """S2.2: w → (1 − ηλ/n) w − η ∇w ;  b → b − η ∇b (grads = minibatch mean)."""
  return [{"w": (1 - ETA * LAM / N) * l["w"] - ETA * g["w"], "b": l["b"] - ETA * g["b"]}
          for l, g in zip(params, grads)]


def _optax_decay(params):
  mask = jax.tree.map(lambda x: x.ndim != 1, params)
  return optax.chain(optax.add_decayed_weights(LAM / N, mask), optax.sgd(ETA))


def test_s2_2_nielsen_weight_decay_equals_optax_chain():
  p, g = _pg()
  r = jaxreg.check_update(nielsen_l2, _optax_decay(p), p, g, steps=3)
  assert r.ok, str(r)
  assert [row.name for row in r.rows] == ["params[0]['b']", "params[0]['w']",
                                          "params[1]['b']", "params[1]['w']"]


def test_s2_2_decaying_biases_too_is_caught_and_diagnosed():
  p, g = _pg()
  wrong = optax.chain(optax.add_decayed_weights(LAM / N), optax.sgd(ETA))   # no mask
  r = jaxreg.check_update(nielsen_l2, wrong, p, g)
  assert {row.name for row in r.rows if row.verdict == "wrong"} == {"params[0]['b']",
                                                                     "params[1]['b']"}
  assert "weight-decay" in r.row("params[0]['b']").diagnosis
  assert r.first_wrong == "params[0]['b']"


def test_s2_2_minibatch_sum_form_with_eta_over_m():
  # (η/m) Σ_x ∇C_x with per-sample gradients equals η × the mean gradient.
  p, g = _pg()
  m = 4
  per_sample = [jax.tree.map(lambda x, k=k: x * (1 + 0.1 * k), g) for k in range(m)]
  mean = jax.tree.map(lambda *xs: sum(xs) / m, *per_sample)

  def summed(params, _):
    tot = jax.tree.map(lambda *xs: sum(xs), *per_sample)
    return [{"w": (1 - ETA * LAM / N) * l["w"] - (ETA / m) * t["w"], "b": l["b"] - (ETA / m) * t["b"]}
            for l, t in zip(params, tot)]

  assert jaxreg.check_update(summed, _optax_decay(p), p, mean).ok

  def forgot_1_over_m(params, _):
    tot = jax.tree.map(lambda *xs: sum(xs), *per_sample)
    return [{"w": (1 - ETA * LAM / N) * l["w"] - ETA * t["w"], "b": l["b"] - ETA * t["b"]}
            for l, t in zip(params, tot)]

  r = jaxreg.check_update(forgot_1_over_m, _optax_decay(p), p, mean)
  assert not r.ok and "learning-rate" in r.row("params[0]['b']").diagnosis


def l1_sign_rule(params, grads):
  """S2.3: w → w − (ηλ/n) sgn(w) − η ∇w, sgn(0) = 0; biases not penalised."""
  return [{"w": l["w"] - ETA * LAM / N * jnp.sign(l["w"]) - ETA * g["w"], "b": l["b"] - ETA * g["b"]}
          for l, g in zip(params, grads)]


def _l1_by_autodiff(params, grads):
  pen = jax.grad(lambda q: LAM / N * sum(jnp.sum(jnp.abs(l["w"])) for l in q))(params)
  return jax.tree.map(lambda w, g, d: w - ETA * (g + d), params, grads, pen)


def test_s2_3_l1_sign_rule_equals_sgd_on_the_l1_penalised_cost():
  p, g = _pg()
  r = jaxreg.check_update(l1_sign_rule, _l1_by_autodiff, p, g)
  assert r.ok and r.n_kink == 0, str(r)
  # at w = 0 exactly the sgn(0) = 0 convention differs from jax.grad(abs)(0) = 1: a kink
  p[0]["w"] = p[0]["w"].at[1, 1].set(0.0)
  r = jaxreg.check_update(l1_sign_rule, _l1_by_autodiff, p, g)
  assert r.ok and r.row("params[0]['w']").verdict == "kink"
  assert r.row("params[0]['w']").n_kink == 1


def test_s2_3_sign_error_in_l1_rule_is_caught():
  p, g = _pg()

  def plus(params, grads):
    return [{"w": l["w"] + ETA * LAM / N * jnp.sign(l["w"]) - ETA * gg["w"], "b": l["b"] - ETA * gg["b"]}
            for l, gg in zip(params, grads)]

  r = jaxreg.check_update(plus, _l1_by_autodiff, p, g)
  assert r.first_wrong == "params[0]['w']"
  assert "sgn(w)" in r.row("params[0]['w']").diagnosis


def test_check_update_bad_inputs():
  p, g = _pg()
  with pytest.raises(TypeError, match="`rule` must be an optax.GradientTransformation"):
    jaxreg.check_update(3, nielsen_l2, p, g)
  with pytest.raises(ValueError, match="`grads` must have the structure of `params`"):
    jaxreg.check_update(nielsen_l2, nielsen_l2, p, g[:1])
  r = jaxreg.check_update(lambda p, g: 1 / 0, nielsen_l2, p, g)
  assert r.error is not None and "ZeroDivisionError" in r.error and not r.ok
