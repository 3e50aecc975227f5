"""Per-element cross-entropy with a one-pass backward (the loss math, once).

Two kernels, one per kind of target, both ``custom_vjp``:

* :func:`class_index_loss` — class-index targets ``y``:
  ``l = (1-ε) w[y] (lse - x[y]) + (ε/C) Σ_c w_c (lse - x_c) + z lse²``; with
  ``normalize=False`` the input is taken as log-probabilities (``lse = 0``),
  which is ``nll_loss``.
* :func:`probability_loss` — probability targets ``t``:
  ``l = Σ_c w_c t'_c (lse - x_c) + z lse²`` with ``t' = (1-ε) t + ε/C``.

The differentiated forward keeps the inputs, the per-element ``lse`` and, for
class-index targets, ``exp(x - max)`` with its row sums: on CPU ``exp`` is the
dominant cost, so it is evaluated once. The backward is one elementwise pass,
``coef · softmax - target_mass``, with no one-hot or scatter buffer of its own.
(The non-differentiated call keeps nothing.) Elements that are not counted get
a zero loss and an exactly zero gradient row whatever their logits (``-inf``
rows included) and whatever cotangent reaches them (an all-ignored mean sends
``inf``). A counted class index outside ``[0, C)`` gives a NaN loss and a NaN
gradient row.

For probability targets a term whose coefficient is zero contributes zero
even against an infinite logit (``0 · inf`` is taken as 0), so a probability
of 0 masks a ``-inf`` logit rather than turning the loss into NaN. The
label-smoothing sum of class-index targets is computed as torch does.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxnll._log_softmax import finite_shift, log_of_shifted_sum, logsumexp
from jaxnll._targets import out_of_bounds
from jaxnll._validation import compute_dtype


def _zero_safe_product(coef: jax.Array, value: jax.Array) -> jax.Array:
  """``coef * value`` with ``0 * ±inf`` taken as 0."""
  return jnp.where(coef == 0, jnp.zeros_like(value), coef * value)


def _expand(a: jax.Array, axis: int) -> jax.Array:
  return jnp.expand_dims(a, axis)


def _along(w: jax.Array, axis: int, ndim: int) -> jax.Array:
  """Class weights ``[C]`` shaped to broadcast along ``axis`` of an ``ndim`` array."""
  return w.reshape((1,) * axis + (w.shape[0],) + (1,) * (ndim - axis - 1))


def _lse(xf: jax.Array, axis: int, normalize: bool) -> jax.Array:
  if normalize:
    return logsumexp(xf, axis)
  return jnp.zeros(xf.shape[:axis] + (1,) + xf.shape[axis + 1 :], xf.dtype)


# --------------------------------------------------------------------------
# Class-index targets.


def _class_sum(xf: jax.Array, wf: jax.Array, axis: int) -> jax.Array:
  """``Σ_c w_c x_c`` over ``axis``: one GEMV pass, no ``[..., C]`` temporary."""
  return jnp.tensordot(xf, wf, axes=((axis,), (0,)), precision=lax.Precision.HIGHEST)


def _shifted_exp(xf: jax.Array, axis: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(exp(x - m), Σ exp(x - m), lse)`` with the row max ``m`` (0 if not finite)."""
  m = finite_shift(jnp.max(xf, axis=axis, keepdims=True))
  e = jnp.exp(xf - m)
  total = jnp.sum(e, axis=axis, keepdims=True)
  return e, total, log_of_shifted_sum(total, m)


class RowCoefficients(NamedTuple):
  """Per-element factors of the class-index gradient ``dL/dx_c``:
  ``softmax * p_c - smooth * w_c - target * [c == y] + nan_row``."""

  softmax: jax.Array
  target: jax.Array
  smooth: jax.Array
  nan_row: jax.Array


def row_loss(lse, x_y, w_y, sum_w, wx_sum, num_classes, eps, z, bad, counted):
  """The class-index loss of one element from its statistics.

  ``lse`` is the row's logsumexp, ``x_y`` its target logit, ``w_y`` the target's
  weight, ``sum_w = Σ_c w_c`` and ``wx_sum = Σ_c w_c x_c`` (used only when
  ``eps > 0``). Elementwise, so any matching shapes work.
  """
  loss = (1.0 - eps) * w_y * (lse - x_y)
  if eps > 0:
    # Σ_c w_c (lse - x_c), as torch computes it (a -inf logit of weight 0 is NaN there too).
    loss = loss + (eps / num_classes) * (sum_w * lse - wx_sum)
  if z > 0:
    loss = loss + z * lse**2
  loss = jnp.where(bad, jnp.full_like(loss, jnp.nan), loss)
  return jnp.where(counted, loss, jnp.zeros_like(loss))


def row_coefficients(g, counted, bad, w_y, sum_w, lse, num_classes, eps, z) -> RowCoefficients:
  """The gradient factors of :func:`row_loss` for cotangent ``g``; all zero
  where not counted, NaN ``nan_row`` where the target is out of range."""
  zero = jnp.zeros((), g.dtype)
  g = jnp.where(counted, g, zero)
  target = g * (1.0 - eps) * w_y
  smooth = g * (eps / num_classes)
  softmax = target + smooth * sum_w
  if z > 0:
    softmax = softmax + g * (2.0 * z) * lse
  nan_row = jnp.where(bad, jnp.full((), jnp.nan, g.dtype), zero)
  return RowCoefficients(softmax, target, smooth, nan_row)


def target_weight_grad(g, counted, bad, lse, x_y, eps):
  """Each element's ``dL/dw_y`` from its own target term (scattered onto ``y`` by the caller)."""
  ok = counted & ~bad
  return jnp.where(ok, g * (1.0 - eps) * (lse - x_y), jnp.zeros((), g.dtype))


def _class_index_forward(x, y, w, counted, axis, eps, z, normalize, keep_exp=False):
  ct = compute_dtype(x.dtype)
  xf = x.astype(ct)
  wf = w.astype(ct)
  num_classes = x.shape[axis]
  yc = jnp.clip(y, 0, num_classes - 1).astype(jnp.int32)
  e: jax.Array | None = None
  total: jax.Array | None = None
  if normalize and keep_exp:
    e, total, lse = _shifted_exp(xf, axis)
  else:
    lse = _lse(xf, axis, normalize)
  row_lse = jnp.squeeze(lse, axis)
  x_y = jnp.squeeze(jnp.take_along_axis(xf, _expand(yc, axis), axis=axis), axis)
  wx_sum = _class_sum(xf, wf, axis) if eps > 0 else None
  loss = row_loss(row_lse, x_y, wf[yc], jnp.sum(wf), wx_sum, num_classes, eps, z,
                  out_of_bounds(y, num_classes, counted), counted)
  return loss, (lse, e, total)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7))
def class_index_loss(x, y, w, counted, axis, eps, z, normalize):
  """Per-element loss for class-index targets; see the module docstring.

  Args:
    x: logits (or log-probabilities when ``normalize`` is False), any float.
    y: integer targets, ``x``'s shape without ``axis``.
    w: class weights ``[C]`` (ones when the caller has none).
    counted: bool, ``y``'s shape; False elements are ignored.
    axis: the class axis, non-negative.
    eps: label smoothing, a Python float.
    z: z-loss coefficient, a Python float.
    normalize: whether to apply log-softmax (cross-entropy) or not (NLL).

  Returns:
    ``[y.shape]`` losses in ``promote_types(x.dtype, float32)``.
  """
  return _class_index_forward(x, y, w, counted, axis, eps, z, normalize)[0]


def _class_index_fwd(x, y, w, counted, axis, eps, z, normalize):
  loss, (lse, e, total) = _class_index_forward(
      x, y, w, counted, axis, eps, z, normalize, keep_exp=True)
  return loss, (x, y, w, counted, lse, e, total)


def _class_index_bwd(axis, eps, z, normalize, res, g):
  x, y, w, counted, lse, e, total = res
  ct = compute_dtype(x.dtype)
  xf = x.astype(ct)
  wf = w.astype(ct)
  num_classes = x.shape[axis]
  zero = jnp.zeros((), ct)
  # Per-row values are kept with a size-1 class axis (like ``lse``), so the
  # one [..., C] pass below broadcasts them without any reshape.
  counted_e = _expand(counted, axis)
  y_e = _expand(jnp.clip(y, 0, num_classes - 1).astype(jnp.int32), axis)
  g_e = _expand(g.astype(ct), axis)
  bad_e = _expand(out_of_bounds(y, num_classes, counted), axis)
  coef = row_coefficients(g_e, counted_e, bad_e, wf[y_e], jnp.sum(wf), lse, num_classes, eps, z)

  # dx = coef.softmax * softmax - coef.smooth * w - coef.target * onehot (+ NaN
  # rows), with softmax = e / total from the forward's e = exp(x - max).
  if normalize:
    # NaN rows come through the scale: e >= 0 is finite, so NaN * e is NaN.
    # The division comes last so that XLA computes the per-row scale once, in
    # its own fusion, instead of re-deriving the masks for every element of
    # the [..., C] pass (a cheap producer is duplicated into its consumer; a
    # division is not). Rows not counted divide 0 by 1.
    numerator = jnp.where(counted_e, coef.softmax, zero) + coef.nan_row
    scale = numerator / jnp.where(counted_e, total, jnp.ones((), ct))
    dx = scale * e
  else:
    dx = jnp.broadcast_to(coef.nan_row, x.shape)
  if eps > 0:
    dx = dx - coef.smooth * _along(wf, axis, x.ndim)
  if axis == x.ndim - 1:
    # Classes last: a scatter-add of the target entries, in place, is cheaper
    # than comparing every class index with the target.
    rows = dx.reshape(-1, num_classes)
    rows = rows.at[jnp.arange(rows.shape[0]), y_e.ravel()].add(-coef.target.ravel())
    dx = rows.reshape(x.shape)
  else:
    is_target = lax.broadcasted_iota(jnp.int32, x.shape, axis) == y_e
    dx = dx - jnp.where(is_target, coef.target, zero)

  x_y = jnp.take_along_axis(xf, y_e, axis=axis)
  per_target = target_weight_grad(g_e, counted_e, bad_e, lse, x_y, eps)
  dw = jnp.zeros((num_classes,), ct).at[y_e.ravel()].add(per_target.ravel())
  if eps > 0:
    # d/dw_c of (ε/C) Σ_c w_c (lse - x_c), summed over elements.
    all_axes = tuple(range(x.ndim))
    other_axes = tuple(a for a in all_axes if a != axis)
    g_x = jnp.tensordot(jnp.squeeze(coef.smooth, axis), xf, axes=(tuple(range(x.ndim - 1)), other_axes),
                        precision=lax.Precision.HIGHEST)
    dw = dw + (jnp.sum(coef.smooth * jnp.where(counted_e, lse, zero)) - g_x)
  return dx.astype(x.dtype), None, dw.astype(w.dtype), None


class_index_loss.defvjp(_class_index_fwd, _class_index_bwd)


# --------------------------------------------------------------------------
# Probability targets.


def _smoothed(t: jax.Array, eps: float, num_classes: int) -> jax.Array:
  if eps == 0:
    return t
  return (1.0 - eps) * t + eps / num_classes


def _probability_forward(x, t, w, counted, axis, eps, z):
  ct = compute_dtype(x.dtype)
  xf = x.astype(ct)
  num_classes = x.shape[axis]
  w_b = _along(w.astype(ct), axis, x.ndim)
  mass = w_b * _smoothed(t.astype(ct), eps, num_classes)
  lse = logsumexp(xf, axis)
  loss = jnp.sum(_zero_safe_product(mass, lse - xf), axis=axis)
  if z > 0:
    loss = loss + z * jnp.squeeze(lse, axis) ** 2
  loss = jnp.where(counted, loss, jnp.zeros_like(loss))
  return loss, (lse, mass, w_b)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def probability_loss(x, t, w, counted, axis, eps, z):
  """Per-element loss for probability targets ``t`` of ``x``'s shape.

  Differentiable in ``x``, ``t`` and ``w``. Returns ``x``'s shape without
  ``axis``, in ``promote_types(x.dtype, float32)``.
  """
  return _probability_forward(x, t, w, counted, axis, eps, z)[0]


def _probability_fwd(x, t, w, counted, axis, eps, z):
  loss, (lse, _, _) = _probability_forward(x, t, w, counted, axis, eps, z)
  return loss, (x, t, w, counted, lse)


def _probability_bwd(axis, eps, z, res, g):
  x, t, w, counted, lse = res
  ct = compute_dtype(x.dtype)
  xf = x.astype(ct)
  num_classes = x.shape[axis]
  w_b = _along(w.astype(ct), axis, x.ndim)
  tf = _smoothed(t.astype(ct), eps, num_classes)
  mass = w_b * tf
  g = _expand(jnp.where(counted, g.astype(ct), jnp.zeros((), ct)), axis)
  keep = _expand(counted, axis)
  softmax_coef = g * jnp.sum(mass, axis=axis, keepdims=True)
  if z > 0:
    softmax_coef = softmax_coef + g * (2.0 * z) * lse
  dx = softmax_coef * jnp.exp(xf - lse) - g * mass
  dx = jnp.where(keep, dx, jnp.zeros((), ct))
  neg_lp = lse - xf
  dt = jnp.where(keep, _zero_safe_product(g * (1.0 - eps) * w_b, neg_lp), 0.0)
  per_class = jnp.where(keep, _zero_safe_product(g * tf, neg_lp), 0.0)
  other_axes = tuple(a for a in range(x.ndim) if a != axis)
  dw = jnp.sum(per_class, axis=other_axes)
  return dx.astype(x.dtype), dt.astype(t.dtype), dw.astype(w.dtype), None


probability_loss.defvjp(_probability_fwd, _probability_bwd)
