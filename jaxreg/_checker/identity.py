"""`check_identity`: two elementwise functions agree in value and derivative.

Example: S0.7 claims ``LeakyReLU(x) = (1+α)·ReLU(x) − α|x|``. Points: an
even grid over ``domain`` (with 0 added when inside it, where activations
have their kinks), random points, and any ``points`` given. Derivatives are
``jax.grad`` of each function. At a point where the two derivatives differ,
one-sided differences of ``f`` and ``g`` are taken: if each side of ``f``
matches the same side of ``g`` and the two sides differ (a kink), the
disagreement is only a convention of autodiff there — verdict ``kink``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._checker import diagnose as _diagnose
from jaxreg._checker import reference as _check_ref
from jaxreg._checker import tolerance as _tolerance
from jaxreg._checker.compare import Comparison, scale_np
from jaxreg._checker.report import BAD, Report, Row
from jaxreg._checker.usercode import describe_exc


def _points(domain, n_grid, n_random, points, seed, dtype):
  if not (isinstance(domain, (tuple, list)) and len(domain) == 2):
    raise ValueError(f"check_identity: `domain` must be a pair (low, high), got {domain!r}.")
  low, high = float(domain[0]), float(domain[1])
  if not (np.isfinite(low) and np.isfinite(high) and low < high):
    raise ValueError(f"check_identity: `domain` must satisfy low < high (finite), got {domain!r}.")
  rng = np.random.default_rng(seed)
  xs = [np.linspace(low, high, int(n_grid)), rng.uniform(low, high, int(n_random))]
  if low <= 0.0 <= high:
    xs.append(np.zeros(1))
  if points is not None:
    xs.append(np.asarray(points, np.float64).ravel())
  return jnp.asarray(np.unique(np.concatenate(xs)), dtype)


def check_identity(f: Callable, g: Callable, *, domain: tuple[float, float],
                   n_grid: int = 201, n_random: int = 200, points=None, seed: int = 0,
                   rtol: float | None = None, atol: float | None = None, dtype=None,
                   names: tuple[str, str] = ("f", "g")) -> Report:
  """Checks that elementwise ``f`` and ``g`` agree in value and derivative on ``domain``.

  Args:
    f, g: elementwise functions of one array (e.g. ``jax.nn.leaky_relu``).
    domain: ``(low, high)``; the grid covers it, 0 is added when inside.
    n_grid: grid points (including both ends).
    n_random: uniformly random points (``seed``).
    points: extra points to include (e.g. known kinks).
    seed: seed of the random points.
    rtol, atol: tolerances; default by dtype as in :func:`jaxreg.check`.
    dtype: float dtype of the points (default float64 when x64 is on).
    names: how ``f`` and ``g`` are called in the report.

  Returns:
    A :class:`jaxreg.Report` with rows ``"value"`` (``f(x)`` vs ``g(x)``) and
    ``"derivative"`` (``f'(x)`` vs ``g'(x)``), verdicts as in :func:`jaxreg.check`.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> import jaxreg
    >>> a = 0.1
    >>> r = jaxreg.check_identity(lambda x: jax.nn.leaky_relu(x, a),
    ...                           lambda x: (1 + a) * jax.nn.relu(x) - a * jnp.abs(x),
    ...                           domain=(-3.0, 3.0))
    >>> r.ok, r.row("derivative").verdict
    (True, 'kink')
  """
  for nm, fn in zip(("f", "g"), (f, g)):
    if not callable(fn):
      raise TypeError(f"check_identity: `{nm}` must be callable, got {type(fn).__name__}.")
  dtype = jnp.dtype(dtype) if dtype is not None else jnp.asarray(0.0).dtype
  xs = _points(domain, n_grid, n_random, points, seed, dtype)
  tol = _tolerance.resolve(dtype, rtol, atol, "check_identity")
  fn_, gn_ = names
  report = Report(rows=[], title=f"jaxreg.check_identity({fn_}, {gn_})", rtol=tol.rtol, atol=tol.atol,
                  dtype=str(dtype))
  vals, ders = [], []
  for nm, fn in zip(names, (f, g)):
    try:
      v = jnp.asarray(fn(xs))
      if v.shape != xs.shape:
        raise ValueError(f"returned shape {v.shape} for input shape {xs.shape}; "
                         "it must be elementwise")
      d = jax.vmap(jax.grad(lambda x, fn=fn: jnp.asarray(fn(x), dtype)))(xs)
    except Exception as e:  # pylint: disable=broad-except  # user code: reported
      report.error = describe_exc(e, f"`{nm}`")
      report.summary = f"{report.error}, so the identity could not be checked."
      return report
    vals.append(v.astype(dtype))
    ders.append(d.astype(dtype))
  rows = [Row("value", "value", f"{fn_}(x) vs {gn_}(x)", tuple(xs.shape), "ok", size=xs.size),
          Row("derivative", "value", f"{fn_}'(x) vs {gn_}'(x)", tuple(xs.shape), "ok",
              size=xs.size)]
  xs_np = np.asarray(xs, np.float64)
  for row, (u, r) in zip(rows, ((vals[1], vals[0]), (ders[1], ders[0]))):
    scale = scale_np([r])
    comp = Comparison.of(u, r, tol, scale)
    row.max_abs_err = float(np.max(comp.err, initial=0.0))
    row.max_rel_err = float(np.max(comp.rel, initial=0.0))
    row.n_mismatch = comp.count
    if not row.n_mismatch:
      continue
    row.verdict = "wrong"
    worst = comp.worst()
    row.worst_index = (int(worst),)
    row.worst_user, row.worst_ref = float(comp.user[worst]), float(comp.ref[worst])
    mism_idx = np.nonzero(comp.mismatch)[0]
    if row.name == "derivative":
      kinks, outside = _all_kinks(f, g, xs_np[mism_idx], dtype, tol, scale,
                                  np.asarray(u, np.float64)[mism_idx],
                                  np.asarray(r, np.float64)[mism_idx])
      if kinks:
        row.verdict = "kink"
        row.n_kink = row.n_mismatch
        pts = ", ".join(f"{x:g}" for x in xs_np[mism_idx][:5])
        row.note = (f"{row.n_kink} point(s) (x = {pts}{', …' if len(mism_idx) > 5 else ''}) are kinks "
                    f"where {fn_} and {gn_} have the same one-sided derivatives; autodiff picks a "
                    "different value for each there")
        if outside:
          row.note += "; " + outside
        continue
    row.diagnosis = _diagnose.diagnose(u, r, tol, scale, patterns=[("x", xs)],
                                       activation_hint=False)
    row.note = (f"worst at x = {xs_np[int(worst)]:g}: {gn_} gives {row.worst_user:.6g}, "
                f"{fn_} gives {row.worst_ref:.6g}")
  report.rows = rows
  bad = [r for r in rows if r.verdict in BAD]
  if not bad:
    report.summary = (f"{fn_} and {gn_} agree in value and derivative on {xs.size} points of "
                      f"[{domain[0]:g}, {domain[1]:g}]" + (
                          f" (derivatives differ only at {rows[1].n_kink} kink point(s), where the "
                          "one-sided derivatives agree)" if rows[1].n_kink else "") + ".")
  elif bad[0].name == "value":
    report.summary = (f"{fn_} and {gn_} differ in value at {bad[0].n_mismatch} of {xs.size} points"
                      + (f" ({bad[0].diagnosis})" if bad[0].diagnosis else "") + ", so the identity is false.")
  else:
    report.summary = (f"{fn_} and {gn_} agree in value but their derivatives differ at "
                      f"{bad[0].n_mismatch} points that are not kinks"
                      + (f" ({bad[0].diagnosis})" if bad[0].diagnosis else "") + ".")
  return report


def _all_kinks(f, g, pts, dtype, tol, scale, d_g, d_f) -> tuple[bool, str]:
  """``(kinks, remark)``: whether at every point f and g have the same one-sided derivatives
  and these jump (a kink); ``remark`` names points where an autodiff derivative ``d_f`` or
  ``d_g`` lies outside the one-sided interval (composed conventions, not a subgradient)."""
  if pts.size == 0 or pts.size > 256:
    return False, ""
  x = jnp.asarray(pts, dtype)
  eps_rel = float(jnp.finfo(dtype).eps)
  h = (1e-6 if dtype == jnp.float64 else 3e-3) * np.maximum(np.abs(pts), 1.0)
  hs = jnp.asarray(h, dtype)
  sides = []
  for fn in (f, g):
    vals = jnp.stack([fn(x + hs), fn(x - hs), fn(x + 2 * hs), fn(x - 2 * hs)], axis=-1)
    base = np.asarray(fn(x), np.float64)
    sides.append(_check_ref.one_sided(base, np.asarray(vals, np.float64), h, eps_rel))
  (ff, fb, fm), (gf, gb, gm) = sides
  m = fm + gm + tol.rtol * max(tol.floor * scale, 1e-300) + 1e-12 * np.maximum(np.abs(ff), np.abs(fb))
  same_sides = (np.abs(ff - gf) <= m) & (np.abs(fb - gb) <= m)
  jump = np.abs(ff - fb) > 4 * m
  lo, hi = np.minimum(ff, fb) - m, np.maximum(ff, fb) + m
  remark = []
  for name, d in (("f", d_f), ("g", d_g)):
    out = ~((lo <= d) & (d <= hi))
    for k in np.nonzero(out)[0][:3]:
      remark.append(f"autodiff's {name}'({pts[k]:g}) = {d[k]:.6g} lies outside the one-sided "
                    f"derivatives [{min(ff[k], fb[k]):.6g}, {max(ff[k], fb[k]):.6g}] "
                    "(composed kink conventions, not a subgradient)")
  return bool(np.all(same_sides & jump)), "; ".join(remark)
