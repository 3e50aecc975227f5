"""Binary cross-entropies: on probabilities, on logits (with ``pos_weight``),
torchvision's sigmoid focal loss and the multi-label soft margin loss.

The three logits losses share one elementwise kernel,
:func:`sigmoid_cross_entropy`, written with softplus so that it is stable at
any logit size. ``binary_cross_entropy`` on probabilities is a custom JVP:
torch clamps each log term at -100 and differentiates with
``(p - t) / max(p (1 - p), 1e-12)``, which autodiff of the clamped formula
cannot give at ``p = 0`` or ``1`` (it gives NaN there).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._elementwise import Elements, elements, floating_input, known, times_zero_safe
from jaxnll._loss_base import LossTerms
from jaxnll._reduction import Reduction
from jaxnll._targets import run_time_check

_LOG_CLAMP = -100.0  # torch's floor for log(p) and log(1 - p)
_GRAD_FLOOR = float(np.float32(1e-12))  # torch's floor for p (1 - p) in the gradient (a float32 constant there)


class ProbabilityRangeError(ValueError, RuntimeError):
  """Concrete probabilities or targets outside [0, 1]: a ``ValueError`` that is
  also the ``RuntimeError`` torch raises."""


# --------------------------------------------------------------------------
# Kernels


def _in_range(p: jax.Array, t: jax.Array) -> jax.Array:
  return (p >= 0) & (p <= 1) & (t >= 0) & (t <= 1)  # False for NaN too


@jax.custom_jvp
def _bce(p: jax.Array, t: jax.Array) -> jax.Array:
  loss = (t - 1) * jnp.maximum(jnp.log1p(-p), _LOG_CLAMP) - t * jnp.maximum(jnp.log(p), _LOG_CLAMP)
  return jnp.where(_in_range(p, t), loss, jnp.nan)


def _bce_jvp(primals, tangents):
  p, t = primals
  dp, dt = tangents
  # Out-of-range values get a NaN slope as well as a NaN loss.
  scale = jnp.where(_in_range(p, t), 1.0, jnp.nan)
  out = _bce(p, t)
  tangent = jnp.zeros_like(out)
  if not isinstance(dp, SymbolicZero):
    tangent = tangent + dp * (scale * (p - t) / jnp.maximum(p * (1 - p), _GRAD_FLOOR))
  if not isinstance(dt, SymbolicZero):
    tangent = tangent + dt * (scale * (jnp.log1p(-p) - jnp.log(p)))
  return out, tangent


_bce.defjvp(_bce_jvp, symbolic_zeros=True)


def sigmoid_cross_entropy(x: jax.Array, t: jax.Array, pos_weight: jax.Array | None = None) -> jax.Array:
  """``-[pw t log sigmoid(x) + (1 - t) log sigmoid(-x)]``, elementwise, with ``0 * inf = 0``.

  Equal to torch's ``(1 - t) x + (1 + (pw - 1) t) log(1 + e^{-x})``; the
  softplus form keeps both terms nonnegative and gives the limits at
  ``x = ±inf`` (0 for a correct saturated logit) where torch's form gives NaN.
  """
  positive = t if pos_weight is None else pos_weight * t
  return times_zero_safe(positive, jax.nn.softplus(-x)) + times_zero_safe(1 - t, jax.nn.softplus(x))


def focal_loss(
    x: jax.Array, t: jax.Array, alpha: jax.typing.ArrayLike | None, gamma: jax.typing.ArrayLike
) -> jax.Array:
  """``ce * (1 - p_t) ** gamma``, times ``alpha t + (1 - alpha)(1 - t)`` unless ``alpha`` is None.

  ``1 - p_t`` is computed as ``sigmoid(x)(1 - t) + sigmoid(-x) t`` (no
  cancellation for confident predictions), and its power has a finite
  gradient everywhere: JAX's ``0 ** gamma`` has a NaN or infinite derivative
  for ``gamma < 1``.
  """
  g = jnp.asarray(gamma).astype(x.dtype)
  ce = sigmoid_cross_entropy(x, t)
  q = jax.nn.sigmoid(x) * (1 - t) + jax.nn.sigmoid(-x) * t
  zero = q == 0
  q_safe = jnp.where(zero, jnp.ones((), q.dtype), q)
  modulating = jnp.where(zero, jnp.where(g == 0, 1.0, 0.0).astype(q.dtype), q_safe**g)
  loss = ce * modulating
  if alpha is None:
    return loss
  a = jnp.asarray(alpha).astype(x.dtype)
  return (a * t + (1 - a) * (1 - t)) * loss


# --------------------------------------------------------------------------
# Unreduced forms, shared by the functions and the loss objects


def _check_probabilities(e: Elements, name: str, what: str, values: jax.Array) -> None:
  """Raises like torch when ``values`` (and the mask) are known at trace time, else checks them in checked mode."""
  message = f"all elements of {what} should be between 0 and 1: `{name}` holds {{}}."
  with jax.ensure_compile_time_eval():
    bad = ~((values >= 0) & (values <= 1))
    if e.counted is not None:
      bad = bad & e.counted
  if not known(values, e.counted):
    run_time_check(bad, values, ProbabilityRangeError, message)
    return
  bad_np = jax.device_get(bad)
  if bad_np.any():
    raise ProbabilityRangeError(message.format(jax.device_get(values)[bad_np].flat[0]))


def binary_cross_entropy_terms(
    probs: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weight: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
) -> LossTerms:
  """The unreduced form of :func:`binary_cross_entropy`."""
  e = elements(probs, targets, where, input_name="probs")
  _check_probabilities(e, "probs", "input", e.input)
  _check_probabilities(e, "targets", "target", e.targets)
  per = _bce(e.safe(e.input, 0.5), e.safe(e.targets, 0.5))
  w = e.weight("weight", weight)
  return e.terms(per if w is None else per * w)


def binary_cross_entropy_with_logits_terms(
    logits: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weight: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
) -> LossTerms:
  """The unreduced form of :func:`binary_cross_entropy_with_logits`."""
  e = elements(logits, targets, where, input_name="logits")
  last = e.input.shape[-1:] or "()"
  pw = e.weight("pos_weight", pos_weight, f"; expected one entry per class on the last axis, e.g. shape {last}")
  per = sigmoid_cross_entropy(e.safe(e.input, 0.0), e.safe(e.targets, 0.0), pw)
  w = e.weight("weight", weight)
  return e.terms(per if w is None else per * w)


def sigmoid_focal_loss_terms(
    logits: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    where: jax.typing.ArrayLike | None = None,
) -> LossTerms:
  """The unreduced form of :func:`sigmoid_focal_loss`."""
  a = v.check_finite("alpha", alpha)
  g = v.check_nonnegative("gamma", gamma)
  e = elements(logits, targets, where, input_name="logits")
  per = focal_loss(e.safe(e.input, 0.0), e.safe(e.targets, 0.0), a if a >= 0 else None, g)
  return e.terms(per)


def multilabel_soft_margin_loss_terms(
    input: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weight: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
) -> LossTerms:
  """The unreduced form of :func:`multilabel_soft_margin_loss`: one term per sample."""
  x = floating_input("input", input)
  if x.ndim == 0:
    raise ValueError("`input` must have a class (last) axis, got a scalar.")
  e = elements(
      x, targets, where, input_name="input", loss_shape=x.shape[:-1],
      loss_shape_text="the input's shape without its last (class) axis",
  )
  per_class = sigmoid_cross_entropy(e.safe(e.input, 0.0), e.safe(e.targets, 0.0))
  w = e.weight("weight", weight)
  if w is not None:
    per_class = per_class * w
  return e.terms(jnp.sum(per_class, axis=-1) / x.shape[-1])


# --------------------------------------------------------------------------
# torch-style functions


def binary_cross_entropy(
    probs: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike | None = None,
    *,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Binary cross-entropy of probabilities, as ``torch.nn.functional.binary_cross_entropy``.

  .. math::
    \ell = -w \left[t \max(\log p, -100) + (1 - t) \max(\log(1 - p), -100)\right]

  Each log term is clamped at -100 as in torch, so probabilities of exactly 0
  or 1 give finite values; the gradient is torch's,
  :math:`w (p - t) / \max(p (1 - p), 10^{-12})` for the probabilities and
  :math:`w \log((1 - p) / p)` for the targets. ``'mean'`` divides by the
  number of counted elements, with or without ``weight`` (torch's choice).
  Prefer :func:`binary_cross_entropy_with_logits` on logits: it is exact for
  confident predictions, where ``p`` rounds to 0 or 1.

  Args:
    probs: floating probabilities in :math:`[0, 1]`, any shape; bf16/f16 are
      computed in float32.
    targets: probabilities of the same shape (floating, integer or bool).
    weight: optional floating weights broadcastable to ``probs``' shape; positional third, as in torch.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'`` (0 when
      nothing is counted, where ``'mean'`` is NaN).
    where: optional boolean mask broadcastable to ``probs``' shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or ``probs``' shape for ``'none'``, in
    ``promote_types(probs.dtype, float32)``.

  Raises:
    ValueError: for concrete ``probs`` or ``targets`` outside :math:`[0, 1]`
      (NaN included), with torch's message; the exception is also a
      ``RuntimeError``, which torch raises. Under ``jit`` such elements give a
      NaN loss and NaN gradient.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.binary_cross_entropy(jnp.array([0.9, 0.2, 0.0]), jnp.array([1.0, 0.0, 1.0]))
    Array(33.442837, dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = binary_cross_entropy_terms(probs, targets, weight=weight, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, red)


def binary_cross_entropy_with_logits(
    logits: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike | None = None,
    *,
    pos_weight: jax.typing.ArrayLike | None = None,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Sigmoid cross-entropy of logits, as ``torch.nn.functional.binary_cross_entropy_with_logits``.

  .. math::
    \ell = -w \left[p_w\, t \log \sigma(x) + (1 - t) \log \sigma(-x)\right]

  computed as :math:`w [p_w t\, \mathrm{softplus}(-x) + (1 - t)\, \mathrm{softplus}(x)]`,
  stable for logits of any size. A term whose coefficient is 0 contributes 0
  even at an infinite logit (torch gives NaN at :math:`x = \pm\infty` unless
  :math:`x = +\infty, t = 0`). ``'mean'`` divides by the number of counted
  elements, with or without ``weight``.

  Args:
    logits: floating logits, any shape; bf16/f16 are computed in float32.
    targets: targets of the same shape, usually in :math:`[0, 1]` (floating,
      integer or bool); not range-checked, as in torch.
    weight: optional floating weights broadcastable to ``logits``' shape; positional third, as in torch.
    pos_weight: optional weight :math:`p_w` of the positive term,
      broadcastable to ``logits``' shape: one per class on the last axis, as
      in torch (e.g. ``negatives / positives`` per class).
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to ``logits``' shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or ``logits``' shape for ``'none'``, in
    ``promote_types(logits.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> logits = jnp.array([[2.0, -1.0], [0.5, 3.0]])
    >>> targets = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> jaxnll.binary_cross_entropy_with_logits(logits, targets, pos_weight=jnp.array([1.0, 3.0]))
    Array(0.3900072, dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = binary_cross_entropy_with_logits_terms(logits, targets, weight=weight, pos_weight=pos_weight, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, red)


def sigmoid_focal_loss(
    logits: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Focal loss of logits, as ``torchvision.ops.sigmoid_focal_loss``.

  .. math::
    \ell = \alpha_t\, (1 - p_t)^\gamma\, \mathrm{ce}(x, t), \qquad
    p_t = \sigma(x)\, t + (1 - \sigma(x))(1 - t), \qquad
    \alpha_t = \alpha t + (1 - \alpha)(1 - t)

  with :math:`\mathrm{ce}` the elementwise
  :func:`binary_cross_entropy_with_logits`; :math:`\alpha_t = 1` when
  ``alpha < 0``. :math:`1 - p_t` is computed without cancellation and the
  gradient is finite for every :math:`\gamma \ge 0`, saturated logits
  included (torchvision's is NaN there for :math:`\gamma < 1` in float32).

  Args:
    logits: floating logits, any shape; bf16/f16 are computed in float32.
    targets: targets in :math:`[0, 1]` of the same shape (floating, integer or bool).
    alpha: weight of the positive class in :math:`[0, 1]`; negative disables
      the weighting.
    gamma: focusing exponent, :math:`\ge 0`; 0 gives ``alpha``-weighted cross-entropy.
    reduction: ``'none'`` (torchvision's default) | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to ``logits``' shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    ``logits``' shape for ``'none'``, else a scalar, in
    ``promote_types(logits.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.sigmoid_focal_loss(jnp.array([2.0, -1.0, 0.5]), jnp.array([1.0, 0.0, 1.0]))
    Array([0.00045089, 0.01699354, 0.01689337], dtype=float32)

  References:
    Lin et al., `Focal Loss for Dense Object Detection
    <https://arxiv.org/abs/1708.02002>`_, 2017.
  """
  red = v.check_reduction(reduction)
  t = sigmoid_focal_loss_terms(logits, targets, alpha=alpha, gamma=gamma, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, red)


def multilabel_soft_margin_loss(
    input: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike | None = None,
    *,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Multi-label one-versus-all loss, as ``torch.nn.functional.multilabel_soft_margin_loss``.

  .. math::
    \ell_n = -\frac{1}{C} \sum_c w_c \left[t_{nc} \log \sigma(x_{nc})
      + (1 - t_{nc}) \log \sigma(-x_{nc})\right]

  over the last (class) axis, then reduced over the samples: ``'mean'``
  divides by the number of counted samples.

  Args:
    input: floating logits ``[..., C]``; bf16/f16 are computed in float32.
    targets: targets in :math:`[0, 1]` of the same shape (floating, integer or bool).
    weight: optional floating class weights broadcastable to ``input``'s
      shape, usually ``[C]``.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask over the samples, broadcastable to
      ``input.shape[:-1]``.

  Returns:
    A scalar, or ``input.shape[:-1]`` for ``'none'``, in
    ``promote_types(input.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> x = jnp.array([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
    >>> y = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    >>> jaxnll.multilabel_soft_margin_loss(x, y, reduction="none")
    Array([0.30475557, 0.37777898], dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = multilabel_soft_margin_loss_terms(input, targets, weight=weight, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, red)
