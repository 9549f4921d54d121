"""`MLP`: a static, hashable spec of a dense network, and its pure functions.

Contract: ``MLP(...)`` holds no arrays. Its methods are pure functions of
``params`` (a plain pytree: a ``list`` of ``{"w": (n_in, n_out), "b": (n_out,)}``)
and data, so they compose with ``jit``, ``vmap``, ``grad``, optax and sharding.
Because the spec is hashable it can be a static argument of ``jax.jit``.

Forward pass of dense layer ``l`` (``a_0 = x``, batch rows are samples)::

    u_l = a_l * mask_l            (mask_l: the caller's dropout keep-mask, if any)
    z_l = u_l @ W_l + b_l
    a_{l+1} = f_l(z_l)

The loss is the data loss on ``y = a_L`` plus, per layer, ``kernel(W_l)``,
``bias(b_l)`` and ``activity(s_l) / m`` where ``s_l`` is ``a_{l+1}``
(``activity_on="output"``, Keras) or ``z_l`` (``"preactivation"``, S0's L1 on
``x2``), and ``m`` is the batch size (Keras divides the activity penalty by
the batch size: tf.keras 2 always, Keras 3 from 3.14).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxreg import _activations
from jaxreg import _losses
from jaxreg import _penalties

Array = jax.Array
Params = list  # list[dict[str, Array]]

INITS = ("glorot_uniform", "he_normal", "nielsen")
ACTIVITY_ON = ("output", "preactivation")


def _per_layer(value, n: int, argname: str, resolve, *, single_hidden_only: bool):
  """Expands a single value or a sequence of ``n`` values to a tuple of ``n``."""
  if isinstance(value, (list, tuple)):
    if len(value) != n:
      raise ValueError(
          f"MLP: `{argname}` as a sequence needs one entry per dense layer "
          f"(len(sizes) - 1 = {n}), got {len(value)} entries.")
    return tuple(resolve(v, argname=f"{argname}[{i}]") for i, v in enumerate(value))
  one = resolve(value, argname=argname)
  if single_hidden_only:
    return tuple([one] * (n - 1) + [_activations.identity])
  return tuple([one] * n)


def _check_output_fits_loss(loss, out, *, single: bool) -> None:
  """Refuses a binary cross-entropy whose input the output activation cannot produce.

  ``binary_cross_entropy`` takes probabilities, so the output must map into
  ``(0, 1)``; ``binary_cross_entropy_with_logits`` takes logits, and after a
  sigmoid its prediction ``σ(σ(z))`` is stuck in ``(1/2, σ(1) ≈ 0.73)``.
  """
  if loss is _losses.binary_cross_entropy and not _activations.maps_into_unit_interval(out):
    hint = (" (A single `activation` applies to the hidden layers only and leaves the output "
            "layer linear; give one per dense layer, e.g. [..., 'sigmoid'].)" if single else "")
    raise ValueError(
        f"MLP: loss='binary_cross_entropy' takes probabilities, so the output activation must "
        f"map into (0, 1) (sigmoid), got {out!r}: its outputs reach outside (0, 1), where the "
        "loss takes the log of a non-positive number (NaN). Put a sigmoid on the output layer, "
        f"or keep it linear and use loss='binary_cross_entropy_with_logits'.{hint}")
  if (loss is _losses.binary_cross_entropy_with_logits
      and _activations.maps_into_unit_interval(out)):
    raise ValueError(
        f"MLP: loss='binary_cross_entropy_with_logits' takes logits (a linear output) and applies "
        f"the sigmoid itself, but the output activation {out!r} already maps into (0, 1), so no "
        "prediction can go below 1/2. Make the output layer linear (None), or use "
        "loss='binary_cross_entropy' after the sigmoid.")


class MLP:
  """A dense network spec with pure ``init``/``apply``/``loss``/``backprop``.

  Args:
    sizes: layer widths ``(n_in, h_1, …, n_out)``, at least two.
    activation: one activation for every hidden layer (the output layer is
      then linear), or a sequence with one per dense layer (``None`` =
      linear). Activations may be given by name (``"relu"``).
    loss: a :class:`jaxreg.losses.Loss` or its name; batch-averaged.
      ``"binary_cross_entropy"`` takes probabilities and needs a sigmoid
      output layer; on a linear output use ``"binary_cross_entropy_with_logits"``.
    kernel_regularizer: a :class:`jaxreg.penalties.Penalty` for every
      layer's ``W``, or a sequence with one per dense layer (``None`` = none).
    bias_regularizer: likewise for every ``b``.
    activity_regularizer: likewise for every layer's activity, divided by
      the batch size (Keras's scaling).
    activity_on: ``"output"`` (after the activation, Keras) or
      ``"preactivation"`` (``z = u @ W + b``, as S0 writes ``λ|x2|``).
    init: ``"glorot_uniform"`` (Keras default; biases 0), ``"he_normal"``
      (truncated normal, std ``√(2/n_in)``; biases 0) or ``"nielsen"``
      (weights ``N(0, 1/n_in)``, biases ``N(0, 1)``).

  Raises:
    ValueError: for bad sizes, names or slots; for
      ``loss="binary_cross_entropy"`` after an output activation that does
      not map into ``(0, 1)``, and ``"binary_cross_entropy_with_logits"``
      after one that does.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> import jaxreg
    >>> net = jaxreg.MLP((124, 100, 10), "relu",
    ...                  activity_regularizer=[jaxreg.penalties.l1(0.01), None],
    ...                  activity_on="preactivation")
    >>> params = net.init(jax.random.key(0))
    >>> [p["w"].shape for p in params]
    [(124, 100), (100, 10)]
    >>> x, t = jnp.ones((8, 124)), jnp.zeros((8, 10))
    >>> grads = net.backprop(params, x, t)   # closed form, equals jax.grad(net.loss)
  """

  __slots__ = ("sizes", "activations", "loss_fn", "kernel_regularizers",
               "bias_regularizers", "activity_regularizers", "activity_on", "init_scheme")

  def __init__(self,
               sizes: Sequence[int],
               activation: Any,
               *,
               loss: Any = _losses.mse,
               kernel_regularizer: Any = None,
               bias_regularizer: Any = None,
               activity_regularizer: Any = None,
               activity_on: str = "output",
               init: str = "glorot_uniform"):
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
      raise TypeError(f"MLP: `sizes` must be a sequence of ints, got {type(sizes).__name__} {sizes!r}.")
    sizes = tuple(sizes)
    if len(sizes) < 2:
      raise ValueError(f"MLP: `sizes` needs at least an input and an output width, got {sizes!r}.")
    for i, s in enumerate(sizes):
      if isinstance(s, bool) or not isinstance(s, int) or s < 1:
        raise ValueError(f"MLP: `sizes[{i}]` must be a positive int, got {s!r}.")
    n = len(sizes) - 1
    set_ = object.__setattr__
    set_(self, "sizes", sizes)
    set_(self, "activations", _per_layer(activation, n, "activation", _activations.get,
                                         single_hidden_only=True))
    set_(self, "loss_fn", _losses.get(loss))
    _check_output_fits_loss(self.loss_fn, self.activations[-1],
                            single=not isinstance(activation, (list, tuple)))
    for slot, value in (("kernel_regularizer", kernel_regularizer),
                        ("bias_regularizer", bias_regularizer),
                        ("activity_regularizer", activity_regularizer)):
      set_(self, slot + "s", _per_layer(value, n, slot, _penalties.get, single_hidden_only=False))
    if activity_on not in ACTIVITY_ON:
      raise ValueError(f"MLP: `activity_on` must be one of {ACTIVITY_ON}, got {activity_on!r}.")
    set_(self, "activity_on", activity_on)
    if init not in INITS:
      raise ValueError(f"MLP: `init` must be one of {INITS}, got {init!r}.")
    set_(self, "init_scheme", init)

  def __setattr__(self, name, value):
    raise AttributeError(f"MLP is immutable; cannot set {name!r}.")

  def _key(self):
    return tuple(getattr(self, s) for s in self.__slots__)

  def __eq__(self, other):
    return type(other) is type(self) and self._key() == other._key()

  def __hash__(self):
    return hash(self._key())

  def __repr__(self):
    acts = ", ".join(repr(a) for a in self.activations)
    s = f"MLP(sizes={self.sizes}, activations=({acts}), loss={self.loss_fn!r}"
    for slot in ("kernel_regularizers", "bias_regularizers", "activity_regularizers"):
      v = getattr(self, slot)
      if any(p is not None for p in v):
        s += f", {slot}={v!r}"
    if any(p is not None for p in self.activity_regularizers):
      s += f", activity_on={self.activity_on!r}"
    return s + f", init={self.init_scheme!r})"

  @property
  def num_layers(self) -> int:
    """Number of dense layers, ``len(sizes) − 1``."""
    return len(self.sizes) - 1

  def num_params(self) -> int:
    """Number of scalar parameters."""
    return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

  # ------------------------------------------------------------------ init
  def init(self, key: Array, dtype: Any = None) -> Params:
    """Fresh parameters: a list of ``{"w": (n_in, n_out), "b": (n_out,)}``.

    Args:
      key: a ``jax.random`` key.
      dtype: float dtype; default ``float64`` when ``jax_enable_x64`` is on,
        else ``float32``.
    """
    dtype = jnp.dtype(dtype) if dtype is not None else jnp.asarray(0.0).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
      raise TypeError(f"MLP.init: `dtype` must be a floating dtype, got {dtype}.")
    params = []
    keys = jax.random.split(key, self.num_layers)
    for k, n_in, n_out in zip(keys, self.sizes[:-1], self.sizes[1:]):
      kw, kb = jax.random.split(k)
      if self.init_scheme == "glorot_uniform":
        lim = math.sqrt(6.0 / (n_in + n_out))
        w = jax.random.uniform(kw, (n_in, n_out), dtype, -lim, lim)
        b = jnp.zeros((n_out,), dtype)
      elif self.init_scheme == "he_normal":
        # Keras: truncated at 2 std, rescaled so the std is √(2/n_in).
        std = math.sqrt(2.0 / n_in) / 0.87962566103423978
        w = std * jax.random.truncated_normal(kw, -2.0, 2.0, (n_in, n_out), dtype)
        b = jnp.zeros((n_out,), dtype)
      else:  # nielsen
        w = jax.random.normal(kw, (n_in, n_out), dtype) / math.sqrt(n_in)
        b = jax.random.normal(kb, (n_out,), dtype)
      params.append({"w": w, "b": b})
    return params

  # ------------------------------------------------------------ checking
  def check_params(self, params: Any, *, argname: str = "params") -> None:
    """Raises a clear error unless ``params`` matches this spec (trace-time only)."""
    if not isinstance(params, (list, tuple)):
      raise TypeError(
          f"`{argname}` must be a list of {{'w', 'b'}} dicts (one per dense layer), "
          f"got {type(params).__name__}.")
    if len(params) != self.num_layers:
      raise ValueError(
          f"`{argname}` has {len(params)} layers but the MLP with sizes {self.sizes} "
          f"has {self.num_layers}.")
    for i, (p, n_in, n_out) in enumerate(zip(params, self.sizes[:-1], self.sizes[1:])):
      if not isinstance(p, dict) or set(p) != {"w", "b"}:
        got = sorted(p) if isinstance(p, dict) else type(p).__name__
        raise ValueError(f"`{argname}[{i}]` must be a dict with keys ['b', 'w'], got {got}.")
      for name, want in (("w", (n_in, n_out)), ("b", (n_out,))):
        shape = tuple(jnp.shape(p[name]))
        if shape != want:
          raise ValueError(f"`{argname}[{i}]['{name}']` must have shape {want}, got {shape}.")

  def _check_x(self, x, fname):
    shape = tuple(jnp.shape(x))
    if len(shape) != 2 or shape[1] != self.sizes[0]:
      raise ValueError(
          f"MLP.{fname}: `x` must have shape (batch, {self.sizes[0]}), got {shape}. "
          "A single sample needs a leading batch axis: x[None, :].")
    return shape[0]

  def _check_t(self, t, m, fname):
    want = (m, self.sizes[-1])
    shape = tuple(jnp.shape(t))
    if shape != want:
      hint = ""
      if self.loss_fn is _losses.softmax_cross_entropy and shape == (m,):
        hint = f" Integer labels must be one-hot encoded: jax.nn.one_hot(t, {self.sizes[-1]})."
      raise ValueError(f"MLP.{fname}: `t` must have shape {want} like the output, got {shape}.{hint}")

  def _check_masks(self, masks, m, fname):
    if masks is None:
      return (None,) * self.num_layers
    if not isinstance(masks, (list, tuple)) or len(masks) != self.num_layers:
      n = len(masks) if isinstance(masks, (list, tuple)) else type(masks).__name__
      raise ValueError(
          f"MLP.{fname}: `dropout_masks` must be a sequence of {self.num_layers} keep-masks "
          f"(one per dense layer's input; None = no dropout there), got {n}.")
    for i, (mask, n_in) in enumerate(zip(masks, self.sizes[:-1])):
      if mask is None:
        continue
      shape = tuple(jnp.shape(mask))
      if shape not in ((m, n_in), (n_in,)):
        raise ValueError(
            f"MLP.{fname}: `dropout_masks[{i}]` must have shape ({m}, {n_in}) (per sample) or "
            f"({n_in},) (per feature), got {shape}.")
    return tuple(masks)

  # ------------------------------------------------------------- forward
  def forward(self, params: Params, x: Array, *, dropout_masks=None):
    """Forward pass keeping the intermediates that backprop needs.

    Returns:
      ``(y, cache)`` where ``cache`` is a list with one ``(u, z, a)`` per
      dense layer: the (masked) input, the pre-activation and the output.
    """
    self.check_params(params)
    m = self._check_x(x, "forward")
    masks = self._check_masks(dropout_masks, m, "forward")
    cache = []
    a = x
    for p, f, mask in zip(params, self.activations, masks):
      u = a if mask is None else a * mask
      z = u @ p["w"] + p["b"]
      a = f.fn(z)
      cache.append((u, z, a))
    return a, cache

  def apply(self, params: Params, x: Array, *, dropout_masks=None) -> Array:
    """The network's output ``y`` for a batch ``x`` of shape ``(m, sizes[0])``."""
    return self.forward(params, x, dropout_masks=dropout_masks)[0]

  def _penalty(self, params, cache, m):
    total = jnp.zeros((), cache[-1][2].dtype)
    for p, (_, z, a), kr, br, ar in zip(params, cache, self.kernel_regularizers,
                                        self.bias_regularizers, self.activity_regularizers):
      if kr is not None:
        total = total + kr.value(p["w"])
      if br is not None:
        total = total + br.value(p["b"])
      if ar is not None:
        total = total + ar.value(a if self.activity_on == "output" else z) / m
    return total

  def data_loss(self, params: Params, x: Array, t: Array, *, dropout_masks=None) -> Array:
    """The data loss alone (no penalties), batch-averaged."""
    y, _ = self.forward(params, x, dropout_masks=dropout_masks)
    self._check_t(t, x.shape[0], "data_loss")
    return self.loss_fn.fn(y, t)

  def loss(self, params: Params, x: Array, t: Array, *, dropout_masks=None) -> Array:
    """Data loss plus every penalty: a scalar, differentiable by ``jax.grad``."""
    y, cache = self.forward(params, x, dropout_masks=dropout_masks)
    self._check_t(t, x.shape[0], "loss")
    return self.loss_fn.fn(y, t) + self._penalty(params, cache, x.shape[0])

  # ------------------------------------------------------------ backward
  def loss_and_backprop(self, params: Params, x: Array, t: Array, *, dropout_masks=None):
    """``(loss, grads)`` from one forward pass and the closed-form backward pass.

    The backward pass is S3.3's three equations, batched, with no autodiff::

        ∂L/∂z_l = ∂L/∂a_{l+1} ⊙ f_l'(z_l)  (+ activity'(z_l)/m)      (1)
        ∂L/∂a_l = (∂L/∂z_l @ W_lᵀ) ⊙ mask_l                          (2)
        ∂L/∂W_l = u_lᵀ @ ∂L/∂z_l + kernel'(W_l);
        ∂L/∂b_l = Σ_rows ∂L/∂z_l + bias'(b_l)                         (3)

    starting from ``∂L/∂y = loss.grad(y, t)`` (``+ activity'(y)/m`` on the
    output), and adding ``activity'(a_{l+1})/m`` to ``∂L/∂a_{l+1}`` when
    ``activity_on="output"``.
    """
    y, cache = self.forward(params, x, dropout_masks=dropout_masks)
    m = x.shape[0]
    self._check_t(t, m, "backprop")
    masks = self._check_masks(dropout_masks, m, "backprop")
    loss = self.loss_fn.fn(y, t) + self._penalty(params, cache, m)
    g_a = self.loss_fn.grad(y, t)
    grads = [None] * self.num_layers
    on_output = self.activity_on == "output"
    for l in reversed(range(self.num_layers)):
      p, (u, z, a) = params[l], cache[l]
      ar = self.activity_regularizers[l]
      if ar is not None and on_output:
        g_a = g_a + ar.grad(a) / m
      g_z = g_a * self.activations[l].grad(z)                       # (1)
      if ar is not None and not on_output:
        g_z = g_z + ar.grad(z) / m
      g_w = u.T @ g_z                                               # (3)
      g_b = jnp.sum(g_z, axis=0)
      kr, br = self.kernel_regularizers[l], self.bias_regularizers[l]
      if kr is not None:
        g_w = g_w + kr.grad(p["w"])
      if br is not None:
        g_b = g_b + br.grad(p["b"])
      grads[l] = {"w": g_w, "b": g_b}
      if l:
        g_a = g_z @ p["w"].T                                        # (2)
        if masks[l] is not None:
          g_a = g_a * masks[l]
    return loss, grads

  def backprop(self, params: Params, x: Array, t: Array, *, dropout_masks=None) -> Params:
    """Closed-form ``∂loss/∂params`` (see :meth:`loss_and_backprop`); equals ``jax.grad(self.loss)``."""
    return self.loss_and_backprop(params, x, t, dropout_masks=dropout_masks)[1]


def backprop(model: MLP, params: Params, x: Array, t: Array, *, dropout_masks=None) -> Params:
  """Closed-form backward pass of ``model``: ``model.backprop(params, x, t, ...)``.

  Written with plain ``jnp`` operations (no ``jax.grad``/``vjp``/``jvp``); it
  equals ``jax.grad(model.loss)`` up to rounding, which the test suite checks
  over every activation × loss × penalty slot × depth × dropout.
  """
  if not isinstance(model, MLP):
    raise TypeError(f"backprop: `model` must be a jaxreg.MLP, got {type(model).__name__}.")
  return model.backprop(params, x, t, dropout_masks=dropout_masks)
