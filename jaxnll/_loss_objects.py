"""torch's ``nn`` losses as validated, immutable, pytree loss objects.

Array options (``weight``, ``pos_weight``) are pytree leaves and everything
else is static metadata, so a loss object can be passed straight into a
jitted function: a new object with the same static options does not retrace.
Each object's ``terms`` gives the per-element losses and their normalizer
shares; ``__call__`` and ``sum_and_normalizer`` reduce them in the one shared
way (``_reduction``).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from typing import Any, TypeVar

import jax

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._binary import (
    binary_cross_entropy_terms,
    binary_cross_entropy_with_logits_terms,
    multilabel_soft_margin_loss_terms,
)
from jaxnll._cross_entropy import LossTerms, cross_entropy_terms, nll_loss_terms
from jaxnll._divergence import kl_div_terms
from jaxnll._reduction import KLDivReduction, Reduction
from jaxnll._regression import (
    gaussian_nll_loss_terms,
    huber_loss_terms,
    l1_loss_terms,
    mse_loss_terms,
    poisson_nll_loss_terms,
    smooth_l1_loss_terms,
)

T = TypeVar("T")


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


def _register(*leaves: str) -> Callable[[type[T]], type[T]]:
  """Registers a frozen dataclass as a pytree whose ``leaves`` fields are children, the rest static."""

  def register(cls: type[T]) -> type[T]:
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
    return cls

  return register


class _Reduced:
  """Reduction of :meth:`terms` for losses called as ``(input, targets)``."""

  reduction: str

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


class _Loss(_Reduced):
  """The class-index losses' shared options."""

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


@_register("weight")
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


@_register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class CrossEntropyLoss(_Loss):
  """``torch.nn.CrossEntropyLoss``: :func:`jaxnll.cross_entropy` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.CrossEntropyLoss(label_smoothing=0.1)
    >>> loss(jnp.array([[2.0, 0.0, 0.0]]), jnp.array([0]))
    Array(0.37287816, dtype=float32)
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


# --------------------------------------------------------------------------
# Elementwise losses. ``weight`` may be passed positionally, as in torch;
# every other option is keyword-only.


def _set(obj: object, name: str, value: object) -> None:
  object.__setattr__(obj, name, value)


@_register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class BCELoss(_Reduced):
  """``torch.nn.BCELoss``: :func:`jaxnll.binary_cross_entropy` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.BCELoss(jnp.array([1.0, 2.0]))
    >>> loss(jnp.array([[0.9, 0.2]]), jnp.array([[1.0, 0.0]]))
    Array(0.27582383, dtype=float32)
  """

  weight: jax.Array | None = None
  _: dataclasses.KW_ONLY
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return binary_cross_entropy_terms(input, targets, weight=self.weight, where=where)


@_register("weight", "pos_weight")
@dataclasses.dataclass(frozen=True, eq=False)
class BCEWithLogitsLoss(_Reduced):
  """``torch.nn.BCEWithLogitsLoss``: :func:`jaxnll.binary_cross_entropy_with_logits` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.BCEWithLogitsLoss(pos_weight=jnp.array([1.0, 3.0]))
    >>> loss(jnp.array([[2.0, -1.0], [0.5, 3.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]]))
    Array(0.3900072, dtype=float32)
  """

  weight: jax.Array | None = None
  _: dataclasses.KW_ONLY
  reduction: Reduction = "mean"
  pos_weight: jax.Array | None = None

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "pos_weight", v.check_weight_array("pos_weight", self.pos_weight))
    _set(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return binary_cross_entropy_with_logits_terms(
        input, targets, weight=self.weight, pos_weight=self.pos_weight, where=where
    )


@_register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class MultiLabelSoftMarginLoss(_Reduced):
  """``torch.nn.MultiLabelSoftMarginLoss``: :func:`jaxnll.multilabel_soft_margin_loss` with its options bound.

  Its per-element loss is per sample: ``where`` masks samples.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.MultiLabelSoftMarginLoss()
    >>> loss(jnp.array([[2.0, -1.0, 0.5]]), jnp.array([[1.0, 0.0, 1.0]]))
    Array(0.30475557, dtype=float32)
  """

  weight: jax.Array | None = None
  _: dataclasses.KW_ONLY
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-sample losses and normalizer shares, before reduction."""
    return multilabel_soft_margin_loss_terms(input, targets, weight=self.weight, where=where)


@_register()
@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class KLDivLoss(_Reduced):
  """``torch.nn.KLDivLoss``: :func:`jaxnll.kl_div` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.KLDivLoss(reduction="batchmean")
    >>> loss(jnp.log(jnp.array([[0.5, 0.5]])), jnp.array([[0.9, 0.1]]))
    Array(0.36806417, dtype=float32)
  """

  reduction: KLDivReduction = "mean"
  log_target: bool = False

  def __post_init__(self) -> None:
    _set(self, "reduction", v.check_kl_reduction(self.reduction))
    _set(self, "log_target", v.check_flag("log_target", self.log_target))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares (for ``'batchmean'``: rows), before reduction."""
    return kl_div_terms(input, targets, reduction=self.reduction, log_target=self.log_target, where=where)


@_register()
@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class PoissonNLLLoss(_Reduced):
  """``torch.nn.PoissonNLLLoss``: :func:`jaxnll.poisson_nll_loss` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.PoissonNLLLoss(full=True)
    >>> loss(jnp.array([0.0, 1.0, 2.0]), jnp.array([1.0, 3.0, 5.0]))
    Array(1.5474223, dtype=float32)
  """

  log_input: bool = True
  full: bool = False
  eps: float = 1e-8
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    _set(self, "log_input", v.check_flag("log_input", self.log_input))
    _set(self, "full", v.check_flag("full", self.full))
    _set(self, "eps", v.check_positive("eps", self.eps))
    _set(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return poisson_nll_loss_terms(
        input, targets, log_input=self.log_input, full=self.full, eps=self.eps, where=where
    )


@_register()
@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class GaussianNLLLoss:
  """``torch.nn.GaussianNLLLoss``: :func:`jaxnll.gaussian_nll_loss` with its options bound.

  Called as ``loss(input, targets, var)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.GaussianNLLLoss()
    >>> loss(jnp.array([1.0, 2.0]), jnp.array([1.5, 1.0]), jnp.array([0.5, 2.0]))
    Array(0.25, dtype=float32)
  """

  full: bool = False
  eps: float = 1e-6
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    _set(self, "full", v.check_flag("full", self.full))
    _set(self, "eps", v.check_positive("eps", self.eps))
    _set(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input: jax.typing.ArrayLike, targets: jax.typing.ArrayLike, var: jax.typing.ArrayLike,
            *, where: jax.typing.ArrayLike | None = None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return gaussian_nll_loss_terms(input, targets, var, full=self.full, eps=self.eps, where=where)

  def __call__(self, input: jax.typing.ArrayLike, targets: jax.typing.ArrayLike, var: jax.typing.ArrayLike,
               *, where: jax.typing.ArrayLike | None = None) -> jax.Array:
    """The loss, reduced by ``self.reduction``."""
    terms = self.terms(input, targets, var, where=where)
    return _reduction.reduce(terms.per_element, terms.normalizer, self.reduction)

  def sum_and_normalizer(
      self, input: jax.typing.ArrayLike, targets: jax.typing.ArrayLike, var: jax.typing.ArrayLike,
      *, where: jax.typing.ArrayLike | None = None,
  ) -> tuple[jax.Array, jax.Array]:
    """``(loss_sum, normalizer)`` such that the loss is ``loss_sum / normalizer``."""
    terms = self.terms(input, targets, var, where=where)
    return _reduction.sum_and_normalizer(terms.per_element, terms.normalizer, self.reduction)


@_register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class L1Loss(_Reduced):
  """``torch.nn.L1Loss``: :func:`jaxnll.l1_loss` with its options bound (``weight`` included).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.L1Loss()(jnp.array([1.0, 2.0, 4.0]), jnp.array([1.5, 2.0, 1.0]))
    Array(1.1666666, dtype=float32)
  """

  weight: jax.Array | None = None
  _: dataclasses.KW_ONLY
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares (the weights), before reduction."""
    return l1_loss_terms(input, targets, weight=self.weight, where=where)


@_register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class MSELoss(_Reduced):
  """``torch.nn.MSELoss``: :func:`jaxnll.mse_loss` with its options bound (``weight`` included).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.MSELoss(reduction="sum")(jnp.array([1.0, 2.0, 4.0]), jnp.array([1.5, 2.0, 1.0]))
    Array(9.25, dtype=float32)
  """

  weight: jax.Array | None = None
  _: dataclasses.KW_ONLY
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares (the weights), before reduction."""
    return mse_loss_terms(input, targets, weight=self.weight, where=where)


@_register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class HuberLoss(_Reduced):
  """``torch.nn.HuberLoss``: :func:`jaxnll.huber_loss` with its options bound (``weight`` included).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.HuberLoss(delta=2.0)(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]))
    Array(2.0625, dtype=float32)
  """

  weight: jax.Array | None = None
  _: dataclasses.KW_ONLY
  delta: float = 1.0
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "delta", v.check_positive("delta", self.delta))
    _set(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return huber_loss_terms(input, targets, delta=self.delta, weight=self.weight, where=where)


@_register()
@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class SmoothL1Loss(_Reduced):
  """``torch.nn.SmoothL1Loss``: :func:`jaxnll.smooth_l1_loss` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.SmoothL1Loss(beta=2.0)(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]))
    Array(1.03125, dtype=float32)
  """

  beta: float = 1.0
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    _set(self, "beta", v.check_nonnegative("beta", self.beta))
    _set(self, "reduction", v.check_reduction(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return smooth_l1_loss_terms(input, targets, beta=self.beta, where=where)
