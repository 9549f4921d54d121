"""jaxreg.train of a jaxreg.Model traces the user's loss once per model and shapes, not per call."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxreg

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 3))
T = RNG.normal(size=(16, 2))


def test_second_train_call_traces_the_loss_no_more():
  traces = []

  def loss(p, x, t):
    traces.append(x.shape)  # runs only while JAX traces the loss
    return 0.5 * jnp.mean(jnp.sum((x @ p["w"] - t) ** 2, -1))

  model = jaxreg.Model(loss)
  params = {"w": jnp.zeros((3, 2))}
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=4, epochs=2)
  first, _ = jaxreg.train(model, params, (X, T), cfg, progress=False)
  n = len(traces)
  assert n >= 1
  again, _ = jaxreg.train(model, params, (X, T), cfg, progress=False)
  assert len(traces) == n, "the output check or the epoch traced the loss again"
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), first, again))
  # new batch shapes: traced anew (the check is keyed by shapes, not only by the model)
  jaxreg.train(model, params, (X, T), cfg.replace(batch_size=8), progress=False)
  assert len(traces) > n
