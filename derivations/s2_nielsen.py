"""S2 — L2 / L1 regularization (Nielsen, *Neural Networks and Deep Learning*, ch. 3; seeds/002_…txt).

    jaxreg check derivations/s2_nielsen.py

Nielsen's ``network2``: sigmoid layers, cross-entropy cost, ``n`` = size of the
training set, minibatches of ``m``. Biases are **not** regularized. Kink
convention: ``sgn(0) = 0`` (``jax.grad(jnp.abs)(0.) = 1`` takes another).
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxreg  # noqa: E402

CMD = "jaxreg check derivations/s2_nielsen.py"
ETA, LMBDA, N = 0.5, 5.0, 1000          # learning rate, λ, training-set size
SIZES = (4, 5, 3)


def data(seed=0, m=8, zero_weight=False):
  """Nielsen-style init (weights N(0, 1/n_in), biases N(0, 1)), a minibatch, 0/1 targets.

  With ``zero_weight``, one weight is exactly 0 (|w|'s kink)."""
  rng = np.random.default_rng(seed)
  p = [{"w": rng.normal(size=(a, b)) / np.sqrt(a), "b": rng.normal(size=b)}
       for a, b in zip(SIZES[:-1], SIZES[1:])]
  if zero_weight:
    p[0]["w"][1, 2] = 0.0
  x = rng.normal(size=(m, SIZES[0]))
  t = (rng.uniform(size=(m, SIZES[-1])) < 0.5).astype(np.float64)
  return jax.tree.map(jnp.asarray, p), jnp.asarray(x), jnp.asarray(t)


# ----------------------------------------------------------------- the cost
def cost0(p, x, t):
  """C0: cross-entropy averaged over the minibatch, z's tapped."""
  a = x
  for l, layer in enumerate(p):
    a = jax.nn.sigmoid(jaxreg.tap(f"z{l + 1}", a @ layer["w"] + layer["b"]))
  return -jnp.sum(t * jnp.log(a) + (1 - t) * jnp.log1p(-a)) / x.shape[0]


def cost_l2(p, x, t):
  """S2.1: C = C0 + (λ/2n) Σ_w w² — weights only."""
  return cost0(p, x, t) + LMBDA / (2 * N) * sum(jnp.sum(layer["w"] ** 2) for layer in p)


def cost_l1(p, x, t):
  """S2.3: C = C0 + (λ/n) Σ_w |w| — weights only."""
  return cost0(p, x, t) + LMBDA / N * sum(jnp.sum(jnp.abs(layer["w"])) for layer in p)


def backprop0(p, x, t):
  """Nielsen's backprop for sigmoid + cross-entropy: δ_L = (a_L − y), δ_l =
  (δ_{l+1} W_{l+1}ᵀ) ⊙ σ'(z_l); ∂C0/∂w_l = a_{l−1}ᵀ δ_l, ∂C0/∂b_l = Σ δ_l (over the
  batch, divided by m)."""
  m = x.shape[0]
  acts, zs = [x], []
  for layer in p:
    zs.append(acts[-1] @ layer["w"] + layer["b"])
    acts.append(jax.nn.sigmoid(zs[-1]))
  delta = (acts[-1] - t) / m
  steps, grads = {}, [None] * len(p)
  for l in range(len(p), 0, -1):
    if l < len(p):
      s = jax.nn.sigmoid(zs[l - 1])
      delta = (delta @ p[l]["w"].T) * s * (1 - s)
    steps[f"z{l}"] = delta
    grads[l - 1] = {"w": acts[l - 1].T @ delta, "b": jnp.sum(delta, 0)}
  return steps, grads


# ----------------------------------------------------------------- S2.1 / S2.3 gradients
def l2_gradient(p, x, t):
  """∂C/∂w = ∂C0/∂w + (λ/n) w, ∂C/∂b = ∂C0/∂b."""
  steps, g = backprop0(p, x, t)
  steps["params"] = [{"w": gl["w"] + LMBDA / N * layer["w"], "b": gl["b"]}
                     for gl, layer in zip(g, p)]
  return steps


def l1_gradient(p, x, t):
  """∂C/∂w = ∂C0/∂w + (λ/n) sgn(w), sgn(0) = 0; ∂C/∂b = ∂C0/∂b."""
  steps, g = backprop0(p, x, t)
  steps["params"] = [{"w": gl["w"] + LMBDA / N * jnp.sign(layer["w"]), "b": gl["b"]}
                     for gl, layer in zip(g, p)]
  return steps


L2_NET = jaxreg.MLP(SIZES, ["sigmoid", "sigmoid"], loss="binary_cross_entropy",
                    kernel_regularizer=jaxreg.penalties.l2(LMBDA / (2 * N)), init="nielsen")


def l2_gradient_library(p, x, t):
  return L2_NET.backprop(p, x, t)          # jaxreg's closed form with l2(λ/2n) on kernels


# ----------------------------------------------------------------- S2.2 / S2.3 update rules
def update_mini_batch(x, t):
  """network2.py's update_mini_batch for L2, as a rule (params, grads) -> params:
  per-sample backprop summed over the minibatch (the given grads are not used),
  then w → (1 − ηλ/n) w − (η/m) Σ nabla_w, b → b − (η/m) Σ nabla_b. Jitted: the
  Python loop over samples is unrolled once at trace time."""
  @jax.jit
  def rule(p, grads):
    del grads
    m = x.shape[0]
    nabla = jax.tree.map(jnp.zeros_like, p)
    for i in range(m):
      _, delta_nabla = backprop0(p, x[i:i + 1], t[i:i + 1])
      nabla = jax.tree.map(jnp.add, nabla, delta_nabla)
    return [{"w": (1 - ETA * (LMBDA / N)) * layer["w"] - (ETA / m) * nb["w"],
             "b": layer["b"] - (ETA / m) * nb["b"]} for layer, nb in zip(p, nabla)]
  return rule


def l1_update(p, g):
  """S2.3: w → w − (ηλ/n) sgn(w) − η ∂C0/∂w, sgn(0) = 0; b → b − η ∂C0/∂b."""
  return [{"w": layer["w"] - ETA * LMBDA / N * jnp.sign(layer["w"]) - ETA * gl["w"],
           "b": layer["b"] - ETA * gl["b"]} for layer, gl in zip(p, g)]


def sgd_on_autodiff_l1(p, g):
  """One SGD step on C0 + (λ/n) Σ|w| with the L1 term differentiated by jax.grad."""
  pen = jax.grad(lambda ws: LMBDA / N * sum(jnp.sum(jnp.abs(w)) for w in ws))(
      [layer["w"] for layer in p])
  return [{"w": layer["w"] - ETA * (gl["w"] + pw), "b": layer["b"] - ETA * gl["b"]}
          for layer, gl, pw in zip(p, g, pen)]


@jax.jit
def _data_grads(p, x, t):
  return jax.grad(cost0)(p, x, t)                 # the minibatch-mean ∂C0/∂θ


def _s2_2(mask=jaxreg.optim.kernels_only):
  p, x, t = data()
  ref = "jaxreg.optim.sgd_weight_decay" + ("(mask=None)" if mask is None else "")
  return jaxreg.check_update(update_mini_batch(x, t),
                             jaxreg.optim.sgd_weight_decay(ETA, LMBDA / N, mask=mask),
                             p, _data_grads(p, x, t),
                             names=("network2.update_mini_batch", ref))


def _s2_3_update(reference, names):
  p, x, t = data(zero_weight=True)
  return jaxreg.check_update(l1_update, reference, p, _data_grads(p, x, t), names=names)


# ----------------------------------------------------------------- the cases
CHECKS = [
    jaxreg.Case("s2_1_l2_gradient", "S2.1",
                "C = C0 + (λ/2n) Σ_w w²: ∂C/∂w = ∂C0/∂w + (λ/n) w, ∂C/∂b = ∂C0/∂b",
                run=lambda: jaxreg.check(l2_gradient, cost_l2, *data())),
    jaxreg.Case("s2_1_l2_gradient_library", "S2.1",
                "jaxreg.MLP(kernel_regularizer=l2(λ/2n)).backprop is the same gradient",
                run=lambda: jaxreg.check(l2_gradient_library, cost_l2, *data())),
    jaxreg.Case("s2_2_update_mini_batch", "S2.2",
                "network2's update_mini_batch: w → (1 − ηλ/n) w − (η/m) Σ_x ∂C_x/∂w, "
                "b → b − (η/m) Σ_x ∂C_x/∂b",
                run=_s2_2,
                note="against jaxreg.optim.sgd_weight_decay(η, λ/n) (optax "
                "add_decayed_weights on kernels, then sgd)"),
    jaxreg.Case("s2_2_biases_not_decayed", "S2.2",
                "the same rule against weight decay on every leaf, biases included",
                run=lambda: _s2_2(mask=None), expect="wrong", expect_first_wrong="params[0]['b']",
                note="the 'biases penalized' collision: Nielsen leaves biases alone"),
    jaxreg.Case("s2_3_l1_gradient", "S2.3",
                "C = C0 + (λ/n) Σ_w |w|: ∂C/∂w = ∂C0/∂w + (λ/n) sgn(w), sgn(0) = 0",
                run=lambda: jaxreg.check(l1_gradient, cost_l1, *data(zero_weight=True)),
                expect="kink", note="one weight is exactly 0: sgn(0) = 0 against "
                "jax.grad(jnp.abs)(0.) = 1, both valid subgradients"),
    jaxreg.Case("s2_3_l1_update", "S2.3",
                "w → w − (ηλ/n) sgn(w) − η ∂C0/∂w, sgn(0) = 0",
                run=lambda: _s2_3_update(
                    optax.chain(jaxreg.optim.l1_sign(LMBDA / N), optax.sgd(ETA)),
                    ("S2.3 rule", "chain(jaxreg.optim.l1_sign(λ/n), sgd(η))"))),
    jaxreg.Case("s2_3_l1_update_vs_autodiff", "S2.3",
                "the same rule against an SGD step on jax.grad of C0 + (λ/n) Σ|w|",
                run=lambda: _s2_3_update(sgd_on_autodiff_l1, ("S2.3 rule", "SGD on jax.grad")),
                expect="kink", note="they differ only at the weight that is exactly 0"),
]
