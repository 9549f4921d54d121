"""Activation plots (S1.5): each activation and its derivative on [−5, 5].

The curves are the library's closed-form ``fn`` and ``grad``
(:mod:`jaxreg.activations`), compared with ``jax.grad`` of ``fn`` at every
grid point away from a kink, with each derivative's maximum located (S1.1:
sigmoid's is 0.25 at 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _activations
from jaxreg.experiments._report import FAILS, HOLDS, Section, fmt, markdown_table

def default_activations() -> tuple:
  """S1's four activations, Leaky ReLU with S1.4's slope 0.01 and derivative 0.01 at 0.

  A function, not a constant: building (and so verifying) an activation runs JAX,
  which must not happen at import (``jax.distributed.initialize`` must come first).
  """
  return (_activations.sigmoid, _activations.tanh, _activations.relu,
          _activations.leaky_relu(0.01).with_kink_value(0.01))


#: Largest |closed form − jax.grad| accepted away from kinks, in float64.
TOLERANCE = 1e-12


class Curve(NamedTuple):
  """One activation on the grid.

  Attributes:
    name: the activation's repr.
    f: ``fn(x)``.
    df: the closed-form derivative ``grad(x)``.
    autodiff_error: ``max |grad(x) − jax.grad(fn)(x)|`` over grid points that
      are not kinks.
    df_max: the largest derivative value on the grid.
    df_argmax: the first grid point where it is reached.
  """

  name: str
  f: np.ndarray
  df: np.ndarray
  autodiff_error: float
  df_max: float
  df_argmax: float


class Result(NamedTuple):
  """The grid ``x`` and one :class:`Curve` per activation."""

  x: np.ndarray
  curves: tuple[Curve, ...]

  def curve(self, name: str) -> Curve:
    """The :class:`Curve` called ``name``."""
    for c in self.curves:
      if c.name == name:
        return c
    raise KeyError(f"no curve {name!r}; curves {[c.name for c in self.curves]}.")


def activation_curves(activations: Sequence | None = None, *, x_min: float = -5.0,
                      x_max: float = 5.0, n_points: int = 1001) -> Result:
  """Each activation and its closed-form derivative on an even grid, float64.

  Args:
    activations: activations or names; ``None``: :func:`default_activations`.
    x_min: left end of the grid.
    x_max: right end, ``> x_min``.
    n_points: grid points, ``>= 2`` (the default grid contains 0).

  Returns:
    A :class:`Result`.

  Examples:
    >>> from jaxreg.experiments import activation_curves
    >>> c = activation_curves(["sigmoid"], n_points=11).curve("sigmoid")
    >>> c.df_max, c.df_argmax
    (0.25, 0.0)
  """
  if not x_min < x_max:
    raise ValueError(f"activation_curves: need `x_min` < `x_max`, got {x_min} and {x_max}.")
  if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 2:
    raise ValueError(f"activation_curves: `n_points` must be an int >= 2, got {n_points!r}.")
  if activations is None:
    activations = default_activations()
  acts = [_activations.get(a, argname="activation_curves: activations[i]") for a in activations]
  x = np.linspace(x_min, x_max, n_points)
  curves = []
  with jax.enable_x64(True):
    xj = jnp.asarray(x, jnp.float64)
    for a in acts:
      f = np.asarray(a.fn(xj))
      df = np.asarray(a.grad(xj))
      auto = np.asarray(jax.vmap(jax.grad(a.fn))(xj))
      smooth = ~np.isin(x, a.kinks)
      err = float(np.max(np.abs(df - auto)[smooth])) if smooth.any() else 0.0
      i = int(np.argmax(df))
      curves.append(Curve(repr(a), f, df, err, float(df[i]), float(x[i])))
  return Result(x, tuple(curves))


COMMAND = "python scripts/experiments.py activations"


def section(result: Result, *, figure: str = "") -> Section:
  """The README section for S1.5 (and S1.1–S1.4's derivative facts, read off the grid)."""
  x = result.x
  rows = [[c.name, fmt(float(c.f.min())), fmt(float(c.f.max())), fmt(c.df_max),
           fmt(c.df_argmax), f"{c.autodiff_error:.1e}"] for c in result.curves]
  table = markdown_table(
      ["activation", "min f", "max f", "max f'", "at x", "max |f' − jax.grad f|"], rows)
  agree = all(c.autodiff_error <= TOLERANCE for c in result.curves)
  verdict = HOLDS if agree else FAILS
  facts = []
  for c in result.curves:
    if c.name == "sigmoid":
      facts.append(f"sigmoid's derivative peaks at {fmt(c.df_max)} at x = {fmt(c.df_argmax)} "
                   f"(S1.1)")
    if c.name == "tanh":
      facts.append(f"tanh's at {fmt(c.df_max)} at x = {fmt(c.df_argmax)}")
  reason = (f"Every closed-form derivative matches `jax.grad` of its function to "
            f"{max(c.autodiff_error for c in result.curves):.1e} at the {len(x)} grid points "
            f"away from kinks; " + "; ".join(facts) + ". With α = 0.01, Leaky ReLU is "
            "indistinguishable from ReLU at this scale: its left branch reaches only −0.05 at "
            "x = −5, and its derivative there is 0.01 against ReLU's 0.")
  if not agree:
    reason = "A closed-form derivative disagrees with jax.grad: " + reason
  return Section(
      key="activations", title="Activation functions and their derivatives",
      claims=("S1.5",),
      claim=("Plots of sigmoid, tanh, ReLU and Leaky ReLU (α = 0.01) and of their derivatives "
             "on [−5, 5] (the formulas are S1.1–S1.4)."),
      setup=(f"Each function and its hand-written derivative from `jaxreg.activations` on "
             f"{len(x)} evenly spaced points of [{fmt(float(x[0]))}, {fmt(float(x[-1]))}], "
             f"float64; derivatives at the kink x = 0 follow S1's conventions (ReLU 0, "
             f"Leaky ReLU α)."),
      table=table, verdict=verdict, reason=reason, figure=figure, command=COMMAND)


def plot(result: Result, path: str) -> None:
  """One panel per activation with ``f`` and ``f'``; saved as a PNG at ``path``."""
  from jaxreg.experiments._plot import COLOURS, pyplot
  plt = pyplot()
  n = len(result.curves)
  cols = 2 if n > 1 else 1
  rows = (n + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), dpi=110, squeeze=False)
  for ax, c in zip(axes.flat, result.curves):
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(0, color="grey", lw=0.6)
    ax.plot(result.x, c.f, "-", color=COLOURS[0], lw=2, label="f(x)")
    ax.plot(result.x, c.df, "--", color=COLOURS[1], lw=2, label="f′(x)")
    ax.set_title(c.name)
    ax.set_xlabel("x")
    ax.set_ylabel("value")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
  for ax in list(axes.flat)[n:]:
    ax.set_visible(False)
  fig.suptitle("Activations and their derivatives on [−5, 5] (closed forms from jaxreg)")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
