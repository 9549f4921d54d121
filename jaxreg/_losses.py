"""Data losses, each with its closed-form gradient with respect to its input.

Every loss takes ``(y, t)`` of shape ``(m, k)`` (a batch of ``m`` rows) and
**averages over the batch**, so its gradient is ``(1/m) Σ`` of per-sample
gradients, as in Nielsen's minibatch rule (S2.2).

A loss you construct is verified where it enters: ``Loss(name, fn, grad)``
compares ``grad`` with ``jax.grad(fn)`` on random inputs (real-valued,
probabilities, logits with one-hot targets, ±1 targets; those where ``fn`` is
not finite are outside its domain and skipped) and raises a ``ValueError``
naming the loss and its worst element; ``verify=False`` skips this. The
built-in losses are verified by the test suite instead.

:func:`check_targets` checks, on the host, that targets lie in a loss's
domain (finite; in ``[0, 1]`` for the binary cross-entropies; rows of
nonnegative weights summing to 1 for the softmax cross-entropy).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _activations

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Loss:
  """A batch-averaged loss ``fn(y, t) -> scalar`` and its gradient ``grad(y, t) = ∂fn/∂y``.

  Attributes:
    name: short name, for messages.
    fn: the loss, a scalar.
    grad: its closed-form gradient w.r.t. ``y``, same shape as ``y``.
    verify: check ``grad`` against ``jax.grad(fn)`` when the loss is
      constructed (see the module docstring); ``False`` skips the check.

  Raises:
    ValueError: when ``verify`` is on and ``grad`` disagrees with ``jax.grad(fn)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> l1 = Loss("l1", lambda y, t: jnp.sum(jnp.abs(y - t)) / y.shape[0],
    ...           lambda y, t: jnp.sign(y - t) / y.shape[0])
    >>> Loss("l1", l1.fn, lambda y, t: jnp.sign(y - t))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Loss 'l1': its closed-form `grad` disagrees with jax.grad(fn) ...
  """

  name: str
  fn: Callable[[Array, Array], Array]
  grad: Callable[[Array, Array], Array]
  verify: bool = dataclasses.field(default=True, repr=False, compare=False)
  # (fn, grad) as verified, or trusted for the built-ins.
  _verified: tuple | None = dataclasses.field(default=None, repr=False, compare=False)

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name:
      raise TypeError(f"Loss: `name` must be a non-empty str, got {self.name!r}.")
    for arg in ("fn", "grad"):
      if not callable(getattr(self, arg)):
        raise TypeError(
            f"Loss {self.name!r}: `{arg}` must be callable, got {type(getattr(self, arg)).__name__}.")
    if not isinstance(self.verify, bool):
      raise TypeError(f"Loss {self.name!r}: `verify` must be a bool, got {self.verify!r}.")
    if self.verify:
      done = self._verified
      if done is None or done[0] is not self.fn or done[1] is not self.grad:
        verify_loss(self)
      object.__setattr__(self, "_verified", (self.fn, self.grad))

  def __call__(self, y: Array, t: Array) -> Array:
    return self.fn(y, t)

  def __repr__(self):
    return self.name


def _builtin(name, fn, grad):
  """A jaxreg loss, trusted (the test suite verifies it)."""
  return Loss(name, fn, grad, _verified=(fn, grad))


# ------------------------------------------------------- verification
class _LossProbe(NamedTuple):
  """One family of inputs a loss is verified on."""
  what: str
  y: np.ndarray
  t: np.ndarray


def _loss_probes() -> tuple[_LossProbe, ...]:
  rng = np.random.default_rng(0)
  m, k = 6, 3
  return (
      _LossProbe("real y and t", rng.normal(0.0, 1.5, (m, k)), rng.normal(0.0, 1.0, (m, k))),
      _LossProbe("probabilities y in (0, 1), targets in [0, 1]",
                 rng.uniform(0.05, 0.95, (m, k)), rng.uniform(0.0, 1.0, (m, k))),
      _LossProbe("logits y, one-hot targets",
                 rng.normal(0.0, 2.0, (m, k)), np.eye(k)[rng.integers(0, k, m)]),
      _LossProbe("real y, targets ±1",
                 rng.normal(0.0, 1.5, (m, k)), rng.choice([-1.0, 1.0], (m, k))),
  )


_LOSS_PROBES = _loss_probes()


def verify_loss(loss: Loss, dtype=None) -> None:
  """Raises ``ValueError`` unless ``loss.grad`` equals ``jax.grad(loss.fn)`` (w.r.t. ``y``).

  Compared on each probe family of shape ``(6, 3)`` where ``fn`` and its
  autodiff gradient are finite, elementwise with the rule of
  :func:`jaxreg._activations.closed_form_errors`.

  Args:
    loss: the loss.
    dtype: float dtype of the probe inputs; default jaxreg's default float.
  """
  dtype = _activations.float_dtype() if dtype is None else np.dtype(dtype)
  y = np.stack([p.y for p in _LOSS_PROBES]).astype(dtype)
  t = np.stack([p.t for p in _LOSS_PROBES]).astype(dtype)
  with jax.ensure_compile_time_eval():   # evaluate now, even inside a caller's jit
    value = jax.vmap(loss.fn)(jnp.asarray(y), jnp.asarray(t))
    if jnp.shape(value) != (len(y),):
      raise ValueError(
          f"Loss {loss.name!r}: `fn(y, t)` must return a scalar (the batch average), got "
          f"shape {jnp.shape(value)[1:]} for y of shape {y.shape[1:]}.")
    ref = np.asarray(jax.vmap(jax.grad(loss.fn))(jnp.asarray(y), jnp.asarray(t)))
    got = jax.vmap(loss.grad)(jnp.asarray(y), jnp.asarray(t))
  if jnp.shape(got) != y.shape:
    raise ValueError(
        f"Loss {loss.name!r}: `grad(y, t)` must return an array of y's shape {y.shape[1:]}, "
        f"got shape {jnp.shape(got)[1:]}.")
  got = np.asarray(got)
  judged = np.isfinite(np.asarray(value)) & np.isfinite(ref).all(axis=(1, 2))
  if not judged.any():
    raise ValueError(
        f"Loss {loss.name!r}: cannot verify its closed-form `grad`: `fn` or jax.grad(fn) is not "
        f"finite on any probe input ({'; '.join(p.what for p in _LOSS_PROBES)}). "
        "Pass verify=False to skip this check.")
  valid = np.broadcast_to(judged[:, None, None], y.shape)
  err = np.stack([_activations.closed_form_errors(g, r, v) for g, r, v in zip(got, ref, valid)])
  tol = _activations.tolerance(dtype)
  i = np.unravel_index(int(np.argmax(err)), err.shape)
  if err[i] > tol:
    idx = ", ".join(str(int(j)) for j in i[1:])
    raise ValueError(
        f"Loss {loss.name!r}: its closed-form `grad` disagrees with jax.grad(fn) w.r.t. y "
        f"(relative tolerance {tol:.2g} in {dtype}). Worst on {_LOSS_PROBES[i[0]].what}, shape "
        f"{y.shape[1:]}, at y[{idx}] = {y[i].item()!r} with t[{idx}] = {t[i].item()!r}: "
        f"grad = {got[i].item()!r}, jax.grad(fn) = {ref[i].item()!r} (relative error "
        f"{err[i].item():.3g}). Fix `grad`, or pass verify=False to skip this check.")


# ------------------------------------------------------------- losses
def _batch(y):
  return y.shape[0] if y.ndim else 1


def _mse(y, t):
  d = y - t
  return 0.5 * jnp.sum(d * d) / _batch(y)


def _mse_grad(y, t):
  return (y - t) / _batch(y)


#: ``(1/2m) Σ_x ‖y(x) − t(x)‖²`` — S0's ``½(t − y)²`` summed over outputs and
#: averaged over the batch (Nielsen's quadratic cost). Gradient ``(y − t)/m``.
mse = _builtin("mse", _mse, _mse_grad)


def _bce(a, t):
  return -jnp.sum(t * jnp.log(a) + (1 - t) * jnp.log1p(-a)) / _batch(a)


def _bce_grad(a, t):
  return (a - t) / (a * (1 - a)) / _batch(a)


#: Nielsen's cross-entropy on probabilities ``a ∈ (0, 1)`` (S2.6):
#: ``−(1/m) Σ [t ln a + (1 − t) ln(1 − a)]``; gradient ``(a − t) / (a(1 − a)m)``.
#: Through a sigmoid output layer the ``a(1 − a)`` cancels and ``∂C/∂z = (a − t)/m``.
#: Needs an output activation into ``(0, 1)`` (``jaxreg.MLP`` refuses others);
#: on a linear output use :data:`binary_cross_entropy_with_logits`.
binary_cross_entropy = _builtin("binary_cross_entropy", _bce, _bce_grad)


def _bce_logits(z, t):
  # softplus(z) − z·t = −[t ln σ(z) + (1 − t) ln(1 − σ(z))], with softplus as
  # logaddexp(z, 0): no overflow and no log(0) for any finite z.
  return jnp.sum(jax.nn.softplus(z) - z * t) / _batch(z)


def _bce_logits_grad(z, t):
  return (jax.nn.sigmoid(z) - t) / _batch(z)


#: Binary cross-entropy on logits ``z`` (a linear output), targets ``t ∈ [0, 1]``:
#: ``(1/m) Σ [softplus(z) − z t] = −(1/m) Σ [t ln σ(z) + (1 − t) ln(1 − σ(z))]``,
#: finite for every finite ``z``; gradient ``(σ(z) − t)/m``. The same loss as
#: :data:`binary_cross_entropy` after a sigmoid, without its saturation at
#: ``σ(z) ∈ {0, 1}``.
binary_cross_entropy_with_logits = _builtin(
    "binary_cross_entropy_with_logits", _bce_logits, _bce_logits_grad)


def _sce(z, t):
  return -jnp.sum(t * jax.nn.log_softmax(z, axis=-1)) / _batch(z)


def _sce_grad(z, t):
  p = jax.nn.softmax(z, axis=-1)
  return (p * jnp.sum(t, axis=-1, keepdims=True) - t) / _batch(z)


#: Softmax cross-entropy on logits ``z`` with (one-hot or soft) targets ``t``:
#: ``−(1/m) Σ t · log_softmax(z)``; gradient ``(softmax(z)·Σ_k t_k − t)/m``
#: (``(softmax(z) − t)/m`` for targets that sum to 1).
softmax_cross_entropy = _builtin("softmax_cross_entropy", _sce, _sce_grad)

_LOSSES = {l.name: l for l in (mse, binary_cross_entropy, binary_cross_entropy_with_logits,
                                softmax_cross_entropy)}
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


# ------------------------------------------------------------ targets
def _at(argname: str, index: tuple) -> str:
  return f"{argname}[{', '.join(str(int(i)) for i in index)}]" if index else argname


def _first(bad: np.ndarray):
  return tuple(np.argwhere(bad)[0])


def _probabilities(loss: Loss, t: np.ndarray, argname: str) -> None:
  bad = (t < 0) | (t > 1)
  if bad.any():
    i = _first(bad)
    raise ValueError(
        f"`{argname}`: {loss.name} needs targets in [0, 1] (probabilities of the positive "
        f"class), got {_at(argname, i)} = {t[i].item()!r}.")


def _distributions(loss: Loss, t: np.ndarray, argname: str) -> None:
  if t.ndim < 2:
    raise ValueError(
        f"`{argname}`: {loss.name} needs targets of shape (batch, classes), one distribution "
        f"per row, got shape {t.shape}. Integer labels must be one-hot encoded: "
        "jax.nn.one_hot(labels, num_classes).")
  if (t < 0).any():
    i = _first(t < 0)
    raise ValueError(
        f"`{argname}`: {loss.name} needs nonnegative targets (each row a distribution over the "
        f"classes), got {_at(argname, i)} = {t[i].item()!r}.")
  sums = t.sum(axis=-1, dtype=np.float64)
  k = t.shape[-1]
  tol = max(1e-5, 8 * k * float(np.finfo(t.dtype).eps)) if t.dtype.kind == "f" else 0.0
  bad = np.abs(sums - 1.0) > tol
  if bad.any():
    i = _first(bad)
    raise ValueError(
        f"`{argname}`: {loss.name} needs each row of targets to sum to 1 (one-hot labels or "
        f"class probabilities), got row {_at(argname, i)} summing to {sums[i].item()!r}.")


_TARGET_DOMAINS = {
    binary_cross_entropy.name: _probabilities,
    binary_cross_entropy_with_logits.name: _probabilities,
    softmax_cross_entropy.name: _distributions,
}


def check_targets(loss: Any, t: Any, *, argname: str) -> None:
  """Raises a clear error unless the targets ``t`` lie in ``loss``'s domain.

  Host-side: ``t`` must be concrete (a NumPy or JAX array, not traced). Every
  loss needs finite targets; :data:`binary_cross_entropy` and
  :data:`binary_cross_entropy_with_logits` need ``t ∈ [0, 1]``;
  :data:`softmax_cross_entropy` needs rows of nonnegative values summing to 1.
  A loss you construct is only checked for finiteness.

  Args:
    loss: a :class:`Loss` or its name.
    t: the targets.
    argname: the argument's name, for the message (e.g. ``"t"``, ``"val_data[1]"``).

  Raises:
    ValueError: naming ``argname``, the rule and the first bad index and value.
    TypeError: for traced or non-numeric ``t``.

  Examples:
    >>> import numpy as np
    >>> check_targets("binary_cross_entropy", np.array([[0.0], [1.0], [2.0]]), argname="t")
    Traceback (most recent call last):
    ...
    ValueError: `t`: binary_cross_entropy needs targets in [0, 1] (probabilities of the positive class), got t[2, 0] = 2.0.
  """
  loss = get(loss)
  if isinstance(t, jax.core.Tracer):
    raise TypeError(
        f"check_targets: `{argname}` must be concrete data (a NumPy or JAX array), got a traced "
        "value; check targets before entering jit/vmap.")
  t = np.asarray(t)
  if t.dtype.kind not in "biuf":
    raise TypeError(f"`{argname}`: targets must be real numbers, got dtype {t.dtype}.")
  if t.dtype.kind == "f" and not np.isfinite(t).all():
    i = _first(~np.isfinite(t))
    raise ValueError(
        f"`{argname}`: targets must be finite, got {_at(argname, i)} = {t[i].item()!r}.")
  domain = _TARGET_DOMAINS.get(loss.name) if _LOSSES.get(loss.name) is loss else None
  if domain is not None:
    domain(loss, t, argname)
