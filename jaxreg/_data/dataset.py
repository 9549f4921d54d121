"""The records every data set is returned in, and the pure splitting/scaling functions.

A :class:`Dataset` holds host (NumPy) arrays: inputs ``x`` with samples as
rows, training targets ``t`` with samples as rows, and the integer class
``label`` of each sample. Splits are named records, never positional tuples.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
  """Samples as rows.

  Attributes:
    x: inputs, shape ``(n, d)``, float64.
    t: training targets, shape ``(n, k)``, float64 (``±1`` in a ``(n, 1)``
      column for the Playground sets; one-hot rows for digits).
    label: the class of each sample, shape ``(n,)``, int64 (``+1``/``−1`` for
      the Playground sets; ``0…9`` for digits).
  """

  x: np.ndarray
  t: np.ndarray
  label: np.ndarray

  @property
  def n(self) -> int:
    """The number of samples."""
    return int(self.x.shape[0])

  def take(self, index) -> "Dataset":
    """The samples at ``index`` (an int array or a slice), in that order."""
    return Dataset(self.x[index], self.t[index], self.label[index])


class TrainTest(NamedTuple):
  """A train/test split (the Playground's)."""

  train: Dataset
  test: Dataset


class TrainValTest(NamedTuple):
  """A train/validation/test split."""

  train: Dataset
  val: Dataset
  test: Dataset


class Moments(NamedTuple):
  """Per-feature mean and scale for :func:`standardize`.

  Attributes:
    mean: shape ``(d,)``.
    scale: shape ``(d,)``; the standard deviation, or 1 where it is 0 (a
      constant feature is centred, not divided by 0).
  """

  mean: np.ndarray
  scale: np.ndarray


def check_dataset(data, fname: str, argname: str = "data") -> Dataset:
  """Raises a clear error unless ``data`` is a :class:`Dataset` with matching row counts."""
  if not isinstance(data, Dataset):
    raise TypeError(f"{fname}: `{argname}` must be a jaxreg.datasets.Dataset, "
                    f"got {type(data).__name__}.")
  n = data.x.shape[0]
  if data.t.shape[0] != n or data.label.shape[0] != n:
    raise ValueError(f"{fname}: `{argname}` fields must have the same number of rows, got "
                     f"x {data.x.shape}, t {data.t.shape}, label {data.label.shape}.")
  return data


def split_count(n: int, fraction: float) -> int:
  """``floor(n · fraction)``, robust to the binary rounding of ``fraction``.

  ``0.29 · 100`` is ``28.999…`` in floating point; the Playground computes
  ``floor(n · percent / 100)`` with an integer percent and gets 29.
  """
  return math.floor(round(n * fraction, 9))


def _check_fraction(fname: str, argname: str, value, *, low_open: bool) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise TypeError(f"{fname}: `{argname}` must be a number, got {type(value).__name__} {value!r}.")
  value = float(value)
  ok = (0.0 < value < 1.0) if low_open else (0.0 <= value < 1.0)
  if not ok:
    want = "in (0, 1)" if low_open else "in [0, 1)"
    raise ValueError(f"{fname}: `{argname}` must be {want}, got {value}.")
  return value


def _rng(fname: str, seed) -> np.random.Generator:
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise TypeError(f"{fname}: `seed` must be a non-negative int, got {type(seed).__name__} {seed!r}.")
  if seed < 0:
    raise ValueError(f"{fname}: `seed` must be a non-negative int, got {seed}.")
  return np.random.default_rng(int(seed))


def shuffle_split(data: Dataset, train_fraction: float, *, seed: int = 0) -> TrainTest:
  """Shuffles ``data`` and cuts it into train and test, as the Playground does.

  The first ``floor(n · train_fraction)`` samples of a uniformly random
  permutation are the training set, the rest the test set.

  Args:
    data: the samples.
    train_fraction: in ``(0, 1)``; the Playground's "ratio of training to
      test data" slider divided by 100 (its default 50 % is 0.5).
    seed: seeds a ``numpy.random.Generator``; the same seed gives the same split.

  Returns:
    A :class:`TrainTest`.
  """
  data = check_dataset(data, "shuffle_split")
  train_fraction = _check_fraction("shuffle_split", "train_fraction", train_fraction, low_open=True)
  perm = _rng("shuffle_split", seed).permutation(data.n)
  cut = split_count(data.n, train_fraction)
  return TrainTest(data.take(perm[:cut]), data.take(perm[cut:]))


def split(data: Dataset, *, val: float = 0.2, test: float = 0.2, seed: int = 0) -> TrainValTest:
  """Shuffles ``data`` and cuts it into train, validation and test sets.

  Sizes: ``n_val = floor(n · val)``, ``n_test = floor(n · test)``, the rest
  is the training set. Pure: the permutation comes from ``seed`` alone.

  Args:
    data: the samples.
    val: fraction for the validation set, in ``[0, 1)`` (0 gives an empty one).
    test: fraction for the test set, in ``[0, 1)``.
    seed: seeds a ``numpy.random.Generator``.

  Returns:
    A :class:`TrainValTest`.

  Examples:
    >>> import numpy as np
    >>> from jaxreg.datasets import Dataset, split
    >>> d = Dataset(np.zeros((10, 2)), np.zeros((10, 1)), np.zeros(10, int))
    >>> [part.n for part in split(d, val=0.2, test=0.3)]
    [5, 2, 3]
  """
  data = check_dataset(data, "split")
  val = _check_fraction("split", "val", val, low_open=False)
  test = _check_fraction("split", "test", test, low_open=False)
  n = data.n
  n_val, n_test = split_count(n, val), split_count(n, test)
  if n_val + n_test >= n:
    raise ValueError(f"split: `val` + `test` must leave at least one training sample; with "
                     f"{n} samples, val={val} and test={test} leave {n - n_val - n_test}.")
  perm = _rng("split", seed).permutation(n)
  n_train = n - n_val - n_test
  return TrainValTest(data.take(perm[:n_train]),
                      data.take(perm[n_train:n_train + n_val]),
                      data.take(perm[n_train + n_val:]))


def moments(x: np.ndarray) -> Moments:
  """Per-feature mean and standard deviation of ``x`` (rows are samples).

  Fit them on the training set only, then apply the same :class:`Moments` to
  every split with :func:`standardize`.
  """
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f"moments: `x` must have shape (n, d) with n >= 1, got {x.shape}.")
  scale = x.std(axis=0)
  return Moments(x.mean(axis=0), np.where(scale > 0, scale, 1.0))


def standardize(x: np.ndarray, stats: Moments) -> np.ndarray:
  """``(x − mean) / scale`` per feature.

  Examples:
    >>> import numpy as np
    >>> from jaxreg.datasets import moments, standardize
    >>> x = np.array([[1.0, 5.0], [3.0, 5.0]])
    >>> standardize(x, moments(x)).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
  """
  if not isinstance(stats, Moments):
    raise TypeError(f"standardize: `stats` must be a Moments (from moments(x)), "
                    f"got {type(stats).__name__}.")
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2 or x.shape[1] != stats.mean.shape[0]:
    raise ValueError(f"standardize: `x` must have shape (n, {stats.mean.shape[0]}), got {x.shape}.")
  return (x - stats.mean) / stats.scale


def standardize_splits(parts):
  """Standardises every part of a split with the training part's :func:`moments`.

  Args:
    parts: a :class:`TrainTest` or :class:`TrainValTest`.

  Returns:
    The same kind of record, with each ``x`` standardised.
  """
  if not isinstance(parts, (TrainTest, TrainValTest)):
    raise TypeError(f"standardize_splits: `parts` must be a TrainTest or TrainValTest, "
                    f"got {type(parts).__name__}.")
  stats = moments(parts.train.x)
  return type(parts)(*(d._replace(x=standardize(d.x, stats)) for d in parts))
