"""Diagnosis of a wrong quantity: what its mismatch looks like, in one sentence.

Only rows judged ``wrong`` get here, on the host (NumPy). The patterns, in
order: all zero; a constant ratio (a sign, a named factor — a data dimension,
2 or ½ — or any constant); a transpose; an extra or missing L2 or L1 term on
a parameter; mismatches confined to where a tapped value of the same shape is
negative, positive or zero (an activation-derivative slip); a constant ratio
on the mismatching elements only. Elements known to be kinks (valid
conventions) are left out of the fits.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from jaxreg._checker.compare import Comparison
from jaxreg._checker.tolerance import Tolerance


class Dim(NamedTuple):
  """A data dimension that can name a factor.

  Attributes:
    size: its length.
    where: how to name it, e.g. ``"axis 1 of x"``.
    batch: whether it is the batch axis (the user said so with ``batch_axis``).
  """

  size: int
  where: str
  batch: bool = False


def _fit(a, b, w=None):
  """Least-squares ``a ≈ c·b`` (over mask ``w``): ``(c, residual relative to max(‖a‖, |c|‖b‖))``."""
  if w is not None:
    a, b = np.where(w, a, 0.0), np.where(w, b, 0.0)
  bb = float(np.sum(b * b))
  if not bb > 0:
    return np.nan, np.inf
  c = float(np.sum(a * b)) / bb
  scale = max(float(np.sqrt(np.sum(a * a))), abs(c) * math.sqrt(bb), 1e-300)
  return c, float(np.sqrt(np.sum((a - c * b) ** 2))) / scale


def _fit_most(a, b, w):
  """:func:`_fit` over ``w``, or over all but a few outliers (≤ 10%, e.g. kink conventions).

  Returns ``(c, residual, number of elements left out)``.
  """
  c, res = _fit(a, b, w)
  if res < 1e-6 or not np.any(w & (b != 0)):
    return c, res, 0
  sel = w & (b != 0)
  c_med = float(np.median(a[sel] / b[sel]))
  size = max(float(np.max(np.abs(a[w]), initial=0.0)), abs(c_med) * float(np.max(np.abs(b[w]))))
  inl = w & (np.abs(a - c_med * b) <= 1e-6 * max(size, 1e-300))
  n_out = int(np.sum(w & ~inl))
  if n_out > max(1, int(0.1 * np.sum(w))):
    return c, res, 0
  c, res = _fit(a, b, inl)
  return c, res, n_out


def _left_out(n: int) -> str:
  return (f" ({n} element(s) left out of this fit: they differ otherwise, e.g. another "
          "convention at a kink)") if n else ""


def is_transpose(a, r, tol: Tolerance, scale: float) -> bool:
  """Whether ``a.T`` matches ``r`` within the tolerances."""
  a = np.asarray(a).T
  r = np.asarray(r)
  if a.shape != r.shape:
    return False
  return Comparison.of(a, r, tol, scale).count == 0


def _close(a: float, b: float, tol: float = 1e-6) -> bool:
  return abs(a - b) <= tol * max(abs(a), abs(b), 1e-300)


def _named_factor(c: float, dims: Sequence[Dim]) -> bool:
  """Whether ``c`` is a factor with a name (−1, ±2, ±½, a data dimension or its inverse)."""
  named = [-1.0, 2.0, 0.5, -2.0, -0.5] + [float(d.size) for d in dims if d.size > 1] + [
      1.0 / d.size for d in dims if d.size > 1]
  return any(_close(c, v) for v in named)


def _dim_text(c: float, dims: Sequence[Dim]) -> str | None:
  batch_known = any(d.batch for d in dims)
  for d in sorted(dims, key=lambda d: not d.batch):
    m = d.size
    if m <= 1:
      continue
    if d.batch and _close(c, float(m)):
      return f"yours = {m} × reference (the batch size {m}, {d.where}): a missing 1/m"
    if d.batch and _close(c, 1.0 / m):
      return f"yours = reference / {m} (the batch size {m}, {d.where}): an extra 1/m"
    hint = (", not the batch axis" if batch_known else
            "): a missing 1/m if that axis counts the examples")
    if _close(c, float(m)):
      return f"yours = {m} × reference ({m} is the size of {d.where}" + (
          hint if not batch_known else hint + ")")
    if _close(c, 1.0 / m):
      return f"yours = reference / {m} ({m} is the size of {d.where}" + (
          hint.replace("missing", "extra") if not batch_known else hint + ")")
  return None


def _factor_text(c: float, dims: Sequence[Dim]) -> str:
  if _close(c, -1.0):
    return "yours = −1 × reference everywhere: a sign error"
  named = _dim_text(c, dims)
  if named:
    return named
  if _close(c, 2.0):
    return "yours = 2 × reference: a factor-2 slip (λ vs 2λ, or a lost ½ of a square)"
  if _close(c, 0.5):
    return "yours = ½ × reference: a factor-½ slip (2λ vs λ, or an extra ½)"
  if _close(c, -2.0) or _close(c, -0.5):
    return f"yours = {c:g} × reference: a sign error and a factor-2 slip"
  return f"yours = {c:.6g} × reference everywhere: a constant-factor error"


def diagnose(u, r, tol: Tolerance, scale: float, *, patterns=(), theta=None,
             theta_name="θ", dims: Sequence[Dim] = (), kinks=None,
             activation_hint=True) -> str | None:
  """Describes what a mismatch looks like, or ``None`` when no pattern fits.

  Args:
    u, r: the user's and the reference arrays (same shape).
    tol, scale: the tolerance and scale the row was judged with.
    patterns: ``(name, array)`` pairs of tapped forward values with the shape
      of ``u``; a mismatch confined to where one is negative (or positive),
      covering more than half of the elements there, points at an
      activation-derivative slip.
    theta: the parameter value for parameter rows (to spot a penalty term).
    theta_name: how the parameter is called.
    dims: the data dimensions that can name a factor (a missing ``1/m``).
    kinks: flat boolean mask of elements known to be kinks (left out of fits).
    activation_hint: name an activation-derivative slip when a sign pattern
      fits (off for :func:`jaxreg.check_identity`, whose pattern is ``x``).
  """
  u = np.asarray(u, np.float64)
  r = np.asarray(r, np.float64)
  comp = Comparison.of(u, r, tol, scale)
  mism = comp.mismatch.reshape(u.shape) | np.isnan(u - r)
  keep = np.ones(u.shape, bool) if kinks is None else ~np.asarray(kinks, bool).reshape(u.shape)
  with np.errstate(all="ignore"):
    if np.all(u == 0):
      return "yours is zero everywhere (a dropped term?)"
    c, res = _fit(u, r, keep)
    if res < 1e-6 and math.isfinite(c) and (u.size > 1 or _named_factor(c, dims)):
      if abs(c - 1) < 1e-6:
        return ("yours agrees with the reference to rounding level only (relative differences "
                "near rtol): an ill-conditioned but correct formula (e.g. 1 − tanh² at "
                "saturation) would do this; pass a looser rtol if so")
      return _factor_text(c, dims)
    if u.ndim == 2 and u.shape[0] == u.shape[1] and is_transpose(u.T, r, tol, scale):
      return "yours equals the transpose of the reference: a transposed or swapped matrix"
    if theta is not None and u.size > 1:     # for a scalar every difference is "∝ θ"
      th = np.asarray(theta, np.float64).reshape(u.shape)
      d = u - r
      cd, rd, n_out = _fit_most(d, th, keep)
      if rd < 1e-6 and cd != 0:
        if cd > 0:
          return (f"yours − reference = {cd:.6g} · {theta_name}: an extra L2 term (weight decay "
                  f"{cd:.6g}) the loss does not have on {theta_name}, e.g. a penalty on biases "
                  "that should not be penalised" + _left_out(n_out))
        return (f"yours − reference = {cd:.6g} · {theta_name}: the L2 term of the loss on "
                f"{theta_name} is missing (or too small) in the derivation" + _left_out(n_out))
      cs, rs_, n_out = _fit_most(d, np.sign(th), keep & (th != 0))
      if rs_ < 1e-6 and cs != 0:
        return (f"yours − reference = {cs:.6g} · sgn({theta_name}): an L1 term "
                + ("the loss does not have" if cs > 0 else "of the loss is missing")
                + (" (elements at θ = 0 are left out: any value in the subdifferential is valid "
                   "there)" if np.any(th == 0) else "") + _left_out(n_out))
    n_mism = int(np.sum(mism))
    for kind, sym in (("neg", "< 0"), ("pos", "> 0"), ("zero", "== 0")):
      for name, v in patterns:
        v = np.asarray(v).reshape(u.shape)
        region = {"neg": v < 0, "pos": v > 0, "zero": v == 0}[kind]
        m_in = int(np.sum(mism & region))
        c_in = int(np.sum(region))
        if n_mism and m_in == n_mism and c_in < u.size and 2 * m_in > c_in:
          what = ("an activation-derivative slip (a missing or wrong step factor "
                  f"H({name}) or f'({name}))") if kind != "zero" else (
                      f"a slip at {name} == 0 (a derivative convention that is not a valid "
                      "subgradient)")
          text = f"wrong only where {name} {sym} ({n_mism} of the {c_in} such elements)"
          return text + (": " + what if activation_hint else "")
    cm, rm = _fit(u, r, mism & keep)
    if n_mism > 1 and rm < 1e-6 and math.isfinite(cm):
      return f"on the {n_mism} mismatching elements, " + _factor_text(cm, dims).replace(
          " everywhere", "")
  return None
