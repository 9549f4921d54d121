"""One process of the two-process test in tests/test_distributed.py.

Run by ``jaxreg.distributed.launch_local`` as ``python _dist_worker.py OUT [FAIL_ID]``:
joins the run, trains the sweep of :func:`sweep` with ``jaxreg.train_many`` on a
2 × 2 mesh over the global devices (the members padded from 3 seeds × 3 grid points
to 4 × 4) and (process 0) saves the results to ``OUT`` (``.npz``). With ``FAIL_ID``,
that process raises after joining (and so exits with status 1), while the others
block in the sweep's collectives until the launcher ends them.
"""

import sys

import jax
import numpy as np


def sweep():
  """``(args, kwargs)`` of the ``jaxreg.train_many`` call (float64; needs jax_enable_x64)."""
  import jaxreg
  x = np.linspace(-1.0, 1.0, 24 * 2).reshape(24, 2)
  t = np.sin(3.0 * x[:, :1]) + x[:, 1:] ** 2
  net = jaxreg.MLP((2, 3, 1), "tanh")
  config = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=3)
  return (net, (x, t), config), dict(seeds=[0, 1, 2], grid={"learning_rate": [0.05, 0.1, 0.2]})


def flat(result) -> dict:
  """``train_many``'s ``(params, history)`` as one flat dict of NumPy arrays."""
  params, history = result
  out = {f"param{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(params))}
  out.update({f"history_{k}": np.asarray(v) for k, v in history.items()})
  return out


def main(out_path: str, fail_id: int | None) -> None:
  import jaxreg
  from jaxreg import distributed

  info = distributed.initialize(timeout_s=60, heartbeat_timeout_s=30, shutdown_timeout_s=30)
  jax.config.update("jax_enable_x64", True)
  if info.process_index == fail_id:
    raise RuntimeError(f"deliberate failure of process {fail_id}")
  args, kwargs = sweep()
  mesh = distributed.member_mesh(shape=(2, 2))
  result = flat(jaxreg.train_many(*args, **kwargs, mesh=mesh))
  if info.process_index == 0:
    np.savez(out_path, devices=jax.device_count(), processes=info.process_count, **result)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
