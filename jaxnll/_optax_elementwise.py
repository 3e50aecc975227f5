"""Drop-in replacements for ``optax.losses``' elementwise losses.

``sigmoid_binary_cross_entropy``, ``sigmoid_focal_loss``, ``kl_divergence``,
``kl_divergence_with_log_targets``, ``squared_error``, ``l2_loss`` and
``huber_loss``: optax 0.2.8's arguments and unreduced outputs, computed by
jaxnll's kernels (``_binary``, ``_divergence``, ``_regression``), with
jaxnll's options as extra keyword-only arguments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnll import _validation as v
from jaxnll._binary import focal_loss, sigmoid_cross_entropy
from jaxnll._divergence import kl_pointwise
from jaxnll._elementwise import floating_input
from jaxnll._regression import huber

Axis = int | tuple[int, ...] | None


def _broadcast_pair(
    x: jax.Array, name: str, other: jax.typing.ArrayLike | None, dtype: np.dtype
) -> tuple[jax.Array, jax.Array]:
  """``x`` and ``other`` (zeros if None) cast to ``dtype`` and broadcast together, as optax's arithmetic does."""
  if other is None:
    return x.astype(dtype), jnp.zeros(x.shape, dtype)
  o = v.as_value_array(name, other, dtype)
  try:
    shape = v.broadcast_shapes(x.shape, o.shape)
  except ValueError:
    raise ValueError(f"`{name}` of shape {o.shape} does not broadcast with the predictions' shape {x.shape}.") from None
  return jnp.broadcast_to(x.astype(dtype), shape), jnp.broadcast_to(o, shape)


def _weighted(loss: jax.Array, weight: jax.typing.ArrayLike | None) -> jax.Array:
  w = v.check_broadcast_weight("weight", weight, loss.shape)
  return loss if w is None else loss * w.astype(loss.dtype)


def sigmoid_binary_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    weight: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""``optax.losses.sigmoid_binary_cross_entropy`` with torch's ``weight`` and ``pos_weight``.

  .. math::
    \ell = -w \left[p_w\, t \log \sigma(x) + (1 - t) \log \sigma(-x)\right]

  A term whose coefficient is 0 contributes 0 even at an infinite logit
  (optax gives NaN for ``x = +inf, t = 1``).

  Args:
    logits: floating logits.
    labels: targets broadcastable with ``logits`` (cast to the loss's dtype).
    weight: optional weights broadcastable to the output.
    pos_weight: optional weight of the positive term, broadcastable to the
      output (one per class on the last axis).

  Returns:
    The elementwise loss, the broadcast shape of ``logits`` and ``labels``,
    in ``promote_types(logits.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> losses.sigmoid_binary_cross_entropy(jnp.array([2.0, -1.0]), jnp.array([1.0, 1.0]))
    Array([0.126928 , 1.3132617], dtype=float32)
  """
  x = floating_input("logits", logits)
  x, t = _broadcast_pair(x, "labels", labels, v.compute_dtype(x.dtype))
  pw = v.check_broadcast_weight("pos_weight", pos_weight, x.shape)
  return _weighted(sigmoid_cross_entropy(x, t, None if pw is None else pw.astype(x.dtype)), weight)


def sigmoid_focal_loss(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: jax.typing.ArrayLike | None = None,
    gamma: jax.typing.ArrayLike = 2.0,
) -> jax.Array:
  r"""``optax.losses.sigmoid_focal_loss``: the focal loss of Lin et al.

  .. math::
    \ell = \alpha_t\, (1 - p_t)^\gamma\, \mathrm{ce}(x, t)

  as :func:`jaxnll.sigmoid_focal_loss` with ``reduction='none'``, except that
  ``alpha=None`` (optax's default) disables the weighting. ``alpha`` and
  ``gamma`` may be arrays (and traced).

  Args:
    logits: floating logits.
    labels: targets in :math:`[0, 1]`, broadcastable with ``logits``.
    alpha: optional weight of the positive class.
    gamma: focusing exponent.

  Returns:
    The elementwise loss, the broadcast shape of ``logits`` and ``labels``,
    in ``promote_types(logits.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> losses.sigmoid_focal_loss(jnp.array([2.0, -1.0]), jnp.array([1.0, 1.0]), alpha=0.25)
    Array([0.00045089, 0.17546709], dtype=float32)

  References:
    Lin et al., `Focal Loss for Dense Object Detection
    <https://arxiv.org/abs/1708.02002>`_, 2017.
  """
  x = floating_input("logits", logits)
  x, t = _broadcast_pair(x, "labels", labels, v.compute_dtype(x.dtype))
  return focal_loss(x, t, alpha, gamma)


def _kl(log_predictions, targets, axis, where, log_target: bool, targets_name: str) -> jax.Array:
  x = floating_input("log_predictions", log_predictions)
  t = floating_input(targets_name, targets)
  dtype = v.compute_dtype(x.dtype)
  x, t = _broadcast_pair(x, targets_name, t, dtype)
  if where is None:
    return jnp.sum(kl_pointwise(x, t, log_target), axis=axis)
  mask = v.check_where(where, x.shape, "the inputs' shape")
  assert mask is not None
  x = jnp.where(mask, x, jnp.zeros((), dtype))
  t = jnp.where(mask, t, jnp.full((), 0.0 if log_target else 1.0, dtype))
  return jnp.sum(kl_pointwise(x, t, log_target), axis=axis, where=mask)


@v.refuse_dim
def kl_divergence(
    log_predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""``optax.losses.kl_divergence``: :math:`\sum t (\log t - \log p)` over ``axis``.

  The pointwise term is :func:`jaxnll.kl_div`'s; a target of 0 contributes 0
  even where the log-prediction is ``-inf`` (optax: NaN).

  Args:
    log_predictions: floating log-probabilities of the model.
    targets: floating target probabilities, broadcastable with them.
    axis: axis or axes summed over (None: all).
    where: optional boolean mask of elements to include.

  Returns:
    The divergence with ``axis`` summed out, in
    ``promote_types(log_predictions.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> losses.kl_divergence(jnp.log(jnp.array([0.5, 0.25, 0.25])), jnp.array([0.25, 0.25, 0.5]))
    Array(0.1732868, dtype=float32)
  """
  return _kl(log_predictions, targets, axis, where, False, "targets")


@v.refuse_dim
def kl_divergence_with_log_targets(
    log_predictions: jax.typing.ArrayLike,
    log_targets: jax.typing.ArrayLike,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""``optax.losses.kl_divergence_with_log_targets``: :math:`\sum e^{t} (t - \log p)` over ``axis``.

  A log-target of ``-inf`` contributes 0 (optax: NaN).

  Args:
    log_predictions: floating log-probabilities of the model.
    log_targets: floating target log-probabilities, broadcastable with them.
    axis: axis or axes summed over (None: all).
    where: optional boolean mask of elements to include.

  Returns:
    The divergence with ``axis`` summed out, in
    ``promote_types(log_predictions.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> p, q = jnp.array([0.5, 0.25, 0.25]), jnp.array([0.25, 0.25, 0.5])
    >>> losses.kl_divergence_with_log_targets(jnp.log(p), jnp.log(q))
    Array(0.1732868, dtype=float32)
  """
  return _kl(log_predictions, log_targets, axis, where, True, "log_targets")


def squared_error(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike | None = None,
    *,
    weight: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""``optax.losses.squared_error``: :math:`w (x - t)^2` elementwise.

  Args:
    predictions: floating predictions.
    targets: targets of the same shape (optax refuses to broadcast them);
      zeros if None.
    weight: optional weights broadcastable to ``predictions``' shape.

  Returns:
    ``predictions``' shape, in ``promote_types(predictions.dtype, float32)``.

  Raises:
    ValueError: when ``targets``' shape is not ``predictions``'.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> losses.squared_error(jnp.array([1.0, 2.0]), jnp.array([0.5, 4.0]))
    Array([0.25, 4.  ], dtype=float32)
  """
  x = floating_input("predictions", predictions)
  if targets is not None and np.shape(targets) != x.shape:
    raise ValueError(f"Shape mismatch: `targets` of shape {np.shape(targets)} for predictions of shape {x.shape}.")
  x, t = _broadcast_pair(x, "targets", targets, v.compute_dtype(x.dtype))
  d = x - t
  return _weighted(d * d, weight)


def l2_loss(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike | None = None,
    *,
    weight: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""``optax.losses.l2_loss``: :math:`\tfrac12 w (x - t)^2` elementwise.

  Args:
    predictions: floating predictions.
    targets: targets of the same shape; zeros if None.
    weight: optional weights broadcastable to ``predictions``' shape.

  Returns:
    ``predictions``' shape, in ``promote_types(predictions.dtype, float32)``.

  Raises:
    ValueError: when ``targets``' shape is not ``predictions``'.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> losses.l2_loss(jnp.array([1.0, 2.0]), jnp.array([0.5, 4.0]))
    Array([0.125, 2.   ], dtype=float32)
  """
  return 0.5 * squared_error(predictions, targets, weight=weight)


def huber_loss(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike | None = None,
    *,
    delta: jax.typing.ArrayLike = 1.0,
    weight: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""``optax.losses.huber_loss``: :func:`jaxnll.huber_loss` elementwise.

  .. math::
    \ell = w \begin{cases}
      \tfrac12 (x - t)^2 & |x - t| < \delta \\
      \delta \left(|x - t| - \tfrac12 \delta\right) & \text{otherwise}
    \end{cases}

  Args:
    predictions: floating predictions.
    targets: targets broadcastable with ``predictions``; zeros if None.
    delta: the threshold (may be an array, and traced).
    weight: optional weights broadcastable to the output.

  Returns:
    The broadcast shape of ``predictions`` and ``targets``, in
    ``promote_types(predictions.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> losses.huber_loss(jnp.array([0.5, 3.0]), delta=1.0)
    Array([0.125, 2.5  ], dtype=float32)
  """
  x = floating_input("predictions", predictions)
  x, t = _broadcast_pair(x, "targets", targets, v.compute_dtype(x.dtype))
  return _weighted(huber(x - t, jnp.asarray(delta).astype(x.dtype)), weight)
