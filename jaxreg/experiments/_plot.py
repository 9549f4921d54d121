"""Matplotlib, imported only when a figure is drawn (the ``plot`` extra)."""

from __future__ import annotations

from jaxreg._data.extras import require


def pyplot():
  """``matplotlib.pyplot`` with the non-interactive Agg backend.

  Raises:
    MissingExtraError: matplotlib is not installed (``pip install 'jaxreg[plot]'``).
  """
  mpl = require("matplotlib", package="matplotlib", extra="plot", purpose="Drawing a figure")
  mpl.use("Agg")
  return require("matplotlib.pyplot", package="matplotlib", extra="plot",
                 purpose="Drawing a figure")


#: One colour per curve, colour-blind safe (Okabe–Ito).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
