"""What every loss object shares: pytree registration, reduction, and the training protocol.

A loss object is a frozen dataclass registered as a pytree (array options
such as ``weight`` are leaves, everything else static metadata), so it can be
passed into a jitted function and a new object with the same static options
does not retrace. Its ``terms`` gives the per-element losses and their
normalizer shares (:class:`LossTerms`); ``__call__`` and
``sum_and_normalizer`` reduce them in the one shared way (``_reduction``).

``jaxnll.training`` talks to an object through two methods only:
``batch_terms(outputs, batch)`` (the terms of a model's outputs against a
batch, which holds the targets and whatever else the loss reads, such as
CTC's lengths) and ``batch_hits(outputs, batch, counted)`` (``(correct,
count)`` for the accuracy metric, or ``None`` where a prediction means
nothing). Each loss family defines its objects beside its functions.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp

from jaxnll import _reduction
from jaxnll._validation import dim_message

T = TypeVar("T")


class LossTerms(NamedTuple):
  """A loss before reduction: each element's loss, its share of the mean's
  denominator, and whether it is counted (not ignored or masked).

  ``nan_on_zero`` (static): a mean over a zero normalizer is NaN whatever the
  sum, not IEEE's ``±inf``: torch divides label smoothing's two terms
  separately, so its target term's ``0 / 0`` makes the whole mean NaN.
  """

  per_element: jax.Array
  normalizer: jax.Array
  counted: jax.Array
  nan_on_zero: bool = False


def register(*leaves: str) -> Callable[[type[T]], type[T]]:
  """Registers a frozen dataclass as a pytree whose ``leaves`` fields are children, the rest static."""

  def register_class(cls: type[T]) -> type[T]:
    static = tuple(f.name for f in dataclasses.fields(cls) if f.name not in leaves)  # type: ignore[arg-type]

    def flatten_with_keys(obj):
      return [(jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in leaves], tuple(
          getattr(obj, n) for n in static
      )

    def unflatten(aux, children):
      obj: Any = object.__new__(cls)
      for name, value in zip(leaves, children, strict=True):
        object.__setattr__(obj, name, value)
      for name, value in zip(static, aux, strict=True):
        object.__setattr__(obj, name, value)
      return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten)
    if "axis" in {f.name for f in dataclasses.fields(cls)}:  # type: ignore[arg-type]
      _refuse_dim_in_init(cls)
    return cls

  return register_class


def _refuse_dim_in_init(cls: type) -> None:
  init = cls.__init__  # type: ignore[misc]

  @functools.wraps(init)
  def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
    if "dim" in kwargs:
      raise TypeError(dim_message(cls.__name__, kwargs["dim"]))
    init(self, *args, **kwargs)

  cls.__init__ = __init__  # type: ignore[misc]


def set_field(obj: object, name: str, value: object) -> None:
  """Sets a (validated) field of a frozen dataclass, in ``__post_init__``."""
  object.__setattr__(obj, name, value)


def count_hits(hit: jax.Array, counted: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(correct, count)`` over the counted elements, as float32 sums (for ``batch_hits``)."""
  return jnp.sum(counted & hit).astype(jnp.float32), jnp.sum(counted).astype(jnp.float32)


class LossObject:
  """The base of every loss object: reduction and the training protocol.

  Subclasses define ``reduction`` and ``terms(*arrays, where=None)``; the
  arrays are whatever the loss takes (``(input, targets)`` for most).
  """

  reduction: str
  # Whether a mean over a zero normalizer is NaN whatever the sum (see LossTerms.nan_on_zero).
  nan_on_zero = False

  # Each loss defines ``terms(<its arrays>, *, where=None) -> LossTerms``.
  terms: Callable[..., LossTerms]

  def __call__(self, *arrays: Any, where: jax.typing.ArrayLike | None = None) -> jax.Array:
    """The loss, reduced by ``self.reduction``."""
    terms = self.terms(*arrays, where=where)
    return _reduction.reduce(terms.per_element, terms.normalizer, self.reduction, nan_on_zero=terms.nan_on_zero)

  def sum_and_normalizer(self, *arrays: Any, where: jax.typing.ArrayLike | None = None) -> tuple[jax.Array, jax.Array]:
    """``(loss_sum, normalizer)`` such that the loss is ``loss_sum / normalizer``.

    Add both over micro-batches or devices and divide once to get exactly
    the full-batch loss, weights and ignored targets included.
    """
    terms = self.terms(*arrays, where=where)
    return _reduction.sum_and_normalizer(terms.per_element, terms.normalizer, self.reduction)

  def batch_terms(self, outputs: Any, batch: Mapping[str, Any]) -> LossTerms:
    """The terms of a model's ``outputs`` against ``batch`` (``"targets"``, optional ``"where"``)."""
    return self.terms(outputs, batch["targets"], where=batch.get("where"))

  def batch_hits(
      self, outputs: Any, batch: Mapping[str, Any], counted: jax.Array
  ) -> tuple[jax.Array, jax.Array] | None:
    """``(correct, count)`` of the predictions read off ``outputs``, or ``None`` where accuracy means nothing."""
    del outputs, batch, counted
    return None
