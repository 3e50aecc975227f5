"""Margin losses: margin ranking, hinge embedding, soft margin, multi-class and multi-label margin.

Two hinges, because torch has two. The elementwise losses clamp with
``clamp_min(z, 0)`` (:func:`clamp_min`): NaN stays NaN and the slope at
``z = 0`` is 1. The multi-class and multi-label kernels in torch's C++ add a
pair only where ``z > 0`` (:func:`positive_part`): a NaN pair adds nothing and
the slope at ``z = 0`` is 0. Both are plain ``jnp.where``, so forward and
reverse mode agree and higher derivatives exist.

Inputs broadcast against each other by numpy's rules once torch's rank check
has passed; shapes are compared with the library's one broadcast check,
which also takes ``jax.export``'s symbolic dimensions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._elementwise import Elements, floating_input
from jaxnll._loss_base import LossObject, LossTerms, count_hits, register, set_field
from jaxnll._reduction import Reduction
from jaxnll._targets import class_targets

# --------------------------------------------------------------------------
# Shared argument handling (also used by ``_embedding``)


def common_dtype(*arrays: jax.Array) -> np.dtype:
  """The compute dtype of several floating inputs: their promoted dtype, float32 or wider."""
  with jax.numpy_dtype_promotion("standard"):
    dtype = jnp.result_type(*(a.dtype for a in arrays))
  return v.compute_dtype(dtype)


def broadcast_shape(what: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
  """numpy's broadcast of ``shapes`` (symbolic dimensions allowed); ``what`` names them in the error."""
  try:
    return v.broadcast_shapes(*shapes)
  except ValueError:
    raise ValueError(f"{what} of shapes {', '.join(map(str, shapes))} do not broadcast together.") from None


def masked_elements(
    inputs: Mapping[str, jax.Array], shape: tuple[int, ...], where: object, what: str
) -> tuple[Elements, list[jax.Array]]:
  """The shared masking for losses whose inputs broadcast to the loss's ``shape``.

  Returns the :class:`~jaxnll._elementwise.Elements` that masks and reduces
  (its ``input`` and ``targets`` are unused) and the inputs in the compute
  dtype, broadcast to ``shape`` plus their own trailing axes.
  """
  dtype = common_dtype(*(x for x in inputs.values() if jnp.issubdtype(x.dtype, jnp.floating)))
  counted = v.check_where(where, shape, what)
  empty = jnp.zeros((), dtype)
  e = Elements(empty, empty, counted, shape, dtype)
  return e, [x.astype(dtype) for x in inputs.values()]


def real_targets(name: str, value: object) -> jax.Array:
  """Real-valued targets (labels such as ±1) as a JAX array; host integers go through float64 on the host, so
  an int64 value is never wrapped through int32 when x64 is off. The caller casts to the loss's dtype."""
  if isinstance(value, (jax.Array, jax.core.Tracer)):
    v.check_real(name, value)
    return value
  host = v.as_target_array(name, value)
  v.check_real(name, host)  # type: ignore[arg-type]
  if host.dtype.kind in "iub":
    host = np.asarray(host).astype(np.float64)
  with jax.ensure_compile_time_eval():
    return jnp.asarray(host)


def integer_targets(name: str, value: object) -> Any:
  t = v.as_target_array(name, value)
  v.check_integer(name, t, " (class indices)")
  return t


# --------------------------------------------------------------------------
# Kernels


def clamp_min(z: jax.Array) -> jax.Array:
  """torch's ``clamp_min(z, 0)``: NaN stays NaN (with slope 0), slope 1 where ``z >= 0``."""
  below = jnp.where(jnp.isnan(z), jax.lax.stop_gradient(z), jnp.zeros((), z.dtype))
  return jnp.where(z >= 0, z, below)


def positive_part(z: jax.Array) -> jax.Array:
  """``z`` where ``z > 0``, else 0 (NaN included): torch's margin kernels' test, slope 0 at ``z = 0``."""
  return jnp.where(z > 0, z, jnp.zeros((), z.dtype))


def soft_margin(z: jax.Array) -> jax.Array:
  """``log(1 + e^z)``, stable for any ``z`` (torch's ``log1p(exp(z))`` overflows to inf past ``z ≈ 88`` in float32)."""
  return jax.nn.softplus(z)


def class_margins(x: jax.Array, classes: jax.Array, margin: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array]:
  """``(margin - x[y] + x, onehot(y))`` for scores ``x`` (``(..., C)``) and class indices ``y`` (``(...)``)."""
  onehot = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1) == classes[..., None]
  x_y = jnp.take_along_axis(x, classes[..., None], axis=-1)
  return margin - x_y + x, onehot  # type: ignore[return-value]


def multi_margin(x: jax.Array, classes: jax.Array, p: int, margin: float, weight: jax.Array | None) -> jax.Array:
  """``Σ_{i ≠ y} w[y] max(0, margin - x[y] + x[i])^p / C`` per row of ``x`` (``(..., C)``)."""
  num_classes = x.shape[-1]
  z, onehot = class_margins(x, classes, margin)
  h = positive_part(z)
  if p == 2:
    h = h * h
  if weight is not None:
    # Weighted pair by pair, after the power, as torch: a zero pair stays 0 even for an infinite weight.
    w_y = weight.astype(x.dtype)[classes][..., None]
    h = jnp.where(h > 0, h * w_y, h)
  h = jnp.where(onehot, jnp.zeros((), x.dtype), h)
  return jnp.sum(h, axis=-1) / num_classes


def multilabel_margin(x: jax.Array, classes: jax.Array, listed: jax.Array) -> jax.Array:
  """``Σ_{j listed} Σ_{i not a target} max(0, 1 - x[y_j] + x[i]) / C`` per row of ``x`` (``(..., C)``).

  ``listed`` marks the target slots before the row's first ``-1``; a class
  listed twice counts twice, as in torch. Memory is ``O(C²)`` per row.
  """
  num_classes = x.shape[-1]
  iota = jax.lax.broadcasted_iota(jnp.int32, (*x.shape, num_classes), x.ndim)
  is_target = jnp.any(listed[..., None] & (classes[..., None] == iota), axis=-2)
  x_t = jnp.take_along_axis(x, classes, axis=-1)
  pairs = listed[..., :, None] & ~is_target[..., None, :]
  h = positive_part(1 - x_t[..., :, None] + x[..., None, :])
  h = jnp.where(pairs, h, jnp.zeros((), x.dtype))
  return jnp.sum(h, axis=(-2, -1)) / num_classes


def nan_where(bad: jax.Array, per_element: jax.Array, x: jax.Array) -> jax.Array:
  """NaN loss, and a NaN gradient over the whole row of the scores ``x`` (``(..., C)``), where a (traced)
  class index is out of range.

  The NaN comes from a term that only a bad row's scores reach (the others
  are replaced by 0 first), so every score of a bad row gets a NaN slope
  whatever the data, and no other row's gradient is touched.
  """
  x_bad = jnp.where(bad[..., None], x, jnp.zeros((), x.dtype))
  return jnp.where(bad, jnp.nan * jnp.sum(x_bad, axis=-1).astype(per_element.dtype), per_element)


# --------------------------------------------------------------------------
# Unreduced forms, shared by the functions and the loss objects


def _same_ndim(names: tuple[str, ...], arrays: tuple[jax.Array, ...], loss: str) -> None:
  if len({a.ndim for a in arrays}) != 1:
    got = ", ".join(f"`{n}` {a.shape}" for n, a in zip(names, arrays, strict=True))
    raise ValueError(f"{loss}: {' and '.join(f'`{n}`' for n in names)} must have the same number of dimensions, "
                     f"got {got}.")


def margin_ranking_loss_terms(input1, input2, target, *, margin=0.0, where=None) -> LossTerms:
  """The unreduced form of :func:`margin_ranking_loss`."""
  m = v.check_finite("margin", margin)
  x1, x2 = floating_input("input1", input1), floating_input("input2", input2)
  t = real_targets("target", target)
  _same_ndim(("input1", "input2", "target"), (x1, x2, t), "margin_ranking_loss")
  shape = broadcast_shape("`input1`, `input2` and `target`", x1.shape, x2.shape, t.shape)
  e, (x1, x2, t) = masked_elements({"input1": x1, "input2": x2, "target": t}, shape, where, "the loss's shape")
  x1, x2, t = (e.safe(jnp.broadcast_to(a, shape), 0.0) for a in (x1, x2, t))
  return e.terms(clamp_min(m - t * (x1 - x2)))


def hinge_embedding_loss_terms(input, target, *, margin=1.0, where=None) -> LossTerms:
  """The unreduced form of :func:`hinge_embedding_loss`."""
  m = v.check_finite("margin", margin)
  x = floating_input("input", input)
  t = real_targets("target", target)
  shape = broadcast_shape("`input` and `target`", x.shape, t.shape)
  e, (x, t) = masked_elements({"input": x, "target": t}, shape, where, "the loss's shape")
  x, t = (e.safe(jnp.broadcast_to(a, shape), 1.0) for a in (x, t))
  zero = jnp.zeros((), e.dtype)
  # Two independent tests, as torch: a target that is neither 1 nor -1 takes both terms.
  per = jnp.where(t != 1, clamp_min(m - x), zero) + jnp.where(t != -1, x, zero)
  return e.terms(per)


def soft_margin_loss_terms(input, target, *, where=None) -> LossTerms:
  """The unreduced form of :func:`soft_margin_loss`."""
  x = floating_input("input", input)
  t = real_targets("target", target)
  shape = x.shape
  if broadcast_shape("`input` and `target`", x.shape, t.shape) != shape:
    raise ValueError(f"`target` of shape {t.shape} must broadcast to the shape of `input`, {shape}, as torch requires.")
  e, (x, t) = masked_elements({"input": x, "target": t}, shape, where, "the input's shape")
  x = e.safe(x, 0.0)
  t = e.safe(jnp.broadcast_to(jax.lax.stop_gradient(t), shape), 0.0)  # torch's target takes no gradient
  return e.terms(soft_margin(-t * x))


def _check_class_input(x: jax.Array, loss: str) -> tuple[jax.Array, int]:
  """``x`` as ``(N, C)`` and its number of dimensions; torch takes a scalar, ``(C,)`` or ``(N, C)`` with ``C > 0``."""
  if x.ndim > 2 or (x.ndim >= 1 and x.shape[-1] == 0):
    raise ValueError(f"{loss}: `input` must be a non-empty vector (C,) or a matrix (N, C) with C > 0 "
                     f"(N may be 0), got shape {x.shape}.")
  return x.reshape((1, 1) if x.ndim == 0 else (1, x.shape[0]) if x.ndim == 1 else x.shape), x.ndim


def _check_p(p: object) -> int:
  if isinstance(p, bool) or p not in (1, 2):
    raise ValueError(f"`p` must be 1 or 2 (torch supports only those), got {p!r}.")
  return int(p)  # type: ignore[call-overload]


def check_class_weight(weight: object, num_classes: int | None = None) -> jax.Array | None:
  """Optional floating class weights, one-dimensional (of ``num_classes`` entries when given)."""
  if weight is None:
    return None
  w = v.check_weight_array("weight", weight)
  assert w is not None
  if w.ndim != 1:
    raise ValueError(f"`weight` must be one-dimensional (one entry per class), got shape {w.shape}.")
  if num_classes is not None and w.shape[0] != num_classes:
    raise ValueError(f"`weight` must have shape ({num_classes},) (one entry per class), got shape {w.shape}.")
  return w


def multi_margin_loss_terms(input, target, *, p=1, margin=1.0, weight=None, where=None) -> LossTerms:
  """The unreduced form of :func:`multi_margin_loss`: one term per sample."""
  pp = _check_p(p)
  m = v.check_finite("margin", margin)
  x, ndim = _check_class_input(floating_input("input", input), "multi_margin_loss")
  y = integer_targets("target", target)
  n, num_classes = x.shape
  fits = y.shape == (n,) or (y.shape == () and (ndim < 2 or n == 1))
  if not fits:
    raise ValueError(f"multi_margin_loss: `target` must hold one class index per sample, shape ({n},)"
                     f"{' or ()' if n == 1 else ''}, got shape {y.shape}.")
  w = check_class_weight(weight, num_classes)
  shape = tuple(y.shape)  # torch's output follows the target: () for a scalar target
  e, (x,) = masked_elements({"input": x}, shape, where, "the target's shape")
  with jax.ensure_compile_time_eval():  # a concrete mask stays concrete for the range check
    rows = None if e.counted is None else e.counted.reshape((n,))
  tg = class_targets(y.reshape((n,)), num_classes, None, rows)
  x = e.safe(x.reshape((*shape, num_classes)), 0.0)
  per = multi_margin(x, tg.classes.reshape(shape), pp, m, w)
  return e.terms(nan_where(tg.bad.reshape(shape), per, x))


def multilabel_margin_loss_terms(input, target, *, where=None) -> LossTerms:
  """The unreduced form of :func:`multilabel_margin_loss`: one term per sample."""
  xin = floating_input("input", input)
  x, ndim = _check_class_input(xin, "multilabel_margin_loss")
  y = integer_targets("target", target)
  n, num_classes = x.shape
  if (ndim == 2 and y.shape != x.shape) or (ndim < 2 and (y.ndim > 1 or y.size != num_classes)):
    raise ValueError(f"multilabel_margin_loss: `target` must have the shape of `input`, {xin.shape}, got "
                     f"shape {y.shape}.")
  shape = (n,) if ndim == 2 else ()  # unbatched: a scalar even for reduction='none', as torch
  e, (x,) = masked_elements({"input": x}, shape, where, "the loss's shape (one per sample)")
  with jax.ensure_compile_time_eval():  # a concrete mask stays concrete for the range check
    rows = None if e.counted is None else jnp.broadcast_to(e.counted.reshape((n, 1)), (n, num_classes))
  # -1 ends a row's targets; every entry, also after it, must be -1 or a class (as torch checks).
  tg = class_targets(y.reshape((n, num_classes)), num_classes, -1, rows)
  listed = jnp.cumsum(~tg.counted, axis=-1) == 0
  x = e.safe(x.reshape((*shape, num_classes)), 0.0)
  per = multilabel_margin(x, tg.classes.reshape((*shape, num_classes)), listed.reshape((*shape, num_classes)))
  return e.terms(nan_where(jnp.any(tg.bad, axis=-1).reshape(shape), per, x))


# --------------------------------------------------------------------------
# torch-style functions


def _reduce(terms: LossTerms, reduction: str) -> jax.Array:
  return _reduction.reduce(terms.per_element, terms.normalizer, reduction)


def margin_ranking_loss(
    input1: jax.typing.ArrayLike,
    input2: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike,
    *,
    margin: float = 0.0,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Margin ranking loss, as ``torch.nn.functional.margin_ranking_loss``.

  .. math::
    \ell = \max\bigl(0,\; -y\,(x_1 - x_2) + \mathrm{margin}\bigr)

  The slope at the kink is torch's (``clamp_min`` passes the gradient where
  its argument is 0). ``target`` is differentiable too, as in torch.

  Args:
    input1: floating scores, any shape; bf16/f16 are computed in float32.
    input2: floating scores with ``input1``'s number of dimensions.
    target: the desired order (1: ``input1`` first, -1: ``input2`` first),
      floating, integer or bool, with the same number of dimensions. The three
      broadcast together (numpy's rules).
    margin: finite.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to the broadcast shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or the broadcast shape for ``'none'``, in the promoted dtype
    of the inputs (float32 or wider).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.margin_ranking_loss(jnp.array([1.0, 2.0]), jnp.array([2.0, 0.0]), jnp.array([1.0, 1.0]), margin=0.5)
    Array(0.75, dtype=float32)
  """
  red = v.check_reduction(reduction)
  return _reduce(margin_ranking_loss_terms(input1, input2, target, margin=margin, where=where), red)


def hinge_embedding_loss(
    input: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike,
    *,
    margin: float = 1.0,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Hinge embedding loss, as ``torch.nn.functional.hinge_embedding_loss``.

  .. math::
    \ell = [y \ne 1]\, \max(0, \mathrm{margin} - x) + [y \ne -1]\, x

  For targets in :math:`\{1, -1\}` this is :math:`x` or
  :math:`\max(0, \mathrm{margin} - x)`; any other target takes both terms,
  exactly as torch computes it.

  Args:
    input: floating distances, any shape; bf16/f16 are computed in float32.
    target: 1 or -1 (floating, integer or bool), broadcastable with ``input``.
    margin: finite.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to the broadcast shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or the broadcast shape for ``'none'``, in
    ``promote_types(input.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.hinge_embedding_loss(jnp.array([0.3, 0.3, 2.0]), jnp.array([1, -1, -1]), reduction="none")
    Array([0.3, 0.7, 0. ], dtype=float32)
  """
  red = v.check_reduction(reduction)
  return _reduce(hinge_embedding_loss_terms(input, target, margin=margin, where=where), red)


def soft_margin_loss(
    input: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike,
    *,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Two-class logistic loss, as ``torch.nn.functional.soft_margin_loss``.

  .. math::
    \ell = \log\bigl(1 + e^{-y x}\bigr)

  ``'mean'`` is over every element. Computed as a softplus, so it stays
  finite (``-y x``) and its gradient stays ``-y`` where torch's
  ``log1p(exp(-y x))`` overflows to inf with a NaN gradient (``-y x`` past
  about 88 in float32, 709 in float64). ``target`` takes no gradient, as in
  torch.

  Args:
    input: floating scores, any shape; bf16/f16 are computed in float32.
    target: 1 or -1 (floating, integer or bool), broadcastable to ``input``'s
      shape (torch does not enlarge the input).
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to ``input``'s shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or ``input``'s shape for ``'none'``, in
    ``promote_types(input.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.soft_margin_loss(jnp.array([0.0, 2.0]), jnp.array([1.0, -1.0]), reduction="none")
    Array([0.6931472, 2.126928 ], dtype=float32)
  """
  red = v.check_reduction(reduction)
  return _reduce(soft_margin_loss_terms(input, target, where=where), red)


def multi_margin_loss(
    input: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike,
    *,
    p: int = 1,
    margin: float = 1.0,
    weight: jax.typing.ArrayLike | None = None,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Multi-class hinge loss, as ``torch.nn.functional.multi_margin_loss``.

  .. math::
    \ell_n = \frac{1}{C} \sum_{i \ne y_n} w_{y_n}
      \max\bigl(0,\; \mathrm{margin} - x_{n, y_n} + x_{n, i}\bigr)^p

  The class weight multiplies each term after the power, and ``'mean'``
  divides by the number of counted samples (not by the weights), as in
  torch. A pair whose margin term is NaN adds nothing (torch's kernel tests
  ``z > 0``), and the slope at ``z = 0`` is 0. An empty batch's mean is NaN
  (torch returns an arbitrary number there).

  Args:
    input: floating scores ``(N, C)``, or unbatched ``(C,)``; ``C > 0``;
      bf16/f16 are computed in float32.
    target: integer class indices in ``[0, C)``, any integer dtype: ``(N,)``
      (or ``()`` when ``N = 1``), and ``()`` or ``(1,)`` unbatched.
    p: 1 or 2.
    margin: finite.
    weight: optional floating class weights ``(C,)``.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to ``target``'s shape; False
      samples leave the sum and the mean's denominator.

  Returns:
    A scalar, or ``target``'s shape for ``'none'``, in
    ``promote_types(input.dtype, float32)``.

  Raises:
    IndexError: for a concrete class index outside ``[0, C)``. Under ``jit``
      such a sample's loss and gradient row are NaN (see :func:`jaxnll.checked`).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.multi_margin_loss(jnp.array([[0.1, 0.2, 0.4, 0.8]]), jnp.array([3]))
    Array(0.325, dtype=float32)
  """
  red = v.check_reduction(reduction)
  return _reduce(multi_margin_loss_terms(input, target, p=p, margin=margin, weight=weight, where=where), red)


def multilabel_margin_loss(
    input: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike,
    *,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Multi-label hinge loss, as ``torch.nn.functional.multilabel_margin_loss``.

  .. math::
    \ell_n = \frac{1}{C} \sum_{j} \sum_{i \notin \mathcal{Y}_n}
      \max\bigl(0,\; 1 - (x_{n, y_{n j}} - x_{n, i})\bigr)

  Row :math:`n`'s targets :math:`y_{n j}` are its entries before its first
  -1 and :math:`\mathcal{Y}_n` is their set; entries after the first -1 are
  ignored but must still be -1 or a class, as torch checks. A pair whose
  margin term is NaN adds nothing and the slope at 0 is 0, as in torch's
  kernel. Memory is :math:`O(N C^2)`.

  Args:
    input: floating scores ``(N, C)``, or unbatched ``(C,)``; ``C > 0``.
    target: integer class indices of ``input``'s shape, any integer dtype.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask of shape ``(N,)`` (or broadcastable to it);
      False samples leave the sum and the mean's denominator.

  Returns:
    A scalar, or ``(N,)`` for ``'none'`` with batched input (a scalar
    unbatched, as torch), in ``promote_types(input.dtype, float32)``.

  Raises:
    IndexError: for a concrete target entry outside ``[-1, C)``. Under ``jit``
      such a row's loss and gradient are NaN.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.multilabel_margin_loss(jnp.array([[0.1, 0.2, 0.4, 0.8]]), jnp.array([[3, 0, -1, 1]]))
    Array(0.85, dtype=float32)
  """
  red = v.check_reduction(reduction)
  return _reduce(multilabel_margin_loss_terms(input, target, where=where), red)


# --------------------------------------------------------------------------
# Loss objects


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class MarginRankingLoss(LossObject):
  """``torch.nn.MarginRankingLoss``: :func:`jaxnll.margin_ranking_loss` with its options bound.

  In training, the model's outputs are the pair ``(input1, input2)`` and
  ``batch["targets"]`` is ``target``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.MarginRankingLoss(0.5)
    >>> loss(jnp.array([1.0, 2.0]), jnp.array([2.0, 0.0]), jnp.array([1.0, 1.0]))
    Array(0.75, dtype=float32)
  """

  margin: float = 0.0
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    set_field(self, "margin", v.check_finite("margin", self.margin))
    set_field(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input1, input2, target, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return margin_ranking_loss_terms(input1, input2, target, margin=self.margin, where=where)

  def batch_terms(self, outputs: Any, batch: Mapping[str, Any]) -> LossTerms:
    """The terms of ``outputs = (input1, input2)`` against ``batch["targets"]``."""
    if not (isinstance(outputs, (tuple, list)) and len(outputs) == 2):
      raise TypeError(f"with MarginRankingLoss, the outputs must be a pair (input1, input2), got "
                      f"{type(outputs).__name__}.")
    return self.terms(outputs[0], outputs[1], batch["targets"], where=batch.get("where"))


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class HingeEmbeddingLoss(LossObject):
  """``torch.nn.HingeEmbeddingLoss``: :func:`jaxnll.hinge_embedding_loss` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.HingeEmbeddingLoss(margin=2.0)(jnp.array([0.5, 1.0]), jnp.array([1, -1]))
    Array(0.75, dtype=float32)
  """

  margin: float = 1.0
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    set_field(self, "margin", v.check_finite("margin", self.margin))
    set_field(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, target, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return hinge_embedding_loss_terms(input, target, margin=self.margin, where=where)


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class SoftMarginLoss(LossObject):
  """``torch.nn.SoftMarginLoss``: :func:`jaxnll.soft_margin_loss` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.SoftMarginLoss(reduction="sum")(jnp.array([0.0, 0.0]), jnp.array([1.0, -1.0]))
    Array(1.3862944, dtype=float32)
  """

  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    set_field(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, target, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return soft_margin_loss_terms(input, target, where=where)


@register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class MultiMarginLoss(LossObject):
  """``torch.nn.MultiMarginLoss``: :func:`jaxnll.multi_margin_loss` with its options bound.

  In training, accuracy is ``argmax(input) == target``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.MultiMarginLoss(p=2)(jnp.array([[0.1, 0.2, 0.4, 0.8]]), jnp.array([3]))
    Array(0.1525, dtype=float32)
  """

  p: int = 1
  margin: float = 1.0
  weight: jax.Array | None = None
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    set_field(self, "p", _check_p(self.p))
    set_field(self, "margin", v.check_finite("margin", self.margin))
    set_field(self, "weight", check_class_weight(self.weight))
    set_field(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, target, *, where=None) -> LossTerms:
    """Per-sample losses and normalizer shares, before reduction."""
    return multi_margin_loss_terms(input, target, p=self.p, margin=self.margin, weight=self.weight, where=where)

  def batch_hits(self, outputs: Any, batch: Mapping[str, Any], counted: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(correct, count)`` of ``argmax(outputs, -1) == batch["targets"]`` over the counted samples."""
    labels = jnp.reshape(jnp.asarray(batch["targets"]), counted.shape)
    return count_hits(jnp.argmax(jnp.asarray(outputs), axis=-1) == labels, counted)


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class MultiLabelMarginLoss(LossObject):
  """``torch.nn.MultiLabelMarginLoss``: :func:`jaxnll.multilabel_margin_loss` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.MultiLabelMarginLoss()(jnp.array([[0.1, 0.2, 0.4, 0.8]]), jnp.array([[3, 0, -1, 1]]))
    Array(0.85, dtype=float32)
  """

  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    set_field(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, target, *, where=None) -> LossTerms:
    """Per-sample losses and normalizer shares, before reduction."""
    return multilabel_margin_loss_terms(input, target, where=where)
