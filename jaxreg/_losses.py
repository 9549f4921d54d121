"""Data losses, each with its closed-form gradient with respect to its input.

Every loss takes ``(y, t)`` of shape ``(m, k)`` (a batch of ``m`` rows) and
**averages over the batch**, so its gradient is ``(1/m) Σ`` of per-sample
gradients, as in Nielsen's minibatch rule (S2.2).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Loss:
  """A batch-averaged loss ``fn(y, t) -> scalar`` and its gradient ``grad(y, t) = ∂fn/∂y``.

  Attributes:
    name: short name, for messages.
    fn: the loss, a scalar.
    grad: its closed-form gradient w.r.t. ``y``, same shape as ``y``.
  """

  name: str
  fn: Callable[[Array, Array], Array]
  grad: Callable[[Array, Array], Array]

  def __call__(self, y: Array, t: Array) -> Array:
    return self.fn(y, t)

  def __repr__(self):
    return self.name


def _batch(y):
  return y.shape[0] if y.ndim else 1


def _mse(y, t):
  d = y - t
  return 0.5 * jnp.sum(d * d) / _batch(y)


def _mse_grad(y, t):
  return (y - t) / _batch(y)


#: ``(1/2m) Σ_x ‖y(x) − t(x)‖²`` — S0's ``½(t − y)²`` summed over outputs and
#: averaged over the batch (Nielsen's quadratic cost). Gradient ``(y − t)/m``.
mse = Loss("mse", _mse, _mse_grad)


def _bce(a, t):
  return -jnp.sum(t * jnp.log(a) + (1 - t) * jnp.log1p(-a)) / _batch(a)


def _bce_grad(a, t):
  return (a - t) / (a * (1 - a)) / _batch(a)


#: Nielsen's cross-entropy on probabilities ``a ∈ (0, 1)`` (S2.6):
#: ``−(1/m) Σ [t ln a + (1 − t) ln(1 − a)]``; gradient ``(a − t) / (a(1 − a)m)``.
#: Through a sigmoid output layer the ``a(1 − a)`` cancels and ``∂C/∂z = (a − t)/m``.
binary_cross_entropy = Loss("binary_cross_entropy", _bce, _bce_grad)


def _sce(z, t):
  return -jnp.sum(t * jax.nn.log_softmax(z, axis=-1)) / _batch(z)


def _sce_grad(z, t):
  p = jax.nn.softmax(z, axis=-1)
  return (p * jnp.sum(t, axis=-1, keepdims=True) - t) / _batch(z)


#: Softmax cross-entropy on logits ``z`` with (one-hot or soft) targets ``t``:
#: ``−(1/m) Σ t · log_softmax(z)``; gradient ``(softmax(z)·Σ_k t_k − t)/m``
#: (``(softmax(z) − t)/m`` for targets that sum to 1).
softmax_cross_entropy = Loss("softmax_cross_entropy", _sce, _sce_grad)

_LOSSES = {l.name: l for l in (mse, binary_cross_entropy, softmax_cross_entropy)}
NAMES = tuple(sorted(_LOSSES))


def get(loss, *, argname: str = "loss") -> Loss:
  """Resolves a :class:`Loss` or its name."""
  if isinstance(loss, Loss):
    return loss
  if isinstance(loss, str):
    if loss in _LOSSES:
      return _LOSSES[loss]
    raise ValueError(f"`{argname}`: unknown loss name {loss!r}; expected one of {list(NAMES)}.")
  raise TypeError(
      f"`{argname}` must be a jaxreg Loss or one of {list(NAMES)}, got {type(loss).__name__} {loss!r}.")
