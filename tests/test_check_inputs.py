"""Bad user code gives a report naming the quantity and the problem, not a JAX traceback."""

import json

import jax.numpy as jnp
import pytest

import jaxreg

import _check_seeds as seeds


@pytest.fixture(scope="module")
def s0():
  return seeds.s0_data(5)


def _with(**changes):
  def deriv(p, x1, t):
    s = seeds.s0_derivation(p, x1, t)
    for k, v in changes.items():
      if v == "drop":
        del s[k]
      elif callable(v):
        s[k] = v(s[k])
      else:
        s[k] = v
    return s
  return deriv


def test_derivation_that_raises(s0):
  def deriv(p, x1, t):
    return {"y": 1 / 0}

  r = jaxreg.check(deriv, seeds.s0_loss, *s0)
  assert not r.ok and r.rows == [] and r.first_wrong is None
  assert "ZeroDivisionError" in r.error and "test_check_inputs.py" in r.error
  assert "could not be run" in str(r)
  json.dumps(r.to_dict(), allow_nan=False)


def test_derivation_returning_nan(s0):
  r = jaxreg.check(_with(x3=lambda a: a.at[0, 0].set(jnp.nan)), seeds.s0_loss, *s0)
  assert r.first_wrong == "x3"
  row = r.row("x3")
  assert row.n_mismatch == 1 and row.worst_index == (0, 0)
  assert "NaN" in row.note
  json.dumps(r.to_dict(), allow_nan=False)


def test_unknown_name_is_a_missing_row(s0):
  r = jaxreg.check(_with(x5=jnp.zeros(3)), seeds.s0_loss, *s0)
  assert r.row("x5").verdict == "missing"
  assert "never taps 'x5'" in r.row("x5").note
  assert all(row.verdict == "ok" for row in r.rows if row.name != "x5")
  assert not r.ok


def test_missing_param_leaf_and_none(s0):
  def deriv(p, x1, t):
    s = seeds.s0_derivation(p, x1, t)
    del s["params"]["D"]
    s["params"]["C"] = None
    return s

  r = jaxreg.check(deriv, seeds.s0_loss, *s0)
  assert r.verdicts()["params['D']"] == "missing"
  assert r.verdicts()["params['C']"] == "missing"
  assert r.first_wrong == "params['C']"


def test_wrong_shape_and_dtype(s0):
  r = jaxreg.check(_with(y=lambda a: a[:, :2], x3="text"), seeds.s0_loss, *s0)
  assert r.row("y").verdict == "shape" and "(6, 2), expected (6, 3)" in r.row("y").note
  assert r.row("x3").verdict == "shape" and "str" in r.row("x3").note
  r = jaxreg.check(_with(y=lambda a: a.astype(jnp.int32)), seeds.s0_loss, *s0)
  assert r.row("y").verdict == "shape" and "int32" in r.row("y").note


def test_float32_answer_for_float64_problem_is_compared_at_float32_tolerance(s0):
  r = jaxreg.check(_with(y=lambda a: a.astype(jnp.float32)), seeds.s0_loss, *s0)
  assert r.row("y").verdict == "ok"
  assert "float32" in r.row("y").note


def test_params_shaped_output_with_wrong_structure(s0):
  p, x1, t = s0
  r = jaxreg.check(lambda p, x1, t: [1.0, 2.0], seeds.s0_loss, p, x1, t)
  assert not r.ok and r.rows == []
  assert r.error == ("the derivation returned a list of 2 item(s) where a pytree shaped like "
                     "params (a dict with keys 'A', 'B', 'C', 'D') or a dict of steps (tap names "
                     "and/or \"params\") is due")
  assert r.unchecked == ["y", "x3", "x2"]
  for out, said in ((None, "returned None"), (jnp.float64(1.0), "returned a scalar")):
    r = jaxreg.check(lambda p, x1, t, out=out: out, seeds.s0_loss, p, x1, t)
    assert r.error.startswith("the derivation " + said + " where a pytree shaped like params")
  r = jaxreg.check(lambda p, x1, t: {"y": jnp.zeros((6, 3)), "params": [1.0]}, seeds.s0_loss,
                   p, x1, t)
  assert any('the "params" entry is a list of 1 item(s)' in n for n in r.notes)
  assert r.row("params['A']").verdict == "missing"
  r = jaxreg.check(lambda w, x: [2 * w * x * x], lambda w, x: jnp.sum((w * x) ** 2), jnp.ones(3),
                   jnp.arange(3.0))
  assert r.error.startswith("the derivation returned a list of 1 item(s) where a pytree shaped "
                            "like params (an array of shape (3,))")


def test_steps_without_params_checks_only_taps(s0):
  r = jaxreg.check(_with(params="drop"), seeds.s0_loss, *s0)
  assert r.ok and [row.kind for row in r.rows] == ["tap"] * 3
  assert any("no \"params\" entry" in n for n in r.notes)


def test_non_traceable_loss_and_derivation_run_eagerly():
  def loss(p, x):
    if p["w"] > 0:                    # Python control flow on a value: not jittable
      return jnp.sum((x * p["w"]) ** 2)
    return jnp.sum(x * p["w"])

  def deriv(p, x):
    w = float(p["w"])
    return {"w": jnp.asarray(2 * w * float(jnp.sum(x ** 2)))}

  r = jaxreg.check(deriv, loss, {"w": jnp.array(0.5)}, jnp.arange(3.0))
  assert r.ok, str(r)
  assert r.referee.verdict == "ok"


def test_bad_loss_and_params_raise_naming_the_argument(s0):
  p, x1, t = s0
  with pytest.raises(TypeError, match="jax.grad cannot differentiate `loss`"):
    jaxreg.check(lambda p: p, lambda p: p["w"] * float(p["w"]), {"w": jnp.array(2.0)})
  with pytest.raises(ValueError, match="scalar"):
    jaxreg.check(seeds.s0_derivation, lambda p, x1, t: x1 @ p["A"], p, x1, t)
  with pytest.raises(TypeError, match="`params` leaf params\\['n'\\]"):
    jaxreg.check(lambda p: p, lambda p: jnp.sum(p["x"]), {"x": jnp.ones(2), "n": jnp.arange(2)})
  with pytest.raises(TypeError, match="`derivation` must be callable"):
    jaxreg.check(None, seeds.s0_loss, p, x1, t)
  with pytest.raises(ValueError, match="no array leaves"):
    jaxreg.check(lambda p: p, lambda p: 0.0, {})


def test_jit_false_and_unhashable_static_args(s0):
  p, x1, t = s0
  r = jaxreg.check(seeds.s0_derivation, seeds.s0_loss, p, x1, t, jit=False)
  assert r.ok

  def loss(p, x, opts):
    return jnp.sum(p * x) * opts["k"]

  def deriv(p, x, opts):
    return x * opts["k"]

  r = jaxreg.check(deriv, loss, jnp.ones(3), jnp.arange(3.0), {"k": 2.0, "unused": [1, 2]})
  assert r.ok


def test_assert_derivation_message_is_the_report(s0):
  with pytest.raises(AssertionError) as e:
    jaxreg.testing.assert_derivation(_with(x2=lambda a: -a), seeds.s0_loss, *s0)
  msg = str(e.value)
  assert "∂L/∂x2" in msg and "sign error" in msg and "wrong" in msg
  r = jaxreg.testing.assert_derivation(_with(x2=lambda a: -a), seeds.s0_loss, *s0,
                                       expect="wrong", expect_first_wrong="x2")
  assert r.first_wrong == "x2"
  with pytest.raises(AssertionError, match="expected the first wrong quantity to be 'y'"):
    jaxreg.testing.assert_derivation(_with(x2=lambda a: -a), seeds.s0_loss, *s0,
                                     expect="wrong", expect_first_wrong="y")


def test_assert_trees_all_close_checks_structure_first():
  from jaxreg.testing import assert_trees_all_close
  assert_trees_all_close({"a": [1.0, 2.0]}, {"a": [1.0, 2.0]})
  with pytest.raises(AssertionError, match="structures differ"):
    assert_trees_all_close({"a": [1.0]}, {"a": (1.0,)})
  with pytest.raises(AssertionError, match=r"tree\['a'\]\[1\]"):
    assert_trees_all_close({"a": [1.0, 2.0]}, {"a": [1.0, 2.5]})


def test_loss_that_is_nan_gives_a_report_not_a_crash():
  def loss(p, x):
    return jnp.sum(jnp.log(p * x))      # log of negatives: NaN

  r = jaxreg.check(lambda p, x: 1.0 / p * jnp.ones_like(x), loss, jnp.ones(3), jnp.array([1.0, -1.0, 2.0]))
  assert not r.ok                            # the referee cannot confirm a NaN loss
  assert r.referee.verdict == "wrong"
  assert r.rows[0].verdict == "ok"           # ∂/∂p log(p·x) = 1/p is finite all the same
  assert any("the loss itself is nan" in n for n in r.notes)
  assert "the loss itself is nan" in str(r)
  json.dumps(r.to_dict(), allow_nan=False)
