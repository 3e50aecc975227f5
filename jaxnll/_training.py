"""Training-step helpers for optax loops, built on the loss objects' ``terms``.

A batch is a mapping with ``"inputs"``, ``"targets"`` and optionally
``"where"`` (a boolean mask over the targets, e.g. padding). Every metric is
carried as additive sums (``loss_sum``, ``normalizer``, ``correct``,
``count``) so micro-batches, devices and evaluation batches combine exactly;
:func:`finalize_metrics` turns sums into ``loss`` and ``accuracy``.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxnll import _binary, _ctc, _divergence, _embedding, _margin, _reduction, _regression
from jaxnll import _linear_cross_entropy as _lce
from jaxnll import _loss_objects as lo
from jaxnll._cross_entropy import cross_entropy, nll_loss
from jaxnll._loss_base import LossObject

LossLike = LossObject | Callable[..., jax.Array]
Batch = Mapping[str, Any]
Metrics = dict[str, jax.Array]

_OBJECT_FOR: dict[Callable[..., jax.Array], type] = {
    cross_entropy: lo.CrossEntropyLoss,
    nll_loss: lo.NLLLoss,
    _binary.binary_cross_entropy: lo.BCELoss,
    _binary.binary_cross_entropy_with_logits: lo.BCEWithLogitsLoss,
    _binary.multilabel_soft_margin_loss: lo.MultiLabelSoftMarginLoss,
    _divergence.kl_div: lo.KLDivLoss,
    _regression.poisson_nll_loss: lo.PoissonNLLLoss,
    _regression.gaussian_nll_loss: lo.GaussianNLLLoss,
    _regression.l1_loss: lo.L1Loss,
    _regression.mse_loss: lo.MSELoss,
    _regression.huber_loss: lo.HuberLoss,
    _regression.smooth_l1_loss: lo.SmoothL1Loss,
    _margin.margin_ranking_loss: _margin.MarginRankingLoss,
    _margin.hinge_embedding_loss: _margin.HingeEmbeddingLoss,
    _margin.soft_margin_loss: _margin.SoftMarginLoss,
    _margin.multi_margin_loss: _margin.MultiMarginLoss,
    _margin.multilabel_margin_loss: _margin.MultiLabelMarginLoss,
    _embedding.cosine_embedding_loss: _embedding.CosineEmbeddingLoss,
    _embedding.triplet_margin_loss: _embedding.TripletMarginLoss,
    _embedding.triplet_margin_with_distance_loss: _embedding.TripletMarginWithDistanceLoss,
    _ctc.ctc_loss: _ctc.CTCLoss,
    _lce.linear_cross_entropy: _lce.LinearCrossEntropyLoss,
}


def as_loss_object(loss: LossLike) -> LossObject:
  """A loss object for ``loss``: any jaxnll loss object, a torch-style loss
  function of jaxnll that has one (``jaxnll.cross_entropy``,
  ``jaxnll.binary_cross_entropy_with_logits``, ...), or a
  ``functools.partial`` of such a function with options bound by keyword."""
  if isinstance(loss, LossObject):
    return loss  # type: ignore[return-value]
  kwargs: dict[str, Any] = {}
  fn = loss
  if isinstance(loss, functools.partial):
    if loss.args:
      raise TypeError(f"`loss` must bind options by keyword, got positional {loss.args!r}.")
    fn, kwargs = loss.func, dict(loss.keywords)
  cls = _OBJECT_FOR.get(fn)  # type: ignore[arg-type]
  if cls is None:
    raise TypeError(
        "`loss` must be a jaxnll loss object (jaxnll.CrossEntropyLoss, jaxnll.BCEWithLogitsLoss, ...), a "
        f"jaxnll loss function that has one, or a functools.partial of such a function; got {loss!r}."
    )
  if "where" in kwargs:
    raise TypeError("`loss` must not bind `where`; put it in the batch as batch['where'].")
  return cls(**kwargs)


def _training_loss(loss: LossLike) -> LossObject:
  """:func:`as_loss_object`, refusing a loss that does not reduce (nothing to train on)."""
  obj = as_loss_object(loss)
  if obj.reduction == "none":
    raise ValueError(
        f"`loss` must reduce ('mean', 'safe_mean', 'sum' or 'batchmean') to train on it, got reduction='none' "
        f"in {obj!r}.")
  return obj


def loss_and_metrics(outputs: Any, batch: Batch, loss: LossLike) -> tuple[jax.Array, Metrics]:
  """The reduced loss of ``outputs`` against ``batch``, and additive metric sums.

  Args:
    outputs: the model's outputs (logits, log-probabilities, probabilities or
      predictions, whatever ``loss`` takes; a ``(mean, var)`` pair for
      :class:`jaxnll.GaussianNLLLoss`).
    batch: ``{"targets": ..., "where": optional mask}`` (other entries are ignored).
    loss: a loss object or function (see :func:`as_loss_object`).

  Returns:
    ``(loss, metrics)``: ``loss`` is what the loss object returns for the
    batch; ``metrics`` holds scalars ``loss_sum`` and ``normalizer`` (the
    loss is their ratio for mean reductions) and ``count`` (counted elements),
    plus, where accuracy means something, ``correct``: argmax hits for class
    indices; ``logit > 0`` (``probability > 0.5`` for :class:`jaxnll.BCELoss`)
    per label against ``target > 0.5`` for the binary losses, where ``count``
    counts labels; greedy-decoded sequence accuracy for :class:`jaxnll.CTCLoss`;
    ``predict`` hits for the adaptive softmax; argmax hits for the multi-margin
    loss. All exclude ignored and masked elements. Use with
    ``jax.value_and_grad(..., has_aux=True)`` or ``nnx.value_and_grad``.
  """
  obj = _training_loss(loss)
  terms = obj.batch_terms(outputs, batch)
  loss_sum, normalizer = _reduction.sum_and_normalizer(terms.per_element, terms.normalizer, obj.reduction)
  value = finalize_loss(loss_sum, normalizer, obj.reduction, terms.nan_on_zero)
  metrics = {"loss_sum": loss_sum, "normalizer": normalizer, "count": jnp.sum(terms.counted).astype(jnp.float32)}
  hits = obj.batch_hits(outputs, batch, terms.counted)
  if hits is not None:
    metrics["correct"], metrics["count"] = hits
  return value, metrics


def finalize_loss(loss_sum: jax.Array, normalizer: jax.Array, reduction: str, nan_on_zero: bool = False) -> jax.Array:
  """The reduced loss from (possibly accumulated) ``loss_sum`` and ``normalizer``.

  Over a zero normalizer a mean is IEEE's ``loss_sum / 0`` (NaN for
  ``0 / 0``), or NaN whatever the sum with ``nan_on_zero`` (label
  smoothing's terms, which torch divides separately).
  """
  if reduction == "sum":
    return loss_sum
  return _reduction.divide(loss_sum, normalizer, safe=reduction == "safe_mean", nan_on_zero=nan_on_zero)


def merge_metrics(*metrics: Any) -> Any:
  """Adds metric sums from several batches (or micro-batches)."""
  return jax.tree_util.tree_map(lambda *xs: sum(xs[1:], xs[0]), *metrics)


def finalize_metrics(metrics: Metrics, loss: LossLike) -> dict[str, float]:
  """``loss``, ``count`` and (where the metrics have ``correct``) ``accuracy``
  from summed metrics, as Python floats."""
  obj = as_loss_object(loss)
  count = float(metrics["count"])
  out = {"loss": float(finalize_loss(metrics["loss_sum"], metrics["normalizer"], obj.reduction, obj.nan_on_zero)),
         "count": count}
  if "correct" in metrics:
    out["accuracy"] = float(metrics["correct"]) / count if count else float("nan")
  return out


def make_loss_fn(
    apply_fn: Callable[[Any, Any], jax.Array], loss: LossLike
) -> Callable[[Any, Batch], tuple[jax.Array, Metrics]]:
  """``loss_fn(params, batch) -> (loss, metrics)`` for ``jax.value_and_grad(..., has_aux=True)``.

  Args:
    apply_fn: ``apply_fn(params, inputs) -> outputs`` (logits, or log-probs
      for ``NLLLoss``); e.g. ``lambda p, x: model.apply({"params": p}, x)``
      for Linen, ``lambda p, x: net.apply(p, None, x)`` for Haiku.
    loss: a loss object, ``jaxnll.cross_entropy`` / ``nll_loss`` or a
      ``functools.partial`` of them.
  """
  obj = _training_loss(loss)

  def loss_fn(params: Any, batch: Batch) -> tuple[jax.Array, Metrics]:
    return loss_and_metrics(apply_fn(params, batch["inputs"]), batch, obj)

  return loss_fn


def _check_accumulation_steps(steps: object) -> int:
  if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
    raise TypeError(f"`accumulation_steps` must be an int >= 1, got {steps!r}.")
  if steps < 1:
    raise ValueError(f"`accumulation_steps` must be an int >= 1, got {steps!r}.")
  return int(steps)


def _split(batch: Batch, steps: int) -> tuple[Any, Callable[[Any], Batch]]:
  """The batch's arrays split into ``steps`` micro-batches along their leading
  axis (to scan over), and how to rebuild a micro-batch from one slice of them.

  Scalars (and ``None`` entries) are not split: every micro-batch sees them as they are.
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(batch)
  arrays = [jnp.asarray(a) for _, a in leaves]
  split = [i for i, a in enumerate(arrays) if a.ndim > 0]
  for i in split:
    size = arrays[i].shape[0]
    if size % steps:
      raise ValueError(
          f"batch{jax.tree_util.keystr(leaves[i][0])} has leading size {size}, not divisible by "
          f"accumulation_steps={steps}.")
  stacked = [arrays[i].reshape(steps, arrays[i].shape[0] // steps, *arrays[i].shape[1:]) for i in split]

  def rebuild(parts: Any) -> Batch:
    full = list(arrays)
    for i, part in zip(split, parts, strict=True):
      full[i] = part
    return jax.tree_util.tree_unflatten(treedef, full)

  return stacked, rebuild


def make_grad_fn(
    apply_fn: Callable[[Any, Any], jax.Array], loss: LossLike, *, accumulation_steps: int = 1
) -> Callable[[Any, Batch], tuple[jax.Array, Any, Metrics]]:
  """``grad_fn(params, batch) -> (loss, grads, metrics)`` of the full-batch loss.

  With ``accumulation_steps > 1`` the batch is split into that many
  micro-batches along its leading axis, processed one at a time with
  ``lax.scan``; gradients of each micro-batch's ``loss_sum`` and the
  normalizers are summed and divided once, so the result equals the
  full-batch weighted mean exactly (a mean of per-micro-batch means does not
  when weights, ``ignore_index`` or padding make the normalizers differ).
  """
  obj = _training_loss(loss)
  loss_fn = make_loss_fn(apply_fn, obj)
  steps = _check_accumulation_steps(accumulation_steps)

  def sum_fn(params: Any, batch: Batch) -> tuple[jax.Array, Metrics]:
    _, metrics = loss_fn(params, batch)
    return metrics["loss_sum"], metrics

  def grad_fn(params: Any, batch: Batch) -> tuple[jax.Array, Any, Metrics]:
    if steps == 1:
      (_, metrics), grads = jax.value_and_grad(sum_fn, has_aux=True)(params, batch)
    else:
      stacked, rebuild = _split(batch, steps)

      def body(carry, parts):
        (_, m), g = jax.value_and_grad(sum_fn, has_aux=True)(params, rebuild(parts))
        return merge_metrics(carry, (g, m)), None

      zero_g = jax.tree_util.tree_map(jnp.zeros_like, params)
      first = rebuild([a[0] for a in stacked])
      zero_m = jax.tree_util.tree_map(jnp.zeros_like, jax.eval_shape(sum_fn, params, first)[1])
      (grads, metrics), _ = jax.lax.scan(body, (zero_g, zero_m), stacked)
    # Gradients are scaled by 1/normalizer only where it is nonzero: a batch
    # with nothing counted (all padding) has zero gradients, not 0 * inf = NaN.
    scale = finalize_loss(jnp.ones_like(metrics["normalizer"]), metrics["normalizer"], "safe_mean"
                          if obj.reduction != "sum" else "sum")
    grads = jax.tree_util.tree_map(lambda g: g * scale.astype(g.dtype), grads)
    value = finalize_loss(metrics["loss_sum"], metrics["normalizer"], obj.reduction, obj.nan_on_zero)
    return value, grads, metrics

  return grad_fn


def make_train_step(
    apply_fn: Callable[[Any, Any], jax.Array],
    loss: LossLike,
    optimizer: Any,
    *,
    accumulation_steps: int = 1,
    jit: bool = True,
) -> Callable[[Any, Any, Batch], tuple[Any, Any, Metrics]]:
  """``train_step(params, opt_state, batch) -> (params, opt_state, metrics)``.

  Args:
    apply_fn: ``apply_fn(params, inputs) -> outputs``.
    loss: a loss object or function (see :func:`make_loss_fn`).
    optimizer: any ``optax.GradientTransformation``.
    accumulation_steps: micro-batches per step (see :func:`make_grad_fn`).
    jit: compile the step with ``jax.jit`` (params and opt_state donated).

  ``metrics`` holds the summed metrics plus ``loss`` and ``accuracy``.
  """
  optax = _import_optax()
  grad_fn = make_grad_fn(apply_fn, loss, accumulation_steps=accumulation_steps)

  def train_step(params: Any, opt_state: Any, batch: Batch) -> tuple[Any, Any, Metrics]:
    value, grads, metrics = grad_fn(params, batch)
    updates, new_state = optimizer.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    # A batch with nothing to learn from leaves params and optimizer state as
    # they were (even zero gradients move Adam's moments): nothing counted
    # (all padding), or a zero normalizer (every counted class weight 0).
    update = (metrics["count"] > 0) & (metrics["normalizer"] != 0)
    keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(update, a, b), new, old)
    return keep(new_params, params), keep(new_state, opt_state), _with_rates(metrics, value)

  return jax.jit(train_step, donate_argnums=(0, 1)) if jit else train_step


def _import_optax() -> Any:
  try:
    import optax
  except ModuleNotFoundError:
    raise ModuleNotFoundError(
        "jaxnll.training.make_train_step needs optax: pip install 'jaxnll[training]' (or pip install optax)."
    ) from None
  return optax


def _with_rates(metrics: Metrics, value: jax.Array) -> Metrics:
  if "correct" not in metrics:
    return {**metrics, "loss": value}
  count = metrics["count"]
  accuracy = jnp.where(count > 0, metrics["correct"] / jnp.where(count > 0, count, 1.0), jnp.nan)
  return {**metrics, "loss": value, "accuracy": accuracy}


def make_eval_step(
    apply_fn: Callable[[Any, Any], jax.Array], loss: LossLike, *, jit: bool = True
) -> Callable[[Any, Batch], Metrics]:
  """``eval_step(params, batch) -> metrics`` (sums plus ``loss`` and ``accuracy``)."""
  loss_fn = make_loss_fn(apply_fn, loss)

  def eval_step(params: Any, batch: Batch) -> Metrics:
    value, metrics = loss_fn(params, batch)
    return _with_rates(metrics, value)

  return jax.jit(eval_step) if jit else eval_step
