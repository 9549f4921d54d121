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


def test_trace_taps_marks_taps_in_the_program_with_stacked_shapes():
  def loss(p, x):
    z = jax.vmap(lambda xi: jaxreg.tap("z", xi @ p["w"]))(x)
    h, _ = jax.lax.scan(lambda c, zi: (jaxreg.tap("h", jnp.tanh(c + zi)), None), jnp.zeros(2), z)
    return jnp.sum(h)

  traced = _tap.trace_taps(loss, {"w": jnp.ones((3, 2))}, jnp.ones((4, 3)))
  assert traced.order == ["z", "h"]
  assert traced.specs["z"].shape == (4, 2) and traced.specs["h"].shape == (4, 2)
  assert not getattr(_tap._LOCAL, "stack", [])
  # outside a check the same loss has no marks at all
  assert "jaxreg_tap" not in str(jax.make_jaxpr(loss)({"w": jnp.ones((3, 2))}, jnp.ones((4, 3))))
  # evaluating the traced program adds eps at the marks and returns the tapped values
  eps = {"h": jnp.ones((4, 2))}
  out, tapped = _tap.call_traced(traced, traced.consts, ({"w": jnp.ones((3, 2))}, jnp.ones((4, 3))),
                                 eps)
  assert set(tapped) == {"z", "h"} and tapped["h"].shape == (4, 2)
  assert jnp.allclose(out, jnp.sum(tapped["h"][-1]) + 2.0)
