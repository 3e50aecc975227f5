"""torch's ``nn`` losses of the cross-entropy, binary, divergence and regression families as loss objects.

Each object is a validated, immutable pytree (:mod:`jaxnll._loss_base`) that
binds a loss function's options. Constructors take torch's arguments in
torch's positional order (its legacy ``size_average`` and ``reduce``
excluded), so ``HuberLoss("sum", 0.5)`` reads as in torch; jaxnll's own
options (``axis``, ``z_loss``, ``softcap``, the regression ``weight``) are
keyword-only.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import jax
import jax.numpy as jnp

from jaxnll import _validation as v
from jaxnll._binary import (
    binary_cross_entropy_terms,
    binary_cross_entropy_with_logits_terms,
    multilabel_soft_margin_loss_terms,
)
from jaxnll._cross_entropy import cross_entropy_terms, nll_loss_terms
from jaxnll._divergence import kl_div_terms
from jaxnll._loss_base import LossObject, LossTerms, count_hits, register, set_field
from jaxnll._reduction import KLDivReduction, Reduction
from jaxnll._regression import (
    gaussian_nll_loss_terms,
    huber_loss_terms,
    l1_loss_terms,
    mse_loss_terms,
    poisson_nll_loss_terms,
    smooth_l1_loss_terms,
)


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


def _reduction_option(reduction: object, check=v.check_reduction) -> str:
  """A reduction passed where torch puts it; an array there is a weight passed positionally."""
  if isinstance(reduction, (jax.Array, jax.core.Tracer)) or hasattr(reduction, "__array__"):
    raise TypeError(
        "`reduction` must be a string; got an array: torch's positional order puts `reduction` first here, "
        "pass weights as `weight=`.")
  return check(reduction)


class _Loss(LossObject):
  """The class-index losses' shared options."""

  weight: jax.Array | None
  ignore_index: int
  reduction: Reduction
  axis: int

  def _check_shared_options(self) -> None:
    """Validates (and normalizes) the options both losses take."""
    object.__setattr__(self, "weight", _check_weight_vector(self.weight))
    object.__setattr__(self, "ignore_index", v.check_ignore_index(self.ignore_index))
    object.__setattr__(self, "reduction", _reduction_option(self.reduction))
    object.__setattr__(self, "axis", _check_axis_type(self.axis))

  def batch_hits(self, outputs, batch, counted):
    """Argmax hits against the class indices (against the argmax of probability targets)."""
    axis = self.axis % jnp.ndim(outputs)
    targets = jnp.asarray(batch["targets"])
    labels = targets if jnp.issubdtype(targets.dtype, jnp.integer) else jnp.argmax(targets, axis=axis)
    return count_hits(jnp.argmax(outputs, axis=axis) == labels, counted)


@register("weight")
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
  _: dataclasses.KW_ONLY
  axis: int = -1

  def __post_init__(self) -> None:
    self._check_shared_options()

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return nll_loss_terms(
        input, targets, weight=self.weight, ignore_index=self.ignore_index,
        axis=self.axis, where=where,
    )


@register("weight")
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
  _: dataclasses.KW_ONLY
  axis: int = -1
  z_loss: float = 0.0
  softcap: float | None = None

  @property
  def nan_on_zero(self) -> bool:  # type: ignore[override]
    return self.label_smoothing > 0

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


_set = set_field


class _PerLabel:
  """Accuracy per label for the binary losses: ``output > threshold`` against ``target > 0.5``."""

  threshold = 0.0  # on logits

  def batch_hits(self, outputs, batch, counted):
    hit = (jnp.asarray(outputs) > self.threshold) == (jnp.asarray(batch["targets"]) > 0.5)
    # A per-sample loss (multi-label soft margin) counts each of its labels.
    counted = jnp.broadcast_to(counted.reshape(counted.shape + (1,) * (hit.ndim - counted.ndim)), hit.shape)
    return count_hits(hit, counted)


@register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class BCELoss(_PerLabel, LossObject):
  """``torch.nn.BCELoss(weight, reduction)``: :func:`jaxnll.binary_cross_entropy` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.BCELoss(jnp.array([1.0, 2.0]))
    >>> loss(jnp.array([[0.9, 0.2]]), jnp.array([[1.0, 0.0]]))
    Array(0.27582383, dtype=float32)
  """

  weight: jax.Array | None = None
  reduction: Reduction = "mean"
  threshold = 0.5  # accuracy reads probabilities

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "reduction", _reduction_option(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return binary_cross_entropy_terms(input, targets, weight=self.weight, where=where)


@register("weight", "pos_weight")
@dataclasses.dataclass(frozen=True, eq=False)
class BCEWithLogitsLoss(_PerLabel, LossObject):
  """``torch.nn.BCEWithLogitsLoss(weight, reduction, pos_weight)``: :func:`jaxnll.binary_cross_entropy_with_logits`
  with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.BCEWithLogitsLoss(pos_weight=jnp.array([1.0, 3.0]))
    >>> loss(jnp.array([[2.0, -1.0], [0.5, 3.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]]))
    Array(0.3900072, dtype=float32)
  """

  weight: jax.Array | None = None
  reduction: Reduction = "mean"
  pos_weight: jax.Array | None = None

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "pos_weight", v.check_weight_array("pos_weight", self.pos_weight))
    _set(self, "reduction", _reduction_option(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return binary_cross_entropy_with_logits_terms(
        input, targets, weight=self.weight, pos_weight=self.pos_weight, where=where
    )


@register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class MultiLabelSoftMarginLoss(_PerLabel, LossObject):
  """``torch.nn.MultiLabelSoftMarginLoss(weight, reduction)``: :func:`jaxnll.multilabel_soft_margin_loss` with
  its options bound.

  Its per-element loss is per sample: ``where`` masks samples.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.MultiLabelSoftMarginLoss()
    >>> loss(jnp.array([[2.0, -1.0, 0.5]]), jnp.array([[1.0, 0.0, 1.0]]))
    Array(0.30475557, dtype=float32)
  """

  weight: jax.Array | None = None
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "reduction", _reduction_option(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-sample losses and normalizer shares, before reduction."""
    return multilabel_soft_margin_loss_terms(input, targets, weight=self.weight, where=where)


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class KLDivLoss(LossObject):
  """``torch.nn.KLDivLoss(reduction, log_target)``: :func:`jaxnll.kl_div` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.KLDivLoss("batchmean")
    >>> loss(jnp.log(jnp.array([[0.5, 0.5]])), jnp.array([[0.9, 0.1]]))
    Array(0.36806417, dtype=float32)
  """

  reduction: KLDivReduction = "mean"
  log_target: bool = False

  def __post_init__(self) -> None:
    _set(self, "reduction", _reduction_option(self.reduction, v.check_kl_reduction))
    _set(self, "log_target", v.check_flag("log_target", self.log_target))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares (for ``'batchmean'``: rows), before reduction."""
    return kl_div_terms(input, targets, reduction=self.reduction, log_target=self.log_target, where=where)


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class PoissonNLLLoss(LossObject):
  """``torch.nn.PoissonNLLLoss(log_input, full, eps, reduction)``: :func:`jaxnll.poisson_nll_loss` with its
  options bound.

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
    _set(self, "reduction", _reduction_option(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return poisson_nll_loss_terms(
        input, targets, log_input=self.log_input, full=self.full, eps=self.eps, where=where
    )


@register()
@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class GaussianNLLLoss(LossObject):
  """``torch.nn.GaussianNLLLoss(*, full, eps, reduction)``: :func:`jaxnll.gaussian_nll_loss` with its options
  bound (keyword-only, as in torch).

  Called as ``loss(input, targets, var)``; in :mod:`jaxnll.training` the
  model returns the pair ``(mean, var)``.

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
    _set(self, "reduction", _reduction_option(self.reduction))

  def terms(self, input, targets, var, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return gaussian_nll_loss_terms(input, targets, var, full=self.full, eps=self.eps, where=where)

  def batch_terms(self, outputs, batch) -> LossTerms:
    """``outputs`` is the model's ``(mean, var)`` pair."""
    if not (isinstance(outputs, (tuple, list)) and len(outputs) == 2):
      raise TypeError(
          "with GaussianNLLLoss, `apply_fn` must return a pair (mean, var), got "
          f"{type(outputs).__name__}.")
    return self.terms(outputs[0], batch["targets"], outputs[1], where=batch.get("where"))


@register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class L1Loss(LossObject):
  """``torch.nn.L1Loss(reduction)``: :func:`jaxnll.l1_loss` with its options bound (``weight=`` too).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.L1Loss()(jnp.array([1.0, 2.0, 4.0]), jnp.array([1.5, 2.0, 1.0]))
    Array(1.1666666, dtype=float32)
  """

  reduction: Reduction = "mean"
  _: dataclasses.KW_ONLY
  weight: jax.Array | None = None

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "reduction", _reduction_option(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares (the weights), before reduction."""
    return l1_loss_terms(input, targets, weight=self.weight, where=where)


@register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class MSELoss(LossObject):
  """``torch.nn.MSELoss(reduction)``: :func:`jaxnll.mse_loss` with its options bound (``weight=`` too).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.MSELoss("sum")(jnp.array([1.0, 2.0, 4.0]), jnp.array([1.5, 2.0, 1.0]))
    Array(9.25, dtype=float32)
  """

  reduction: Reduction = "mean"
  _: dataclasses.KW_ONLY
  weight: jax.Array | None = None

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "reduction", _reduction_option(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares (the weights), before reduction."""
    return mse_loss_terms(input, targets, weight=self.weight, where=where)


@register("weight")
@dataclasses.dataclass(frozen=True, eq=False)
class HuberLoss(LossObject):
  """``torch.nn.HuberLoss(reduction, delta)``: :func:`jaxnll.huber_loss` with its options bound (``weight=`` too).

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.HuberLoss("mean", 2.0)(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]))
    Array(2.0625, dtype=float32)
  """

  reduction: Reduction = "mean"
  delta: float = 1.0
  _: dataclasses.KW_ONLY
  weight: jax.Array | None = None

  def __post_init__(self) -> None:
    _set(self, "weight", v.check_weight_array("weight", self.weight))
    _set(self, "delta", v.check_positive("delta", self.delta))
    _set(self, "reduction", _reduction_option(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return huber_loss_terms(input, targets, delta=self.delta, weight=self.weight, where=where)


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class SmoothL1Loss(LossObject):
  """``torch.nn.SmoothL1Loss(reduction, beta)``: :func:`jaxnll.smooth_l1_loss` with its options bound.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.SmoothL1Loss(beta=2.0)(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]))
    Array(1.03125, dtype=float32)
  """

  reduction: Reduction = "mean"
  beta: float = 1.0

  def __post_init__(self) -> None:
    _set(self, "beta", v.check_nonnegative("beta", self.beta))
    _set(self, "reduction", _reduction_option(self.reduction))

  def terms(self, input, targets, *, where=None) -> LossTerms:
    """Per-element losses and normalizer shares, before reduction."""
    return smooth_l1_loss_terms(input, targets, beta=self.beta, where=where)
