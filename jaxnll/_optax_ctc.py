"""optax-style CTC (``optax.losses.ctc_loss``) on jaxnll's one alpha recursion (``_ctc``).

optax's layout and padding conventions, its finite ``log_epsilon`` in place
of ``log 0`` (an impossible alignment gives a loss of about
``-log_epsilon``, not ``inf``) and its forward probabilities; the loss is
clamped at 0 in value (optax's can come out ``-1e-8`` in float32).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnll import _validation as v
from jaxnll._ctc import alpha_recursion, extended_label_logprobs, nonnegative, skip_allowed
from jaxnll._log_softmax import finite_shift, log_of_shifted_sum, log_softmax


def _check_rank(name: str, x: jax.Array, rank: int) -> None:
  if x.ndim != rank:
    raise ValueError(f"`{name}` must have rank {rank}, got shape {x.shape}.")


def ctc_loss_with_forward_probs(
    logits: jax.typing.ArrayLike,
    logit_paddings: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    label_paddings: jax.typing.ArrayLike,
    *,
    blank_id: int = 0,
    log_epsilon: jax.typing.ArrayLike = -1e5,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""CTC loss and forward probabilities, as ``optax.losses.ctc_loss_with_forward_probs``.

  .. math::
    \ell_b = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_b)} \prod_t \mathrm{softmax}(x_{b,t})_{\pi_t}

  ``log_softmax`` is applied to ``logits`` here. Frames where
  ``logit_paddings`` is 1 are skipped; labels must be right-padded.

  Args:
    logits: floating ``(B, T, K)`` logits, blank included among the ``K`` classes.
    logit_paddings: ``(B, T)``, 1.0 for a padded frame, else 0.0.
    labels: integer ``(B, N)`` labels.
    label_paddings: ``(B, N)``, 1.0 for a padded label (right-padded), else 0.0.
    blank_id: the blank's class index.
    log_epsilon: the finite stand-in for ``log 0``.

  Returns:
    ``(loss, logalpha_blank, logalpha_nonblank)``: ``(B,)`` losses, and
    ``(T, B, N + 1)`` and ``(T, B, N)`` log forward probabilities of being
    in the blank after ``n`` labels, or on label ``n``, after each frame.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss, _, _ = jaxnll.losses.ctc_loss_with_forward_probs(
    ...     jnp.zeros((1, 4, 3)), jnp.zeros((1, 4)), jnp.array([[1, 2]]), jnp.zeros((1, 2)))
    >>> loss
    Array([1.686399], dtype=float32)
  """
  x = v.as_array("logits", logits)
  v.check_floating("logits", x)
  _check_rank("logits", x, 3)
  y = v.as_array("labels", labels)
  v.check_integer("labels", y)
  _check_rank("labels", y, 2)
  lpad = v.as_array("logit_paddings", logit_paddings)
  ypad = v.as_array("label_paddings", label_paddings)
  if ypad.shape != y.shape:
    raise ValueError(f"`label_paddings` must have the shape of `labels`, {y.shape}, got {ypad.shape}.")
  if lpad.shape != x.shape[:2]:
    raise ValueError(f"`logit_paddings` must have shape {x.shape[:2]} (B, T), got {lpad.shape}.")
  batch, _, num_classes = x.shape
  if y.shape[0] != batch:
    raise ValueError(f"Expected `labels` to have batch size {batch}, got {y.shape[0]}.")
  if not 0 <= int(blank_id) < num_classes:
    raise ValueError(f"`blank_id` must be in [0, {num_classes}), got {blank_id}.")
  lp = log_softmax(x)
  width = y.shape[1]
  label_lengths = width - jnp.sum(ypad, axis=1).astype(jnp.int32)
  classes = jnp.clip(y, 0, num_classes - 1).astype(jnp.int32)
  emissions = extended_label_logprobs(lp, classes, int(blank_id), time_axis=1)
  _, alphas = alpha_recursion(
      emissions, (lpad < 0.5).T, skip_allowed(classes), log_zero=log_epsilon, keep_alphas=True
  )
  assert alphas is not None
  phi, emit = alphas[:, :, 0::2], alphas[:, :, 1::2]
  last_phi, last_emit = phi[-1], emit[-1]
  m = finite_shift(jax.lax.stop_gradient(jnp.maximum(last_phi[:, 1:], last_emit)))
  ended = log_of_shifted_sum(jnp.exp(last_phi[:, 1:] - m) + jnp.exp(last_emit - m), m)
  last_phi = jnp.concatenate([last_phi[:, :1], ended], axis=1)
  phi = phi.at[-1].set(last_phi)
  loss = -jnp.take_along_axis(last_phi, label_lengths[:, None], axis=1)[:, 0]
  return nonnegative(loss), phi, emit


def ctc_loss(
    logits: jax.typing.ArrayLike,
    logit_paddings: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    label_paddings: jax.typing.ArrayLike,
    *,
    blank_id: int = 0,
    log_epsilon: jax.typing.ArrayLike = -1e5,
) -> jax.Array:
  """CTC loss per sequence, as ``optax.losses.ctc_loss``; see :func:`ctc_loss_with_forward_probs`.

  Args:
    logits: floating ``(B, T, K)`` logits.
    logit_paddings: ``(B, T)``, 1.0 for a padded frame.
    labels: integer ``(B, N)`` labels.
    label_paddings: ``(B, N)``, 1.0 for a padded label (right-padded).
    blank_id: the blank's class index.
    log_epsilon: the finite stand-in for ``log 0``.

  Returns:
    ``(B,)`` losses, never negative; about ``-log_epsilon`` for an impossible alignment.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.losses.ctc_loss(jnp.zeros((1, 4, 3)), jnp.zeros((1, 4)), jnp.array([[1, 2]]), jnp.zeros((1, 2)))
    Array([1.686399], dtype=float32)
  """
  loss, _, _ = ctc_loss_with_forward_probs(
      logits, logit_paddings, labels, label_paddings, blank_id=blank_id, log_epsilon=log_epsilon
  )
  return loss
