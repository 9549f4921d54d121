"""Shared helpers of the trainer tests: compile counting and tree comparison."""

import contextlib
import logging

import jax
import numpy as np


@contextlib.contextmanager
def compiles():
  """Collects the names of the functions XLA compiles inside the block (``jax.log_compiles``).

  Yields a list that fills with names such as ``"epoch_fn"``.
  """
  names = []

  class Grab(logging.Handler):
    def emit(self, record):
      msg = record.getMessage()
      if msg.startswith("Compiling jit("):
        names.append(msg[len("Compiling jit("):msg.index(")")])

  logger = logging.getLogger("jax._src.interpreters.pxla")
  handler = Grab()
  logger.addHandler(handler)
  try:
    with jax.log_compiles():
      yield names
  finally:
    logger.removeHandler(handler)


def assert_trees_close(a, b, *, rtol, atol=0.0):
  """Same structure, leaves close (``rtol=atol=0``: equal)."""
  assert jax.tree.structure(a) == jax.tree.structure(b), (jax.tree.structure(a),
                                                          jax.tree.structure(b))
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


def trees_equal(a, b) -> bool:
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(u, v) for u, v in zip(la, lb))
