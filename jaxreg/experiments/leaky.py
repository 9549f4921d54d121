"""Leaky-ReLU amplification (S0.8): does Leaky ReLU multiply shallow gradients by (1+α)^n?

S0 reasons that replacing ReLU by Leaky ReLU adds ``α`` to each layer's
derivative factor, so the gradient of a shallow layer grows by about
``(1+α)^n`` in an ``n``-layer net. But Leaky ReLU's derivative is exactly 1
for ``x > 0``, as ReLU's; it differs only for ``x < 0``, where it is ``α``
instead of 0. Measured here: the ratio of first-layer gradient norms,
Leaky / ReLU, on the *same* weights and data, against depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jaxreg import _activations
from jaxreg.experiments import _probe
from jaxreg.experiments._probe import Probe
from jaxreg.experiments._report import FAILS, HOLDS, PARTLY, Section, fmt, markdown_table

#: The source's α (0.01), and larger ones (Keras's LeakyReLU layer defaults to 0.3).
ALPHAS = (0.01, 0.1, 0.3)


class Settings(NamedTuple):
  """What was run."""

  depths: tuple[int, ...]
  alphas: tuple[float, ...]
  n_seeds: int
  width: int
  batch: int
  init: str
  seed: int


class RatioRow(NamedTuple):
  """``‖∂L/∂W_1‖`` Leaky / ReLU over seeds, at one α and depth, beside the claimed
  ``(1+α)^n`` and ``gain = (1+α²)^n`` (see :func:`leaky_amplification`)."""

  alpha: float
  depth: int
  median: float
  q25: float
  q75: float
  claimed: float
  gain: float


class Result(NamedTuple):
  """The measurement.

  Attributes:
    settings: what was run.
    ratios: per-seed ratios, shape ``(len(alphas), len(depths), n_seeds)``.
    rows: one :class:`RatioRow` per α and depth.
  """

  settings: Settings
  ratios: np.ndarray
  rows: tuple[RatioRow, ...]

  def row(self, alpha: float, depth: int) -> RatioRow:
    """The :class:`RatioRow` at ``alpha`` and ``depth``."""
    for r in self.rows:
      if r.alpha == alpha and r.depth == depth:
        return r
    raise KeyError(f"no row at alpha {alpha} and depth {depth}; alphas "
                   f"{self.settings.alphas}, depths {self.settings.depths}.")


def leaky_amplification(depths: Sequence[int] = tuple(range(2, 31)), *,
                        alphas: Sequence[float] = ALPHAS, n_seeds: int = 200, width: int = 16,
                        batch: int = 32, init: str = "he_normal", seed: int = 0) -> Result:
  """First-layer gradient norm ratio Leaky ReLU / ReLU, paired by seed, against depth.

  For each seed, the ReLU net and the Leaky ReLU nets share weights, inputs
  and targets (:func:`jaxreg.experiments._probe.draw`); only the activation
  differs. Nets as in :func:`vanishing_gradients`. Float32.

  Args:
    depths: numbers of hidden layers ``n``.
    alphas: Leaky ReLU slopes for ``x < 0``, each in ``[0, 1)``.
    n_seeds: nets per depth (vectorised).
    width: input and hidden width.
    batch: samples in the batch.
    init: the initialisation of both nets (He by default, standard for ReLU).
    seed: base seed.

  Returns:
    A :class:`Result`; ``claimed`` in each row is ``(1 + α)^n``, ``gain`` is
    ``(1 + α²)^n``: at an init scaled for ReLU (He), a Leaky ReLU layer's
    mean-square gain is ``(1 + α²)`` times ReLU's, forwards and backwards,
    so to first order the first-layer gradient norm ratio grows like
    ``√(1+α²)^n · √(1+α²)^n``.

  Examples:
    >>> from jaxreg.experiments import leaky_amplification
    >>> r = leaky_amplification((2, 10), alphas=(0.3,), n_seeds=8, width=8, batch=8)
    >>> r.row(0.3, 10).median < r.row(0.3, 10).claimed
    True
  """
  fname = "leaky_amplification"
  depths = _probe.check_depths(depths, fname)
  alphas = tuple(float(a) for a in alphas)
  leaky = [_activations.leaky_relu(a) for a in alphas]  # validates each α
  kw = dict(n_seeds=_probe.check_count(n_seeds, fname, "n_seeds"),
            width=_probe.check_count(width, fname, "width"),
            batch=_probe.check_count(batch, fname, "batch"), seed=int(seed))
  base = _probe.check_probe(Probe("relu", "relu", init), fname)
  relu = _probe.first_layer_grad_norms(base, depths, **kw)
  ratios = np.stack([
      _probe.first_layer_grad_norms(Probe(f"leaky {a}", act, init), depths, **kw) / relu
      for a, act in zip(alphas, leaky)])
  rows = tuple(RatioRow(a, d, *_probe.spread(ratios[i, j]), float((1 + a) ** d),
                        float((1 + a * a) ** d))
               for i, a in enumerate(alphas) for j, d in enumerate(depths))
  return Result(Settings(depths, alphas, kw["n_seeds"], kw["width"], kw["batch"], init,
                         kw["seed"]), ratios, rows)


COMMAND = "python scripts/experiments.py leaky"


def section(result: Result, *, figure: str = "") -> Section:
  """The README section for S0.8."""
  st = result.settings
  show = [d for d in (2, 5, 10, 20, 30) if d in st.depths] or list(st.depths)
  rows = []
  for a in st.alphas:
    cells = []
    for d in show:
      r = result.row(a, d)
      cells.append(f"{fmt(r.median)} [{fmt(r.q25)}, {fmt(r.q75)}] · claimed {fmt(r.claimed)}")
    rows.append([f"α = {a:g}"] + cells)
  table = markdown_table(["Leaky/ReLU ratio, median [IQR]"] + [f"n = {d}" for d in show], rows)
  deepest = st.depths[-1]
  inside = [(a, result.row(a, deepest)) for a in st.alphas]
  # The claim is met where (1+α)^n lies inside the interquartile range at the deepest net.
  met = [r.q25 <= r.claimed <= r.q75 for _, r in inside]
  verdict = HOLDS if all(met) else (PARTLY if any(met) else FAILS)
  detail = ", ".join(f"α = {a:g}: median {fmt(r.median)} (IQR {fmt(r.q25)}–{fmt(r.q75)}) "
                     f"against (1+α)^{deepest} = {fmt(r.claimed)}" for a, r in inside)
  gains = ", ".join(f"{fmt(r.gain)}" for _, r in inside)
  reason = (f"At n = {deepest}: {detail}. Leaky ReLU's derivative is exactly 1 for x > 0, as "
            f"ReLU's; it only opens a path of slope α through the negative pre-activations, "
            f"which adds of order α² per layer to the mean-square gain, not α to every "
            f"path's factor. The growth that is measured is consistent with (1+α²)^n "
            f"({gains} at n = {deepest} for the α above), the extra mean-square gain per "
            f"layer, forwards and backwards, of a Leaky ReLU net at an init scaled for ReLU.")
  setup = (f"Fresh nets with n hidden layers of width {st.width} (n = {st.depths[0]}…"
           f"{st.depths[-1]}), {st.init} init, a linear output, ½·MSE on one standard-normal "
           f"batch of {st.batch}; per seed the ReLU net and each Leaky ReLU net share weights "
           f"and data; {st.n_seeds} seeds, float32. Measured: ‖∂L/∂W₁‖ with Leaky ReLU divided "
           f"by the same with ReLU (first layer: the shallowest), median and interquartile "
           f"range over seeds, next to the claimed (1+α)^n.")
  return Section(
      key="leaky", title="Leaky ReLU and the gradient of shallow layers", claims=("S0.8",),
      claim=("Replacing every ReLU by Leaky ReLU in a deep model multiplies the gradients of "
             "the shallow layers by about (1+α)^n, n the depth."),
      setup=setup, table=table, verdict=verdict, reason=reason, figure=figure,
      command=COMMAND)


def plot(result: Result, path: str) -> None:
  """Measured Leaky/ReLU ratio (median, IQR band) and the claimed ``(1+α)^n``
  against depth, log scale; saved as a PNG at ``path``."""
  from jaxreg.experiments._plot import COLOURS, pyplot
  plt = pyplot()
  st = result.settings
  depths = np.asarray(st.depths)
  fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
  for i, a in enumerate(st.alphas):
    c = COLOURS[i % len(COLOURS)]
    rows = [result.row(a, int(d)) for d in depths]
    ax.plot(depths, [r.median for r in rows], "-", color=c, lw=2,
            label=f"measured, α = {a:g} (median, IQR band)")
    ax.fill_between(depths, [r.q25 for r in rows], [r.q75 for r in rows], color=c, alpha=0.18,
                    lw=0)
    ax.plot(depths, (1 + a) ** depths, "--", color=c, lw=1.5, label=f"claimed (1 + {a:g})^n")
    ax.plot(depths, (1 + a * a) ** depths, ":", color=c, lw=1.5, label=f"(1 + {a:g}²)^n")
  ax.axhline(1.0, color="grey", lw=0.8)
  ax.set_yscale("log")
  ax.set_xlabel("depth n (number of hidden layers)")
  ax.set_ylabel("‖∂L/∂W₁‖ with Leaky ReLU ÷ with ReLU  (same weights, same data)")
  ax.set_title(f"Shallow-layer gradient, Leaky ReLU vs ReLU: {st.n_seeds} seeds, "
               f"width {st.width}, {st.init}")
  ax.grid(True, which="both", alpha=0.25)
  ax.legend(fontsize=8, loc="upper left")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
