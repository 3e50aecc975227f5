"""Embedding losses: cosine embedding, pairwise distance and the triplet margin losses.

:func:`p_norm` is the one vector norm, with torch's gradients where autodiff
of the plain formula gives NaN: 0 at a zero vector (and, for ``p < 1``, at a
zero coordinate), ``sign`` for ``p = 1``, and the gradient shared evenly
among tied maxima for ``p = inf``. :func:`cosine` is the one cosine, shared
with the optax-style ``cosine_similarity``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxnll import _validation as v
from jaxnll._elementwise import floating_input
from jaxnll._loss_base import LossObject, LossTerms, register, set_field
from jaxnll._margin import broadcast_shape, clamp_min, common_dtype, masked_elements, real_targets
from jaxnll._reduction import Reduction, reduce
from jaxnll._regression import abs_error

_COSINE_EPS = 1e-12  # torch adds it to each squared norm

Distance = Callable[[jax.Array, jax.Array], jax.Array]

# --------------------------------------------------------------------------
# Kernels


def _root(s: jax.Array, power: float) -> jax.Array:
  """``s ** power`` for ``s >= 0``, with slope 0 at ``s = 0`` (torch's ``masked_fill(norm == 0, 0)``)."""
  nonzero = s != 0  # NaN counts as nonzero, so it propagates
  return jnp.where(nonzero, jnp.where(nonzero, s, jnp.ones((), s.dtype)) ** power, jnp.zeros((), s.dtype))


def p_norm(d: jax.Array, p: float, axis: int = -1, keepdims: bool = False) -> jax.Array:
  """``‖d‖_p`` along ``axis`` for ``p >= 0`` (``inf`` included), with torch's ``norm`` gradients."""
  if p == 0:
    return jnp.sum((d != 0).astype(d.dtype), axis=axis, keepdims=keepdims)
  a = abs_error(d)  # slope sign(d): 0 at 0
  if p == 1:
    return jnp.sum(a, axis=axis, keepdims=keepdims)
  if math.isinf(p):
    return jnp.max(a, axis=axis, keepdims=keepdims, initial=0.0)  # ties share the gradient, as torch
  if p == 2:
    return _root(jnp.sum(d * d, axis=axis, keepdims=keepdims), 0.5)
  return _root(jnp.sum(_root(a, p), axis=axis, keepdims=keepdims), 1.0 / p)


def cosine(x1: jax.Array, x2: jax.Array, axis: Any, squared_norm: Callable[[jax.Array], jax.Array],
           joint_root: bool = False) -> jax.Array:
  """``x1 · x2 / (‖x1‖ ‖x2‖)`` along ``axis``, each squared norm first passed through ``squared_norm``.

  ``joint_root`` divides by ``sqrt(m1 m2)``, torch's ``cosine_embedding_loss``
  (identical vectors give a cosine of exactly 1 there); otherwise by
  ``sqrt(m1) sqrt(m2)``, optax's ``cosine_similarity``.
  """
  dot = jnp.sum(x1 * x2, axis=axis)
  m1 = squared_norm(jnp.sum(x1 * x1, axis=axis))
  m2 = squared_norm(jnp.sum(x2 * x2, axis=axis))
  return dot / (jnp.sqrt(m1 * m2) if joint_root else jnp.sqrt(m1) * jnp.sqrt(m2))


def triplet(d_pos: jax.Array, d_neg: jax.Array, margin: float) -> jax.Array:
  """``max(0, margin + d_pos - d_neg)`` with torch's slope 1 at the kink."""
  return clamp_min(margin + d_pos - d_neg)


# --------------------------------------------------------------------------
# Argument handling


def check_p(p: object) -> float:
  if isinstance(p, (bool, jax.core.Tracer)) or not isinstance(p, (int, float)):
    raise TypeError(f"`p` must be a Python float known at trace time, got {p!r}.")
  x = float(p)
  if not x >= 0:
    raise ValueError(f"`p` must be >= 0 (inf included), got {p!r}.")
  return x


def _pairwise(x1: jax.Array, x2: jax.Array, p: float, eps: float, keepdim: bool) -> jax.Array:
  d = x1 - x2 + jnp.asarray(eps, x1.dtype)
  if d.ndim == 0:  # torch's norm over the only "dimension" of a scalar
    return p_norm(d[None], p, -1, False)
  return p_norm(d, p, -1, keepdim)


def _broadcast_inputs(names: tuple[str, ...], arrays: tuple[jax.Array, ...], loss: str) -> tuple[int, ...]:
  if len({a.ndim for a in arrays}) != 1:
    got = ", ".join(f"`{n}` {a.ndim}-D" for n, a in zip(names, arrays, strict=True))
    raise ValueError(f"{loss}: {', '.join(f'`{n}`' for n in names)} must have the same number of "
                     f"dimensions, got {got}.")
  return broadcast_shape(", ".join(f"`{n}`" for n in names), *(a.shape for a in arrays))


def _rows_safe(e, a: jax.Array, full: tuple[int, ...]) -> jax.Array:
  """``a`` broadcast to ``full`` with masked rows (the loss's elements) set to 1."""
  return e.safe(jnp.broadcast_to(a, full), 1.0)


# --------------------------------------------------------------------------
# Unreduced forms, shared by the functions and the loss objects


def cosine_embedding_loss_terms(input1, input2, target, *, margin=0.0, where=None) -> LossTerms:
  """The unreduced form of :func:`cosine_embedding_loss`."""
  m = v.check_finite("margin", margin)
  x1, x2 = floating_input("input1", input1), floating_input("input2", input2)
  y = real_targets("target", target)
  if y.ndim > 1:
    raise ValueError(f"cosine_embedding_loss: `target` must be 0-D or 1-D (one per pair), got shape {y.shape}.")
  want = y.ndim + 1
  if x1.ndim != want or x2.ndim != want:
    raise ValueError(f"cosine_embedding_loss: a {y.ndim}-D `target` needs {want}-D `input1` and `input2`, got "
                     f"shapes {x1.shape} and {x2.shape}.")
  full = broadcast_shape("`input1` and `input2`", x1.shape, x2.shape)
  shape = broadcast_shape("the pairs and `target`", full[:-1], y.shape)
  e, (x1, x2) = masked_elements({"input1": x1, "input2": x2}, shape, where, "the loss's shape (one per pair)")
  full = (*shape, full[-1])
  cos = cosine(_rows_safe(e, x1, full), _rows_safe(e, x2, full), -1, lambda s: s + _COSINE_EPS, joint_root=True)
  y = jnp.broadcast_to(y, shape)
  zero = jnp.zeros((), e.dtype)
  per = jnp.where(y == 1, 1 - cos, zero) + jnp.where(y == -1, clamp_min(cos - m), zero)
  return e.terms(per)


def _triplet_inputs(anchor, positive, negative, where, loss: str):
  arrays = tuple(floating_input(n, a) for n, a in
                 (("anchor", anchor), ("positive", positive), ("negative", negative)))
  full = _broadcast_inputs(("anchor", "positive", "negative"), arrays, loss)
  shape = full[:-1]
  e, arrays = masked_elements(dict(zip(("anchor", "positive", "negative"), arrays, strict=True)), shape, where,  # type: ignore[assignment]
                              "the loss's shape (the inputs' without their last axis)")
  if e.counted is not None:
    arrays = [_rows_safe(e, a, full) for a in arrays]  # type: ignore[assignment]
  return e, arrays, shape


def triplet_margin_loss_terms(anchor, positive, negative, *, margin=1.0, p=2.0, eps=1e-6, swap=False,
                              where=None) -> LossTerms:
  """The unreduced form of :func:`triplet_margin_loss`."""
  m = v.check_positive("margin", margin)
  pp = check_p(p)
  ep = v.check_finite("eps", eps)
  sw = v.check_flag("swap", swap)
  e, (a, pos, neg), _ = _triplet_inputs(anchor, positive, negative, where, "triplet_margin_loss")
  d_neg = _pairwise(a, neg, pp, ep, False)
  if sw:
    d_neg = jnp.minimum(d_neg, _pairwise(pos, neg, pp, ep, False))
  return e.terms(triplet(_pairwise(a, pos, pp, ep, False), d_neg, m))


def triplet_margin_with_distance_loss_terms(anchor, positive, negative, *, distance_function=None, margin=1.0,
                                            swap=False, where=None) -> LossTerms:
  """The unreduced form of :func:`triplet_margin_with_distance_loss`."""
  if distance_function is not None and not callable(distance_function):
    raise TypeError(f"`distance_function` must be None or a callable, got {distance_function!r}.")
  m = v.check_positive("margin", margin)
  sw = v.check_flag("swap", swap)
  dist = pairwise_distance if distance_function is None else distance_function
  e, (a, pos, neg), shape = _triplet_inputs(anchor, positive, negative, where,
                                            "triplet_margin_with_distance_loss")
  d_pos, d_neg = jnp.asarray(dist(a, pos)), jnp.asarray(dist(a, neg))
  if sw:
    d_neg = jnp.minimum(d_neg, jnp.asarray(dist(pos, neg)))
  per = triplet(d_pos.astype(e.dtype), d_neg.astype(e.dtype), m)
  if e.counted is not None and per.shape != shape:
    raise ValueError(f"with `where`, `distance_function` must give one distance per triplet, shape {shape}, "
                     f"got {per.shape}.")
  if e.counted is None:
    e = dataclasses.replace(e, shape=per.shape)
  return e.terms(per)


# --------------------------------------------------------------------------
# torch-style functions


def cosine_embedding_loss(
    input1: jax.typing.ArrayLike,
    input2: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike,
    *,
    margin: float = 0.0,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Cosine embedding loss, as ``torch.nn.functional.cosine_embedding_loss``.

  .. math::
    \cos = \frac{x_1 \cdot x_2}{\sqrt{(\|x_1\|^2 + \epsilon)(\|x_2\|^2 + \epsilon)}}, \qquad
    \ell = \begin{cases} 1 - \cos & y = 1 \\ \max(0, \cos - \mathrm{margin}) & y = -1 \\
      0 & \text{otherwise} \end{cases}

  with torch's :math:`\epsilon = 10^{-12}`, so a zero vector has cosine 0,
  and the root of the product as torch takes it, so identical vectors give
  exactly 0 for :math:`y = 1` (like torch, the product overflows for vectors
  of squared norm beyond about :math:`10^{19}` in float32).

  Args:
    input1: floating embeddings ``(N, D)``, or ``(D,)`` with a 0-D target.
    input2: floating embeddings of the same number of dimensions; the two
      broadcast together.
    target: 1 or -1 per pair (floating, integer or bool), ``(N,)`` (it
      broadcasts with the pairs) or 0-D.
    margin: finite.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to the loss's shape; False
      pairs leave the sum and the mean's denominator.

  Returns:
    A scalar, or one loss per pair for ``'none'``, in the promoted dtype of
    the inputs (float32 or wider).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> x1, x2 = jnp.array([[1.0, 0.0], [1.0, 1.0]]), jnp.array([[0.0, 1.0], [1.0, 0.0]])
    >>> jaxnll.cosine_embedding_loss(x1, x2, jnp.array([1, -1]), reduction="none")
    Array([1.        , 0.70710677], dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = cosine_embedding_loss_terms(input1, input2, target, margin=margin, where=where)
  return reduce(t.per_element, t.normalizer, red)


def pairwise_distance(
    x1: jax.typing.ArrayLike,
    x2: jax.typing.ArrayLike,
    *,
    p: float = 2.0,
    eps: float = 1e-6,
    keepdim: bool = False,
) -> jax.Array:
  r"""The distance of each pair of vectors, as ``torch.nn.functional.pairwise_distance``.

  .. math::
    d(x_1, x_2) = \| x_1 - x_2 + \epsilon \|_p

  along the last axis of the broadcast shape (numpy's rules, as torch). The
  gradients are torch's ``norm`` gradients (0 at a zero difference).

  Args:
    x1: floating vectors ``(..., D)``; bf16/f16 are computed in float32.
    x2: floating vectors broadcastable with ``x1``.
    p: the norm's order, ``>= 0`` (``inf`` for the largest coordinate).
    eps: added to every coordinate of the difference.
    keepdim: keep the reduced axis with size 1.

  Returns:
    The broadcast shape without its last axis (with it, of size 1, for
    ``keepdim``), in the promoted dtype of the inputs (float32 or wider).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.pairwise_distance(jnp.array([[3.0, 0.0]]), jnp.array([[0.0, 4.0]]), eps=0.0)
    Array([5.], dtype=float32)
  """
  pp = check_p(p)
  ep = v.check_finite("eps", eps)
  kd = v.check_flag("keepdim", keepdim)
  a, b = floating_input("x1", x1), floating_input("x2", x2)
  dtype = common_dtype(a, b)
  full = broadcast_shape("`x1` and `x2`", a.shape, b.shape)
  return _pairwise(jnp.broadcast_to(a.astype(dtype), full), jnp.broadcast_to(b.astype(dtype), full), pp, ep, kd)


def triplet_margin_loss(
    anchor: jax.typing.ArrayLike,
    positive: jax.typing.ArrayLike,
    negative: jax.typing.ArrayLike,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Triplet margin loss, as ``torch.nn.functional.triplet_margin_loss``.

  .. math::
    \ell = \max\bigl(0,\; \mathrm{margin} + d(a, p) - d(a, n)\bigr), \qquad
    d(u, v) = \| u - v + \epsilon \|_p

  With ``swap``, :math:`d(a, n)` is replaced by :math:`\min(d(a, n), d(p, n))`
  (Balntas et al.). Slopes at the kinks are torch's: 1 at the hinge's, half
  each at a tie of the swap's minimum.

  Args:
    anchor: floating embeddings ``(..., D)`` (``(N, D)`` or ``(D,)`` in
      torch); bf16/f16 are computed in float32.
    positive: floating embeddings with ``anchor``'s number of dimensions.
    negative: likewise; the three broadcast together.
    margin: > 0, as torch requires.
    p: the norm's order, ``>= 0`` (``inf`` included).
    eps: added to every coordinate of each difference.
    swap: use the distance swap.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to the loss's shape (the
      inputs' broadcast shape without the last axis); False triplets leave
      the sum and the mean's denominator.

  Returns:
    A scalar, or the inputs' broadcast shape without its last axis for
    ``'none'``, in the promoted dtype of the inputs (float32 or wider).

  References:
    V. Balntas et al., `Learning shallow convolutional feature descriptors
    with triplet losses <https://bmva-archive.org.uk/bmvc/2016/papers/paper119/abstract119.pdf>`_, 2016.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> a, p, n = jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), jnp.array([[1.0, 0.0]])
    >>> jaxnll.triplet_margin_loss(a, p, n, eps=0.0)
    Array(5., dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = triplet_margin_loss_terms(anchor, positive, negative, margin=margin, p=p, eps=eps, swap=swap, where=where)
  return reduce(t.per_element, t.normalizer, red)


def triplet_margin_with_distance_loss(
    anchor: jax.typing.ArrayLike,
    positive: jax.typing.ArrayLike,
    negative: jax.typing.ArrayLike,
    *,
    distance_function: Distance | None = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Triplet margin loss with any distance, as ``torch.nn.functional.triplet_margin_with_distance_loss``.

  .. math::
    \ell = \max\bigl(0,\; \mathrm{margin} + d(a, p) - d(a, n)\bigr)

  ``d`` is ``distance_function`` (any JAX-traceable callable of two arrays;
  the loss is differentiable through it), :func:`pairwise_distance` by
  default. With ``swap``, :math:`d(a, n)` becomes :math:`\min(d(a, n), d(p, n))`.

  Args:
    anchor: floating embeddings; bf16/f16 are computed in float32.
    positive: floating embeddings with ``anchor``'s number of dimensions.
    negative: likewise.
    distance_function: ``d(x1, x2)``, or None for :func:`pairwise_distance`.
    margin: > 0, as torch requires.
    swap: use the distance swap.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to the inputs' broadcast shape
      without its last axis; the distance must then give one value per
      triplet. Masked triplets are replaced by ones before the distance is
      computed, so they give exactly zero loss and gradient.

  Returns:
    A scalar, or the distance's shape for ``'none'``, in the promoted dtype
    of the inputs (float32 or wider).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> a, p, n = jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), jnp.array([[1.0, 0.0]])
    >>> l1 = lambda x, y: jnp.sum(jnp.abs(x - y), axis=-1)
    >>> jaxnll.triplet_margin_with_distance_loss(a, p, n, distance_function=l1)
    Array(7., dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = triplet_margin_with_distance_loss_terms(anchor, positive, negative, distance_function=distance_function,
                                              margin=margin, swap=swap, where=where)
  return reduce(t.per_element, t.normalizer, red)


# --------------------------------------------------------------------------
# Loss objects


def _tuple_outputs(outputs: Any, n: int, what: str, loss: str) -> tuple[Any, ...]:
  if not (isinstance(outputs, (tuple, list)) and len(outputs) == n):
    raise TypeError(f"with {loss}, the outputs must be {what}, got {type(outputs).__name__}.")
  return tuple(outputs)


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class CosineEmbeddingLoss(LossObject):
  """``torch.nn.CosineEmbeddingLoss``: :func:`jaxnll.cosine_embedding_loss` with its options bound.

  In training, the model's outputs are the pair ``(input1, input2)`` and
  ``batch["targets"]`` is ``target``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.CosineEmbeddingLoss()(jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 1.0]]), jnp.array([1]))
    Array(0.29289323, dtype=float32)
  """

  margin: float = 0.0
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    set_field(self, "margin", v.check_finite("margin", self.margin))
    set_field(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input1, input2, target, *, where=None) -> LossTerms:
    """Per-pair losses and normalizer shares, before reduction."""
    return cosine_embedding_loss_terms(input1, input2, target, margin=self.margin, where=where)

  def batch_terms(self, outputs: Any, batch: Mapping[str, Any]) -> LossTerms:
    """The terms of ``outputs = (input1, input2)`` against ``batch["targets"]``."""
    x1, x2 = _tuple_outputs(outputs, 2, "a pair (input1, input2)", "CosineEmbeddingLoss")
    return self.terms(x1, x2, batch["targets"], where=batch.get("where"))


class _Triplet(LossObject):
  def batch_terms(self, outputs: Any, batch: Mapping[str, Any]) -> LossTerms:
    """The terms of ``outputs = (anchor, positive, negative)``; the batch needs no targets."""
    a, p, n = _tuple_outputs(outputs, 3, "a triple (anchor, positive, negative)", type(self).__name__)
    return self.terms(a, p, n, where=batch.get("where"))


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class TripletMarginLoss(_Triplet):
  """``torch.nn.TripletMarginLoss``: :func:`jaxnll.triplet_margin_loss` with its options bound.

  In training, the model's outputs are ``(anchor, positive, negative)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> a, p, n = jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), jnp.array([[1.0, 0.0]])
    >>> jaxnll.TripletMarginLoss(margin=2.0, eps=0.0)(a, p, n)
    Array(6., dtype=float32)
  """

  margin: float = 1.0
  p: float = 2.0
  eps: float = 1e-6
  swap: bool = False
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    set_field(self, "margin", v.check_positive("margin", self.margin))
    set_field(self, "p", check_p(self.p))
    set_field(self, "eps", v.check_finite("eps", self.eps))
    set_field(self, "swap", v.check_flag("swap", self.swap))
    set_field(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, anchor, positive, negative, *, where=None) -> LossTerms:
    """Per-triplet losses and normalizer shares, before reduction."""
    return triplet_margin_loss_terms(anchor, positive, negative, margin=self.margin, p=self.p, eps=self.eps,
                                     swap=self.swap, where=where)


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class TripletMarginWithDistanceLoss(_Triplet):
  """``torch.nn.TripletMarginWithDistanceLoss``: :func:`jaxnll.triplet_margin_with_distance_loss`, options bound.

  Options are keyword-only, as in torch; the distance function is static
  metadata (a new object with the same function does not retrace).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> a, p, n = jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), jnp.array([[1.0, 0.0]])
    >>> jaxnll.TripletMarginWithDistanceLoss(margin=0.5)(a, p, n)
    Array(4.4999995, dtype=float32)
  """

  _: dataclasses.KW_ONLY
  distance_function: Distance | None = None
  margin: float = 1.0
  swap: bool = False
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    if self.distance_function is not None and not callable(self.distance_function):
      raise TypeError(f"`distance_function` must be None or a callable, got {self.distance_function!r}.")
    set_field(self, "margin", v.check_positive("margin", self.margin))
    set_field(self, "swap", v.check_flag("swap", self.swap))
    set_field(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, anchor, positive, negative, *, where=None) -> LossTerms:
    """Per-triplet losses and normalizer shares, before reduction."""
    return triplet_margin_with_distance_loss_terms(
        anchor, positive, negative, distance_function=self.distance_function, margin=self.margin,
        swap=self.swap, where=where)
