"""S3 — deriving backprop through ReLU, a Q&A (seeds/003_…txt).

    jaxreg check derivations/s3_relu_backprop.py

Kink convention of the answer: ``ReLU'(x) = 0 if x < 0, 1 otherwise`` (so
``Step(0) = 1``); S3.4 says 0 or ½ would do as well. ``jax.nn.relu``
differentiates to 0 at 0, so ``Step(0) = 1`` and ½ come out ``kink`` on
inputs that hit 0 exactly, ``Step(0) = 0`` comes out ``ok``.

Batched: rows are samples; a layer is ``z = r @ W`` (the answer's
``z_j = Σ_i W_ij r_i``, no biases).
"""

import functools

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxreg  # noqa: E402

CMD = "jaxreg check derivations/s3_relu_backprop.py"
relu_answer = jaxreg.activations.relu.with_kink_value(1.0)   # Step(0) = 1, the answer's


def step(z):
  """The answer's Step: 0 for z < 0, 1 otherwise."""
  return relu_answer.grad(z)


# ----------------------------------------------------------------- S3.1 single neuron
def s3_1_loss(p, x, y):
  z = jaxreg.tap("z", x @ p["W"])
  yhat = jaxreg.tap("yhat", jax.nn.relu(z))
  return 0.5 * jnp.sum((y - yhat) ** 2)


def s3_1_derivation(p, x, y):
  z = x @ p["W"]
  d_yhat = jax.nn.relu(z) - y                  # ∂C/∂ŷ = ŷ − y
  d_z = (jax.nn.relu(z) - y) * step(z)         # ∂C/∂z = (ReLU(z) − y)·Step(z)
  return {"yhat": d_yhat, "z": d_z,
          "params": {"W": x.T @ d_z}}          # ∂C/∂W = (ReLU(Wx) − y)·Step(Wx)·x


def s3_1_data():
  rng = np.random.default_rng(0)
  return ({"W": jnp.asarray(rng.normal(size=3))}, jnp.asarray(rng.normal(size=(8, 3))),
          jnp.asarray(rng.normal(size=8)))


# ----------------------------------------------------------------- S3.2 the asker's chain
# One neuron per layer, scalar weights, w1 at the output (the asker's numbering):
#   1 layer: ŷ = ReLU(w1 x);  2 layers: ŷ = ReLU(w1 ReLU(w2 x));  3 layers: ŷ = ReLU(w1 ReLU(w2 ReLU(w3 x))).
# Tapped: z_l = w_l r_{l+1} (r_{L+1} = x), r_l = ReLU(z_l), ŷ = r_1.
# ``p`` holds the weight(s) being derived; the other weights are passed in ``fixed``.

def chain_loss(p, x, y, fixed):
  w = {**fixed, **p}
  layers = len(w)
  r = x
  for l in range(layers, 0, -1):
    z = jaxreg.tap(f"z{l}", w[f"w{l}"] * r)
    r = jaxreg.tap("yhat" if l == 1 else f"r{l}", jax.nn.relu(z))
  return 0.5 * jnp.sum((y - r) ** 2)


def _forward(w, x):
  r = x
  for l in range(len(w), 0, -1):
    r = jax.nn.relu(w[f"w{l}"] * r)
  return r


def asker(p, x, y, fixed, sign_fixed=False):
  """The asker's derivation of dC/dw_L for the deepest weight w_L, step by step.

  dC/dR = y − ŷ (as written; ``sign_fixed``: ŷ − y), and every ReLU treated as
  the identity ("since ReLU(w1 ReLU(w2 x)) = w1 w2 x"), so each dR/dz is 1 and
  each dz_l/dr_{l+1} is w_l:
      1 layer:  dC/dw1 = (y − ReLU(w1 x))·x
      2 layers: dC/dw2 = (y − ReLU(w1 ReLU(w2 x)))·(w1 x)
      3 layers: dC/dw3 = (y − ReLU(w1 ReLU(w2 ReLU(w3 x))))·(w1 w2 x)
  """
  w = {**fixed, **p}
  layers = len(w)
  yhat = _forward(w, x)
  g = (yhat - y) if sign_fixed else (y - yhat)
  steps = {"yhat": g}
  for l in range(1, layers + 1):
    steps[f"z{l}"] = g                       # dR/dz taken as 1 (no Step factor)
    if l < layers:
      g = g * w[f"w{l}"]                     # dz_l/dr_{l+1} = w_l
      steps[f"r{l + 1}"] = g
  steps["params"] = {f"w{layers}": jnp.sum(g * x)}   # dz_L/dw_L = x
  return steps


def asker_all_three(p, x, y, fixed):
  """The asker's update of all three weights of the 3-layer chain, as written:
      dC/dw1 = (y − ReLU(w1 x))·(x)
      dC/dw2 = (y − ReLU(w1 ReLU(w2 x)))·(w1 x)
      dC/dw3 = (y − ReLU(w1 ReLU(w2 ReLU(w3 x))))·(w1 w2 x)
  """
  w1, w2, w3 = p["w1"], p["w2"], p["w3"]
  return {"w1": jnp.sum((y - jax.nn.relu(w1 * x)) * x),
          "w2": jnp.sum((y - jax.nn.relu(w1 * jax.nn.relu(w2 * x))) * (w1 * x)),
          "w3": jnp.sum((y - jax.nn.relu(w1 * jax.nn.relu(w2 * jax.nn.relu(w3 * x))))
                        * (w1 * w2 * x))}


def chain_correct(p, x, y, fixed):
  """S3.3's equations (1)–(3) on the chain: the answer's derivation."""
  w = {**fixed, **p}
  layers = len(w)
  rs, zs = {layers + 1: x}, {}
  for l in range(layers, 0, -1):
    zs[l] = w[f"w{l}"] * rs[l + 1]
    rs[l] = jax.nn.relu(zs[l])
  g = rs[1] - y
  steps, grads = {"yhat": g}, {}
  for l in range(1, layers + 1):
    g = g * step(zs[l])                      # (1)
    steps[f"z{l}"] = g
    grads[f"w{l}"] = jnp.sum(g * rs[l + 1])  # (3)
    if l < layers:
      g = g * w[f"w{l}"]                     # (2)
      steps[f"r{l + 1}"] = g
  steps["params"] = {k: grads[k] for k in p}
  return steps


X_POSITIVE = np.array([0.5, 1.2, 2.0, 0.8, 1.5, 0.3])     # the asker's assumption x > 0
X_MIXED = np.array([1.5, -0.7, 0.3, -2.0, 0.9, 1.1])      # inputs of both signs
Y = np.array([0.4, 0.2, -0.3, 0.1, 1.0, 0.5])
W = {"w1": 0.8, "w2": 1.3, "w3": 0.6}


def chain_data(layers, x=X_POSITIVE, all_weights=False):
  """(params, x, y, fixed): params = the deepest weight (or all), fixed = the others."""
  w = {k: jnp.asarray(v) for k, v in W.items() if int(k[1]) <= layers}
  deepest = f"w{layers}"
  if all_weights:
    return w, jnp.asarray(x), jnp.asarray(Y), {}
  return ({deepest: w[deepest]}, jnp.asarray(x), jnp.asarray(Y),
          {k: v for k, v in w.items() if k != deepest})


def _check_chain(derivation, layers, x=X_POSITIVE, all_weights=False, **kw):
  p, x, y, fixed = chain_data(layers, x, all_weights)
  return jaxreg.check(functools.partial(derivation, **kw) if kw else derivation,
                      chain_loss, p, x, y, fixed)


# ----------------------------------------------------------------- S3.3 general layer equations
def net_loss(p, x, y, act=relu_answer):
  """z_{k+1} = r_k @ W_k, r_{k+1} = act(z_{k+1}); C = ½ Σ (y − r_L)²; r_0 = x."""
  r = x
  for k, w in enumerate(p):
    z = jaxreg.tap(f"z{k + 1}", r @ w)
    r = jaxreg.tap(f"r{k + 1}", act(z))
  return 0.5 * jnp.sum((y - r) ** 2)


def net_equations(p, x, y, act=relu_answer):
  """The answer's three equations, layer by layer from the output:
      (1) ∂C/∂z_j = ∂C/∂r_j · f'(z_j)
      (2) ∂C/∂r_i = Σ_j ∂C/∂z_j · W_ij
      (3) ∂C/∂W_ij = ∂C/∂z_j · r_i
  with ∂C/∂r = r − y at the output. f' = act.grad enters only in (1)."""
  rs, zs = [x], []
  for w in p:
    zs.append(rs[-1] @ w)
    rs.append(act(zs[-1]))
  n = len(p)
  d_r = rs[-1] - y
  steps, grads = {}, [None] * n
  for k in range(n, 0, -1):
    steps[f"r{k}"] = d_r
    d_z = d_r * act.grad(zs[k - 1])          # (1)
    steps[f"z{k}"] = d_z
    grads[k - 1] = rs[k - 1].T @ d_z         # (3)
    d_r = d_z @ p[k - 1].T                   # (2)
  steps["params"] = grads
  return steps


def net_data(hit_zero=False, sizes=(3, 4, 4, 2), m=6, dead_sample=False):
  """Random weights and batch. With ``hit_zero``: z1[0, 2] == 0 and z2[1, 3] == 0
  exactly (one-hot inputs and a zero weight), each the only kink along its directions.

  Every sample keeps at least one active unit in each hidden layer: a sample whose
  whole layer is dead has every later pre-activation exactly 0 (no biases), and
  there nested kinks compose Step(0) = 1 into values outside the loss's one-sided
  derivatives (a composite kink; see the ``dead_sample`` cases)."""
  rng = np.random.default_rng(2)
  p = [rng.normal(size=(a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
  x = rng.normal(size=(m, sizes[0]))
  y = np.abs(rng.normal(size=(m, sizes[-1])))
  if hit_zero:
    x[0] = [1.0, 0.0, 0.0]                   # z1[0] = W0[0]
    p[0][0, 2] = 0.0                         # ... so z1[0, 2] = 0
    x[1] = [0.0, 1.0, 0.0]                   # z1[1] = W0[1]: one positive entry (unit 1) ...
    p[0][1] = [-0.5, 0.9, -1.2, -0.3]        # ... so r1[1] = 0.9·e_1
    p[1][1, 3] = 0.0                         # and z2[1, 3] = r1[1] @ W1[:, 3] = 0
    p[2][[0, 2], 0] = np.abs(p[2][[0, 2], 0])  # keep sample 1's output unit 0 active
  if dead_sample:
    x[0] = [1.0, 0.0, 0.0]                   # z1[0] = W0[0] < 0: layer 1 dead for sample 0,
    p[0][0] = -np.abs(p[0][0])               # so z2[0] = z3[0] = 0 exactly (nested kinks)
    return [jnp.asarray(w) for w in p], jnp.asarray(x), jnp.asarray(y)
  r = x
  for w in p[:-1]:
    r = np.maximum(r @ w, 0)
    assert np.all(r.max(axis=1) > 0), "a sample with a dead hidden layer"
  return [jnp.asarray(w) for w in p], jnp.asarray(x), jnp.asarray(y)


def _check_net(act=relu_answer, hit_zero=False, dead_sample=False):
  p, x, y = net_data(hit_zero, dead_sample=dead_sample)
  return jaxreg.check(net_equations, net_loss, p, x, y, kwargs={"act": act})


# ----------------------------------------------------------------- S3.5 per-layer factors
@functools.lru_cache(maxsize=None)
def s3_5_factors():
  """Largest activation factor f'(z) met in the S3.3 net (sigmoid) over 200 random
  batches' pre-activations, and the set of ReLU factors."""
  rng = np.random.default_rng(5)
  sig = jaxreg.activations.sigmoid
  z = jnp.asarray(rng.normal(scale=3.0, size=100_000))
  grid = jnp.linspace(-10.0, 10.0, 2001)
  return {"sigmoid_max_random": float(jnp.max(sig.grad(z))),
          "sigmoid_max_grid": float(jnp.max(sig.grad(grid))),
          "argmax_grid": float(grid[jnp.argmax(sig.grad(grid))]),
          "relu_values": sorted({float(v) for v in np.unique(np.asarray(relu_answer.grad(z)))})}


def _s3_5_report():
  r = _check_net(jaxreg.activations.sigmoid)
  e = s3_5_factors()
  r.notes.append(f"measured: sigmoid's factor σ'(z) in equation (1) is at most "
                 f"{e['sigmoid_max_grid']:.6g} (at z = {e['argmax_grid']:g}) on a grid of "
                 f"[-10, 10], and {e['sigmoid_max_random']:.6g} over 10^5 random z; "
                 f"ReLU's factor takes only the values {e['relu_values']}")
  return r


# ----------------------------------------------------------------- the cases
_SIGN = ("as written dC/dR = y − ŷ: the derivative of ½(y − ŷ)² is ŷ − y, so the very first "
         "step has the wrong sign")
_STEP = ("sign fixed, on inputs of both signs: the asker drops ReLU's Step factor (ReLU "
         "treated as the identity), wrong wherever a pre-activation is negative")

CHECKS = [
    jaxreg.Case("s3_1_single_neuron", "S3.1",
                "∂C/∂ŷ = ŷ − y, ∂C/∂z = (ReLU(z) − y)·Step(z), ∂C/∂W = (ReLU(Wx) − y)·Step(Wx)·x",
                run=lambda: jaxreg.check(s3_1_derivation, s3_1_loss, *s3_1_data())),
    jaxreg.Case("s3_2_asker_1_layer", "S3.2", "dC/dw1 = (y − ReLU(w1 x))·x",
                run=lambda: _check_chain(asker, 1), expect="wrong", expect_first_wrong="yhat",
                note=_SIGN),
    jaxreg.Case("s3_2_asker_2_layers", "S3.2", "dC/dw2 = (y − ReLU(w1 ReLU(w2 x)))·(w1 x)",
                run=lambda: _check_chain(asker, 2), expect="wrong", expect_first_wrong="yhat",
                note=_SIGN),
    jaxreg.Case("s3_2_asker_3_layers", "S3.2",
                "dC/dw3 = (y − ReLU(w1 ReLU(w2 ReLU(w3 x))))·(w1 w2 x)",
                run=lambda: _check_chain(asker, 3), expect="wrong", expect_first_wrong="yhat",
                note=_SIGN),
    jaxreg.Case("s3_2_asker_all_three_weights", "S3.2",
                "3 layers: dC/dw1 = (y − ReLU(w1 x))·x, dC/dw2 = (y − ReLU(w1 ReLU(w2 x)))·(w1 x), "
                "dC/dw3 = (y − ŷ)·(w1 w2 x)",
                run=lambda: _check_chain(asker_all_three, 3, all_weights=True),
                expect="wrong", expect_first_wrong="params['w1']",
                note="besides the sign, dC/dw1 and dC/dw2 use the 1- and 2-layer outputs "
                "instead of ŷ, and x instead of the layer's input r"),
    jaxreg.Case("s3_2_sign_fixed_x_positive", "S3.2",
                "the asker's 3-layer chain with the sign fixed, under the asker's x > 0 (w > 0)",
                run=lambda: _check_chain(asker, 3, sign_fixed=True),
                note="every pre-activation is positive, so every Step is 1 and the "
                "sign-fixed derivation is exact"),
    jaxreg.Case("s3_2_sign_fixed_1_layer_mixed_x", "S3.2", "dC/dw1 = (ŷ − y)·x, x of both signs",
                run=lambda: _check_chain(asker, 1, X_MIXED, sign_fixed=True),
                expect="wrong", expect_first_wrong="z1", note=_STEP),
    jaxreg.Case("s3_2_sign_fixed_2_layers_mixed_x", "S3.2",
                "dC/dw2 = (ŷ − y)·(w1 x), x of both signs",
                run=lambda: _check_chain(asker, 2, X_MIXED, sign_fixed=True),
                expect="wrong", expect_first_wrong="z2", note=_STEP),
    jaxreg.Case("s3_2_sign_fixed_3_layers_mixed_x", "S3.2",
                "dC/dw3 = (ŷ − y)·(w1 w2 x), x of both signs",
                run=lambda: _check_chain(asker, 3, X_MIXED, sign_fixed=True),
                expect="wrong", expect_first_wrong="z3", note=_STEP),
    jaxreg.Case("s3_2_answer_3_layers_mixed_x", "S3.2",
                "the answer's derivation (S3.3 on the chain), x of both signs",
                run=lambda: _check_chain(chain_correct, 3, X_MIXED),
                expect="kink",
                note="pre-activations downstream of a negative input are exactly 0, where "
                "Step(0) = 1 is the other one-sided derivative"),
    jaxreg.Case("s3_3_layer_equations", "S3.3",
                "(1) ∂C/∂z_j = ∂C/∂r_j·f'(z_j), (2) ∂C/∂r_i = Σ_j ∂C/∂z_j·W_ij, "
                "(3) ∂C/∂W_ij = ∂C/∂z_j·r_i",
                run=_check_net, note="3-4-4-2 ReLU net, no biases, checked at every z and r"),
    jaxreg.Case("s3_3_any_activation_in_1_only", "S3.3",
                "substitute the activation's derivative in (1) only (tanh)",
                run=lambda: _check_net(jaxreg.activations.tanh)),
    jaxreg.Case("s3_4_relu_prime_0_is_0", "S3.4", "relu'(0) = 0 on inputs hitting 0 exactly",
                run=lambda: _check_net(jaxreg.activations.relu.with_kink_value(0.0), True),
                note="the same convention as jax.nn.relu's autodiff, hence ok, not kink"),
    jaxreg.Case("s3_4_relu_prime_0_is_half", "S3.4", "relu'(0) = ½ on inputs hitting 0 exactly",
                run=lambda: _check_net(jaxreg.activations.relu.with_kink_value(0.5), True),
                expect="kink"),
    jaxreg.Case("s3_4_relu_prime_0_is_1", "S3.4", "relu'(0) = 1 on inputs hitting 0 exactly",
                run=lambda: _check_net(relu_answer, True), expect="kink"),
    jaxreg.Case("s3_4_relu_prime_0_is_0_dead_layer", "S3.4",
                "relu'(0) = 0 when a sample's whole hidden layer is dead (all later z = 0)",
                run=lambda: _check_net(jaxreg.activations.relu.with_kink_value(0.0),
                                       dead_sample=True)),
    jaxreg.Case("s3_4_relu_prime_0_is_1_dead_layer", "S3.4",
                "relu'(0) = 1 when a sample's whole hidden layer is dead (all later z = 0)",
                run=lambda: _check_net(relu_answer, dead_sample=True),
                expect="kink",
                note="without biases every later pre-activation of that sample is exactly 0 and "
                "the kinks nest: Step(0) = 1 in each layer is a valid local convention, and their "
                "product lies outside the loss's one-sided derivatives — a composite kink, not an "
                "error of the derivation"),
    jaxreg.Case("s3_5_sigmoid_factor", "S3.5",
                "sigmoid contributes a factor ≤ 0.25 per layer; ReLU's factor is 0 or 1",
                run=_s3_5_report, note="equation (1) with sigmoid, checked; factors measured"),
]
