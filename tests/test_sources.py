"""Every S-number used in the repository resolves to an item of docs/sources.md."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = ROOT / "docs" / "sources.md"
SCANNED = ("jaxreg", "derivations", "docs", "scripts", "README.md")
S_NUMBER = re.compile(r"\bS(\d)\.(\d+)\b")
ITEM = re.compile(r"^- \*\*(S\d\.\d+)\*\* \S", re.MULTILINE)
# How many items each source has (the numbering of SEEDS.md).
COUNTS = {0: 8, 1: 6, 2: 6, 3: 5, 4: 8}


def _items():
  return ITEM.findall(SOURCES.read_text(encoding="utf-8"))


def _mentions():
  found = {}
  for name in SCANNED:
    path = ROOT / name
    files = [path] if path.is_file() else sorted(path.rglob("*"))
    for f in files:
      if f.suffix not in (".py", ".md", ".json", ".txt") or f == SOURCES or not f.is_file():
        continue
      for m in S_NUMBER.finditer(f.read_text(encoding="utf-8")):
        found.setdefault(m.group(0), set()).add(str(f.relative_to(ROOT)))
  return found


def test_sources_lists_every_item_once_in_order():
  want = [f"S{s}.{i}" for s, n in COUNTS.items() for i in range(1, n + 1)]
  assert _items() == want


def test_every_source_has_a_heading():
  text = SOURCES.read_text(encoding="utf-8")
  for s in COUNTS:
    assert re.search(rf"^## S{s}: \S", text, re.MULTILINE), f"no heading for S{s}"


def test_every_s_number_used_resolves():
  mentions = _mentions()
  assert len(mentions) > 10          # the scan does see the repository's S-numbers
  unresolved = {s: sorted(files) for s, files in mentions.items() if s not in set(_items())}
  assert not unresolved, f"S-numbers with no item in docs/sources.md: {unresolved}"
