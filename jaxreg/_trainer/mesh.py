"""Placing a run on a ``jax.sharding.Mesh``: the `mesh=` of :func:`jaxreg.train_many` and :func:`jaxreg.train`.

Contract: every array a sharded run reads is made a *global* array on the
mesh (:func:`put`), built from host values that every process holds alike
(``jax.make_array_from_callback``), so the same code runs in one process and
in a ``jax.distributed`` run over several. Meshes are used with Auto axes
(:func:`auto`): ``jit`` then places the work by propagation, where Explicit
axes (the default of ``jax.make_mesh``) would reject the batch gathers of a
``vmap``-ped training loop.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec


class MemberAxes(NamedTuple):
  """Which mesh axes carry the seeds and which the grid points of a sweep (``()``: none)."""
  seeds: tuple[str, ...]
  grid: tuple[str, ...]


def auto(fn: str, mesh) -> Mesh:
  """``mesh`` with every axis ``AxisType.Auto`` (the same devices and names)."""
  if not isinstance(mesh, Mesh):
    raise TypeError(f"{fn}: `mesh` must be a jax.sharding.Mesh (e.g. "
                    f"jaxreg.distributed.member_mesh() or jax.make_mesh(...)), got "
                    f"{type(mesh).__name__}.")
  if all(t == AxisType.Auto for t in mesh.axis_types):
    return mesh
  return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def axis_size(mesh: Mesh, names: tuple[str, ...]) -> int:
  """Number of devices along the mesh axes ``names`` together (1 for none)."""
  return int(np.prod([mesh.shape[n] for n in names], dtype=np.int64))


def _names(fn: str, mesh: Mesh, which: str, value) -> tuple[str, ...]:
  if value is None:
    return ()
  names = (value,) if isinstance(value, str) else value
  if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) for n in names):
    raise TypeError(f"{fn}: `axes[{which}]` must be a mesh axis name, a tuple of names or None, "
                    f"got {value!r}.")
  unknown = [n for n in names if n not in mesh.axis_names]
  if unknown:
    raise ValueError(f"{fn}: `axes[{which}]` names {unknown}, which are not axes of `mesh`; "
                     f"expected names among {list(mesh.axis_names)}.")
  return tuple(names)


def member_axes(fn: str, mesh: Mesh, axes, *, n_seeds: int, has_grid: bool) -> MemberAxes:
  """The mesh axes of the seeds and of the grid points, from ``axes`` or by default.

  Default: without a grid, the seeds over every axis; with one seed, the grid
  points over every axis; else the seeds over the first axis and the grid
  points over the others.
  """
  names = tuple(mesh.axis_names)
  if axes is None:
    if not has_grid:
      return MemberAxes(names, ())
    if n_seeds == 1:
      return MemberAxes((), names)
    return MemberAxes(names[:1], names[1:])
  if isinstance(axes, str) or not isinstance(axes, (tuple, list)) or len(axes) != 2:
    raise TypeError(f"{fn}: `axes` must be a pair (seed_axes, grid_axes), each a mesh axis name, "
                    f"a tuple of names or None, got {axes!r}.")
  out = MemberAxes(_names(fn, mesh, "0", axes[0]), _names(fn, mesh, "1", axes[1]))
  both = out.seeds + out.grid
  if len(set(both)) != len(both):
    raise ValueError(f"{fn}: `axes` names a mesh axis twice: {axes!r}.")
  if not has_grid and axis_size(mesh, out.grid) > 1:
    raise ValueError(f"{fn}: `axes[1]` = {axes[1]!r} spreads grid points over "
                     f"{axis_size(mesh, out.grid)} devices, but there is no `grid`; pass "
                     f"axes=({axes[0]!r}, None) or leave `axes` out.")
  return out


def _spec(*dims: tuple[str, ...]) -> PartitionSpec:
  return PartitionSpec(*(d if len(d) > 1 else (d[0] if d else None) for d in dims))


def sharding(mesh: Mesh, *dims: tuple[str, ...]) -> NamedSharding:
  """``NamedSharding`` whose leading array axes lie along the mesh axes ``dims`` (rest replicated)."""
  return NamedSharding(mesh, _spec(*dims))


def put(tree: Any, shard: NamedSharding) -> Any:
  """Every leaf of ``tree`` (host values equal in every process) as a global array with ``shard``.

  PRNG key arrays travel as their key data and are wrapped again.
  """
  def one(leaf):
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      impl = jax.random.key_impl(leaf)
      return jax.random.wrap_key_data(one(jax.random.key_data(leaf)), impl=impl)
    value = np.asarray(leaf)
    return jax.make_array_from_callback(value.shape, shard, lambda index: value[index])
  return jax.tree.map(one, tree)


def replicated(mesh: Mesh) -> NamedSharding:
  """The sharding that holds a whole copy on every device of ``mesh``."""
  return NamedSharding(mesh, PartitionSpec())
