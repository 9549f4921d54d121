"""Checkpoints (atomic .npz + JSON), resuming, the metrics log and the progress bar."""

import collections
import dataclasses
import io
import json
import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
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
  assert ckpt.config == json.loads(json.dumps(cfg.to_json())) and ckpt.model["sizes"] == [3, 6, 2]
  assert ckpt.model["activations"][0]["name"] == "relu" and ckpt.model["loss"] == "softmax_cross_entropy"
  resumed, resumed_hist = jaxreg.train(NET, None, (X, T), cfg, val_data=(X[:10], T[:10]),
                                       resume_from=path)
  assert _same(resumed, full)
  assert set(resumed_hist) == set(full_hist)
  for k in full_hist:
    np.testing.assert_array_equal(resumed_hist[k], full_hist[k])


def _bits(dtype, *ints):
  """An array of ``dtype`` with exactly these bit patterns."""
  dtype = np.dtype(dtype)
  return np.array(ints, f"uint{8 * dtype.itemsize}").view(dtype)


def _bitwise_same(a, b):
  """Same treedef, and every leaf the same dtype, shape and bytes."""
  raw = lambda u: jax.random.key_data(u) if jax.dtypes.issubdtype(  # noqa: E731
      u.dtype, jax.dtypes.prng_key) else u
  la, ta = jax.tree.flatten(jax.tree.map(raw, a))
  lb, tb = jax.tree.flatten(jax.tree.map(raw, b))
  return ta == tb and all(
      np.asarray(u).dtype == np.asarray(v).dtype and np.shape(u) == np.shape(v)
      and np.asarray(u).tobytes() == np.asarray(v).tobytes() for u, v in zip(la, lb))


class Pair(NamedTuple):
  first: object
  second: object


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Node:
  a: object
  b: object


# Every float dtype with NaN payloads (quiet and signalling), -0.0, inf and a subnormal.
TREE = {
    "f16": _bits(np.float16, 0x7E01, 0xFE33, 0x8000, 0x7C00, 0x0001),
    "bf16": _bits(jnp.bfloat16, 0x7FC1, 0xFFA5, 0x7F81, 0x8000, 0x0001).reshape(5, 1),
    "layers": [(_bits(np.float32, 0x7FC00001, 0xFF800001, 0x80000000).reshape(1, 3),
                jnp.asarray(_bits(np.float32, 0x7FC0ABCD, 0x80000000))), None],
    "f64": _bits(np.float64, 0x7FF0000000000001, 0xFFF8000000000002, 0x8000000000000000),
    "nt": Pair(np.arange(3, dtype=np.int8), (np.array([True, False]), np.uint32(7))),
    "by_int": {0: np.zeros((0, 2), np.float32), 7: np.float64(-0.0)},
    "a/b%c": np.float64(-0.0),
}


def test_round_trip_of_nested_pytrees_is_bitwise_exact_for_every_dtype(tmp_path):
  path = jaxreg.save(tmp_path / "tree", TREE, state={"count": np.int32(3), "mu": TREE["layers"]},
                     history={"train_loss": [0.5, 0.25]}, metadata={"note": [1, 2]})
  ck = jaxreg.load(path)
  got = ck.params
  assert got["bf16"].dtype == jnp.bfloat16 and got["f16"].dtype == np.float16
  assert isinstance(got["layers"], list) and isinstance(got["layers"][0], tuple)
  assert got["layers"][1] is None and set(got["by_int"]) == {0, 7} and "a/b%c" in got
  assert type(got["nt"]).__name__ == "Pair" and got["nt"]._fields == ("first", "second")
  expect = dict(TREE, nt=tuple(TREE["nt"]))      # loader-made namedtuple: compare as a tuple
  assert _bitwise_same(dict(got, nt=tuple(got["nt"])), expect)
  assert _bitwise_same(ck.state["mu"], TREE["layers"]) and ck.state["count"] == 3
  np.testing.assert_array_equal(ck.history["train_loss"], [0.5, 0.25])
  assert ck.metadata == {"note": [1, 2]} and ck.model is None and ck.config is None
  with np.load(path) as z:                       # NumPy's own dtypes read without jaxreg
    assert z["params/f16"].dtype == np.float16 and z["params/bf16"].dtype == np.uint16
    assert "params/a%2Fb%25c" in z.files and "params/nt/first" in z.files
    assert json.loads(z["__metadata__"].tobytes())["format"] == "jaxreg-checkpoint-2"


def test_like_template_gives_exactly_its_treedef(tmp_path):
  path = jaxreg.save(tmp_path / "t", TREE)
  ck = jaxreg.load(path, like=TREE)
  assert _bitwise_same(ck.params, TREE) and type(ck.params["nt"]) is Pair
  shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), TREE)
  assert _bitwise_same(jaxreg.load(path, like=shapes).params, TREE)
  # A NamedTuple state comes back as the template's class; MLP params as lists of dicts.
  params = NET.init(jax.random.key(0), jnp.bfloat16)
  state = Pair(params, {"step": jnp.asarray(4, jnp.int32), "key": jax.random.key(5),
                        "opt": optax.adam(1e-2).init(params), "node": Node(jnp.ones(2), None)})
  path = jaxreg.save(tmp_path / "s", params, state=state)
  generic = jaxreg.load(path).state
  assert set(generic.second["node"]) == {"a", "b"} and generic.second["node"]["b"] is None
  assert type(generic.second["opt"][0]).__name__ == "ScaleByAdamState"
  ck = jaxreg.load(path, like=params, state_like=state)
  assert _bitwise_same(ck.params, params) and type(ck.state) is Pair
  assert _bitwise_same(ck.state, state)
  assert _bitwise_same(ck.state.first, params) and ck.state.second["step"] == 4
  assert jnp.array_equal(jax.random.key_data(ck.state.second["key"]),
                         jax.random.key_data(jax.random.key(5)))


def test_wrong_like_is_a_value_error_naming_the_path_and_the_leaves(tmp_path):
  params = NET.init(jax.random.key(0), jnp.float32)
  path = jaxreg.save(tmp_path / "net", params)
  other = jaxreg.MLP((3, 5, 2), "relu").init(jax.random.key(0), jnp.float32)
  with pytest.raises(ValueError, match=r"net\.npz.*params/0/w is float32\[3, 6\] in the file, "
                                       r"float32\[3, 5\] in `like`"):
    jaxreg.load(path, like=other)
  with pytest.raises(ValueError, match=r"params/1/b is float32\[2\] in the file, float64\[2\]"):
    jaxreg.load(path, like=NET.init(jax.random.key(0), jnp.float64))
  with pytest.raises(ValueError, match=r"missing in the file: \['2/b', '2/w'\]"):
    jaxreg.load(path, like=params + [params[1]])
  with pytest.raises(ValueError, match=r"in the file but not in `like`: \['1/b'\]"):
    jaxreg.load(path, like=[params[0], {"w": params[1]["w"]}])
  with pytest.raises(ValueError, match=r"net\.npz.*`state_like` was given but .* no state"):
    jaxreg.load(path, state_like=params)


def _checkpoint_file(tmp_path):
  return jaxreg.save(tmp_path / "good", NET.init(jax.random.key(0)), state={"n": np.ones(3)})


def _rezip(src, dst, drop=(), replace=None):
  """Copies the .npz ``src`` to ``dst`` without the members ``drop``, replacing some."""
  with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
    for item in zin.infolist():
      if item.filename not in drop:
        zout.writestr(item, (replace or {}).get(item.filename, zin.read(item.filename)))
  return dst


def _bad_files(tmp_path):
  good = _checkpoint_file(tmp_path)
  data = Path(good).read_bytes()
  files = {}
  files["truncated"] = tmp_path / "truncated.npz"
  files["truncated"].write_bytes(data[: len(data) // 2])
  files["random bytes"] = tmp_path / "random.npz"
  files["random bytes"].write_bytes(np.random.default_rng(0).bytes(300))
  files["zip magic then garbage"] = tmp_path / "garbage.npz"
  files["zip magic then garbage"].write_bytes(b"PK\x03\x04" + bytes(200))
  i = data.index(b"params/0/w.npy")                       # corrupt the bytes of one array
  files["corrupted"] = tmp_path / "corrupted.npz"
  files["corrupted"].write_bytes(data[:i + 200] + bytes(x ^ 0xFF for x in data[i + 200:i + 240])
                                 + data[i + 240:])
  files["foreign npz"] = tmp_path / "foreign.npz"
  np.savez(files["foreign npz"], a=np.ones(2))
  files["pickled objects"] = tmp_path / "objects.npz"
  np.savez(files["pickled objects"], __metadata__=np.array([{"format": 1}], dtype=object))
  files["foreign npy"] = tmp_path / "foreign.npy"
  np.save(files["foreign npy"], np.ones(2))
  files["missing entry"] = _rezip(good, tmp_path / "missing.npz", drop=("params/1/b.npy",))
  files["no metadata"] = _rezip(good, tmp_path / "nometa.npz", drop=("__metadata__.npy",))
  buf = io.BytesIO()
  np.save(buf, np.frombuffer(b'{"format": "jaxreg-checkpoint-2", "trees": {"params": 3}}',
                             np.uint8))
  files["bad structure"] = _rezip(good, tmp_path / "badtree.npz",
                                  replace={"__metadata__.npy": buf.getvalue()})
  buf = io.BytesIO()
  np.save(buf, np.frombuffer(b"\xff{not json", np.uint8))
  files["bad json"] = _rezip(good, tmp_path / "badjson.npz",
                             replace={"__metadata__.npy": buf.getvalue()})
  return files


def test_truncated_corrupted_or_foreign_files_are_value_errors_naming_the_path(tmp_path):
  expected = {"truncated": "truncated or corrupted", "random bytes": "not an .npz",
              "zip magic then garbage": "truncated or corrupted",
              "corrupted": "entry 'params/0/w' cannot be read", "foreign npz": "no __metadata__",
              "pickled objects": "Python objects", "foreign npy": "not an .npz",
              "missing entry": "entry 'params/1/b' is missing", "no metadata": "no __metadata__",
              "bad structure": "bad tree structure at 'params'", "bad json": "not valid UTF-8 JSON"}
  for what, path in _bad_files(tmp_path).items():
    with pytest.raises(ValueError) as e:
      jaxreg.load(path)
    msg = str(e.value)
    assert str(path) in msg and expected[what] in msg, (what, msg)
    assert "pickle" not in msg.lower(), (what, msg)


def test_format_1_files_are_still_read(tmp_path):
  p = NET.init(jax.random.key(0))
  arrays = {f"{pre}/{i}/{k}": np.asarray(p[i][k])
            for pre in ("params", "state/params", "state/best_params") for i in range(2) for k in "wb"}
  arrays.update({"state/opt_state/0": np.ones(2), "state/epoch": np.int32(3),
                 "state/best_val_loss": np.inf, "state/best_epoch": np.int32(-1),
                 "state/bad_epochs": np.int32(0), "history/train_loss": np.ones(3)})
  layout = {"format": "jaxreg-checkpoint-1", "n_layers": 2, "n_opt_leaves": 1,
            "history": ["train_loss"], "metadata": {"a": 1}}
  arrays["__metadata__"] = np.frombuffer(json.dumps(layout).encode(), np.uint8)
  np.savez(tmp_path / "old.npz", **arrays)
  # The old state layout (params, opt_state, epoch, best_params, best_val_loss, best_epoch,
  # bad_epochs) is read as plain data; it cannot resume today's TrainState (no config either).
  old = collections.namedtuple("OldState", "params opt_state epoch best_params best_val_loss "
                               "best_epoch bad_epochs")
  template = old(p, (np.zeros(2),), np.int32(0), p, np.float64(0), np.int32(0), np.int32(0))
  ck = jaxreg.load(tmp_path / "old.npz", like=p, state_like=template)
  assert _same(ck.params, p) and type(ck.state) is old and int(ck.state.epoch) == 3
  assert ck.metadata == {"a": 1} and ck.config is None
  np.testing.assert_array_equal(ck.history["train_loss"], np.ones(3))


def test_check_resume_names_every_differing_field(tmp_path):
  cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=8, epochs=3, keep_prob=(1.0, 0.5))
  path = jaxreg.save(tmp_path / "run", None, state={"n": np.ones(1)}, config=cfg)
  jaxreg._trainer.checkpoint.check_resume(path, cfg.replace(epochs=9))   # only epochs: fine
  other = cfg.replace(learning_rate=0.2, keep_prob=(1.0, 0.6), seed=1, epochs=9)
  with pytest.raises(ValueError) as e:
    jaxreg._trainer.checkpoint.check_resume(jaxreg.load(path), other, argname="resume")
  msg = str(e.value)
  assert "`resume`" in msg and str(path) in msg and "epochs" not in msg.replace("`epochs` may", "")
  assert "`learning_rate` (checkpoint 0.1, now 0.2)" in msg and "`seed` (checkpoint 0, now 1)" in msg
  assert "`keep_prob` (checkpoint [1.0, 0.5], now [1.0, 0.6])" in msg
  with pytest.raises(ValueError, match="learning_rate"):        # train checks before training
    jaxreg.train(NET, None, (X, T), other, resume_from=path)
  jaxreg.save(tmp_path / "noconfig", None, state={"n": np.ones(1)})
  with pytest.raises(ValueError, match="stores no TrainConfig"):
    jaxreg._trainer.checkpoint.check_resume(tmp_path / "noconfig.npz", cfg)


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
  (tmp_path / "net.npz.tmp").write_bytes(b"mine")
  jaxreg.save(path, old)                         # a user's file beside it is never touched
  assert (tmp_path / "net.npz.tmp").read_bytes() == b"mine"


def test_save_and_load_errors(tmp_path):
  with pytest.raises(TypeError, match="`params` leaf 'a' must be a numeric or bool array"):
    jaxreg.save(tmp_path / "x", {"a": "text"})
  with pytest.raises(TypeError, match=r"dict key \(1, 2\) of type tuple"):
    jaxreg.save(tmp_path / "x", {(1, 2): np.ones(2)})
  with pytest.raises(ValueError, match="share the path name '0'"):
    jaxreg.save(tmp_path / "x", collections.OrderedDict([(0, np.ones(2)), ("0", np.zeros(2))]))
  with pytest.raises(TypeError, match="`metadata` must be JSON-serializable"):
    jaxreg.save(tmp_path / "x", NET.init(jax.random.key(0)), metadata={"f": object()})
  with pytest.raises(TypeError, match="`config` must be a jaxreg.TrainConfig"):
    jaxreg.save(tmp_path / "x", NET.init(jax.random.key(0)), config={"learning_rate": 1})
  with pytest.raises(ValueError, match="`every` must be an int >= 1"):
    jaxreg.SaveCheckpoint(tmp_path / "x", every=0)
  assert not os.path.exists(tmp_path / "x.npz")
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
