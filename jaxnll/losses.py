"""optax-compatible loss names: swap ``optax.losses`` for ``jaxnll.losses``."""

from jaxnll._optax_compat import softmax_cross_entropy as softmax_cross_entropy
from jaxnll._optax_compat import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)

__all__ = [
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]
