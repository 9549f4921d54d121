"""Epoch randomness: the data order of an epoch and one key per step and use.

Contract: epoch ``e`` of a run with seed ``s`` draws everything random from
``fold_in(key(s), e)`` in one ``jax.random.bits`` call (a rolled threefry loop
on CPU costs about as much as a training step of a small net, so an epoch
makes as few calls as it can, and steps split none). Nothing random is carried
in the training state, so a run resumed after epoch ``e`` continues
bit-identically.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array

#: Data orders of :class:`jaxreg.TrainConfig`'s ``shuffle``.
SHUFFLES = ("every_epoch", "once", "never")

_BIG = 1 << 22  # above this many samples, shuffle with jax.random.permutation


def shuffle_rounds(n: int) -> int:
  """Rounds of :func:`shuffle_bits` for ``n`` items: ``⌈3 ln n / ((32 − k) ln 2)⌉``."""
  k = max(1, (n - 1).bit_length())
  return max(1, math.ceil(3 * math.log(max(n, 2)) / ((32 - k) * math.log(2))))


def shuffle_bits(bits: Array, n: int) -> Array:
  """A uniformly random permutation of ``range(n)`` (int32) from ``bits``
  (``uint32``, shape ``(shuffle_rounds(n), n)``); cheaper than
  ``jax.random.permutation`` on CPU.

  Each round sorts one ``uint32`` array whose high ``32 − k`` bits are random
  and whose low ``k = ⌈log2 n⌉`` bits hold the position, then reads the
  positions back: a single-operand sort, which XLA:CPU runs far faster than
  the key–value sort of ``jax.random.permutation``. Equal random parts keep
  their order, so like ``jax.random.permutation`` it runs several rounds
  (1 for n ≤ 256, 2 up to 6,501, 3 up to 65,536), each composing a fresh
  permutation, which makes that bias negligible.
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


def epoch_randomness(base_key, epoch, n: int, n_batches: int, keys_per_step: int, *,
                     permute: bool = True):
  """Epoch ``epoch``'s permutation of ``range(n)`` and ``keys_per_step`` keys per step.

  Both come from one ``jax.random.bits`` call on ``fold_in(base_key, epoch)``.

  Args:
    base_key: the run's key, ``jax.random.key(config.seed)``.
    epoch: 0-based index of the epoch (may be traced).
    n: training-set size.
    n_batches: steps in the epoch.
    keys_per_step: keys each step needs (``0``: none).
    permute: draw the permutation; ``False`` returns ``None`` for it.

  Returns:
    ``(perm, keys)``: ``perm`` int32 of shape ``(n,)`` or ``None``; ``keys`` of
    shape ``(n_batches, keys_per_step)`` or ``None`` when ``keys_per_step == 0``.
  """
  key = jax.random.fold_in(base_key, epoch)
  impl = jax.random.key_impl(base_key)
  kd = jax.random.key_data(base_key).shape[-1]
  n_keys = n_batches * keys_per_step
  if permute and n > _BIG:
    k_perm, k_steps = jax.random.split(key)
    keys = jax.random.split(k_steps, n_keys).reshape(n_batches, keys_per_step) if n_keys else None
    return jax.random.permutation(k_perm, n).astype(jnp.int32), keys
  rounds = shuffle_rounds(n) if permute else 0
  if rounds * n + n_keys == 0:
    return None, None
  bits = jax.random.bits(key, (rounds * n + n_keys * kd,), jnp.uint32)
  perm = shuffle_bits(bits[:rounds * n].reshape(rounds, n), n) if permute else None
  keys = None
  if n_keys:
    keys = jax.random.wrap_key_data(bits[rounds * n:].reshape(n_batches, keys_per_step, kd),
                                    impl=impl)
  return perm, keys
