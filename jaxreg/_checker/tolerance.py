"""Tolerances and the one relative-error rule that every check judges with.

For a user's value ``u`` and the reference ``r`` (same shape)::

    err_i = |u_i − r_i|          (0 where both are the same inf/nan; inf where only one is nan)
    rel_i = err_i / max(mag_i, floor · scale)
    mismatch_i  ⇔  rel_i > rtol  and  err_i > atol

``mag_i`` is ``|r_i|`` (:func:`jaxreg.check_update` also counts the size of
the reference's step). ``scale`` is the scale of the *whole computation*, not
of one row: for :func:`jaxreg.check` the largest magnitude of any reference
gradient (every parameter leaf and every tap). A row whose true value is 0 —
the gradient of a bias that feeds a batch or layer normalisation — holds only
round-off on both sides; judged against its own maximum it would be noise
against noise, judged against the computation's scale it is 0 within
``floor · rtol``.

:func:`jaxreg.check`, :func:`jaxreg.check_identity`, :func:`jaxreg.check_update`
and the diagnosis all use :func:`relative_error` and :func:`mismatch` from here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp


class Tolerance(NamedTuple):
  """How close is close enough.

  Attributes:
    rtol: relative tolerance.
    atol: absolute tolerance (an element mismatches only beyond both).
    floor: fraction of the computation's scale below which magnitudes do
      not shrink the denominator of the relative error.
  """

  rtol: float
  atol: float
  floor: float


_DEFAULTS = {
    "float64": Tolerance(1e-10, 0.0, 1e-3),
    "float32": Tolerance(1e-4, 0.0, 1e-2),
    "bfloat16": Tolerance(2e-2, 0.0, 1e-1),
    "float16": Tolerance(1e-2, 0.0, 1e-1),
}


def default_tolerances(dtype) -> Tolerance:
  """The default :class:`Tolerance` for a reference of ``dtype``.

  float64: ``rtol=1e-10``, ``floor=1e-3``; float32: ``rtol=1e-4``,
  ``floor=1e-2``; bfloat16/float16: ``2e-2``/``1e-2`` with ``floor=0.1``;
  ``atol=0`` throughout. Other dtypes get the float32 values.
  """
  return _DEFAULTS.get(str(jnp.dtype(dtype)), _DEFAULTS["float32"])


def _validated(value, name: str, who: str) -> float:
  try:
    v = float(value)
  except (TypeError, ValueError):
    raise TypeError(f"{who}: `{name}` must be a non-negative number, got "
                    f"{type(value).__name__} {value!r}.") from None
  if not (math.isfinite(v) and v >= 0):
    raise ValueError(f"{who}: `{name}` must be a finite number >= 0, got {value!r}.")
  return v


def resolve(dtype, rtol, atol, who: str = "check") -> Tolerance:
  """The defaults for ``dtype`` with the user's ``rtol``/``atol`` (``None``: default).

  Raises:
    ValueError: ``rtol`` or ``atol`` negative or not finite.
    TypeError: not a number.
  """
  d = default_tolerances(dtype)
  return Tolerance(d.rtol if rtol is None else _validated(rtol, "rtol", who),
                   d.atol if atol is None else _validated(atol, "atol", who), d.floor)


def for_dtypes(user_dtype, ref_dtype, tol: Tolerance, user_rtol) -> tuple[Tolerance, str | None]:
  """The tolerance for one compared pair, and a note when the dtypes differ.

  A user array of another float dtype than the reference is compared at the
  looser of the two dtypes' tolerances (unless the user chose ``rtol``).
  """
  if jnp.dtype(user_dtype) == jnp.dtype(ref_dtype):
    return tol, None
  other = default_tolerances(user_dtype)
  rtol = other.rtol if (other.rtol > tol.rtol and user_rtol is None) else tol.rtol
  t = Tolerance(rtol, tol.atol, max(tol.floor, other.floor))
  return t, f"yours is {user_dtype}, the reference {ref_dtype} (compared at rtol={rtol:g})"


def relative_error(xp, u, r, scale, floor, mag=None):
  """``(err, rel)`` elementwise, with ``xp`` = ``numpy`` or ``jax.numpy``.

  Args:
    u, r: the user's values and the reference, same shape (``u`` is cast to
      ``r``'s dtype by the caller).
    scale: the scale of the whole computation (a scalar).
    floor: :attr:`Tolerance.floor`.
    mag: the magnitude each element is judged against (default ``|r|``).
  """
  same = (u == r) | (xp.isnan(u) & xp.isnan(r))
  err = xp.where(same, 0.0, xp.abs(u - r))
  err = xp.where(xp.isnan(err), xp.inf, err)
  if mag is None:
    mag = xp.where(xp.isfinite(r), xp.abs(r), 0.0)
  denom = xp.maximum(mag, floor * scale)
  tiny = xp.finfo(r.dtype).tiny
  rel = xp.where(err == 0, 0.0, err / xp.where(denom > 0, denom, tiny))
  return err, rel


def mismatch(err, rel, rtol, atol):
  """Elementwise: beyond both tolerances."""
  return (rel > rtol) & (err > atol)
