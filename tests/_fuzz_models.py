"""Random networks with correct hand-written backprop, for fuzzing `jaxreg.check`.

A model is an :class:`Arch` (a hashable record of layers and a head, drawn
from ``arch_seed``) plus data drawn from ``seed``: parameters, inputs,
targets, dropout masks and the derivation's conventions at kinks. Layers:
affine, relu, leaky relu, tanh, sigmoid, abs, batch norm, layer norm and
dropout with a fixed mask; heads: MSE, softmax cross-entropy and the
multiclass SVM hinge; an optional L2 weight penalty in the loss.

``loss(params, x, t, aux, arch)`` taps every intermediate with
:func:`jaxreg.tap`; ``derivation(params, x, t, aux, arch)`` is the matching
hand backprop, layer by layer, returning ``{tap: ∂L/∂tap, ..., "params":
{...}}``. Both are module-level functions and ``arch`` is a static argument,
so every seed of one architecture reuses the checker's compiled functions;
the seed's choices that only the derivation reads (the value taken at each
kink, which of two equivalent formulas is used, the planted error) travel in
``aux`` as arrays for the same reason.

Exact zeros at kinks. Inputs are multiples of 1/2, weights multiples of 1/4
and, while the path from the input is *exact* (affine, relu, leaky relu with
α = 1/4, abs, dropout with scale 2 or 5/4), biases are odd multiples of half
the resolution of ``h @ W``, so no preactivation is 0 by accident; a kink is
planted by setting one bias to ``-(h @ W)[i, j]`` (the arithmetic is exact,
so ``jax`` computes the same 0). An SVM margin is planted at 0 the same way
through the last bias. Past an inexact layer (tanh, sigmoid, a norm) a kink
can only be planted for a whole column (a zero weight column and bias, or
``gamma = beta = 0``).

Families (``Family``):

* ``single``: at most one kink element in the whole network, so no
  perturbation of one element crosses two kinks; no bias before a norm.
* ``composite``: many kink elements (several per kinked layer, whole
  columns, hinge margins) that one perturbation can cross together.
* ``zero_grad``: a bias whose true gradient is exactly 0 — a per-feature bias
  feeding batch norm, or a scalar shift inside layer norm (a per-feature bias
  before layer norm has a nonzero gradient, summing to 0); single kinks.

Planted errors (:class:`Mutation`) change one step of the derivation:
``aux["mut"] = [[code, layer]]``; :func:`expected_first_wrong` finds, by
comparing the mutated and the correct derivation, the first row in backprop
order that the mutation really changes.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxreg

KINKED = ("relu", "leaky_relu", "abs")
ACTIVATIONS = KINKED + ("tanh", "sigmoid")
NORMS = ("batchnorm", "layernorm")
HEADS = ("mse", "softmax", "svm")
FAMILIES = ("single", "composite", "zero_grad")
NORM_EPS = 1e-5
L2_EXTRA = 0.1

_SHORT = {"affine": "z", "batchnorm": "bn", "layernorm": "ln", "dropout": "d"}


class Layer(NamedTuple):
  """One layer. ``opt``: relu ``"nn"``/``"max"`` (jax.nn.relu or jnp.maximum),
  leaky relu ``"nn"``/``"where"`` (jax.nn.leaky_relu or jnp.where), dropout's
  keep probability as a string; ``bias``: an affine bias, or layer norm's
  scalar shift before normalising."""

  kind: str
  width: int
  bias: bool = False
  opt: str = ""
  alpha: float = 0.0


class Arch(NamedTuple):
  """A network: its layers (the last is affine), head, batch and input sizes."""

  layers: tuple
  head: str
  m: int
  n_in: int
  family: str


class Mutation(NamedTuple):
  """A planted error: ``code`` at layer ``layer`` (``len(layers)`` is the head)."""

  code: int
  layer: int
  name: str


def tap_name(arch: Arch, l: int) -> str:
  """The tap name of layer ``l``'s output."""
  ly = arch.layers[l]
  return f"{_SHORT.get(ly.kind, 'a')}{l}"


def tap_order(arch: Arch) -> list[str]:
  return [tap_name(arch, l) for l in range(len(arch.layers))]


# ------------------------------------------------------------------ architectures

def draw_arch(arch_seed: int, family: str) -> Arch:
  """A random architecture; ``zero_grad`` ones hold at least one norm layer."""
  if family not in FAMILIES:
    raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
  rng = np.random.default_rng([arch_seed, FAMILIES.index(family), 7])
  m = int(rng.choice([4, 5, 6]))
  n_in = int(rng.choice([3, 4]))
  head = str(rng.choice(HEADS))
  n_out = int(rng.choice([3, 4])) if head != "mse" else int(rng.choice([2, 3]))
  n_blocks = int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
  norm_block = int(rng.integers(n_blocks)) if family == "zero_grad" else -1
  # an exact network (kinked activations only, no norm) can have its kinks anywhere
  exact_net = family != "zero_grad" and rng.random() < 0.35
  layers = []
  width = n_in
  for blk in range(n_blocks):
    new_w = width if rng.random() < 0.4 else int(rng.choice([3, 4, 5]))
    norm = None
    if blk == norm_block:
      norm = str(rng.choice(NORMS))
    elif rng.random() < 0.45 and not exact_net:
      norm = str(rng.choice(NORMS))
    if norm == "batchnorm":
      bias = family == "zero_grad"
    elif norm == "layernorm":
      bias = bool(rng.random() < 0.5)
    else:
      bias = True
    layers.append(Layer("affine", new_w, bias))
    if norm is not None:
      shift = family == "zero_grad" and norm == "layernorm"
      layers.append(Layer(norm, new_w, shift, str(rng.choice(["staged", "simple"]))))
    act = str(rng.choice(KINKED if exact_net else ACTIVATIONS))
    opt, alpha = "", 0.0
    if act == "relu":
      opt = str(rng.choice(["nn", "max"]))
    elif act == "leaky_relu":
      opt = str(rng.choice(["nn", "where"]))
      alpha = 0.25 if exact_net else float(rng.choice([0.25, 0.25, 0.1]))
    layers.append(Layer(act, new_w, False, opt, alpha))
    if rng.random() < 0.3:
      layers.append(Layer("dropout", new_w, False, str(rng.choice(["0.5", "0.8"]))))
    width = new_w
  layers.append(Layer("affine", n_out, True))
  return Arch(tuple(layers), head, m, n_in, family)


def _keep_scale(opt: str) -> float:
  return {"0.5": 2.0, "0.8": 1.25}[opt]


def _exact(ly: Layer) -> bool:
  """Whether the layer keeps dyadic values exact (no rounding anywhere)."""
  if ly.kind in ("affine", "relu", "abs", "dropout"):
    return True
  return ly.kind == "leaky_relu" and ly.alpha == 0.25


# ------------------------------------------------------------------ forward

def _act(xp, ly: Layer, z):
  k = ly.kind
  if k == "relu":
    return jax.nn.relu(z) if (xp is jnp and ly.opt == "nn") else xp.maximum(z, 0.0)
  if k == "leaky_relu":
    if xp is jnp and ly.opt == "nn":
      return jax.nn.leaky_relu(z, ly.alpha)
    return xp.where(z > 0, z, ly.alpha * z)
  if k == "abs":
    return xp.abs(z)
  if k == "tanh":
    return xp.tanh(z)
  if k == "sigmoid":
    return 1.0 / (1.0 + xp.exp(-z))
  raise ValueError(k)


def _norm_fwd(xp, z, axis, gamma, beta, shift):
  if shift is not None:
    z = z + shift
  mu = xp.mean(z, axis=axis, keepdims=True)
  zc = z - mu
  var = xp.mean(zc * zc, axis=axis, keepdims=True)
  std = xp.sqrt(var + NORM_EPS)
  xhat = zc / std
  return gamma * xhat + beta, (zc, var, std, xhat)


def _forward(xp, p, x, aux, arch, tap=lambda name, v: v):
  """Output scores and, per layer, ``(input, output, extras)``."""
  h = x
  cache = []
  for l, ly in enumerate(arch.layers):
    extras = None
    if ly.kind == "affine":
      out = h @ p[f"W{l}"]
      if ly.bias:
        out = out + p[f"b{l}"]
    elif ly.kind in NORMS:
      axis = 0 if ly.kind == "batchnorm" else 1
      shift = p[f"c{l}"] if ly.bias else None
      out, extras = _norm_fwd(xp, h, axis, p[f"gamma{l}"], p[f"beta{l}"], shift)
    elif ly.kind == "dropout":
      out = h * aux["masks"][f"d{l}"]
    else:
      out = _act(xp, ly, h)
    out = tap(tap_name(arch, l), out)
    cache.append((h, out, extras))
    h = out
  return h, cache


def _onehot(xp, t, n):
  return (xp.arange(n)[None, :] == t[:, None]).astype(np.float64)


def _head_loss(xp, s, t, arch):
  m = arch.m
  if arch.head == "mse":
    return 0.5 * xp.sum((s - t) ** 2) / m
  oh = _onehot(xp, t, s.shape[1])
  if arch.head == "softmax":
    z = s - xp.max(s, axis=1, keepdims=True)
    logp = z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True))
    return -xp.sum(logp * oh) / m
  s_y = xp.sum(s * oh, axis=1, keepdims=True)
  margins = xp.maximum(0.0, s - s_y + 1.0) * (1.0 - oh)
  return xp.sum(margins) / m


def loss(p, x, t, aux, arch):
  """The network's loss with every layer output tapped (``aux``: masks, reg, …)."""
  s, _ = _forward(jnp, p, x, aux, arch, jaxreg.tap)
  value = _head_loss(jnp, s, t, arch)
  ws = [p[f"W{l}"] for l, ly in enumerate(arch.layers) if ly.kind == "affine"]
  return value + 0.5 * aux["reg"] * sum(jnp.sum(w * w) for w in ws)


def margins_np(s, t):
  """SVM margins ``s_j − s_y + 1`` for ``j ≠ y`` (``nan`` at ``y``), in NumPy."""
  oh = _onehot(np, t, s.shape[1])
  s_y = np.sum(s * oh, axis=1, keepdims=True)
  return np.where(oh > 0, np.nan, s - s_y + 1.0)


# ------------------------------------------------------------------ derivation

# Mutation codes (0: none).
SIGN, NO_MEAN, HEAD_FORM = 1, 2, 3
TRANSPOSE_IN, TRANSPOSE_W, L2_PLUS, DB_MEAN, L2_MISSING = 4, 5, 6, 7, 8
DROP_ACT, ACT_FORM = 9, 10
NORM_MEAN, NORM_VAR, NORM_GAMMA, DGAMMA = 11, 12, 13, 14
DROP_MASK, DROP_SCALE = 15, 16
PARAM_CODES = (TRANSPOSE_W, L2_PLUS, DB_MEAN, L2_MISSING, DGAMMA)   # act on a parameter row only

MUTATION_NAMES = {
    SIGN: "sign flip of ∂L/∂scores", NO_MEAN: "missing 1/m in ∂L/∂scores",
    HEAD_FORM: "wrong head formula", TRANSPOSE_IN: "W instead of Wᵀ in ∂L/∂input",
    TRANSPOSE_W: "transposed ∂L/∂W", L2_PLUS: "extra L2 term on ∂L/∂W",
    DB_MEAN: "mean instead of sum in ∂L/∂b", L2_MISSING: "missing L2 term on ∂L/∂W",
    DROP_ACT: "dropped activation derivative", ACT_FORM: "wrong activation derivative",
    NORM_MEAN: "norm backward without the mean term",
    NORM_VAR: "norm backward without the variance term",
    NORM_GAMMA: "norm backward without gamma", DGAMMA: "∂L/∂gamma without x̂",
    DROP_MASK: "dropout backward without the mask",
    DROP_SCALE: "dropout backward without 1/keep",
}


def _mut(aux, code, layer, bad, good):
  mut = aux["mut"][0]
  return jnp.where((mut[0] == code) & (mut[1] == layer), bad, good)


def _head_grad(s, t, arch, aux, conv):
  m = arch.m
  pos = len(arch.layers)
  if arch.head == "mse":
    ds = (s - t) / m
    bad = 2 * ds                                         # forgot the ½
  else:
    oh = _onehot(jnp, t, s.shape[1])
    if arch.head == "softmax":
      z = s - jnp.max(s, axis=1, keepdims=True)
      e = jnp.exp(z)
      prob = e / jnp.sum(e, axis=1, keepdims=True)
      ds = (prob - oh) / m
      bad = prob / m                                     # forgot the one-hot
    else:
      s_y = jnp.sum(s * oh, axis=1, keepdims=True)
      marg = s - s_y + 1.0
      active = jnp.where(marg > 0, 1.0, jnp.where(marg == 0, conv, 0.0)) * (1 - oh)
      ds = (active - oh * jnp.sum(active, axis=1, keepdims=True)) / m
      bad = active / m                                   # forgot the correct-class column
  ds_m = _mut(aux, SIGN, pos, -ds, ds)
  ds_m = _mut(aux, NO_MEAN, pos, ds * m, ds_m)
  return _mut(aux, HEAD_FORM, pos, bad, ds_m)


def _act_backward(ly, z, a, dout, c):
  """``(correct local derivative, a wrong one)`` of an activation at ``z``."""
  k = ly.kind
  if k == "relu":
    d = jnp.where(z > 0, 1.0, jnp.where(z == 0, c, 0.0))
    return d, jnp.where(z < 0, 1.0, 0.0)
  if k == "leaky_relu":
    d = jnp.where(z > 0, 1.0, jnp.where(z == 0, c, ly.alpha))
    return d, jnp.where(z > 0, ly.alpha, 1.0)
  if k == "abs":
    return jnp.where(z == 0, c, jnp.sign(z)), -jnp.sign(z)
  if k == "tanh":
    return jnp.where(c > 0.5, (1 - a) * (1 + a), 1 - a ** 2), 1 - a
  s = a
  return jnp.where(c > 0.5, s * (1 - s), s - s * s), s


def _norm_backward(aux, l, ly, dout, extras, gamma, c):
  """CS231n-style norm backward: staged (``c == 0``) or the simplified formula."""
  zc, var, std, xhat = extras
  axis = 0 if ly.kind == "batchnorm" else 1
  n = zc.shape[axis]
  dxhat = _mut(aux, NORM_GAMMA, l, dout, dout * gamma)
  # staged: through var and mu
  dvar = jnp.sum(dxhat * zc, axis=axis, keepdims=True) * -0.5 * (var + NORM_EPS) ** -1.5
  dmu = -jnp.sum(dxhat, axis=axis, keepdims=True) / std + dvar * jnp.mean(-2 * zc, axis=axis,
                                                                        keepdims=True)
  var_term = _mut(aux, NORM_VAR, l, 0.0, dvar * 2 * zc / n)
  mean_term = _mut(aux, NORM_MEAN, l, 0.0, dmu / n)
  staged = dxhat / std + var_term + mean_term
  # simplified
  s1 = _mut(aux, NORM_MEAN, l, 0.0, jnp.sum(dxhat, axis=axis, keepdims=True))
  s2 = _mut(aux, NORM_VAR, l, 0.0, xhat * jnp.sum(dxhat * xhat, axis=axis, keepdims=True))
  simple = (n * dxhat - s1 - s2) / (n * std)
  d_in = jnp.where(c > 0.5, simple, staged)
  dgamma = jnp.sum(dout * xhat, axis=0)
  dgamma = _mut(aux, DGAMMA, l, jnp.sum(dout, axis=0), dgamma)
  dbeta = jnp.sum(dout, axis=0)
  return d_in, dgamma, dbeta


def derivation(p, x, t, aux, arch):
  """The hand backprop of :func:`loss`, layer by layer (conventions from ``aux["conv"]``)."""
  s, cache = _forward(jnp, p, x, aux, arch)
  conv = aux["conv"][0]
  n_layers = len(arch.layers)
  steps = {}
  gp = {}
  d = _head_grad(s, t, arch, aux, conv[n_layers])
  for l in reversed(range(n_layers)):
    ly = arch.layers[l]
    steps[tap_name(arch, l)] = d
    h, out, extras = cache[l]
    if ly.kind == "affine":
      w = p[f"W{l}"]
      dw = h.T @ d + aux["reg"] * w
      dw = _mut(aux, L2_PLUS, l, dw + L2_EXTRA * w, dw)
      dw = _mut(aux, L2_MISSING, l, h.T @ d, dw)
      if w.shape[0] == w.shape[1]:
        dw = _mut(aux, TRANSPOSE_W, l, dw.T, dw)
      gp[f"W{l}"] = dw
      if ly.bias:
        gp[f"b{l}"] = _mut(aux, DB_MEAN, l, jnp.mean(d, axis=0), jnp.sum(d, axis=0))
      d_in = d @ w.T
      if w.shape[0] == w.shape[1]:
        d_in = _mut(aux, TRANSPOSE_IN, l, d @ w, d_in)
    elif ly.kind in NORMS:
      d_in, gp[f"gamma{l}"], gp[f"beta{l}"] = _norm_backward(
          aux, l, ly, d, extras, p[f"gamma{l}"], conv[l])
      if ly.bias:
        gp[f"c{l}"] = jnp.sum(d_in)
    elif ly.kind == "dropout":
      mask = aux["masks"][f"d{l}"]
      d_in = d * mask
      d_in = _mut(aux, DROP_MASK, l, d, d_in)
      d_in = _mut(aux, DROP_SCALE, l, d * (mask > 0), d_in)
    else:
      good, bad = _act_backward(ly, h, out, d, conv[l])
      d_in = d * good
      d_in = _mut(aux, DROP_ACT, l, d, d_in)
      d_in = _mut(aux, ACT_FORM, l, d * bad, d_in)
    d = d_in
  return {**steps, "params": gp}


def derivation_params(p, x, t, aux, arch):
  """:func:`derivation` returning only the parameter gradient (no steps), as most course code
  does: the checker then has no tapped quantity to judge composite kinks through."""
  return derivation(p, x, t, aux, arch)["params"]


def mutations(arch: Arch, reg: float) -> list[Mutation]:
  """Every planted error that applies to ``arch`` (``reg``: the loss's L2 strength)."""
  n = len(arch.layers)
  out = [Mutation(SIGN, n, ""), Mutation(NO_MEAN, n, ""), Mutation(HEAD_FORM, n, "")]
  for l, ly in enumerate(arch.layers):
    if ly.kind == "affine":
      square = (arch.n_in if l == 0 else arch.layers[l - 1].width) == ly.width
      out.append(Mutation(L2_PLUS, l, ""))
      if reg > 0:
        out.append(Mutation(L2_MISSING, l, ""))
      if ly.bias:
        out.append(Mutation(DB_MEAN, l, ""))
      if square:
        out.append(Mutation(TRANSPOSE_W, l, ""))
        if l > 0:
          out.append(Mutation(TRANSPOSE_IN, l, ""))
    elif ly.kind in NORMS:
      out += [Mutation(c, l, "") for c in (NORM_MEAN, NORM_VAR, NORM_GAMMA, DGAMMA)]
    elif ly.kind == "dropout":
      out += [Mutation(DROP_MASK, l, ""), Mutation(DROP_SCALE, l, "")]
    else:
      out += [Mutation(DROP_ACT, l, ""), Mutation(ACT_FORM, l, "")]
  return [mu._replace(name=f"{MUTATION_NAMES[mu.code]} (layer {mu.layer}: "
                      f"{arch.layers[mu.layer].kind if mu.layer < n else arch.head})")
          for mu in out]


# ------------------------------------------------------------------ data

class Model(NamedTuple):
  """A drawn model: everything :func:`jaxreg.check` needs, and what was planted."""

  seed: int
  arch: Arch
  params: dict
  x: np.ndarray
  t: np.ndarray
  aux: dict
  kinks: dict          # {tap or "margin": number of exact-zero kink elements planted}
  conventions: dict    # {layer tap: value taken at the kink / formula choice}

  def args(self, mutation: Mutation | None = None):
    """``(x, t, aux, arch)`` for ``jaxreg.check(derivation, loss, params, *args)``."""
    aux = dict(self.aux)
    if mutation is not None:
      aux["mut"] = np.array([[mutation.code, mutation.layer]], np.int32)
    return (self.x, self.t, aux, self.arch)


def _dyadic(rng, size, den, lo=-2, hi=2):
  return rng.integers(lo, hi + 1, size=size).astype(np.float64) / den


def draw_model(seed: int, arch: Arch, max_tries: int = 50) -> Model:
  """Parameters, data, masks and conventions for ``arch``, with kinks planted per its family."""
  for attempt in range(max_tries):
    model = _draw_once(seed, arch, attempt)
    if model is not None:
      return model
  raise RuntimeError(f"could not draw seed {seed} for {arch} with exact kinks")


def _kink_sites(arch: Arch) -> list[int]:
  """Layers where a kink can be planted at one element: a kinked activation on an exact path."""
  sites = []
  exact = True
  for l, ly in enumerate(arch.layers):
    if ly.kind in KINKED and exact and l > 0 and arch.layers[l - 1].kind == "affine":
      sites.append(l)
    exact = exact and _exact(ly)
  return sites


def _head_exact(arch: Arch) -> bool:
  return all(_exact(ly) for ly in arch.layers)


def can_kink(arch: Arch) -> bool:
  """Whether an exact zero can be planted at one element of ``arch`` (a kinked activation or
  an SVM margin on an exact path)."""
  return bool(_kink_sites(arch)) or (arch.head == "svm" and _head_exact(arch))


def _draw_once(seed: int, arch: Arch, attempt: int):
  rng = np.random.default_rng([seed, attempt, 11])
  family = arch.family
  n_layers = len(arch.layers)
  m = arch.m
  x = _dyadic(rng, (m, arch.n_in), 2.0, -3, 3)
  n_out = arch.layers[-1].width
  if arch.head == "mse":
    t = rng.normal(size=(m, n_out))
  else:
    t = rng.integers(0, n_out, size=m)
  sites = _kink_sites(arch)
  hinge_ok = arch.head == "svm" and _head_exact(arch)
  choices = sites + ([n_layers] if hinge_ok else [])
  if family == "composite":
    targets = set(choices)
  elif choices and rng.random() < 0.9:
    targets = {int(rng.choice(choices))}
  else:
    targets = set()
  # composite: most plants share one sample, so a kink feeds another kink (relu at 0 → hinge at 0)
  i_c = int(rng.integers(m)) if family == "composite" and rng.random() < 0.7 else None
  masks = {}
  conv = np.zeros(n_layers + 1)
  conventions = {}
  params = {}
  kinks = {}
  h = x
  res = 0.5             # resolution of h while the path is exact, else None
  for l, ly in enumerate(arch.layers):
    nxt = arch.layers[l + 1] if l + 1 < n_layers else None
    name = tap_name(arch, l)
    if ly.kind == "affine":
      w = _dyadic(rng, (h.shape[1], ly.width), 4.0)
      a = h @ w
      if res is not None:
        rz = res / 4
        if nxt is None:     # the scores: class-specific offsets keep margins off 0
          offs = (2 * np.arange(ly.width) + 1) * rz / 64
          res_out = rz / 64
        else:
          offs = np.full(ly.width, rz / 2)
          res_out = rz / 2
        b = np.round(rng.uniform(-1, 1, ly.width) / rz) * rz + offs
      else:
        b = rng.normal(size=ly.width) * 0.5
        res_out = None
      if nxt is not None and nxt.kind in KINKED:
        if (l + 1) in targets and family == "composite" and rng.random() < 0.4:
          j = int(rng.integers(ly.width))      # a whole column at 0, inputs of both signs
          w[:, j] = 0.0
          b[j] = 0.0
        elif (l + 1) in targets and res is not None:
          n_plant = 1 if family != "composite" else int(rng.integers(1, 3))
          for j in rng.choice(ly.width, size=min(n_plant, ly.width), replace=False):
            i = i_c if i_c is not None and rng.random() < 0.7 else int(rng.integers(m))
            b[j] = -a[i, j]
        elif family == "composite" and res is None and rng.random() < 0.8:
          j = int(rng.integers(ly.width))
          w[:, j] = 0.0
          b[j] = 0.0
      if nxt is None and n_layers in targets:
        n_plant = 1 if family != "composite" else int(rng.integers(1, 3))
        for _ in range(n_plant):
          i = i_c if i_c is not None else int(rng.integers(m))
          j = int(rng.choice([k for k in range(ly.width) if k != t[i]]))
          b[j] = b[t[i]] - 1.0 - (a[i, j] - a[i, t[i]])
      a = h @ w           # again: a column may have been zeroed
      params[f"W{l}"] = w
      if ly.bias:
        params[f"b{l}"] = b
        out = a + b
        res = res_out
      else:
        out = a
        res = None if res is None else res / 4
    elif ly.kind in NORMS:
      gamma = rng.uniform(0.5, 1.5, ly.width) * rng.choice([-1.0, 1.0], ly.width)
      beta = rng.normal(size=ly.width) * 0.5
      if family == "composite" and nxt is not None and nxt.kind in KINKED and rng.random() < 0.8:
        j = int(rng.integers(ly.width))
        gamma[j] = 0.0
        beta[j] = 0.0
      params[f"gamma{l}"], params[f"beta{l}"] = gamma, beta
      shift = None
      if ly.bias:
        shift = params[f"c{l}"] = np.float64(rng.normal())
      axis = 0 if ly.kind == "batchnorm" else 1
      out, _ = _norm_fwd(np, h, axis, gamma, beta, shift)
      conv[l] = float(ly.opt == "simple")
      conventions[name] = ly.opt
      res = None
    elif ly.kind == "dropout":
      keep = float(ly.opt)
      mask = (rng.random(h.shape) < keep) * _keep_scale(ly.opt)
      masks[f"d{l}"] = mask
      out = h * mask
      if res is not None and ly.opt == "0.8":
        res = res / 4
    else:
      out = _act(np, ly, h)
      if ly.kind in KINKED:
        n_zero = int(np.sum(h == 0))
        if n_zero:
          kinks[tap_name(arch, l - 1)] = n_zero
        if ly.kind == "relu":
          c = float(rng.choice([0.0, 1.0]))
        elif ly.kind == "leaky_relu":
          c = float(rng.choice([ly.alpha, 1.0]))
        else:
          c = float(rng.choice([-1.0, 0.0, 1.0]))
      else:
        c = float(rng.choice([0.0, 1.0]))
      conv[l] = c
      conventions[name] = c
      if not _exact(ly):
        res = None
      elif ly.kind == "leaky_relu" and res is not None:
        res = res / 4
    h = out
  if arch.head == "svm":
    n_zero = int(np.sum(margins_np(h, t) == 0))
    if n_zero:
      kinks["margin"] = n_zero
    conv[n_layers] = float(rng.choice([0.0, 1.0]))
    conventions["hinge"] = conv[n_layers]
  n_kinks = sum(kinks.values())
  planted = len(targets)
  if family != "composite" and n_kinks != planted:
    return None             # an accidental or a duplicated zero: draw again
  if family == "composite" and planted and not n_kinks:
    return None
  reg = float(rng.choice([0.0, 0.0, 0.1]))
  aux = {"masks": masks, "conv": conv[None, :], "mut": np.zeros((1, 2), np.int32),
         "reg": np.float64(reg)}
  return Model(seed, arch, params, x, t, aux, kinks, conventions)


# ------------------------------------------------------------------ expectations

def row_names(arch: Arch, params: dict) -> list[str]:
  """The checker's rows in backprop order: taps from the output, then parameter leaves."""
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  return list(reversed(tap_order(arch))) + ["params" + jax.tree_util.keystr(p) for p, _ in flat]


def _flat_steps(out: dict) -> dict:
  d = {k: np.asarray(v) for k, v in out.items() if k != "params"}
  flat, _ = jax.tree_util.tree_flatten_with_path(out["params"])
  d.update({"params" + jax.tree_util.keystr(p): np.asarray(v) for p, v in flat})
  return d


@functools.lru_cache(maxsize=64)
def _jitted_derivation(arch: Arch):
  return jax.jit(lambda p, x, t, aux: derivation(p, x, t, aux, arch))


def derivation_steps(model: Model, mutation: Mutation | None = None) -> dict:
  """``{row name: array}`` of the (mutated) derivation."""
  x, t, aux, arch = model.args(mutation)
  return _flat_steps(_jitted_derivation(arch)(model.params, x, t, aux))


def kink_mask(model: Model, name: str, shape) -> np.ndarray:
  """Elements of tap ``name`` at a planted kink (the input of a kinked activation at 0, or
  every score of a sample with an SVM margin at 0); all False for parameter rows."""
  arch = model.arch
  mask = np.zeros(shape, bool)
  order = tap_order(arch)
  if name not in order:
    return mask
  l = order.index(name)
  _, cache = _forward(np, model.params, model.x, model.aux, arch)
  val = cache[l][1]
  if l + 1 < len(arch.layers) and arch.layers[l + 1].kind in KINKED:
    mask |= val == 0
  if l == len(arch.layers) - 1 and arch.head == "svm":
    mask |= np.any(margins_np(val, model.t) == 0, axis=1, keepdims=True)
  return mask


def expected_first_wrong(model: Model, mutation: Mutation, correct: dict | None = None):
  """The first row, in backprop order, that ``mutation`` changes away from any kink,
  or ``None`` when it changes nothing there (a planted error that is no error)."""
  correct = derivation_steps(model) if correct is None else correct
  bad = derivation_steps(model, mutation)
  scale = max(float(np.max(np.abs(v))) if v.size else 0.0 for v in correct.values())
  taps = set(tap_order(model.arch))
  for name in row_names(model.arch, model.params):
    if name not in taps and mutation.code not in PARAM_CODES:
      # a step mutated, yet every tap agrees away from kinks: what differs in the parameters
      # comes from the kink elements, where the mutated value may be another valid convention
      return None
    u, r = bad[name], correct[name]
    if u.shape != r.shape:
      return name
    diff = np.abs(u - r) > 1e-6 * max(float(np.max(np.abs(r))), 1e-3 * scale)
    diff &= ~kink_mask(model, name, r.shape)
    if np.any(diff):
      return name
  return None


def expected_first_wrong_params(model: Model, mutation: Mutation, correct: dict | None = None):
  """For a derivation that returns only the parameter gradient: the first parameter row the
  mutation changes at an element whose value does not depend on the conventions at kinks
  (where the correct derivation and the one with JAX's conventions agree), or ``None``.

  An element whose value depends on the conventions has a range of valid values; a mutation
  that changes only such elements may land inside it and is then no error a check can see."""
  first, _ = _params_changed(model, mutation, correct)
  return first


def _params_changed(model: Model, mutation: Mutation, correct: dict | None = None):
  """``(first row changed at a convention-independent element, {rows changed anywhere})``."""
  correct = derivation_steps(model) if correct is None else correct
  bad = derivation_steps(model, mutation)
  others = [derivation_steps(m) for m in (jax_conventions(model), side_conventions(model, 0),
                                          side_conventions(model, 1))]
  scale = max(float(np.max(np.abs(v))) if v.size else 0.0 for v in correct.values())
  first, changed = None, set()
  for name in row_names(model.arch, model.params):
    if not name.startswith("params"):
      continue
    u, r = bad[name], correct[name]
    if u.shape != r.shape:
      changed.add(name)
      first = first or name
      continue
    tol = 1e-6 * max(float(np.max(np.abs(r))), 1e-3 * scale)
    diff = np.abs(u - r) > tol
    if np.any(diff):
      changed.add(name)
    fixed = np.all([np.abs(r - o[name]) <= tol for o in others], axis=0)
    if first is None and np.any(diff & fixed):
      first = name
  return first, changed


# ------------------------------------------------------------------ one fuzz case

SEEDS_PER_ARCH = 20


def arch_of(seed: int, family: str) -> Arch:
  """The architecture of ``seed``: consecutive seeds share one (the checker's cache)."""
  return draw_arch(seed // SEEDS_PER_ARCH, family)


def describe(arch: Arch) -> str:
  return "→".join(ly.kind for ly in arch.layers) + f"→{arch.head}"


def zero_grad_rows(arch: Arch) -> set[str]:
  """Parameter rows whose true gradient is exactly 0: a bias feeding batch norm, a
  scalar shift inside layer norm."""
  out = set()
  for l, ly in enumerate(arch.layers):
    nxt = arch.layers[l + 1] if l + 1 < len(arch.layers) else None
    if ly.kind == "affine" and ly.bias and nxt is not None and nxt.kind == "batchnorm":
      out.add(f"params['b{l}']")
    if ly.kind == "layernorm" and ly.bias:
      out.add(f"params['c{l}']")
  return out


class Outcome(NamedTuple):
  """What one seed gave: the correct derivation's report and one planted error's."""

  family: str
  seed: int
  arch: str
  kinks: dict
  ok: bool                 # the correct derivation came out ok (no false alarm)
  n_kink: int              # kink elements the checker reported
  bad_rows: tuple          # (row, verdict, note) of rows judged bad on the correct derivation
  referee: str
  alarm_class: str         # "" or a key of ALARM_CLASSES
  mutation: str
  expected: str | None     # None: the mutation changes nothing away from kinks (not counted)
  got: str | None
  found: bool              # the planted error made the report not ok
  localised: bool          # ... and report.first_wrong == expected
  t_check: float
  t_planted: float


def jax_conventions(model: Model) -> Model:
  """The same model with the derivation taking JAX's own value at every kink (relu'(0) = 0
  for jax.nn.relu, ½ for jnp.maximum; leaky relu'(0) = 1 for jax.nn.leaky_relu, α for
  jnp.where; |x|'(0) = 1; hinge'(0) = ½), so it equals autodiff up to rounding."""
  conv = np.array(model.aux["conv"], np.float64)
  for l, ly in enumerate(model.arch.layers):
    if ly.kind == "relu":
      conv[0, l] = 0.0 if ly.opt == "nn" else 0.5
    elif ly.kind == "leaky_relu":
      conv[0, l] = 1.0 if ly.opt == "nn" else ly.alpha
    elif ly.kind == "abs":
      conv[0, l] = 1.0
  conv[0, len(model.arch.layers)] = 0.5
  return model._replace(aux={**model.aux, "conv": conv})


def side_conventions(model: Model, side: int) -> Model:
  """The same model with the derivation taking, at every kink, the lower (``side=0``: relu′
  0, leaky relu′ α, |x|′ −1, hinge 0) or the upper one-sided value (``side=1``: 1, 1, 1, 1)."""
  conv = np.array(model.aux["conv"], np.float64)
  for l, ly in enumerate(model.arch.layers):
    if ly.kind == "relu":
      conv[0, l] = float(side)
    elif ly.kind == "leaky_relu":
      conv[0, l] = 1.0 if side else ly.alpha
    elif ly.kind == "abs":
      conv[0, l] = 1.0 if side else -1.0
  conv[0, len(model.arch.layers)] = float(side)
  return model._replace(aux={**model.aux, "conv": conv})


ALARM_CLASSES = {
    "zero_grad_row": "a row whose true gradient is exactly 0 (bias before batch norm, shift "
                     "inside layer norm) is judged on round-off",
    "rounding": "a row holding values much smaller than the terms summed into them (cancellation) "
                "misses rtol=1e-10 by round-off; passes at rtol=1e-8",
    "composite_kink": "several kinks crossed by one perturbation: valid local conventions compose "
                      "outside the one-sided derivatives; the same derivation with JAX's "
                      "conventions passes",
    "probe_cap": "rows left unprobed once the per-check kink-probe cap (64) is spent on other "
                 "kink rows are judged wrong; with JAX's conventions the derivation passes",
    "referee": "the referee judged jax.grad itself wrong",
    "other": "none of the above",
}


def classify_alarm(model: Model, report, deriv=None) -> str:
  """Why a correct derivation was not judged ok: a key of :data:`ALARM_CLASSES` ("" if ok)."""
  deriv = derivation if deriv is None else deriv
  if report.ok:
    return ""
  bad = [r for r in report.rows if r.verdict in ("wrong", "missing", "shape")]
  if report.referee is not None and report.referee.verdict == "wrong":
    return "referee"
  if bad and all(r.name in zero_grad_rows(model.arch) for r in bad):
    return "zero_grad_row"
  if jaxreg.check(deriv, loss, model.params, *model.args(), rtol=1e-8).ok:
    return "rounding"
  if jaxreg.check(deriv, loss, model.params, *jax_conventions(model).args()).ok:
    if all(r.note and "probe cap reached" in r.note for r in bad):
      return "probe_cap"
    return "composite_kink"
  return "other"


def run_seed(seed: int, family: str, mutation_index: int | None = None,
             params_only: bool = False) -> Outcome:
  """Checks seed's correct derivation and one planted error (drawn from the seed).

  With ``params_only`` the derivation returns only the parameter gradient
  (:func:`derivation_params`) and a planted error counts only where it changes
  an element whose value does not depend on the conventions at kinks
  (:func:`expected_first_wrong_params`)."""
  arch = arch_of(seed, family)
  model = draw_model(seed, arch)
  deriv = derivation_params if params_only else derivation
  expect = expected_first_wrong_params if params_only else expected_first_wrong
  t0 = time.perf_counter()
  report = jaxreg.check(deriv, loss, model.params, *model.args())
  t1 = time.perf_counter()
  bad_rows = tuple((r.name, r.verdict, r.note or r.diagnosis or "") for r in report.rows
                   if r.verdict in ("wrong", "missing", "shape"))
  muts = mutations(arch, float(model.aux["reg"]))
  rng = np.random.default_rng([seed, 3])
  order = rng.permutation(len(muts)) if mutation_index is None else [mutation_index]
  correct = derivation_steps(model)
  mu, expected = muts[order[0]], None
  for k in order:           # the first drawn mutation that changes something away from kinks
    mu = muts[k]
    expected = expect(model, mu, correct)
    if expected is not None:
      break
  got, found, localised, t_planted = None, False, False, 0.0
  if expected is not None:
    t2 = time.perf_counter()
    planted = jaxreg.check(deriv, loss, model.params, *model.args(mu))
    t_planted = time.perf_counter() - t2
    got = planted.first_wrong
    found = not planted.ok
    localised = found and got == expected
    if params_only and found and not localised:
      # a row before the first convention-independent change may be changed too, at elements
      # whose value depends on the conventions, to a value no convention gives
      _, changed = _params_changed(model, mu, correct)
      names = row_names(arch, model.params)
      localised = got in changed and names.index(got) <= names.index(expected)
  return Outcome(family, seed, describe(arch), dict(model.kinks), report.ok, report.n_kink,
                 bad_rows, report.referee.verdict if report.referee else "-",
                 classify_alarm(model, report, deriv), mu.name, expected, got, found, localised,
                 t1 - t0, t_planted)
