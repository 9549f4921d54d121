"""The experiments ``scripts/experiments.py`` runs, in the README's order.

An :class:`Experiment` is a record of pure functions: ``run(**kwargs)``
returns a result (data), ``section(result, figure=...)`` the README
:class:`~jaxreg.experiments._report.Section`, ``plot(result, path)`` writes the
PNG. ``full`` holds the keyword arguments of the documented run (the script's
default), ``quick`` those of a smoke run (``--quick``). Experiments that need
the trainer are listed in :data:`PLANNED` until they are registered here.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from jaxreg.experiments import activation_plots, leaky, race, regularizers, sparsity, vanishing
from jaxreg.experiments._report import Pending


class Experiment(NamedTuple):
  """One reproducible experiment.

  Attributes:
    key: short name; the file stem of its JSON section and PNG.
    title: the README heading.
    claims: the S-numbers it tests.
    run: ``run(**kwargs) -> result``.
    section: ``section(result, *, figure) -> Section``.
    plot: ``plot(result, path) -> None`` (needs the ``plot`` extra).
    full: keyword arguments of the documented run.
    quick: keyword arguments of a fast smoke run.
  """

  key: str
  title: str
  claims: tuple[str, ...]
  run: Callable[..., Any]
  section: Callable[..., Any]
  plot: Callable[[Any, str], None]
  full: dict
  quick: dict


#: The README's order: the issue's numbering of the experiments.
ORDER = ("race", "vanishing", "leaky", "sparsity", "regularizers", "activations")

EXPERIMENTS: dict[str, Experiment] = {
    "race": Experiment(
        "race", "Activation race on the Playground's circle", ("S1.6",),
        race.activation_race, race.section, race.plot,
        full={}, quick=dict(n_seeds=8, max_epochs=60, n_boot=200)),
    "vanishing": Experiment(
        "vanishing", "Vanishing gradients against depth", ("S3.5",),
        vanishing.vanishing_gradients, vanishing.section, vanishing.plot,
        full={}, quick=dict(depths=(2, 4, 6, 8, 10), n_seeds=16, width=8, batch=8)),
    "leaky": Experiment(
        "leaky", "Leaky ReLU and the gradient of shallow layers", ("S0.8",),
        leaky.leaky_amplification, leaky.section, leaky.plot,
        full={}, quick=dict(depths=(2, 4, 6, 8, 10), n_seeds=16, width=8, batch=8)),
    "sparsity": Experiment(
        "sparsity", "L1 against L2: sparsity on digits", ("S2.4", "S4.3"),
        sparsity.l1_vs_l2, sparsity.section, sparsity.plot,
        full={}, quick=dict(strengths=(0.0, 1e-2), n_seeds=2, epochs=5, hidden=8)),
    "regularizers": Experiment(
        "regularizers", "Regularizers on real data (digits)",
        ("S2.5", "S4.4", "S4.5", "S4.6", "S4.7"),
        regularizers.compare_regularizers, regularizers.section, regularizers.plot,
        full={}, quick=dict(n_seeds=2, epochs=5, hidden=16)),
    "activations": Experiment(
        "activations", "Activation functions and their derivatives", ("S1.5",),
        activation_plots.activation_curves, activation_plots.section, activation_plots.plot,
        full={}, quick=dict(n_points=201)),
}

#: Experiments that need the trainer; listed in the README as not run yet.
PLANNED: dict[str, Pending] = {}


def ordered_keys() -> tuple[str, ...]:
  """Every registered or planned key, in :data:`ORDER` (unknown keys last, sorted)."""
  known = set(EXPERIMENTS) | set(PLANNED)
  return tuple(k for k in ORDER if k in known) + tuple(sorted(known - set(ORDER)))
