"""The epoch of :func:`jaxreg.train` and :func:`jaxreg.train_many`, and its :class:`TrainState`.

Contract: one epoch is one call of one pure function,
``epoch_fn(plan, state, base_key, x, t, xv, tv) -> (state, metrics)``, whose
body is a ``lax.scan`` over the epoch's minibatches. ``plan`` (:class:`Plan`,
hashable) fixes the program; every number that may change between runs —
the optimizer's hyperparameters (in its ``inject_hyperparams`` state) and the
trainer's own (``noise_std``, ``keep_prob``) — lives in the state, so
changing a number never recompiles and :func:`jaxreg.train_many` is ``vmap``
of this very function over states.

Each step: the batch (through the epoch's permutation, or the data's order)
→ the batch transforms (``augment``…, Gaussian noise) → the model's loss and
gradient (:mod:`jaxreg._trainer.model`) → the optimizer's update. After the
scan, in-graph: training and validation metrics (prediction mode), then one
bookkeeping rule for divergence, best parameters and early stopping
(:func:`_bookkeeping`): a non-finite epoch is not taken and marks the state
``diverged``; ``patience`` epochs without a new lowest validation loss mark
it ``stopped``; a diverged or stopped state passes through later epochs
unchanged (with NaN metrics).

Epochs are counted from 1 everywhere: ``state.epoch`` is the number of epochs
taken, ``best_epoch`` the number of the best one (0: none yet), and the
diverging epoch of a ``diverged`` state is ``state.epoch + 1``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxreg._mlp import MLP
from jaxreg._trainer import batch_transforms as _bt
from jaxreg._trainer import model as _model
from jaxreg._trainer import optimizer as _optimizer
from jaxreg._trainer import shuffle as _shuffle
from jaxreg._trainer.config import DATA_HYPERPARAMS, TrainConfig, augment_transforms

Array = jax.Array


class Plan(NamedTuple):
  """What shapes the compiled epoch (hashable; a static argument of ``jit``)."""
  model: Any                      # a jaxreg.MLP or jaxreg.Model
  optimizer: optax.GradientTransformation
  batch_size: int
  n_batches: int
  shuffle: str                    # "every_epoch", "once" or "never"
  augment: tuple                  # batch transforms (key, x) -> x, in order
  noise: bool                     # Gaussian input noise (std in state.hyperparams)
  dropout: tuple                  # per MLP layer input: dropout on; () for a Model
  dropout_mode: str
  patience: int | None            # None: no best-params tracking, no early stopping
  has_val: bool
  task: str | None                # "softmax", "binary", "binary_logits" or None (no accuracy)
  batch_sharding: Any = None      # a NamedSharding for each step's batch (data parallel), or None


class TrainState(NamedTuple):
  """Everything a run needs to continue (saved in checkpoints); epochs count from 1.

  Attributes:
    params: current parameters (after ``epoch`` epochs; always finite).
    opt_state: the optimizer's state, as optax builds it (the built-in chain
      keeps ``learning_rate``, ``weight_decay`` and ``l1`` in its
      ``hyperparams``).
    hyperparams: the trainer's own numbers that the run uses:
      ``"noise_std"`` (scalar) and ``"keep_prob"`` (one per MLP layer input).
    epoch: number of epochs taken, int32 scalar.
    best_params: parameters after the epoch with the lowest validation loss
      so far (with ``patience``), else the initial parameters.
    best_val_loss: that loss (``inf`` before any).
    best_epoch: its number, 1-based (``0`` before any).
    bad_epochs: epochs in a row without improvement.
    stopped: early stopping triggered (bool scalar).
    diverged: the epoch after ``epoch`` went non-finite and was not taken.
  """
  params: Any
  opt_state: Any
  hyperparams: dict
  epoch: Array
  best_params: Any
  best_val_loss: Array
  best_epoch: Array
  bad_epochs: Array
  stopped: Array
  diverged: Array


# ------------------------------------------------------------------ setup
def make_plan(model, config: TrainConfig, n: int, has_val: bool, task: str | None, *,
              swept=(), batch_sharding=None) -> Plan:
  """The static part of a run; ``swept`` names hyperparameters that vary (train_many).

  ``batch_sharding``: where each step's batch lies (its rows split over devices
  for data parallelism), or None.
  """
  kp = config.keep_prob
  if isinstance(model, MLP):
    if kp is not None and len(kp) != model.num_layers:
      raise ValueError(
          f"TrainConfig: `keep_prob` needs one keep-probability per dense layer input "
          f"({model.num_layers} for sizes {model.sizes}), got {len(kp)}: {kp}.")
    dropout = tuple(kp is not None and p < 1.0 for p in (kp or (1.0,) * model.num_layers))
    if "keep_prob" in swept:
      dropout = (True,) * model.num_layers
  else:
    if kp is not None or "keep_prob" in swept:
      raise ValueError(
          "TrainConfig: `keep_prob` (dropout) is a property of jaxreg.MLP; a jaxreg.Model "
          "regularizes itself: give its loss a `key` keyword and draw masks from it.")
    dropout = ()
  return Plan(
      model=model, optimizer=_optimizer.of_config(config, swept),
      batch_size=config.batch_size, n_batches=n // config.batch_size, shuffle=config.shuffle,
      augment=augment_transforms(config), noise=config.noise_std > 0 or "noise_std" in swept,
      dropout=dropout, dropout_mode=config.dropout_mode, patience=config.patience,
      has_val=has_val, task=task, batch_sharding=batch_sharding)


def config_hyperparams(plan: Plan, config: TrainConfig) -> dict:
  """The numbers of ``config`` that the run keeps in its state (Python floats/tuples)."""
  values = {}
  if config.optimizer is None:
    values.update({k: getattr(config, k) for k in _optimizer.BUILTIN_HYPERPARAMS})
  if plan.noise:
    values["noise_std"] = config.noise_std
  if any(plan.dropout):
    values["keep_prob"] = config.keep_prob or (1.0,) * len(plan.dropout)
  return values


def init_state(plan: Plan, params, hyperparams: dict) -> TrainState:
  """The state before the first epoch, with ``hyperparams`` (see :func:`config_hyperparams`).

  The trainer's own numbers (``noise_std``, ``keep_prob``) go to
  ``state.hyperparams`` in the parameters' dtype; the others to the
  optimizer's ``inject_hyperparams`` state, in the dtype it keeps them.
  """
  dtype = jnp.result_type(*jax.tree.leaves(params))
  own = {k: jnp.asarray(v, dtype) for k, v in hyperparams.items() if k in DATA_HYPERPARAMS}
  opt = {k: v for k, v in hyperparams.items() if k not in DATA_HYPERPARAMS}
  opt_state = plan.optimizer.init(params)
  if opt:
    opt_state = _optimizer.with_hyperparams(opt_state, opt)
  i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
  return TrainState(
      params=params, opt_state=opt_state, hyperparams=own, epoch=i32(0), best_params=params,
      best_val_loss=jnp.asarray(jnp.inf, dtype), best_epoch=i32(0), bad_epochs=i32(0),
      stopped=jnp.asarray(False), diverged=jnp.asarray(False))


def result_params(plan: Plan, state: TrainState):
  """What a run returns: the best epoch's parameters with ``patience``, else the last."""
  if plan.patience is None:
    return state.params
  return jax.tree.map(lambda b, p: jnp.where(state.best_epoch > 0, b, p), state.best_params,
                      state.params)


def order_once(plan: Plan, base_key, x, t):
  """``(x, t)`` in the order the epochs visit them when ``shuffle`` is not every epoch.

  ``"once"``: the permutation ``"every_epoch"`` uses for epoch 1; ``"never"``: as given.
  """
  if plan.shuffle != "once":
    return x, t
  perm = _shuffle.epoch_randomness(base_key, 0, x.shape[0], 0, 0)[0]
  return x[perm], t[perm]


# ------------------------------------------------------------- the epoch
def _n_aug_slots(plan: Plan) -> int:
  return max(1, len(plan.augment))


def _keys_per_step(plan: Plan) -> int:
  """Keys per step: ``[augment…, noise, model…]`` (one augment slot even without augment)."""
  return _n_aug_slots(plan) + 1 + _model.model_keys(plan.model)


def _per_step_rng(plan: Plan) -> bool:
  return (bool(plan.augment) or plan.noise or any(plan.dropout)
          or isinstance(plan.model, _model.Model) and plan.model.takes_key)


def _all_finite(tree) -> Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(tree)]))


def _tree_where(c, a, b):
  return jax.tree.map(lambda u, v: jnp.where(c, u, v), a, b)


def evaluate(plan: Plan, hyperparams: dict, params, x, t):
  """``(loss, accuracy or None)`` on a whole data set, in prediction mode."""
  kp = hyperparams.get("keep_prob")
  loss = _model.eval_loss(plan.model, plan.dropout, plan.dropout_mode, kp, params, x, t)
  acc = None
  if plan.task is not None:
    y = _model.eval_output(plan.model, plan.dropout, plan.dropout_mode, kp, params, x)
    acc = _model.accuracy(plan.task, y, t).astype(loss.dtype)
  return loss, acc


def _step_fn(plan: Plan, hyperparams: dict, x, t):
  rng = _per_step_rng(plan)
  n_aug = _n_aug_slots(plan)
  transforms = list(plan.augment)
  if plan.noise:
    transforms.append(_bt.gaussian_noise(hyperparams["noise_std"]))
  kp = hyperparams.get("keep_prob")
  gather = plan.shuffle == "every_epoch"

  def step(carry, inp):
    params, opt_state = carry
    if gather:
      idx, keys = inp if rng else (inp, None)
      xb = x.at[idx].get(mode="promise_in_bounds")  # indices from a permutation: no bounds select
      tb = t.at[idx].get(mode="promise_in_bounds")
    else:
      (xb, tb), keys = inp if rng else (inp, None)
    if plan.batch_sharding is not None:
      xb, tb = jax.lax.with_sharding_constraint((xb, tb), plan.batch_sharding)
    model_keys = None
    if rng:  # keys: [augment…, noise, model…]
      slots = [keys[i] for i in range(len(plan.augment))] + ([keys[n_aug]] if plan.noise else [])
      xb = _bt.apply_all(transforms, slots, xb)
      model_keys = keys[n_aug + 1:]
    loss, grads = _model.loss_and_grad(plan.model, plan.dropout, plan.dropout_mode, kp, params,
                                       xb, tb, model_keys)
    updates, opt_state = plan.optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  return step, rng


def _bookkeeping(plan: Plan, state: TrainState, params, opt_state, metrics, finite):
  """The next state from an epoch's result: divergence, best params, early stopping."""
  active = ~(state.stopped | state.diverged)
  take = active & finite
  params = _tree_where(take, params, state.params)
  opt_state = _tree_where(take, opt_state, state.opt_state)
  epoch = state.epoch + take.astype(jnp.int32)
  best = (state.best_params, state.best_val_loss, state.best_epoch, state.bad_epochs)
  stopped = state.stopped
  if plan.patience is not None:
    improved = take & (metrics["val_loss"] < state.best_val_loss)
    bad = jnp.where(improved, 0, state.bad_epochs + 1).astype(jnp.int32)
    best = (_tree_where(improved, params, state.best_params),
            jnp.where(improved, metrics["val_loss"], state.best_val_loss),
            jnp.where(improved, epoch, state.best_epoch),
            jnp.where(take, bad, state.bad_epochs))
    stopped = stopped | (take & (bad >= plan.patience))
  return TrainState(params, opt_state, state.hyperparams, epoch, *best, stopped,
                    state.diverged | (active & ~finite))


def epoch_fn(plan: Plan, state: TrainState, base_key, x, t, xv, tv, epoch=None):
  """One epoch (pure): returns ``(new_state, metrics)``.

  ``x, t`` are in :func:`order_once`'s order. ``epoch`` (default
  ``state.epoch``) selects the epoch's randomness; train_many passes its scan
  counter so that the shuffle is computed once per seed, not once per grid
  point. Metrics are NaN when the state was already stopped or diverged.
  """
  n = x.shape[0]
  B, nb = plan.batch_size, plan.n_batches
  step, rng = _step_fn(plan, state.hyperparams, x, t)
  every = plan.shuffle == "every_epoch"
  perm, keys = _shuffle.epoch_randomness(
      base_key, state.epoch if epoch is None else epoch, n, nb,
      _keys_per_step(plan) if rng or every else 0, permute=every)
  if every:
    batches = perm[:nb * B].reshape(nb, B)
  else:
    batches = tuple(a[:nb * B].reshape((nb, B) + a.shape[1:]) for a in (x, t))
  xs = (batches, keys) if rng else batches
  (params, opt_state), losses = jax.lax.scan(step, (state.params, state.opt_state), xs)

  finite = jnp.all(jnp.isfinite(losses)) & _all_finite(params)
  metrics = {"train_loss": jnp.mean(losses)}
  if plan.has_val:
    metrics["val_loss"], val_acc = evaluate(plan, state.hyperparams, params, xv, tv)
  if plan.task is not None:
    metrics["train_acc"] = evaluate(plan, state.hyperparams, params, x, t)[1]
    if plan.has_val:
      metrics["val_acc"] = val_acc
  new = _bookkeeping(plan, state, params, opt_state, metrics, finite)
  active = ~(state.stopped | state.diverged)
  metrics = {k: jnp.where(active, v, jnp.nan) for k, v in metrics.items()}
  return new, metrics


_epoch_jit = jax.jit(epoch_fn, static_argnums=(0,))
_init_jit = jax.jit(init_state, static_argnums=(0,))  # one dispatch instead of one per leaf
