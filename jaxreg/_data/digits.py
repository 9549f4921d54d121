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


#: The four one-pixel shifts ``(down, right)``: up, down, left, right.
ONE_PIXEL_SHIFTS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def shift_images(x: np.ndarray, down: int, right: int, *, side: int = 8) -> np.ndarray:
  """Translates flattened ``side × side`` images, filling the uncovered border with 0.

  Args:
    x: shape ``(n, side·side)``, rows are images in row-major order.
    down: pixels to move down (negative: up).
    right: pixels to move right (negative: left).
    side: image height and width.

  Returns:
    An array shaped like ``x``.

  Examples:
    >>> import numpy as np
    >>> img = np.arange(1.0, 5.0)[None, :]          # [[1, 2], [3, 4]]
    >>> shift_images(img, 0, 1, side=2).tolist()
    [[0.0, 1.0, 0.0, 3.0]]
  """
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[1] != side * side:
    raise ValueError(f"shift_images: `x` must have shape (n, {side * side}) for {side}×{side} "
                     f"images, got {x.shape}.")
  if abs(down) >= side or abs(right) >= side:
    raise ValueError(f"shift_images: shifts must be smaller than the image side {side}, "
                     f"got down={down}, right={right}.")
  img = x.reshape(-1, side, side)
  out = np.zeros_like(img)
  rows_src = slice(max(-down, 0), side - max(down, 0))
  rows_dst = slice(max(down, 0), side - max(-down, 0))
  cols_src = slice(max(-right, 0), side - max(right, 0))
  cols_dst = slice(max(right, 0), side - max(-right, 0))
  out[:, rows_dst, cols_dst] = img[:, rows_src, cols_src]
  return out.reshape(x.shape)


def augment_shifts(data: Dataset, shifts=ONE_PIXEL_SHIFTS, *, side: int = 8) -> Dataset:
  """``data`` followed by one translated copy per shift (S4.6's augmentation).

  Args:
    data: images as rows of ``x`` (``side × side``, row-major).
    shifts: ``(down, right)`` pairs; default the four one-pixel shifts.
    side: image height and width.

  Returns:
    A :class:`Dataset` with ``(1 + len(shifts))·n`` samples: the originals
    first, then each shifted copy with the same targets and labels.
  """
  if not isinstance(data, Dataset):
    raise TypeError(f"augment_shifts: `data` must be a jaxreg.datasets.Dataset, "
                    f"got {type(data).__name__}.")
  xs = [data.x] + [shift_images(data.x, d, r, side=side) for d, r in shifts]
  k = len(xs)
  return Dataset(np.concatenate(xs), np.concatenate([data.t] * k),
                 np.concatenate([data.label] * k))
