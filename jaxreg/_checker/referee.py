"""The referee's verdict: is ``jax.grad`` of the loss itself right?

Along each random unit direction ``v`` (see
:func:`jaxreg._checker.reference._referee`), central differences of the
loss at steps ``h`` and ``2h`` are compared with ``⟨∇L, v⟩``, relative to
``max(|⟨∇L, v⟩|, ‖∇L‖₂/√P)``, with the Richardson estimate of the
difference error as slack. A direction whose one-sided differences jump
(it crosses a kink) cannot judge autodiff there: verdict ``kink`` unless
another direction finds it wrong.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._checker import reference as _check_ref
from jaxreg._checker.report import Referee


def judge(samples: "_check_ref.RefereeSamples | None", dtype) -> Referee:
  """The :class:`Referee` verdict from the referee's samples."""
  if samples is None:
    return Referee("skipped", 0, None, "no referee requested")
  s = jax.device_get(samples)
  vals = np.asarray(s.values, np.float64)
  dots = np.asarray(s.dots, np.float64)
  h, g_norm, size, base = float(s.h), float(s.g_norm), float(s.size), float(s.loss)
  eps = float(jnp.finfo(dtype).eps)
  tol = 1e-6 if dtype == jnp.float64 else 3e-2
  with np.errstate(all="ignore"):
    c1 = (vals[:, 0] - vals[:, 1]) / (2 * h)
    c2 = (vals[:, 2] - vals[:, 3]) / (4 * h)
    fwd, bwd, margin = _check_ref.one_sided(base, vals, h, eps)
    noise = 8 * eps * (abs(base) + np.abs(vals[:, 2]) + np.abs(vals[:, 3])) / h
    scale = np.maximum(np.abs(dots), g_norm / math.sqrt(max(size, 1)))
    scale = np.where(scale > 0, scale, 1.0)
    rel = np.abs(c1 - dots) / scale
    slack = (np.abs(c1 - c2) + noise) / scale
  verdicts = []
  for j in range(len(dots)):
    if not (np.isfinite(c1[j]) and np.isfinite(dots[j])):
      verdicts.append("wrong")
    elif rel[j] <= tol + 4 * slack[j]:
      verdicts.append("ok")
    else:
      # A direction that straddles a kink (the one-sided differences jump by far more
      # than their error) cannot referee autodiff: its conventions at kinks compose
      # (relu'(0) = 0 with abs'(0) = 1, say) into values that need not lie between.
      lo, hi = min(fwd[j], bwd[j]), max(fwd[j], bwd[j])
      verdicts.append("kink" if hi - lo > 4 * margin[j] else "wrong")
  worst = float(np.max(rel)) if rel.size else None
  if "wrong" in verdicts:
    j = verdicts.index("wrong")
    return Referee("wrong", len(dots), worst,
                   f"along direction {j} autodiff gives {dots[j]:.6g} but central differences of "
                   f"the loss give {c1[j]:.6g}: jax.grad of this loss is itself wrong (a custom_vjp "
                   "or stop_gradient?), so the rows compare against a wrong reference")
  if "kink" in verdicts:
    return Referee("kink", len(dots), worst,
                   "a direction straddles a kink (the one-sided differences jump), so there the "
                   "referee cannot judge autodiff; no direction found it wrong")
  return Referee("ok", len(dots), worst, "")
