"""The one weighted reduction every loss goes through.

A loss is described by two arrays of the targets' shape: ``per_element``
(already zero where an element is ignored or masked) and ``normalizer``, each
element's share of the mean's denominator (``weight[target]`` for class
indices, 1 for probability targets, 0 when ignored). Every reduction, and the
``(loss_sum, normalizer)`` pair used for gradient accumulation, derives from
those two sums, so a weighted mean is computed in exactly one way.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp

Reduction = Literal["none", "mean", "sum", "safe_mean"]
# kl_div also takes torch's 'batchmean': its normalizer counts rows, so it divides like 'mean'.
KLDivReduction = Literal["none", "mean", "sum", "safe_mean", "batchmean"]


def sum_and_normalizer(
    per_element: jax.Array, normalizer: jax.Array, reduction: str
) -> tuple[jax.Array, jax.Array]:
  """``(loss_sum, normalizer_sum)`` with ``reduce(...) == loss_sum / normalizer_sum``.

  For ``'sum'`` the normalizer is 1. Summing both parts over micro-batches
  (or devices) and dividing once gives exactly the full-batch loss.
  """
  total = jnp.sum(per_element)
  if reduction == "sum":
    return total, jnp.ones_like(total)
  if reduction in ("mean", "safe_mean", "batchmean"):
    return total, jnp.sum(normalizer).astype(total.dtype)
  raise ValueError(
      f"`reduction` must be 'mean', 'safe_mean', 'batchmean' or 'sum' to split a loss into "
      f"(loss_sum, normalizer), got {reduction!r}."
  )


def class_index_normalizer(counted: jax.Array, target_weight: jax.Array | None, dtype) -> jax.Array:
  """Each class-index element's share of the mean's denominator: ``weight[target]``
  (1 without weights) where counted, else 0."""
  if target_weight is None:
    return counted.astype(dtype)
  return jnp.where(counted, target_weight.astype(dtype), jnp.zeros((), dtype))


def divide(loss_sum: jax.Array, normalizer: jax.Array, safe: bool, nan_on_zero: bool = False) -> jax.Array:
  """``loss_sum / normalizer``, IEEE division as torch's: over a zero
  normalizer ``0 / 0`` is NaN and a nonzero sum gives ``±inf`` (weights that
  sum to 0); NaN whatever the sum with ``nan_on_zero``. With ``safe``, 0 and
  a zero gradient instead."""
  nonzero = normalizer != 0
  if not safe:
    # Over 0 the sum's cotangent is ±inf (NaN with nan_on_zero): a counted element
    # whose weight is 0 gets torch's NaN gradient (0 · inf), while elements that
    # are not counted keep their exact 0 (the kernels mask their gradients).
    scale = jnp.where(nonzero, jnp.ones_like(loss_sum), jnp.full_like(loss_sum, jnp.nan)) if nan_on_zero else 1.0
    over_zero = loss_sum * scale / normalizer
    return jnp.where(nonzero, loss_sum / jnp.where(nonzero, normalizer, jnp.ones_like(normalizer)), over_zero)
  return jnp.where(
      nonzero,
      loss_sum / jnp.where(nonzero, normalizer, jnp.ones_like(normalizer)),
      jnp.zeros_like(loss_sum),
  )


def reduce(
    per_element: jax.Array, normalizer: jax.Array, reduction: str, summed_over: tuple[str, ...] = (),
    nan_on_zero: bool = False,
) -> jax.Array:
  """Applies ``reduction`` ('none' | 'mean' | 'sum' | 'safe_mean').

  Inside ``shard_map``, ``summed_over`` names the mesh axes the elements are
  split over: both sums are ``psum``-ed over them before dividing, which gives
  exactly the reduction of the whole, unsplit array.
  """
  if reduction == "none":
    return per_element
  if not summed_over:
    return _reduced(per_element, normalizer, reduction, nan_on_zero)
  total, denom = jax.lax.psum(sum_and_normalizer(per_element, normalizer, reduction), summed_over)
  return _divided(total, denom, reduction, nan_on_zero)


def _divided(total: jax.Array, denom: jax.Array, reduction: str, nan_on_zero: bool) -> jax.Array:
  if reduction == "sum":
    return total
  return divide(total, denom, safe=reduction == "safe_mean", nan_on_zero=nan_on_zero)


# One compiled program, as the kernels are: an eager call dispatches once, not once per operation (each eager
# operation compiles on its own for every new shape); under the caller's jit it is inlined.
@functools.partial(jax.jit, static_argnums=(2, 3))
def _reduced(per_element: jax.Array, normalizer: jax.Array, reduction: str, nan_on_zero: bool) -> jax.Array:
  return _divided(*sum_and_normalizer(per_element, normalizer, reduction), reduction, nan_on_zero)
