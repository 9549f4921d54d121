"""Imports of optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
  """An optional dependency is not installed; the message names the extra that brings it."""


def require(module: str, *, package: str, extra: str, purpose: str) -> ModuleType:
  """Imports ``module`` or raises :class:`MissingExtraError` naming ``extra``.

  Args:
    module: the module to import, e.g. ``"sklearn.datasets"``.
    package: the distribution that provides it, e.g. ``"scikit-learn"``.
    extra: the jaxreg extra that installs it, e.g. ``"digits"``.
    purpose: what needs it, for the message, e.g. ``"jaxreg.datasets.digits"``.

  Returns:
    The imported module.

  Raises:
    MissingExtraError: when the import fails; the original error is chained.
  """
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise MissingExtraError(
        f"{purpose} needs the optional package `{package}`, which is not "
        f"installed ({e}). Install jaxreg's `{extra}` extra: pip install 'jaxreg[{extra}]'"
    ) from e
