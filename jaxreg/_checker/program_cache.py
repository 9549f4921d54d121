"""Compiled programs keyed by what they compute, not by which Python function computes them.

``jax.jit`` caches on the function object: a re-defined function (a fresh
closure with the same code) compiles again, and a function whose closure or
globals changed keeps its old trace. The checker instead traces on every
call and keys compiled executables on the traced program:

1. ``fn(*args)`` is traced to a jaxpr (``jax.make_jaxpr``); everything the
   function read at trace time is now in the program: Python numbers as
   literals, arrays (closed over, global, default arguments) as constants.
2. The constants are lifted to arguments of the executable, so the key is
   the program's structure (equations, literals, shapes and dtypes, static
   parameters) plus the identity of any Python callable that a primitive
   calls at run time (``pure_callback`` and friends). Array contents are
   never part of the key: they are arguments.
3. The checker builds its compiled functions around that program (evaluated
   with ``jax.core.eval_jaxpr``, constants passed in) and stores them under
   the program's key: a miss compiles, a hit reuses.

The user's functions are traced on every call, so whatever they record while
being traced is fresh on hits and misses alike; only the checker's own
machinery around them is traced once per key.
"""

from __future__ import annotations

import collections
import weakref
from typing import Any, Callable, NamedTuple

import jax
import jax.core
from jax.extend import core as jex_core
from jax.extend import linear_util as lu
import numpy as np

_CACHE_SIZE = 64
_CACHE: "collections.OrderedDict[Any, Any]" = collections.OrderedDict()

# Primitives that call back into Python at run time: the function they call is part of
# what the program computes, so it is part of the key (by identity).
_CALLBACK_PRIMITIVES = frozenset({"pure_callback", "io_callback", "debug_callback", "callback"})


class Stats(NamedTuple):
  """Counts since the process started (or :func:`clear`): builds (misses) and reuses (hits)."""
  misses: int
  hits: int


_COUNTS = {"misses": 0, "hits": 0}


def stats() -> Stats:
  return Stats(_COUNTS["misses"], _COUNTS["hits"])


def clear() -> None:
  """Drops every compiled program and resets :func:`stats`."""
  _CACHE.clear()
  _COUNTS.update(misses=0, hits=0)


def _literal_key(value) -> tuple:
  """A literal by type and exact value (so ``-0.0`` and ``0.0``, or ``1`` and ``1.0``, differ)."""
  if isinstance(value, float):
    return ("float", value.hex())
  if isinstance(value, (bool, int)):
    return (type(value).__name__, value)
  a = np.asarray(value)
  return ("array", a.dtype.str, a.shape, a.tobytes())


def _aval_key(aval):
  try:
    hash(aval)            # ShapedArray: shape, dtype, weak type, sharding
    return aval
  except TypeError:
    return (type(aval).__name__, str(aval))


class _Identity:
  """Compares and hashes by identity (and keeps the object alive while it is in a key)."""

  __slots__ = ("obj",)

  def __init__(self, obj):
    self.obj = obj

  def __hash__(self):
    return id(self.obj)

  def __eq__(self, other):
    return isinstance(other, _Identity) and other.obj is self.obj


def _param_key(name, value, is_callback, memo):
  if isinstance(value, jex_core.ClosedJaxpr):
    # Constants of a nested jaxpr (a jitted helper's closed-over arrays) are baked into
    # a compiled program, so they are keyed by identity. JAX re-traces such a helper only
    # when JAX itself would, so the same objects come back on every check.
    return ("closed", _nested_key(value.jaxpr, memo), tuple(map(_Identity, value.consts)))
  if isinstance(value, jex_core.Jaxpr):
    return ("jaxpr", _nested_key(value, memo))
  if isinstance(value, (tuple, list)) and any(
      isinstance(v, (jex_core.ClosedJaxpr, jex_core.Jaxpr)) for v in value):
    return tuple(_param_key(name, v, is_callback, memo) for v in value)
  if (callable(value) and not isinstance(value, type)) or isinstance(value, lu.WrappedFun):
    # Runtime callbacks by identity; other functions (differentiation rules, a
    # reduction's combiner, fresh on every trace) by name.
    return ("fn", value) if is_callback else ("fn", name, getattr(value, "__name__", None))
  if isinstance(value, float):
    return ("float", value.hex())
  if isinstance(value, np.ndarray):
    return _literal_key(value)
  try:
    hash(value)
  except TypeError:
    return ("repr", type(value).__name__, repr(value))
  return value


class _Hashed:
  """A key tuple with its hash computed once (nested keys are reused across checks)."""

  __slots__ = ("key", "hash")

  def __init__(self, key: tuple):
    self.key = key
    self.hash = hash(key)

  def __hash__(self):
    return self.hash

  def __eq__(self, other):
    return self is other or (isinstance(other, _Hashed) and self.hash == other.hash
                             and self.key == other.key)


# Keys of nested jaxprs by the jaxpr object: JAX caches the traces of jitted functions
# (every jnp function is one), so the same nested jaxprs come back on every check.
_NESTED: "weakref.WeakKeyDictionary[Any, _Hashed]" = weakref.WeakKeyDictionary()


def _nested_key(jaxpr, memo: dict) -> _Hashed:
  hit = _NESTED.get(jaxpr)
  if hit is None:
    hit = _NESTED[jaxpr] = _Hashed(_jaxpr_key(jaxpr, memo))
  return hit


def _jaxpr_key(jaxpr, memo: dict) -> tuple:
  hit = memo.get(id(jaxpr))
  if hit is not None:
    return hit
  index: dict = {}

  def ref(v):
    if isinstance(v, jex_core.Literal):
      return ("lit", _literal_key(v.val), _aval_key(v.aval))
    return index[v]

  header = []
  for v in (*jaxpr.constvars, *jaxpr.invars):
    index[v] = len(index)
    header.append(_aval_key(v.aval))
  eqns = []
  for eqn in jaxpr.eqns:
    is_callback = eqn.primitive.name in _CALLBACK_PRIMITIVES
    ins = tuple(ref(v) for v in eqn.invars)
    outs = []
    for v in eqn.outvars:
      index[v] = len(index)
      outs.append(_aval_key(v.aval))
    params = tuple(sorted(((k, _param_key(k, v, is_callback, memo))
                           for k, v in eqn.params.items()), key=lambda kv: kv[0]))
    eqns.append((eqn.primitive.name, ins, tuple(outs), params))
  key = (len(jaxpr.constvars), tuple(header), tuple(eqns),
         tuple(ref(v) for v in jaxpr.outvars), str(jaxpr.effects))
  memo[id(jaxpr)] = key
  return key


def program_key(jaxpr) -> tuple:
  """A hashable key that determines what ``jaxpr`` (an open ``Jaxpr``) computes.

  The key holds every equation: its primitive, which values it reads
  (literals by dtype and bytes), the shapes and dtypes it makes, and its
  static parameters (nested jaxprs recursively, their constants by
  identity); and the shapes and dtypes of the constants and arguments, but
  not the constants' values.
  Python functions in parameters are keyed by identity only for callbacks,
  which run Python at run time; elsewhere (differentiation rules, a
  reduction's combiner) by name: a cached program is only evaluated, never
  differentiated, and a combiner's work is in its jaxpr parameter.
  """
  return _jaxpr_key(jaxpr, {})


class Program(NamedTuple):
  """A function traced at some arguments: its jaxpr, lifted constants and structures."""
  jaxpr: Any
  consts: tuple
  in_tree: Any
  out_tree: Any
  out_shape: Any
  key: tuple


def trace(fn: Callable, *args) -> Program:
  """Traces ``fn(*args)`` (all array leaves of ``args`` traced) to a :class:`Program`."""
  closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
  in_tree = jax.tree_util.tree_structure(args)
  out_tree = jax.tree_util.tree_structure(out_shape)
  return Program(closed.jaxpr, tuple(closed.consts), in_tree, out_tree, out_shape,
                 (program_key(closed.jaxpr), in_tree, out_tree))


def evaluate(program: Program, consts, *args):
  """``fn(*args)`` from the program, with ``consts`` for its constants (traceable)."""
  outs = jax.core.eval_jaxpr(program.jaxpr, list(consts), *jax.tree_util.tree_leaves(args))
  return jax.tree_util.tree_unflatten(program.out_tree, outs)


def cached(key, build: Callable[[], Any]):
  """Returns the cached ``build()`` for ``key``, building it on a miss.

  ``key`` must determine what ``build`` returns; ``None`` (or an unhashable
  key) means no caching. The most recently used entries are kept.
  """
  if key is None:
    return build()
  try:
    hit = _CACHE.get(key)
  except TypeError:
    return build()
  if hit is not None:
    _COUNTS["hits"] += 1
    _CACHE.move_to_end(key)
    return hit
  _COUNTS["misses"] += 1
  value = build()
  _CACHE[key] = value
  if len(_CACHE) > _CACHE_SIZE:
    _CACHE.popitem(last=False)
  return value
