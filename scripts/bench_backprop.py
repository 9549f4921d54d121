"""Benchmark: jitted closed-form `backprop` vs jitted `jax.grad(loss)`.

Both are measured in the same run, on the S0 Keras model (124-100-10, ReLU,
MSE, L1 activity regularizer 0.01 on the pre-activation) and on a
784-512-512-10 ReLU MLP with L2 on the kernels, in float32 and float64.
Prints medians over repeats and the ratio closed-form / autodiff
(target: ≤ 1.3).

    .venv/bin/python scripts/bench_backprop.py [--quick]
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

import jaxreg
from jaxreg import penalties

jax.config.update("jax_enable_x64", True)


def timeit(f, *args, repeats, number):
  jax.block_until_ready(f(*args))  # compile + warm up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(number):
      out = f(*args)
    jax.block_until_ready(out)
    times.append((time.perf_counter() - t0) / number)
  return statistics.median(times)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--quick", action="store_true", help="fewer repeats")
  args = ap.parse_args()
  repeats = 3 if args.quick else 7

  cases = [
      ("S0 124-100-10, batch 128",
       jaxreg.MLP((124, 100, 10), ["relu", None], activity_regularizer=[penalties.l1(0.01), None],
                  activity_on="preactivation"), 128, 200),
      ("784-512-512-10, batch 1024",
       jaxreg.MLP((784, 512, 512, 10), "relu", kernel_regularizer=penalties.l2(1e-4)), 1024, 5),
  ]
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s)")
  print(f"{'model':32s} {'dtype':8s} {'closed form':>12s} {'jax.grad':>12s} {'ratio':>7s}")
  worst = 0.0
  for name, model, m, number in cases:
    for dtype in (jnp.float32, jnp.float64):
      params = model.init(jax.random.key(0), dtype)
      x = jax.random.normal(jax.random.key(1), (m, model.sizes[0]), dtype)
      t = jax.random.normal(jax.random.key(2), (m, model.sizes[-1]), dtype)
      closed = jax.jit(model.backprop)
      auto = jax.jit(jax.grad(model.loss))
      tc = timeit(closed, params, x, t, repeats=repeats, number=number)
      ta = timeit(auto, params, x, t, repeats=repeats, number=number)
      worst = max(worst, tc / ta)
      print(f"{name:32s} {jnp.dtype(dtype).name:8s} {tc * 1e3:10.3f}ms {ta * 1e3:10.3f}ms {tc / ta:7.3f}")
  print(f"worst ratio closed-form/autodiff: {worst:.3f} (target <= 1.3)")


if __name__ == "__main__":
  main()
