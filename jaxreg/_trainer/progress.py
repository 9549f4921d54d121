"""A tiny progress bar and a JSON-lines metrics log (no tqdm).

Both are host-side: they see the per-epoch metrics that :func:`jaxreg.train`
fetches anyway (one small transfer per epoch), never per-step values.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import IO


def interactive(stream: IO | None = None) -> bool:
  """True when ``stream`` (default stderr) is a terminal and ``CI`` is unset."""
  stream = sys.stderr if stream is None else stream
  if os.environ.get("CI"):
    return False
  try:
    return bool(stream.isatty())
  except (AttributeError, ValueError):
    return False


def _fmt(v: float) -> str:
  return f"{v:.4g}" if math.isfinite(v) else str(v)


class ProgressBar:
  """``epoch 12/100 [#####.....] 1.2s train_loss 0.0431 val_loss 0.0512`` on one line.

  Args:
    total: number of epochs.
    enabled: ``True``/``False``, or ``None`` for :func:`interactive`.
    stream: where to write (default stderr).
    initial: epochs already done (a resumed run).
    width: characters of the bar.

  Examples:
    >>> import io
    >>> out = io.StringIO()
    >>> bar = ProgressBar(4, enabled=True, stream=out, width=4)
    >>> bar.update(2, {"train_loss": 0.5})
    >>> bar.close()
    >>> out.getvalue().split("\\r")[-1].split(" ")[:3]
    ['epoch', '2/4', '[##..]']
  """

  def __init__(self, total: int, *, enabled: bool | None = None, stream: IO | None = None,
               initial: int = 0, width: int = 20):
    self.stream = sys.stderr if stream is None else stream
    self.enabled = interactive(self.stream) if enabled is None else bool(enabled)
    self.total, self.width, self.done = total, width, initial
    self._t0 = time.perf_counter()
    self._last = ""

  def update(self, done: int, metrics: dict | None = None) -> None:
    """Shows ``done`` of ``total`` epochs and the latest metrics."""
    self.done = done
    if not self.enabled:
      return
    k = int(self.width * done / max(self.total, 1))
    line = (f"epoch {done}/{self.total} [{'#' * k}{'.' * (self.width - k)}] "
            f"{time.perf_counter() - self._t0:.1f}s")
    for name, v in (metrics or {}).items():
      line += f" {name} {_fmt(float(v))}"
    pad = " " * max(0, len(self._last) - len(line))
    self.stream.write("\r" + line + pad)
    self.stream.flush()
    self._last = line

  def close(self) -> None:
    """Ends the line (only if anything was drawn)."""
    if self.enabled and self._last:
      self.stream.write("\n")
      self.stream.flush()


class MetricsLog:
  """A :func:`jaxreg.train` callback appending one JSON object per epoch to ``path``.

  Each line is ``{"epoch": e, "train_loss": …, "val_loss": …, …, "time": s}``
  (``epoch`` 1-based; ``time`` seconds since the log was created; non-finite
  values as ``null``). The file is opened in append mode, so a resumed run
  continues the same log.

  Args:
    path: file to append to (created with its directory if missing).

  Examples:
    >>> import jax, jax.numpy as jnp, jaxreg, tempfile, os, json, pathlib
    >>> path = os.path.join(tempfile.mkdtemp(), "log.jsonl")
    >>> net = jaxreg.MLP((1, 1), None)
    >>> x = jnp.ones((4, 1)); cfg = jaxreg.TrainConfig(learning_rate=0.1, batch_size=2, epochs=3)
    >>> _ = jaxreg.train(net, net.init(jax.random.key(0)), (x, x), cfg, callbacks=[jaxreg.MetricsLog(path)])
    >>> [json.loads(l)["epoch"] for l in pathlib.Path(path).read_text().splitlines()]
    [1, 2, 3]
  """

  def __init__(self, path: str | os.PathLike):
    self.path = os.fspath(path)
    d = os.path.dirname(self.path)
    if d:
      os.makedirs(d, exist_ok=True)
    self._t0 = time.perf_counter()

  def __call__(self, state, history) -> None:
    row = {"epoch": int(state.epoch)}
    for k, v in history.items():
      if v:
        x = float(v[-1])
        row[k] = x if math.isfinite(x) else None
    row["time"] = round(time.perf_counter() - self._t0, 6)
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps(row) + "\n")
