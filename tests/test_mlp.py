"""MLP: closed-form backprop equals jax.grad(loss) everywhere; spec, init and bad input.

Relative error used throughout (per parameter leaf, float64)::

    rel(g, r) = max_i |g_i − r_i| / max(max_i |r_i|, 1e-12)

i.e. the worst elementwise error measured against the leaf's own scale, with a
floor of 1e-12 for leaves whose reference gradient is (nearly) zero.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxreg
from jaxreg import activations as acts
from jaxreg import losses
from jaxreg import penalties

# Default kink conventions only: they are JAX's, so backprop equals jax.grad even
# where a pre-activation is exactly 0 (zero biases × dropped inputs make that
# common). Other conventions are tested at their kinks below.
ACTIVATIONS = [acts.sigmoid, acts.tanh, acts.relu, acts.leaky_relu(0.1), acts.elu(0.7), acts.softplus,
               acts.gelu, acts.silu, acts.identity]
LOSSES = [losses.mse, losses.binary_cross_entropy, losses.binary_cross_entropy_with_logits,
          losses.softmax_cross_entropy]
PENALTIES = [None, penalties.l1(0.03), penalties.l2(0.05), penalties.l1_l2(0.02, 0.04)]


@pytest.fixture(scope="module", autouse=True)
def unoptimized_xla():
  """XLA without its optimisation passes: these tests run eagerly, compiling hundreds of tiny
  one-op programs whose optimisation costs more than it saves (numerics are the same ops)."""
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", before)


def rel_err(g, r, floor=1e-12):
  g, r = np.asarray(g), np.asarray(r)
  return float(np.max(np.abs(g - r)) / max(float(np.max(np.abs(r))), floor))


def tree_rel_err(gs, rs):
  assert jax.tree.structure(gs) == jax.tree.structure(rs)
  return max(rel_err(g, r) for g, r in zip(jax.tree.leaves(gs), jax.tree.leaves(rs)))


def _data(model, rng, m):
  """``(x, t)`` for ``model``, drawn with numpy (eager jax.random would compile per shape)."""
  x = rng.standard_normal((m, model.sizes[0]))
  k = model.sizes[-1]
  if model.loss_fn is losses.mse:
    t = rng.standard_normal((m, k))
  elif model.loss_fn in (losses.binary_cross_entropy, losses.binary_cross_entropy_with_logits):
    t = (rng.random((m, k)) < 0.5).astype(np.float64)
  else:
    t = np.eye(k)[rng.integers(0, k, m)]
  return jnp.asarray(x), jnp.asarray(t)


def _params(model, rng):
  """Parameters drawn with numpy in the spirit of ``model.init_scheme`` (zero biases but for
  "nielsen"); eager jax.random would compile per shape. ``MLP.init`` is tested on its own below."""
  params = []
  for n_in, n_out in zip(model.sizes[:-1], model.sizes[1:]):
    w = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / (n_in + n_out))
    b = rng.standard_normal(n_out) if model.init_scheme == "nielsen" else np.zeros(n_out)
    params.append({"w": jnp.asarray(w), "b": jnp.asarray(b)})
  return params


def _masks(model, rng, m, per_sample):
  masks = []
  for i, n_in in enumerate(model.sizes[:-1]):
    p = 0.8 if i == 0 else 0.5
    shape = (m, n_in) if per_sample else (n_in,)
    masks.append(jnp.asarray((rng.random(shape) < p).astype(np.float64) / p))
  return masks


@st.composite
def cases(draw):
  depth = draw(st.integers(1, 4))
  # Few distinct shapes: eager JAX compiles every primitive once per shape. Width 1
  # is the degenerate layer, 3 a general one (unequal to either batch size, and
  # 1×3, 3×1 and 3×3 kernels all occur).
  widths = [draw(st.sampled_from([1, 3])) for _ in range(depth + 2)]
  loss = draw(st.sampled_from(LOSSES))
  hidden = [draw(st.sampled_from(ACTIVATIONS)) for _ in range(depth)]
  if loss is losses.binary_cross_entropy:
    out = acts.sigmoid   # the output must be a probability
  elif loss is losses.binary_cross_entropy_with_logits:
    out = draw(st.sampled_from([a for a in ACTIVATIONS if a is not acts.sigmoid]))
  else:
    out = draw(st.sampled_from(ACTIVATIONS))
  if loss is losses.softmax_cross_entropy:
    widths[-1] = max(widths[-1], 3)
  n = depth + 1
  slot = lambda: [draw(st.sampled_from(PENALTIES)) for _ in range(n)]
  model = jaxreg.MLP(
      widths, hidden + [out], loss=loss,
      kernel_regularizer=slot(), bias_regularizer=slot(), activity_regularizer=slot(),
      activity_on=draw(st.sampled_from(["output", "preactivation"])),
      init=draw(st.sampled_from(jaxreg._mlp.INITS)))
  dropout = draw(st.sampled_from([None, "per_sample", "per_feature"]))
  m = draw(st.sampled_from([1, 5]))
  seed = draw(st.integers(0, 2**31 - 1))
  return model, dropout, m, seed


@settings(max_examples=300)
@given(cases())
def test_backprop_equals_autodiff(case):
  model, dropout, m, seed = case
  rng = np.random.default_rng(seed)
  params = _params(model, rng)
  x, t = _data(model, rng, m)
  masks = None if dropout is None else _masks(model, rng, m, dropout == "per_sample")
  # One closed-form pass gives both; `backprop` is its second half (checked exactly below).
  loss, got = model.loss_and_backprop(params, x, t, dropout_masks=masks)
  ref = jax.grad(model.loss)(params, x, t, dropout_masks=masks)
  assert tree_rel_err(got, ref) <= 1e-12, model
  assert float(loss) == float(model.loss(params, x, t, dropout_masks=masks))


def test_backprop_function_and_method_are_loss_and_backprop_exactly():
  model = jaxreg.MLP((3, 4, 2), ["elu", "sigmoid"], loss="binary_cross_entropy",
                     kernel_regularizer=penalties.l1_l2(0.02, 0.04),
                     activity_regularizer=penalties.l2(0.05))
  params = model.init(jax.random.key(7), jnp.float64)
  rng = np.random.default_rng(7)
  x, t = _data(model, rng, 5)
  masks = _masks(model, rng, 5, True)
  _, want = model.loss_and_backprop(params, x, t, dropout_masks=masks)
  for got in (jaxreg.backprop(model, params, x, t, dropout_masks=masks),
              model.backprop(params, x, t, dropout_masks=masks)):
    assert tree_rel_err(got, want) == 0.0


def s0_model(kink_value=None):
  """S0: Keras Input(124) → Dense(100, activity_regularizer=l1(0.01)) → ReLU → Dense(10), MSE."""
  relu = acts.relu if kink_value is None else acts.relu.with_kink_value(kink_value)
  return jaxreg.MLP((124, 100, 10), [relu, None], loss=losses.mse,
                    activity_regularizer=[penalties.l1(0.01), None], activity_on="preactivation")


def test_s0_keras_model_backprop_equals_autodiff():
  model = s0_model()
  params = model.init(jax.random.key(0), jnp.float64)
  x = jax.random.normal(jax.random.key(1), (32, 124))
  t = jax.random.normal(jax.random.key(2), (32, 10))
  got, ref = model.backprop(params, x, t), jax.grad(model.loss)(params, x, t)
  assert tree_rel_err(got, ref) <= 1e-12
  # S0.2 / S0.4 written out by hand for this batch: δ = (y − t)/m.
  x2 = x @ params[0]["w"] + params[0]["b"]
  x3 = jnp.maximum(x2, 0)
  y = x3 @ params[1]["w"] + params[1]["b"]
  d = (y - t) / 32
  dx2 = (d @ params[1]["w"].T) * (x2 > 0) + 0.01 * jnp.sign(x2) / 32
  np.testing.assert_allclose(got[1]["w"], x3.T @ d, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(got[1]["b"], d.sum(0), rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(got[0]["w"], x.T @ dx2, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(got[0]["b"], dx2.sum(0), rtol=1e-12, atol=1e-15)


def test_kink_convention_exactly_at_zero():
  """Inputs hitting relu's kink exactly: default equals jax.grad; H(0)=1 differs only there."""
  model = s0_model()
  params = model.init(jax.random.key(0), jnp.float64)
  params[0]["b"] = jnp.zeros(100)
  x = jax.random.normal(jax.random.key(1), (4, 124)).at[0].set(0.0)  # row 0: x2 == 0 exactly
  t = jax.random.normal(jax.random.key(2), (4, 10))
  ref = jax.grad(model.loss)(params, x, t)
  assert tree_rel_err(model.backprop(params, x, t), ref) <= 1e-12
  h1 = s0_model(kink_value=1.0).backprop(params, x, t)
  # Row 0 is all zeros, so ∂L/∂A is unchanged; ∂L/∂B picks up row 0's δ·C (and the L1 term's +1/m).
  np.testing.assert_allclose(h1[0]["w"], ref[0]["w"], rtol=1e-12, atol=1e-15)
  assert rel_err(h1[0]["b"], ref[0]["b"]) > 1e-3


def test_other_kink_conventions_equal_autodiff_off_the_kinks():
  model = jaxreg.MLP((5, 6, 6, 2), acts.relu.with_kink_value(1.0),
                     kernel_regularizer=penalties.l1(0.1, at_zero=0.0),
                     activity_regularizer=penalties.l1(0.02, at_zero=-0.5), activity_on="preactivation")
  params = jax.tree.map(lambda p: p + 0.1, model.init(jax.random.key(3), jnp.float64))
  rng = np.random.default_rng(4)
  x, t = _data(model, rng, 9)
  masks = _masks(model, rng, 9, True)
  got = model.backprop(params, x, t, dropout_masks=masks)
  ref = jax.grad(model.loss)(params, x, t, dropout_masks=masks)
  assert tree_rel_err(got, ref) <= 1e-12


def test_float32_backprop_close_to_autodiff():
  model = jaxreg.MLP((8, 16, 16, 3), "tanh", kernel_regularizer=penalties.l2(1e-3))
  params = model.init(jax.random.key(0), jnp.float32)
  x = jax.random.normal(jax.random.key(1), (10, 8), jnp.float32)
  t = jax.random.normal(jax.random.key(2), (10, 3), jnp.float32)
  got = model.backprop(params, x, t)
  assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(got))
  assert tree_rel_err(got, jax.grad(model.loss)(params, x, t)) <= 1e-5


def test_spec_is_static_and_hashable_under_jit():
  a = jaxreg.MLP([3, 4, 2], "relu", kernel_regularizer=penalties.l2(0.1))
  b = jaxreg.MLP((3, 4, 2), acts.relu, kernel_regularizer=penalties.l2(0.1))
  assert a == b and hash(a) == hash(b)
  assert a != jaxreg.MLP((3, 4, 2), "tanh")
  with pytest.raises(AttributeError, match="immutable"):
    a.sizes = (1, 2)
  traces = []

  def step(model, params, x, t):
    traces.append(1)
    return model.backprop(params, x, t)

  f = jax.jit(step, static_argnums=0)
  params = a.init(jax.random.key(0))
  x, t = jnp.ones((5, 3)), jnp.ones((5, 2))
  f(a, params, x, t)
  f(b, params, x + 1, t)
  assert len(traces) == 1


def test_vmap_over_params_and_data():
  model = jaxreg.MLP((3, 5, 2), "tanh")
  keys = jax.random.split(jax.random.key(0), 4)
  params = jax.vmap(model.init)(keys)
  x, t = jnp.ones((4, 6, 3)), jnp.zeros((4, 6, 2))
  got = jax.vmap(model.backprop)(params, x, t)
  ref = jax.vmap(jax.grad(model.loss))(params, x, t)
  assert tree_rel_err(got, ref) <= 1e-12
  assert got[0]["w"].shape == (4, 3, 5)


def test_single_activation_applies_to_hidden_layers_only():
  model = jaxreg.MLP((2, 3, 3, 1), "relu", kernel_regularizer=penalties.l2(0.1))
  assert model.activations == (acts.relu, acts.relu, acts.identity)
  assert model.kernel_regularizers == (penalties.l2(0.1),) * 3
  assert model.bias_regularizers == (None, None, None)


def test_init_schemes():
  for scheme in jaxreg._mlp.INITS:
    model = jaxreg.MLP((400, 300, 10), "relu", init=scheme)
    p = model.init(jax.random.key(0), jnp.float64)
    assert [l["w"].shape for l in p] == [(400, 300), (300, 10)]
    assert [l["b"].shape for l in p] == [(300,), (10,)]
    w = np.asarray(p[0]["w"])
    if scheme == "glorot_uniform":
      lim = np.sqrt(6 / 700)
      assert np.abs(w).max() <= lim and np.abs(w).max() > 0.99 * lim
      assert not np.any(np.asarray(p[0]["b"]))
    elif scheme == "he_normal":
      assert w.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
      assert np.abs(w).max() <= 2 * np.sqrt(2 / 400) / 0.8796 + 1e-12
    else:
      assert w.std() == pytest.approx(np.sqrt(1 / 400), rel=0.02)
      assert np.asarray(p[0]["b"]).std() == pytest.approx(1.0, rel=0.2)
  assert jaxreg.MLP((2, 2), None).init(jax.random.key(0), jnp.float32)[0]["w"].dtype == jnp.float32
  assert jaxreg.MLP((2, 2), None).num_params() == 6


# ----------------------------------------------------------------- bad input
NET = jaxreg.MLP((3, 4, 2), "relu")
P = NET.init(jax.random.key(0))
X, T = jnp.ones((5, 3)), jnp.ones((5, 2))


@pytest.mark.parametrize("call,match", [
    (lambda: NET.loss(P, jnp.ones((5, 4)), T), r"`x` must have shape \(batch, 3\), got \(5, 4\)"),
    (lambda: NET.loss(P, jnp.ones(3), T), r"`x` must have shape \(batch, 3\), got \(3,\).*x\[None, :\]"),
    (lambda: NET.backprop(P, X, jnp.ones((5, 1))), r"`t` must have shape \(5, 2\) like the output, got \(5, 1\)"),
    (lambda: NET.backprop(P, X, jnp.ones((2,))), r"`t` must have shape \(5, 2\)"),
    (lambda: NET.apply(P[:1], X), r"`params` has 1 layers but the MLP with sizes \(3, 4, 2\) has 2"),
    (lambda: NET.apply([P[0], {"w": P[1]["w"].T, "b": P[1]["b"]}], X),
     r"`params\[1\]\['w'\]` must have shape \(4, 2\), got \(2, 4\)"),
    (lambda: NET.apply([P[0], {"w": P[1]["w"]}], X), r"`params\[1\]` must be a dict with keys"),
    (lambda: NET.apply(P, X, dropout_masks=[jnp.ones((5, 4)), None]),
     r"`dropout_masks\[0\]` must have shape \(5, 3\) \(per sample\) or \(3,\) \(per feature\), got \(5, 4\)"),
    (lambda: NET.apply(P, X, dropout_masks=[None]), r"`dropout_masks` must be a sequence of 2 keep-masks"),
])
def test_shape_errors_name_the_argument(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_softmax_labels_hint():
  net = jaxreg.MLP((3, 4), None, loss="softmax_cross_entropy")
  p = net.init(jax.random.key(0))
  with pytest.raises(ValueError, match=r"one-hot.*jax.nn.one_hot\(t, 4\)"):
    net.loss(p, X, jnp.zeros((5,), jnp.int32))


def test_shape_errors_happen_at_trace_time_under_jit():
  with pytest.raises(ValueError, match="`x` must have shape"):
    jax.jit(NET.loss)(P, jnp.ones((5, 4)), T)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(sizes=(3,), activation="relu"), ValueError, "at least an input and an output"),
    (dict(sizes=(3, 0, 1), activation="relu"), ValueError, r"`sizes\[1\]` must be a positive int, got 0"),
    (dict(sizes=(3, 2.5, 1), activation="relu"), ValueError, r"`sizes\[1\]`"),
    (dict(sizes="32", activation="relu"), TypeError, "`sizes` must be a sequence"),
    (dict(sizes=(3, 4, 1), activation=["relu"]), ValueError,
     r"`activation` as a sequence needs one entry per dense layer \(len\(sizes\) - 1 = 2\), got 1"),
    (dict(sizes=(3, 4, 1), activation="relu", kernel_regularizer=[None]), ValueError, "kernel_regularizer"),
    (dict(sizes=(3, 4, 1), activation="relu", bias_regularizer=0.1), TypeError,
     r"`bias_regularizer` must be a jaxreg Penalty"),
    (dict(sizes=(3, 4, 1), activation="relu", activity_on="input"), ValueError, "`activity_on` must be one of"),
    (dict(sizes=(3, 4, 1), activation="relu", init="xavier"), ValueError, "`init` must be one of"),
    (dict(sizes=(3, 4, 1), activation="relu", loss="hinge"), ValueError, "unknown loss name 'hinge'"),
])
def test_spec_errors(kwargs, exc, match):
  with pytest.raises(exc, match=match):
    jaxreg.MLP(kwargs.pop("sizes"), kwargs.pop("activation"), **kwargs)


def test_backprop_function_refuses_non_mlp():
  with pytest.raises(TypeError, match="`model` must be a jaxreg.MLP"):
    jaxreg.backprop("mlp", P, X, T)


def test_binary_cross_entropy_needs_an_output_into_the_unit_interval():
  # A single activation leaves the output layer linear: log of values outside (0, 1) is NaN.
  with pytest.raises(ValueError, match=r"binary_cross_entropy.*\(0, 1\).*got identity.*"
                                       r"binary_cross_entropy_with_logits.*one per dense layer"):
    jaxreg.MLP((3, 4, 1), "sigmoid", loss="binary_cross_entropy")
  with pytest.raises(ValueError, match=r"got tanh.*with_logits"):
    jaxreg.MLP((3, 4, 1), ["relu", "tanh"], loss="binary_cross_entropy")
  net = jaxreg.MLP((3, 4, 1), ["relu", "sigmoid"], loss="binary_cross_entropy")
  assert net.activations[-1] is acts.sigmoid
  # An activation of your own is judged by its values: into (0, 1) passes, onto [0, 1] does not.
  half_tanh = acts.Activation("half_tanh", lambda x: 0.5 + 0.5 * jnp.tanh(x),
                              lambda x: 0.5 * (1 - jnp.tanh(x) ** 2))
  jaxreg.MLP((3, 1), [half_tanh], loss="binary_cross_entropy")
  hard = acts.Activation("hard_sigmoid", lambda x: jnp.clip(0.2 * x + 0.5, 0.0, 1.0),
                         lambda x: jnp.where(jnp.abs(x) < 2.5, 0.2, 0.0), kinks=(-2.5, 2.5))
  with pytest.raises(ValueError, match="got hard_sigmoid"):
    jaxreg.MLP((3, 1), [hard], loss="binary_cross_entropy")
  # Logits after a sigmoid: σ(σ(z)) > 1/2, a target of 0 can never be fit.
  with pytest.raises(ValueError, match=r"takes logits.*sigmoid already maps into \(0, 1\)"):
    jaxreg.MLP((3, 4, 1), ["relu", "sigmoid"], loss="binary_cross_entropy_with_logits")


def test_binary_cross_entropy_with_logits_on_a_linear_output():
  net = jaxreg.MLP((3, 4, 2), "tanh", loss="binary_cross_entropy_with_logits")
  params = net.init(jax.random.key(0), jnp.float64)
  params[-1]["w"] = params[-1]["w"] * 200.0   # logits far into both tails
  x = jax.random.normal(jax.random.key(1), (6, 3))
  t = jax.random.bernoulli(jax.random.key(2), 0.5, (6, 2)).astype(x.dtype)
  loss, got = net.loss_and_backprop(params, x, t)
  assert np.isfinite(float(loss)) and float(loss) > 1.0
  assert tree_rel_err(got, jax.grad(net.loss)(params, x, t)) <= 1e-12
  # The same loss as binary_cross_entropy after a sigmoid, where that one is finite.
  params[-1]["w"] = params[-1]["w"] / 200.0
  sig = jaxreg.MLP((3, 4, 2), ["tanh", "sigmoid"], loss="binary_cross_entropy")
  assert float(net.loss(params, x, t)) == pytest.approx(float(sig.loss(params, x, t)), rel=1e-12)
