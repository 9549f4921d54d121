"""Update rules of S2 as optax ``GradientTransformation``s that chain.

Contract: every factory here returns an ``optax.GradientTransformation``
(``init``, ``update``), like ``optax.add_decayed_weights``; named rules are
compositions, not flags. Conventions (``η`` learning rate, ``n`` training-set
size, ``m`` batch size, ``g = (1/m) Σ_x ∂C_x/∂w`` the batch-averaged gradient
that :meth:`jaxreg.MLP.backprop` returns):

* :func:`sgd_weight_decay` ``(η, λ/n)``: ``w → (1 − ηλ/n) w − η g`` (S2.2);
  biases are not decayed unless ``mask=None``.
* :func:`l1_sign` ``(λ/n)`` chained *before* ``optax.sgd(η)``: adds
  ``(λ/n)·sgn(w)`` to the gradient, so the step is ``w → w − ηλ/n·sgn(w) − η g``
  (S2.3, ``sgn(0) = 0``). The strength is in gradient units, like
  ``weight_decay``: the learning rate multiplies it.
* :func:`l1_proximal` ``(λ/n, η)`` chained *after* ``optax.sgd(η)``:
  soft-thresholds the new weight, ``w⁺ = sgn(v)·max(|v| − ηλ/n, 0)`` with
  ``v = w − η g``; weights whose step would cross 0 land on exactly 0.

Hyperparameters may be Python numbers (validated here) or JAX arrays, also
traced ones, so a chain can be built inside ``jit``/``vmap`` (that is how
:func:`jaxreg.train_many` sweeps them); arrays are not validated.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

Params = Any


def kernels_only(params: Params) -> Params:
  """Mask function: ``True`` for kernels (leaves with ``ndim ≥ 2``), ``False`` for biases.

  For jaxreg params (``[{"w": (n_in, n_out), "b": (n_out,)}, …]``) this is
  ``True`` exactly at the ``"w"`` entries: Nielsen's rule leaves biases alone
  (S2.1). It is the optax docs' bias recipe (``x.ndim != 1``) for matrices.

  Examples:
    >>> import jax.numpy as jnp
    >>> kernels_only([{"w": jnp.ones((2, 3)), "b": jnp.ones(3)}])
    [{'b': False, 'w': True}]
  """
  return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


def _check(fname: str, argname: str, value) -> None:
  """Validates a non-negative finite hyperparameter given as a Python number."""
  if isinstance(value, jax.Array):  # includes tracers
    return  # traced or device values: the caller validated them (train_many does).
  if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
    raise TypeError(f"{fname}: `{argname}` must be a real number, got {type(value).__name__} {value!r}.")
  v = float(value)
  if not math.isfinite(v) or v < 0:
    raise ValueError(f"{fname}: `{argname}` must be a finite number >= 0, got {v}.")


def _masked(tx: optax.GradientTransformation, mask) -> optax.GradientTransformation:
  return tx if mask is None else optax.masked(tx, mask)


def _as(value, like):
  """``value`` in ``like``'s dtype, so traced float64 hyperparameters do not promote float32 params."""
  return jnp.asarray(value, dtype=jnp.result_type(like))


def sgd_weight_decay(learning_rate: Any, weight_decay: Any, *,
                     mask: Callable[[Params], Params] | Params | None = kernels_only
                     ) -> optax.GradientTransformation:
  """SGD with coupled weight decay: ``chain(add_decayed_weights(wd, mask), sgd(η))``.

  One step is ``w → w − η(g + wd·w) = (1 − η·wd) w − η g``; with
  ``weight_decay = λ/n`` that is Nielsen's ``update_mini_batch`` (S2.2),
  ``(1 − ηλ/n) w − (η/m) Σ_x ∂C_x/∂w``, and ``b → b − (η/m) Σ_x ∂C_x/∂b``.
  It equals L2 regularization ``l2(wd / 2)`` in the loss under plain SGD.

  Args:
    learning_rate: ``η ≥ 0``.
    weight_decay: ``wd ≥ 0`` (``λ/n`` in Nielsen's notation; 0 = plain SGD).
    mask: which leaves decay: a mask function or pytree of bools
      (default :func:`kernels_only`, biases undecayed), or ``None`` to decay
      every leaf (S4.2 style).

  Returns:
    An ``optax.GradientTransformation``.

  Examples:
    >>> import jax, jax.numpy as jnp, numpy as np, optax
    >>> from jaxreg.optim import sgd_weight_decay
    >>> params = [{"w": jnp.array([[1.0]]), "b": jnp.array([1.0])}]
    >>> grads = [{"w": jnp.array([[0.0]]), "b": jnp.array([0.0])}]
    >>> tx = sgd_weight_decay(0.5, 0.1)
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> np.round(np.asarray(optax.apply_updates(params, updates)[0]["w"], float), 6).tolist()  # (1 − 0.5·0.1)·1
    [[0.95]]
  """
  _check("sgd_weight_decay", "learning_rate", learning_rate)
  _check("sgd_weight_decay", "weight_decay", weight_decay)
  return optax.chain(optax.add_decayed_weights(weight_decay, mask), optax.sgd(learning_rate))


def l1_sign(strength: Any, *, mask: Callable[[Params], Params] | Params | None = kernels_only
            ) -> optax.GradientTransformation:
  """S2.3's L1 rule as a gradient transformation: ``g → g + strength·sgn(w)``, ``sgn(0) = 0``.

  Chain it **before** the learning-rate scaling, e.g.
  ``optax.chain(l1_sign(lam / n), optax.sgd(eta))``: the step is then
  ``w → w − η·(λ/n)·sgn(w) − η g``. Like the subgradient it adds, this rule
  never lands on exactly 0: a weight near 0 oscillates around it with
  amplitude ``ηλ/n`` (use :func:`l1_proximal` for exact zeros).

  Args:
    strength: ``λ/n ≥ 0``, in gradient units (the learning rate multiplies it).
    mask: which leaves get the L1 term (default :func:`kernels_only`;
      ``None`` = all leaves, S4.1).

  Returns:
    An ``optax.GradientTransformation`` (stateless; needs ``params``).

  Examples:
    >>> import jax, jax.numpy as jnp, numpy as np, optax
    >>> from jaxreg.optim import l1_sign
    >>> params = [{"w": jnp.array([[0.3, 0.0, -2.0]]), "b": jnp.zeros(3)}]
    >>> grads = jax.tree.map(jnp.zeros_like, params)
    >>> tx = optax.chain(l1_sign(0.1), optax.sgd(1.0))
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> np.round(np.asarray(optax.apply_updates(params, updates)[0]["w"], float), 6).tolist()
    [[0.2, 0.0, -1.9]]
  """
  _check("l1_sign", "strength", strength)

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(optax.NO_PARAMS_MSG)
    updates = jax.tree.map(lambda g, p: g + _as(strength, p) * jnp.sign(p), updates, params)
    return updates, state

  return _masked(optax.GradientTransformation(init_fn, update_fn), mask)


def l1_proximal(strength: Any, learning_rate: Any, *,
                mask: Callable[[Params], Params] | Params | None = kernels_only
                ) -> optax.GradientTransformation:
  """Proximal L1 (soft-thresholding) as the last link of a chain: exact zeros.

  Chain it **after** the SGD step, e.g.
  ``optax.chain(optax.sgd(eta), l1_proximal(lam / n, eta))``. Given the
  incoming update ``u`` it returns ``w⁺ − w`` where ``v = w + u`` and
  ``w⁺ = sgn(v)·max(|v| − η·strength, 0)``: the proximal operator of
  ``η·strength·|w|``. Where ``|v| ≤ η·strength`` the new weight is exactly 0
  (``w + (0 − w) == 0`` in floating point), which S2.3's sign rule never
  reaches; elsewhere it shrinks by ``η·strength`` towards 0, like the sign rule.

  Args:
    strength: ``λ/n ≥ 0`` (same units as :func:`l1_sign`).
    learning_rate: ``η ≥ 0``, the step size of the SGD step before it; the
      threshold is ``η·strength``.
    mask: which leaves are thresholded (default :func:`kernels_only`;
      ``None`` = all leaves).

  Returns:
    An ``optax.GradientTransformation`` (stateless; needs ``params``).

  Examples:
    >>> import jax, jax.numpy as jnp, numpy as np, optax
    >>> from jaxreg.optim import l1_proximal
    >>> params = [{"w": jnp.array([[0.3, 0.05, -2.0]]), "b": jnp.zeros(3)}]
    >>> grads = jax.tree.map(jnp.zeros_like, params)
    >>> tx = optax.chain(optax.sgd(1.0), l1_proximal(0.1, 1.0))
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> np.round(np.asarray(optax.apply_updates(params, updates)[0]["w"], float), 6).tolist()
    [[0.2, 0.0, -1.9]]
  """
  _check("l1_proximal", "strength", strength)
  _check("l1_proximal", "learning_rate", learning_rate)

  def init_fn(params):
    del params
    return optax.EmptyState()

  def shrink(u, p):
    v = p + u
    thr = _as(learning_rate, p) * _as(strength, p)
    return jnp.sign(v) * jnp.maximum(jnp.abs(v) - thr, 0) - p

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(optax.NO_PARAMS_MSG)
    return jax.tree.map(shrink, updates, params), state

  return _masked(optax.GradientTransformation(init_fn, update_fn), mask)
