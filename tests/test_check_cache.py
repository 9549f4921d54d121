"""No stale answers, and compiled work reused across re-defined functions of the same structure.

The checker keys compiled work on the traced program with its constants as
arguments: whatever a loss or derivation reads (globals, closure cells,
defaults, arrays by content) is seen on every check.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxreg
from jaxreg._checker import program_cache

RNG = np.random.default_rng(0)
P = {"W": jnp.asarray(RNG.normal(size=(4, 3))), "b": jnp.asarray(RNG.normal(size=3))}
X = jnp.asarray(RNG.normal(size=(5, 4)))
T = jnp.asarray(RNG.normal(size=(5, 3)))

SCALE = 1.0


def _forward(p, x):
  return jnp.tanh(x @ p["W"] + p["b"])


def _grad(p, x, t, scale=1.0):
  y = _forward(p, x)
  dz = scale * (y - t) * (1 - y ** 2)
  return {"W": x.T @ dz, "b": dz.sum(0)}


def loss_reading_global(p, x, t):
  return SCALE * 0.5 * jnp.sum((_forward(p, x) - t) ** 2)


def test_a_changed_global_python_number_in_the_loss_is_seen():
  global SCALE
  assert jaxreg.check(_grad, loss_reading_global, P, X, T).ok
  SCALE = 2.0
  try:
    r = jaxreg.check(_grad, loss_reading_global, P, X, T)
    assert not r.ok and r.row("params['W']").verdict == "wrong"
  finally:
    SCALE = 1.0
  assert jaxreg.check(_grad, loss_reading_global, P, X, T).ok


def test_a_changed_closed_over_array_in_the_loss_is_seen_and_reuses_the_program():
  cell = {"t": T}

  def loss(p, x):
    return 0.5 * jnp.sum((_forward(p, x) - cell["t"]) ** 2)

  def deriv(p, x):
    return _grad(p, x, T)

  cell["t"] = T + 1.0
  assert not jaxreg.check(deriv, loss, P, X).ok
  before = program_cache.stats()
  cell["t"] = T                  # same shape: the same program, a new constant
  assert jaxreg.check(deriv, loss, P, X).ok
  cell["t"] = T - 1.0
  assert not jaxreg.check(deriv, loss, P, X).ok
  after = program_cache.stats()
  assert after.misses == before.misses    # nothing compiled again
  assert after.hits > before.hits


def test_a_changed_default_or_closure_in_the_derivation_is_seen():
  def make(scale):
    def deriv(p, x, t, s=scale):
      return _grad(p, x, t, s)
    return deriv

  def loss(p, x, t):
    return 0.5 * jnp.sum((_forward(p, x) - t) ** 2)

  assert jaxreg.check(make(1.0), loss, P, X, T).ok
  assert not jaxreg.check(make(3.0), loss, P, X, T).ok
  assert jaxreg.check(make(1.0), loss, P, X, T).ok

  factor = [1.0]

  def deriv_reading_list(p, x, t):
    return _grad(p, x, t, factor[0])

  assert jaxreg.check(deriv_reading_list, loss, P, X, T).ok
  factor[0] = 0.5
  assert not jaxreg.check(deriv_reading_list, loss, P, X, T).ok


def test_a_mutated_numpy_array_read_by_the_loss_is_seen():
  t_np = np.asarray(T).copy()

  def loss(p, x):
    return 0.5 * jnp.sum((_forward(p, x) - t_np) ** 2)

  def deriv(p, x):
    return _grad(p, x, T)

  assert jaxreg.check(deriv, loss, P, X).ok
  t_np += 0.5                     # in place: same object, new content
  assert not jaxreg.check(deriv, loss, P, X).ok


def test_kink_probes_see_the_current_loss():
  shift = [0.0]

  def loss(w):
    return jnp.sum(jnp.abs(w - shift[0]))

  w = jnp.array([0.0, 1.0])
  r = jaxreg.check(lambda w: jnp.sign(w), loss, w)
  assert r.ok and r.rows[0].verdict == "kink"     # sign(0) = 0 lies in [-1, 1]
  shift[0] = 1.0                   # now the kink is at w = 1 and sign(w) is wrong at w = 0
  r = jaxreg.check(lambda w: jnp.sign(w), loss, w)
  assert r.rows[0].verdict == "wrong"


def test_a_redefined_derivation_and_loss_reuse_compiled_work():
  def fresh():
    def loss(p, x, t):
      return 0.5 * jnp.sum((_forward(p, x) - t) ** 2)

    def deriv(p, x, t):
      return _grad(p, x, t)
    return deriv, loss

  assert jaxreg.check(*fresh(), P, X, T).ok
  before = program_cache.stats()
  for _ in range(2):
    assert jaxreg.check(*fresh(), P, X, T).ok
  after = program_cache.stats()
  assert after.misses == before.misses
  assert after.hits >= before.hits + 4       # reference and comparison, twice


def test_a_different_literal_is_a_different_program():
  def loss_with(c):
    def loss(w):
      return c * jnp.sum(w ** 2)
    return loss

  w = jnp.array([1.0, 2.0])
  assert jaxreg.check(lambda w: 2 * 0.1 * w, loss_with(0.1), w).ok
  assert not jaxreg.check(lambda w: 2 * 0.1 * w, loss_with(0.1000000001), w).ok


def test_program_key_tells_callbacks_apart():
  def with_callback(fn):
    def f(x):
      return jax.pure_callback(fn, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
    return f

  a = program_cache.trace(with_callback(lambda v: v * 2), jnp.ones(2))
  b = program_cache.trace(with_callback(lambda v: v * 3), jnp.ones(2))
  c = program_cache.trace(lambda x: x * 2, jnp.ones(2))
  d = program_cache.trace(lambda x: x * 2, jnp.ones(2))
  assert str(a.jaxpr) == str(b.jaxpr) and a.key != b.key
  assert c.key == d.key
  assert program_cache.trace(lambda x: x * 2, jnp.ones(3)).key != c.key


def test_check_identity_and_check_update_read_current_globals():
  state = {"alpha": 0.1}

  def leaky(x):
    return jnp.where(x > 0, x, state["alpha"] * x)

  def identity_form(x):
    return (1 + 0.1) * jax.nn.relu(x) - 0.1 * jnp.abs(x)

  assert jaxreg.check_identity(leaky, identity_form, domain=(-2.0, 2.0), n_grid=11,
                               n_random=5).ok
  state["alpha"] = 0.2
  assert not jaxreg.check_identity(leaky, identity_form, domain=(-2.0, 2.0), n_grid=11,
                                   n_random=5).ok

  lr = {"eta": 0.1}

  def sgd_rule(p, g):
    return jax.tree_util.tree_map(lambda w, d: w - lr["eta"] * d, p, g)

  g = jax.tree_util.tree_map(jnp.ones_like, P)
  assert jaxreg.check_update(sgd_rule, optax.sgd(0.1), P, g).ok
  lr["eta"] = 0.2
  assert not jaxreg.check_update(sgd_rule, optax.sgd(0.1), P, g).ok


def test_jitted_helpers_closing_over_different_arrays_are_different_programs():
  def make_loss(c):
    helper = jax.jit(lambda y: y * c)     # c is a constant of the helper's own jaxpr

    def loss(p, x, t):
      return 0.5 * jnp.sum((helper(_forward(p, x)) - t) ** 2)
    return loss

  def deriv(p, x, t):
    y = _forward(p, x)
    dz = 2.0 * (2.0 * y - t) * (1 - y ** 2)
    return {"W": x.T @ dz, "b": dz.sum(0)}

  assert jaxreg.check(deriv, make_loss(jnp.full(3, 2.0)), P, X, T).ok
  assert not jaxreg.check(deriv, make_loss(jnp.full(3, 3.0)), P, X, T).ok
