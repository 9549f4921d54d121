"""The optimizer of a run: the user's ``optax`` transformation, or the built-in chain.

Contract: a run's optimizer is one ``optax.GradientTransformation`` object,
built once. Without ``TrainConfig.optimizer`` it is :func:`builtin_chain`:
``[add_decayed_weights] → [l1_sign] → sgd → [l1_proximal]`` from
:mod:`jaxreg.optim`, wrapped in ``optax.inject_hyperparams`` so that its
numbers (``learning_rate``, ``weight_decay``, ``l1``) live in the optimizer
state, not in the program. Which links exist is fixed by the config (a link
whose number is 0 is left out, unless a grid sweeps it); the object is cached
by that structure, so changing a number never recompiles.

A grid of :func:`jaxreg.train_many` sweeps the hyperparameters of any
``inject_hyperparams`` state — the built-in chain's and the user's alike —
through :func:`hyperparam_names` and :func:`with_hyperparams`.
"""

from __future__ import annotations

import functools
from typing import Mapping

import jax.numpy as jnp
import optax

from jaxreg._trainer import optim as _optim

#: Numbers of the built-in chain, settable per member by a train_many grid.
BUILTIN_HYPERPARAMS = ("learning_rate", "weight_decay", "l1")


def _chain(learning_rate, weight_decay, l1, *, decay: bool, decay_biases: bool,
           l1_rule: str | None) -> optax.GradientTransformation:
  mask = None if decay_biases else _optim.kernels_only
  parts = []
  if decay:
    parts.append(optax.add_decayed_weights(weight_decay, mask))
  if l1_rule == "sign":
    parts.append(_optim.l1_sign(l1, mask=mask))
  parts.append(optax.sgd(learning_rate))
  if l1_rule == "proximal":
    parts.append(_optim.l1_proximal(l1, learning_rate, mask=mask))
  return optax.chain(*parts)


@functools.lru_cache(maxsize=None)
def builtin_chain(decay: bool, decay_biases: bool, l1_rule: str | None
                  ) -> optax.GradientTransformation:
  """The built-in chain with the given links; its numbers are set in the state.

  The placeholder numbers (0) are never used: the trainer writes the config's
  values into the state's ``hyperparams`` (:func:`with_hyperparams`).
  """
  return optax.inject_hyperparams(_chain, static_args=("decay", "decay_biases", "l1_rule"))(
      learning_rate=0.0, weight_decay=0.0, l1=0.0, decay=decay, decay_biases=decay_biases,
      l1_rule=l1_rule)


def of_config(config, swept=()) -> optax.GradientTransformation:
  """The optimizer of ``config``: ``config.optimizer`` or the cached built-in chain."""
  if config.optimizer is not None:
    return config.optimizer
  l1_on = config.l1 > 0 or "l1" in swept
  return builtin_chain(config.weight_decay > 0 or "weight_decay" in swept, config.decay_biases,
                       config.l1_rule if l1_on else None)


def hyperparam_names(opt_state) -> tuple[str, ...]:
  """Names of the numeric, unscheduled hyperparameters of an ``inject_hyperparams`` state."""
  hp = getattr(opt_state, "hyperparams", None)
  if not isinstance(hp, Mapping):
    return ()
  scheduled = getattr(opt_state, "hyperparams_states", None) or {}
  return tuple(k for k in hp if k not in scheduled)


def with_hyperparams(opt_state, values: Mapping):
  """``opt_state`` with ``hyperparams[k] = values[k]``, each in the dtype it had."""
  hp = dict(opt_state.hyperparams)
  for k, v in values.items():
    hp[k] = jnp.asarray(v, jnp.result_type(hp[k]))
  return opt_state._replace(hyperparams=hp)


def describe(tx) -> str:
  """A JSON-able description of a user optimizer (for ``TrainConfig.to_json``)."""
  fn = getattr(tx, "update", None)
  where = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
  return "optax.GradientTransformation(update=" + ".".join(w for w in where if w) + ")"
