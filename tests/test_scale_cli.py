"""`jaxreg train-many`: a sweep on --devices N (of the 4 CPU devices of tests/conftest.py)."""

import json

import numpy as np
import pytest

import jaxreg
from jaxreg import _cli, _cli_train_many

ARGS = ["--hidden", "3", "--epochs", "2", "--batch-size", "8", "--learning-rate", "0.1",
        "--seeds", "3", "--grid", "learning_rate=0.05,0.2", "--no-progress"]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
  path = tmp_path_factory.mktemp("data") / "data.npz"
  x = np.linspace(-1.0, 1.0, 40 * 2).reshape(40, 2)
  np.savez(path, x=x, t=np.tanh(x[:, :1]))
  return path


@pytest.fixture(scope="module")
def sweep(npz, tmp_path_factory):
  out = tmp_path_factory.mktemp("sweep")
  assert _cli.main(["train-many", str(npz), "--out", str(out), "--devices", "2"] + ARGS) == 0
  return out


def test_sweep_files_equal_train_many_on_one_device(sweep, npz, capsys):
  meta = json.loads((sweep / "sweep.json").read_text())
  assert meta["devices"] == 2 and meta["seeds"] == [0, 1, 2]
  assert meta["grid"] == {"learning_rate": [0.05, 0.2]}
  assert [(m["learning_rate"], m["seed"]) for m in meta["members"]] == [
      (0.05, 0), (0.05, 1), (0.05, 2), (0.2, 0), (0.2, 1), (0.2, 2)]
  ckpt = jaxreg.load(sweep / "sweep.npz")
  assert ckpt.metadata == meta
  # the same split and model as the command: rebuild them from its own helpers
  args = _cli._parser().parse_args(["train-many", str(npz), "--out", "unused"] + ARGS)
  train, val, _, _ = _cli_train_many._cli_train.load_data(args)
  model, config, targets, _ = _cli_train_many._cli_train.build(args, train)
  want_params, want = jaxreg.train_many(model, (train.x, targets(train.t)), config,
                                        seeds=[0, 1, 2], grid={"learning_rate": [0.05, 0.2]},
                                        val_data=(val.x, targets(val.t)))
  assert ckpt.history["train_loss"].shape == (2, 3, 2)
  for k in want:
    np.testing.assert_allclose(ckpt.history[k], want[k], rtol=0, atol=1e-9, err_msg=k)
  np.testing.assert_allclose(ckpt.params[0]["w"], want_params[0]["w"], rtol=0, atol=1e-9)
  assert meta["members"][4]["val_loss"] == pytest.approx(float(want["val_loss"][1, 1, -1]))


def test_sweep_refuses_to_overwrite(sweep, npz, capsys):
  assert _cli.main(["train-many", str(npz), "--out", str(sweep)] + ARGS) == 2
  assert "already holds sweep.npz, sweep.json; pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--devices", "8"], "--devices 8: JAX has only 4 cpu device(s)"),
    (["--devices", "0"], "--devices: expected an int >= 1, got 0"),
    (["--seeds", "0"], "--seeds: expected an int >= 1, got 0"),
    (["--grid", "momentum=0.9"], "`grid` key 'momentum' cannot be swept"),
])
def test_usage_errors(npz, tmp_path, capsys, extra, message):
  assert _cli.main(["train-many", str(npz), "--out", str(tmp_path)] + ARGS + extra) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and message in err, err


def test_grid_flag_parses_values():
  assert _cli_train_many.grid_item("learning-rate=0.1,1e-2") == ("learning_rate", (0.1, 0.01))
  assert _cli_train_many.grid_item("keep_prob=1:0.5,1:1") == ("keep_prob", ((1.0, 0.5), (1.0, 1.0)))
  with pytest.raises(Exception, match="expected NAME=V,V"):
    _cli_train_many.grid_item("learning_rate")


def test_experiment_devices_spreads_race_over_a_mesh_with_the_same_numbers(
    tmp_path, monkeypatch, capsys):
  from jaxreg.experiments import race, registry
  meshes, results = [], []

  def one_activation(n_seeds=3, max_epochs=12, *, mesh=None, **kw):
    meshes.append(mesh)
    results.append(race.activation_race(n_seeds, max_epochs, activations=("tanh",), n_boot=50,
                                        mesh=mesh))
    return results[-1]

  e = registry.EXPERIMENTS["race"]
  monkeypatch.setitem(registry.EXPERIMENTS, "race", e._replace(run=one_activation))
  one, two = tmp_path / "one.json", tmp_path / "two.json"
  assert _cli.main(["experiment", "race", "--seeds", "3", "--json", str(one)]) == 0
  assert _cli.main(["experiment", "race", "--seeds", "3", "--devices", "2",
                    "--json", str(two)]) == 0
  assert meshes[0] is None and meshes[1].devices.size == 2
  a, b = json.loads(one.read_text()), json.loads(two.read_text())
  assert list(a["activations"]) == ["tanh"] and len(a["activations"]["tanh"]["epochs"]) == 3
  assert a == b
  loss = [r.test_loss["tanh"] for r in results]
  assert loss[0].shape == (3, 12) and np.all(np.isfinite(loss[0]))
  np.testing.assert_allclose(loss[1], loss[0], rtol=0, atol=1e-6)   # float32 training

@pytest.mark.parametrize("extra, message", [
    (["vanishing", "--devices", "2"], "--devices applies to the experiments that train"),
    (["race", "--devices", "0"], "--devices: expected an int >= 1, got 0"),
])
def test_experiment_devices_errors(capsys, extra, message):
  assert _cli.main(["experiment"] + extra + ["--quick"]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and message in err, err
