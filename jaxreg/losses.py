"""Batch-averaged losses with closed-form gradients: ``jaxreg.losses``."""

from jaxreg._losses import Loss as Loss
from jaxreg._losses import NAMES as NAMES
from jaxreg._losses import binary_cross_entropy as binary_cross_entropy
from jaxreg._losses import binary_cross_entropy_with_logits as binary_cross_entropy_with_logits
from jaxreg._losses import check_targets as check_targets
from jaxreg._losses import get as get
from jaxreg._losses import mse as mse
from jaxreg._losses import softmax_cross_entropy as softmax_cross_entropy

__all__ = ["NAMES", "Loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "check_targets", "get", "mse", "softmax_cross_entropy"]
