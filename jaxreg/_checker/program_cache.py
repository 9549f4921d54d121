"""Compiled programs keyed by what they compute, not by which Python function computes them.

``jax.jit`` caches on the function object: a re-defined function (a fresh
closure with the same code) compiles again, and a function whose closure or
globals changed keeps its old trace. The checker instead traces on every
call and keys compiled executables on the traced program:

1. ``fn(*args)`` is traced to a jaxpr (``jax.make_jaxpr``); everything the
   function read at trace time is now in the program: Python numbers as
   literals, arrays (closed over, global, default arguments) as constants.
2. The constants are lifted to arguments of the executable, so the key is
   the program text (equations, literals, shapes and dtypes, static
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
from typing import Any, Callable, NamedTuple

import jax
import jax.core
from jax.extend import core as jex_core

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


def _sub_jaxprs(value):
  if isinstance(value, jex_core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jex_core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def _runtime_callables(jaxpr, found: list) -> list:
  """The Python functions that callback equations call (recursively into sub-jaxprs)."""
  for eqn in jaxpr.eqns:
    is_callback = eqn.primitive.name in _CALLBACK_PRIMITIVES
    for value in eqn.params.values():
      for sub in _sub_jaxprs(value):
        _runtime_callables(sub, found)
      if is_callback and callable(value):
        found.append(value)
  return found


def program_key(jaxpr) -> tuple:
  """A hashable key that determines what ``jaxpr`` (an open ``Jaxpr``) computes.

  The printed program holds every equation with its literals (printed
  exactly, ``repr``-style) and static parameters, and the shapes and dtypes
  of its constants and arguments, but not the constants' values. Python
  functions in parameters (differentiation rules, a reduction's combiner) are
  printed by name only: a cached program is only evaluated, never
  differentiated, and what a reduction combines with is its printed jaxpr;
  only callbacks run Python at run time, so their functions are keyed by
  identity.
  """
  return (str(jaxpr), tuple(_runtime_callables(jaxpr, [])))


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
