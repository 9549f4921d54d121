"""Losses and penalties: closed-form gradients equal jax.grad; conventions; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg import losses
from jaxreg import penalties


def rel_err(a, b, floor=1e-12):
  a, b = np.asarray(a), np.asarray(b)
  return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor))


def _inputs(loss, seed, m=7, k=5):
  """``(y, t)`` for ``loss``, drawn with numpy (eager jax.random compiles each sampler)."""
  rng = np.random.default_rng(seed)
  if loss is losses.binary_cross_entropy:
    y = rng.uniform(0.05, 0.95, (m, k))
    t = (rng.random((m, k)) < 0.5).astype(np.float64)
  elif loss is losses.binary_cross_entropy_with_logits:
    y = rng.standard_normal((m, k)) * 4
    t = rng.random((m, k))
  elif loss is losses.softmax_cross_entropy:
    y = rng.standard_normal((m, k)) * 3
    t = rng.dirichlet(np.ones(k), m)
  else:
    y, t = rng.standard_normal((m, k)), rng.standard_normal((m, k))
  return jnp.asarray(y), jnp.asarray(t)


@pytest.mark.parametrize("name", losses.NAMES)
def test_loss_grad_matches_autodiff(name):
  loss = losses.get(name)
  for seed in range(5):
    y, t = _inputs(loss, seed)
    assert rel_err(loss.grad(y, t), jax.grad(loss.fn)(y, t)) <= 1e-12


def test_losses_average_over_the_batch():
  y, t = _inputs(losses.mse, 0, m=6)
  per_sample = jnp.stack([losses.mse(y[i:i + 1], t[i:i + 1]) for i in range(6)])
  assert float(losses.mse(y, t)) == pytest.approx(float(per_sample.mean()), rel=1e-14)
  # mse is half the summed square error per sample (S0, Nielsen).
  assert float(losses.mse(y[:1], t[:1])) == pytest.approx(0.5 * float(jnp.sum((y[0] - t[0])**2)), rel=1e-14)


def test_softmax_cross_entropy_grad_is_softmax_minus_target_over_m():
  y, t = _inputs(losses.softmax_cross_entropy, 3, m=4)
  np.testing.assert_allclose(losses.softmax_cross_entropy.grad(y, t), (jax.nn.softmax(y) - t) / 4,
                             rtol=1e-13, atol=1e-16)


def test_unknown_loss():
  with pytest.raises(ValueError, match="unknown loss name 'l2'"):
    losses.get("l2")
  with pytest.raises(TypeError, match="loss"):
    losses.get(lambda y, t: 0.0)


PENALTIES = {
    "l1": penalties.l1(0.3),
    "l1_sgn0": penalties.l1(0.3, at_zero=0.0),
    "l2": penalties.l2(0.7),
    "l1_l2": penalties.l1_l2(0.2, 0.05),
}


@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_penalty_grad_matches_autodiff_off_zero(name):
  p = PENALTIES[name]
  x = jax.random.normal(jax.random.key(0), (6, 5))
  assert rel_err(p.grad(x), jax.grad(p.value)(x)) <= 1e-12


def test_penalty_values_use_keras_scaling():
  x = jnp.array([[-2.0, 0.0], [1.0, 3.0]])
  assert float(penalties.l1(0.5).value(x)) == 3.0
  assert float(penalties.l2(0.5).value(x)) == 7.0  # 0.5 * (4 + 1 + 9), no ½
  assert float(penalties.l1_l2(0.5, 0.5).value(x)) == 10.0


def test_l1_subgradient_at_zero_conventions():
  x = jnp.array([-1.0, 0.0, 2.0])
  # Default: +1 at 0, as jax.grad(jnp.abs) and S0.4's 2H(x) − 1.
  np.testing.assert_array_equal(penalties.l1(1.0).grad(x), [-1, 1, 1])
  assert float(jax.grad(lambda v: jnp.abs(v))(0.0)) == 1.0
  # S2.3: sgn(0) = 0.
  np.testing.assert_array_equal(penalties.l1(1.0, at_zero=0.0).grad(x), [-1, 0, 1])


def test_nielsen_l2_scaling_is_expressible():
  lam, n = 5.0, 1000
  w = jax.random.normal(jax.random.key(0), (4, 3))
  p = penalties.l2(lam / (2 * n))
  assert float(p.value(w)) == pytest.approx(lam / (2 * n) * float(jnp.sum(w**2)), rel=1e-14)
  np.testing.assert_allclose(p.grad(w), (lam / n) * w, rtol=1e-14)  # S2.1


@pytest.mark.parametrize("factory,args,arg", [
    (penalties.l1, (-0.1,), "lam"),
    (penalties.l2, (-1.0,), "lam"),
    (penalties.l2, (float("nan"),), "lam"),
    (penalties.l1_l2, (0.1, -0.1), "l2"),
    (penalties.l1_l2, (float("inf"), 0.1), "l1"),
])
def test_negative_or_nonfinite_coefficients(factory, args, arg):
  with pytest.raises(ValueError, match=f"`{arg}` must be a finite number >= 0, got"):
    factory(*args)


def test_bad_coefficient_type_and_subgradient():
  with pytest.raises(TypeError, match="`lam` must be a real number"):
    penalties.l1("0.1")
  with pytest.raises(ValueError, match=r"at_zero.*\[-1, 1\]"):
    penalties.l1(0.1, at_zero=2.0)
