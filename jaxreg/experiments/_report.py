"""Markdown for ``docs/experiments/README.md``: one :class:`Section` per experiment.

Each experiment turns its result into a :class:`Section` (data: the claim, the
setup, a table of measured numbers, a verdict and its reason, the figure's
file name). ``scripts/experiments.py`` saves each section as JSON beside its
figure and renders the README from every saved section plus a line for each
experiment not yet run, in the registry's order; so an experiment can be
re-run alone, and new experiments are new registry entries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

HOLDS = "holds"
FAILS = "does not hold"
PARTLY = "holds only partly"
VERDICTS = (HOLDS, FAILS, PARTLY)


class Section(NamedTuple):
  """One experiment's part of the README.

  Attributes:
    key: the experiment's registry name (file stem of its JSON and PNG).
    title: heading.
    claims: the S-numbers tested, e.g. ``("S3.5",)``.
    claim: what the sources claim, in one paragraph.
    setup: how it was measured (model, data, seeds), in one paragraph.
    table: the measured numbers, a markdown table.
    verdict: one of :data:`VERDICTS`.
    reason: why, with the decisive numbers.
    figure: the PNG's file name beside the README, or ``""``.
    command: the shell command that regenerates this section.
  """

  key: str
  title: str
  claims: tuple[str, ...]
  claim: str
  setup: str
  table: str
  verdict: str
  reason: str
  figure: str
  command: str


def check_section(section) -> Section:
  """Raises a clear error unless ``section`` is a :class:`Section` with a known verdict."""
  if not isinstance(section, Section):
    raise TypeError(f"expected a Section, got {type(section).__name__}.")
  if section.verdict not in VERDICTS:
    raise ValueError(f"Section {section.key!r}: `verdict` must be one of {VERDICTS}, "
                     f"got {section.verdict!r}.")
  return section


def fmt(value: float, digits: int = 3) -> str:
  """A number in ``digits`` significant figures (scientific when tiny or huge)."""
  if value == 0:
    return "0"
  if 1e-3 <= abs(value) < 1e4:
    return f"{value:.{digits}g}"
  return f"{value:.{max(digits - 1, 0)}e}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
  """A GitHub markdown table; cells are converted with ``str``."""
  for i, row in enumerate(rows):
    if len(row) != len(header):
      raise ValueError(f"markdown_table: row {i} has {len(row)} cells, the header {len(header)}.")
  esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
  lines = ["| " + " | ".join(esc(h) for h in header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def render_section(s: Section, number: int) -> str:
  """The markdown of one section, numbered ``number``."""
  s = check_section(s)
  parts = [f"## {number}. {s.title} ({', '.join(s.claims)})",
           f"**Claim.** {s.claim}",
           f"**Setup.** {s.setup}",
           s.table,
           f"**Verdict: {s.verdict}.** {s.reason}"]
  if s.figure:
    parts.append(f"![{s.title}]({s.figure})")
  parts.append(f"Regenerate: `{s.command}`")
  return "\n\n".join(parts)


class Pending(NamedTuple):
  """An experiment listed in the README before it has been run."""

  key: str
  title: str
  claims: tuple[str, ...]


def render_readme(entries: Sequence[Section | Pending], *, intro: str) -> str:
  """The whole README: ``intro``, a summary table, then each section in order."""
  summary = markdown_table(
      ["#", "experiment", "claims", "verdict"],
      [[i, e.title, ", ".join(e.claims), e.verdict if isinstance(e, Section) else "not run yet"]
       for i, e in enumerate(entries, 1)])
  body = []
  for i, e in enumerate(entries, 1):
    if isinstance(e, Section):
      body.append(render_section(e, i))
    else:
      body.append(f"## {i}. {e.title} ({', '.join(e.claims)})\n\nNot run yet.")
  return "\n\n".join(["# Experiments: the sources' training claims, measured", intro, summary]
                     + body) + "\n"


def section_to_json(s: Section) -> str:
  """``s`` as JSON text (see :func:`section_from_json`)."""
  return json.dumps(check_section(s)._asdict(), indent=1, ensure_ascii=False) + "\n"


def section_from_json(text: str) -> Section:
  """The :class:`Section` saved by :func:`section_to_json`."""
  d = json.loads(text)
  d["claims"] = tuple(d["claims"])
  return check_section(Section(**d))
