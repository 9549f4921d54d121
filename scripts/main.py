"""jaxreg's main job: check every seed derivation, then a short training run.

1. ``jaxreg check derivations/`` — every formula, identity and update rule of
   the sources (``../shared/SEEDS.md``), checked against ``jax.grad``; items
   the sources got wrong are expected to be reported wrong at the right step.
2. A short training run on TensorFlow Playground's circle dataset: one net
   with weight decay, dropout and early stopping (``jaxreg.train``), then a
   grid of learning rates × seeds in one compiled call (``jaxreg.train_many``).

Exits non-zero when any derivation does not come out as documented.

    .venv/bin/python scripts/main.py
"""

import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxreg
from jaxreg import _cli

ROOT = pathlib.Path(__file__).resolve().parent.parent


def circle(key, n=500, noise=0.0):
  """Playground's circle: positives r ~ U(0, 2.5), negatives r ~ U(3.5, 5); labels ±1."""
  kp, kq, ka, kn, kf = jax.random.split(key, 5)
  half = n // 2
  r = jnp.concatenate([jax.random.uniform(kp, (half,), minval=0, maxval=2.5),
                       jax.random.uniform(kq, (n - half,), minval=3.5, maxval=5.0)])
  angle = jax.random.uniform(ka, (n,), minval=0, maxval=2 * jnp.pi)
  x = jnp.stack([r * jnp.sin(angle), r * jnp.cos(angle)], axis=1)
  label = jnp.where(jnp.arange(n) < half, 1.0, -1.0)
  flip = jax.random.uniform(kf, (n,)) < noise
  label = jnp.where(flip, -label, label)
  perm = jax.random.permutation(kn, n)
  return x[perm], label[perm, None]


print("== 1. Seed derivations: jaxreg check derivations/")
t0 = time.perf_counter()
status = _cli.main(["check", str(ROOT / "derivations")])
print(f"(derivation check: exit {status}, {time.perf_counter() - t0:.1f} s)\n")

print("== 2. Short training run: Playground circle, 2-8-8-1 tanh, MSE")
x, t = circle(jax.random.key(0))
train_data, val_data = (x[:250], t[:250]), (x[250:], t[250:])
model = jaxreg.MLP((2, 8, 8, 1), "tanh", loss="mse")
config = jaxreg.TrainConfig(learning_rate=0.03, batch_size=10, epochs=200, weight_decay=1e-4,
                            keep_prob=(1.0, 0.9, 0.9), patience=20, seed=0)
t0 = time.perf_counter()
params, history = jaxreg.train(model, model.init(jax.random.key(1)), train_data, config,
                               val_data=val_data)
secs = time.perf_counter() - t0
y = model.apply(params, val_data[0])
val_acc = float(jnp.mean(jnp.sign(y) == val_data[1]))
n_epochs = len(history["train_loss"])
best = int(history["best_epoch"])
print(f"ran {n_epochs} epochs in {secs:.1f} s; best epoch {best}: "
      f"val loss {history['val_loss'][best]:.4f}, sign accuracy on validation {val_acc:.3f}")

lrs = (0.01, 0.03, 0.1)
seeds = tuple(range(8))
grid_config = jaxreg.TrainConfig(learning_rate=0.03, batch_size=10, epochs=100, seed=0)
t0 = time.perf_counter()
many_params, many_hist = jaxreg.train_many(model, train_data, grid_config, seeds=seeds,
                                           grid={"learning_rate": lrs}, val_data=val_data)
secs = time.perf_counter() - t0
final = np.asarray(many_hist["val_loss"])[..., -1]  # (len(lrs), len(seeds))
print(f"train_many: {len(lrs)} learning rates x {len(seeds)} seeds x 100 epochs in {secs:.1f} s "
      "(one compiled call)")
for lr, row in zip(lrs, final):
  print(f"  lr {lr:<5}: final val loss median {np.median(row):.4f}  (min {row.min():.4f}, "
        f"max {row.max():.4f})")

sys.exit(status)
