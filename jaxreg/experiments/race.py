"""The activation race (S1.6): epochs to converge on the Playground's circle, per activation.

S1 quotes TensorFlow Playground (circle data, two hidden layers of 3 neurons,
learning rate 0.03, batch size 10, no regularization): tanh converges about
10× faster than sigmoid, and ReLU about 2× faster than tanh. Reproduced here in
the Playground's own setting, with many seeds instead of a few clicks:

* data: :func:`jaxreg.datasets.playground` ``("circle", noise=0,
  train_fraction=0.5)``: 500 points, 250 for training, 250 for testing;
  inputs ``x1, x2`` as they are (no scaling), labels ``±1``;
* net: ``2 → 3 → 3 → 1`` with the hidden activation under test and a
  **tanh output**, the Playground's init (every weight ``U(−0.5, 0.5)``,
  every bias ``0.1``);
* training: plain SGD, ``η = 0.03``, batches of 10 with the **mean**
  gradient of ``½(out − label)²``, the training set shuffled once (per seed)
  and then visited in that order every epoch; no regularization;
* measured: the first epoch after which the test loss — the mean of
  ``½(out − label)²`` over the test set, as the Playground displays it —
  is below 0.05. A run that never gets there within ``max_epochs`` counts
  as ``+∞``, so medians and ratios stay honest when many runs fail.

Every activation trains all its seeds in one :func:`jaxreg.train_many` call.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _activations
from jaxreg._data.playground import playground
from jaxreg._trainer.config import TrainConfig
from jaxreg._trainer.model import Model
from jaxreg._trainer.train_many import train_many
from jaxreg.experiments._report import FAILS, HOLDS, PARTLY, Section, fmt, markdown_table

#: The hidden activations raced, by :mod:`jaxreg.activations` name (leaky relu: α = 0.01, S1.4).
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
#: ``(numerator, denominator, claimed factor)``: "tanh ~10× faster than sigmoid", "relu ~2× than tanh".
CLAIMS = (("sigmoid", "tanh", 10.0), ("tanh", "relu", 2.0))
#: The test loss a run must get below to count as converged.
THRESHOLD = 0.05
#: The Playground's initial bias of every neuron.
PLAYGROUND_BIAS = 0.1
#: "About k×" is read as: the whole 95 % interval lies within ``[k / APPROX, k · APPROX]``.
APPROX = 1.2
#: How a measured ratio compares with its claimed factor (see :func:`judge`).
EXACT, ABOUT, ORDER_ONLY, WRONG = ("holds exactly", "holds approximately", "right order only",
                                   "does not hold")


class Settings(NamedTuple):
  """What was run."""

  activations: tuple[str, ...]
  n_seeds: int
  max_epochs: int
  hidden: tuple[int, ...]
  learning_rate: float
  batch_size: int
  threshold: float
  data_seed: int
  first_seed: int
  n_boot: int


class Row(NamedTuple):
  """Epochs to converge of one activation over its seeds (``inf``: never within ``max_epochs``)."""

  activation: str
  converged: int
  n_seeds: int
  median: float
  q25: float
  q75: float


class Ratio(NamedTuple):
  """``median(epochs of slow) / median(epochs of fast)`` with a bootstrap 95 % interval.

  ``verdict`` is one of :data:`EXACT`, :data:`ABOUT`, :data:`ORDER_ONLY`,
  :data:`WRONG` (see :func:`judge`). Entries are
  ``nan`` where both medians are infinite.
  """

  slow: str
  fast: str
  claimed: float
  lo: float
  median: float
  hi: float
  verdict: str

  @property
  def name(self) -> str:
    return f"{self.slow}/{self.fast}"


class Result(NamedTuple):
  """The measurement.

  Attributes:
    settings: what was run.
    epochs: ``{activation: float array (n_seeds,)}``, the 1-based epoch of
      convergence per seed, ``inf`` for never.
    test_loss: ``{activation: (n_seeds, max_epochs)}`` test loss after every epoch.
    rows: one :class:`Row` per activation.
    ratios: one :class:`Ratio` per entry of :data:`CLAIMS`.
  """

  settings: Settings
  epochs: dict
  test_loss: dict
  rows: tuple[Row, ...]
  ratios: tuple[Ratio, ...]

  def row(self, activation: str) -> Row:
    """The :class:`Row` of ``activation``."""
    for r in self.rows:
      if r.activation == activation:
        return r
    raise KeyError(f"no row for {activation!r}; activations {self.settings.activations}.")

  def ratio(self, name: str) -> Ratio:
    """The :class:`Ratio` called ``name``, e.g. ``"sigmoid/tanh"``."""
    for r in self.ratios:
      if r.name == name:
        return r
    raise KeyError(f"no ratio {name!r}; ratios {[r.name for r in self.ratios]}.")


# ------------------------------------------------------------------ the model
@functools.lru_cache(maxsize=None)
def playground_model(activation: str, hidden: tuple[int, ...] = (3, 3)) -> Model:
  """The Playground's classifier as a :class:`jaxreg.Model` (cached: one compile per activation).

  ``2 → hidden → 1``, ``activation`` on the hidden layers, tanh on the
  output; ``init(key)`` draws every weight from ``U(−0.5, 0.5)`` and sets
  every bias to 0.1 (float32); ``loss`` is the batch mean of ``½(out − t)²``.

  Args:
    activation: a :mod:`jaxreg.activations` name.
    hidden: hidden-layer widths.

  Returns:
    A :class:`jaxreg.Model` with ``loss``, ``apply`` and ``init``.
  """
  act = _activations.get(activation, argname="activation")
  sizes = (2,) + tuple(int(h) for h in hidden) + (1,)

  def apply(params, x):
    h = x
    for layer in params[:-1]:
      h = act(h @ layer["w"] + layer["b"])
    return jnp.tanh(h @ params[-1]["w"] + params[-1]["b"])

  def loss(params, x, t):
    return 0.5 * jnp.mean(jnp.sum((apply(params, x) - t) ** 2, axis=-1))

  def init(key):
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"w": jax.random.uniform(k, (n_in, n_out), jnp.float32, -0.5, 0.5),
             "b": jnp.full((n_out,), PLAYGROUND_BIAS, jnp.float32)}
            for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])]

  return Model(loss=loss, apply=apply, init=init)


# ------------------------------------------------------------- statistics
def first_below(loss: np.ndarray, threshold: float) -> np.ndarray:
  """The 1-based index of the first entry below ``threshold`` along the last axis, ``inf`` if none.

  NaN (a diverged run) never counts as below.

  Examples:
    >>> first_below(np.array([[0.3, 0.04, 0.01], [0.3, 0.2, 0.1]]), 0.05).tolist()
    [2.0, inf]
  """
  below = np.asarray(loss) < threshold
  return np.where(below.any(-1), below.argmax(-1) + 1.0, np.inf)


def _quantiles(values: np.ndarray, qs) -> np.ndarray:
  """Quantiles that pick sample values (no interpolation, so ``inf`` entries stay meaningful)."""
  return np.quantile(values, qs, axis=-1, method="inverted_cdf")


def median(values: np.ndarray) -> float:
  """The median of epochs-to-converge (``inf`` when half or more never converge)."""
  return float(np.median(values))


def bootstrap_ratio(slow: np.ndarray, fast: np.ndarray, *, n_boot: int = 4000,
                    seed: int = 0) -> tuple[float, float, float]:
  """``(lo, median, hi)``: 2.5 %, 50 %, 97.5 % bootstrap quantiles of ``median(slow) / median(fast)``.

  Each bootstrap sample resamples the seeds of each activation with
  replacement. ``inf`` epochs are kept (a ratio may be ``inf`` or ``0``);
  a resample where both medians are infinite has no ratio and is dropped;
  all ``nan`` if every one is dropped.
  """
  rng = np.random.default_rng(seed)
  med = lambda e: np.median(e[rng.integers(0, e.size, (n_boot, e.size))], axis=1)  # noqa: E731
  with np.errstate(invalid="ignore", divide="ignore"):
    r = med(np.asarray(slow, float)) / med(np.asarray(fast, float))
  r = r[~np.isnan(r)]
  if r.size == 0:
    return (float("nan"),) * 3
  lo, mid, hi = _quantiles(r, [0.025, 0.5, 0.975])
  return float(lo), float(mid), float(hi)


def judge(lo: float, hi: float, claimed: float) -> str:
  """How the 95 % interval ``[lo, hi]`` of a ratio compares with the claimed factor.

  :data:`EXACT` if it contains ``claimed``; :data:`ABOUT` if it lies inside
  ``[claimed / APPROX, claimed · APPROX]`` ("about k×"); :data:`ORDER_ONLY` if
  it lies above 1 (the faster one is faster, by another factor); else :data:`WRONG`.
  """
  if lo <= claimed <= hi:
    return EXACT
  if claimed / APPROX <= lo and hi <= claimed * APPROX:
    return ABOUT
  if lo > 1:
    return ORDER_ONLY
  return WRONG


# ---------------------------------------------------------------- the run
def activation_race(n_seeds: int = 200, max_epochs: int = 3000, *,
                    activations=ACTIVATIONS, hidden=(3, 3), learning_rate: float = 0.03,
                    batch_size: int = 10, threshold: float = THRESHOLD, data_seed: int = 0,
                    first_seed: int = 0, n_boot: int = 4000, mesh=None) -> Result:
  """Races the hidden activations on the Playground's circle; one :func:`jaxreg.train_many` each.

  All activations see the same data set (``data_seed``) and the same seeds
  ``first_seed … first_seed + n_seeds − 1``; a seed fixes a run's initial
  weights and its one shuffle of the training set.

  Args:
    n_seeds: runs per activation.
    max_epochs: epochs each run trains (the Playground's "epoch": one pass
      over the 250 training points, 25 steps).
    activations: hidden activations, :mod:`jaxreg.activations` names.
    hidden: hidden-layer widths.
    learning_rate: SGD step.
    batch_size: minibatch size (mean gradient).
    threshold: test loss to get below.
    data_seed: seed of :func:`jaxreg.datasets.playground`.
    first_seed: the first training seed.
    n_boot: bootstrap resamples for the ratios' intervals.
    mesh: optional ``jax.sharding.Mesh``: each :func:`jaxreg.train_many` call
      spreads its members over it (same numbers as without).

  Returns:
    A :class:`Result`. Ratios are computed for each entry of :data:`CLAIMS`
    whose two activations were raced.

  Examples:
    >>> from jaxreg.experiments import activation_race
    >>> r = activation_race(4, 20, activations=("tanh",), n_boot=100)
    >>> r.epochs["tanh"].shape, r.test_loss["tanh"].shape
    ((4,), (4, 20))
  """
  for name, value in (("n_seeds", n_seeds), ("max_epochs", max_epochs)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"activation_race: `{name}` must be an int >= 1, got {value!r}.")
  activations = tuple(activations)
  for a in activations:
    _activations.get(a, argname="activations")
  data = playground("circle", noise=0.0, train_fraction=0.5, seed=data_seed)
  train = (data.train.x.astype(np.float32), data.train.t.astype(np.float32))
  test = (data.test.x.astype(np.float32), data.test.t.astype(np.float32))
  config = TrainConfig(learning_rate=learning_rate, batch_size=batch_size,
                       epochs=int(max_epochs), shuffle="once")
  seeds = range(int(first_seed), int(first_seed) + int(n_seeds))
  epochs, test_loss, rows = {}, {}, []
  for a in activations:
    _, hist = train_many(playground_model(a, tuple(hidden)), train, config, seeds=seeds,
                         val_data=test, mesh=mesh)
    loss = np.asarray(hist["val_loss"], np.float64)
    e = first_below(loss, threshold)
    epochs[a], test_loss[a] = e, loss
    q25, q75 = _quantiles(e, [0.25, 0.75])
    rows.append(Row(a, int(np.isfinite(e).sum()), int(n_seeds), median(e), float(q25),
                    float(q75)))
  ratios = []
  for i, (slow, fast, claimed) in enumerate(CLAIMS):
    if slow in epochs and fast in epochs:
      lo, mid, hi = bootstrap_ratio(epochs[slow], epochs[fast], n_boot=n_boot, seed=i)
      ratios.append(Ratio(slow, fast, claimed, lo, mid, hi, judge(lo, hi, claimed)))
  settings = Settings(activations, int(n_seeds), int(max_epochs), tuple(hidden),
                      float(learning_rate), int(batch_size), float(threshold), int(data_seed),
                      int(first_seed), int(n_boot))
  return Result(settings, epochs, test_loss, tuple(rows), tuple(ratios))


def _finite_or_none(v: float):
  return float(v) if np.isfinite(v) else None


def to_json(result: Result) -> dict:
  """The race as JSON data (the ``jaxreg experiment race --json`` schema).

  ``{"activations": {name: {"epochs": [int or null per seed], "converged":
  int, "median": float or null}}, "ratios": {"sigmoid/tanh": [lo, median,
  hi], "tanh/relu": [...]}}``; ``null`` stands for ``+∞`` (never converged,
  or an infinite median or ratio), which JSON cannot write; ``"settings"``
  records what was run.
  """
  acts = {}
  for r in result.rows:
    e = result.epochs[r.activation]
    acts[r.activation] = {"epochs": [int(v) if np.isfinite(v) else None for v in e],
                          "converged": r.converged, "median": _finite_or_none(r.median)}
  ratios = {q.name: [_finite_or_none(v) for v in (q.lo, q.median, q.hi)] for q in result.ratios}
  return {"activations": acts, "ratios": ratios, "settings": result.settings._asdict()}


# ----------------------------------------------------------------- report
COMMAND = "python scripts/experiment_race.py"
LABELS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "ReLU", "leaky_relu": "leaky ReLU (α = 0.01)"}


def _epochs(v: float) -> str:
  return "∞" if not np.isfinite(v) else f"{v:.0f}" if v == int(v) else f"{v:.1f}"


def _ratio(v: float) -> str:
  return "—" if np.isnan(v) else "∞" if np.isinf(v) else fmt(v)


def section(result: Result, *, figure: str = "") -> Section:
  """The README section for S1.6."""
  st = result.settings
  rows = [[LABELS.get(r.activation, r.activation), f"{r.converged}/{r.n_seeds}",
           _epochs(r.median), f"{_epochs(r.q25)}–{_epochs(r.q75)}"] for r in result.rows]
  table = markdown_table(["hidden activation", f"converged within {st.max_epochs} epochs",
                          "median epochs", "interquartile range"], rows)
  if result.ratios:
    table += "\n\n" + markdown_table(
        ["ratio of median epochs", "measured (bootstrap 95 % interval)", "claimed", "verdict"],
        [[q.name, f"{_ratio(q.median)} [{_ratio(q.lo)}, {_ratio(q.hi)}]", f"{q.claimed:g}×",
          q.verdict] for q in result.ratios])
  verdicts = [q.verdict for q in result.ratios]
  verdict = (HOLDS if verdicts and all(v in (EXACT, ABOUT) for v in verdicts) else
             FAILS if not verdicts or all(v == WRONG for v in verdicts) else PARTLY)
  parts = []
  for q in result.ratios:
    side = "above" if q.claimed > q.hi else "below"
    how = {EXACT: "holds: the interval contains it",
           ABOUT: (f"holds approximately: the whole interval lies within 20 % of it, but "
                   f"{q.claimed:g} itself is {side} the interval"),
           ORDER_ONLY: ("holds only in direction: the interval lies above 1 but not within "
                        "20 % of the claimed factor"),
           WRONG: "does not hold: the interval does not even lie above 1"}[q.verdict]
    parts.append(f"{q.fast} converges {_ratio(q.median)}× faster than {q.slow} (median of "
                 f"bootstrap medians; 95 % interval {_ratio(q.lo)}–{_ratio(q.hi)}); the "
                 f"claimed {q.claimed:g}× {how}")
  spread = "; ".join(f"{LABELS.get(r.activation, r.activation)} {_epochs(r.q25)}–"
                     f"{_epochs(r.q75)}" for r in result.rows)
  reason = ("; ".join(parts) + f". Run-to-run variation is large, as the source says "
            f"(interquartile ranges of epochs: {spread}). A ratio counts as holding when its "
            "bootstrap interval contains the claimed factor, approximately when the whole interval "
            "lies within 20 % of it (a factor 1.2 either way: our reading of \"about\"; a looser reading, a factor √2, was considered after seeing the data and rejected as too lenient for a 2× claim).")
  setup = (f"TensorFlow Playground's setting: circle data (500 points, noise 0, 50 % for "
           f"training, data seed {st.data_seed}), inputs x1 and x2 unscaled, "
           f"2 → {' → '.join(map(str, st.hidden))} → 1 with a tanh output and labels ±1, "
           f"weights U(−0.5, 0.5) and biases {PLAYGROUND_BIAS}, SGD with η = "
           f"{st.learning_rate:g} on batches of {st.batch_size} (mean gradient of "
           f"½(out − label)²), the training set shuffled once per seed and then visited in "
           f"that order, no regularization. {st.n_seeds} seeds per activation (seeds "
           f"{st.first_seed}–{st.first_seed + st.n_seeds - 1}: initial weights and the "
           f"shuffle; the same seeds for every activation), all trained in one train_many "
           f"call per activation, for {st.max_epochs} epochs. Measured: the first epoch "
           f"after which the test loss (mean ½(out − label)² over the 250 test points, as the "
           f"Playground shows it) is below {st.threshold:g}; never = ∞. Ratios: medians of "
           f"epochs, {st.n_boot} bootstrap resamples of the seeds.")
  return Section(
      key="race", title="Activation race on the Playground's circle", claims=("S1.6",),
      claim=("On TensorFlow Playground's circle data with two hidden layers of 3 neurons, "
             "learning rate 0.03, batch size 10 and no regularization, tanh converges about "
             "10× faster than sigmoid and ReLU about 2× faster than tanh, with run-to-run "
             "variation."),
      setup=setup, table=table, verdict=verdict, reason=reason, figure=figure, command=COMMAND)


def plot(result: Result, path: str) -> None:
  """Two panels: the fraction of runs converged by each epoch, and the median test loss
  per epoch with its interquartile band; log epoch axes. Saved as a PNG at ``path``."""
  from jaxreg.experiments._plot import COLOURS, pyplot  # pylint: disable=import-outside-toplevel
  plt = pyplot()
  st = result.settings
  ep = np.arange(1, st.max_epochs + 1)
  fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5), dpi=110)
  for i, r in enumerate(result.rows):
    c = COLOURS[i % len(COLOURS)]
    label = LABELS.get(r.activation, r.activation)
    e = result.epochs[r.activation]
    frac = (e[None, :] <= ep[:, None]).mean(1)
    a1.step(ep, 100 * frac, where="post", color=c, lw=2,
            label=f"{label}: median {_epochs(r.median)} epochs")
    if np.isfinite(r.median):
      a1.axvline(r.median, color=c, lw=0.8, ls=":")
    loss = result.test_loss[r.activation]
    with np.errstate(all="ignore"):
      q25, q50, q75 = np.nanpercentile(loss, [25, 50, 75], axis=0)
    a2.plot(ep, q50, color=c, lw=2, label=label)
    a2.fill_between(ep, q25, q75, color=c, alpha=0.18, lw=0)
  a1.axhline(50, color="grey", lw=0.8)
  a1.set_xscale("log")
  a1.set_xlabel("epoch (one pass over the 250 training points)")
  a1.set_ylabel(f"runs with test loss < {st.threshold:g} (% of {st.n_seeds})")
  a1.set_ylim(0, 100)
  a1.set_title("Converged runs by epoch (dotted: median)")
  a1.legend(fontsize=8, loc="upper left")
  a2.axhline(st.threshold, color="grey", lw=0.8, ls="--", label=f"threshold {st.threshold:g}")
  a2.set_xscale("log")
  a2.set_yscale("log")
  a2.set_xlabel("epoch")
  a2.set_ylabel("test loss, mean ½(out − label)²")
  a2.set_title("Test loss: median over seeds, interquartile band")
  a2.legend(fontsize=8, loc="lower left")
  for ax in (a1, a2):
    ax.grid(True, which="both", alpha=0.25)
  fig.suptitle(f"Playground circle, 2 → {' → '.join(map(str, st.hidden))} → 1 (tanh output), "
               f"η = {st.learning_rate:g}, batch {st.batch_size}: {st.n_seeds} seeds per "
               f"activation", fontsize=11)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
