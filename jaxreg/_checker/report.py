"""`Row` and `Report`: what a check found, as a table, a sentence and a dict.

A :class:`Report` is plain data (no arrays): rows of numbers and strings, a
referee result, and a one-sentence localisation of the first error. It prints
as a table (``str(report)``) and serialises with ``report.to_dict()``
(JSON-safe: non-finite floats become the strings ``"nan"``, ``"inf"``,
``"-inf"``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

VERDICTS = ("ok", "wrong", "kink", "missing", "shape")
BAD = ("wrong", "missing", "shape")


def _json(x: Any) -> Any:
  if isinstance(x, float):
    if math.isfinite(x):
      return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
  if isinstance(x, (list, tuple)):
    return [_json(v) for v in x]
  if isinstance(x, dict):
    return {str(k): _json(v) for k, v in x.items()}
  return x


def _fmt(x: float | None) -> str:
  if x is None:
    return "-"
  if x == 0:
    return "0"
  if not math.isfinite(x):
    return str(x)
  return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


@dataclasses.dataclass
class Row:
  """One checked quantity.

  Attributes:
    name: the tap name (``"x2"``), the pytree path of a parameter leaf
      (``"params[0]['w']"``), or another label (``"f'(x)"``).
    kind: ``"tap"``, ``"param"`` or ``"value"`` (identity and update checks).
    label: how the quantity is printed, e.g. ``"∂L/∂x2"``.
    shape: the expected (reference) shape.
    verdict: one of ``ok``, ``wrong``, ``kink``, ``missing``, ``shape``.
    max_abs_err: ``max |user − reference|`` (``None`` when not compared).
    max_rel_err: the largest relative error (see :mod:`jaxreg._checker.tolerance`:
      ``|user − reference| / max(|reference|, floor·scale)``, scale that of the whole check).
    n_mismatch: elements beyond tolerance (kinks included).
    n_kink: mismatching elements found to be kinks (valid subgradients).
    size: number of elements.
    worst_index: index of the worst element (a tuple), or ``None``.
    worst_user: the user's value there.
    worst_ref: the reference value there.
    diagnosis: a sentence describing what the mismatch looks like, or ``None``.
    note: anything else worth saying (dtype differences, probing caps).
  """

  name: str
  kind: str
  label: str
  shape: tuple | None
  verdict: str
  max_abs_err: float | None = None
  max_rel_err: float | None = None
  n_mismatch: int = 0
  n_kink: int = 0
  size: int = 0
  worst_index: tuple | None = None
  worst_user: float | None = None
  worst_ref: float | None = None
  diagnosis: str | None = None
  note: str | None = None

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["shape"] = list(self.shape) if self.shape is not None else None
    d["worst_index"] = list(self.worst_index) if self.worst_index is not None else None
    return _json(d)


@dataclasses.dataclass
class Referee:
  """Independent directional finite-difference check of the reference gradient.

  Attributes:
    verdict: ``"ok"``, ``"kink"`` (some direction straddled a kink, where
      finite differences cannot judge autodiff; none found it wrong), ``"wrong"`` (autodiff
      of the loss disagrees with finite differences: e.g. a wrong
      ``custom_vjp``) or ``"skipped"``.
    directions: number of random directions probed.
    max_rel_err: worst ``|fd − ⟨∇L, v⟩| / max(|⟨∇L, v⟩|, ‖∇L‖₂/√P)``.
    detail: one sentence.
  """

  verdict: str
  directions: int = 0
  max_rel_err: float | None = None
  detail: str = ""

  def to_dict(self) -> dict:
    return _json(dataclasses.asdict(self))


@dataclasses.dataclass
class Report:
  """Result of :func:`jaxreg.check`, :func:`jaxreg.check_identity` or :func:`jaxreg.check_update`.

  Attributes:
    rows: one :class:`Row` per checked quantity, in backprop order (from the
      output towards the input), then parameters.
    referee: the :class:`Referee` result (``None`` where not applicable).
    title: what was checked.
    summary: one plain sentence localising the first error (or saying all agree).
    error: set when the user's code could not be run (e.g. the derivation
      raised); then ``rows`` may be empty.
    rtol, atol: the tolerances used.
    dtype: the reference dtype.
    unchecked: tapped quantities the derivation did not give.
    notes: further remarks.
  """

  rows: list[Row]
  referee: Referee | None = None
  title: str = "jaxreg.check"
  summary: str = ""
  error: str | None = None
  rtol: float | None = None
  atol: float | None = None
  dtype: str | None = None
  unchecked: list[str] = dataclasses.field(default_factory=list)
  notes: list[str] = dataclasses.field(default_factory=list)

  @property
  def ok(self) -> bool:
    """True when nothing is wrong: every row ``ok`` or ``kink``, the referee not ``wrong``, no error."""
    if self.error is not None:
      return False
    if self.referee is not None and self.referee.verdict == "wrong":
      return False
    return all(r.verdict not in BAD for r in self.rows)

  @property
  def first_wrong(self) -> str | None:
    """Name of the first row (in backprop order) whose verdict is ``wrong``, ``missing`` or ``shape``."""
    for r in self.rows:
      if r.verdict in BAD:
        return r.name
    return None

  @property
  def n_kink(self) -> int:
    """Total number of kink elements over all rows."""
    return sum(r.n_kink for r in self.rows)

  def row(self, name: str) -> Row:
    """The row called ``name``; raises ``KeyError`` listing the names otherwise."""
    for r in self.rows:
      if r.name == name:
        return r
    raise KeyError(f"Report has no row {name!r}; rows are {[r.name for r in self.rows]}.")

  def verdicts(self) -> dict[str, str]:
    """``{row name: verdict}``."""
    return {r.name: r.verdict for r in self.rows}

  def to_dict(self) -> dict:
    """A JSON-serialisable dict of everything in the report."""
    return _json({
        "title": self.title,
        "ok": self.ok,
        "first_wrong": self.first_wrong,
        "summary": self.summary,
        "error": self.error,
        "rtol": self.rtol,
        "atol": self.atol,
        "dtype": self.dtype,
        "rows": [r.to_dict() for r in self.rows],
        "referee": self.referee.to_dict() if self.referee is not None else None,
        "unchecked": list(self.unchecked),
        "notes": list(self.notes),
    })

  def __str__(self) -> str:
    n_bad = sum(r.verdict in BAD for r in self.rows)
    head = f"{self.title}: "
    if self.error is not None:
      head += "could not run"
    elif n_bad:
      head += f"{n_bad} of {len(self.rows)} quantities wrong"
    else:
      head += f"all {len(self.rows)} quantities agree"
      if self.n_kink:
        head += f" ({self.n_kink} kink elements)"
    if self.rtol is not None:
      head += f"  [{self.dtype}, rtol={self.rtol:g}, atol={self.atol:g}]"
    lines = [head]
    if self.rows:
      table = [("quantity", "shape", "max abs err", "max rel err", "mismatch", "verdict")]
      for r in self.rows:
        mism = f"{r.n_mismatch}/{r.size}" if r.max_abs_err is not None else "-"
        verdict = r.verdict + (f" ({r.n_kink})" if r.verdict == "kink" else "")
        table.append((r.label, str(tuple(r.shape)) if r.shape is not None else "-",
                      _fmt(r.max_abs_err), _fmt(r.max_rel_err), mism, verdict))
      widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
      for t in table:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip())
    if self.error is not None:
      lines.append("  error: " + self.error)
    if self.referee is not None:
      rr = self.referee
      lines.append(f"  referee ({rr.directions} random directions, central differences of the loss): "
                   f"{rr.verdict}" + (f", max rel err {_fmt(rr.max_rel_err)}" if rr.max_rel_err is not None else "")
                   + (f"; {rr.detail}" if rr.detail else ""))
    for r in self.rows:
      extra = []
      if r.verdict in BAD and r.diagnosis:
        extra.append(r.diagnosis)
      if r.verdict in BAD and r.worst_index is not None and r.worst_user is not None:
        where = f"worst element {list(r.worst_index)}" if r.worst_index else "value"
        extra.append(f"{where}: yours {r.worst_user:.6g}, reference {r.worst_ref:.6g}")
      if r.note:
        extra.append(r.note)
      if extra:
        lines.append(f"  {r.label}: " + "; ".join(extra))
    if self.unchecked:
      lines.append("  not given by the derivation (not checked): "
                   + ", ".join(self.unchecked))
    for n in self.notes:
      lines.append("  note: " + n)
    if self.summary:
      lines.append(self.summary)
    return "\n".join(lines)
