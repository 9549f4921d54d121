"""Regenerates docs/seed_catalog.md from the checks in derivations/.

    python scripts/seed_catalog.py              # run the checks, write docs/seed_catalog.md
    python scripts/seed_catalog.py --check      # run the checks, fail if the committed page is stale
    python scripts/seed_catalog.py --json PATH  # also keep the checks' JSON results

It runs ``jaxreg check FILE --json`` on every file of ``derivations/`` (the
files ``jaxreg check derivations/`` discovers, several at once; exit status 0
means every case met its documented expectation) and turns the JSON into one
table row per seed item: what the source claimed, what jaxreg measured, and
the command that reproduces it. Every number on the page comes from that run.

Exit status: 0 on success; 1 when a case is not met, an item is missing, or
(with --check) the committed page differs from the regenerated one.
"""

import argparse
import concurrent.futures
import difflib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DERIVATIONS = "derivations"
DOC = ROOT / "docs" / "seed_catalog.md"

REQUIRED = (["S0.%d" % i for i in range(1, 8)] + ["S1.%d" % i for i in range(1, 5)]
            + ["S2.%d" % i for i in range(1, 4)] + ["S3.%d" % i for i in range(1, 5)]
            + ["S4.1", "S4.2"])

SOURCES = {
    "S0": "S0 · Keras MLP backprop, L1 activity vs Leaky ReLU (000, French)",
    "S1": "S1 · activation functions and derivatives (001, French)",
    "S2": "S2 · Nielsen ch. 3, L2/L1 regularization (002, Chinese)",
    "S3": "S3 · deriving backprop through ReLU, Q&A (003, Japanese/English)",
    "S4": "S4 · a tour of regularizers (004)",
}

# How to read a case beyond its expectation. Default: expect ok/kink -> the claim
# is verified; expect wrong -> the source's claim is wrong.
ROLES = {
    "s0_6_claimed_change": "approximate",          # wrong as a Δ, small on the gradient
    "s2_2_biases_not_decayed": "contrast",          # Nielsen vs decay-everything: a convention
    "s4_1_nielsen_convention_differs": "contrast",  # S2's convention on S4's cost
    "s1_2_mislabelled_line": "typo",                 # the formula is right, its label is not
}

# What the source claims, where the first case's claim is only part of it.
ITEM_CLAIMS = {
    "S0.1": "local derivatives: ∂L/∂y = −(t−y), ∂y/∂C = x3, ∂y/∂D = 1, ∂y/∂x3 = C, "
            "∂x3/∂x2 = H(x2) with H(0) = 1, ∂x2/∂A = x1, ∂x2/∂B = 1",
    "S0.4": "L1 activity term λ|x2|: ∂L_L1/∂x2 = λ(2H(x2) − 1), ∂L_L1/∂A = λ(2H(x2)−1)·x1, "
            "∂L_L1/∂B = λ(2H(x2)−1), ∂L_L1/∂C = ∂L_L1/∂D = 0",
    "S0.5": "Leaky ReLU: f'(x) = (1−α)H(x) + α; f' − relu' = −α(H(x) − 1)",
    "S1.2": "tanh' = 1 − tanh² = 4/(eˣ + e⁻ˣ)² (the second line labelled tanh(x))",
    "S1.3": "ReLU max(0, x), derivative 1 for x > 0 else 0 (code: np.array(x > 0, dtype=np.int))",
    "S2.2": "weight decay: w → (1 − ηλ/n) w − (η/m) Σ_x ∂C_x/∂w, b → b − (η/m) Σ_x ∂C_x/∂b "
            "(network2.update_mini_batch)",
    "S2.3": "L1: ∂C/∂w = ∂C0/∂w + (λ/n) sgn(w), w → w − (ηλ/n) sgn(w) − η ∂C0/∂w, sgn(0) = 0",
    "S3.2": "the asker's derivations: dC/dw1 = (y − ReLU(w1 x))·x; dC/dw2 = (y − ReLU(w1 ReLU(w2 x)))·(w1 x); "
            "dC/dw3 = (y − ReLU(w1 ReLU(w2 ReLU(w3 x))))·(w1 w2 x) (the answer: these are wrong)",
    "S3.4": "relu'(0) may be taken as 0, 1 or ½ with no practical effect",
}

# Wrong cases not counted as the source's error in the item's headline.
NOT_SOURCE_ERRORS = ("contrast", "caveat", "typo")


def derivation_files() -> list[str]:
  """The files ``jaxreg check derivations/`` discovers (``*.py`` not starting with ``_``)."""
  return sorted(str(p.relative_to(ROOT)) for p in (ROOT / DERIVATIONS).glob("*.py")
                if not p.name.startswith("_"))


def run_checks(workdir: Path, jobs: int) -> tuple[int, dict]:
  """``jaxreg check FILE -q --json`` for every derivation file, ``jobs`` at a time.

  Returns the worst exit status and the merged JSON (cases in file order, as
  ``jaxreg check derivations/`` would list them)."""
  env = dict(os.environ)
  # Dozens of tiny programs: XLA's optimisation passes cost more than they save.
  env.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
  files = derivation_files()

  def one(i_f):
    i, f = i_f
    out = workdir / f"checks_{i}.json"
    cmd = [sys.executable, "-m", "jaxreg", "check", f, "-q", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False, capture_output=True, text=True)
    return f, proc, out

  print(f"$ jaxreg check -q FILE  for FILE in {', '.join(files)}  ({jobs} at a time)", flush=True)
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
    results = list(pool.map(one, enumerate(files)))
  rc, cases = 0, []
  for f, proc, out in results:
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr if proc.returncode else "")
    rc = max(rc, proc.returncode)
    if out.exists():
      cases += json.loads(out.read_text(encoding="utf-8"))["cases"]
    else:
      print(f"seed_catalog: {f}: jaxreg check wrote no results (exit {proc.returncode})",
            file=sys.stderr)
  doc = {"version": 1, "cases": cases, "summary": {
      "cases": len(cases), "met": sum(c["met"] for c in cases),
      "not_met": [c["name"] for c in cases if not c["met"]]}}
  return rc, doc


# ----------------------------------------------------------------- formatting
def fmt(x) -> str:
  if x is None:
    return "-"
  if isinstance(x, str):
    return x
  if x == 0:
    return "0"
  return f"{x:.3g}"


def cell(text: str) -> str:
  return text.replace("|", "\\|").replace("\n", " ")


def item_key(item: str):
  src, num = item[1:].split(".")
  return int(src), int(num)


def kinks(report) -> int:
  return sum(r.get("n_kink", 0) for r in report["rows"])


def measured(report) -> list[str]:
  return [n for n in report["notes"] if n.startswith("measured")]


def first_wrong_row(report):
  name = report["first_wrong"]
  for r in report["rows"]:
    if r["name"] == name:
      return r
  return None


def wrong_phrase(report) -> str:
  r = first_wrong_row(report)
  if r is None:
    return "wrong (no row: " + (report.get("error") or report["summary"]) + ")"
  s = f"first wrong step `{r['label']}`"
  details = []
  if r.get("diagnosis"):
    details.append(r["diagnosis"])
  if r.get("max_abs_err") is not None:
    details.append(f"{r['n_mismatch']}/{r['size']} elements off, max rel err {fmt(r['max_rel_err'])}")
  return s + (" (" + "; ".join(details) + ")" if details else "")


def case_verdict(case) -> str:
  """One phrase: what jaxreg measured for this case."""
  rep = case["report"]
  if rep is None or not case["met"]:
    return f"NOT AS DOCUMENTED: {case['reason']}"
  role = ROLES.get(case["name"])
  extra = measured(rep)
  if case["expect"] == "wrong":
    if role == "approximate":
      s = "approximate: " + "; ".join(extra) + "; " + wrong_phrase(rep)
      extra = []
    elif role == "contrast":
      s = "differs, as a different convention should: " + wrong_phrase(rep)
    elif role == "caveat":
      s = "caveat, wrong here: " + wrong_phrase(rep)
    elif role == "typo":
      s = "as labelled the line is false (a typo; the formula is tanh'): " + wrong_phrase(rep)
    else:
      s = "wrong: " + wrong_phrase(rep)
  else:
    k = kinks(rep)
    s = f"verified up to kink convention ({k} element(s) at kinks)" if k else "verified"
  if extra:
    s += "; " + "; ".join(extra)
  return s


def item_headline(cases) -> str:
  roles = [ROLES.get(c["name"]) for c in cases]
  if any(r == "approximate" for r in roles):
    return "approximate"
  if any(c["expect"] == "wrong" and ROLES.get(c["name"]) not in NOT_SOURCE_ERRORS
         for c in cases):
    return "wrong"
  if any(c["expect"] != "wrong" and kinks(c["report"]) for c in cases):
    return "verified up to kink convention"
  return "verified"


def render(doc: dict) -> str:
  """The markdown page for the JSON written by ``jaxreg check --json``."""
  by_item: dict[str, list] = {}
  for c in doc["cases"]:
    by_item.setdefault(c["item"], []).append(c)
  items = sorted(by_item, key=item_key)
  n = doc["summary"]["cases"]
  n_wrong = sum(c["expect"] == "wrong" for c in doc["cases"])
  lines = [
      "# Seed catalog: what the sources claim, what jaxreg measures",
      "",
      "Generated by `python scripts/seed_catalog.py` from `jaxreg check derivations/` "
      "(do not edit by hand; `python scripts/seed_catalog.py --check` fails when this page is "
      "stale). Every number below comes from that run (float64).",
      "",
      f"{n} cases over {len(items)} items; {doc['summary']['met']} met their documented "
      f"expectation; {n_wrong} of them expect a mismatch (an error of the source, or a "
      "convention that must differ). The derivation files in `derivations/` are the "
      "encodings; `SEEDS.md` numbers the items.",
      "",
      "Verdicts: **verified** (every quantity agrees with `jax.grad`); **verified up to kink "
      "convention** (they differ only at non-differentiable points, where the source's value "
      "lies between the one-sided derivatives); **wrong** (first wrong step named, in backprop "
      "order); **approximate** (wrong, with the size of the error measured).",
      "",
      "| source | item | claimed | jaxreg measured | reproduce |",
      "|---|---|---|---|---|",
  ]
  for item in items:
    cases = by_item[item]
    head = cases[0]
    per_case = "<br>".join(f"`{c['name']}`: {case_verdict(c)}" for c in cases)
    files = sorted({c["file"] for c in cases})
    cmd = "<br>".join(f"`jaxreg check {f}`" for f in files)
    claim = ITEM_CLAIMS.get(item, head["claim"])
    lines.append(f"| {cell(SOURCES.get(item.split('.')[0], item))} | {item} | {cell(claim)} "
                 f"| **{item_headline(cases)}**<br>{cell(per_case)} | {cmd} |")
  lines += ["", "## Details", ""]
  for item in items:
    lines.append(f"### {item}")
    lines.append("")
    for c in by_item[item]:
      rep = c["report"]
      lines.append(f"- **`{c['name']}`** (expect `{c['expect']}`"
                   + (f", first wrong `{c['expect_first_wrong']}`" if c["expect_first_wrong"] else "")
                   + f"): {c['claim']}")
      lines.append(f"  - measured: {case_verdict(c)}")
      if rep is not None and rep["summary"]:
        lines.append(f"  - jaxreg: {rep['summary']}")
      if c["note"]:
        lines.append(f"  - note: {c['note']}")
    lines.append("")
  return "\n".join(lines).rstrip() + "\n"


def problems(doc: dict) -> list[str]:
  out = [f"case {c['name']} not met: {c['reason']}" for c in doc["cases"] if not c["met"]]
  items = {c["item"] for c in doc["cases"]}
  out += [f"item {i} has no case" for i in REQUIRED if i not in items]
  return out


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--check", action="store_true",
                  help="do not write; fail if docs/seed_catalog.md differs from the regenerated page")
  ap.add_argument("--json", metavar="PATH", help="also write the checks' JSON results to PATH")
  ap.add_argument("--from-json", metavar="PATH",
                  help="render from an existing `jaxreg check --json` file instead of running the checks")
  ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                  help="derivation files checked at once (default: the number of CPUs)")
  args = ap.parse_args(argv)
  if args.from_json:
    doc = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    rc = 0 if not doc["summary"]["not_met"] else 1
  else:
    with tempfile.TemporaryDirectory() as tmp:
      rc, doc = run_checks(Path(tmp), args.jobs)
  if args.json:
    Path(args.json).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
  bad = problems(doc)
  for p in bad:
    print("seed_catalog: " + p, file=sys.stderr)
  page = render(doc)
  if args.check:
    old = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if old != page:
      diff = list(difflib.unified_diff(old.splitlines(), page.splitlines(), "committed",
                                       "regenerated", lineterm="", n=0))
      print("seed_catalog: docs/seed_catalog.md is stale; run python scripts/seed_catalog.py\n"
            + "\n".join(diff[:40]), file=sys.stderr)
      return 1
    print(f"seed_catalog: docs/seed_catalog.md is up to date ({len(doc['cases'])} cases)")
  else:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(page, encoding="utf-8")
    print(f"seed_catalog: wrote {DOC.relative_to(ROOT)} ({len(doc['cases'])} cases)")
  return 1 if (rc != 0 or bad) else 0


if __name__ == "__main__":
  sys.exit(main())
