"""S4 — a tour of regularizers: L1 and L2 with biases included (seeds/004_…txt).

    jaxreg check derivations/s4_regularizers.py

``J`` is a data cost (here MSE on a small tanh network); the penalties act on
**every** parameter, biases included, elementwise. Kink convention for ``|θ|``
at 0: none given by the source; the derivations use ``sgn(0) = 0``.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxreg  # noqa: E402

CMD = "jaxreg check derivations/s4_regularizers.py"
C1, C2 = 0.03, 0.02          # L1 and L2 strengths
SIZES = (4, 6, 3)

NET = jaxreg.MLP(SIZES, "tanh")                       # J: ½ Σ (y − t)² / m, no penalty


def data(seed=0, m=8, zero_params=False):
  rng = np.random.default_rng(seed)
  p = [{"w": rng.normal(size=(a, b)) / np.sqrt(a), "b": rng.normal(size=b)}
       for a, b in zip(SIZES[:-1], SIZES[1:])]
  if zero_params:
    p[0]["w"][2, 1] = 0.0
    p[1]["b"][0] = 0.0
  x = rng.normal(size=(m, SIZES[0]))
  t = rng.normal(size=(m, SIZES[-1]))
  return jax.tree.map(jnp.asarray, p), jnp.asarray(x), jnp.asarray(t)


# ----------------------------------------------------------------- costs
def cost(p, x, t, c1=0.0, c2=0.0):
  """J + c1 Σ_θ |θ| + c2 Σ_θ θ², θ over every W and b."""
  leaves = jax.tree.leaves(p)
  return (NET.loss(p, x, t) + c1 * sum(jnp.sum(jnp.abs(v)) for v in leaves)
          + c2 * sum(jnp.sum(v ** 2) for v in leaves))


# ----------------------------------------------------------------- derivations
def penalized_gradient(p, x, t, c1=0.0, c2=0.0):
  """∂J/∂θ (jaxreg's closed-form backprop) + c1 sgn(θ) + 2 c2 θ on every leaf."""
  g = NET.backprop(p, x, t)
  return jax.tree.map(lambda gv, v: gv + c1 * jnp.sign(v) + 2 * c2 * v, g, p)


def weights_only_gradient(p, x, t, c1=0.0, c2=0.0):
  """The same with the penalty on the kernels only (Nielsen's convention, S2)."""
  g = NET.backprop(p, x, t)
  return [{"w": gl["w"] + c1 * jnp.sign(pl["w"]) + 2 * c2 * pl["w"], "b": gl["b"]}
          for gl, pl in zip(g, p)]


def library_gradient(p, x, t, c1=0.0, c2=0.0):
  """jaxreg.MLP with the same penalty in the kernel and bias slots (Keras-style)."""
  pen = jaxreg.penalties.l1_l2(c1, c2, at_zero=0.0)
  net = jaxreg.MLP(SIZES, "tanh", kernel_regularizer=pen, bias_regularizer=pen)
  return net.backprop(p, x, t)


# ----------------------------------------------------------------- the cases
CHECKS = [
    jaxreg.Case("s4_1_l1_biases_included", "S4.1",
                "J + c·(|W1| + |b1| + |W2| + |b2| + …): ∂/∂θ = ∂J/∂θ + c·sgn(θ) for W and b",
                run=lambda: jaxreg.check(penalized_gradient, cost, *data(), kwargs={"c1": C1})),
    jaxreg.Case("s4_1_l1_at_zero", "S4.1",
                "the same with a weight and a bias exactly 0 (sgn(0) = 0)",
                run=lambda: jaxreg.check(penalized_gradient, cost, *data(zero_params=True), kwargs={"c1": C1}),
                expect="kink", note="sgn(0) = 0 against jax.grad(jnp.abs)(0.) = 1"),
    jaxreg.Case("s4_1_nielsen_convention_differs", "S4.1",
                "S2's convention (biases not penalized) on S4.1's cost",
                run=lambda: jaxreg.check(weights_only_gradient, cost, *data(), kwargs={"c1": C1}),
                expect="wrong", expect_first_wrong="params[0]['b']",
                note="the 'biases penalized' collision between S2 and S4"),
    jaxreg.Case("s4_2_l2_elementwise", "S4.2",
                "J + c·(|W1|² + |b1|² + …): ∂/∂θ = ∂J/∂θ + 2c·θ for W and b",
                run=lambda: jaxreg.check(penalized_gradient, cost, *data(), kwargs={"c2": C2})),
    jaxreg.Case("s4_2_l1_and_l2_combined", "S4.2", "L1 and L2 combined: + c1·sgn(θ) + 2c2·θ",
                run=lambda: jaxreg.check(penalized_gradient, cost, *data(), kwargs={"c1": C1, "c2": C2})),
    jaxreg.Case("s4_2_library_slots", "S4.2",
                "jaxreg.MLP(kernel_regularizer=l1_l2, bias_regularizer=l1_l2).backprop",
                run=lambda: jaxreg.check(library_gradient, cost, *data(zero_params=True),
                                         kwargs={"c1": C1, "c2": C2}),
                expect="kink", note="Penalty(at_zero=0.0) is sgn(0) = 0; one weight and one bias "
                "are exactly 0"),
]
