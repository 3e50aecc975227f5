"""The one numerically careful logsumexp, and log_softmax built on it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxnll import _validation as v


def finite_shift(m: jax.Array) -> jax.Array:
  """A row max made safe to subtract: 0 for an all ``-inf`` (or empty) row, so
  no ``inf - inf``; NaN for a row holding ``+inf`` or NaN, whose softmax is
  undefined (torch and optax give NaN there too)."""
  return jnp.where(jnp.isneginf(m), jnp.zeros_like(m), jnp.where(jnp.isposinf(m), jnp.full_like(m, jnp.nan), m))


def log_of_shifted_sum(s: jax.Array, shift: jax.Array) -> jax.Array:
  """``log(s) + shift`` for ``s = Σ exp(x - shift)``: ``-inf`` for an empty sum,
  whose log is never evaluated (so never differentiated), and NaN when the
  row held a NaN (``s`` is NaN), so a NaN logit can never hide as ``-inf``."""
  empty = s == 0
  safe_log = jnp.log(jnp.where(empty, jnp.ones_like(s), s))
  return jnp.where(empty, jnp.full_like(s, -jnp.inf), safe_log + shift)


def logsumexp(x: jax.Array, axis: int, where: jax.Array | None = None) -> jax.Array:
  """``log(sum(exp(x), axis, keepdims=True))``, stable and NaN-free for -inf.

  The max is shifted out under ``stop_gradient`` (it cancels exactly), an
  all ``-inf`` or fully masked row gives ``-inf`` rather than ``inf - inf``,
  and the log of an empty sum is never differentiated, so such rows get zero
  gradients instead of NaN. A NaN anywhere in a row gives NaN.
  """
  m, rel = _shift_and_rel(x, axis, where)
  return rel + m


def _shift_and_rel(x, axis, where):
  """A row's shift ``m`` (its max, made safe) and ``log Σ exp(x - m)``."""
  if where is not None:
    x = jnp.where(where, x, -jnp.inf)
  m = finite_shift(lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True)))
  return m, log_of_shifted_sum(jnp.sum(jnp.exp(x - m), axis=axis, keepdims=True), jnp.zeros_like(m))


def log_softmax(
    x: jax.typing.ArrayLike,
    axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Log-softmax over ``axis``, computed in float32 or wider.

  .. math::
    \mathrm{log\_softmax}(x)_i = x_i - \log \sum_j \exp(x_j)

  Args:
    x: floating logits of any shape.
    axis: the class axis.
    where: optional boolean mask broadcastable to ``x``; masked entries are
      left out of the normalizer and come out as ``-inf`` with zero
      gradients. A fully masked or all ``-inf`` row gives ``-inf``
      everywhere, never NaN, and finite gradients. A NaN or ``+inf`` anywhere
      in an unmasked row makes the whole row NaN, as in torch.

  Returns:
    An array of ``x``'s shape and dtype (the arithmetic runs in
    ``promote_types(x.dtype, float32)`` and is rounded back once).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.log_softmax(jnp.array([-jnp.inf, 0.0, 0.0]))
    Array([      -inf, -0.6931472, -0.6931472], dtype=float32)
  """
  arr = v.as_array("x", x)
  v.check_floating("x", arr)
  if arr.ndim == 0:
    raise ValueError("`x` must have at least one dimension, got a scalar.")
  ax = v.canonical_axis(axis, arr.ndim)
  mask = None
  if where is not None:
    mask = v.check_where(where, arr.shape)
  xf = arr.astype(v.compute_dtype(arr.dtype))
  m, rel = _shift_and_rel(xf, ax, mask)
  # (x - m) - rel, both relative to the row max, so the error does not grow
  # with the logits' offset. A fully masked or all -inf row has rel = -inf:
  # it subtracts 0 instead (a per-row choice, so the [..., C] pass stays
  # subtractions), leaving -inf logits -inf and masked entries to the mask.
  out = (xf - m) - jnp.where(jnp.isneginf(rel), jnp.zeros_like(rel), rel)
  if mask is not None:
    out = jnp.where(mask, out, jnp.full_like(out, -jnp.inf))
  return out.astype(arr.dtype)
