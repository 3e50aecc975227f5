"""Fused linear + cross-entropy over vocabulary blocks: the logits never exist whole.

``linear_cross_entropy(h, W, y)`` equals ``cross_entropy(h @ W.T + b, y)`` with
the same options, computed one block of ``block_size`` classes at a time:

* forward: for each block, ``x = softcap(h @ W_blk.T + b_blk)`` (``[N, B]``,
  float32 accumulation) updates an online logsumexp (running max and rescaled
  sum), picks up the target logits falling in the block and, with label
  smoothing, ``Σ_c w_c x_c``. Only these per-token statistics survive; the
  loss comes from :func:`jaxnll._xent_kernel.row_loss`, the same formula as
  :func:`jaxnll.cross_entropy`.
* backward: each block's logits are recomputed, turned into
  ``dL/dx = coef.softmax * exp(x - lse) - coef.smooth * w - coef.target * onehot``
  (:func:`jaxnll._xent_kernel.row_coefficients`), and contracted at once:
  ``dh += dx @ W_blk``; ``dW[blk] = dx.T @ h`` and ``db[blk] = Σ dx`` are
  written in place, each block once — nothing of size ``[N, V]`` and no
  ``[V, D]`` partial sums.

Peak temporary memory is a few ``[N, B]`` blocks plus the ``[N, D]`` gradient
of the embeddings, instead of several ``[N, V]`` arrays; the price is one more
matrix product (the backward recomputes the logits).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._cross_entropy import LossTerms
from jaxnll._log_softmax import finite_shift, log_of_shifted_sum
from jaxnll._reduction import Reduction
from jaxnll._targets import class_targets
from jaxnll._xent_kernel import row_coefficients, row_loss, target_weight_grad

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


class _Statistics(NamedTuple):
  """Per-token statistics of the streaming pass, relative to the final shift ``m``:
  ``rel = lse - m``, ``x_y_rel = x_y - m``, ``wx_rel = Σ_c w_c (x_c - m)`` (with
  smoothing) and ``lse``. Relative values keep the loss exact at any offset."""

  rel: jax.Array
  x_y_rel: jax.Array
  wx_rel: jax.Array
  lse: jax.Array


def _statistics(h, w_cls, bias, w, y, eps, block, softcap, vocab: _Vocab) -> _Statistics:
  """:class:`_Statistics` from one streaming pass over the classes."""
  n = h.shape[0]
  vocab_size = w_cls.shape[0]
  y = vocab.shift(y)
  ct = v.compute_dtype(jnp.result_type(h, w_cls))

  def body(start, size, carry):
    run_max, run_sum, x_y, wx, w_seen = carry
    b_blk = None if bias is None else lax.dynamic_slice_in_dim(bias, start, size)
    x = _logits(h, lax.dynamic_slice_in_dim(w_cls, start, size, axis=0), b_blk, softcap)
    new_max = jnp.maximum(run_max, jnp.max(x, axis=1))
    # Shifts are kept finite (0 for an all -inf row; NaN for +inf, as in
    # cross_entropy) so there is no inf - inf.
    old_shift, new_shift = finite_shift(run_max), finite_shift(new_max)
    run_sum = run_sum * jnp.exp(old_shift - new_shift) + jnp.sum(jnp.exp(x - new_shift[:, None]), axis=1)
    local = y - start
    inside = (local >= 0) & (local < size)
    picked = jnp.take_along_axis(x, jnp.clip(local, 0, size - 1)[:, None], axis=1)[:, 0]
    x_y = jnp.where(inside, picked, x_y)
    if eps > 0:
      # Σ w_c (x_c - shift), moved to the new shift: the correction is the
      # shift's change times the weight seen so far, never the offset itself.
      w_blk = lax.dynamic_slice_in_dim(w, start, size).astype(ct)
      wx = wx + (old_shift - new_shift) * w_seen + jnp.dot(x - new_shift[:, None], w_blk,
                                                         precision=lax.Precision.HIGHEST)
      w_seen = w_seen + jnp.sum(w_blk)
    return new_max, run_sum, x_y, wx, w_seen

  zeros = jnp.zeros((n,), ct)
  init = (jnp.full((n,), -jnp.inf, ct), zeros, zeros, zeros, jnp.zeros((), ct))
  run_max, run_sum, x_y, wx, w_seen = _for_each_block(vocab_size, block, body, init,
                                                      _varying_axes(h, w_cls, bias, w, y))
  shift = finite_shift(run_max)
  if vocab.axis is not None:
    # Combine the shards' online statistics: rescale each local sum to the
    # global max; only the shard holding a token's target has a nonzero x_y.
    local_shift = shift
    shift = finite_shift(vocab.largest(run_max))
    rescaled = run_sum * jnp.exp(local_shift - shift)
    run_sum = vocab.total(jnp.where(run_sum > 0, rescaled, jnp.zeros_like(run_sum)))
    x_y = vocab.total(x_y)
    if eps > 0:
      wx = vocab.total(wx + (local_shift - shift) * w_seen)
  rel = log_of_shifted_sum(run_sum, jnp.zeros_like(run_sum))
  return _Statistics(rel, x_y - shift, wx, rel + shift)


def _loss(h, w_cls, bias, w, y, counted, bad, eps, z, block, softcap, vocab_axis):
  vocab = _Vocab.of(w_cls.shape[0], vocab_axis)
  st = _statistics(h, w_cls, bias, w, y, eps, block, softcap, vocab)
  wf = w.astype(st.rel.dtype)
  loss = row_loss(st.rel, st.x_y_rel, vocab.lookup(wf, y), vocab.total(jnp.sum(wf)), st.wx_rel, st.lse,
                  vocab.size, eps, z, bad, counted)
  return loss, st


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9, 10, 11))
def fused_loss(h, w_cls, bias, w, y, counted, bad, eps, z, block, softcap, vocab_axis=None):
  """Per-token loss ``[N]`` of ``softcap(h @ w_cls.T + bias)`` against class indices ``y``.

  ``h [N, D]``, ``w_cls [V, D]``, ``bias [V]`` or None, class weights ``w [V]``,
  ``y [N]`` int32 in ``[0, V)``, ``counted [N]`` and ``bad [N]`` bool (see
  :class:`jaxnll._targets.ClassTargets`). Differentiable in ``h``, ``w_cls``,
  ``bias`` and ``w``. With ``vocab_axis`` (inside ``shard_map``), ``w_cls``,
  ``bias`` and ``w`` are this device's slice of the vocabulary and ``y`` holds
  global class indices.
  """
  return _loss(h, w_cls, bias, w, y, counted, bad, eps, z, block, softcap, vocab_axis)[0]


def _fused_fwd(h, w_cls, bias, w, y, counted, bad, eps, z, block, softcap, vocab_axis):
  loss, st = _loss(h, w_cls, bias, w, y, counted, bad, eps, z, block, softcap, vocab_axis)
  return loss, (h, w_cls, bias, w, y, counted, bad, st)


def token_chunk(num_tokens: int, dim: int) -> int:
  """Tokens per backward tile: all of them unless an ``[N, D]`` float32 partial
  product of the embeddings' gradient would exceed 16 MiB. A symbolic
  (shape-polymorphic) count is taken whole: its tiles cannot be sized."""
  if not isinstance(num_tokens, int):
    return num_tokens
  return max(1, min(num_tokens, _CHUNK_ELEMENTS // max(dim, 1)))


def _fused_bwd(eps, z, block, softcap, vocab_axis, res, g):
  h, w_cls, bias, w, y, counted, bad, st = res
  lse = st.lse
  num_tokens, dim = h.shape
  vocab_size = w_cls.shape[0]
  vocab = _Vocab.of(vocab_size, vocab_axis)
  ct = lse.dtype
  wf = w.astype(ct)
  coef = row_coefficients(g.astype(ct), counted, bad, vocab.lookup(wf, y), vocab.total(jnp.sum(wf)),
                          lse, vocab.size, eps, z)
  y_local = vocab.shift(y)
  # exp(x - lse) of a row whose lse is not finite is never used (not counted,
  # or NaN anyway through coef.nan_row / an inf loss); keep it finite. NaN
  # rows ride on the softmax factor: exp(...) >= 0 is finite, so NaN * it is NaN.
  safe_lse = finite_shift(lse)
  rows = (h, counted, safe_lse, coef.softmax + coef.nan_row, coef.smooth, y_local, coef.target)
  zero = jnp.zeros((), ct)

  def tile(start, w_blk, b_blk, w_cls_blk, rows_c):
    """``dL/du`` of one ``[tokens, classes]`` tile, and its logits."""
    h_c, keep, lse_c, c_softmax, c_smooth, y_c, c_target = rows_c
    x = _logits(h_c, w_blk, b_blk, softcap)
    dx = c_softmax[:, None] * jnp.exp(x - lse_c[:, None])
    if eps > 0:
      dx = dx - c_smooth[:, None] * w_cls_blk[None, :]
    is_target = lax.broadcasted_iota(jnp.int32, x.shape, 1) == (y_c - start)[:, None]
    dx = jnp.where(is_target, dx - c_target[:, None], dx)
    du = dx if softcap is None else dx * (1.0 - jnp.square(x / softcap))
    # Last, so that nothing an ignored row's logits hold (NaN through the cap's
    # derivative included) reaches its gradient.
    return jnp.where(keep[:, None], du, zero), x

  chunk = token_chunk(num_tokens, dim)

  def vocab_block(start, size, carry):
    dh, dw_cls, dbias, dw_smooth = carry
    w_blk = lax.dynamic_slice_in_dim(w_cls, start, size, axis=0)
    b_blk = None if bias is None else lax.dynamic_slice_in_dim(bias, start, size)
    w_cls_blk = lax.dynamic_slice_in_dim(wf, start, size)

    def token_chunk_body(t0, tsize, inner):
      dh, dw_blk, db_blk, ds_blk = inner
      rows_c = tuple(lax.dynamic_slice_in_dim(r, t0, tsize, axis=0) for r in rows)
      du, x = tile(start, w_blk, b_blk, w_cls_blk, rows_c)
      du_in = du.astype(h.dtype)
      dh_c = lax.dynamic_slice_in_dim(dh, t0, tsize, axis=0) + jnp.dot(
          du_in, w_blk, preferred_element_type=ct)
      dh = lax.dynamic_update_slice_in_dim(dh, dh_c, t0, axis=0)
      dw_blk = dw_blk + lax.dot_general(
          du_in, rows_c[0], (((0,), (0,)), ((), ())), preferred_element_type=ct)
      db_blk = db_blk + jnp.sum(du, axis=0)
      if eps > 0:
        # Σ_n smooth_n x_nc, the smoothing term's share of dL/dw_c.
        ds_blk = ds_blk + jnp.dot(rows_c[4], x, precision=lax.Precision.HIGHEST)
      return dh, dw_blk, db_blk, ds_blk

    inner = (dh, jnp.zeros((size, dim), ct), jnp.zeros((size,), ct), jnp.zeros((size,), ct))
    dh, dw_blk, db_blk, ds_blk = _for_each_block(num_tokens, chunk, token_chunk_body, inner, varying)
    dw_cls = lax.dynamic_update_slice_in_dim(dw_cls, dw_blk.astype(dw_cls.dtype), start, axis=0)
    if dbias is not None:
      dbias = lax.dynamic_update_slice_in_dim(dbias, db_blk.astype(dbias.dtype), start, axis=0)
    if eps > 0:
      dw_smooth = lax.dynamic_update_slice_in_dim(dw_smooth, ds_blk, start, axis=0)
    return dh, dw_cls, dbias, dw_smooth

  init = (
      jnp.zeros(h.shape, ct),
      jnp.zeros(w_cls.shape, w_cls.dtype),
      None if bias is None else jnp.zeros(bias.shape, bias.dtype),
      jnp.zeros((vocab_size,), ct),
  )
  varying = _varying_axes(h, w_cls, bias, w, y_local, g)
  dh, dw_cls, dbias, dw_smooth = _for_each_block(vocab_size, block, vocab_block, init, varying)

  dh = vocab.total(dh)  # each shard of the vocabulary contributed its part
  per_target = target_weight_grad(g.astype(ct), counted, bad, st.rel, st.x_y_rel, eps)
  idx, held = vocab.owned(y)
  dw = jnp.zeros((vocab_size,), ct).at[idx].add(jnp.where(held, per_target, zero))
  if eps > 0:
    dw = dw + (jnp.sum(coef.smooth * jnp.where(counted, lse, zero)) - dw_smooth)
  return dh.astype(h.dtype), dw_cls, dbias, dw.astype(w.dtype), None, None, None


fused_loss.defvjp(_fused_fwd, _fused_bwd)


def _check_block_size(block_size: object, vocab_size: int, num_tokens: int) -> int:
  if block_size is None:
    return default_block_size(num_tokens, vocab_size)
  if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral):
    raise TypeError(f"`block_size` must be None or a positive int, got {block_size!r}.")
  if block_size < 1:
    raise ValueError(f"`block_size` must be None or a positive int, got {block_size!r}.")
  return min(int(block_size), vocab_size)


def linear_cross_entropy_terms(
    embeddings: jax.typing.ArrayLike,
    classifier: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    weight: jax.typing.ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: jax.typing.ArrayLike | None = None,
    block_size: int | None = None,
    vocab_axis: str | None = None,
) -> LossTerms:
  """The unreduced form of :func:`linear_cross_entropy` (per token, the targets' shape)."""
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
  y = v.as_target_array("targets", targets)
  v.check_integer("targets", y, " (class indices)")
  shape = h.shape[:-1]
  if y.shape != shape:
    raise ValueError(
        f"`targets` of shape {y.shape} does not fit `embeddings` of shape {h.shape}: "
        f"expected {shape}.")
  b = None
  if bias is not None:
    b = v.as_array("bias", bias)
    v.check_floating("bias", b)
    if b.shape != (vocab_size,):
      raise ValueError(
          f"`bias` must have shape ({vocab_size},) (one entry per class), got shape {b.shape}.")
  ii = v.check_ignore_index(ignore_index)
  eps = v.check_label_smoothing(label_smoothing)
  z = v.check_z_loss(z_loss)
  cap = v.check_softcap(softcap)
  wt = v.check_weight(weight, vocab_size)
  mask = v.check_where(where, shape, "the targets' shape (the embeddings' shape without D)")
  num_tokens = math.prod(shape)
  block = _check_block_size(block_size, vocab_size, num_tokens)

  vocab = _Vocab.of(vocab_size, _check_vocab_axis(vocab_axis))
  tg = class_targets(y, vocab.size, ii, mask)
  dt = jnp.promote_types(h.dtype, w_cls.dtype)
  ct = v.compute_dtype(dt)
  w_arr = jnp.ones((vocab_size,), ct) if wt is None else wt
  h2 = h.astype(dt).reshape(num_tokens, dim)
  y2, counted2, bad2 = (a.reshape(num_tokens) for a in tg)
  # Inside shard_map, per-class inputs that do not vary over the axes the tokens
  # vary over (replicated over a data axis, say) are marked as varying, so their
  # gradients are summed over those axes, as for any JAX function of them; and
  # over the vocabulary axis, since each device holds its own classes.
  axes = _varying_axes(h2, y2, counted2) | frozenset(() if vocab.axis is None else (vocab.axis,))
  per_class = tuple(_vary(x, axes) for x in (w_cls.astype(dt), b, w_arr))
  try:
    per = fused_loss(h2, *per_class, y2, counted2, bad2, eps, z, block, cap, vocab.axis).reshape(shape)
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
  target_weight = None if wt is None else vocab.lookup(wt.astype(ct), tg.classes)
  return LossTerms(per, _reduction.class_index_normalizer(tg.counted, target_weight, ct), tg.counted)


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
    weight: jax.typing.ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: jax.typing.ArrayLike | None = None,
    block_size: int | None = None,
    vocab_axis: str | None = None,
    batch_axis: str | tuple[str, ...] | None = None,
) -> jax.Array:
  r"""``cross_entropy(embeddings @ classifier.T + bias, targets, ...)`` without the logits.

  Computes the loss (and, under ``grad``, its gradients with respect to
  ``embeddings``, ``classifier``, ``bias`` and ``weight``) block by block over
  the vocabulary, keeping only per-token statistics between the forward and
  the backward pass, so the ``[..., V]`` logits and their gradient are never
  stored. Values and gradients equal :func:`jaxnll.cross_entropy` on the
  materialized logits with the same options, to float32 rounding.

  Differentiation: reverse mode (``grad``, ``vjp``, ``jacrev``) and forward
  over reverse (``jax.hessian``, ``jvp`` of ``grad``) are exact. Forward
  mode applied to it directly (``jax.jvp``, ``jax.jacfwd``, the map that
  ``jax.linearize`` returns) raises ``TypeError``: the block-wise custom VJP is what
  keeps the logits out of memory, and a rule JAX could run forward would be
  transposed into a loop that keeps every block. For forward mode use
  ``cross_entropy(embeddings @ classifier.T + bias, targets, ...)``.

  Args:
    embeddings: floating ``[..., D]`` hidden states (bf16/f16 matmuls
      accumulate in float32).
    classifier: floating ``[V, D]``: a tied embedding table or a torch
      ``Linear(D, V).weight``. A Flax ``nn.Dense(V)`` kernel is ``[D, V]``:
      pass ``kernel.T`` (XLA folds the transpose into the matmul).
    targets: integer class indices ``[...]`` (the embeddings' shape without D).
    bias: optional ``[V]`` output bias.
    weight, ignore_index, reduction, label_smoothing, z_loss, where: as in
      :func:`jaxnll.cross_entropy`.
    softcap: optional Gemma-2 soft cap, ``softcap * tanh(logits / softcap)``.
    block_size: classes per block. ``None`` picks a multiple of 128 that keeps
      one ``[N, block]`` float32 tile near 2 MiB on CPU (cache-sized) and near
      128 MiB on GPU/TPU (few, large matmuls); larger blocks trade memory for
      fewer, larger matmuls.
    vocab_axis: inside ``jax.shard_map``, the mesh axis the vocabulary is
      split over (Megatron-style vocab parallelism): ``classifier``, ``bias``
      and ``weight`` are this device's contiguous slice of the classes and
      ``targets`` are global class indices. Per-token statistics (max, sum,
      target logit) are combined with ``pmax`` / ``psum`` over the axis and
      the embeddings' gradient is summed over it; the classifier and the
      logits are never gathered.
    batch_axis: inside ``jax.shard_map``, the mesh axis (or axes) the tokens
      are split over: ``'mean'``/``'sum'`` then reduce over the whole batch
      exactly (sum and weighted normalizer are ``psum``-ed before dividing).

  Returns:
    A scalar, or the targets' shape for ``'none'``, in float32 or wider.

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
    >>> jaxnll.cross_entropy(h @ W.T, y)
    Array(1.1818175, dtype=float32)
  """
  red = v.check_reduction(reduction)
  terms = linear_cross_entropy_terms(
      embeddings, classifier, targets, bias=bias, weight=weight, ignore_index=ignore_index,
      label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap, where=where,
      block_size=block_size, vocab_axis=vocab_axis,
  )
  return _reduction.reduce(terms.per_element, terms.normalizer, red, summed_over=_check_batch_axis(batch_axis))
