"""torch-style ``nll_loss`` and ``cross_entropy``: argument handling in front of the kernels."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._loss_base import LossTerms
from jaxnll._reduction import Reduction
from jaxnll._targets import class_targets
from jaxnll._xent_kernel import class_index_loss, keep_rows, probability_loss


def _class_axis(x: jax.Array, axis: object, name: str) -> int:
  v.check_floating(name, x)
  if x.ndim == 0:
    raise ValueError(f"`{name}` must have a class axis, got a scalar.")
  ax = v.canonical_axis(axis, x.ndim)
  if x.shape[ax] == 0:
    raise ValueError(f"`{name}` has no classes: shape {x.shape}, axis {ax}.")
  return ax


def _element_shape(x: jax.Array, axis: int) -> tuple[int, ...]:
  return x.shape[:axis] + x.shape[axis + 1 :]


def _softcapped(x: jax.Array, softcap: float | None, counted: jax.Array, axis: int) -> jax.Array:
  """``softcap * tanh(x / softcap)``; rows not counted are zeroed first, so
  that whatever they hold (NaN included) cannot reach a gradient through tanh."""
  if softcap is None:
    return x
  xf = keep_rows(jnp.expand_dims(counted, axis), x.astype(v.compute_dtype(x.dtype)), axis)
  return softcap * jnp.tanh(xf / softcap)


def _axis_text(axis: int, given: object) -> str:
  return f"axis={given}" if int(given) == axis else f"axis={given} (axis {axis})"  # type: ignore[call-overload]


def _class_index_terms(
    x, raw_targets, raw_where, *, weight, ignore_index, axis, given_axis, eps, z, normalize, name, softcap=None
) -> LossTerms:
  targets = v.as_target_array("targets", raw_targets)
  v.check_integer("targets", targets, " (class indices)")
  shape = _element_shape(x, axis)
  if targets.shape != shape:
    raise ValueError(
        f"`targets` of shape {targets.shape} does not fit `{name}` of shape "
        f"{x.shape} with class {_axis_text(axis, given_axis)}: expected {shape} for class indices"
        + (" or the input's shape for probabilities." if normalize else ".")
    )
  num_classes = x.shape[axis]
  w = v.check_weight(weight, num_classes)
  where = v.check_where(raw_where, shape, "the element shape (the input's shape without the class axis)")
  tg = class_targets(targets, num_classes, ignore_index, where)
  x = _softcapped(x, softcap, tg.counted, axis)
  ct = v.compute_dtype(x.dtype)
  per = class_index_loss(x, w, tg.classes, tg.counted, tg.bad, axis, eps, z, normalize)
  target_weight = None if w is None else w.astype(ct)[tg.classes]
  return LossTerms(per, _reduction.class_index_normalizer(tg.counted, target_weight, ct), tg.counted, eps > 0)


def _probability_terms(x, targets, raw_where, *, weight, ignore_index, axis, eps, z, softcap=None) -> LossTerms:
  if targets.shape != x.shape:
    raise ValueError(
        f"probability `targets` must have the logits' shape {x.shape}, got "
        f"{targets.shape}."
    )
  if ignore_index >= 0:
    raise ValueError(
        f"`ignore_index` is not supported for probability (floating point) "
        f"targets, got ignore_index={ignore_index}; use `where` to mask elements."
    )
  num_classes = x.shape[axis]
  w = v.check_weight(weight, num_classes)
  shape = _element_shape(x, axis)
  where = v.check_where(raw_where, shape, "the element shape (the input's shape without the class axis)")
  counted = jnp.ones(shape, bool) if where is None else where
  x = _softcapped(x, softcap, counted, axis)
  ct = v.compute_dtype(x.dtype)
  w_arr = jnp.ones((num_classes,), ct) if w is None else w
  per = probability_loss(x, targets, w_arr, counted, axis, eps, z)
  return LossTerms(per, counted.astype(ct), counted)


def cross_entropy_terms(
    logits: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weight: jax.typing.ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
) -> LossTerms:
  """The unreduced form of :func:`cross_entropy`, shared by every front door."""
  x = v.as_array("logits", logits)
  ax = _class_axis(x, axis, "logits")
  ii = v.check_ignore_index(ignore_index)
  eps = v.check_label_smoothing(label_smoothing)
  z = v.check_z_loss(z_loss)
  cap = v.check_softcap(softcap)
  t = v.as_target_array("targets", targets)
  if jnp.issubdtype(t.dtype, jnp.floating):
    return _probability_terms(
        x, t, where, weight=weight, ignore_index=ii, axis=ax, eps=eps, z=z, softcap=cap
    )
  return _class_index_terms(
      x, targets, where, weight=weight, ignore_index=ii, axis=ax, given_axis=axis, eps=eps, z=z,
      normalize=True, name="logits", softcap=cap,
  )


def nll_loss_terms(
    log_probs: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weight: jax.typing.ArrayLike | None = None,
    ignore_index: int = -100,
    axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
) -> LossTerms:
  """The unreduced form of :func:`nll_loss`."""
  x = v.as_array("log_probs", log_probs)
  ax = _class_axis(x, axis, "log_probs")
  return _class_index_terms(
      x, targets, where, weight=weight, ignore_index=v.check_ignore_index(ignore_index),
      axis=ax, given_axis=axis, eps=0.0, z=0.0, normalize=False, name="log_probs",
  )


@v.refuse_dim
def nll_loss(
    log_probs: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Negative log-likelihood of class indices, as ``torch.nn.functional.nll_loss``.

  .. math::
    \ell_i = -w_{y_i}\, \mathrm{log\_probs}_{i, y_i}, \qquad
    \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i w_{y_i}}

  where :math:`m_i` is 0 for targets equal to ``ignore_index`` or masked by
  ``where``, else 1. The input is used as given (no normalization).

  Args:
    log_probs: floating log-probabilities ``[..., C, ...]``.
    targets: integer class indices, ``log_probs``' shape without ``axis``.
    weight: optional ``[C]`` class weights; positional third, as in torch.
    ignore_index: targets equal to it are left out of the sum and of the
      mean's denominator. It may be a valid class.
    reduction: ``'none'`` (per element, the targets' shape), ``'mean'``
      (weighted mean; NaN with zero gradient when nothing is counted, as in
      torch), ``'safe_mean'`` (0 when nothing is counted) or ``'sum'``.
    axis: the class axis; ``axis=1`` is torch's ``(N, C, d1, ...)`` layout.
    where: optional boolean mask broadcastable to the targets; False counts
      as ignored.

  Returns:
    A scalar, or the targets' shape for ``'none'``, in
    ``promote_types(log_probs.dtype, float32)``.

  Raises:
    IndexError: concrete targets outside ``[0, C)`` that are not ignored.
      Under ``jit`` such elements give NaN (see :func:`jaxnll.checked`).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> lp = jaxnll.log_softmax(jnp.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]))
    >>> jaxnll.nll_loss(lp, jnp.array([2, -100]))
    Array(0.40760595, dtype=float32)
  """
  red = v.check_reduction(reduction)
  terms = nll_loss_terms(
      log_probs, targets, weight=weight, ignore_index=ignore_index, axis=axis, where=where
  )
  return _reduction.reduce(terms.per_element, terms.normalizer, red, nan_on_zero=terms.nan_on_zero)


@v.refuse_dim
def cross_entropy(
    logits: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
) -> jax.Array:
  r"""Softmax cross-entropy, as ``torch.nn.functional.cross_entropy``.

  For class-index targets :math:`y` with :math:`\varepsilon` = ``label_smoothing``,
  :math:`\mathrm{lp} = \mathrm{log\_softmax}(x)` and :math:`w` = ``weight``:

  .. math::
    \ell_i = m_i \Big[(1-\varepsilon)\, w_{y_i} (-\mathrm{lp}_{i,y_i})
      + \tfrac{\varepsilon}{C} \sum_c w_c (-\mathrm{lp}_{ic})
      + z\, \mathrm{lse}_i^2 \Big],
    \qquad \mathrm{mean} = \frac{\sum_i \ell_i}{\sum_i m_i w_{y_i}}

  For probability targets :math:`t` (floating, the logits' shape):
  :math:`\ell_i = -\sum_c w_c t'_{ic} \mathrm{lp}_{ic} + z\,\mathrm{lse}_i^2`
  with :math:`t' = (1-\varepsilon) t + \varepsilon / C`, and the mean divides
  by the number of counted elements (torch's choice).

  Derivatives come from a custom JVP rule, linear in the tangents, written
  from the closed form ``softmax - target distribution`` scaled by the
  weights: forward mode (``jvp``, ``jacfwd``, ``hessian``) works, and reverse
  mode is JAX's transpose of the same rule, one pass over the logits that
  reuses the forward's ``exp(x - m)``, ``m`` the target's logit for class
  indices (the row max where that would overflow). Ignored and masked elements get
  exactly zero gradient, ``-inf`` logits included.

  Args:
    logits: floating logits ``[..., C, ...]``; bf16/f16 are computed in f32.
    targets: integer class indices (the logits' shape without ``axis``) or
      floating class probabilities (the logits' shape).
    weight: optional ``[C]`` class weights; positional third, as in torch.
    ignore_index: class-index targets equal to it are left out of the sum and
      of the mean's denominator (it may be a valid class). Must stay negative
      for probability targets.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``; ``'mean'``
      of nothing is NaN with a zero gradient (torch), ``'safe_mean'`` gives 0.
    label_smoothing: :math:`\varepsilon \in [0, 1]`.
    axis: the class axis: -1 (JAX) by default, 1 for torch's ``(N, C, d1, ...)``.
    where: optional boolean mask broadcastable to the element shape (the
      logits' shape without ``axis``); False counts as ignored.
    z_loss: coefficient of PaLM's auxiliary ``z_loss * logsumexp(logits)**2``,
      added to each counted element and reduced with the loss.
    softcap: optional Gemma-2 soft cap: logits become
      ``softcap * tanh(logits / softcap)`` before everything else.

  Returns:
    A scalar, or the element shape for ``'none'``, in
    ``promote_types(logits.dtype, float32)``.

  Raises:
    IndexError: concrete class indices outside ``[0, C)`` that are counted.
      Under ``jit`` they give a NaN loss and NaN gradient row instead; wrap
      the computation in :func:`jaxnll.checked` to raise.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    >>> jaxnll.cross_entropy(logits, jnp.array([0, 1]), reduction="none")
    Array([0.2761297, 2.951799 ], dtype=float32)

  References:
    Szegedy et al., `Rethinking the Inception Architecture
    <https://arxiv.org/abs/1512.00567>`_, 2016 (label smoothing);
    Chowdhery et al., `PaLM <https://arxiv.org/abs/2204.02311>`_, 2022 (z-loss).
  """
  red = v.check_reduction(reduction)
  terms = cross_entropy_terms(
      logits, targets, weight=weight, ignore_index=ignore_index,
      label_smoothing=label_smoothing, axis=axis, where=where, z_loss=z_loss,
      softcap=softcap,
  )
  return _reduction.reduce(terms.per_element, terms.normalizer, red, nan_on_zero=terms.nan_on_zero)
