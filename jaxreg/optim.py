"""Update rules as optax ``GradientTransformation``s: ``jaxreg.optim``."""

from jaxreg._trainer.optim import kernels_only as kernels_only
from jaxreg._trainer.optim import l1_proximal as l1_proximal
from jaxreg._trainer.optim import l1_sign as l1_sign
from jaxreg._trainer.optim import sgd_weight_decay as sgd_weight_decay

__all__ = ["kernels_only", "l1_proximal", "l1_sign", "sgd_weight_decay"]
