"""`tap`: mark an intermediate quantity of a loss so a check can see ∂L/∂(it).

Contract: ``tap(name, value)`` returns ``value``. Outside :func:`jaxreg.check`
nothing else happens (no extra operation is traced, so it costs nothing under
``jit``). While a check traces the loss, a trace-time context is active and
``tap`` either

* records the name, shape and dtype (the discovery pass), or
* returns ``value + eps[name]`` where ``eps[name]`` is a zero array that the
  check differentiates with respect to: ``∂L/∂eps[name]`` at ``eps = 0`` is
  exactly ``∂L/∂(tapped quantity)``, computed by ``jax.grad`` with the rest of
  the loss unchanged. The forward value is recorded too (diagnosis uses its
  sign pattern).

Names are unique per call of the loss: tapping one name twice raises a
``ValueError`` (inside a loop use ``f"z{l}"``). The context is per thread.

Limitation: a tap inside a function that was already compiled by ``jax.jit``
*outside* the check is not seen (jit reuses the cached trace); tap in the
plain Python loss and let the check do the jitting.
"""

from __future__ import annotations

import threading
from typing import Any

import jax
import jax.numpy as jnp

_LOCAL = threading.local()


def _stack() -> list:
  s = getattr(_LOCAL, "stack", None)
  if s is None:
    s = _LOCAL.stack = []
  return s


class _Context:
  """One trace-time tap context: ``mode`` is ``"record"`` or ``"perturb"``."""

  def __init__(self, mode: str, eps: dict | None = None):
    self.mode = mode
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
    ``value`` itself outside a check. During :func:`jaxreg.check`,
    ``value + 0`` with a zero perturbation the check differentiates.

  Raises:
    TypeError: if ``name`` is not a non-empty string, or ``value`` is not a
      floating-point array while a check is running.
    ValueError: if ``name`` is tapped twice in one call of the loss.

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
  with _Context("record") as ctx:
    out = fn(*args, **kwargs)
  out = jax.ShapeDtypeStruct(jnp.shape(out), jnp.result_type(out))
  return out, list(ctx.order), dict(ctx.specs)
