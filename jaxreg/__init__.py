"""jaxreg: pure-function MLPs and regularizers, a step-by-step backprop
derivation checker, and jitted trainers, in JAX.

Public names are re-exported here from private modules, one per line.
"""

# --- core (issue 2) ---
from jaxreg import activations as activations
from jaxreg import losses as losses
from jaxreg import penalties as penalties
from jaxreg._mlp import MLP as MLP
from jaxreg._mlp import backprop as backprop

# --- derivation checker (issue 3) ---

# --- trainer (issue 5) ---

__version__ = "0.1.0"
