"""``NLLLoss`` and ``CrossEntropyLoss``: validated, immutable, pytree loss objects.

Array options (``weight``) are pytree leaves and everything else is static
metadata, so a loss object can be passed straight into a jitted function:
a new object with the same static options does not retrace.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import jax

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._cross_entropy import LossTerms, cross_entropy_terms, nll_loss_terms
from jaxnll._reduction import Reduction


def _check_weight_vector(weight: Any) -> Any:
  if weight is None:
    return None
  w = v.as_array("weight", weight)
  if w.ndim != 1:
    raise ValueError(f"`weight` must be a 1-D array of class weights, got shape {w.shape}.")
  return v.check_weight(w, w.shape[0])


def _check_axis_type(axis: object) -> int:
  if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
    raise TypeError(f"`axis` must be an int, got {axis!r}.")
  return int(axis)


def _register(cls: type) -> type:
  static = tuple(f.name for f in dataclasses.fields(cls) if f.name != "weight")

  def flatten_with_keys(obj):
    return [(jax.tree_util.GetAttrKey("weight"), obj.weight)], tuple(
        getattr(obj, n) for n in static
    )

  def unflatten(aux, children):
    obj: Any = object.__new__(cls)
    object.__setattr__(obj, "weight", children[0])
    for name, value in zip(static, aux, strict=True):
      object.__setattr__(obj, name, value)
    return obj

  jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten)
  return cls


class _Loss:
  """Shared front of the loss objects: reduction of :meth:`terms`."""

  weight: jax.Array | None
  ignore_index: int
  reduction: Reduction
  axis: int

  def _check_shared_options(self) -> None:
    """Validates (and normalizes) the options both losses take."""
    object.__setattr__(self, "weight", _check_weight_vector(self.weight))
    object.__setattr__(self, "ignore_index", v.check_ignore_index(self.ignore_index))
    object.__setattr__(self, "reduction", v.check_reduction(self.reduction))
    object.__setattr__(self, "axis", _check_axis_type(self.axis))

  def terms(self, input: jax.typing.ArrayLike, targets: jax.typing.ArrayLike,
            *, where: jax.typing.ArrayLike | None = None) -> LossTerms:
    raise NotImplementedError

  def __call__(self, input: jax.typing.ArrayLike, targets: jax.typing.ArrayLike,
               *, where: jax.typing.ArrayLike | None = None) -> jax.Array:
    """The loss, reduced by ``self.reduction``."""
    terms = self.terms(input, targets, where=where)
    return _reduction.reduce(terms.per_element, terms.normalizer, self.reduction)

  def sum_and_normalizer(
      self, input: jax.typing.ArrayLike, targets: jax.typing.ArrayLike,
      *, where: jax.typing.ArrayLike | None = None,
  ) -> tuple[jax.Array, jax.Array]:
    """``(loss_sum, normalizer)`` such that the loss is ``loss_sum / normalizer``.

    Add both over micro-batches or devices and divide once to get exactly
    the full-batch loss, weights and ignored targets included.
    """
    terms = self.terms(input, targets, where=where)
    return _reduction.sum_and_normalizer(terms.per_element, terms.normalizer, self.reduction)


@_register
@dataclasses.dataclass(frozen=True, eq=False)
class NLLLoss(_Loss):
  """``torch.nn.NLLLoss``: :func:`jaxnll.nll_loss` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.NLLLoss(ignore_index=0)
    >>> loss(jnp.log(jnp.array([[0.5, 0.5], [0.2, 0.8]])), jnp.array([0, 1]))
    Array(0.22314353, dtype=float32)
  """

  weight: jax.Array | None = None
  ignore_index: int = -100
  reduction: Reduction = "mean"
  axis: int = -1

  def __post_init__(self) -> None:
    self._check_shared_options()

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return nll_loss_terms(
        input, targets, weight=self.weight, ignore_index=self.ignore_index,
        axis=self.axis, where=where,
    )


@_register
@dataclasses.dataclass(frozen=True, eq=False)
class CrossEntropyLoss(_Loss):
  """``torch.nn.CrossEntropyLoss``: :func:`jaxnll.cross_entropy` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.CrossEntropyLoss(label_smoothing=0.1)
    >>> loss(jnp.array([[2.0, 0.0, 0.0]]), jnp.array([0]))
    Array(0.3728782, dtype=float32)
  """

  weight: jax.Array | None = None
  ignore_index: int = -100
  reduction: Reduction = "mean"
  label_smoothing: float = 0.0
  axis: int = -1
  z_loss: float = 0.0
  softcap: float | None = None

  def __post_init__(self) -> None:
    self._check_shared_options()
    object.__setattr__(self, "label_smoothing", v.check_label_smoothing(self.label_smoothing))
    object.__setattr__(self, "z_loss", v.check_z_loss(self.z_loss))
    object.__setattr__(self, "softcap", v.check_softcap(self.softcap))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return cross_entropy_terms(
        input, targets, weight=self.weight, ignore_index=self.ignore_index,
        label_smoothing=self.label_smoothing, axis=self.axis, where=where,
        z_loss=self.z_loss, softcap=self.softcap,
    )
