"""Importing jaxreg runs no JAX computation (``jax.distributed.initialize`` must be able to come after)."""

import subprocess
import sys


def test_import_initialises_no_xla_backend():
  code = ("import jaxreg, jaxreg.experiments, jaxreg.datasets, jaxreg.distributed\n"
          "from jax._src import xla_bridge as xb\n"
          "assert not xb._backends, 'importing jaxreg initialised the XLA backend'\n")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr
