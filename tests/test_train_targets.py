"""Targets outside the loss's domain are refused where data enters; accuracy on logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg

CFG = jaxreg.TrainConfig(learning_rate=0.5, batch_size=20, epochs=40, shuffle="never")


def _blobs(n=40):
  x = np.concatenate([np.full((n // 2, 2), -1.0), np.full((n // 2, 2), 1.0)])
  x = x + 0.1 * np.random.default_rng(0).normal(size=x.shape)
  t = np.concatenate([np.zeros((n // 2, 1)), np.ones((n // 2, 1))])
  return x, t


def test_bce_targets_outside_0_1_are_refused_naming_the_argument_and_index():
  net = jaxreg.MLP((2, 1), ["sigmoid"], loss="binary_cross_entropy")
  x, t = _blobs()
  t[3, 0] = 2.0
  with pytest.raises(ValueError, match=r"train_data\[1\].*\(3, 0\)|train_data\[1\].*3"):
    jaxreg.train(net, net.init(jax.random.key(0)), (x, t), CFG)
  xv, tv = _blobs(10)
  tv[0, 0] = -1.0     # ±1 labels with a BCE loss: the classic slip
  with pytest.raises(ValueError, match=r"val_data\[1\]"):
    jaxreg.train(net, net.init(jax.random.key(0)), _blobs(), CFG, val_data=(xv, tv))


def test_softmax_targets_must_be_distributions():
  net = jaxreg.MLP((2, 3), None, loss="softmax_cross_entropy")
  x = np.zeros((20, 2))
  t = np.tile([0.5, 0.4, 0.0], (20, 1))      # rows sum to 0.9
  with pytest.raises(ValueError, match=r"train_data\[1\]"):
    jaxreg.train(net, net.init(jax.random.key(0)), (x, t), CFG)


def test_logits_loss_reports_accuracy_thresholded_at_zero():
  net = jaxreg.MLP((2, 1), None, loss="binary_cross_entropy_with_logits")
  x, t = _blobs()
  params, hist = jaxreg.train(net, net.init(jax.random.key(0)), (x, t), CFG, val_data=(x, t))
  assert float(hist["val_acc"][-1]) == 1.0
  logits = net.apply(params, jnp.asarray(x))
  assert float(jnp.mean((logits > 0) == (t > 0.5))) == 1.0
