"""Kullback-Leibler divergence, as ``torch.nn.functional.kl_div``.

One pointwise formula, :func:`kl_pointwise`, with torch's ``0 · log 0 = 0``;
``'batchmean'`` is expressed through the normalizer (one share per row of
axis 0 that holds a counted element), so the shared reduction and the exact
gradient accumulation apply to it unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.special

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._elementwise import elements, times_zero_safe
from jaxnll._loss_base import LossTerms
from jaxnll._reduction import KLDivReduction


def kl_pointwise(log_probs: jax.Array, targets: jax.Array, log_target: bool) -> jax.Array:
  """``t (log t - x)`` (torch's ``xlogy(t, t) - t x``), or ``e^t (t - x)`` for log targets.

  A target of probability 0 contributes 0 unless the input is NaN (torch:
  NaN when the input is infinite, or always for a log target of ``-inf``).
  The gradient with respect to a probability target of 0 is NaN, as in
  torch: the derivative of ``t log t`` is unbounded there.
  """
  if not log_target:
    return jax.scipy.special.xlogy(targets, targets) - times_zero_safe(targets, log_probs)
  impossible = targets == -jnp.inf
  t = jnp.where(impossible, jnp.zeros((), targets.dtype), targets)
  value = jnp.exp(t) * (t - log_probs)
  # An impossible target contributes 0 (NaN for a NaN input) and has torch's
  # slope -exp(-inf) = 0 in the input, a NaN input included.
  nan_or_zero = jnp.where(jnp.isnan(log_probs), jnp.full((), jnp.nan, value.dtype), jnp.zeros((), value.dtype))
  return jnp.where(impossible, nan_or_zero, value)


def _per_row(terms: LossTerms, masked: bool) -> LossTerms:
  """``'batchmean'``'s terms: each row of axis 0 sums its elements and counts once.

  A row counts when any of its elements does (every row, without a mask,
  even an empty one: torch divides the sum by ``input.size(0)``).
  """
  per, counted = terms.per_element, terms.counted
  if per.ndim == 0:
    return terms
  inner = tuple(range(1, per.ndim))
  if masked:
    with jax.ensure_compile_time_eval():  # a concrete mask keeps its rows concrete
      rows = jnp.any(counted, axis=inner)
  else:
    rows = jnp.ones(per.shape[:1], bool)  # traced, so a symbolic batch exports
  return LossTerms(jnp.sum(per, axis=inner), rows.astype(per.dtype), rows)


def kl_div_terms(
    log_probs: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    reduction: KLDivReduction = "mean",
    log_target: bool = False,
    where: jax.typing.ArrayLike | None = None,
) -> LossTerms:
  """The unreduced form of :func:`kl_div`; its normalizer depends on ``reduction``."""
  red = v.check_kl_reduction(reduction)
  lt = v.check_flag("log_target", log_target)
  e = elements(log_probs, targets, where, input_name="log_probs")
  per = kl_pointwise(e.safe(e.input, 0.0), e.safe(e.targets, 0.0 if lt else 1.0), lt)
  terms = e.terms(per)
  return _per_row(terms, e.counted is not None) if red == "batchmean" else terms


def kl_div(
    log_probs: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    reduction: KLDivReduction = "mean",
    log_target: bool = False,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Kullback-Leibler divergence :math:`D(t \,\|\, p)`, as ``torch.nn.functional.kl_div``.

  .. math::
    \ell = t \left(\log t - \mathrm{log\_probs}\right)
    \quad\text{or, with } \texttt{log\_target}, \quad
    \ell = e^{t} \left(t - \mathrm{log\_probs}\right)

  with :math:`0 \log 0 = 0`. A target of probability 0 contributes 0 even
  where ``log_probs`` is ``-inf`` (torch gives NaN there, and for every log
  target of ``-inf``); a NaN input still gives NaN.

  ``'mean'`` divides by the number of counted elements (torch's, which warns
  that it is not the divergence's mean); ``'batchmean'`` divides the sum by
  the size of axis 0, the mathematical KL divergence averaged over the batch.
  With ``where``, ``'batchmean'`` divides by the number of rows of axis 0 that
  hold a counted element (padding rows drop out).

  Args:
    log_probs: floating log-probabilities of the model, any shape; bf16/f16
      are computed in float32.
    targets: target probabilities (log-probabilities with ``log_target``)
      of the same shape, floating, integer or bool. Differentiable; the
      gradient at a probability target of 0 is NaN, as in torch.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'`` | ``'batchmean'``.
    log_target: whether ``targets`` are log-probabilities.
    where: optional boolean mask broadcastable to ``log_probs``' shape; False
      elements leave the sum and the denominator.

  Returns:
    A scalar, or ``log_probs``' shape for ``'none'``, in
    ``promote_types(log_probs.dtype, float32)``.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxnll
    >>> log_probs = jax.nn.log_softmax(jnp.array([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]]))
    >>> targets = jnp.array([[0.2, 0.7, 0.1], [0.0, 0.5, 0.5]])
    >>> jaxnll.kl_div(log_probs, targets, reduction="batchmean")
    Array(0.457163, dtype=float32)
  """
  t = kl_div_terms(log_probs, targets, reduction=reduction, log_target=log_target, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, v.check_kl_reduction(reduction))
