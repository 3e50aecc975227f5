"""Helpers for optax training loops: loss functions, train/eval steps, exact accumulation."""

from jaxnll._training import as_loss_object as as_loss_object
from jaxnll._training import finalize_loss as finalize_loss
from jaxnll._training import finalize_metrics as finalize_metrics
from jaxnll._training import loss_and_metrics as loss_and_metrics
from jaxnll._training import make_eval_step as make_eval_step
from jaxnll._training import make_grad_fn as make_grad_fn
from jaxnll._training import make_loss_fn as make_loss_fn
from jaxnll._training import make_train_step as make_train_step
from jaxnll._training import merge_metrics as merge_metrics

__all__ = [
    "as_loss_object",
    "finalize_loss",
    "finalize_metrics",
    "loss_and_metrics",
    "make_eval_step",
    "make_grad_fn",
    "make_loss_fn",
    "make_train_step",
    "merge_metrics",
]
