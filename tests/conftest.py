"""Test-wide settings: gradient checks run in float64 unless a test is about float32; four
CPU devices (set before JAX starts, which it does here) for the tests of sharded runs."""

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_num_cpu_devices", 4)
jax.devices()  # start JAX now: no later setting (e.g. `jaxreg train-many --devices`) can change it

# Compilation makes the first examples slow; deadlines would only add flakiness.
settings.register_profile(
    "jaxreg", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
settings.load_profile("jaxreg")


@pytest.fixture
def key():
  return jax.random.key(0)
