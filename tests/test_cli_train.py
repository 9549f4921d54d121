"""`jaxreg train`, `jaxreg experiment`, `jaxreg plot`: files written, inputs kept, one-line errors."""

import dataclasses
import json
import sys

import numpy as np
import pytest

import jaxreg
from jaxreg import _cli


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
  d = tmp_path_factory.mktemp("data")
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 2))
  path = d / "data.npz"
  np.savez(path, x=x, t=np.tanh(x[:, :1]))
  return path


@pytest.fixture(scope="module")
def run(npz, tmp_path_factory):
  out = tmp_path_factory.mktemp("run")
  rc = _cli.main(["train", str(npz), "--out", str(out), "--hidden", "3", "--epochs", "3",
                  "--batch-size", "8", "--learning-rate", "0.1", "--no-progress"])
  assert rc == 0
  return out


def _one_line_error(capsys, argv, *, rc=2):
  assert _cli.main(argv) == rc
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1, err
  return err


def test_train_writes_metrics_checkpoint_and_run(run, npz):
  lines = (run / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(l)["epoch"] for l in lines] == [1, 2, 3]
  assert {"train_loss", "val_loss"} <= set(json.loads(lines[-1]))
  ckpt = jaxreg.load(run / "checkpoint.npz")
  assert [p["w"].shape for p in ckpt.params] == [(2, 3), (3, 1)]
  meta = json.loads((run / "run.json").read_text())
  assert meta == ckpt.metadata
  assert meta["model"]["sizes"] == [2, 3, 1] and meta["config"]["epochs"] == 3
  assert meta["data"]["path"] == str(npz.resolve())
  assert meta["final"]["train_loss"] == pytest.approx(json.loads(lines[-1])["train_loss"])


def test_every_train_config_field_is_a_flag(capsys):
  assert _cli.main(["train", "--help"]) == 0
  text = capsys.readouterr().out
  fields = [f.name for f in dataclasses.fields(jaxreg.TrainConfig) if f.name != "augment"]
  missing = [f for f in fields if f"--{f.replace('_', '-')}" not in text]
  assert not missing


def test_bad_flags_one_line_exit_2(capsys, npz, tmp_path):
  out = str(tmp_path / "o")
  assert "--bogus" in _one_line_error(capsys, ["train", "circle", "--out", out, "--bogus"])
  assert "epochs" in _one_line_error(capsys, ["train", "circle", "--out", out, "--epochs", "0"])
  assert "keep-prob" in _one_line_error(capsys, ["train", "circle", "--out", out,
                                                 "--keep-prob", "a,b"])
  assert "nope.npz" in _one_line_error(capsys, ["train", "nope.npz", "--out", out])
  assert "expected one of" in _one_line_error(capsys, ["train", "moons", "--out", out])
  assert not (tmp_path / "o").exists()    # nothing written on a usage error


def test_existing_run_and_input_files_are_never_overwritten(capsys, run, tmp_path):
  before = (run / "run.json").read_text()
  assert "--overwrite" in _one_line_error(capsys, ["train", "circle", "--out", str(run)])
  assert (run / "run.json").read_text() == before
  # an input named like a run file in --out is refused even with --overwrite
  data = tmp_path / "checkpoint.npz"
  np.savez(data, x=np.zeros((20, 2)), t=np.zeros((20, 1)))
  raw = data.read_bytes()
  assert "input" in _one_line_error(capsys, ["train", str(data), "--out", str(tmp_path),
                                             "--overwrite"])
  assert data.read_bytes() == raw


def test_npz_without_t_is_a_usage_error(capsys, tmp_path):
  bad = tmp_path / "bad.npz"
  np.savez(bad, x=np.zeros((20, 2)))
  assert "`t`" in _one_line_error(capsys, ["train", str(bad), "--out", str(tmp_path / "o")])


def test_plot_history_and_boundary(capsys, run):
  assert _cli.main(["plot", "history", str(run)]) == 0
  assert (run / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # the boundary needs a 2-D Playground run; this one trained on an .npz
  assert "Playground" in _one_line_error(capsys, ["plot", "boundary", str(run)])
  assert "RUN" in _one_line_error(capsys, ["plot", "history"])


def test_plot_without_matplotlib_names_the_extra(capsys, run, monkeypatch):
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
  err = _one_line_error(capsys, ["plot", "history", str(run), "--out", str(run / "h2.png")],
                        rc=1)
  assert "jaxreg[plot]" in err and not (run / "h2.png").exists()


def test_experiment_race_json(capsys, tmp_path):
  path = tmp_path / "race.json"
  assert _cli.main(["experiment", "race", "--seeds", "2", "--max-epochs", "3",
                    "--json", str(path)]) == 0
  d = json.loads(path.read_text())
  assert set(d["activations"]) == {"sigmoid", "tanh", "relu", "leaky_relu"}
  assert all(len(v["epochs"]) == 2 for v in d["activations"].values())
  assert set(d["ratios"]) == {"sigmoid/tanh", "tanh/relu"}
  assert "Verdict" in capsys.readouterr().out
  assert "race" in _one_line_error(capsys, ["experiment", "leaky", "--seeds", "3"])
  assert ".py" in _one_line_error(capsys, ["experiment", "race", "--json", str(tmp_path / "a.py")])
