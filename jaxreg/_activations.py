"""Activation functions, each with its closed-form derivative beside it.

An :class:`Activation` is a small immutable record of pure functions:
``fn(x)`` and ``grad(x)`` (the elementwise derivative, written by hand, no
autodiff inside), plus the points where ``fn`` has a kink and the derivative
value used there. The defaults at kinks are those of JAX's autodiff
(``jax.grad(jax.nn.relu)(0.) == 0``, ``jax.grad(jax.nn.leaky_relu)(0.) == 1``),
so a closed-form backward pass built from these equals ``jax.grad`` exactly;
``act.with_kink_value(v)`` switches to another convention (S0 of the seeds
uses ``relu'(0) = 1``).

Wherever jaxreg expects an activation, the name as a string works too
(``"relu"``, ``"leaky_relu"``), as does a factory such as ``leaky_relu`` used
with its defaults.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
ArrayFn = Callable[[Array], Array]


@dataclasses.dataclass(frozen=True, eq=False)
class Activation:
  """An elementwise activation with its hand-written derivative.

  Attributes:
    name: short name, used in messages and reprs.
    fn: the activation, ``fn(x) -> array`` of the same shape.
    grad: its closed-form derivative, ``grad(x) -> array`` of the same shape.
      Must not use autodiff (jaxreg's backprop uses it to *check* autodiff).
    kinks: points where ``fn`` is not differentiable (empty when smooth).
    kink_value: the derivative value ``grad`` returns at every kink, or
      ``None`` to use whatever ``grad`` computes there.
    params: hyperparameters, for reprs and equality (e.g. ``(("alpha", 0.01),)``).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxreg.activations import relu
    >>> relu.grad(jnp.array([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 1.0]
    >>> relu.with_kink_value(1.0).grad(jnp.array([0.0])).tolist()
    [1.0]

    A user-defined activation:

    >>> cube = Activation("cube", lambda x: x**3, lambda x: 3 * x**2)
    >>> cube.grad(jnp.array(2.0)).item()
    12.0
  """

  name: str
  fn: ArrayFn
  grad_fn: ArrayFn
  kinks: tuple[float, ...] = ()
  kink_value: float | None = None
  params: tuple[tuple[str, Any], ...] = ()
  _builtin: bool = dataclasses.field(default=False, repr=False)
  _default_kink_value: float | None = dataclasses.field(default=None, repr=False)

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name:
      raise TypeError(f"Activation: `name` must be a non-empty str, got {self.name!r}.")
    if not callable(self.fn):
      raise TypeError(f"Activation {self.name!r}: `fn` must be callable, got {type(self.fn).__name__}.")
    if not callable(self.grad_fn):
      raise TypeError(
          f"Activation {self.name!r}: `grad` must be callable, got {type(self.grad_fn).__name__}.")
    kinks = tuple(float(k) for k in self.kinks)
    object.__setattr__(self, "kinks", kinks)
    if self.kink_value is not None:
      v = float(self.kink_value)
      if not math.isfinite(v):
        raise ValueError(f"Activation {self.name!r}: `kink_value` must be finite, got {v}.")
      object.__setattr__(self, "kink_value", v)

  # Equality/hash by value for built-ins (so two `leaky_relu(0.1)` are the same
  # static config under jit), by function identity for user-defined ones.
  def _key(self):
    fns = self.name if self._builtin else (self.fn, self.grad_fn)
    return (self.name, fns, self.kinks, self.kink_value, self.params)

  def __eq__(self, other):
    return isinstance(other, Activation) and self._key() == other._key()

  def __hash__(self):
    return hash(self._key())

  def __repr__(self):
    args = ", ".join(f"{k}={v!r}" for k, v in self.params)
    s = f"{self.name}({args})" if args else self.name
    if self.kink_value is not None and not (self._builtin and self.kink_value == self._default_kink_value):
      s += f".with_kink_value({self.kink_value!r})"
    return s

  def __call__(self, x: Array) -> Array:
    """Applies the activation: ``act(x) == act.fn(x)``."""
    return self.fn(x)

  def grad(self, x: Array) -> Array:
    """Closed-form derivative ``f'(x)``, with ``kink_value`` at the kinks."""
    g = self.grad_fn(x)
    if self.kink_value is not None:
      for k in self.kinks:
        g = jnp.where(x == k, jnp.asarray(self.kink_value, g.dtype), g)
    return g

  def with_kink_value(self, value: float) -> "Activation":
    """The same activation with derivative ``value`` at each of its kinks.

    ``relu.with_kink_value(1.0)`` is S0's ``H(0) = 1``;
    ``relu.with_kink_value(0.5)`` is what ``jnp.maximum(0, x)`` differentiates to.
    """
    if not self.kinks:
      raise ValueError(
          f"with_kink_value: activation {self.name!r} has no kink, so there is no "
          "derivative convention to set.")
    return dataclasses.replace(self, kink_value=value)


def _builtin(name, fn, grad, kinks=(), kink_value=None, params=()):
  return Activation(name, fn, grad, tuple(kinks), kink_value, tuple(params), _builtin=True,
                    _default_kink_value=kink_value)


def _check_finite(fname: str, arg: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise TypeError(f"{fname}: `{arg}` must be a real number, got {type(value).__name__} {value!r}.")
  value = float(value)
  if not math.isfinite(value):
    raise ValueError(f"{fname}: `{arg}` must be finite, got {value}.")
  return value


def _sigmoid_grad(x):
  s = jax.nn.sigmoid(x)
  return s * (1 - s)


def _tanh_grad(x):
  t = jnp.tanh(x)
  return (1 + t) * (1 - t)  # = 1 − t², factored: exact cancellation near |t| = 1


def _relu_grad(x):
  return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))


#: ``σ(x) = 1/(1+e^{-x})``; ``σ'(x) = σ(x)(1 − σ(x))`` (max 0.25 at 0, S1.1).
sigmoid = _builtin("sigmoid", jax.nn.sigmoid, _sigmoid_grad)

#: ``tanh(x)``; ``tanh'(x) = 1 − tanh(x)² = 4/(eˣ + e⁻ˣ)²`` (S1.2).
tanh = _builtin("tanh", jnp.tanh, _tanh_grad)

#: ``max(0, x)``; ``relu'(x) = H(x)`` with ``relu'(0) = 0`` (JAX's and S1.3's
#: convention; S0 uses 1: ``relu.with_kink_value(1.0)``).
relu = _builtin("relu", jax.nn.relu, _relu_grad, kinks=(0.0,), kink_value=0.0)


def leaky_relu(alpha: float = 0.01) -> Activation:
  """Leaky ReLU ``f(x) = x (x ≥ 0), αx (x < 0)``; ``f'(x) = (1−α)H(x) + α`` (S0.5).

  The derivative at 0 is 1 by default (JAX's ``jax.nn.leaky_relu`` and S0);
  S1.4 uses ``α``: ``leaky_relu(0.01).with_kink_value(0.01)``.

  Args:
    alpha: slope for ``x < 0``, in ``[0, 1)``.

  Returns:
    An :class:`Activation`.
  """
  alpha = _check_finite("leaky_relu", "alpha", alpha)
  if not 0.0 <= alpha < 1.0:
    raise ValueError(f"leaky_relu: `alpha` must be in [0, 1), got {alpha}.")

  def fn(x):
    return jax.nn.leaky_relu(x, negative_slope=alpha)

  def grad(x):
    return jnp.where(x >= 0, jnp.ones_like(x), jnp.full_like(x, alpha))

  return _builtin("leaky_relu", fn, grad, kinks=(0.0,), kink_value=1.0,
                  params=(("alpha", alpha),))


def elu(alpha: float = 1.0) -> Activation:
  """ELU ``f(x) = x (x > 0), α(eˣ − 1) (x ≤ 0)``; ``f'(x) = 1 (x > 0), αeˣ (x ≤ 0)``.

  Smooth when ``α = 1``; otherwise the derivative jumps at 0, where it is ``α``
  by default (JAX's autodiff of ``jax.nn.elu``).

  Args:
    alpha: scale of the negative branch, ``≥ 0``.

  Returns:
    An :class:`Activation`.
  """
  alpha = _check_finite("elu", "alpha", alpha)
  if alpha < 0:
    raise ValueError(f"elu: `alpha` must be >= 0, got {alpha}.")

  def fn(x):
    return jax.nn.elu(x, alpha=alpha)

  def grad(x):
    return jnp.where(x > 0, jnp.ones_like(x), alpha * jnp.exp(jnp.minimum(x, 0)))

  return _builtin("elu", fn, grad, kinks=(0.0,), kink_value=alpha, params=(("alpha", alpha),))


def _softplus(x):
  return jax.nn.softplus(x)


#: ``log(1 + eˣ)``; derivative ``σ(x)``.
softplus = _builtin("softplus", _softplus, jax.nn.sigmoid)

_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu_u(x):
  return _GELU_C * (x + 0.044715 * x**3)


def _gelu(x):
  # ½x(1 + tanh u) written as x·σ(2u): the same function (1 + tanh u = 2σ(2u)),
  # without the cancellation of 1 + tanh u in the left tail.
  return x * jax.nn.sigmoid(2 * _gelu_u(x))


def _gelu_grad(x):
  s = jax.nn.sigmoid(2 * _gelu_u(x))
  du = _GELU_C * (1 + 3 * 0.044715 * x * x)
  return s + 2 * x * s * (1 - s) * du


#: GELU, tanh approximation (as ``jax.nn.gelu``'s default, to rounding):
#: ``½x(1 + tanh u) = x·σ(2u)``, ``u = √(2/π)(x + 0.044715x³)``;
#: derivative ``σ(2u) + 2x·σ(2u)(1 − σ(2u))·√(2/π)(1 + 0.134145x²)``.
gelu = _builtin("gelu", _gelu, _gelu_grad)


def _silu_grad(x):
  s = jax.nn.sigmoid(x)
  return s * (1 + x * (1 - s))


#: SiLU / swish ``x·σ(x)``; derivative ``σ(x)(1 + x(1 − σ(x)))``.
silu = _builtin("silu", jax.nn.silu, _silu_grad)


def _identity(x):
  return x


#: ``f(x) = x``; derivative 1 (a linear layer).
identity = _builtin("identity", _identity, jnp.ones_like)

_FACTORIES = {"leaky_relu": leaky_relu, "elu": elu}
_INSTANCES = {a.name: a for a in (sigmoid, tanh, relu, softplus, gelu, silu, identity)}
_INSTANCES["linear"] = identity
NAMES = tuple(sorted(set(_INSTANCES) | set(_FACTORIES)))


def get(activation: Any, *, argname: str = "activation") -> Activation:
  """Resolves an activation given as an :class:`Activation`, a name, a factory or ``None``.

  ``None`` means linear (:data:`identity`).

  Raises:
    ValueError: for an unknown name.
    TypeError: for anything else that is not an activation.
  """
  if activation is None:
    return identity
  if isinstance(activation, Activation):
    return activation
  if isinstance(activation, str):
    key = activation.strip().lower()
    if key in _INSTANCES:
      return _INSTANCES[key]
    if key in _FACTORIES:
      return _FACTORIES[key]()
    raise ValueError(
        f"`{argname}`: unknown activation name {activation!r}; expected one of {list(NAMES)}.")
  for f in _FACTORIES.values():
    if activation is f:
      return f()
  raise TypeError(
      f"`{argname}` must be an Activation, one of the names {list(NAMES)} or None, "
      f"got {type(activation).__name__} {activation!r}.")
