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
from jaxreg import testing as testing
from jaxreg._checker.case import Case as Case
from jaxreg._checker.check import check as check
from jaxreg._checker.identity import check_identity as check_identity
from jaxreg._checker.report import Report as Report
from jaxreg._checker.report import Row as Row
from jaxreg._checker.tap import tap as tap
from jaxreg._checker.update import check_update as check_update

# --- trainer (issue 5) ---
from jaxreg import optim as optim
from jaxreg._trainer.checkpoint import Checkpoint as Checkpoint
from jaxreg._trainer.checkpoint import SaveCheckpoint as SaveCheckpoint
from jaxreg._trainer.checkpoint import load as load
from jaxreg._trainer.checkpoint import save as save
from jaxreg._trainer.config import TrainConfig as TrainConfig
from jaxreg._trainer.epoch import TrainState as TrainState
from jaxreg._trainer.model import Model as Model
from jaxreg._trainer.model import predict as predict
from jaxreg._trainer.progress import MetricsLog as MetricsLog
from jaxreg._trainer.train import TrainingDiverged as TrainingDiverged
from jaxreg._trainer.train import train as train
from jaxreg._trainer.train_many import train_many as train_many

# --- data sets and experiments ---
from jaxreg import datasets as datasets
from jaxreg import experiments as experiments

# --- multi-process runs ---
from jaxreg import distributed as distributed

__version__ = "0.1.0"
