"""jaxreg.train: update rules, dropout, early stopping, determinism, compilation, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg import optim
from jaxreg._trainer import model as _model
from jaxreg._trainer import shuffle as _shuffle
from _train_util import compiles


def _blobs(n=96, seed=0):
  """Three Gaussian blobs in 2-D, one-hot targets."""
  rng = np.random.default_rng(seed)
  lab = rng.integers(0, 3, n)
  centres = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
  x = centres[lab] + rng.normal(size=(n, 2))
  return x, np.eye(3)[lab]


CLS = jaxreg.MLP((2, 6, 3), "tanh", loss="softmax_cross_entropy")


def _leaves_equal(a, b):
  return all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ------------------------------------------------------------ determinism, compilation
def test_same_seed_bit_identical_and_second_call_does_not_recompile():
  x, t = _blobs()
  cfg = jaxreg.TrainConfig(learning_rate=0.3, batch_size=8, epochs=4, keep_prob=(0.9, 0.7),
                           noise_std=0.1, weight_decay=1e-3, seed=3)
  p0 = CLS.init(jax.random.key(0))
  with compiles() as first:
    pa, ha = jaxreg.train(CLS, p0, (x, t), cfg, val_data=(x, t))
  assert first.count("epoch_fn") == 1
  with compiles() as later:
    pb, hb = jaxreg.train(CLS, p0, (x, t), cfg, val_data=(x, t))
    # Other seed and numeric hyperparameters: different result, same compiled epoch.
    pc, _ = jaxreg.train(CLS, p0, (x, t), cfg.replace(seed=4, learning_rate=0.2, noise_std=0.05,
                                                      keep_prob=(0.8, 0.6), weight_decay=2e-3),
                         val_data=(x, t))
  assert "epoch_fn" not in later
  assert _leaves_equal(pa, pb)
  assert all(np.array_equal(ha[k], hb[k]) for k in ha)
  assert not _leaves_equal(pa, pc)
  # Classification metrics, in prediction mode on the final parameters.
  assert set(ha) == {"train_loss", "val_loss", "train_acc", "val_acc", "best_epoch"}
  assert ha["train_loss"].shape == (4,)
  y = CLS.apply(pa, jnp.asarray(x))
  assert ha["val_acc"][-1] == pytest.approx(np.mean(np.argmax(y, 1) == np.argmax(t, 1)))
  assert ha["val_loss"][-1] == pytest.approx(float(CLS.loss(pa, jnp.asarray(x), jnp.asarray(t))))


def test_train_equals_a_manual_optax_loop_with_the_documented_shuffle():
  """Two epochs of train == chain(add_decayed_weights, l1_sign, sgd) over the documented batches."""
  net = jaxreg.MLP((3, 4, 2), "sigmoid", kernel_regularizer=jaxreg.penalties.l2(1e-3))
  rng = np.random.default_rng(1)
  x, t = rng.normal(size=(23, 3)), rng.normal(size=(23, 2))
  cfg = jaxreg.TrainConfig(learning_rate=0.2, batch_size=5, epochs=2, weight_decay=0.01, l1=0.002,
                           seed=7)
  p0 = net.init(jax.random.key(1))
  got, hist = jaxreg.train(net, p0, (x, t), cfg)
  tx = optax.chain(optax.add_decayed_weights(0.01, optim.kernels_only),
                   optim.l1_sign(0.002), optax.sgd(0.2))
  params, opt_state, means = p0, tx.init(p0), []
  for e in range(2):
    perm, _ = _shuffle.epoch_randomness(jax.random.key(7), e, 23, 4, 2 + 2)
    perm = np.asarray(perm)[:20].reshape(4, 5)  # 3 samples left out
    losses = []
    for idx in perm:
      loss, g = net.loss_and_backprop(params, jnp.asarray(x[idx]), jnp.asarray(t[idx]))
      updates, opt_state = tx.update(g, opt_state, params)
      params = optax.apply_updates(params, updates)
      losses.append(float(loss))
    means.append(np.mean(losses))
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
  np.testing.assert_allclose(hist["train_loss"], means, rtol=1e-12)
  assert set(hist) == {"train_loss", "best_epoch"}  # mse: no accuracy; no val_data: no val_loss


def test_proximal_l1_in_train_gives_exact_zeros_where_sign_rule_oscillates():
  # Linear regression where the second input is irrelevant: L1 should cut its weight.
  net = jaxreg.MLP((2, 1), None)
  rng = np.random.default_rng(2)
  x = rng.normal(size=(40, 2))
  t = 1.5 * x[:, :1]
  p0 = [{"w": jnp.array([[0.0], [0.3]]), "b": jnp.zeros(1)}]
  base = jaxreg.TrainConfig(learning_rate=0.1, batch_size=40, epochs=60, l1=0.05)
  ps, _ = jaxreg.train(net, p0, (x, t), base)
  pp, _ = jaxreg.train(net, p0, (x, t), base.replace(l1_rule="proximal"))
  assert pp[0]["w"][1, 0] == 0.0
  assert 0 < abs(float(ps[0]["w"][1, 0])) <= 0.1 * 0.05 * 1.0001 + 1e-9
  assert float(pp[0]["w"][0, 0]) == pytest.approx(1.5 - 0.05, abs=0.02)


@pytest.mark.parametrize("n", [1, 5, 23, 1025, 70_000])
def test_shuffle_is_a_permutation(n):
  perm = np.asarray(_shuffle.shuffle(jax.random.key(n), n))
  np.testing.assert_array_equal(np.sort(perm), np.arange(n))
  if n > 100:
    assert np.mean(perm == np.arange(n)) < 0.01


def test_shuffle_is_uniform():
  perms = np.asarray(jax.jit(jax.vmap(lambda k: _shuffle.shuffle(k, 4)))(
      jax.random.split(jax.random.key(0), 48_000)))
  codes = perms @ np.array([64, 16, 4, 1])
  counts = np.unique(codes, return_counts=True)[1]
  assert len(counts) == 24                               # all 4! orders appear
  chi2 = np.sum((counts - 2000) ** 2 / 2000)              # 23 dof: P(chi2 > 60) ~ 4e-5
  assert chi2 < 60


# ------------------------------------------------------------------ dropout
@pytest.mark.parametrize("mode", ["inverted", "scale_at_test"])
def test_dropout_masks_have_the_keep_rates(mode):
  net = jaxreg.MLP((50, 40, 3), "relu")
  m0, m1 = _model.dropout_masks(jax.random.split(jax.random.key(5)), net, (True, True), mode,
                                jnp.asarray((0.8, 0.5)), 400, jnp.float64)
  for mask, p in ((m0, 0.8), (m1, 0.5)):
    mask = np.asarray(mask)
    kept = mask != 0
    sd = np.sqrt(p * (1 - p) / mask.size)
    assert abs(kept.mean() - p) < 4 * sd
    assert abs(kept.mean(axis=0) - p).max() < 6 * np.sqrt(p * (1 - p) / 400)  # every unit
    np.testing.assert_array_equal(np.unique(mask[kept]), [1 / p if mode == "inverted" else 1.0])
  assert not np.array_equal(m0[0] != 0, m0[1] != 0)  # per sample


def test_the_two_dropout_flavours_give_the_same_expected_output():
  # Dropout on the (linear) output layer's input: the expectation is exact, so
  # the mean over many masks must match each flavour's prediction rule.
  net = jaxreg.MLP((4, 5, 2), "tanh")
  params = net.init(jax.random.key(2))
  x = jax.random.normal(jax.random.key(3), (3, 4))
  p, draws = 0.6, 20000
  keep = jax.random.bernoulli(jax.random.key(4), p, (draws, 3, 5)).astype(jnp.float64)
  run = jax.vmap(lambda m, s: net.apply(params, x, dropout_masks=[None, m * s]), (0, None))
  inverted_mean = run(keep, 1 / p).mean(0)
  plain_mean = run(keep, 1.0).mean(0)
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=1, epochs=1, keep_prob=(1.0, p),
                           dropout_mode="scale_at_test")
  scaled = jaxreg.predict(net, params, x, cfg)
  full = net.apply(params, x)
  sd = float(jnp.abs(full).max()) / np.sqrt(draws)
  np.testing.assert_allclose(inverted_mean, full, atol=8 * sd)       # inverted: predict unmasked
  np.testing.assert_allclose(plain_mean, scaled, atol=8 * sd)        # scale_at_test: predict × p
  np.testing.assert_allclose(inverted_mean, plain_mean / p, atol=1e-12)
  # Multiplying the layer's input by p equals multiplying its outgoing weights by p (S4.7).
  halved = [params[0], {"w": p * params[1]["w"], "b": params[1]["b"]}]
  np.testing.assert_allclose(scaled, net.apply(halved, x), rtol=1e-13)
  assert float(jnp.abs(scaled - full).max()) > 0.01


# ------------------------------------------------------------ early stopping
def test_early_stopping_restores_the_best_epoch():
  # Train towards t = 2x, validate against t = 0.5x: the validation loss falls
  # while w passes 0.5, then rises. The best epoch's params come back.
  net = jaxreg.MLP((1, 1), None)
  rng = np.random.default_rng(3)
  x = rng.normal(size=(32, 1))
  xv = rng.normal(size=(16, 1))
  p0 = [{"w": jnp.zeros((1, 1)), "b": jnp.zeros(1)}]
  cfg = jaxreg.TrainConfig(learning_rate=0.01, batch_size=8, epochs=40, patience=3, seed=1)
  best, hist = jaxreg.train(net, p0, (x, 2 * x), cfg, val_data=(xv, 0.5 * xv))
  b = int(hist["best_epoch"])                        # 1-based, like TrainingDiverged.epoch
  assert 2 < b < 30
  assert b == int(np.argmin(hist["val_loss"])) + 1
  assert len(hist["val_loss"]) == b + 3              # stopped after `patience` bad epochs
  again, _ = jaxreg.train(net, p0, (x, 2 * x), cfg.replace(epochs=b, patience=None),
                          val_data=(xv, 0.5 * xv))
  assert _leaves_equal(best, again)
  assert float(best[0]["w"][0, 0]) < 1.0              # not the last epoch's (w heads for 2)


# ---------------------------------------------------------------- divergence
def test_divergence_names_the_epoch_and_keeps_the_last_finite_params():
  net = jaxreg.MLP((3, 8, 1), "relu")
  rng = np.random.default_rng(4)
  x = 3 * rng.normal(size=(64, 3))
  t = 5 * rng.normal(size=(64, 1))
  p0 = net.init(jax.random.key(0))
  cfg = jaxreg.TrainConfig(learning_rate=0.25, batch_size=16, epochs=50)
  with pytest.raises(jaxreg.TrainingDiverged, match=r"non-finite in epoch \d+ of 50") as info:
    jaxreg.train(net, p0, (x, t), cfg)
  err = info.value
  assert err.epoch >= 1
  assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(err.params))
  assert len(err.history["train_loss"]) == err.epoch
  assert not np.isfinite(err.history["train_loss"][-1])
  assert np.isfinite(err.history["train_loss"][:-1]).all()
  if err.epoch > 1:
    before, _ = jaxreg.train(net, p0, (x, t), cfg.replace(epochs=err.epoch - 1))
    assert _leaves_equal(before, err.params)
  else:
    assert _leaves_equal(p0, err.params)


# ------------------------------------------------------------------ augment
def test_augment_is_applied_to_training_batches():
  net = jaxreg.MLP((2, 3), None)
  x, t = _blobs(24)
  p0 = net.init(jax.random.key(0))
  zero_inputs = lambda key, xb: jnp.zeros_like(xb)  # noqa: E731
  p, _ = jaxreg.train(net, p0, (x, t), jaxreg.TrainConfig(
      learning_rate=0.5, batch_size=8, epochs=2, augment=zero_inputs))
  np.testing.assert_array_equal(p[0]["w"], p0[0]["w"])   # ∂L/∂W = xᵀ δ = 0 on zero inputs
  assert np.abs(np.asarray(p[0]["b"] - p0[0]["b"])).max() > 1e-3
  with pytest.raises(ValueError, match="`augment` must keep the batch shape"):
    jaxreg.train(net, p0, (x, t), jaxreg.TrainConfig(
        learning_rate=0.5, batch_size=8, epochs=1, augment=lambda k, xb: xb[:, :1]))


# ---------------------------------------------------------------- bad input
X, T = _blobs(20)
P0 = CLS.init(jax.random.key(0))
CFG = jaxreg.TrainConfig(learning_rate=0.1, batch_size=4, epochs=1)
NAN_X = X.copy()
NAN_X[3, 1] = np.nan
INF_T = T.copy()
INF_T[5, 0] = np.inf


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(train_data=(NAN_X, T)), ValueError, r"`train_data` x has 1 non-finite values .* first rows \[3\]"),
    (dict(train_data=(jnp.asarray(NAN_X), T)), ValueError, r"`train_data` x has 1 non-finite .* \[3\]"),
    (dict(train_data=(X, INF_T)), ValueError, "`train_data` t has 1 non-finite"),
    (dict(val_data=(NAN_X, T)), ValueError, "`val_data` x has 1 non-finite"),
    (dict(train_data=(X[:, :1], T)), ValueError, r"`train_data` x must have shape \(n, 2\)"),
    (dict(train_data=(X, T.argmax(1))), ValueError, "must be one-hot encoded"),
    (dict(train_data=(X, T[:-1])), ValueError, r"t must have shape \(20, 3\)"),
    (dict(train_data=X), TypeError, "`train_data` must be a pair"),
    (dict(train_data=(X.astype(complex), T)), TypeError, "real .* got dtype complex128"),
    (dict(train_data=(X[:3], T[:3])), ValueError, "fewer than one batch"),
    (dict(config=CFG.replace(patience=2)), ValueError, "early stopping .* needs `val_data`"),
    (dict(config=CFG.replace(keep_prob=(0.5,))), ValueError, "one keep-probability per dense layer"),
    (dict(params=P0[:1]), ValueError, "`params` has 1 layers"),
    (dict(model="mlp"), TypeError, "`model` must be a jaxreg.MLP"),
    (dict(config={"learning_rate": 0.1}), TypeError, "`config` must be a jaxreg.TrainConfig"),
    (dict(callbacks=[1]), TypeError, r"`callbacks\[0\]` must be callable"),
])
def test_bad_input_is_rejected_with_the_argument_named(kwargs, err, match):
  args = dict(model=CLS, params=P0, train_data=(X, T), config=CFG, val_data=None)
  args.update(kwargs)
  with pytest.raises(err, match=match):
    jaxreg.train(args.pop("model"), args.pop("params"), args.pop("train_data"), args.pop("config"),
                 **args)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(learning_rate=0.0), ValueError, "`learning_rate` must be a finite number > 0"),
    (dict(learning_rate=float("nan")), ValueError, "`learning_rate`"),
    (dict(batch_size=0), ValueError, "`batch_size` must be an int >= 1"),
    (dict(batch_size=2.5), TypeError, "`batch_size` must be an int"),
    (dict(epochs=0), ValueError, "`epochs`"),
    (dict(weight_decay=-1e-3), ValueError, "`weight_decay`"),
    (dict(l1=float("inf")), ValueError, "`l1`"),
    (dict(l1_rule="soft"), ValueError, "`l1_rule` must be one of"),
    (dict(keep_prob=(1.0, 0.0)), ValueError, r"`keep_prob\[1\]` must be a finite number > 0 and <= 1"),
    (dict(keep_prob=0.5), TypeError, "`keep_prob` must be None or a sequence"),
    (dict(dropout_mode="test"), ValueError, "`dropout_mode`"),
    (dict(noise_std=-0.1), ValueError, "`noise_std`"),
    (dict(augment=3), TypeError, "`augment` must be None, a function"),
    (dict(patience=0), ValueError, "`patience`"),
    (dict(seed=-1), ValueError, "`seed`"),
    (dict(decay_biases=1), TypeError, "`decay_biases` must be a bool"),
])
def test_config_is_validated_on_construction(kwargs, err, match):
  args = dict(learning_rate=0.1, batch_size=4, epochs=1)
  args.update(kwargs)
  with pytest.raises(err, match=match):
    jaxreg.TrainConfig(**args)


def test_config_is_frozen_and_normalized():
  cfg = jaxreg.TrainConfig(learning_rate=1, batch_size=4, epochs=1, keep_prob=[1, 0.5])
  assert cfg.keep_prob == (1.0, 0.5) and isinstance(cfg.learning_rate, float)
  with pytest.raises(AttributeError):
    cfg.learning_rate = 0.2  # type: ignore[misc]
  assert hash(cfg) == hash(cfg.replace())
