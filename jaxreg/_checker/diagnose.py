"""Elementwise comparison in one jitted pass, and diagnosis of wrong quantities.

Comparison of a user's array ``u`` with the reference ``r`` (same shape)::

    err_i = |u_i − r_i|                      (0 where both are the same inf/nan)
    rel_i = err_i / max(|r_i|, floor · ‖r‖∞)
    mismatch_i  ⇔  rel_i > rtol  and  err_i > atol

``floor`` keeps elements where the reference is (nearly) zero — through
cancellation — from being judged against their own tiny size: they are
judged against a fraction of the quantity's scale instead.

Only summaries come back to the host: maxima, counts, the worst element and
the indices of the (capped) largest mismatches, which are probed for kinks.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# Default tolerances by dtype: (rtol, atol, floor). See :func:`default_tolerances`.
_TOLERANCES = {
    "float64": (1e-10, 0.0, 1e-3),
    "float32": (1e-4, 0.0, 1e-2),
    "bfloat16": (2e-2, 0.0, 1e-1),
    "float16": (1e-2, 0.0, 1e-1),
}


def default_tolerances(dtype) -> tuple[float, float, float]:
  """``(rtol, atol, floor)`` used by default for a reference of ``dtype``.

  float64: ``rtol=1e-10``, ``floor=1e-3``; float32: ``rtol=1e-4``,
  ``floor=1e-2``; bfloat16/float16: ``2e-2``/``1e-2`` with ``floor=0.1``;
  ``atol=0`` throughout. The floor means an element is judged relative to at
  least ``floor × max|reference|`` of its quantity.
  """
  return _TOLERANCES.get(str(jnp.dtype(dtype)), _TOLERANCES["float32"])


def stats(xp, u, r, rtol, atol, floor):
  """One pass over a pair, with ``xp`` = ``jax.numpy`` (inside a jit) or ``numpy``.

  Returns ``(max_err, max_rel, n_mismatch, reference has non-finite, user has non-finite)``.
  """
  u = xp.ravel(u).astype(r.dtype)
  r = xp.ravel(r)
  if r.size == 0:
    z = xp.zeros((), r.dtype)
    return (z, z, 0, False, False)
  err, rel, mism = _rel(xp, u, r, rtol, atol, floor)
  return (xp.max(err), xp.max(rel), xp.sum(mism), xp.any(~xp.isfinite(r)), xp.any(~xp.isfinite(u)))


_BLOCK = 512


def stats_many(pairs):
  """:func:`stats` for many ``(u, r, rtol, atol, floor)`` pairs, inside a jit.

  Returns one ``(pairs, 5)`` array (one transfer to the host): max err, max
  rel, any mismatch, any non-finite reference, any non-finite user value.

  All pairs are laid out in one ``(blocks, 512)`` array (each pair padded to
  whole blocks), so the compiled program has the same few kernels however many
  pairs there are: one reduction for the scales, one variadic reduction for
  ``(max err, max rel, any mismatch, any non-finite r, any non-finite u)`` and
  two small segment maxima over blocks. (A reduction per pair costs ~0.1 s of
  XLA compile time each on CPU.) The mismatch count is ``any`` here; callers
  count on the host for the rows that have one.
  """
  if not pairs:
    return jnp.zeros((0, 5))
  dtype = jnp.result_type(*[p[1].dtype for p in pairs])
  n_rows = len(pairs)
  sizes = [int(np.prod(p[1].shape, dtype=np.int64)) for p in pairs]
  nbs = [max(1, -(-n // _BLOCK)) for n in sizes]
  row_of_block = np.repeat(np.arange(n_rows), nbs)

  def lay(arrs):
    parts = []
    for a, n, nb in zip(arrs, sizes, nbs):
      parts.append(jnp.ravel(a).astype(dtype))
      if nb * _BLOCK > n:
        parts.append(jnp.zeros((nb * _BLOCK - n,), dtype))
    return jnp.concatenate(parts).reshape(-1, _BLOCK)

  U = lay([p[0].astype(p[1].dtype) for p in pairs])
  R = lay([p[1] for p in pairs])
  per_block = lambda k: jnp.asarray(np.array([p[k] for p in pairs], np.float64)[row_of_block],
                                    dtype)[:, None]
  rtol, atol, floor = per_block(2), per_block(3), per_block(4)
  seg = jnp.asarray(row_of_block)
  kw = dict(num_segments=n_rows, indices_are_sorted=True)
  absr = jnp.where(jnp.isfinite(R), jnp.abs(R), 0.0)
  scale = jax.ops.segment_max(jnp.max(absr, axis=1), seg, **kw)[seg][:, None]
  same = (U == R) | (jnp.isnan(U) & jnp.isnan(R))
  err = jnp.where(same, 0.0, jnp.abs(U - R))
  err = jnp.where(jnp.isnan(err), jnp.inf, err)
  denom = jnp.maximum(absr, floor * scale)
  rel = jnp.where(err == 0, 0.0, err / jnp.where(denom > 0, denom, jnp.finfo(dtype).tiny))
  mism = ((rel > rtol) & (err > atol)).astype(dtype)
  nfr = (~jnp.isfinite(R)).astype(dtype)
  nfu = (~jnp.isfinite(U)).astype(dtype)
  zero = jnp.zeros((), dtype)
  reduced = jax.lax.reduce((err, rel, mism, nfr, nfu), (zero,) * 5,
                           lambda a, b: tuple(jnp.maximum(x, y) for x, y in zip(a, b)), (1,))
  return jax.ops.segment_max(jnp.stack(reduced, 1), seg, **kw)


def count_mismatches(u, r, rtol, atol, floor) -> int:
  """Number of mismatching elements (NumPy; for rows known to have some)."""
  u = np.asarray(u).ravel().astype(np.asarray(r).dtype)
  r = np.asarray(r).ravel()
  with np.errstate(all="ignore"):
    _, _, mism = _rel(np, u, r, rtol, atol, floor)
  return int(np.sum(mism))


def worst(u, r, rtol, atol, floor):
  """``(flat index, u there, r there)`` of the largest relative error (NumPy)."""
  u = np.asarray(u).ravel().astype(np.asarray(r).dtype)
  r = np.asarray(r).ravel()
  with np.errstate(all="ignore"):
    _, rel, _ = _rel(np, u, r, rtol, atol, floor)
  i = int(np.argmax(rel))
  return i, float(u[i]), float(r[i])


def _rel(xp, u, r, rtol, atol, floor):
  same = (u == r) | (xp.isnan(u) & xp.isnan(r))
  err = xp.where(same, 0.0, xp.abs(u - r))
  err = xp.where(xp.isnan(err), xp.inf, err)
  absr = xp.where(xp.isfinite(r), xp.abs(r), 0.0)
  scale = xp.max(absr)
  denom = xp.maximum(absr, floor * scale)
  tiny = xp.finfo(r.dtype).tiny
  rel = xp.where(err == 0, 0.0, err / xp.where(denom > 0, denom, tiny))
  mism = (rel > rtol) & (err > atol)
  return err, rel, mism


def candidates(u, r, rtol, atol, floor, k) -> list[int]:
  """Flat indices of the (at most ``k``) largest mismatches, largest first (NumPy)."""
  u = np.asarray(u).ravel().astype(np.asarray(r).dtype)
  r = np.asarray(r).ravel()
  with np.errstate(all="ignore"):
    _, rel, mism = _rel(np, u, r, rtol, atol, floor)
  idx = np.nonzero(mism)[0]
  if idx.size > k:
    part = np.argpartition(-rel[idx], k - 1)[:k]
    idx = idx[part]
  return [int(i) for i in idx[np.argsort(-rel[idx], kind="stable")]]


def _diag_stats(u, r, rtol, atol, floor, patterns, theta):
  """Scalar statistics for :func:`diagnose`, in NumPy (only wrong rows get here)."""
  u = np.asarray(u, np.float64)
  r = np.asarray(r, np.float64)
  with np.errstate(all="ignore"):
    err = np.abs(u - r)
    absr = np.abs(r)
    denom = np.maximum(absr, floor * (np.max(absr) if absr.size else 0.0))
    rel = np.where(err == 0, 0.0, err / np.where(denom > 0, denom, np.finfo(np.float64).tiny))
    mism = ((rel > rtol) & (err > atol)) | np.isnan(err)

    def fit(a, b, w=None):
      # least-squares a ≈ c·b (over w), residual relative to max(‖a‖, |c|‖b‖)
      if w is not None:
        a, b = np.where(w, a, 0.0), np.where(w, b, 0.0)
      bb = float(np.sum(b * b))
      if not bb > 0:
        return np.nan, np.inf
      c = float(np.sum(a * b)) / bb
      scale = max(float(np.sqrt(np.sum(a * a))), abs(c) * np.sqrt(bb), 1e-300)
      return c, float(np.sqrt(np.sum((a - c * b) ** 2))) / scale

    s = {"ratio": fit(u, r), "ratio_on_mismatch": fit(u, r, mism), "n_mism": int(np.sum(mism)),
         "u_zero": bool(np.all(u == 0))}
    d = u - r
    if theta is not None:
      th = np.asarray(theta, np.float64)
      s["diff_theta"] = fit(d, th)
      s["diff_sign"] = fit(d, np.sign(th))
    if u.ndim == 2 and u.shape[0] == u.shape[1]:
      t_err = np.abs(u - r.T)
      s["transpose"] = float(np.max(t_err / np.maximum(np.abs(r.T), floor * np.max(absr) + 1e-300)))
    pats = []
    for v in patterns:
      v = np.asarray(v)
      pats.append((np.sum(mism & (v < 0)), np.sum(mism & (v > 0)), np.sum(mism & (v == 0)),
                   np.sum(v < 0), np.sum(v > 0), np.sum(v == 0)))
    s["patterns"] = pats
  return s


def is_transpose(a, r, rtol, atol, floor) -> bool:
  """Whether ``a.T`` matches ``r`` within the tolerances (NumPy)."""
  a = np.asarray(a, np.float64).T
  r = np.asarray(r, np.float64)
  if a.shape != r.shape:
    return False
  err = np.abs(a - r)
  denom = np.maximum(np.abs(r), floor * (np.max(np.abs(r)) if r.size else 0.0))
  with np.errstate(all="ignore"):
    rel = np.where(err == 0, 0.0, err / np.where(denom > 0, denom, 1e-300))
  return not bool(np.any(((rel > rtol) & (err > atol)) | np.isnan(err)))


def _close(a: float, b: float, tol: float = 1e-6) -> bool:
  return abs(a - b) <= tol * max(abs(a), abs(b), 1e-300)


def _named_factor(c: float, batch_sizes) -> bool:
  """Whether ``c`` is a factor with a name (−1, ±2, ±½, the batch size or its inverse)."""
  named = [-1.0, 2.0, 0.5, -2.0, -0.5] + [float(m) for m in batch_sizes if m > 1] + [
      1.0 / m for m in batch_sizes if m > 1]
  return any(_close(c, v) for v in named)


def _factor_text(c: float, batch_sizes) -> str:
  if _close(c, -1.0):
    return "yours = −1 × reference everywhere: a sign error"
  for m in batch_sizes:
    if m > 1 and _close(c, float(m)):
      return f"yours = {m} × reference (the batch size {m}): a missing 1/m"
    if m > 1 and _close(c, 1.0 / m):
      return f"yours = reference / {m} (the batch size {m}): an extra 1/m"
  if _close(c, 2.0):
    return "yours = 2 × reference: a factor-2 slip (λ vs 2λ, or a lost ½ of a square)"
  if _close(c, 0.5):
    return "yours = ½ × reference: a factor-½ slip (2λ vs λ, or an extra ½)"
  if _close(c, -2.0) or _close(c, -0.5):
    return f"yours = {c:g} × reference: a sign error and a factor-2 slip"
  return f"yours = {c:.6g} × reference everywhere: a constant-factor error"


def diagnose(u, r, rtol, atol, floor, *, patterns=(), theta=None, theta_name="θ",
             batch_sizes=(), activation_hint=True) -> str | None:
  """Describes what a mismatch looks like, or ``None`` when no pattern fits.

  Args:
    u, r: the user's and the reference arrays (same shape).
    rtol, atol, floor: the tolerances the row was judged with.
    patterns: ``(name, array)`` pairs of tapped forward values with the shape
      of ``u``; a mismatch confined to where one is negative (or positive)
      points at an activation-derivative slip.
    theta: the parameter value for parameter rows (to spot a penalty term).
    batch_sizes: leading sizes of the data arrays (to name a missing ``1/m``).
    activation_hint: name an activation-derivative slip when a sign pattern
      fits (off for :func:`jaxreg.check_identity`, whose pattern is ``x``).
  """
  u = np.asarray(u)
  r = np.asarray(r)
  names = [n for n, _ in patterns]
  s = _diag_stats(u, r, rtol, atol, floor, [np.asarray(v) for _, v in patterns], theta)
  c, res = (float(x) for x in s["ratio"])
  if bool(s["u_zero"]):
    return "yours is zero everywhere (a dropped term?)"
  if res < 1e-6 and math.isfinite(c) and (u.size > 1 or _named_factor(c, batch_sizes)):
    if abs(c - 1) < 1e-6:
      return ("yours agrees with the reference to rounding level only (relative differences "
              "near rtol): an ill-conditioned but correct formula (e.g. 1 − tanh² at saturation) "
              "would do this; pass a looser rtol if so")
    return _factor_text(c, batch_sizes)
  if "transpose" in s and float(s["transpose"]) <= rtol:
    return "yours equals the transpose of the reference: a transposed or swapped matrix"
  if "diff_theta" in s and u.size > 1:     # for a scalar every difference is "∝ θ"
    cd, rd = (float(x) for x in s["diff_theta"])
    if rd < 1e-6 and cd != 0:
      if cd > 0:
        return (f"yours − reference = {cd:.6g} · {theta_name}: an extra L2 term (weight decay "
                f"{cd:.6g}) the loss does not have on {theta_name}, e.g. a penalty on biases that "
                "should not be penalised")
      return (f"yours − reference = {cd:.6g} · {theta_name}: the L2 term of the loss on "
              f"{theta_name} is missing (or too small) in the derivation")
    cs, rs_ = (float(x) for x in s["diff_sign"])
    if rs_ < 1e-6 and cs != 0:
      return (f"yours − reference = {cs:.6g} · sgn({theta_name}): an L1 term "
              + ("the loss does not have" if cs > 0 else "of the loss is missing"))
  n_mism = int(s["n_mism"])
  for kind in ("neg", "pos", "zero"):
    for (name, (m_neg, m_pos, m_zero, c_neg, c_pos, c_zero)) in zip(names, s["patterns"]):
      m_in, c_in, sym = {"neg": (m_neg, c_neg, "< 0"), "pos": (m_pos, c_pos, "> 0"),
                         "zero": (m_zero, c_zero, "== 0")}[kind]
      if n_mism and int(m_in) == n_mism and int(c_in) < u.size:
        what = ("an activation-derivative slip (a missing or wrong step factor "
                f"H({name}) or f'({name}))") if kind != "zero" else (
                    f"a slip at {name} == 0 (a derivative convention that is not a valid subgradient)")
        text = f"wrong only where {name} {sym} ({n_mism} of the {int(c_in)} such elements)"
        return text + (": " + what if activation_hint else "")
  cm, rm = (float(x) for x in s["ratio_on_mismatch"])
  if n_mism > 1 and rm < 1e-6 and math.isfinite(cm):
    return f"on the {n_mism} mismatching elements, " + _factor_text(cm, batch_sizes).replace(
        " everywhere", "")
  return None
