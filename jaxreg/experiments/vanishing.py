"""Vanishing gradients (S3.5): first-layer gradient norm against depth.

S3.5 says sigmoid contributes a factor of at most 0.25 per layer to the
backpropagated gradient (``max σ' = 0.25``), ReLU a factor 0 or 1, and that
very deep nets can still vanish or explode *through the weights* whatever
the activation. Here each activation is measured at its standard
initialisation (Glorot for sigmoid and tanh, He for the ReLUs), plus ReLU at
two initialisations whose weights are too small and too large for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jaxreg import _activations
from jaxreg.experiments import _probe
from jaxreg.experiments._probe import Probe
from jaxreg.experiments._report import FAILS, HOLDS, PARTLY, Section, fmt, markdown_table

#: The activations at their standard initialisations, then ReLU with badly scaled weights.
PROBES = (
    Probe("sigmoid, Glorot", "sigmoid", "glorot_uniform"),
    Probe("tanh, Glorot", "tanh", "glorot_uniform"),
    Probe("relu, He", "relu", "he_normal"),
    Probe("leaky relu (α = 0.01), He", "leaky_relu", "he_normal"),
    Probe("relu, Glorot (weights too small for relu)", "relu", "glorot_uniform"),
    Probe("relu, He × 1.5 (weights too large)", "relu", "he_normal", 1.5),
)
#: Sigmoid's per-layer bound: ``max σ'(z) = σ'(0) = 0.25``.
SIGMOID_BOUND = 0.25


class Settings(NamedTuple):
  """What was run."""

  depths: tuple[int, ...]
  n_seeds: int
  width: int
  batch: int
  seed: int


class DepthRow(NamedTuple):
  """Median, quartiles and root mean square over seeds of ``‖∂L/∂W_1‖_F`` for one
  probe at one depth."""

  probe: str
  depth: int
  median: float
  q25: float
  q75: float
  rms: float


class FactorRow(NamedTuple):
  """Per-layer factor (``exp`` of the slope of ``log ‖∂L/∂W_1‖`` over depth), over seeds."""

  probe: str
  median: float
  q25: float
  q75: float


class Result(NamedTuple):
  """The measurement.

  Attributes:
    settings: what was run.
    probes: the probes' labels, in order.
    norms: ``‖∂L/∂W_1‖_F``, shape ``(len(probes), len(depths), n_seeds)``.
    by_depth: one :class:`DepthRow` per probe and depth.
    factors: one :class:`FactorRow` per probe.
  """

  settings: Settings
  probes: tuple[str, ...]
  norms: np.ndarray
  by_depth: tuple[DepthRow, ...]
  factors: tuple[FactorRow, ...]

  def row(self, probe: str, depth: int) -> DepthRow:
    """The :class:`DepthRow` of ``probe`` at ``depth``."""
    for r in self.by_depth:
      if r.probe == probe and r.depth == depth:
        return r
    raise KeyError(f"no row for probe {probe!r} at depth {depth}; probes {self.probes}, "
                   f"depths {self.settings.depths}.")

  def factor(self, probe: str) -> FactorRow:
    """The :class:`FactorRow` of ``probe``."""
    for r in self.factors:
      if r.probe == probe:
        return r
    raise KeyError(f"no probe {probe!r}; probes {self.probes}.")


def vanishing_gradients(depths: Sequence[int] = tuple(range(2, 31)), *,
                        probes: Sequence[Probe] = PROBES, n_seeds: int = 200, width: int = 16,
                        batch: int = 32, seed: int = 0) -> Result:
  """First-layer gradient norm of fresh nets against depth, over many seeds.

  Each net has ``depth`` hidden layers of ``width`` units and a linear output,
  under the mean squared error on a standard-normal batch with
  standard-normal targets (see :mod:`jaxreg.experiments._probe`). Float32.

  Args:
    depths: numbers of hidden layers, at least two distinct values.
    probes: the activations and initialisations.
    n_seeds: independent nets per probe and depth (vectorised).
    width: input and hidden width.
    batch: samples in the batch.
    seed: base seed.

  Returns:
    A :class:`Result`.

  Examples:
    >>> from jaxreg.experiments import vanishing_gradients
    >>> r = vanishing_gradients((2, 10), n_seeds=8, width=8, batch=8, probes=PROBES[:3])
    >>> r.row("sigmoid, Glorot", 10).median < r.row("tanh, Glorot", 10).median
    True
  """
  fname = "vanishing_gradients"
  depths = _probe.check_depths(depths, fname)
  if len(depths) < 2:
    raise ValueError(f"{fname}: `depths` needs at least two distinct depths to fit a per-layer "
                     f"factor, got {depths}.")
  probes = tuple(_probe.check_probe(p, fname) for p in probes)
  settings = Settings(depths, _probe.check_count(n_seeds, fname, "n_seeds"),
                      _probe.check_count(width, fname, "width"),
                      _probe.check_count(batch, fname, "batch"), int(seed))
  norms = np.stack([
      _probe.first_layer_grad_norms(p, depths, n_seeds=n_seeds, width=width, batch=batch,
                                    seed=seed) for p in probes])
  by_depth = tuple(DepthRow(p.label, d, *_probe.spread(norms[i, j]),
                            float(np.sqrt(np.mean(np.square(norms[i, j])))))
                   for i, p in enumerate(probes) for j, d in enumerate(depths))
  factors = tuple(FactorRow(p.label, *_probe.spread(_probe.per_layer_factor(depths, norms[i])))
                  for i, p in enumerate(probes))
  return Result(settings, tuple(p.label for p in probes), norms, by_depth, factors)


COMMAND = "python scripts/experiments.py vanishing"


def section(result: Result, *, figure: str = "") -> Section:
  """The README section: claim, setup, numbers and verdict for S3.5."""
  st = result.settings
  show = [d for d in (2, 5, 10, 20, 30) if d in st.depths] or list(st.depths)
  rows = [[p] + [f"{fmt(result.row(p, d).median)}" for d in show]
          + [f"{fmt(result.factor(p).median)} [{fmt(result.factor(p).q25)}, "
             f"{fmt(result.factor(p).q75)}]"] for p in result.probes]
  table = markdown_table(["probe"] + [f"depth {d}" for d in show]
                         + ["per-layer factor, median [IQR]"], rows)
  sig = result.factor(PROBES[0].label) if PROBES[0].label in result.probes else None
  small = result.factor(PROBES[4].label) if PROBES[4].label in result.probes else None
  large = result.factor(PROBES[5].label) if PROBES[5].label in result.probes else None
  parts, ok = [], []
  if sig is not None:
    within = sig.q75 <= SIGMOID_BOUND
    ok.append(within)
    parts.append(
        f"sigmoid's gradient shrinks by a median factor {fmt(sig.median)} per layer "
        f"(IQR {fmt(sig.q25)}–{fmt(sig.q75)}), {'within' if within else 'not within'} the "
        f"0.25 bound (Glorot weights have a gain of about 1 per square layer, so the bound "
        f"on σ' is the bound on the whole factor)")
  relu = result.factor(PROBES[2].label) if PROBES[2].label in result.probes else None
  if relu is not None:
    d0, d1 = st.depths[0], st.depths[-1]
    r0, r1 = result.row(PROBES[2].label, d0), result.row(PROBES[2].label, d1)
    parts.append(
        f"ReLU at He init (derivative 0 or 1) loses only a factor {fmt(relu.median)} per "
        f"layer in the median, and its root mean square over seeds does not vanish "
        f"({fmt(r0.rms)} at d = {d0}, {fmt(r1.rms)} at d = {d1}): He scaling keeps the mean "
        f"square, while the spread over seeds grows with depth and pulls the median down")
  if small is not None and large is not None:
    through_weights = small.q75 < 1 < large.q25
    ok.append(through_weights)
    parts.append(
        f"with the same ReLU, weights too small (Glorot) give {fmt(small.median)} per layer "
        f"and weights 1.5× He give {fmt(large.median)}: vanishing and exploding come from "
        f"the weights too" + ("" if through_weights else " (not clearly, here)"))
  verdict = HOLDS if ok and all(ok) else (PARTLY if any(ok) else FAILS)
  reason = "; ".join(parts) + "." if parts else "No probe of the claim was run."
  setup = (f"Fresh nets with d hidden layers of width {st.width} (d = {st.depths[0]}…"
           f"{st.depths[-1]}) and a linear output; ½·MSE on one standard-normal batch of "
           f"{st.batch} with standard-normal targets; {st.n_seeds} seeds per point, vectorised "
           f"with `jax.vmap`; float32. Measured: the Frobenius norm of the gradient of the "
           f"first layer's weights, ‖∂L/∂W₁‖, median over seeds. The per-layer factor is "
           f"exp of the least-squares slope of log ‖∂L/∂W₁‖ against d, fitted per seed.")
  return Section(
      key="vanishing", title="Vanishing gradients against depth", claims=("S3.5",),
      claim=("Sigmoid multiplies the backpropagated gradient by at most 0.25 per layer "
             "(max σ' = 0.25), so gradients vanish in deep sigmoid nets; ReLU's factor is 0 "
             "or 1; very deep nets can still vanish or explode through the weights, whatever "
             "the activation."),
      setup=setup, table=table, verdict=verdict, reason=reason, figure=figure,
      command=COMMAND)


def plot(result: Result, path: str) -> None:
  """Median ``‖∂L/∂W_1‖`` against depth (log scale) with quartile bands, and
  sigmoid's 0.25-per-layer line; saved as a PNG at ``path``."""
  from jaxreg.experiments._plot import COLOURS, pyplot
  plt = pyplot()
  depths = np.asarray(result.settings.depths)
  fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
  for i, label in enumerate(result.probes):
    rows = [result.row(label, d) for d in depths]
    c = COLOURS[i % len(COLOURS)]
    style = "-" if i < 4 else ":"
    ax.plot(depths, [r.median for r in rows], style, color=c, lw=2, label=label)
    ax.fill_between(depths, [r.q25 for r in rows], [r.q75 for r in rows], color=c, alpha=0.15,
                    lw=0)
  if PROBES[0].label in result.probes:
    start = result.row(PROBES[0].label, int(depths[0])).median
    ax.plot(depths, start * SIGMOID_BOUND ** (depths - depths[0]), "--", color="grey", lw=1.2,
            label="×0.25 per layer from sigmoid's first point")
  ax.set_yscale("log")
  ax.set_xlabel("depth d (number of hidden layers)")
  ax.set_ylabel("‖∂L/∂W₁‖  (first-layer gradient, Frobenius norm)")
  ax.set_title(f"First-layer gradient at initialisation: median and IQR over "
               f"{result.settings.n_seeds} seeds (width {result.settings.width})")
  ax.grid(True, which="major", alpha=0.3)
  ax.legend(fontsize=8, loc="lower left")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
