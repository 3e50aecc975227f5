"""Per-element cross-entropy with an exact, linear tangent rule (the loss math, once).

Two kernels, one per kind of target, both ``jax.custom_jvp``:

* :func:`class_index_loss` — class-index targets ``y``:
  ``l = (1-ε) w[y] (lse - x[y]) + (ε/C) Σ_c w_c (lse - x_c) + z lse²``; with
  ``normalize=False`` the input is taken as log-probabilities (``lse = 0``),
  which is ``nll_loss``.
* :func:`probability_loss` — probability targets ``t``:
  ``l = Σ_c w_c t'_c (lse - x_c) + z lse²`` with ``t' = (1-ε) t + ε/C``.

Why a custom JVP: its tangent rule is written *linear in the tangents*, with
coefficients computed from ``e = exp(x - m)``, so forward mode (``jvp``,
``jacfwd``, ``hessian`` in either order) works, and reverse mode is JAX's
transpose of the same rule: one elementwise pass
``(coef / Σe) · e - target mass`` over the logits, reusing the forward's ``e``
(on CPU ``exp`` is the dominant cost, so it is evaluated once).

Numerics, decided here for every front door:

* Terms are taken relative to a per-row shift ``m``: ``lse - x_c`` is computed
  as ``log Σe - (x_c - m)``, so the error does not grow with the logits' offset
  (label smoothing included). For class-index targets (rows of 64 classes or
  more) ``m`` is the target's logit, which needs no pass over the logits (the
  max would), and the target's own term is exact; where a row's sum then
  exceeds 2^64 (a logit more than about 44 above the target's) or a row holds
  a NaN or an infinity, every row is done again against its max (:func:`_exp_against`).
  Shorter rows and probability targets use the max.
* Elements that are not counted (ignored or masked) have their logits (and
  probability targets) replaced by 0 before anything else: their loss is 0
  and their value, gradient and tangent rows are exactly 0 whatever they held
  (NaN and ±inf included), whatever cotangent reaches them (an all-ignored
  mean sends NaN).
* A NaN anywhere in a counted row, or a ``+inf`` logit (whose softmax is
  undefined), gives a NaN loss and NaN gradient row, as in torch (optax's
  loss is +inf when that logit is not the target's, NaN when it is).
* A counted class index outside ``[0, C)`` gives a NaN loss, a NaN gradient
  row and NaN tangents (for that element only).
* For probability targets a term whose coefficient is zero contributes zero
  even against an infinite logit (``0 · inf`` is taken as 0), so a probability
  of 0 masks a ``-inf`` logit rather than turning the loss into NaN.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_batching import custom_vmap
from jax.custom_derivatives import SymbolicZero

from jaxnll._log_softmax import log_of_shifted_sum
from jaxnll._validation import compute_dtype


def _zero_safe_product(coef: jax.Array, value: jax.Array) -> jax.Array:
  """``coef * value`` with ``0 * ±inf`` taken as 0."""
  return jnp.where(coef == 0, jnp.zeros_like(value), coef * value)


def _expand(a: jax.Array, axis: int) -> jax.Array:
  return jnp.expand_dims(a, axis)


def _along(w: jax.Array, axis: int, ndim: int) -> jax.Array:
  """Class weights ``[C]`` shaped to broadcast along ``axis`` of an ``ndim`` array."""
  return w.reshape((1,) * axis + (w.shape[0],) + (1,) * (ndim - axis - 1))


# Below this many classes XLA:CPU scalarizes a select whose predicate is a
# broadcast row mask (3-4x slower at C = 10, measured); comparing a class iota
# with a per-row limit gives the same mask and vectorizes.
_SHORT_ROW = 64


def keep_rows(keep: jax.Array, a: jax.Array, axis: int) -> jax.Array:
  """``where(keep, a, 0)`` for a row mask ``keep`` (a size-1 class axis)."""
  zero = jnp.zeros((), a.dtype)
  if isinstance(a.shape[axis], int) and a.shape[axis] < _SHORT_ROW:  # a symbolic class count takes the long path
    limit = jnp.where(keep, jnp.int32(a.shape[axis]), jnp.int32(0))
    keep = lax.broadcasted_iota(jnp.int32, a.shape, axis) < limit
  return jnp.where(keep, a, zero)


# XLA:CPU's reduce over a class axis that is not the last is several times
# slower when fewer than _FEW_LEADING rows lead that axis ([N, C, H, W] with
# N <= 2: optax, which reduces natively, takes 6x and 2.5x jaxnll's time at
# benchmarks/bench_sweep.py rows 12 and 16). There, an axis of at most
# _SLICED_CLASSES classes is reduced as a tree of elementwise ops over its
# slices, contiguous reads that vectorize; with more leading rows the native
# reduce is faster (the slices' passes then cost more than they save).
_SLICED_CLASSES = 64
_FEW_LEADING = 4


def _few_leading(shape: tuple, axis: int) -> bool:
  """Whether ``axis`` is not the last and fewer than ``_FEW_LEADING`` rows lead it (static shapes only)."""
  leading = math.prod(shape[:axis])
  return (axis != len(shape) - 1 and all(isinstance(d, int) for d in shape)
          and leading < _FEW_LEADING)


def _sliced(shape: tuple, axis: int) -> bool:
  """Whether :func:`class_reduce` reduces ``axis`` over its slices."""
  return _few_leading(shape, axis) and 0 < shape[axis] <= _SLICED_CLASSES


def class_reduce(a: jax.Array, axis: int, op) -> jax.Array:
  """``op`` (``jnp.maximum`` or ``jnp.add``) over ``axis`` with the axis kept (size 1).

  Only for primal values: its slices do not transpose into one broadcast.
  """
  if not _sliced(a.shape, axis):
    return (jnp.max if op is jnp.maximum else jnp.sum)(a, axis=axis, keepdims=True)
  parts = [lax.index_in_dim(a, c, axis) for c in range(a.shape[axis])]
  while len(parts) > 1:  # pairwise, as accurate as XLA's own sums
    parts = [op(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
  return parts[0]


def _is_zero(t: object) -> bool:
  return isinstance(t, SymbolicZero)


class Softmax(NamedTuple):
  """A row's softmax pieces, all relative to its shift ``m`` (kept with a size-1 class axis).

  ``x - m`` (the shifted logits), ``e = exp(x - m)``, ``total = Σ e``,
  ``rel = log Σ e`` (``-inf`` for an empty row, NaN for a NaN row),
  ``lse = rel + m`` and the shift ``m`` itself (0 for rows not kept).
  """

  shifted: jax.Array
  e: jax.Array
  total: jax.Array
  rel: jax.Array
  lse: jax.Array
  shift: jax.Array


def _max_shift(x: jax.Array, axis: int, keep: jax.Array, ct) -> jax.Array:
  """Each row's max in ``ct`` (size-1 class axis), a constant: 0 for an all ``-inf`` row (no
  ``inf - inf``) and for rows not kept. A row holding ``+inf`` keeps ``m = +inf``: its ``inf - inf`` is
  NaN, so its sum, loss and gradient are NaN, as they must be. The max runs on ``x`` itself, in its own
  dtype (exact)."""
  row_max = lax.stop_gradient(class_reduce(x, axis, jnp.maximum)).astype(ct)
  m = jnp.where(keep & (row_max != -jnp.inf), row_max, jnp.zeros((), ct))
  if _sliced(x.shape, axis):
    m = lax.optimization_barrier(m)  # stored once, not recomputed inside each slice's pass
  return m


# Largest row sum taken against the target's logit: above it, a row's scale 1 / total times a small cotangent
# could fall below float32's normal range and be flushed to 0 (a sum of 2.7e38 zeroed a gradient of 1e-3).
_SAFE_TOTAL = 2.0**64


def _unsafe(total: jax.Array) -> jax.Array:
  return ~jnp.all(total <= _SAFE_TOTAL)  # NaN compares False


@custom_vmap
def _needs_the_max(total: jax.Array) -> jax.Array:
  """Whether some element of ``total`` is NaN or above ``_SAFE_TOTAL``: one flag, unbatched under ``vmap`` too.

  Under ``vmap`` a per-example flag would turn the ``while_loop`` that reads it into a batched loop
  (a select over every carried array); one flag for the whole batch keeps it a plain loop that runs
  zero times (per-example gradients, benchmarks/bench_sweep.py row 14: 1.5x slower batched, measured).
  When any example needs the fallback, every example takes it: the values are the same either way.
  """
  return _unsafe(total)


@_needs_the_max.def_vmap
def _needs_the_max_vmap(axis_size, in_batched, total):
  del axis_size, in_batched
  return _unsafe(total), False


def _shifted_exp(x, keep, shift, axis, ct, keep_e):
  """``(e, total)`` for ``e = exp(x - shift)`` over kept rows (0 logits elsewhere); ``e`` is None when
  not ``keep_e`` (then it is only summed, never stored)."""
  e = jnp.exp(keep_rows(keep, x.astype(ct), axis) - shift)
  return (e if keep_e else None), class_reduce(e, axis, jnp.add)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _exp_against(x, keep, first, axis, keep_e):
  """``(e, total, m)``: the shifted exponentials of :func:`_shifted_exp` against ``m = first`` (one
  constant per row), or against every row's max (:func:`_max_shift`) when some total is NaN or above
  ``_SAFE_TOTAL``.

  ``first`` is the target's logit: then ``e`` needs no pass for the max. It fails only where a row's
  total exceeds ``_SAFE_TOTAL`` (a logit about 44 above the target's) or a row holds a NaN or an
  infinity; a ``while_loop`` that runs zero times in every other case then redoes the pass against the
  max, so the values are exactly those of the max-shifted pass up to rounding. The custom JVP keeps the
  loop out of every derivative: ``m`` is a constant, ``de = e dx``.
  """
  ct = first.dtype
  e, total = _shifted_exp(x, keep, first, axis, ct, keep_e)

  def against_max(_):
    m = _max_shift(x, axis, keep, ct)
    return (*_shifted_exp(x, keep, m, axis, ct, keep_e), m, jnp.zeros((), bool))

  e, total, m, _ = lax.while_loop(lambda s: s[-1], against_max, (e, total, first, _needs_the_max(total)))
  return e, total, m


@_exp_against.defjvp
def _exp_against_jvp(axis, keep_e, primals, tangents):
  x, keep, first = primals
  e, total, m = _exp_against(x, keep, first, axis, keep_e)
  ct = m.dtype
  e_full = e if keep_e else jnp.exp(keep_rows(keep, x.astype(ct), axis) - m)
  de = e_full * keep_rows(keep, tangents[0].astype(ct), axis)
  return (e, total, m), (de if keep_e else None, jnp.sum(de, axis=axis, keepdims=True), jnp.zeros_like(m))


def softmax_pieces(x: jax.Array, axis: int, keep: jax.Array, first: jax.Array | None = None,
                   keep_e: bool = True) -> Softmax:
  """:class:`Softmax` of ``x`` over ``axis``, in ``promote_types(x.dtype, float32)``;
  the shift ``m`` is a constant (it cancels exactly).

  Rows where ``keep`` (a size-1 class axis) is False are computed as all
  zeros, so whatever they hold cannot reach a value, gradient or tangent. The
  mask and the conversion happen per row and inside the ``exp`` pass, so no
  masked or converted copy of the logits is ever stored.

  ``first``, when given, is one value per row to shift by instead of the
  row's max (the target's logit, ``ct``): :func:`_exp_against` then skips
  the pass for the max, falling back to it only when a total is NaN or too large.
  With ``keep_e`` False, ``e`` is not kept (None): a value without gradient
  needs only its sum.
  """
  ct = compute_dtype(x.dtype)
  if first is None:
    m = _max_shift(x, axis, keep, ct)
    e, total = _shifted_exp(x, keep, m, axis, ct, keep_e)
  else:
    e, total, m = _exp_against(x, keep, jnp.where(keep, lax.stop_gradient(first).astype(ct), jnp.zeros((), ct)),
                               axis, keep_e)
  shifted = keep_rows(keep, x.astype(ct), axis) - m
  rel = log_of_shifted_sum(total, jnp.zeros_like(total))
  return Softmax(shifted, e, total, rel, rel + m, m)


def _nan_where(bad: jax.Array, dtype) -> jax.Array:
  return jnp.where(bad, jnp.full((), jnp.nan, dtype), jnp.zeros((), dtype))


# --------------------------------------------------------------------------
# Per-row formulas, shared with the fused linear + cross-entropy.


class RowCoefficients(NamedTuple):
  """Per-element factors of the class-index gradient ``dL/dx_c``:
  ``softmax * p_c - smooth * w_c - target * [c == y] + nan_row``."""

  softmax: jax.Array
  target: jax.Array
  smooth: jax.Array
  nan_row: jax.Array


def row_loss(rel, x_y_rel, w_y, sum_w, wx_rel, lse, num_classes, eps, z, bad, counted):
  """The class-index loss of one element from its statistics.

  ``rel = lse - m`` and ``x_y_rel = x_y - m`` are relative to the row's
  shift ``m``; ``w_y`` is the target's weight, ``sum_w = Σ_c w_c`` and
  ``wx_rel = Σ_c w_c (x_c - m)`` (used only when ``eps > 0``). Elementwise,
  so any matching shapes work.
  """
  loss = (1.0 - eps) * w_y * (rel - x_y_rel)
  if eps > 0:
    # Σ_c w_c (lse - x_c), relative to m so that it does not cancel.
    loss = loss + (eps / num_classes) * (sum_w * rel - wx_rel)
  if z > 0:
    loss = loss + z * lse**2
  loss = jnp.where(bad, jnp.full_like(loss, jnp.nan), loss)
  return jnp.where(counted, loss, jnp.zeros_like(loss))


def row_coefficients(g, counted, bad, w_y, sum_w, lse, num_classes, eps, z) -> RowCoefficients:
  """The gradient factors of :func:`row_loss` for cotangent ``g``; all zero
  where not counted, NaN ``nan_row`` where the target is out of range."""
  zero = jnp.zeros((), g.dtype)
  g = jnp.where(counted, g, zero)
  # Per-row selects, not products with the masked g: an infinite or NaN class
  # weight (on the class an ignored target is clipped to, or in Σ w) must not
  # turn an uncounted row's zero into NaN (torch's gradient there is 0).
  target = jnp.where(counted, g * (1.0 - eps) * w_y, zero)
  smooth = g * (eps / num_classes)
  softmax = target + smooth * sum_w if eps > 0 else target  # no 0 · inf from an infinite Σ w
  if z > 0:
    softmax = softmax + g * (2.0 * z) * lse
  return RowCoefficients(jnp.where(counted, softmax, zero), target, smooth, _nan_where(bad, g.dtype))


def _nan_if(bad: jax.Array, linear: jax.Array) -> jax.Array:
  """``NaN · linear`` where ``bad``, else exactly 0, linear in ``linear``. Selected on both sides of the
  product, so neither an infinite tangent nor (in its transpose) an infinite cotangent elsewhere meets a 0."""
  zero = jnp.zeros((), linear.dtype)
  return jnp.where(bad, jnp.nan * jnp.where(bad, linear, zero), zero)


def target_weight_grad(g, counted, bad, rel, x_y_rel, eps):
  """Each element's ``dL/dw_y`` from its own target term (scattered onto ``y`` by the caller)."""
  ok = counted & ~bad
  return jnp.where(ok, g * (1.0 - eps) * (rel - x_y_rel), jnp.zeros((), g.dtype))


# --------------------------------------------------------------------------
# Class-index targets.


# Above this row shift, Σ_c w_c x_c - m Σ_c w_c loses more than float32
# rounding to cancellation; a second pass then sums w_c (x_c - m) directly.
_CANCELLATION_SHIFT = 32.0


def _weighted_shifted_sum(x, m, keep, wf, axis):
  """``Σ_c w_c (x_c - m)`` per row (size-1 class axis), for label smoothing.

  Usually one matrix-vector product on the logits as they are (no ``[..., C]``
  temporary) minus ``m Σ w``; when some row's shift is large enough for that
  to cancel, the relative terms are summed instead, so the error never grows
  with the logits' offset. Both branches read the logits themselves: an
  operand computed outside the ``cond`` would be stored whole.
  """
  ct = wf.dtype
  w_b = _along(wf, axis, x.ndim)

  def direct(x, m):
    return jnp.sum((keep_rows(keep, x.astype(ct), axis) - m) * w_b, axis=axis, keepdims=True)

  def product(x, m):
    wx = jnp.expand_dims(jnp.tensordot(x.astype(ct), wf, axes=((axis,), (0,)), precision=lax.Precision.HIGHEST),
                         axis)
    return jnp.where(keep, wx - m * jnp.sum(wf), jnp.zeros((), ct))

  return lax.cond(jnp.max(jnp.abs(m), initial=0.0) > _CANCELLATION_SHIFT, direct, product, x, m)


def _scatters_target(x: jax.Array, axis: int, normalize: bool) -> bool:
  """Whether the target logit's tangent is gathered (its cotangent scattered) rather than selected.

  In reverse mode the target term ``-g · [c == y]`` then becomes one scatter of a value per row into the
  gradient, in place, as optax's does, instead of a class-index compare in every element of the backward
  pass: faster for long rows along the last axis (benchmarks/bench_sweep.py, quiet runs: row 2, [8192, 1000],
  1.13-1.18x optax before, 0.99-1.00x after; row 14, per-example gradients at [2048, 1000], 1.17-1.39x before,
  0.87-1.01x after); slower for short rows or a class axis that is not the last (rows 1 and 5: 0.85x optax
  with the compare, 1.15-1.18x with the scatter, measured side by side). The price is compilation: XLA:CPU
  compiles the scatter in about 30 ms more (row 9). Half-precision logits keep the compare: their gradient's
  scatter is slower (row 6, bf16: 1.00-1.05x jaxnll's float32 time with the compare, 1.34-1.36x with the
  scatter). Log-probabilities (``nll_loss``, ``normalize`` False) keep the compare too: after
  ``log_softmax``, whose backward both sums the cotangent over the classes and adds it to the gradient,
  a scattered cotangent is written whole and read back by both, where the compare is recomputed inside
  the gradient's pass (row 7, ``nll_loss(log_softmax(x))`` at [4096, 32000]: 0.87-0.93x torch's pair with
  the scatter, 0.89-0.90x with the compare). The front doors clip the indices into ``[0, C)`` (out-of-range
  targets are flagged by ``bad``), so the gather is promised in bounds.
  """
  classes = x.shape[axis]
  return (normalize and axis == x.ndim - 1 and isinstance(classes, int) and classes >= _SHORT_ROW
          and x.dtype == compute_dtype(x.dtype))


def _class_weights(w: jax.Array | None, num_classes, ct) -> jax.Array:
  """The class weights in ``ct``; ones for ``None`` (no weights)."""
  return jnp.ones((num_classes,), ct) if w is None else w.astype(ct)


class _ClassIndexForward(NamedTuple):
  loss: jax.Array
  shifted: jax.Array
  soft: Softmax | None
  w_y: jax.Array
  x_y_rel: jax.Array
  is_target: jax.Array


def _class_index_forward(x, w, index, counted, bad, axis, eps, z, normalize, keep_e=True) -> _ClassIndexForward:
  ct = compute_dtype(x.dtype)
  keep = _expand(counted, axis)
  xf = x.astype(ct)
  num_classes = x.shape[axis]
  wf = _class_weights(w, num_classes, ct)
  idx = _expand(index, axis)
  is_target = lax.broadcasted_iota(jnp.int32, x.shape, axis) == idx
  # The target's logit is gathered from ``x`` itself and shifted per element
  # (the same value as ``shifted`` holds there): a gather from the shifted
  # array makes XLA:CPU compute or store that whole array once more
  # (benchmarks/bench_sweep.py row 5, [8, 21, 128, 128] axis=1: 1.75x optax before, 0.96x after).
  x_y = jnp.take_along_axis(x, idx, axis=axis).astype(ct)
  # Shifted by the target's logit, the softmax needs no pass for the row max (the max is the fallback):
  # forward and backward read the logits once less. Rows shorter than _SHORT_ROW keep the max, which
  # costs them less than the fallback's test of every row's sum (benchmarks/bench_sweep.py, quiet runs
  # side by side: row 1, [65536, 10], 0.85-0.89x optax with the max, 1.15-1.19x with the target's logit).
  first = x_y if not (isinstance(num_classes, int) and num_classes < _SHORT_ROW) else None
  soft = softmax_pieces(x, axis, keep, first=first, keep_e=keep_e) if normalize else None
  shifted = keep_rows(keep, xf, axis) if soft is None else soft.shifted
  m = jnp.zeros((), ct) if soft is None else soft.shift
  x_y_rel = jnp.where(keep, x_y - m, jnp.zeros((), ct))
  rel = jnp.zeros_like(x_y_rel) if soft is None else soft.rel
  lse = rel if soft is None else soft.lse
  # Without class weights w_y is the constant 1, not a gather from a ones
  # array (whose per-row result XLA:CPU re-lays out inside the backward's loop).
  w_y = jnp.ones((), ct) if w is None else wf[idx]
  wx_rel = None
  if eps > 0:
    wx_rel = _weighted_shifted_sum(x, m + jnp.zeros_like(x_y_rel), keep, wf, axis)
  loss = row_loss(rel, x_y_rel, w_y, jnp.sum(wf), wx_rel, lse, num_classes, eps, z,
                  _expand(bad, axis), keep)
  return _ClassIndexForward(jnp.squeeze(loss, axis), shifted, soft, w_y, x_y_rel, is_target)


@functools.partial(jax.custom_jvp, nondiff_argnums=(5, 6, 7, 8))
def _class_index_loss(x, w, index, counted, bad, axis, eps, z, normalize):
  """Per-element loss for class-index targets; see the module docstring.

  Args:
    x: logits (or log-probabilities when ``normalize`` is False), any float.
    w: class weights ``[C]``, differentiable; ``None`` for none (all ones).
    index: int32 class indices in ``[0, C)``, ``x``'s shape without ``axis``.
    counted: bool, ``index``'s shape; False elements are ignored.
    bad: bool, counted elements whose target was out of range (NaN).
    axis: the class axis, non-negative.
    eps: label smoothing, a Python float.
    z: z-loss coefficient, a Python float.
    normalize: whether to apply log-softmax (cross-entropy) or not (NLL).

  Returns:
    ``[index.shape]`` losses in ``promote_types(x.dtype, float32)``.
  """
  return _class_index_forward(x, w, index, counted, bad, axis, eps, z, normalize, keep_e=False).loss


def _class_index_jvp(axis, eps, z, normalize, primals, tangents):
  x, w, index, counted, bad = primals
  dx, dw = tangents[0], tangents[1]
  fwd = _class_index_forward(x, w, index, counted, bad, axis, eps, z, normalize)
  ct = fwd.shifted.dtype
  num_classes = x.shape[axis]
  wf = _class_weights(w, num_classes, ct)
  zero = jnp.zeros((), ct)
  keep = _expand(counted, axis)
  bad_e = _expand(bad, axis)
  soft = fwd.soft
  rel = zero if soft is None else soft.rel
  lse = zero if soft is None else soft.lse
  one = jnp.ones((), ct)
  coef = row_coefficients(one, keep, bad_e, fwd.w_y, jnp.sum(wf), lse, num_classes, eps, z)
  out = jnp.zeros(fwd.loss.shape, ct)
  if not _is_zero(dx):
    dxf = dx.astype(ct)
    if soft is None:
      t = _nan_if(bad_e, jnp.sum(dxf, axis=axis, keepdims=True))
    else:
      # Per-row scale first, then one pass over the logits; NaN rows ride on
      # the scale (e >= 0 is finite for a counted row without NaN).
      scale = (coef.softmax + coef.nan_row) / jnp.where(keep, soft.total, one)
      t = scale * jnp.sum(soft.e * dxf, axis=axis, keepdims=True)
    if _scatters_target(x, axis, normalize):
      x_y_tangent = jnp.take_along_axis(dxf, _expand(index, axis), axis=axis, mode="promise_in_bounds")
    else:
      x_y_tangent = jnp.sum(jnp.where(fwd.is_target, dxf, zero), axis=axis, keepdims=True)
    t = t - coef.target * x_y_tangent
    if eps > 0:
      t = t - coef.smooth * jnp.sum(_along(wf, axis, x.ndim) * dxf, axis=axis, keepdims=True)
    out = out + jnp.squeeze(t, axis)
  if w is not None and not _is_zero(dw):
    dwf = dw.astype(ct)
    t = target_weight_grad(one, keep, bad_e, rel, fwd.x_y_rel, eps) * dwf[_expand(index, axis)]
    if eps > 0:
      neg_lp = keep_rows(keep, rel - fwd.shifted, axis)
      t = t + coef.smooth * jnp.sum(neg_lp * _along(dwf, axis, x.ndim), axis=axis, keepdims=True)
    t = t + _nan_if(bad_e, jnp.sum(dwf))
    out = out + jnp.squeeze(t, axis)
  return fwd.loss, jnp.where(counted, out, jnp.zeros((), ct))


# --------------------------------------------------------------------------
# Probability targets.


def _smoothed(t: jax.Array, eps: float, num_classes: int) -> jax.Array:
  if eps == 0:
    return t
  return (1.0 - eps) * t + eps / num_classes


class _ProbabilityForward(NamedTuple):
  loss: jax.Array
  soft: Softmax
  tf: jax.Array
  mass: jax.Array
  neg_lp: jax.Array


def _probability_forward(x, t, w, counted, axis, eps, z) -> _ProbabilityForward:
  ct = compute_dtype(x.dtype)
  keep = _expand(counted, axis)
  num_classes = x.shape[axis]
  w_b = _along(w.astype(ct), axis, x.ndim)
  tf = _smoothed(keep_rows(keep, t.astype(ct), axis), eps, num_classes)
  mass = w_b * tf
  soft = softmax_pieces(x, axis, keep)
  neg_lp = soft.rel - soft.shifted
  loss = jnp.sum(_zero_safe_product(mass, neg_lp), axis=axis)
  if z > 0:
    loss = loss + z * jnp.squeeze(soft.lse, axis) ** 2
  loss = jnp.where(counted, loss, jnp.zeros_like(loss))
  return _ProbabilityForward(loss, soft, tf, mass, neg_lp)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5, 6))
def _probability_loss(x, t, w, counted, axis, eps, z):
  """Per-element loss for probability targets ``t`` of ``x``'s shape.

  Differentiable in ``x``, ``t`` and ``w``. Returns ``x``'s shape without
  ``axis``, in ``promote_types(x.dtype, float32)``.
  """
  return _probability_forward(x, t, w, counted, axis, eps, z).loss


def _probability_jvp(axis, eps, z, primals, tangents):
  x, t, w, counted = primals
  dx, dt, dw = tangents[0], tangents[1], tangents[2]
  fwd = _probability_forward(x, t, w, counted, axis, eps, z)
  soft = fwd.soft
  ct = soft.e.dtype
  zero = jnp.zeros((), ct)
  keep = _expand(counted, axis)
  # A class whose probability is 0 against a -inf logit is masked out: its
  # term is 0 and so are its derivatives (no 0 · inf in any tangent).
  neg_lp = jnp.where(keep & ~((fwd.mass == 0) & jnp.isposinf(fwd.neg_lp)), fwd.neg_lp, zero)
  out = jnp.zeros(fwd.loss.shape, ct)
  if not _is_zero(dx):
    dxf = dx.astype(ct)
    scale = jnp.sum(fwd.mass, axis=axis, keepdims=True)
    if z > 0:
      scale = scale + (2.0 * z) * soft.lse
    scale = jnp.where(keep, scale / soft.total, zero)
    out = out + jnp.sum(scale * soft.e * dxf - fwd.mass * dxf, axis=axis)
  if not _is_zero(dt):
    w_b = _along(w.astype(ct), axis, x.ndim)
    out = out + jnp.sum(_zero_safe_product((1.0 - eps) * w_b, neg_lp) * dt.astype(ct), axis=axis)
  if not _is_zero(dw):
    per_class = _zero_safe_product(fwd.tf, neg_lp)
    out = out + jnp.sum(per_class * _along(dw.astype(ct), axis, x.ndim), axis=axis)
  return fwd.loss, jnp.where(counted, out, zero)


_probability_loss.defjvp(_probability_jvp, symbolic_zeros=True)
_class_index_loss.defjvp(_class_index_jvp, symbolic_zeros=True)

# Each kernel is one compiled program: called eagerly (a notebook, a test, a loop outside jit) it dispatches
# once, not operation by operation (each eager operation compiles on its own for every new shape); under the
# caller's jit it is inlined into the caller's program. The front doors validate their arguments (concrete
# target ranges included) before calling it.
class_index_loss = jax.jit(_class_index_loss, static_argnums=(5, 6, 7, 8))
probability_loss = jax.jit(_probability_loss, static_argnums=(4, 5, 6))
