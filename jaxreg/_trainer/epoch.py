"""The jitted epoch of :func:`jaxreg.train` and :func:`jaxreg.train_many`.

Contract: one epoch is one call of one pure function,
``epoch_fn(model, static, hyper, state, key, x, t, xv, tv) -> (state, metrics)``,
whose body is a ``lax.scan`` over the epoch's minibatches. ``static``
(:class:`Static`, hashable) fixes the program; the numeric hyperparameters are
a :class:`Hyper` pytree of arrays, and the optax chain is built from them
*inside* the function, so changing a number never recompiles and
:func:`jaxreg.train_many` can ``vmap`` the same function over hyperparameters.

Randomness: epoch ``e`` draws one block of random bits from
``fold_in(key(config.seed), e)``, giving the epoch's permutation and one key
per step (dropout, noise, augmentation); see :func:`epoch_randomness`. Nothing
random is carried in the state, so a run resumed from a checkpoint after
epoch ``e`` continues bit-identically.

Each step: gather the batch through the epoch's permutation → ``augment`` →
Gaussian input noise → dropout masks → :meth:`jaxreg.MLP.loss_and_backprop`
(closed form, so the activations' declared kink conventions are the ones
trained with) → optax update. After the scan, in-graph: training metrics,
validation metrics, a finiteness check (a non-finite epoch is not taken) and
the early-stopping bookkeeping.
"""

from __future__ import annotations

import collections
import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from jaxreg import _losses
from jaxreg._trainer import optim as _optim
from jaxreg._trainer.config import TrainConfig
from jaxreg._mlp import MLP

Array = jax.Array

#: Trace counts of the jitted functions (by name); tests use it to check that a
#: second call does not recompile.
TRACES: collections.Counter = collections.Counter()


class Hyper(NamedTuple):
  """Numeric hyperparameters as arrays (params dtype), traced, never static."""
  learning_rate: Array  # shape=()
  weight_decay: Array   # shape=()
  l1: Array             # shape=()
  noise_std: Array      # shape=()
  keep_prob: Array      # shape=(num_layers,); 1.0 where no dropout


class Static(NamedTuple):
  """What shapes the compiled program (hashable; a static argument of ``jit``)."""
  batch_size: int
  n_batches: int
  decay: bool
  decay_biases: bool
  l1_rule: str | None           # None = no L1
  dropout: tuple[bool, ...]     # per dense layer input
  dropout_mode: str
  noise: bool
  augment: Callable | None
  track_best: bool
  has_val: bool
  task: str | None              # "softmax", "binary" or None (no accuracy)


class TrainState(NamedTuple):
  """Everything a run needs to continue: saved in checkpoints.

  Attributes:
    params: current parameters (after ``epoch`` epochs; always finite).
    opt_state: the optax state's leaves, flattened (``()`` for plain SGD).
    epoch: number of completed epochs, int32 scalar.
    best_params: parameters of the epoch with the lowest validation loss so
      far (early stopping), else the initial parameters.
    best_val_loss: that loss (``inf`` before any validation).
    best_epoch: its 0-based epoch index (``-1`` before any).
    bad_epochs: epochs in a row without improvement.
  """
  params: Any
  opt_state: tuple
  epoch: Array
  best_params: Any
  best_val_loss: Array
  best_epoch: Array
  bad_epochs: Array


# ------------------------------------------------------------------ setup
def task_of(model: MLP) -> str | None:
  """Classification is detected from the loss: softmax CE → argmax accuracy,
  binary CE → per-output ``(y > ½) == (t > ½)`` accuracy; other losses: none."""
  if model.loss_fn is _losses.softmax_cross_entropy:
    return "softmax"
  if model.loss_fn is _losses.binary_cross_entropy:
    return "binary"
  return None


def make_static(model: MLP, config: TrainConfig, n: int, has_val: bool, *,
                swept: Sequence[str] = ()) -> Static:
  """The static part of a run; ``swept`` names hyperparameters that vary (train_many)."""
  kp = config.keep_prob
  if kp is not None and len(kp) != model.num_layers:
    raise ValueError(
        f"TrainConfig: `keep_prob` needs one keep-probability per dense layer input "
        f"({model.num_layers} for sizes {model.sizes}), got {len(kp)}: {kp}.")
  dropout = tuple(kp is not None and p < 1.0 for p in (kp or (1.0,) * model.num_layers))
  if "keep_prob" in swept:
    dropout = (True,) * model.num_layers
  l1_on = config.l1 > 0 or "l1" in swept
  return Static(
      batch_size=config.batch_size, n_batches=n // config.batch_size,
      decay=config.weight_decay > 0 or "weight_decay" in swept,
      decay_biases=config.decay_biases,
      l1_rule=config.l1_rule if l1_on else None,
      dropout=dropout, dropout_mode=config.dropout_mode,
      noise=config.noise_std > 0 or "noise_std" in swept,
      augment=config.augment,
      track_best=config.patience is not None,
      has_val=has_val, task=task_of(model))


def make_hyper(model: MLP, config: TrainConfig, dtype) -> Hyper:
  kp = config.keep_prob or (1.0,) * model.num_layers
  s = lambda v: jnp.asarray(v, dtype)  # noqa: E731
  return Hyper(s(config.learning_rate), s(config.weight_decay), s(config.l1),
               s(config.noise_std), jnp.asarray(kp, dtype))


def make_tx(st: Static, hyper: Hyper) -> optax.GradientTransformation:
  """The optax chain of a run: [decay] → [L1 sign] → sgd → [L1 proximal]."""
  mask = None if st.decay_biases else _optim.kernels_only
  parts = []
  if st.decay:
    parts.append(optax.add_decayed_weights(hyper.weight_decay, mask))
  if st.l1_rule == "sign":
    parts.append(_optim.l1_sign(hyper.l1, mask=mask))
  parts.append(optax.sgd(hyper.learning_rate))
  if st.l1_rule == "proximal":
    parts.append(_optim.l1_proximal(hyper.l1, hyper.learning_rate, mask=mask))
  return optax.chain(*parts)


def init_state(st: Static, hyper: Hyper, params) -> TrainState:
  opt_state = make_tx(st, hyper).init(params)
  dtype = jax.tree.leaves(params)[0].dtype
  return TrainState(params, tuple(jax.tree.leaves(opt_state)), jnp.asarray(0, jnp.int32), params,
                    jnp.asarray(jnp.inf, dtype), jnp.asarray(-1, jnp.int32),
                    jnp.asarray(0, jnp.int32))


# ------------------------------------------------------------- the epoch
_BIG = 1 << 22  # above this many samples, shuffle with jax.random.permutation


def shuffle_rounds(n: int) -> int:
  """Rounds of :func:`shuffle_bits` for ``n`` items: ``⌈3 ln n / ((32 − k) ln 2)⌉``."""
  k = max(1, (n - 1).bit_length())
  return max(1, math.ceil(3 * math.log(max(n, 2)) / ((32 - k) * math.log(2))))


def shuffle_bits(bits: Array, n: int) -> Array:
  """A uniformly random permutation of ``range(n)`` (int32) from ``bits``
  (``uint32``, shape ``(shuffle_rounds(n), n)``); 4–5× cheaper than
  ``jax.random.permutation`` on CPU.

  Each round sorts one ``uint32`` array whose high ``32 − k`` bits are random
  and whose low ``k = ⌈log2 n⌉`` bits hold the position, then reads the
  positions back: a single-operand sort, which XLA:CPU runs far faster than
  the key–value sort of ``jax.random.permutation``. Equal random parts keep
  their order, so like ``jax.random.permutation`` it runs several rounds
  (1 for n ≤ 256, 2 up to 6,501, 3 up to 65,536), each composing a fresh permutation,
  which makes that bias negligible.
  """
  k = max(1, (n - 1).bit_length())
  low = jnp.uint32((1 << k) - 1)
  pos = jnp.arange(n, dtype=jnp.uint32)
  perm = jnp.arange(n, dtype=jnp.int32)
  for r in range(bits.shape[0]):
    perm = perm[(jnp.sort((bits[r] & ~low) | pos) & low).astype(jnp.int32)]
  return perm


def shuffle(key, n: int) -> Array:
  """A random permutation of ``range(n)`` from a key (see :func:`shuffle_bits`)."""
  if n > _BIG:
    return jax.random.permutation(key, n).astype(jnp.int32)
  return shuffle_bits(jax.random.bits(key, (shuffle_rounds(n), n), jnp.uint32), n)


def epoch_randomness(base_key, epoch, n: int, n_batches: int, keys_per_step: int = 1):
  """Epoch ``epoch``'s permutation of ``range(n)`` and ``keys_per_step`` keys per step.

  Both come from one ``jax.random.bits`` call on ``fold_in(base_key, epoch)``
  (a rolled threefry loop on CPU costs about as much as a training step of a
  small net, so an epoch makes as few calls as it can, and steps split none).

  Returns:
    ``(perm, keys)``: ``perm`` int32 of shape ``(n,)``; ``keys`` of shape
    ``(n_batches, keys_per_step)``.
  """
  key = jax.random.fold_in(base_key, epoch)
  impl = jax.random.key_impl(base_key)
  kd = jax.random.key_data(base_key).shape[-1]
  if n > _BIG:
    k_perm, k_steps = jax.random.split(key)
    keys = jax.random.split(k_steps, n_batches * keys_per_step)
    return (jax.random.permutation(k_perm, n).astype(jnp.int32),
            keys.reshape(n_batches, keys_per_step))
  rounds = shuffle_rounds(n)
  bits = jax.random.bits(key, (rounds * n + n_batches * keys_per_step * kd,), jnp.uint32)
  perm = shuffle_bits(bits[:rounds * n].reshape(rounds, n), n)
  keys = jax.random.wrap_key_data(bits[rounds * n:].reshape(n_batches, keys_per_step, kd),
                                  impl=impl)
  return perm, keys


def _tree_where(c, a, b):
  return jax.tree.map(lambda u, v: jnp.where(c, u, v), a, b)


def _all_finite(tree) -> Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(tree)]))


def eval_masks(model: MLP, st: Static, hyper: Hyper):
  """Prediction-time dropout: ``None`` (inverted) or the constants ``p`` (scale_at_test)."""
  if st.dropout_mode != "scale_at_test" or not any(st.dropout):
    return None
  return [jnp.full((n_in,), hyper.keep_prob[l]) if on else None
          for l, (on, n_in) in enumerate(zip(st.dropout, model.sizes[:-1]))]


def train_masks(keys, model: MLP, st: Static, hyper: Hyper, batch: int, dtype):
  """Training-time dropout keep-masks, one ``(batch, n_in)`` per dense layer input.

  ``keys[l]`` draws layer ``l``'s mask: each entry is kept with probability
  ``p = keep_prob[l]`` (a fresh draw per sample and unit); kept entries are
  ``1/p`` (``"inverted"``) or ``1`` (``"scale_at_test"``), dropped ones 0.
  Layers without dropout get ``None``.
  """
  masks = []
  for l, (on, n_in) in enumerate(zip(st.dropout, model.sizes[:-1])):
    if not on:
      masks.append(None)
      continue
    p = hyper.keep_prob[l]
    keep = jax.random.bernoulli(keys[l], p, (batch, n_in)).astype(dtype)
    masks.append(keep / p if st.dropout_mode == "inverted" else keep)
  return masks


def _accuracy(task, y, t):
  if task == "softmax":
    return jnp.mean(jnp.argmax(y, -1) == jnp.argmax(t, -1))
  return jnp.mean((y > 0.5) == (t > 0.5))


def evaluate(model: MLP, st: Static, hyper: Hyper, params, x, t):
  """``(loss, accuracy or None)`` on a whole data set, in prediction mode."""
  masks = eval_masks(model, st, hyper)
  loss = model.loss(params, x, t, dropout_masks=masks)
  acc = None
  if st.task is not None:
    acc = _accuracy(st.task, model.apply(params, x, dropout_masks=masks), t).astype(loss.dtype)
  return loss, acc


def _step_fn(model: MLP, st: Static, hyper: Hyper, tx, x, t):
  B = st.batch_size
  per_step_rng = st.noise or st.augment is not None or any(st.dropout)

  def step(carry, inp):
    params, opt_state = carry
    idx, key = inp if per_step_rng else (inp, None)
    xb = x.at[idx].get(mode="promise_in_bounds")  # indices from a permutation: no bounds select
    tb = t.at[idx].get(mode="promise_in_bounds")
    masks = None
    if per_step_rng:  # keys: [augment, noise, dropout layer 0, 1, …]
      k_aug, k_noise = key[0], key[1]
      if st.augment is not None:
        xa = st.augment(k_aug, xb)
        if jnp.shape(xa) != xb.shape:
          raise ValueError(f"TrainConfig: `augment` must keep the batch shape {xb.shape}, "
                           f"returned {jnp.shape(xa)}.")
        xb = jnp.asarray(xa, xb.dtype)
      if st.noise:
        xb = xb + hyper.noise_std * jax.random.normal(k_noise, xb.shape, xb.dtype)
      if any(st.dropout):
        masks = train_masks(key[2:], model, st, hyper, B, xb.dtype)
    loss, grads = model.loss_and_backprop(params, xb, tb, dropout_masks=masks)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  return step, per_step_rng


def epoch_fn(model: MLP, st: Static, hyper: Hyper, state: TrainState, base_key, x, t, xv, tv,
             epoch=None):
  """One epoch (pure): returns ``(new_state, metrics)``; ``metrics["finite"]`` is a bool.

  ``epoch`` (default ``state.epoch``) selects the epoch's randomness; train_many
  passes its scan counter so that the shuffle is computed once per seed, not
  once per grid point.
  """
  n = x.shape[0]
  B, nb = st.batch_size, st.n_batches
  perm, step_keys = epoch_randomness(base_key, state.epoch if epoch is None else epoch, n, nb,
                                     keys_per_step=2 + model.num_layers)
  perm = perm[:nb * B].reshape(nb, B)
  tx = make_tx(st, hyper)
  treedef = jax.tree.structure(jax.eval_shape(tx.init, state.params))
  opt_state = jax.tree.unflatten(treedef, state.opt_state)
  step, per_step_rng = _step_fn(model, st, hyper, tx, x, t)
  xs = (perm, step_keys) if per_step_rng else perm
  (params, opt_state), losses = jax.lax.scan(step, (state.params, opt_state), xs)

  finite = jnp.all(jnp.isfinite(losses)) & _all_finite(params)
  metrics = {"train_loss": jnp.mean(losses)}
  if st.has_val:
    metrics["val_loss"], val_acc = evaluate(model, st, hyper, params, xv, tv)
  if st.task is not None:
    metrics["train_acc"] = evaluate(model, st, hyper, params, x, t)[1]
    if st.has_val:
      metrics["val_acc"] = val_acc
  metrics["finite"] = finite
  # Keep the last finite parameters: a diverged epoch leaves the state as it was.
  params = _tree_where(finite, params, state.params)
  opt_leaves = tuple(_tree_where(finite, tuple(jax.tree.leaves(opt_state)), state.opt_state))
  best = (state.best_params, state.best_val_loss, state.best_epoch, state.bad_epochs)
  if st.track_best:
    improved = finite & (metrics["val_loss"] < state.best_val_loss)
    best = (_tree_where(improved, params, state.best_params),
            jnp.where(improved, metrics["val_loss"], state.best_val_loss),
            jnp.where(improved, state.epoch, state.best_epoch),
            jnp.where(improved, 0, state.bad_epochs + 1).astype(jnp.int32))
  return TrainState(params, opt_leaves, state.epoch + 1, *best), metrics


def _epoch_traced(model, st, hyper, state, base_key, x, t, xv, tv):
  TRACES["train_epoch"] += 1
  return epoch_fn(model, st, hyper, state, base_key, x, t, xv, tv)


_epoch_jit = jax.jit(_epoch_traced, static_argnums=(0, 1))
