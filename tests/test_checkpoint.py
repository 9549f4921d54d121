"""Checkpoints (atomic .npz + JSON), resuming, the metrics log and the progress bar."""

import io
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg._trainer import progress as _progress

NET = jaxreg.MLP((3, 6, 2), "relu", loss="softmax_cross_entropy")
RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3))
T = np.eye(2)[(X.sum(1) > 0).astype(int)]


def _same(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(u, v) for u, v in zip(la, lb))


def test_resume_from_checkpoint_equals_uninterrupted_training(tmp_path):
  cfg = jaxreg.TrainConfig(learning_rate=0.2, batch_size=8, epochs=6, weight_decay=1e-3,
                           keep_prob=(0.9, 0.7), noise_std=0.1, patience=10, seed=11)
  p0 = NET.init(jax.random.key(1))
  full, full_hist = jaxreg.train(NET, p0, (X, T), cfg, val_data=(X[:10], T[:10]))
  path = tmp_path / "run.npz"
  stop_after_3 = lambda state, history: int(state.epoch) == 3  # noqa: E731
  half, half_hist = jaxreg.train(NET, p0, (X, T), cfg, val_data=(X[:10], T[:10]),
                                 callbacks=[jaxreg.SaveCheckpoint(path), stop_after_3])
  assert len(half_hist["train_loss"]) == 3
  ckpt = jaxreg.load(path)
  assert int(ckpt.state.epoch) == 3 and len(ckpt.history["train_loss"]) == 3
  assert not _same(ckpt.state.params, full)
  resumed, resumed_hist = jaxreg.train(NET, None, (X, T), cfg, val_data=(X[:10], T[:10]),
                                       resume_from=path)
  assert _same(resumed, full)
  assert set(resumed_hist) == set(full_hist)
  for k in full_hist:
    np.testing.assert_array_equal(resumed_hist[k], full_hist[k])


def test_save_load_round_trip_with_metadata_and_plain_numpy_layout(tmp_path):
  params = NET.init(jax.random.key(2), jnp.float32)
  path = jaxreg.save(tmp_path / "sub" / "net", params, history={"train_loss": [0.5, 0.25]},
                     metadata={"config": jaxreg.TrainConfig(learning_rate=0.1, batch_size=4,
                                                            epochs=2).to_json()})
  assert path.endswith("net.npz") and os.listdir(tmp_path / "sub") == ["net.npz"]
  ck = jaxreg.load(path)
  assert _same(ck.params, params) and ck.params[0]["w"].dtype == np.float32
  assert ck.state is None
  np.testing.assert_array_equal(ck.history["train_loss"], [0.5, 0.25])
  assert ck.metadata["config"]["learning_rate"] == 0.1
  with np.load(path) as z:                       # readable without jaxreg
    assert z["params/1/b"].shape == (2,)
    assert json.loads(z["__metadata__"].tobytes())["format"] == "jaxreg-checkpoint-1"


def test_save_is_atomic(tmp_path, monkeypatch):
  path = tmp_path / "net.npz"
  old = NET.init(jax.random.key(3))
  jaxreg.save(path, old)

  def crash(src, dst):
    raise OSError("disk full")

  monkeypatch.setattr(os, "replace", crash)
  with pytest.raises(OSError, match="disk full"):
    jaxreg.save(path, NET.init(jax.random.key(4)))
  monkeypatch.undo()
  assert _same(jaxreg.load(path).params, old)    # the old checkpoint is intact
  assert os.listdir(tmp_path) == ["net.npz"]     # and no temporary file is left


def test_save_and_load_errors(tmp_path):
  with pytest.raises(TypeError, match="`params` must be a list"):
    jaxreg.save(tmp_path / "x", {"w": np.ones(2)})
  with pytest.raises(TypeError, match="`metadata` must be JSON-serializable"):
    jaxreg.save(tmp_path / "x", NET.init(jax.random.key(0)), metadata={"f": object()})
  np.savez(tmp_path / "other.npz", a=np.ones(2))
  with pytest.raises(ValueError, match="not a jaxreg checkpoint"):
    jaxreg.load(tmp_path / "other.npz")
  with pytest.raises(ValueError, match="`every` must be an int >= 1"):
    jaxreg.SaveCheckpoint(tmp_path / "x", every=0)
  jaxreg.save(tmp_path / "params_only", NET.init(jax.random.key(0)))
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=1)
  with pytest.raises(ValueError, match="no training state"):
    jaxreg.train(NET, None, (X, T), cfg, resume_from=tmp_path / "params_only.npz")


def test_metrics_log_writes_one_json_line_per_epoch(tmp_path):
  path = tmp_path / "logs" / "m.jsonl"
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=3)
  _, hist = jaxreg.train(NET, NET.init(jax.random.key(0)), (X, T), cfg, val_data=(X, T),
                         callbacks=[jaxreg.MetricsLog(path)])
  rows = [json.loads(line) for line in path.read_text().splitlines()]
  assert [r["epoch"] for r in rows] == [1, 2, 3]
  assert [r["val_loss"] for r in rows] == pytest.approx(hist["val_loss"].tolist(), rel=1e-15)
  assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "train_acc", "val_acc", "time"}


def test_progress_bar_only_for_interactive_runs(monkeypatch):
  class Tty(io.StringIO):
    def isatty(self):
      return True

  monkeypatch.delenv("CI", raising=False)
  assert _progress.interactive(Tty()) and not _progress.interactive(io.StringIO())
  monkeypatch.setenv("CI", "true")
  assert not _progress.interactive(Tty())
  out = Tty()
  bar = _progress.ProgressBar(10, stream=out)
  bar.update(5, {"train_loss": 0.125})
  bar.close()
  assert out.getvalue() == ""
  monkeypatch.delenv("CI")
  bar = _progress.ProgressBar(10, stream=out, width=10)
  bar.update(5, {"train_loss": 0.125, "val_loss": float("nan")})
  bar.close()
  assert out.getvalue().startswith("\repoch 5/10 [#####.....]")
  assert "train_loss 0.125 val_loss nan" in out.getvalue() and out.getvalue().endswith("\n")
