"""`jaxreg.tap` inside jax.vmap, lax.scan, jax.checkpoint and jax.jit; clear errors elsewhere."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg

RNG = np.random.default_rng(1)
W = jnp.asarray(RNG.normal(size=(3, 3)) * 0.5)
X = jnp.asarray(RNG.normal(size=(4, 3)))
P = {"W": W}


def _dense_steps(p, x, dz_scale=1.0):
  """Steps of ``sum(tanh(x @ W))`` with the tap ``z = x @ W``."""
  z = x @ p["W"]
  dz = dz_scale * (1 - jnp.tanh(z) ** 2)
  return {"z": dz, "params": {"W": x.T @ dz}}


def test_tap_inside_vmap_is_the_whole_batch():
  def loss(p, x):
    def one(xi):
      return jnp.sum(jnp.tanh(jaxreg.tap("z", xi @ p["W"])))
    return jnp.sum(jax.vmap(one)(x))

  r = jaxreg.check(_dense_steps, loss, P, X)
  assert r.ok, str(r)
  assert r.row("z").shape == (4, 3)
  bad = jaxreg.check(lambda p, x: _dense_steps(p, x, 2.0), loss, P, X)
  assert bad.row("z").verdict == "wrong"


def test_tap_inside_vmap_with_another_axis_is_moved_first():
  def loss(p, x):
    zt = jax.vmap(lambda xi: jaxreg.tap("z", xi @ p["W"]), out_axes=1)(x)   # (3, 4)
    return jnp.sum(jnp.tanh(zt))

  def loss_axis1(p, xt):
    return jnp.sum(jax.vmap(lambda xi: jnp.tanh(jaxreg.tap("z", xi @ p["W"])),
                            in_axes=1)(xt))

  assert jaxreg.check(_dense_steps, loss, P, X).ok
  r = jaxreg.check(lambda p, xt: _dense_steps(p, xt.T), loss_axis1, P, X.T)
  assert r.ok and r.row("z").shape == (4, 3), str(r)


def _rnn_loss(p, x):
  def body(h, xi):
    h = jaxreg.tap("h", jnp.tanh(h @ p["W"] + xi))
    return h, jnp.sum(h ** 2)
  _, per_step = jax.lax.scan(body, jnp.zeros(3), x)
  return jnp.sum(per_step)


def _bptt(p, x, slip=False):
  """Backprop through time of ``_rnn_loss``: ∂L/∂h_t (total) for every step, and ∂L/∂W."""
  hs, h = [], jnp.zeros(3)
  for xi in x:
    h = jnp.tanh(h @ p["W"] + xi)
    hs.append(h)
  dhs = [None] * len(hs)
  carry = jnp.zeros(3)
  dW = jnp.zeros_like(p["W"])
  for t in reversed(range(len(hs))):
    dh = 2 * hs[t] + carry
    dhs[t] = dh
    da = dh * (1 - hs[t] ** 2) if not (slip and t == 1) else dh
    h_prev = hs[t - 1] if t else jnp.zeros(3)
    dW = dW + jnp.outer(h_prev, da)
    carry = da @ p["W"].T
  return {"h": jnp.stack(dhs), "params": {"W": dW}}


def test_tap_inside_scan_is_the_stack_of_per_step_values():
  r = jaxreg.check(_bptt, _rnn_loss, P, X)
  assert r.ok, str(r)
  assert r.row("h").shape == (4, 3)
  bad = jaxreg.check(lambda p, x: _bptt(p, x, slip=True), _rnn_loss, P, X)
  assert bad.row("h").verdict == "wrong"
  assert bad.row("h").worst_index[0] == 0     # the slip at step 1 reaches step 0 only


def test_tap_inside_fori_loop_and_reverse_scan():
  def loss(p, x):
    def body(i, h):
      return jnp.tanh(jaxreg.tap("a", h @ p["W"] + x[i]))
    return jnp.sum(jax.lax.fori_loop(0, x.shape[0], body, jnp.zeros(3)))

  def steps(p, x):
    def f(a_all):
      h = jnp.zeros(3)
      for i in range(x.shape[0]):
        h = jnp.tanh(h @ p["W"] + x[i] + a_all[i])
      return jnp.sum(h)
    da = jax.grad(f)(jnp.zeros((x.shape[0], 3)))
    return {"a": da}

  r = jaxreg.check(steps, loss, P, X)
  assert r.ok and r.row("a").shape == (4, 3), str(r)

  def rev_loss(p, x):
    def body(h, xi):
      h = jaxreg.tap("h", jnp.tanh(h @ p["W"] + xi))
      return h, None
    h, _ = jax.lax.scan(body, jnp.zeros(3), x, reverse=True)
    return jnp.sum(h)

  def rev_steps(p, x):
    return {"h": _bptt_reverse(p, x)}

  assert jaxreg.check(rev_steps, rev_loss, P, X).ok


def _bptt_reverse(p, x):
  def f(eps):
    h = jnp.zeros(3)
    for t in reversed(range(x.shape[0])):
      h = jnp.tanh(h @ p["W"] + x[t]) + eps[t]
    return jnp.sum(h)
  return jax.grad(f)(jnp.zeros((x.shape[0], 3)))


def test_tap_inside_nested_scans_stacks_outer_first():
  def loss(p, x):
    def outer(c, xi):
      def inner(h, k):
        return jaxreg.tap("h", jnp.tanh(h @ p["W"] + k * xi)), None
      c, _ = jax.lax.scan(inner, c, jnp.arange(2.0))
      return c, None
    c, _ = jax.lax.scan(outer, jnp.zeros(3), x)
    return jnp.sum(c)

  def steps(p, x):
    def f(eps):
      h = jnp.zeros(3)
      for i in range(x.shape[0]):
        for k in range(2):
          h = jnp.tanh(h @ p["W"] + k * x[i]) + eps[i, k]
      return jnp.sum(h)
    return {"h": jax.grad(f)(jnp.zeros((x.shape[0], 2, 3)))}

  r = jaxreg.check(steps, loss, P, X)
  assert r.ok and r.row("h").shape == (4, 2, 3), str(r)


def test_tap_inside_checkpoint_and_a_jitted_helper():
  def loss_remat(p, x):
    f = jax.checkpoint(lambda z: jnp.tanh(jaxreg.tap("z", z)))
    return jnp.sum(f(x @ p["W"]))

  @jax.jit
  def helper(z):
    return jnp.tanh(jaxreg.tap("z", z))

  helper(X @ W)                     # traced and compiled before the check, without taps

  def loss_jit(p, x):
    return jnp.sum(helper(x @ p["W"]))

  for loss in (loss_remat, loss_jit):
    r = jaxreg.check(_dense_steps, loss, P, X)
    assert r.ok and [row.name for row in r.rows] == ["z", "params['W']"], str(r)
  assert jnp.allclose(helper(X @ W), jnp.tanh(X @ W))    # the helper still works outside


def test_a_jitted_helper_used_twice_is_a_name_tapped_twice():
  @jax.jit
  def helper(z):
    return jnp.tanh(jaxreg.tap("z", z))

  def loss(p, x):
    return jnp.sum(helper(helper(x @ p["W"])))

  with pytest.raises(ValueError, match="'z' was tapped twice"):
    jaxreg.check(_dense_steps, loss, P, X)


@pytest.mark.parametrize("where, match", [
    ("while", "lax.while_loop"),
    ("cond", "lax.cond"),
    ("custom_jvp", r"a function with a custom derivative \(jax.custom_jvp\)"),
])
def test_taps_under_unsupported_transformations_name_them(where, match):
  @jax.custom_jvp
  def f(z):
    return jnp.tanh(jaxreg.tap("z", z))

  f.defjvp(lambda primals, tangents: (f(*primals), tangents[0] * (1 - f(*primals) ** 2)))

  def loss(p, x):
    z = x @ p["W"]
    if where == "while":
      z = jax.lax.while_loop(lambda c: c[1] < 2, lambda c: (jaxreg.tap("z", c[0] * 2), c[1] + 1),
                             (z, 0))[0]
    elif where == "cond":
      z = jax.lax.cond(jnp.sum(z) > 0, lambda u: jaxreg.tap("z", u), lambda u: u, z)
    else:
      z = f(z)
    return jnp.sum(z)

  with pytest.raises(ValueError, match=f"'z' is tapped inside {match}"):
    jaxreg.check(_dense_steps, loss, P, X)


def test_tap_under_a_transformation_in_an_eagerly_run_loss_is_a_clear_error():
  def loss(p, x):
    scale = 2.0 if p["W"][0, 0] > 0 else 1.0      # Python control flow on a value: eager
    return scale * jnp.sum(jax.vmap(lambda xi: jnp.tanh(jaxreg.tap("z", xi @ p["W"])))(x))

  with pytest.raises(ValueError, match="'z' is tapped inside a JAX transformation.*eagerly"):
    jaxreg.check(_dense_steps, loss, P, X)
