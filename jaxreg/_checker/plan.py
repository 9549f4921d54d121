"""How a derivation's output pairs with the reference: the rows of a check.

A derivation returns either a pytree shaped like ``params`` (the gradient) or
a dict of steps whose keys are tap names and/or ``"params"``. A dict is read
as steps when its keys include ``"params"`` or a tap name, unless ``params``
is itself a dict with exactly those keys.

Rows come in backprop order: taps from the output towards the input (the
reverse of the order the loss taps them), then parameter leaves by pytree
path. The :class:`Plan` is built from the output's structure, shapes and
dtypes only, so it can be built while tracing (and carried out of a jit as
static data) or on concrete arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._checker.report import Row


def leaf_paths(tree) -> list[tuple[str, Any]]:
  """``[("params['w']", leaf), …]`` in pytree order."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [("params" + jax.tree_util.keystr(p), x) for p, x in flat]


class RefKey(NamedTuple):
  """Which reference quantity a row compares with.

  Attributes:
    kind: ``"tap"`` or ``"param"``.
    name: the tap name or the parameter's path.
    index: the parameter leaf's index (``-1`` for a tap).
  """

  kind: str
  name: str
  index: int = -1


class Slot(NamedTuple):
  """A row of the plan paired with its reference quantity.

  Attributes:
    row: index into :attr:`Plan.rows`.
    key: the reference quantity.
    reshaped: the user's array had the reference's elements in another
      shape that differs only by axes of length 1 (a ``(1, n)`` bias gradient
      for an ``(n,)`` bias); the row is ``shape`` but its values are
      compared after reshaping.
  """

  row: int
  key: RefKey
  reshaped: bool = False


@dataclasses.dataclass
class Plan:
  """Rows, the slots that pair them with reference quantities, and remarks.

  Attributes:
    rows: one :class:`Row` per quantity, verdict ``ok`` until judged
      (``missing``/``shape`` already set where the output cannot be compared).
    slots: the rows that have a user value, each with its reference key.
    unchecked: tap names the derivation does not give.
    notes: remarks for the report.
    error: set when the output is not a tree the check can read at all.
  """

  rows: list[Row]
  slots: list[Slot]
  unchecked: list[str]
  notes: list[str]
  error: str | None = None

  def comparable(self) -> list[int]:
    """Positions in :attr:`slots` of the rows to compare elementwise."""
    return [j for j, s in enumerate(self.slots) if self.rows[s.row].verdict == "ok" or s.reshaped]


class _NotGiven:
  def __repr__(self):
    return "<not given>"


_NOT_GIVEN = _NotGiven()


def _as_array(x):
  """``(array, None)`` for a float array-like, else ``(None, why)`` (works on tracers)."""
  if x is None:
    return None, "is None"
  if isinstance(x, (jax.Array, np.ndarray, np.generic, float, int)) and not isinstance(x, bool):
    a = jnp.asarray(x)
    if not jnp.issubdtype(a.dtype, jnp.floating):
      return None, f"has dtype {a.dtype}, expected a floating-point array"
    return a, None
  return None, f"is a {type(x).__name__}, expected an array"


def _describe(x) -> str:
  """How a value looks, for an error: ``None``, ``a list of 2 items``, ``a scalar``…"""
  if x is None:
    return "None"
  if isinstance(x, Mapping):
    keys = ", ".join(repr(k) for k in list(x)[:6]) + (", …" if len(x) > 6 else "")
    return f"a {type(x).__name__} with keys {keys}" if x else f"an empty {type(x).__name__}"
  if isinstance(x, (list, tuple)):
    return f"a {type(x).__name__} of {len(x)} item(s)"
  shape = getattr(x, "shape", None)
  if shape is not None:
    return "a scalar" if tuple(shape) == () else f"an array of shape {tuple(shape)}"
  if isinstance(x, (int, float)):
    return "a scalar"
  return f"a {type(x).__name__}"


def _structure_error(result, params) -> str | None:
  """Why ``result`` cannot be read as a gradient shaped like ``params``, or ``None``."""
  if result is None:
    return "returned None"
  p_leaf = jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(params))
  r_def = jax.tree_util.tree_structure(result, is_leaf=lambda y: y is None)
  r_leaf = jax.tree_util.treedef_is_leaf(r_def)
  if p_leaf or r_leaf:
    return None if p_leaf == r_leaf else f"returned {_describe(result)}"
  if type(result) is not type(params) and not (isinstance(result, Mapping)
                                               and isinstance(params, Mapping)):
    return f"returned {_describe(result)}"
  return None


def build(result, order, specs, p_paths, params) -> tuple[Plan, list]:
  """The :class:`Plan` for a derivation's output, and the user arrays of its slots.

  Args:
    result: what the derivation returned.
    order: tap names in the order the loss taps them.
    specs: ``{tap name: ShapeDtypeStruct}``.
    p_paths: :func:`leaf_paths` of ``params``.
    params: the parameters (their structure and leaves' shapes).
  """
  plan = Plan([], [], [], [])
  users: list = []
  params_map = params if isinstance(params, Mapping) else None
  steps_mode = isinstance(result, Mapping) and (
      ("params" in result or any(k in specs for k in result))
      and not (params_map is not None and set(result) == set(params_map)))
  if steps_mode:
    for name in reversed(order):
      if name in result:
        _add(plan, users, Row(name, "tap", f"∂L/∂{name}", tuple(specs[name].shape), "ok"),
             RefKey("tap", name), result[name], specs[name])
      else:
        plan.unchecked.append(name)
    for k in result:
      if k != "params" and k not in specs:
        known = ", ".join(reversed(order)) or "none"
        plan.rows.append(Row(str(k), "tap", f"∂L/∂{k}", None, "missing",
                             note=f"the loss never taps {k!r} (its taps: {known}); "
                             "add jaxreg.tap(name, value) in the loss or fix the name"))
    user_params = result.get("params", _NOT_GIVEN)
    if user_params is _NOT_GIVEN:
      plan.notes.append('the derivation gives no "params" entry: parameter gradients not checked')
      return plan, users
    why = _structure_error(user_params, params)
    if why is not None:
      plan.notes.append(f'the "params" entry {why.replace("returned ", "is ")} where a pytree '
                        f"shaped like params ({_describe(params)}) is due")
  else:
    why = _structure_error(result, params)
    if why is not None:
      plan.error = (f"the derivation {why} where a pytree shaped like params "
                    f"({_describe(params)}) or a dict of steps (tap names and/or \"params\") "
                    "is due")
      plan.unchecked.extend(reversed(order))
      return plan, users
    user_params = result
    plan.unchecked.extend(reversed(order))
  u_flat = dict(leaf_paths(user_params)) if user_params is not None else {}
  for i, (pname, pval) in enumerate(p_paths):
    row = Row(pname, "param", f"∂L/∂{pname}", tuple(np.shape(pval)), "ok")
    if pname not in u_flat:
      row.verdict = "missing"
      row.note = "the derivation's parameter gradient has no leaf here"
      plan.rows.append(row)
      continue
    spec = jax.ShapeDtypeStruct(np.shape(pval), jnp.result_type(pval))
    _add(plan, users, row, RefKey("param", pname, i), u_flat.pop(pname), spec)
  if u_flat:
    plan.notes.append("the derivation's parameter gradient has leaves that params lacks "
                      f"(ignored): {', '.join(sorted(u_flat))}")
  return plan, users


def _add(plan: Plan, users: list, row: Row, key: RefKey, u, spec):
  row.size = int(np.prod(spec.shape, dtype=np.int64))
  a, why = _as_array(u)
  if a is None:
    row.verdict = "missing" if u is None else "shape"
    row.note = f"yours {why}"
  elif tuple(a.shape) != tuple(spec.shape):
    row.verdict = "shape"
    row.note = f"yours has shape {tuple(a.shape)}, expected {tuple(spec.shape)}"
    squeezed = lambda sh: tuple(d for d in sh if d != 1)
    if squeezed(a.shape) == squeezed(spec.shape):
      plan.rows.append(row)
      plan.slots.append(Slot(len(plan.rows) - 1, key, reshaped=True))
      users.append(a.reshape(spec.shape))
      return
  plan.rows.append(row)
  plan.slots.append(Slot(len(plan.rows) - 1, key))
  users.append(a)
