"""Elementwise comparison of the user's arrays with the reference.

Two halves, with the rule of :mod:`jaxreg._checker.tolerance`:

* :func:`row_stats`, inside a jit: one pass over every compared pair at once,
  returning only per-row summaries (:class:`RowStats`) and the scale of the
  whole computation; :func:`row_stats_np` is the same in NumPy.
* :class:`Comparison`, on the host (NumPy): the elementwise errors of one row
  that has mismatches — their count, the worst element, the largest ones.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._checker import tolerance as _tol
from jaxreg._checker.reference import Static as _Static
from jaxreg._checker.tolerance import Tolerance


class Pair(NamedTuple):
  """One user array and its reference, with the tolerance to judge it."""

  user: Any
  ref: Any
  tol: Tolerance


class RowStats(NamedTuple):
  """Summaries of every compared pair (arrays of one value per pair).

  Attributes:
    max_err: ``max |u − r|``.
    max_rel: the largest relative error.
    mismatch: whether any element mismatches (1/0).
    ref_nonfinite: whether the reference has an inf or nan (1/0).
    user_nonfinite: whether the user's array has an inf or nan (1/0).
  """

  max_err: Any
  max_rel: Any
  mismatch: Any
  ref_nonfinite: Any
  user_nonfinite: Any


class Stats(NamedTuple):
  """Per-block summaries of the compared pairs and the computation's ``scale``.

  Attributes:
    blocks: five ``(blocks,)`` arrays, the maxima of the :class:`RowStats`
      columns over each block of 512 elements (each pair starts a new block).
    scale: the computation's scale.
    starts: :class:`~jaxreg._checker.reference.Static` holding the first block of
      every pair (a tuple of ints), fixed at trace time.
  """

  blocks: Any
  scale: Any
  starts: Any

  def rows(self) -> RowStats:
    """The :class:`RowStats` on the host: the blocks' maxima, reduced per pair."""
    starts = np.asarray(self.starts.value, np.int64)
    if not starts.size:
      z = np.zeros((0,))
      return RowStats(z, z, z, z, z)
    return RowStats(*(np.maximum.reduceat(np.asarray(b, np.float64), starts)
                      for b in self.blocks))


_BLOCK = 512


def row_stats(pairs: list[Pair], others=()) -> Stats:
  """:class:`Stats` of ``pairs`` inside a jit; ``others`` count only for the scale.

  The scale is the largest finite ``|r|`` over every pair's reference and
  every array in ``others`` (the reference gradients nobody compared).

  All arrays are laid out in one ``(blocks, 512)`` array (each padded with
  zeros to whole blocks, which changes no maximum), so the compiled program
  has the same few kernels however many pairs there are: a reduction for
  the scale and one variadic reduction of the five summaries over each
  block, returned as five arrays; the maxima per pair over its blocks are
  taken on the host (:meth:`Stats.rows`). (A reduction per pair, a segment
  maximum in the program or a stack of the five outputs each cost XLA
  compile time on CPU; padding with ``lax.pad`` inside the concatenation
  compiles a little less but runs slower.)
  """
  n = len(pairs)
  refs = [p.ref for p in pairs] + list(others)
  if not refs:
    return Stats((jnp.zeros((0,)),) * 5, jnp.zeros(()), _Static(()))
  dtype = jnp.result_type(*[r.dtype for r in refs])
  sizes = [int(np.prod(np.shape(r), dtype=np.int64)) for r in refs]
  nbs = [max(1, -(-s // _BLOCK)) for s in sizes]
  seg_np = np.repeat(np.arange(len(refs)), nbs)
  starts = tuple(int(b) for b in np.cumsum([0] + nbs[:n - 1]))[:n]

  def lay(arrs):
    parts = []
    for a, s, nb in zip(arrs, sizes, nbs):
      parts.append(jnp.ravel(a).astype(dtype))
      if nb * _BLOCK > s:
        parts.append(jnp.zeros((nb * _BLOCK - s,), dtype))
    return jnp.concatenate(parts).reshape(-1, _BLOCK)

  n_blocks = int(sum(nbs[:n]))       # the compared pairs' blocks (the others' only set the scale)
  R = lay(refs)
  per_block = lambda k: jnp.asarray(
      np.array([p.tol[k] for p in pairs], np.float64)[seg_np[:n_blocks]], dtype)[:, None]
  rtol, atol, floor = per_block(0), per_block(1), per_block(2)
  absr = jnp.where(jnp.isfinite(R), jnp.abs(R), 0.0)
  scale = jnp.max(absr)
  if not n:
    return Stats((jnp.zeros((0,), dtype),) * 5, scale, _Static(()))
  R = R[:n_blocks]
  U = lay([p.user.astype(p.ref.dtype) for p in pairs])
  err, rel = _tol.relative_error(jnp, U, R, scale, floor)
  mism = _tol.mismatch(err, rel, rtol, atol).astype(dtype)
  nfr = (~jnp.isfinite(R)).astype(dtype)
  nfu = (~jnp.isfinite(U)).astype(dtype)
  zero = jnp.zeros((), dtype)
  reduced = jax.lax.reduce((err, rel, mism, nfr, nfu), (zero,) * 5,
                           lambda a, b: tuple(jnp.maximum(x, y) for x, y in zip(a, b)), (1,))
  return Stats(tuple(reduced), scale, _Static(starts))


def scale_np(arrays) -> float:
  """The computation's scale in NumPy: the largest finite ``|r|`` over ``arrays``."""
  s = 0.0
  for a in arrays:
    a = np.asarray(a)
    if a.size:
      with np.errstate(all="ignore"):
        s = max(s, float(np.max(np.where(np.isfinite(a), np.abs(a), 0.0))))
  return s


def row_stats_np(pairs: list[Pair], scale: float) -> RowStats:
  """:func:`row_stats` in NumPy for a known ``scale`` (eager path)."""
  cols = [[], [], [], [], []]
  for p in pairs:
    c = Comparison.of(p.user, p.ref, p.tol, scale)
    r = np.asarray(p.ref).ravel()
    u = np.asarray(p.user).ravel()
    vals = (np.max(c.err, initial=0.0), np.max(c.rel, initial=0.0), float(np.any(c.mismatch)),
            float(np.any(~np.isfinite(r))), float(np.any(~np.isfinite(u))))
    for col, v in zip(cols, vals):
      col.append(float(v))
  return RowStats(*(np.asarray(c, np.float64) for c in cols))


class Comparison(NamedTuple):
  """Elementwise comparison of one row on the host (flat NumPy arrays).

  Attributes:
    err: ``|u − r|`` per element.
    rel: relative error per element.
    mismatch: elements beyond tolerance.
    user: the user's values (flat, in the reference dtype).
    ref: the reference (flat).
  """

  err: np.ndarray
  rel: np.ndarray
  mismatch: np.ndarray
  user: np.ndarray
  ref: np.ndarray

  @classmethod
  def of(cls, u, r, tol: Tolerance, scale: float, mag=None) -> "Comparison":
    r = np.asarray(r).ravel()
    u = np.asarray(u).ravel().astype(r.dtype)
    with np.errstate(all="ignore"):
      err, rel = _tol.relative_error(np, u, r, scale, tol.floor,
                                     None if mag is None else np.asarray(mag).ravel())
      mism = _tol.mismatch(err, rel, tol.rtol, tol.atol)
    return cls(err, rel, mism, u, r)

  @property
  def count(self) -> int:
    return int(np.sum(self.mismatch))

  def worst(self) -> int:
    """Flat index of the largest relative error."""
    return int(np.argmax(self.rel))

  def largest(self, k: int) -> list[int]:
    """Flat indices of the (at most ``k``) largest mismatches, largest first."""
    idx = np.nonzero(self.mismatch)[0]
    if idx.size > k:
      idx = idx[np.argpartition(-self.rel[idx], k - 1)[:k]]
    return [int(i) for i in idx[np.argsort(-self.rel[idx], kind="stable")]]
