"""`Case`: one entry of a derivation file's ``CHECKS`` list (see :mod:`jaxreg._cli`)."""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import Callable

from jaxreg._checker.report import Report, _json

EXPECTS = ("ok", "kink", "wrong")


@dataclasses.dataclass(frozen=True)
class Case:
  """A claim from a source, and how to check it.

  Attributes:
    name: short unique identifier, e.g. ``"s0_2_chain_rule"``.
    item: the seed item it covers, e.g. ``"S0.2"``.
    claim: what the source claims, in a short sentence or formula.
    run: a zero-argument callable returning a :class:`jaxreg.Report`
      (typically ``lambda: jaxreg.check(...)``).
    expect: ``"ok"`` (every row ok or kink), ``"kink"`` (at least one kink
      row, none wrong) or ``"wrong"`` (the source is wrong and the check must
      say so).
    expect_first_wrong: with ``expect="wrong"``, the row that must come
      first among the wrong ones (optional).
    note: free text for the catalog (e.g. why the source is wrong).

  Examples:
    >>> import jaxreg
    >>> case = jaxreg.Case("demo", "S0.7", "LeakyReLU = (1+a)ReLU - a|x|",
    ...                    run=lambda: jaxreg.Report(rows=[]))
    >>> case.evaluate()["met"]
    True
  """

  name: str
  item: str
  claim: str
  run: Callable[[], Report]
  expect: str = "ok"
  expect_first_wrong: str | None = None
  note: str = ""

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name:
      raise TypeError(f"Case: `name` must be a non-empty str, got {self.name!r}.")
    for field in ("item", "claim", "note"):
      value = getattr(self, field)
      if not isinstance(value, str):
        raise TypeError(f"Case {self.name!r}: `{field}` must be a str, got {type(value).__name__}.")
    if not callable(self.run):
      raise TypeError(f"Case {self.name!r}: `run` must be a zero-argument callable returning a "
                      f"Report, got {type(self.run).__name__}.")
    if self.expect not in EXPECTS:
      raise ValueError(f"Case {self.name!r}: `expect` must be one of {EXPECTS}, got {self.expect!r}.")
    if self.expect_first_wrong is not None:
      if not isinstance(self.expect_first_wrong, str):
        raise TypeError(f"Case {self.name!r}: `expect_first_wrong` must be a row name (str) or None, "
                        f"got {type(self.expect_first_wrong).__name__}.")
      if self.expect != "wrong":
        raise ValueError(f"Case {self.name!r}: `expect_first_wrong` needs expect='wrong', got "
                         f"expect={self.expect!r}.")

  def evaluate(self) -> dict:
    """Runs the case.

    Returns:
      A dict with ``met`` (bool), ``verdict`` (the report in a few words, see
      :func:`outcome`), ``reason`` (why it is not met, or ``"as expected"``),
      ``report`` (``None`` when ``run`` raised, then also ``traceback``) and
      ``seconds``.
    """
    t0 = time.perf_counter()
    try:
      report = self.run()
      if not isinstance(report, Report):
        raise TypeError(f"run() must return a jaxreg.Report, got {type(report).__name__}")
    except Exception as e:  # pylint: disable=broad-except  # the user's run(), not the checker
      return {"met": False, "verdict": f"raised {type(e).__name__}",
              "reason": f"run() raised {type(e).__name__}: {e}",
              "report": None, "seconds": time.perf_counter() - t0,
              "traceback": traceback.format_exc()}
    from jaxreg.testing import _unmet  # pylint: disable=import-outside-toplevel
    why = _unmet(report, self.expect, self.expect_first_wrong)
    return {"met": why is None, "verdict": outcome(report),
            "reason": why.rstrip(":") if why else "as expected",
            "report": report, "seconds": time.perf_counter() - t0}

  def to_dict(self) -> dict:
    """The case's fields (without ``run``), JSON-safe."""
    return _json({"name": self.name, "item": self.item, "claim": self.claim,
                  "expect": self.expect, "expect_first_wrong": self.expect_first_wrong,
                  "note": self.note})


def outcome(report: Report) -> str:
  """A report in a few words: ``"ok"``, ``"kink (3 elements)"``, ``"wrong at x2"``, ``"error: ..."``.

  Examples:
    >>> import jaxreg
    >>> outcome(jaxreg.Report(rows=[]))
    'ok'
  """
  if report.error is not None:
    first = report.error.strip().splitlines()[0] if report.error.strip() else "(no message)"
    return "error: " + (first if len(first) <= 100 else first[:99] + "…")
  if not report.ok:
    if report.first_wrong is not None:
      return f"wrong at {report.first_wrong}"
    return "wrong (found by the referee)"
  n = report.n_kink
  if n:
    return f"kink ({n} element{'s' if n != 1 else ''})"
  return "ok"


def duplicate_names(cases) -> list[str]:
  """The names that more than one of ``cases`` carries, sorted.

  Examples:
    >>> import jaxreg
    >>> run = lambda: jaxreg.Report(rows=[])
    >>> duplicate_names([jaxreg.Case("a", "S0", "", run), jaxreg.Case("a", "S0", "", run)])
    ['a']
  """
  seen, dups = set(), set()
  for c in cases:
    (dups if c.name in seen else seen).add(c.name)
  return sorted(dups)
