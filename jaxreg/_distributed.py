"""Start a multi-process run, build member meshes and bring results to the host.

One process per host (or per group of local devices) runs the same program; JAX's
own ``jax.distributed`` joins them into one set of global devices. This module only
resolves *where* the coordinator is and *who* this process is, then hands over to
``jax.distributed.initialize``; importing it has no side effects.
"""

import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh

COORDINATOR_ENV = "JAXREG_COORDINATOR"
NUM_PROCESSES_ENV = "JAXREG_NUM_PROCESSES"
PROCESS_ID_ENV = "JAXREG_PROCESS_ID"
_LAUNCHER_ENVS = (COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV)
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class ProcessInfo(NamedTuple):
  """Where this process stands in a (possibly multi-process) run.

  Attributes:
    process_index: This process's index, ``jax.process_index()``.
    process_count: Number of processes, ``jax.process_count()``.
    local_device_count: Devices this process drives, ``jax.local_device_count()``.
    device_count: Devices of all processes together, ``jax.device_count()``.
  """
  process_index: int
  process_count: int
  local_device_count: int
  device_count: int


def process_info() -> ProcessInfo:
  """Returns this process's :class:`ProcessInfo` (one process when not distributed)."""
  return ProcessInfo(jax.process_index(), jax.process_count(), jax.local_device_count(),
                     jax.device_count())


def _check_positive_int(name: str, value: Any, *, minimum: int = 1) -> None:
  if isinstance(value, bool) or not isinstance(value, int):
    raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}.")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}.")


def _check_address(name: str, address: Any) -> None:
  if not isinstance(address, str):
    raise TypeError(f"{name} must be a 'host:port' string, got {type(address).__name__} "
                    f"{address!r}.")
  host, sep, port = address.rpartition(":")
  if not sep or not host or not port.isdigit():
    raise ValueError(f"{name} must look like 'host:port' (e.g. '127.0.0.1:12345'), "
                     f"got {address!r}.")


def _env_int(name: str) -> int:
  text = os.environ[name]
  try:
    return int(text)
  except ValueError:
    raise ValueError(f"environment variable {name} must be an integer, got {text!r}.") from None


def _from_launcher_env() -> tuple[str, int, int] | None:
  """The coordinator, process count and id set by ``launch_local``, or None when unset."""
  present = [name for name in _LAUNCHER_ENVS if os.environ.get(name)]
  if not present:
    return None
  missing = [name for name in _LAUNCHER_ENVS if name not in present]
  if missing:
    raise ValueError(f"environment variables {', '.join(_LAUNCHER_ENVS)} must be set together; "
                     f"found {', '.join(present)} but not {', '.join(missing)}.")
  return os.environ[COORDINATOR_ENV], _env_int(NUM_PROCESSES_ENV), _env_int(PROCESS_ID_ENV)


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None,
               *,
               num_cpu_devices: int | None = None,
               timeout_s: int = 300,
               heartbeat_timeout_s: int = 100,
               shutdown_timeout_s: int = 300,
               exit_on_error: bool = True) -> ProcessInfo:
  """Joins this process to a multi-process JAX run; call it before any JAX operation.

  Where the run is described, in order of precedence:

  1. the arguments ``coordinator_address``, ``num_processes``, ``process_id``;
  2. the environment variables ``JAXREG_COORDINATOR``, ``JAXREG_NUM_PROCESSES`` and
     ``JAXREG_PROCESS_ID`` (set together, e.g. by :func:`launch_local`);
  3. otherwise JAX's own cluster detection (SLURM, Open MPI, Kubernetes, TPU pods ...),
     which reads the variables those cluster managers set.

  A coordinator on a loopback address (``127.0.0.1``, ``localhost``) is also bound there,
  so a local run opens no port to the network.

  Args:
    coordinator_address: ``"host:port"`` of process 0's coordinator service.
    num_processes: Number of processes in the run.
    process_id: This process's index, ``0 <= process_id < num_processes``.
    num_cpu_devices: If given, the number of CPU devices this process exposes
      (``jax_num_cpu_devices``); no effect on GPU or TPU devices.
    timeout_s: Seconds to wait for all processes to join.
    heartbeat_timeout_s: Seconds without a heartbeat before a peer counts as dead.
    shutdown_timeout_s: Seconds the shutdown barrier waits for the other processes.
    exit_on_error: If True, an uncaught exception prints its traceback and ends this
      process at once with status 1, instead of leaving it in JAX's shutdown barrier
      (at exit) until ``shutdown_timeout_s``; launchers and cluster managers then see
      the failure and can end the other processes.

  Returns:
    This process's :class:`ProcessInfo`.

  Raises:
    ValueError, TypeError: For malformed arguments or a partial set of environment
      variables, before anything is started.
    RuntimeError: From JAX, when called twice or after a JAX operation has run.

  Examples:
    On each of two hosts (process 0 listening on ``10.0.0.1:1234``)::

      jaxreg.distributed.initialize("10.0.0.1:1234", num_processes=2, process_id=i)
  """
  if not isinstance(exit_on_error, bool):
    raise TypeError(f"exit_on_error must be a bool, got {type(exit_on_error).__name__}.")
  for name, value in (("timeout_s", timeout_s), ("heartbeat_timeout_s", heartbeat_timeout_s),
                      ("shutdown_timeout_s", shutdown_timeout_s)):
    _check_positive_int(name, value)
  if num_cpu_devices is not None:
    _check_positive_int("num_cpu_devices", num_cpu_devices)
  if coordinator_address is None and num_processes is None and process_id is None:
    from_env = _from_launcher_env()
    if from_env is not None:
      coordinator_address, num_processes, process_id = from_env
  if coordinator_address is not None:
    _check_address("coordinator_address", coordinator_address)
  if num_processes is not None:
    _check_positive_int("num_processes", num_processes)
  if process_id is not None:
    _check_positive_int("process_id", process_id, minimum=0)
    if num_processes is not None and process_id >= num_processes:
      raise ValueError(f"process_id must be < num_processes={num_processes}, got {process_id}.")
  bind_address = None
  if coordinator_address is not None:
    host = coordinator_address.rpartition(":")[0]
    if host in _LOOPBACK_HOSTS:
      bind_address = coordinator_address
  if num_cpu_devices is not None:
    jax.config.update("jax_num_cpu_devices", num_cpu_devices)
  jax.distributed.initialize(
      coordinator_address=coordinator_address, num_processes=num_processes,
      process_id=process_id, coordinator_bind_address=bind_address,
      initialization_timeout=timeout_s, heartbeat_timeout_seconds=heartbeat_timeout_s,
      shutdown_timeout_seconds=shutdown_timeout_s)
  if exit_on_error:
    sys.excepthook = _exiting_hook(sys.excepthook)
  return process_info()


def _exiting_hook(previous):
  """An ``excepthook`` that reports like ``previous``, then exits without the atexit handlers."""
  def hook(exc_type, exc, traceback):
    previous(exc_type, exc, traceback)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
  return hook


def shutdown() -> None:
  """Leaves the multi-process run (``jax.distributed.shutdown``); also runs at exit."""
  jax.distributed.shutdown()


def gather_to_host(tree: Any) -> Any:
  """Returns every array leaf of ``tree`` as a full NumPy array on this host.

  Arrays spanning several processes are gathered with
  ``jax.experimental.multihost_utils.process_allgather``; this is a collective, so every
  process must call ``gather_to_host`` with the same tree structure. Other leaves go
  through ``np.asarray``.

  Args:
    tree: A pytree of arrays (``jax.Array``, NumPy arrays or scalars).

  Returns:
    The same tree with NumPy arrays of the global shapes.
  """
  def to_host(leaf):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    return np.asarray(leaf)
  return jax.tree.map(to_host, tree)


def member_mesh(devices: Sequence[jax.Device] | None = None,
                *,
                shape: Sequence[int] | None = None,
                axis_names: Sequence[str] = ("seeds", "grid")) -> Mesh:
  """Builds a mesh with Auto axes for sharding the members of a sweep.

  Auto axes (rather than ``jax.make_mesh``'s default Explicit axes) let ``jit`` place
  the members of a ``vmap``-ped training loop without sharding-in-types rules
  rejecting its batch gathers.

  Args:
    devices: Devices of the mesh; default ``jax.devices()``, i.e. those of every process.
    shape: Size of each mesh axis, product equal to the number of devices; default all
      devices along the first axis and 1 along the others.
    axis_names: Names of the mesh axes, one per entry of ``shape``.

  Returns:
    A ``jax.sharding.Mesh`` whose axes are all ``AxisType.Auto``.

  Examples:
    >>> mesh = member_mesh(jax.devices()[:1])
    >>> dict(mesh.shape)
    {'seeds': 1, 'grid': 1}
  """
  if isinstance(axis_names, str) or not all(isinstance(n, str) for n in axis_names):
    raise TypeError(f"axis_names must be a sequence of str, got {axis_names!r}.")
  axis_names = tuple(axis_names)
  if not axis_names or len(set(axis_names)) != len(axis_names):
    raise ValueError(f"axis_names must be non-empty and distinct, got {axis_names!r}.")
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("devices must hold at least one device, got none.")
  if shape is None:
    shape = (len(devices),) + (1,) * (len(axis_names) - 1)
  shape = tuple(shape)
  for size in shape:
    _check_positive_int("each entry of shape", size)
  if len(shape) != len(axis_names):
    raise ValueError(f"shape and axis_names must have the same length, got shape={shape} "
                     f"and axis_names={axis_names}.")
  if int(np.prod(shape)) != len(devices):
    raise ValueError(f"shape must multiply to the number of devices ({len(devices)}), "
                     f"got shape={shape}.")
  return jax.make_mesh(shape, axis_names, axis_types=(AxisType.Auto,) * len(shape),
                       devices=devices)
