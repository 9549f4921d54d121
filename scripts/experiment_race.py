"""The activation race (S1.6) in full: docs/experiments/race.{png,json}, race_data.json, README.md.

    python scripts/experiment_race.py                     # 200 seeds × 3,000 epochs per activation
    python scripts/experiment_race.py --seeds 8 --max-epochs 60 --out /tmp/race   # smoke run

Beside what ``scripts/experiments.py race`` writes (the figure and the README
section), this keeps the raw per-seed epochs as ``race_data.json`` (the
``jaxreg experiment race --json`` schema), so the numbers can be re-analysed
without training again.
"""

import argparse
import json
import pathlib
import pickle
import sys
import time

from jaxreg.experiments import _report, race

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import experiments as renderer  # noqa: E402  (scripts/experiments.py)

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--seeds", type=int, default=200)
p.add_argument("--max-epochs", type=int, default=3000)
p.add_argument("--out", type=pathlib.Path, default=renderer.OUT)
p.add_argument("--cache", type=pathlib.Path, default=None,
               help="pickle of the result: loaded if it exists (no training), else written")
args = p.parse_args()
if (args.seeds, args.max_epochs) != (200, 3000) and args.out.resolve() == renderer.OUT.resolve():
  p.error("a run with other settings than the documented one needs --out DIR")
args.out.mkdir(parents=True, exist_ok=True)

t0 = time.perf_counter()
if args.cache is not None and args.cache.exists():
  result = pickle.loads(args.cache.read_bytes())
else:
  result = race.activation_race(args.seeds, args.max_epochs)
  if args.cache is not None:
    args.cache.write_bytes(pickle.dumps(result))
race.plot(result, str(args.out / "race.png"))
section = race.section(result, figure="race.png")
(args.out / "race.json").write_text(_report.section_to_json(section))
(args.out / "race_data.json").write_text(json.dumps(race.to_json(result)) + "\n")
renderer.write_readme(args.out)
for row in result.rows:
  print(f"{row.activation:11s} converged {row.converged}/{row.n_seeds}  median {row.median}  "
        f"IQR {row.q25}-{row.q75}")
for q in result.ratios:
  print(f"{q.name:13s} {q.median:.3g} [{q.lo:.3g}, {q.hi:.3g}]  claimed {q.claimed:g}x: {q.verdict}")
print(f"verdict: {section.verdict}  ({time.perf_counter() - t0:.0f} s); wrote {args.out}")
