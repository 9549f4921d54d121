"""jaxreg.train with any model (jaxreg.Model) and any optax optimizer; predict; data order."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg._trainer import shuffle as _shuffle
from _train_util import assert_trees_close, compiles, trees_equal

RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 3))
T = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], 1)


def two_layer_loss(p, x, t):
  h = jnp.tanh(x @ p["w1"] + p["b1"])
  y = h @ p["w2"] + p["b2"]
  return 0.5 * jnp.mean(jnp.sum((y - t) ** 2, -1))


def two_layer_apply(p, x):
  return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def two_layer_init(key, dtype=None):
  k1, k2 = jax.random.split(key)
  dtype = dtype or jnp.asarray(0.0).dtype
  return {"w1": jax.random.normal(k1, (3, 5), dtype) / 2, "b1": jnp.zeros(5, dtype),
          "w2": jax.random.normal(k2, (5, 2), dtype) / 2, "b2": jnp.zeros(2, dtype)}


MODEL = jaxreg.Model(two_layer_loss, apply=two_layer_apply, init=two_layer_init)


def hand_loop(tx, params, x, t, epochs):
  """Full-batch training written out: value_and_grad + optax, eagerly."""
  state, losses = tx.init(params), []
  for _ in range(epochs):
    loss, g = jax.value_and_grad(two_layer_loss)(params, x, t)
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
    losses.append(float(loss))
  return params, np.asarray(losses)


# ------------------------------------------------------- custom model, any optimizer
@pytest.mark.parametrize("optimizer", [None, "adam"])
def test_custom_model_full_batch_equals_a_hand_written_optax_loop(optimizer):
  p0 = two_layer_init(jax.random.key(1))
  if optimizer is None:
    cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=32, epochs=15, shuffle="never")
    tx = optax.sgd(0.1)
  else:
    tx = optax.adam(1e-2)
    cfg = jaxreg.TrainConfig(optimizer=tx, batch_size=32, epochs=15, shuffle="never")
  got, hist = jaxreg.train(MODEL, p0, (X, T), cfg)
  want, losses = hand_loop(tx, p0, jnp.asarray(X), jnp.asarray(T), 15)
  assert_trees_close(got, want, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(hist["train_loss"], losses, rtol=1e-12)
  assert not trees_equal(got, p0) and losses[-1] < 0.9 * losses[0]
  assert set(hist) == {"train_loss", "best_epoch"}  # regression targets: no accuracy


def test_mlp_through_model_equals_the_closed_form_path():
  net = jaxreg.MLP((2, 6, 3), "tanh", loss="softmax_cross_entropy",
                   kernel_regularizer=jaxreg.penalties.l2(1e-3))
  x = RNG.normal(size=(40, 2))
  t = np.eye(3)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)]
  model = jaxreg.Model(loss=net.loss, apply=net.apply, init=net.init)
  cfg = jaxreg.TrainConfig(learning_rate=0.3, batch_size=8, epochs=4, weight_decay=1e-3,
                           l1=1e-4, patience=10, seed=2)
  p0 = net.init(jax.random.key(0))
  a, ha = jaxreg.train(net, p0, (x, t), cfg, val_data=(x[:10], t[:10]))
  b, hb = jaxreg.train(model, p0, (x, t), cfg, val_data=(x[:10], t[:10]))
  assert_trees_close(a, b, rtol=1e-12, atol=1e-14)
  assert set(ha) == set(hb)   # one-hot targets + apply: accuracy for the Model too
  for k in ha:
    np.testing.assert_allclose(ha[k], hb[k], rtol=1e-12)


def test_bare_callable_is_a_model_and_params_may_be_any_pytree():
  nested = lambda p, x, t: two_layer_loss({"w1": p[0]["a"], "b1": p[0]["b"], "w2": p[1][0],  # noqa: E731
                                           "b2": p[1][1]}, x, t)
  d = two_layer_init(jax.random.key(3))
  p0 = ({"a": d["w1"], "b": d["b1"]}, (d["w2"], d["b2"]))
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=2, seed=5)
  got, _ = jaxreg.train(nested, p0, (X, T), cfg)
  want, _ = jaxreg.train(MODEL, d, (X, T), cfg)
  assert isinstance(got, tuple) and isinstance(got[1], tuple)
  assert_trees_close((got[0]["a"], got[0]["b"], got[1][0], got[1][1]),
                     (want["w1"], want["b1"], want["w2"], want["b2"]), rtol=1e-13)


def test_a_loss_with_key_gets_a_fresh_key_per_step_and_none_for_validation():
  def noisy_loss(p, x, t, *, key=None):
    if key is not None:   # the model's own regularization: drop inputs
      x = x * jax.random.bernoulli(key, 0.7, x.shape) / 0.7
    return two_layer_loss(p, x, t)

  model = jaxreg.Model(noisy_loss)
  assert model.takes_key and not MODEL.takes_key
  p0 = two_layer_init(jax.random.key(1))
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=3, seed=1)
  a, ha = jaxreg.train(model, p0, (X, T), cfg, val_data=(X, T))
  b, _ = jaxreg.train(model, p0, (X, T), cfg, val_data=(X, T))
  c, _ = jaxreg.train(model, p0, (X, T), cfg.replace(seed=2), val_data=(X, T))
  plain, _ = jaxreg.train(MODEL, p0, (X, T), cfg, val_data=(X, T))
  assert trees_equal(a, b) and not trees_equal(a, c) and not trees_equal(a, plain)
  assert ha["val_loss"][-1] == pytest.approx(float(two_layer_loss(a, X, T)), rel=1e-12)


# ------------------------------------------------------------------ train_many
def test_train_many_sweeps_an_inject_hyperparams_optimizer_and_compiles_once():
  opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
  cfg = jaxreg.TrainConfig(optimizer=opt, batch_size=8, epochs=3, seed=0)
  grid = {"learning_rate": [1e-2, 0.1]}
  params, hist = jaxreg.train_many(MODEL, (X, T), cfg, seeds=[4, 7], grid=grid,
                                   val_data=(X[:8], T[:8]))
  assert params["w1"].shape == (2, 2, 3, 5) and hist["train_loss"].shape == (2, 2, 3)
  for gi, lr in enumerate(grid["learning_rate"]):
    for si, s in enumerate((4, 7)):
      alone = cfg.replace(seed=s, optimizer=optax.inject_hyperparams(optax.adam)(learning_rate=lr))
      p, h = jaxreg.train(MODEL, MODEL.init(jax.random.key(s)), (X, T), alone,
                          val_data=(X[:8], T[:8]))
      assert_trees_close(jax.tree.map(lambda a: a[gi, si], params), p, rtol=1e-9,  # noqa: B023
                         atol=1e-12)
      np.testing.assert_allclose(hist["val_loss"][gi, si], h["val_loss"], rtol=1e-9)
  with compiles() as names:
    again, _ = jaxreg.train_many(MODEL, (X, T), cfg, seeds=[1, 2],
                                 grid={"learning_rate": [2e-2, 0.2]}, val_data=(X[:8], T[:8]))
  assert "_run_many" not in names
  assert not np.allclose(again["w1"], params["w1"])


def test_train_many_without_init_starts_every_seed_from_params():
  model = jaxreg.Model(two_layer_loss)
  p0 = two_layer_init(jax.random.key(0))
  cfg = jaxreg.TrainConfig(learning_rate=0.05, batch_size=8, epochs=2, weight_decay=1e-3)
  params, hist = jaxreg.train_many(model, (X, T), cfg, seeds=[0, 1], params=p0,
                                   grid={"weight_decay": [1e-3, 1e-2]})
  for gi, wd in enumerate((1e-3, 1e-2)):
    for s in (0, 1):
      p, h = jaxreg.train(model, p0, (X, T), cfg.replace(seed=s, weight_decay=wd))
      assert_trees_close(jax.tree.map(lambda a: a[gi, s], params), p, rtol=1e-9, atol=1e-12)  # noqa: B023
      np.testing.assert_allclose(hist["train_loss"][gi, s], h["train_loss"], rtol=1e-9)


# ------------------------------------------------------------------ float32
def test_float32_training_matches_its_own_hand_loop_and_stays_float32():
  p0 = two_layer_init(jax.random.key(1), jnp.float32)
  tx = optax.adam(1e-2)
  cfg = jaxreg.TrainConfig(optimizer=tx, batch_size=32, epochs=6, shuffle="never")
  got, hist = jaxreg.train(MODEL, p0, (X, T), cfg)   # float64 data are cast to float32
  want, losses = hand_loop(tx, p0, jnp.asarray(X, jnp.float32), jnp.asarray(T, jnp.float32), 6)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(got))
  assert losses[-1] < losses[0]
  assert_trees_close(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(hist["train_loss"], losses, rtol=1e-5)


def test_float32_mlp_learns_with_every_regularizer():
  net = jaxreg.MLP((2, 8, 3), "relu", loss="softmax_cross_entropy")
  x = RNG.normal(size=(96, 2)).astype(np.float32)
  t = np.eye(3, dtype=np.float32)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)]
  cfg = jaxreg.TrainConfig(learning_rate=0.3, batch_size=16, epochs=30, weight_decay=1e-4,
                           l1=1e-5, keep_prob=(1.0, 0.9), noise_std=0.05, seed=0)
  p, h = jaxreg.train(net, net.init(jax.random.key(0), jnp.float32), (x, t), cfg, val_data=(x, t))
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(p))
  assert h["val_loss"][-1] < 0.6 * h["val_loss"][0] and h["val_acc"][-1] > 0.85


# ------------------------------------------------------------------ predict
def test_predict_after_scale_at_test_reproduces_the_validation_loss():
  net = jaxreg.MLP((3, 16, 2), "tanh")
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=3, keep_prob=(0.8, 0.5),
                           dropout_mode="scale_at_test", seed=1)
  p, h = jaxreg.train(net, net.init(jax.random.key(0)), (X, T), cfg, val_data=(X[:12], T[:12]))
  y = jaxreg.predict(net, p, X[:12], cfg)
  assert float(net.loss_fn.fn(y, jnp.asarray(T[:12]))) == pytest.approx(h["val_loss"][-1], rel=1e-13)
  plain = net.apply(p, jnp.asarray(X[:12]))  # what one would get without the config
  assert float(net.loss_fn.fn(plain, jnp.asarray(T[:12]))) != pytest.approx(h["val_loss"][-1],
                                                                             rel=1e-3)
  np.testing.assert_array_equal(jaxreg.predict(net, p, X[:12]), plain)
  np.testing.assert_allclose(jaxreg.predict(MODEL, MODEL.init(jax.random.key(0)), X),
                             two_layer_apply(MODEL.init(jax.random.key(0)), X), rtol=1e-15)


# ------------------------------------------------------------------ data order
def test_shuffle_once_repeats_the_first_epochs_order_and_never_keeps_the_given_one():
  model = jaxreg.Model(two_layer_loss)
  p0 = two_layer_init(jax.random.key(2))
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=3, seed=3)
  perm = np.asarray(_shuffle.epoch_randomness(jax.random.key(3), 0, 32, 4, 0)[0])
  for mode, order in (("once", perm), ("never", np.arange(32))):
    got, _ = jaxreg.train(model, p0, (X, T), cfg.replace(shuffle=mode))
    tx, p = optax.sgd(0.1), p0
    s = tx.init(p)
    for _ in range(3):
      for idx in order.reshape(4, 8):
        g = jax.grad(two_layer_loss)(p, X[idx], T[idx])
        u, s = tx.update(g, s, p)
        p = optax.apply_updates(p, u)
    assert_trees_close(got, p, rtol=1e-12, atol=1e-14)
  one_every, _ = jaxreg.train(model, p0, (X, T), cfg.replace(epochs=1))
  one_once, _ = jaxreg.train(model, p0, (X, T), cfg.replace(epochs=1, shuffle="once"))
  assert_trees_close(one_every, one_once, rtol=1e-13)


def test_augment_is_a_sequence_of_batch_transforms_applied_in_order():
  model = jaxreg.Model(two_layer_loss)
  p0 = two_layer_init(jax.random.key(2))
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=2, seed=3)
  zeros = lambda k, x: jnp.zeros_like(x)  # noqa: E731
  plus_one = lambda k, x: x + 1  # noqa: E731
  got, _ = jaxreg.train(model, p0, (X, T), cfg.replace(augment=[zeros, plus_one]))
  want, _ = jaxreg.train(model, p0, (np.ones_like(X), T), cfg)
  assert_trees_close(got, want, rtol=1e-13)


# ------------------------------------------------------------------ bad input
ADAM = optax.adam(1e-2)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(optimizer=ADAM, learning_rate=0.1), ValueError, "`learning_rate` must be None when `optimizer`"),
    (dict(optimizer=ADAM, weight_decay=1e-3), ValueError, "`optimizer` and `weight_decay` cannot be combined"),
    (dict(optimizer=ADAM, l1=1e-3), ValueError, "`optimizer` and `l1` cannot be combined"),
    (dict(optimizer="adam"), TypeError, "`optimizer` must be None or an optax.GradientTransformation"),
    (dict(), TypeError, "`learning_rate` is required unless `optimizer`"),
    (dict(learning_rate=0.1, batch_size=None), TypeError, "`batch_size` is required"),
    (dict(learning_rate=0.1, shuffle="sometimes"), ValueError, "`shuffle` must be one of"),
    (dict(learning_rate=0.1, seed=2 ** 64), ValueError, r"`seed` must be an int >= 0 and < 4294967296"),
    (dict(learning_rate=0.1, augment=[lambda k, x: x, 3]), TypeError, "`augment` must be None, a function"),
])
def test_config_errors(kwargs, err, match):
  args = dict(batch_size=8, epochs=1)
  args.update(kwargs)
  with pytest.raises(err, match=match):
    jaxreg.TrainConfig(**args)


CFG = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=1)
P0 = two_layer_init(jax.random.key(0))


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(model=3), TypeError, "`model` must be a jaxreg.MLP, a jaxreg.Model or a loss function"),
    (dict(callbacks=lambda s, h: None), TypeError, "`callbacks` must be a list of functions"),
    (dict(params=None), TypeError, "`params` are required"),
    (dict(params={**P0, "b2": jnp.zeros(2, jnp.int32)}), TypeError, r"`params\['b2'\]` must be a float array"),
    (dict(params={}), ValueError, "`params` has no arrays"),
    (dict(train_data=(X, T[:-1])), ValueError, "x and t must have one row per sample"),
    (dict(model=jaxreg.Model(lambda p, x, t: jnp.sum((x @ p["w1"]) ** 2, 1))), ValueError,
     "`model.loss` must return a scalar"),
    (dict(config=CFG.replace(keep_prob=(1.0, 0.5))), ValueError, "`keep_prob` .* is a property of jaxreg.MLP"),
])
def test_train_errors(kwargs, err, match):
  args = dict(model=MODEL, params=P0, train_data=(X, T), config=CFG)
  args.update(kwargs)
  with pytest.raises(err, match=match):
    jaxreg.train(args.pop("model"), args.pop("params"), args.pop("train_data"), args.pop("config"),
                 **args)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(model=jaxreg.Model(two_layer_loss)), TypeError, "without `init` needs `params=`"),
    (dict(config=jaxreg.TrainConfig(optimizer=ADAM, batch_size=8, epochs=1),
          grid={"learning_rate": [0.1]}), ValueError, "'learning_rate' cannot be swept.*inject_hyperparams"),
    (dict(config=jaxreg.TrainConfig(optimizer=optax.inject_hyperparams(optax.adam)(learning_rate=0.1),
                                    batch_size=8, epochs=1), grid={"learning_rate": [0.1, np.nan]}),
     ValueError, r"`grid\['learning_rate'\]\[1\]` must be a finite real number"),
    (dict(grid={"keep_prob": [(1.0, 0.5)]}), ValueError, "'keep_prob' cannot be swept"),
    (dict(seeds=[2 ** 32]), ValueError, r"`seeds\[0\]` must be an int in \[0, 2\*\*32\)"),
])
def test_train_many_errors(kwargs, err, match):
  args = dict(model=MODEL, config=CFG, seeds=[0])
  args.update(kwargs)
  with pytest.raises(err, match=match):
    jaxreg.train_many(args.pop("model"), (X, T), args.pop("config"), **args)


def test_model_and_predict_errors():
  with pytest.raises(TypeError, match="Model: `loss` must be a function"):
    jaxreg.Model(3)
  with pytest.raises(TypeError, match="Model: `apply` must be a function or None"):
    jaxreg.Model(two_layer_loss, apply=1)
  with pytest.raises(TypeError, match="predict: the `model` has no `apply`"):
    jaxreg.predict(jaxreg.Model(two_layer_loss), P0, X)
  with pytest.raises(TypeError, match="predict: `config` must be None or a jaxreg.TrainConfig"):
    jaxreg.predict(MODEL, P0, X, {"keep_prob": (1.0,)})
  with pytest.raises(AttributeError):
    MODEL.loss = two_layer_loss  # type: ignore[misc]
  assert hash(jaxreg.Model(two_layer_loss)) == hash(jaxreg.Model(two_layer_loss))
