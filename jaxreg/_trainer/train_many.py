"""`train_many`: seeds × a hyperparameter grid, trained in one compiled call (S4.8).

Contract: the member for grid point ``g`` and seed ``s`` runs the very epoch
function of :func:`jaxreg.train` (:func:`jaxreg._trainer.epoch.epoch_fn`)
on a state whose hyperparameters are set to ``g``, so it equals::

    jaxreg.train(model, init(jax.random.key(s)), train_data,
                 config_with(g).replace(seed=s), val_data=val_data)

to float tolerance (``vmap`` may reorder a reduction). Everything — init, all
epochs (a ``lax.scan`` of epoch scans), early stopping and divergence — runs
inside one ``jit(vmap(...))``; members that stop early or diverge pass
through later epochs unchanged (NaN history entries) while the others go
on. Seeds are the outer ``vmap`` and grid points the inner one, so what
depends on the seed alone (initial parameters, shuffles, batch gathers,
dropout and noise draws) is computed once per seed and shared by its grid
points.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._distributed import gather_to_host
from jaxreg._mlp import MLP
from jaxreg._trainer import epoch as _epoch
from jaxreg._trainer import inputs as _inputs
from jaxreg._trainer import mesh as _mesh
from jaxreg._trainer import model as _model
from jaxreg._trainer import optimizer as _optimizer
from jaxreg._trainer.config import DATA_HYPERPARAMS, SEED_LIMIT, TrainConfig


def _check_seeds(seeds) -> tuple[int, ...]:
  if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__") or len(seeds) == 0:
    raise ValueError(f"train_many: `seeds` must be a non-empty sequence of ints in [0, 2**32), "
                     f"got {seeds!r}.")
  out = []
  for i, s in enumerate(seeds):
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s < SEED_LIMIT:
      raise ValueError(f"train_many: `seeds[{i}]` must be an int in [0, 2**32), got {s!r}.")
    out.append(int(s))
  return tuple(out)


def _grid_names(model, config: TrainConfig, params) -> tuple[str, ...]:
  """What a grid may sweep: the optimizer's hyperparameters and the trainer's own."""
  tx = _optimizer.of_config(config)
  opt_names = _optimizer.hyperparam_names(jax.eval_shape(tx.init, params))
  own = DATA_HYPERPARAMS if isinstance(model, MLP) else ("noise_std",)
  return opt_names + own


def _check_grid(model, config: TrainConfig, grid, params) -> dict[str, tuple]:
  if grid is None:
    return {}
  if not isinstance(grid, Mapping):
    raise TypeError(f"train_many: `grid` must be a dict {{name: values}}, got {type(grid).__name__}.")
  allowed = _grid_names(model, config, params)
  out = {}
  for name, values in grid.items():
    if name not in allowed:
      whose = ("the built-in optimizer" if config.optimizer is None else
               "`config.optimizer` (numeric hyperparameters of an optax.inject_hyperparams "
               "optimizer)")
      raise ValueError(f"train_many: `grid` key {name!r} cannot be swept; expected one of "
                       f"{list(allowed)} (hyperparameters of {whose} and the trainer's own). "
                       "Other settings change the compiled program: call train_many once per "
                       "value.")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
      raise ValueError(f"train_many: `grid[{name!r}]` must be a non-empty sequence of values, "
                       f"got {values!r}.")
    checked = []
    for i, v in enumerate(values):
      if hasattr(config, name) and (config.optimizer is None or name in DATA_HYPERPARAMS):
        try:
          c = config.replace(**{name: v})
        except (TypeError, ValueError) as e:
          raise type(e)(f"train_many: `grid[{name!r}][{i}]`: {e}") from None
        v = getattr(c, name)
      elif (isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer))
            or not math.isfinite(float(v))):
        raise ValueError(f"train_many: `grid[{name!r}][{i}]` must be a finite real number, "
                         f"got {v!r}.")
      checked.append(v)
    if name == "keep_prob":
      for i, kp in enumerate(checked):
        if len(kp) != model.num_layers:
          raise ValueError(f"train_many: `grid['keep_prob'][{i}]` needs one keep-probability per "
                           f"dense layer input ({model.num_layers}), got {kp}.")
    out[name] = tuple(checked)
  return out


def _grid_table(grid: dict, dtype) -> dict:
  """``{name: values}`` with a leading axis of size ``prod(grid_shape)`` (C order)."""
  points = list(itertools.product(*grid.values()))
  return {name: np.stack([np.asarray(p[i], dtype) for p in points]) for i, name in enumerate(grid)}


def _run_member(plan, epochs, params, values, key, x, t, xv, tv):
  state = _epoch.init_state(plan, params, values)

  def body(state, epoch):
    return _epoch.epoch_fn(plan, state, key, x, t, xv, tv, epoch=epoch)

  state, hist = jax.lax.scan(body, state, jnp.arange(epochs, dtype=jnp.int32))
  hist["best_epoch"] = state.best_epoch
  hist["diverged"] = state.diverged
  hist["epochs_run"] = state.epoch
  return _epoch.result_params(plan, state), hist


def _run_many(plan, epochs, base, table, seeds, params, x, t, xv, tv):
  """Leaves ``(n_seeds, n_points, ...)``: seeds outside, grid inside."""

  def per_seed(s):
    key = jax.random.key(s)
    p0 = plan.model.init(key, x.dtype) if isinstance(plan.model, MLP) else None
    if params is not None:
      p0 = params
    elif p0 is None:
      p0 = jax.tree.map(lambda v: jnp.asarray(v, x.dtype), plan.model.init(key))
    xs, ts = _epoch.order_once(plan, key, x, t)
    run = lambda v: _run_member(plan, epochs, p0, {**base, **v}, key, xs, ts, xv, tv)  # noqa: E731
    if not table:  # no grid: no size-1 batch axis in every op
      return jax.tree.map(lambda a: a[None], run({}))
    return jax.vmap(run)(table)

  if seeds.shape[0] == 1:  # one seed: no size-1 batch axis in every op
    return jax.tree.map(lambda a: a[None], per_seed(seeds[0]))
  return jax.vmap(per_seed)(seeds)


_run_many_jit = jax.jit(_run_many, static_argnums=(0, 1))


@functools.lru_cache(maxsize=None)
def _run_many_sharded(out_sharding):
  """``_run_many`` jitted with its outputs laid out as ``out_sharding`` (one per layout)."""
  return jax.jit(_run_many, static_argnums=(0, 1), out_shardings=out_sharding)


def _pad(a: np.ndarray, size: int) -> np.ndarray:
  """``a`` with its last row repeated up to ``size`` rows (padding members are real runs)."""
  return np.concatenate([a, np.repeat(a[-1:], size - a.shape[0], axis=0)])


def _run_on_mesh(mesh, axes, plan, epochs, base, table, seeds, params, data):
  """``_run_many`` with the members spread over ``mesh``; NumPy leaves ``(n_seeds, n_points, ...)``.

  Seeds and grid points are padded to multiples of their mesh axes' sizes
  (repeating the last one) and the padding is dropped from the results, which
  every process receives in full.
  """
  mesh = _mesh.auto("train_many", mesh)
  ax = _mesh.member_axes("train_many", mesh, axes, n_seeds=seeds.shape[0], has_grid=bool(table))
  n_seeds = seeds.shape[0]
  n_points = next(iter(table.values())).shape[0] if table else 1
  up = lambda n, names: -(-n // _mesh.axis_size(mesh, names)) * _mesh.axis_size(mesh, names)  # noqa: E731
  seeds = _mesh.put(_pad(seeds, up(n_seeds, ax.seeds)), _mesh.sharding(mesh, ax.seeds))
  table = _mesh.put({k: _pad(v, up(n_points, ax.grid)) for k, v in table.items()},
                    _mesh.sharding(mesh, ax.grid))
  rep = _mesh.replicated(mesh)
  base, params, data = _mesh.put((base, params, data), rep)
  run = _run_many_sharded(_mesh.sharding(mesh, ax.seeds, ax.grid))
  out = gather_to_host(run(plan, epochs, base, table, seeds, params, *data))
  return jax.tree.map(lambda a: a[:n_seeds, :n_points], out)


def train_many(model, train_data, config: TrainConfig, *, seeds: Sequence[int],
               grid: Mapping[str, Sequence] | None = None, val_data=None, params=None,
               mesh=None, axes=None):
  """Trains one model per (grid point, seed) in **one** compiled call: ``jit(vmap(scan))``.

  Args:
    model: a :class:`jaxreg.MLP`, a :class:`jaxreg.Model` or a bare loss
      function (as for :func:`jaxreg.train`).
    train_data: ``(x, t)`` as for :func:`jaxreg.train`, shared by all members.
      An MLP's dtype is ``x``'s if it is a float array, else JAX's default; a
      Model's is its parameters'.
    config: the :class:`jaxreg.TrainConfig` common to all members; its
      ``seed`` is ignored (``seeds`` replaces it).
    seeds: member seeds in ``[0, 2**32)``; seed ``s`` initializes with
      ``model.init(jax.random.key(s))`` (an MLP: ``init(key, dtype)``) and
      trains with ``config.replace(seed=s)``.
    grid: optional ``{name: values}`` over numeric hyperparameters: those of
      the optimizer — for the built-in one ``"learning_rate"``,
      ``"weight_decay"``, ``"l1"``; for ``config.optimizer`` made with
      ``optax.inject_hyperparams`` its hyperparameter names (e.g.
      ``"learning_rate"``, ``"b1"``) — and the trainer's own
      ``"noise_std"`` and (MLP) ``"keep_prob"`` (tuples, one keep-probability
      per layer input). The grid is the Cartesian product, in the dict's key
      order.
    val_data: optional ``(x, t)``; needed for ``config.patience``.
    params: initial parameters shared by every member; required for a
      Model without ``init``, optional otherwise (default: one ``init`` per seed).
    mesh: optional ``jax.sharding.Mesh`` (e.g.
      :func:`jaxreg.distributed.member_mesh`) to spread the members over its
      devices — those of one process or, in a ``jax.distributed`` run, of
      all; every process then calls ``train_many`` with the same arguments
      and gets the full results. Seeds and grid points are padded to
      multiples of their axes' sizes (repeating the last one; the padding
      is dropped from the results). The numbers equal ``mesh=None``'s.
      Explicit mesh axes are used as Auto ones.
    axes: with ``mesh``, ``(seed_axes, grid_axes)``: the mesh axis (a name,
      a tuple of names or ``None``) the seeds lie along and the one the grid
      points lie along. Default: the seeds along the mesh's first axis and
      the grid points along the others; without a grid the seeds along every
      axis, with one seed the grid points along every axis. Work along a
      mesh axis named in neither is repeated on each of its devices.

  Returns:
    ``(params, history)``. Every leaf has leading axes
    ``(*grid_shape, len(seeds))`` with ``grid_shape = tuple(len(v) for v in
    grid.values())`` (``()`` without a grid). ``history`` has the per-epoch
    arrays of :func:`jaxreg.train` with a last axis of ``config.epochs``
    (NaN after a member stopped early or diverged), plus per member
    ``"best_epoch"`` (1-based; 0: none), ``"diverged"`` (bool: its loss
    became non-finite; its params are then the last finite ones) and
    ``"epochs_run"``. With ``mesh`` every leaf is a NumPy array.

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
  model = _model.as_model(model, "train_many")
  _inputs.check_config("train_many", config)
  seeds = _check_seeds(seeds)
  if params is not None:
    dtype = _inputs.params_dtype(model, params)
    params = jax.tree.map(lambda v: jnp.asarray(v, dtype), params)
  elif isinstance(model, MLP):
    x0 = np.asarray(train_data[0]) if isinstance(train_data, (tuple, list)) and train_data else None
    dtype = (x0.dtype if x0 is not None and np.issubdtype(x0.dtype, np.floating)
             else jnp.asarray(0.0).dtype)
  elif model.init is None:
    raise TypeError("train_many: a jaxreg.Model without `init` needs `params=` (every seed then "
                    "starts from them).")
  else:
    dtype = _inputs.params_dtype(model, jax.eval_shape(model.init, jax.random.key(0)),
                                 "model.init(key)")
  like = params
  if like is None:
    like = (jax.eval_shape(lambda k: model.init(k, dtype), jax.random.key(0))
            if isinstance(model, MLP) else jax.eval_shape(model.init, jax.random.key(0)))
  grid = _check_grid(model, config, grid, like)
  x, t, xv, tv, has_val = _inputs.check_inputs("train_many", model, config, like, train_data,
                                               val_data, dtype)
  plan = _epoch.make_plan(model, config, x.shape[0], has_val, _model.task_of(model, t),
                          swept=tuple(grid))
  grid_shape = tuple(len(v) for v in grid.values())
  table = _grid_table(grid, dtype) if grid else {}
  seeds_arr = np.asarray(seeds, np.uint32)
  base = {k: np.asarray(v, dtype) for k, v in _epoch.config_hyperparams(plan, config).items()
          if k not in table}
  if mesh is None:
    out, hist = _run_many_jit(plan, config.epochs, base, table, seeds_arr, params, x, t, xv, tv)
    swap = jnp.swapaxes
  else:
    out, hist = _run_on_mesh(mesh, axes, plan, config.epochs, base, table, seeds_arr, params,
                             (x, t, xv, tv))
    swap = np.swapaxes
  lead = grid_shape + (len(seeds),)
  # (n_seeds, n_points, ...) → (*grid_shape, n_seeds, ...)
  reorder = lambda a: swap(a, 0, 1).reshape(lead + a.shape[2:])  # noqa: E731
  out = jax.tree.map(reorder, out)
  return out, {k: np.asarray(reorder(v)) for k, v in hist.items()}
