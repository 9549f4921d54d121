"""jaxreg.train_many: every member equals jaxreg.train alone; one compiled call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from _train_util import compiles

NET = jaxreg.MLP((2, 5, 3), "tanh", loss="softmax_cross_entropy")
RNG = np.random.default_rng(0)
X = RNG.normal(size=(48, 2))
T = np.eye(3)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
XV, TV = X[:16] + 0.1, T[:16]


def test_each_member_equals_train_alone_and_the_call_compiles_once():
  cfg = jaxreg.TrainConfig(learning_rate=0.3, batch_size=8, epochs=5, patience=1, noise_std=0.05,
                           keep_prob=(1.0, 0.8), l1=1e-4, seed=99)
  # weight_decay 0 alone compiles without the decay link, in the grid it is decay by 0.
  grid = {"learning_rate": [0.2, 4.0], "keep_prob": [(0.95, 0.8), (0.9, 0.5)],
          "weight_decay": [0.0, 1e-3]}
  seeds = [3, 5]
  with compiles() as names:
    params, hist = jaxreg.train_many(NET, (X, T), cfg, seeds=seeds, grid=grid, val_data=(XV, TV))
  assert names.count("_run_many") == 1
  assert params[0]["w"].shape == (2, 2, 2, 2, 2, 5)
  assert hist["val_loss"].shape == (2, 2, 2, 2, 5) and hist["best_epoch"].shape == (2, 2, 2, 2)
  stopped_early = 0
  for gi, lr in enumerate(grid["learning_rate"]):
    for gj, kp in enumerate(grid["keep_prob"]):
      for gk, wd in enumerate(grid["weight_decay"]):
        for si, s in enumerate(seeds):
          alone = cfg.replace(seed=s, learning_rate=lr, keep_prob=kp, weight_decay=wd)
          p, h = jaxreg.train(NET, NET.init(jax.random.key(s), jnp.float64), (X, T), alone,
                              val_data=(XV, TV))
          member = jax.tree.map(lambda a: a[gi, gj, gk, si], params)  # noqa: B023
          for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(member)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)  # vmap may reorder sums
          n = len(h["train_loss"])
          for k in ("train_loss", "val_loss", "train_acc", "val_acc"):
            np.testing.assert_allclose(hist[k][gi, gj, gk, si, :n], h[k], rtol=1e-9)
            assert np.isnan(hist[k][gi, gj, gk, si, n:]).all()
          assert hist["best_epoch"][gi, gj, gk, si] == h["best_epoch"]
          assert hist["epochs_run"][gi, gj, gk, si] == n
          stopped_early += n < cfg.epochs
  assert stopped_early > 0   # the early-stopping path was exercised
  # Same shapes, other values: no new compilation.
  grid2 = {"learning_rate": [0.1, 0.5], "keep_prob": [(1.0, 0.7), (0.8, 0.6)],
           "weight_decay": [0.1, 0.2]}
  with compiles() as names:
    p2, _ = jaxreg.train_many(NET, (X, T), cfg.replace(noise_std=0.1, l1=1e-3), seeds=[1, 2],
                              grid=grid2, val_data=(XV, TV))
  assert "_run_many" not in names
  assert not np.allclose(p2[0]["w"], params[0]["w"])


def test_diverging_members_are_flagged_and_keep_finite_params():
  net = jaxreg.MLP((2, 8, 1), "relu")
  x, t = 3 * X, 5 * X[:, :1] ** 2
  cfg = jaxreg.TrainConfig(learning_rate=0.01, batch_size=8, epochs=30)
  params, hist = jaxreg.train_many(net, (x, t), cfg, seeds=[0], grid={"learning_rate": [0.01, 0.08]})
  assert hist["diverged"].tolist() == [[False], [True]]
  assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(params))
  assert np.isfinite(hist["train_loss"][0, 0]).all()
  bad = hist["train_loss"][1, 0]
  k = int(hist["epochs_run"][1, 0])   # the diverging epoch is not counted as run
  assert k > 1
  assert np.isfinite(bad[:k]).all() and not np.isfinite(bad[k:]).any()
  # One seed, no grid (no vmap at all inside): the same as that grid point.
  single, single_hist = jaxreg.train_many(net, (x, t), cfg, seeds=[0])
  assert single[0]["w"].shape == (1, 2, 8) and single_hist["train_loss"].shape == (1, 30)
  for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(params)):
    np.testing.assert_allclose(a[0], b[0, 0], rtol=1e-9, atol=1e-10)
  with pytest.raises(jaxreg.TrainingDiverged) as info:
    jaxreg.train(net, net.init(jax.random.key(0), jnp.float64), (x, t), cfg.replace(learning_rate=0.08))
  assert info.value.epoch == k + 1
  for a, b in zip(jax.tree.leaves(info.value.params), jax.tree.leaves(params)):
    np.testing.assert_allclose(a, b[1, 0], rtol=1e-10)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(seeds=[]), ValueError, "`seeds` must be a non-empty sequence"),
    (dict(seeds=[0, -1]), ValueError, r"`seeds\[1\]` must be an int in \[0, 2\*\*32\)"),
    (dict(grid={"batch_size": [8, 16]}), ValueError, "'batch_size' cannot be swept"),
    (dict(grid={"learning_rate": []}), ValueError, "must be a non-empty sequence"),
    (dict(grid={"learning_rate": [0.1, -0.1]}), ValueError,
     r"`grid\['learning_rate'\]\[1\]`: .*`learning_rate` must be a finite number > 0"),
    (dict(grid={"keep_prob": [(0.5,)]}), ValueError, "one keep-probability per dense layer input"),
    (dict(grid=[("l1", [0.1])]), TypeError, "`grid` must be a dict"),
    (dict(train_data=(X, T[:, :2])), ValueError, r"`train_data` t must have shape \(48, 3\)"),
])
def test_bad_arguments(kwargs, err, match):
  args = dict(train_data=(X, T), seeds=[0])
  args.update(kwargs)
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=1)
  with pytest.raises(err, match=match):
    jaxreg.train_many(NET, args.pop("train_data"), cfg, **args)
