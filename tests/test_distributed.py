"""jaxreg.distributed: initialize's argument checks, member meshes, gathering, and the
local launcher running a member-sharded sweep over 2 processes x 2 CPU devices."""

import pathlib
import sys
import time

import jax
import numpy as np
import pytest
from jax.sharding import AxisType

import jaxreg
from jaxreg import distributed

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _dist_worker  # noqa: E402

WORKER = pathlib.Path(__file__).parent / "_dist_worker.py"


def test_two_processes_match_one_process(tmp_path):
  out = tmp_path / "sweep.npz"
  result = distributed.launch_local(WORKER, 2, devices_per_process=2, args=[str(out)],
                                    timeout_s=300)  # compiling a sweep on a busy 2-core machine
  assert result.ok, result.describe()
  got = dict(np.load(out))
  assert (got.pop("devices"), got.pop("processes")) == (4, 2)
  args, kwargs = _dist_worker.sweep()
  want = _dist_worker.flat(jaxreg.train_many(*args, **kwargs))
  assert got.keys() == want.keys()
  assert got["history_train_loss"].shape == (3, 3, 3)
  for name in want:
    assert got[name].dtype == want[name].dtype
    np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-9, err_msg=name)


def test_failing_process_ends_the_others(tmp_path):
  start = time.monotonic()
  result = distributed.launch_local(WORKER, 2, devices_per_process=2,
                                    args=[str(tmp_path / "never.npz"), "1"], timeout_s=120)
  elapsed = time.monotonic() - start
  assert not result.ok and not result.timed_out
  assert result.failed_process == 1
  assert result.processes[1].returncode == 1 and not result.processes[1].killed
  assert "deliberate failure of process 1" in result.processes[1].stderr
  assert result.processes[0].killed and result.processes[0].returncode != 0
  assert elapsed < 30, result.describe()
  assert "process 1 failed" in result.describe()
  assert not (tmp_path / "never.npz").exists()


def test_timeout_ends_every_process(tmp_path):
  script = tmp_path / "sleep.py"
  script.write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
  result = distributed.launch_local(script, 2, timeout_s=1.0)
  assert result.timed_out and not result.ok and result.failed_process is None
  assert all(p.killed and p.returncode < 0 for p in result.processes)


def test_launcher_sets_the_run_environment(tmp_path):
  script = tmp_path / "env.py"
  script.write_text(
      "import os\n"
      "print(os.environ['JAXREG_PROCESS_ID'], os.environ['JAXREG_NUM_PROCESSES'],\n"
      "      os.environ['JAX_NUM_CPU_DEVICES'], os.environ['JAXREG_COORDINATOR'],\n"
      "      os.environ['JAX_PLATFORMS'], os.environ['PYTHONPATH'].split(os.pathsep)[0])\n")
  result = distributed.launch_local(script, 2, devices_per_process=3, timeout_s=60)
  assert result.ok, result.describe()
  for p in result.processes:
    assert p.stdout.split() == [str(p.process_id), "2", "3", result.coordinator_address, "cpu",
                                str(pathlib.Path(distributed.__file__).parent.parent)]
  assert result.coordinator_address.startswith("127.0.0.1:")


def test_launcher_runs_a_module_by_name():
  result = distributed.launch_local("this", 1, timeout_s=60)
  assert result.ok, result.describe()
  assert "Beautiful is better than ugly." in result.processes[0].stdout


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(target="x.py", n_processes=0), ValueError, "n_processes must be >= 1, got 0"),
    (dict(target="x.py", n_processes=2.0), TypeError, "n_processes must be an int"),
    (dict(target="x.py", n_processes=2, devices_per_process="2"), TypeError,
     "devices_per_process must be an int"),
    (dict(target="no/such/file.py", n_processes=2), ValueError, "does not exist"),
    (dict(target="not a module", n_processes=2), ValueError, "dotted module name"),
    (dict(target=3, n_processes=2), TypeError, "script path or a module name"),
    (dict(target="mod", n_processes=2, args="--x"), TypeError, "args must be a sequence"),
    (dict(target="mod", n_processes=2, timeout_s=0), ValueError,
     "timeout_s must be a positive number"),
])
def test_launch_local_rejects_bad_arguments(kwargs, error, match):
  with pytest.raises(error, match=match):
    distributed.launch_local(**kwargs)


@pytest.mark.parametrize("args, kwargs, error, match", [
    (("127.0.0.1", 2, 0), {}, ValueError, "coordinator_address must look like 'host:port'"),
    ((1234, 2, 0), {}, TypeError, "coordinator_address must be a 'host:port' string"),
    (("127.0.0.1:1", 2, 2), {}, ValueError, "process_id must be < num_processes=2, got 2"),
    (("127.0.0.1:1", 0, 0), {}, ValueError, "num_processes must be >= 1, got 0"),
    (("127.0.0.1:1", 2, -1), {}, ValueError, "process_id must be >= 0, got -1"),
    (("127.0.0.1:1", 2, 0), dict(num_cpu_devices=0), ValueError, "num_cpu_devices must be >= 1"),
    (("127.0.0.1:1", 2, 0), dict(timeout_s=1.5), TypeError, "timeout_s must be an int"),
    (("127.0.0.1:1", 2, 0), dict(exit_on_error=1), TypeError, "exit_on_error must be a bool"),
])
def test_initialize_rejects_bad_arguments_before_starting(args, kwargs, error, match):
  with pytest.raises(error, match=match):
    distributed.initialize(*args, **kwargs)


def test_initialize_rejects_a_partial_launcher_environment(monkeypatch):
  monkeypatch.setenv("JAXREG_COORDINATOR", "127.0.0.1:1234")
  monkeypatch.setenv("JAXREG_PROCESS_ID", "0")
  monkeypatch.delenv("JAXREG_NUM_PROCESSES", raising=False)
  with pytest.raises(ValueError, match="but not JAXREG_NUM_PROCESSES"):
    distributed.initialize()
  monkeypatch.setenv("JAXREG_NUM_PROCESSES", "two")
  with pytest.raises(ValueError, match="JAXREG_NUM_PROCESSES must be an integer, got 'two'"):
    distributed.initialize()


def test_member_mesh_has_auto_axes():
  mesh = distributed.member_mesh()
  assert mesh.axis_names == ("seeds", "grid")
  assert dict(mesh.shape) == {"seeds": jax.device_count(), "grid": 1}
  assert mesh.axis_types == (AxisType.Auto, AxisType.Auto)
  flat = distributed.member_mesh(jax.devices()[:1], shape=(1,), axis_names=("members",))
  assert dict(flat.shape) == {"members": 1}


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(shape=(2, 3)), ValueError, "shape must multiply to the number of devices"),
    (dict(shape=(1,)), ValueError, "shape and axis_names must have the same length"),
    (dict(axis_names="seeds"), TypeError, "axis_names must be a sequence of str"),
    (dict(axis_names=("a", "a")), ValueError, "non-empty and distinct"),
    (dict(devices=[]), ValueError, "at least one device"),
])
def test_member_mesh_rejects_bad_arguments(kwargs, error, match):
  with pytest.raises(error, match=match):
    distributed.member_mesh(**kwargs)


def test_gather_to_host_returns_numpy():
  tree = {"a": jax.numpy.arange(3.0), "b": [np.ones(2), 1.5]}
  got = distributed.gather_to_host(tree)
  assert isinstance(got["a"], np.ndarray) and isinstance(got["b"][0], np.ndarray)
  np.testing.assert_array_equal(got["a"], [0.0, 1.0, 2.0])
  assert got["b"][1] == 1.5


def test_docstring_examples_run():
  import doctest

  from jaxreg import _distributed
  result = doctest.testmod(_distributed)
  assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("address, bind", [
    ("127.0.0.1:4321", "127.0.0.1:4321"), ("localhost:4321", "localhost:4321"),
    ("10.1.2.3:4321", None)])
def test_initialize_reads_the_launcher_environment(monkeypatch, address, bind):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
  before = sys.excepthook
  monkeypatch.setattr(sys, "excepthook", before)
  monkeypatch.setenv("JAXREG_COORDINATOR", address)
  monkeypatch.setenv("JAXREG_NUM_PROCESSES", "3")
  monkeypatch.setenv("JAXREG_PROCESS_ID", "2")
  info = distributed.initialize(timeout_s=7, heartbeat_timeout_s=8, shutdown_timeout_s=9)
  assert calls == [dict(
      coordinator_address=address, num_processes=3, process_id=2, coordinator_bind_address=bind,
      initialization_timeout=7, heartbeat_timeout_seconds=8, shutdown_timeout_seconds=9)]
  assert info == distributed.process_info()
  assert sys.excepthook is not before


def test_initialize_leaves_cluster_detection_to_jax(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
  for name in ("JAXREG_COORDINATOR", "JAXREG_NUM_PROCESSES", "JAXREG_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  distributed.initialize(exit_on_error=False)
  assert calls[0]["coordinator_address"] is None and calls[0]["num_processes"] is None
  assert calls[0]["coordinator_bind_address"] is None
