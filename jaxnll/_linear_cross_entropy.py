"""Fused linear + cross-entropy: the ``[tokens, V]`` logits never exist whole.

``linear_cross_entropy(h, W, y)`` equals ``cross_entropy(h @ W.T + b, y)`` with
the same options (class indices or class probabilities), computed one tile of
logits at a time, in one of two ways:

* **Streaming** (vocabulary blocks, any reduction): the forward pass runs over
  blocks of ``block_size`` classes; each ``x = softcap(h @ W_blk.T + b_blk)``
  (``[N, B]``, float32 accumulation) updates an online logsumexp (running max
  and rescaled sum), picks up the target logits in the block and the weighted
  sums label smoothing and probability targets need. Only these per-token
  statistics survive; the loss comes from :func:`jaxnll._xent_kernel.row_loss`,
  the formula :func:`jaxnll.cross_entropy` uses. The backward recomputes each
  block's logits, turns them into
  ``dL/dx = coef.softmax * exp(x - lse) - coef.smooth * m - coef.target * onehot``
  (:func:`jaxnll._xent_kernel.row_coefficients`; ``m`` the class weights, or the
  per-class masses of probability targets) and contracts at once:
  ``dh += dx @ W_blk``; ``dW[blk] = dx.T @ h`` and ``db[blk] = Σ dx`` are
  written in place. Four matrix products in all; a few ``[N, B]`` tiles of memory.
* **Eager gradients** (``'mean'``, ``'sum'``, ``'safe_mean'`` with the default
  ``block_size=None``): the loss is then one scalar, so its cotangent is one
  scalar too. The forward pass runs over chunks of tokens with every class at
  once (a ``[T, V]`` tile), computes each chunk's loss *and* its gradients with
  the same shared formulas, and the backward only scales them by the
  cotangent: three matrix products, the least possible, and one ``exp`` per
  logit. Memory on CPU: with class-index targets, float32 inputs and no bias,
  softcap or label smoothing, one tile of about 56 MiB, its ``exp`` written
  over it; otherwise two of about 32 MiB (the ``exp`` beside the logits);
  plus, for bf16/f16 classifiers, the float32 ``[V, D]`` gradient accumulator.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._log_softmax import finite_shift, log_of_shifted_sum
from jaxnll._loss_base import LossObject, LossTerms, register, set_field
from jaxnll._reduction import Reduction
from jaxnll._targets import class_targets
from jaxnll._xent_kernel import (
  _nan_where,
  _zero_safe_product,
  keep_rows,
  row_coefficients,
  row_loss,
  target_weight_grad,
)

# Default block: about this many float32 logits per [N, B] tile. On CPU a
# cache-sized tile is fastest (2 MiB); on accelerators few, large matmuls are
# (128 MiB), still a small fraction of the [N, V] arrays.
_BLOCK_ELEMENTS = {"cpu": 1 << 19}
_ACCELERATOR_BLOCK_ELEMENTS = 1 << 25
_MIN_BLOCK = 128
# The token count the default block assumes when it is symbolic (jax.export).
_SYMBOLIC_TOKENS = 4096
# Backward tiles span at most this many float32 entries of the embeddings' gradient (16 MiB).
_CHUNK_ELEMENTS = 1 << 22
# Eager gradients: a tile step holds one or two [T, V] float32 arrays: the logits
# and their exp, which XLA writes over the logits unless something still reads
# them after it (a bias, a softcap, label smoothing, probability targets; see
# eager_arrays). Two arrays: at most this many entries each (2 x 32 MiB). Each tile
# of T tokens reads and writes the whole [V, D] gradient accumulator once, so fewer
# tokens per tile cost more passes over it (benchmarks/bench_sweep.py rows 10 and 15
# on CPU; the rows' "3 tiled / 3 full" note times that bound).
_EAGER_ELEMENTS = 1 << 23
# One array: at most this many entries (56 MiB), so that with the classifier
# gradient's block beside it (with two arrays it takes the logits' place once
# they are read) the step's temporaries stay below the two-array step's.
_EAGER_ONE_ARRAY_ELEMENTS = 7 << 21
# Eager gradients: the classifier's gradient is accumulated in blocks of this many float32 entries (4 MiB).
_DW_ELEMENTS = 1 << 20


def default_block_size(num_tokens: int, vocab_size: int, platform: str | None = None) -> int:
  """Classes per block when ``block_size=None``: a multiple of 128 keeping an
  ``[N, B]`` float32 tile near 2 MiB on CPU and 128 MiB on GPU/TPU (``platform``
  defaults to JAX's default backend), at least 128 and at most ``V``."""
  platform = jax.default_backend() if platform is None else platform
  budget = _BLOCK_ELEMENTS.get(platform, _ACCELERATOR_BLOCK_ELEMENTS)
  if not isinstance(num_tokens, int):  # a symbolic (shape-polymorphic) token count
    num_tokens = _SYMBOLIC_TOKENS
  b = budget // max(num_tokens, 1)
  b = max(_MIN_BLOCK, b // _MIN_BLOCK * _MIN_BLOCK)
  return min(b, vocab_size)


def eager_arrays(probs: bool, eps: float, softcap: float | None, bias: bool, half: bool = False) -> int:
  """How many ``[T, V]`` arrays an eager-gradient tile step is budgeted for:
  one (the float32 ``exp`` written over the logits) for class-index targets
  without label smoothing, softcap or bias and float32/float64 inputs, else
  two (something reads the logits after their ``exp``, or ``half``: bf16/f16
  inputs, whose products also take a half-precision copy of the tile's
  gradient). tests/test_linear_cross_entropy.py checks the counts in the
  compiled program."""
  return 2 if probs or eps > 0 or softcap is not None or bias or half else 1


def eager_chunk(num_tokens: int, vocab_size: int, arrays: int = 2) -> int:
  """Tokens per ``[T, V]`` tile of the eager-gradient path, for ``arrays``
  arrays (:func:`eager_arrays`): as many as fit their budget of float32
  entries, balanced over the tiles they need, at least 1 and at most
  ``num_tokens``."""
  budget = _EAGER_ONE_ARRAY_ELEMENTS if arrays == 1 else _EAGER_ELEMENTS
  t = max(1, budget // max(vocab_size, 1))
  if num_tokens <= t:
    return max(1, num_tokens)
  # As few tiles as the budget allows, of equal size: the last tile overlaps the
  # one before it, and its tokens there are computed twice, so the size is not
  # rounded up further (at [4096, 1024, 50257], 274 tokens recompute 14 tokens;
  # 280, a multiple of 8, recomputed 104).
  return -(-num_tokens // -(-num_tokens // t))


def _blocks(vocab_size: int, block: int) -> tuple[int, int]:
  """``(number of full blocks, size of the trailing partial block)``."""
  return vocab_size // block, vocab_size % block


def _dot_t(a: jax.Array, b: jax.Array) -> jax.Array:
  """``a @ b.T`` accumulated in float32 (or wider)."""
  out = v.compute_dtype(jnp.result_type(a, b))
  return lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=out)


def _logits(h, w_blk, b_blk, softcap):
  """``softcap(h @ w_blk.T + b_blk)``, ``[N, block]`` in float32 or wider."""
  u = _dot_t(h, w_blk)
  if b_blk is not None:
    u = u + b_blk.astype(u.dtype)[None, :]
  return u if softcap is None else softcap * jnp.tanh(u / softcap)


def _for_each_block(length, block, body, carry, varying=frozenset()):
  """Runs ``body(start, size, carry)`` over ``[0, length)`` in blocks: the full
  blocks in a loop, the trailing partial block (static size) after it.

  Inside ``shard_map`` the carry starts out varying over ``varying``, the mesh
  axes the loop's inputs vary over, as the loop's outputs do.
  """
  carry = jax.tree.map(lambda x: _vary(x, varying), carry)
  full, rest = _blocks(length, block)
  if full:
    carry = lax.fori_loop(0, full, lambda i, c: body(i * block, block, c), carry)
  if rest:
    carry = body(full * block, rest, carry)
  return carry
def _varying_axes(*xs: jax.Array | None) -> frozenset[str]:
  """Mesh axes any of ``xs`` varies over inside ``shard_map`` (empty outside)."""
  axes: frozenset[str] = frozenset()
  for x in xs:
    if x is None:
      continue
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    found = getattr(manual, "varying", None) if manual is not None else getattr(aval, "vma", None)
    axes = axes | frozenset(found or ())
  return axes


def _vary(x: jax.Array | None, axes: frozenset[str]) -> jax.Array | None:
  """``x`` marked as varying over ``axes`` (a no-op outside ``shard_map``)."""
  missing = tuple(sorted(axes - _varying_axes(x)))
  return x if x is None or not missing else lax.pcast(x, missing, to="varying")


class _Vocab(NamedTuple):
  """Where this device's classes sit in the vocabulary.

  Without a vocabulary axis the device holds all ``size`` classes. Inside
  ``shard_map`` with ``axis`` naming the mesh axis the classifier is split
  over, it holds ``[offset, offset + local)`` of ``size`` classes, and per-token
  values are combined across the axis with ``pmax`` / ``psum``.
  """

  axis: str | None
  offset: jax.Array | int
  local: int
  size: int

  @classmethod
  def of(cls, local: int, axis: str | None) -> _Vocab:
    if axis is None:
      return cls(None, 0, local, local)
    return cls(axis, lax.axis_index(axis) * local, local, local * lax.axis_size(axis))

  def total(self, x: jax.Array) -> jax.Array:
    return x if self.axis is None else lax.psum(x, self.axis)

  def largest(self, x: jax.Array) -> jax.Array:
    return x if self.axis is None else lax.pmax(x, self.axis)

  def shift(self, y: jax.Array) -> jax.Array:
    """Global class indices ``y`` relative to this device's first class."""
    return y if self.axis is None else y - jnp.asarray(self.offset).astype(y.dtype)

  def owned(self, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(local index, held here)`` of global class indices ``y`` (index clipped)."""
    local = self.shift(y)
    held = (local >= 0) & (local < self.local)
    return jnp.clip(local, 0, self.local - 1), held

  def lookup(self, values: jax.Array, y: jax.Array) -> jax.Array:
    """``values[y]`` for a per-class array split like the classifier."""
    idx, held = self.owned(y)
    if self.axis is None:
      return values[idx]
    return self.total(jnp.where(held, values[idx], jnp.zeros((), values.dtype)))


class _Options(NamedTuple):
  """The kernels' static options (hashable: a ``nondiff_argnums`` argument).

  ``probs``: the targets are class probabilities ``[N, V]`` rather than class
  indices ``[N]``.
  """

  eps: float
  z: float
  block: int
  softcap: float | None
  vocab_axis: str | None
  probs: bool

  @property
  def weighted(self) -> bool:
    """Whether a weighted sum ``Σ_c m_c x_c`` over the classes is needed."""
    return self.probs or self.eps > 0


def _smoothed_targets(t_blk, keep, eps, num_classes, ct):
  """``t' = (1 - ε) t + ε / C`` of a ``[rows, size]`` block of probability
  targets; rows not counted hold zeros first (whatever they held)."""
  tf = keep_rows(keep[:, None], t_blk.astype(ct), 1)
  return tf if eps == 0 else (1.0 - eps) * tf + eps / num_classes


class _Block(NamedTuple):
  """A block's per-class factors: ``mass`` is what the smoothing term weighs
  the logits with (class weights ``[size]``, or ``w_c t'_c`` ``[rows, size]`` for
  probability targets; None without smoothing), ``smoothed`` is ``t'``."""

  mass: jax.Array | None
  smoothed: jax.Array | None


def _block_factors(w_blk, t_blk, keep, opts, num_classes) -> _Block:
  if not opts.probs:
    return _Block(w_blk if opts.eps > 0 else None, None)
  tf = _smoothed_targets(t_blk, keep, opts.eps, num_classes, w_blk.dtype)
  return _Block(w_blk[None, :] * tf, tf)


class _Running(NamedTuple):
  """Online statistics of the classes seen so far, per token: ``max``, ``sum``
  (of ``exp(x - shift)``), the target logit ``x_y`` (class indices), ``wx``
  ``= Σ m_c (x_c - shift)`` and ``seen = Σ m_c`` (a scalar for class weights,
  per token for probability masses)."""

  max: jax.Array
  sum: jax.Array
  x_y: jax.Array
  wx: jax.Array
  seen: jax.Array


def _start(rows, ct, opts) -> _Running:
  zeros = jnp.zeros((rows,), ct)
  seen = zeros if opts.probs else jnp.zeros((), ct)
  return _Running(jnp.full((rows,), -jnp.inf, ct), zeros, zeros, zeros, seen)


def _update(run: _Running, x, start, size, y_local, factors: _Block, opts) -> tuple[_Running, jax.Array]:
  """Folds the logits ``x`` of classes ``[start, start + size)`` into ``run``;
  also returns ``exp(x - shift)`` at the new shift."""
  tile_max = jnp.max(x, axis=1)
  x_y, wx, seen = run.x_y, run.wx, run.seen
  if not opts.probs:
    local = y_local - start
    inside = (local >= 0) & (local < size)
    picked = jnp.take_along_axis(x, jnp.clip(local, 0, size - 1)[:, None], axis=1)[:, 0]
    x_y = jnp.where(inside, picked, x_y)
    # The max is never below the target logit, so this changes no value; it
    # makes the exp below wait for the target logit's read, and XLA can then
    # write the exp over the tile (one [rows, size] buffer instead of two).
    tile_max = jnp.maximum(tile_max, jnp.where(inside, picked, jnp.array(-jnp.inf, x.dtype)))
  new_max = jnp.maximum(run.max, tile_max)
  # Shifts are kept finite (0 for an all -inf row; NaN for +inf, as in
  # cross_entropy) so there is no inf - inf.
  old_shift, new_shift = finite_shift(run.max), finite_shift(new_max)
  shifted = x - new_shift[:, None]
  e = jnp.exp(shifted)
  total = run.sum * jnp.exp(old_shift - new_shift) + jnp.sum(e, axis=1)
  mass = factors.mass
  if mass is not None:
    # Σ m_c (x_c - shift), moved to the new shift: the correction is the
    # shift's change times the mass seen so far, never the offset itself.
    wx = wx + (old_shift - new_shift) * seen
    if opts.probs:
      # A class of mass 0 adds 0, even against a -inf logit.
      wx = wx + jnp.sum(_zero_safe_product(mass, shifted), axis=1)
      seen = seen + jnp.sum(mass, axis=1)
    else:
      wx = wx + jnp.dot(shifted, mass, precision=lax.Precision.HIGHEST)
      seen = seen + jnp.sum(mass)
  return _Running(new_max, total, x_y, wx, seen), e


class _Statistics(NamedTuple):
  """Per-token statistics of all classes, relative to the final shift ``m``:
  ``rel = lse - m``, ``x_y_rel = x_y - m``, ``wx_rel = Σ_c m_c (x_c - m)``,
  ``lse`` and ``mass = Σ_c m_c`` (probability targets). Relative values keep
  the loss exact at any offset."""

  rel: jax.Array
  x_y_rel: jax.Array
  wx_rel: jax.Array
  lse: jax.Array
  mass: jax.Array


def _finish(run: _Running, vocab: _Vocab, opts) -> _Statistics:
  shift = finite_shift(run.max)
  total, x_y, wx, seen = run.sum, run.x_y, run.wx, run.seen
  if vocab.axis is not None:
    # Combine the shards' online statistics: rescale each local sum to the
    # global max; only the shard holding a token's target has a nonzero x_y.
    local_shift = shift
    shift = finite_shift(vocab.largest(run.max))
    rescaled = total * jnp.exp(local_shift - shift)
    total = vocab.total(jnp.where(total > 0, rescaled, jnp.zeros_like(total)))
    if not opts.probs:
      x_y = vocab.total(x_y)
    if opts.weighted:
      wx = vocab.total(wx + (local_shift - shift) * seen)
    if opts.probs:
      seen = vocab.total(seen)
  rel = log_of_shifted_sum(total, jnp.zeros_like(total))
  return _Statistics(rel, x_y - shift, wx, rel + shift, seen)


class _PerClass(NamedTuple):
  """Class weights and the per-token values read off them."""

  wf: jax.Array  # [V_local] in the compute dtype
  sum_w: jax.Array  # Σ_c w_c over the whole vocabulary


def _row_loss(st: _Statistics, w_y, cls: _PerClass, counted, bad, vocab: _Vocab, opts):
  if opts.probs:
    # Σ_c m_c (lse - x_c) + z lse² is row_loss's smoothing term with the masses
    # m_c = w_c t'_c in place of w_c / C: ε = 1 and a single "class" select it.
    zero = jnp.zeros_like(st.rel)
    return row_loss(st.rel, zero, zero, st.mass, st.wx_rel, st.lse, 1, 1.0, opts.z, bad, counted)
  return row_loss(st.rel, st.x_y_rel, w_y, cls.sum_w, st.wx_rel, st.lse, vocab.size, opts.eps, opts.z, bad,
                  counted)


def _row_coefficients(g, st: _Statistics, w_y, cls: _PerClass, counted, bad, vocab: _Vocab, opts):
  if opts.probs:  # as in _row_loss
    return row_coefficients(g, counted, bad, jnp.zeros_like(g), st.mass, st.lse, 1, 1.0, opts.z)
  return row_coefficients(g, counted, bad, w_y, cls.sum_w, st.lse, vocab.size, opts.eps, opts.z)


class _Rows(NamedTuple):
  """Per-token inputs of a gradient tile (all sliced together along tokens)."""

  h: jax.Array
  keep: jax.Array
  safe_lse: jax.Array
  lse: jax.Array
  softmax: jax.Array
  smooth: jax.Array
  target: jax.Array
  y: jax.Array  # class indices relative to this device's first class, or probabilities [rows, V_local]


def _rows(h, counted, st: _Statistics, coef, y_local) -> _Rows:
  # exp(x - lse) is taken at a finite shift (0 where lse is not finite). NaN
  # rows ride on the softmax factor: exp(...) >= 0 is finite, so NaN * it is
  # NaN. That includes a counted row of -inf logits, whose loss is NaN (its
  # exp(x - 0) is 0 everywhere and would leave a finite gradient).
  empty = _nan_where(counted & (st.lse == -jnp.inf), st.lse.dtype)
  return _Rows(h, counted, finite_shift(st.lse), st.lse, coef.softmax + coef.nan_row + empty, coef.smooth,
               coef.target, y_local)


def _tile_grad(x, start, rows: _Rows, factors: _Block, opts, softmax=None):
  """``dL/du`` of one ``[tokens, classes]`` tile (``u`` the logits before the cap);
  ``softmax``, the tile's ``exp(x - lse)`` when it is at hand."""
  p = jnp.exp(x - rows.safe_lse[:, None]) if softmax is None else softmax
  dx = rows.softmax[:, None] * p
  if factors.mass is not None:
    mass = factors.mass if opts.probs else factors.mass[None, :]
    dx = dx - rows.smooth[:, None] * mass
  if not opts.probs:
    is_target = lax.broadcasted_iota(jnp.int32, x.shape, 1) == (rows.y - start)[:, None]
    dx = jnp.where(is_target, dx - rows.target[:, None], dx)
  du = dx if opts.softcap is None else dx * (1.0 - jnp.square(x / opts.softcap))
  # Last, so that nothing an ignored row's logits hold (NaN through the cap's
  # derivative included) reaches its gradient.
  return jnp.where(rows.keep[:, None], du, jnp.zeros((), du.dtype))


def _neg_log_probs(x, rows: _Rows, factors: _Block):
  """``lse - x`` of a probability-target tile, 0 where a class of mass 0 meets a
  ``-inf`` logit and in rows not counted (as in ``_xent_kernel``)."""
  neg = rows.lse[:, None] - x
  masked = (factors.mass == 0) & jnp.isposinf(neg)
  return jnp.where(rows.keep[:, None] & ~masked, neg, jnp.zeros((), neg.dtype))


def _tile_weight_grads(x, rows: _Rows, factors: _Block, w_blk, opts, need_w, need_t):
  """A tile's share of ``dL/dw`` (class weights, ``[size]``) and ``dL/dt``
  (probability targets, ``[tokens, size]``); None where not needed.

  Class indices: only the smoothing term's ``Σ_n smooth_n x_nc`` (the rest
  is per token, see :func:`_class_index_weight_grad`).
  """
  zero = jnp.zeros((), x.dtype)
  if not opts.probs:
    if not (need_w and opts.eps > 0):
      return None, None
    return jnp.dot(rows.smooth, jnp.where(rows.keep[:, None], x, zero), precision=lax.Precision.HIGHEST), None
  neg = _neg_log_probs(x, rows, factors)
  dw = jnp.sum(rows.smooth[:, None] * _zero_safe_product(factors.smoothed, neg), axis=0) if need_w else None  # type: ignore[arg-type]
  dt = rows.smooth[:, None] * _zero_safe_product((1.0 - opts.eps) * w_blk[None, :], neg) if need_t else None
  return dw, dt


def _class_index_weight_grad(g, st: _Statistics, rows: _Rows, counted, bad, y, vocab: _Vocab, smooth_x, opts):
  """``dL/dw`` of class-index targets for tokens with cotangents ``g``:
  each target term scattered onto its class, plus the smoothing term
  ``Σ_n smooth_n (lse_n - x_nc)`` (``smooth_x = Σ_n smooth_n x_nc``)."""
  zero = jnp.zeros((), g.dtype)
  per_target = target_weight_grad(g, counted, bad, st.rel, st.x_y_rel, opts.eps)
  idx, held = vocab.owned(y)
  dw = jnp.zeros((vocab.local,), g.dtype).at[idx].add(jnp.where(held, per_target, zero))
  if opts.eps > 0:
    dw = dw + (jnp.sum(rows.smooth * jnp.where(counted, rows.lse, zero)) - smooth_x)
  return dw


def _statistics(h, w_cls, bias, cls: _PerClass, tgt, counted, opts, vocab: _Vocab) -> _Statistics:
  """:class:`_Statistics` from one streaming pass over the classes."""
  n = h.shape[0]
  y_local = None if opts.probs else vocab.shift(tgt)
  ct = cls.wf.dtype

  def body(start, size, run):
    b_blk = None if bias is None else lax.dynamic_slice_in_dim(bias, start, size)
    x = _logits(h, lax.dynamic_slice_in_dim(w_cls, start, size, axis=0), b_blk, opts.softcap)
    t_blk = lax.dynamic_slice_in_dim(tgt, start, size, axis=1) if opts.probs else None
    factors = _block_factors(lax.dynamic_slice_in_dim(cls.wf, start, size), t_blk, counted, opts, vocab.size)
    return _update(run, x, start, size, y_local, factors, opts)[0]

  run = _for_each_block(w_cls.shape[0], opts.block, body, _start(n, ct, opts),
                        _varying_axes(h, w_cls, bias, cls.wf, tgt))
  return _finish(run, vocab, opts)


def _per_class(w, vocab: _Vocab, ct) -> _PerClass:
  wf = w.astype(ct)
  return _PerClass(wf, vocab.total(jnp.sum(wf)))


def _target_weight(cls: _PerClass, tgt, vocab: _Vocab, opts):
  return None if opts.probs else vocab.lookup(cls.wf, tgt)


def _loss(h, w_cls, bias, w, tgt, counted, bad, opts):
  vocab = _Vocab.of(w_cls.shape[0], opts.vocab_axis)
  cls = _per_class(w, vocab, v.compute_dtype(jnp.result_type(h, w_cls)))
  st = _statistics(h, w_cls, bias, cls, tgt, counted, opts, vocab)
  return _row_loss(st, _target_weight(cls, tgt, vocab, opts), cls, counted, bad, vocab, opts), st


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def _fused_loss(h, w_cls, bias, w, tgt, counted, bad, opts: _Options):
  """Per-token loss ``[N]`` of ``softcap(h @ w_cls.T + bias)`` against ``tgt``.

  ``h [N, D]``, ``w_cls [V, D]``, ``bias [V]`` or None, class weights ``w [V]``,
  ``tgt``: class indices ``[N]`` int32 in ``[0, V)`` or class probabilities
  ``[N, V]`` (``opts.probs``), ``counted [N]`` and ``bad [N]`` bool (see
  :class:`jaxnll._targets.ClassTargets`). Differentiable in ``h``, ``w_cls``,
  ``bias``, ``w`` and probability targets. With ``opts.vocab_axis`` (inside
  ``shard_map``), ``w_cls``, ``bias``, ``w`` and probability targets are this
  device's slice of the vocabulary and class indices are global.
  """
  return _loss(h, w_cls, bias, w, tgt, counted, bad, opts)[0]


def _fused_fwd(h, w_cls, bias, w, tgt, counted, bad, opts):
  loss, st = _loss(h, w_cls, bias, w, tgt, counted, bad, opts)
  return loss, (h, w_cls, bias, w, tgt, counted, bad, st)


def token_chunk(num_tokens: int, dim: int) -> int:
  """Tokens per backward tile: all of them unless an ``[N, D]`` float32 partial
  product of the embeddings' gradient would exceed 16 MiB. A symbolic
  (shape-polymorphic) count is taken whole: its tiles cannot be sized."""
  if not isinstance(num_tokens, int):
    return num_tokens
  return max(1, min(num_tokens, _CHUNK_ELEMENTS // max(dim, 1)))


def _fused_bwd(opts, res, g):
  h, w_cls, bias, w, tgt, counted, bad, st = res
  num_tokens, dim = h.shape
  vocab_size = w_cls.shape[0]
  vocab = _Vocab.of(vocab_size, opts.vocab_axis)
  ct = st.lse.dtype
  g = g.astype(ct)
  cls = _per_class(w, vocab, ct)
  w_y = _target_weight(cls, tgt, vocab, opts)
  coef = _row_coefficients(g, st, w_y, cls, counted, bad, vocab, opts)
  rows = _rows(h, counted, st, coef, tgt if opts.probs else vocab.shift(tgt))
  chunk = token_chunk(num_tokens, dim)

  def vocab_block(start, size, carry):
    dh, dw_cls, dbias, dw_part, dt = carry
    w_blk = lax.dynamic_slice_in_dim(w_cls, start, size, axis=0)
    b_blk = None if bias is None else lax.dynamic_slice_in_dim(bias, start, size)
    wf_blk = lax.dynamic_slice_in_dim(cls.wf, start, size)

    def token_chunk_body(t0, tsize, inner):
      dh, dw_blk, db_blk, dwp_blk, dt = inner
      rows_c = _Rows(*(lax.dynamic_slice_in_dim(r, t0, tsize, axis=0) for r in rows))
      y_blk = lax.dynamic_slice_in_dim(rows_c.y, start, size, axis=1) if opts.probs else None
      factors = _block_factors(wf_blk, y_blk, rows_c.keep, opts, vocab.size)
      x = _logits(rows_c.h, w_blk, b_blk, opts.softcap)
      du = _tile_grad(x, start, rows_c, factors, opts)
      du_in = du.astype(h.dtype)
      dh_c = lax.dynamic_slice_in_dim(dh, t0, tsize, axis=0) + jnp.dot(du_in, w_blk, preferred_element_type=ct)
      dh = lax.dynamic_update_slice_in_dim(dh, dh_c, t0, axis=0)
      dw_blk = dw_blk + lax.dot_general(du_in, rows_c.h, (((0,), (0,)), ((), ())), preferred_element_type=ct)
      db_blk = db_blk + jnp.sum(du, axis=0)
      part, dt_tile = _tile_weight_grads(x, rows_c, factors, wf_blk, opts, True, opts.probs)
      if part is not None:
        dwp_blk = dwp_blk + part
      if dt_tile is not None:
        dt = lax.dynamic_update_slice(dt, dt_tile.astype(dt.dtype), (t0, start))
      return dh, dw_blk, db_blk, dwp_blk, dt

    inner = (dh, jnp.zeros((size, dim), ct), jnp.zeros((size,), ct), jnp.zeros((size,), ct), dt)
    dh, dw_blk, db_blk, dwp_blk, dt = _for_each_block(num_tokens, chunk, token_chunk_body, inner, varying)
    dw_cls = lax.dynamic_update_slice_in_dim(dw_cls, dw_blk.astype(dw_cls.dtype), start, axis=0)
    if dbias is not None:
      dbias = lax.dynamic_update_slice_in_dim(dbias, db_blk.astype(dbias.dtype), start, axis=0)
    dw_part = lax.dynamic_update_slice_in_dim(dw_part, dwp_blk, start, axis=0)
    return dh, dw_cls, dbias, dw_part, dt

  init = (
      jnp.zeros(h.shape, ct),
      jnp.zeros(w_cls.shape, w_cls.dtype),
      None if bias is None else jnp.zeros(bias.shape, bias.dtype),
      jnp.zeros((vocab_size,), ct),
      jnp.zeros(tgt.shape, tgt.dtype) if opts.probs else None,
  )
  varying = _varying_axes(h, w_cls, bias, w, rows.y, g)
  dh, dw_cls, dbias, dw_part, dt = _for_each_block(vocab_size, opts.block, vocab_block, init, varying)

  dh = vocab.total(dh)  # each shard of the vocabulary contributed its part
  # Tokens not counted get exactly 0, even where 0 * a non-finite classifier entry is NaN.
  dh = jnp.where(counted[:, None], dh, jnp.zeros((), dh.dtype))
  if opts.probs:
    dw = dw_part
  else:
    dw = _class_index_weight_grad(g, st, rows, counted, bad, tgt, vocab, dw_part, opts)
  return dh.astype(h.dtype), dw_cls, dbias, dw.astype(w.dtype), dt, None, None


_fused_loss.defvjp(_fused_fwd, _fused_bwd)
# One compiled program (as the cross-entropy kernels are, see _xent_kernel): an eager call dispatches once
# instead of tracing and compiling its vocabulary loop again on every call; under the caller's jit it is inlined.
fused_loss = jax.jit(_fused_loss, static_argnums=(7,))


# --------------------------------------------------------------------------
# Eager gradients: the loss summed over tokens, with its gradients formed in
# the forward pass.


def _for_each_tile(length, size, body, carry, varying=frozenset()):
  """Runs ``body(start, first, carry)`` over ``ceil(length / size)`` tiles of the
  static ``size`` covering ``[0, length)``: tile ``i`` starts at
  ``min(i * size, length - size)``, and its entries below ``first = i * size``
  belong to the tile before, so ``body`` skips them. One loop body, no
  trailing partial tile (whose buffers XLA would not update in place)."""
  carry = jax.tree.map(lambda x: _vary(x, varying), carry)
  count = -(-length // size)
  return lax.fori_loop(0, count, lambda i, c: body(jnp.minimum(i * size, length - size), i * size, c), carry)


def _fresh(start, first, size):
  """Which of a tile's ``size`` entries from ``start`` are at or past ``first``."""
  return start + lax.iota(jnp.int32, size) >= first


def _accumulate_classifier_grad(dw_cls, du, h, ct):
  """``dw_cls + du.T @ h`` in place, a block of classes at a time: XLA does not
  fold the addition into the product, so one product would need a whole
  ``[V, D]`` temporary; blocks of ``_DW_ELEMENTS`` entries need one block's."""
  vocab_size, dim = dw_cls.shape
  block = max(1, min(vocab_size, _DW_ELEMENTS // max(dim, 1)))

  def add(start, first, acc):
    part = lax.dot_general(lax.dynamic_slice_in_dim(du, start, block, axis=1), h, (((0,), (0,)), ((), ())),
                           preferred_element_type=ct)
    part = jnp.where(_fresh(start, first, block)[:, None], part, jnp.zeros((), ct))
    return lax.dynamic_update_slice_in_dim(acc, lax.dynamic_slice_in_dim(acc, start, block, axis=0) + part, start,
                                           axis=0)

  return _for_each_tile(vocab_size, block, add, dw_cls)


def _value(x):
  return x.value if x is not None else None


def _perturbed(x) -> bool:
  return x is not None and bool(x.perturbed)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def fused_total(h, w_cls, bias, w, tgt, counted, bad, opts: _Options):
  """``Σ_n fused_loss(...)_n``, a scalar, for the same arguments.

  Evaluated alone it is the streaming pass. Under differentiation the forward
  pass tiles the tokens instead (every class at once) and computes each
  tile's gradients from the shared per-row formulas with a unit cotangent;
  the backward scales them by the scalar cotangent. Only the inputs being
  differentiated get gradients computed. Needs a static token count and no
  ``opts.vocab_axis``.
  """
  return jnp.sum(fused_loss(h, w_cls, bias, w, tgt, counted, bad, opts))


def _total_fwd(h, w_cls, bias, w, tgt, counted, bad, opts):
  needs = tuple(_perturbed(a) for a in (h, w_cls, bias, w, tgt))
  h, w_cls, bias, w, tgt, counted, bad = (_value(a) for a in (h, w_cls, bias, w, tgt, counted, bad))
  total, grads = _total_and_gradients(h, w_cls, bias, w, tgt, counted, bad, opts, needs)
  # Zero-size arrays carry the inputs' dtypes to the backward.
  dtypes = tuple(None if a is None else jnp.zeros((0,), a.dtype) for a in (h, w_cls, bias, w, tgt))
  return total, (grads, dtypes, counted)


# One compiled program per set of differentiated inputs (a static argument, so a program computing one set of
# gradients is never reused for another): an eager gradient dispatches once instead of tracing and compiling
# its token loop again on every call; under the caller's jit it is inlined.
@functools.partial(jax.jit, static_argnums=(7, 8))
def _total_and_gradients(h, w_cls, bias, w, tgt, counted, bad, opts, needs):
  need_h, need_wc, need_b, need_w, need_t = needs
  num_tokens = h.shape[0]
  vocab_size = w_cls.shape[0]
  vocab = _Vocab.of(vocab_size, None)
  ct = v.compute_dtype(jnp.result_type(h, w_cls))
  cls = _per_class(w, vocab, ct)
  need_t = need_t and opts.probs
  need_b = need_b and bias is not None

  half = jnp.result_type(h, w_cls) != ct
  size = eager_chunk(num_tokens, vocab_size, eager_arrays(opts.probs, opts.eps, opts.softcap, bias is not None, half))

  def chunk_body(t0, first, carry):
    total, dh, dw_cls, dbias, dw, dt = carry
    h_c, keep, bad_c, tgt_c = (lax.dynamic_slice_in_dim(a, t0, size, axis=0) for a in (h, counted, bad, tgt))
    fresh = _fresh(t0, first, size)
    keep, bad_c = keep & fresh, bad_c & fresh
    x = _logits(h_c, w_cls, bias, opts.softcap)
    factors = _block_factors(cls.wf, tgt_c, keep, opts, vocab_size)
    run, e = _update(_start(size, ct, opts), x, 0, vocab_size, tgt_c, factors, opts)
    st = _finish(run, vocab, opts)
    # Every class is in the tile: the softmax is the statistics' own exp (on CPU
    # exp is the costly part of the pass), rescaled per row.
    softmax = e * (1.0 / run.sum)[:, None]
    w_y = _target_weight(cls, tgt_c, vocab, opts)
    total = total + jnp.sum(_row_loss(st, w_y, cls, keep, bad_c, vocab, opts))
    one = jnp.ones((size,), ct)
    coef = _row_coefficients(one, st, w_y, cls, keep, bad_c, vocab, opts)
    rows = _rows(h_c, keep, st, coef, tgt_c)
    du = _tile_grad(x, 0, rows, factors, opts, softmax)
    du_in = du.astype(h.dtype)
    if need_h:
      dh_c = jnp.dot(du_in, w_cls, preferred_element_type=ct)
      dh_c = jnp.where(fresh[:, None], dh_c, lax.dynamic_slice_in_dim(dh, t0, size, axis=0))
      dh = lax.dynamic_update_slice_in_dim(dh, dh_c, t0, axis=0)
    if need_wc:
      dw_cls = _accumulate_classifier_grad(dw_cls, du_in, h_c, ct)
    if need_b:
      dbias = dbias + jnp.sum(du, axis=0)
    part, dt_tile = _tile_weight_grads(x, rows, factors, cls.wf, opts, need_w, need_t)
    if need_w:
      dw = dw + (part if opts.probs else _class_index_weight_grad(
          one, st, rows, keep, bad_c, tgt_c, vocab, 0.0 if part is None else part, opts))
    if need_t:
      dt_tile = jnp.where(fresh[:, None], dt_tile, lax.dynamic_slice_in_dim(dt, t0, size, axis=0))
      dt = lax.dynamic_update_slice(dt, dt_tile, (t0, 0))
    return total, dh, dw_cls, dbias, dw, dt

  def zeros(needed, shape):
    return jnp.zeros(shape, ct) if needed else None

  init = (jnp.zeros((), ct), zeros(need_h, h.shape), zeros(need_wc, w_cls.shape),
          zeros(need_b, (vocab_size,)), zeros(need_w, (vocab_size,)), zeros(need_t, tgt.shape))
  total, *grads = _for_each_tile(num_tokens, size, chunk_body, init, _varying_axes(h, w_cls, bias, w, tgt))
  return total, tuple(grads)


def _total_bwd(opts, res, g):
  grads, dtypes, counted = res
  if isinstance(g, SymbolicZero):
    g = jnp.zeros((), jnp.float32)
  # As in the per-token kernels, tokens not counted get exactly 0 whatever the
  # cotangent (a mean over no tokens sends ±inf or NaN): per-token gradients are
  # masked, and per-class sums with no token behind them stay 0.
  per_token = (True, False, False, False, True)  # d_embeddings and d_targets have a row per token
  any_counted = jnp.any(counted)

  def scaled(grad, like, token_rows):
    if grad is None:
      return None
    out = g.astype(grad.dtype) * grad
    keep = counted.reshape(counted.shape + (1,) * (grad.ndim - 1)) if token_rows else any_counted
    return jnp.where(keep, out, jnp.zeros((), out.dtype)).astype(like.dtype)

  return (*(scaled(a, d, r) for a, d, r in zip(grads, dtypes, per_token, strict=True)), None, None)


# Not wrapped in jit as a whole, as fused_loss is: its forward reads which inputs are differentiated (symbolic
# zeros), and a jit around the custom_vjp reused one choice across differentiations of different arguments
# (tests/test_linear_cross_entropy.py::test_gradients_of_different_arguments_in_turn). Its value is the
# compiled fused_loss, and its forward _total_and_gradients, with that choice a static argument.
fused_total.defvjp(_total_fwd, _total_bwd, symbolic_zeros=True)


# --------------------------------------------------------------------------
# Front doors.


def _check_block_size(block_size: object, vocab_size: int, num_tokens: int) -> int:
  if block_size is None:
    return default_block_size(num_tokens, vocab_size)
  if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral):
    raise TypeError(f"`block_size` must be None or a positive int, got {block_size!r}.")
  if block_size < 1:
    raise ValueError(f"`block_size` must be None or a positive int, got {block_size!r}.")
  return min(int(block_size), vocab_size)


def _pick_bias(bias: object, linear_bias: object) -> object:
  if bias is not None and linear_bias is not None:
    raise TypeError("got both `bias` and `linear_bias` (torch's name for the same array): pass one of them.")
  return linear_bias if bias is None else bias


class _Prepared(NamedTuple):
  """A validated call, flattened to tokens, ready for the kernels."""

  arrays: tuple  # (h [N, D], w_cls [V, D], bias, w [V], targets, counted [N], bad [N])
  opts: _Options
  shape: tuple  # the element shape (the embeddings' shape without D)
  counted: jax.Array  # [shape]
  normalizer: jax.Array  # [shape]
  eager_ok: bool  # the eager-gradient path may be used (default block, static N, no vocab axis)


def _prepare(embeddings, classifier, targets, *, bias, weight, ignore_index, label_smoothing, z_loss, softcap,
             where, block_size, vocab_axis) -> _Prepared:
  h = v.as_array("embeddings", embeddings)
  w_cls = v.as_array("classifier", classifier)
  v.check_floating("embeddings", h)
  v.check_floating("classifier", w_cls)
  if h.ndim < 1:
    raise ValueError("`embeddings` must have shape [..., D], got a scalar.")
  if w_cls.ndim != 2:
    raise ValueError(
        f"`classifier` must have shape [V, D] (torch Linear / tied-embedding layout), "
        f"got shape {w_cls.shape}.")
  vocab_size, dim = w_cls.shape
  if h.shape[-1] != dim:
    raise ValueError(
        f"`embeddings` of shape {h.shape} has D={h.shape[-1]} but `classifier` of shape "
        f"{w_cls.shape} has D={dim}; a Flax Dense kernel [D, V] is passed as `kernel.T`.")
  if vocab_size == 0:
    raise ValueError(f"`classifier` has no classes: shape {w_cls.shape}.")
  shape = tuple(h.shape[:-1])
  t = v.as_target_array("targets", targets)
  probs = bool(jnp.issubdtype(t.dtype, jnp.floating))
  if not probs:
    v.check_integer("targets", t, " (class indices) or a floating dtype (class probabilities)")
  expected = (*shape, vocab_size) if probs else shape
  if tuple(t.shape) != expected:
    kind = "class probabilities" if probs else "class indices"
    raise ValueError(
        f"`targets` of shape {tuple(t.shape)} does not fit `embeddings` of shape {h.shape}: {t.dtype} targets "
        f"are {kind}, expected shape {expected} (class indices: {shape}; probabilities: {(*shape, vocab_size)}).")
  b = None
  if bias is not None:
    b = v.as_array("bias", bias)  # type: ignore[arg-type]
    v.check_floating("bias", b)
    if b.shape != (vocab_size,):
      raise ValueError(
          f"`bias` must have shape ({vocab_size},) (one entry per class), got shape {b.shape}.")
  if probs and ignore_index is not None:
    raise ValueError(
        f"`ignore_index` cannot be specified when `targets` holds class probabilities (torch raises the same), "
        f"got ignore_index={ignore_index!r}; leave it None and mask tokens with `where`.")
  ii = -100 if ignore_index is None else v.check_ignore_index(ignore_index)
  eps = v.check_label_smoothing(label_smoothing)
  z = v.check_z_loss(z_loss)
  cap = v.check_softcap(softcap)
  wt = v.check_weight(weight, vocab_size)
  mask = v.check_where(where, shape, "the targets' shape (the embeddings' shape without D)")
  num_tokens = math.prod(shape)
  block = _check_block_size(block_size, vocab_size, num_tokens)
  axis = _check_vocab_axis(vocab_axis)

  vocab = _Vocab.of(vocab_size, axis)
  dt = jnp.promote_types(h.dtype, w_cls.dtype)
  ct = v.compute_dtype(dt)
  w_arr = jnp.ones((vocab_size,), ct) if wt is None else wt
  h2 = h.astype(dt).reshape(num_tokens, dim)
  if probs:
    tgt = jnp.asarray(t)
    counted = jnp.ones(shape, bool) if mask is None else mask
    tgt2, counted2 = tgt.reshape(num_tokens, vocab_size), counted.reshape(num_tokens)
    bad2 = jnp.zeros((num_tokens,), bool)
    normalizer = counted.astype(ct)
  else:
    tg = class_targets(t, vocab.size, ii, mask)
    counted = tg.counted
    tgt2, counted2, bad2 = (a.reshape(num_tokens) for a in tg)
    target_weight = None if wt is None else vocab.lookup(wt.astype(ct), tg.classes)
    normalizer = _reduction.class_index_normalizer(tg.counted, target_weight, ct)
  # Inside shard_map, per-class inputs that do not vary over the axes the tokens
  # vary over (replicated over a data axis, say) are marked as varying, so their
  # gradients are summed over those axes, as for any JAX function of them; and
  # over the vocabulary axis, since each device holds its own classes.
  axes = _varying_axes(h2, tgt2, counted2) | frozenset(() if axis is None else (axis,))
  per_class = tuple(_vary(x, axes) for x in (w_cls.astype(dt), b, w_arr))
  opts = _Options(eps, z, block, cap, axis, probs)
  eager_ok = block_size is None and axis is None and isinstance(num_tokens, int) and num_tokens > 0
  return _Prepared((h2, *per_class, tgt2, counted2, bad2), opts, shape, counted, normalizer, eager_ok)


def _forward_mode_guard(fn, *args):
  try:
    return fn(*args)
  except TypeError as e:
    if "forward-mode" not in str(e):
      raise
    raise TypeError(
        "linear_cross_entropy supports reverse-mode differentiation (grad, vjp, jacrev, and forward over "
        "reverse: jax.hessian, jvp of grad) but not forward mode applied to it directly (jvp, jacfwd, the "
        "map jax.linearize returns): its gradient is a block-wise custom VJP, which is what keeps the "
        "[tokens, V] logits out of memory. For forward mode use the materializing form, "
        "jaxnll.cross_entropy(embeddings @ classifier.T + bias, targets, ...)."
    ) from None


def _per_token_terms(p: _Prepared) -> LossTerms:
  per = _forward_mode_guard(fused_loss, *p.arrays, p.opts).reshape(p.shape)
  return LossTerms(per, p.normalizer, p.counted, _nan_on_zero(p))


def _summed_terms(p: _Prepared) -> LossTerms:
  """One-element terms holding the summed loss and normalizer (``counted`` per
  token): with the eager-gradient path where it applies."""
  if p.eager_ok:
    total = _forward_mode_guard(fused_total, *p.arrays, p.opts)
  else:
    total = jnp.sum(_per_token_terms(p).per_element)
  return LossTerms(total.reshape(1), jnp.sum(p.normalizer).reshape(1), p.counted, _nan_on_zero(p))


def _nan_on_zero(p: _Prepared) -> bool:
  """Class indices with smoothing: torch's separate target term makes a mean over a zero normalizer NaN."""
  return not p.opts.probs and p.opts.eps > 0


def linear_cross_entropy_terms(
    embeddings: jax.typing.ArrayLike,
    classifier: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    linear_bias: jax.typing.ArrayLike | None = None,
    weight: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: jax.typing.ArrayLike | None = None,
    block_size: int | None = None,
    vocab_axis: str | None = None,
) -> LossTerms:
  """The unreduced form of :func:`linear_cross_entropy` (per token, the embeddings' shape without D).

  Always the streaming path: the per-token losses may be weighted in any way
  before they are summed.
  """
  return _per_token_terms(_prepare(
      embeddings, classifier, targets, bias=_pick_bias(bias, linear_bias), weight=weight,
      ignore_index=ignore_index, label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap, where=where,
      block_size=block_size, vocab_axis=vocab_axis))


def _check_vocab_axis(vocab_axis: object) -> str | None:
  if vocab_axis is None:
    return None
  if not isinstance(vocab_axis, str):
    raise TypeError(f"`vocab_axis` must be None or a mesh axis name (str), got {vocab_axis!r}.")
  try:
    lax.axis_size(vocab_axis)
  except NameError:
    raise ValueError(
        f"`vocab_axis`={vocab_axis!r} is not a mesh axis bound here: call linear_cross_entropy "
        f"inside jax.shard_map over a mesh with that axis, with `classifier` split along V."
    ) from None
  return vocab_axis


def _check_batch_axis(batch_axis: object) -> tuple[str, ...]:
  """``batch_axis`` as a tuple of mesh axis names bound here (empty for None)."""
  if batch_axis is None:
    return ()
  if isinstance(batch_axis, str):
    axes: tuple[object, ...] = (batch_axis,)
  elif isinstance(batch_axis, (tuple, list)):
    axes = tuple(batch_axis)
  else:
    axes = ()
  if not axes or not all(isinstance(a, str) for a in axes):
    raise TypeError(f"`batch_axis` must be None, a mesh axis name or a tuple of them, got {batch_axis!r}.")
  for a in axes:
    try:
      lax.axis_size(a)
    except NameError:
      raise ValueError(
          f"`batch_axis`={batch_axis!r}: {a!r} is not a mesh axis bound here: call linear_cross_entropy "
          f"inside jax.shard_map over a mesh with that axis, with the tokens split along it."
      ) from None
  return axes  # type: ignore[return-value]


def linear_cross_entropy(
    embeddings: jax.typing.ArrayLike,
    classifier: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    linear_bias: jax.typing.ArrayLike | None = None,
    weight: jax.typing.ArrayLike | None = None,
    reduction: Reduction = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: jax.typing.ArrayLike | None = None,
    block_size: int | None = None,
    vocab_axis: str | None = None,
    batch_axis: str | tuple[str, ...] | None = None,
) -> jax.Array:
  r"""``cross_entropy(embeddings @ classifier.T + bias, targets, ...)`` without the logits.

  torch's ``F.linear_cross_entropy(input, linear_weight, target, *, linear_bias,
  weight, reduction, ignore_index, label_smoothing)``. Computes the loss (and,
  under ``grad``, its gradients with respect to ``embeddings``, ``classifier``,
  ``bias``, ``weight`` and probability ``targets``) tile by tile, so the
  ``[..., V]`` logits and their gradient are never stored. Values and
  gradients equal :func:`jaxnll.cross_entropy` on the materialized logits with
  the same options, to float32 rounding.

  Two strategies (see the module docstring): for ``'mean'``, ``'sum'`` and
  ``'safe_mean'`` with ``block_size=None`` the gradients are formed in the
  forward pass over chunks of tokens (three matrix products, as many as the
  materializing path; memory: one ``[T, V]`` tile of about 56 MiB, or two of
  about 32 MiB with a bias, softcap, smoothing, probability targets or bf16/f16
  inputs, and for bf16/f16 a float32 ``[V, D]`` accumulator). Otherwise (``'none'``, an explicit ``block_size``,
  ``vocab_axis``, a symbolic token count) the pass streams blocks of classes
  and the backward recomputes the logits (four matrix products; memory: a few
  ``[N, block]`` tiles). Evaluated without differentiation, both are one
  streaming pass.

  Differentiation: reverse mode (``grad``, ``vjp``, ``jacrev``) and forward
  over reverse (``jax.hessian``, ``jvp`` of ``grad``) are exact. Forward
  mode applied to it directly (``jax.jvp``, ``jax.jacfwd``, the map that
  ``jax.linearize`` returns) raises ``TypeError``: the tiled custom VJP is what
  keeps the logits out of memory. For forward mode use
  ``cross_entropy(embeddings @ classifier.T + bias, targets, ...)``.

  Args:
    embeddings: floating ``[..., D]`` hidden states (torch's ``input``; bf16/f16
      matmuls accumulate in float32). ``[D]`` with a scalar target is one token.
    classifier: floating ``[V, D]`` (torch's ``linear_weight``): a tied
      embedding table or a torch ``Linear(D, V).weight``. A Flax ``nn.Dense(V)``
      kernel is ``[D, V]``: pass ``kernel.T`` (XLA folds the transpose into the matmul).
    targets: integer class indices ``[...]`` (the embeddings' shape without
      D), or floating class probabilities ``[..., V]``, as in :func:`jaxnll.cross_entropy`.
    bias: optional ``[V]`` output bias; ``linear_bias`` is torch's name for it
      (pass one of the two).
    weight, reduction, label_smoothing, z_loss, where: as in
      :func:`jaxnll.cross_entropy`. With probability targets ``'mean'``
      divides by the number of (unmasked) tokens, as torch does.
    ignore_index: as torch's: ``None`` (the default) means -100 for class
      indices and nothing for probabilities; any int with probability targets
      raises ``ValueError`` (torch raises ``RuntimeError``).
    softcap: optional Gemma-2 soft cap, ``softcap * tanh(logits / softcap)``.
    block_size: classes per block of the streaming pass. ``None`` picks a
      multiple of 128 that keeps one ``[N, block]`` float32 tile near 2 MiB on
      CPU and near 128 MiB on GPU/TPU, and lets reduced losses use eager
      gradients; an explicit value always streams (the least memory).
    vocab_axis: inside ``jax.shard_map``, the mesh axis the vocabulary is
      split over (Megatron-style vocab parallelism): ``classifier``, ``bias``,
      ``weight`` and probability ``targets`` are this device's contiguous slice
      of the classes and class-index ``targets`` are global. Per-token
      statistics are combined with ``pmax`` / ``psum`` over the axis and the
      embeddings' gradient is summed over it; the classifier and the logits
      are never gathered.
    batch_axis: inside ``jax.shard_map``, the mesh axis (or axes) the tokens
      are split over: ``'mean'``/``'sum'`` then reduce over the whole batch
      exactly (sum and weighted normalizer are ``psum``-ed before dividing).

  Returns:
    A scalar, or the embeddings' shape without D for ``'none'``, in float32 or wider.

  Raises:
    IndexError: concrete class indices outside ``[0, V)`` that are counted
      (under ``jit``: NaN loss and NaN gradient row, see :func:`jaxnll.checked`).

  Examples:
    >>> import jax, jax.numpy as jnp, jaxnll
    >>> h = jnp.array([[0.5, -1.0], [2.0, 0.25]])
    >>> W = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> y = jnp.array([2, 0])
    >>> jaxnll.linear_cross_entropy(h, W, y)
    Array(1.1818175, dtype=float32)
    >>> bool(jnp.allclose(jaxnll.cross_entropy(h @ W.T, y), 1.1818175))  # the same, up to rounding
    True
  """
  red = v.check_reduction(reduction)
  summed = _check_batch_axis(batch_axis)
  p = _prepare(
      embeddings, classifier, targets, bias=_pick_bias(bias, linear_bias), weight=weight,
      ignore_index=ignore_index, label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap, where=where,
      block_size=block_size, vocab_axis=vocab_axis)
  terms = _per_token_terms(p) if red == "none" else _summed_terms(p)
  return _reduction.reduce(terms.per_element, terms.normalizer, red, summed_over=summed, nan_on_zero=terms.nan_on_zero)


# --------------------------------------------------------------------------
# The loss object.


def _optional_count(name: str, value: object) -> int | None:
  if value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
    raise TypeError(f"`{name}` must be None or a positive int, got {value!r}.")
  return int(value)


@register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class LinearCrossEntropyLoss(LossObject):
  """``torch.nn.LinearCrossEntropyLoss``: :func:`jaxnll.linear_cross_entropy` with its options bound.

  torch's module owns its ``Linear(in_features, num_classes)``; a JAX loss
  object holds no parameters, so the classifier (and bias) are passed at each
  call, as in torch's functional form: ``loss(input, linear_weight, target,
  *, linear_bias=None, where=None)``. The constructor keeps torch's order:
  ``in_features`` and ``num_classes`` (optional here: when given, calls check
  ``linear_weight`` has shape ``(num_classes, in_features)`` and :meth:`init`
  can create torch-initialized parameters), then torch's keyword options,
  then jaxnll's (``z_loss``, ``softcap``, ``block_size``, ``vocab_axis``,
  ``batch_axis``). torch's ``device``/``dtype`` go to :meth:`init`;
  ``options`` has no counterpart (the loss is always tiled: ``block_size``).

  For ``jaxnll.training``, the model's ``apply_fn`` returns
  ``(hidden, classifier)`` or ``(hidden, classifier, bias)``; see :meth:`batch_terms`.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.LinearCrossEntropyLoss(2, 3, label_smoothing=0.1)
    >>> h = jnp.array([[0.5, -1.0], [2.0, 0.25]])
    >>> W = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> loss(h, W, jnp.array([2, 0]))
    Array(1.1984843, dtype=float32)
  """

  in_features: int | None = None
  num_classes: int | None = None
  _: dataclasses.KW_ONLY
  bias: bool = False
  reduction: Reduction = "mean"
  weight: jax.Array | None = None
  ignore_index: int | None = None
  label_smoothing: float = 0.0
  z_loss: float = 0.0
  softcap: float | None = None
  block_size: int | None = None
  vocab_axis: str | None = None
  batch_axis: str | tuple[str, ...] | None = None

  @property
  def nan_on_zero(self) -> bool:  # type: ignore[override]
    return self.label_smoothing > 0

  def __post_init__(self) -> None:
    set_field(self, "in_features", _optional_count("in_features", self.in_features))
    set_field(self, "num_classes", _optional_count("num_classes", self.num_classes))
    set_field(self, "bias", v.check_flag("bias", self.bias))
    set_field(self, "reduction", v.check_reduction(self.reduction))
    if self.weight is not None:
      w = v.as_array("weight", self.weight)
      if w.ndim != 1:
        raise ValueError(f"`weight` must be a 1-D array of class weights, got shape {w.shape}.")
      set_field(self, "weight", v.check_weight(w, w.shape[0] if self.num_classes is None else self.num_classes))
    if self.ignore_index is not None:
      set_field(self, "ignore_index", v.check_ignore_index(self.ignore_index))
    set_field(self, "label_smoothing", v.check_label_smoothing(self.label_smoothing))
    set_field(self, "z_loss", v.check_z_loss(self.z_loss))
    set_field(self, "softcap", v.check_softcap(self.softcap))
    if self.block_size is not None:
      _check_block_size(self.block_size, 1, 1)
      set_field(self, "block_size", int(self.block_size))
    if self.vocab_axis is not None and not isinstance(self.vocab_axis, str):
      raise TypeError(f"`vocab_axis` must be None or a mesh axis name (str), got {self.vocab_axis!r}.")
    if isinstance(self.batch_axis, list):
      set_field(self, "batch_axis", tuple(self.batch_axis))
    ba = self.batch_axis
    if ba is not None and not (isinstance(ba, str) or (isinstance(ba, tuple) and ba
                                                       and all(isinstance(a, str) for a in ba))):
      raise TypeError(f"`batch_axis` must be None, a mesh axis name or a tuple of them, got {ba!r}.")

  def _prepare(self, input, linear_weight, target, linear_bias, where) -> _Prepared:
    w_cls = v.as_array("linear_weight", linear_weight)
    want = (self.num_classes, self.in_features)
    if w_cls.ndim == 2 and self.vocab_axis is None:
      for i, (n, name) in enumerate(zip(want, ("num_classes", "in_features"), strict=True)):
        if n is not None and w_cls.shape[i] != n:
          raise ValueError(
              f"`linear_weight` must have shape (num_classes, in_features) = {want} for this loss, got shape "
              f"{w_cls.shape}: its {name} is {n}.")
    return _prepare(
        input, w_cls, target, bias=linear_bias, weight=self.weight, ignore_index=self.ignore_index,
        label_smoothing=self.label_smoothing, z_loss=self.z_loss, softcap=self.softcap, where=where,
        block_size=self.block_size, vocab_axis=self.vocab_axis)

  def terms(self, input, linear_weight, target, *, linear_bias=None, where=None) -> LossTerms:  # type: ignore[override]
    """Per-token losses and normalizer shares, before reduction (the streaming path)."""
    return _per_token_terms(self._prepare(input, linear_weight, target, linear_bias, where))

  def _reduced_terms(self, input, linear_weight, target, linear_bias, where) -> LossTerms:
    p = self._prepare(input, linear_weight, target, linear_bias, where)
    return _per_token_terms(p) if self.reduction == "none" else _summed_terms(p)

  def __call__(self, input, linear_weight, target, *, linear_bias=None, where=None) -> jax.Array:  # type: ignore[override]
    """The loss, reduced by ``self.reduction`` (over ``batch_axis`` too, inside ``shard_map``)."""
    summed = _check_batch_axis(self.batch_axis)
    t = self._reduced_terms(input, linear_weight, target, linear_bias, where)
    return _reduction.reduce(t.per_element, t.normalizer, self.reduction, summed_over=summed,
                             nan_on_zero=t.nan_on_zero)

  def sum_and_normalizer(self, input, linear_weight, target, *, linear_bias=None,  # type: ignore[override]
                         where=None) -> tuple[jax.Array, jax.Array]:
    """``(loss_sum, normalizer)`` of this device's tokens, with ``loss = loss_sum / normalizer``.

    Add both over micro-batches or devices and divide once to get exactly
    the full-batch loss, weights and ignored targets included.
    """
    t = self._reduced_terms(input, linear_weight, target, linear_bias, where)
    return _reduction.sum_and_normalizer(t.per_element, t.normalizer, self.reduction)

  def batch_terms(self, outputs: Any, batch: Mapping[str, Any]) -> LossTerms:
    """The terms of ``outputs = (hidden, classifier)`` or ``(hidden, classifier, bias)``
    against ``batch["targets"]`` (and ``batch.get("where")``).

    The model's ``apply_fn`` stops before its output projection and returns
    the hidden states with the projection's ``[V, D]`` weight (a tied
    embedding table, or a Flax ``Dense`` kernel transposed) and optional bias,
    so the logits are never formed. For a reducing loss the terms are the
    batch's totals, ``per_element = [loss_sum]`` and ``normalizer =
    [normalizer sum]`` (``counted`` stays per token): ``jaxnll.training`` only
    adds them up, and handing over totals lets the gradients be formed in the
    forward pass. Use :meth:`terms` for per-token losses.
    """
    if not (isinstance(outputs, (tuple, list)) and len(outputs) in (2, 3)):
      raise TypeError(
          "with LinearCrossEntropyLoss, `apply_fn` must return (hidden, classifier) or (hidden, classifier, "
          f"bias), got {type(outputs).__name__}.")
    hidden, w_cls, *rest = outputs
    return self._reduced_terms(hidden, w_cls, batch["targets"], rest[0] if rest else None, batch.get("where"))

  def init(self, key: jax.Array, dtype: jax.typing.DTypeLike = jnp.float32) -> dict[str, jax.Array]:
    """``{"weight": [num_classes, in_features]}`` (and ``"bias": [num_classes]`` with
    ``bias=True``) drawn as torch initializes its ``Linear``: uniform in
    ``±1 / sqrt(in_features)``."""
    if self.in_features is None or self.num_classes is None:
      raise ValueError(
          "`init` needs `in_features` and `num_classes`: LinearCrossEntropyLoss(in_features, num_classes).")
    bound = 1.0 / math.sqrt(self.in_features)
    kw, kb = jax.random.split(key)
    params = {"weight": jax.random.uniform(kw, (self.num_classes, self.in_features), dtype, -bound, bound)}
    if self.bias:
      params["bias"] = jax.random.uniform(kb, (self.num_classes,), dtype, -bound, bound)
    return params
