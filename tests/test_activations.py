"""Each activation's closed-form grad equals jax.grad(fn) away from kinks, and its convention at kinks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg import activations as acts

ALL = {
    "sigmoid": acts.sigmoid,
    "tanh": acts.tanh,
    "relu": acts.relu,
    "leaky_relu": acts.leaky_relu(),
    "leaky_relu_0.3": acts.leaky_relu(0.3),
    "elu": acts.elu(),
    "elu_0.5": acts.elu(0.5),
    "softplus": acts.softplus,
    "gelu": acts.gelu,
    "silu": acts.silu,
    "identity": acts.identity,
}


def rel_err(a, b, floor=1e-12):
  """max_i |a_i − b_i| / max(max_i |b_i|, floor): the suite's relative error."""
  a, b = np.asarray(a), np.asarray(b)
  return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor))


@pytest.mark.parametrize("name", sorted(ALL))
def test_grad_matches_autodiff_away_from_kinks(name):
  act = ALL[name]
  x = jnp.concatenate([jnp.linspace(-8.0, 8.0, 1601), jax.random.normal(jax.random.key(1), (500,)) * 3])
  x = x[jnp.abs(x) > 1e-9]  # keep off the kink at 0
  ref = jax.vmap(jax.grad(act.fn))(x)
  got = act.grad(x)
  assert got.dtype == x.dtype == jnp.float64
  assert got.shape == x.shape
  # Elementwise relative error with a scale floor: |got − ref| / max(|ref|, 1e-3).
  # These derivatives are O(1); the floor only matters in the tails where
  # f' < 1e-3 is itself a cancellation (1 ± tanh(x), expm1(x) + 1) whose
  # relative precision is bounded by one ulp of the forward value, for
  # autodiff and closed form alike.
  err = np.abs(np.asarray(got) - np.asarray(ref)) / np.maximum(np.abs(np.asarray(ref)), 1e-3)
  assert err.max() <= 1e-12, (name, err.max(), x[np.argmax(err)])


@pytest.mark.parametrize("name", sorted(ALL))
def test_default_kink_value_is_jax_autodiffs(name):
  act = ALL[name]
  for k in act.kinks:
    assert float(act.grad(jnp.array(k))) == float(jax.grad(act.fn)(jnp.array(k))), name


def test_declared_kinks():
  assert acts.relu.kinks == (0.0,)
  assert acts.leaky_relu(0.1).kinks == (0.0,)
  assert acts.sigmoid.kinks == () and acts.gelu.kinks == () and acts.identity.kinks == ()


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_with_kink_value_sets_the_convention_only_at_the_kink(value):
  r = acts.relu.with_kink_value(value)
  x = jnp.array([-2.0, -1e-300, 0.0, 1e-300, 3.0])
  np.testing.assert_array_equal(r.grad(x), [0.0, 0.0, value, 1.0, 1.0])
  np.testing.assert_array_equal(r.fn(x), acts.relu.fn(x))


def test_seed_conventions():
  x = jnp.array([-1.0, 0.0, 1.0])
  # S0: H(0) = 1.
  np.testing.assert_array_equal(acts.relu.with_kink_value(1.0).grad(x), [0, 1, 1])
  # S1.3: relu'(0) = 0 (the default, as jax.nn.relu).
  np.testing.assert_array_equal(acts.relu.grad(x), [0, 0, 1])
  # S1.4: leaky'(0) = alpha; S0.5: leaky'(0) = 1 (default).
  np.testing.assert_allclose(acts.leaky_relu(0.01).with_kink_value(0.01).grad(x), [0.01, 0.01, 1])
  np.testing.assert_allclose(acts.leaky_relu(0.01).grad(x), [0.01, 1, 1])
  # jnp.maximum(0, x) differentiates to 1/2 at 0.
  half = acts.relu.with_kink_value(0.5)
  assert float(half.grad(jnp.array(0.0))) == float(jax.grad(lambda v: jnp.maximum(0.0, v))(0.0))


def test_sigmoid_derivative_max_is_quarter_at_zero():  # S1.1
  x = jnp.linspace(-5, 5, 10001)
  g = acts.sigmoid.grad(x)
  assert float(g.max()) == pytest.approx(0.25, abs=1e-15)
  assert float(x[jnp.argmax(g)]) == pytest.approx(0.0, abs=1e-12)


def test_tanh_derivative_identity():  # S1.2: 1 − tanh² = 4/(eˣ + e⁻ˣ)²
  x = jnp.linspace(-5, 5, 1001)
  np.testing.assert_allclose(acts.tanh.grad(x), 4 / (jnp.exp(x) + jnp.exp(-x)) ** 2, rtol=1e-11)


def test_float32_preserved():
  x = jnp.linspace(-3, 3, 11, dtype=jnp.float32)
  for act in ALL.values():
    assert act.grad(x).dtype == jnp.float32, act
    assert act(x).dtype == jnp.float32, act


def test_smooth_activation_refuses_kink_value():
  with pytest.raises(ValueError, match="no kink"):
    acts.sigmoid.with_kink_value(0.0)


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 2.0, float("nan"), float("inf")])
def test_leaky_relu_alpha_out_of_range(alpha):
  with pytest.raises(ValueError, match="alpha"):
    acts.leaky_relu(alpha)


def test_leaky_relu_alpha_type():
  with pytest.raises(TypeError, match="alpha"):
    acts.leaky_relu("0.1")


def test_elu_negative_alpha():
  with pytest.raises(ValueError, match="alpha.*>= 0"):
    acts.elu(-1.0)


def test_names_resolve():
  assert acts.get("relu") is acts.relu
  assert acts.get("leaky_relu") == acts.leaky_relu(0.01)
  assert acts.get(acts.leaky_relu) == acts.leaky_relu()
  assert acts.get(None) is acts.identity
  assert acts.get("linear") is acts.identity


def test_unknown_name_is_a_value_error_listing_the_names():
  with pytest.raises(ValueError, match=r"unknown activation name 'rellu'.*'relu'"):
    acts.get("rellu")
  with pytest.raises(ValueError, match=r"activation.*'swishy'"):
    jaxreg.MLP((2, 3, 1), "swishy")


def test_not_an_activation_is_a_type_error():
  with pytest.raises(TypeError, match="activation"):
    acts.get(3.0)
  with pytest.raises(TypeError, match="activation"):
    jaxreg.MLP((2, 3, 1), jnp.tanh)


def test_equality_and_hash_by_value_for_builtins():
  assert acts.leaky_relu(0.1) == acts.leaky_relu(0.1)
  assert hash(acts.leaky_relu(0.1)) == hash(acts.leaky_relu(0.1))
  assert acts.leaky_relu(0.1) != acts.leaky_relu(0.2)
  assert acts.relu != acts.relu.with_kink_value(1.0)
  assert repr(acts.relu) == "relu"
  assert repr(acts.relu.with_kink_value(1.0)) == "relu.with_kink_value(1.0)"


def test_user_defined_activation():
  cube = acts.Activation("cube", lambda x: x**3, lambda x: 3 * x**2)
  x = jnp.linspace(-2, 2, 9)
  np.testing.assert_allclose(cube.grad(x), jax.vmap(jax.grad(cube.fn))(x), rtol=1e-14)
  net = jaxreg.MLP((3, 4, 2), cube)
  assert net.activations[0] is cube
  with pytest.raises(TypeError, match="grad"):
    acts.Activation("bad", lambda x: x, None)
