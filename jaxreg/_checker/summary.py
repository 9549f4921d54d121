"""The one sentence of a :class:`jaxreg.Report`: where the derivation first breaks.

Rows come in backprop order. The first bad row (``wrong``, ``missing`` or
``shape``) is where the derivation breaks: for a tap, in the factor between
it and the last tap before it that agrees; for a parameter, in its last step.
Rows judged wrong on their own — their step from the quantity downstream is
wrong even given the user's own (maybe wrong) values there, see
:func:`jaxreg._checker.steps.independent` — are named too: "also wrong: …".
"""

from __future__ import annotations

from jaxreg._checker.report import BAD, Report, Row


def _d(name: str) -> str:
  return f"∂L/∂{name}"


def _join(items: list[str]) -> str:
  if len(items) <= 1:
    return "".join(items)
  return ", ".join(items[:-1]) + " and " + items[-1]


def localise(rows: list[Row], report: Report, also: list[Row] = ()) -> str:
  """One plain sentence naming where the derivation first breaks.

  Args:
    rows: the rows in backprop order.
    report: the report (its referee may make the reference suspect).
    also: further rows wrong on their own (independent errors), named after the first.
  """
  bad = [i for i, r in enumerate(rows) if r.verdict in BAD]
  ref_bad = report.referee is not None and report.referee.verdict == "wrong"
  prefix = ("Warning: the referee finds jax.grad of your loss disagrees with finite differences, "
            "so the reference itself is suspect. ") if ref_bad else ""
  if not bad:
    if not rows:
      return prefix + "Nothing was compared."
    n_k = sum(r.n_kink for r in rows)
    s = f"All {len(rows)} quantities agree with autodiff"
    if n_k:
      s += (f"; {n_k} element(s) differ only at kinks, where yours is a valid subgradient "
            "(another convention at a non-differentiable point, or valid local conventions "
            "composed where kinks meet)")
    return prefix + s + "."
  i = bad[0]
  r = rows[i]
  also_text = ""
  others = [x for x in also if x is not r]
  if others:
    also_text = " Also wrong: " + "; ".join(
        f"{_d(x.name)}" + (f" ({x.diagnosis})" if x.diagnosis else "") for x in others) + "."
  problem = {"wrong": "is wrong", "shape": "has the wrong shape or type",
             "missing": "is missing"}[r.verdict]
  diag = f" ({r.diagnosis})" if r.diagnosis and r.verdict in ("wrong", "shape") else ""
  taps_before = [x for x in rows[:i] if x.kind == "tap"]
  if r.kind == "tap" and r.verdict == "missing" and r.shape is None:
    return prefix + f"{_d(r.name)} is given but the loss never taps {r.name!r}." + also_text
  if r.kind == "tap":
    if not taps_before:
      return prefix + (f"{_d(r.name)} {problem}{diag}: the very first step, the derivative of the "
                       f"loss with respect to {r.name}, is where the derivation breaks."
                       + also_text)
    agree = _join([_d(x.name) for x in taps_before])
    verb = "agrees" if len(taps_before) == 1 else "agree"
    prev = taps_before[-1].name
    return prefix + (f"{agree} {verb} with autodiff; {_d(r.name)} {problem}{diag}, so the factor "
                     f"∂{prev}/∂{r.name} between them is where the derivation breaks." + also_text)
  tap_rows = [x for x in rows if x.kind == "tap"]
  if not tap_rows:
    more = [x.name for x in rows[i + 1:] if x.verdict in BAD]
    more_text = f" (also: {', '.join(more)})" if more else ""
    return prefix + (f"{_d(r.name)} {problem}{diag}{more_text}. No intermediate steps were given, "
                     "so the error cannot be placed more precisely: tap the intermediate "
                     "quantities in the loss (jaxreg.tap) and return their gradients to find the "
                     "first wrong step.")
  lead = f"Every tapped quantity ({_join([_d(x.name) for x in tap_rows])}) agrees with autodiff"
  return prefix + (f"{lead}; {_d(r.name)} {problem}{diag}, so the last step — from the "
                   f"quantities upstream to {r.name} (its local derivative, or a penalty term on "
                   "it) — is where the derivation breaks." + also_text)
