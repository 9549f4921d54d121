"""Reporting an exception raised by the user's code (a derivation, a rule, a function)."""

from __future__ import annotations

import traceback


def describe_exc(e: BaseException, what: str) -> str:
  """``"<what> raised TypeError: … (at file.py:12, in f)"``, naming the user's innermost frame."""
  tb = traceback.extract_tb(e.__traceback__)
  where = ""
  for fr in reversed(tb):
    if "/jax/" not in fr.filename and "/jaxreg/_" not in fr.filename:
      where = f" (at {fr.filename}:{fr.lineno}, in {fr.name})"
      break
  msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
  return f"{what} raised {type(e).__name__}: {msg}{where}"
