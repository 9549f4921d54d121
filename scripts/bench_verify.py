"""Benchmark: what verifying a closed form costs when an activation or loss is constructed.

Each row constructs a fresh object (new lambdas, so nothing is reused from an
earlier check) and reports the median wall time and process CPU time over
repeats; "first" is the first construction of its kind in this process
(it includes compiling the eager JAX primitives the check runs). Also the
import time of jaxreg, which runs no check.

    .venv/bin/python scripts/bench_verify.py [--x64] [--repeats N]
"""

import argparse
import statistics
import subprocess
import sys
import time


def timed(make, repeats):
  first_wall, first_cpu = _once(make)
  runs = [_once(make) for _ in range(repeats)]
  return (first_wall, first_cpu, statistics.median(w for w, _ in runs),
          statistics.median(c for _, c in runs))


def _once(make):
  w, c = time.perf_counter(), time.process_time()
  make()
  return time.perf_counter() - w, time.process_time() - c


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--x64", action="store_true", help="float64 (jax_enable_x64)")
  ap.add_argument("--repeats", type=int, default=20)
  args = ap.parse_args()

  code = "import time; t = time.perf_counter(); import jaxreg; print(time.perf_counter() - t)"
  imports = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(3)]

  import jax                                    # pylint: disable=import-outside-toplevel
  if args.x64:
    jax.config.update("jax_enable_x64", True)
  import jax.numpy as jnp                       # pylint: disable=import-outside-toplevel
  from jaxreg import activations, losses        # pylint: disable=import-outside-toplevel
  jnp.ones(3).block_until_ready()               # backend start-up is not the check's cost

  alphas = iter(range(1, 10**6))
  rows = {
      "Activation (cube, smooth)":
          lambda: activations.Activation("cube", lambda x: x**3, lambda x: 3 * x**2),
      "Activation (user relu, one kink)":
          lambda: activations.Activation("r", lambda x: jnp.maximum(x, 0.0),
                                         lambda x: (x > 0) * 1.0, kinks=(0.0,)),
      "relu.with_kink_value(v)": lambda: activations.relu.with_kink_value(0.5),
      "leaky_relu(alpha), new alpha": lambda: activations.leaky_relu(next(alphas) * 1e-7),
      "Loss (l1)":
          lambda: losses.Loss("l1", lambda y, t: jnp.sum(jnp.abs(y - t)) / y.shape[0],
                              lambda y, t: jnp.sign(y - t) / y.shape[0]),
  }
  dtype = "float64" if args.x64 else "float32"
  print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {dtype}, {args.repeats} repeats")
  print(f"import jaxreg (fresh process, median of 3): {1e3 * statistics.median(imports):.0f} ms")
  print(f"{'construction':36s} {'first wall/cpu':>16s} {'median wall/cpu':>17s}")
  for name, make in rows.items():
    fw, fc, w, c = timed(make, args.repeats)
    print(f"{name:36s} {1e3 * fw:7.0f}/{1e3 * fc:4.0f} ms {1e3 * w:8.1f}/{1e3 * c:5.1f} ms")


if __name__ == "__main__":
  main()
