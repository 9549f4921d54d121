"""jaxreg plot (activations | history RUN | boundary RUN): draws a PNG (needs the `plot` extra).

  activations      each activation and its derivative on [-5, 5] (S1.5);
                   --out PNG (default activations.png)
  history RUN      the per-epoch losses (and accuracies) of a `jaxreg train`
                   run folder, from RUN/metrics.jsonl; --out PNG (default
                   RUN/history.png)
  boundary RUN     the decision regions of a run on a 2-D Playground set,
                   from RUN/checkpoint.npz, with the training and validation
                   points; --out PNG (default RUN/boundary.png)

Exit status: 0 drawn; 1 matplotlib is missing (install jaxreg's `plot`
extra: pip install 'jaxreg[plot]'); 2 a usage error (a missing or unsuitable
RUN folder).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


class UsageError(Exception):
  """A bad RUN folder or flag; the CLI prints it on one line and exits 2."""


def add_parser(sub) -> None:
  """Adds ``plot`` to the ``jaxreg`` subcommands."""
  p = sub.add_parser("plot", help="draw activations, a run's history or its decision boundary",
                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("what", choices=("activations", "history", "boundary"), metavar="WHAT",
                 help="activations, history or boundary")
  p.add_argument("run", nargs="?", metavar="RUN", help="a `jaxreg train --out` folder")
  p.add_argument("--out", metavar="PNG", default=None, help="the image file to write")


def _run_dir(args) -> Path:
  if args.run is None:
    raise UsageError(f"`plot {args.what}` needs RUN, a `jaxreg train --out` folder")
  run = Path(args.run)
  if not run.is_dir():
    raise UsageError(f"RUN {args.run!r}: no such folder")
  return run


def _target(args, default: Path) -> Path:
  out = Path(args.out) if args.out else default
  if out.suffix.lower() != ".png":
    raise UsageError(f"--out {args.out!r}: expected a .png file")
  if not out.parent.is_dir():
    raise UsageError(f"--out {args.out!r}: folder {str(out.parent)!r} does not exist")
  return out


def history(run: Path, out: Path) -> None:
  """Losses (log scale) and, when logged, accuracies against epoch."""
  from jaxreg.experiments._plot import COLOURS, pyplot  # pylint: disable=import-outside-toplevel
  log = run / "metrics.jsonl"
  if not log.is_file():
    raise UsageError(f"RUN {str(run)!r}: no metrics.jsonl (not a `jaxreg train` folder?)")
  rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
  if not rows:
    raise UsageError(f"RUN {str(run)!r}: metrics.jsonl is empty")
  plt = pyplot()
  keys = [k for k in rows[0] if k not in ("epoch", "time")]
  accs = [k for k in keys if k.endswith("_acc")]
  fig, axes = plt.subplots(1, 2 if accs else 1, figsize=(11 if accs else 6.5, 4.5), dpi=110,
                           squeeze=False)
  epoch = [r["epoch"] for r in rows]
  for ax, names, ylabel in ((axes[0, 0], [k for k in keys if k not in accs], "loss"),
                            (axes[0, -1], accs, "accuracy")):
    if not names:
      continue
    for i, k in enumerate(names):
      ax.plot(epoch, [r.get(k) if r.get(k) is not None else float("nan") for r in rows],
              color=COLOURS[i % len(COLOURS)], lw=2, label=k.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if ylabel == "loss":
      ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend()
  fig.suptitle(f"jaxreg train: {run}")
  fig.tight_layout()
  fig.savefig(out)
  plt.close(fig)


def boundary(run: Path, out: Path) -> None:
  """The sign of the output over the plane, with the run's points."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import jaxreg  # pylint: disable=import-outside-toplevel
  from jaxreg._cli_train import PLAYGROUND_SETS  # pylint: disable=import-outside-toplevel
  from jaxreg.experiments._plot import pyplot  # pylint: disable=import-outside-toplevel
  ckpt_path = run / "checkpoint.npz"
  if not ckpt_path.is_file():
    raise UsageError(f"RUN {str(run)!r}: no checkpoint.npz (not a `jaxreg train` folder?)")
  ckpt = jaxreg.load(ckpt_path)
  meta = ckpt.metadata
  data = meta.get("data", {})
  if data.get("data") not in PLAYGROUND_SETS:
    raise UsageError(f"RUN {str(run)!r}: `plot boundary` needs a run on a 2-D Playground set "
                     f"({', '.join(PLAYGROUND_SETS)}), this one used {data.get('data')!r}")
  plt = pyplot()
  m = meta["model"]
  net = jaxreg.MLP(tuple(m["sizes"]), [m["activation"]] * (len(m["sizes"]) - 2)
                   + [m["output_activation"]], loss=m["loss"], init=m["init"])
  parts = jaxreg.datasets.playground(data["data"], n_samples=data["n_samples"],
                                     noise=data["noise"], train_fraction=data["train_fraction"],
                                     seed=data["data_seed"])
  g = np.linspace(-6, 6, 241)
  gx, gy = np.meshgrid(g, g)
  grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.asarray(ckpt.params[0]["w"]).dtype)
  y = np.asarray(net.apply(ckpt.params, grid))[:, 0].reshape(gx.shape)
  centre = 0.5 if m["loss"] == "binary_cross_entropy" else 0.0
  fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=110)
  span = max(float(np.abs(y - centre).max()), 1e-6)
  im = ax.contourf(gx, gy, y, levels=21, cmap="RdBu", vmin=centre - span, vmax=centre + span)
  ax.contour(gx, gy, y, levels=[centre], colors="k", linewidths=1.5)
  fig.colorbar(im, ax=ax, label="network output")
  for part, marker, name in ((parts.train, "o", "train"), (parts.test, "^", "test")):
    for lab, colour in ((1, "#0072B2"), (-1, "#D55E00")):
      sel = part.label == lab
      ax.scatter(part.x[sel, 0], part.x[sel, 1], s=12, marker=marker, c=colour,
                 edgecolors="white", linewidths=0.4, label=f"{name}, label {lab:+d}")
  ax.set_xlabel("x1")
  ax.set_ylabel("x2")
  ax.set_title(f"{data['data']}: decision boundary (black: output = {centre:g})")
  ax.legend(fontsize=7, loc="upper right")
  fig.tight_layout()
  fig.savefig(out)
  plt.close(fig)


def run(args) -> int:
  """``jaxreg plot``; raises :class:`UsageError` for bad input."""
  if args.what == "activations":
    if args.run is not None:
      raise UsageError("`plot activations` takes no RUN")
    out = _target(args, Path("activations.png"))
    from jaxreg.experiments import activation_plots  # pylint: disable=import-outside-toplevel
    from jaxreg.experiments._plot import pyplot  # pylint: disable=import-outside-toplevel
    pyplot()  # fail early, before computing, when the extra is missing
    activation_plots.plot(activation_plots.activation_curves(), str(out))
  else:
    run_dir = _run_dir(args)
    out = _target(args, run_dir / f"{args.what}.png")
    (history if args.what == "history" else boundary)(run_dir, out)
  print(f"wrote {out}")
  return 0
