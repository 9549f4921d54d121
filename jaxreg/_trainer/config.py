"""`TrainConfig`: every knob of :func:`jaxreg.train`, frozen and validated on construction."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

L1_RULES = ("sign", "proximal")
DROPOUT_MODES = ("inverted", "scale_at_test")

#: Hyperparameters that :func:`jaxreg.train_many` can sweep in one compiled call.
GRID_KEYS = ("learning_rate", "weight_decay", "l1", "noise_std", "keep_prob")


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


def _int(argname: str, value, *, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
    raise TypeError(f"TrainConfig: `{argname}` must be an int, got {type(value).__name__} {value!r}.")
  v = int(value)
  if v < minimum:
    raise ValueError(f"TrainConfig: `{argname}` must be an int >= {minimum}, got {v}.")
  return v


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
  """How :func:`jaxreg.train` trains: minibatch SGD plus S2/S4's regularizers.

  Each regularizer is off at its default. Penalties that live in the loss
  (Keras-style L1/L2 on kernels, biases, activities) belong to the
  :class:`jaxreg.MLP`; the fields here are update rules and data-side
  regularizers.

  Attributes:
    learning_rate: ``η > 0``, the SGD step size.
    batch_size: minibatch size ``m ≥ 1``. Every epoch reshuffles the
      training set and uses ``n // m`` full batches; the remaining ``n mod m``
      samples (a different few each epoch) are skipped, so every step has
      the same shape and the epoch compiles to one ``lax.scan``.
    epochs: number of passes over the training set, ``≥ 1``.
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
    augment: ``None`` or a pure, jittable function ``(key, x) -> x`` mapping a
      training batch ``(m, n_in)`` to one of the same shape (S4.6); applied
      before the noise. It is part of the compiled function's static
      identity: pass the same function object to avoid recompiling.
    patience: ``None`` or early stopping (S4.4): stop after ``patience``
      epochs in a row without a new lowest validation loss, and return the
      parameters of the best epoch. Needs ``val_data``.
    seed: integer seed of all training randomness (shuffling, dropout,
      noise, augmentation keys). Same seed, same data, same machine →
      bit-identical results.

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

  learning_rate: float
  batch_size: int
  epochs: int
  weight_decay: float = 0.0
  decay_biases: bool = False
  l1: float = 0.0
  l1_rule: str = "sign"
  keep_prob: tuple[float, ...] | None = None
  dropout_mode: str = "inverted"
  noise_std: float = 0.0
  augment: Callable[[Any, Any], Any] | None = None
  patience: int | None = None
  seed: int = 0

  def __post_init__(self):
    set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
    set_("learning_rate", _real("learning_rate", self.learning_rate, positive=True))
    set_("batch_size", _int("batch_size", self.batch_size, minimum=1))
    set_("epochs", _int("epochs", self.epochs, minimum=1))
    set_("weight_decay", _real("weight_decay", self.weight_decay))
    if not isinstance(self.decay_biases, bool):
      raise TypeError(f"TrainConfig: `decay_biases` must be a bool, got {self.decay_biases!r}.")
    set_("l1", _real("l1", self.l1))
    if self.l1_rule not in L1_RULES:
      raise ValueError(f"TrainConfig: `l1_rule` must be one of {L1_RULES}, got {self.l1_rule!r}.")
    if self.keep_prob is not None:
      set_("keep_prob", check_keep_prob("keep_prob", self.keep_prob))
    if self.dropout_mode not in DROPOUT_MODES:
      raise ValueError(
          f"TrainConfig: `dropout_mode` must be one of {DROPOUT_MODES}, got {self.dropout_mode!r}.")
    set_("noise_std", _real("noise_std", self.noise_std))
    if self.augment is not None and not callable(self.augment):
      raise TypeError(
          f"TrainConfig: `augment` must be None or a function (key, x) -> x, got "
          f"{type(self.augment).__name__}.")
    if self.patience is not None:
      set_("patience", _int("patience", self.patience, minimum=1))
    set_("seed", _int("seed", self.seed, minimum=0))

  def replace(self, **changes) -> "TrainConfig":
    """A copy with some fields changed (validated again)."""
    return dataclasses.replace(self, **changes)

  def to_json(self) -> dict:
    """The fields as JSON-able values (``augment`` by its name), for checkpoints and logs."""
    d = dataclasses.asdict(self)
    if self.augment is not None:
      d["augment"] = getattr(self.augment, "__qualname__", repr(self.augment))
    if self.keep_prob is not None:
      d["keep_prob"] = list(self.keep_prob)
    return d
