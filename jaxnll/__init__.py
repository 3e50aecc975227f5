"""PyTorch-exact negative log-likelihood and cross-entropy losses for JAX."""

from jaxnll import losses as losses
from jaxnll import training as training
from jaxnll._binary import binary_cross_entropy as binary_cross_entropy
from jaxnll._binary import binary_cross_entropy_with_logits as binary_cross_entropy_with_logits
from jaxnll._binary import multilabel_soft_margin_loss as multilabel_soft_margin_loss
from jaxnll._binary import sigmoid_focal_loss as sigmoid_focal_loss
from jaxnll._cross_entropy import cross_entropy as cross_entropy
from jaxnll._cross_entropy import nll_loss as nll_loss
from jaxnll._divergence import kl_div as kl_div
from jaxnll._linear_cross_entropy import linear_cross_entropy as linear_cross_entropy
from jaxnll._log_softmax import log_softmax as log_softmax
from jaxnll._loss_objects import BCELoss as BCELoss
from jaxnll._loss_objects import BCEWithLogitsLoss as BCEWithLogitsLoss
from jaxnll._loss_objects import CrossEntropyLoss as CrossEntropyLoss
from jaxnll._loss_objects import GaussianNLLLoss as GaussianNLLLoss
from jaxnll._loss_objects import HuberLoss as HuberLoss
from jaxnll._loss_objects import KLDivLoss as KLDivLoss
from jaxnll._loss_objects import L1Loss as L1Loss
from jaxnll._loss_objects import MSELoss as MSELoss
from jaxnll._loss_objects import MultiLabelSoftMarginLoss as MultiLabelSoftMarginLoss
from jaxnll._loss_objects import NLLLoss as NLLLoss
from jaxnll._loss_objects import PoissonNLLLoss as PoissonNLLLoss
from jaxnll._loss_objects import SmoothL1Loss as SmoothL1Loss
from jaxnll._reduction import Reduction as Reduction
from jaxnll._regression import gaussian_nll_loss as gaussian_nll_loss
from jaxnll._regression import huber_loss as huber_loss
from jaxnll._regression import l1_loss as l1_loss
from jaxnll._regression import mse_loss as mse_loss
from jaxnll._regression import poisson_nll_loss as poisson_nll_loss
from jaxnll._regression import smooth_l1_loss as smooth_l1_loss
from jaxnll._targets import checked as checked

__version__ = "0.2.0"

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "GaussianNLLLoss",
    "HuberLoss",
    "KLDivLoss",
    "L1Loss",
    "MSELoss",
    "MultiLabelSoftMarginLoss",
    "NLLLoss",
    "PoissonNLLLoss",
    "Reduction",
    "SmoothL1Loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "checked",
    "cross_entropy",
    "gaussian_nll_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "linear_cross_entropy",
    "log_softmax",
    "losses",
    "mse_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "poisson_nll_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "training",
]
