"""jaxreg experiment NAME: runs one experiment of jaxreg.experiments and prints its result.

NAME is a registered experiment (see the list in `jaxreg experiment --help`).
The run uses the documented settings unless --quick (a small smoke run) or,
for `race`, --seeds and --max-epochs are given. It prints the README section
(claim, setup, table, verdict); --out DIR also writes NAME.png and NAME.json
(the section) there; --json PATH writes the measurement as JSON (for `race`:
{"activations": {name: {"epochs": [int or null per seed], "converged": int,
"median": float or null}}, "ratios": {"sigmoid/tanh": [lo, median, hi],
"tanh/relu": [...]}, "settings": {...}}, null standing for +infinity; for the
others the section). --json never writes a .py file.

--devices N spreads the members of each jaxreg.train_many call of the
experiments that train (race, sparsity, regularizers) over N devices (see
`jaxreg train-many --help`); the numbers are those of one device.

Exit status: 0 it ran; 2 a usage error.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path


class UsageError(Exception):
  """A bad flag value; the CLI prints it on one line and exits 2."""


def add_parser(sub) -> None:
  """Adds ``experiment`` to the ``jaxreg`` subcommands."""
  from jaxreg.experiments import registry  # pylint: disable=import-outside-toplevel
  p = sub.add_parser("experiment", help="run one experiment of jaxreg.experiments",
                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("name", metavar="NAME", choices=sorted(registry.EXPERIMENTS),
                 help=f"one of {', '.join(sorted(registry.EXPERIMENTS))}")
  p.add_argument("--quick", action="store_true", help="small smoke-run settings")
  p.add_argument("--seeds", type=int, default=None, help="race: seeds per activation (200)")
  p.add_argument("--max-epochs", type=int, default=None, help="race: epochs per run (3000)")
  p.add_argument("--devices", type=int, default=None, metavar="N",
                 help="race, sparsity, regularizers: spread each sweep over N devices")
  p.add_argument("--json", metavar="PATH", default=None, help="write the measurement as JSON")
  p.add_argument("--out", metavar="DIR", default=None, help="write NAME.png and NAME.json here")


def run(args) -> int:
  """``jaxreg experiment``; raises :class:`UsageError` for bad input."""
  from jaxreg._cli import _UsageError, _output, _write_atomic  # pylint: disable=import-outside-toplevel
  from jaxreg import _cli_train_many  # pylint: disable=import-outside-toplevel
  from jaxreg.experiments import _report, race, registry  # pylint: disable=import-outside-toplevel
  e = registry.EXPERIMENTS[args.name]
  kwargs = dict(e.quick if args.quick else e.full)
  for flag, key in (("seeds", "n_seeds"), ("max_epochs", "max_epochs")):
    value = getattr(args, flag)
    if value is None:
      continue
    if args.name != "race":
      raise UsageError(f"--{flag.replace('_', '-')} applies to `race` only, not {args.name!r}")
    if value < 1:
      raise UsageError(f"--{flag.replace('_', '-')}: expected an int >= 1, got {value}")
    kwargs[key] = value
  if args.devices is not None:
    if "mesh" not in inspect.signature(e.run).parameters:
      raise UsageError(f"--devices applies to the experiments that train (race, sparsity, "
                       f"regularizers), not {args.name!r}")
    try:
      kwargs["mesh"] = _cli_train_many.member_mesh_for(args.devices)
    except _cli_train_many.UsageError as err:
      raise UsageError(str(err)) from None
  try:
    json_path = _output(args.json, [])
  except _UsageError as err:
    raise UsageError(str(err)) from None
  out = Path(args.out) if args.out else None
  if out is not None and out.exists() and not out.is_dir():
    raise UsageError(f"--out {args.out!r}: is a file, expected a folder")
  result = e.run(**kwargs)
  figure = f"{e.key}.png" if out is not None else ""
  section = e.section(result, figure=figure)
  print(_report.render_section(section, 1).split("\n", 1)[1].strip())
  if out is not None:
    out.mkdir(parents=True, exist_ok=True)
    e.plot(result, str(out / figure))
    (out / f"{e.key}.json").write_text(_report.section_to_json(section))
    print(f"wrote {out / figure}, {out / (e.key + '.json')}")
  if args.json is not None:
    data = race.to_json(result) if args.name == "race" else section._asdict()
    text = json.dumps(data, ensure_ascii=False) + "\n"
    if json_path is None:
      print(text, end="")
    else:
      _write_atomic(json_path, text)
      print(f"wrote {json_path}")
  return 0
