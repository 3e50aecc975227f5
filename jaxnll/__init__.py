"""PyTorch-exact negative log-likelihood and cross-entropy losses for JAX."""

from jaxnll import losses as losses
from jaxnll import training as training
from jaxnll._cross_entropy import cross_entropy as cross_entropy
from jaxnll._cross_entropy import nll_loss as nll_loss
from jaxnll._linear_cross_entropy import linear_cross_entropy as linear_cross_entropy
from jaxnll._log_softmax import log_softmax as log_softmax
from jaxnll._loss_objects import CrossEntropyLoss as CrossEntropyLoss
from jaxnll._loss_objects import NLLLoss as NLLLoss
from jaxnll._reduction import Reduction as Reduction
from jaxnll._targets import checked as checked

__version__ = "0.2.0"

__all__ = [
    "CrossEntropyLoss",
    "NLLLoss",
    "Reduction",
    "checked",
    "cross_entropy",
    "linear_cross_entropy",
    "log_softmax",
    "losses",
    "nll_loss",
    "training",
]
