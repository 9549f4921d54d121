"""jaxreg train DATA --out DIR: trains a jaxreg.MLP on a named data set or an .npz file.

Data:
  circle, xor, gauss, spiral   TensorFlow Playground's 2-D sets (--n-samples,
                               --noise, --train-fraction, --data-seed); the
                               test part is the validation data; targets ±1
                               (0/1 with --loss binary_cross_entropy).
  digits                       scikit-learn's 8×8 digits (the `digits` extra),
                               split into train/val/test (--val-fraction,
                               --test-fraction, --data-seed); targets one-hot.
  FILE.npz                     arrays `x` (n, d) and `t` (n, k); split into
                               train/val (--val-fraction, 0 for none).

The net is --hidden (widths, e.g. 8,8) between the data's input and target
widths, --activation on the hidden layers, --output-activation on the output
(default: linear; sigmoid with binary cross-entropy). Every field of
jaxreg.TrainConfig is a flag (--learning-rate, --batch-size, --epochs,
--weight-decay, --decay-biases, --l1, --l1-rule, --keep-prob, --dropout-mode,
--noise-std, --patience, --seed, --shuffle; --optimizer picks an optax
optimizer with --learning-rate as its step, instead of the built-in SGD
chain); `augment` takes functions and has no flag.

Output (into --out DIR, created if missing; existing run files are refused
unless --overwrite, and an input file is never written):
  metrics.jsonl    one JSON object per epoch (jaxreg.MetricsLog)
  checkpoint.npz   the final parameters (the best epoch's with --patience),
                   the history and run.json's content (jaxreg.load reads it)
  run.json         the command's settings and final metrics
A progress bar goes to stderr when it is a terminal (--progress/--no-progress).

Exit status: 0 trained; 1 the training diverged (the last finite parameters
are saved); 2 a usage error (bad flag, data or setting: one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

PLAYGROUND_SETS = ("circle", "xor", "gauss", "spiral")
DATASETS = PLAYGROUND_SETS + ("digits",)
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
RUN_FILES = ("metrics.jsonl", "checkpoint.npz", "run.json")


class UsageError(Exception):
  """A bad flag value, data file or setting; the CLI prints it on one line and exits 2."""


def int_list(text: str) -> tuple[int, ...]:
  """``"8,8"`` → ``(8, 8)``; ``""`` → ``()`` (no hidden layer)."""
  try:
    out = tuple(int(v) for v in text.split(",") if v.strip())
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated ints like 8,8, got {text!r}")
  if any(v < 1 for v in out):
    raise argparse.ArgumentTypeError(f"widths must be >= 1, got {text!r}")
  return out


def float_list(text: str) -> tuple[float, ...]:
  """``"1,0.5"`` → ``(1.0, 0.5)``."""
  try:
    return tuple(float(v) for v in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 1,0.5, got {text!r}")


def add_parser(sub) -> None:
  """Adds ``train`` to the ``jaxreg`` subcommands."""
  from jaxreg import activations, losses  # pylint: disable=import-outside-toplevel
  from jaxreg._mlp import INITS  # pylint: disable=import-outside-toplevel
  p = sub.add_parser("train", help="train an MLP on a data set or an .npz file",
                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("data", metavar="DATA", help=f"one of {', '.join(DATASETS)}, or an .npz file")
  p.add_argument("--out", required=True, metavar="DIR", help="folder for the run's files")
  p.add_argument("--overwrite", action="store_true", help="replace run files already in DIR")
  g = p.add_argument_group("model")
  g.add_argument("--hidden", type=int_list, default=(8,), metavar="W,W",
                 help="hidden-layer widths (default 8)")
  g.add_argument("--activation", default="tanh", choices=activations.NAMES,
                 help="hidden activation (default tanh)")
  g.add_argument("--output-activation", default=None, choices=activations.NAMES,
                 help="output activation (default: identity; sigmoid for binary cross-entropy)")
  g.add_argument("--loss", default=None, choices=losses.NAMES,
                 help="default: softmax_cross_entropy for digits, else mse")
  g.add_argument("--init", default="glorot_uniform", choices=INITS,
                 help="MLP init scheme (default glorot_uniform)")
  g = p.add_argument_group("data")
  g.add_argument("--n-samples", type=int, default=500, help="Playground points (default 500)")
  g.add_argument("--noise", type=float, default=0.0, help="Playground noise in [0, 0.5]")
  g.add_argument("--train-fraction", type=float, default=0.5,
                 help="Playground training share (default 0.5)")
  g.add_argument("--val-fraction", type=float, default=0.2,
                 help="digits/.npz validation share (default 0.2)")
  g.add_argument("--test-fraction", type=float, default=0.2, help="digits test share (default 0.2)")
  g.add_argument("--data-seed", type=int, default=0, help="seed of the data and split")
  g = p.add_argument_group("training (jaxreg.TrainConfig)")
  g.add_argument("--learning-rate", type=float, default=0.03)
  g.add_argument("--batch-size", type=int, default=10)
  g.add_argument("--epochs", type=int, default=100)
  g.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS,
                 help="sgd: the built-in chain (weight decay, L1); else optax.NAME(learning_rate)")
  g.add_argument("--weight-decay", type=float, default=0.0)
  g.add_argument("--decay-biases", action="store_true")
  g.add_argument("--l1", type=float, default=0.0)
  g.add_argument("--l1-rule", default="sign", choices=("sign", "proximal"))
  g.add_argument("--keep-prob", type=float_list, default=None, metavar="P,P",
                 help="dropout keep-probability per dense layer input, e.g. 1,0.5")
  g.add_argument("--dropout-mode", default="inverted", choices=("inverted", "scale_at_test"))
  g.add_argument("--noise-std", type=float, default=0.0)
  g.add_argument("--patience", type=int, default=None)
  g.add_argument("--seed", type=int, default=0)
  g.add_argument("--shuffle", default="every_epoch", choices=("every_epoch", "once", "never"))
  g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                 help="progress bar on stderr (default: when it is a terminal)")


# ------------------------------------------------------------------- data
def load_data(args):
  """``(train, val, test, description)``: :class:`jaxreg.datasets.Dataset` s (val/test may be None)."""
  from jaxreg import datasets  # pylint: disable=import-outside-toplevel
  name = args.data
  desc = {"data": name, "data_seed": args.data_seed}
  if name in PLAYGROUND_SETS:
    parts = datasets.playground(name, n_samples=args.n_samples, noise=args.noise,
                                train_fraction=args.train_fraction, seed=args.data_seed)
    desc.update(n_samples=args.n_samples, noise=args.noise, train_fraction=args.train_fraction)
    return parts.train, parts.test, None, desc
  if name == "digits":
    parts = datasets.split(datasets.digits(), val=args.val_fraction, test=args.test_fraction,
                           seed=args.data_seed)
    desc.update(val_fraction=args.val_fraction, test_fraction=args.test_fraction)
    return parts.train, parts.val if parts.val.n else None, parts.test, desc
  path = Path(name)
  if path.suffix != ".npz":
    raise UsageError(f"DATA {name!r}: expected one of {', '.join(DATASETS)} or an .npz file")
  if not path.is_file():
    raise UsageError(f"DATA {name!r}: no such file")
  import numpy as np  # pylint: disable=import-outside-toplevel
  try:
    with np.load(path, allow_pickle=False) as z:
      missing = [k for k in ("x", "t") if k not in z.files]
      if missing:
        raise UsageError(f"DATA {name!r}: missing array(s) {missing}; expected `x` (n, d) and "
                         f"`t` (n, k), found {sorted(z.files)}")
      x, t = np.asarray(z["x"], np.float64), np.asarray(z["t"], np.float64)
  except (OSError, ValueError) as e:
    raise UsageError(f"DATA {name!r}: cannot read it as an .npz file: {e}") from None
  if t.ndim == 1:
    t = t[:, None]
  if x.ndim != 2 or t.ndim != 2 or x.shape[0] != t.shape[0]:
    raise UsageError(f"DATA {name!r}: expected x of shape (n, d) and t of shape (n, k) with the "
                     f"same n, got x {x.shape} and t {t.shape}")
  label = t.argmax(1) if t.shape[1] > 1 else np.zeros(t.shape[0], np.int64)
  data = datasets.Dataset(x, t, label)
  desc.update(path=str(path.resolve()), val_fraction=args.val_fraction)
  if args.val_fraction == 0:
    return data, None, None, desc
  parts = datasets.split(data, val=args.val_fraction, test=0.0, seed=args.data_seed)
  return parts.train, parts.val, None, desc


def output_paths(args) -> dict[str, Path]:
  """The run files in ``--out``, refused if one is an input or exists without ``--overwrite``."""
  out = Path(args.out)
  if out.exists() and not out.is_dir():
    raise UsageError(f"--out {args.out!r}: is a file, expected a folder")
  paths = {name: out / name for name in RUN_FILES}
  data = Path(args.data)
  if data.suffix == ".npz" and data.exists():
    for p in paths.values():
      if p.resolve() == data.resolve():
        raise UsageError(f"--out {args.out!r}: {p.name} there is the input DATA; refusing to "
                         "overwrite an input file (choose another --out)")
  existing = [p.name for p in paths.values() if p.exists()]
  if existing and not args.overwrite:
    raise UsageError(f"--out {args.out!r} already holds {', '.join(existing)}; pass --overwrite "
                     "or choose another folder")
  return paths


# ------------------------------------------------------------------ model
def build(args, train):
  """``(model, config, targets_fn)`` from the flags; ``targets_fn`` maps a Dataset's ``t``."""
  import optax  # pylint: disable=import-outside-toplevel
  import jaxreg  # pylint: disable=import-outside-toplevel
  loss = args.loss or ("softmax_cross_entropy" if args.data == "digits" else "mse")
  out_act = args.output_activation or ("sigmoid" if loss == "binary_cross_entropy" else "identity")
  sizes = (train.x.shape[1],) + tuple(args.hidden) + (train.t.shape[1],)
  to_01 = loss == "binary_cross_entropy" and args.data in PLAYGROUND_SETS
  targets = (lambda t: (t + 1) / 2) if to_01 else (lambda t: t)
  try:
    model = jaxreg.MLP(sizes, [args.activation] * (len(sizes) - 2) + [out_act], loss=loss,
                       init=args.init)
    opt = None if args.optimizer == "sgd" else getattr(optax, args.optimizer)(args.learning_rate)
    config = jaxreg.TrainConfig(
        learning_rate=args.learning_rate if opt is None else None, batch_size=args.batch_size,
        epochs=args.epochs, optimizer=opt, weight_decay=args.weight_decay,
        decay_biases=args.decay_biases, l1=args.l1, l1_rule=args.l1_rule,
        keep_prob=args.keep_prob, dropout_mode=args.dropout_mode, noise_std=args.noise_std,
        patience=args.patience, seed=args.seed, shuffle=args.shuffle)
  except (TypeError, ValueError) as e:
    raise UsageError(str(e)) from None
  if config.patience is not None and args.val_fraction == 0 and args.data not in PLAYGROUND_SETS:
    raise UsageError("--patience needs validation data: set --val-fraction > 0")
  return model, config, targets, {"sizes": list(sizes), "activation": args.activation,
                                  "output_activation": out_act, "loss": loss, "init": args.init}


def _final(history: dict) -> dict:
  out = {}
  for k, v in history.items():
    if k == "best_epoch":
      out[k] = int(v)
    elif len(v):
      x = float(v[-1])
      out[k] = x if x == x and abs(x) != float("inf") else None
  return out


def run(args) -> int:
  """``jaxreg train``; raises :class:`UsageError` for bad input."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import jaxreg  # pylint: disable=import-outside-toplevel
  from jaxreg._data.extras import MissingExtraError  # pylint: disable=import-outside-toplevel
  paths = output_paths(args)
  try:
    train, val, test, data_desc = load_data(args)
  except (TypeError, ValueError, MissingExtraError) as e:
    raise UsageError(str(e)) from None
  model, config, targets, model_desc = build(args, train)
  Path(args.out).mkdir(parents=True, exist_ok=True)
  for p in paths.values():
    if p.exists():  # --overwrite: the log appends, so start it afresh
      p.unlink()
  params0 = model.init(jax.random.key(args.seed))
  val_data = None if val is None else (val.x, targets(val.t))
  meta = {"command": "jaxreg train", "data": data_desc, "model": model_desc,
          "config": config.to_json()}
  status = 0
  try:
    params, history = jaxreg.train(model, params0, (train.x, targets(train.t)), config,
                                   val_data=val_data, callbacks=[jaxreg.MetricsLog(paths["metrics.jsonl"])],
                                   progress=args.progress)
  except jaxreg.TrainingDiverged as e:
    params, history, status = e.params, e.history, 1
    print(f"jaxreg train: {e}", flush=True)
  except (TypeError, ValueError) as e:
    raise UsageError(str(e)) from None
  final = _final(history)
  if val is not None and args.data in PLAYGROUND_SETS:  # ±1 labels: the sign is the class
    y = np.asarray(jaxreg.predict(model, params, val.x, config))[:, 0]
    final["val_acc"] = float(np.mean(np.where(y > (0.5 if model_desc["loss"] ==
                                                   "binary_cross_entropy" else 0.0), 1, -1)
                                     == val.label))
  if test is not None:
    y = np.asarray(jaxreg.predict(model, params, test.x, config))
    final["test_loss"] = float(model.loss(params, np.asarray(test.x, y.dtype),
                                          np.asarray(targets(test.t), y.dtype)))
    if model_desc["loss"] == "softmax_cross_entropy":
      final["test_acc"] = float(np.mean(y.argmax(1) == test.label))
  meta["final"] = final
  meta["diverged"] = bool(status)
  jaxreg.save(paths["checkpoint.npz"], params, history=history, metadata=meta)
  paths["run.json"].write_text(json.dumps(meta, indent=1) + "\n")
  shown = "  ".join(f"{k} {v:.4g}" for k, v in final.items()
                    if isinstance(v, float) and k != "best_epoch")
  print(f"jaxreg train: {len(history.get('train_loss', []))} epochs  {shown}")
  print(f"wrote {', '.join(os.fspath(p) for p in paths.values())}")
  return status
