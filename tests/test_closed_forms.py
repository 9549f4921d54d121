"""Closed forms are verified where they enter: activations and losses against jax.grad at construction;
targets against their loss's domain where data enters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxreg import _activations
from jaxreg import _losses
from jaxreg import activations as acts
from jaxreg import losses

BUILTIN_ACTIVATIONS = [acts.sigmoid, acts.tanh, acts.relu, acts.softplus, acts.gelu, acts.silu,
                       acts.identity, acts.leaky_relu(), acts.leaky_relu(0.3), acts.elu(),
                       acts.elu(0.5), acts.elu(0.0), acts.relu.with_kink_value(1.0),
                       acts.relu.with_kink_value(0.5), acts.leaky_relu(0.01).with_kink_value(0.01)]
BUILTIN_LOSSES = [losses.get(name) for name in losses.NAMES]


# ------------------------------------------------------------ activations
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_builtin_activations_pass_the_construction_check(dtype):
  # The module-level built-ins skip the check at import; this is where they take it.
  for act in BUILTIN_ACTIVATIONS:
    _activations.verify_activation(act, dtype)


def test_wrong_grad_is_refused_naming_the_activation_and_worst_point():
  with pytest.raises(ValueError, match=r"Activation 'cube': its closed-form `grad` disagrees with "
                                       r"jax.grad\(fn\).*Worst at x = .*verify=False"):
    acts.Activation("cube", lambda x: x**3, lambda x: 3 * x)
  # Wrong by a factor only in one branch, and a slip of 1e-4 in a constant: both found.
  with pytest.raises(ValueError, match="'elu_slip'"):
    acts.Activation("elu_slip", jax.nn.elu, lambda x: jnp.where(x > 0, 1.0, 0.5 * jnp.exp(x)),
                    kinks=(0.0,))
  with pytest.raises(ValueError, match="'scaled'"):
    acts.Activation("scaled", lambda x: jnp.sin(x), lambda x: 1.0001 * jnp.cos(x))
  cube = acts.Activation("cube", lambda x: x**3, lambda x: 3 * x**2)
  assert float(cube.grad(jnp.array(2.0))) == 12.0


def test_an_undeclared_kink_is_named_with_the_fix():
  with pytest.raises(ValueError, match=r"Worst at x = 1.0: .*only this point disagrees.*kinks=\(1.0,\)"):
    acts.Activation("shifted_relu", lambda x: jax.nn.relu(x - 1.0), lambda x: (x >= 1.0) * 1.0)
  act = acts.Activation("shifted_relu", lambda x: jax.nn.relu(x - 1.0), lambda x: (x >= 1.0) * 1.0,
                        kinks=(1.0,))
  np.testing.assert_array_equal(act.grad(jnp.array([0.5, 1.0, 1.5])), [0.0, 1.0, 1.0])


@pytest.mark.parametrize("value", [0.0, 0.25, 1.0])
def test_kink_values_between_the_one_sided_derivatives_are_conventions(value):
  assert float(acts.relu.with_kink_value(value).grad(jnp.array(0.0))) == value


@pytest.mark.parametrize("make,value", [
    (lambda: acts.relu.with_kink_value(2.0), r"2.0 \(from `kink_value`\).*0.0 \(left\) and 1.0 \(right\)"),
    (lambda: acts.relu.with_kink_value(-0.1), r"-0.1 \(from `kink_value`\)"),
    (lambda: acts.leaky_relu(0.1).with_kink_value(0.05), r"0.05 \(from `kink_value`\)"),
    (lambda: acts.Activation("absval", jnp.abs, jnp.sign, kinks=(0.0,), kink_value=1.5), r"1.5"),
])
def test_kink_values_outside_them_are_refused(make, value):
  with pytest.raises(ValueError, match=r"at its kink x = 0.0 the derivative is " + value):
    make()


def test_verify_false_opts_out():
  bad = acts.Activation("cube", lambda x: x**3, lambda x: 3 * x, verify=False)
  assert float(bad.grad(jnp.array(2.0))) == 6.0
  # A copy keeps the choice: its kink convention is not checked either.
  loose = acts.Activation("r", jax.nn.relu, lambda x: (x > 0) * 1.0, kinks=(0.0,), verify=False)
  assert float(loose.with_kink_value(3.0).grad(jnp.array(0.0))) == 3.0
  with pytest.raises(TypeError, match="`verify` must be a bool"):
    acts.Activation("cube", lambda x: x**3, lambda x: 3 * x**2, verify="no")


def test_grad_must_be_elementwise():
  with pytest.raises(ValueError, match=r"`grad\(x\)` must return an array of x's shape.*jnp.ones_like"):
    acts.Activation("lin", lambda x: 2 * x, lambda x: 2.0)


def test_nonfinite_grad_where_autodiff_is_finite_is_refused():
  with pytest.raises(ValueError, match=r"'overflow'.*grad\(x\) = nan"):
    acts.Activation("overflow", lambda x: x**2, lambda x: jnp.where(x > 5, jnp.nan, 2 * x))


def test_points_outside_the_domain_are_skipped():
  # sqrt is NaN for x < 0 and its derivative infinite at 0: judged on x > 0 only.
  act = acts.Activation("sqrt", jnp.sqrt, lambda x: 0.5 / jnp.sqrt(x))
  assert float(act.grad(jnp.array(4.0))) == 0.25
  with pytest.raises(ValueError, match="not finite at any probe point"):
    acts.Activation("never", lambda x: jnp.log(-1.0 - x * x), lambda x: x)


def test_factories_are_verified_once_per_parameter():
  assert acts.leaky_relu(0.2) is acts.leaky_relu(0.2)
  assert acts.get("elu") is acts.elu(1.0)


def test_constructing_inside_jit_verifies_eagerly():
  @jax.jit
  def f(x):
    sq = acts.Activation("sq", lambda v: v**2, lambda v: 2 * v)
    return sq.grad(x)

  assert float(f(3.0)) == 6.0
  with pytest.raises(ValueError, match="'sq'"):
    jax.jit(lambda x: acts.Activation("sq", lambda v: v**2, lambda v: v).grad(x))(3.0)


# ------------------------------------------------------------------ losses
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_builtin_losses_pass_the_construction_check(dtype):
  for loss in BUILTIN_LOSSES:
    _losses.verify_loss(loss, dtype)


def _l1(y, t):
  return jnp.sum(jnp.abs(y - t)) / y.shape[0]


def test_wrong_loss_grad_is_refused_naming_the_loss_and_worst_element():
  with pytest.raises(ValueError, match=r"Loss 'l1': .*disagrees with jax.grad\(fn\).*"
                                       r"at y\[\d, \d\] = .* with t\[\d, \d\] = .*verify=False"):
    losses.Loss("l1", _l1, lambda y, t: jnp.sign(y - t))   # the 1/m is missing
  good = losses.Loss("l1", _l1, lambda y, t: jnp.sign(y - t) / y.shape[0])
  assert good.verify and good(jnp.ones((2, 1)), jnp.zeros((2, 1))) == 1.0
  bad = losses.Loss("l1", _l1, lambda y, t: jnp.sign(y - t), verify=False)
  assert float(bad.grad(jnp.ones((2, 1)), jnp.zeros((2, 1)))[0, 0]) == 1.0


def test_a_loss_on_probabilities_is_verified_where_it_is_finite():
  bce = losses.binary_cross_entropy
  losses.Loss("my_bce", bce.fn, bce.grad)
  with pytest.raises(ValueError, match=r"'my_bce'.*Worst on probabilities"):
    losses.Loss("my_bce", bce.fn, lambda a, t: (a - t) / a.shape[0])


def test_loss_shapes():
  with pytest.raises(ValueError, match=r"`fn\(y, t\)` must return a scalar"):
    losses.Loss("sq", lambda y, t: (y - t) ** 2, lambda y, t: 2 * (y - t))
  with pytest.raises(ValueError, match=r"`grad\(y, t\)` must return an array of y's shape"):
    losses.Loss("sum", lambda y, t: jnp.sum(y - t), lambda y, t: jnp.ones(y.shape[0]))


def test_binary_cross_entropy_with_logits():
  bce, logits = losses.binary_cross_entropy, losses.binary_cross_entropy_with_logits
  assert "binary_cross_entropy_with_logits" in losses.NAMES
  assert losses.get("binary_cross_entropy_with_logits") is logits
  z = jnp.array([[-3.0, 0.0, 2.0], [1.0, -0.5, 4.0]])
  t = jnp.array([[0.0, 1.0, 1.0], [0.3, 0.0, 1.0]])
  assert float(logits(z, t)) == pytest.approx(float(bce(jax.nn.sigmoid(z), t)), rel=1e-12)
  np.testing.assert_allclose(logits.grad(z, t), (jax.nn.sigmoid(z) - t) / 2, rtol=1e-15)
  # Stable far into the tails, where σ(z) rounds to 0 or 1 and BCE on it is inf/NaN.
  z = jnp.array([[-800.0, 800.0]])
  t = jnp.array([[1.0, 0.0]])
  assert float(logits(z, t)) == pytest.approx(1600.0, rel=1e-12)
  np.testing.assert_array_equal(logits.grad(z, t), [[-1.0, 1.0]])
  np.testing.assert_array_equal(jax.grad(logits.fn)(z, t), [[-1.0, 1.0]])
  assert not np.isfinite(float(bce(jax.nn.sigmoid(z), t)))


# ----------------------------------------------------------------- targets
@pytest.mark.parametrize("loss,t,match", [
    ("binary_cross_entropy", [[0.0], [1.0], [2.0]],
     r"`t`: binary_cross_entropy needs targets in \[0, 1\].*got t\[2, 0\] = 2.0"),
    ("binary_cross_entropy_with_logits", [[0.5, -0.25]], r"\[0, 1\].*got t\[0, 1\] = -0.25"),
    ("softmax_cross_entropy", [[0.5, 0.5], [0.2, 0.7]], r"each row .* sum to 1.*row t\[1\] summing to 0.8"),
    ("softmax_cross_entropy", [[1.5, -0.5]], r"nonnegative.*got t\[0, 1\] = -0.5"),
    ("softmax_cross_entropy", [0, 2, 1], r"shape \(batch, classes\).*got shape \(3,\).*one_hot"),
    ("mse", [[1.0, np.nan]], r"`t`: targets must be finite, got t\[0, 1\] = nan"),
    (losses.softmax_cross_entropy, [[np.inf, 0.0]], r"finite, got t\[0, 0\] = inf"),
])
def test_targets_outside_the_domain_are_errors_naming_index_and_value(loss, t, match):
  with pytest.raises(ValueError, match=match):
    losses.check_targets(loss, np.asarray(t), argname="t")


@pytest.mark.parametrize("loss,t", [
    ("binary_cross_entropy", np.array([[0.0, 1.0], [0.25, 1.0]])),
    ("binary_cross_entropy_with_logits", np.array([[True], [False]])),
    ("softmax_cross_entropy", jax.nn.one_hot(jnp.arange(5) % 3, 3, dtype=jnp.float32)),
    ("softmax_cross_entropy", np.eye(4, dtype=np.int32)),
    ("softmax_cross_entropy", jax.nn.softmax(jnp.linspace(-3.0, 3.0, 70).reshape(7, 10))),
    ("mse", np.array([[-1e30, 5.0]])),
])
def test_targets_inside_the_domain_pass(loss, t):
  losses.check_targets(loss, t, argname="t")


def test_check_targets_needs_concrete_data_and_names_the_argument():
  with pytest.raises(TypeError, match=r"`val_data\[1\]` must be concrete"):
    jax.jit(lambda t: losses.check_targets("mse", t, argname="val_data[1]"))(jnp.ones((2, 1)))
  with pytest.raises(TypeError, match="real numbers"):
    losses.check_targets("mse", np.array([["a"]]), argname="t")
  with pytest.raises(ValueError, match=r"`val_data\[1\]`: .*\[0, 1\]"):
    losses.check_targets("binary_cross_entropy", np.array([[3.0]]), argname="val_data[1]")
  # A loss of your own: only finiteness is known.
  own = losses.Loss("own", losses.mse.fn, losses.mse.grad)
  losses.check_targets(own, np.array([[7.0]]), argname="t")


# ------------------------------------------------------- no false alarms
@settings(max_examples=25)
@given(coefs=st.lists(st.floats(-2.0, 2.0), min_size=4, max_size=4),
       kink=st.sampled_from([None, -1.0, 0.0, 0.5]), slope=st.floats(0.0, 1.0),
       wrong=st.sampled_from([None, 1e-3, -0.05, 2.0]))
def test_random_closed_forms_pass_exactly_when_right(coefs, kink, slope, wrong):
  """p(x) = Σ c_i xⁱ (+ a hinge of slope `slope` at `kink`) with its exact derivative passes;
  the derivative scaled by (1 + wrong) is refused (when it changes anything)."""
  c0, c1, c2, c3 = coefs
  k = 0.0 if kink is None else kink

  def fn(x):
    p = c0 + c1 * x + c2 * x**2 + 0.1 * c3 * x**3
    return p if kink is None else p + slope * jnp.maximum(x - k, 0.0)

  def grad(x):
    d = c1 + 2 * c2 * x + 0.3 * c3 * x**2
    if kink is not None:
      d = d + slope * (x > k)
    return d if wrong is None else d * (1 + wrong)

  kinks = () if kink is None else (kink,)
  if wrong is None:
    acts.Activation("poly", fn, grad, kinks=kinks)
    return
  changes = any(abs(v) > 1e-6 for v in (c1, c2, c3)) or (kink is not None and slope > 1e-6)
  if changes:
    with pytest.raises(ValueError, match="'poly'"):
      acts.Activation("poly", fn, grad, kinks=kinks)
