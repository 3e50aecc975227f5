"""Drop-in replacements for ``optax.losses``' margin and cosine losses.

``triplet_margin_loss``, ``hinge_loss``, ``multiclass_hinge_loss``,
``cosine_similarity`` and ``cosine_distance``: optax 0.2.8's arguments and
unreduced outputs, computed by the kernels of ``_margin`` and ``_embedding``.
Where optax's formula differs from the torch-named loss, optax's is kept and
the difference is stated; every function here differs from optax in the same
three ways:

* hinges have torch's slope 1 at the kink (optax's ``jnp.maximum(·, 0)``
  gives 1/2 there);
* results are computed in float32 or wider (optax keeps bf16/f16);
* integer labels go through jaxnll's one class-index check: out of range, a
  concrete label raises ``IndexError`` and a traced one gives NaN (optax's
  ``one_hot`` silently gives a row of zeros).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnll import _validation as v
from jaxnll._elementwise import floating_input
from jaxnll._embedding import cosine, triplet
from jaxnll._margin import (
    broadcast_shape,
    clamp_min,
    class_margins,
    common_dtype,
    integer_targets,
    nan_where,
    real_targets,
)
from jaxnll._targets import class_targets

Axis = int | tuple[int, ...] | None


def _floating(*named: tuple[str, object]) -> list[jax.Array]:
  arrays = [floating_input(n, a) for n, a in named]
  dtype = common_dtype(*arrays)
  shape = broadcast_shape(" and ".join(f"`{n}`" for n, _ in named), *(a.shape for a in arrays))
  return [jnp.broadcast_to(a.astype(dtype), shape) for a in arrays]


@v.refuse_dim
def triplet_margin_loss(
    anchors: jax.typing.ArrayLike,
    positives: jax.typing.ArrayLike,
    negatives: jax.typing.ArrayLike,
    axis: int = -1,
    norm_degree: jax.typing.ArrayLike = 2,
    margin: jax.typing.ArrayLike = 1.0,
    eps: jax.typing.ArrayLike = 1e-6,
) -> jax.Array:
  r"""``optax.losses.triplet_margin_loss``: the triplet loss with optax's distance.

  .. math::
    d(u, v) = \Bigl(\sum_i (u_i - v_i)^{q} + \epsilon\Bigr)^{1/q}, \qquad
    \ell = \max\bigl(0,\; d(a, p) - d(a, n) + \mathrm{margin}\bigr)

  Unlike :func:`jaxnll.triplet_margin_loss` (torch's), ``eps`` is added
  inside the root rather than to each coordinate, no absolute value is taken
  (an odd ``norm_degree`` can give a negative sum and a NaN distance, as in
  optax), any ``axis`` may hold the features, there is no ``swap`` and no
  reduction. The hinge is shared with the torch-named loss.

  Args:
    anchors: floating embeddings, e.g. ``[batch, dim]``.
    positives: floating embeddings broadcastable with ``anchors``.
    negatives: likewise.
    axis: the feature axis.
    norm_degree: the power :math:`q`.
    margin: the margin.
    eps: added to each sum of powers.

  Returns:
    The loss per triplet: the broadcast shape without ``axis``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> a, p, n = jnp.array([[0.0, 0.0]]), jnp.array([[0.1, 0.1]]), jnp.array([[1.0, 0.0]])
    >>> losses.triplet_margin_loss(a, p, n)
    Array([0.14142442], dtype=float32)
  """
  a, p, n = _floating(("anchors", anchors), ("positives", positives), ("negatives", negatives))
  ax = v.canonical_axis(axis, a.ndim)
  q = jnp.asarray(norm_degree, a.dtype)
  e = jnp.asarray(eps, a.dtype)

  def distance(u, w):
    return jnp.power(jnp.sum(jnp.power(u - w, q), axis=ax) + e, 1 / q)

  return triplet(distance(a, p), distance(a, n), jnp.asarray(margin, a.dtype))  # type: ignore[arg-type]


def hinge_loss(predictor_outputs: jax.typing.ArrayLike, targets: jax.typing.ArrayLike) -> jax.Array:
  r"""``optax.losses.hinge_loss``: the binary hinge loss.

  .. math::
    \ell = \max(0,\; 1 - y\, s)

  :func:`jaxnll.margin_ranking_loss` with ``input2 = 0`` and ``margin = 1``
  (the same kernel), unreduced, with numpy broadcasting of any ranks.

  Args:
    predictor_outputs: floating scores, any shape.
    targets: -1 or 1 (floating, integer or bool), broadcastable with the scores.

  Returns:
    The loss per element, of the broadcast shape.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> losses.hinge_loss(jnp.array([0.5, 3.0]), jnp.array([1.0, -1.0]))
    Array([0.5, 4. ], dtype=float32)
  """
  s = floating_input("predictor_outputs", predictor_outputs)
  y = real_targets("targets", targets)
  shape = broadcast_shape("`predictor_outputs` and `targets`", s.shape, y.shape)
  dtype = common_dtype(s)
  s, y = jnp.broadcast_to(s.astype(dtype), shape), jnp.broadcast_to(y.astype(dtype), shape)
  return clamp_min(1 - y * s)


def multiclass_hinge_loss(scores: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
  r"""``optax.losses.multiclass_hinge_loss``: the Crammer-Singer multi-class hinge.

  .. math::
    \ell = \max\Bigl(0,\; \max_{c \ne y} (1 - s_y + s_c)\Bigr)

  Unlike :func:`jaxnll.multi_margin_loss` (torch's, which sums the pairs'
  hinges and divides by :math:`C`), the largest violation counts alone. The
  pairs' margins come from the same kernel.

  Args:
    scores: floating scores ``[..., C]``.
    labels: integer class indices, broadcastable to ``scores.shape[:-1]``.

  Returns:
    The loss per sample: the broadcast batch shape.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> losses.multiclass_hinge_loss(jnp.array([[10.0, 3.0], [11.0, -2.0]]), jnp.array([1, 0]))
    Array([8., 0.], dtype=float32)
  """
  x = floating_input("scores", scores)
  if x.ndim == 0:
    raise ValueError("`scores` must have a class (last) axis, got a scalar.")
  y = integer_targets("labels", labels)
  batch = broadcast_shape("`scores` (without the class axis) and `labels`", x.shape[:-1], y.shape)
  num_classes = x.shape[-1]
  x = jnp.broadcast_to(x.astype(common_dtype(x)), (*batch, num_classes))
  xp = np if isinstance(y, np.ndarray) else jnp  # host labels keep their dtype for the range check
  tg = class_targets(xp.broadcast_to(y, batch), num_classes, None, None)
  z, onehot = class_margins(x, tg.classes, 1.0)
  violation = jnp.max(jnp.where(onehot, jnp.zeros((), x.dtype), z), axis=-1)
  return nan_where(tg.bad, violation, x)


@v.refuse_dim
def cosine_similarity(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    epsilon: jax.typing.ArrayLike = 0.0,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""``optax.losses.cosine_similarity``: the cosine of the angle between vectors.

  .. math::
    \cos = \frac{a \cdot b}{\sqrt{\max(\|a\|^2, \epsilon)}\, \sqrt{\max(\|b\|^2, \epsilon)}}

  The cosine kernel of :func:`jaxnll.cosine_embedding_loss`, with optax's
  floor: the squared norms are floored at ``epsilon`` (default 0, so a zero
  vector gives NaN), where torch adds ``1e-12``. ``axis`` may be any axes and
  ``where`` masks coordinates (not pairs): masked coordinates are left out of
  every sum, and take exactly zero gradient even if they hold NaN.

  Args:
    predictions: floating vectors ``[..., dim]``.
    targets: floating vectors broadcastable with ``predictions``.
    epsilon: the floor on each squared norm.
    axis: the axis or axes to reduce (None: all).
    where: optional boolean mask broadcastable to the inputs' shape.

  Returns:
    The cosine per pair: the broadcast shape without ``axis``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> losses.cosine_similarity(jnp.array([[1.0, 0.0], [1.0, 1.0]]), jnp.array([[0.0, 1.0], [1.0, 0.0]]))
    Array([0.        , 0.70710677], dtype=float32)
  """
  a, b = _floating(("predictions", predictions), ("targets", targets))
  axes = tuple(range(a.ndim)) if axis is None else v.canonical_axes(axis, a.ndim)
  if where is not None:
    mask = v.as_array("where", where)
    if mask.dtype != jnp.bool_:
      raise TypeError(f"`where` must be a boolean array, got {mask.dtype}.")
    mask = jnp.broadcast_to(mask, broadcast_shape("`where` and the inputs", mask.shape, a.shape))
    if mask.shape != a.shape:
      raise ValueError(f"`where` of shape {mask.shape} does not broadcast to the inputs' shape {a.shape}.")
    # Masked coordinates are 0; a pair with none kept is 0, as optax's empty sum
    # (computed on ones, so nothing undefined reaches its gradient).
    kept = jnp.any(mask, axis=axes, keepdims=True)
    fill = jnp.where(kept, jnp.zeros((), a.dtype), jnp.ones((), a.dtype))
    a, b = jnp.where(mask, a, fill), jnp.where(mask, b, fill)
    floor = jnp.asarray(epsilon, a.dtype)
    cos = cosine(a, b, axes, lambda s: jnp.maximum(s, floor))
    return jnp.where(jnp.squeeze(kept, axes), cos, jnp.zeros((), cos.dtype))
  floor = jnp.asarray(epsilon, a.dtype)
  cos = cosine(a, b, axes, lambda s: jnp.maximum(s, floor))
  if any(a.shape[i] == 0 for i in axes):  # empty vectors: optax's empty sum, 0
    return jnp.zeros(cos.shape, cos.dtype)
  return cos


@v.refuse_dim
def cosine_distance(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    epsilon: jax.typing.ArrayLike = 0.0,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""``optax.losses.cosine_distance``: one minus :func:`cosine_similarity`.

  .. math::
    d = 1 - \cos

  Args:
    predictions: floating vectors ``[..., dim]``.
    targets: floating vectors broadcastable with ``predictions``.
    epsilon: the floor on each squared norm.
    axis: the axis or axes to reduce (None: all).
    where: optional boolean mask broadcastable to the inputs' shape.

  Returns:
    The distance per pair: the broadcast shape without ``axis``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxnll import losses
    >>> losses.cosine_distance(jnp.array([1.0, 0.0]), jnp.array([1.0, 1.0]))
    Array(0.29289323, dtype=float32)
  """
  return 1 - cosine_similarity(predictions, targets, epsilon=epsilon, axis=axis, where=where)
