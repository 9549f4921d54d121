"""Kinks: mismatches that are conventions at non-differentiable points, not errors.

The largest mismatches of a wrong row (at most ``max_probes`` per row,
``max_probes_total`` per check) are probed one element at a time: the loss
(and every tapped value) is evaluated at ``±h`` and ``±2h`` along that
element — a parameter entry or a tap perturbation, ``h = δ·max(|value|,
mean |value|, 1e-3)`` with ``δ = 1e-6`` in float64 (``3e-3`` otherwise) — and
the one-sided derivatives are Richardson-extrapolated
(:func:`jaxreg._checker.reference.one_sided`). The element is a kink when

* **simple**: the loss's one-sided derivatives jump far above their error
  estimate and the user's value lies between them (a valid subgradient); or
* **composite**: two kinks meet in one sample (a ReLU at exactly 0 feeding a
  hinge at exactly 0), so a product of valid local conventions may lie
  outside the loss's one-sided derivatives. Through a tapped quantity ``d``
  downstream whose row is ``ok`` or ``kink``, the valid values are the
  user's own ``∂L/∂d`` carried back through the one-sided derivatives of
  ``d`` with respect to this element: per element of ``d`` anything between
  ``g·∂⁺d`` and ``g·∂⁻d``, summed. The element is a composite kink when the
  user's value lies in that range, the reference lies in the range built
  from the reference's ``∂L/∂d`` (so ``d`` carries every path from this
  element to the loss — no penalty term bypasses it), and some kink is
  involved (the one-sided derivatives of ``d`` differ, or the user's
  ``∂L/∂d`` is itself a convention where this element moves ``d``).

A value that no combination gives stays ``wrong``. A row stops being probed
at its first element that is no kink, so a wrong row costs four evaluations.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._checker import reference as _check_ref
from jaxreg._checker import tap as _tap
from jaxreg._checker.compare import Comparison
from jaxreg._checker.plan import Slot
from jaxreg._checker.report import Row
from jaxreg._checker.tolerance import Tolerance


@dataclasses.dataclass
class Judged:
  """A compared row while it is judged (host side).

  Attributes:
    row: the report row (its verdict is updated in place).
    slot: which reference quantity it compares with.
    user, ref: the user's array and the reference (same shape).
    tol: the tolerance it is judged with.
    theta: the parameter leaf for a parameter row, else ``None``.
    comparison: elementwise comparison (rows with mismatches only).
    candidates: flat indices of the largest mismatches, to probe.
    kinks: flat indices found to be kinks.
    nonfinite: the user's array holds an inf or nan.
  """

  row: Row
  slot: Slot
  user: Any
  ref: Any
  tol: Tolerance
  theta: Any = None
  comparison: Comparison | None = None
  candidates: list[int] = dataclasses.field(default_factory=list)
  kinks: list[int] = dataclasses.field(default_factory=list)
  nonfinite: bool = False


def make_probe_fn(loss: Callable, split: "_check_ref.Split",
                  traced: "_check_ref.TracedLoss | None"):
  """``f(params, dyn, eps) -> (loss, {tap: value})`` with tap perturbations ``eps``.

  With ``traced`` (the loss traced for this check) it is compiled once per
  loss program (:mod:`~jaxreg._checker.program_cache`), the loss's constants
  passed as arguments; without (a loss that cannot be traced) it runs eagerly.
  """
  if traced is not None:
    program = traced.traced._replace(consts=())   # kept in the cache: the program, not its data

    def g(consts, p, dyn, eps):
      return _tap.call_traced(program, consts, (p, dyn), eps)

    compiled = _check_ref.cached(("probe", traced.key), lambda: jax.jit(g))
    consts = traced.traced.consts
    return lambda p, dyn, eps: compiled(consts, p, dyn, eps)

  split = split.structure()

  def f(params, dyn, eps):
    args, kwargs = split.rebuild(dyn)
    with _tap._Context("perturb", eps) as ctx:
      value = loss(params, *args, **kwargs)
    return value, dict(ctx.values)

  return f


class Prober:
  """Evaluates the loss and its taps along one element of a parameter or a tap."""

  def __init__(self, fn, params, dyn, specs: dict):
    self.fn = fn
    self.params, self.dyn = params, dyn
    self.leaves, self.treedef = jax.tree_util.tree_flatten(params)
    self.specs = specs
    self.eps0 = {name: jnp.zeros(s.shape, s.dtype) for name, s in specs.items()}
    self.host: dict[int, np.ndarray] = {}
    base_loss, base_taps = fn(params, dyn, self.eps0)
    self.base = float(base_loss)
    self.base_taps = base_taps

  def at(self, key, i: int, h: float) -> list:
    """``[(L, taps)]`` at steps ``+h, −h, +2h, −2h`` along flat element ``i`` of ``key``."""
    out = []
    for step in (1.0, -1.0, 2.0, -2.0):
      if key.kind == "param":
        q = key.index
        if q not in self.host:
          self.host[q] = np.asarray(self.leaves[q])
        x = self.host[q].copy()
        x.flat[i] += step * h
        moved = list(self.leaves)
        moved[q] = jnp.asarray(x)
        out.append(self.fn(jax.tree_util.tree_unflatten(self.treedef, moved), self.dyn, self.eps0))
      else:
        spec = self.specs[key.name]
        z = np.zeros(spec.shape, spec.dtype)
        z.flat[i] = step * h
        out.append(self.fn(self.params, self.dyn, {**self.eps0, key.name: jnp.asarray(z)}))
    return out


def _where(i: int, shape) -> str:
  return ("element " + str([int(j) for j in np.unravel_index(i, shape)])) if len(shape) else \
      "this scalar"


def append_note(row: Row, text: str):
  """Adds ``text`` to the row's note."""
  row.note = (row.note + "; " if row.note else "") + text


def probe(judged: list[Judged], prober_fn: Callable[[], Prober], dtype, scale: float,
          cap_total: int, base_values: Callable[[Judged], np.ndarray]):
  """Reclassifies wrong rows whose probed mismatches are all kinks (simple or composite).

  Args:
    judged: every compared row, in backprop order (taps first, from the output).
    prober_fn: builds the :class:`Prober` (called only when something is probed).
    dtype: the reference dtype.
    scale: the computation's scale (for the tolerance of an element).
    cap_total: most elements probed in this check.
    base_values: the current values of a row's quantity (to size the steps).
  """
  todo = [j for j in judged if j.row.verdict == "wrong" and j.candidates]
  if not todo:
    return
  prober = prober_fn()
  eps_rel = float(jnp.finfo(dtype).eps)
  delta = 1e-6 if dtype == jnp.float64 else 3e-3
  budget = int(cap_total)
  for j in todo:
    if budget <= 0:
      # The cap is spent, but a row is never judged wrong unprobed: its largest mismatch gets
      # one probe (a false alarm costs more than one more loss evaluation).
      budget = 1
      append_note(j.row, "probe cap reached: only its largest mismatch probed")
    vals = np.asarray(base_values(j), np.float64).ravel()
    mean = float(np.mean(np.abs(vals))) if vals.size else 1.0
    u_flat = np.asarray(j.user, np.float64).ravel()
    r_flat = np.asarray(j.ref, np.float64).ravel()
    shape = tuple(np.shape(j.ref))
    probed, why, notes = 0, None, []
    for i in j.candidates:
      if budget <= 0:
        break
      budget -= 1
      probed += 1
      h = delta * max(abs(float(vals[i])), mean, 1e-3)
      points = prober.at(j.slot.key, i, h)
      losses = np.asarray([float(p[0]) for p in points], np.float64)
      f, b, m = _check_ref.one_sided(prober.base, losses[None, :], np.asarray([h]), eps_rel)
      fwd, bwd, margin = float(f[0]), float(b[0]), float(m[0])
      u_i, r_i = float(u_flat[i]), float(r_flat[i])
      tol_i = j.tol.atol + j.tol.rtol * max(abs(r_i), j.tol.floor * scale)
      lo, hi = min(fwd, bwd), max(fwd, bwd)
      mm = margin + tol_i
      is_kink = hi - lo > 4 * mm
      if is_kink and lo - mm <= u_i <= hi + mm:
        j.kinks.append(i)
        continue
      composite = _composite(j, i, u_i, r_i, tol_i, h, points, prober, judged, eps_rel)
      if composite is not None:
        j.kinks.append(i)
        notes.append(f"composite kink at {_where(i, shape)}: yours, {u_i:.6g}, {composite}; "
                     f"the loss's own one-sided derivatives there are {fwd:.6g} (+) and "
                     f"{bwd:.6g} (−)")
        continue
      if is_kink:
        why = (f"at {_where(i, shape)} there is a kink (one-sided derivatives {fwd:.6g} (+) and "
               f"{bwd:.6g} (−)) but yours, {u_i:.6g}, is not between them, nor a product of "
               "valid conventions at the kinks it passes through")
      else:
        why = (f"not a kink: at {_where(i, shape)} both one-sided derivatives are "
               f"{fwd:.6g} (+) and {bwd:.6g} (−)")
      break
    if why is not None:
      append_note(j.row, why)
      continue
    j.row.verdict = "kink"
    j.row.n_kink = j.row.n_mismatch
    if probed < j.row.n_mismatch:
      append_note(j.row, f"{probed} of the {j.row.n_mismatch} mismatching elements probed (cap); all "
              "are kinks where yours is a valid (sub)gradient or a product of valid conventions")
    elif len(notes) < probed:
      append_note(j.row, f"{j.row.n_kink} element(s) at kinks: yours lies between the one-sided "
              "derivatives there (another valid convention), autodiff took another")
    for n in notes[:3]:
      append_note(j.row, n)


def _composite(j: Judged, i: int, u_i: float, r_i: float, tol_i: float, h: float, points,
               prober: Prober, judged: list[Judged], eps_rel: float) -> str | None:
  """How ``u_i`` composes from valid local conventions through a downstream tap, or ``None``."""
  me = judged.index(j)
  if j.slot.key.kind == "tap":
    downstream = [d for d in reversed(judged[:me]) if d.slot.key.kind == "tap"]
  else:
    downstream = [d for d in reversed(judged) if d.slot.key.kind == "tap"]
  for d in downstream:
    if d.row.verdict not in ("ok", "kink"):
      continue
    name = d.slot.key.name
    base = np.asarray(prober.base_taps[name], np.float64).ravel()
    moved = np.stack([np.asarray(p[1][name], np.float64).ravel() for p in points], axis=-1)
    jf, jb, jm = _check_ref.one_sided(base, moved, h, eps_rel)
    if not (np.all(np.isfinite(jf)) and np.all(np.isfinite(jb))):
      continue
    if not (np.any(jf != 0) or np.any(jb != 0)):
      continue          # this element does not move d
    g_u = np.asarray(d.user, np.float64).ravel()
    g_r = np.asarray(d.ref, np.float64).ravel()

    def interval(g):
      a, b = g * jf, g * jb
      m = float(np.sum(np.abs(g) * jm))
      return float(np.sum(np.minimum(a, b))), float(np.sum(np.maximum(a, b))), m

    lo_r, hi_r, m_r = interval(g_r)
    if not lo_r - m_r - tol_i <= r_i <= hi_r + m_r + tol_i:
      continue          # d does not carry every path from here to the loss
    lo_u, hi_u, m_u = interval(g_u)
    if not lo_u - m_u - tol_i <= u_i <= hi_u + m_u + tol_i:
      continue
    moves = (np.abs(jf) > jm) | (np.abs(jb) > jm)
    local_kink = bool(np.any(np.abs(jf - jb) > 4 * jm + 1e-300))
    d_kinked = d.row.verdict == "kink" and bool(np.any(moves & (g_u != g_r)))
    if not (local_kink or d_kinked):
      continue
    plus, minus = float(np.sum(g_u * jf)), float(np.sum(g_u * jb))
    m = m_u + tol_i
    side = ("the one-sided (+) derivative" if abs(u_i - plus) <= m else
            "the one-sided (−) derivative" if abs(u_i - minus) <= m else
            "a convention between the one-sided derivatives")
    whose = f"your ∂L/∂{name}" + (" (itself a convention at its kink)" if d_kinked else "")
    local = (f"{side} of {name} w.r.t. this element, which has a kink here" if local_kink
             else f"the derivative of {name} w.r.t. this element")
    return (f"is {whose} carried through {local} (through + it gives {plus:.6g}, through − "
            f"{minus:.6g}): local conventions compose")
  return None
