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

A closed form is verified where it enters: constructing an activation (one of
your own, a factory's, or ``with_kink_value``) compares ``grad`` with
``jax.grad(fn)`` on a grid of ``[-6, 6]`` plus random points, and checks that
each kink's value lies between the one-sided derivatives of ``fn`` there; a
mismatch is a ``ValueError`` naming the activation and its worst point
(``verify=False`` skips this). The module-level built-ins are verified by the
test suite instead, so importing jaxreg runs no check.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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
    verify: check ``grad`` against ``jax.grad(fn)`` when the activation is
      constructed (see the module docstring); ``False`` skips the check.

  Raises:
    ValueError: when ``verify`` is on and ``grad`` disagrees with
      ``jax.grad(fn)`` away from the kinks, or a kink's derivative value lies
      outside the one-sided derivatives of ``fn`` there.

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
    >>> Activation("cube", lambda x: x**3, lambda x: 3 * x)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Activation 'cube': its closed-form `grad` disagrees with jax.grad(fn) ...
  """

  name: str
  fn: ArrayFn
  grad_fn: ArrayFn
  kinks: tuple[float, ...] = ()
  kink_value: float | None = None
  params: tuple[tuple[str, Any], ...] = ()
  verify: bool = dataclasses.field(default=True, repr=False)
  _builtin: bool = dataclasses.field(default=False, repr=False)
  _default_kink_value: float | None = dataclasses.field(default=None, repr=False)
  # (fn, grad_fn, kink_value) as last verified, or trusted for the module-level
  # built-ins: a copy with the same three is not verified again.
  _verified: tuple | None = dataclasses.field(default=None, repr=False)

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
    if not isinstance(self.verify, bool):
      raise TypeError(f"Activation {self.name!r}: `verify` must be a bool, got {self.verify!r}.")
    if self.verify:
      done = self._verified
      if (done is None or done[0] is not self.fn or done[1] is not self.grad_fn
          or done[2] != self.kink_value):
        verify_activation(self)
      object.__setattr__(self, "_verified", (self.fn, self.grad_fn, self.kink_value))

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

    Raises:
      ValueError: if the activation has no kink, or (unless it was built with
        ``verify=False``) ``value`` lies outside the one-sided derivatives of
        ``fn`` at a kink (``relu.with_kink_value(2.0)``).
    """
    if not self.kinks:
      raise ValueError(
          f"with_kink_value: activation {self.name!r} has no kink, so there is no "
          "derivative convention to set.")
    return dataclasses.replace(self, kink_value=value)


def _builtin(name, fn, grad, kinks=(), kink_value=None, params=(), *, trusted):
  """A jaxreg activation; ``trusted`` ones (module-level, tested) skip construction checks."""
  return Activation(name, fn, grad, tuple(kinks), kink_value, tuple(params), _builtin=True,
                    _default_kink_value=kink_value,
                    _verified=(fn, grad, kink_value) if trusted else None)


# ------------------------------------------------------- verification
# Probe points for a closed form: [-6, 6] in steps of 0.01 (exact integers and
# 0 included), random N(0, 3²) points, and around each kink k the points
# k ± 10⁻¹ … 10⁻⁶ and k ± δ (δ tiny, for the one-sided derivatives). Fixed, so a
# check is reproducible; padded to a multiple of 512 so that every check runs
# the same few array shapes and reuses JAX's compiled primitives.
_GRID = np.arange(-600, 601) / 100.0
_RANDOM = np.random.default_rng(0).normal(0.0, 3.0, 256)
_NEAR_KINK = 10.0 ** -np.arange(1, 7)
_PAD_TO = 512


class _Probe(NamedTuple):
  """Probe points ``x`` and where in ``x`` each kind of point sits.

  Attributes:
    x: all points, padded.
    smooth: mask of the points judged against autodiff (not at a kink, not padding).
    left: for each kink ``k``, the index of ``k − δ``.
    right: for each kink, the index of ``k + δ``.
    at: for each kink, the index of ``k`` itself.
  """
  x: np.ndarray
  smooth: np.ndarray
  left: np.ndarray
  right: np.ndarray
  at: np.ndarray


def _probe(kinks: tuple[float, ...], dtype: np.dtype) -> _Probe:
  k = np.asarray(kinks, np.float64)
  delta = np.maximum(np.abs(k), 1.0) * float(np.finfo(dtype).eps) ** 0.75
  near = (k[:, None] + np.concatenate([-_NEAR_KINK, _NEAR_KINK])).ravel()
  body = np.concatenate([_GRID, _RANDOM, near, k - delta, k + delta]).astype(dtype)
  n, nk = len(body), len(k)
  x = np.zeros(-(-(n + nk) // _PAD_TO) * _PAD_TO, dtype)
  x[:n], x[n:n + nk] = body, k
  smooth = np.zeros(len(x), bool)
  smooth[:n] = ~np.isin(body, k.astype(dtype))
  first = n - 2 * nk
  return _Probe(x, smooth, np.arange(first, first + nk), np.arange(first + nk, n),
                np.arange(n, n + nk))


def maps_into_unit_interval(act: Activation) -> bool:
  """Whether ``act``'s outputs lie in ``(0, 1)`` (what a loss on probabilities needs).

  Among the built-ins only :data:`sigmoid` does; an activation of your own is
  judged by its values on the probe points (``[-6, 6]`` and random ones).
  """
  if act._builtin:  # pylint: disable=protected-access
    return act.name == "sigmoid"
  x = _probe((), float_dtype()).x
  with jax.ensure_compile_time_eval():
    y = np.asarray(act.fn(jnp.asarray(x)))
  return bool(np.all((y > 0) & (y < 1)))


def float_dtype() -> np.dtype:
  """The dtype that jaxreg computes in by default (float64 under ``jax_enable_x64``)."""
  return np.dtype(jnp.asarray(0.0).dtype)


def tolerance(dtype) -> float:
  """Relative tolerance of a closed form against autodiff in ``dtype``: ``10·√eps``."""
  return 10.0 * float(np.finfo(dtype).eps) ** 0.5


def closed_form_errors(got: np.ndarray, ref: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """Elementwise ``|got − ref| / max(|ref|, 10⁻³·max|ref|)`` where ``valid``, else 0.

  The floor keeps the relative error meaningful where the derivative itself
  is a cancellation (the tails of sigmoid or tanh, whose derivatives the
  forward value fixes to one ulp only). A non-finite ``got`` where ``ref``
  is finite is an infinite error.
  """
  scale = float(np.max(np.abs(ref[valid]))) if valid.any() else 0.0
  floor = max(1e-3 * scale, float(np.finfo(ref.dtype).tiny))
  with np.errstate(invalid="ignore", over="ignore"):
    err = np.abs(got - ref) / np.maximum(np.abs(ref), floor)
  err = np.where(np.isfinite(got), err, np.inf)
  return np.where(valid, err, 0.0)


def verify_activation(act: Activation, dtype=None) -> None:
  """Raises ``ValueError`` unless ``act.grad`` equals ``jax.grad(act.fn)``.

  Away from the declared kinks the two must agree on every probe point where
  ``fn`` and ``jax.grad(fn)`` are finite (elsewhere is outside ``fn``'s
  domain); at each kink ``act.grad`` must lie between the one-sided
  derivatives of ``fn`` (any value there is a valid convention, as
  ``relu'(0) ∈ [0, 1]``; a kink where one side is not finite is not judged).

  Args:
    act: the activation.
    dtype: float dtype of the probe points; default jaxreg's default float.
  """
  dtype = float_dtype() if dtype is None else np.dtype(dtype)
  probe = _probe(act.kinks, dtype)
  with jax.ensure_compile_time_eval():   # evaluate now, even inside a caller's jit
    x = jnp.asarray(probe.x)
    fx = np.asarray(act.fn(x))
    ref = np.asarray(jax.vmap(jax.grad(act.fn))(x))
    got = act.grad(x)
  if jnp.shape(got) != probe.x.shape:
    raise ValueError(
        f"Activation {act.name!r}: `grad(x)` must return an array of x's shape (it is "
        f"elementwise); for x of shape {probe.x.shape} it returned shape {jnp.shape(got)}. "
        "For a constant derivative write e.g. `jnp.ones_like(x)`.")
  got = np.asarray(got)
  tol = tolerance(dtype)
  valid = probe.smooth & np.isfinite(ref) & np.isfinite(fx)
  if not valid.any():
    raise ValueError(
        f"Activation {act.name!r}: cannot verify its closed-form `grad`: `fn` or jax.grad(fn) "
        f"is not finite at any probe point in [-6, 6] ({dtype}). "
        "Pass verify=False to skip this check.")
  err = closed_form_errors(got, ref, valid)
  i = int(np.argmax(err))
  if err[i] > tol:
    n_bad = int(np.sum(err > tol))
    where = (f"{n_bad} of {int(valid.sum())} probe points disagree" if n_bad > 1 else
             "only this point disagrees: if fn has a kink there, declare it, e.g. "
             f"kinks=({float(probe.x[i])!r},)")
    raise ValueError(
        f"Activation {act.name!r}: its closed-form `grad` disagrees with jax.grad(fn) "
        f"(relative tolerance {tol:.2g} in {dtype}). Worst at x = {float(probe.x[i])!r}: "
        f"grad(x) = {float(got[i])!r}, jax.grad(fn)(x) = {float(ref[i])!r} (relative error "
        f"{float(err[i]):.3g}); {where}. Fix `grad`, or pass verify=False to skip this check.")
  for k, lft, rgt, g in zip(act.kinks, ref[probe.left], ref[probe.right], got[probe.at]):
    if not (np.isfinite(lft) and np.isfinite(rgt)):
      continue
    lo, hi = min(lft, rgt), max(lft, rgt)
    slack = tol * max(abs(lo), abs(hi), float(np.finfo(dtype).tiny))
    if not (np.isfinite(g) and lo - slack <= g <= hi + slack):
      source = "kink_value" if act.kink_value is not None else "grad"
      raise ValueError(
          f"Activation {act.name!r}: at its kink x = {k!r} the derivative is {float(g)!r} "
          f"(from `{source}`), outside the one-sided derivatives of fn there: "
          f"{float(lft)!r} (left) and {float(rgt)!r} (right). A convention at a kink must lie "
          "between them. Fix it, or pass verify=False to skip this check.")


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
sigmoid = _builtin("sigmoid", jax.nn.sigmoid, _sigmoid_grad, trusted=True)

#: ``tanh(x)``; ``tanh'(x) = 1 − tanh(x)² = 4/(eˣ + e⁻ˣ)²`` (S1.2).
tanh = _builtin("tanh", jnp.tanh, _tanh_grad, trusted=True)

#: ``max(0, x)``; ``relu'(x) = H(x)`` with ``relu'(0) = 0`` (JAX's and S1.3's
#: convention; S0 uses 1: ``relu.with_kink_value(1.0)``).
relu = _builtin("relu", jax.nn.relu, _relu_grad, kinks=(0.0,), kink_value=0.0, trusted=True)


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
  return _leaky_relu(alpha)


@functools.lru_cache(maxsize=64)
def _leaky_relu(alpha: float) -> Activation:
  """``leaky_relu(alpha)``, verified once per ``alpha``."""

  def fn(x):
    return jax.nn.leaky_relu(x, negative_slope=alpha)

  def grad(x):
    return jnp.where(x >= 0, jnp.ones_like(x), jnp.full_like(x, alpha))

  return _builtin("leaky_relu", fn, grad, kinks=(0.0,), kink_value=1.0,
                  params=(("alpha", alpha),), trusted=False)


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
  return _elu(alpha)


@functools.lru_cache(maxsize=64)
def _elu(alpha: float) -> Activation:
  """``elu(alpha)``, verified once per ``alpha``."""

  def fn(x):
    return jax.nn.elu(x, alpha=alpha)

  def grad(x):
    return jnp.where(x > 0, jnp.ones_like(x), alpha * jnp.exp(jnp.minimum(x, 0)))

  return _builtin("elu", fn, grad, kinks=(0.0,), kink_value=alpha, params=(("alpha", alpha),),
                  trusted=False)


def _softplus(x):
  return jax.nn.softplus(x)


#: ``log(1 + eˣ)``; derivative ``σ(x)``.
softplus = _builtin("softplus", _softplus, jax.nn.sigmoid, trusted=True)

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
gelu = _builtin("gelu", _gelu, _gelu_grad, trusted=True)


def _silu_grad(x):
  s = jax.nn.sigmoid(x)
  return s * (1 + x * (1 - s))


#: SiLU / swish ``x·σ(x)``; derivative ``σ(x)(1 + x(1 − σ(x)))``.
silu = _builtin("silu", jax.nn.silu, _silu_grad, trusted=True)


def _identity(x):
  return x


#: ``f(x) = x``; derivative 1 (a linear layer).
identity = _builtin("identity", _identity, jnp.ones_like, trusted=True)

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
