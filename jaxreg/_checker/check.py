"""`check`: a hand derivation, step by step, against ``jax.grad`` of the loss.

How it judges (see also :mod:`jaxreg._checker.diagnose` for the comparison):

1. **Reference.** ``jax.grad`` of ``loss`` w.r.t. ``params`` and w.r.t. a zero
   perturbation added at every :func:`jaxreg.tap` (plus the referee's loss
   evaluations), in one jitted call, cached per (loss, argument structure
   and shapes) and shared by every derivation checked against that loss.
2. **Derivation.** ``derivation(params, *args, **kwargs)`` is traced together
   with its comparison into a second jitted, cached function; when it cannot
   be traced it runs eagerly and is compared in NumPy. If it raises, the
   report says so.
   It returns either a pytree shaped like ``params`` or a dict whose keys
   are tap names and/or ``"params"``. A dict is read as steps when its keys
   include ``"params"`` or a tap name, unless ``params`` is itself a dict with
   exactly those keys.
3. **Rows**, in backprop order: taps from the output towards the input
   (reverse of the order the loss taps them), then parameter leaves by
   pytree path. Verdicts: ``ok``; ``wrong``; ``kink`` (every mismatching
   element is at a non-differentiable point and the user's value lies
   between the one-sided derivatives there); ``missing`` (a parameter leaf
   the derivation lacks, a name the loss never taps, ``None``); ``shape``
   (wrong shape, or not a floating-point array).
4. **Kinks.** The largest mismatches (at most ``max_probes`` per row,
   ``max_probes_total`` per check) are probed with one-sided differences of
   the loss at ``±h`` and ``±2h`` along that one element (a parameter entry
   or a tap perturbation; ``h = 1e-6·max(|value|, mean |value|)`` in float64),
   Richardson-extrapolated. A kink has a jump between the one-sided
   derivatives far above their error (estimated from the central differences
   at ``h`` and ``2h``); a valid subgradient lies between them. A row stops
   being probed at its first element that is not a kink, so a wrong row costs
   four loss evaluations and a correct derivation costs nothing extra.
5. **Referee.** ``referee`` random unit directions ``v`` in parameter space
   (random signs, hashed from the element index):
   central differences of the loss at steps ``h`` and ``2h`` against
   ``⟨jax.grad, v⟩``, judged relative to ``max(|⟨∇L, v⟩|, ‖∇L‖₂/√P)`` with
   the Richardson estimate of the difference error as slack. It catches a
   reference that is itself wrong (a bad ``custom_vjp``, a misplaced
   ``stop_gradient``). Its cost does not grow with the number of parameters
   beyond ``4·referee`` loss evaluations. A direction whose one-sided
   differences jump (it crosses a kink) cannot judge autodiff there: verdict
   ``kink`` unless another direction finds it wrong.
6. **Diagnosis** of wrong rows: constant ratio (sign, ×m, ×2, ×½), transpose,
   an extra/missing L2 or L1 term on a parameter, mismatches confined to
   where a tapped value of the same shape is negative/positive (an
   activation-derivative slip), and always the worst element with both values.

Tolerances: see :func:`jaxreg._checker.diagnose.default_tolerances` (float64
``rtol=1e-10``, float32 ``1e-4``; ``atol=0``). The relative error of element
``i`` of a quantity is ``|u_i − r_i| / max(|r_i|, floor·max_j |r_j|)`` with
``floor = 1e-3`` (float64) or ``1e-2`` (float32); an element mismatches when
that exceeds ``rtol`` and ``|u_i − r_i| > atol``. A user array of another
float dtype is compared at the looser of the two dtypes' tolerances (noted in
the row). A correct but ill-conditioned hand formula (``1 − tanh²`` at
saturation, where autodiff uses ``(1 − t)(1 + t)``) can miss ``1e-10``; such
rows are diagnosed "rounding level" and need a looser ``rtol``.

A tap name used twice in one call of the loss raises ``ValueError`` (before
any row is built): a duplicated name means two quantities would share one
row, which no derivation could match.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from collections.abc import Mapping
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._checker import reference as _check_ref
from jaxreg._checker import diagnose as _diagnose
from jaxreg._checker.report import BAD, Referee, Report, Row

Array = jax.Array


def _describe_exc(e: BaseException, what: str) -> str:
  tb = traceback.extract_tb(e.__traceback__)
  where = ""
  for fr in reversed(tb):
    if "/jax/" not in fr.filename and "/jaxreg/_" not in fr.filename:
      where = f" (at {fr.filename}:{fr.lineno}, in {fr.name})"
      break
  msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
  return f"{what} raised {type(e).__name__}: {msg}{where}"


def _leaf_paths(tree) -> list[tuple[str, Any]]:
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [("params" + jax.tree_util.keystr(p), x) for p, x in flat]


def _tol(dtype, rtol, atol):
  r0, a0, floor = _diagnose.default_tolerances(dtype)
  return (r0 if rtol is None else float(rtol), a0 if atol is None else float(atol), floor)


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


class _NotGiven:
  def __repr__(self):
    return "<not given>"


_NOT_GIVEN = _NotGiven()


class _Plan:
  """How a derivation's output pairs with the reference: rows, pairs, notes.

  Built from the output's structure, shapes and dtypes only, so it can be
  built while tracing (the fused path) or on concrete arrays (eager path).
  ``pairs`` holds ``(row index, ref key, user array or None)`` where ``ref
  key`` is ``("tap", name)`` or ``("param", leaf index)``.
  """

  def __init__(self, result, order, specs, p_paths, params):
    self.rows: list[Row] = []
    self.pairs: list[tuple[int, tuple, Any]] = []
    self.unchecked: list[str] = []
    self.notes: list[str] = []
    steps_mode = isinstance(result, Mapping) and (
        ("params" in result or any(k in specs for k in result))
        and not (isinstance(params, Mapping) and set(result) == set(params)))
    if steps_mode:
      given = dict(result)
      for name in reversed(order):
        if name in given:
          self._add(Row(name, "tap", f"∂L/∂{name}", tuple(specs[name].shape), "ok"),
                    ("tap", name), given[name], specs[name])
        else:
          self.unchecked.append(name)
      for k in given:
        if k != "params" and k not in specs:
          known = ", ".join(reversed(order)) or "none"
          self.rows.append(Row(str(k), "tap", f"∂L/∂{k}", None, "missing",
                               note=f"the loss never taps {k!r} (its taps: {known}); "
                               "add jaxreg.tap(name, value) in the loss or fix the name"))
      user_params = given.get("params", _NOT_GIVEN)
    else:
      user_params = result
      self.unchecked.extend(reversed(order))
    if user_params is _NOT_GIVEN:
      self.notes.append('the derivation gives no "params" entry: parameter gradients not checked')
      return
    try:
      u_flat = dict(_leaf_paths(user_params)) if user_params is not None else {}
    except Exception:  # pylint: disable=broad-except
      u_flat = {}
    for i, (pname, pval) in enumerate(p_paths):
      row = Row(pname, "param", f"∂L/∂{pname}", tuple(np.shape(pval)), "ok")
      if pname not in u_flat:
        row.verdict = "missing"
        row.note = "the derivation's parameter gradient has no leaf here"
        self.rows.append(row)
        continue
      spec = jax.ShapeDtypeStruct(np.shape(pval), jnp.result_type(pval))
      self._add(row, ("param", i), u_flat.pop(pname), spec)
    if u_flat:
      self.notes.append("the derivation's parameter gradient has leaves that params lacks "
                        f"(ignored): {', '.join(sorted(u_flat))}")

  def _add(self, row, ref_key, u, spec):
    row.size = int(np.prod(spec.shape, dtype=np.int64))
    a, why = _as_array(u)
    if a is None:
      row.verdict = "missing" if u is None else "shape"
      row.note = f"yours {why}"
    elif tuple(a.shape) != tuple(spec.shape):
      row.verdict = "shape"
      row.note = f"yours has shape {tuple(a.shape)}, expected {tuple(spec.shape)}"
    self.rows.append(row)
    self.pairs.append((len(self.rows) - 1, ref_key, a))

  def comparable(self):
    """``(pair position, row index, ref key, array)`` of the pairs to compare."""
    return [(j, i, k, a) for j, (i, k, a) in enumerate(self.pairs) if self.rows[i].verdict == "ok"]


def _ref_of(ref, key):
  if key[0] == "tap":
    return ref["g_taps"][key[1]]
  return jax.tree_util.tree_leaves(ref["g_params"])[key[1]]


def _row_tol(a_dtype, r_dtype, tol, user_rtol):
  """Tolerances for one row: the looser dtype's when the user's dtype differs."""
  rtol, atol, floor = tol
  if a_dtype == r_dtype:
    return rtol, atol, floor, None
  r2, _, f2 = _diagnose.default_tolerances(a_dtype)
  if r2 > rtol and user_rtol is None:
    rtol = r2
  floor = max(floor, f2)
  return rtol, atol, floor, f"yours is {a_dtype}, the reference {r_dtype} (compared at rtol={rtol:g})"


def _make_fused(derivation, split, holder_ref, tol, user_rtol, params_is_map):
  """The derivation and its comparison with the reference, in one jitted function.

  The reference itself is compiled separately (and shared by every
  derivation checked against the same loss).
  """
  holder = _check_ref.Holder()
  holder.plan = None
  holder.deriv_failed = False
  split = split.structure()

  def fused(params, dyn, grads):
    args, kwargs = split.rebuild(dyn)
    try:
      result = derivation(params, *args, **kwargs)
      plan = _Plan(result, holder_ref.order, holder_ref.specs, _leaf_paths(params),
                   params if params_is_map else None)
    except Exception:  # pylint: disable=broad-except
      holder.deriv_failed = True    # rerun eagerly to see what it really does
      return None, None
    users = [a for _, _, a in plan.pairs]
    todo = []
    for _, _, k, a in plan.comparable():
      r = _ref_of(grads, k)
      rt, at, fl, _ = _row_tol(a.dtype, r.dtype, tol, user_rtol)
      todo.append((a, r, rt, at, fl))
    stats = _diagnose.stats_many(todo)
    plan.pairs = [(i, k, None) for i, k, _ in plan.pairs]   # keep no tracers
    holder.plan = plan
    return users, stats

  return jax.jit(fused), holder


def _run_derivation_eager(derivation, params, split):
  try:
    args, kwargs = split.rebuild(split.dyn)
    return derivation(params, *args, **kwargs), None
  except Exception as e:  # pylint: disable=broad-except
    return None, _describe_exc(e, "the derivation")


def check(derivation: Callable, loss: Callable, params: Any, *args,
          rtol: float | None = None, atol: float | None = None,
          referee: int = 2, max_probes: int = 16, max_probes_total: int = 64,
          jit: bool = True, seed: int = 0, **kwargs) -> Report:
  """Checks a hand derivation of ``∂loss/∂params`` (and its steps) against autodiff.

  Args:
    derivation: ``derivation(params, *args, **kwargs)`` returning either a
      pytree shaped like ``params`` (the gradient), or a dict of steps whose
      keys are tap names (``∂L/∂(tapped quantity)``) and/or ``"params"``.
    loss: ``loss(params, *args, **kwargs)`` returning a scalar; may mark
      intermediate quantities with :func:`jaxreg.tap`.
    params: a pytree of floating-point arrays.
    *args: further arguments of both functions (data, targets, …).
    rtol: relative tolerance; default by dtype (float64 ``1e-10``, float32 ``1e-4``).
    atol: absolute tolerance; default 0.
    referee: number of random directions for the finite-difference referee
      of the reference gradient (0 to skip).
    max_probes: most elements of one row probed for kinks.
    max_probes_total: most elements probed for kinks in one check.
    jit: compile the derivation together with the comparison, and cache
      compiled functions per (function, argument shapes) — the derivation runs
      eagerly when it cannot be traced. ``False`` runs the derivation eagerly
      and caches nothing (the reference is still compiled, afresh); use it for
      functions that read mutable globals.
    seed: seed of the referee's random directions.
    **kwargs: keyword arguments of both functions.

  Returns:
    A :class:`jaxreg.Report`. Problems with the derivation (it raises, returns
    NaN, the wrong structure, shape or dtype) are rows or ``report.error``,
    never an exception. Problems with ``loss`` or ``params`` raise ``ValueError``
    or ``TypeError`` naming the argument.

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
  p_paths = _leaf_paths(params)
  if not p_paths:
    raise ValueError("check: `params` has no array leaves; nothing to differentiate.")
  for name, x in p_paths:
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
      raise TypeError(f"check: `params` leaf {name} must be a floating-point array, "
                      f"got dtype {jnp.result_type(x)}.")
  if not all(isinstance(x, jax.Array) for _, x in p_paths):
    params = jax.tree_util.tree_map(jnp.asarray, params)
    p_paths = _leaf_paths(params)
  split = _check_ref.Split(args, kwargs)
  ref_dtype = jnp.result_type(*[x for _, x in p_paths])
  tol = _tol(ref_dtype, rtol, atol)
  n_dirs = int(referee)
  rkey = np.uint32(seed)
  params_is_map = isinstance(params, Mapping)

  # 1. Reference (jitted and cached per loss and argument shapes).
  eager = False
  try:
    ref, holder = _check_ref.compute_reference(loss, split, n_dirs, params, rkey)
  except _check_ref.TRACE_ERRORS:
    ref_fn, holder = _check_ref.make_reference(loss, split, n_dirs, True, jit=False)
    try:
      ref = ref_fn(params, split.dyn, rkey)
    except _check_ref.TRACE_ERRORS as e:
      raise TypeError(
          "check: jax.grad cannot differentiate `loss`: it needs concrete values (float(), "
          "int(), .item() or NumPy on a traced array), which autodiff does not provide. "
          f"Write it with jnp operations. JAX said: {str(e).splitlines()[0]}") from e
    eager = True
  order, specs = list(holder.order), dict(holder.specs)
  grads = {"g_params": ref["g_params"], "g_taps": ref["g_taps"]}

  # 2. Derivation and comparison (jitted and cached when traceable).
  users = stats = plan = None
  if jit and not eager:
    try:
      dfn, dsplit, dkey = _check_ref.trace_derivation(derivation, params, split)
      key = ("derivation", dkey, tol, rtol, tuple((n, specs[n].shape, specs[n].dtype)
                                                  for n in order))
      fn, dholder = _check_ref.cached(key, lambda: _make_fused(
          dfn, dsplit, holder, tol, rtol, params_is_map))
      users, stats = fn(params, dsplit.dyn, grads)
      plan = None if dholder.deriv_failed else dholder.plan
    except Exception:  # pylint: disable=broad-except
      plan = None
  report = Report(rows=[], rtol=tol[0], atol=tol[1], dtype=str(jnp.dtype(ref_dtype)))
  report.referee = _judge_referee(ref.get("referee"), ref_dtype) if n_dirs > 0 else None
  loss_value = float(ref["loss"])
  if not math.isfinite(loss_value):
    report.notes.append(f"the loss itself is {loss_value} at these params and arguments, so "
                        "its gradient and finite differences mean little")
  if plan is None:
    result, err = _run_derivation_eager(derivation, params, split)
    if err is not None:
      report.error = err
      report.summary = "The derivation could not be run, so nothing was checked: " + err + "."
      return report
    plan = _Plan(result, order, specs, p_paths, params if params_is_map else None)
    users = [a for _, _, a in plan.pairs]
    stats = None

  # 3. Rows from the plan (a fresh copy: the plan may be cached).
  rows = [dataclasses.replace(r) for r in plan.rows]
  report.unchecked = list(plan.unchecked)
  report.notes = list(plan.notes) + report.notes
  comp = []
  for pos, i, k, _ in plan.comparable():
    a = users[pos]
    r = _ref_of(ref, k)
    rt, at, fl, note = _row_tol(a.dtype, r.dtype, tol, rtol)
    if note:
      rows[i].note = note
    extra = {"tap": k[1]} if k[0] == "tap" else {"theta": p_paths[k[1]][1]}
    comp.append((rows[i], a, r, rt, at, fl, extra))
  for pos, (i, k, _) in enumerate(plan.pairs):
    row = rows[i]
    a = users[pos]
    if row.verdict == "shape" and a is not None and a.ndim == 2 and \
        tuple(a.shape[::-1]) == tuple(_ref_of(ref, k).shape):
      tr = _diagnose.is_transpose(a, _ref_of(ref, k), *tol)
      row.diagnosis = "yours is the transpose of the reference" + (
          ": a transposed or swapped matrix" if tr else " in shape (values differ too)")
  stats_any = stats is not None
  if stats is None:
    with np.errstate(all="ignore"):
      stats = [_diagnose.stats(np, np.asarray(a), np.asarray(r), rt, at, fl)
               for _, a, r, rt, at, fl, _ in comp]
  stats = np.asarray(jax.device_get(stats), np.float64).reshape(len(comp), 5)

  # 4. Verdicts from the one-pass statistics.
  for (row, a, r, rt, at, fl, extra), st in zip(comp, stats):
    e_max, rel_max, n_mis, r_nonfinite, u_nonfinite = (float(v) for v in st)
    row.max_abs_err, row.max_rel_err = float(e_max), float(rel_max)
    row.n_mismatch = int(n_mis)
    if row.n_mismatch and stats_any:   # the jitted pass says only whether any: count here
      row.n_mismatch = _diagnose.count_mismatches(a, r, rt, at, fl)
    if r_nonfinite:
      row.note = "the reference itself is not finite here"
    if u_nonfinite:
      extra["nonfinite"] = True
    if row.n_mismatch:
      row.verdict = "wrong"
      worst, row.worst_user, row.worst_ref = _diagnose.worst(a, r, rt, at, fl)
      row.worst_index = tuple(int(j) for j in np.unravel_index(worst, r.shape))
      extra["candidates"] = _diagnose.candidates(np.asarray(a), np.asarray(r), rt, at, fl,
                                                 max(1, int(max_probes)))

  # 5. Kinks.
  _probe_kinks(comp, loss, params, split, ref, specs, p_paths, eager, ref_dtype,
               max_probes_total)

  # 6. Diagnosis of rows still wrong.
  batch_sizes = sorted({int(np.shape(x)[0]) for x in split.dyn if np.ndim(x) >= 1})
  for row, a, r, rt, at, fl, extra in comp:
    if row.verdict != "wrong":
      continue
    pats = []
    if "tap" in extra:
      own = extra["tap"]
      cand = [own] + [n for n in order if n != own]
      pats = [(n, ref["tapped"][n]) for n in cand
              if n in ref["tapped"] and tuple(np.shape(ref["tapped"][n])) == tuple(r.shape)]
    try:
      row.diagnosis = _diagnose.diagnose(
          a, r, rt, at, fl, patterns=pats, theta=extra.get("theta"),
          theta_name=row.name, batch_sizes=batch_sizes)
    except Exception as e:  # pylint: disable=broad-except
      row.note = (row.note + "; " if row.note else "") + f"diagnosis failed: {e}"
    if extra.get("nonfinite"):
      row.note = (row.note + "; " if row.note else "") + "yours contains NaN or inf"
  report.rows = rows
  report.summary = _localise(rows, report)
  return report


def _probe_kinks(comp, loss, params, split, ref, specs, p_paths, eager, dtype, cap_total):
  """Reclassifies wrong rows whose mismatches are all at kinks (valid subgradients)."""
  todo = [(row, a, r, rt, at, fl, extra) for row, a, r, rt, at, fl, extra in comp
          if row.verdict == "wrong" and extra.get("candidates")]
  if not todo:
    return
  tap_names = list(specs)
  p_index = {name: i for i, (name, _) in enumerate(p_paths)}
  which, idx, hs, owners = [], [], [], []
  eps_rel = float(jnp.finfo(dtype).eps)
  delta = 1e-6 if dtype == jnp.float64 else 3e-3
  for row, a, r, rt, at, fl, extra in todo:
    if "tap" in extra:
      q = len(p_paths) + tap_names.index(extra["tap"])
      base_vals = np.asarray(ref["tapped"][extra["tap"]]).ravel()
    else:
      q = p_index[row.name]
      base_vals = np.asarray(extra["theta"]).ravel()
    scale = float(np.mean(np.abs(base_vals))) if base_vals.size else 1.0
    for i in extra["candidates"]:
      if len(which) >= cap_total:
        break
      which.append(q)
      idx.append(i)
      hs.append(delta * max(abs(float(base_vals[i])), scale, 1e-3))
      owners.append(row.name)
  if not which:
    return
  leaves, treedef = jax.tree_util.tree_flatten(params)
  eps0 = {name: jnp.zeros(s.shape, s.dtype) for name, s in specs.items()}
  fn = _check_ref.make_loss_eps(loss, split, eager, params)
  host: dict[int, np.ndarray] = {}

  def losses_at(q, i, h):
    """``L(θ ± h e_i)``, ``L(θ ± 2h e_i)`` along element ``i`` of quantity ``q``."""
    out = []
    for step in (1.0, -1.0, 2.0, -2.0):
      if q < len(leaves):
        if q not in host:
          host[q] = np.asarray(leaves[q])
        x = host[q].copy()
        x.flat[i] += step * h
        moved = list(leaves)
        moved[q] = jnp.asarray(x)
        out.append(fn(jax.tree_util.tree_unflatten(treedef, moved), split.dyn, eps0))
      else:
        name = tap_names[q - len(leaves)]
        z = np.zeros(specs[name].shape, specs[name].dtype)
        z.flat[i] = step * h
        out.append(fn(params, split.dyn, {**eps0, name: jnp.asarray(z)}))
    return out

  try:
    base = float(fn(params, split.dyn, eps0))
  except Exception as e:  # pylint: disable=broad-except
    for row, *_ in todo:
      row.note = (row.note + "; " if row.note else "") + f"kink probe failed: {e}"
    return
  h_a = np.array(hs, np.float64)
  n = len(which)
  vals = np.full((n, 4), np.nan)
  fwd = np.full(n, np.nan)
  bwd = np.full(n, np.nan)
  margin = np.full(n, np.nan)

  def probe(k):
    vals[k] = np.asarray(jax.device_get(losses_at(which[k], idx[k], hs[k])), np.float64)
    f, b, m = _check_ref.one_sided(base, vals[k:k + 1], h_a[k:k + 1], eps_rel)
    fwd[k], bwd[k], margin[k] = f[0], b[0], m[0]

  by_row: dict[str, list[bool]] = {}
  for k in range(n):
    by_row.setdefault(owners[k], []).append(k)
  for row, a, r, rt, at, fl, extra in todo:
    ks = by_row.get(row.name, [])
    if not ks:
      row.note = (row.note + "; " if row.note else "") + "not probed for kinks (probe cap reached)"
      continue
    a_flat, r_flat = np.asarray(a).ravel(), np.asarray(r).ravel()
    r_scale = float(np.max(np.abs(r_flat))) if r_flat.size else 0.0
    all_kink = True
    for k in ks:
      probe(k)
      i = idx[k]
      u_i, r_i = float(a_flat[i]), float(r_flat[i])
      tol = at + rt * max(abs(r_i), fl * r_scale)
      lo, hi = min(fwd[k], bwd[k]), max(fwd[k], bwd[k])
      m = margin[k] + tol
      is_kink = hi - lo > 4 * m
      if not (is_kink and lo - m <= u_i <= hi + m):
        all_kink = False
        at_ = ("element " + str([int(j) for j in np.unravel_index(i, r.shape)])) if r.ndim else \
            "this scalar"
        if is_kink:
          why = (f"at {at_} there is a kink (one-sided derivatives {fwd[k]:.6g} (+) and "
                 f"{bwd[k]:.6g} (−)) but yours, {u_i:.6g}, is not between them")
        else:
          why = (f"not a kink: at {at_} both one-sided derivatives are "
                 f"{fwd[k]:.6g} (+) and {bwd[k]:.6g} (−)")
        break
    if all_kink:
      row.verdict = "kink"
      row.n_kink = row.n_mismatch
      if len(ks) < row.n_mismatch:
        row.note = (row.note + "; " if row.note else "") + (
            f"{len(ks)} of the {row.n_mismatch} mismatching elements probed (cap); all are "
            "kinks where yours is a valid one-sided (sub)gradient")
      else:
        row.note = (row.note + "; " if row.note else "") + (
            f"{row.n_kink} element(s) at kinks: yours lies between the one-sided derivatives "
            "there (another valid convention), autodiff took another")
    else:
      row.note = (row.note + "; " if row.note else "") + why


def _judge_referee(raw, dtype) -> Referee:
  with np.errstate(all="ignore"):
    return _judge_referee_np(raw, dtype)


def _judge_referee_np(raw, dtype) -> Referee:
  if raw is None:
    return Referee("skipped", 0, None, "no referee requested")
  raw = np.asarray(jax.device_get(raw), np.float64)   # packed by _check_ref._referee
  n_dirs = (raw.size - 4) // 5
  vals = raw[:4 * n_dirs].reshape(n_dirs, 4)
  dots = raw[4 * n_dirs:5 * n_dirs]
  h, g_norm, size, base = (float(v) for v in raw[5 * n_dirs:])
  eps = float(jnp.finfo(dtype).eps)
  tol = 1e-6 if dtype == jnp.float64 else 3e-2
  lp1, lm1, lp2, lm2 = vals[:, 0], vals[:, 1], vals[:, 2], vals[:, 3]
  c1 = (lp1 - lm1) / (2 * h)
  c2 = (lp2 - lm2) / (4 * h)
  fwd, bwd, margin = _check_ref.one_sided(base, vals, h, eps)
  noise = 8 * eps * (abs(base) + np.abs(lp2) + np.abs(lm2)) / h
  scale = np.maximum(np.abs(dots), g_norm / math.sqrt(max(size, 1)))
  scale = np.where(scale > 0, scale, 1.0)
  rel = np.abs(c1 - dots) / scale
  slack = (np.abs(c1 - c2) + noise) / scale
  verdicts = []
  for j in range(len(dots)):
    if not (np.isfinite(c1[j]) and np.isfinite(dots[j])):
      verdicts.append("wrong")
    elif rel[j] <= tol + 4 * slack[j]:
      verdicts.append("ok")
    else:
      # A direction that straddles a kink (the one-sided differences jump by far more
      # than their error) cannot referee autodiff: its conventions at kinks compose
      # (relu'(0) = 0 with abs'(0) = 1, say) into values that need not lie between.
      lo, hi = min(fwd[j], bwd[j]), max(fwd[j], bwd[j])
      verdicts.append("kink" if hi - lo > 4 * margin[j] else "wrong")
  worst = float(np.max(rel)) if rel.size else None
  if "wrong" in verdicts:
    j = verdicts.index("wrong")
    return Referee("wrong", len(dots), worst,
                   f"along direction {j} autodiff gives {dots[j]:.6g} but central differences of "
                   f"the loss give {c1[j]:.6g}: jax.grad of this loss is itself wrong (a custom_vjp "
                   "or stop_gradient?), so the rows compare against a wrong reference")
  if "kink" in verdicts:
    return Referee("kink", len(dots), worst,
                   "a direction straddles a kink (the one-sided differences jump), so there the "
                   "referee cannot judge autodiff; no direction found it wrong")
  return Referee("ok", len(dots), worst, "")


def _d(name: str) -> str:
  return f"∂L/∂{name}"


def _localise(rows: list[Row], report: Report) -> str:
  """One plain sentence naming where the derivation first breaks."""
  bad = [i for i, r in enumerate(rows) if r.verdict in BAD]
  ref_bad = report.referee is not None and report.referee.verdict == "wrong"
  prefix = ("Warning: the referee finds jax.grad of your loss disagrees with finite differences, "
            "so the reference itself is suspect. ") if ref_bad else ""
  if not bad:
    if not rows:
      return prefix + "Nothing was compared."
    n_k = sum(r.n_kink for r in rows)
    s = f"All {len(rows)} quantities agree with autodiff"
    if n_k:
      s += (f"; {n_k} element(s) differ only at kinks, where yours is a valid subgradient "
            "(another convention at a non-differentiable point)")
    return prefix + s + "."
  i = bad[0]
  r = rows[i]
  problem = {"wrong": "is wrong", "shape": "has the wrong shape or type",
             "missing": "is missing"}[r.verdict]
  diag = f" ({r.diagnosis})" if r.diagnosis and r.verdict == "wrong" else ""
  taps_before = [x for x in rows[:i] if x.kind == "tap"]
  if r.kind == "tap" and r.verdict == "missing" and r.shape is None:
    return prefix + f"{_d(r.name)} is given but the loss never taps {r.name!r}."
  if r.kind == "tap":
    if not taps_before:
      return prefix + (f"{_d(r.name)} {problem}{diag}: the very first step, the derivative of the "
                       f"loss with respect to {r.name}, is where the derivation breaks.")
    agree = _join([_d(x.name) for x in taps_before])
    verb = "agrees" if len(taps_before) == 1 else "agree"
    prev = taps_before[-1].name
    return prefix + (f"{agree} {verb} with autodiff; {_d(r.name)} {problem}{diag}, so the factor "
                     f"∂{prev}/∂{r.name} between them is where the derivation breaks.")
  tap_rows = [x for x in rows if x.kind == "tap"]
  others = [x.name for x in rows[i + 1:] if x.verdict in BAD]
  more = f" (also: {', '.join(others)})" if others else ""
  if not tap_rows:
    return prefix + (f"{_d(r.name)} {problem}{diag}{more}. No intermediate steps were given, so "
                     "the error cannot be placed more precisely: tap the intermediate quantities "
                     "in the loss (jaxreg.tap) and return their gradients to find the first "
                     "wrong step.")
  lead = f"Every tapped quantity ({_join([_d(x.name) for x in tap_rows])}) agrees with autodiff"
  return prefix + (f"{lead}; {_d(r.name)} {problem}{diag}{more}, so the last step — from the "
                   f"quantities upstream to {r.name} (its local derivative, or a penalty term on "
                   "it) — is where the derivation breaks.")


def _join(items: list[str]) -> str:
  if len(items) <= 1:
    return "".join(items)
  return ", ".join(items[:-1]) + " and " + items[-1]
