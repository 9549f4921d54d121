"""Time `jaxreg.check` on float64 MLPs of about 1e3 … 1e6 parameters, beside its competitors.

For each size, in one process and on the same data:

* floor: a bare jitted `jax.grad(loss)`, the jitted hand backprop and a jitted
  elementwise comparison (what any check must at least do);
* `jaxreg.check(model.backprop, model.loss, params, x, t)` (referee included);
* `jax.test_util.check_grads` on the jitted loss (default settings, reverse mode);
* `torch.autograd.gradcheck`, default and `fast_mode=True`, on the same MLP in
  torch float64, when torch is importable (the default mode is skipped where
  its 2 forward passes per parameter would take more than 60 s).

Printed per tool: compile + first call, steady state (median), the ratio to the
floor, and whether it reports a false failure (every derivation here is correct).

Usage:
  python scripts/bench_check.py [--sizes 1e3,1e4,1e5,1e6] [--batch 32]
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxreg  # noqa: E402  (after enabling x64)
from jax import test_util as jtu  # noqa: E402

ARCHS = {  # ~params: layer sizes
    "1e3": (20, 32, 10),
    "1e4": (64, 128, 10),
    "1e5": (256, 256, 128, 10),
    "1e6": (784, 1024, 128, 10),
}


def timed(fn, min_time=0.5, max_reps=30):
  """``(first call seconds, median steady-state seconds, last result)``."""
  t0 = time.perf_counter()
  out = fn()
  first = time.perf_counter() - t0
  times = []
  t_end = time.perf_counter() + min_time
  while len(times) < 3 or (time.perf_counter() < t_end and len(times) < max_reps):
    t0 = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times), out


def torch_or_none():
  try:
    import torch  # pylint: disable=import-outside-toplevel
    return torch
  except ImportError:
    return None


def bench_size(label, sizes, batch, torch):
  model = jaxreg.MLP(sizes, "relu", kernel_regularizer=jaxreg.penalties.l2(1e-3))
  params = model.init(jax.random.key(0))
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(batch, sizes[0])))
  t = jnp.asarray(rng.normal(size=(batch, sizes[-1])))
  n = model.num_params()
  rows = []

  # floor: jitted grad + jitted hand backprop + jitted elementwise compare
  grad_fn = jax.jit(jax.grad(model.loss))
  hand_fn = jax.jit(model.backprop)

  @jax.jit
  def compare(a, b):
    return jnp.all(jnp.stack([jnp.all(jnp.abs(u - r) <= 1e-10 * jnp.maximum(jnp.abs(r), 1e-3 * jnp.max(jnp.abs(r))))
                              for u, r in zip(jax.tree.leaves(a), jax.tree.leaves(b))]))

  def floor():
    return bool(compare(hand_fn(params, x, t), grad_fn(params, x, t)))

  f_first, f_steady, f_ok = timed(floor)
  rows.append(("floor: jit grad + hand + compare", f_first, f_steady, not f_ok))

  def check():
    return jaxreg.check(model.backprop, model.loss, params, x, t)

  c_first, c_steady, rep = timed(check)
  rows.append(("jaxreg.check", c_first, c_steady, not rep.ok))
  if not rep.ok:
    print(rep)

  loss_p = jax.jit(lambda p: model.loss(p, x, t))

  def check_grads():
    try:
      jtu.check_grads(loss_p, (params,), order=1, modes=("rev",))
      return True
    except AssertionError:
      return False

  g_first, g_steady, g_ok = timed(check_grads)
  rows.append(("jax.test_util.check_grads", g_first, g_steady, not g_ok))

  if torch is None:
    rows.append(("torch gradcheck (default)", None, None, "skipped: torch not installed"))
    rows.append(("torch gradcheck (fast_mode)", None, None, "skipped: torch not installed"))
  else:
    tp = [torch.tensor(np.asarray(l[k]), dtype=torch.float64, requires_grad=True)
          for l in params for k in ("w", "b")]
    tx = torch.tensor(np.asarray(x))
    tt = torch.tensor(np.asarray(t))

    def tloss(*ps):
      a = tx
      for i in range(0, len(ps), 2):
        a = a @ ps[i] + ps[i + 1]
        if i + 2 < len(ps):
          a = torch.relu(a)
      pen = sum(1e-3 * (ps[i] ** 2).sum() for i in range(0, len(ps), 2))
      return 0.5 * ((a - tt) ** 2).sum() / batch + pen

    with torch.no_grad():
      tloss(*tp)
      t0 = time.perf_counter()
      for _ in range(20):
        tloss(*tp)
      t_fwd = (time.perf_counter() - t0) / 20
    for fast in (False, True):
      name = f"torch gradcheck ({'fast_mode' if fast else 'default'})"
      est = 2 * n * t_fwd      # default mode: two forward passes per parameter
      if not fast and est > 60:
        rows.append((name, None, None, f"skipped: ~{est:.0f} s estimated (> 60 s)"))
        continue

      def run(fast=fast):
        try:
          return torch.autograd.gradcheck(tloss, tuple(tp), fast_mode=fast, raise_exception=True)
        except Exception:  # pylint: disable=broad-except
          return False

      first, steady, ok = timed(run, min_time=0.0, max_reps=3)
      rows.append((name, first, steady, not ok))

  print(f"\n== {label}: sizes {sizes}, {n:,} params, batch {batch}, float64")
  print(f"  {'tool':34s} {'compile+first':>13s} {'steady':>10s} {'× floor':>8s}  false failure")
  for name, first, steady, bad in rows:
    if first is None:
      print(f"  {name:34s} {'-':>13s} {'-':>10s} {'-':>8s}  {bad}")
      continue
    print(f"  {name:34s} {first:13.4f} {steady:10.5f} {steady / f_steady:8.2f}  "
          f"{'YES' if bad else 'no'}")
  return n, c_first, c_steady, f_steady, rep


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--sizes", default="1e3,1e4,1e5,1e6")
  ap.add_argument("--batch", type=int, default=32)
  args = ap.parse_args()
  torch = torch_or_none()
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, "
        f"torch {'not installed' if torch is None else torch.__version__}")
  summary = []
  for label in args.sizes.split(","):
    summary.append((label,) + bench_size(label, ARCHS[label], args.batch, torch))
  print("\nsummary: jaxreg.check")
  for label, n, c_first, c_steady, f_steady, rep in summary:
    print(f"  {label}: {n:>9,} params  first {c_first:.3f} s (incl. compile)  steady {c_steady:.5f} s"
          f"  = {c_steady / f_steady:.2f}× floor  report.ok={rep.ok}  referee={rep.referee.verdict}")


if __name__ == "__main__":
  main()
