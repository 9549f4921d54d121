"""Composite kinks in derivations that return only the parameter gradient (no tap downstream):
judged by the loss's own kink sites at every valid convention (jaxreg/_checker/conventions.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg._checker import conventions
from jaxreg._checker import reference

import test_check_honest as honest


def _params_only(p, x, t, **conv):
  return honest._hinge_derivation(p, x, t, **conv)["params"]   # pylint: disable=protected-access


def test_relu_at_zero_feeding_a_hinge_at_zero_params_only_is_a_composite_kink():
  # Before: params['b'] was `wrong` (0 lies outside the loss's one-sided derivatives 0.14, 0.14).
  p, x, t = honest._hinge_data()                                  # pylint: disable=protected-access
  r = jaxreg.check(_params_only, honest._hinge_loss, p, x, t)      # pylint: disable=protected-access
  assert r.ok, str(r)
  b = r.row("params['b']")
  assert b.verdict == "kink"
  assert "composite kink at element [0]" in b.note and "local conventions compose" in b.note
  # the note names the kinks it composes, where the user's loss has them
  assert "relu (max) at test_check_honest.py:" in b.note and "(_hinge_loss)" in b.note


@pytest.mark.parametrize("conv", [{"relu_at_0": 0.0, "hinge_at_0": 0.0},
                                  {"relu_at_0": 0.5, "hinge_at_0": 0.25},
                                  {"relu_at_0": 1.0, "hinge_at_0": 0.0}])
def test_every_mix_of_valid_conventions_is_accepted(conv):
  p, x, t = honest._hinge_data()                                  # pylint: disable=protected-access
  r = jaxreg.check(functools.partial(_params_only, **conv), honest._hinge_loss, p, x, t)  # pylint: disable=protected-access
  assert r.ok, str(r)


@pytest.mark.parametrize("plant", [{"relu_at_0": 2.0}, {"hinge_at_0": 3.0}, {"relu_at_0": -1.0}])
def test_values_no_convention_gives_stay_wrong_params_only(plant):
  p, x, t = honest._hinge_data()                                  # pylint: disable=protected-access
  r = jaxreg.check(functools.partial(_params_only, **plant), honest._hinge_loss, p, x, t)  # pylint: disable=protected-access
  assert not r.ok
  wrong = [row for row in r.rows if row.verdict == "wrong"]
  assert wrong and r.first_wrong == wrong[0].name
  assert any("is not a product of valid conventions" in (row.note or "") and
             "they give values in [" in row.note for row in wrong), str(r)


def _where_loss(p, x, t):
  """A leaky ReLU written with jnp.where, feeding |·|: two kinds of kink site."""
  z = x @ p["W"] + p["b"]
  a = jnp.where(z > 0, z, 0.25 * z)
  return jnp.sum(jnp.abs(a @ p["v"] - t)) / x.shape[0]


def _where_derivation(p, x, t, leak_at_0=1.0, abs_at_0=1.0):
  m = x.shape[0]
  z = x @ p["W"] + p["b"]
  a = jnp.where(z > 0, z, 0.25 * z)
  e = a @ p["v"] - t
  de = jnp.where(e == 0, abs_at_0, jnp.sign(e)) / m
  da = de[:, None] * p["v"][None, :]
  dz = da * jnp.where(z > 0, 1.0, jnp.where(z == 0, leak_at_0, 0.25))
  return {"W": x.T @ dz, "b": dz.sum(0), "v": a.T @ de}


def _where_data():
  rng = np.random.default_rng(5)
  x = rng.integers(-2, 3, size=(4, 2)).astype(float)
  x[0] = 0.0                                            # sample 0: z = b
  p = {"W": jnp.asarray(rng.integers(-2, 3, size=(2, 3)) / 2.0),
       "b": jnp.array([0.0, 0.5, -1.0]), "v": jnp.array([0.5, 1.0, -0.75])}
  t = jnp.asarray([0.5, 0.25, -1.5, 2.0])               # e_0 = 0.5·1 + 0.75·0.25 … set below
  z0 = np.asarray(p["b"])
  a0 = np.where(z0 > 0, z0, 0.25 * z0)
  t = t.at[0].set(float(a0 @ np.asarray(p["v"])))       # |e_0| at its kink too
  return p, jnp.asarray(x), t


@pytest.mark.parametrize("conv", [{"leak_at_0": 1.0, "abs_at_0": 1.0},
                                  {"leak_at_0": 0.25, "abs_at_0": -1.0},
                                  {"leak_at_0": 0.5, "abs_at_0": 0.0}])
def test_where_and_abs_sites_compose(conv):
  p, x, t = _where_data()
  r = jaxreg.check(functools.partial(_where_derivation, **conv), _where_loss, p, x, t)
  assert r.ok, str(r)


def test_where_and_abs_sites_wrong_values_stay_wrong():
  p, x, t = _where_data()
  r = jaxreg.check(functools.partial(_where_derivation, abs_at_0=3.0), _where_loss, p, x, t)
  assert not r.ok, str(r)
  r = jaxreg.check(functools.partial(_where_derivation, leak_at_0=2.0), _where_loss, p, x, t)
  assert not r.ok, str(r)


def test_a_tie_of_the_data_alone_is_no_kink():
  # where(t > 0, w, −w) with t = 0 exactly and w = 0: both branches are 0 there, but no change
  # of the parameters moves t, so the loss is (1 − w)² near w = 0 and its derivative is −2.
  def loss(p, t):
    return jnp.sum((jnp.where(t > 0, p["w"], -p["w"]) + 1.0) ** 2)

  p, t = {"w": jnp.zeros(1)}, jnp.zeros(1)
  assert jaxreg.check(lambda p, t: {"w": jnp.array([-2.0])}, loss, p, t).ok
  r = jaxreg.check(lambda p, t: {"w": jnp.array([2.0])}, loss, p, t)
  assert r.row("params['w']").verdict == "wrong", str(r)
  assert "not a kink" in r.row("params['w']").note


def test_a_smooth_function_with_a_custom_derivative_is_not_seen_through():
  # softplus = logaddexp(x, 0) computes with max and |·| inside a custom_jvp: its program ties
  # at 0, but the function is smooth there (softplus′(0) = ½), so 1 stays wrong.
  def loss(p, x):
    return jnp.sum(jax.nn.softplus(x @ p["w"]))

  p, x = {"w": jnp.array([1.0, -1.0])}, jnp.array([[1.0, 1.0], [2.0, 0.0]])   # x@w = [0, 2]
  good = lambda p, x: {"w": x.T @ jax.nn.sigmoid(x @ p["w"])}
  bad = lambda p, x: {"w": x.T @ jnp.where(x @ p["w"] == 0, 1.0, jax.nn.sigmoid(x @ p["w"]))}
  assert jaxreg.check(good, loss, p, x).ok
  r = jaxreg.check(bad, loss, p, x)
  assert r.row("params['w']").verdict == "wrong", str(r)


def _signs(n):
  return jnp.where(jnp.arange(n) % 2 == 0, 1.0, -1.0)


def _wide_loss(p, x, t):
  """One scalar ``c`` moves every hidden unit, half of them each way: with all of them at 0,
  ∂L/∂c passes 14 kinks, and a convention taken at all of them lies outside both one-sided
  derivatives of the loss (each side opens only half of the units)."""
  z = x @ p["W"] + p["c"] * _signs(p["W"].shape[1])
  return 0.5 * jnp.sum((jax.nn.relu(z) @ p["v"] - t) ** 2) / x.shape[0]


def _wide_derivation(p, x, t, relu_at_0):
  k = _signs(p["W"].shape[1])
  z = x @ p["W"] + p["c"] * k
  y = jax.nn.relu(z) @ p["v"]
  dy = (y - t) / x.shape[0]
  dz = dy[:, None] * p["v"][None, :] * jnp.where(z > 0, 1.0, jnp.where(z == 0, relu_at_0, 0.0))
  return {"W": x.T @ dz, "c": jnp.sum(dz * k), "v": jax.nn.relu(z).T @ dy}


def _wide_data(n_hidden=14):
  rng = np.random.default_rng(2)
  x = rng.normal(size=(3, 2))
  x[0] = 0.0                                       # sample 0: z = c = 0 in every hidden unit
  p = {"W": jnp.asarray(rng.normal(size=(2, n_hidden))), "c": jnp.array(0.0),
       "v": jnp.asarray(rng.normal(size=n_hidden))}
  return p, jnp.asarray(x), jnp.asarray(rng.normal(size=3) + 3.0)


@pytest.mark.parametrize("relu_at_0", [1.0, 0.5, 0.0])
def test_more_kinks_than_the_exhaustive_limit_are_searched(relu_at_0):
  assert conventions.EXHAUSTIVE < 14
  p, x, t = _wide_data()
  r = jaxreg.check(functools.partial(_wide_derivation, relu_at_0=relu_at_0), _wide_loss, p, x, t)
  assert r.ok, str(r)
  if relu_at_0 == 1.0:
    assert "14 kinks of the loss it passes through" in r.row("params['c']").note


def test_a_value_beyond_every_convention_is_wrong_when_searched():
  p, x, t = _wide_data()
  r = jaxreg.check(functools.partial(_wide_derivation, relu_at_0=3.0), _wide_loss, p, x, t)
  c = r.row("params['c']")
  assert c.verdict == "wrong", str(r)
  assert "not exhaustive" in c.note


def test_the_search_finds_the_ends_of_an_exhaustive_range():
  # With 8 kinks every combination is evaluated: the range's ends are the sums of the
  # positive (negative) terms of ∂L/∂c over the units at 0 plus the part no kink touches.
  p, x, t = _wide_data(n_hidden=8)
  loss = lambda q, x, t: _wide_loss(q, x, t)
  split = reference.Split((x, t), {})
  traced = reference.trace_loss(loss, split, p)
  search = conventions.Search.build(traced, p, split.dyn, jnp.float64)
  assert search is not None and int(search.active.sum()) == 8      # the 8 units of sample 0
  q = [k for k, (path, _) in enumerate(jax.tree_util.tree_flatten_with_path(p)[0])
       if jax.tree_util.keystr(path) == "['c']"][0]
  rng = search.range(q, 0, u=1e9, r=0.0, margin=0.0)
  k, v = np.asarray(_signs(8)), np.asarray(p["v"])
  z = np.asarray(x @ p["W"]) + float(p["c"]) * k
  dy = (np.maximum(z, 0) @ v - np.asarray(t)) / 3
  terms = dy[0] * v * k                              # sample 0, each unit at its kink
  rest = float(np.sum(dy[1:, None] * (v * k)[None, :] * (z[1:] > 0)))
  assert rng.exhaustive and len(rng.kinks) == 8
  np.testing.assert_allclose(rng.hi, rest + terms[terms > 0].sum(), rtol=1e-12)
  np.testing.assert_allclose(rng.lo, rest + terms[terms < 0].sum(), rtol=1e-12)
  assert not rng.reached
