"""`train_many`: seeds × a hyperparameter grid, trained in one compiled call (S4.8).

Contract: the member for grid point ``g`` and seed ``s`` runs the very epoch
function of :func:`jaxreg.train` (``jaxreg._trainer.epoch.epoch_fn``), so it equals::

    jaxreg.train(model, model.init(jax.random.key(s), dtype), train_data,
                 config.replace(seed=s, **grid_point), val_data=val_data)

to float tolerance (``vmap`` may reorder a reduction). Everything — init, all
epochs (a ``lax.scan`` of epoch scans), early stopping and divergence handling —
runs inside one ``jit(vmap(...))``; members that stop early or diverge are
frozen in-graph (their later history entries are NaN) while the others go on.
Seeds are the outer ``vmap`` and grid points the inner one, so what depends on
the seed alone (initial parameters, shuffles, batch gathers, dropout and noise
draws) is computed once per seed and shared by its grid points.
"""

from __future__ import annotations

import itertools
import math
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._trainer.config import GRID_KEYS, TrainConfig
from jaxreg._mlp import MLP
from jaxreg._trainer import epoch as _epoch
from jaxreg._trainer import train as _train

TRACES = _epoch.TRACES


def _check_seeds(seeds) -> tuple[int, ...]:
  if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__") or len(seeds) == 0:
    raise ValueError(f"train_many: `seeds` must be a non-empty sequence of ints >= 0, got {seeds!r}.")
  out = []
  for i, s in enumerate(seeds):
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
      raise ValueError(f"train_many: `seeds[{i}]` must be an int >= 0, got {s!r}.")
    out.append(int(s))
  return tuple(out)


def _check_grid(model: MLP, config: TrainConfig, grid) -> dict[str, tuple]:
  if grid is None:
    return {}
  if not isinstance(grid, Mapping):
    raise TypeError(f"train_many: `grid` must be a dict {{name: values}}, got {type(grid).__name__}.")
  out = {}
  for name, values in grid.items():
    if name not in GRID_KEYS:
      raise ValueError(f"train_many: `grid` key {name!r} cannot be swept; expected one of "
                       f"{list(GRID_KEYS)} (other settings change the compiled program: "
                       "call train_many once per value).")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
      raise ValueError(f"train_many: `grid[{name!r}]` must be a non-empty sequence of values, "
                       f"got {values!r}.")
    checked = []
    for i, v in enumerate(values):
      try:
        c = config.replace(**{name: v})
      except (TypeError, ValueError) as e:
        raise type(e)(f"train_many: `grid[{name!r}][{i}]`: {e}") from None
      checked.append(getattr(c, name))
    if name == "keep_prob":
      for i, kp in enumerate(checked):
        if len(kp) != model.num_layers:
          raise ValueError(f"train_many: `grid['keep_prob'][{i}]` needs one keep-probability per "
                           f"dense layer input ({model.num_layers}), got {kp}.")
    out[name] = tuple(checked)
  return out


def _hyper_table(model: MLP, config: TrainConfig, grid: dict, dtype) -> _epoch.Hyper:
  """Hyper with a leading axis of size ``prod(grid_shape)`` (C order over the grid)."""
  base = _epoch.make_hyper(model, config, dtype)
  points = list(itertools.product(*grid.values())) or [()]
  cols = {f: [] for f in _epoch.Hyper._fields}
  for point in points:
    values = dict(zip(grid, point))
    for f in _epoch.Hyper._fields:
      v = values.get(f, None)
      cols[f].append(np.asarray(v if v is not None else getattr(base, f), dtype))
  return _epoch.Hyper(*(jnp.asarray(np.stack(cols[f])) for f in _epoch.Hyper._fields))


def _run_one(model, st, epochs, patience, hyper, key, x, t, xv, tv):
  dtype = x.dtype
  params = model.init(key, dtype)
  state = _epoch.init_state(st, hyper, params)

  def body(carry, epoch):
    state, active = carry
    new, metrics = _epoch.epoch_fn(model, st, hyper, state, key, x, t, xv, tv, epoch=epoch)
    finite = metrics.pop("finite")
    # A stopped member keeps its state; a diverging epoch is not taken (as in train).
    state = jax.tree.map(lambda a, b: jnp.where(active & finite, a, b), new, state)
    metrics = {k: jnp.where(active, v, jnp.nan) for k, v in metrics.items()}
    diverged = active & ~finite
    stop = ~finite
    if patience is not None:
      stop = stop | (new.bad_epochs >= patience)
    return (state, active & ~stop), (metrics, diverged)

  (state, _), (hist, diverged) = jax.lax.scan(body, (state, jnp.asarray(True)),
                                              jnp.arange(epochs, dtype=jnp.int32))
  out = state.params
  if st.track_best:
    out = jax.tree.map(lambda b, p: jnp.where(state.best_epoch >= 0, b, p), state.best_params, out)
  hist["best_epoch"] = state.best_epoch if st.track_best else jnp.asarray(-1, jnp.int32)
  hist["diverged"] = jnp.any(diverged)
  hist["epochs_run"] = state.epoch
  return out, hist


def _run_many(model, st, epochs, patience, hyper, seeds, x, t, xv, tv):
  """Leaves ``(n_seeds, n_points, ...)``: seeds outside, grid inside.

  Whatever depends on the seed only (init, shuffles, batches, dropout and noise
  draws) is then computed once per seed and shared by that seed's grid points.
  """
  TRACES["train_many"] += 1

  def per_seed(s):
    key = jax.random.key(s)
    run = lambda h: _run_one(model, st, epochs, patience, h, key, x, t, xv, tv)  # noqa: E731
    if hyper.learning_rate.shape[0] == 1:  # no grid: no size-1 batch axis in every op
      return jax.tree.map(lambda a: a[None], run(jax.tree.map(lambda a: a[0], hyper)))
    return jax.vmap(run)(hyper)

  if seeds.shape[0] == 1:  # one seed: no size-1 batch axis in every op
    return jax.tree.map(lambda a: a[None], per_seed(seeds[0]))
  return jax.vmap(per_seed)(seeds)


_run_many_jit = jax.jit(_run_many, static_argnums=(0, 1, 2, 3))


def train_many(model: MLP, train_data, config: TrainConfig, *, seeds: Sequence[int],
               grid: Mapping[str, Sequence] | None = None, val_data=None):
  """Trains one net per (grid point, seed) in **one** compiled call: ``jit(vmap(scan))``.

  Args:
    model: a :class:`jaxreg.MLP`.
    train_data: ``(x, t)`` as for :func:`jaxreg.train`, shared by all members.
      The nets' dtype is ``x``'s if it is a float array, else JAX's default.
    config: the :class:`jaxreg.TrainConfig` common to all members; its
      ``seed`` is ignored (``seeds`` replaces it).
    seeds: member seeds; seed ``s`` initializes with
      ``model.init(jax.random.key(s), dtype)`` and trains with
      ``config.replace(seed=s)``.
    grid: optional ``{name: values}`` over numeric hyperparameters:
      ``"learning_rate"``, ``"weight_decay"``, ``"l1"``, ``"noise_std"`` (floats)
      and ``"keep_prob"`` (tuples, one keep-probability per layer input).
      The grid is the Cartesian product, in the dict's key order.
    val_data: optional ``(x, t)``; needed for ``config.patience``.

  Returns:
    ``(params, history)``. Every leaf has leading axes
    ``(*grid_shape, len(seeds))`` with ``grid_shape = tuple(len(v) for v in
    grid.values())`` (``()`` without a grid). ``history`` has the per-epoch
    arrays of :func:`jaxreg.train` with a last axis of ``config.epochs``
    (NaN after a member stopped early or diverged), plus per member
    ``"best_epoch"``, ``"diverged"`` (bool: its loss became non-finite; its
    params are then the last finite ones) and ``"epochs_run"``.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxreg
    >>> net = jaxreg.MLP((2, 3, 1), "tanh")
    >>> x = jax.random.normal(jax.random.key(1), (40, 2)); t = jnp.tanh(x[:, :1])
    >>> cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=10, epochs=3)
    >>> params, hist = jaxreg.train_many(net, (x, t), cfg, seeds=range(4),
    ...                                  grid={"learning_rate": [0.03, 0.1, 0.3]})
    >>> params[0]["w"].shape, hist["train_loss"].shape
    ((3, 4, 2, 3), (3, 4, 3))
  """
  _train.check_model_config("train_many", model, config)
  seeds = _check_seeds(seeds)
  grid = _check_grid(model, config, grid)
  x0 = np.asarray(train_data[0]) if isinstance(train_data, (tuple, list)) and train_data else None
  dtype = (x0.dtype if x0 is not None and np.issubdtype(x0.dtype, np.floating)
           else jnp.asarray(0.0).dtype)
  x, t, xv, tv, has_val = _train.check_inputs("train_many", model, config, train_data, val_data,
                                               dtype)
  st = _epoch.make_static(model, config, x.shape[0], has_val, swept=tuple(grid))
  grid_shape = tuple(len(v) for v in grid.values())
  n_points = math.prod(grid_shape)
  hyper = _hyper_table(model, config, grid, dtype)
  seeds_arr = np.asarray(seeds, np.int64 if jax.config.jax_enable_x64 else np.int32)
  params, hist = _run_many_jit(model, st, config.epochs, config.patience, hyper, seeds_arr,
                               x, t, xv, tv)
  lead = grid_shape + (len(seeds),)
  # (n_seeds, n_points, ...) → (*grid_shape, n_seeds, ...)
  reorder = lambda a: jnp.swapaxes(a, 0, 1).reshape(lead + a.shape[2:])  # noqa: E731
  params = jax.tree.map(reorder, params)
  return params, {k: np.asarray(reorder(v)) for k, v in hist.items()}
