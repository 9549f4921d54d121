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
from typing import Any, Callable

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
  """``(args, kwargs)`` split into a static part (hashable) and traced arrays."""

  def __init__(self, args: tuple, kwargs: dict):
    leaves, self.treedef = jax.tree_util.tree_flatten((tuple(args), dict(kwargs)),
                                                      is_leaf=lambda x: x is None)
    self.is_dyn = tuple(_is_array(x) for x in leaves)
    self.static = tuple(None if d else x for x, d in zip(leaves, self.is_dyn))
    self.dyn = [x for x, d in zip(leaves, self.is_dyn) if d]
    self.dyn_spec = tuple((np.shape(x), x.dtype, getattr(x, "weak_type", False)) for x in self.dyn)
    try:
      hash(self.static)
      self.hashable = True
    except TypeError:
      self.hashable = False

  def key(self):
    return (self.treedef, self.is_dyn, self.static, self.dyn_spec)

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


def tree_spec(tree) -> tuple:
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  return (treedef, tuple((np.shape(x), getattr(x, "dtype", None) or jnp.result_type(x),
                          getattr(x, "weak_type", False)) for x in leaves))


cached = _program_cache.cached


class Holder:
  """Trace-time facts about the loss (tap order and specs), filled while tracing."""

  def __init__(self):
    self.order: list[str] = []
    self.specs: dict = {}
    self.out = None


def _chunk(n_items: int, size: int) -> int:
  """A ``lax.map`` batch size keeping about 4e6 perturbed elements in flight."""
  return max(1, min(n_items, int(4e6 // max(size, 1))))


def _float_eps(dtype) -> float:
  return float(jnp.finfo(dtype).eps)


def make_reference(loss: Callable, split: Split, n_dirs: int, eager: bool, jit: bool = True):
  """Builds ``ref(params, dyn, key) -> dict`` and its :class:`Holder`.

  ``eager``: the loss cannot be traced abstractly (discovery runs it for
  real, the referee loops in Python). ``jit``: wrap the result in ``jax.jit``
  (off when the caller jits it inside a larger function).
  """
  split = split.structure()
  holder = Holder()

  def call_loss(p, dyn):
    args, kwargs = split.rebuild(dyn)
    return loss(p, *args, **kwargs)

  def ref(params, dyn, key):
    if eager:
      out, order, specs = _tap._discover_eager(call_loss, params, dyn)
    else:
      out, order, specs = _tap._discover(call_loss, params, dyn)
    holder.order, holder.specs, holder.out = order, specs, out
    if tuple(out.shape) != () or not jnp.issubdtype(out.dtype, jnp.floating):
      raise ValueError(
          f"check: `loss(params, *args)` must return a floating-point scalar, got "
          f"shape {tuple(out.shape)} dtype {out.dtype}. Reduce it (e.g. jnp.mean) inside the loss.")
    eps0 = {n: jnp.zeros(s.shape, s.dtype) for n, s in specs.items()}

    def f(p, eps):
      with _tap._Context("perturb", eps) as ctx:
        value = call_loss(p, dyn)
      return value, dict(ctx.values)

    (value, tapped), (g_params, g_taps) = jax.value_and_grad(
        f, argnums=(0, 1), has_aux=True)(params, eps0)
    result = {"loss": value, "g_params": g_params, "g_taps": g_taps, "tapped": tapped}
    if n_dirs > 0:
      result["referee"] = _referee(call_loss, params, dyn, key, value, g_params, n_dirs, eager)
    return result

  return (jax.jit(ref) if jit and not eager else ref), holder


def _with_args(fn: Callable, split: Split):
  """``f(params, dyn) = fn(params, *args, **kwargs)`` with the arguments rebuilt from ``dyn``."""
  split = split.structure()

  def call(p, dyn):
    args, kwargs = split.rebuild(dyn)
    return fn(p, *args, **kwargs)

  return call


def trace_loss(loss: Callable, split: Split, params) -> tuple[_tap.Traced, tuple]:
  """The loss traced at ``(params, split.dyn)`` with its taps marked, and its program key.

  Raises:
    ValueError: the loss does not return a floating-point scalar, or a tap error.
    One of :data:`TRACE_ERRORS`: the loss cannot be traced abstractly.
  """
  traced = _tap.trace_taps(_with_args(loss, split), params, split.dyn)
  out = traced.out_aval
  if not (isinstance(out, jax.ShapeDtypeStruct) and tuple(out.shape) == ()
          and jnp.issubdtype(out.dtype, jnp.floating)):
    got = (f"shape {tuple(out.shape)} dtype {out.dtype}" if isinstance(out, jax.ShapeDtypeStruct)
           else f"a {type(out).__name__}")
    raise ValueError(
        f"check: `loss(params, *args)` must return a floating-point scalar, got {got}. "
        "Reduce it (e.g. jnp.mean) inside the loss.")
  return traced, (_program_cache.program_key(traced.jaxpr), traced.in_tree)


def compute_reference(loss: Callable, split: Split, n_dirs: int, params, seed):
  """``(ref, holder)`` as :func:`make_reference` gives them, compiled once per loss program.

  The loss is traced on every call; the compiled reference is reused for
  any loss that traces to the same program (constants are arguments).
  ``seed`` is the referee's seed (``np.uint32``).
  """
  traced, pkey = trace_loss(loss, split, params)
  holder = Holder()
  holder.order, holder.specs, holder.out = list(traced.order), dict(traced.specs), \
      traced.out_aval
  fn = cached(("reference", pkey, n_dirs), lambda: jax.jit(_traced_reference(traced, n_dirs)))
  return fn(traced.consts, params, split.dyn, seed), holder


def _traced_reference(traced: _tap.Traced, n_dirs: int):
  """``ref(consts, params, dyn, key) -> dict`` evaluating the traced loss with its taps."""
  traced = traced._replace(consts=())     # kept in the cache: the program, not its data

  def ref(consts, params, dyn, key):
    def f(p, eps):
      return _tap.call_traced(traced, consts, (p, dyn), eps)

    def call_loss(p, dyn_):
      return _tap.call_traced(traced, consts, (p, dyn_), {})[0]

    eps0 = {n: jnp.zeros(s.shape, s.dtype) for n, s in traced.specs.items()}
    (value, tapped), (g_params, g_taps) = jax.value_and_grad(
        f, argnums=(0, 1), has_aux=True)(params, eps0)
    result = {"loss": value, "g_params": g_params, "g_taps": g_taps, "tapped": tapped}
    if n_dirs > 0:
      result["referee"] = _referee(call_loss, params, dyn, key, value, g_params, n_dirs, False)
    return result

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
  # one array (one transfer): 4·n vals, n dots, h, ‖g‖, P, L
  return jnp.concatenate([vals.reshape(-1).astype(dtype), dots.astype(dtype),
                          jnp.stack([h, g_norm, jnp.asarray(total, dtype), value]).astype(dtype)])


def make_loss_eps(loss: Callable, split: Split, eager: bool, params=None):
  """``f(params, dyn, eps) -> loss`` with tap perturbations ``eps`` (compiled unless ``eager``).

  The kink probes evaluate it at single-element perturbations of a parameter
  leaf or a tap; it compiles like one forward pass, once per loss program
  (``params``: the parameters to trace at, needed unless ``eager``).
  """
  if not eager:
    traced, pkey = trace_loss(loss, split, params)
    program = traced._replace(consts=())     # kept in the cache: the program, not its data

    def g(consts, p, dyn, eps):
      return _tap.call_traced(program, consts, (p, dyn), eps)[0]

    compiled = cached(("loss_eps", pkey), lambda: jax.jit(g))
    return lambda p, dyn, eps: compiled(traced.consts, p, dyn, eps)

  split = split.structure()

  def f(params, dyn, eps):
    args, kwargs = split.rebuild(dyn)
    with _tap._Context("perturb", eps):
      return loss(params, *args, **kwargs)

  return f


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
