"""Multi-process runs the JAX way: ``jaxreg.distributed``.

``initialize`` joins a process to a ``jax.distributed`` run (from arguments, the
launcher's environment variables, or a cluster manager's), ``launch_local`` starts N
local processes of one program, ``member_mesh`` and ``gather_to_host`` place a sweep's
members on the global devices and bring the results back.

With a mesh, ``jaxreg.train_many(..., mesh=member_mesh())`` spreads a sweep's members over
its devices and ``jaxreg.train(..., mesh=...)`` splits each batch over them (data
parallel); in a multi-process run every process makes the same call.
"""

from jaxreg._distributed import ProcessInfo as ProcessInfo
from jaxreg._distributed import gather_to_host as gather_to_host
from jaxreg._distributed import initialize as initialize
from jaxreg._distributed import member_mesh as member_mesh
from jaxreg._distributed import process_info as process_info
from jaxreg._distributed import shutdown as shutdown
from jaxreg._distributed_launch import LaunchResult as LaunchResult
from jaxreg._distributed_launch import ProcessResult as ProcessResult
from jaxreg._distributed_launch import free_port as free_port
from jaxreg._distributed_launch import launch_local as launch_local

__all__ = [
    "LaunchResult",
    "ProcessInfo",
    "ProcessResult",
    "free_port",
    "gather_to_host",
    "initialize",
    "launch_local",
    "member_mesh",
    "process_info",
    "shutdown",
]
