"""Experiments that reproduce the sources' claims, as pure functions returning data.

``jaxreg.experiments``: each experiment module has a function that runs it
and returns a named record of its measurements (``vanishing_gradients``,
``leaky_amplification``, ``activation_curves``), ``section(result)`` (its part
of the README, as data) and ``plot(result, path)`` (needs the ``plot`` extra;
matplotlib is imported only then). :data:`EXPERIMENTS` registers them for
``scripts/experiments.py``, which writes ``docs/experiments/``.
"""

from jaxreg.experiments._probe import Probe as Probe
from jaxreg.experiments._report import FAILS as FAILS
from jaxreg.experiments._report import HOLDS as HOLDS
from jaxreg.experiments._report import PARTLY as PARTLY
from jaxreg.experiments._report import Pending as Pending
from jaxreg.experiments._report import Section as Section
from jaxreg.experiments.activation_plots import activation_curves as activation_curves
from jaxreg.experiments.leaky import leaky_amplification as leaky_amplification
from jaxreg.experiments.race import activation_race as activation_race
from jaxreg.experiments.registry import EXPERIMENTS as EXPERIMENTS
from jaxreg.experiments.registry import PLANNED as PLANNED
from jaxreg.experiments.registry import Experiment as Experiment
from jaxreg.experiments.regularizers import compare_regularizers as compare_regularizers
from jaxreg.experiments.sparsity import l1_vs_l2 as l1_vs_l2
from jaxreg.experiments.vanishing import vanishing_gradients as vanishing_gradients

__all__ = ["EXPERIMENTS", "FAILS", "HOLDS", "PARTLY", "PLANNED", "Experiment", "Pending",
           "Probe", "Section", "activation_curves", "activation_race", "compare_regularizers",
           "l1_vs_l2", "leaky_amplification", "vanishing_gradients"]
