"""Sharded runs on the 4 CPU devices of tests/conftest.py: train_many(mesh=...) spreads the
members, train(mesh=...) splits each batch; both give mesh=None's numbers (float64)."""

import jax
import numpy as np
import pytest
from jax.sharding import AxisType

import jaxreg
from jaxreg import distributed
from jaxreg._trainer import epoch as _epoch
from jaxreg._trainer import train as _train

from _train_util import assert_trees_close, compiles

NET = jaxreg.MLP((2, 3, 1), "tanh")
X = np.linspace(-1.0, 1.0, 24 * 2).reshape(24, 2)
T = np.sin(3.0 * X[:, :1]) + X[:, 1:] ** 2
CFG = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=3)
GRID = {"learning_rate": [0.05, 0.1, 0.2]}
TOL = dict(rtol=0, atol=1e-9)


def _many(**kwargs):
  return jaxreg.train_many(NET, (X, T), CFG, **kwargs)


@pytest.fixture(scope="module")
def seeds_only():
  """3 seeds, no grid, without a mesh (3 members on 4 devices: padded)."""
  return _many(seeds=[0, 1, 2])


@pytest.fixture(scope="module")
def seeds_by_grid():
  """4 seeds × 3 grid points without a mesh."""
  return _many(seeds=[0, 1, 2, 3], grid=GRID)


def test_devices_are_set_before_jax_starts():
  assert jax.device_count() == 4 and jax.default_backend() == "cpu"


def test_seeds_only_padded(seeds_only):
  got = _many(seeds=[0, 1, 2], mesh=distributed.member_mesh())
  assert got[1]["train_loss"].shape == (3, 3)
  assert all(isinstance(a, np.ndarray) for a in jax.tree.leaves(got))
  assert_trees_close(got, seeds_only, **TOL)


def test_seeds_by_grid_and_no_retrace(seeds_by_grid):
  mesh = distributed.member_mesh(shape=(4, 1))
  got = _many(seeds=[0, 1, 2, 3], grid=GRID, mesh=mesh)
  assert got[1]["train_loss"].shape == (3, 4, 3)
  assert_trees_close(got, seeds_by_grid, **TOL)
  with compiles() as names:
    again = _many(seeds=[0, 1, 2, 3], grid=GRID, mesh=mesh)
  assert names == []
  assert_trees_close(again, got, rtol=0, atol=0)


def test_explicit_mesh_grid_axis_padded(seeds_by_grid):
  mesh = jax.make_mesh((2, 2), ("a", "b"), axis_types=(AxisType.Explicit,) * 2)
  # seeds along "a" (4 on 2 devices), grid points along "b" (3 padded to 4)
  got = _many(seeds=[0, 1, 2, 3], grid=GRID, mesh=mesh)
  assert_trees_close(got, seeds_by_grid, **TOL)


@pytest.mark.parametrize("axes, error, match", [
    (("seeds",), TypeError, r"`axes` must be a pair \(seed_axes, grid_axes\)"),
    (("seeds", "nope"), ValueError, r"`axes\[1\]` names \['nope'\], which are not axes"),
    (("seeds", "seeds"), ValueError, "names a mesh axis twice"),
    ((None, 3), TypeError, r"`axes\[1\]` must be a mesh axis name"),
])
def test_bad_axes(axes, error, match):
  with pytest.raises(error, match=match):
    _many(seeds=[0], grid=GRID, mesh=distributed.member_mesh(), axes=axes)


def test_grid_axes_without_a_grid():
  with pytest.raises(ValueError, match="there is no `grid`"):
    _many(seeds=[0], mesh=distributed.member_mesh(shape=(1, 4)), axes=("seeds", "grid"))


def test_mesh_must_be_a_mesh():
  with pytest.raises(TypeError, match="`mesh` must be a jax.sharding.Mesh"):
    _many(seeds=[0], mesh=jax.devices())


def test_member_axes_defaults():
  from jaxreg._trainer.mesh import MemberAxes, member_axes
  mesh = distributed.member_mesh(shape=(2, 2))
  assert member_axes("f", mesh, None, n_seeds=3, has_grid=True) == MemberAxes(("seeds",), ("grid",))
  assert member_axes("f", mesh, None, n_seeds=3, has_grid=False) == MemberAxes(("seeds", "grid"), ())
  assert member_axes("f", mesh, None, n_seeds=1, has_grid=True) == MemberAxes((), ("seeds", "grid"))
  assert member_axes("f", mesh, (None, ("grid", "seeds")), n_seeds=3,
                     has_grid=True) == MemberAxes((), ("grid", "seeds"))


# ------------------------------------------------------------- data parallel
def test_train_data_parallel_equals_train(monkeypatch, tmp_path):
  params = NET.init(jax.random.key(0))
  cfg = CFG.replace(keep_prob=(1.0, 0.8))   # dropout: per-step randomness goes along
  want = jaxreg.train(NET, params, (X, T), cfg, val_data=(X, T))
  mesh = jax.make_mesh((4,), ("data",))
  got = jaxreg.train(NET, params, (X, T), cfg, val_data=(X, T), mesh=mesh)
  assert_trees_close(got, want, **TOL)
  assert all(a.sharding.is_fully_replicated for a in jax.tree.leaves(got[0]))
  # as process 1 of a multi-process run: no files, the other callbacks still run
  monkeypatch.setattr(jax, "process_index", lambda *args: 1)
  seen = []
  again = jaxreg.train(NET, params, (X, T), cfg, val_data=(X, T), mesh=mesh,
                       callbacks=[jaxreg.MetricsLog(tmp_path / "m.jsonl"),
                                  jaxreg.SaveCheckpoint(tmp_path / "c.npz"),
                                  lambda state, history: seen.append(len(history["train_loss"]))])
  assert seen == [1, 2, 3] and list(tmp_path.iterdir()) == []
  assert_trees_close(again, got, rtol=0, atol=0)


def test_train_data_parallel_splits_the_batch():
  """The compiled epoch sums the gradient over the devices' batch slices."""
  mesh = distributed.member_mesh(shape=(4, 1))
  sharding = _train._batch_sharding(mesh, CFG)
  assert sharding.spec == jax.sharding.PartitionSpec("seeds")
  plan = _epoch.make_plan(NET, CFG, X.shape[0], False, None, batch_sharding=sharding)
  state = _epoch.init_state(plan, NET.init(jax.random.key(0)), _epoch.config_hyperparams(plan, CFG))
  hlo = _epoch._epoch_jit.lower(plan, state, jax.random.key(0), X, T, None, None).compile().as_text()
  assert "all-reduce" in hlo


def test_train_batch_size_must_divide_over_the_mesh():
  with pytest.raises(ValueError, match=r"batch_size.*multiple of the size of `mesh`'s first "
                     r"axis 'data' \(4 devices\).*got batch_size=6; use e.g. batch_size=8"):
    jaxreg.train(NET, NET.init(jax.random.key(0)), (X, T), CFG.replace(batch_size=6),
                 mesh=jax.make_mesh((4,), ("data",)))
