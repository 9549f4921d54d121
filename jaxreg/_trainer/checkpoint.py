"""Checkpoints: one plain ``.npz`` file with JSON metadata inside, written atomically.

Contract: :func:`save` stores any pytree of arrays — the parameters, and
optionally a training state and a history — keyed by its tree paths, every
leaf bit-exactly with its dtype; :func:`load` gives them back. Nothing here
knows the fields of a training state: it is one more pytree.

Layout of the ``.npz`` (format ``"jaxreg-checkpoint-2"``):

* ``params/<path>``, ``state/<path>``, ``history/<path>`` — one entry per
  leaf; ``<path>`` joins the leaf's tree path with ``/`` (dict keys, list
  indices, NamedTuple fields; ``/`` and ``%`` in dict keys are written
  ``%2F`` and ``%25``). NumPy's own dtypes (bool, ints, float16/32/64,
  complex) are stored as themselves, readable with ``numpy.load`` alone;
  the ``ml_dtypes`` floats (``bfloat16``, ``float8_*``) as their raw bits
  (``uint8``/``uint16``) and PRNG keys as their key data (``uint32``).
* ``__metadata__`` — a UTF-8 JSON document (as a ``uint8`` array): the
  format, each tree's structure (containers, dict keys, and per leaf its
  entry name, dtype name and shape), the model's description, the
  :class:`jaxreg.TrainConfig` (``to_json()``) and the caller's ``metadata``.

Files of the previous format ``"jaxreg-checkpoint-1"`` are still read.
The file is written to a fresh temporary file beside ``path`` and then moved
over ``path`` with ``os.replace``: a crash leaves the old or the new
checkpoint, never half of one, and no existing file but ``path`` is touched.
Files are read with ``allow_pickle=False``; a truncated, corrupted or foreign
file is a ``ValueError`` naming the file and what is wrong.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import keyword
import os
import secrets
import zipfile
import zlib
from typing import Any, NamedTuple

import jax
import ml_dtypes
import numpy as np

from jaxreg._mlp import MLP
from jaxreg._trainer.config import TrainConfig

FORMAT = "jaxreg-checkpoint-2"
FORMAT_1 = "jaxreg-checkpoint-1"
TREES = ("params", "state", "history")
_META = "__metadata__"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NATIVE_KINDS = "biufc"  # bool, signed and unsigned ints, floats, complex


class Checkpoint(NamedTuple):
  """What :func:`load` returns.

  Trees come back with NumPy leaves. Without a template, containers are
  rebuilt from the stored structure: dicts, lists and tuples as themselves; a
  NamedTuple as a namedtuple class of the same name and fields made by the
  loader (attribute access works, ``isinstance`` with the original class does
  not); any other registered pytree node as a dict from its children's path
  names to the children. :meth:`conform` (or ``load(..., like=...)``) gives a
  tree exactly the structure of a template instead.

  Attributes:
    params: the parameters pytree (``None`` if none was saved).
    state: the training state pytree, or ``None``.
    history: dict of per-epoch NumPy arrays (empty if none was saved).
    metadata: the caller's JSON metadata (a dict).
    model: the model's description (a dict; for a :class:`jaxreg.MLP` its
      sizes, activations, loss, regularizers and init), or ``None``.
    config: the :class:`jaxreg.TrainConfig` as ``to_json()`` gave it, or ``None``.
    path: the file it was read from.
  """
  params: Any
  state: Any
  history: dict
  metadata: dict
  model: dict | None = None
  config: dict | None = None
  path: str | None = None

  def conform(self, *, like=None, state_like=None) -> "Checkpoint":
    """This checkpoint with ``params`` (``state``) in exactly the structure of ``like`` (``state_like``).

    Args:
      like: a template pytree for the params (arrays or
        ``jax.ShapeDtypeStruct`` leaves; e.g. ``net.init(key)``), or ``None``.
      state_like: likewise for the training state, or ``None``.

    Returns:
      A :class:`Checkpoint` whose trees have the templates' treedefs and NumPy leaves.

    Raises:
      ValueError: leaf paths, shapes or dtypes differ from the template's
        (naming the file and every mismatch), or the tree was not saved.
    """
    return self._replace(
        params=_conform(self.params, like, "params", "like", self.path),
        state=_conform(self.state, state_like, "state", "state_like", self.path))


# ------------------------------------------------------------ tree paths
def _entry_name(entry) -> str:
  if isinstance(entry, jax.tree_util.DictKey):
    return str(entry.key).replace("%", "%25").replace("/", "%2F")
  if isinstance(entry, jax.tree_util.SequenceKey):
    return str(entry.idx)
  if isinstance(entry, jax.tree_util.GetAttrKey):
    return entry.name
  if isinstance(entry, jax.tree_util.FlattenedIndexKey):
    return str(entry.key)
  return str(entry)


def _children(node) -> list[tuple[Any, Any]]:
  """``[(key_entry, child)]`` one level down (``[]`` for ``None``; ``[((), node)]`` for a leaf)."""
  pairs, _ = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda y: y is not node)
  return [(path[0] if path else (), child) for path, child in pairs]


def _leaf_names(tree) -> tuple[list[str], list, Any]:
  """``(names, leaves, treedef)``: each leaf's ``/``-joined tree path, as stored."""
  pairs, treedef = jax.tree_util.tree_flatten_with_path(tree)
  names = ["/".join(_entry_name(e) for e in path) for path, _ in pairs]
  return names, [leaf for _, leaf in pairs], treedef


# ------------------------------------------------------------------ dtypes
def _is_key(dtype) -> bool:
  return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _ml_dtype(name: str):
  """The ``ml_dtypes`` dtype called ``name`` (``bfloat16``, ``float8_e4m3fn``…), or ``None``."""
  t = getattr(ml_dtypes, name, None)
  if isinstance(t, type) and issubclass(t, np.generic):
    dt = np.dtype(t)
    return dt if dt.kind == "V" else None
  return None


def _dtype_named(name) -> np.dtype | None:
  if not isinstance(name, str):
    return None
  dt = _ml_dtype(name)
  if dt is not None:
    return dt
  try:
    dt = np.dtype(name)
  except TypeError:
    return None
  return dt if dt.kind in _NATIVE_KINDS and dt.name == name else None


def _bits_dtype(dtype: np.dtype) -> np.dtype:
  return np.dtype(f"uint{8 * dtype.itemsize}")


# -------------------------------------------------------------- encoding
class _Writer:
  """Collects the ``.npz`` entries of one checkpoint; a leaf object seen twice is stored once."""

  def __init__(self):
    self._data: dict[str, Any] = {}              # entry name -> array (host or device)
    self._seen: dict[int, tuple[Any, dict]] = {}  # id(leaf) -> (leaf, kept alive; its entry)

  def arrays(self) -> dict[str, np.ndarray]:
    """The ``.npz`` entries; device arrays come over in one ``jax.device_get``."""
    host = jax.device_get(self._data)
    return {k: a.view(_bits_dtype(a.dtype)) if a.dtype.kind == "V" else a
            for k, a in ((k, np.asarray(a)) for k, a in host.items())}

  def tree(self, prefix: str, tree) -> Any:
    return self._node(prefix, (), tree)

  def _node(self, prefix, path, node):
    if node is None:
      return None
    where = "/".join(path)
    kids = _children(node)
    if len(kids) == 1 and kids[0][0] == () and kids[0][1] is node:
      return self._leaf(prefix, where, node)
    enc = [(_entry_name(e), e, self._node(prefix, path + (_entry_name(e),), c)) for e, c in kids]
    if isinstance(node, dict):
      for _, e, _ in enc:
        if not isinstance(e.key, (str, int, float)):
          raise TypeError(f"save: `{prefix}` has a dict key {e.key!r} of type "
                          f"{type(e.key).__name__} at {where or '(root)'!r}; dict keys must be "
                          "str, int or float to be stored.")
      return {"dict": [[e.key, n] for _, e, n in enc]}
    if isinstance(node, tuple) and hasattr(type(node), "_fields"):
      return {"namedtuple": type(node).__name__, "items": [[k, n] for k, _, n in enc]}
    if type(node) in (list, tuple):
      return {type(node).__name__: [n for _, _, n in enc]}
    return {"node": f"{type(node).__module__}.{type(node).__qualname__}",
            "items": [[k, n] for k, _, n in enc]}

  def _leaf(self, prefix, where, leaf):
    if id(leaf) in self._seen:
      return self._seen[id(leaf)][1]
    key = f"{prefix}/{where}" if where else prefix
    if key in self._data:
      raise ValueError(f"save: two leaves of `{prefix}` share the path name {where!r} "
                       "(e.g. dict keys 0 and '0'); rename one.")
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and _is_key(dtype):
      entry = {"leaf": key, "dtype": str(dtype), "shape": list(leaf.shape),
               "impl": str(jax.random.key_impl(leaf))}
      self._data[key] = jax.random.key_data(leaf)
    else:
      data = leaf if isinstance(leaf, jax.Array) else np.asarray(leaf)
      dt = np.dtype(data.dtype)
      if _ml_dtype(dt.name) is None and dt.kind not in _NATIVE_KINDS:
        raise TypeError(f"save: `{prefix}` leaf {where or '(root)'!r} must be a numeric or bool "
                        f"array, got {type(leaf).__name__} of dtype {dt}.")
      entry = {"leaf": key, "dtype": dt.name, "shape": list(data.shape)}
      self._data[key] = data
    self._seen[id(leaf)] = (leaf, entry)
    return entry


def _describe_fn(f) -> Any:
  if f is None:
    return None
  name = getattr(f, "__qualname__", None)
  return f"{getattr(f, '__module__', '')}.{name}" if name else repr(f)


def _describe_activation(a) -> dict:
  return {"name": a.name, "params": {k: v for k, v in a.params}, "kinks": list(a.kinks),
          "kink_value": a.kink_value}


def _describe_penalty(p) -> dict | None:
  return None if p is None else dataclasses.asdict(p)


def describe_model(model) -> dict:
  """A JSON description of ``model``: a :class:`jaxreg.MLP`'s full spec, else its type and fields.

  A ``dict`` is taken as an already-made description.
  """
  if isinstance(model, MLP):
    return {"type": "jaxreg.MLP", "sizes": list(model.sizes),
            "activations": [_describe_activation(a) for a in model.activations],
            "loss": model.loss_fn.name,
            "kernel_regularizers": [_describe_penalty(p) for p in model.kernel_regularizers],
            "bias_regularizers": [_describe_penalty(p) for p in model.bias_regularizers],
            "activity_regularizers": [_describe_penalty(p) for p in model.activity_regularizers],
            "activity_on": model.activity_on, "init": model.init_scheme}
  if isinstance(model, dict):
    return model
  out = {"type": f"{type(model).__module__}.{type(model).__qualname__}"}
  if dataclasses.is_dataclass(model):
    out["fields"] = {f.name: _describe_fn(getattr(model, f.name))
                     for f in dataclasses.fields(model) if f.repr}
  elif callable(model):
    out["fn"] = _describe_fn(model)
  return out


def _json(argname: str, value) -> str:
  try:
    return json.dumps(value)
  except (TypeError, ValueError) as e:
    raise TypeError(f"save: `{argname}` must be JSON-serializable: {e}") from None


# ------------------------------------------------------------------ save
def save(path: str | os.PathLike, params, *, state=None, history: dict | None = None,
         model=None, config: TrainConfig | None = None, metadata: dict | None = None) -> str:
  """Writes ``params`` (and optionally a training state, history, model, config) to ``path``.

  Args:
    path: target file; ``.npz`` is appended if missing. Replaced atomically.
    params: any pytree of arrays (dicts, lists, tuples, NamedTuples, ``None``
      leaves), e.g. ``net.init(key)``; or ``None``.
    state: a training state pytree to resume from (see
      ``jaxreg.train(..., resume_from=...)``), or ``None``.
    history: dict of per-epoch metric arrays or lists.
    model: the model, stored as a description (:func:`describe_model`).
    config: the :class:`jaxreg.TrainConfig`, stored as its ``to_json()``;
      ``resume_from`` needs it.
    metadata: JSON-serializable dict of your own.

  Returns:
    The path written.

  Raises:
    TypeError: a leaf that is not a numeric or bool array, a dict key that is
      not a str/int/float, non-JSON metadata, or a bad ``config``/``history``.

  Examples:
    >>> import jax, jaxreg, tempfile, os
    >>> net = jaxreg.MLP((3, 2), None)
    >>> p = jaxreg.save(os.path.join(tempfile.mkdtemp(), "net"), net.init(jax.random.key(0)),
    ...                 model=net, metadata={"note": "hi"})
    >>> ck = jaxreg.load(p)
    >>> ck.params[0]["w"].shape, ck.metadata["note"], ck.model["sizes"]
    ((3, 2), 'hi', [3, 2])
  """
  path = os.fspath(path)
  if not path.endswith(".npz"):
    path += ".npz"
  if config is not None and not isinstance(config, TrainConfig):
    raise TypeError(f"save: `config` must be a jaxreg.TrainConfig or None, got "
                    f"{type(config).__name__}.")
  if history is not None and not isinstance(history, dict):
    raise TypeError(f"save: `history` must be a dict of per-epoch arrays, got "
                    f"{type(history).__name__}.")
  layout: dict[str, Any] = {"format": FORMAT}
  layout["metadata"] = json.loads(_json("metadata", metadata or {}))
  layout["model"] = None if model is None else json.loads(_json("model", describe_model(model)))
  layout["config"] = None if config is None else json.loads(_json("config", config.to_json()))
  w = _Writer()
  hist = None if history is None else {str(k): np.asarray(v) for k, v in history.items()}
  layout["trees"] = {name: w.tree(name, tree)
                     for name, tree in zip(TREES, (params, state, hist)) if tree is not None}
  arrays = w.arrays()
  arrays[_META] = np.frombuffer(json.dumps(layout).encode("utf-8"), np.uint8)
  _write_atomic(path, arrays)
  return path


def _write_atomic(path: str, arrays: dict) -> None:
  d = os.path.dirname(path)
  if d:
    os.makedirs(d, exist_ok=True)
  tmp = f"{path}.{secrets.token_hex(4)}.tmp"
  try:
    with open(tmp, "xb") as f:  # a fresh name: never over an existing file
      np.savez(f, **arrays)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


# ------------------------------------------------------------------ load
@functools.lru_cache(maxsize=None)
def _namedtuple(name: str, fields: tuple[str, ...]):
  ok = name.isidentifier() and not keyword.iskeyword(name)
  return collections.namedtuple(name if ok else "NamedTuple", fields, rename=True)


class _Reader:
  """Reads one checkpoint file; every problem is a ValueError naming the file."""

  def __init__(self, path: str, z):
    self.path, self.z = path, z

  def fail(self, what: str):
    raise ValueError(f"load: {self.path!r} is not a readable jaxreg checkpoint: {what}.")

  def entry(self, key: str) -> np.ndarray:
    if key not in self.z.files:
      self.fail(f"the entry {key!r} is missing")
    try:
      return self.z[key]
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error,
            NotImplementedError) as e:
      why = ("it holds Python objects, not plain arrays" if "pickle" in str(e).lower()
             else f"{type(e).__name__}: {e}")
      self.fail(f"the entry {key!r} cannot be read ({why}); the file is truncated, corrupted or foreign")

  def tree(self, node, where: str):
    """Rebuilds the tree whose JSON structure is ``node``."""
    if node is None:
      return None
    if not isinstance(node, dict) or len(node) < 1:
      self.fail(f"bad tree structure at {where!r}")
    if "leaf" in node:
      return self.leaf(node)
    if "list" in node or "tuple" in node:
      kids = node.get("list", node.get("tuple"))
      self._check_list(kids, where)
      out = [self.tree(c, f"{where}/{i}") for i, c in enumerate(kids)]
      return out if "list" in node else tuple(out)
    if "dict" in node:
      items = self._items(node["dict"], where)
      return {k: self.tree(c, f"{where}/{k}") for k, c in items}
    if "namedtuple" in node or "node" in node:
      items = self._items(node.get("items"), where)
      kids = [self.tree(c, f"{where}/{k}") for k, c in items]
      if "node" in node:
        return dict(zip((str(k) for k, _ in items), kids))
      name = node["namedtuple"] if isinstance(node["namedtuple"], str) else "NamedTuple"
      return _namedtuple(name, tuple(str(k) for k, _ in items))(*kids)
    self.fail(f"bad tree structure at {where!r} (keys {sorted(map(str, node))})")

  def _check_list(self, kids, where):
    if not isinstance(kids, list):
      self.fail(f"bad tree structure at {where!r}")

  def _items(self, items, where):
    self._check_list(items, where)
    for it in items:
      if not (isinstance(it, list) and len(it) == 2
              and isinstance(it[0], (str, int, float)) and not isinstance(it[0], bool)):
        self.fail(f"bad tree structure at {where!r}")
    return items

  def leaf(self, node: dict):
    key = node["leaf"]
    if not isinstance(key, str):
      self.fail("bad leaf entry name")
    a = self.entry(key)
    if "dtype" not in node:  # format 1: as stored
      return a
    name, shape = node.get("dtype"), node.get("shape")
    if not (isinstance(shape, list) and all(isinstance(s, int) for s in shape)):
      self.fail(f"bad shape for the entry {key!r}")
    if isinstance(name, str) and name.startswith("key<"):
      impl = node.get("impl")
      if a.dtype != np.uint32 or list(a.shape[:len(shape)]) != shape or not isinstance(impl, str):
        self.fail(f"the PRNG key entry {key!r} has dtype {a.dtype} and shape {a.shape}")
      try:
        return jax.random.wrap_key_data(a, impl=impl)
      except (ValueError, TypeError) as e:
        self.fail(f"the PRNG key entry {key!r} does not fit the implementation {impl!r} ({e})")
    dtype = _dtype_named(name)
    if dtype is None:
      self.fail(f"the entry {key!r} has an unknown dtype {name!r}")
    stored = _bits_dtype(dtype) if dtype.kind == "V" else dtype
    if a.dtype != stored or list(a.shape) != shape:
      self.fail(f"the entry {key!r} has dtype {a.dtype} and shape {a.shape}, but the metadata "
                f"says {stored} and {tuple(shape)}")
    return a.view(dtype) if dtype.kind == "V" else a


def _format_1_trees(r: _Reader, layout: dict) -> dict:
  """The structure of a ``jaxreg-checkpoint-1`` file, in the form format 2 writes."""
  n, n_opt, hist = layout.get("n_layers"), layout.get("n_opt_leaves"), layout.get("history")
  if not isinstance(n, int) or not isinstance(hist, list) or not (
      n_opt is None or isinstance(n_opt, int)):
    r.fail(f"the {FORMAT_1} layout is incomplete")

  def mlp(prefix):
    return {"list": [{"dict": [[k, {"leaf": f"{prefix}/{i}/{k}"}] for k in ("b", "w")]}
                     for i in range(n)]}

  trees = {"params": mlp("params"),
           "history": {"dict": [[k, {"leaf": f"history/{k}"}] for k in hist]}}
  if n_opt is not None:
    scalar = lambda f: [f, {"leaf": f"state/{f}"}]  # noqa: E731
    trees["state"] = {"namedtuple": "TrainState", "items": [
        ["params", mlp("state/params")],
        ["opt_state", {"tuple": [{"leaf": f"state/opt_state/{j}"} for j in range(n_opt)]}],
        scalar("epoch"), ["best_params", mlp("state/best_params")],
        scalar("best_val_loss"), scalar("best_epoch"), scalar("bad_epochs")]}
  return trees


def _open(f, path: str):
  """The ``NpzFile`` of the open file ``f``; anything but an intact zip is a ValueError."""
  head = f.read(4)
  if head not in _ZIP_MAGIC:
    raise ValueError(f"load: {path!r} is not a jaxreg checkpoint: not an .npz (zip) file "
                     f"(it starts with {head!r}).")
  f.seek(0)
  try:
    return np.load(f, allow_pickle=False)
  except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
    raise ValueError(f"load: {path!r} is not a readable jaxreg checkpoint: the zip archive is "
                     f"truncated or corrupted ({type(e).__name__}: {e}).") from None


def load(path: str | os.PathLike, *, like=None, state_like=None) -> Checkpoint:
  """Reads a checkpoint written by :func:`save` (or :class:`SaveCheckpoint`).

  Args:
    path: the file (``.npz`` is appended if ``path`` does not exist but that does).
    like: optional template pytree of the params (arrays or
      ``jax.ShapeDtypeStruct`` leaves): the params come back with exactly its
      treedef, after checking that leaf paths, shapes and dtypes match.
    state_like: likewise for the training state.

  Returns:
    A :class:`Checkpoint` with NumPy leaves; see it for how containers come back.

  Raises:
    ValueError: the file is truncated, corrupted or not a jaxreg checkpoint,
      or does not match ``like``/``state_like`` (naming the file and what is wrong).
    OSError: the file cannot be opened (e.g. it does not exist).

  Examples:
    >>> import jax, jaxreg, tempfile, os
    >>> net = jaxreg.MLP((3, 2), None)
    >>> p = jaxreg.save(os.path.join(tempfile.mkdtemp(), "net"), net.init(jax.random.key(0)))
    >>> params = jaxreg.load(p, like=net.init(jax.random.key(1))).params
  """
  path = os.fspath(path)
  if not os.path.exists(path) and os.path.exists(path + ".npz"):
    path += ".npz"
  with open(path, "rb") as f, _open(f, path) as z:
    r = _Reader(path, z)
    if _META not in z.files:
      r.fail(f"no {_META} entry (a foreign .npz?)")
    raw = r.entry(_META)
    if raw.dtype != np.uint8 or raw.ndim != 1:
      r.fail(f"the {_META} entry is not UTF-8 JSON bytes")
    try:
      layout = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      r.fail(f"the {_META} entry is not valid UTF-8 JSON ({e})")
    if not isinstance(layout, dict):
      r.fail(f"the {_META} entry is not a JSON object")
    fmt = layout.get("format")
    if fmt == FORMAT_1:
      trees = _format_1_trees(r, layout)
    elif fmt == FORMAT:
      trees = layout.get("trees")
      if not isinstance(trees, dict):
        r.fail("the metadata has no tree structure")
    else:
      r.fail(f"format {fmt!r}, expected {FORMAT!r} (or {FORMAT_1!r})")
    got = {name: r.tree(trees.get(name), name) for name in TREES}
    meta, model, config = (layout.get(k) for k in ("metadata", "model", "config"))
    for k, v in (("metadata", meta), ("model", model), ("config", config)):
      if v is not None and not isinstance(v, dict):
        r.fail(f"the metadata's {k!r} is not a JSON object")
  ck = Checkpoint(got["params"], got["state"], got["history"] or {}, meta or {}, model, config,
                  path)
  return ck.conform(like=like, state_like=state_like)


# ------------------------------------------------------------- templates
def _spec(leaf) -> tuple[tuple, Any]:
  dtype = getattr(leaf, "dtype", None)
  return tuple(np.shape(leaf) if not hasattr(leaf, "shape") else leaf.shape), dtype


def _conform(tree, like, what: str, argname: str, path):
  """``tree``'s leaves in the treedef of ``like``, after checking names, shapes and dtypes."""
  if like is None:
    return tree
  where = f"load: {path!r}" if path else "Checkpoint.conform"
  if tree is None:
    raise ValueError(f"{where}: `{argname}` was given but the checkpoint holds no {what}.")
  names, leaves, _ = _leaf_names(tree)
  like_names, like_leaves, like_def = _leaf_names(like)
  stored = dict(zip(names, leaves))
  problems = []
  missing = [n for n in like_names if n not in stored]
  extra = [n for n in names if n not in set(like_names)]
  if missing:
    problems.append(f"missing in the file: {missing}")
  if extra:
    problems.append(f"in the file but not in `{argname}`: {extra}")
  for n, t in zip(like_names, like_leaves):
    if n not in stored:
      continue
    (shape, dtype), (want_shape, want_dtype) = _spec(stored[n]), _spec(t)
    if shape != want_shape or (want_dtype is not None and dtype != want_dtype):
      problems.append(f"{what}/{n} is {dtype}{list(shape)} in the file, "
                      f"{want_dtype}{list(want_shape)} in `{argname}`")
  if problems:
    raise ValueError(f"{where}: the stored {what} do not match `{argname}`: "
                     + "; ".join(problems) + ".")
  return jax.tree.unflatten(like_def, [stored[n] for n in like_names])


# ----------------------------------------------------------------- resume
def check_resume(checkpoint, config: TrainConfig, *, argname: str = "resume_from") -> None:
  """Raises unless ``checkpoint`` can resume a run of ``config``.

  It must hold a training state and the :class:`jaxreg.TrainConfig` it was
  trained with, equal to ``config`` in every field but ``epochs`` (compared
  as ``to_json()`` gives them).

  Args:
    checkpoint: a :class:`Checkpoint` or a path to one.
    config: the config of the resumed run.
    argname: the caller's argument name, for messages.

  Raises:
    ValueError: no state, no stored config, or fields that differ (all named).
  """
  ck = checkpoint if isinstance(checkpoint, Checkpoint) else load(checkpoint)
  if not isinstance(config, TrainConfig):
    raise TypeError(f"check_resume: `config` must be a jaxreg.TrainConfig, got "
                    f"{type(config).__name__}.")
  src = f"`{argname}` ({ck.path!r})" if ck.path else f"`{argname}`"
  if ck.state is None:
    raise ValueError(f"{src} holds parameters only, no training state; write it with "
                     "jaxreg.SaveCheckpoint (or save(..., state=..., config=...)).")
  if ck.config is None:
    raise ValueError(f"{src} stores no TrainConfig, so resuming cannot be checked; write it with "
                     "jaxreg.SaveCheckpoint (or save(..., state=..., config=...)).")
  now = json.loads(json.dumps(config.to_json()))
  then = ck.config
  dump = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731
  diff = []
  for k in list(now) + [k for k in then if k not in now]:
    if k != "epochs" and ((k in now) != (k in then) or dump(now.get(k)) != dump(then.get(k))):
      diff.append(f"`{k}` (checkpoint {then.get(k, '<absent>')!r}, now {now.get(k, '<absent>')!r})")
  if diff:
    raise ValueError(f"{src} was trained with a different TrainConfig; only `epochs` may change "
                     "when resuming. Differing fields: " + "; ".join(diff) + ".")


# -------------------------------------------------------------- callback
class SaveCheckpoint:
  """A :func:`jaxreg.train` callback: saves the state and history every ``every`` epochs.

  It stores the training state as a pytree (whatever its fields), its
  ``params`` attribute (if it has one) as the checkpoint's params, the
  history, and — once :func:`jaxreg.train` has called :meth:`on_train_begin`
  — the model's description and the config. Resume with
  ``jaxreg.train(model, None, data, config, resume_from=path)``.

  Args:
    path: checkpoint file (replaced atomically each time).
    every: save after every ``every``-th epoch (``≥ 1``).
    metadata: extra JSON metadata stored with it.
  """

  def __init__(self, path: str | os.PathLike, *, every: int = 1, metadata: dict | None = None):
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
      raise ValueError(f"SaveCheckpoint: `every` must be an int >= 1, got {every!r}.")
    self.path, self.every, self.metadata = path, every, metadata
    self.model, self.config = None, None

  def on_train_begin(self, model, config: TrainConfig) -> None:
    """Called by the trainer before the first epoch: remembers what to store with the state."""
    self.model, self.config = model, config

  def __call__(self, state, history: dict) -> None:
    done = max((len(v) for v in history.values()), default=0)  # epochs run, resumed ones included
    if done % self.every == 0:
      save(self.path, getattr(state, "params", None), state=state, history=history,
           model=self.model, config=self.config, metadata=self.metadata)
