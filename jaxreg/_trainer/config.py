"""`TrainConfig`: every knob of :func:`jaxreg.train`, frozen and validated on construction."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import optax

from jaxreg._trainer.shuffle import SHUFFLES

L1_RULES = ("sign", "proximal")
DROPOUT_MODES = ("inverted", "scale_at_test")
SEED_LIMIT = 2 ** 32  # jax.random.key(seed) agrees with and without x64 below this

#: The trainer's own numbers that :func:`jaxreg.train_many` can sweep (besides
#: the optimizer's hyperparameters).
DATA_HYPERPARAMS = ("noise_std", "keep_prob")


def _real(argname: str, value, *, positive: bool = False, upper: float | None = None) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
    raise TypeError(
        f"TrainConfig: `{argname}` must be a real number, got {type(value).__name__} {value!r}.")
  v = float(value)
  low_ok = v > 0 if positive else v >= 0
  if not math.isfinite(v) or not low_ok or (upper is not None and v > upper):
    want = "> 0" if positive else ">= 0"
    if upper is not None:
      want += f" and <= {upper}"
    raise ValueError(f"TrainConfig: `{argname}` must be a finite number {want}, got {v}.")
  return v


def _int(argname: str, value, *, minimum: int, limit: int | None = None) -> int:
  if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
    raise TypeError(f"TrainConfig: `{argname}` must be an int, got {type(value).__name__} {value!r}.")
  v = int(value)
  if v < minimum or (limit is not None and v >= limit):
    want = f">= {minimum}" + (f" and < {limit}" if limit is not None else "")
    raise ValueError(f"TrainConfig: `{argname}` must be an int {want}, got {v}.")
  return v


def _augment(value):
  """``None``, one transform, or a tuple of transforms ``(key, x) -> x``."""
  if value is None or callable(value):
    return value
  if isinstance(value, (list, tuple)) and value and all(callable(f) for f in value):
    return tuple(value)
  raise TypeError(
      "TrainConfig: `augment` must be None, a function (key, x) -> x or a non-empty sequence "
      f"of them, got {type(value).__name__}.")


def augment_transforms(config) -> tuple:
  """``config.augment`` as a tuple of transforms (empty for None)."""
  a = config.augment
  return () if a is None else (a,) if callable(a) else a


def check_keep_prob(argname: str, value) -> tuple[float, ...]:
  """A tuple of keep-probabilities in ``(0, 1]``."""
  if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
    raise TypeError(
        f"TrainConfig: `{argname}` must be None or a sequence with one keep-probability per "
        f"dense layer input, e.g. (0.8, 0.5) (S4.7), got {type(value).__name__} {value!r}.")
  out = []
  for i, p in enumerate(value):
    p = _real(f"{argname}[{i}]", p, positive=True, upper=1.0)
    out.append(p)
  if not out:
    raise ValueError(f"TrainConfig: `{argname}` must not be empty; use None for no dropout.")
  return tuple(out)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How :func:`jaxreg.train` trains: minibatch SGD plus S2/S4's regularizers, or any optax optimizer.

  Each regularizer is off at its default. Penalties that live in the loss
  (Keras-style L1/L2 on kernels, biases, activities) belong to the
  :class:`jaxreg.MLP`; the fields here are update rules and data-side
  regularizers.

  Attributes:
    learning_rate: ``η > 0``, the SGD step size of the built-in optimizer;
      required without ``optimizer``, ``None`` with it.
    batch_size: minibatch size ``m ≥ 1`` (required). Each epoch uses
      ``n // m`` full batches; the remaining ``n mod m`` samples (with
      ``shuffle="every_epoch"`` a different few each epoch) are skipped, so
      every step has the same shape and the epoch compiles to one ``lax.scan``.
    epochs: number of passes over the training set, ``≥ 1`` (required).
    optimizer: ``None`` (the built-in chain ``[add_decayed_weights] →
      [l1_sign] → sgd → [l1_proximal]`` of :mod:`jaxreg.optim`, from the
      fields below) or any ``optax.GradientTransformation``, used exactly as
      given (e.g. ``optax.adam(1e-3)``; wrap it in
      ``optax.inject_hyperparams`` to sweep its numbers with
      :func:`jaxreg.train_many`). With it, ``learning_rate`` stays ``None``
      and ``weight_decay``/``l1`` stay 0: chain :mod:`jaxreg.optim`'s
      transforms into it yourself. ``to_json`` stores only a description
      of it, so resuming a checkpoint needs the same optimizer passed again.
    shuffle: data order: ``"every_epoch"`` (a fresh permutation each epoch),
      ``"once"`` (TensorFlow Playground's order: the epoch-1 permutation,
      then every epoch visits the data in that order) or ``"never"`` (the
      order given).
    weight_decay: ``wd ≥ 0`` of :func:`jaxreg.optim.sgd_weight_decay`;
      Nielsen's ``λ/n`` (S2.2). ``0`` = off.
    decay_biases: whether weight decay and L1 also act on biases (S4.1,
      S4.2) or, by default, on kernels only (S2.1, S2.3).
    l1: L1 strength ``≥ 0`` in gradient units, Nielsen's ``λ/n`` (S2.3);
      ``0`` = off.
    l1_rule: ``"sign"`` (S2.3's ``w → w − ηλ/n·sgn(w)``,
      :func:`jaxreg.optim.l1_sign`) or ``"proximal"`` (soft-thresholding,
      exact zeros, :func:`jaxreg.optim.l1_proximal`).
    keep_prob: ``None`` (no dropout) or one keep-probability in ``(0, 1]``
      per dense layer *input* (the first entry is the network input), e.g.
      ``(0.8, 0.5)`` (S4.7) or ``(1.0, 0.5)`` (S2.5: half the hidden
      neurons). A fresh per-sample mask is drawn every step.
    dropout_mode: ``"inverted"`` (train with ``mask/p``, predict with no
      mask; Keras, PyTorch) or ``"scale_at_test"`` (train with the 0/1 mask,
      predict with inputs — equivalently outgoing weights — times ``p``;
      S2.5, S4.7, Hinton). Validation metrics use the prediction form.
    noise_std: standard deviation ``≥ 0`` of Gaussian noise added to every
      training batch's inputs (S4.5); ``0`` = off. Never applied to validation.
    augment: ``None``, or a pure, jittable batch transform ``(key, x) -> x``
      mapping a training batch (leading axis ``m``) to one of the same shape
      (S4.6), or a sequence of them applied in order; applied before the
      noise, for every model. They are part of the compiled function's
      static identity: pass the same function objects to avoid recompiling.
    patience: ``None`` or early stopping (S4.4): stop after ``patience``
      epochs in a row without a new lowest validation loss, and return the
      parameters of the best epoch. Needs ``val_data``.
    seed: integer seed in ``[0, 2**32)`` of all training randomness
      (shuffling, dropout, noise, augmentation and model keys). Same seed,
      same data, same machine → bit-identical results.

  Examples:
    >>> from jaxreg import TrainConfig
    >>> cfg = TrainConfig(learning_rate=0.5, batch_size=10, epochs=30,
    ...                   weight_decay=5.0 / 50_000, keep_prob=(1.0, 0.5))
    >>> cfg.dropout_mode
    'inverted'
    >>> TrainConfig(learning_rate=-1.0, batch_size=10, epochs=1)
    Traceback (most recent call last):
    ...
    ValueError: TrainConfig: `learning_rate` must be a finite number > 0, got -1.0.
  """

  learning_rate: float | None = None
  batch_size: int = None  # type: ignore[assignment]  # required; checked below
  epochs: int = None  # type: ignore[assignment]  # required; checked below
  weight_decay: float = 0.0
  decay_biases: bool = False
  l1: float = 0.0
  l1_rule: str = "sign"
  keep_prob: tuple[float, ...] | None = None
  dropout_mode: str = "inverted"
  noise_std: float = 0.0
  augment: Callable[[Any, Any], Any] | Sequence[Callable[[Any, Any], Any]] | None = None
  patience: int | None = None
  seed: int = 0
  optimizer: optax.GradientTransformation | None = None
  shuffle: str = "every_epoch"

  def __post_init__(self):
    set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
    for name in ("batch_size", "epochs"):
      if getattr(self, name) is None:
        raise TypeError(f"TrainConfig: `{name}` is required.")
    if self.optimizer is not None:
      if not isinstance(self.optimizer, optax.GradientTransformation):
        raise TypeError("TrainConfig: `optimizer` must be None or an optax.GradientTransformation "
                        f"(e.g. optax.adam(1e-3)), got {type(self.optimizer).__name__}.")
      if self.learning_rate is not None:
        raise ValueError(
            "TrainConfig: `learning_rate` must be None when `optimizer` is given (the optimizer "
            f"has its own), got {self.learning_rate!r}.")
    elif self.learning_rate is None:
      raise TypeError("TrainConfig: `learning_rate` is required unless `optimizer` is given.")
    else:
      set_("learning_rate", _real("learning_rate", self.learning_rate, positive=True))
    set_("batch_size", _int("batch_size", self.batch_size, minimum=1))
    set_("epochs", _int("epochs", self.epochs, minimum=1))
    set_("weight_decay", _real("weight_decay", self.weight_decay))
    if not isinstance(self.decay_biases, bool):
      raise TypeError(f"TrainConfig: `decay_biases` must be a bool, got {self.decay_biases!r}.")
    set_("l1", _real("l1", self.l1))
    if self.optimizer is not None:
      for name in ("weight_decay", "l1"):
        if getattr(self, name) > 0:
          raise ValueError(
              f"TrainConfig: `optimizer` and `{name}` cannot be combined (the built-in chain "
              f"applies `{name}`; a given optimizer is used as it is). Chain it yourself, e.g. "
              "optimizer=optax.chain(optax.add_decayed_weights(wd, jaxreg.optim.kernels_only), "
              "optax.adam(1e-3)), or jaxreg.optim.l1_sign / l1_proximal.")
    if self.l1_rule not in L1_RULES:
      raise ValueError(f"TrainConfig: `l1_rule` must be one of {L1_RULES}, got {self.l1_rule!r}.")
    if self.keep_prob is not None:
      set_("keep_prob", check_keep_prob("keep_prob", self.keep_prob))
    if self.dropout_mode not in DROPOUT_MODES:
      raise ValueError(
          f"TrainConfig: `dropout_mode` must be one of {DROPOUT_MODES}, got {self.dropout_mode!r}.")
    set_("noise_std", _real("noise_std", self.noise_std))
    set_("augment", _augment(self.augment))
    if self.patience is not None:
      set_("patience", _int("patience", self.patience, minimum=1))
    set_("seed", _int("seed", self.seed, minimum=0, limit=SEED_LIMIT))
    if self.shuffle not in SHUFFLES:
      raise ValueError(f"TrainConfig: `shuffle` must be one of {SHUFFLES}, got {self.shuffle!r}.")

  def replace(self, **changes) -> "TrainConfig":
    """A copy with some fields changed (validated again)."""
    return dataclasses.replace(self, **changes)

  def to_json(self) -> dict:
    """The fields as JSON-able values, for checkpoints and logs.

    ``augment`` appears by its name(s) and ``optimizer`` as a description
    (functions are not data): a checkpoint's config records which were used,
    and resuming needs the same objects passed again.
    """
    from jaxreg._trainer import optimizer as _optimizer  # pylint: disable=import-outside-toplevel
    d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    name = lambda f: getattr(f, "__qualname__", repr(f))  # noqa: E731
    if self.augment is not None:
      d["augment"] = name(self.augment) if callable(self.augment) else [name(f) for f in self.augment]
    if self.keep_prob is not None:
      d["keep_prob"] = list(self.keep_prob)
    if self.optimizer is not None:
      d["optimizer"] = _optimizer.describe(self.optimizer)
    return d
