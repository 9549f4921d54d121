"""Kinks: mismatches that are conventions at non-differentiable points, not errors.

The largest mismatches of a wrong row (at most ``max_probes`` per row,
``max_probes_total`` per check) are probed one element at a time: the loss
(and every tapped value) is evaluated at ``±h`` and ``±2h`` along that
element — a parameter entry or a tap perturbation, ``h = δ·max(|value|,
mean |value|, 1e-3)`` with ``δ = 1e-6`` in float64 (``3e-3`` otherwise) — and
the one-sided derivatives are Richardson-extrapolated
(:func:`jaxreg._checker.reference.one_sided`). Three rules, in order:

* **the user's own step**: take the nearest tapped quantity ``d``
  downstream that the element moves, when its row is ``ok`` or ``kink``
  (its values are valid conventions). Holding ``d`` at its value (the tap's
  perturbation cancels the move exactly) gives the derivative along every
  path around ``d``, such as a penalty term. Where that and the step from
  the element to ``d`` are smooth, the element's true value is ``∂L/∂d``
  carried through the step plus the paths around it, so the user's value
  must be *their own* ``∂L/∂d`` carried the same way: then it is a kink
  (valid conventions at the kinks beyond ``d`` compose), otherwise wrong —
  even where it happens to lie between the loss's one-sided derivatives,
  as a ``mean`` for a ``sum`` can at a dead leaky-ReLU column: the steps
  of the derivation then do not chain;
* **simple**: the loss's one-sided derivatives jump far above their error
  estimate and the user's value lies between them (a valid subgradient);
* **composite through a kinked step**: two kinks meet in one sample (a ReLU
  at exactly 0 feeding a hinge at exactly 0), so a product of valid local
  conventions may lie outside the loss's one-sided derivatives. Through a
  tapped quantity ``d`` downstream whose row is ``ok`` or ``kink``, the
  valid values are the user's own ``∂L/∂d`` carried back through the
  one-sided derivatives of ``d`` with respect to this element: per element
  of ``d`` anything between ``g·∂⁺d`` and ``g·∂⁻d``, summed (plus the smooth
  paths around ``d`` for the nearest one). The element is a composite kink
  when the user's value lies in that range, the reference lies in the range
  built from the reference's ``∂L/∂d`` (so nothing unmeasured bypasses
  ``d``), and some kink is involved (the one-sided derivatives of ``d``
  differ, or the user's ``∂L/∂d`` is itself a convention where this element
  moves ``d``).

* **composite through the loss's own kink sites**: a parameter element with
  no tapped quantity downstream that it moves (a derivation that returns only
  the parameter gradient, as most course code does) is judged by the loss's
  traced program: its ``max``/``min``/``abs``/``jnp.where`` kinks that tie
  here, each at any value between its pieces' derivatives
  (:mod:`~jaxreg._checker.conventions`). A kink when some combination gives
  the user's value; wrong when none does.

A value that no combination gives stays ``wrong``. A row stops being probed
at its first element that is no kink, so a wrong row costs four to eight
evaluations (plus, for the last rule, one compiled search per element).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._checker import conventions as _conventions
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


_STEPS = (1.0, -1.0, 2.0, -2.0)    # multiples of h at which one element is probed


class Prober:
  """Evaluates the loss and its taps along one element of a parameter or a tap."""

  def __init__(self, fn, params, dyn, specs: dict, conventions: Callable[[], Any] | None = None):
    self.fn = fn
    self._conventions = conventions
    self._search: Any = None
    self.params, self.dyn = params, dyn
    self.leaves, self.treedef = jax.tree_util.tree_flatten(params)
    self.specs = specs
    self.eps0 = {name: jnp.zeros(s.shape, s.dtype) for name, s in specs.items()}
    self.host: dict[int, np.ndarray] = {}
    base_loss, base_taps = fn(params, dyn, self.eps0)
    self.base = float(base_loss)
    self.base_taps = base_taps

  def conventions(self):
    """The :class:`~jaxreg._checker.conventions.Search` of the loss's kink sites (built once),
    or ``None`` (no traced loss, or no kink site ties)."""
    if self._search is None:
      self._search = (self._conventions() if self._conventions is not None else None) or False
    return self._search or None

  def at(self, key, i: int, h: float, hold: str | None = None, moved: list | None = None) -> list:
    """``[(L, taps)]`` at steps ``+h, −h, +2h, −2h`` along flat element ``i`` of ``key``.

    With ``hold`` (a tap downstream) and ``moved`` (this method's own output
    without it), the tap is held at its base value: each step adds
    ``base − moved`` to it, which gives the base value exactly (the
    difference of two nearby floats is exact), so the loss then changes only
    along the paths that bypass ``hold``.
    """
    out = []
    for k, step in enumerate(_STEPS):
      params, eps = self.params, dict(self.eps0)
      if key.kind == "param":
        q = key.index
        if q not in self.host:
          self.host[q] = np.asarray(self.leaves[q])
        x = self.host[q].copy()
        x.flat[i] += step * h
        leaves = list(self.leaves)
        leaves[q] = jnp.asarray(x)
        params = jax.tree_util.tree_unflatten(self.treedef, leaves)
      else:
        spec = self.specs[key.name]
        z = np.zeros(spec.shape, spec.dtype)
        z.flat[i] = step * h
        eps[key.name] = jnp.asarray(z)
      if hold is not None:
        eps[hold] = self.base_taps[hold] - moved[k][1][hold]
      out.append(self.fn(params, self.dyn, eps))
    return out


def _where(i: int, shape) -> str:
  return ("element " + str([int(j) for j in np.unravel_index(i, shape)])) if len(shape) else \
      "this scalar"


def append_note(row: Row, text: str):
  """Adds ``text`` to the row's note."""
  row.note = (row.note + "; " if row.note else "") + text


class OneSided(NamedTuple):
  """One-sided derivatives along one element (floats, or arrays over a tap's elements).

  Attributes:
    fwd, bwd: the (+) and (−) one-sided derivatives.
    margin: a bound on the error of each.
  """

  fwd: Any
  bwd: Any
  margin: Any

  @classmethod
  def estimate(cls, base, moved, h: float, eps_rel: float) -> "OneSided":
    """From the base value(s) and ``moved[..., k]`` at the steps ``_STEPS`` (times ``h``)."""
    return cls(*_check_ref.one_sided(np.asarray(base, np.float64), moved, h, eps_rel))

  def jumps(self, tol: float = 0.0):
    """Where the two sides differ far beyond their error: a kink."""
    return np.abs(self.fwd - self.bwd) > 4 * (self.margin + tol)


class Step(NamedTuple):
  """How one element reaches the loss through a tapped quantity downstream.

  Attributes:
    tap: the row of the tapped quantity ``d``.
    jac: one-sided derivatives of ``d`` (flat) with respect to the element.
    bypass: the loss's one-sided derivatives with ``d`` held at its value —
      the paths around ``d``, such as a penalty term — when measured (and
      smooth); ``None`` when not measured, and then the reference must show
      that no path bypasses ``d``.
  """

  tap: Judged
  jac: OneSided
  bypass: OneSided | None

  def carry(self, g, eps_rel: float) -> tuple[float, float, float]:
    """``(lo, hi, margin)`` of ``Σ_k g_k·∂d_k`` (plus the bypass) over either side at each ``k``.

    Any value in ``[lo, hi]`` takes, at every element of ``d`` with a kink
    between it and this element, some value between the one-sided ones.
    """
    g = np.asarray(g, np.float64).ravel()
    a, b = g * self.jac.fwd, g * self.jac.bwd
    lo, hi = float(np.sum(np.minimum(a, b))), float(np.sum(np.maximum(a, b)))
    margin = float(np.sum(np.abs(g) * self.jac.margin)) + \
        8 * eps_rel * float(np.sum(np.maximum(np.abs(a), np.abs(b))))
    if self.bypass is not None:
      mid = 0.5 * (self.bypass.fwd + self.bypass.bwd)
      lo, hi = lo + mid, hi + mid
      margin += float(self.bypass.margin) + 0.5 * abs(self.bypass.fwd - self.bypass.bwd)
    return lo, hi, margin

  def around(self) -> float:
    """The derivative along the paths around ``d`` (0 when not measured)."""
    return 0.0 if self.bypass is None else 0.5 * float(self.bypass.fwd + self.bypass.bwd)


class Finding(NamedTuple):
  """What probing one element found.

  Attributes:
    kink: the element's value is a valid convention (else it is wrong).
    text: for a kink, a note when conventions compose (``None`` for a simple
      kink); otherwise why it is wrong.
  """

  kink: bool
  text: str | None


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
    probed, why, notes = 0, None, []
    for i in j.candidates:
      if budget <= 0:
        break
      budget -= 1
      probed += 1
      h = delta * max(abs(float(vals[i])), mean, 1e-3)
      found = _element(j, i, h, prober, judged, scale, eps_rel)
      if not found.kink:
        why = found.text
        break
      j.kinks.append(i)
      if found.text is not None:
        notes.append(found.text)
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


def _element(j: Judged, i: int, h: float, prober: Prober, judged: list[Judged], scale: float,
             eps_rel: float) -> Finding:
  """Whether the mismatch at flat element ``i`` of row ``j`` is a kink.

  In order: the step to the nearest tapped quantity ``d`` downstream that the
  element moves, when ``d``'s row is ``ok`` or ``kink`` — where that step
  (and every path around ``d``) is smooth it decides alone: the value must be
  the user's own ``∂L/∂d`` carried through it; then a simple kink (between
  the loss's one-sided derivatives); then a composite kink through any ``d``
  downstream whose row is ``ok`` or ``kink``.
  """
  shape = tuple(np.shape(j.ref))
  u_i = float(np.asarray(j.user, np.float64).ravel()[i])
  r_i = float(np.asarray(j.ref, np.float64).ravel()[i])
  tol_i = j.tol.atol + j.tol.rtol * max(abs(r_i), j.tol.floor * scale)
  points = prober.at(j.slot.key, i, h)
  fwd, bwd, margin = _loss_along(prober, points, h, eps_rel)
  lo, hi = min(fwd, bwd), max(fwd, bwd)
  mm = margin + tol_i
  is_kink = hi - lo > 4 * mm
  between = is_kink and lo - mm <= u_i <= hi + mm
  steps = [_step(d, h, points, prober, eps_rel) for d in _downstream(j, judged)]
  steps = [s for s in steps if s is not None]

  def composite(found: Finding) -> Finding:
    return Finding(True, f"composite kink at {_where(i, shape)}: yours, {u_i:.6g}, {found.text}; "
                   f"the loss's own one-sided derivatives there are {fwd:.6g} (+) and "
                   f"{bwd:.6g} (−)")

  nearest = steps[0] if steps else None
  if nearest is not None and nearest.tap.row.verdict in ("ok", "kink"):
    held = prober.at(j.slot.key, i, h, hold=nearest.tap.slot.key.name, moved=points)
    bypass = _loss_along(prober, held, h, eps_rel)
    if not bypass.jumps(tol_i):
      found = _through(nearest._replace(bypass=bypass), u_i, r_i, tol_i, eps_rel)
      if found is not None and found.kink:
        return Finding(True, None) if between else composite(found)
      if found is not None:
        return Finding(False, f"at {_where(i, shape)}, {found.text}" + (
            f"; yours lies between the loss's own one-sided derivatives ({fwd:.6g} (+), "
            f"{bwd:.6g} (−)), but not with the conventions your own steps took" if between
            else ""))
  if between:
    return Finding(True, None)
  for s in steps:
    found = _through(s, u_i, r_i, tol_i, eps_rel)
    if found is not None and found.kink:
      return composite(found)
  if not steps and j.slot.key.kind == "param":
    found = _by_conventions(prober, j, i, u_i, r_i, tol_i, eps_rel, fwd, bwd)
    if found is not None:
      return found
  if is_kink:
    return Finding(False, f"at {_where(i, shape)} there is a kink (one-sided derivatives "
                   f"{fwd:.6g} (+) and {bwd:.6g} (−)) but yours, {u_i:.6g}, is not between "
                   "them, nor a product of valid conventions at the kinks it passes through")
  return Finding(False, f"not a kink: at {_where(i, shape)} both one-sided derivatives are "
                 f"{fwd:.6g} (+) and {bwd:.6g} (−)")


def _by_conventions(prober: Prober, j: Judged, i: int, u_i: float, r_i: float, tol_i: float,
                    eps_rel: float, fwd: float, bwd: float) -> Finding | None:
  """A parameter element with no tapped quantity downstream, judged by the loss's own kink
  sites (:mod:`~jaxreg._checker.conventions`); ``None`` when no kink site moves it."""
  search = prober.conventions()
  if search is None:
    return None
  margin = tol_i + 64 * eps_rel * max(abs(u_i), abs(r_i))
  rng = search.range(j.slot.key.index, i, u_i, r_i, margin)
  if rng is None:
    return None
  shape = tuple(np.shape(j.ref))
  n = len(rng.kinks)
  what = f"{n} kink{'s' if n > 1 else ''} of the loss it passes through"
  kinks = _conventions.describe(rng.kinks)
  if rng.reached:
    return Finding(True, f"composite kink at {_where(i, shape)}: yours, {u_i:.6g}, is the "
                   f"gradient with other valid conventions at the {what} ({kinks}): local "
                   f"conventions compose; the loss's own one-sided derivatives there are "
                   f"{fwd:.6g} (+) and {bwd:.6g} (−), autodiff gives {r_i:.6g}")
  found = (f"they give values in [{rng.lo:.6g}, {rng.hi:.6g}]" if rng.exhaustive else
           f"a search over {rng.tried} of their {2 ** n if n < 64 else 'many'} combinations "
           f"reached only [{rng.lo:.6g}, {rng.hi:.6g}] (not exhaustive)")
  return Finding(False, f"at {_where(i, shape)} yours, {u_i:.6g}, is not a product of valid "
                 f"conventions at the {what} ({kinks}): {found}; the loss's one-sided "
                 f"derivatives there are {fwd:.6g} (+) and {bwd:.6g} (−)")


def _loss_along(prober: Prober, points, h: float, eps_rel: float) -> OneSided:
  """The loss's one-sided derivatives (floats) from the probe ``points``."""
  losses = np.asarray([[float(p[0]) for p in points]], np.float64)
  est = OneSided.estimate(prober.base, losses, np.asarray([h]), eps_rel)
  return OneSided(*(float(v[0]) for v in est))


def _downstream(j: Judged, judged: list[Judged]) -> list[Judged]:
  """The tap rows downstream of row ``j``, nearest first."""
  me = judged.index(j)
  rows = judged[:me] if j.slot.key.kind == "tap" else judged
  return [d for d in reversed(rows) if d.slot.key.kind == "tap"]


def _step(d: Judged, h: float, points, prober: Prober, eps_rel: float) -> Step | None:
  """The step from the probed element to tap ``d`` (the one-sided derivatives of ``d``, from
  the probe ``points``), or ``None`` when the element does not move ``d``."""
  name = d.slot.key.name
  base = np.asarray(prober.base_taps[name], np.float64).ravel()
  moved = np.stack([np.asarray(p[1][name], np.float64).ravel() for p in points], axis=-1)
  jac = OneSided.estimate(base, moved, h, eps_rel)
  if not (np.all(np.isfinite(jac.fwd)) and np.all(np.isfinite(jac.bwd))):
    return None
  if not (np.any(jac.fwd != 0) or np.any(jac.bwd != 0)):
    return None          # this element does not move d
  return Step(d, jac, None)


def _through(step: Step, u_i: float, r_i: float, tol_i: float, eps_rel: float) -> Finding | None:
  """Whether ``u_i`` is the user's ``∂L/∂d`` carried through ``step``, with some kink involved.

  ``None`` when the step does not decide: the reference is not ``∂L/∂d``
  carried through it (a path around ``d`` that was not measured), or the
  value fits but no kink is involved, or it does not fit but the step itself
  passes a kink or the paths around ``d`` were not measured (another rule may
  still explain it). Otherwise a :class:`Finding` (its ``text`` the note).
  """
  d = step.tap
  if d.row.verdict not in ("ok", "kink"):
    return None
  name = d.slot.key.name
  g_u = np.asarray(d.user, np.float64).ravel()
  g_r = np.asarray(d.ref, np.float64).ravel()
  lo_r, hi_r, m_r = step.carry(g_r, eps_rel)
  if not lo_r - m_r - tol_i <= r_i <= hi_r + m_r + tol_i:
    return None
  lo_u, hi_u, m_u = step.carry(g_u, eps_rel)
  inside = lo_u - m_u - tol_i <= u_i <= hi_u + m_u + tol_i
  jac = step.jac
  local_kink = bool(np.any(jac.jumps() & (np.abs(jac.fwd - jac.bwd) > 1e-300)))
  moves = (np.abs(jac.fwd) > jac.margin) | (np.abs(jac.bwd) > jac.margin)
  d_kinked = d.row.verdict == "kink" and bool(np.any(moves & (g_u != g_r)))
  around = step.around()
  plus = float(np.sum(g_u * jac.fwd)) + around
  minus = float(np.sum(g_u * jac.bwd)) + around
  whose = f"your ∂L/∂{name}" + (" (itself a convention at its kink)" if d_kinked else "")
  extra = (f", plus {around:.6g} along the paths around {name} (e.g. a penalty term)"
           if step.bypass is not None and abs(around) > m_u + tol_i else "")
  if inside and (local_kink or d_kinked):
    m = m_u + tol_i
    side = ("the one-sided (+) derivative" if abs(u_i - plus) <= m else
            "the one-sided (−) derivative" if abs(u_i - minus) <= m else
            "a convention between the one-sided derivatives")
    local = (f"{side} of {name} w.r.t. this element, which has a kink here" if local_kink
             else f"the derivative of {name} w.r.t. this element")
    gives = (f"through + it gives {plus:.6g}, through − {minus:.6g}" if local_kink
             else f"it gives {plus:.6g}")
    return Finding(True, f"is {whose} carried through {local}{extra} ({gives}): local "
                   "conventions compose")
  if inside or local_kink or step.bypass is None:
    return None
  return Finding(False, f"yours, {u_i:.6g}, does not follow from {whose}: the step from here to "
                 f"{name} is smooth, and your ∂L/∂{name} carried through it{extra} gives "
                 f"{plus:.6g}, autodiff's gives {r_i:.6g}")
