"""S1 — activation functions and their derivatives (seeds/001_…txt).

    jaxreg check derivations/s1_activations.py

The source's NumPy code, in ``jax.numpy``, on its own grid
``np.arange(-5.0, 5.0, 0.01)`` (with 0 included exactly). Kink convention of
this source: ``relu'(0) = 0`` (``x > 0``), ``leaky'(0) = α = 0.01``
(``np.where(x > 0, 1, 0.01)``). Each derivative is checked as the gradient of
``Σ f(x)`` with respect to the points ``x``.
"""

import functools

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxreg  # noqa: E402

CMD = "jaxreg check derivations/s1_activations.py"


def grid():
  return jnp.asarray(np.unique(np.concatenate([np.arange(-5.0, 5.0, 0.01), [0.0]])))


# ----------------------------------------------------------------- the source's functions
def sigmoid(x):
  return 1 / (1 + jnp.exp(-x))


def sigmoid_d(x):
  return (1 / (1 + jnp.exp(-x))) * (1 - (1 / (1 + jnp.exp(-x))))


def tanh(x):
  return (jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) + jnp.exp(-x))


def tanh_d(x):
  return 1 - ((jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) + jnp.exp(-x))) ** 2


def tanh_d_quotient(x):
  return 4 / (jnp.exp(x) + jnp.exp(-x)) ** 2        # the source's second form


def relu(x):
  return jnp.maximum(0, x)


def relu_d(x):
  return jnp.asarray(x > 0, dtype=x.dtype)          # the source: np.array(x > 0, dtype=np.int)


def leaky_relu(x):
  return jnp.where(x > 0, x, 0.01 * x)


def leaky_relu_d(x):
  return jnp.where(x > 0, 1, 0.01).astype(x.dtype)


# ----------------------------------------------------------------- check helpers
def _sum_of(f):
  def loss(p):
    return jnp.sum(f(p["x"]))
  return loss


def _derivative(fd):
  def derivation(p):
    return {"x": fd(p["x"])}
  return derivation


LOSSES = {name: _sum_of(f) for name, f in [
    ("sigmoid", sigmoid), ("tanh", tanh), ("relu", relu), ("leaky_relu", leaky_relu),
    ("jax.nn.relu", jax.nn.relu), ("jax.nn.leaky_relu", lambda x: jax.nn.leaky_relu(x, 0.01))]}
DERIVATIVES = {name: _derivative(f) for name, f in [
    ("sigmoid_d", sigmoid_d), ("tanh_d", tanh_d), ("tanh_d_quotient", tanh_d_quotient),
    ("relu_d", relu_d), ("leaky_relu_d", leaky_relu_d),
    ("jaxreg_leaky_S1", jaxreg.activations.leaky_relu(0.01).with_kink_value(0.01).grad)]}


def _check(derivative, loss):
  return jaxreg.check(DERIVATIVES[derivative], LOSSES[loss], {"x": grid()})


# ----------------------------------------------------------------- measurements
@functools.lru_cache(maxsize=None)
def sigmoid_d_max():
  x = grid()
  d = sigmoid_d(x)
  i = int(jnp.argmax(d))
  return {"max": float(d[i]), "at": float(x[i])}


def _s1_1():
  r = _check("sigmoid_d", "sigmoid")
  e = sigmoid_d_max()
  r.notes.append(f"measured: max of sigmoid_d on the grid = {e['max']:.6g} at x = {e['at']:.3g}")
  return r


def np_int_status():
  """What the source's ``np.array(x > 0, dtype=np.int)`` does on this NumPy."""
  try:
    np.array(np.arange(3) > 0, dtype=np.int)  # pylint: disable=no-member
  except AttributeError as e:
    return f"raises AttributeError on NumPy {np.__version__}: {str(e).splitlines()[0]}"
  return f"still runs on NumPy {np.__version__}"


def _s1_3():
  r = _check("relu_d", "relu")
  r.notes.append(f"measured: the source's dtype=np.int {np_int_status()}")
  return r


# ----------------------------------------------------------------- the cases
CHECKS = [
    jaxreg.Case("s1_1_sigmoid", "S1.1", "σ' = σ(1 − σ); its max is 0.25 at 0",
                run=_s1_1),
    jaxreg.Case("s1_2_tanh", "S1.2", "tanh' = 1 − tanh²",
                run=lambda: _check("tanh_d", "tanh")),
    jaxreg.Case("s1_2_tanh_quotient_form", "S1.2", "tanh' = 4/(eˣ + e⁻ˣ)²",
                run=lambda: _check("tanh_d_quotient", "tanh")),
    jaxreg.Case("s1_2_mislabelled_line", "S1.2",
                "the line as labelled: tanh(x) = 4/(eˣ + e⁻ˣ)²",
                run=lambda: jaxreg.check_identity(tanh, tanh_d_quotient, domain=(-5.0, 5.0),
                                                  names=("tanh", "4/(e^x+e^-x)^2")),
                expect="wrong", expect_first_wrong="value",
                note="a typo: the line is tanh'(x), verified by s1_2_tanh_quotient_form"),
    jaxreg.Case("s1_3_relu", "S1.3", "relu' = 1 for x > 0, else 0 (relu'(0) = 0)",
                run=_s1_3, expect="kink",
                note="the source's relu is np.maximum(0, x), which autodiff differentiates to ½ "
                "at 0; relu'(0) = 0 is the other valid one-sided derivative"),
    jaxreg.Case("s1_3_relu_vs_jax_nn_relu", "S1.3", "the same derivative against jax.nn.relu",
                run=lambda: _check("relu_d", "jax.nn.relu"),
                note="jax.nn.relu takes relu'(0) = 0 too"),
    jaxreg.Case("s1_4_leaky_relu", "S1.4", "leaky' = 1 for x > 0, else 0.01 (leaky'(0) = 0.01)",
                run=lambda: _check("leaky_relu_d", "leaky_relu"),
                note="np.where(x > 0, x, 0.01 x) differentiates to 0.01 at 0, as the source says"),
    jaxreg.Case("s1_4_leaky_relu_vs_jax_nn", "S1.4",
                "the same derivative against jax.nn.leaky_relu(x, 0.01)",
                run=lambda: _check("leaky_relu_d", "jax.nn.leaky_relu"), expect="kink",
                note="jax.nn.leaky_relu takes leaky'(0) = 1"),
    jaxreg.Case("s1_4_jaxreg_closed_form", "S1.4",
                "jaxreg.activations.leaky_relu(0.01).with_kink_value(0.01).grad is the source's",
                run=lambda: _check("jaxreg_leaky_S1", "leaky_relu")),
]
