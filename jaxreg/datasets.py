"""Data sets: TensorFlow Playground's 2-D sets, scikit-learn's digits, splits and scaling.

``jaxreg.datasets``: every function returns host (NumPy) arrays in named
records (:class:`Dataset`, :class:`TrainTest`, :class:`TrainValTest`), and
is deterministic from its ``seed``.
"""

from jaxreg._data.dataset import Dataset as Dataset
from jaxreg._data.dataset import Moments as Moments
from jaxreg._data.dataset import TrainTest as TrainTest
from jaxreg._data.dataset import TrainValTest as TrainValTest
from jaxreg._data.dataset import moments as moments
from jaxreg._data.dataset import shuffle_split as shuffle_split
from jaxreg._data.dataset import split as split
from jaxreg._data.dataset import standardize as standardize
from jaxreg._data.dataset import standardize_splits as standardize_splits
from jaxreg._data.digits import digits as digits
from jaxreg._data.extras import MissingExtraError as MissingExtraError
from jaxreg._data.playground import PLAYGROUND as PLAYGROUND
from jaxreg._data.playground import circle as circle
from jaxreg._data.playground import gauss as gauss
from jaxreg._data.playground import gauss_variance as gauss_variance
from jaxreg._data.playground import playground as playground
from jaxreg._data.playground import spiral as spiral
from jaxreg._data.playground import xor as xor

__all__ = ["PLAYGROUND", "Dataset", "MissingExtraError", "Moments", "TrainTest", "TrainValTest",
           "circle", "digits", "gauss", "gauss_variance", "moments", "playground",
           "shuffle_split", "spiral", "split", "standardize", "standardize_splits", "xor"]
