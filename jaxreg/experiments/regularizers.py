"""Regularizers on real data (S2.5, S4.4–S4.7): do they help when the training set is small?

The sources present L2, dropout (S2.5: half the hidden neurons, weights
halved at test; S4.7: keep 0.8 for the input, 0.5 for hidden layers),
early stopping on a validation set (S4.4), input noise (S4.5) and data
augmentation (S4.6) as remedies for overfitting. Measured here on
scikit-learn's digits with a deliberately small training set, so that an
unregularized net overfits: the test accuracy of each method against none,
paired by seed (a seed fixes the initial weights and the shuffles).
"""

from __future__ import annotations

import textwrap
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._data.dataset import Dataset, split
from jaxreg._data.digits import digits
from jaxreg._mlp import MLP
from jaxreg._trainer.config import TrainConfig
from jaxreg._trainer.model import predict
from jaxreg._trainer.train_many import train_many
from jaxreg.experiments._report import FAILS, HOLDS, PARTLY, Section, markdown_table


def shift_one_pixel(key, x):
  """S4.6's augmentation for 8×8 digits: each image moved by −1, 0 or +1 pixel along each axis.

  Pure and jittable; pixels shifted in from outside are 0 (the background).

  Args:
    key: a PRNG key.
    x: a batch of flattened 8×8 images, shape ``(m, 64)``.

  Returns:
    The shifted batch, same shape.
  """
  m = x.shape[0]
  img = x.reshape(m, 8, 8)
  d = jax.random.randint(key, (m, 2), -1, 2)
  pad = jnp.pad(img, ((0, 0), (1, 1), (1, 1)))

  def one(p, dd):
    return jax.lax.dynamic_slice(p, (1 - dd[0], 1 - dd[1]), (8, 8))

  return jax.vmap(one)(pad, d).reshape(m, 64)


class Method(NamedTuple):
  """A regularizer as :class:`TrainConfig` changes to the baseline."""

  name: str
  claims: str
  changes: dict


METHODS = (
    Method("none", "", {}),
    Method("L2 weight decay 1e-3", "S2.1–S2.2", {"weight_decay": 1e-3}),
    Method("dropout, inverted (keep 0.8 / 0.5)", "S4.7", {"keep_prob": (0.8, 0.5)}),
    Method("dropout, weights × p at test (keep 0.8 / 0.5)", "S2.5, S4.7",
           {"keep_prob": (0.8, 0.5), "dropout_mode": "scale_at_test"}),
    Method("input noise σ = 0.1", "S4.5", {"noise_std": 0.1}),
    Method("augmentation: 1-pixel shifts", "S4.6", {"augment": shift_one_pixel}),
    Method("early stopping (patience 20)", "S4.4", {"patience": 20}),
)


class Settings(NamedTuple):
  """What was run."""

  n_seeds: int
  n_train: int
  n_val: int
  n_test: int
  hidden: int
  epochs: int
  learning_rate: float
  batch_size: int


class Row(NamedTuple):
  """One method over seeds: test accuracy, and its paired difference to none (95 % bootstrap)."""

  method: str
  claims: str
  acc_mean: float
  acc_std: float
  diff_mean: float
  diff_lo: float
  diff_hi: float


class Result(NamedTuple):
  """The measurement: ``acc`` is ``{method: test accuracy per seed}``."""

  settings: Settings
  acc: dict
  rows: tuple[Row, ...]


def _small_split(n_train: int, seed: int):
  parts = split(digits(), val=0.2, test=0.3, seed=seed)
  train = Dataset(*(a[:n_train] for a in parts.train))
  return train, parts.val, parts.test


def compare_regularizers(n_seeds: int = 20, *, n_train: int = 200, hidden: int = 64, epochs: int = 150,
                 learning_rate: float = 0.1, batch_size: int = 20, data_seed: int = 0,
                 methods=METHODS, n_boot: int = 4000, mesh=None) -> Result:
  """Trains ``64 → hidden (relu) → 10`` (softmax CE) with each method; one train_many each.

  Data: digits split 50/20/30 (train/validation/test); only the first
  ``n_train`` training images are used. The validation set serves early
  stopping; every method is scored on the test set with
  :func:`jaxreg.predict`.

  Args:
    n_seeds: seeds per method (the same seeds for every method).
    n_train: training images used.
    hidden: hidden width.
    epochs: epochs (reshuffled every epoch).
    learning_rate: SGD step.
    batch_size: minibatch size.
    data_seed: seed of the split.
    methods: :class:`Method` s to compare; the first is the baseline.
    n_boot: bootstrap resamples of the paired differences.
    mesh: optional ``jax.sharding.Mesh``: each :func:`jaxreg.train_many` call
      spreads its members over it (same numbers as without).

  Returns:
    A :class:`Result` (the first method is the baseline of the differences).
  """
  train, val, test = _small_split(n_train, data_seed)
  f32 = lambda d: (d.x.astype(np.float32), d.t.astype(np.float32))  # noqa: E731
  net = MLP((64, hidden, 10), "relu", loss="softmax_cross_entropy", init="he_normal")
  base = TrainConfig(learning_rate=learning_rate, batch_size=batch_size, epochs=epochs)
  acc = {}
  for m in methods:
    config = base.replace(**m.changes)
    params, _ = train_many(net, f32(train), config, seeds=range(n_seeds), val_data=f32(val),
                           mesh=mesh)
    a = []
    for s in range(n_seeds):
      p = jax.tree.map(lambda v: v[s], params)
      y = np.asarray(predict(net, p, test.x.astype(np.float32), config))
      a.append(float(np.mean(y.argmax(1) == test.label)))
    acc[m.name] = np.asarray(a)
  ref = acc[methods[0].name]
  rng = np.random.default_rng(0)
  rows = []
  for m in methods:
    d = acc[m.name] - ref
    boot = d[rng.integers(0, d.size, (n_boot, d.size))].mean(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    rows.append(Row(m.name, m.claims, float(acc[m.name].mean()), float(acc[m.name].std(ddof=1))
                    if n_seeds > 1 else 0.0, float(d.mean()), float(lo), float(hi)))
  settings = Settings(int(n_seeds), train.n, val.n, test.n, int(hidden), int(epochs),
                      float(learning_rate), int(batch_size))
  return Result(settings, acc, tuple(rows))


COMMAND = "python scripts/experiments.py regularizers"


def section(result: Result, *, figure: str = "") -> Section:
  """The README section for S2.5 and S4.4–S4.7."""
  st = result.settings
  pts = lambda v: f"{100 * v:+.1f}"  # noqa: E731
  table = markdown_table(
      ["method", "claim", "test accuracy, mean ± sd", "change vs none (points, 95 % interval)"],
      [[r.method, r.claims or "—", f"{100 * r.acc_mean:.1f} % ± {100 * r.acc_std:.1f}",
        "—" if i == 0 else f"{pts(r.diff_mean)} [{pts(r.diff_lo)}, {pts(r.diff_hi)}]"]
       for i, r in enumerate(result.rows)])
  others = result.rows[1:]
  helps = [r for r in others if r.diff_lo > 0]
  hurts = [r for r in others if r.diff_hi < 0]
  verdict = HOLDS if len(helps) == len(others) else PARTLY if helps else FAILS
  pt = lambda r: f"{r.method} ({100 * r.diff_mean:+.1f} points)"  # noqa: E731
  reason = (f"Without regularization the net reaches {100 * result.rows[0].acc_mean:.1f} % on "
            f"the test set. Better (the paired 95 % interval above 0): "
            f"{', '.join(map(pt, helps)) or 'none'}. ")
  if hurts:
    reason += f"Worse (interval below 0): {', '.join(map(pt, hurts))}. "
  neutral = [r for r in others if r not in helps and r not in hurts]
  if neutral:
    reason += f"No clear change: {', '.join(map(pt, neutral))}. "
  reason += ("Each method was run at one setting from the sources (S4.8: each adds "
             "hyperparameters; none was tuned here), so a method that does not help here may "
             "help at another strength.")
  setup = (f"scikit-learn's digits split 50/20/30, of whose training half only {st.n_train} "
           f"images are used ({st.n_val} validation, {st.n_test} test images); 64 → "
           f"{st.hidden} (ReLU, He init) → 10 with softmax cross-entropy; SGD η = "
           f"{st.learning_rate:g}, batches of {st.batch_size}, {st.epochs} epochs. Each method "
           f"changes one thing; {st.n_seeds} seeds each (seed = initial weights and shuffles, "
           f"the same seeds for every method), one train_many call per method. Test accuracy "
           f"from jaxreg.predict (dropout at prediction as its mode says); differences to none "
           f"paired by seed, with bootstrap intervals.")
  return Section(
      key="regularizers", title="Regularizers on real data (digits)",
      claims=("S2.5", "S4.4", "S4.5", "S4.6", "S4.7"),
      claim=("L2, dropout (S2.5, S4.7), early stopping (S4.4), input noise (S4.5) and data "
             "augmentation (S4.6) reduce overfitting, i.e. improve accuracy on unseen data."),
      setup=setup, table=table, verdict=verdict, reason=reason, figure=figure, command=COMMAND)


def plot(result: Result, path: str) -> None:
  """Test accuracy per seed for every method (points) with its mean; saved at ``path``."""
  from jaxreg.experiments._plot import COLOURS, pyplot  # pylint: disable=import-outside-toplevel
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
  names = [r.method for r in result.rows]
  rng = np.random.default_rng(0)
  for i, name in enumerate(names):
    a = 100 * result.acc[name]
    ax.scatter(i + rng.uniform(-0.15, 0.15, a.size), a, s=14, color=COLOURS[i % len(COLOURS)],
               alpha=0.7)
    ax.hlines(a.mean(), i - 0.3, i + 0.3, color="k", lw=2)
  ax.axhline(100 * result.rows[0].acc_mean, color="grey", lw=0.8, ls="--",
             label="mean without regularization")
  ax.set_xticks(range(len(names)))
  ax.set_xticklabels([textwrap.fill(n, 16) for n in names], fontsize=7)
  ax.set_ylabel("test accuracy (%)  — one point per seed, bar = mean")
  ax.set_title(f"Digits with {result.settings.n_train} training images: "
               f"{result.settings.n_seeds} seeds per method")
  ax.grid(True, axis="y", alpha=0.25)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
