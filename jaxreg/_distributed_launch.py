"""Launch N local processes of one program as a multi-process JAX run.

For tests and for using every core of one machine: each process gets its own CPU
devices, the coordinator listens on 127.0.0.1 at a free port, and the first process
to fail takes the others down with it (a dead peer would otherwise leave the
survivors waiting in a collective until JAX's shutdown timeout).
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from jaxreg._distributed import (COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV,
                                 _check_positive_int)

_POLL_S = 0.05
_KILL_GRACE_S = 2.0
_TAIL_CHARS = 4000


class ProcessResult(NamedTuple):
  """How one launched process ended.

  Attributes:
    process_id: The process's index in the run.
    returncode: Its exit status; negative for the signal that ended it.
    killed: True when the launcher ended it (after another's failure or a timeout).
    stdout: The last characters of its standard output.
    stderr: The last characters of its standard error.
  """
  process_id: int
  returncode: int
  killed: bool
  stdout: str
  stderr: str


class LaunchResult(NamedTuple):
  """How a :func:`launch_local` run ended.

  Attributes:
    processes: One :class:`ProcessResult` per process, by process id.
    failed_process: Id of the first process seen exiting with a non-zero status, or None.
    timed_out: True when the run was ended by the launcher's timeout.
    coordinator_address: The ``"127.0.0.1:port"`` the processes were given.
  """
  processes: tuple[ProcessResult, ...]
  failed_process: int | None
  timed_out: bool
  coordinator_address: str

  @property
  def ok(self) -> bool:
    """True when every process exited with status 0."""
    return not self.timed_out and all(p.returncode == 0 for p in self.processes)

  def describe(self) -> str:
    """A readable account of the run: outcome, then each process's status and stderr tail."""
    if self.ok:
      head = "all processes succeeded"
    elif self.timed_out:
      head = "timed out"
    else:
      head = f"process {self.failed_process} failed"
    lines = [f"launch on {self.coordinator_address}: {head}"]
    for p in self.processes:
      lines.append(f"--- process {p.process_id}: returncode {p.returncode}"
                   f"{' (killed by the launcher)' if p.killed else ''}")
      if p.stderr:
        lines.append(p.stderr.rstrip())
    return "\n".join(lines)


def free_port(host: str = "127.0.0.1") -> int:
  """Returns a TCP port on ``host`` that was free a moment ago."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind((host, 0))
    return sock.getsockname()[1]


def _command(target: str | os.PathLike, args: Sequence[str], python: str) -> list[str]:
  if not isinstance(target, (str, os.PathLike)):
    raise TypeError(f"target must be a script path or a module name, got "
                    f"{type(target).__name__} {target!r}.")
  if isinstance(args, str) or not all(isinstance(a, str) for a in args):
    raise TypeError(f"args must be a sequence of str, got {args!r}.")
  text = os.fspath(target)
  if text.endswith(".py") or isinstance(target, os.PathLike):
    if not os.path.isfile(text):
      raise ValueError(f"target script {text!r} does not exist.")
    return [python, text, *args]
  if not text or not all(part.isidentifier() for part in text.split(".")):
    raise ValueError(f"target must be a path ending in .py or a dotted module name, got {text!r}.")
  return [python, "-m", text, *args]


def _tail(path: pathlib.Path) -> str:
  return path.read_text(errors="replace")[-_TAIL_CHARS:]


def _end(proc: subprocess.Popen) -> None:
  """Ends ``proc``'s process group: SIGTERM, then SIGKILL after a short grace."""
  for sig in (signal.SIGTERM, signal.SIGKILL):
    try:
      os.killpg(proc.pid, sig)
    except ProcessLookupError:
      return
    try:
      proc.wait(_KILL_GRACE_S)
      return
    except subprocess.TimeoutExpired:
      continue
  proc.wait()


def launch_local(target: str | os.PathLike,
                 n_processes: int,
                 *,
                 devices_per_process: int = 1,
                 args: Sequence[str] = (),
                 timeout_s: float = 300.0,
                 env: Mapping[str, str] | None = None,
                 python: str = sys.executable) -> LaunchResult:
  """Runs ``target`` in ``n_processes`` local processes that form one JAX run.

  Each process runs ``python target *args`` (a ``.py`` path) or ``python -m target
  *args`` (a module name) with ``JAX_PLATFORMS=cpu``, ``JAX_NUM_CPU_DEVICES`` set to
  ``devices_per_process`` and ``JAXREG_COORDINATOR``/``JAXREG_NUM_PROCESSES``/
  ``JAXREG_PROCESS_ID`` set, so that ``jaxreg.distributed.initialize()`` with no
  arguments joins the run. The directory holding this ``jaxreg`` is put first on
  ``PYTHONPATH`` so the processes import the same library as the launcher.

  The launcher waits for all processes; as soon as one exits with a non-zero status,
  or ``timeout_s`` passes, it ends the others (SIGTERM, then SIGKILL).

  Args:
    target: Path of a Python script, or a dotted module name.
    n_processes: Number of processes, at least 1.
    devices_per_process: CPU devices each process exposes.
    args: Command-line arguments passed to every process.
    timeout_s: Seconds after which all remaining processes are ended.
    env: Extra environment variables for the processes (on top of this one's).
    python: The Python interpreter to run.

  Returns:
    A :class:`LaunchResult` with each process's return code and output tails.
  """
  _check_positive_int("n_processes", n_processes)
  _check_positive_int("devices_per_process", devices_per_process)
  if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
    raise ValueError(f"timeout_s must be a positive number, got {timeout_s!r}.")
  command = _command(target, args, python)
  coordinator = f"127.0.0.1:{free_port()}"
  package_root = str(pathlib.Path(__file__).resolve().parent.parent)
  base_env = dict(os.environ)
  base_env.update(env or {})
  base_env["PYTHONPATH"] = os.pathsep.join(
      p for p in (package_root, base_env.get("PYTHONPATH", "")) if p)
  base_env.update({"JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices_per_process),
                   COORDINATOR_ENV: coordinator, NUM_PROCESSES_ENV: str(n_processes)})

  with tempfile.TemporaryDirectory(prefix="jaxreg-launch-") as tmp:
    logs = [(pathlib.Path(tmp, f"{i}.out"), pathlib.Path(tmp, f"{i}.err"))
            for i in range(n_processes)]
    procs = []
    try:
      for i, (out_path, err_path) in enumerate(logs):
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
          procs.append(subprocess.Popen(
              command, env={**base_env, PROCESS_ID_ENV: str(i)}, stdout=out, stderr=err,
              stdin=subprocess.DEVNULL, start_new_session=True))
      deadline = time.monotonic() + timeout_s
      failed, timed_out = None, False
      while None in [p.poll() for p in procs]:
        failed = next((i for i, p in enumerate(procs) if p.returncode not in (None, 0)), None)
        if failed is not None:
          break
        if time.monotonic() > deadline:
          timed_out = True
          break
        time.sleep(_POLL_S)
      killed = [p.poll() is None for p in procs]
    finally:
      for p in procs:
        if p.poll() is None:
          _end(p)
    if failed is None and not timed_out:
      failed = next((i for i, p in enumerate(procs) if p.returncode != 0), None)
    results = tuple(
        ProcessResult(i, p.returncode, k, _tail(out_path), _tail(err_path))
        for i, (p, k, (out_path, err_path)) in enumerate(zip(procs, killed, logs)))
  return LaunchResult(results, failed, timed_out, coordinator)
