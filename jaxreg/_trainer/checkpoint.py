"""Checkpoints: one plain ``.npz`` file with JSON metadata inside, written atomically.

Layout of the ``.npz`` (readable with ``numpy.load`` alone):

* ``params/{i}/w``, ``params/{i}/b`` — the parameters;
* ``state/{field}`` and ``state/{field}/{i}/{w|b}``, ``state/opt_state/{j}`` —
  a :class:`jaxreg.TrainState`, when given;
* ``history/{name}`` — per-epoch metrics, when given;
* ``__metadata__`` — a UTF-8 JSON document (as a ``uint8`` array) with the
  format version, the key layout and the caller's ``metadata``.

The file is written to ``path + ".tmp"`` then moved over ``path`` with
``os.replace``, so a crash leaves either the old or the new checkpoint, never
half of one.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxreg._trainer.epoch import TrainState

FORMAT = "jaxreg-checkpoint-1"


class Checkpoint(NamedTuple):
  """What :func:`load` returns.

  Attributes:
    params: list of ``{"w", "b"}`` dicts of NumPy arrays.
    state: a :class:`jaxreg.TrainState` of NumPy arrays, or ``None``.
    history: dict of per-epoch NumPy arrays (empty if none was saved).
    metadata: the caller's JSON metadata (a dict).
  """
  params: list
  state: TrainState | None
  history: dict
  metadata: dict


def _put_params(arrays: dict, prefix: str, params) -> int:
  for i, layer in enumerate(params):
    for name in ("w", "b"):
      arrays[f"{prefix}/{i}/{name}"] = np.asarray(layer[name])
  return len(params)


def _get_params(z, prefix: str, n: int) -> list:
  return [{"w": z[f"{prefix}/{i}/w"], "b": z[f"{prefix}/{i}/b"]} for i in range(n)]


def save(path: str | os.PathLike, params, *, state: TrainState | None = None,
         history: dict | None = None, metadata: dict | None = None) -> str:
  """Writes ``params`` (and optionally a training state, history, metadata) to ``path``.

  Args:
    path: target file; ``.npz`` is appended if missing.
    params: a jaxreg params list (``[{"w", "b"}, …]``).
    state: a :class:`jaxreg.TrainState` to resume from (see
      ``jaxreg.train(..., resume_from=...)``).
    history: dict of per-epoch metric arrays or lists.
    metadata: JSON-serializable dict (e.g. the config's ``to_json()``).

  Returns:
    The path written.

  Examples:
    >>> import jax, jaxreg, tempfile, os
    >>> net = jaxreg.MLP((3, 2), None)
    >>> p = jaxreg.save(os.path.join(tempfile.mkdtemp(), "net"), net.init(jax.random.key(0)),
    ...                 metadata={"note": "hi"})
    >>> ck = jaxreg.load(p)
    >>> ck.params[0]["w"].shape, ck.metadata["note"]
    ((3, 2), 'hi')
  """
  path = os.fspath(path)
  if not path.endswith(".npz"):
    path += ".npz"
  if not isinstance(params, (list, tuple)) or not all(
      isinstance(p, dict) and set(p) == {"w", "b"} for p in params):
    raise TypeError("save: `params` must be a list of {'w', 'b'} dicts (jaxreg params).")
  try:
    meta_json = json.dumps(metadata or {})
  except TypeError as e:
    raise TypeError(f"save: `metadata` must be JSON-serializable: {e}") from None
  params, state = jax.device_get((params, state))
  arrays: dict[str, np.ndarray] = {}
  layout: dict[str, Any] = {"format": FORMAT, "n_layers": _put_params(arrays, "params", params)}
  if state is not None:
    if not isinstance(state, TrainState):
      raise TypeError(f"save: `state` must be a jaxreg.TrainState, got {type(state).__name__}.")
    _put_params(arrays, "state/params", state.params)
    _put_params(arrays, "state/best_params", state.best_params)
    for j, leaf in enumerate(state.opt_state):
      arrays[f"state/opt_state/{j}"] = np.asarray(leaf)
    for f in ("epoch", "best_val_loss", "best_epoch", "bad_epochs"):
      arrays[f"state/{f}"] = np.asarray(getattr(state, f))
    layout["n_opt_leaves"] = len(state.opt_state)
  layout["history"] = sorted(history or {})
  for k, v in (history or {}).items():
    arrays[f"history/{k}"] = np.asarray(v)
  layout["metadata"] = json.loads(meta_json)
  arrays["__metadata__"] = np.frombuffer(json.dumps(layout).encode("utf-8"), np.uint8)
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  d = os.path.dirname(path)
  if d:
    os.makedirs(d, exist_ok=True)
  tmp = path + ".tmp"
  try:
    with open(tmp, "wb") as f:
      f.write(buf.getvalue())
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def load(path: str | os.PathLike) -> Checkpoint:
  """Reads a checkpoint written by :func:`save`; returns a :class:`Checkpoint`."""
  path = os.fspath(path)
  if not os.path.exists(path) and os.path.exists(path + ".npz"):
    path += ".npz"
  with np.load(path, allow_pickle=False) as z:
    if "__metadata__" not in z.files:
      raise ValueError(f"load: {path!r} is not a jaxreg checkpoint (no __metadata__ entry).")
    layout = json.loads(z["__metadata__"].tobytes().decode("utf-8"))
    if layout.get("format") != FORMAT:
      raise ValueError(f"load: {path!r} has format {layout.get('format')!r}, expected {FORMAT!r}.")
    n = layout["n_layers"]
    params = _get_params(z, "params", n)
    state = None
    if "n_opt_leaves" in layout:
      state = TrainState(
          params=_get_params(z, "state/params", n),
          opt_state=tuple(z[f"state/opt_state/{j}"] for j in range(layout["n_opt_leaves"])),
          epoch=z["state/epoch"], best_params=_get_params(z, "state/best_params", n),
          best_val_loss=z["state/best_val_loss"], best_epoch=z["state/best_epoch"],
          bad_epochs=z["state/bad_epochs"])
    history = {k: z[f"history/{k}"] for k in layout["history"]}
  return Checkpoint(params, state, history, layout["metadata"])


class SaveCheckpoint:
  """A :func:`jaxreg.train` callback: saves params, state and history every ``every`` epochs.

  Resume with ``jaxreg.train(model, None, data, config, resume_from=path)``.

  Args:
    path: checkpoint file (overwritten atomically each time).
    every: save after every ``every``-th epoch (``≥ 1``).
    metadata: extra JSON metadata stored with it.
  """

  def __init__(self, path: str | os.PathLike, *, every: int = 1, metadata: dict | None = None):
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
      raise ValueError(f"SaveCheckpoint: `every` must be an int >= 1, got {every!r}.")
    self.path, self.every, self.metadata = path, every, metadata

  def __call__(self, state: TrainState, history: dict) -> None:
    if int(state.epoch) % self.every == 0:
      save(self.path, state.params, state=state, history=history, metadata=self.metadata)
