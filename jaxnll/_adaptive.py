r"""torch's ``nn.AdaptiveLogSoftmaxWithLoss``: an adaptive softmax whose parameters are passed in.

The classes are split by ``cutoffs`` ``c_1 < ... < c_K`` into a shortlist
``[0, c_1)`` and ``K`` clusters ``[c_i, c_{i+1})`` (with ``c_{K+1} = C``). The
head scores the shortlist plus one logit per cluster; cluster ``i`` has its own
two-layer tail, ``in_features → in_features // div_value**(i+1) → c_{i+1} - c_i``.

Parameters are a flat dict in torch's ``state_dict()`` layout (``head.weight``,
optionally ``head.bias``, ``tail.{i}.0.weight``, ``tail.{i}.1.weight``), so a
torch module's weights load as they are and an optax optimizer updates them
like any other pytree.

Every tail is evaluated on every row and the rows whose targets lie elsewhere
are selected away (shapes are static under ``jit``); the tail's hidden
activations of those rows are zeroed before the second matrix product, so
nothing they hold reaches a value or gradient. The price over torch's
gather-by-cluster is the tails' matrix products on all ``N`` rows,
``N · Σ_i h_i (d + s_i)`` multiply-adds, the same as :func:`adaptive_log_prob`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._log_softmax import log_softmax
from jaxnll._loss_base import LossObject, LossTerms, count_hits, register, set_field
from jaxnll._reduction import Reduction
from jaxnll._targets import class_targets

Params = Mapping[str, jax.Array]

_HEAD_WEIGHT = "head.weight"
_HEAD_BIAS = "head.bias"


def _tail_keys(i: int) -> tuple[str, str]:
  return f"tail.{i}.0.weight", f"tail.{i}.1.weight"


class AdaptiveLogSoftmaxOutput(NamedTuple):
  """What the adaptive softmax returns, as torch's ``_ASMoutput``: the targets'
  log-probabilities (the targets' shape) and the reduced loss."""

  output: jax.Array
  loss: jax.Array


class _Layout(NamedTuple):
  """The static shape of an adaptive softmax; ``bounds`` is ``(0, c_1, ..., c_K, C)``."""

  in_features: int
  n_classes: int
  bounds: tuple[int, ...]
  hidden: tuple[int, ...]

  @property
  def shortlist(self) -> int:
    return self.bounds[1]

  @property
  def n_clusters(self) -> int:
    return len(self.bounds) - 2

  def shapes(self, head_bias: bool) -> dict[str, tuple[int, ...]]:
    """Each parameter's shape, in torch's ``state_dict()`` order."""
    head = self.shortlist + self.n_clusters
    out: dict[str, tuple[int, ...]] = {_HEAD_WEIGHT: (head, self.in_features)}
    if head_bias:
      out[_HEAD_BIAS] = (head,)
    for i, hsz in enumerate(self.hidden):
      project, classify = _tail_keys(i)
      out[project] = (hsz, self.in_features)
      out[classify] = (self.bounds[i + 2] - self.bounds[i + 1], hsz)
    return out


def _check_int(name: str, value: object, minimum: int) -> int:
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
    raise TypeError(f"`{name}` must be an int, got {value!r}.")
  if value < minimum:
    raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
  return int(value)


def _check_cutoffs(cutoffs: object) -> tuple[int, ...]:
  """torch's checks on ``cutoffs`` short of the upper bound: a non-empty sequence
  of unique, positive ints in increasing order."""
  if isinstance(cutoffs, (str, bytes)) or not isinstance(cutoffs, (Sequence, np.ndarray)):
    raise TypeError(f"`cutoffs` must be a sequence of ints, got {cutoffs!r}.")
  values = list(cutoffs)
  if not values:
    raise ValueError("`cutoffs` must be a non-empty sequence of ints, got an empty one.")
  for c in values:
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Integral):
      raise TypeError(f"`cutoffs` must hold ints, got {c!r} in {values!r}.")
  result = tuple(int(c) for c in values)
  if list(result) != sorted(result) or len(set(result)) != len(result):
    raise ValueError(f"`cutoffs` must be unique and sorted in increasing order, got {list(result)}.")
  if result[0] <= 0:
    raise ValueError(f"`cutoffs` must be positive, got {list(result)}.")
  return result


def _make_layout(in_features: int, n_classes: int, cutoffs: tuple[int, ...], div_value: float) -> _Layout:
  if cutoffs[-1] > n_classes - 1:
    raise ValueError(
        f"`cutoffs` must lie in [1, n_classes - 1] = [1, {n_classes - 1}], got {list(cutoffs)}.")
  hidden = tuple(int(in_features // (div_value ** (i + 1))) for i in range(len(cutoffs)))
  return _Layout(in_features, n_classes, (0, *cutoffs, n_classes), hidden)


def _config(in_features: object, n_classes: object, cutoffs: object, div_value: object) -> _Layout:
  """The validated layout of torch's constructor arguments."""
  d = _check_int("in_features", in_features, 1)
  c = _check_int("n_classes", n_classes, 2)
  return _make_layout(d, c, _check_cutoffs(cutoffs), v.check_positive("div_value", div_value))


def _check_params(params: object, layout: _Layout, head_bias: bool) -> dict[str, jax.Array]:
  """``params`` as a dict of floating arrays holding exactly the layout's keys and shapes."""
  expected = layout.shapes(head_bias)
  if not isinstance(params, Mapping):
    raise TypeError(f"`params` must be a dict of arrays (a torch state_dict layout), got {type(params).__name__}.")
  missing = [k for k in expected if k not in params]
  unexpected = [k for k in params if k not in expected]
  if missing or unexpected:
    raise ValueError(
        f"`params` must hold exactly {list(expected)}; missing {missing}, unexpected {unexpected}.")
  out = {}
  for key, shape in expected.items():
    arr = v.as_array(f"params[{key!r}]", params[key])
    v.check_floating(f"params[{key!r}]", arr)
    if tuple(arr.shape) != shape:
      hint = " (its rows are in_features // div_value**(i+1): is div_value right?)" if key.endswith(".0.weight") else ""
      raise ValueError(f"`params[{key!r}]` must have shape {shape}, got {tuple(arr.shape)}{hint}.")
    out[key] = arr
  return out


def _functional_layout(params: object, cutoffs: object, div_value: object) -> tuple[_Layout, dict[str, jax.Array]]:
  """The layout of a functional call: ``in_features`` and ``n_classes`` read off
  ``head.weight`` and the last tail, the rest checked against ``cutoffs``."""
  cuts = _check_cutoffs(cutoffs)
  div = v.check_positive("div_value", div_value)
  if not isinstance(params, Mapping):
    raise TypeError(f"`params` must be a dict of arrays (a torch state_dict layout), got {type(params).__name__}.")
  last = _tail_keys(len(cuts) - 1)[1]
  for key in (_HEAD_WEIGHT, last):
    if key not in params:
      raise ValueError(f"`params` has no {key!r}, expected with cutoffs={list(cuts)}; it has {list(params)}.")
    if jnp.ndim(params[key]) != 2:
      raise ValueError(f"`params[{key!r}]` must be a matrix, got shape {jnp.shape(params[key])}.")
  in_features = jnp.shape(params[_HEAD_WEIGHT])[1]
  last_size = jnp.shape(params[last])[0]
  if last_size < 1:
    raise ValueError(f"`params[{last!r}]` must have at least one row (the last cluster's classes), got none.")
  layout = _make_layout(in_features, cuts[-1] + last_size, cuts, div)
  return layout, _check_params(params, layout, _HEAD_BIAS in params)


def _compute_dtype(params: dict[str, jax.Array], x: jax.Array) -> np.dtype:
  """float64 if the input or any parameter is, else float32 (bf16/f16 included)."""
  dtypes = [v.compute_dtype(a.dtype) for a in (x, *params.values())]
  return max(dtypes, key=lambda d: d.itemsize)


def _linear(a: jax.Array, w: jax.Array, ct: np.dtype) -> jax.Array:
  """``a @ w.T`` accumulated and returned in ``ct``; operands of one dtype (bf16
  included) are not widened first, mixed ones are cast to ``ct``."""
  if a.dtype != w.dtype:
    a, w = a.astype(ct), w.astype(ct)
  return lax.dot_general(a, w, (((a.ndim - 1,), (1,)), ((), ())), preferred_element_type=ct)


def _head_logits(params: dict[str, jax.Array], x: jax.Array, ct: np.dtype) -> jax.Array:
  logits = _linear(x, params[_HEAD_WEIGHT], ct)
  if _HEAD_BIAS in params:
    bias = params[_HEAD_BIAS].astype(ct)
    logits = logits + bias.reshape((1,) * (logits.ndim - 1) + bias.shape)
  return logits


def _head_log_probs(params: dict[str, jax.Array], x: jax.Array, ct: np.dtype) -> jax.Array:
  return log_softmax(_head_logits(params, x, ct), axis=-1)


def _tail_log_probs(params: dict[str, jax.Array], x: jax.Array, i: int, ct: np.dtype,
                    rows: jax.Array | None = None) -> jax.Array:
  """Cluster ``i``'s log-probabilities; ``rows`` (``[N]``), where given, keeps
  only those rows' hidden activations (the others are computed as zeros)."""
  project, classify = _tail_keys(i)
  hidden = _linear(x, params[project], ct)
  if rows is not None:
    hidden = jnp.where(rows[:, None], hidden, jnp.zeros((), ct))
  return log_softmax(_linear(hidden, params[classify], ct), axis=-1)


def _pick(log_probs: jax.Array, index: jax.Array) -> jax.Array:
  return jnp.take_along_axis(log_probs, index[:, None], axis=1)[:, 0]


def _check_input(x: jax.Array, layout: _Layout) -> None:
  v.check_floating("input", x)
  if x.ndim not in (1, 2) or x.shape[-1] != layout.in_features:
    raise ValueError(
        f"`input` must have shape (N, {layout.in_features}) or ({layout.in_features},) "
        f"(in_features={layout.in_features}), got {tuple(x.shape)}.")


def _forward(params: dict[str, jax.Array], layout: _Layout, input: jax.typing.ArrayLike, target: Any,
             where: Any) -> tuple[jax.Array, LossTerms]:
  """The targets' log-probabilities and the loss terms (``-output`` where counted)."""
  x = v.as_array("input", input)
  _check_input(x, layout)
  t = v.as_target_array("target", target)
  v.check_integer("target", t, " (class indices)")
  if t.ndim == 1:
    if x.ndim != 2:
      raise ValueError(f"a 1-D `target` needs a 2-D `input` (N, in_features), got input shape {tuple(x.shape)}.")
    if x.shape[0] != t.shape[0]:
      raise ValueError(
          f"`input` and `target` must have the same batch size, got input shape {tuple(x.shape)} and target "
          f"shape {tuple(t.shape)}.")
  elif t.ndim == 0:
    if x.ndim != 1:
      raise ValueError(f"a 0-D `target` needs a 1-D `input` (in_features,), got input shape {tuple(x.shape)}.")
  else:
    raise ValueError(f"`target` must be 0-D or 1-D (multi-target is not supported), got shape {tuple(t.shape)}.")
  shape = tuple(t.shape)
  tg = class_targets(t, layout.n_classes, None, v.check_where(where, shape))
  classes, counted, bad = (a.reshape(-1) for a in tg)
  x = x.reshape(-1, layout.in_features)
  ct = _compute_dtype(params, x)
  # Rows not counted are zeroed so that nothing they hold reaches a value or a
  # gradient; a counted target out of range makes its row NaN (value and
  # gradients), as `class_targets` promises under jit.
  x = jnp.where(counted[:, None], x, jnp.zeros((), x.dtype))
  x = x * jnp.where(bad, jnp.full((), jnp.nan, x.dtype), jnp.ones((), x.dtype))[:, None]
  cluster = sum(((classes >= c).astype(jnp.int32) for c in layout.bounds[1:-1]), jnp.zeros_like(classes))
  shortlist = layout.shortlist
  head_index = jnp.where(cluster == 0, classes, shortlist - 1 + cluster)
  out = _pick(_head_log_probs(params, x, ct), head_index)
  for i in range(layout.n_clusters):
    low, high = layout.bounds[i + 1], layout.bounds[i + 2]
    rows = cluster == i + 1
    local = jnp.clip(classes - low, 0, high - low - 1)
    tail = _pick(_tail_log_probs(params, x, i, ct, rows), local)
    out = out + jnp.where(rows, tail, jnp.zeros((), ct))
  out = jnp.where(counted, out, jnp.zeros((), ct)).reshape(shape)
  counted = counted.reshape(shape)
  return out, LossTerms(-out, counted.astype(ct), counted)


def _full_log_prob(params: dict[str, jax.Array], layout: _Layout, x: jax.Array) -> jax.Array:
  ct = _compute_dtype(params, x)
  head = _head_log_probs(params, x, ct)
  shortlist = layout.shortlist
  parts = [head[..., :shortlist]]
  for i in range(layout.n_clusters):
    parts.append(_tail_log_probs(params, x, i, ct) + head[..., shortlist + i : shortlist + i + 1])
  return jnp.concatenate(parts, axis=-1)


def _log_prob(params: dict[str, jax.Array], layout: _Layout, input: jax.typing.ArrayLike) -> jax.Array:
  x = v.as_array("input", input)
  _check_input(x, layout)
  return _full_log_prob(params, layout, x)


def _predict(params: dict[str, jax.Array], layout: _Layout, input: jax.typing.ArrayLike) -> jax.Array:
  x = v.as_array("input", input)
  _check_input(x, layout)
  ct = _compute_dtype(params, x)
  axis = x.ndim - 1
  # The argmax of the raw head logits, as torch: two logits closer than an ulp
  # of the log-sum-exp would tie after the log-softmax.
  best_head = lax.argmax(_head_logits(params, x, ct), axis, jnp.int32)
  # A shortlist winner beats every tail class (their log-probabilities add a
  # log-softmax <= 0 to a smaller cluster logit); otherwise torch takes the
  # argmax of the full distribution.
  best = lax.argmax(_full_log_prob(params, layout, x), axis, jnp.int32)
  return jnp.where(best_head < layout.shortlist, best_head, best)


def adaptive_log_softmax_init(
    key: jax.Array,
    in_features: int,
    n_classes: int,
    cutoffs: Sequence[int],
    *,
    div_value: float = 4.0,
    head_bias: bool = False,
    dtype: jax.typing.DTypeLike = jnp.float32,
) -> dict[str, jax.Array]:
  r"""Parameters of an adaptive softmax, initialized like torch's ``nn.Linear``.

  Each weight of fan-in :math:`d` (and ``head.bias``) is drawn from
  :math:`\mathcal{U}(-1/\sqrt{d},\, 1/\sqrt{d})`, the distribution of torch's
  default ``kaiming_uniform_(a=sqrt(5))``; zero-size weights are empty.

  Args:
    key: a PRNG key.
    in_features: the hidden size :math:`d`.
    n_classes: the number of classes :math:`C`.
    cutoffs: unique, increasing ints in ``[1, C - 1]``: the shortlist is
      ``[0, cutoffs[0])``, cluster ``i`` is ``[cutoffs[i], cutoffs[i+1])``, the
      last ends at ``C``.
    div_value: tail ``i``'s hidden size is ``int(d // div_value**(i+1))``.
    head_bias: whether the head has a bias.
    dtype: a floating dtype for every parameter.

  Returns:
    A dict in torch's ``state_dict()`` layout: ``"head.weight"``
    ``[cutoffs[0] + K, d]``, ``"head.bias"`` ``[cutoffs[0] + K]`` (only with
    ``head_bias``), and for each of the ``K`` clusters ``"tail.{i}.0.weight"``
    ``[h_i, d]`` and ``"tail.{i}.1.weight"`` ``[cluster size, h_i]``.

  Raises:
    ValueError, TypeError: ``cutoffs`` that are empty, unsorted, repeated,
      not ints or outside ``[1, C - 1]`` (torch's rules), and other bad options.

  Examples:
    >>> import jax, jaxnll
    >>> params = jaxnll.adaptive_log_softmax_init(jax.random.key(0), 8, 10, [4, 8])
    >>> for name, p in params.items():
    ...   print(name, p.shape)
    head.weight (6, 8)
    tail.0.0.weight (2, 8)
    tail.0.1.weight (4, 2)
    tail.1.0.weight (0, 8)
    tail.1.1.weight (2, 0)
  """
  layout = _config(in_features, n_classes, cutoffs, div_value)
  bias = v.check_flag("head_bias", head_bias)
  dt = np.dtype(dtype)
  if not jnp.issubdtype(dt, jnp.floating):
    raise TypeError(f"`dtype` must be a floating dtype, got {dt}.")
  shapes = layout.shapes(bias)
  fan_ins = tuple(layout.in_features if name == _HEAD_BIAS else shape[1] for name, shape in shapes.items())
  return dict(zip(shapes, _draw(key, tuple(shapes.values()), fan_ins, dt), strict=True))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _draw(key: jax.Array, shapes: tuple[tuple[int, ...], ...], fan_ins: tuple[int, ...],
          dtype: np.dtype) -> list[jax.Array]:
  """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` arrays of ``shapes``, cut from one draw
  (one random-bits computation, one compilation per layout)."""
  sizes = [math.prod(shape) for shape in shapes]
  flat = jax.random.uniform(key, (sum(sizes),), dtype, -1.0, 1.0)
  out, start = [], 0
  for shape, size, fan_in in zip(shapes, sizes, fan_ins, strict=True):
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    out.append((flat[start : start + size] * jnp.asarray(bound, dtype)).reshape(shape))
    start += size
  return out


def adaptive_log_softmax_with_loss(
    params: Params,
    input: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike,
    *,
    cutoffs: Sequence[int],
    div_value: float = 4.0,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> AdaptiveLogSoftmaxOutput:
  r"""Adaptive softmax log-likelihood of class indices, as ``nn.AdaptiveLogSoftmaxWithLoss``'s forward.

  With head log-probabilities :math:`\mathrm{lp}^h = \mathrm{log\_softmax}(W_h x + b_h)`
  over the shortlist and one entry per cluster, and cluster :math:`k`'s
  :math:`\mathrm{lp}^{(k)} = \mathrm{log\_softmax}(W_{k,1} W_{k,0} x)`:

  .. math::
    \mathrm{output}_n = \begin{cases}
      \mathrm{lp}^h_{n, y_n} & y_n < c_1 \\
      \mathrm{lp}^h_{n, c_1 + k - 1} + \mathrm{lp}^{(k)}_{n, y_n - c_k} & c_k \le y_n < c_{k+1}
    \end{cases}
    \qquad \mathrm{loss} = \frac{\sum_n m_n (-\mathrm{output}_n)}{\sum_n m_n}

  where :math:`c_{K+1} = C` and :math:`m_n` is 0 for elements masked by
  ``where`` (torch has no mask: its loss is this ``'mean'`` with every
  :math:`m_n = 1`).

  Args:
    params: a dict in torch's ``state_dict()`` layout (see
      :func:`adaptive_log_softmax_init`); ``head.bias`` is used if present.
      ``in_features`` and ``n_classes`` are read off its shapes.
    input: floating hidden states ``[N, d]``, or ``[d]`` with a scalar target;
      bf16/f16 matrix products accumulate in float32.
    target: integer class indices ``[N]`` (or ``[]``), any integer dtype.
    cutoffs: torch's ``cutoffs`` (without ``n_classes``).
    div_value: torch's ``div_value``; checked against the tails' shapes.
    reduction: of the loss: ``'mean'`` (torch's; NaN when nothing is counted),
      ``'safe_mean'`` (0 then), ``'sum'`` or ``'none'`` (the per-element
      negative log-likelihoods, the targets' shape).
    where: optional boolean mask broadcastable to the targets; False leaves an
      element out of the loss (and of the mean's denominator) and gives it
      output 0 and zero gradients, whatever its input and target hold.

  Returns:
    ``AdaptiveLogSoftmaxOutput(output, loss)``: ``output`` the targets'
    log-probabilities (the targets' shape), ``loss`` a scalar (the targets'
    shape for ``'none'``), both in ``promote_types(dtype, float32)`` of the
    input and parameters.

  Raises:
    IndexError: concrete targets outside ``[0, n_classes)`` that are counted.
      Under ``jit`` such an element's output, the loss and its gradients are
      NaN (see :func:`jaxnll.checked`).

  Examples:
    >>> import jax, jax.numpy as jnp, jaxnll
    >>> params = jaxnll.adaptive_log_softmax_init(jax.random.key(0), 8, 10, [4, 8])
    >>> zeros = jax.tree.map(jnp.zeros_like, params)  # uniform head and tails
    >>> out = jaxnll.adaptive_log_softmax_with_loss(zeros, jnp.ones((2, 8)), jnp.array([0, 5]), cutoffs=[4, 8])
    >>> out.output  # -log 6 (shortlist), -log 6 - log 4 (first cluster)
    Array([-1.7917595, -3.1780539], dtype=float32)
    >>> out.loss
    Array(2.4849067, dtype=float32)

  References:
    Grave et al., `Efficient softmax approximation for GPUs
    <https://arxiv.org/abs/1609.04309>`_, 2017.
  """
  red = v.check_reduction(reduction)
  layout, p = _functional_layout(params, cutoffs, div_value)
  output, terms = _forward(p, layout, input, target, where)
  return AdaptiveLogSoftmaxOutput(output, _reduction.reduce(terms.per_element, terms.normalizer, red))


def adaptive_log_prob(
    params: Params, input: jax.typing.ArrayLike, *, cutoffs: Sequence[int], div_value: float = 4.0
) -> jax.Array:
  r"""Log-probabilities of every class, as ``nn.AdaptiveLogSoftmaxWithLoss.log_prob``.

  .. math::
    \log p(c \mid x) = \mathrm{lp}^h_c \ (c < c_1), \qquad
    \mathrm{lp}^h_{c_1 + k - 1} + \mathrm{lp}^{(k)}_{c - c_k} \ (c_k \le c < c_{k+1})

  Args:
    params: a dict in torch's ``state_dict()`` layout.
    input: floating hidden states ``[N, d]`` (or ``[d]``, which torch refuses).
    cutoffs: torch's ``cutoffs``.
    div_value: torch's ``div_value``.

  Returns:
    ``[N, n_classes]`` (or ``[n_classes]``) in ``promote_types(dtype, float32)``;
    ``exp`` of each row sums to 1.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxnll
    >>> params = jaxnll.adaptive_log_softmax_init(jax.random.key(0), 8, 10, [4, 8])
    >>> lp = jaxnll.adaptive_log_prob(params, jnp.ones((3, 8)), cutoffs=[4, 8])
    >>> lp.shape, jnp.allclose(jnp.exp(lp).sum(-1), 1.0)
    ((3, 10), Array(True, dtype=bool))
  """
  layout, p = _functional_layout(params, cutoffs, div_value)
  return _log_prob(p, layout, input)


def adaptive_predict(
    params: Params, input: jax.typing.ArrayLike, *, cutoffs: Sequence[int], div_value: float = 4.0
) -> jax.Array:
  """The most probable class of each row, as ``nn.AdaptiveLogSoftmaxWithLoss.predict``.

  Equal to ``argmax(adaptive_log_prob(...), axis=-1)`` except for exact ties,
  which are broken as torch does: a row whose head argmax is a shortlist class
  predicts it. Under ``jit`` the tails are evaluated on every row.

  Args:
    params: a dict in torch's ``state_dict()`` layout.
    input: floating hidden states ``[N, d]`` (or ``[d]``, which torch refuses).
    cutoffs: torch's ``cutoffs``.
    div_value: torch's ``div_value``.

  Returns:
    int32 class indices ``[N]`` (or a scalar).

  Examples:
    >>> import jax, jax.numpy as jnp, jaxnll
    >>> params = jaxnll.adaptive_log_softmax_init(jax.random.key(0), 8, 10, [4, 8])
    >>> x = jnp.ones((3, 8))
    >>> bool((jaxnll.adaptive_predict(params, x, cutoffs=[4, 8])
    ...       == jaxnll.adaptive_log_prob(params, x, cutoffs=[4, 8]).argmax(-1)).all())
    True
  """
  layout, p = _functional_layout(params, cutoffs, div_value)
  return _predict(p, layout, input)


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class AdaptiveLogSoftmaxWithLoss(LossObject):
  """``torch.nn.AdaptiveLogSoftmaxWithLoss`` with its parameters passed in, the JAX way.

  The object holds the configuration only (static pytree metadata: it can be
  closed over or passed into ``jit``); :meth:`init` makes parameters in
  torch's ``state_dict()`` layout and every method takes them first, so they
  are differentiated and updated like any other pytree. A torch module's
  weights load with ``{k: jnp.asarray(t.numpy()) for k, t in
  module.state_dict().items()}``.

  ``cutoffs`` is stored as given; torch's ``module.cutoffs`` also appends
  ``n_classes``.

  With :mod:`jaxnll.training`, ``apply_fn(params, inputs)`` returns the pair
  ``(hidden, adaptive_params)``, e.g.
  ``lambda p, x: (body(p["body"], x), p["adaptive"])``; the accuracy metric
  counts :meth:`predict` hits.

  Args:
    in_features: the hidden size :math:`d`.
    n_classes: the number of classes :math:`C`.
    cutoffs: unique, increasing ints in ``[1, C - 1]`` (torch's rules).
    div_value: tail ``i``'s hidden size is ``int(d // div_value**(i+1))``.
    head_bias: whether the head has a bias.
    reduction: ``'mean'`` (torch's), ``'safe_mean'``, ``'sum'`` or ``'none'``.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxnll
    >>> asm = jaxnll.AdaptiveLogSoftmaxWithLoss(8, 10, [4, 8], div_value=2.0)
    >>> params = asm.init(jax.random.key(0))
    >>> output, loss = asm(params, jnp.ones((2, 8)), jnp.array([1, 9]))
    >>> output.shape, loss.shape, asm.log_prob(params, jnp.ones((2, 8))).shape
    ((2,), (), (2, 10))
  """

  in_features: int
  n_classes: int
  cutoffs: Sequence[int]
  div_value: float = 4.0
  head_bias: bool = False
  _: dataclasses.KW_ONLY
  reduction: Reduction = "mean"

  def __post_init__(self) -> None:
    layout = _config(self.in_features, self.n_classes, self.cutoffs, self.div_value)
    set_field(self, "in_features", layout.in_features)
    set_field(self, "n_classes", layout.n_classes)
    set_field(self, "cutoffs", layout.bounds[1:-1])
    set_field(self, "div_value", v.check_positive("div_value", self.div_value))
    set_field(self, "head_bias", v.check_flag("head_bias", self.head_bias))
    set_field(self, "reduction", v.check_reduction(self.reduction))

  @property
  def _layout(self) -> _Layout:
    return _make_layout(self.in_features, self.n_classes, tuple(self.cutoffs), self.div_value)

  @property
  def shortlist_size(self) -> int:
    """The number of classes the head scores directly, ``cutoffs[0]``."""
    return self.cutoffs[0]

  @property
  def n_clusters(self) -> int:
    """The number of tail clusters, ``len(cutoffs)``."""
    return len(self.cutoffs)

  @property
  def head_size(self) -> int:
    """The head's outputs: the shortlist plus one logit per cluster."""
    return self.shortlist_size + self.n_clusters

  def init(self, key: jax.Array, dtype: jax.typing.DTypeLike = jnp.float32) -> dict[str, jax.Array]:
    """Parameters initialized like torch's (see :func:`adaptive_log_softmax_init`)."""
    return adaptive_log_softmax_init(key, self.in_features, self.n_classes, self.cutoffs,
                                     div_value=self.div_value, head_bias=self.head_bias, dtype=dtype)

  def _params(self, params: object) -> dict[str, jax.Array]:
    return _check_params(params, self._layout, self.head_bias)

  def _output_and_terms(self, params, input, target, where) -> tuple[jax.Array, LossTerms]:
    return _forward(self._params(params), self._layout, input, target, where)

  def terms(self, params: Params, input: jax.typing.ArrayLike, target: jax.typing.ArrayLike,  # type: ignore[override]
            *, where: jax.typing.ArrayLike | None = None) -> LossTerms:
    """Per-element negative log-likelihoods and normalizer shares, before reduction."""
    return self._output_and_terms(params, input, target, where)[1]

  def __call__(self, params: Params, input: jax.typing.ArrayLike, target: jax.typing.ArrayLike,  # type: ignore[override]
               *, where: jax.typing.ArrayLike | None = None) -> AdaptiveLogSoftmaxOutput:
    """``(output, loss)`` as torch's forward (see :func:`adaptive_log_softmax_with_loss`)."""
    output, terms = self._output_and_terms(params, input, target, where)
    return AdaptiveLogSoftmaxOutput(output, _reduction.reduce(terms.per_element, terms.normalizer, self.reduction))

  def log_prob(self, params: Params, input: jax.typing.ArrayLike) -> jax.Array:
    """``[N, n_classes]`` log-probabilities (see :func:`adaptive_log_prob`)."""
    return _log_prob(self._params(params), self._layout, input)

  def predict(self, params: Params, input: jax.typing.ArrayLike) -> jax.Array:
    """The most probable class of each row (see :func:`adaptive_predict`)."""
    return _predict(self._params(params), self._layout, input)

  @staticmethod
  def _split_outputs(outputs: Any) -> tuple[Any, Any]:
    if not (isinstance(outputs, (tuple, list)) and len(outputs) == 2 and isinstance(outputs[1], Mapping)):
      raise TypeError(
          "with AdaptiveLogSoftmaxWithLoss, `apply_fn` must return a pair (hidden, adaptive_params), got "
          f"{type(outputs).__name__}.")
    return outputs[0], outputs[1]

  def batch_terms(self, outputs: Any, batch: Mapping[str, Any]) -> LossTerms:
    """The terms of ``outputs = (hidden, adaptive_params)`` against ``batch["targets"]``."""
    hidden, params = self._split_outputs(outputs)
    return self.terms(params, hidden, batch["targets"], where=batch.get("where"))

  def batch_hits(self, outputs: Any, batch: Mapping[str, Any], counted: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(correct, count)``: :meth:`predict` hits among the counted elements."""
    hidden, params = self._split_outputs(outputs)
    return count_hits(self.predict(params, hidden) == jnp.asarray(batch["targets"]).astype(jnp.int32), counted)
