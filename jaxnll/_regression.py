"""Regression and likelihood losses: L1, MSE, Huber, smooth L1, Poisson and Gaussian NLL.

Plain autodiff throughout, with the gradients torch gives at the kinks:
:func:`abs_error` has slope 0 where the error is 0 (``jax.grad(jnp.abs)(0.)``
is 1), and the Gaussian NLL clamps ``var`` at ``eps`` through a
``stop_gradient`` identity, so the gradient passes straight through the clamp
as under torch's ``no_grad`` and forward mode keeps working.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxnll import _reduction
from jaxnll import _validation as v
from jaxnll._elementwise import elements, floating_input, known, times_zero_safe
from jaxnll._loss_base import LossTerms
from jaxnll._reduction import Reduction
from jaxnll._targets import run_time_check

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

# --------------------------------------------------------------------------
# Kernels (``d`` is input - targets)


def abs_error(d: jax.Array) -> jax.Array:
  """``|d|`` with torch's L1 gradient ``sign(d)``: 0 at ``d = 0`` and where ``d`` is NaN."""
  sign = (d > 0).astype(d.dtype) - (d < 0).astype(d.dtype)
  return d * sign


def huber(d: jax.Array, delta: jax.typing.ArrayLike) -> jax.Array:
  """``0.5 d²`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``; finite slopes at ``|d| = inf``."""
  a = d * jnp.sign(d)  # slope sign(d): NaN stays NaN, as in torch's huber_loss
  small = a < delta
  dq = jnp.where(small, d, jnp.zeros((), d.dtype))  # the unused branch stays finite
  return jnp.where(small, 0.5 * dq * dq, delta * (a - 0.5 * delta))


def smooth_l1(d: jax.Array, beta: float) -> jax.Array:
  """``0.5 d² / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``; L1 for ``beta = 0``, as in torch."""
  if beta == 0:
    return abs_error(d)
  a = d * jnp.sign(d)
  small = a < beta
  dq = jnp.where(small, d, jnp.zeros((), d.dtype))
  return jnp.where(small, 0.5 * dq * dq / beta, a - 0.5 * beta)


def poisson_nll(x: jax.Array, t: jax.Array, log_input: bool, full: bool, eps: float) -> jax.Array:
  """``e^x - t x`` (or ``x - t log(x + eps)``), plus Stirling's ``t log t - t + 0.5 log(2π t)`` where ``t > 1``."""
  if log_input:
    loss = jnp.exp(x) - times_zero_safe(t, x)
  else:
    loss = x - times_zero_safe(t, jnp.log(x + eps))
  if full:
    large = t > 1
    ts = jnp.where(large, t, jnp.full((), 2, t.dtype))  # keeps the unused branch's gradient finite
    stirling = ts * jnp.log(ts) - ts + 0.5 * jnp.log(2 * math.pi * ts)
    loss = loss + jnp.where(large, stirling, jnp.zeros((), t.dtype))
  return loss


def gaussian_nll(x: jax.Array, t: jax.Array, var: jax.Array, full: bool, eps: float) -> jax.Array:
  """``0.5 (log max(var, eps) + (x - t)² / max(var, eps))``; NaN for a negative ``var``.

  The clamp's value is ``eps`` but its derivative is 1, as in torch, which
  clamps under ``no_grad``.
  """
  clamped = jnp.where(var < eps, eps + (var - jax.lax.stop_gradient(var)), var)
  clamped = clamped * jnp.where(var < 0, jnp.nan, 1.0)  # a scale, so the tangent is NaN too
  loss = 0.5 * (jnp.log(clamped) + (x - t) ** 2 / clamped)
  return loss + _HALF_LOG_2PI if full else loss


# --------------------------------------------------------------------------
# Unreduced forms, shared by the functions and the loss objects


def l1_loss_terms(input, targets, *, weight=None, where=None) -> LossTerms:
  """The unreduced form of :func:`l1_loss`."""
  e = elements(input, targets, where, input_name="input")
  per = abs_error(e.safe(e.input, 0.0) - e.safe(e.targets, 0.0))
  w = e.weight("weight", weight)
  return e.terms(per if w is None else per * w, w)


def mse_loss_terms(input, targets, *, weight=None, where=None) -> LossTerms:
  """The unreduced form of :func:`mse_loss`."""
  e = elements(input, targets, where, input_name="input")
  d = e.safe(e.input, 0.0) - e.safe(e.targets, 0.0)
  w = e.weight("weight", weight)
  return e.terms(d * d if w is None else d * d * w, w)


def huber_loss_terms(input, targets, *, delta=1.0, weight=None, where=None) -> LossTerms:
  """The unreduced form of :func:`huber_loss`."""
  dl = v.check_positive("delta", delta)
  e = elements(input, targets, where, input_name="input")
  per = huber(e.safe(e.input, 0.0) - e.safe(e.targets, 0.0), dl)
  w = e.weight("weight", weight)
  return e.terms(per if w is None else per * w)


def smooth_l1_loss_terms(input, targets, *, beta=1.0, where=None) -> LossTerms:
  """The unreduced form of :func:`smooth_l1_loss`."""
  b = v.check_nonnegative("beta", beta)
  e = elements(input, targets, where, input_name="input")
  return e.terms(smooth_l1(e.safe(e.input, 0.0) - e.safe(e.targets, 0.0), b))


def poisson_nll_loss_terms(input, targets, *, log_input=True, full=False, eps=1e-8, where=None) -> LossTerms:
  """The unreduced form of :func:`poisson_nll_loss`."""
  li = v.check_flag("log_input", log_input)
  fl = v.check_flag("full", full)
  ep = v.check_positive("eps", eps)
  e = elements(input, targets, where, input_name="input")
  x = e.safe(e.input, 0.0 if li else 1.0)
  return e.terms(poisson_nll(x, e.safe(e.targets, 0.0), li, fl, ep))


def _broadcast_var(var: object, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
  """``var`` brought to the input's shape by torch's rules.

  A Python number applies to every element. An array must have the input's
  shape, its shape without the last axis (one variance per row), or its
  number of dimensions with exactly one axis of size 1 where the input's
  differs.
  """
  if isinstance(var, (int, float)) and not isinstance(var, bool):
    if var < 0:
      raise ValueError("var has negative entry/entries")
    return jnp.full(shape, var, dtype)
  arr = v.as_value_array("var", var, dtype)  # a known var stays known for the sign check
  with jax.ensure_compile_time_eval():
    if arr.shape == shape:
      return arr
    if arr.shape == shape[:-1]:
      return jnp.broadcast_to(arr[..., None], shape)
    mismatched = [s for s, vs in zip(arr.shape, shape, strict=False) if s != vs]
    if arr.ndim == len(shape) and mismatched == [1]:
      return jnp.broadcast_to(arr, shape)
  raise ValueError(
      f"var is of incorrect size: `var` of shape {arr.shape} does not fit `input` of shape {shape}; "
      f"expected {shape}, {shape[:-1]}, or {len(shape)} dimension(s) with one of them 1 where the "
      f"input's is not."
  )


def gaussian_nll_loss_terms(input, targets, var, *, full=False, eps=1e-6, where=None) -> LossTerms:
  """The unreduced form of :func:`gaussian_nll_loss`."""
  fl = v.check_flag("full", full)
  ep = v.check_positive("eps", eps)
  x = floating_input("input", input)
  e = elements(x, targets, where, input_name="input", broadcast_targets=True)
  var_b = _broadcast_var(var, x.shape, e.dtype)
  if var_b.shape != e.shape:  # targets larger than the input: the variances follow the input
    with jax.ensure_compile_time_eval():
      var_b = jnp.broadcast_to(var_b, e.shape)
  with jax.ensure_compile_time_eval():
    negative = var_b < 0
    if e.counted is not None:
      negative = negative & e.counted
    any_negative = jnp.any(negative)
  if not known(var_b, e.counted):
    run_time_check(negative, var_b, ValueError, "var has negative entry/entries")
  elif jax.device_get(any_negative):
    raise ValueError("var has negative entry/entries")
  per = gaussian_nll(e.safe(e.input, 0.0), e.safe(e.targets, 0.0), e.safe(var_b, 1.0), fl, ep)
  return e.terms(per)


# --------------------------------------------------------------------------
# torch-style functions


def l1_loss(
    input: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weight: jax.typing.ArrayLike | None = None,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Absolute error, as ``torch.nn.functional.l1_loss``.

  .. math::
    \ell = w\, |x - t|, \qquad
    \mathrm{mean} = \frac{\sum \ell}{\sum w}

  Without ``weight``, ``'mean'`` divides by the number of counted elements;
  with it, by the sum of the counted elements' weights (torch 2.x). The
  gradient at :math:`x = t` is 0, as in torch.

  Args:
    input: floating predictions, any shape; bf16/f16 are computed in float32.
    targets: targets of the same shape (floating, integer or bool).
    weight: optional floating weights broadcastable to ``input``'s shape
      (torch takes only its full shape).
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to ``input``'s shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or ``input``'s shape for ``'none'``, in
    ``promote_types(input.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.l1_loss(jnp.array([1.0, 2.0, 4.0]), jnp.array([1.5, 2.0, 1.0]), weight=jnp.array([1.0, 1.0, 2.0]))
    Array(1.625, dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = l1_loss_terms(input, targets, weight=weight, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, red)


def mse_loss(
    input: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weight: jax.typing.ArrayLike | None = None,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Squared error, as ``torch.nn.functional.mse_loss``.

  .. math::
    \ell = w\, (x - t)^2, \qquad
    \mathrm{mean} = \frac{\sum \ell}{\sum w}

  Without ``weight``, ``'mean'`` divides by the number of counted elements;
  with it, by the sum of the counted elements' weights (torch 2.x).

  Args:
    input: floating predictions, any shape; bf16/f16 are computed in float32.
    targets: targets of the same shape (floating, integer or bool).
    weight: optional floating weights broadcastable to ``input``'s shape
      (torch takes only its full shape).
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to ``input``'s shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or ``input``'s shape for ``'none'``, in
    ``promote_types(input.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.mse_loss(jnp.array([1.0, 2.0, 4.0]), jnp.array([1.5, 2.0, 1.0]))
    Array(3.0833333, dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = mse_loss_terms(input, targets, weight=weight, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, red)


def huber_loss(
    input: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    delta: float = 1.0,
    weight: jax.typing.ArrayLike | None = None,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Huber loss, as ``torch.nn.functional.huber_loss``.

  .. math::
    \ell = w \begin{cases}
      \tfrac12 (x - t)^2 & |x - t| < \delta \\
      \delta \left(|x - t| - \tfrac12 \delta\right) & \text{otherwise}
    \end{cases}

  ``'mean'`` divides by the number of counted elements, with or without
  ``weight`` (torch's choice, unlike :func:`mse_loss`).

  Args:
    input: floating predictions, any shape; bf16/f16 are computed in float32.
    targets: targets of the same shape (floating, integer or bool).
    delta: the threshold :math:`\delta`, finite and > 0.
    weight: optional floating weights broadcastable to ``input``'s shape.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to ``input``'s shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or ``input``'s shape for ``'none'``, in
    ``promote_types(input.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.huber_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]), reduction="none")
    Array([0.125, 2.5  ], dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = huber_loss_terms(input, targets, delta=delta, weight=weight, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, red)


def smooth_l1_loss(
    input: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    beta: float = 1.0,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Smooth L1 loss, as ``torch.nn.functional.smooth_l1_loss``.

  .. math::
    \ell = \begin{cases}
      \tfrac12 (x - t)^2 / \beta & |x - t| < \beta \\
      |x - t| - \tfrac12 \beta & \text{otherwise}
    \end{cases}

  ``beta = 0`` is :func:`l1_loss` (gradient 0 where :math:`x = t`), as in torch.

  Args:
    input: floating predictions, any shape; bf16/f16 are computed in float32.
    targets: targets of the same shape (floating, integer or bool).
    beta: the threshold :math:`\beta`, finite and >= 0.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to ``input``'s shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or ``input``'s shape for ``'none'``, in
    ``promote_types(input.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]), beta=2.0, reduction="none")
    Array([0.0625, 2.    ], dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = smooth_l1_loss_terms(input, targets, beta=beta, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, red)


def poisson_nll_loss(
    input: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Poisson negative log-likelihood, as ``torch.nn.functional.poisson_nll_loss``.

  .. math::
    \ell = e^{x} - t x \quad (\texttt{log\_input}), \qquad
    \ell = x - t \log(x + \epsilon) \quad (\text{otherwise})

  With ``full``, Stirling's approximation of :math:`\log t!`,
  :math:`t \log t - t + \tfrac12 \log(2 \pi t)`, is added where :math:`t > 1`
  (and nothing elsewhere), as in torch. A target of 0 contributes no
  :math:`t x` term even where the log-rate is infinite.

  Args:
    input: floating log-rates (rates when ``log_input=False``), any shape;
      bf16/f16 are computed in float32.
    targets: observed counts of the same shape (floating, integer or bool).
    log_input: whether ``input`` is the log of the rate.
    full: add the Stirling term.
    eps: added to the rate inside the log when ``log_input=False``; > 0.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to ``input``'s shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or ``input``'s shape for ``'none'``, in
    ``promote_types(input.dtype, float32)``.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.poisson_nll_loss(jnp.array([0.0, 1.0, 2.0]), jnp.array([1.0, 3.0, 5.0]), full=True)
    Array(1.5474223, dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = poisson_nll_loss_terms(input, targets, log_input=log_input, full=full, eps=eps, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, red)


def gaussian_nll_loss(
    input: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    var: jax.typing.ArrayLike,
    *,
    full: bool = False,
    eps: float = 1e-6,
    reduction: Reduction = "mean",
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  r"""Gaussian negative log-likelihood, as ``torch.nn.functional.gaussian_nll_loss``.

  .. math::
    \ell = \tfrac12 \left(\log \max(\mathrm{var}, \epsilon)
      + \frac{(x - t)^2}{\max(\mathrm{var}, \epsilon)}\right)
      \;\left(+ \tfrac12 \log 2\pi \text{ with } \texttt{full}\right)

  The clamp at :math:`\epsilon` passes the gradient straight through, as in
  torch (which clamps under ``no_grad``).

  Args:
    input: floating predicted means, any shape; bf16/f16 are computed in float32.
    targets: targets (floating, integer or bool) broadcastable with ``input``,
      as in torch (``(1,)`` or ``()`` against ``(5,)``, ``(5,)`` against
      ``(5, 5)``); the loss has their broadcast shape, and the gradient
      with respect to ``targets`` is summed back to their own shape.
    var: predicted variances, by torch's rules: a Python number, an array of
      ``input``'s shape, of ``input.shape[:-1]`` (one variance per row), or
      with ``input``'s number of dimensions and one axis of size 1 where the
      input's is not. Differentiable.
    full: add the constant :math:`\tfrac12 \log 2\pi`.
    eps: the clamp :math:`\epsilon`, > 0.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'safe_mean'``.
    where: optional boolean mask broadcastable to the loss's shape; False
      elements leave the sum and the mean's denominator.

  Returns:
    A scalar, or the broadcast shape of ``input`` and ``targets`` for
    ``'none'``, in ``promote_types(input.dtype, float32)``.

  Raises:
    ValueError: for a ``var`` shape torch refuses, and for a concrete ``var``
      with a negative entry (``var has negative entry/entries``, as torch).
      Under ``jit`` a negative variance gives a NaN loss and gradient.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> jaxnll.gaussian_nll_loss(jnp.array([1.0, 2.0]), jnp.array([1.5, 1.0]), jnp.array([0.5, 2.0]))
    Array(0.25, dtype=float32)
  """
  red = v.check_reduction(reduction)
  t = gaussian_nll_loss_terms(input, targets, var, full=full, eps=eps, where=where)
  return _reduction.reduce(t.per_element, t.normalizer, red)
