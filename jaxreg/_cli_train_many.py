"""jaxreg train-many DATA --out DIR: a sweep (seeds × a grid) in one compiled call, on N devices.

Takes every flag of `jaxreg train` (data, model, TrainConfig; see
`jaxreg train --help`; --progress has no effect, the sweep being one
compiled call) and trains one MLP per seed and grid point with
jaxreg.train_many:

  --seeds N            seeds --seed, --seed+1, ..., --seed+N-1 (default 4)
  --grid NAME=V,V,...  sweep a hyperparameter (repeatable; the grid is the
                       product): learning_rate, weight_decay, l1 (built-in
                       optimizer), noise_std, keep_prob (each value one
                       keep-probability per layer input, joined by ':',
                       e.g. keep_prob=1:0.5,1:0.8)
  --devices N          spread the members over N devices (jax.sharding): on
                       CPU, N devices are made before JAX starts; on a GPU
                       or TPU machine, the first N accelerators
  --distributed        join a jax.distributed run first
                       (jaxreg.distributed.initialize: the variables that
                       jaxreg.distributed.launch_local or a cluster manager
                       sets); every process runs the same command, the
                       members are spread over every process's devices
                       (--devices per process) and process 0 writes the files

Output (into --out DIR, as for `jaxreg train`: refused over existing files
unless --overwrite):
  sweep.npz    the final parameters (leading axes: grid..., seed) and the
               histories (jaxreg.load reads it; metadata as sweep.json)
  sweep.json   settings, seeds, grid and per member the final metrics
A table of the final metrics per grid point (mean over seeds) goes to stdout.

Exit status: 0 trained (diverged members are flagged in sweep.json); 2 a
usage error (bad flag, data or setting: one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from jaxreg import _cli_train

RUN_FILES = ("sweep.npz", "sweep.json")
UsageError = _cli_train.UsageError


class _Capture:
  """Stands in for argparse's subparsers to collect `jaxreg train`'s flags as a parent parser."""

  def add_parser(self, name, **kwargs):  # pylint: disable=unused-argument
    self.parser = argparse.ArgumentParser(add_help=False)
    return self.parser


def grid_item(text: str) -> tuple[str, tuple]:
  """``"learning_rate=0.1,0.3"`` → ``("learning_rate", (0.1, 0.3))``; ``keep_prob`` values ``1:0.5``."""
  name, sep, values = text.partition("=")
  name = name.strip().replace("-", "_")
  if not sep or not name or not values.strip():
    raise argparse.ArgumentTypeError(f"expected NAME=V,V,... like learning_rate=0.01,0.1, "
                                     f"got {text!r}")
  try:
    if name == "keep_prob":
      return name, tuple(tuple(float(p) for p in v.split(":")) for v in values.split(","))
    return name, tuple(float(v) for v in values.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"{name}: expected comma-separated numbers "
                                     f"{'(each p:p:...) ' if name == 'keep_prob' else ''}"
                                     f"got {values!r}") from None


def add_parser(sub) -> None:
  """Adds ``train-many`` to the ``jaxreg`` subcommands."""
  capture = _Capture()
  _cli_train.add_parser(capture)
  p = sub.add_parser("train-many", parents=[capture.parser],
                     help="train a sweep (seeds × grid) in one compiled call, on N devices",
                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  g = p.add_argument_group("sweep")
  g.add_argument("--seeds", type=int, default=4, metavar="N",
                 help="number of seeds, from --seed on (default 4)")
  g.add_argument("--grid", type=grid_item, action="append", default=[], metavar="NAME=V,V",
                 help="hyperparameter values to sweep (repeatable)")
  g.add_argument("--devices", type=int, default=None, metavar="N",
                 help="devices to spread the members over (default: one, no mesh)")
  g.add_argument("--distributed", action="store_true",
                 help="join a jax.distributed run (jaxreg.distributed.initialize) first")


def member_mesh_for(n: int | None, distributed_run: bool = False):
  """The member mesh for ``--devices N``/``--distributed``, or None for one device.

  Raises:
    UsageError: ``n`` below 1, or fewer than ``n`` devices in this process.
  """
  import jax  # pylint: disable=import-outside-toplevel
  from jaxreg import distributed  # pylint: disable=import-outside-toplevel
  if n is not None and n < 1:
    raise UsageError(f"--devices: expected an int >= 1, got {n}")
  if distributed_run:
    distributed.initialize(num_cpu_devices=n)
    return distributed.member_mesh()
  if n is None:
    return None
  if jax.config.jax_num_cpu_devices < n:
    try:  # effective only before JAX starts; afterwards its CPU devices are what there is
      jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:
      pass
  devices = jax.local_devices()
  if len(devices) < n:
    raise UsageError(f"--devices {n}: JAX has only {len(devices)} {devices[0].platform} "
                     f"device(s) in this process (it started before --devices could add CPU "
                     f"devices; set JAX_NUM_CPU_DEVICES={n} before starting Python)")
  return distributed.member_mesh(devices[:n])


def _final(history: dict, index: tuple) -> dict:
  out = {}
  for k, v in history.items():
    a = v[index]
    if a.ndim == 0:
      out[k] = a.item()
    else:
      finite = a[a == a]
      out[k] = float(finite[-1]) if finite.size else None
  return out


def run(args) -> int:
  """``jaxreg train-many``; raises :class:`UsageError` for bad input."""
  import itertools  # pylint: disable=import-outside-toplevel

  import numpy as np  # pylint: disable=import-outside-toplevel

  import jaxreg  # pylint: disable=import-outside-toplevel
  from jaxreg._data.extras import MissingExtraError  # pylint: disable=import-outside-toplevel
  if args.seeds < 1:
    raise UsageError(f"--seeds: expected an int >= 1, got {args.seeds}")
  grid = dict(args.grid)
  if len(grid) != len(args.grid):
    raise UsageError("--grid: each NAME may appear once")
  out = Path(args.out)
  if out.exists() and not out.is_dir():
    raise UsageError(f"--out {args.out!r}: is a file, expected a folder")
  paths = {name: out / name for name in RUN_FILES}
  existing = [p.name for p in paths.values() if p.exists()]
  if existing and not args.overwrite:
    raise UsageError(f"--out {args.out!r} already holds {', '.join(existing)}; pass --overwrite "
                     "or choose another folder")
  mesh = member_mesh_for(args.devices, args.distributed)
  try:
    train, val, _, data_desc = _cli_train.load_data(args)
  except (TypeError, ValueError, MissingExtraError) as e:
    raise UsageError(str(e)) from None
  model, config, targets, model_desc = _cli_train.build(args, train)
  seeds = list(range(args.seed, args.seed + args.seeds))
  val_data = None if val is None else (val.x, targets(val.t))
  try:
    params, history = jaxreg.train_many(model, (train.x, targets(train.t)), config, seeds=seeds,
                                        grid=grid or None, val_data=val_data, mesh=mesh)
  except (TypeError, ValueError) as e:
    raise UsageError(str(e)) from None
  params, history = jaxreg.distributed.gather_to_host((params, history))
  points = list(itertools.product(*grid.values()))
  lead = len(grid) + 1                    # history leaves: (*grid_shape, seed, ...)
  flat = {k: v.reshape((len(points), len(seeds)) + v.shape[lead:]) for k, v in history.items()}
  members = [{**dict(zip(grid, point)), "seed": seed, **_final(flat, (g, s))}
             for g, point in enumerate(points) for s, seed in enumerate(seeds)]
  meta = {"command": "jaxreg train-many", "data": data_desc, "model": model_desc,
          "config": config.to_json(), "seeds": seeds, "grid": grid,
          "devices": 1 if mesh is None else int(mesh.devices.size), "members": members}
  table = []
  for g, point in enumerate(points):
    final = {k: np.nanmean([m[k] for m in members[g * len(seeds):(g + 1) * len(seeds)]
                            if m[k] is not None] or [np.nan])
             for k in ("train_loss", "val_loss") if k in flat}
    label = " ".join(f"{n}={v}" for n, v in zip(grid, point)) or "(no grid)"
    table.append(f"  {label:<28} " + "  ".join(f"{k} {v:.4g}" for k, v in final.items()))
  if jaxreg.distributed.process_info().process_index == 0:
    out.mkdir(parents=True, exist_ok=True)
    jaxreg.save(paths["sweep.npz"], params, history=history, metadata=meta)
    paths["sweep.json"].write_text(json.dumps(meta, indent=1) + "\n")
    diverged = sum(bool(m["diverged"]) for m in members)
    print(f"jaxreg train-many: {len(members)} members ({len(seeds)} seeds × {len(points)} grid "
          f"points) on {meta['devices']} device(s), {config.epochs} epochs; mean over seeds:")
    print("\n".join(table))
    if diverged:
      print(f"{diverged} member(s) diverged (see sweep.json)")
    print(f"wrote {', '.join(os.fspath(p) for p in paths.values())}")
  return 0
