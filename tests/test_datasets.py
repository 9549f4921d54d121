"""jaxreg.datasets: the Playground's generation rules, digits, splits and scaling."""

import sys

import numpy as np
import pytest

from jaxreg import datasets
from jaxreg._data import playground as pg


def _radius(d):
  return np.linalg.norm(d.x, axis=1)


@pytest.mark.parametrize("name", datasets.PLAYGROUND)
def test_shapes_labels_and_balance(name):
  d = getattr(datasets, name)(200, 0.0, seed=1)
  assert d.x.shape == (200, 2) and d.t.shape == (200, 1) and d.label.shape == (200,)
  assert d.x.dtype == np.float64 and d.label.dtype == np.int64
  assert set(np.unique(d.label)) == {-1, 1}
  np.testing.assert_array_equal(d.t[:, 0], d.label)
  if name != "xor":  # the Playground draws exactly half of each class
    assert (d.label == 1).sum() == 100


def test_circle_radii_and_label_rule():
  d = datasets.circle(400, 0.0, seed=3)
  r = _radius(d)
  pos, neg = d.label == 1, d.label == -1
  assert pos[:200].all() and neg[200:].all()   # positives first, noise 0 flips nothing
  assert r[pos].max() < 2.5 and r[neg].min() >= 3.5 and r[neg].max() <= 5.0
  assert r[pos].min() < 0.3 and r[neg].min() < 3.7   # the whole ranges are used


def test_circle_noise_flips_labels_near_the_boundary_only():
  d = datasets.circle(2000, 0.5, seed=0)
  r = _radius(d)
  flipped = (d.label == 1) != (r < 2.5)
  assert flipped.any()                                 # noise acts on labels
  assert _radius(d).max() <= 5.0                       # but not on the stored points


def test_xor_padding_and_label_rule():
  d = datasets.xor(1000, 0.0, seed=2)
  assert np.abs(d.x).min() >= 0.3 and np.abs(d.x).max() <= 5.3
  np.testing.assert_array_equal(d.label, np.where(d.x[:, 0] * d.x[:, 1] >= 0, 1, -1))
  assert 0.4 < (d.label == 1).mean() < 0.6


def test_gauss_centres_and_variance():
  d = datasets.gauss(4000, 0.5, seed=0)
  pos = d.x[d.label == 1]
  np.testing.assert_allclose(pos.mean(0), [2, 2], atol=0.15)
  np.testing.assert_allclose(pos.var(0), [4, 4], rtol=0.1)
  assert datasets.gauss_variance(0.0) == 0.5 and datasets.gauss_variance(0.5) == 4.0


def test_spiral_geometry():
  d = datasets.spiral(100, 0.0, seed=0)
  r = _radius(d)
  np.testing.assert_allclose(r[:50], 5 * np.arange(50) / 50, atol=1e-12)
  np.testing.assert_allclose(d.x[50:], -d.x[:50], atol=1e-12)   # the −1 arm is the +1 arm turned by π
  assert r.max() < 5.0


def test_determinism_and_seed_dependence():
  a = datasets.playground("spiral", noise=0.3, seed=7)
  b = datasets.playground("spiral", noise=0.3, seed=7)
  c = datasets.playground("spiral", noise=0.3, seed=8)
  np.testing.assert_array_equal(a.train.x, b.train.x)
  np.testing.assert_array_equal(a.test.label, b.test.label)
  assert not np.array_equal(a.train.x, c.train.x)


@pytest.mark.parametrize("fraction, n_train", [(0.5, 250), (0.1, 50), (0.29, 145), (0.9, 450)])
def test_playground_split_sizes(fraction, n_train):
  d = datasets.playground("circle", train_fraction=fraction, seed=0)
  assert (d.train.n, d.test.n) == (n_train, 500 - n_train)
  assert datasets.playground("xor", n_samples=100, train_fraction=0.29).train.n == 29
  both = np.concatenate([d.train.x, d.test.x])
  assert len(np.unique(both, axis=0)) == 500          # a partition: nothing lost, nothing repeated


def test_playground_bad_arguments():
  with pytest.raises(ValueError, match="`name` must be one of"):
    datasets.playground("moons")
  with pytest.raises(ValueError, match=r"`noise` must be a number in \[0, 0.5\]"):
    datasets.circle(100, 30)
  with pytest.raises(ValueError, match="`n_samples` must be even"):
    datasets.spiral(101)
  with pytest.raises(ValueError, match=r"`train_fraction` must be in \(0, 1\)"):
    datasets.playground("circle", train_fraction=50)
  with pytest.raises(ValueError, match="`seed` must be a non-negative int"):
    datasets.xor(10, seed=-1)


def test_split_sizes_and_partition():
  d = datasets.circle(100, seed=0)
  parts = datasets.split(d, val=0.15, test=0.25, seed=3)
  assert [p.n for p in parts] == [60, 15, 25]
  assert parts._fields == ("train", "val", "test")
  allx = np.concatenate([p.x for p in parts])
  np.testing.assert_array_equal(np.sort(allx, axis=0), np.sort(d.x, axis=0))
  again = datasets.split(d, val=0.15, test=0.25, seed=3)
  np.testing.assert_array_equal(parts.val.x, again.val.x)
  with pytest.raises(ValueError, match="leave at least one training sample"):
    datasets.split(d, val=0.5, test=0.5)


def test_standardize_uses_train_moments_and_keeps_constant_features():
  x = np.array([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]])
  stats = datasets.moments(x)
  z = datasets.standardize(x, stats)
  np.testing.assert_allclose(z.mean(0), 0, atol=1e-15)
  np.testing.assert_allclose(z[:, 0].std(), 1)
  np.testing.assert_array_equal(z[:, 1], 0)           # constant column: centred, not divided by 0
  parts = datasets.standardize_splits(datasets.playground("gauss", seed=1))
  np.testing.assert_allclose(parts.train.x.mean(0), 0, atol=1e-12)
  assert np.abs(parts.test.x.mean(0)).max() > 1e-6    # test set uses the train moments
  with pytest.raises(ValueError, match=r"`x` must have shape \(n, 2\)"):
    datasets.standardize(np.zeros((3, 3)), stats)


def test_digits():
  d = datasets.digits()
  assert d.x.shape == (1797, 64) and d.t.shape == (1797, 10)
  assert 0.0 == d.x.min() and d.x.max() == 1.0
  np.testing.assert_array_equal(d.t.argmax(1), d.label)
  assert np.bincount(d.label).min() >= 170


def test_digits_without_sklearn_names_the_extra(monkeypatch):
  # A None entry in sys.modules makes `import sklearn...` raise ImportError.
  monkeypatch.setitem(sys.modules, "sklearn", None)
  monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
  with pytest.raises(datasets.MissingExtraError, match=r"pip install 'jaxreg\[digits\]'") as e:
    datasets.digits()
  assert isinstance(e.value, ImportError) and "scikit-learn" in str(e.value)


def test_docstring_examples_run():
  import doctest

  from jaxreg._data import dataset
  for mod in (dataset, pg):
    result = doctest.testmod(mod)
    assert result.attempted > 0 and result.failed == 0, mod.__name__
