"""Which wrong rows are wrong on their own, not only by inheriting an error downstream.

Once one step of a derivation is wrong, every quantity computed from it is
wrong too. A later wrong row ``t`` is *inherited* when the true backward step
from a tapped quantity ``d`` downstream, applied to the user's own ``∂L/∂d``,
gives the user's ``∂L/∂t``: the user's step is right, their input was not.
It is *independent* ("also wrong") when that step is wrong as well.

The step is the vector-Jacobian product of ``d`` (as the loss computes it)
with respect to ``t``: ``vjp_d(g)[t]``. It stands for the whole path from
``t`` to the loss only when ``vjp_d(∂L/∂d)[t] = ∂L/∂t`` for the reference
(no other path, such as a penalty term, bypasses ``d``); the nearest ``d``
downstream for which that holds is used. A wrong parameter row under taps
that all agree is independent.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._checker.compare import Comparison
from jaxreg._checker.kinks import Judged
from jaxreg._checker.report import BAD


def independent(judged: list[Judged], first_bad: str | None, probe_fn: Callable, params, dyn,
                specs: dict, scale: float) -> list[Judged]:
  """The wrong rows after the first bad one whose own step is wrong.

  Args:
    judged: the compared rows in backprop order.
    first_bad: name of the report's first bad row (never listed).
    probe_fn: ``f(params, dyn, eps) -> (loss, {tap: value})``.
    params, dyn: the point of the check.
    specs: ``{tap name: ShapeDtypeStruct}``.
    scale: the computation's scale.
  """
  wrong = [j for j in judged if j.row.verdict == "wrong" and j.row.name != first_bad]
  if not wrong:
    return []
  eps0 = {name: jnp.zeros(s.shape, s.dtype) for name, s in specs.items()}
  pullbacks: dict[str, Callable] = {}

  def pullback(name):
    if name not in pullbacks:
      _, pullbacks[name] = jax.vjp(lambda p, e: probe_fn(p, dyn, e)[1][name], params, eps0)
    return pullbacks[name]

  def part(grads, j: Judged):
    g_params, g_eps = grads
    if j.slot.key.kind == "tap":
      return g_eps[j.slot.key.name]
    return jax.tree_util.tree_leaves(g_params)[j.slot.key.index]

  out = []
  for t in wrong:
    me = judged.index(t)
    if t.slot.key.kind == "tap":
      downstream = [d for d in reversed(judged[:me]) if d.slot.key.kind == "tap"]
    else:
      downstream = [d for d in reversed(judged) if d.slot.key.kind == "tap"]
    if t.slot.key.kind == "param" and all(d.row.verdict not in BAD for d in downstream):
      out.append(t)
      continue
    for d in downstream:
      vjp = pullback(d.slot.key.name)
      dt = specs[d.slot.key.name].dtype
      ref_step = part(vjp(jnp.asarray(d.ref, dt)), t)
      if Comparison.of(ref_step, t.ref, t.tol, scale).count:
        continue                  # another path from t to the loss bypasses d
      user_step = part(vjp(jnp.asarray(d.user, dt)), t)
      if Comparison.of(t.user, np.asarray(user_step), t.tol, scale).count:
        out.append(t)
      break
  return out
