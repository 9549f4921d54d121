"""What the trainer trains: a :class:`jaxreg.MLP` or a :class:`Model` of pure functions.

Contract: the epoch sees a model only through :func:`loss_and_grad` (one
training step's loss and gradient), :func:`eval_loss` and :func:`eval_output`
(prediction mode). An ``MLP`` keeps its closed-form backprop and its dropout
(masks drawn here, one key per dense layer); a :class:`Model` is
differentiated with ``jax.value_and_grad`` and, when its loss takes a ``key``,
gets one fresh key per step. :func:`predict` is the same prediction mode as
the trainer's validation metrics.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _losses
from jaxreg._mlp import MLP

Array = jax.Array


def _takes_key(fn) -> bool:
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):  # builtins without a signature
    return False
  p = params.get("key")
  return p is not None and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)


@dataclasses.dataclass(frozen=True)
class Model:
  """A trainable model as pure functions (stax-like); immutable and hashable.

  Attributes:
    loss: ``loss(params, x, t) -> scalar``, batch-averaged; optionally with a
      keyword ``key``: then each training step passes a fresh PRNG key (for
      the model's own stochastic regularization) and validation passes
      ``key=None`` (prediction mode). ``params`` is any pytree of float arrays.
    apply: optional ``apply(params, x) -> y``; enables :func:`jaxreg.predict`
      and, when the training targets are one-hot rows, argmax accuracy in the
      history.
    init: optional ``init(key) -> params``; lets :func:`jaxreg.train_many`
      initialise one member per seed (without it, pass ``params=``).
    takes_key: whether ``loss`` accepts ``key`` (derived, not an argument).

  Examples:
    >>> import jax, jax.numpy as jnp, jaxreg
    >>> def loss(p, x, t):
    ...   return 0.5 * jnp.mean(jnp.sum((jnp.tanh(x @ p["w1"]) @ p["w2"] - t) ** 2, -1))
    >>> model = jaxreg.Model(loss)
    >>> model.takes_key, model.apply is None
    (False, True)
  """

  loss: Callable[..., Any]
  apply: Callable[..., Any] | None = None
  init: Callable[..., Any] | None = None
  takes_key: bool = dataclasses.field(init=False, repr=False)

  def __post_init__(self):
    for name in ("loss", "apply", "init"):
      fn = getattr(self, name)
      if (fn is not None or name == "loss") and not callable(fn):
        raise TypeError(f"Model: `{name}` must be a function"
                        + (" or None" if name != "loss" else "")
                        + f", got {type(fn).__name__} {fn!r}.")
    object.__setattr__(self, "takes_key", _takes_key(self.loss))


def as_model(model, fname: str):
  """``model`` as the trainer takes it: an ``MLP``, a ``Model``, or a bare loss → ``Model(loss)``."""
  if isinstance(model, (MLP, Model)):
    return model
  if callable(model):
    return Model(loss=model)
  raise TypeError(f"{fname}: `model` must be a jaxreg.MLP, a jaxreg.Model or a loss function "
                  f"loss(params, x, t), got {type(model).__name__}.")


def loss_output(model: Model, params, x_spec, t_spec):
  """The abstract value (``jax.ShapeDtypeStruct`` or other) of ``model.loss`` on one batch.

  Evaluated with ``jax.eval_shape`` once per model, parameter structure and
  batch shapes (cached): tracing a loss costs milliseconds, as much as a short
  training run, and :func:`jaxreg.train` asks before every run.
  """
  leaves, treedef = jax.tree.flatten(params)
  specs = tuple(jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v)) for v in leaves)
  return _loss_output(model, treedef, specs, x_spec, t_spec)


@functools.lru_cache(maxsize=64)
def _loss_output(model: Model, treedef, specs, x_spec, t_spec):
  kw = {"key": jax.random.key(0)} if model.takes_key else {}
  params = jax.tree.unflatten(treedef, specs)
  return jax.eval_shape(lambda p, a, b: model.loss(p, a, b, **kw), params, x_spec, t_spec)


# ------------------------------------------------------------------ tasks
def task_of(model, t) -> str | None:
  """Which accuracy the history reports: ``"softmax"`` (argmax), ``"binary"``, ``"binary_logits"`` or ``None``.

  An MLP: from its loss (softmax CE → argmax, binary CE → per-output
  ``(y > ½) == (t > ½)``). A ``Model`` with ``apply``: argmax accuracy when the
  training targets ``t`` are one-hot rows; else none.
  """
  if isinstance(model, MLP):
    if model.loss_fn is _losses.softmax_cross_entropy:
      return "softmax"
    if model.loss_fn is _losses.binary_cross_entropy:
      return "binary"
    if model.loss_fn is _losses.binary_cross_entropy_with_logits:
      return "binary_logits"
    return None
  if model.apply is None or t.ndim != 2 or t.shape[1] < 2:
    return None
  a = np.asarray(t)
  one_hot = np.all((a == 0) | (a == 1)) and np.all(a.sum(1) == 1)
  return "softmax" if one_hot else None


def accuracy(task: str, y, t):
  if task == "softmax":
    return jnp.mean(jnp.argmax(y, -1) == jnp.argmax(t, -1))
  return jnp.mean((y > (0.0 if task == "binary_logits" else 0.5)) == (t > 0.5))


# ---------------------------------------------------------------- dropout
def dropout_masks(keys, model: MLP, dropout: tuple, mode: str, keep_prob, batch: int, dtype):
  """Training-time dropout keep-masks, one ``(batch, n_in)`` per dense layer input.

  ``keys[l]`` draws layer ``l``'s mask: each entry is kept with probability
  ``p = keep_prob[l]`` (a fresh draw per sample and unit); kept entries are
  ``1/p`` (``"inverted"``) or ``1`` (``"scale_at_test"``), dropped ones 0.
  Layers without dropout get ``None``.
  """
  masks = []
  for l, (on, n_in) in enumerate(zip(dropout, model.sizes[:-1])):
    if not on:
      masks.append(None)
      continue
    p = keep_prob[l]
    keep = jax.random.bernoulli(keys[l], p, (batch, n_in)).astype(dtype)
    masks.append(keep / p if mode == "inverted" else keep)
  return masks


def prediction_masks(model: MLP, dropout: tuple, mode: str, keep_prob):
  """Prediction-time dropout: ``None`` (inverted) or the constants ``p`` (scale_at_test).

  Multiplying layer ``l``'s input by ``p_l`` is multiplying its outgoing
  weights by ``p_l`` (S4.7).
  """
  if mode != "scale_at_test" or not any(dropout):
    return None
  return [jnp.full((n_in,), keep_prob[l]) if on else None
          for l, (on, n_in) in enumerate(zip(dropout, model.sizes[:-1]))]


# ------------------------------------------------- what the epoch calls
def model_keys(model) -> int:
  """PRNG keys a training step gives the model: one per MLP layer (dropout), one or none."""
  if isinstance(model, MLP):
    return model.num_layers
  return 1 if model.takes_key else 0


def loss_and_grad(model, dropout: tuple, mode: str, keep_prob, params, xb, tb, keys):
  """One training step's ``(loss, grads)``: closed form for an MLP, ``value_and_grad`` else."""
  if isinstance(model, MLP):
    masks = None
    if any(dropout):
      masks = dropout_masks(keys, model, dropout, mode, keep_prob, xb.shape[0], xb.dtype)
    return model.loss_and_backprop(params, xb, tb, dropout_masks=masks)
  if model.takes_key:
    return jax.value_and_grad(lambda p: model.loss(p, xb, tb, key=keys[0]))(params)
  return jax.value_and_grad(model.loss)(params, xb, tb)


def eval_loss(model, dropout: tuple, mode: str, keep_prob, params, x, t):
  """The loss in prediction mode (no noise; dropout as ``mode`` predicts; ``key=None``)."""
  if isinstance(model, MLP):
    return model.loss(params, x, t,
                      dropout_masks=prediction_masks(model, dropout, mode, keep_prob))
  if model.takes_key:
    return model.loss(params, x, t, key=None)
  return model.loss(params, x, t)


def eval_output(model, dropout: tuple, mode: str, keep_prob, params, x):
  """The output in prediction mode (needs ``apply`` for a ``Model``)."""
  if isinstance(model, MLP):
    return model.apply(params, x, dropout_masks=prediction_masks(model, dropout, mode, keep_prob))
  return model.apply(params, x)


# ---------------------------------------------------------------- predict
def predict(model, params, x, config=None) -> Array:
  """The model's output for ``x`` in prediction mode, as ``config`` trained it.

  No input noise or augmentation. For an MLP trained with
  ``dropout_mode="scale_at_test"``, each dense layer's outgoing weights are
  multiplied by its input's keep-probability (S4.7), exactly as the trainer's
  validation metrics do; with ``"inverted"`` dropout (or no ``config``) the
  network is used as it is.

  Args:
    model: a :class:`jaxreg.MLP` or a :class:`jaxreg.Model` with ``apply``.
    params: its parameters (e.g. from :func:`jaxreg.train`).
    x: a batch of inputs.
    config: the :class:`jaxreg.TrainConfig` it was trained with, or ``None``.

  Returns:
    ``y``, the model's output.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxreg
    >>> net = jaxreg.MLP((2, 4, 1), "relu")
    >>> params = net.init(jax.random.key(0))
    >>> cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=2, epochs=1,
    ...                          keep_prob=(1.0, 0.5), dropout_mode="scale_at_test")
    >>> x = jnp.ones((3, 2))
    >>> bool(jnp.allclose(jaxreg.predict(net, params, x, cfg),
    ...      net.apply([params[0], {"w": 0.5 * params[1]["w"], "b": params[1]["b"]}], x)))
    True
  """
  from jaxreg._trainer.config import TrainConfig  # pylint: disable=import-outside-toplevel
  model = as_model(model, "predict")
  if config is not None and not isinstance(config, TrainConfig):
    raise TypeError(f"predict: `config` must be None or a jaxreg.TrainConfig, got "
                    f"{type(config).__name__}.")
  if isinstance(model, Model):
    if model.apply is None:
      raise TypeError("predict: the `model` has no `apply`; build it as "
                      "jaxreg.Model(loss, apply=...) to predict with it.")
    return model.apply(params, x)
  model.check_params(params)
  kp = config.keep_prob if config is not None else None
  if kp is None:
    return model.apply(params, x)
  if len(kp) != model.num_layers:
    raise ValueError(f"predict: `config.keep_prob` has {len(kp)} entries, the MLP with sizes "
                     f"{model.sizes} has {model.num_layers} dense layers.")
  dtype = jnp.result_type(*jax.tree.leaves(params))
  dropout = tuple(p < 1.0 for p in kp)
  return eval_output(model, dropout, config.dropout_mode, jnp.asarray(kp, dtype), params,
                     jnp.asarray(x, dtype))
