"""`check_update`: one parameter-update rule equals another.

A rule is either an ``optax.GradientTransformation`` (applied as
``updates, state = tx.update(grads, state, params)`` then
``optax.apply_updates``) or a plain function ``(params, grads) -> new_params``.
Both rules are applied ``steps`` times to the same ``params`` with the same
``grads``, and the resulting parameters are compared leaf by leaf with the
tolerances of :func:`jaxreg.check`.

Kinks: an update that involves ``sgn(w)`` (L1) has a convention at ``w = 0``
(S2.3 takes ``sgn(0) = 0``; ``jax.grad(jnp.abs)(0.) = 1``). With
``kink_at_zero=True`` (the default) mismatches only at parameters that are
exactly 0 are verdict ``kink``, not ``wrong``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg._checker import tolerance as _tolerance
from jaxreg._checker.compare import Comparison, scale_np
from jaxreg._checker.plan import leaf_paths as _leaf_paths
from jaxreg._checker.report import BAD, Report, Row
from jaxreg._checker.usercode import describe_exc


def _apply(rule, params, grads, steps):
  if isinstance(rule, optax.GradientTransformation):
    state = rule.init(params)
    for _ in range(steps):
      updates, state = rule.update(grads, state, params)
      params = optax.apply_updates(params, updates)
    return params
  for _ in range(steps):
    params = rule(params, grads)
  return params


def _fit(a, b):
  bb = float(np.sum(b * b))
  if bb == 0:
    return 0.0, np.inf
  c = float(np.sum(a * b)) / bb
  na = float(np.sqrt(np.sum(a * a)))
  res = float(np.sqrt(np.sum((a - c * b) ** 2))) / max(na, 1e-300)
  return c, res


def _diagnose_update(new_u, new_r, theta, grad) -> str | None:
  d = new_u - new_r
  step_u, step_r = new_u - theta, new_r - theta
  c, res = _fit(step_u, step_r)
  if res < 1e-6 and c != 1:
    if abs(c + 1) < 1e-6:
      return "the step is −1 × the reference's step: a sign error (ascent instead of descent?)"
    return f"the step is {c:.6g} × the reference's step: a learning-rate or 1/m factor slip"
  for name, basis in (("w", theta), ("sgn(w)", np.sign(theta)), ("the gradient", grad)):
    c, res = _fit(d, basis)
    if res < 1e-6 and c != 0:
      what = {"w": "a weight-decay factor slip (e.g. (1 − ηλ/n)·w vs (1 − ηλ)·w, or decay on a "
                   "leaf that should not decay)",
              "sgn(w)": "an L1 step slip (ηλ/n·sgn(w) scaled or missing)",
              "the gradient": "a learning-rate slip (η vs η/m)"}[name]
      return f"yours − reference = {c:.6g} · {name}: {what}"
  return None


def check_update(rule: Any, reference: Any, params: Any, grads: Any, *, steps: int = 1,
                 rtol: float | None = None, atol: float | None = None,
                 kink_at_zero: bool = True, names: tuple[str, str] = ("rule", "reference")) -> Report:
  """Checks that update ``rule`` gives the same new parameters as ``reference``.

  Args:
    rule: an ``optax.GradientTransformation`` or ``(params, grads) -> new_params``.
    reference: likewise, the rule trusted to be right.
    params: a pytree of float arrays.
    grads: a pytree of the same structure (e.g. the minibatch-mean gradient).
    steps: how many times to apply each rule (states carry between steps).
    rtol, atol: tolerances; default by dtype as in :func:`jaxreg.check`.
    kink_at_zero: mismatches only where the parameter is exactly 0 are
      ``kink`` (the ``sgn(0)`` convention), not ``wrong``.
    names: how the two rules are called in the report.

  Returns:
    A :class:`jaxreg.Report`, one row per parameter leaf.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> import jaxreg
    >>> eta, lam, n = 0.1, 5.0, 1000
    >>> def nielsen(p, g):        # S2.2, biases not decayed
    ...   return {"w": (1 - eta * lam / n) * p["w"] - eta * g["w"], "b": p["b"] - eta * g["b"]}
    >>> mask = {"w": True, "b": False}
    >>> tx = optax.chain(optax.add_decayed_weights(lam / n, mask), optax.sgd(eta))
    >>> p = {"w": jnp.array([1.0, -2.0]), "b": jnp.array([0.5])}
    >>> g = {"w": jnp.array([0.3, 0.1]), "b": jnp.array([-0.2])}
    >>> jaxreg.check_update(nielsen, tx, p, g).ok
    True
  """
  for nm, r in (("rule", rule), ("reference", reference)):
    if not (isinstance(r, optax.GradientTransformation) or callable(r)):
      raise TypeError(f"check_update: `{nm}` must be an optax.GradientTransformation or a "
                      f"function (params, grads) -> new_params, got {type(r).__name__}.")
  if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(grads):
    raise ValueError(
        "check_update: `grads` must have the structure of `params`; got "
        f"{jax.tree_util.tree_structure(grads)} for params {jax.tree_util.tree_structure(params)}.")
  p_paths = _leaf_paths(params)
  dtype = jnp.result_type(*[x for _, x in p_paths])
  tol = _tolerance.resolve(dtype, rtol, atol, "check_update")
  un, rn = names
  report = Report(rows=[], title=f"jaxreg.check_update({un} vs {rn})", rtol=tol.rtol, atol=tol.atol,
                  dtype=str(jnp.dtype(dtype)))
  outs = []
  for nm, r in ((un, rule), (rn, reference)):
    try:
      outs.append(_apply(r, params, grads, int(steps)))
    except Exception as e:  # pylint: disable=broad-except  # user code: reported
      report.error = describe_exc(e, f"`{nm}`")
      report.summary = f"{report.error}, so the update rules could not be compared."
      return report
  u_flat, r_flat = dict(_leaf_paths(outs[0])), dict(_leaf_paths(outs[1]))
  g_flat = dict(_leaf_paths(grads))
  for name, theta in p_paths:
    row = Row(name, "param", f"new {name}", tuple(np.shape(theta)), "ok", size=int(np.size(theta)))
    report.rows.append(row)
    if name not in u_flat or name not in r_flat:
      row.verdict = "missing"
      row.note = f"{un if name not in u_flat else rn} returns no leaf here"
      continue
    u = np.asarray(u_flat[name], np.float64)
    r = np.asarray(r_flat[name], np.float64)
    if u.shape != r.shape:
      row.verdict = "shape"
      row.note = f"{un} gives shape {u.shape}, {rn} {r.shape}"
      continue
    th = np.asarray(theta, np.float64)
    # Judge the change of the parameter, not its size: each element against its step too.
    comp = Comparison.of(u, r, tol, scale_np([r]), mag=np.maximum(np.abs(r), np.abs(r - th)))
    row.max_abs_err = float(np.max(comp.err, initial=0))
    row.max_rel_err = float(np.max(comp.rel, initial=0))
    row.n_mismatch = comp.count
    mism = comp.mismatch.reshape(r.shape)
    rel = comp.rel.reshape(r.shape)
    if not row.n_mismatch:
      continue
    w = int(np.argmax(np.where(mism, rel, -1)))
    row.worst_index = tuple(int(i) for i in np.unravel_index(w, r.shape))
    row.worst_user, row.worst_ref = float(u.ravel()[w]), float(r.ravel()[w])
    if kink_at_zero and np.all(th[mism] == 0):
      row.verdict = "kink"
      row.n_kink = row.n_mismatch
      row.note = (f"{row.n_kink} element(s) differ only where the parameter is exactly 0 "
                  "(the sgn(0) convention at |w|'s kink)")
      continue
    row.verdict = "wrong"
    row.diagnosis = _diagnose_update(u, r, th, np.asarray(g_flat[name], np.float64))
  bad = [r for r in report.rows if r.verdict in BAD]
  if not bad:
    n_k = sum(r.n_kink for r in report.rows)
    report.summary = (f"{un} and {rn} give the same parameters after {steps} step(s)"
                      + (f", except at {n_k} parameter(s) exactly 0 (sgn(0) convention)" if n_k else "")
                      + ".")
  else:
    b = bad[0]
    report.summary = (f"{un} and {rn} differ first at {b.name}" + (f" ({b.diagnosis})" if b.diagnosis else "")
                      + (f"; also at {', '.join(r.name for r in bad[1:])}" if len(bad) > 1 else "") + ".")
  return report
