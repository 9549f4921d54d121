"""One process of the two-process test in tests/test_distributed.py.

Run by ``jaxreg.distributed.launch_local`` as ``python _dist_worker.py OUT [FAIL_ID]``:
joins the run, trains a sweep of linear models with the members sharded over the
global mesh, gathers the results and (process 0) saves them to ``OUT`` (``.npz``).
With ``FAIL_ID``, that process raises after joining (and so exits with status 1), while
the others block in the sweep's collectives until the launcher ends them.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

N_MEMBERS = 8
N_STEPS = 40


def members() -> tuple[np.ndarray, np.ndarray]:
  """The sweep: one learning rate and one seed per member."""
  learning_rates = np.linspace(0.05, 0.4, N_MEMBERS)
  seeds = np.arange(N_MEMBERS, dtype=np.uint32)
  return learning_rates, seeds


def train_one(learning_rate, seed):
  """Full-batch gradient descent of a linear model on fixed data, as one ``lax.scan``."""
  x = jnp.linspace(-1.0, 1.0, 32 * 3).reshape(32, 3)
  y = jnp.sin(3.0 * x[:, 0]) + x[:, 1] * x[:, 2]
  params = (jax.random.normal(jax.random.key(seed), (3,)), jnp.zeros(()))

  def loss(params):
    w, b = params
    return jnp.mean((x @ w + b - y) ** 2)

  def step(params, _):
    value, grads = jax.value_and_grad(loss)(params)
    return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), value

  (w, b), losses = jax.lax.scan(step, params, None, length=N_STEPS)
  return {"w": w, "b": b, "losses": losses}


sweep = jax.vmap(train_one)


def main(out_path: str, fail_id: int | None) -> None:
  from jax.sharding import NamedSharding, PartitionSpec

  from jaxreg import distributed

  info = distributed.initialize(timeout_s=60, heartbeat_timeout_s=30, shutdown_timeout_s=30)
  jax.config.update("jax_enable_x64", True)
  if info.process_index == fail_id:
    raise RuntimeError(f"deliberate failure of process {fail_id}")
  mesh = distributed.member_mesh()
  by_member = NamedSharding(mesh, PartitionSpec("seeds"))
  inputs = [jax.make_array_from_callback(a.shape, by_member, lambda index, a=a: a[index])
            for a in members()]
  run = jax.jit(sweep, in_shardings=(by_member, by_member), out_shardings=by_member)
  result = distributed.gather_to_host(run(*inputs))
  if info.process_index == 0:
    np.savez(out_path, devices=jax.device_count(), processes=info.process_count, **result)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
