"""Checks of what enters :func:`jaxreg.train` and :func:`jaxreg.train_many`.

Contract: data are checked where they enter (a pair, shapes, real dtypes,
finiteness) and cast to the parameters' dtype; parameters are checked
against the model (an MLP's spec, or for a ``Model`` a pytree of float arrays
whose loss returns a scalar). Nothing here runs inside ``jit``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _losses
from jaxreg._mlp import MLP
from jaxreg._trainer.config import TrainConfig
from jaxreg._trainer import model as _model
from jaxreg._trainer.model import Model

Array = jax.Array

_finite_jit = jax.jit(lambda a: jnp.all(jnp.isfinite(a)))


def check_config(fname: str, config) -> None:
  if not isinstance(config, TrainConfig):
    raise TypeError(f"{fname}: `config` must be a jaxreg.TrainConfig, got {type(config).__name__}.")


def check_callbacks(fname: str, callbacks) -> tuple:
  if callable(callbacks) or not isinstance(callbacks, (list, tuple)):
    raise TypeError(f"{fname}: `callbacks` must be a list of functions callback(state, history), "
                    f"got {type(callbacks).__name__}; wrap a single one as [fn].")
  for i, cb in enumerate(callbacks):
    if not callable(cb):
      raise TypeError(f"{fname}: `callbacks[{i}]` must be callable, got {type(cb).__name__}.")
  return tuple(callbacks)


def params_dtype(model, params, argname="params"):
  """The training dtype: the parameters' float dtype (an MLP's must be one dtype)."""
  if isinstance(model, MLP):
    model.check_params(params, argname=argname)
    dtypes = {jnp.result_type(v) for v in jax.tree.leaves(params)}
    if len(dtypes) != 1 or not jnp.issubdtype(next(iter(dtypes)), jnp.floating):
      raise TypeError(f"`{argname}` must hold float arrays of one dtype, got "
                      f"{sorted(map(str, dtypes))}.")
    return next(iter(dtypes))
  leaves = jax.tree.leaves_with_path(params)
  if not leaves:
    raise ValueError(f"`{argname}` has no arrays (got {params!r}); a Model's params are a pytree "
                     "of float arrays.")
  for path, v in leaves:
    if not hasattr(v, "dtype") or not jnp.issubdtype(jnp.result_type(v), jnp.floating):
      got = f"dtype {jnp.result_type(v)}" if hasattr(v, "dtype") else type(v).__name__
      raise TypeError(f"`{argname}{jax.tree_util.keystr(path)}` must be a float array, got {got}.")
  return jnp.result_type(*(v for _, v in leaves))


def check_data(model, data, argname: str, dtype) -> tuple[Array, Array]:
  """``(x, t)`` checked where it enters: a pair, shapes, real dtypes, all finite.

  The core (:class:`jaxreg.MLP`) deliberately does not check finiteness (it
  runs under ``jit``); the trainer checks once before training (a jitted
  reduction for device arrays, NumPy for host arrays; rows are located on
  failure only). Returns both as ``dtype`` arrays.
  """
  if not isinstance(data, (tuple, list)) or len(data) != 2:
    raise TypeError(f"`{argname}` must be a pair (x, t) of arrays, got {type(data).__name__}"
                    + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else "") + ".")
  out = []
  for name, v in zip(("x", "t"), data):
    a = v if isinstance(v, (jax.Array, np.ndarray)) else np.asarray(v)
    dt = np.dtype(a.dtype)
    if not (np.issubdtype(dt, np.floating) or np.issubdtype(dt, np.integer) or dt == np.bool_):
      raise TypeError(f"`{argname}` {name} must be a real (float, int or bool) array, "
                      f"got dtype {dt}.")
    out.append(a)
  x, t = out
  if isinstance(model, MLP):
    n_in, n_out = model.sizes[0], model.sizes[-1]
    if x.ndim != 2 or x.shape[1] != n_in:
      raise ValueError(f"`{argname}` x must have shape (n, {n_in}) for the MLP with sizes "
                       f"{model.sizes}, got {tuple(x.shape)}.")
    if tuple(t.shape) != (x.shape[0], n_out):
      hint = ""
      if tuple(t.shape) == (x.shape[0],) and n_out > 1:
        hint = f" Integer labels must be one-hot encoded: jax.nn.one_hot(t, {n_out})."
      elif tuple(t.shape) == (x.shape[0],):
        hint = " Add the output axis: t[:, None]."
      raise ValueError(f"`{argname}` t must have shape ({x.shape[0]}, {n_out}) (one row per row "
                       f"of x, like the output), got {tuple(t.shape)}.{hint}")
  elif x.ndim < 1 or t.ndim < 1 or x.shape[0] != t.shape[0]:
    raise ValueError(f"`{argname}` x and t must have one row per sample (the same leading "
                     f"length), got shapes {tuple(x.shape)} and {tuple(t.shape)}.")
  if x.shape[0] == 0:
    raise ValueError(f"`{argname}` is empty (0 samples).")
  for name, a in (("x", x), ("t", t)):
    if not np.issubdtype(np.dtype(a.dtype), np.floating):
      continue
    if isinstance(a, jax.Array) and bool(_finite_jit(a)):
      continue  # checked on the device, without a copy to the host
    bad = ~np.isfinite(np.asarray(a))
    if bad.any():
      rows = np.unique(np.nonzero(bad)[0])
      raise ValueError(
          f"`{argname}` {name} has {int(bad.sum())} non-finite values (NaN or inf) in "
          f"{rows.size} rows, first rows {rows[:5].tolist()}; clean or drop them first.")
  if isinstance(model, MLP):   # targets inside the loss's domain (BCE in [0, 1], softmax rows)
    _losses.check_targets(model.loss_fn, np.asarray(t), argname=f"{argname}[1]")
  return jnp.asarray(x, dtype), jnp.asarray(t, dtype)


def check_loss_output(fname: str, model, params, x, t, batch_size: int) -> None:
  """A ``Model``'s loss must return a float scalar for one batch (checked abstractly)."""
  if not isinstance(model, Model):
    return
  spec = lambda a: jax.ShapeDtypeStruct((batch_size,) + a.shape[1:], a.dtype)  # noqa: E731
  out = _model.loss_output(model, params, spec(x), spec(t))
  if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
    got = out.shape if isinstance(out, jax.ShapeDtypeStruct) else type(out).__name__
    raise ValueError(f"{fname}: `model.loss` must return a scalar (the batch-averaged loss), "
                     f"got {got}.")


def check_inputs(fname: str, model, config: TrainConfig, params, train_data, val_data, dtype):
  """Validated ``(x, t, xv, tv, has_val)``; without ``val_data``, ``xv, tv`` are ``None``."""
  x, t = check_data(model, train_data, "train_data", dtype)
  if x.shape[0] < config.batch_size:
    raise ValueError(f"{fname}: `train_data` has {x.shape[0]} samples, fewer than one batch "
                     f"(config.batch_size = {config.batch_size}).")
  has_val = val_data is not None
  if config.patience is not None and not has_val:
    raise ValueError(f"{fname}: early stopping (`config.patience`) needs `val_data`.")
  xv, tv = check_data(model, val_data, "val_data", dtype) if has_val else (None, None)
  if params is not None:
    check_loss_output(fname, model, params, x, t, config.batch_size)
  return x, t, xv, tv, has_val
