"""Penalty terms (L1, L2, both), each with its closed-form gradient.

A :class:`Penalty` maps an array to a scalar, ``value(x)``, and gives its
gradient ``grad(x)``. Values are plain sums over elements with Keras's
scaling: ``l1(λ) = λ Σ|x|``, ``l2(λ) = λ Σ x²`` (no ½). Other conventions are
a choice of ``λ``:

* Nielsen's L2 (S2.1) ``(λ/2n) Σ w²``, biases not penalized:
  ``kernel_regularizer=l2(lam / (2 * n))``, no bias regularizer.
* Nielsen's L1 (S2.3) ``(λ/n) Σ |w|`` with ``sgn(0) = 0``: ``l1(lam / n, at_zero=0.0)``.
* S4.1/S4.2 (biases included): pass the same penalty as kernel and bias regularizer.
* optax ``weight_decay`` ``wd`` under plain SGD equals ``l2(wd / 2)``.

In :class:`jaxreg.MLP` a penalty can sit in each of Keras's three slots per
dense layer (S0.3): on the kernel, on the bias, and on the layer's activity.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

Array = jax.Array


def _coef(fname: str, arg: str, value) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise TypeError(f"{fname}: `{arg}` must be a real number, got {type(value).__name__} {value!r}.")
  value = float(value)
  if not math.isfinite(value) or value < 0:
    raise ValueError(f"{fname}: `{arg}` must be a finite number >= 0, got {value}.")
  return value


@dataclasses.dataclass(frozen=True)
class Penalty:
  """``value(x) = l1·Σ|x| + l2·Σx²`` and its gradient ``l1·sgn(x) + 2·l2·x``.

  Attributes:
    l1: coefficient of ``Σ|x|`` (``≥ 0``).
    l2: coefficient of ``Σx²`` (``≥ 0``).
    at_zero: the L1 subgradient used where ``x == 0``: any value in
      ``[-1, 1]``. ``1.0`` (default) is what ``jax.grad(jnp.abs)`` gives and
      S0.4's ``2H(x) − 1``; ``0.0`` is S2.3's ``sgn(0) = 0``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxreg.penalties import l1
    >>> p = l1(0.5)
    >>> float(p.value(jnp.array([-2.0, 0.0, 1.0])))
    1.5
    >>> p.grad(jnp.array([-2.0, 0.0, 1.0])).tolist()
    [-0.5, 0.5, 0.5]
  """

  l1: float = 0.0
  l2: float = 0.0
  at_zero: float = 1.0

  def __post_init__(self):
    object.__setattr__(self, "l1", _coef("Penalty", "l1", self.l1))
    object.__setattr__(self, "l2", _coef("Penalty", "l2", self.l2))
    if isinstance(self.at_zero, bool) or not isinstance(self.at_zero, (int, float)):
      raise TypeError(f"Penalty: `at_zero` must be a real number, got {self.at_zero!r}.")
    at_zero = float(self.at_zero)
    if not -1.0 <= at_zero <= 1.0:
      raise ValueError(
          f"Penalty: `at_zero` must be a subgradient of |x| at 0, i.e. in [-1, 1], got {at_zero}.")
    object.__setattr__(self, "at_zero", at_zero)

  def value(self, x: Array) -> Array:
    """The penalty, a scalar."""
    v = jnp.zeros((), x.dtype)
    if self.l1:
      v = v + self.l1 * jnp.sum(jnp.abs(x))
    if self.l2:
      v = v + self.l2 * jnp.sum(x * x)
    return v

  def grad(self, x: Array) -> Array:
    """Closed-form gradient ``l1·sgn(x) + 2·l2·x``, with ``sgn(0) = at_zero``."""
    g = jnp.zeros_like(x)
    if self.l1:
      s = jnp.where(x == 0, jnp.asarray(self.at_zero, x.dtype), jnp.sign(x))
      g = g + self.l1 * s
    if self.l2:
      g = g + (2 * self.l2) * x
    return g

  def __call__(self, x: Array) -> Array:
    return self.value(x)

  def __repr__(self):
    parts = []
    if self.l1:
      parts.append(f"l1={self.l1!r}")
    if self.l2:
      parts.append(f"l2={self.l2!r}")
    if self.l1 and self.at_zero != 1.0:
      parts.append(f"at_zero={self.at_zero!r}")
    return f"Penalty({', '.join(parts)})"


def l1(lam: float, *, at_zero: float = 1.0) -> Penalty:
  """L1 penalty ``λ Σ|x|``, gradient ``λ sgn(x)`` with ``sgn(0) = at_zero``.

  Args:
    lam: ``λ ≥ 0``.
    at_zero: subgradient at 0, in ``[-1, 1]``: ``1.0`` (JAX, S0.4), ``0.0`` (S2.3).
  """
  return Penalty(l1=_coef("l1", "lam", lam), at_zero=at_zero)


def l2(lam: float) -> Penalty:
  """L2 penalty ``λ Σx²`` (Keras scaling, no ½), gradient ``2λx``.

  Nielsen's ``(λ/2n) Σw²`` is ``l2(lam / (2 * n))``.
  """
  return Penalty(l2=_coef("l2", "lam", lam))


def l1_l2(l1: float = 0.0, l2: float = 0.0, *, at_zero: float = 1.0) -> Penalty:  # pylint: disable=redefined-outer-name
  """Both: ``l1 Σ|x| + l2 Σx²`` (Keras's ``L1L2``)."""
  return Penalty(l1=_coef("l1_l2", "l1", l1), l2=_coef("l1_l2", "l2", l2), at_zero=at_zero)


def get(penalty, *, argname: str) -> Penalty | None:
  """Validates a penalty slot: a :class:`Penalty` or ``None``."""
  if penalty is None or isinstance(penalty, Penalty):
    return penalty
  raise TypeError(
      f"`{argname}` must be a jaxreg Penalty (e.g. jaxreg.penalties.l1(0.01)) or None, "
      f"got {type(penalty).__name__} {penalty!r}.")
