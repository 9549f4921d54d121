"""Activations with closed-form derivatives: ``jaxreg.activations``."""

from jaxreg._activations import Activation as Activation
from jaxreg._activations import NAMES as NAMES
from jaxreg._activations import elu as elu
from jaxreg._activations import gelu as gelu
from jaxreg._activations import get as get
from jaxreg._activations import identity as identity
from jaxreg._activations import leaky_relu as leaky_relu
from jaxreg._activations import relu as relu
from jaxreg._activations import sigmoid as sigmoid
from jaxreg._activations import silu as silu
from jaxreg._activations import softplus as softplus
from jaxreg._activations import tanh as tanh

__all__ = ["NAMES", "Activation", "elu", "gelu", "get", "identity", "leaky_relu", "relu",
           "sigmoid", "silu", "softplus", "tanh"]
