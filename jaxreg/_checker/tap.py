"""`tap`: mark an intermediate quantity of a loss so a check can see ∂L/∂(it).

Contract: ``tap(name, value)`` returns ``value``. Outside :func:`jaxreg.check`
nothing else happens (no extra operation is traced, so it costs nothing under
``jit``). While a check traces the loss, a trace-time context is active and
``tap`` marks ``value`` in the traced program with an identity primitive.
The check then evaluates that program with a zero array ``eps[name]`` added
at the mark and differentiates with respect to it: ``∂L/∂eps[name]`` at
``eps = 0`` is exactly ``∂L/∂(tapped quantity)``, computed by ``jax.grad``
with the rest of the loss unchanged. The forward value is recorded too
(diagnosis uses its sign pattern).

Taps under transformations inside the loss:

* ``jax.vmap``: the tapped quantity is the whole batch (the mapped axis
  first, nested maps outermost first);
* ``lax.scan`` (and ``fori_loop`` with static bounds): the quantity is the
  stack of its per-step values, ``(length, *shape)`` — what a
  backprop-through-time derivation returns;
* ``jax.checkpoint``/``remat`` and ``jax.jit``: seen through, as if inlined
  (a jitted helper traced before the check is traced again during it);
* ``lax.while_loop``, ``lax.cond``/``switch`` and functions with a custom
  derivative (``jax.custom_jvp``/``custom_vjp``): a tap inside is a
  ``ValueError`` naming the transformation.

Names are unique per call of the loss: tapping one name twice raises a
``ValueError`` (inside a Python loop use ``f"z{l}"``). The context is per
thread.

A loss that cannot be traced abstractly runs eagerly; there ``tap`` adds the
perturbation directly and records names as the loss runs, and taps under
transformations are not supported.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.extend import core as jex_core
from jax.interpreters import ad, batching, mlir

_LOCAL = threading.local()

# The marker: an identity primitive, present only in programs traced during a check.
tap_p = jex_core.Primitive("jaxreg_tap")
tap_p.def_impl(lambda x, *, name: x)
tap_p.def_abstract_eval(lambda x, *, name: x)
mlir.register_lowering(tap_p, lambda ctx, x, *, name: [x])


def _tap_jvp(primals, tangents, *, name):
  return tap_p.bind(primals[0], name=name), tangents[0]


def _tap_batch(args, dims, *, name):
  x, d = args[0], dims[0]
  if d is None:     # not mapped
    return tap_p.bind(x, name=name), None
  return tap_p.bind(jnp.moveaxis(x, d, 0), name=name), 0


ad.primitive_jvps[tap_p] = _tap_jvp
batching.primitive_batchers[tap_p] = _tap_batch


def _tracing_state():
  """A thread-local switch in JAX's trace context, so that jitted helpers traced before a
  check (without taps) are traced again while the check traces the loss.

  JAX has no public API for this; without it (another JAX version) a tap in a
  helper that was jitted and called before the check stays invisible.
  """
  name = "jaxreg_tap_tracing"
  try:
    from jax._src import config as jax_config  # pylint: disable=import-outside-toplevel
    existing = getattr(jax_config, "config_states", {}).get(name)
    if existing is not None:      # this module was imported again
      return existing
    return jax_config.bool_state(
        name, False, "Internal to jaxreg.check: a tap context is active.",
        include_in_trace_context=True)
  except (ImportError, AttributeError, TypeError):
    return None


_TRACING = _tracing_state()


def _stack() -> list:
  s = getattr(_LOCAL, "stack", None)
  if s is None:
    s = _LOCAL.stack = []
  return s


class _Context:
  """One tap context: ``mode`` is ``"trace"`` (mark in the traced program), or, for a loss
  run eagerly, ``"record"`` (names and specs) or ``"perturb"`` (add ``eps[name]``)."""

  def __init__(self, mode: str, eps: dict | None = None, eager: bool = False):
    self.mode = mode
    self.eager = eager        # the loss runs on concrete arrays: a tracer means a transformation
    self.eps = eps or {}
    self.order: list[str] = []
    self.specs: dict[str, jax.ShapeDtypeStruct] = {}
    self.values: dict[str, Any] = {}

  def __enter__(self):
    _stack().append(self)
    return self

  def __exit__(self, *exc):
    _stack().pop()
    return False


def tap(name: str, value: Any) -> Any:
  """Marks ``value`` as the quantity ``name`` of a derivation; returns ``value``.

  Args:
    name: a unique name for this quantity within one call of the loss, e.g.
      ``"x2"``. The derivation refers to ``∂L/∂(value)`` by this name.
    value: a floating-point array (or scalar) computed inside the loss.

  Returns:
    ``value`` itself outside a check. While :func:`jaxreg.check` traces
    the loss, ``value`` marked in the traced program, where the check adds
    a zero perturbation it differentiates.

  Raises:
    TypeError: if ``name`` is not a non-empty string, or ``value`` is not a
      floating-point array while a check is running.
    ValueError: if ``name`` is tapped twice in one call of the loss, or
      inside a transformation that cannot hold a tap (see the module notes).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxreg
    >>> def loss(params, x1, t):
    ...   x2 = jaxreg.tap("x2", x1 @ params["A"] + params["B"])
    ...   x3 = jaxreg.tap("x3", jnp.maximum(x2, 0))
    ...   y = jaxreg.tap("y", x3 @ params["C"] + params["D"])
    ...   return 0.5 * jnp.sum((t - y) ** 2)
    >>> jaxreg.tap("z", jnp.ones(2)).tolist()     # outside a check: identity
    [1.0, 1.0]
  """
  if not isinstance(name, str) or not name:
    raise TypeError(f"tap: `name` must be a non-empty str, got {type(name).__name__} {name!r}.")
  stack = getattr(_LOCAL, "stack", None)
  if not stack:
    return value
  ctx = stack[-1]
  if ctx.mode == "trace":
    value = jnp.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.floating):
      raise TypeError(
          f"tap: the quantity {name!r} must be a floating-point array to be differentiated, "
          f"got dtype {value.dtype}.")
    return tap_p.bind(value, name=name)
  if ctx.eager and ctx.mode == "record" and isinstance(value, jax.core.Tracer):
    raise ValueError(
        f"tap: {name!r} is tapped inside a JAX transformation (jax.vmap, lax.scan, jax.jit, "
        "jax.checkpoint, ...) of a loss that cannot be traced abstractly (it needs concrete "
        "values, e.g. float() or boolean indexing on a traced array), so the check runs it "
        "eagerly, where taps under transformations are not supported. Make the loss traceable "
        "(jnp.where instead of boolean indexing) or tap outside the transformation.")
  if name in ctx.specs:
    raise ValueError(
        f"tap: the name {name!r} was tapped twice in one call of the loss; each tapped "
        f"quantity needs its own name (in a loop over layers use e.g. f\"{name}{{l}}\").")
  dtype = getattr(value, "dtype", None)
  if dtype is None:
    value = jnp.asarray(value)
    dtype = value.dtype
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(
        f"tap: the quantity {name!r} must be a floating-point array to be differentiated, "
        f"got dtype {dtype}.")
  ctx.order.append(name)
  ctx.specs[name] = jax.ShapeDtypeStruct(jnp.shape(value), dtype)
  if ctx.mode == "record":
    return value
  ctx.values[name] = value
  eps = ctx.eps.get(name)
  if eps is None:
    return value
  return value + eps.astype(dtype)


def _discover(fn, *args, **kwargs):
  """Runs ``fn`` abstractly (``jax.eval_shape``) and returns ``(out_spec, [names], {name: spec})``."""
  with _Context("record") as ctx:
    out = jax.eval_shape(fn, *args, **kwargs)
  return out, list(ctx.order), dict(ctx.specs)


def _discover_eager(fn, *args, **kwargs):
  """Like :func:`_discover` but runs ``fn`` for real (for losses ``eval_shape`` cannot trace)."""
  with _Context("record", eager=True) as ctx:
    out = fn(*args, **kwargs)
  out = jax.ShapeDtypeStruct(jnp.shape(out), jnp.result_type(out))
  return out, list(ctx.order), dict(ctx.specs)


# Primitives a tap can sit inside, and how the tapped quantity's shape grows there.
_INLINED = frozenset({"jit", "pjit", "closed_call", "core_call", "remat2", "checkpoint"})
_UNSUPPORTED = {
    "while": "lax.while_loop (or fori_loop with traced bounds): the number of steps is not "
             "known when tracing, so the per-step values cannot be stacked; use lax.scan or a "
             "fori_loop with static bounds",
    "cond": "lax.cond/lax.switch: only one branch runs, so the quantity does not always exist; "
            "tap the result of the cond instead",
    "custom_jvp_call": "a function with a custom derivative (jax.custom_jvp): its derivative "
                       "rule would not see the tap; tap its inputs or outputs instead",
    "custom_vjp_call": "a function with a custom derivative (jax.custom_vjp): its derivative "
                       "rule would not see the tap; tap its inputs or outputs instead",
}


def _sub_jaxprs(value):
  if isinstance(value, jex_core.ClosedJaxpr):
    yield value.jaxpr, value.consts
  elif isinstance(value, jex_core.Jaxpr):
    yield value, ()
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def _walk(jaxpr, lead: tuple, order: list, specs: dict) -> None:
  """Appends the taps of ``jaxpr`` to ``order``/``specs``; ``lead`` are stacking axes."""
  for eqn in jaxpr.eqns:
    if eqn.primitive is tap_p:
      _add(eqn.params["name"], lead + tuple(eqn.invars[0].aval.shape),
           eqn.invars[0].aval.dtype, order, specs)
      continue
    subs = [sub for v in eqn.params.values() for sub, _ in _sub_jaxprs(v)]
    if not subs:
      continue
    prim = eqn.primitive.name
    if prim in _INLINED or prim == "scan":
      inner = lead + ((int(eqn.params["length"]),) if prim == "scan" else ())
      for sub in subs:
        _walk(sub, inner, order, specs)
      continue
    found: list = []
    for sub in subs:
      _walk(sub, lead, found, {})
    if found:
      what = _UNSUPPORTED.get(prim, f"the JAX primitive {prim!r}")
      raise ValueError(
          f"tap: {', '.join(map(repr, dict.fromkeys(found)))} is tapped inside {what}. A tap "
          "can sit inside jax.vmap, lax.scan, jax.checkpoint/remat and jax.jit.")


def _add(name, shape, dtype, order, specs):
  if name in specs:
    raise ValueError(
        f"tap: the name {name!r} was tapped twice in one call of the loss; each tapped "
        f"quantity needs its own name (in a loop over layers use e.g. f\"{name}{{l}}\").")
  order.append(name)
  specs[name] = jax.ShapeDtypeStruct(shape, dtype)


class Traced(NamedTuple):
  """A loss traced with its taps marked: ``order`` in call order, ``specs`` stacked shapes."""
  jaxpr: Any
  consts: tuple
  in_tree: Any
  out_tree: Any
  out_aval: Any
  order: list
  specs: dict


def trace_taps(fn, *args) -> Traced:
  """Traces ``fn(*args)`` to a jaxpr with its taps marked (a jitted helper is traced again).

  Raises:
    ValueError: a name tapped twice, or a tap under an unsupported transformation.
  """
  with _Context("trace"):
    if _TRACING is None:
      closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    else:
      with _TRACING(True):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
  order: list = []
  specs: dict = {}
  _walk(closed.jaxpr, (), order, specs)
  return Traced(closed.jaxpr, tuple(closed.consts), jax.tree_util.tree_structure(args),
                jax.tree_util.tree_structure(out_shape), out_shape, order, specs)


def _read(env, v):
  return v.val if isinstance(v, jex_core.Literal) else env[v]


def run_taps(jaxpr, consts, flat_args, eps: dict, tapped: dict) -> list:
  """Evaluates ``jaxpr``, adding ``eps[name]`` at each tap and storing its value in ``tapped``.

  Taps inside ``jit``/``checkpoint`` are evaluated inline; a scan with taps
  inside runs again as a ``lax.scan`` whose per-step ``eps`` slices enter
  as scanned inputs and whose tapped values leave as stacked outputs.
  """
  env: dict = {}
  for v, x in zip(jaxpr.constvars, consts):
    env[v] = x
  for v, x in zip(jaxpr.invars, flat_args):
    env[v] = x
  for eqn in jaxpr.eqns:
    invals = [_read(env, v) for v in eqn.invars]
    prim = eqn.primitive
    if prim is tap_p:
      name = eqn.params["name"]
      x = invals[0]
      tapped[name] = x
      e = eps.get(name)
      outvals = [x if e is None else x + e.astype(x.dtype)]
    elif prim.name in _INLINED and _has_tap(eqn):
      sub = eqn.params["jaxpr"]
      sub_jaxpr, sub_consts = (sub.jaxpr, sub.consts) if isinstance(sub, jex_core.ClosedJaxpr) \
          else (sub, ())
      outvals = run_taps(sub_jaxpr, sub_consts, invals, eps, tapped)
    elif prim.name == "scan" and _has_tap(eqn):
      outvals = _run_scan(eqn, invals, eps, tapped)
    else:
      with eqn.ctx.manager:
        out = prim.bind(*invals, **prim.get_bind_params(eqn.params))
      outvals = out if prim.multiple_results else [out]
    for v, x in zip(eqn.outvars, outvals):
      env[v] = x
  return [_read(env, v) for v in jaxpr.outvars]


def _has_tap(eqn) -> bool:
  for v in eqn.params.values():
    for sub, _ in _sub_jaxprs(v):
      for e in sub.eqns:
        if e.primitive is tap_p or _has_tap(e):
          return True
  return False


def _run_scan(eqn, invals, eps, tapped):
  p = eqn.params
  body = p["jaxpr"]
  n_consts, n_carry = p["num_consts"], p["num_carry"]
  consts, init, xs = invals[:n_consts], invals[n_consts:n_consts + n_carry], \
      invals[n_consts + n_carry:]
  names: list = []
  _walk(body.jaxpr, (), names, {})
  step_eps = {n: eps[n] for n in names if n in eps}

  def step(carry, x):
    x_i, eps_i = x
    tapped_i: dict = {}
    out = run_taps(body.jaxpr, body.consts, [*consts, *carry, *x_i], eps_i, tapped_i)
    return out[:n_carry], (out[n_carry:], tapped_i)

  carry, (ys, stacked) = jax.lax.scan(step, list(init), (list(xs), step_eps),
                                      length=p["length"], reverse=p["reverse"],
                                      unroll=p["unroll"])
  tapped.update(stacked)
  return [*carry, *ys]


def call_traced(traced: Traced, consts, args, eps: dict):
  """``(outputs, tapped values)`` of a :class:`Traced` loss at ``args`` with ``eps`` added."""
  tapped: dict = {}
  outs = run_taps(traced.jaxpr, consts, jax.tree_util.tree_leaves(args), eps, tapped)
  return jax.tree_util.tree_unflatten(traced.out_tree, outs), tapped
