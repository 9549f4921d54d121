"""L1/L2 penalties with closed-form gradients: ``jaxreg.penalties``."""

from jaxreg._penalties import Penalty as Penalty
from jaxreg._penalties import l1 as l1
from jaxreg._penalties import l1_l2 as l1_l2
from jaxreg._penalties import l2 as l2

__all__ = ["Penalty", "l1", "l1_l2", "l2"]
