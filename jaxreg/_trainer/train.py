"""`train`: the host-side loop around the jitted epoch of :mod:`jaxreg._trainer.epoch`.

Contract: inputs are checked where they enter (:mod:`jaxreg._trainer.inputs`);
then each epoch is one call of the jitted epoch function, followed by one
small transfer of its metrics and the state's ``stopped``/``diverged`` flags
to the host for the history, the progress bar and the callbacks. Whether to
stop is decided in-graph, by the same rule as :func:`jaxreg.train_many`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._trainer import epoch as _epoch
from jaxreg._trainer import inputs as _inputs
from jaxreg._trainer import mesh as _mesh
from jaxreg._trainer import model as _model
from jaxreg._trainer.config import TrainConfig


class TrainingDiverged(RuntimeError):
  """A non-finite training loss (or parameter) stopped :func:`jaxreg.train`.

  Nothing is lost: the last finite state comes with the error.

  Attributes:
    epoch: number (1-based) of the epoch in which the loss became non-finite.
    params: the parameters after epoch ``epoch − 1`` (finite).
    state: the :class:`jaxreg.TrainState` at that point (resume or save it).
    history: per-epoch metrics up to and including the diverging epoch.
  """

  def __init__(self, message, *, epoch, params, state, history):
    super().__init__(message)
    self.epoch = epoch
    self.params = params
    self.state = state
    self.history = history


def _restore_state(ckpt, template: _epoch.TrainState) -> _epoch.TrainState:
  """The checkpoint's training state in ``template``'s structure (as arrays).

  Leaf paths, shapes and dtypes must match (a ``ValueError`` names each that
  does not).
  """
  return jax.tree.map(jnp.asarray, ckpt.conform(state_like=template).state)


def train(model, params, train_data, config: TrainConfig, *, val_data=None,
          callbacks: Sequence[Callable] = (), resume_from=None, progress: bool | None = None,
          mesh=None):
  """Trains ``model`` with ``config``'s optimizer and regularizers; jitted, one scan per epoch.

  Without ``config.optimizer`` the update is ``optax.chain(add_decayed_weights,
  l1_sign, sgd, l1_proximal)`` (each link only when switched on; see
  :mod:`jaxreg.optim`); with it, that optimizer as given. An MLP's gradient
  is its closed-form backprop of ``model.loss`` (data loss + the model's
  penalties, batch-averaged); a :class:`jaxreg.Model`'s is
  ``jax.value_and_grad`` of its loss.

  Args:
    model: a :class:`jaxreg.MLP`, a :class:`jaxreg.Model`, or a bare loss
      function ``loss(params, x, t)`` (taken as ``Model(loss)``).
    params: initial parameters (e.g. ``model.init(key)``; for a Model any
      pytree of float arrays); their dtype is the training dtype (data are
      cast to it). ``None`` when ``resume_from`` is given.
    train_data: ``(x, t)``, one row per sample, finite; for an MLP ``x`` of
      shape ``(n, sizes[0])`` and ``t`` of shape ``(n, sizes[-1])``.
      ``n ≥ batch_size``; each epoch uses ``n // batch_size`` full batches in
      ``config.shuffle``'s order (the rest is skipped).
    config: a :class:`jaxreg.TrainConfig`.
    val_data: optional ``(x, t)`` evaluated after every epoch in prediction
      mode (see :func:`jaxreg.predict`). Required for early stopping.
    callbacks: a list of functions ``callback(state, history) -> bool | None``
      called after every epoch with the :class:`jaxreg.TrainState` and the
      history so far (lists of floats); returning ``True`` stops training.
      See :class:`jaxreg.MetricsLog` and :class:`jaxreg.SaveCheckpoint`.
    resume_from: a checkpoint path or :class:`jaxreg.Checkpoint` (from
      :func:`jaxreg.load`) written by :class:`jaxreg.SaveCheckpoint`: training
      continues after its last epoch, and with the same data, model and config
      (the same optimizer object, if one was given) ends bit-identical to an
      uninterrupted run.
    progress: show a progress bar on stderr; default: only when stderr is
      a terminal and the ``CI`` environment variable is unset.
    mesh: optional ``jax.sharding.Mesh`` for data parallelism: each step's
      batch is split over the mesh's first axis (``config.batch_size`` must
      be a multiple of its size) while parameters, optimizer state and data
      are replicated on every device; the gradient's batch mean becomes an
      all-reduce. The numbers equal ``mesh=None``'s up to the order of that
      sum. Pays off for large models on GPUs/TPUs; for small MLPs on CPU the
      all-reduce per step costs more than it saves. In a ``jax.distributed``
      run every process calls ``train`` alike; only process 0 runs the
      progress bar and the file-writing callbacks (:class:`jaxreg.MetricsLog`,
      :class:`jaxreg.SaveCheckpoint`, whose state is replicated, so it saves
      a full copy); other callbacks run in every process.

  Returns:
    ``(params, history)``. ``params`` are the final parameters, or with
    ``config.patience`` the best epoch's. ``history`` maps ``"train_loss"``
    (mean of the epoch's minibatch losses, as trained: with dropout and
    noise), ``"val_loss"`` (when ``val_data``), and for classification
    (an MLP with softmax or binary cross-entropy loss; a Model with ``apply``
    and one-hot targets) ``"train_acc"`` (whole training set, prediction mode,
    after the epoch) and ``"val_acc"`` to NumPy arrays with one entry per
    epoch run, plus ``"best_epoch"`` (the best epoch's number, 1-based, a
    scalar; ``0`` without early stopping). Losses include the model's
    penalties but not the optimizer's weight decay or L1.

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
  model = _model.as_model(model, "train")
  _inputs.check_config("train", config)
  callbacks = _inputs.check_callbacks("train", callbacks)
  for cb in callbacks:
    if hasattr(cb, "on_train_begin"):       # e.g. SaveCheckpoint records the model and config
      cb.on_train_begin(model, config)
  history: dict[str, list] = {}
  if resume_from is not None:
    ckpt = resume_from if isinstance(resume_from, _checkpoint.Checkpoint) else _checkpoint.load(resume_from)
    _checkpoint.check_resume(ckpt, config)     # a state, and the same config but `epochs`
    if params is not None:
      raise ValueError("train: pass `params=None` with `resume_from` (the checkpoint holds them).")
    params = ckpt.params
    history = {k: list(np.asarray(v).tolist()) for k, v in ckpt.history.items() if k != "best_epoch"}
  elif params is None:
    raise TypeError("train: `params` are required (e.g. model.init(jax.random.key(0))) unless "
                    "`resume_from` is given.")
  dtype = _inputs.params_dtype(model, params)
  params = jax.tree.map(lambda v: jnp.asarray(v, dtype), params)
  x, t, xv, tv, has_val = _inputs.check_inputs("train", model, config, params, train_data,
                                                val_data, dtype)
  batch_sharding = None if mesh is None else _batch_sharding(mesh, config)
  plan = _epoch.make_plan(model, config, x.shape[0], has_val, _model.task_of(model, t),
                          batch_sharding=batch_sharding)
  state = _epoch._init_jit(plan, params, _epoch.config_hyperparams(plan, config))  # pylint: disable=protected-access
  if resume_from is not None:
    state = _restore_state(ckpt, state)
  base_key = jax.random.key(config.seed)
  if mesh is not None:
    state, base_key, x, t, xv, tv = _mesh.put((state, base_key, x, t, xv, tv),
                                              _mesh.replicated(batch_sharding.mesh))
    if jax.process_index() != 0:
      writers = (_progress.MetricsLog, _checkpoint.SaveCheckpoint)  # process 0 writes the files
      callbacks = [cb for cb in callbacks if not isinstance(cb, writers)]
      progress = False
  x, t = _epoch.order_once(plan, base_key, x, t)
  start = int(state.epoch)
  bar = _progress.ProgressBar(config.epochs, enabled=progress, initial=start)
  try:
    for e in range(start, config.epochs):
      new, metrics = _epoch._epoch_jit(plan, state, base_key, x, t, xv, tv)  # pylint: disable=protected-access
      metrics, diverged, stopped = jax.device_get((metrics, new.diverged, new.stopped))
      for k, v in metrics.items():
        history.setdefault(k, []).append(float(v))
      if diverged:
        hint = (f" Try a smaller learning_rate (now {config.learning_rate})."
                if config.optimizer is None else " Try a smaller learning rate.")
        raise TrainingDiverged(
            f"train: the training loss became non-finite in epoch {e + 1} of {config.epochs} "
            f"(train_loss = {metrics['train_loss']}); the error's `.params` are the last finite "
            f"parameters (after epoch {e})." + hint, epoch=e + 1, params=state.params,
            state=state, history=_finish_history(history, plan, state))
      state = new
      bar.update(e + 1, metrics)
      stop = any([bool(cb(state, history)) for cb in callbacks])
      if stop or stopped:
        break
  finally:
    bar.close()
  return _epoch.result_params(plan, state), _finish_history(history, plan, state)


def _batch_sharding(mesh, config: TrainConfig):
  """Each step's batch split over ``mesh``'s first axis (its rows; other axes replicate)."""
  mesh = _mesh.auto("train", mesh)
  axis = mesh.axis_names[0]
  size = mesh.shape[axis]
  if config.batch_size % size:
    raise ValueError(f"train: `config.batch_size` must be a multiple of the size of `mesh`'s "
                     f"first axis {axis!r} ({size} devices) to split each batch over it, got "
                     f"batch_size={config.batch_size}; use e.g. batch_size="
                     f"{-(-config.batch_size // size) * size}.")
  return _mesh.sharding(mesh, (axis,))


def _finish_history(history, plan, state):
  h = {k: np.asarray(v) for k, v in history.items()}
  h["best_epoch"] = np.asarray(int(state.best_epoch) if plan.patience is not None else 0)
  return h
