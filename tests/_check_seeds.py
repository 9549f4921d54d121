"""Losses with taps and hand derivations from the seeds (S0, S3), shared by the checker tests.

Module-level functions so that repeated checks hit the checker's compile cache.
"""

import jax
import jax.numpy as jnp
import numpy as np

import jaxreg


def heaviside(x, at_zero):
  return jnp.where(x > 0, 1.0, jnp.where(x == 0, at_zero, 0.0)).astype(x.dtype)


# ---------------------------------------------------------------- S0
# x2 = x1 A + B ; x3 = relu(x2) ; y = x3 C + D ; L = ½ Σ (t − y)² (+ λ Σ|x2|, S0.4)

def s0_loss(p, x1, t, lam=0.0):
  x2 = jaxreg.tap("x2", x1 @ p["A"] + p["B"])
  x3 = jaxreg.tap("x3", jax.nn.relu(x2))
  y = jaxreg.tap("y", x3 @ p["C"] + p["D"])
  return 0.5 * jnp.sum((t - y) ** 2) + lam * jnp.sum(jnp.abs(x2))


def s0_derivation(p, x1, t, lam=0.0):
  """S0.1/S0.2 (batched) with H(0) = 1, plus S0.4's λ(2H(x2) − 1) when lam > 0."""
  x2 = x1 @ p["A"] + p["B"]
  h = heaviside(x2, 1.0)
  x3 = jax.nn.relu(x2)
  y = x3 @ p["C"] + p["D"]
  dy = -(t - y)                                 # ∂L/∂y = −(t − y)
  dx3 = dy @ p["C"].T                           # ∂y/∂x3 = C
  dx2 = dx3 * h + lam * (2 * h - 1)             # ∂x3/∂x2 = H(x2); S0.4: λ(2H(x2) − 1)
  return {"y": dy, "x3": dx3, "x2": dx2,
          "params": {"A": x1.T @ dx2, "B": jnp.sum(dx2, 0),   # ∂x2/∂A = x1, ∂x2/∂B = 1
                     "C": x3.T @ dy, "D": jnp.sum(dy, 0)}}    # ∂y/∂C = x3, ∂y/∂D = 1


def s0_data(seed=0, m=6, n_in=5, n_hidden=4, n_out=3, hit_zero=False):
  """NumPy-generated data (no per-shape compilation of jax.random ops)."""
  rng = np.random.default_rng(seed)
  p = {"A": rng.normal(size=(n_in, n_hidden)), "B": rng.normal(size=(n_hidden,)),
       "C": rng.normal(size=(n_hidden, n_out)), "D": rng.normal(size=(n_out,))}
  x1 = rng.normal(size=(m, n_in))
  t = rng.normal(size=(m, n_out))
  if hit_zero:
    # sample 0 is all zeros and B[1] = 0, so x2[0, 1] == 0 exactly (relu's kink)
    x1[0] = 0.0
    p["B"][1] = 0.0
  return ({k: jnp.asarray(v) for k, v in p.items()}, jnp.asarray(x1), jnp.asarray(t))


# ---------------------------------------------------------------- S3
# S3.1: z = x W, ŷ = ReLU(z), C = ½ Σ (y − ŷ)²

def s31_loss(p, x, y):
  z = jaxreg.tap("z", x @ p["W"])
  yhat = jaxreg.tap("yhat", jax.nn.relu(z))
  return 0.5 * jnp.sum((y - yhat) ** 2)


def s31_derivation(p, x, y):
  z = x @ p["W"]
  dyhat = jax.nn.relu(z) - y                   # ∂C/∂ŷ = ŷ − y
  dz = dyhat * heaviside(z, 0.0)               # ∂C/∂z = (ReLU(z) − y)·Step(z)
  return {"yhat": dyhat, "z": dz, "params": {"W": x.T @ dz}}   # ∂C/∂W = ... · x


# S3.2: one neuron per layer, scalar weights; w1 is the output layer.
#   1 layer: ŷ = ReLU(w1 x)
#   2 layers: ŷ = ReLU(w1 ReLU(w2 x))
#   3 layers: ŷ = ReLU(w1 ReLU(w2 ReLU(w3 x)))

def s32_loss(p, x, y, layers):
  r = x
  for l in range(layers, 0, -1):
    z = jaxreg.tap(f"z{l}", p[f"w{l}"] * r)
    r = jaxreg.tap("yhat" if l == 1 else f"r{l}", jax.nn.relu(z))
  return 0.5 * jnp.sum((y - r) ** 2)


def s32_asker(p, x, y, layers, sign_fixed=False):
  """The asker's derivation: ∂C/∂ŷ = y − ŷ and every ReLU treated as the identity.

  With ``sign_fixed`` the first step is corrected to ŷ − y (so the next error,
  the missing Step factors, is what the checker must find).
  """
  r = x
  rs = {}
  for l in range(layers, 0, -1):
    rs[l] = r
    r = jax.nn.relu(p[f"w{l}"] * r)
  yhat = r
  d = (yhat - y) if sign_fixed else (y - yhat)
  steps = {"yhat": d}
  g = d
  for l in range(1, layers + 1):
    steps[f"z{l}"] = g                         # ReLU' taken as 1 everywhere
    if l < layers:
      g = g * p[f"w{l}"]
      steps[f"r{l + 1}"] = g
  # the asker's closed forms: dC/dw1 = (y − ReLU(w1 x))·x, dC/dw2 = (y − ŷ)(w1 x),
  # dC/dw3 = (y − ŷ)(w1 w2 x)  (sign-fixed: ŷ − y)
  sgn = -1.0 if sign_fixed else 1.0
  params = {"w1": jnp.sum(sgn * (y - jax.nn.relu(p["w1"] * x)) * x) if layers == 1
            else jnp.sum(d * rs[1])}
  if layers >= 2:
    params["w2"] = jnp.sum(d * p["w1"] * x)
  if layers >= 3:
    params["w3"] = jnp.sum(d * p["w1"] * p["w2"] * x)
  steps["params"] = params
  return steps


def s32_correct(p, x, y, layers):
  """S3.3's equations (1)–(3) for the one-neuron chain: the right answer."""
  zs, rs = {}, {}
  r = x
  for l in range(layers, 0, -1):
    rs[l] = r
    zs[l] = p[f"w{l}"] * r
    r = jax.nn.relu(zs[l])
  steps = {"yhat": r - y}
  g = r - y
  params = {}
  for l in range(1, layers + 1):
    gz = g * heaviside(zs[l], 0.0)
    steps[f"z{l}"] = gz
    params[f"w{l}"] = jnp.sum(gz * rs[l])
    if l < layers:
      g = gz * p[f"w{l}"]
      steps[f"r{l + 1}"] = g
  steps["params"] = params
  return steps


# ---------------------------------------------------------------- a tapped MLP
# z1 = x W0 + b0, a1 = f(z1), z2 = a1 W1 + b1, a2 = f(z2), y = a2 W2 + b2
# L = ½ Σ (y − t)² / m + lam Σ_l Σ W_l²   (biases not penalised)

ACTS = {"relu": (jax.nn.relu, lambda z: heaviside(z, 0.0)),
        "tanh": (jnp.tanh, lambda z: 1 - jnp.tanh(z) ** 2),
        "leaky": (lambda z: jax.nn.leaky_relu(z, 0.1),
                  lambda z: jnp.where(z >= 0, 1.0, 0.1).astype(z.dtype))}


def mlp_loss(p, x, t, act="relu", lam=0.01):
  f = ACTS[act][0]
  a = x
  n = len(p)
  for l, layer in enumerate(p):
    z = a @ layer["w"] + layer["b"]
    if l == n - 1:
      y = jaxreg.tap("y", z)
    else:
      z = jaxreg.tap(f"z{l + 1}", z)
      a = jaxreg.tap(f"a{l + 1}", f(z))
  m = x.shape[0]
  pen = sum(jnp.sum(layer["w"] ** 2) for layer in p)
  return 0.5 * jnp.sum((y - t) ** 2) / m + lam * pen


def mlp_derivation(p, x, t, act="relu", lam=0.01, plant=None):
  """S3.3 equations with optional single planted errors."""
  f, df = ACTS[act]
  m = x.shape[0]
  acts, zs = [x], []
  a = x
  for l, layer in enumerate(p):
    z = a @ layer["w"] + layer["b"]
    zs.append(z)
    a = z if l == len(p) - 1 else f(z)
    acts.append(a)
  y = acts[-1]
  g = (y - t) / m
  if plant == "sign":
    g = (t - y) / m
  if plant == "missing_1_over_m":
    g = y - t
  steps = {"y": g}
  grads = [None] * len(p)
  for l in reversed(range(len(p))):
    if l < len(p) - 1:
      steps[f"a{l + 1}"] = g
      g = g if (plant == "missing_activation" and l == len(p) - 2) else g * df(zs[l])
      steps[f"z{l + 1}"] = g
    gw = acts[l].T @ g + 2 * lam * p[l]["w"]
    if plant == "transposed" and l == 0:
      gw = gw.T
    gb = jnp.sum(g, 0)
    if plant == "bias_penalty":
      gb = gb + 2 * lam * p[l]["b"]
    grads[l] = {"w": gw, "b": gb}
    if l:
      g = g @ (p[l]["w"] if plant == "transposed_tap" and l == 1 else p[l]["w"].T)
  steps["params"] = grads
  return steps


def mlp_data(seed=0, sizes=(4, 5, 5, 2), m=7, scale=1.0, dtype=np.float64):
  rng = np.random.default_rng(seed)
  p = [{"w": jnp.asarray((scale * rng.normal(size=(a, b)) / a ** 0.5).astype(dtype)),
        "b": jnp.asarray((scale * rng.normal(size=(b,))).astype(dtype))}
       for a, b in zip(sizes[:-1], sizes[1:])]
  x = jnp.asarray(rng.normal(size=(m, sizes[0])).astype(dtype))
  t = jnp.asarray(rng.normal(size=(m, sizes[-1])).astype(dtype))
  return p, x, t
