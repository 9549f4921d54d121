"""Batch transforms: pure functions ``(key, x) -> x`` applied to each training batch.

Contract: a batch transform maps a training batch ``x`` (leading axis: the
samples) and a fresh PRNG key to a batch of the same shape; it works for
every model because it only sees the inputs. :class:`jaxreg.TrainConfig`'s
``augment`` (one transform or a sequence, applied in order) and
``noise_std`` (:func:`gaussian_noise`, applied last) are such transforms;
validation data never see them.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

Array = jax.Array
BatchTransform = Callable[[Any, Array], Array]


def gaussian_noise(std) -> BatchTransform:
  """Adds ``std · N(0, 1)`` to every input (S4.5); ``std`` may be a traced array.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.zeros((4, 3))
    >>> noisy = gaussian_noise(0.1)(jax.random.key(0), x)
    >>> noisy.shape, bool(jnp.all(noisy != 0))
    ((4, 3), True)
  """

  def transform(key, x):
    return x + jnp.asarray(std, x.dtype) * jax.random.normal(key, x.shape, x.dtype)

  return transform


def apply_all(transforms: Sequence[BatchTransform], keys: Sequence, x: Array) -> Array:
  """``x`` through ``transforms`` in order, transform ``i`` with ``keys[i]``.

  Raises:
    ValueError: a transform changed the batch's shape (at trace time).
  """
  for i, (fn, key) in enumerate(zip(transforms, keys)):
    out = fn(key, x)
    if jnp.shape(out) != x.shape:
      name = getattr(fn, "__qualname__", repr(fn))
      raise ValueError(f"TrainConfig: `augment` must keep the batch shape {x.shape}; transform "
                       f"{i} ({name}) returned {jnp.shape(out)}.")
    x = jnp.asarray(out, x.dtype)
  return x
