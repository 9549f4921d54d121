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
from jax import lax

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
      salts = _salts(key, n_dirs)
      sums = _referee_sums(params, g_params, np.asarray(salts, np.uint32))
      samples = _referee(sums, salts, params, value,
                         lambda salt, step: call_loss(_moved(params, salt, step), dyn))
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
  The referee's loss evaluations are a second compiled program of the same
  loss (:func:`_traced_loss_at`), called once per evaluation.
  """
  tl = trace_loss(loss, split, params)
  consts = tl.traced.consts
  fn = cached(("reference", tl.key, n_dirs), lambda: jax.jit(_traced_reference(tl.traced, n_dirs)))
  salts = _salts(seed, n_dirs)
  ref = fn(consts, params, split.dyn, np.asarray(salts, np.uint32))
  if n_dirs > 0:
    loss_at = cached(("referee", tl.key), lambda: jax.jit(_traced_loss_at(tl.traced)))
    ref = ref._replace(referee=_referee(
        ref.referee, salts, params, ref.loss,
        lambda salt, step: loss_at(consts, params, split.dyn, salt, step)))
  taps = Taps(tuple(tl.traced.order), dict(tl.traced.specs))
  return ref._replace(taps=Static(taps)), tl


def _traced_reference(traced: _tap.Traced, n_dirs: int):
  """``ref(consts, params, dyn, salts) -> Reference`` (no taps) evaluating the traced loss.

  With ``n_dirs > 0`` its ``referee`` is the tuple of :func:`_referee_sums`
  (``salts`` holds the directions' seeds), from which :func:`_referee` makes
  the :class:`RefereeSamples`.
  """
  traced = traced._replace(consts=())     # kept in the cache: the program, not its data

  def ref(consts, params, dyn, salts):
    def f(p, eps):
      return _tap.call_traced(traced, consts, (p, dyn), eps)

    eps0 = {n: jnp.zeros(s.shape, s.dtype) for n, s in traced.specs.items()}
    (value, tapped), (g_params, g_taps) = jax.value_and_grad(
        f, argnums=(0, 1), has_aux=True)(params, eps0)
    sums = _referee_sums(params, g_params, salts) if n_dirs > 0 else None
    return Reference(value, g_params, g_taps, tapped, sums, Static(None))

  return ref


def _traced_loss_at(traced: _tap.Traced):
  """``loss_at(consts, params, dyn, salt, step)``: the traced loss at :func:`_moved` params."""
  traced = traced._replace(consts=())     # kept in the cache: the program, not its data

  def loss_at(consts, params, dyn, salt, step):
    return _tap.call_traced(traced, consts, (_moved(params, salt, step), dyn), {})[0]

  return loss_at


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


def hash_u32(i):
  """An integer mix of uint32 ``i`` (xor-shift-multiply), elementwise, in ``lax`` primitives."""
  u32 = np.uint32
  i = lax.mul(lax.bitwise_xor(i, lax.shift_right_logical(i, u32(16))), u32(0x7FEB352D))
  i = lax.mul(lax.bitwise_xor(i, lax.shift_right_logical(i, u32(15))), u32(0x846CA68B))
  return lax.bitwise_xor(i, lax.shift_right_logical(i, u32(16)))


def _signs(n: int, salt, dtype):
  """``n`` pseudo-random ±1 from an integer hash of the index and ``salt`` (cheap in a jit).

  Written with ``lax`` primitives: each ``jnp`` operator is a jitted function of its own,
  which costs tracing and lowering time (not run time) wherever this is traced.
  """
  u32 = np.uint32
  i = hash_u32(lax.add(lax.iota(u32, n), lax.convert_element_type(salt, u32)))
  bit = lax.convert_element_type(lax.bitwise_and(i, u32(1)), dtype)   # 0 or 1
  return lax.sub(lax.add(bit, bit), lax.full((), 1, dtype))            # -1 or +1, exactly


def _salts(key, n_dirs: int) -> list[int]:
  """The seeds of the referee's ``n_dirs`` directions (uint32 arithmetic, as Python ints)."""
  seed = (int(key) * 1000003) & 0xFFFFFFFF
  return [(seed + (j + 1) * 0x9E3779B9) & 0xFFFFFFFF for j in range(n_dirs)]


def _layout(params):
  """``(leaves, treedef, sizes, offsets, total, dtype)`` of the flattened parameters."""
  leaves, treedef = jax.tree_util.tree_flatten(params)
  sizes = [int(np.size(x)) for x in leaves]
  offsets = [int(o) for o in np.cumsum([0] + sizes[:-1])]
  return leaves, treedef, sizes, offsets, sum(sizes), jnp.result_type(*leaves)


def _referee_sums(params, g_params, salts) -> tuple:
  """``(‖θ‖², ‖∇L‖², Σᵢ sᵢ ∂L/∂θᵢ per direction)``, one variadic reduction (traceable).

  ``sᵢ = ±1`` is the sign of flat element ``i`` of a direction, an integer
  hash of ``i`` and the direction's seed in ``salts`` (:func:`_signs`). One
  reduction over the flattened parameters: a reduction per leaf would cost
  compile time for each.
  """
  leaves, _, sizes, _, total, dtype = _layout(params)
  g_leaves = jax.tree_util.tree_leaves(g_params)
  flat = lambda xs: lax.concatenate([lax.reshape(lax.convert_element_type(x, dtype), (n,))
                                     for x, n in zip(xs, sizes)], 0)
  flat_x, flat_g = flat(leaves), flat(g_leaves)
  ops = [lax.mul(flat_x, flat_x), lax.mul(flat_g, flat_g)] + \
      [lax.mul(_signs(total, lax.index_in_dim(salts, j, keepdims=False), dtype), flat_g)
       for j in range(int(np.shape(salts)[0]))]
  zero = jnp.zeros((), dtype)
  return tuple(lax.reduce(tuple(ops), (zero,) * len(ops),
                          lambda a, b: tuple(x + y for x, y in zip(a, b)), (0,)))


def _moved(params, salt, step):
  """``θ + step·s`` for the direction of seed ``salt``: element ``i`` moves by ``±step`` (traceable)."""
  leaves, treedef, sizes, offsets, _, _ = _layout(params)
  salt = lax.convert_element_type(salt, np.uint32)
  moved = [lax.add(x, lax.mul(lax.convert_element_type(step, x.dtype), lax.reshape(
      _signs(n, lax.add(salt, np.uint32(off & 0xFFFFFFFF)), x.dtype), np.shape(x))))
           for x, n, off in zip(leaves, sizes, offsets)]
  return jax.tree_util.tree_unflatten(treedef, moved)


def _referee(sums, salts, params, value, loss_at) -> RefereeSamples:
  """Loss values at ``θ ± h v``, ``θ ± 2h v`` for ``len(salts)`` random unit directions ``v``.

  Directions are random signs over all parameters, scaled to unit norm: the
  sign of flat element ``i`` hashes ``i`` with the direction's seed (from
  the check's ``seed`` and the direction number, :func:`_salts`; no RNG
  state, cheap for a million parameters). The step ``h`` is
  ``δ·max(‖θ‖₂, 0.01·√P)`` with ``δ = 6e-6`` in float64 (``3e-3``
  otherwise), so each element moves by about ``δ`` times the parameters'
  RMS. ``sums`` are :func:`_referee_sums` (norms and ``⟨∇L, v⟩``); the
  scalars are finished here on the host, in the parameters' dtype, and
  ``loss_at(salt, step)`` evaluates ``L`` at :func:`_moved` parameters, once
  per point (``4·len(salts)`` calls).
  """
  _, _, _, _, total, dtype = _layout(params)
  dt = np.dtype(dtype).type
  s = [dt(x) for x in jax.device_get(tuple(sums))]
  inv = dt(1.0 / math.sqrt(total))
  norm, g_norm = np.sqrt(s[0]), np.sqrt(s[1])
  dots = np.asarray(s[2:], dtype) * inv
  delta = 6e-6 if dtype == jnp.float64 else 3e-3
  h = dt(delta) * np.maximum(norm, dt(1e-2 * math.sqrt(total)))
  vals = [loss_at(np.uint32(salt), dt(sgn) * h * inv)
          for salt in salts for sgn in (1.0, -1.0, 2.0, -2.0)]
  vals = np.asarray(jax.device_get(vals)).astype(dtype).reshape(len(salts), 4)
  return RefereeSamples(vals, dots, h, g_norm, np.asarray(total, dtype), value)


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
