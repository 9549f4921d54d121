"""pytest helpers: :func:`assert_derivation` and :func:`assert_trees_all_close`.

Examples:
  >>> import jax.numpy as jnp
  >>> from jaxreg.testing import assert_trees_all_close
  >>> assert_trees_all_close({"w": jnp.ones(2)}, {"w": jnp.ones(2)})
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from jaxreg._checker.check import check
from jaxreg._checker.report import Report

__all__ = ["assert_derivation", "assert_trees_all_close"]


def assert_derivation(derivation: Callable, loss: Callable, params: Any, *args,
                      kwargs: dict | None = None, expect: str = "ok",
                      expect_first_wrong: str | None = None, **options) -> Report:
  """:func:`jaxreg.check` inside a test; raises ``AssertionError`` with the report as message.

  Args:
    derivation, loss, params, *args: as for :func:`jaxreg.check`.
    kwargs: keyword arguments of ``loss`` and ``derivation``, as for
      :func:`jaxreg.check`.
    **options: the check's own options (``rtol``, ``atol``, ``referee``…).
    expect: ``"ok"`` (no row wrong; kinks allowed), ``"kink"`` (no row wrong
      and at least one kink row) or ``"wrong"`` (the check must fail).
    expect_first_wrong: with ``expect="wrong"``, the row that must fail first.

  Returns:
    The :class:`jaxreg.Report`, for further assertions.
  """
  if expect not in ("ok", "kink", "wrong"):
    raise ValueError(f"assert_derivation: `expect` must be 'ok', 'kink' or 'wrong', got {expect!r}.")
  report = check(derivation, loss, params, *args, kwargs=kwargs, **options)
  problem = _unmet(report, expect, expect_first_wrong)
  if problem:
    raise AssertionError(f"{problem}\n{report}")
  return report


def _unmet(report: Report, expect: str, expect_first_wrong: str | None) -> str | None:
  """Why ``report`` does not meet the expectation, or ``None``."""
  if expect == "ok" and not report.ok:
    return "expected the derivation to be correct, but it is not:"
  if expect == "kink":
    if not report.ok:
      return "expected only kink disagreements, but something is wrong:"
    if not any(r.verdict == "kink" for r in report.rows):
      return "expected at least one kink row, found none:"
  if expect == "wrong":
    if report.ok:
      return "expected the derivation to be found wrong, but it passed:"
    if expect_first_wrong is not None and report.first_wrong != expect_first_wrong:
      return (f"expected the first wrong quantity to be {expect_first_wrong!r}, "
              f"got {report.first_wrong!r}:")
  return None


def assert_trees_all_close(actual: Any, expected: Any, *, rtol: float = 1e-7,
                           atol: float = 0.0) -> None:
  """Structure first, then every leaf with ``np.testing.assert_allclose``; messages name the leaf path.

  Raises:
    AssertionError: naming both structures, or the first leaf that differs.
  """
  sa = jax.tree_util.tree_structure(actual)
  se = jax.tree_util.tree_structure(expected)
  if sa != se:
    raise AssertionError(f"tree structures differ:\n  actual:   {sa}\n  expected: {se}")
  fa, _ = jax.tree_util.tree_flatten_with_path(actual)
  fe = jax.tree_util.tree_leaves(expected)
  for (path, a), e in zip(fa, fe):
    name = "tree" + jax.tree_util.keystr(path)
    a, e = np.asarray(a), np.asarray(e)
    if a.shape != e.shape:
      raise AssertionError(f"{name}: shape {a.shape} != expected {e.shape}")
    try:
      np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    except AssertionError as err:
      raise AssertionError(f"{name}: {err}") from None
