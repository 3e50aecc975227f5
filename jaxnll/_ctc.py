"""CTC, the sequence negative log-likelihood: the alpha recursion, torch's front door, greedy decoding.

The recursion runs once over the extended label sequence ``blank, y_1, blank,
..., y_S, blank`` (``2S + 1`` states), vectorized over the batch, in log
space, as one ``lax.scan`` over time. The label log-probabilities are
gathered into a ``[T, N, 2S + 1]`` array before the scan, so its body holds
no gather. The derivative is the true one with respect to ``log_probs``
(normalized or not): the state occupancies from the forward recursion and the
same recursion run backwards, in a ``custom_jvp`` so forward mode works too
(plain autodiff through the scan agrees, and measured 1.6x slower on the
speech benchmark shape; optax's front door uses it for its per-frame alphas). Unreachable states hold ``-inf``
and their log-sums are never differentiated, so an impossible alignment gives
an infinite loss with an exactly zero gradient, never NaN.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._log_softmax import finite_shift, log_of_shifted_sum
from jaxnll._loss_base import LossObject, LossTerms, register, set_field
from jaxnll._reduction import Reduction
from jaxnll._targets import bounded_integers, label_sequences, run_time_check

# The label value in the padded output of :func:`ctc_greedy_decode`.
DECODE_PAD = -1

# --------------------------------------------------------------------------
# The recursion (shared with the optax-style front door in ``_optax_ctc``)


def extended_label_logprobs(log_probs: jax.Array, labels: jax.Array, blank: int, time_axis: int) -> jax.Array:
  """``log_probs`` at the extended label sequence: ``[T, N, 2S + 1]``, time first.

  ``log_probs`` is ``[T, N, C]`` (``time_axis=0``) or ``[N, T, C]``
  (``time_axis=1``); ``labels`` is ``[N, S]`` int32 in ``[0, C)``. Even states
  are the blank, odd state ``2s + 1`` is label ``s``. Only the gathered array
  is transposed, never the input.
  """
  n, s = labels.shape
  idx = labels[:, None, :] if time_axis == 1 else labels[None, :, :]
  emit = jnp.take_along_axis(log_probs, idx, axis=2)
  phi = log_probs[:, :, blank : blank + 1]
  if time_axis == 1:
    emit, phi = jnp.swapaxes(emit, 0, 1), jnp.swapaxes(phi, 0, 1)
  t = emit.shape[0]
  pairs = jnp.stack([jnp.broadcast_to(phi, (t, n, s)), emit], axis=-1).reshape(t, n, 2 * s)
  return jnp.concatenate([pairs, phi], axis=-1)


def skip_allowed(labels: jax.Array) -> jax.Array:
  """``[N, 2S + 1]``: may a path jump from state ``j - 2`` to ``j``? Only onto a label unlike the one before."""
  n, s = labels.shape
  differs = labels[:, 1:] != labels[:, :-1]
  odd = jnp.concatenate([jnp.zeros((n, min(s, 1)), bool), differs], axis=1)
  pairs = jnp.stack([jnp.zeros((n, s), bool), odd], axis=-1).reshape(n, 2 * s)
  return jnp.concatenate([pairs, jnp.zeros((n, 1), bool)], axis=1)


def _shift(a: jax.Array, k: int, fill: jax.Array) -> jax.Array:
  n, m = a.shape
  k = min(k, m)
  return jnp.concatenate([jnp.broadcast_to(fill, (n, k)), a[:, : m - k]], axis=1)


def alpha_recursion(
    emissions: jax.Array,
    valid: jax.Array,
    skip: jax.Array,
    *,
    init: jax.Array | None = None,
    log_zero: jax.typing.ArrayLike | None = None,
    keep_alphas: bool = False,
) -> tuple[jax.Array, jax.Array | None]:
  r"""The CTC forward (alpha) recursion in log space.

  .. math::
    \alpha_t(j) = e_t(j) + \log\bigl(e^{\alpha_{t-1}(j)} + e^{\alpha_{t-1}(j-1)}
    + [\mathrm{skip}_j]\, e^{\alpha_{t-1}(j-2)}\bigr),
    \qquad \alpha_{-1} = (0, -\infty, \dots)

  Args:
    emissions: ``[T, N, J]`` log-probabilities of each state's symbol per frame.
    valid: ``[T, N]`` boolean; frames that are False leave the alphas as they were.
    skip: ``[N, J]`` boolean, see :func:`skip_allowed`.
    init: ``[N, J]`` alphas before the first frame; ``None`` for ``(0, -inf, ...)``.
    log_zero: ``None`` for an exact ``-inf``; a finite stand-in (optax's
      ``log_epsilon``) otherwise.
    keep_alphas: also return the alphas after every frame.

  Returns:
    ``(alpha, alphas)``: ``[N, J]`` after the last frame, and ``[T, N, J]``
    (or ``None``).
  """
  dtype = emissions.dtype
  neg = jnp.asarray(-jnp.inf if log_zero is None else log_zero, dtype)
  n, j = skip.shape
  emissions = jnp.where(valid[:, :, None], emissions, jnp.zeros((), dtype))  # padding cannot reach the sums
  if init is None:
    init = jnp.concatenate([jnp.zeros((n, 1), dtype), jnp.broadcast_to(neg, (n, j - 1))], axis=1)

  def step(a, frame):
    e, ok = frame
    a1 = _shift(a, 1, neg)
    a2 = jnp.where(skip, _shift(a, 2, neg), neg)
    m = finite_shift(lax.stop_gradient(jnp.maximum(jnp.maximum(a, a1), a2)))
    total = jnp.exp(a - m) + jnp.exp(a1 - m) + jnp.exp(a2 - m)
    new = jnp.where(ok[:, None], log_of_shifted_sum(total, m) + e, a)
    return new, (new if keep_alphas else None)

  alpha, alphas = lax.scan(step, init, (emissions, valid))
  return alpha, alphas


def _log_add(a: jax.Array, b: jax.Array) -> jax.Array:
  m = finite_shift(lax.stop_gradient(jnp.maximum(a, b)))
  return log_of_shifted_sum(jnp.exp(a - m) + jnp.exp(b - m), m)


def sequence_nll(alpha: jax.Array, label_lengths: jax.Array) -> jax.Array:
  """``-log p(y | x)`` from the last alphas: the paths ending on the last label or the blank after it."""
  last = 2 * label_lengths[:, None]
  end_blank = jnp.take_along_axis(alpha, last, axis=1)[:, 0]
  end_label = jnp.take_along_axis(alpha, jnp.maximum(last - 1, 0), axis=1)[:, 0]
  end_label = jnp.where(label_lengths > 0, end_label, jnp.full((), -jnp.inf, alpha.dtype))
  return -_log_add(end_blank, end_label)


@jax.custom_jvp
def sequence_nll_of_emissions(emissions: jax.Array, valid: jax.Array, skip: jax.Array,
                              label_lengths: jax.Array) -> jax.Array:
  r"""``-log p(y | x)`` per sequence from ``[T, N, 2S + 1]`` emissions (see :func:`alpha_recursion`).

  Its derivative is the state occupancy from the forward and backward
  recursions, :math:`-\gamma_t(j) = -e^{\alpha_t(j) + \beta_t(j) - \log p}`,
  exactly what autodiff through the scan gives, at about half the cost.
  Being a ``custom_jvp``, it keeps forward mode (``jvp``, ``jacfwd``,
  ``hessian``); higher derivatives differentiate the rule itself.
  """
  alpha, _ = alpha_recursion(emissions, valid, skip)
  return sequence_nll(alpha, label_lengths)


@sequence_nll_of_emissions.defjvp
def _sequence_nll_jvp(primals, tangents):
  emissions, valid, skip, label_lengths = primals
  d_emissions = tangents[0]
  alpha, alphas = alpha_recursion(emissions, valid, skip, keep_alphas=True)
  nll = sequence_nll(alpha, label_lengths)
  # The backward recursion is the forward one over reversed frames and reversed states, started from
  # the blank after the last label (state 2L; its label 2L - 1 is one transition away, like state 1).
  j = skip.shape[1]
  dtype = emissions.dtype
  last = (j - 1 - 2 * label_lengths)[:, None] == jnp.arange(j, dtype=jnp.int32)[None, :]
  init = jnp.where(last, jnp.zeros((), dtype), jnp.full((), -jnp.inf, dtype))
  skip_back = _shift(jnp.flip(skip, 1), 2, jnp.zeros((), bool))
  _, betas = alpha_recursion(jnp.flip(emissions, (0, 2)), jnp.flip(valid, 0), skip_back, init=init,
                             keep_alphas=True)
  assert alphas is not None and betas is not None
  betas = jnp.flip(betas, (0, 2))  # includes each frame's own emission, as the alphas do
  log_z = -nll
  feasible = jnp.isfinite(log_z)
  reach = jnp.isfinite(alphas) & jnp.isfinite(betas) & valid[:, :, None] & feasible[None, :, None]
  shift = (jnp.where(reach, emissions, jnp.zeros((), dtype))
           + jnp.where(feasible, log_z, jnp.zeros((), dtype))[None, :, None])
  occupancy = jnp.where(reach, jnp.exp(jnp.where(reach, alphas + betas - shift, jnp.zeros((), dtype))),
                        jnp.zeros((), dtype))
  return nll, -jnp.sum(occupancy * d_emissions, axis=(0, 2))


def nonnegative(loss: jax.Array) -> jax.Array:
  """``max(loss, 0)`` in value, ``loss`` in derivative: a sequence's NLL cannot be negative, but rounding
  near probability 1 can make it ``-1e-8``; the clamp leaves the gradient (and forward mode) untouched."""
  return jnp.where(loss <= 0, loss - lax.stop_gradient(loss), loss)


# --------------------------------------------------------------------------
# torch's front door


def _check_blank(blank: object, num_classes: int) -> int:
  if isinstance(blank, bool) or not isinstance(blank, numbers.Integral):
    raise TypeError(f"`blank` must be an int, got {blank!r}.")
  if not 0 <= int(blank) < num_classes:
    raise ValueError(f"`blank` must be in [0, {num_classes}) for {num_classes} classes, got {blank}.")
  return int(blank)


def _check_flag(name: str, value: object) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(f"`{name}` must be a bool, got {value!r}.")
  return bool(value)


def _lengths(name: str, value: object, batch: int, unbatched: bool) -> Any:
  arr = v.as_target_array(name, value)
  v.check_integer(name, arr, " (lengths)")
  expected = ((), (1,)) if unbatched else ((batch,),)
  if arr.shape not in expected:
    raise ValueError(
        f"`{name}` must have shape {' or '.join(map(str, expected))} (one length per sequence), "
        f"got shape {arr.shape}."
    )
  return arr.reshape((batch,))


def _padded_targets(targets: Any, target_lengths: Any, batch: int, unbatched: bool) -> tuple[Any, jax.Array, Any]:
  """``(padded [N, S] targets, int32 lengths, per-sequence bad mask)`` from either torch layout."""
  if unbatched:
    if targets.ndim != 1:
      raise ValueError(f"`targets` must be 1-D (S,) for unbatched (T, C) `log_probs`, got shape {targets.shape}.")
    targets = targets.reshape(1, -1)
  if targets.ndim == 2:
    if targets.shape[0] != batch:
      raise ValueError(
          f"`targets` of shape {targets.shape} must have one row per sequence: expected ({batch}, S), "
          f"or 1-D concatenated targets."
      )
    lengths, bad = bounded_integers(
        "target_lengths", target_lengths, 0, targets.shape[1], f"in [0, {targets.shape[1]}] (targets.shape[1])"
    )
    return targets, lengths, bad
  if targets.ndim != 1:
    raise ValueError(f"`targets` must be padded (N, S) or concatenated 1-D, got shape {targets.shape}.")
  total = targets.shape[0]
  lengths, bad = bounded_integers("target_lengths", target_lengths, 0, total, f"in [0, {total}] (len(targets))")
  traced = isinstance(lengths, jax.core.Tracer)
  if not traced:
    host = np.asarray(lengths)
    if int(host.sum()) > total:
      raise ValueError(
          f"`target_lengths` sum to {int(host.sum())}, past the {total} concatenated `targets`; "
          f"got {host.tolist()}."
      )
    width = int(host.max(initial=0))
    ends = np.cumsum(host)
    index = (ends - host)[:, None] + np.arange(width)[None, :]
    index = np.minimum(index, max(total - 1, 0))
    if isinstance(targets, np.ndarray):
      padded = targets[index] if total else np.zeros((batch, width), targets.dtype)
      return padded, lengths, bad
  else:
    width = total
    ends = jnp.cumsum(lengths)  # type: ignore[assignment]
    index = jnp.minimum((ends - lengths)[:, None] + jnp.arange(width, dtype=jnp.int32)[None, :], max(total - 1, 0))
    past = ends > total
    run_time_check(past, ends, ValueError, f"`target_lengths` sum past the {total} concatenated `targets`: "  # type: ignore[arg-type]
                   "to {}.")
    bad = bad | past
  y = jnp.asarray(targets)
  padded = y[index] if total else jnp.zeros((batch, width), y.dtype)
  return padded, lengths, bad


@functools.partial(jax.jit, static_argnames=("blank", "time_axis", "per_label", "zero_infinity"))
def _sequence_terms(lp, classes, input_lengths, label_lengths, bad, counted, *, blank, time_axis, per_label,
                    zero_infinity):
  """Per-sequence losses (divided by the label count with ``per_label``) and normalizer shares.

  Compiled once per shape and options, so an eager call costs one dispatch.
  """
  ct = v.compute_dtype(lp.dtype)
  emissions = extended_label_logprobs(lp.astype(ct), classes, blank, time_axis)
  valid = jnp.arange(emissions.shape[0], dtype=jnp.int32)[:, None] < input_lengths[None, :]
  loss = sequence_nll_of_emissions(emissions, valid, skip_allowed(classes), label_lengths)
  if zero_infinity:
    loss = jnp.where(jnp.isposinf(loss), jnp.zeros((), ct), loss)
  loss = nonnegative(loss)
  loss = loss * jnp.where(bad & counted, jnp.full((), jnp.nan, ct), jnp.ones((), ct))  # the tangent is NaN too
  if per_label:
    loss = loss / jnp.maximum(label_lengths, 1).astype(ct)
  return jnp.where(counted, loss, jnp.zeros((), ct)), counted.astype(ct)


def ctc_loss_terms(
    log_probs, targets, input_lengths, target_lengths, *, blank=0, reduction="mean", zero_infinity=False,
    batch_first=False, where=None,
) -> LossTerms:
  """The unreduced form of :func:`ctc_loss`: each sequence's loss (divided by its target length for the
  mean reductions) and a normalizer share of 1 per counted sequence."""
  red = v.check_reduction(reduction)
  zero_inf = _check_flag("zero_infinity", zero_infinity)
  bf = _check_flag("batch_first", batch_first)
  lp = v.as_array("log_probs", log_probs)
  v.check_floating("log_probs", lp)
  if lp.ndim not in (2, 3):
    raise ValueError(
        f"`log_probs` must be (T, N, C), (N, T, C) with batch_first=True, or unbatched (T, C); "
        f"got shape {lp.shape}."
    )
  unbatched = lp.ndim == 2
  if unbatched:
    lp = lp[:, None, :]
  time_axis = 1 if (bf and not unbatched) else 0
  num_frames, batch, num_classes = lp.shape[time_axis], lp.shape[1 - time_axis], lp.shape[2]
  b = _check_blank(blank, num_classes)
  tg = v.as_target_array("targets", targets)
  v.check_integer("targets", tg, " (class indices)")
  in_len, in_bad = bounded_integers(
      "input_lengths", _lengths("input_lengths", input_lengths, batch, unbatched), 0, num_frames,
      f"in [0, {num_frames}] (T, the frames in `log_probs`)",
  )
  padded, tg_len, tg_bad = _padded_targets(
      tg, _lengths("target_lengths", target_lengths, batch, unbatched), batch, unbatched
  )
  mask = v.check_where(where, (batch,) if not unbatched else (), "one entry per sequence")
  counted = jnp.ones((batch,), bool) if mask is None else mask.reshape((batch,))
  width = padded.shape[1]
  with jax.ensure_compile_time_eval():
    inside = jnp.arange(width, dtype=jnp.int32)[None, :] < tg_len[:, None]
  labels = label_sequences(padded, num_classes, b, inside)
  bad = in_bad | tg_bad | jnp.any(labels.bad, axis=1)
  per, normalizer = _sequence_terms(
      lp, labels.classes, in_len, tg_len, bad, counted, blank=b, time_axis=time_axis,
      per_label=red in ("mean", "safe_mean"), zero_infinity=zero_inf,
  )
  if unbatched:
    per, normalizer, counted = per.reshape(()), normalizer.reshape(()), counted.reshape(())
  return LossTerms(per, normalizer, counted)


def ctc_loss(
    log_probs: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    input_lengths: jax.typing.ArrayLike,
    target_lengths: jax.typing.ArrayLike,
    *,
    blank: int = 0,
    reduction: Reduction = "mean",
    zero_infinity: bool = False,
    batch_first: bool = False,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Connectionist temporal classification loss, as ``torch.nn.functional.ctc_loss``.

  The negative log-likelihood of the target sequence :math:`y` summed over
  every alignment :math:`\pi` of :math:`T_n` frames that collapses to it
  (merge repeats, then drop blanks, :math:`\mathcal{B}(\pi) = y`):

  .. math::
    \ell_n = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_n)} \prod_{t=1}^{T_n} p_t(\pi_t),
    \qquad \mathrm{mean} = \frac{1}{N} \sum_n \frac{\ell_n}{\max(S_n, 1)}

  Computed in log space with a forward (alpha) recursion over the frames, in
  float32 or wider. An impossible alignment (too few frames, counting a
  blank between repeated labels) gives ``inf``; with ``zero_infinity`` a loss
  of 0 with a zero gradient. The gradient is the true derivative with respect
  to ``log_probs``, also for unnormalized inputs (torch's backward assumes
  ``log_probs`` is normalized, pytorch/pytorch#52241); through
  ``log_softmax`` it equals torch's gradient for the logits. Frames past
  ``input_lengths`` and labels past ``target_lengths`` get a zero gradient.
  The loss is clamped at 0 (rounding can make it ``-1e-8`` when
  :math:`p(y) \approx 1`), in value only.

  Args:
    log_probs: floating ``(T, N, C)`` log-probabilities (``log_softmax`` of
      the logits), ``(N, T, C)`` with ``batch_first=True`` (what Flax and
      Haiku models produce), or unbatched ``(T, C)``; bf16/f16 are computed in
      float32.
    targets: integer labels in ``[0, C)``, never ``blank``: padded ``(N, S)``
      (``(S,)`` unbatched), or the ``N`` sequences concatenated, 1-D of length
      ``sum(target_lengths)``.
    input_lengths: ``(N,)`` integers in ``[0, T]`` (array, tuple or list; a
      scalar unbatched): frames per sequence.
    target_lengths: ``(N,)`` integers: labels per sequence, at most ``S``.
    blank: the blank's class index, in ``[0, C)``.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    zero_infinity: infinite losses (impossible alignments) become 0, with a
      zero gradient.
    batch_first: ``log_probs`` is ``(N, T, C)``.
    where: optional boolean ``(N,)`` mask; False sequences leave the sum and
      the mean's denominator and get a zero gradient.

  Returns:
    A scalar, or ``(N,)`` per-sequence losses for ``'none'`` (a scalar
    unbatched), in ``promote_types(log_probs.dtype, float32)``. Bad lengths or
    labels under ``jit`` (where they cannot raise) make that sequence's loss NaN.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxnll
    >>> log_probs = jax.nn.log_softmax(jnp.zeros((4, 1, 3)))  # T=4 frames, N=1, C=3
    >>> jaxnll.ctc_loss(log_probs, jnp.array([[1, 2]]), [4], [2], reduction="sum")
    Array(1.686399, dtype=float32)

  References:
    Graves et al, `Connectionist temporal classification: labelling
    unsegmented sequence data with recurrent neural networks
    <https://dl.acm.org/doi/abs/10.1145/1143844.1143891>`_, 2006
  """
  red = v.check_reduction(reduction)
  t = ctc_loss_terms(
      log_probs, targets, input_lengths, target_lengths, blank=blank, reduction=red,
      zero_infinity=zero_infinity, batch_first=batch_first, where=where,
  )
  return _reduction.reduce(t.per_element, t.normalizer, red)


@register()
@dataclasses.dataclass(frozen=True, eq=False)
class CTCLoss(LossObject):
  """``torch.nn.CTCLoss``: :func:`jaxnll.ctc_loss` with its options bound.

  In a training batch (``jaxnll.training``), the loss reads
  ``batch["targets"]`` (padded ``(N, S)``), ``batch["input_lengths"]``,
  ``batch["target_lengths"]`` and optionally ``batch["where"]``; the accuracy
  metric is greedy-decoded sequence accuracy.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.CTCLoss(blank=0, batch_first=True)
    >>> log_probs = jax.nn.log_softmax(jnp.zeros((1, 4, 3)))  # N=1, T=4, C=3
    >>> loss(log_probs, jnp.array([[1, 2]]), [4], [2])
    Array(0.8431995, dtype=float32)
  """

  blank: int = 0
  reduction: Reduction = "mean"
  zero_infinity: bool = False
  _: dataclasses.KW_ONLY
  batch_first: bool = False

  def __post_init__(self) -> None:
    if isinstance(self.blank, bool) or not isinstance(self.blank, numbers.Integral):
      raise TypeError(f"`blank` must be an int, got {self.blank!r}.")
    if self.blank < 0:
      raise ValueError(f"`blank` must be >= 0 (a class index), got {self.blank}.")
    set_field(self, "blank", int(self.blank))
    set_field(self, "reduction", v.check_reduction(self.reduction))
    set_field(self, "zero_infinity", _check_flag("zero_infinity", self.zero_infinity))
    set_field(self, "batch_first", _check_flag("batch_first", self.batch_first))

  def terms(self, log_probs, targets, input_lengths, target_lengths, *, where=None) -> LossTerms:
    """Per-sequence losses and normalizer shares, before reduction."""
    return ctc_loss_terms(
        log_probs, targets, input_lengths, target_lengths, blank=self.blank, reduction=self.reduction,
        zero_infinity=self.zero_infinity, batch_first=self.batch_first, where=where,
    )

  def batch_terms(self, outputs: Any, batch: Mapping[str, Any]) -> LossTerms:
    """The terms of ``outputs`` (log-probs) against ``batch``'s targets and lengths."""
    return self.terms(
        outputs, batch["targets"], batch["input_lengths"], batch["target_lengths"], where=batch.get("where")
    )

  def batch_hits(self, outputs: Any, batch: Mapping[str, Any], counted: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sequences decoded exactly, sequences counted)`` with greedy decoding."""
    labels, lengths = ctc_greedy_decode(outputs, batch["input_lengths"], blank=self.blank,
                                        batch_first=self.batch_first)
    hit = sequences_equal(labels, lengths, batch["targets"], batch["target_lengths"])
    counted = counted.reshape(hit.shape)
    return jnp.sum(counted & hit).astype(jnp.float32), jnp.sum(counted).astype(jnp.float32)


# --------------------------------------------------------------------------
# Decoding and error rates


def ctc_greedy_decode(
    log_probs: jax.typing.ArrayLike,
    input_lengths: jax.typing.ArrayLike,
    *,
    blank: int = 0,
    batch_first: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """Best-path decoding: the most likely class per frame, repeats merged, blanks dropped.

  Args:
    log_probs: ``(T, N, C)`` (``(N, T, C)`` with ``batch_first``) scores; any
      monotone transform of the probabilities (logits too) decodes the same.
    input_lengths: ``(N,)`` integers in ``[0, T]``: frames per sequence.
    blank: the blank's class index.
    batch_first: ``log_probs`` is ``(N, T, C)``.

  Returns:
    ``(labels, lengths)``: int32 ``(N, T)`` labels, left-aligned and padded
    with ``-1`` past each sequence's length, and int32 ``(N,)`` lengths.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxnll
    >>> frames = jnp.array([1, 1, 0, 1, 2, 2, 0])  # classes per frame, blank 0
    >>> labels, lengths = jaxnll.ctc_greedy_decode(jax.nn.one_hot(frames, 3)[:, None], [7])
    >>> labels[0, : lengths[0]]
    Array([1, 1, 2], dtype=int32)
  """
  lp = v.as_array("log_probs", log_probs)
  bf = _check_flag("batch_first", batch_first)
  if lp.ndim != 3:
    raise ValueError(f"`log_probs` must be (T, N, C) (or (N, T, C) with batch_first=True), got shape {lp.shape}.")
  best = jnp.argmax(lp, axis=-1).astype(jnp.int32)
  if not bf:
    best = best.T
  batch, frames = best.shape
  b = _check_blank(blank, lp.shape[-1])
  lengths_in, bad = bounded_integers(
      "input_lengths", _lengths("input_lengths", input_lengths, batch, False), 0, frames, f"in [0, {frames}]"
  )
  del bad  # clipped; a decode has no NaN to give
  return _best_path(best, lengths_in, blank=b)


@functools.partial(jax.jit, static_argnames=("blank",))
def _best_path(best: jax.Array, lengths_in: jax.Array, *, blank: int) -> tuple[jax.Array, jax.Array]:
  batch, frames = best.shape
  b = blank
  previous = jnp.concatenate([jnp.full((batch, 1), -1, jnp.int32), best[:, :-1]], axis=1)
  keep = (best != b) & (best != previous) & (jnp.arange(frames, dtype=jnp.int32)[None, :] < lengths_in[:, None])
  position = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, frames)
  rows = jnp.broadcast_to(jnp.arange(batch, dtype=jnp.int32)[:, None], (batch, frames))
  labels = jnp.full((batch, frames), DECODE_PAD, jnp.int32).at[rows, position].set(best, mode="drop")
  return labels, jnp.sum(keep, axis=1).astype(jnp.int32)


def _sequences(name: str, seqs: Any, lengths: Any) -> tuple[jax.Array, jax.Array]:
  s = v.as_target_array(name, seqs)
  v.check_integer(name, s)
  if s.ndim != 2:
    raise ValueError(f"`{name}` must be padded (N, S), got shape {s.shape}.")
  n, width = s.shape
  lname = "target_lengths" if name == "targets" else "predicted_lengths"
  ln = v.as_target_array(lname, lengths)
  v.check_integer(lname, ln)
  if ln.shape != (n,):
    raise ValueError(f"`{lname}` must have shape ({n},), got shape {ln.shape}.")
  clipped, _ = bounded_integers(lname, ln, 0, width, f"in [0, {width}]")
  return jnp.asarray(s).astype(jnp.int32), clipped


def sequences_equal(
    predicted: jax.typing.ArrayLike, predicted_lengths: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike, target_lengths: jax.typing.ArrayLike,
) -> jax.Array:
  """``(N,)`` booleans: is each predicted sequence exactly its target (padding ignored)?"""
  p, pl = _sequences("predicted", predicted, predicted_lengths)
  t, tl = _sequences("targets", targets, target_lengths)
  width = max(p.shape[1], t.shape[1])
  p = jnp.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=DECODE_PAD)
  t = jnp.pad(t, ((0, 0), (0, width - t.shape[1])), constant_values=DECODE_PAD)
  inside = jnp.arange(width, dtype=jnp.int32)[None, :] < tl[:, None]
  return (pl == tl) & jnp.all(jnp.where(inside, p == t, True), axis=1)


def edit_distances(
    predicted: jax.typing.ArrayLike, predicted_lengths: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike, target_lengths: jax.typing.ArrayLike,
) -> jax.Array:
  """``(N,)`` int32 Levenshtein distances (insertions, deletions, substitutions) between padded sequences.

  One ``lax.scan`` over the predicted positions, vectorized over the batch;
  each row of the table is a running minimum (``lax.cummin``), so it jits.
  """
  p, pl = _sequences("predicted", predicted, predicted_lengths)
  t, tl = _sequences("targets", targets, target_lengths)
  return _levenshtein(p, pl, t, tl)


@jax.jit
def _levenshtein(p: jax.Array, pl: jax.Array, t: jax.Array, tl: jax.Array) -> jax.Array:
  n, width = t.shape
  cols = jnp.arange(width + 1, dtype=jnp.int32)
  first = jnp.broadcast_to(cols, (n, width + 1))

  def row(prev, x):
    i, symbol = x
    cost = (symbol[:, None] != t).astype(jnp.int32)
    through = jnp.minimum(prev[:, 1:] + 1, prev[:, :-1] + cost)
    e = jnp.concatenate([jnp.full((n, 1), i + 1, jnp.int32), through], axis=1)
    new = lax.cummin(e - cols[None, :], axis=1) + cols[None, :]
    return jnp.where((i < pl)[:, None], new, prev), None

  table, _ = lax.scan(row, first, (jnp.arange(p.shape[1], dtype=jnp.int32), p.T))
  return jnp.take_along_axis(table, tl[:, None], axis=1)[:, 0]


def ctc_error_rate(
    predicted: jax.typing.ArrayLike, predicted_lengths: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike, target_lengths: jax.typing.ArrayLike,
    *, where: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:
  """``(edits, reference_length)``: summed edit distance and summed target length (int32 scalars).

  Their ratio is the label (character / word) error rate; sum both over
  batches first and divide once for the exact rate of a whole set.

  Args:
    predicted: ``(N, P)`` integer labels, e.g. from :func:`ctc_greedy_decode`.
    predicted_lengths: ``(N,)`` integers in ``[0, P]``.
    targets: ``(N, S)`` padded integer labels.
    target_lengths: ``(N,)`` integers in ``[0, S]``.
    where: optional boolean ``(N,)`` mask of the sequences to count.

  Returns:
    ``(edits, reference_length)``, int32 scalars.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.ctc_error_rate(jnp.array([[1, 2, 3]]), [3], jnp.array([[1, 3, 3, 4]]), [4])
    (Array(2, dtype=int32), Array(4, dtype=int32))
  """
  d = edit_distances(predicted, predicted_lengths, targets, target_lengths)
  _, tl = _sequences("targets", targets, target_lengths)
  mask = v.check_where(where, d.shape, "one entry per sequence")
  if mask is not None:
    d, tl = jnp.where(mask, d, 0), jnp.where(mask, tl, 0)
  return jnp.sum(d).astype(jnp.int32), jnp.sum(tl).astype(jnp.int32)
