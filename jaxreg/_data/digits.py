"""scikit-learn's bundled 8×8 handwritten digits (1,797 images), behind the ``digits`` extra."""

from __future__ import annotations

import numpy as np

from jaxreg._data.dataset import Dataset
from jaxreg._data.extras import require

#: Number of images in the set.
N_DIGITS = 1797
#: Pixel intensities in the raw set are integers ``0…16``.
MAX_INTENSITY = 16.0


def digits() -> Dataset:
  """The 1,797 8×8 digit images bundled with scikit-learn (no download).

  Needs scikit-learn: ``pip install 'jaxreg[digits]'``.

  Returns:
    A :class:`Dataset`: ``x`` of shape ``(1797, 64)``, pixel rows flattened
    and scaled from ``0…16`` to ``[0, 1]``; ``t`` one-hot, shape
    ``(1797, 10)``; ``label`` the digit ``0…9``. In scikit-learn's order;
    shuffle with :func:`split`.

  Raises:
    MissingExtraError: scikit-learn is not installed.
  """
  sk = require("sklearn.datasets", package="scikit-learn", extra="digits",
               purpose="jaxreg.datasets.digits()")
  bunch = sk.load_digits()
  x = np.asarray(bunch.data, dtype=np.float64) / MAX_INTENSITY
  label = np.asarray(bunch.target, dtype=np.int64)
  t = np.eye(10, dtype=np.float64)[label]
  return Dataset(x, t, label)
