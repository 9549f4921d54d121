"""First-layer gradient norms of freshly initialised MLPs, many seeds at once.

The shared measurement behind the vanishing-gradient (S3.5) and Leaky-ReLU
(S0.8) experiments. A *probe* is a net of ``depth`` hidden layers of equal
``width`` (each followed by the activation) and a linear output of width 1,
fed a batch of standard-normal inputs with standard-normal targets under
the mean squared error. Per seed, the same seed gives the same inputs,
targets and (for the same ``init`` and ``weight_scale``) the same weights,
whatever the activation, so two activations can be compared pairwise.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _activations
from jaxreg import _losses
from jaxreg._mlp import INITS, MLP


class Probe(NamedTuple):
  """One activation at one initialisation.

  Attributes:
    label: the name shown in tables and legends.
    activation: an activation or its name.
    init: one of :data:`jaxreg.MLP`'s init schemes.
    weight_scale: every weight is multiplied by this after ``init`` (1 = as is).
  """

  label: str
  activation: Any
  init: str
  weight_scale: float = 1.0


def check_probe(probe, fname: str) -> Probe:
  """Raises a clear error unless ``probe`` is a valid :class:`Probe`."""
  if not isinstance(probe, Probe):
    raise TypeError(f"{fname}: each probe must be a jaxreg.experiments.Probe, "
                    f"got {type(probe).__name__} {probe!r}.")
  _activations.get(probe.activation, argname=f"{fname}: probe {probe.label!r} activation")
  if probe.init not in INITS:
    raise ValueError(f"{fname}: probe {probe.label!r} `init` must be one of {INITS}, "
                     f"got {probe.init!r}.")
  return probe


def check_depths(depths, fname: str) -> tuple[int, ...]:
  """A sorted tuple of distinct ints ``>= 1``, or a clear error."""
  try:
    out = tuple(sorted({int(d) for d in depths}))
  except TypeError:
    raise TypeError(f"{fname}: `depths` must be a sequence of ints, got {depths!r}.") from None
  if not out or out[0] < 1 or any(int(d) != d for d in depths):
    raise ValueError(f"{fname}: `depths` must be ints >= 1, got {depths!r}.")
  return out


def check_count(value, fname: str, argname: str, low: int = 1) -> int:
  """An int ``>= low``, or a clear error."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"{fname}: `{argname}` must be an int >= {low}, got {value!r}.")
  return int(value)


def _norm(a: jax.Array) -> jax.Array:
  """Frobenius norm without underflow: ``m·‖a/m‖`` with ``m = max|a|`` (``|a|²`` of a
  vanished gradient would round to 0 in float32)."""
  m = jnp.max(jnp.abs(a))
  safe = jnp.where(m > 0, m, 1.0)
  return jnp.where(m > 0, safe * jnp.sqrt(jnp.sum(jnp.square(a / safe))), 0.0)


class ProbeDraw(NamedTuple):
  """Initial parameters and a batch for ``n_seeds`` nets (leading axis: seed).

  Attributes:
    w: hidden weights, ``(n_seeds, max_depth, width, width)``.
    b: hidden biases, ``(n_seeds, max_depth, width)``.
    out_w: output weights, ``(n_seeds, width, 1)``.
    out_b: output biases, ``(n_seeds, 1)``.
    x: inputs, ``(n_seeds, batch, width)``, standard normal.
    t: targets, ``(n_seeds, batch, 1)``, standard normal.
  """

  w: jax.Array
  b: jax.Array
  out_w: jax.Array
  out_b: jax.Array
  x: jax.Array
  t: jax.Array


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _draw(init: str, max_depth: int, width: int, batch: int, n_seeds: int, seed_keys: jax.Array,
          weight_scale: jax.Array) -> ProbeDraw:
  # A hidden layer's initial weights depend only on its fan-in and fan-out, so
  # jaxreg.MLP's init of one square layer, mapped over keys, draws the whole
  # stack. lax.map, not vmap: a vmapped multi-dimensional draw compiles slowly
  # on CPU.
  square = MLP((width, width), None, init=init)
  head = MLP((width, 1), None, init=init)
  k = jax.vmap(lambda key: jax.random.split(key, 4))(seed_keys)          # (S, 4)
  hidden_keys = jax.vmap(lambda key: jax.random.split(key, max_depth))(k[:, 0]).reshape(-1)
  hidden = jax.lax.map(lambda key: square.init(key, jnp.float32)[0], hidden_keys)
  out = jax.lax.map(lambda key: head.init(key, jnp.float32)[0], k[:, 1])
  x = jax.lax.map(lambda key: jax.random.normal(key, (batch, width), jnp.float32), k[:, 2])
  t = jax.lax.map(lambda key: jax.random.normal(key, (batch, 1), jnp.float32), k[:, 3])
  return ProbeDraw(
      w=weight_scale * hidden["w"].reshape(n_seeds, max_depth, width, width),
      b=hidden["b"].reshape(n_seeds, max_depth, width),
      out_w=weight_scale * out["w"], out_b=out["b"], x=x, t=t)


def draw(probe: Probe, max_depth: int, *, n_seeds: int, width: int, batch: int,
         seed: int = 0) -> ProbeDraw:
  """``jaxreg.MLP``'s initialisation of ``max_depth`` square hidden layers and a
  width-1 output (weights times ``probe.weight_scale``), and a batch, per seed.

  Seed ``i`` draws from ``fold_in(key(seed), i)``, so for the same ``init``
  and ``weight_scale`` two probes get the same weights and data.
  """
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(n_seeds))
  return _draw(probe.init, max_depth, width, batch, n_seeds, keys,
               jnp.asarray(probe.weight_scale, jnp.float32))


def probe_loss(act, w, b, out_w, out_b, depth, x, t):
  """``jaxreg.losses.mse`` (``½·mean_rows Σ (y − t)²``) of the net made of the first
  ``depth`` stacked hidden layers and the output layer; the layers from
  ``depth`` on are skipped (identity).

  For a given ``depth`` this is the same function of the first ``depth``
  layers' parameters as a ``jaxreg.MLP`` of that depth with the ``mse`` loss
  (``tests/test_experiments.py`` checks it against ``MLP.backprop``), but
  ``depth`` can be a traced value, so one compilation serves every depth.
  """
  def layer(h, wbl):
    w_l, b_l, l = wbl
    return jnp.where(l < depth, act(h @ w_l + b_l), h), None
  h, _ = jax.lax.scan(layer, x, (w, b, jnp.arange(w.shape[0])))
  y = h @ out_w + out_b
  return _losses.mse.fn(y, t)


@functools.partial(jax.jit, static_argnums=0)
def _norms(activation, d: ProbeDraw, depth: jax.Array) -> jax.Array:
  def one(w, b, out_w, out_b, x, t):
    g_w = jax.grad(probe_loss, argnums=1)(activation.fn, w, b, out_w, out_b, depth, x, t)
    return _norm(g_w[0])
  return jax.vmap(one)(*d)


def first_layer_grad_norms(probe: Probe, depths: tuple[int, ...], *, n_seeds: int, width: int,
                           batch: int, seed: int = 0) -> np.ndarray:
  """``‖∂L/∂W_1‖_F`` of fresh nets, for every depth and seed, in float32.

  Seed ``i`` draws the inputs, targets and one stack of ``max(depths)``
  hidden layers (:func:`draw`); the net of depth ``d`` uses the first ``d``
  of them. So depths share weights within a seed (which makes the per-seed
  slope over depth less noisy) and seeds are independent.

  Args:
    probe: the activation and initialisation.
    depths: numbers of hidden layers.
    n_seeds: number of independent nets per depth (vectorised with ``jax.vmap``).
    width: input and hidden width.
    batch: samples per batch.
    seed: base seed.

  Returns:
    Shape ``(len(depths), n_seeds)``, float64.
  """
  d = draw(probe, max(depths), n_seeds=n_seeds, width=width, batch=batch, seed=seed)
  act = _activations.get(probe.activation)
  rows = [_norms(act, d, jnp.asarray(depth, jnp.int32)) for depth in depths]
  return np.asarray(jnp.stack(rows), dtype=np.float64)


def per_layer_factor(depths: tuple[int, ...], norms: np.ndarray) -> np.ndarray:
  """Per-seed geometric rate of change per layer: ``exp`` of the least-squares
  slope of ``log ‖∂L/∂W_1‖`` against depth.

  Args:
    depths: shape ``(D,)``, at least two distinct depths.
    norms: shape ``(D, S)``, one column per seed.

  Returns:
    Shape ``(S,)``: below 1 the gradient vanishes with depth, above 1 it explodes.
  """
  d = np.asarray(depths, dtype=np.float64)
  logs = np.log(np.maximum(norms, np.finfo(np.float64).tiny))
  dc = d - d.mean()
  slope = dc @ (logs - logs.mean(axis=0)) / (dc @ dc)
  return np.exp(slope)


class Spread(NamedTuple):
  """Median and interquartile range of a sample."""

  median: float
  q25: float
  q75: float


def spread(values: np.ndarray) -> Spread:
  """The median and quartiles of ``values``."""
  q25, med, q75 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
  return Spread(float(med), float(q25), float(q75))
