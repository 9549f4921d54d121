"""`check`: a hand derivation, step by step, against ``jax.grad`` of the loss.

How it judges, and where each part lives:

1. **Inputs** (here). ``params`` and every array or number in ``args`` and
   ``kwargs`` must be finite: a NaN or inf raises ``ValueError`` naming the
   argument and its first bad index.
2. **Reference** (:mod:`~jaxreg._checker.reference`). ``jax.grad`` of
   ``loss`` w.r.t. ``params`` and w.r.t. a zero perturbation added at every
   :func:`jaxreg.tap`, in one compiled call (the referee's loss evaluations
   are a second compiled program of the loss). The loss is traced on every
   check and compiled work is cached by the traced program
   (:mod:`~jaxreg._checker.program_cache`), its constants passed as
   arguments: a changed global, closure or default the loss reads is always
   seen, and a re-defined loss of the same structure reuses the compiled
   reference. A loss that cannot be traced runs eagerly.
3. **Derivation and comparison** (:mod:`~jaxreg._checker.plan`,
   :mod:`~jaxreg._checker.compare`). ``derivation(params, *args, **kwargs)``
   is traced to a program (on every check, cached the same way) and
   compiled together with its comparison; when it cannot be traced (or with
   ``jit=False``) it runs eagerly and is compared in NumPy. If it raises,
   the report says so. Its output pairs with the
   reference as :mod:`~jaxreg._checker.plan` describes (a pytree shaped like
   ``params``, or a dict of steps keyed by tap names and/or ``"params"``).
   Rows in backprop order; verdicts ``ok``, ``wrong``, ``kink``, ``missing``
   (a leaf or name the derivation lacks, ``None``) and ``shape`` (wrong
   shape or not a float array; an array that differs only by axes of length
   1 is compared after reshaping as well).
4. **Tolerance** (:mod:`~jaxreg._checker.tolerance`): element ``i``
   mismatches when ``|u_i − r_i| / max(|r_i|, floor·scale) > rtol`` and
   ``|u_i − r_i| > atol``, where ``scale`` is the largest magnitude of any
   reference gradient in the check (every parameter leaf and every tap), so
   a row whose true value is 0 (a bias before a normalisation) is judged
   against the computation's scale, not its own round-off. Defaults: float64
   ``rtol=1e-10``, ``floor=1e-3``; float32 ``1e-4``, ``1e-2``; ``atol=0``. A
   user array of another float dtype is compared at the looser of the two
   dtypes' tolerances (noted in the row).
5. **Kinks** (:mod:`~jaxreg._checker.kinks`): the largest mismatches are
   probed with one-sided differences; a valid subgradient, or a product of
   valid local conventions where two kinks meet (through a tapped quantity,
   or through the loss's own kink sites, :mod:`~jaxreg._checker.conventions`),
   is ``kink``, not ``wrong``.
6. **Referee** (:mod:`~jaxreg._checker.referee`): central differences of the
   loss along random directions against ``⟨jax.grad, v⟩`` catch a reference
   that is itself wrong (a bad ``custom_vjp``).
7. **Diagnosis** (:mod:`~jaxreg._checker.diagnose`) of wrong rows, and the
   summary sentence (:mod:`~jaxreg._checker.summary`): the first wrong step,
   and any later one that is wrong on its own (:mod:`~jaxreg._checker.steps`).

A correct but ill-conditioned hand formula (``1 − tanh²`` at saturation,
where autodiff uses ``(1 − t)(1 + t)``) can miss ``1e-10``; such rows are
diagnosed "rounding level" and need a looser ``rtol``.

A tap name used twice in one call of the loss raises ``ValueError`` (before
any row is built): a duplicated name means two quantities would share one
row, which no derivation could match.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._checker import compare as _compare
from jaxreg._checker import conventions as _conventions
from jaxreg._checker import diagnose as _diagnose
from jaxreg._checker import kinks as _kinks
from jaxreg._checker import plan as _plan
from jaxreg._checker import reference as _check_ref
from jaxreg._checker import referee as _referee
from jaxreg._checker import steps as _steps
from jaxreg._checker import summary as _summary
from jaxreg._checker import tolerance as _tolerance
from jaxreg._checker.compare import Comparison, Pair
from jaxreg._checker.report import Report
from jaxreg._checker.usercode import describe_exc

# ----------------------------------------------------------------- inputs


def _arg_labels(loss: Callable, args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
  """``[(label, leaf)]`` for every leaf of ``args``/``kwargs``, labelled by the loss's names."""
  try:
    names = [p.name for p in inspect.signature(loss).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
  except (TypeError, ValueError):     # builtins and some callables have no signature
    names = []
  out = []
  for k, a in enumerate(args):
    base = (f"{names[k]} (args[{k}])" if k < len(names) else f"args[{k}]")
    for path, leaf in jax.tree_util.tree_flatten_with_path(a)[0]:
      out.append((base + jax.tree_util.keystr(path), leaf))
  for key, a in kwargs.items():
    for path, leaf in jax.tree_util.tree_flatten_with_path(a)[0]:
      out.append((f"kwargs[{key!r}]" + jax.tree_util.keystr(path), leaf))
  return out


def _first_nonfinite(x) -> tuple | None:
  """Index of the first NaN/inf of a numeric leaf, or ``None``."""
  if isinstance(x, bool) or not isinstance(x, (jax.Array, np.ndarray, np.generic, float, int)):
    return None
  a = np.asarray(x)
  if not np.issubdtype(a.dtype, np.inexact):
    return None
  bad = ~np.isfinite(a)
  if not bad.any():
    return None
  return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape))


def _require_finite(p_paths, labelled):
  for name, x in list(p_paths) + list(labelled):
    idx = _first_nonfinite(x)
    if idx is not None:
      what = f"`params` leaf {name}" if name.startswith("params") else f"argument {name}"
      v = np.asarray(x)[idx] if idx else np.asarray(x)
      at = f" at index {idx}" if idx else ""
      raise ValueError(f"check: {what} holds {v}{at}; the loss and its gradient are only "
                       "defined at finite values. Check the data (or the parameters) for "
                       "NaN/inf before checking a derivation.")


def _data_dims(labelled, batch_axis) -> list[_diagnose.Dim]:
  dims, seen = [], set()
  for label, x in labelled:
    shape = np.shape(x) if isinstance(x, (jax.Array, np.ndarray)) else ()
    for ax, size in enumerate(shape):
      is_batch = batch_axis is not None and ax == batch_axis % len(shape)
      if (size, is_batch) in seen or size <= 1:
        continue
      seen.add((size, is_batch))
      dims.append(_diagnose.Dim(int(size), f"axis {ax} of {label}", is_batch))
  return dims


# ------------------------------------------------- compiled, cached functions


class Fused(NamedTuple):
  """Output of the fused derivation-and-comparison function.

  Attributes:
    plan: :class:`~jaxreg._checker.reference.Static` holding the
      :class:`~jaxreg._checker.plan.Plan` (trace-time facts: how the
      derivation's outputs pair with rows).
    users: the user's arrays, one per plan slot (``None`` where not an array).
    stats: :class:`~jaxreg._checker.compare.Stats` of the comparable slots.
  """

  plan: Any
  users: tuple
  stats: Any


def _fused_fn(derivation, split, taps: _check_ref.Taps, tol, user_rtol):
  """``fused(params, dyn, g_params, g_taps) -> Fused``: the derivation and its comparison in
  one trace (``derivation`` is the traced program of :func:`_compiled_fused`, which does not
  raise)."""
  split = split.structure()

  def fused(params, dyn, g_params, g_taps):
    args, kwargs = split.rebuild(dyn)
    result = derivation(params, *args, **kwargs)
    plan, users = _plan.build(result, taps.order, taps.specs, _plan.leaf_paths(params), params)
    g_leaves = jax.tree_util.tree_leaves(g_params)
    refs = {**{("tap", n): g for n, g in g_taps.items()},
            **{("param", i): g for i, g in enumerate(g_leaves)}}
    pairs, used = [], set()
    for pos in plan.comparable():
      key = plan.slots[pos].key
      rk = ("tap", key.name) if key.kind == "tap" else ("param", key.index)
      r = refs[rk]
      t, _ = _tolerance.for_dtypes(users[pos].dtype, r.dtype, tol, user_rtol)
      pairs.append(Pair(users[pos], r, t))
      used.add(rk)
    others = [g for k, g in refs.items() if k not in used]
    stats = _compare.row_stats(pairs, others)
    return Fused(_check_ref.Static(plan), tuple(users), stats)

  return fused


def _compiled_fused(derivation, split, params, taps: _check_ref.Taps, tol, user_rtol):
  """``(fn, dyn)``: the jitted :func:`_fused_fn` and its traced arguments, or ``None``.

  The derivation is traced to a program on every call; the compiled function
  is cached by that program (its constants are arguments in ``dyn``), the
  taps' names and shapes (constants of the plan) and the tolerances, which
  together determine the :class:`~jaxreg._checker.plan.Plan` it returns.
  ``None`` when the derivation cannot be traced or raises while traced (it
  then runs eagerly, where an error is reported).
  """
  try:
    dfn, dsplit, dkey = _check_ref.trace_derivation(derivation, params, split)
  except Exception:  # pylint: disable=broad-except  # user code: rerun eagerly to report it
    return None
  tap_specs = tuple((n, tuple(taps.specs[n].shape), jnp.dtype(taps.specs[n].dtype))
                    for n in taps.order)
  key = ("fused", dkey, tap_specs, tol, user_rtol)
  fn = _check_ref.cached(key, lambda: jax.jit(_fused_fn(dfn, dsplit, taps, tol, user_rtol)))
  return fn, dsplit.dyn


# ------------------------------------------------------------------ check


class _Problem(NamedTuple):
  """What one check is about (the parts every stage reads)."""

  derivation: Callable
  loss: Callable
  params: Any
  p_paths: list
  split: Any
  dtype: Any
  tol: _tolerance.Tolerance
  user_rtol: float | None


def _run_derivation_eager(derivation, params, split):
  try:
    args, kwargs = split.rebuild(split.dyn)
    return derivation(params, *args, **kwargs), None
  except Exception as e:  # pylint: disable=broad-except  # user code: reported, not raised
    return None, describe_exc(e, "the derivation")


def _reference(pb: _Problem, n_dirs: int, seed: int):
  """``(Reference, traced loss)``: compiled when the loss traces (cached by its program), else
  run eagerly (the traced loss is then ``None``)."""
  rkey = np.uint32(seed)
  try:
    return _check_ref.compute_reference(pb.loss, pb.split, n_dirs, pb.params, rkey)
  except _check_ref.TRACE_ERRORS:
    pass
  ref_fn = _check_ref.make_eager_reference(pb.loss, pb.split, n_dirs)
  try:
    return ref_fn(pb.params, pb.split.dyn, rkey), None
  except _check_ref.TRACE_ERRORS as e:
    raise TypeError(
        "check: jax.grad cannot differentiate `loss`: it needs concrete values (float(), "
        "int(), .item() or NumPy on a traced array), which autodiff does not provide. "
        f"Write it with jnp operations. JAX said: {str(e).splitlines()[0]}") from e


def check(derivation: Callable, loss: Callable, params: Any, *args,
          kwargs: Mapping[str, Any] | None = None,
          rtol: float | None = None, atol: float | None = None,
          referee: int = 2, max_probes: int = 16, max_probes_total: int = 64,
          jit: bool = True, seed: int = 0, batch_axis: int | None = None) -> Report:
  """Checks a hand derivation of ``∂loss/∂params`` (and its steps) against autodiff.

  Args:
    derivation: ``derivation(params, *args, **kwargs)`` returning either a
      pytree shaped like ``params`` (the gradient), or a dict of steps whose
      keys are tap names (``∂L/∂(tapped quantity)``) and/or ``"params"``.
    loss: ``loss(params, *args, **kwargs)`` returning a scalar; may mark
      intermediate quantities with :func:`jaxreg.tap`.
    params: a pytree of finite floating-point arrays.
    *args: further positional arguments of both functions (data, targets, …).
    kwargs: keyword arguments of both functions, as a dict (``{"lam": 0.01}``);
      kept apart from the check's own options, so a loss may take any
      keyword (even ``seed`` or ``jit``).
    rtol: relative tolerance, ``>= 0``; default by dtype (float64 ``1e-10``,
      float32 ``1e-4``).
    atol: absolute tolerance, ``>= 0``; default 0.
    referee: number of random directions for the finite-difference referee
      of the reference gradient (0 to skip).
    max_probes: most elements of one row probed for kinks.
    max_probes_total: most elements probed for kinks in one check.
    jit: compile the derivation together with the comparison (it runs
      eagerly when it cannot be traced). ``False`` runs the derivation
      eagerly (for debugging it with prints or a debugger); the loss is still
      compiled unless it cannot be traced. Compiled work is cached by the
      traced program, so changed globals are always seen, with either value.
    seed: seed of the referee's random directions.
    batch_axis: the axis of the data arrays that holds the examples; a
      factor equal to its length is then named "the batch size" in a
      diagnosis. Without it, a factor equal to any data dimension is named
      by that dimension.

  Returns:
    A :class:`jaxreg.Report`. Problems with the derivation (it raises, returns
    NaN, the wrong structure, shape or dtype) are rows or ``report.error``,
    never an exception.

  Raises:
    ValueError: ``params`` or an argument holds NaN/inf (naming it and the
      first bad index); ``loss`` returns no scalar; a tolerance is negative.
    TypeError: ``derivation``/``loss`` not callable, ``kwargs`` not a dict,
      a ``params`` leaf not floating-point, ``loss`` not differentiable.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> import jaxreg
    >>> def loss(p, x, t):
    ...   z = jaxreg.tap("z", x * p["w"])
    ...   y = jaxreg.tap("y", jnp.maximum(z, 0.0))
    ...   return 0.5 * jnp.sum((y - t) ** 2)
    >>> def steps(p, x, t):      # S3.1, with Step(0) = 1
    ...   z = x * p["w"]; y = jnp.maximum(z, 0.0)
    ...   dy = y - t
    ...   dz = dy * (z >= 0)
    ...   return {"y": dy, "z": dz, "params": {"w": jnp.sum(dz * x)}}
    >>> x, t = jnp.array([1.0, -2.0, 0.5]), jnp.array([0.3, 0.1, -0.2])
    >>> jaxreg.check(steps, loss, {"w": jnp.array(0.7)}, x, t).ok
    True
  """
  if not callable(derivation):
    raise TypeError(f"check: `derivation` must be callable, got {type(derivation).__name__}.")
  if not callable(loss):
    raise TypeError(f"check: `loss` must be callable, got {type(loss).__name__}.")
  if kwargs is None:
    kwargs = {}
  if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
    raise TypeError("check: `kwargs` must be a dict of the keyword arguments of `loss` and "
                    f"`derivation` (str keys), got {type(kwargs).__name__} {kwargs!r}.")
  kwargs = dict(kwargs)
  for name, v in (("referee", referee), ("max_probes", max_probes),
                  ("max_probes_total", max_probes_total)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
      raise ValueError(f"check: `{name}` must be an int >= 0, got {v!r}.")
  if batch_axis is not None and (isinstance(batch_axis, bool)
                                 or not isinstance(batch_axis, (int, np.integer))):
    raise TypeError(f"check: `batch_axis` must be an int or None, got {batch_axis!r}.")
  p_paths = _plan.leaf_paths(params)
  if not p_paths:
    raise ValueError("check: `params` has no array leaves; nothing to differentiate.")
  for name, x in p_paths:
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
      raise TypeError(f"check: `params` leaf {name} must be a floating-point array, "
                      f"got dtype {jnp.result_type(x)}.")
  ref_dtype = jnp.result_type(*[x for _, x in p_paths])
  tol = _tolerance.resolve(ref_dtype, rtol, atol, "check")
  labelled = _arg_labels(loss, args, kwargs)
  _require_finite(p_paths, labelled)
  if not all(isinstance(x, jax.Array) for _, x in p_paths):
    params = jax.tree_util.tree_map(jnp.asarray, params)
    p_paths = _plan.leaf_paths(params)
  split = _check_ref.Split(args, kwargs)
  pb = _Problem(derivation, loss, params, p_paths, split, ref_dtype, tol,
                None if rtol is None else float(rtol))
  n_dirs = int(referee)

  # 1. Reference.
  ref, traced = _reference(pb, n_dirs, seed)
  taps = ref.taps.value

  # 2. Derivation and comparison (compiled, cached by the derivation's program, when it traces).
  fused = None
  compiled = _compiled_fused(derivation, split, params, taps, tol, pb.user_rtol) \
      if jit and traced is not None else None
  if compiled is not None:
    fn, dyn = compiled
    fused = fn(params, dyn, ref.g_params, ref.g_taps)
  report = Report(rows=[], rtol=tol.rtol, atol=tol.atol, dtype=str(jnp.dtype(ref_dtype)))
  report.referee = _referee.judge(ref.referee, ref_dtype) if n_dirs > 0 else None
  loss_value = float(ref.loss)
  if not math.isfinite(loss_value):
    report.notes.append(f"the loss itself is {loss_value} at these params and arguments, so "
                        "its gradient and finite differences mean little")
  g_leaves = jax.tree_util.tree_leaves(ref.g_params)
  ref_of = lambda key: ref.g_taps[key.name] if key.kind == "tap" else g_leaves[key.index]
  if fused is None:
    result, err = _run_derivation_eager(derivation, params, split)
    if err is not None:
      report.error = err
      report.summary = "The derivation could not be run, so nothing was checked: " + err + "."
      return report
    plan, users = _plan.build(result, taps.order, taps.specs, p_paths, params)
    scale = _compare.scale_np(list(ref.g_taps.values()) + g_leaves)
    pairs = []
    for pos in plan.comparable():
      r = ref_of(plan.slots[pos].key)
      pairs.append(Pair(users[pos], r,
                        _tolerance.for_dtypes(users[pos].dtype, r.dtype, tol, pb.user_rtol)[0]))
    row_stats = _compare.row_stats_np(pairs, scale)
  else:
    plan, users = fused.plan.value, fused.users
    stats = jax.device_get(fused.stats)
    row_stats, scale = stats.rows(), float(stats.scale)
  if plan.error is not None:
    report.error = plan.error
    report.unchecked = list(plan.unchecked)
    report.summary = "The derivation's output could not be read, so nothing was checked: " + \
        plan.error + "."
    return report
  return _judge(pb, report, plan, users, row_stats, scale, ref, taps, ref_of, traced,
                max_probes, max_probes_total, batch_axis, labelled)


def _judge(pb: _Problem, report, plan, users, row_stats, scale, ref, taps, ref_of, traced,
           max_probes, max_probes_total, batch_axis, labelled) -> Report:
  """Verdicts, kinks, diagnoses and the summary from the comparison's statistics."""
  rows = [dataclasses.replace(r) for r in plan.rows]     # the plan may be cached
  report.unchecked = list(plan.unchecked)
  report.notes = list(plan.notes) + report.notes
  judged: list[_kinks.Judged] = []
  for pos in plan.comparable():
    slot = plan.slots[pos]
    a, r = users[pos], ref_of(slot.key)
    t, note = _tolerance.for_dtypes(a.dtype, r.dtype, pb.tol, pb.user_rtol)
    if note:
      rows[slot.row].note = note
    theta = pb.p_paths[slot.key.index][1] if slot.key.kind == "param" else None
    judged.append(_kinks.Judged(rows[slot.row], slot, a, r, t, theta))
  for pos, slot in enumerate(plan.slots):
    row, a = rows[slot.row], users[pos]
    if row.verdict == "shape" and a is not None and a.ndim == 2 and not slot.reshaped and \
        tuple(a.shape[::-1]) == tuple(ref_of(slot.key).shape):
      tr = _diagnose.is_transpose(a, ref_of(slot.key), pb.tol, scale)
      row.diagnosis = "yours is the transpose of the reference" + (
          ": a transposed or swapped matrix" if tr else " in shape (values differ too)")

  # Verdicts from the one-pass statistics.
  for k, j in enumerate(judged):
    row = j.row
    row.max_abs_err = float(row_stats.max_err[k])
    row.max_rel_err = float(row_stats.max_rel[k])
    if row_stats.ref_nonfinite[k]:
      row.note = "the reference itself is not finite here"
    j.nonfinite = bool(row_stats.user_nonfinite[k])
    if not row_stats.mismatch[k]:
      continue
    j.comparison = Comparison.of(j.user, j.ref, j.tol, scale)
    row.n_mismatch = j.comparison.count
    worst = j.comparison.worst()
    row.worst_user, row.worst_ref = float(j.comparison.user[worst]), float(j.comparison.ref[worst])
    row.worst_index = tuple(int(i) for i in np.unravel_index(worst, np.shape(j.ref)))
    if j.slot.reshaped:
      _kinks.append_note(row, f"compared after reshaping to {tuple(np.shape(j.ref))}, the values differ "
                   f"too ({row.n_mismatch} of {row.size})")
      continue
    row.verdict = "wrong"
    j.candidates = j.comparison.largest(max(1, int(max_probes)))
  for j in judged:
    if j.slot.reshaped and j.comparison is None:
      _kinks.append_note(j.row, f"compared after reshaping to {tuple(np.shape(j.ref))}, the values agree")

  # Kinks.
  probe_fn = lambda: _kinks.make_probe_fn(pb.loss, pb.split, traced)
  base_values = lambda j: j.theta if j.theta is not None else ref.tapped[j.slot.key.name]
  conventions = None if traced is None else (
      lambda: _conventions.Search.build(traced, pb.params, pb.split.dyn, pb.dtype))
  _kinks.probe(judged, lambda: _kinks.Prober(probe_fn(), pb.params, pb.split.dyn, taps.specs,
                                             conventions),
               pb.dtype, scale, max_probes_total, base_values)

  # Diagnosis of rows still wrong.
  dims = _data_dims(labelled, batch_axis)
  for j in judged:
    if j.row.verdict != "wrong":
      continue
    pats = []
    if j.slot.key.kind == "tap":
      own = j.slot.key.name
      for n in [own] + [n for n in taps.order if n != own]:
        if n in ref.tapped and tuple(np.shape(ref.tapped[n])) == tuple(np.shape(j.ref)):
          pats.append((n, ref.tapped[n]))
    kink_mask = None
    if j.kinks:
      kink_mask = np.zeros(int(np.size(j.ref)), bool)
      kink_mask[j.kinks] = True
    j.row.diagnosis = _diagnose.diagnose(
        j.user, j.ref, j.tol, scale, patterns=pats, theta=j.theta, theta_name=j.row.name,
        dims=dims, kinks=kink_mask)
    if j.nonfinite:
      _kinks.append_note(j.row, "yours contains NaN or inf")
  report.rows = rows
  first = report.first_wrong
  also = []
  if sum(j.row.verdict == "wrong" for j in judged) > 1:
    also = [j.row for j in _steps.independent(judged, first, probe_fn(), pb.params, pb.split.dyn,
                                              taps.specs, scale)]
  report.summary = _summary.localise(rows, report, also)
  return report
