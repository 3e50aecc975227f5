"""Argument handling shared by the elementwise losses (binary, divergence, regression).

Each of them takes an input, targets of the input's shape, an optional
``where`` mask over the per-element loss and optional weights that broadcast
to the input. :func:`elements` checks them once and brings them into one
compute dtype; :meth:`Elements.safe` keeps masked elements out of the
arithmetic, so a NaN or an infinity there reaches neither the loss nor any
gradient; :meth:`Elements.terms` builds the :class:`LossTerms` that
``_reduction`` reduces.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._loss_base import LossTerms


def known(*values: object) -> bool:
  """Whether every value is known at trace time (arrays closed over by a jitted function included)."""
  return not any(isinstance(x, jax.core.Tracer) for x in values)


def times_zero_safe(coefficient: jax.Array, value: jax.Array) -> jax.Array:
  """``coefficient * value`` with ``0 · ±inf = 0``.

  A term whose coefficient (a target probability, ``1 - t``, ``pos_weight``)
  is exactly 0 contributes 0 even where its log-probability is infinite, as
  in jaxnll's cross-entropy; a NaN value still gives NaN. Where the value is
  finite, both partial derivatives are the plain product's.
  """
  drop = (coefficient == 0) & jnp.isinf(value)
  return coefficient * jnp.where(drop, jnp.zeros((), value.dtype), value)


@dataclasses.dataclass(frozen=True)
class Elements:
  """Validated arguments of an elementwise loss, in its compute dtype."""

  input: jax.Array
  targets: jax.Array
  counted: jax.Array | None  # None: every element counts
  shape: tuple[int, ...]  # the per-element loss's shape
  dtype: np.dtype

  def safe(self, a: jax.Array, fill: float) -> jax.Array:
    """``a`` with masked elements replaced by ``fill``: their loss and gradient come out exactly 0."""
    if self.counted is None:
      return a
    mask = self.counted.reshape(self.counted.shape + (1,) * (a.ndim - self.counted.ndim))
    return jnp.where(jnp.broadcast_to(mask, a.shape), a, jnp.asarray(fill, a.dtype))

  def weight(self, name: str, weight: object, expected: str = "") -> jax.Array | None:
    """Optional weights broadcast to the input's shape, in the compute dtype, 1 where masked."""
    w = v.check_broadcast_weight(name, weight, self.input.shape, expected)
    return None if w is None else self.safe(w.astype(self.dtype), 1.0)

  def terms(self, per_element: jax.Array, normalizer_weight: jax.Array | None = None) -> LossTerms:
    """Masked per-element losses; each counted element adds ``normalizer_weight`` (else 1) to the mean's denominator."""
    counted = jnp.ones(self.shape, bool) if self.counted is None else self.counted
    if self.counted is not None:
      per_element = jnp.where(counted, per_element, jnp.zeros((), per_element.dtype))
    return LossTerms(per_element, _reduction.class_index_normalizer(counted, normalizer_weight, self.dtype), counted)


def floating_input(name: str, value: object) -> jax.Array:
  x = v.as_array(name, value)  # type: ignore[arg-type]
  v.check_floating(name, x)
  return x


def elements(
    input: object,
    targets: object,
    where: object,
    *,
    input_name: str,
    targets_name: str = "targets",
    loss_shape: tuple[int, ...] | None = None,
    loss_shape_text: str = "the input's shape",
    broadcast_targets: bool = False,
) -> Elements:
  """Checks an elementwise loss's arguments and casts them to its compute dtype.

  The input must be floating; the targets (floating, integer or bool) must
  have exactly the input's shape (torch refuses to broadcast them for the
  binary losses, and warns for the others), unless ``broadcast_targets``
  (the Gaussian NLL, where torch documents broadcasting): then both are
  broadcast together, and the gradients sum back to each one's shape. Host
  targets are converted to the compute dtype on the host. Values known at
  trace time stay known, so callers can still check them.
  """
  x = floating_input(input_name, input)
  dtype = v.compute_dtype(x.dtype)
  t = v.as_value_array(targets_name, targets, dtype)
  if broadcast_targets and t.shape != x.shape:
    try:
      both = v.broadcast_shapes(x.shape, t.shape)
    except ValueError:
      raise ValueError(
          f"`{targets_name}` of shape {t.shape} does not broadcast with `{input_name}` of shape {x.shape}."
      ) from None
    with jax.ensure_compile_time_eval():
      x, t = jnp.broadcast_to(x, both), jnp.broadcast_to(t, both)
  if t.shape != x.shape:
    raise ValueError(
        f"`{targets_name}` of shape {t.shape} must have the shape of `{input_name}`, {x.shape}; "
        f"they are not broadcast."
    )
  shape = x.shape if loss_shape is None else loss_shape
  counted = v.check_where(where, shape, loss_shape_text)
  with jax.ensure_compile_time_eval():
    return Elements(x.astype(dtype), t, counted, shape, dtype)
