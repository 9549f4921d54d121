"""The reference side of a check: ``jax.grad`` of the loss w.r.t. params and taps,
the referee's directional differences, and one-sided probes at suspicious elements.

The loss is traced to a jaxpr on every check (its taps marked, see
:mod:`jaxreg._checker.tap`); the compiled reference around it is cached by
that program (:mod:`jaxreg._checker.program_cache`), with the loss's
constants passed as arguments. So a re-defined loss of the same structure
reuses compiled work, and a changed global or closed-over value the loss
reads is always seen. Non-array leaves of ``args``/``kwargs`` (Python
numbers, strings, ``None``) are static (part of the traced program); array
leaves are traced.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._checker import program_cache as _program_cache
from jaxreg._checker import tap as _tap

# Errors that mean "this function cannot be traced abstractly": fall back to eager.
TRACE_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                jax.errors.TracerIntegerConversionError, jax.errors.TracerArrayConversionError,
                jax.errors.NonConcreteBooleanIndexError)


def _is_array(x) -> bool:
  return isinstance(x, (jax.Array, np.ndarray, np.generic))


class Split:
  """``(args, kwargs)`` split into a static part and traced arrays (the array leaves)."""

  def __init__(self, args: tuple, kwargs: dict):
    leaves, self.treedef = jax.tree_util.tree_flatten((tuple(args), dict(kwargs)),
                                                      is_leaf=lambda x: x is None)
    self.is_dyn = tuple(_is_array(x) for x in leaves)
    self.static = tuple(None if d else x for x, d in zip(leaves, self.is_dyn))
    self.dyn = [x for x, d in zip(leaves, self.is_dyn) if d]

  def structure(self) -> "Split":
    """A copy without the traced arrays, for closures kept in the cache (holds no data)."""
    s = object.__new__(Split)
    s.__dict__.update(self.__dict__)
    s.dyn = None
    return s

  def rebuild(self, dyn) -> tuple[tuple, dict]:
    it = iter(dyn)
    leaves = [next(it) if d else s for s, d in zip(self.static, self.is_dyn)]
    return jax.tree_util.tree_unflatten(self.treedef, leaves)


cached = _program_cache.cached


class Static:
  """A pytree node with no leaves whose aux data is ``value``.

  Returned from a jitted function, it carries facts known at trace time (tap
  names, how outputs pair with rows) out with the results: jit keeps it in
  the output's tree structure, so a call returns the facts of the trace that
  compiled it. The checker's compiled functions are cached under keys that
  determine those facts (the traced programs, tap names and shapes), and the
  loss's taps are attached from the current trace, outside the compiled call.
  """

  def __init__(self, value):
    self.value = value


jax.tree_util.register_pytree_node(Static, lambda s: ((), s.value), lambda aux, _: Static(aux))


class TracedLoss(NamedTuple):
  """The loss traced for one check: the program with its taps marked, and its cache key."""

  traced: Any
  key: tuple


class Taps(NamedTuple):
  """The loss's taps: names in the order the loss taps them, and their specs."""

  order: tuple
  specs: dict


class RefereeSamples(NamedTuple):
  """What the referee measured (arrays; judged by :mod:`jaxreg._checker.referee`).

  Attributes:
    values: ``(directions, 4)`` loss values at ``θ + h v``, ``θ − h v``, ``θ + 2h v``, ``θ − 2h v``.
    dots: ``(directions,)`` ``⟨∇L, v⟩`` by autodiff.
    h: the step.
    g_norm: ``‖∇L‖₂`` over all parameters.
    size: number of parameters.
    loss: ``L(θ)``.
  """

  values: Any
  dots: Any
  h: Any
  g_norm: Any
  size: Any
  loss: Any


class Reference(NamedTuple):
  """The reference side of a check (from :func:`compute_reference`, or :func:`make_eager_reference`).

  Attributes:
    loss: ``L(θ)``.
    g_params: ``∂L/∂params`` (a pytree like params).
    g_taps: ``{tap name: ∂L/∂(tapped quantity)}``.
    tapped: ``{tap name: forward value}``.
    referee: :class:`RefereeSamples`, or ``None`` without a referee.
    taps: :class:`Static` holding :class:`Taps`.
  """

  loss: Any
  g_params: Any
  g_taps: dict
  tapped: dict
  referee: Any
  taps: Static


def _chunk(n_items: int, size: int) -> int:
  """A ``lax.map`` batch size keeping about 4e6 perturbed elements in flight."""
  return max(1, min(n_items, int(4e6 // max(size, 1))))


def _float_eps(dtype) -> float:
  return float(jnp.finfo(dtype).eps)


def make_eager_reference(loss: Callable, split: Split, n_dirs: int):
  """Builds ``ref(params, dyn, key) -> Reference`` for a loss that cannot be traced abstractly.

  Discovery runs the loss for real (taps record their names as it runs), the
  gradient is taken eagerly and the referee loops in Python. Nothing is cached.
  """
  split = split.structure()

  def call_loss(p, dyn):
    args, kwargs = split.rebuild(dyn)
    return loss(p, *args, **kwargs)

  def ref(params, dyn, key):
    out, order, specs = _tap._discover_eager(call_loss, params, dyn)
    _require_scalar(out)
    eps0 = {n: jnp.zeros(s.shape, s.dtype) for n, s in specs.items()}

    def f(p, eps):
      with _tap._Context("perturb", eps) as ctx:
        value = call_loss(p, dyn)
      return value, dict(ctx.values)

    (value, tapped), (g_params, g_taps) = jax.value_and_grad(
        f, argnums=(0, 1), has_aux=True)(params, eps0)
    samples = None
    if n_dirs > 0:
      samples = _referee(call_loss, params, dyn, key, value, g_params, n_dirs, True)
    return Reference(value, g_params, g_taps, tapped, samples, Static(Taps(tuple(order), specs)))

  return ref


def _require_scalar(out):
  if not (isinstance(out, jax.ShapeDtypeStruct) and tuple(out.shape) == ()
          and jnp.issubdtype(out.dtype, jnp.floating)):
    got = (f"shape {tuple(out.shape)} dtype {out.dtype}" if isinstance(out, jax.ShapeDtypeStruct)
           else f"a {type(out).__name__}")
    raise ValueError(
        f"check: `loss(params, *args)` must return a floating-point scalar, got {got}. "
        "Reduce it (e.g. jnp.mean) inside the loss.")


def _with_args(fn: Callable, split: Split):
  """``f(params, dyn) = fn(params, *args, **kwargs)`` with the arguments rebuilt from ``dyn``."""
  split = split.structure()

  def call(p, dyn):
    args, kwargs = split.rebuild(dyn)
    return fn(p, *args, **kwargs)

  return call


def trace_loss(loss: Callable, split: Split, params) -> TracedLoss:
  """The loss traced at ``(params, split.dyn)`` with its taps marked, and its program key.

  Raises:
    ValueError: the loss does not return a floating-point scalar, or a tap error.
    One of :data:`TRACE_ERRORS`: the loss cannot be traced abstractly.
  """
  traced = _tap.trace_taps(_with_args(loss, split), params, split.dyn)
  _require_scalar(traced.out_aval)
  return TracedLoss(traced, (_program_cache.program_key(traced.jaxpr), traced.in_tree))


def compute_reference(loss: Callable, split: Split, n_dirs: int, params,
                      seed) -> tuple[Reference, TracedLoss]:
  """The :class:`Reference`, compiled once per loss program, and the traced loss.

  The loss is traced on every call; the compiled reference is reused for
  any loss that traces to the same program (constants are arguments). Its
  taps are those of this trace. ``seed`` is the referee's seed (``np.uint32``).
  """
  tl = trace_loss(loss, split, params)
  fn = cached(("reference", tl.key, n_dirs), lambda: jax.jit(_traced_reference(tl.traced, n_dirs)))
  ref = fn(tl.traced.consts, params, split.dyn, seed)
  taps = Taps(tuple(tl.traced.order), dict(tl.traced.specs))
  return ref._replace(taps=Static(taps)), tl


def _traced_reference(traced: _tap.Traced, n_dirs: int):
  """``ref(consts, params, dyn, key) -> Reference`` (no taps) evaluating the traced loss."""
  traced = traced._replace(consts=())     # kept in the cache: the program, not its data

  def ref(consts, params, dyn, key):
    def f(p, eps):
      return _tap.call_traced(traced, consts, (p, dyn), eps)

    def call_loss(p, dyn_):
      return _tap.call_traced(traced, consts, (p, dyn_), {})[0]

    eps0 = {n: jnp.zeros(s.shape, s.dtype) for n, s in traced.specs.items()}
    (value, tapped), (g_params, g_taps) = jax.value_and_grad(
        f, argnums=(0, 1), has_aux=True)(params, eps0)
    samples = None
    if n_dirs > 0:
      samples = _referee(call_loss, params, dyn, key, value, g_params, n_dirs, False)
    return Reference(value, g_params, g_taps, tapped, samples, Static(None))

  return ref


def trace_derivation(derivation: Callable, params, split: Split):
  """The derivation traced at ``(params, split.dyn)``: ``(fn, dsplit, key)``.

  ``fn(params, *dargs, **dkwargs)`` with ``dargs, dkwargs = dsplit.rebuild(dsplit.dyn)``
  evaluates the traced program; ``dsplit`` carries the program's constants
  as a leading traced argument, so a compiled function around ``fn`` holds
  no data and is reused for every derivation with the same program ``key``.
  """
  program = _program_cache.trace(_with_args(derivation, split), params, split.dyn)
  args, kwargs = split.rebuild(split.dyn)
  dsplit = Split((program.consts,) + tuple(args), kwargs)
  program = program._replace(consts=(), out_shape=None)   # kept in the cache: no data

  def fn(p, consts, *args_, **kwargs_):
    return _program_cache.evaluate(program, consts, p, Split(args_, kwargs_).dyn)

  return fn, dsplit, program.key


def _signs(n: int, salt, dtype):
  """``n`` pseudo-random ±1 from an integer hash of the index and ``salt`` (cheap in a jit)."""
  i = jnp.arange(n, dtype=jnp.uint32) + jnp.asarray(salt, jnp.uint32)
  i = (i ^ (i >> 16)) * jnp.uint32(0x7FEB352D)
  i = (i ^ (i >> 15)) * jnp.uint32(0x846CA68B)
  i = i ^ (i >> 16)
  return jnp.where((i & 1) == 1, 1.0, -1.0).astype(dtype)


def _referee(call_loss, params, dyn, key, value, g_params, n_dirs, eager):
  """Loss values at ``θ ± h v``, ``θ ± 2h v`` for ``n_dirs`` random unit directions ``v``.

  Directions are random signs over all parameters, scaled to unit norm: the
  sign of flat element ``i`` hashes ``i`` with the seed ``key`` and the
  direction number (no RNG state, cheap for a million parameters). The step
  ``h`` is ``δ·max(‖θ‖₂, 0.01·√P)`` with ``δ = 6e-6`` in float64 (``3e-3``
  otherwise), so each element moves by about ``δ`` times the parameters' RMS.
  The ``4·n_dirs`` evaluations run in a ``lax.map`` (one buffer reused); the
  norms and ``⟨∇L, v⟩`` are one variadic reduction over the flattened
  parameters (a reduction per leaf would cost ~0.05 s of compile time each).
  """
  leaves, treedef = jax.tree_util.tree_flatten(params)
  g_leaves = jax.tree_util.tree_leaves(g_params)
  sizes = [int(np.size(x)) for x in leaves]
  offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
  total = sum(sizes)
  dtype = jnp.result_type(*leaves)
  inv = 1.0 / math.sqrt(total)
  seed = jnp.asarray(key, jnp.uint32) * jnp.uint32(1000003)
  salts = [seed + jnp.uint32(((j + 1) * 0x9E3779B9) & 0xFFFFFFFF) for j in range(n_dirs)]
  flat_x = jnp.concatenate([jnp.ravel(x).astype(dtype) for x in leaves])
  flat_g = jnp.concatenate([jnp.ravel(g).astype(dtype) for g in g_leaves])
  ops = [flat_x * flat_x, flat_g * flat_g] + [_signs(total, s_, dtype) * flat_g for s_ in salts]
  zero = jnp.zeros((), dtype)
  sums = jax.lax.reduce(tuple(ops), (zero,) * len(ops),
                        lambda a, b: tuple(x + y for x, y in zip(a, b)), (0,))
  norm, g_norm = jnp.sqrt(sums[0]), jnp.sqrt(sums[1])
  dots = jnp.stack(sums[2:]) * inv if n_dirs else jnp.zeros((0,), dtype)
  delta = 6e-6 if dtype == jnp.float64 else 3e-3
  h = delta * jnp.maximum(norm, 1e-2 * math.sqrt(total))
  salt_arr = jnp.stack(salts)

  def one(item):
    j, sgn = item
    salt = salt_arr[j]
    moved = [x + (sgn * h * inv).astype(x.dtype) *
             _signs(n, salt + jnp.uint32(int(off) & 0xFFFFFFFF), x.dtype).reshape(np.shape(x))
             for x, n, off in zip(leaves, sizes, offsets)]
    return call_loss(jax.tree_util.tree_unflatten(treedef, moved), dyn)

  js = np.repeat(np.arange(n_dirs, dtype=np.int32), 4)
  ss = np.tile(np.array([1.0, -1.0, 2.0, -2.0]), n_dirs).astype(dtype)
  if eager:
    vals = jnp.stack([one((j, s_)) for j, s_ in zip(js, ss)])
  else:
    vals = jax.lax.map(one, (jnp.asarray(js), jnp.asarray(ss)))
  return RefereeSamples(vals.reshape(n_dirs, 4).astype(dtype), dots.astype(dtype), h, g_norm,
                        jnp.asarray(total, dtype), value)


def one_sided(base, vals, h, eps_rel):
  """One-sided derivatives ``(forward, backward, margin)`` from ``L(θ)``, ``L(θ±h)``, ``L(θ±2h)``.

  Both are Richardson-extrapolated (``2·D(h) − D(2h)``, error ``−L‴h²/3``).
  The central differences at ``h`` and ``2h`` differ by ``L‴h²/2`` whether
  or not there is a kink at ``θ`` (a kink shifts both by the same half-jump),
  so ``4·|c(h) − c(2h)|`` plus the rounding of the loss bounds the error of
  both one-sided values; a jump well above ``margin`` is a kink.
  """
  lp1, lm1, lp2, lm2 = vals[..., 0], vals[..., 1], vals[..., 2], vals[..., 3]
  with np.errstate(all="ignore"):   # a non-finite loss makes non-finite estimates, judged later
    f1, f2 = (lp1 - base) / h, (lp2 - base) / (2 * h)
    b1, b2 = (base - lm1) / h, (base - lm2) / (2 * h)
    fwd, bwd = 2 * f1 - f2, 2 * b1 - b2
    c1, c2 = (lp1 - lm1) / (2 * h), (lp2 - lm2) / (4 * h)
    noise = 8 * eps_rel * (np.abs(base) + np.abs(lp2) + np.abs(lm2)) / h
    margin = 4 * np.abs(c1 - c2) + noise
  return fwd, bwd, margin
