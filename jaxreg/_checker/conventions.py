"""Composite kinks with no tap downstream: the loss's own kink sites, each at a valid convention.

A derivation that returns only the parameter gradient (or a parameter row
with no tapped quantity downstream of it) gives :mod:`~jaxreg._checker.kinks`
nothing to compose conventions through. There the loss's traced program
itself says where its kinks are:

* **Kink sites** are the equations of the program whose derivative is not
  unique where their operands tie: ``max``/``min`` (``jnp.maximum``,
  ``jax.nn.relu``, ``jnp.clip``, a hinge), ``abs``, and ``select_n`` (``jnp.where``)
  whose predicate is an ordered comparison (``<``, ``<=``, ``>``, ``>=``) that
  ties, with both branches equal there. A function with a custom derivative
  is seen through when its own program is piecewise linear (``relu``,
  ``relu6``); any other (``logaddexp``, ``softplus``, …) is smooth and kept
  as it is. Kinks inside ``lax.scan``/``while_loop``/``cond`` bodies are not
  modelled: there nothing changes (the row stays as the probes judged it).
* **Ties.** The program is evaluated at the check's point; an element of a
  site is *active* when its operands tie exactly and moving the parameters
  moves the tie (a forward derivative along a random direction is not 0 there
  — a tie of data alone is no kink of the loss in the parameters).
* **Conventions.** Each active element takes, as a hand derivation may, any
  value between its two pieces' derivatives: weight ``w ∈ [0, 1]`` on the
  second piece. The program is evaluated with ``out + (mix − (out − sg(out)))``
  at active elements, ``mix = w·(p₁ − sg(p₁)) + (1 − w)·(p₀ − sg(p₀))``
  (``sg`` = ``stop_gradient``): every added term is exactly 0 in value, so
  the values — and every tie downstream — are unchanged, and ``jax.grad``
  carries ``w``'s convention. A gradient element is multilinear in the
  weights, so the values it takes over all conventions form an interval whose
  ends are vertex values (every ``w`` 0 or 1).
* **Decision** for one mismatching parameter element with the user's value
  ``u`` and autodiff's ``r`` (one valid combination itself): the kinks that
  matter are those whose weight moves the element (its derivative with
  respect to the weights at a random interior point, not 0). Up to
  :data:`EXHAUSTIVE` of them every vertex is evaluated; beyond, a greedy
  search flips one weight at a time (exact: the element is linear in each
  weight) towards ``u``. When some combination reaches ``u`` from ``r``'s
  side, ``u`` is a combination of valid conventions (between two achieved
  values): a composite kink. When the vertices, all evaluated, do not
  reach it, it is wrong; when a search did not, it is wrong and the note
  says the search was not exhaustive.

Parameter elements are judged one at a time: two elements are not required to
take the same convention at a kink they share.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

from jaxreg._checker import program_cache as _program_cache
from jaxreg._checker.reference import Static as _Static
from jaxreg._checker.reference import hash_u32 as _hash_u32
from jaxreg._checker import tap as _tap

EXHAUSTIVE = 12                  # kinks up to which every combination is evaluated
_MAX_VERTEX_ELEMENTS = 4e7       # vertices × parameters evaluated exhaustively, at most
_BATCH_ELEMENTS = 2e7            # parameters × vertices in flight in one batch

_INLINED = _tap._INLINED     # call-like primitives evaluated inline, as the taps are
_ORDERED = frozenset({"lt", "le", "gt", "ge"})
# What a custom-derivative function's own program may hold to be seen through: kink
# primitives and linear or structural operations only (so its autodiff is its derivative).
_PIECEWISE_LINEAR = frozenset({
    "max", "min", "abs", "select_n", "lt", "le", "gt", "ge", "eq", "ne", "not", "and", "or",
    "convert_element_type", "broadcast_in_dim", "reshape", "squeeze", "expand_dims", "neg",
    "add", "sub", "mul", "copy", "copy_p", *_INLINED})


class Site(NamedTuple):
  """A kink site of the loss's program.

  Attributes:
    prim: ``"max"``, ``"min"``, ``"abs"`` or ``"select_n"``.
    fn: the named function it sits in (``"relu"``, ``"leaky_relu"``, ``"clip"``), or ``""``.
    where: the user's source line of the equation (``"file.py:12 (loss)"``), or ``""``.
    shape: the shape of its output.
    offset: its first element in the flat vectors of weights and ties.
    choice: how its two conventions (weight 0 and 1) read.
  """

  prim: str
  fn: str
  where: str
  shape: tuple
  offset: int
  choice: str

  @property
  def size(self) -> int:
    return int(np.prod(self.shape, dtype=np.int64))


def _where(eqn) -> str:
  try:
    from jax._src import source_info_util  # pylint: disable=import-outside-toplevel
    s = source_info_util.summarize(eqn.source_info)
  except (ImportError, AttributeError):
    return ""
  head, _, tail = s.partition(":")
  return os.path.basename(head) + (":" + tail if tail else "")


def _literal(v) -> str | None:
  if isinstance(v, jex_core.Literal) and np.ndim(v.val) == 0:
    return f"{float(v.val):g}"
  return None


def _choice(eqn) -> str:
  """How a site's two conventions read: ``"max(·, 0)′ = 1 or 0"``, ``"|·|′(0) = +1 or −1"``."""
  prim = eqn.primitive.name
  if prim in ("max", "min"):
    a, b = (_literal(v) for v in eqn.invars)
    if b is not None:
      return f"{prim}(·, {b})′ = 1 or 0"
    if a is not None:
      return f"{prim}({a}, ·)′ = 0 or 1"
    return "the derivative of its first or of its second operand"
  if prim == "abs":
    return "|·|′(0) = +1 or −1"
  return "the derivative of its False or of its True branch"


def _piecewise_linear(jaxpr) -> bool:
  for eqn in jaxpr.eqns:
    if eqn.primitive.name not in _PIECEWISE_LINEAR and eqn.primitive is not _tap.tap_p:
      return False
    for v in eqn.params.values():
      for sub, _ in _tap._sub_jaxprs(v):
        if not _piecewise_linear(sub):
          return False
  return True


def _uniform(k: int, size: int, dtype):
  """``size`` numbers in (0.2, 0.8) hashed from their index and ``k`` (generic weights)."""
  i = jnp.arange(size, dtype=jnp.uint32) * jnp.uint32(2654435761) + jnp.uint32(
      (k * 0x9E3779B9 + 0x7F4A7C15) & 0xFFFFFFFF)
  i = _hash_u32(i)
  return (0.2 + 0.6 * (i >> 8).astype(jnp.float32) / float(1 << 24)).astype(dtype)


class _State:
  """What the interpreter does at kink sites: record ties (``weights is None``) or apply weights."""

  def __init__(self, sites: list | None, weights=None, active=None):
    self.record = weights is None
    self.sites = [] if sites is None else sites
    self.build = sites is None
    self.weights, self.active = weights, active
    self.k = 0
    self.offset = 0
    self.gaps: list = []
    self.ties: list = []

  def site(self, eqn, ctx, out, p0, p1, gap, equal=None):
    shape = tuple(np.shape(out))
    k = self.k
    self.k += 1
    if self.build:
      self.sites.append(Site(eqn.primitive.name, ctx[0], _where(eqn) or ctx[1], shape,
                             self.offset, _choice(eqn)))
      self.offset += int(np.prod(shape, dtype=np.int64))
    site = self.sites[k]
    p0, p1 = jnp.broadcast_to(p0, shape), jnp.broadcast_to(p1, shape)
    if self.record:
      gap = jnp.broadcast_to(gap, shape)
      tie = (gap == 0) & jnp.isfinite(p0) & jnp.isfinite(p1)
      if equal is not None:
        tie = tie & jnp.broadcast_to(equal, shape)
      w = _uniform(k, site.size, out.dtype).reshape(shape)
      self.gaps.append(jnp.ravel(gap))
      self.ties.append(jnp.ravel(tie))
      act = tie
    else:
      sl = slice(site.offset, site.offset + site.size)
      w = self.weights[sl].reshape(shape).astype(out.dtype)
      act = self.active[sl].reshape(shape)
    sg = jax.lax.stop_gradient
    mix = w * (p1 - sg(p1)) + (1 - w) * (p0 - sg(p0))
    return jnp.where(act, out + (mix - (out - sg(out))), out)


def _run(jaxpr, consts, args, st: _State, cmps=None, ctx=("", "")) -> list:
  """Evaluates ``jaxpr`` (taps as identities) with its kink sites handled by ``st``.

  ``cmps``: the comparison gaps of boolean arguments; ``ctx``: ``(function name, source
  line)`` of the user's call that this program is inside (for naming sites)."""
  env: dict = {}
  gaps: dict = {}        # boolean variables of ordered comparisons: their operands' difference
  for v, x in zip(jaxpr.constvars, consts):
    env[v] = x
  for k, (v, x) in enumerate(zip(jaxpr.invars, args)):
    env[v] = x
    if cmps is not None and cmps[k] is not None:
      gaps[v] = cmps[k]
  for eqn in jaxpr.eqns:
    invals = [_tap._read(env, v) for v in eqn.invars]
    prim = eqn.primitive
    name = prim.name
    sub = None
    if prim is _tap.tap_p:
      outvals = [invals[0]]
    else:
      if name in _INLINED:
        sub = eqn.params["jaxpr"]
      elif name == "custom_jvp_call" and _piecewise_linear(eqn.params["call_jaxpr"].jaxpr):
        sub = eqn.params["call_jaxpr"]
      if sub is not None:
        sj, sc = (sub.jaxpr, sub.consts) if isinstance(sub, jex_core.ClosedJaxpr) else (sub, ())
        sub_cmps = [None if isinstance(v, jex_core.Literal) else gaps.get(v) for v in eqn.invars]
        fn = str(eqn.params.get("name", ""))
        sub_ctx = (ctx[0] or ("" if fn.startswith("_") else fn), ctx[1] or _where(eqn))
        outvals = _run(sj, sc, invals, st, sub_cmps, sub_ctx)
      else:
        with eqn.ctx.manager:
          out = prim.bind(*invals, **prim.get_bind_params(eqn.params))
        outvals = list(out) if prim.multiple_results else [out]
        outvals = _at_site(eqn, invals, outvals, gaps, st, ctx)
    for v, x in zip(eqn.outvars, outvals):
      env[v] = x
  return [_tap._read(env, v) for v in jaxpr.outvars]


def _floating(x) -> bool:
  return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _at_site(eqn, invals, outvals, gaps, st: _State, ctx) -> list:
  name = eqn.primitive.name
  out = outvals[0]
  if name in _ORDERED and all(_floating(x) for x in invals):
    gaps[eqn.outvars[0]] = invals[0] - invals[1]
  elif name == "not" and not isinstance(eqn.invars[0], jex_core.Literal) and \
      eqn.invars[0] in gaps:
    gaps[eqn.outvars[0]] = gaps[eqn.invars[0]]
  elif name in ("max", "min") and _floating(out):
    a, b = invals
    return [st.site(eqn, ctx, out, a, b, a - b)]
  elif name == "abs" and _floating(out) and _floating(invals[0]):
    x = invals[0]
    return [st.site(eqn, ctx, out, x, -x, x)]
  elif name == "select_n" and len(invals) == 3 and _floating(out) and \
      not isinstance(eqn.invars[0], jex_core.Literal) and eqn.invars[0] in gaps:
    _, c0, c1 = invals
    return [st.site(eqn, ctx, out, c0, c1, gaps[eqn.invars[0]], equal=(c0 == c1))]
  return outvals


def _flat(p, dyn) -> list:
  return jax.tree_util.tree_leaves((p, dyn))


def _record_fn(jaxpr):
  """``record(consts, params, dyn, direction) -> (ties, moved, Static(sites))``: where each
  site's operands tie, the forward derivative of their gap along ``direction`` (with generic
  interior weights at ties upstream), and the sites of this trace."""
  def record(consts, p, dyn, direction):
    def f(q):
      st = _State(None)
      _run(jaxpr, consts, _flat(q, dyn), st)
      gaps = jnp.concatenate(st.gaps) if st.gaps else jnp.zeros((0,))
      ties = jnp.concatenate(st.ties) if st.ties else jnp.zeros((0,), bool)
      return gaps, (ties, _Static(tuple(st.sites)))
    _, moved, (ties, sites) = jax.jvp(f, (p,), (direction,), has_aux=True)
    return ties, moved, sites
  return jax.jit(record)


def _flat_grad_fn(jaxpr, sites: tuple):
  """``g(consts, params, dyn, weights, active)``: ``∂L/∂params`` (flat) with the weights'
  conventions at the active elements of ``sites``."""
  def loss_at(consts, p, dyn, weights, active):
    return _run(jaxpr, consts, _flat(p, dyn), _State(list(sites), weights, active))[0]

  def flat_grad(consts, p, dyn, weights, active):
    grads = jax.grad(loss_at, argnums=1)(consts, p, dyn, weights, active)
    return jnp.concatenate([jnp.ravel(g) for g in jax.tree_util.tree_leaves(grads)])
  return flat_grad


def _element_fn(jaxpr, sites: tuple):
  """``element(..., weights, active, i) -> (g_i, ∂g_i/∂weights)``."""
  flat_grad = _flat_grad_fn(jaxpr, sites)

  def element(consts, p, dyn, weights, active, i):
    return jax.value_and_grad(lambda w: flat_grad(consts, p, dyn, w, active)[i])(weights)
  return jax.jit(element)


def _vertices_fn(jaxpr, sites: tuple, batch: int):
  """``vertices(..., weights, active, i, idx, bits) -> g_i`` with ``weights[idx] = bits[v]``
  for each row ``v`` of ``bits``, ``batch`` rows at a time."""
  flat_grad = _flat_grad_fn(jaxpr, sites)

  def vertices(consts, p, dyn, weights, active, i, idx, bits):
    def one(b):
      return flat_grad(consts, p, dyn, weights.at[idx].set(b.astype(weights.dtype)), active)[i]
    return jax.lax.map(one, bits, batch_size=batch)
  return jax.jit(vertices)


class _Compiled(NamedTuple):
  """The compiled functions of one loss program (cached by its key) and its kink sites."""

  sites: tuple
  element: Any
  vertices: Any          # batch -> compiled vertices function


class Range(NamedTuple):
  """What the conventions give one parameter element.

  Attributes:
    kinks: ``[(site, flat index in the site)]`` of the kinks whose convention moves it.
    lo, hi: the smallest and largest value found (exact ends when ``exhaustive``).
    reached: some combination reaches the user's value from autodiff's side.
    exhaustive: every combination was evaluated.
    tried: combinations evaluated.
  """

  kinks: list
  lo: float
  hi: float
  reached: bool
  exhaustive: bool
  tried: int


class Search:
  """The loss's kink sites at the check's point, and searches over their conventions.

  The weights and the active mask are flat over every site, with one spare
  slot at the end that no site reads (padding for a fixed number of bits).
  """

  def __init__(self, compiled: _Compiled, consts, params, dyn, active: np.ndarray, dtype):
    self.c = compiled
    self.consts, self.params, self.dyn = consts, params, dyn
    self.sites = compiled.sites
    self.total = int(active.size)
    self.active = np.concatenate([active, [False]])
    self.active_j = jnp.asarray(self.active)
    self.dtype = dtype
    k = np.arange(self.total + 1)
    self.interior = 0.2 + 0.6 * ((k * 0.6180339887498949 + 0.1234) % 1.0)
    sizes = [int(np.size(x)) for x in jax.tree_util.tree_leaves(params)]
    self.leaf_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    self.n_params = int(self.leaf_offsets[-1])

  @classmethod
  def build(cls, traced, params, dyn, dtype, seed: int = 0) -> "Search | None":
    """The sites of ``traced`` (a :class:`~jaxreg._checker.reference.TracedLoss`) at
    ``(params, dyn)``, or ``None`` when no kink site ties there (compiled once per loss
    program, :mod:`~jaxreg._checker.program_cache`)."""
    jaxpr = traced.traced.jaxpr
    record = _program_cache.cached(("conventions-record", traced.key), lambda: _record_fn(jaxpr))
    rng = np.random.default_rng(seed)
    direction = jax.tree_util.tree_map(
        lambda x: jnp.asarray(rng.standard_normal(np.shape(x)), jnp.result_type(x)), params)
    ties, moved, sites = record(traced.traced.consts, params, dyn, direction)
    sites = sites.value
    active = np.asarray(ties) & (np.asarray(moved) != 0)
    if not active.any():
      return None
    element = _program_cache.cached(("conventions-element", traced.key),
                                    lambda: _element_fn(jaxpr, sites))
    vertices = lambda b: _program_cache.cached(("conventions-vertices", traced.key, b),
                                               lambda: _vertices_fn(jaxpr, sites, b))
    return cls(_Compiled(sites, element, vertices), traced.traced.consts, params, dyn, active,
               dtype)

  def _weights(self, rel=None, bits=None) -> jnp.ndarray:
    w = self.interior.copy()
    if rel is not None:
      w[rel] = bits
    return jnp.asarray(w, self.dtype)

  def _element(self, flat: int, w) -> tuple[float, np.ndarray]:
    v, dw = self.c.element(self.consts, self.params, self.dyn, w, self.active_j, np.int32(flat))
    return float(v), np.asarray(dw, np.float64)[:self.total]

  def kinks(self, k: np.ndarray) -> list:
    """``[(site, flat index in the site)]`` of flat positions ``k``."""
    offsets = np.asarray([s.offset for s in self.sites])
    out = []
    for kk in k:
      s = int(np.searchsorted(offsets, kk, side="right") - 1)
      out.append((self.sites[s], int(kk - self.sites[s].offset)))
    return out

  def range(self, q: int, i: int, u: float, r: float, margin: float) -> Range | None:
    """The values element ``i`` of parameter leaf ``q`` takes over the conventions, and whether
    they reach ``u`` (within ``margin``) from autodiff's ``r``; ``None`` when no convention
    moves it, or when every combination was evaluated and none gives ``r`` (the element then
    passes a kink this module does not model)."""
    flat = int(self.leaf_offsets[q]) + int(i)
    _, dw = self._element(flat, self._weights())
    rel = np.nonzero(self.active[:self.total] & (np.abs(dw) > 0))[0]
    if not rel.size:
      return None
    kinks = self.kinks(rel)
    n = int(rel.size)
    up = u > r
    if n <= EXHAUSTIVE and (2 ** n) * self.n_params <= _MAX_VERTEX_ELEMENTS:
      width = next(b for b in (2, 4, 8, EXHAUSTIVE) if b >= n)      # few compiled shapes
      idx = np.concatenate([rel, np.full(width - n, self.total)]).astype(np.int32)
      bits = np.zeros((2 ** n, width))
      bits[:, :n] = np.asarray(list(itertools.product((0.0, 1.0), repeat=n)))
      batch = max(1, min(2 ** n, int(_BATCH_ELEMENTS // max(self.n_params, 1))))
      vals = np.asarray(self.c.vertices(batch)(
          self.consts, self.params, self.dyn, self._weights(), self.active_j, np.int32(flat),
          jnp.asarray(idx), jnp.asarray(bits, self.dtype)), np.float64)
      lo, hi = float(np.min(vals)), float(np.max(vals))
      if not lo - margin <= r <= hi + margin:
        return None       # autodiff's own conventions are not among these: a kink not modelled
      reached = (hi >= u - margin) if up else (lo <= u + margin)
      return Range(kinks, lo, hi, reached, True, len(bits))
    return self._search(flat, rel, kinks, u, up, margin)

  def _search(self, flat, rel, kinks, u, up, margin) -> Range:
    """Greedy single-weight flips from a few vertices towards ``u`` (each flip changes the
    element by exactly its derivative with respect to that weight: it is linear in each)."""
    sign = 1.0 if up else -1.0
    lo, hi, tried = math.inf, -math.inf, 0
    for start in (np.zeros(rel.size), np.ones(rel.size), np.round(self.interior[rel])):
      c = start.copy()
      for _ in range(4 * rel.size + 4):
        v, dw = self._element(flat, self._weights(rel, c))
        tried += 1
        lo, hi = min(lo, v), max(hi, v)
        if (v >= u - margin) if up else (v <= u + margin):
          return Range(kinks, lo, hi, True, False, tried)
        gain = sign * (1 - 2 * c) * dw[rel]
        k = int(np.argmax(gain))
        if gain[k] <= 0:
          break
        c[k] = 1.0 - c[k]
    return Range(kinks, lo, hi, False, False, tried)


def describe(kinks: list, limit: int = 3) -> str:
  """``"relu (max) at loss.py:12:7 (loss) element [3, 1]: max(·, 0)′ = 1 or 0; …"``."""
  parts = []
  for site, j in kinks[:limit]:
    idx = [int(a) for a in np.unravel_index(j, site.shape)] if site.shape else []
    where = f" at {site.where}" if site.where else ""
    prim = "jnp.where" if site.prim == "select_n" else site.prim
    name = f"{site.fn} ({prim})" if site.fn else prim
    parts.append(f"{name}{where} element {idx}: {site.choice}")
  more = f"; and {len(kinks) - limit} more" if len(kinks) > limit else ""
  return "; ".join(parts) + more
