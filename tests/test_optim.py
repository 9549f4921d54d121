"""jaxreg.optim against NumPy re-implementations of Nielsen's update rules (S2.2, S2.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg import optim

# ---------------------------------------------------------------- NumPy reference
# network2.py's conventions: column vectors, weights (n_out, n_in), sigmoid
# everywhere, cross-entropy cost whose output delta is (a − y).


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _np_backprop(weights, biases, x, y):
  """network2.py's backprop for one sample: (nabla_b, nabla_w) of C_x."""
  activation, activations, zs = x, [x], []
  for b, w in zip(biases, weights):
    z = w @ activation + b
    zs.append(z)
    activation = _sigmoid(z)
    activations.append(activation)
  delta = activations[-1] - y                       # CrossEntropyCost.delta
  nabla_b = [None] * len(biases)
  nabla_w = [None] * len(weights)
  nabla_b[-1], nabla_w[-1] = delta, delta @ activations[-2].T
  for l in range(2, len(weights) + 1):
    sp = _sigmoid(zs[-l]) * (1 - _sigmoid(zs[-l]))
    delta = (weights[-l + 1].T @ delta) * sp
    nabla_b[-l], nabla_w[-l] = delta, delta @ activations[-l - 1].T
  return nabla_b, nabla_w


def _np_update_mini_batch(weights, biases, mini_batch, eta, lmbda, n, *, l1=False):
  """S2.2's update_mini_batch (L2), or with ``l1=True`` S2.3's L1 sign rule."""
  nabla_b = [np.zeros_like(b) for b in biases]
  nabla_w = [np.zeros_like(w) for w in weights]
  for x, y in mini_batch:
    dnb, dnw = _np_backprop(weights, biases, x, y)
    nabla_b = [nb + d for nb, d in zip(nabla_b, dnb)]
    nabla_w = [nw + d for nw, d in zip(nabla_w, dnw)]
  m = len(mini_batch)
  if l1:
    weights = [w - (eta * lmbda / n) * np.sign(w) - (eta / m) * nw
               for w, nw in zip(weights, nabla_w)]
  else:
    weights = [(1 - eta * lmbda / n) * w - (eta / m) * nw for w, nw in zip(weights, nabla_w)]
  biases = [b - (eta / m) * nb for b, nb in zip(biases, nabla_b)]
  return weights, biases


# ---------------------------------------------------------------- fixtures
SIZES = (5, 7, 4, 3)
NET = jaxreg.MLP(SIZES, ["sigmoid"] * 3, loss="binary_cross_entropy", init="nielsen")


def _problem(seed=0, m=6):
  rng = np.random.default_rng(seed)
  params = NET.init(jax.random.key(seed), jnp.float64)
  x = rng.normal(size=(m, SIZES[0]))
  t = rng.uniform(size=(m, SIZES[-1]))
  return params, x, t


def _to_nielsen(params):
  return ([np.asarray(p["w"]).T.copy() for p in params],
          [np.asarray(p["b"])[:, None].copy() for p in params])


def _one_step(tx, params, x, t):
  grads = NET.backprop(params, jnp.asarray(x), jnp.asarray(t))
  updates, _ = tx.update(grads, tx.init(params), params)
  return optax.apply_updates(params, updates)


def _check_against_nielsen(new, weights, biases):
  for p, w, b in zip(new, weights, biases):
    np.testing.assert_allclose(np.asarray(p["w"]), w.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(p["b"]), b[:, 0], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- tests
def test_sgd_weight_decay_step_equals_nielsen_update_mini_batch():
  params, x, t = _problem()
  eta, lmbda, n = 0.5, 5.0, 50
  new = _one_step(optim.sgd_weight_decay(eta, lmbda / n), params, x, t)
  weights, biases = _to_nielsen(params)
  mini_batch = [(xi[:, None], ti[:, None]) for xi, ti in zip(x, t)]
  w2, b2 = _np_update_mini_batch(weights, biases, mini_batch, eta, lmbda, n)
  _check_against_nielsen(new, w2, b2)
  # Decay really acts on the weights (not a vacuous comparison) and not on biases:
  w_nodecay, b_nodecay = _np_update_mini_batch(weights, biases, mini_batch, eta, 0.0, n)
  assert np.abs(w2[0] - w_nodecay[0]).max() > 1e-3
  for b_d, b_0 in zip(b2, b_nodecay):
    np.testing.assert_array_equal(b_d, b_0)


def test_sgd_weight_decay_mask_none_decays_biases_too():
  params, x, t = _problem(1)
  zero = jax.tree.map(jnp.zeros_like, params)
  tx = optim.sgd_weight_decay(0.1, 0.2, mask=None)
  updates, _ = tx.update(zero, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  for p, q in zip(params, new):
    np.testing.assert_allclose(q["b"], 0.98 * p["b"], rtol=1e-15)
    np.testing.assert_allclose(q["w"], 0.98 * p["w"], rtol=1e-15)


def test_l1_sign_step_equals_nielsen_l1_rule_with_sgn0_eq_0():
  params, x, t = _problem(2)
  params[0]["w"] = params[0]["w"].at[0, :3].set(0.0)  # sgn(0) = 0: these move by the data gradient only
  eta, lmbda, n = 0.3, 4.0, 40
  tx = optax.chain(optim.l1_sign(lmbda / n), optax.sgd(eta))
  new = _one_step(tx, params, x, t)
  weights, biases = _to_nielsen(params)
  mini_batch = [(xi[:, None], ti[:, None]) for xi, ti in zip(x, t)]
  w2, b2 = _np_update_mini_batch(weights, biases, mini_batch, eta, lmbda, n, l1=True)
  _check_against_nielsen(new, w2, b2)
  plain = _one_step(optax.sgd(eta), params, x, t)
  np.testing.assert_array_equal(new[0]["w"][0, :3], plain[0]["w"][0, :3])
  assert np.abs(np.asarray(new[0]["w"][1:] - plain[0]["w"][1:])).min() > 0.99 * eta * lmbda / n
  for p, q in zip(new, plain):
    np.testing.assert_array_equal(p["b"], q["b"])


def test_sign_rule_oscillates_where_proximal_rule_reaches_exact_zero():
  # A weight with no data gradient: the sign rule overshoots 0 forever; the
  # proximal rule lands on 0 exactly and stays there.
  params = [{"w": jnp.array([[0.25, -1.0]]), "b": jnp.array([0.25, 0.0])}]
  zero = jax.tree.map(jnp.zeros_like, params)
  sign = optax.chain(optim.l1_sign(0.1), optax.sgd(1.0))
  prox = optax.chain(optax.sgd(1.0), optim.l1_proximal(0.1, 1.0))
  ps, pp, traj = params, params, []
  for _ in range(12):
    ps = optax.apply_updates(ps, sign.update(zero, sign.init(ps), ps)[0])
    pp = optax.apply_updates(pp, prox.update(zero, prox.init(pp), pp)[0])
    traj.append(float(ps[0]["w"][0, 0]))
  assert min(abs(v) for v in traj) > 0.01 and {np.sign(v) for v in traj[-4:]} == {-1.0, 1.0}
  assert pp[0]["w"][0, 0] == 0.0                      # exactly
  assert pp[0]["w"][0, 1] == 0.0 and ps[0]["w"][0, 1] != 0.0  # 10 steps of 0.1 from -1
  np.testing.assert_array_equal(pp[0]["b"], params[0]["b"])  # kernels_only: biases untouched


def test_l1_proximal_equals_soft_thresholding_of_the_sgd_step():
  params, x, t = _problem(3)
  eta, lam = 0.4, 0.05
  new = _one_step(optax.chain(optax.sgd(eta), optim.l1_proximal(lam, eta)), params, x, t)
  plain = _one_step(optax.sgd(eta), params, x, t)
  for p, q in zip(new, plain):
    v = np.asarray(q["w"])
    np.testing.assert_allclose(p["w"], np.sign(v) * np.maximum(np.abs(v) - eta * lam, 0), atol=1e-15)
    np.testing.assert_array_equal(p["b"], q["b"])


def test_kernels_only_marks_matrices():
  params = NET.init(jax.random.key(0))
  assert optim.kernels_only(params) == [{"w": True, "b": False}] * 3


@pytest.mark.parametrize("factory, kwargs, argname", [
    (optim.sgd_weight_decay, dict(learning_rate=-0.1, weight_decay=0.0), "learning_rate"),
    (optim.sgd_weight_decay, dict(learning_rate=0.1, weight_decay=float("nan")), "weight_decay"),
    (optim.l1_sign, dict(strength=-1.0), "strength"),
    (optim.l1_proximal, dict(strength=0.1, learning_rate=float("inf")), "learning_rate"),
])
def test_bad_hyperparameters_name_the_argument(factory, kwargs, argname):
  with pytest.raises(ValueError, match=f"`{argname}`"):
    factory(**kwargs)


def test_bad_hyperparameter_type():
  with pytest.raises(TypeError, match="`strength` must be a real number"):
    optim.l1_sign("0.1")


def test_traced_hyperparameters_build_inside_jit():
  params, x, t = _problem(4)
  grads = NET.backprop(params, jnp.asarray(x), jnp.asarray(t))

  @jax.jit
  def step(lr, wd, l1):
    tx = optax.chain(optax.add_decayed_weights(wd, optim.kernels_only), optim.l1_sign(l1),
                     optax.sgd(lr))
    return optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])

  got = step(jnp.asarray(0.2), jnp.asarray(0.01), jnp.asarray(0.003))
  tx = optax.chain(optax.add_decayed_weights(0.01, optim.kernels_only), optim.l1_sign(0.003),
                   optax.sgd(0.2))
  want = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-14)
