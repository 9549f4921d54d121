"""`train`: the host-side loop around the jitted epoch of :mod:`jaxreg._trainer.epoch`.

Contract: data are checked where they enter (shapes, dtypes, finiteness);
then each epoch is one call of the jitted epoch function, followed by one
small transfer of its metrics to the host for the history, the progress bar,
the callbacks and the early-stopping and divergence decisions.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._trainer.config import TrainConfig
from jaxreg._trainer.epoch import _epoch_jit, init_state, make_hyper, make_static
from jaxreg._mlp import MLP

Array = jax.Array
Params = list


class TrainingDiverged(RuntimeError):
  """A non-finite training loss (or parameter) stopped :func:`jaxreg.train`.

  Nothing is lost: the last finite state comes with the error.

  Attributes:
    epoch: 1-based number of the epoch in which the loss became non-finite.
    params: the parameters at the end of the epoch before it (finite).
    state: the :class:`jaxreg.TrainState` at that point (resume or save it).
    history: per-epoch metrics up to and including the diverging epoch.
  """

  def __init__(self, message, *, epoch, params, state, history):
    super().__init__(message)
    self.epoch = epoch
    self.params = params
    self.state = state
    self.history = history


# ------------------------------------------------------------ validation
_finite_jit = jax.jit(lambda a: jnp.all(jnp.isfinite(a)))


def check_data(model: MLP, data, argname: str, dtype) -> tuple[Array, Array]:
  """``(x, t)`` checked where it enters: a pair, shapes, real dtypes, all finite.

  The core (:class:`jaxreg.MLP`) deliberately does not check finiteness (it
  runs under ``jit``); the trainer checks once before training (a jitted reduction
  for device arrays, NumPy for host arrays; rows are located on failure only).
  Returns both as ``dtype`` arrays.
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
  return jnp.asarray(x, dtype), jnp.asarray(t, dtype)


def check_inputs(fname: str, model: MLP, config: TrainConfig, train_data, val_data, dtype):
  """Validated ``(x, t, xv, tv, has_val)``; without ``val_data``, ``xv, tv`` are a 1-row stand-in."""
  x, t = check_data(model, train_data, "train_data", dtype)
  if x.shape[0] < config.batch_size:
    raise ValueError(f"{fname}: `train_data` has {x.shape[0]} samples, fewer than one batch "
                     f"(config.batch_size = {config.batch_size}).")
  has_val = val_data is not None
  if config.patience is not None and not has_val:
    raise ValueError(f"{fname}: early stopping (`config.patience`) needs `val_data`.")
  xv, tv = check_data(model, val_data, "val_data", dtype) if has_val else (x[:1], t[:1])
  return x, t, xv, tv, has_val


def check_model_config(fname: str, model, config) -> None:
  if not isinstance(model, MLP):
    raise TypeError(f"{fname}: `model` must be a jaxreg.MLP, got {type(model).__name__}.")
  if not isinstance(config, TrainConfig):
    raise TypeError(f"{fname}: `config` must be a jaxreg.TrainConfig, got {type(config).__name__}.")


def params_dtype(params, argname="params"):
  dtypes = {jnp.result_type(v) for v in jax.tree.leaves(params)}
  if len(dtypes) != 1 or not jnp.issubdtype(next(iter(dtypes)), jnp.floating):
    raise TypeError(f"`{argname}` must hold float arrays of one dtype, got {sorted(map(str, dtypes))}.")
  return next(iter(dtypes))


# ------------------------------------------------------------------ train
def train(model: MLP, params: Params | None, train_data, config: TrainConfig, *,
          val_data=None, callbacks: Sequence[Callable] = (), resume_from=None,
          progress: bool | None = None):
  """Trains ``model`` by minibatch SGD with ``config``'s regularizers; jitted, one scan per epoch.

  The update is ``optax.chain(add_decayed_weights, l1_sign, sgd, l1_proximal)``
  (each link only when switched on; see :mod:`jaxreg.optim`) applied to the
  closed-form gradient of ``model.loss`` (data loss + the model's penalties,
  batch-averaged).

  Args:
    model: a :class:`jaxreg.MLP`.
    params: initial parameters (e.g. ``model.init(key)``); their dtype is the
      training dtype (data are cast to it). ``None`` when ``resume_from`` is given.
    train_data: ``(x, t)`` with ``x`` of shape ``(n, sizes[0])`` and ``t`` of
      shape ``(n, sizes[-1])``, finite. ``n ≥ batch_size``; each epoch uses
      ``n // batch_size`` full batches of a fresh shuffle (the rest is skipped).
    config: a :class:`jaxreg.TrainConfig`.
    val_data: optional ``(x, t)`` evaluated after every epoch in prediction
      mode (no noise; dropout as ``config.dropout_mode`` predicts). Required
      for early stopping.
    callbacks: functions ``callback(state, history) -> bool | None`` called
      after every epoch with the :class:`jaxreg.TrainState` and the history so far
      (lists of floats); returning ``True`` stops training. See
      :class:`jaxreg.MetricsLog` and :class:`jaxreg.SaveCheckpoint`.
    resume_from: a checkpoint path or :class:`jaxreg.Checkpoint` (from
      :func:`jaxreg.load`) written by :class:`jaxreg.SaveCheckpoint`: training
      continues after its last epoch, and with the same data and config ends
      bit-identical to an uninterrupted run.
    progress: show a progress bar on stderr; default: only when stderr is
      a terminal and the ``CI`` environment variable is unset.

  Returns:
    ``(params, history)``. ``params`` are the final parameters, or with
    ``config.patience`` the best epoch's. ``history`` maps ``"train_loss"``
    (mean of the epoch's minibatch losses, as trained: with dropout and
    noise), ``"val_loss"`` (when ``val_data``), and for classification
    (softmax or binary cross-entropy loss) ``"train_acc"`` (whole training set,
    prediction mode, after the epoch) and ``"val_acc"`` to NumPy arrays with
    one entry per epoch run, plus ``"best_epoch"`` (0-based, a scalar; ``-1``
    without early stopping). Losses include the model's penalties but not the
    optimizer's weight decay or L1.

  Raises:
    TrainingDiverged: a training loss or parameter became non-finite; it
      carries the last finite ``params``, the ``state`` and the ``history``.
    ValueError, TypeError: bad arguments or data, naming the argument.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxreg
    >>> net = jaxreg.MLP((2, 8, 1), "tanh")
    >>> x = jax.random.normal(jax.random.key(1), (64, 2))
    >>> t = jnp.sin(x[:, :1])
    >>> cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=16, epochs=5, weight_decay=1e-4)
    >>> params, hist = jaxreg.train(net, net.init(jax.random.key(0)), (x, t), cfg)
    >>> hist["train_loss"].shape
    (5,)
  """
  from jaxreg._trainer import checkpoint as _checkpoint, progress as _progress  # pylint: disable=import-outside-toplevel
  check_model_config("train", model, config)
  history: dict[str, list] = {}
  if resume_from is not None:
    ckpt = resume_from if isinstance(resume_from, _checkpoint.Checkpoint) else _checkpoint.load(resume_from)
    _checkpoint.check_resume(ckpt, config)
    if params is not None:
      raise ValueError("train: pass `params=None` with `resume_from` (the checkpoint holds them).")
    params = ckpt.state.params
    history = {k: list(np.asarray(v).tolist()) for k, v in ckpt.history.items() if k != "best_epoch"}
  model.check_params(params)
  dtype = params_dtype(params)
  x, t, xv, tv, has_val = check_inputs("train", model, config, train_data, val_data, dtype)
  for i, cb in enumerate(callbacks):
    if not callable(cb):
      raise TypeError(f"train: `callbacks[{i}]` must be callable, got {type(cb).__name__}.")
    if hasattr(cb, "on_train_begin"):
      cb.on_train_begin(model, config)
  st = make_static(model, config, x.shape[0], has_val)
  hyper = make_hyper(model, config, dtype)
  if resume_from is not None:
    template = init_state(st, hyper, params)
    state = jax.tree.map(jnp.asarray, ckpt.conform(state_like=template).state)
  else:
    state = init_state(st, hyper, params)
  base_key = jax.random.key(config.seed)
  start = int(state.epoch)
  bar = _progress.ProgressBar(config.epochs, enabled=progress, initial=start)
  try:
    for e in range(start, config.epochs):
      new_state, metrics = _epoch_jit(model, st, hyper, state, base_key, x, t, xv, tv)
      metrics = jax.device_get(metrics)
      finite = bool(metrics.pop("finite"))
      for k, v in metrics.items():
        history.setdefault(k, []).append(float(v))
      if not finite:
        hist = _finish_history(history, state, st)
        raise TrainingDiverged(
            f"train: the training loss became non-finite in epoch {e + 1} of {config.epochs} "
            f"(train_loss = {metrics['train_loss']}); the error's `.params` are the last finite "
            f"parameters (end of epoch {e}). Try a smaller learning_rate (now "
            f"{config.learning_rate}).", epoch=e + 1, params=state.params, state=state,
            history=hist)
      state = new_state
      bar.update(e + 1, metrics)
      stop = any([bool(cb(state, history)) for cb in callbacks])
      if st.track_best and int(state.bad_epochs) >= config.patience:
        stop = True
      if stop:
        break
  finally:
    bar.close()
  out = state.best_params if st.track_best and int(state.best_epoch) >= 0 else state.params
  return out, _finish_history(history, state, st)


def _finish_history(history, state, st):
  h = {k: np.asarray(v) for k, v in history.items()}
  h["best_epoch"] = np.asarray(int(state.best_epoch) if st.track_best else -1)
  return h
