"""jaxreg.tap: identity outside a check, exact ∂L/∂(tapped quantity) inside, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg._checker import tap as _tap


def _loss(p, x):
  z = jaxreg.tap("z", x @ p["w"])
  a = jaxreg.tap("a", jnp.tanh(z))
  return jnp.sum(a ** 2)


def test_tap_is_identity_outside_a_check():
  x = jnp.arange(3.0)
  assert jaxreg.tap("x", x) is x
  assert jaxreg.tap("s", 2.0) == 2.0


def test_tap_adds_nothing_to_the_jaxpr():
  def with_tap(x):
    return jnp.sin(jaxreg.tap("u", x * 2.0))

  def without(x):
    return jnp.sin(x * 2.0)

  a = str(jax.make_jaxpr(with_tap)(1.0))
  b = str(jax.make_jaxpr(without)(1.0))
  assert a == b
  assert str(jax.make_jaxpr(jax.grad(with_tap))(1.0)) == str(jax.make_jaxpr(jax.grad(without))(1.0))


def test_discovery_finds_names_shapes_dtypes_in_call_order():
  p = {"w": jnp.ones((3, 2))}
  out, order, specs = _tap._discover(_loss, p, jnp.ones((4, 3)))
  assert out.shape == ()
  assert order == ["z", "a"]
  assert specs["z"].shape == (4, 2) and specs["z"].dtype == jnp.float64


def test_check_gets_exact_tap_gradients():
  rng = np.random.default_rng(0)
  p = {"w": jnp.asarray(rng.normal(size=(3, 2)))}
  x = jnp.asarray(rng.normal(size=(4, 3)))

  def deriv(p, x):
    z = x @ p["w"]
    a = jnp.tanh(z)
    da = 2 * a
    dz = da * (1 - a ** 2)
    return {"a": da, "z": dz, "params": {"w": x.T @ dz}}

  r = jaxreg.check(deriv, _loss, p, x)
  assert r.ok, str(r)
  assert [row.name for row in r.rows] == ["a", "z", "params['w']"]   # backprop order
  assert all(row.max_rel_err < 1e-14 for row in r.rows)


def test_tapping_a_name_twice_is_a_clear_error():
  def loss(p, x):
    for _ in range(2):
      x = jaxreg.tap("h", jnp.tanh(x * p))
    return jnp.sum(x)

  with pytest.raises(ValueError, match="tapped twice.*'h'|'h'.*tapped twice"):
    jaxreg.check(lambda p, x: p, loss, jnp.array(1.0), jnp.ones(3))


def test_tap_rejects_bad_names_and_non_float_values():
  with pytest.raises(TypeError, match="`name` must be a non-empty str"):
    jaxreg.tap(3, jnp.ones(2))

  def loss(p):
    jaxreg.tap("i", jnp.arange(3))
    return jnp.sum(p)

  with pytest.raises(TypeError, match="'i' must be a floating-point"):
    jaxreg.check(lambda p: p, loss, jnp.ones(2))


def test_context_is_cleaned_up_after_errors():
  def loss(p):
    raise RuntimeError("boom")

  with pytest.raises(RuntimeError, match="boom"):
    jaxreg.check(lambda p: p, loss, jnp.ones(2))
  assert not getattr(_tap._LOCAL, "stack", [])
  x = jnp.ones(2)
  assert jaxreg.tap("x", x) is x
