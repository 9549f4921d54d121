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

Before anything is timed the process is warmed up with one trivial jitted
call (JAX's backend start-up and its first compile, paid once per process;
the seconds are printed), so every tool's "first call" is its own tracing
and compiling, not the process's start-up, whichever tool is timed first.

Also per size: the edit-and-recheck loop (`jaxreg.check` where the loss and the
derivation are re-defined before every call, fresh function objects of the same
structure, as a student re-running a notebook cell), and the cost of the
checker's cache keys: tracing the loss and the derivation to jaxprs and
building the programs' keys, which every check pays. A last table times the
edit-and-recheck loop on a 64×32 tanh layer against `jax.test_util.check_grads`
of the same re-defined loss.

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
from jaxreg._checker import program_cache  # noqa: E402
from jaxreg._checker import reference as check_ref  # noqa: E402

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

  def fresh_check():            # loss and derivation re-defined before every check
    def loss(p, x, t):
      return model.loss(p, x, t)

    def derivation(p, x, t):
      return model.backprop(p, x, t)
    return jaxreg.check(derivation, loss, params, x, t)

  r_first, r_steady, rep_fresh = timed(fresh_check)
  rows.append(("jaxreg.check, re-defined functions", r_first, r_steady, not rep_fresh.ok))

  split = check_ref.Split((x, t), {})

  def trace_and_key():
    traced, loss_key = check_ref.trace_loss(model.loss, split, params)
    program = program_cache.trace(lambda p, dyn: model.backprop(p, *dyn), params, split.dyn)
    return traced, hash((loss_key, program.key))

  _, k_steady, (traced, _) = timed(trace_and_key)
  _, p_steady, _ = timed(lambda: program_cache.program_key(traced.jaxpr))
  keys = (k_steady, p_steady, len(traced.jaxpr.eqns))

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
  print(f"  cache keys, paid by every check: tracing the loss and the derivation to jaxprs and "
        f"keying them {k_steady:.5f} s (keying the loss's {keys[2]} equations alone "
        f"{p_steady:.5f} s)")
  return n, c_first, c_steady, f_steady, rep, r_steady, keys


def bench_edit_loop(batch):
  """The edit-and-recheck loop on one 64×32 tanh layer: check vs check_grads, fresh closures."""
  rng = np.random.default_rng(1)
  params = {"W": jnp.asarray(rng.normal(size=(64, 32)) / 8), "b": jnp.asarray(rng.normal(size=32))}
  x = jnp.asarray(rng.normal(size=(batch, 64)))
  t = jnp.asarray(rng.normal(size=(batch, 32)))

  def define():
    def loss(p, x, t):
      return 0.5 * jnp.mean(jnp.sum((jnp.tanh(x @ p["W"] + p["b"]) - t) ** 2, axis=1))

    def derivation(p, x, t):
      y = jnp.tanh(x @ p["W"] + p["b"])
      dz = (y - t) * (1 - y ** 2) / x.shape[0]
      return {"W": x.T @ dz, "b": jnp.sum(dz, axis=0)}
    return loss, derivation

  def check():
    loss, derivation = define()
    return jaxreg.check(derivation, loss, params, x, t)

  def check_grads():
    loss, _ = define()
    try:
      jtu.check_grads(lambda p: loss(p, x, t), (params,), order=1, modes=("rev",))
      return True
    except AssertionError:
      return False

  c_first, c_steady, rep = timed(check, min_time=1.0)
  g_first, g_steady, g_ok = timed(check_grads, min_time=1.0)
  misses = program_cache.stats().misses
  timed(check, min_time=0.3)
  recompiled = program_cache.stats().misses - misses
  print(f"\n== edit-and-recheck: 64×32 tanh layer ({64 * 32 + 32:,} params), batch {batch}, "
        "float64, loss and derivation re-defined before every call")
  print(f"  {'tool':34s} {'first':>10s} {'steady':>10s}  false failure")
  print(f"  {'jaxreg.check':34s} {c_first:10.4f} {c_steady:10.5f}  {'no' if rep.ok else 'YES'}")
  print(f"  {'jax.test_util.check_grads':34s} {g_first:10.4f} {g_steady:10.5f}  "
        f"{'no' if g_ok else 'YES'}")
  print(f"  check / check_grads = {c_steady / g_steady:.2f}× (target ≤ 5× or ≤ 0.1 s); "
        f"programs compiled again in the steady loop: {recompiled}")


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--sizes", default="1e3,1e4,1e5,1e6")
  ap.add_argument("--batch", type=int, default=32)
  args = ap.parse_args()
  torch = torch_or_none()
  t0 = time.perf_counter()
  jax.block_until_ready(jax.jit(lambda a: a + 1)(1.0))   # the process's one-time warm-up
  warm_up = time.perf_counter() - t0
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, "
        f"torch {'not installed' if torch is None else torch.__version__}")
  print(f"process warm-up (one trivial jitted call before any timing; in no row): {warm_up:.3f} s")
  summary = []
  for label in args.sizes.split(","):
    summary.append((label,) + bench_size(label, ARCHS[label], args.batch, torch))
  bench_edit_loop(args.batch)
  print("\nsummary: jaxreg.check")
  for label, n, c_first, c_steady, f_steady, rep, r_steady, keys in summary:
    print(f"  {label}: {n:>9,} params  first {c_first:.3f} s (incl. compile)  steady {c_steady:.5f} s"
          f"  = {c_steady / f_steady:.2f}× floor  re-defined {r_steady:.5f} s"
          f"  keys {keys[0]:.5f} s  report.ok={rep.ok}  referee={rep.referee.verdict}")


if __name__ == "__main__":
  main()
