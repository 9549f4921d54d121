"""Fuzz `jaxreg.check` with random correct derivations and planted errors.

Draws random networks (tests/_fuzz_models.py: affine, relu, leaky relu, tanh,
sigmoid, abs, batch norm, layer norm, dropout; MSE, softmax and SVM heads;
exact zeros planted at kinks) in three families:

* single     — at most one kink element, no bias before a norm;
* composite  — many kink elements that one perturbation crosses together;
* zero_grad  — a bias whose true gradient is exactly 0 (before batch norm,
               a scalar shift inside layer norm).

For every seed, the correct hand derivation must come out ok (verdicts ok or
kink), and one planted error (sign flip, missing 1/m, transposed matrix,
dropped activation derivative, wrong norm-backward term, extra L2 term, …)
must make the report not ok with ``first_wrong`` naming the step it changed.
Prints counts by family and layer type and every failure with the command
that reproduces it.

Usage:
  python scripts/fuzz_check.py [--n 1000] [--families single,composite,zero_grad]
                               [--share 0.5,0.25,0.25] [--start 0] [--json out.json]
  python scripts/fuzz_check.py --family single --seed 123 -v    # one seed, full reports
  python scripts/fuzz_check.py --params-only ...   # derivations return only ∂L/∂params

With --params-only the derivations return only the parameter gradient (no
steps, as most course code does), so composite kinks are judged by the loss's
own kink sites; a planted error then counts where it changes an element whose
value does not depend on the conventions at kinks.
"""

import argparse
import collections
import json
import os
import statistics
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import jaxreg  # noqa: E402
import _fuzz_models as fm  # noqa: E402


def show_one(family, seed, params_only=False):
  arch = fm.arch_of(seed, family)
  model = fm.draw_model(seed, arch)
  deriv = fm.derivation_params if params_only else fm.derivation
  print(arch)
  print("kinks planted:", model.kinks, " conventions:", model.conventions)
  print(jaxreg.check(deriv, fm.loss, model.params, *model.args()))
  out = fm.run_seed(seed, family, params_only=params_only)
  print(f"planted: {out.mutation}: expected first wrong {out.expected}, got {out.got}")
  if out.expected is not None:
    mu = [m for m in fm.mutations(arch, float(model.aux["reg"])) if m.name == out.mutation][0]
    print(jaxreg.check(deriv, fm.loss, model.params, *model.args(mu)))


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--n", type=int, default=1000, help="correct derivations in all (default 1000)")
  ap.add_argument("--families", default="single,composite,zero_grad")
  ap.add_argument("--share", default="0.5,0.25,0.25", help="share of --n per family")
  ap.add_argument("--start", type=int, default=0, help="first seed")
  ap.add_argument("--family", help="with --seed: one seed of this family, full reports")
  ap.add_argument("--seed", type=int)
  ap.add_argument("--json", help="write every outcome to this (new .json) path")
  ap.add_argument("--params-only", action="store_true",
                  help="derivations return only the parameter gradient (no steps)")
  ap.add_argument("-v", action="store_true")
  a = ap.parse_args()
  if a.seed is not None:
    show_one(a.family or "single", a.seed, a.params_only)
    return 0
  fams = a.families.split(",")
  shares = [float(s) for s in a.share.split(",")][:len(fams)]
  counts = [int(round(a.n * s / sum(shares))) for s in shares]
  counts[0] += a.n - sum(counts)
  outcomes = []
  t_start = time.perf_counter()
  for fam, cnt in zip(fams, counts):
    for seed in range(a.start, a.start + cnt):
      o = fm.run_seed(seed, fam, params_only=a.params_only)
      outcomes.append(o)
      if a.v or not o.ok or (o.expected is not None and not o.localised):
        print(f"  {fam} seed {seed}: ok={o.ok} class={o.alarm_class or '-'} "
              f"planted={o.mutation!r} expected={o.expected} got={o.got}", flush=True)
    print(f"{fam}: {cnt} seeds done ({time.perf_counter() - t_start:.0f} s)", flush=True)
  wall = time.perf_counter() - t_start

  print(f"\n{len(outcomes)} correct derivations"
        f"{' returning only the parameter gradient' if a.params_only else ''}, {wall:.0f} s")
  fmt = "{:<12} {:>6} {:>8} {:>12} {:>8} {:>8} {:>10} {:>7} {:>10}"
  print(fmt.format("family", "seeds", "false+", "w/ kinks", "kink els", "planted", "not found",
                   "misloc", "no-op mut"))
  for fam in fams:
    os_ = [o for o in outcomes if o.family == fam]
    pl = [o for o in os_ if o.expected is not None]
    print(fmt.format(fam, len(os_), sum(not o.ok for o in os_),
                     sum(bool(o.kinks) for o in os_), sum(o.n_kink for o in os_), len(pl),
                     sum(not o.found for o in pl), sum(o.found and not o.localised for o in pl),
                     len(os_) - len(pl)))
  print("\nfalse alarms by class (family, class): count")
  for (fam, cls), cnt in sorted(collections.Counter(
      (o.family, o.alarm_class) for o in outcomes if not o.ok).items()):
    print(f"  {fam:<10} {cls:<15} {cnt:>5}   {fm.ALARM_CLASSES[cls]}")
  clean = [o for o in outcomes if o.ok and o.expected is not None]
  print(f"planted errors in models whose correct derivation was ok: {len(clean)}, not found "
        f"{sum(not o.found for o in clean)}, found at another step "
        f"{sum(o.found and not o.localised for o in clean)}")
  by_layer = collections.defaultdict(lambda: [0, 0])
  for o in outcomes:
    for kind in set(o.arch.split("→")):
      by_layer[kind][0] += 1
      by_layer[kind][1] += not o.ok
  print("by layer/head type (models containing it: seeds, false alarms):")
  for kind, (n, f) in sorted(by_layer.items()):
    print(f"  {kind:<12} {n:>6} {f:>6}")
  by_kink = collections.Counter()
  for o in outcomes:
    for k, v in o.kinks.items():
      by_kink["hinge margin" if k == "margin" else "activation input"] += v
  print("exact-zero kink elements planted:", dict(by_kink))
  by_mut = collections.defaultdict(lambda: [0, 0, 0])
  for o in outcomes:
    if o.expected is None:
      continue
    key = o.mutation.split(" (")[0]
    by_mut[key][0] += 1
    by_mut[key][1] += not o.found
    by_mut[key][2] += o.found and not o.localised
  print("planted errors (tried, not found, found at another step):")
  for k, v in sorted(by_mut.items()):
    print(f"  {k:<42} {v[0]:>5} {v[1]:>5} {v[2]:>5}")
  first = [o.t_check for o in outcomes if o.seed % fm.SEEDS_PER_ARCH == 0]
  rest = [o.t_check for o in outcomes if o.seed % fm.SEEDS_PER_ARCH != 0]
  planted = [o.t_planted for o in outcomes if o.expected is not None]
  if first and rest:
    print(f"time per check: first of an architecture (compiles) median "
          f"{statistics.median(first):.2f} s; later seeds median {statistics.median(rest)*1e3:.1f} ms, "
          f"mean {statistics.mean(rest)*1e3:.1f} ms; planted-error checks median "
          f"{statistics.median(planted)*1e3:.1f} ms")
  fails = [o for o in outcomes if not o.ok or (o.expected is not None and not o.localised)]
  if fails:
    print(f"\n{len(fails)} failures (reproduce: python scripts/fuzz_check.py --family F --seed S"
          f"{' --params-only' if a.params_only else ''}):")
    for o in fails:
      what = []
      if not o.ok:
        what.append(f"FALSE ALARM [{o.alarm_class}] rows {[r[:2] for r in o.bad_rows]}")
      if o.expected is not None and not o.found:
        what.append(f"MISSED {o.mutation!r}")
      elif o.expected is not None and not o.localised:
        why = " (after the false alarm above)" if not o.ok else ""
        what.append(f"MISPLACED {o.mutation!r}: expected {o.expected}, got {o.got}{why}")
      print(f"  --family {o.family} --seed {o.seed}  {o.arch}  kinks {o.kinks}: "
            + "; ".join(what))
  if a.json:
    if os.path.exists(a.json) or not a.json.endswith(".json"):
      sys.exit(f"--json: expected a new .json path, got {a.json!r}")
    with open(a.json, "w", encoding="utf-8") as f:
      json.dump([o._asdict() for o in outcomes], f, indent=1, default=str)
  return 1 if fails else 0


if __name__ == "__main__":
  sys.exit(main())
