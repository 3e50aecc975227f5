"""PyTorch-exact negative log-likelihood and cross-entropy losses for JAX."""

from jaxnll import losses as losses
from jaxnll import training as training
from jaxnll._adaptive import AdaptiveLogSoftmaxOutput as AdaptiveLogSoftmaxOutput
from jaxnll._adaptive import AdaptiveLogSoftmaxWithLoss as AdaptiveLogSoftmaxWithLoss
from jaxnll._adaptive import adaptive_log_prob as adaptive_log_prob
from jaxnll._adaptive import adaptive_log_softmax_init as adaptive_log_softmax_init
from jaxnll._adaptive import adaptive_log_softmax_with_loss as adaptive_log_softmax_with_loss
from jaxnll._adaptive import adaptive_predict as adaptive_predict
from jaxnll._binary import binary_cross_entropy as binary_cross_entropy
from jaxnll._binary import binary_cross_entropy_with_logits as binary_cross_entropy_with_logits
from jaxnll._binary import multilabel_soft_margin_loss as multilabel_soft_margin_loss
from jaxnll._binary import sigmoid_focal_loss as sigmoid_focal_loss
from jaxnll._cross_entropy import cross_entropy as cross_entropy
from jaxnll._cross_entropy import nll_loss as nll_loss
from jaxnll._ctc import CTCLoss as CTCLoss
from jaxnll._ctc import ctc_error_rate as ctc_error_rate
from jaxnll._ctc import ctc_greedy_decode as ctc_greedy_decode
from jaxnll._ctc import ctc_loss as ctc_loss
from jaxnll._divergence import kl_div as kl_div
from jaxnll._embedding import CosineEmbeddingLoss as CosineEmbeddingLoss
from jaxnll._embedding import TripletMarginLoss as TripletMarginLoss
from jaxnll._embedding import TripletMarginWithDistanceLoss as TripletMarginWithDistanceLoss
from jaxnll._embedding import cosine_embedding_loss as cosine_embedding_loss
from jaxnll._embedding import pairwise_distance as pairwise_distance
from jaxnll._embedding import triplet_margin_loss as triplet_margin_loss
from jaxnll._embedding import triplet_margin_with_distance_loss as triplet_margin_with_distance_loss
from jaxnll._linear_cross_entropy import LinearCrossEntropyLoss as LinearCrossEntropyLoss
from jaxnll._linear_cross_entropy import linear_cross_entropy as linear_cross_entropy
from jaxnll._log_softmax import LogSoftmax as LogSoftmax
from jaxnll._log_softmax import Softmax as Softmax
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
from jaxnll._margin import HingeEmbeddingLoss as HingeEmbeddingLoss
from jaxnll._margin import MarginRankingLoss as MarginRankingLoss
from jaxnll._margin import MultiLabelMarginLoss as MultiLabelMarginLoss
from jaxnll._margin import MultiMarginLoss as MultiMarginLoss
from jaxnll._margin import SoftMarginLoss as SoftMarginLoss
from jaxnll._margin import hinge_embedding_loss as hinge_embedding_loss
from jaxnll._margin import margin_ranking_loss as margin_ranking_loss
from jaxnll._margin import multi_margin_loss as multi_margin_loss
from jaxnll._margin import multilabel_margin_loss as multilabel_margin_loss
from jaxnll._margin import soft_margin_loss as soft_margin_loss
from jaxnll._reduction import Reduction as Reduction
from jaxnll._regression import gaussian_nll_loss as gaussian_nll_loss
from jaxnll._regression import huber_loss as huber_loss
from jaxnll._regression import l1_loss as l1_loss
from jaxnll._regression import mse_loss as mse_loss
from jaxnll._regression import poisson_nll_loss as poisson_nll_loss
from jaxnll._regression import smooth_l1_loss as smooth_l1_loss
from jaxnll._targets import checked as checked

__version__ = "0.3.0"

__all__ = [
    "AdaptiveLogSoftmaxOutput",
    "AdaptiveLogSoftmaxWithLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CTCLoss",
    "CosineEmbeddingLoss",
    "CrossEntropyLoss",
    "GaussianNLLLoss",
    "HingeEmbeddingLoss",
    "HuberLoss",
    "KLDivLoss",
    "L1Loss",
    "LinearCrossEntropyLoss",
    "LogSoftmax",
    "MSELoss",
    "MarginRankingLoss",
    "MultiLabelMarginLoss",
    "MultiLabelSoftMarginLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "PoissonNLLLoss",
    "Reduction",
    "SmoothL1Loss",
    "SoftMarginLoss",
    "Softmax",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
    "adaptive_log_prob",
    "adaptive_log_softmax_init",
    "adaptive_log_softmax_with_loss",
    "adaptive_predict",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "checked",
    "cosine_embedding_loss",
    "cross_entropy",
    "ctc_error_rate",
    "ctc_greedy_decode",
    "ctc_loss",
    "gaussian_nll_loss",
    "hinge_embedding_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "linear_cross_entropy",
    "log_softmax",
    "losses",
    "margin_ranking_loss",
    "mse_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "pairwise_distance",
    "poisson_nll_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "training",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]
