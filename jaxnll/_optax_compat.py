"""Drop-in replacements for ``optax.losses``' softmax cross-entropies.

Same arguments and per-example outputs as optax (tuple ``axis``, a ``where``
that masks classes when it has the logits' rank and examples otherwise,
differentiable in soft labels), computed by jaxnll's kernels, with jaxnll's
options as extra keyword-only arguments.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxnll import _validation as v
from jaxnll._targets import class_targets
from jaxnll._xent_kernel import class_index_loss, probability_loss

Axis = int | tuple[int, ...] | None


def _classes_last(
    logits: jax.Array, axis: Axis, *others: jax.Array | None
) -> tuple[jax.Array, tuple[jax.Array | None, ...]]:
  """Moves the class axes last and flattens them into one, as optax does."""
  axes = tuple(range(logits.ndim)) if axis is None else v.canonical_axes(axis, logits.ndim)
  batch = tuple(a for a in range(logits.ndim) if a not in axes)
  perm = batch + axes
  shape = tuple(logits.shape[a] for a in batch) + (math.prod(logits.shape[a] for a in axes),)

  def move(a: jax.Array | None) -> jax.Array | None:
    return None if a is None else a.transpose(perm).reshape(shape)

  return move(logits), tuple(move(a) for a in others)  # type: ignore[return-value]


def _class_mask(
    where: jax.typing.ArrayLike | None, logits: jax.Array, axis: Axis
) -> jax.Array | None:
  """optax's ``where``: the logits' shape, or the example shape expanded at ``axis``."""
  if where is None:
    return None
  mask = v.as_array("where", where)
  if mask.dtype != jnp.bool_:
    raise TypeError(f"`where` must be a boolean array, got {mask.dtype}.")
  given = mask.shape
  expand = tuple(range(logits.ndim)) if axis is None else v.canonical_axes(axis, logits.ndim)
  example_shape = tuple(n for a, n in enumerate(logits.shape) if a not in expand)
  fits = True
  if mask.ndim != logits.ndim:
    try:
      mask = jnp.expand_dims(mask, expand)
    except ValueError:
      fits = False
  fits = fits and v.broadcasts_to(mask.shape, logits.shape)
  if not fits:
    raise ValueError(
        f"`where` of shape {given} broadcasts neither to the logits' shape {logits.shape} "
        f"(masking classes) nor to their example shape {example_shape} (masking examples)."
    )
  with jax.ensure_compile_time_eval():  # stays concrete for a concrete mask
    return jnp.broadcast_to(mask, logits.shape)


def _masked_logits(x: jax.Array, mask: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """Logits with masked classes at -inf, and which rows keep any class."""
  if mask is None:
    return x, jnp.ones(x.shape[:-1], bool)
  with jax.ensure_compile_time_eval():  # a concrete mask keeps its rows concrete
    rows = jnp.any(mask, axis=-1)
  return jnp.where(mask, x, jnp.full((), -jnp.inf, x.dtype)), rows


def _weight(weight: jax.typing.ArrayLike | None, x: jax.Array) -> jax.Array:
  w = v.check_weight(weight, x.shape[-1])
  return jnp.ones((x.shape[-1],), v.compute_dtype(x.dtype)) if w is None else w


@v.refuse_dim
def softmax_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    *,
    weight: jax.typing.ArrayLike | None = None,
    label_smoothing: float = 0.0,
) -> jax.Array:
  r"""``optax.losses.softmax_cross_entropy`` with class weights and label smoothing.

  .. math::
    \ell = -\sum_c w_c\, t'_c\, \mathrm{log\_softmax}(x)_c, \qquad
    t' = (1 - \varepsilon)\, t + \varepsilon / C

  Args:
    logits: floating logits.
    labels: class probabilities of the logits' shape; differentiable.
    axis: class axis or axes (a tuple is flattened into one class axis).
    where: the logits' shape (masks classes) or the example shape (masks
      examples); fully masked examples give 0.
    weight: optional class weights, one per (flattened) class.
    label_smoothing: :math:`\varepsilon \in [0, 1]`.

  Returns:
    Per-example losses, the logits' shape without the class axes, in
    ``promote_types(logits.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> losses.softmax_cross_entropy(logits, labels)
    Array([0.2761297, 2.951799 ], dtype=float32)
  """
  x = v.as_array("logits", logits)
  v.check_floating("logits", x)
  t = v.as_array("labels", labels)
  if t.shape != x.shape:
    raise ValueError(f"`labels` must have the logits' shape {x.shape}, got {t.shape}.")
  if not jnp.issubdtype(t.dtype, jnp.floating):
    t = t.astype(v.compute_dtype(x.dtype))
  eps = v.check_label_smoothing(label_smoothing)
  mask = _class_mask(where, x, axis)
  x, (t_moved, mask) = _classes_last(x, axis, t, mask)
  assert t_moved is not None
  t = t_moved
  x, counted = _masked_logits(x, mask)
  if mask is not None:
    t = jnp.where(mask, t, jnp.zeros((), t.dtype))
    if eps > 0:
      t, eps = _smoothed_over_kept(t, mask, eps), 0.0
  return probability_loss(x, t, _weight(weight, x), counted, x.ndim - 1, eps, 0.0)


def _smoothed_over_kept(t: jax.Array, mask: jax.Array, eps: float) -> jax.Array:
  """``(1 - ε) t + ε / K`` on the ``K`` classes ``where`` keeps in each row, 0 on the others.

  With a class mask, smoothing spreads ε over the kept classes only (optax's
  ``smooth_labels`` applied to them): a masked class has a ``-inf`` logit, so
  any mass there would make the loss infinite.
  """
  kept = mask.astype(t.dtype)
  return (1.0 - eps) * t + eps * kept / jnp.maximum(jnp.sum(kept, axis=-1, keepdims=True), 1.0)


@v.refuse_dim
def softmax_cross_entropy_with_integer_labels(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] = -1,
    where: jax.typing.ArrayLike | None = None,
    *,
    weight: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> jax.Array:
  r"""``optax.losses.softmax_cross_entropy_with_integer_labels`` with torch's options.

  .. math::
    \ell = (1-\varepsilon)\, w_y (\mathrm{lse}(x) - x_y)
      + \tfrac{\varepsilon}{C} \sum_c w_c (\mathrm{lse}(x) - x_c)

  Args:
    logits: floating logits.
    labels: integer labels, the logits' shape without the class axes; with a
      tuple ``axis`` a label is a flat index into those axes.
    axis: class axis or axes.
    where: the logits' shape (masks classes) or the example shape (masks
      examples); masked examples give 0.
    weight: optional class weights (per-example, unnormalized: this returns
      per-example losses, so no weighted mean is taken).
    ignore_index: labels equal to it give 0. ``None`` (default) ignores none.
    label_smoothing: :math:`\varepsilon \in [0, 1]`.

  Returns:
    Per-example losses, the labels' shape, in ``promote_types(logits.dtype, float32)``.

  Raises:
    TypeError: for non-integer labels.
    IndexError: for concrete labels outside ``[0, C)`` (optax silently wraps
      -1 and returns NaN for others); traced ones give NaN loss and gradient.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    >>> losses.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1]))
    Array([0.2761297, 2.951799 ], dtype=float32)
  """
  x = v.as_array("logits", logits)
  v.check_floating("logits", x)
  y = v.as_target_array("labels", labels)
  v.check_integer("labels", y)
  if not isinstance(axis, (int, tuple)) or isinstance(axis, bool):
    raise TypeError(f"`axis` must be an int or a tuple of ints, got {axis!r}.")
  ii = v.check_ignore_index(ignore_index, allow_none=True)
  eps = v.check_label_smoothing(label_smoothing)
  with jax.ensure_compile_time_eval():  # a concrete mask stays concrete for the target checks
    mask = _class_mask(where, x, axis)
    x, (mask,) = _classes_last(x, axis, mask)
  if y.shape != x.shape[:-1]:
    raise ValueError(
        f"`labels` must have the logits' shape without the class axes, "
        f"{x.shape[:-1]}, got {y.shape}."
    )
  x, rows = _masked_logits(x, mask)
  num_classes = x.shape[-1]
  tg = class_targets(y, num_classes, ii, None if mask is None else rows)
  if mask is None or eps == 0:
    w = v.check_weight(weight, num_classes)
    return class_index_loss(x, w, tg.classes, tg.counted, tg.bad, x.ndim - 1, eps, 0.0, True)
  # Smoothing spreads ε over the classes `where` keeps (optax.smooth_labels
  # on the masked classes): the same loss with probability targets.
  ct = v.compute_dtype(x.dtype)
  onehot = (lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1) == tg.classes[..., None]).astype(ct)
  smoothed = _smoothed_over_kept(onehot, mask, eps)
  nan_rows = jnp.where(tg.bad, jnp.full((), jnp.nan, ct), jnp.zeros((), ct))[..., None]
  return probability_loss(x.astype(ct) + nan_rows, smoothed, _weight(weight, x), tg.counted, x.ndim - 1, 0.0, 0.0)
