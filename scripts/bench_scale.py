"""Members per second of a jaxreg.train_many sweep against the number of devices.

The device count of a JAX process is fixed when JAX starts, so each count runs
in its own Python process: on CPU with JAX_NUM_CPU_DEVICES=N (1, 2, 4, 8 by
default), on an accelerator the first N of its devices. Each process trains
the same sweep — seeds × learning rates of a small MLP on the Playground
circle — with its members spread over an N-device member mesh
(jaxreg.distributed.member_mesh), once to compile and then --repeats times;
the best time counts. Efficiency = (members/s on N) / (N × members/s on 1).

With --data-parallel, two more tables time data-parallel jaxreg.train (each
batch split over the devices) of a small and a wide MLP against one device.
With --rounds R every device count runs R times, interleaved, and the best
run counts: on a shared machine that evens out drift in the load.

  PYTHONPATH=. python scripts/bench_scale.py --data-parallel --rounds 3   # CPU: 1, 2, 4, 8
  PYTHONPATH=. python scripts/bench_scale.py --platform gpu  # the GPUs there are

CPU devices are threads of one process sharing the machine's cores: past the
number of cores no speed-up is possible, whatever the device count.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def sweep_worker(n_devices, args):
  import jax
  import numpy as np

  import jaxreg
  from jaxreg import datasets, distributed

  data = datasets.playground("circle", n_samples=400, noise=0.1, train_fraction=0.5, seed=0)
  x, t = np.asarray(data.train.x, np.float32), np.asarray(data.train.t, np.float32)
  net = jaxreg.MLP((2, 16, 16, 1), "tanh")
  config = jaxreg.TrainConfig(learning_rate=0.03, batch_size=10, epochs=args.epochs)
  grid = {"learning_rate": list(np.geomspace(0.003, 0.3, args.grid_points))}
  seeds = list(range(args.seeds))
  mesh = distributed.member_mesh(jax.local_devices()[:n_devices])

  def run():
    _, hist = jaxreg.train_many(net, (x, t), config, seeds=seeds, grid=grid, mesh=mesh)
    return hist

  start = time.perf_counter()
  run()
  compile_s = time.perf_counter() - start
  best = min(_timed(run) for _ in range(args.repeats))
  members = len(seeds) * args.grid_points
  return {"devices": n_devices, "members": members, "seconds": best,
          "members_per_s": members / best, "first_call_s": compile_s}


DP_MODELS = {  # name: (sizes, batch size, samples)
    "small": ((2, 16, 16, 1), 16, 512),
    "wide": ((32, 256, 256, 4), 256, 4096),
}


def data_parallel_worker(n_devices, args):
  import jax
  import numpy as np

  import jaxreg

  mesh = None if n_devices == 1 else jax.make_mesh((n_devices,), ("data",),
                                                   devices=jax.local_devices()[:n_devices])
  out = {}
  for name, (sizes, batch, n) in DP_MODELS.items():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, sizes[0])).astype(np.float32)
    t = np.tanh(x[:, :sizes[-1]] * x[:, -sizes[-1]:]).astype(np.float32)
    net = jaxreg.MLP(sizes, "tanh")
    params = net.init(jax.random.key(0), np.float32)
    config = jaxreg.TrainConfig(learning_rate=0.01, batch_size=batch, epochs=args.dp_epochs)

    def run(net=net, params=params, x=x, t=t, config=config):
      return jaxreg.train(net, params, (x, t), config, mesh=mesh, progress=False)[0]

    run()
    best = min(_timed(run) for _ in range(args.repeats))
    steps = args.dp_epochs * (n // batch)
    out[name] = {"devices": n_devices, "seconds": best, "steps_per_s": steps / best}
  return out


def _timed(fn):
  import jax
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def device_name():
  import jax
  d = jax.local_devices()[0]
  return f"{d.platform}: {d.device_kind}"


def worker(args):
  import jax
  out = {"device": device_name(), "device_count": jax.local_device_count(),
         "sweep": sweep_worker(args.worker, args)}
  if args.data_parallel:
    out["data_parallel"] = data_parallel_worker(args.worker, args)
  print(json.dumps(out))


def run_one(n, args):
  env = dict(os.environ)
  if args.platform == "cpu":
    env.update(JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(n))
  cmd = [sys.executable, __file__, "--worker", str(n)] + [
      a for a in sys.argv[1:] if a not in ("--worker",)]
  out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
  if out.returncode:
    raise SystemExit(f"bench_scale: the {n}-device run failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def _best(a, b):
  """Per measurement, the faster of two runs' results."""
  if "seconds" in a:
    return a if a["seconds"] <= b["seconds"] else b
  return {k: _best(a[k], b[k]) if isinstance(a[k], dict) else a[k] for k in a}


def table(rows, rate, unit):
  base = rows[0][rate]
  lines = [f"| devices | seconds | {unit} | speed-up | efficiency |",
           "|---:|---:|---:|---:|---:|"]
  for r in rows:
    speedup = r[rate] / base
    lines.append(f"| {r['devices']} | {r['seconds']:.3f} | {r[rate]:.1f} | {speedup:.2f}× | "
                 f"{speedup / r['devices']:.0%} |")
  return "\n".join(lines)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--devices", default="1,2,4,8", help="device counts (default 1,2,4,8)")
  p.add_argument("--platform", default="cpu", choices=("cpu", "gpu", "tpu"))
  p.add_argument("--seeds", type=int, default=16)
  p.add_argument("--grid-points", type=int, default=4)
  p.add_argument("--epochs", type=int, default=30)
  p.add_argument("--repeats", type=int, default=3, help="timed calls per process (best counts)")
  p.add_argument("--rounds", type=int, default=1,
                 help="run every device count this many times, interleaved (best counts)")
  p.add_argument("--data-parallel", action="store_true", help="also time data-parallel train")
  p.add_argument("--dp-epochs", type=int, default=3)
  p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker is not None:
    worker(args)
    return
  counts = [int(v) for v in args.devices.split(",")]
  results = [run_one(n, args) for n in counts]
  for _ in range(args.rounds - 1):  # again, keeping each count's best: drift and noise even out
    for i, n in enumerate(counts):
      results[i] = _best(results[i], run_one(n, args))
  available = results[0]["device_count"] if args.platform != "cpu" else None
  print(f"device: {results[0]['device']}; CPU cores visible: {os.cpu_count()}"
        + (f"; devices available: {available}" if available else ""))
  sweep = [r["sweep"] for r in results]
  print(f"\ntrain_many: {sweep[0]['members']} members (MLP 2-16-16-1, {args.epochs} epochs, "
        f"batch 10, 200 samples), best of {args.rounds} × {args.repeats}; first call (compile) "
        + ", ".join(f"{r['first_call_s']:.1f} s" for r in sweep) + "\n")
  print(table(sweep, "members_per_s", "members/s"))
  if args.data_parallel:
    for name, (sizes, batch, n) in DP_MODELS.items():
      dp = [r["data_parallel"][name] for r in results]
      print(f"\ntrain, data parallel ({name}): MLP {'-'.join(map(str, sizes))}, batch {batch}, "
            f"{n} samples, {args.dp_epochs} epochs\n")
      print(table(dp, "steps_per_s", "steps/s"))


if __name__ == "__main__":
  main()
