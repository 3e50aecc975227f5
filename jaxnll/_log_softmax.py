"""The one numerically careful logsumexp, and log_softmax built on it."""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp
from jax import lax

from jaxnll import _validation as v
from jaxnll._loss_base import register


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


@v.refuse_dim
def log_softmax(
    x: jax.typing.ArrayLike,
    axis: int = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Log-softmax over ``axis``, computed in float32 or wider.

  .. math::
    \mathrm{log\_softmax}(x)_i = x_i - \log \sum_j \exp(x_j)

  Args:
    x: floating logits of any shape. A 0-d ``x`` is one class, as in torch
      (``axis`` 0 or -1): its log-softmax is 0. An empty class axis gives an
      empty result.
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
  if arr.ndim == 0:  # torch: one class, so 0 (NaN for a NaN or infinite x)
    v.canonical_axis(axis, 1)
    return log_softmax(arr[None], 0, None if where is None else v.as_array("where", where).reshape(1))[0]
  ax = v.canonical_axis(axis, arr.ndim)
  mask = None
  if where is not None:
    mask = v.check_where(where, arr.shape)
  if arr.shape[ax] == 0:  # no classes: an empty result (and an empty gradient), as torch and jax.nn
    return arr
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


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class LogSoftmax:
  """``torch.nn.LogSoftmax(dim)``: :func:`jaxnll.log_softmax` over ``axis`` as an object.

  The first half of torch's ``nn.LogSoftmax(dim=1)`` + ``nn.NLLLoss()``
  pipeline; ``axis`` defaults to the last axis, JAX's class axis (torch's
  ``dim=None`` picks an axis from the input's rank, a deprecated rule).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.LogSoftmax(axis=1)(jnp.zeros((1, 2)))
    Array([[-0.6931472, -0.6931472]], dtype=float32)
  """

  axis: int = -1

  def __post_init__(self) -> None:
    if isinstance(self.axis, bool) or not isinstance(self.axis, numbers.Integral):
      raise TypeError(f"`axis` must be an int, got {self.axis!r}.")
    object.__setattr__(self, "axis", int(self.axis))

  def __call__(self, x: jax.typing.ArrayLike, where: jax.typing.ArrayLike | None = None) -> jax.Array:
    """:func:`jaxnll.log_softmax` of ``x`` over ``self.axis``."""
    return log_softmax(x, self.axis, where)


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class Softmax(LogSoftmax):
  """``torch.nn.Softmax(dim)``: ``exp(log_softmax(x, axis))``, from the same careful normalizer.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.Softmax()(jnp.array([0.0, 0.0]))
    Array([0.5, 0.5], dtype=float32)
  """

  def __call__(self, x: jax.typing.ArrayLike, where: jax.typing.ArrayLike | None = None) -> jax.Array:
    """The softmax of ``x`` over ``self.axis`` (masked entries 0)."""
    return softmax(x, self.axis, where)


def softmax(x: jax.typing.ArrayLike, axis: int = -1, where: jax.typing.ArrayLike | None = None) -> jax.Array:
  """``exp(x - m) / Σ exp(x - m)`` over ``axis``, as torch computes it, in float32 or wider.

  Masked entries are 0; a fully masked or all ``-inf`` row is all 0 (never
  NaN), and a NaN or ``+inf`` in an unmasked row makes the row NaN.
  """
  arr = v.as_array("x", x)
  v.check_floating("x", arr)
  if arr.ndim == 0:
    v.canonical_axis(axis, 1)
    return softmax(arr[None], 0, None if where is None else v.as_array("where", where).reshape(1))[0]
  ax = v.canonical_axis(axis, arr.ndim)
  mask = None if where is None else v.check_where(where, arr.shape)
  if arr.shape[ax] == 0:
    return arr
  xf = arr.astype(v.compute_dtype(arr.dtype))
  if mask is not None:
    xf = jnp.where(mask, xf, -jnp.inf)
  m = finite_shift(lax.stop_gradient(jnp.max(xf, axis=ax, keepdims=True)))
  e = jnp.exp(xf - m)
  total = jnp.sum(e, axis=ax, keepdims=True)
  empty = total == 0
  out = jnp.where(empty, jnp.zeros_like(e), e / jnp.where(empty, jnp.ones_like(total), total))
  return out.astype(arr.dtype)
