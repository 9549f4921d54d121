"""The checker never lies: normalisation layers, composite kinks, bad inputs, layouts, options."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg._checker import tolerance

import _check_seeds as seeds

# ------------------------------------------------ batch norm and layer norm with a bias before

EPS = 1e-5


def _norm_loss(p, x, t, axis):
  """z = xW + b + c; zhat = normalise(z) over ``axis``; y = γ·zhat + β; L = ½ mean Σ (y − t)²."""
  m = x.shape[0]
  z = jaxreg.tap("z", x @ p["W"] + p["b"] + p["c"])
  mu = jnp.mean(z, axis, keepdims=True)
  var = jnp.mean((z - mu) ** 2, axis, keepdims=True)
  zhat = jaxreg.tap("zhat", (z - mu) / jnp.sqrt(var + EPS))
  y = jaxreg.tap("y", p["gamma"] * zhat + p["beta"])
  return 0.5 * jnp.sum((y - t) ** 2) / m


def _norm_derivation(p, x, t, axis, plant=None):
  m = x.shape[0]
  z = x @ p["W"] + p["b"] + p["c"]
  n = z.shape[axis]
  mu = jnp.mean(z, axis, keepdims=True)
  inv = 1 / jnp.sqrt(jnp.mean((z - mu) ** 2, axis, keepdims=True) + EPS)
  zhat = (z - mu) * inv
  y = p["gamma"] * zhat + p["beta"]
  dy = (y - t) / m
  dzhat = dy if plant == "gamma" else dy * p["gamma"]
  s1 = jnp.sum(dzhat, axis, keepdims=True)
  s2 = jnp.sum(dzhat * zhat, axis, keepdims=True)
  dz = inv / n * (n * dzhat - (0 if plant == "mean_term" else s1) - zhat * s2)
  return {"y": dy, "zhat": dzhat, "z": dz,
          "params": {"W": x.T @ dz, "b": dz.sum(0), "c": jnp.sum(dz),
                     "gamma": jnp.sum(dy * zhat, 0), "beta": dy.sum(0)}}


def _norm_data(dtype=np.float64, m=8, n_in=3, n=4, seed=0):
  rng = np.random.default_rng(seed)
  p = {"W": rng.normal(size=(n_in, n)), "b": rng.normal(size=n), "c": np.array(0.3),
       "gamma": rng.normal(size=n), "beta": rng.normal(size=n)}
  p = {k: jnp.asarray(v, dtype) for k, v in p.items()}
  return p, jnp.asarray(rng.normal(size=(m, n_in)), dtype), jnp.asarray(rng.normal(size=(m, n)), dtype)


@pytest.mark.parametrize("axis", [0, 1], ids=["batch_norm", "layer_norm"])
def test_correct_normalisation_layers_with_a_bias_before_are_ok(axis):
  p, x, t = _norm_data()
  r = jaxreg.check(_norm_derivation, _norm_loss, p, x, t, kwargs={"axis": axis})
  assert r.ok, str(r)
  assert r.n_kink == 0
  # The gradient of c (and of b under batch norm) is exactly 0: both sides hold round-off only.
  assert abs(r.row("params['c']").worst_ref or 0.0) < 1e-12


def test_batch_norm_in_float32_is_ok():
  p, x, t = _norm_data(np.float32, m=32)
  r = jaxreg.check(_norm_derivation, _norm_loss, p, x, t, kwargs={"axis": 0})
  assert r.ok, str(r)


@pytest.mark.parametrize("axis,plant,first", [(0, "mean_term", "z"), (1, "gamma", "zhat")])
def test_planted_errors_in_normalisation_layers_are_wrong_at_their_step(axis, plant, first):
  p, x, t = _norm_data()
  r = jaxreg.check(functools.partial(_norm_derivation, plant=plant), _norm_loss, p, x, t,
                   kwargs={"axis": axis})
  assert r.first_wrong == first, str(r)
  assert [row.verdict for row in r.rows[:[row.name for row in r.rows].index(first)]] == \
      ["ok"] * [row.name for row in r.rows].index(first)


# ------------------------------------------------ composite kinks: relu at 0 feeding a hinge at 0

def heaviside(x, at_zero):
  return jnp.where(x > 0, 1.0, jnp.where(x == 0, at_zero, 0.0))


def _hinge_loss(p, x, t):
  z = jaxreg.tap("z", x @ p["W"] + p["b"])
  a = jaxreg.tap("a", jax.nn.relu(z))
  s = jaxreg.tap("s", a @ p["v"] + p["c"])
  return jnp.sum(jax.nn.relu(1 - t * s)) / x.shape[0]


def _hinge_derivation(p, x, t, relu_at_0=1.0, hinge_at_0=1.0):
  """Conventions relu'(0) = 1 and an active hinge at margin 0 (both valid locally)."""
  m = x.shape[0]
  z = x @ p["W"] + p["b"]
  a = jax.nn.relu(z)
  s = a @ p["v"] + p["c"]
  ds = -t * heaviside(1 - t * s, hinge_at_0) / m
  da = ds[:, None] * p["v"][None, :]
  dz = da * heaviside(z, relu_at_0)
  return {"s": ds, "a": da, "z": dz,
          "params": {"W": x.T @ dz, "b": dz.sum(0), "v": a.T @ ds, "c": jnp.sum(ds)}}


def _hinge_data():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(5, 2))
  x[0] = 0.0                      # sample 0: z = b = [0, 0.5, -1] exactly
  p = {"W": jnp.asarray(rng.normal(size=(2, 3))), "b": jnp.array([0.0, 0.5, -1.0]),
       "v": jnp.array([0.7, 1.0, -0.3]), "c": jnp.array(0.5)}      # s_0 = 0.5 + 0.5 = 1
  t = jnp.array([1.0, 1.0, -1.0, 1.0, -1.0])                       # margin_0 = 1 − 1·1 = 0
  return p, jnp.asarray(x), t


def test_relu_at_zero_feeding_a_hinge_at_zero_is_a_composite_kink():
  p, x, t = _hinge_data()
  r = jaxreg.check(_hinge_derivation, _hinge_loss, p, x, t)
  assert r.ok, str(r)
  z = r.row("z")
  assert z.verdict == "kink"
  assert "composite kink at element [0, 0]" in z.note
  assert "your ∂L/∂a" in z.note and "local conventions compose" in z.note
  assert r.row("params['b']").verdict == "kink"


@pytest.mark.parametrize("plant,first", [({"relu_at_0": 2.0}, "z"), ({"hinge_at_0": 3.0}, "s")])
def test_values_no_combination_of_conventions_gives_stay_wrong(plant, first):
  p, x, t = _hinge_data()
  r = jaxreg.check(functools.partial(_hinge_derivation, **plant), _hinge_loss, p, x, t)
  assert r.first_wrong == first, str(r)
  assert "nor a product of valid conventions" in r.row(first).note or \
      "not a kink" in r.row(first).note


def _penalised_loss(p, x, t):
  return _hinge_loss(p, x, t) + 0.1 * jnp.sum((p["b"] - 1.0) ** 2)


def _penalised_derivation(p, x, t, **conventions):
  s = _hinge_derivation(p, x, t, **conventions)
  s["params"]["b"] = s["params"]["b"] + 0.2 * (p["b"] - 1.0)
  return s


def test_composite_kink_on_a_parameter_row_with_a_penalty_around_the_tap():
  # ∂L/∂b[0] composes the two conventions through z, plus the penalty that bypasses z.
  p, x, t = _hinge_data()
  r = jaxreg.check(_penalised_derivation, _penalised_loss, p, x, t)
  assert r.ok, str(r)
  b = r.row("params['b']")
  assert b.verdict == "kink" and "composite kink at element [0]" in b.note
  assert "along the paths around z" in b.note


@pytest.mark.parametrize("plant,first", [({"relu_at_0": 2.0}, "z"), ({"hinge_at_0": 3.0}, "s")])
def test_with_a_penalty_values_no_combination_gives_stay_wrong(plant, first):
  p, x, t = _hinge_data()
  r = jaxreg.check(functools.partial(_penalised_derivation, **plant), _penalised_loss, p, x, t)
  assert r.first_wrong == first, str(r)
  assert r.row("params['b']").verdict == "wrong"


def test_a_parameter_row_must_follow_from_the_users_own_step():
  # ∂L/∂x2 takes relu'(0) = 1, ∂L/∂B takes ½ at the same element: each lies between the loss's
  # one-sided derivatives, but the smooth step x2 → B does not carry the one into the other.
  p, x1, t = seeds.s0_data(hit_zero=True)

  def mixed(params, x1, t):
    s = seeds.s0_derivation(params, x1, t)
    x2 = x1 @ params["A"] + params["B"]
    s["params"]["B"] = (s["x3"] * seeds.heaviside(x2, 0.5)).sum(0)
    return s

  r = jaxreg.check(mixed, seeds.s0_loss, p, x1, t)
  assert r.first_wrong == "params['B']", str(r)
  assert r.row("x2").verdict == "kink"
  assert "does not follow from your ∂L/∂x2" in r.row("params['B']").note


# ------------------------------------------------ non-finite inputs and unreadable outputs

def _lin_loss(p, x, t, lam=0.0):
  return 0.5 * jnp.sum((x @ p["w"] - t) ** 2) + lam * jnp.sum(p["w"] ** 2)


def _lin_grad(p, x, t, lam=0.0):
  return {"w": x.T @ (x @ p["w"] - t) + 2 * lam * p["w"]}


def test_non_finite_params_or_data_raise_naming_the_argument_and_index():
  p = {"w": jnp.array([1.0, 2.0])}
  x, t = jnp.ones((3, 2)), jnp.zeros(3)
  with pytest.raises(ValueError, match=r"`params` leaf params\['w'\] holds nan at index \(1,\)"):
    jaxreg.check(_lin_grad, _lin_loss, {"w": jnp.array([1.0, jnp.nan])}, x, t)
  with pytest.raises(ValueError, match=r"argument x \(args\[0\]\) holds inf at index \(2, 0\)"):
    jaxreg.check(_lin_grad, _lin_loss, p, x.at[2, 0].set(jnp.inf), t)
  with pytest.raises(ValueError, match=r"argument kwargs\['lam'\] holds nan"):
    jaxreg.check(_lin_grad, _lin_loss, p, x, t, kwargs={"lam": float("nan")})


# ------------------------------------------------ the check's options and the user's keywords

def test_user_keywords_go_through_kwargs_even_named_like_options():
  def loss(p, x, seed=0.0, jit=1.0):
    return jnp.sum((p * x - seed) ** 2) * jit

  def deriv(p, x, seed=0.0, jit=1.0):
    return 2 * x * (p * x - seed) * jit

  p, x = jnp.array([0.5, -1.0]), jnp.array([2.0, 3.0])
  assert jaxreg.check(deriv, loss, p, x, kwargs={"seed": 0.25, "jit": 3.0}).ok
  r = jaxreg.check(lambda p, x, seed=0.0, jit=1.0: deriv(p, x, seed, 1.0), loss, p, x,
                   kwargs={"seed": 0.25, "jit": 3.0})
  assert r.first_wrong == "params"
  with pytest.raises(TypeError, match="lam"):
    jaxreg.check(_lin_grad, _lin_loss, {"w": jnp.ones(2)}, jnp.ones((3, 2)), jnp.zeros(3), lam=0.1)
  with pytest.raises(TypeError, match="`kwargs` must be a dict"):
    jaxreg.check(deriv, loss, p, x, kwargs=[("seed", 1.0)])


def test_negative_tolerances_are_errors_everywhere():
  p = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="`rtol` must be a finite number >= 0"):
    jaxreg.check(_lin_grad, _lin_loss, p, jnp.ones((3, 2)), jnp.zeros(3), rtol=-1e-6)
  with pytest.raises(ValueError, match="`atol`"):
    jaxreg.check_identity(jnp.sin, jnp.sin, domain=(-1.0, 1.0), atol=-1.0)
  with pytest.raises(ValueError, match="check_update: `rtol`"):
    jaxreg.check_update(optax.sgd(0.1), optax.sgd(0.1), p, p, rtol=-1.0)
  assert tolerance.resolve(jnp.float32, None, None) == tolerance.Tolerance(1e-4, 0.0, 1e-2)


# ------------------------------------------------ diagnoses that fit real layouts

def _fe_loss(p, x, t):
  """Data laid out (features, examples): x (4, 6), t (2, 6)."""
  y = jaxreg.tap("y", p["W"] @ x)
  return 0.5 * jnp.sum((y - t) ** 2) / x.shape[1]


def _fe_derivation(p, x, t, factor=1.0):
  dy = factor * (p["W"] @ x - t) / x.shape[1]
  return {"y": dy, "params": {"W": dy @ x.T}}


def test_a_factor_is_named_by_the_data_dimension_it_equals():
  rng = np.random.default_rng(0)
  p = {"W": jnp.asarray(rng.normal(size=(2, 4)))}
  x, t = jnp.asarray(rng.normal(size=(4, 6))), jnp.asarray(rng.normal(size=(2, 6)))
  four = functools.partial(_fe_derivation, factor=4.0)
  d = jaxreg.check(four, _fe_loss, p, x, t).row("y").diagnosis
  assert "4 is the size of axis 0 of x (args[0])" in d and "batch size" not in d
  d = jaxreg.check(four, _fe_loss, p, x, t, batch_axis=1).row("y").diagnosis
  assert "not the batch axis" in d and "1/m" not in d
  six = functools.partial(_fe_derivation, factor=6.0)
  d = jaxreg.check(six, _fe_loss, p, x, t, batch_axis=1).row("y").diagnosis
  assert "the batch size 6, axis 1 of x (args[0])): a missing 1/m" in d


def test_a_missing_l1_term_is_diagnosed_despite_parameters_at_zero():
  def loss(p, x, t):
    return 0.5 * jnp.sum((x @ p["w"] - t) ** 2) + 0.1 * jnp.sum(jnp.abs(p["w"]))

  p = {"w": jnp.array([0.5, 0.0, -1.0, 0.0, 2.0])}
  x, t = jnp.asarray(np.random.default_rng(1).normal(size=(3, 5))), jnp.ones(3)
  r = jaxreg.check(lambda p, x, t: {"w": x.T @ (x @ p["w"] - t)}, loss, p, x, t)
  d = r.row("params['w']").diagnosis
  assert r.first_wrong == "params['w']" and "sgn(params['w'])" in d and "L1 term of the loss is missing" in d


def test_the_activation_slip_rule_needs_most_of_the_region():
  def loss(p, x):
    z = jaxreg.tap("z", x * p)
    return jnp.sum(jax.nn.relu(z) * x)

  x = jnp.linspace(-1.0, 1.0, 20) + 0.025
  p = jnp.ones(20)

  def few_wrong(p, x):                  # wrong at 2 of the 10 elements where z < 0
    dz = x * (x * p > 0)
    return {"z": dz.at[:2].set(x[:2]), "params": dz * x}

  def slip(p, x):                       # relu' forgotten: wrong wherever z < 0
    return {"z": x, "params": x * x}

  assert "activation-derivative slip" not in (jaxreg.check(few_wrong, loss, p, x).row("z").diagnosis or "")
  d = jaxreg.check(slip, loss, p, x).row("z").diagnosis
  assert "wrong only where z < 0 (10 of the 10 such elements)" in d and "activation" in d


def test_two_independent_wrong_steps_are_both_named_and_inherited_ones_are_not():
  p, x, t = _hinge_data()
  p = {**p, "b": p["b"] + 0.1}          # no kinks

  def two(p, x, t):
    s = _hinge_derivation(p, x, t)
    s["a"] = -s["a"]                     # wrong step s -> a; z, W, b inherit it
    s["params"]["c"] = 2 * s["params"]["c"]        # and an independent slip on c
    s["z"] = s["a"] * (x @ p["W"] + p["b"] > 0)
    s["params"]["W"], s["params"]["b"] = x.T @ s["z"], s["z"].sum(0)
    return s

  r = jaxreg.check(two, _hinge_loss, p, x, t)
  assert r.first_wrong == "a"
  assert {row.name for row in r.rows if row.verdict == "wrong"} == {
      "a", "z", "params['W']", "params['b']", "params['c']"}
  assert "Also wrong: ∂L/∂params['c'] (yours = 2 × reference" in r.summary
  assert "∂L/∂z" not in r.summary.split("Also wrong")[1]
  assert "params['W']" not in r.summary


def test_a_row_vector_bias_gradient_is_a_shape_error_with_its_values_compared():
  p = {"w": jnp.array([[1.0, -2.0], [0.5, 0.3]]), "b": jnp.array([0.1, -0.2])}
  x, t = jnp.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]]), jnp.zeros((3, 2))

  def loss(p, x, t):
    return 0.5 * jnp.sum((x @ p["w"] + p["b"] - t) ** 2)

  def deriv(p, x, t, k=1.0):
    dy = x @ p["w"] + p["b"] - t
    return {"w": x.T @ dy, "b": k * dy.sum(0, keepdims=True)}

  r = jaxreg.check(deriv, loss, p, x, t)
  row = r.row("params['b']")
  assert row.verdict == "shape" and "(1, 2), expected (2,)" in row.note
  assert "the values agree" in row.note and r.first_wrong == "params['b']"
  row = jaxreg.check(functools.partial(deriv, k=3.0), loss, p, x, t).row("params['b']")
  assert row.verdict == "shape" and "the values differ too (2 of 2)" in row.note
  assert len(row.worst_index) == 1 and row.worst_user == pytest.approx(3 * row.worst_ref)


def test_a_missing_l2_term_is_diagnosed_despite_kink_elements():
  def loss(p, x, t):
    return 0.5 * jnp.sum((jax.nn.relu(x @ p["w"]) - t) ** 2) + 0.05 * jnp.sum(p["w"] ** 2)

  def no_l2(p, x, t):                   # relu'(0) = 1, and the L2 term forgotten
    z = x @ p["w"]
    return {"w": x.T @ ((jax.nn.relu(z) - t) * heaviside(z, 1.0))}

  rng = np.random.default_rng(2)
  x = rng.normal(size=(4, 10))
  x[0] = 0.0
  x[0, :2] = [1.0, -1.0]
  w = rng.normal(size=(10, 20))
  w[1, 3] = w[0, 3]                      # z[0, 3] = w[0, 3] − w[1, 3] = 0 exactly
  r = jaxreg.check(no_l2, loss, {"w": jnp.asarray(w)}, jnp.asarray(x), jnp.asarray(rng.normal(size=(4, 20))))
  d = r.row("params['w']").diagnosis
  assert "= -0.1 · params['w']: the L2 term of the loss" in d and "left out of this fit" in d
