"""optax-compatible loss names: swap ``optax.losses`` for ``jaxnll.losses``."""

from jaxnll._optax_compat import softmax_cross_entropy as softmax_cross_entropy
from jaxnll._optax_compat import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from jaxnll._optax_ctc import ctc_loss as ctc_loss
from jaxnll._optax_ctc import ctc_loss_with_forward_probs as ctc_loss_with_forward_probs
from jaxnll._optax_elementwise import huber_loss as huber_loss
from jaxnll._optax_elementwise import kl_divergence as kl_divergence
from jaxnll._optax_elementwise import kl_divergence_with_log_targets as kl_divergence_with_log_targets
from jaxnll._optax_elementwise import l2_loss as l2_loss
from jaxnll._optax_elementwise import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from jaxnll._optax_elementwise import sigmoid_focal_loss as sigmoid_focal_loss
from jaxnll._optax_elementwise import squared_error as squared_error
from jaxnll._optax_margin import cosine_distance as cosine_distance
from jaxnll._optax_margin import cosine_similarity as cosine_similarity
from jaxnll._optax_margin import hinge_loss as hinge_loss
from jaxnll._optax_margin import multiclass_hinge_loss as multiclass_hinge_loss
from jaxnll._optax_margin import triplet_margin_loss as triplet_margin_loss

__all__ = [
    "cosine_distance",
    "cosine_similarity",
    "ctc_loss",
    "ctc_loss_with_forward_probs",
    "hinge_loss",
    "huber_loss",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "l2_loss",
    "multiclass_hinge_loss",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "squared_error",
    "triplet_margin_loss",
]
