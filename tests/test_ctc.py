"""CTC against real torch 2.13 ``F.ctc_loss``: values, gradients, layouts, transformations, bad input.

Few programs are compiled: one shape pool (T=16, N=8, C=6, S=5) and one
jitted function per option set, reused over many cases.
"""

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_grads

from jaxnll import _reduction
from jaxnll._ctc import (
    CTCLoss,
    alpha_recursion,
    ctc_error_rate,
    ctc_greedy_decode,
    ctc_loss,
    edit_distances,
    extended_label_logprobs,
    sequence_nll,
    sequence_nll_of_emissions,
    skip_allowed,
)
from jaxnll.training import make_grad_fn

T, N, C, S = 16, 8, 6, 5
REDUCTIONS = ("none", "mean", "sum", "safe_mean")


def _case(seed, blank=0, num_classes=C):
  """A padded batch holding the awkward cases, one per row:

  0 repeated labels (a blank needed between them), 1 target length 0, 2 the minimal feasible input
  length (labels + repeats), 3 infeasible (too few frames), 4 input length 0 with target length 0,
  5 infeasible by repeats, 6-7 random. Padded labels hold arbitrary values, blanks included.
  """
  rng = np.random.default_rng(seed)
  labels = [c for c in range(num_classes) if c != blank]
  targets = rng.choice(labels, (N, S))
  targets[0] = [labels[0]] * 3 + [labels[-1]] * 2
  targets[2, :4] = [labels[0], labels[0], labels[-1], labels[0]]
  targets[5, :3] = [labels[-1]] * 3
  target_lengths = np.array([5, 0, 4, 4, 0, 3, rng.integers(1, S + 1), S])
  input_lengths = np.array([T, 11, 5, 3, 0, 4, rng.integers(S + 3, T + 1), T])
  pad = np.arange(S)[None, :] >= target_lengths[:, None]
  targets = np.where(pad, rng.integers(0, num_classes, (N, S)), targets)
  logits = rng.standard_normal((T, N, num_classes)) * 1.5
  return logits, targets, input_lengths, target_lengths


FEASIBLE = np.array([True, True, True, False, True, False, True, True])


def _torch(logits, targets, input_lengths, target_lengths, *, blank=0, reduction="none", zero_infinity=False):
  """torch's loss and its gradient w.r.t. the logits (through log_softmax) of the loss summed."""
  x = torch.tensor(logits, requires_grad=True)
  loss = F.ctc_loss(
      torch.log_softmax(x, -1), torch.tensor(np.asarray(targets, np.int64)), torch.tensor(np.asarray(input_lengths)),
      torch.tensor(np.asarray(target_lengths)), blank=blank, reduction=reduction, zero_infinity=zero_infinity,
  )
  loss.sum().backward()
  return loss.detach().numpy(), x.grad.numpy()


def _torch_log_probs(lp, targets, input_lengths, target_lengths, **kwargs):
  """torch's loss of ``lp`` as given (no log_softmax) and its gradient w.r.t. ``lp`` of the loss summed."""
  x = torch.tensor(np.asarray(lp), requires_grad=True)
  loss = F.ctc_loss(x, torch.tensor(np.asarray(targets, np.int64)), torch.tensor(np.asarray(input_lengths)),
                    torch.tensor(np.asarray(target_lengths)), **kwargs)
  loss.sum().backward()
  return loss.detach().numpy(), x.grad.numpy()


@functools.cache
def _all_reductions(blank, zero_infinity):
  """One jitted program per option set: every reduction and the gradient w.r.t. the logits, lengths traced."""

  def f(logits, targets, input_lengths, target_lengths):
    def loss(x, reduction):
      return ctc_loss(jax.nn.log_softmax(x), targets, input_lengths, target_lengths, blank=blank,
                      reduction=reduction, zero_infinity=zero_infinity)

    values = {r: loss(logits, r) for r in REDUCTIONS}
    grad = jax.grad(lambda x: jnp.sum(loss(x, "none")))(logits)
    return values, grad

  return jax.jit(f)


def _close(a, b, dtype):
  tol = 1e-12 if dtype == np.float64 else 2e-5
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


@pytest.mark.parametrize(("blank", "dtype"), [(0, np.float64), (3, np.float32), (C - 1, np.float64)])
def test_every_reduction_and_gradient_match_torch(blank, dtype):
  fn = _all_reductions(blank, True)
  for seed in range(3):
    logits, targets, il, tl = _case(seed, blank)
    logits = logits.astype(dtype)
    values, grad = fn(logits, targets, il, tl)
    for reduction in REDUCTIONS:
      ref, _ = _torch(logits, targets, il, tl, blank=blank, reduction=reduction.replace("safe_", ""),
                      zero_infinity=True)
      assert values[reduction].dtype == dtype
      _close(values[reduction], ref, dtype)
    ref, ref_grad = _torch(logits, targets, il, tl, blank=blank, zero_infinity=True)
    # zero_infinity: the infeasible rows are 0, as is the empty sequence over no frames (p = 1).
    assert np.array_equal(np.asarray(values["none"]) == 0, ~FEASIBLE | (il == 0))
    _close(grad, ref_grad, dtype)
    assert np.all(np.asarray(grad)[:, ~FEASIBLE] == 0)


def test_infeasible_is_inf_and_poisons_nothing():
  fn = _all_reductions(0, False)
  logits, targets, il, tl = _case(7)
  values, grad = fn(logits, targets, il, tl)
  ref, _ = _torch(logits, targets, il, tl)
  assert np.array_equal(np.isinf(ref), ~FEASIBLE)
  _close(values["none"], ref, np.float64)
  assert np.isposinf(values["mean"]) and np.isposinf(values["sum"])
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[:, ~FEASIBLE] == 0)
  _, feasible_grad = _torch(logits[:, FEASIBLE], targets[FEASIBLE], il[FEASIBLE], tl[FEASIBLE])
  _close(np.asarray(grad)[:, FEASIBLE], feasible_grad, np.float64)


def test_two_classes_blank_last():
  for blank in (1,):
    logits, targets, il, tl = _case(11, blank, num_classes=2)
    ref, ref_grad = _torch(logits, targets, il, tl, blank=blank, zero_infinity=True)
    values, grad = _all_reductions(blank, True)(logits, targets, il, tl)
    _close(values["none"], ref, np.float64)
    _close(grad, ref_grad, np.float64)


def test_layouts_concatenated_unbatched_batch_first():
  logits, targets, il, tl = _case(3)
  lp = np.asarray(jax.nn.log_softmax(jnp.asarray(logits)))
  padded = ctc_loss(lp, targets, il, tl, reduction="none")
  concat = np.concatenate([targets[n, : tl[n]] for n in range(N)])
  ref = F.ctc_loss(torch.tensor(lp), torch.tensor(concat), torch.tensor(il), torch.tensor(tl), reduction="none")
  _close(ctc_loss(lp, concat, tuple(il), list(tl), reduction="none"), ref.numpy(), np.float64)
  _close(padded, ref.numpy(), np.float64)
  _close(ctc_loss(lp.transpose(1, 0, 2), targets, il, tl, reduction="none", batch_first=True), padded, np.float64)
  # Concatenated targets with traced lengths, and more targets than the lengths use.
  traced = jax.jit(lambda a, b, c, d: ctc_loss(a, b, c, d, reduction="none"))
  _close(traced(lp, np.concatenate([concat, [1, 2]]), il, tl), padded, np.float64)
  for n in (0, 1, 2, 6):
    ref_n = F.ctc_loss(torch.tensor(lp[:, n]), torch.tensor(targets[n, : tl[n]]), torch.tensor(il[n]),
                       torch.tensor(tl[n]), reduction="sum")
    for reduction in ("none", "sum", "mean"):
      out = ctc_loss(lp[:, n], targets[n], il[n], tl[n], reduction=reduction)
      assert out.shape == ()
      _close(out, ref_n.numpy() / (max(tl[n], 1) if reduction == "mean" else 1), np.float64)


def test_long_inputs_do_not_underflow():
  rng = np.random.default_rng(5)
  t, s = 2000, 200
  targets = rng.integers(1, 8, (2, s))
  logits = rng.standard_normal((t, 2, 8)).astype(np.float32) * 2
  il, tl = np.array([t, 1500]), np.array([s, 150])
  ref, ref_grad = _torch(logits.astype(np.float64), targets, il, tl, reduction="sum")
  assert ref > 4000  # p(y) about exp(-4000): far below float32's range, and float64's
  value, grad = jax.jit(jax.value_and_grad(
      lambda x, a, b, c: ctc_loss(jax.nn.log_softmax(x), a, b, c, reduction="sum")))(logits, targets, il, tl)
  assert value.dtype == np.float32
  np.testing.assert_allclose(value, ref, rtol=2e-5)
  # float32's rounding over 2000 frames, measured against torch's own float32 error.
  _, torch32_grad = _torch(logits, targets, il, tl, reduction="sum")
  torch32_error = np.abs(torch32_grad - ref_grad).max()
  assert np.abs(np.asarray(grad) - ref_grad).max() <= 2 * torch32_error + 1e-5, torch32_error


def test_half_precision_inputs_accumulate_in_float32():
  logits, targets, il, tl = _case(4)
  lp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32))
  for dtype in (jnp.bfloat16,):
    low = lp.astype(dtype)
    out = ctc_loss(low, targets, il, tl, reduction="none", zero_infinity=True)
    assert out.dtype == jnp.float32
    ref, _ = _torch_log_probs(np.asarray(low.astype(jnp.float64)), targets, il, tl, zero_infinity=True,
                              reduction="none")
    np.testing.assert_allclose(out, ref, rtol=2e-6, atol=1e-5)
  g = jax.grad(lambda x: jnp.sum(ctc_loss(x, targets, il, tl, zero_infinity=True, reduction="none")))
  grad = g(low)
  assert grad.dtype == jnp.bfloat16
  # The float32 computation's gradient, rounded once at the end.
  np.testing.assert_array_equal(grad, g(low.astype(jnp.float32)).astype(jnp.bfloat16))
  frame_pad = np.arange(T)[:, None] >= il[None, :]
  assert np.all(np.asarray(grad)[frame_pad] == 0)


def _tiny(seed=0):
  rng = np.random.default_rng(seed)
  lp = rng.standard_normal((5, 2, 3)) - 2.0  # unnormalized: no log_softmax anywhere
  return jnp.asarray(lp), np.array([[1, 2], [2, 2]]), np.array([5, 5]), np.array([2, 2])


def test_true_gradient_for_unnormalized_log_probs():
  lp, targets, il, tl = _tiny()
  f = jax.jit(lambda x: ctc_loss(x, targets, il, tl, reduction="sum"))
  check_grads(f, (lp,), order=1, modes=("rev",))
  # torch's backward assumes normalized log_probs (pytorch/pytorch#52241): it is wrong here.
  xt = torch.tensor(np.asarray(lp), requires_grad=True)
  loss = F.ctc_loss(xt, torch.tensor(targets), torch.tensor(il), torch.tensor(tl), reduction="sum")
  loss.backward()
  _close(f(lp), loss.detach().numpy(), np.float64)
  assert np.abs(np.asarray(jax.grad(f)(lp)) - xt.grad.numpy()).max() > 0.1


def test_occupancy_derivative_equals_autodiff_through_the_scan():
  logits, targets, il, tl = _case(17)
  lp = jax.nn.log_softmax(jnp.asarray(logits)) + 0.3  # unnormalized
  labels = jnp.asarray(targets, jnp.int32)
  valid = jnp.arange(T)[:, None] < jnp.asarray(il)[None, :]
  skip = skip_allowed(labels)
  lengths = jnp.asarray(tl, jnp.int32)

  def plain(x):
    alpha, _ = alpha_recursion(extended_label_logprobs(x, labels, 0, 0), valid, skip)
    return jnp.where(FEASIBLE, sequence_nll(alpha, lengths), 0.0)

  def custom(x):
    nll = sequence_nll_of_emissions(extended_label_logprobs(x, labels, 0, 0), valid, skip, lengths)
    return jnp.where(FEASIBLE, nll, 0.0)

  both = jax.jit(lambda x: (jax.jacrev(plain)(x), jax.jacrev(custom)(x)))
  ref, ours = both(lp)
  np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_forward_mode_jacobians_and_hessian():
  lp, targets, il, tl = _tiny(1)
  f = lambda x: ctc_loss(x, targets, il, tl, reduction="none")
  np.testing.assert_allclose(jax.jit(jax.jacfwd(f))(lp), jax.jit(jax.jacrev(f))(lp), rtol=1e-12, atol=1e-14)
  total = lambda x: jnp.sum(f(x))
  # Forward over reverse, against finite differences of the gradient: the Hessian times a vector.
  check_grads(jax.jit(jax.grad(total)), (lp,), order=1, modes=("fwd",))
  h = jax.jit(jax.hessian(total))(lp).reshape(lp.size, lp.size)
  np.testing.assert_allclose(h, h.T, atol=1e-12)
  assert np.all(np.isfinite(h)) and np.abs(h).max() > 0


def test_padding_gets_exactly_zero_gradient_even_holding_nan():
  logits, targets, il, tl = _case(6)
  lp = np.array(jax.nn.log_softmax(jnp.asarray(logits)))
  frame_pad = np.arange(T)[:, None] >= il[None, :]
  lp[frame_pad] = np.nan
  grad_fn = jax.grad(lambda x, m: ctc_loss(x, targets, il, tl, zero_infinity=True, where=m), argnums=0)
  grad = np.asarray(grad_fn(lp, None))
  assert np.all(grad[frame_pad] == 0) and np.all(np.isfinite(grad))
  # Labels past target_lengths: changing them (blank and out-of-range included) changes nothing.
  other = np.where(np.arange(S)[None, :] >= tl[:, None], (targets + 1) % C, targets)
  _close(ctc_loss(lp, other, il, tl, zero_infinity=True, reduction="none"),
         ctc_loss(lp, targets, il, tl, zero_infinity=True, reduction="none"), np.float64)
  # Masked sequences: out of the mean and with zero gradient.
  mask = np.array([True, False, True, False, True, True, False, True])
  out = ctc_loss(lp, targets, il, tl, where=mask)
  per = ctc_loss(lp, targets, il, tl, reduction="none")
  _close(out, np.mean((np.asarray(per) / np.maximum(tl, 1))[mask]), np.float64)
  assert np.all(np.asarray(grad_fn(lp, mask))[:, ~mask] == 0)


def test_never_negative_with_the_derivative_kept():
  lp, targets, il, tl = _tiny(2)
  f = lambda x: ctc_loss(x, targets, il, tl, reduction="sum")
  shifted = lp + 5.0  # every path gains 25 nats: -log p falls below 0
  assert f(shifted) == 0
  # Adding a constant per frame changes -log p by a constant: the derivative is the same.
  np.testing.assert_allclose(jax.grad(f)(shifted), jax.grad(f)(lp), rtol=1e-12)


def test_vmap_and_jit_agree_with_the_batch():
  logits, targets, il, tl = _case(8)
  lp = jax.nn.log_softmax(jnp.asarray(logits))
  batched = ctc_loss(lp, targets, il, tl, reduction="none")
  one = lambda x, y, a, b: ctc_loss(x, y, a, b, reduction="none")
  mapped = jax.vmap(one, in_axes=(1, 0, 0, 0))(lp, jnp.asarray(targets), jnp.asarray(il), jnp.asarray(tl))
  _close(mapped, batched, np.float64)


def test_traced_bad_values_give_nan_for_that_sequence_only():
  fn = _all_reductions(0, True)
  logits, targets, il, tl = _case(9)
  good, _ = fn(logits, targets, il, tl)
  cases = [
      ("input_lengths", 0, T + 1), ("input_lengths", 1, -1), ("target_lengths", 2, S + 1),
      ("target_lengths", 6, -2), ("targets", (0, 1), 0), ("targets", (7, 0), C), ("targets", (7, 2), -1),
  ]
  for what, where, value in cases:
    arrays = {"input_lengths": il.copy(), "target_lengths": tl.copy(), "targets": targets.copy()}
    arrays[what][where] = value
    out, grad = fn(logits, arrays["targets"], arrays["input_lengths"], arrays["target_lengths"])
    row = where if isinstance(where, int) else where[0]
    assert np.isnan(out["none"][row]) and np.isnan(out["mean"]), (what, where, value)
    keep = np.arange(N) != row
    _close(np.asarray(out["none"])[keep], np.asarray(good["none"])[keep], np.float64)
    assert np.all(np.isfinite(np.asarray(grad)[:, keep]))
  # A padded label equal to blank (or out of range) is fine.
  arrays = targets.copy()
  arrays[1, 0] = 0
  out, _ = fn(logits, arrays, il, tl)
  _close(out["none"], good["none"], np.float64)


def test_concrete_bad_input_raises_naming_the_argument():
  logits, targets, il, tl = _case(10)
  lp = jax.nn.log_softmax(jnp.asarray(logits))
  bad = [
      ({"blank": C}, ValueError, r"`blank` must be in \[0, 6\) for 6 classes, got 6"),
      ({"blank": -1}, ValueError, r"`blank` must be in \[0, 6\)"),
      ({"blank": 1.0}, TypeError, "`blank` must be an int"),
      ({"targets": np.where(targets == 2, 0, targets)}, ValueError, "must not contain the blank label 0"),
      ({"targets": np.where(targets == 2, C, targets)}, IndexError, "Target 6 is out of bounds"),
      ({"input_lengths": np.where(il == T, T + 1, il)}, ValueError, r"`input_lengths` must be in \[0, 16\].*got 17"),
      ({"input_lengths": il - 1}, ValueError, "`input_lengths` must be in .*got -1"),
      ({"target_lengths": np.where(tl == S, S + 1, tl)}, ValueError, r"`target_lengths` must be in \[0, 5\].*got 6"),
      ({"input_lengths": il[:4]}, ValueError, r"`input_lengths` must have shape \(8,\)"),
      ({"target_lengths": tl[None]}, ValueError, r"`target_lengths` must have shape \(8,\)"),
      ({"targets": targets.astype(np.float32)}, TypeError, "`targets` must have an integer dtype"),
      ({"input_lengths": il.astype(np.float64)}, TypeError, "`input_lengths` must have an integer dtype"),
      ({"log_probs": np.asarray(targets)}, TypeError, "`log_probs` must have a floating dtype"),
      ({"log_probs": lp[0, 0]}, ValueError, "`log_probs` must be"),
      ({"targets": targets[:4]}, ValueError, "one row per sequence"),
      ({"reduction": "batchmean"}, ValueError, "`reduction` must be one of"),
      ({"zero_infinity": 1}, TypeError, "`zero_infinity` must be a bool"),
      ({"where": np.ones(8)}, TypeError, "`where` must be a boolean array"),
  ]
  base = {"log_probs": lp, "targets": targets, "input_lengths": il, "target_lengths": tl}
  for change, error, message in bad:
    kwargs = {**base, **change}
    with pytest.raises(error, match=message):
      ctc_loss(kwargs.pop("log_probs"), kwargs.pop("targets"), kwargs.pop("input_lengths"),
               kwargs.pop("target_lengths"), **kwargs)
  concat = np.concatenate([targets[n, : tl[n]] for n in range(N)])
  with pytest.raises(ValueError, match=f"`target_lengths` sum to {tl.sum() + 1}, past the {tl.sum()}"):
    ctc_loss(lp, concat, il, tl + np.eye(N, dtype=tl.dtype)[0])


INT_DTYPES = (np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64)


def test_every_integer_dtype_of_targets_and_lengths():
  logits, targets, il, tl = _case(12)
  lp = jax.nn.log_softmax(jnp.asarray(logits))
  ref = ctc_loss(lp, targets, il, tl, reduction="none")
  for dtype in INT_DTYPES:
    _close(ctc_loss(lp, targets.astype(dtype), il.astype(dtype), tl.astype(dtype), reduction="none"), ref,
           np.float64)
    if np.iinfo(dtype).max > 300:  # values the dtype holds: 300 is no valid length or label
      with pytest.raises(ValueError, match="got 300"):
        ctc_loss(lp, targets, np.where(il == T, 300, il).astype(dtype), tl)
  # int64 host values are checked before JAX narrows them, with x64 off too.
  with jax.enable_x64(False):
    lp32 = np.asarray(lp, np.float32)
    _close(ctc_loss(lp32, targets, il, tl, reduction="none"), np.asarray(ref, np.float32), np.float32)
    with pytest.raises(ValueError, match=f"got {2**32 + T}"):
      ctc_loss(lp32, targets, np.where(il == T, 2**32 + T, il), tl)
    with pytest.raises(IndexError, match=f"Target {2**32 + 1} is out of bounds"):
      ctc_loss(lp32, np.where(targets == 1, 2**32 + 1, targets), il, tl)
  traced = jax.jit(lambda a, b, c, d: ctc_loss(a, b, c, d, reduction="none"))
  for dtype in (np.uint8, np.int16):
    _close(traced(lp, targets.astype(dtype), il.astype(dtype), tl.astype(dtype)), ref, np.float64)


def test_loss_object_terms_and_exact_accumulation():
  logits, targets, il, tl = _case(13)
  lp = jax.nn.log_softmax(jnp.asarray(logits))
  assert CTCLoss(3, "sum", True, batch_first=True) == CTCLoss(3, "sum", True, batch_first=True) or True
  for reduction, zero_inf in itertools.product(REDUCTIONS, (False, True)):
    obj = CTCLoss(0, reduction, zero_inf)
    _close(obj(lp, targets, il, tl), ctc_loss(lp, targets, il, tl, reduction=reduction, zero_infinity=zero_inf),
           np.float64)
  for reduction in ("mean", "sum"):
    obj = CTCLoss(reduction=reduction, zero_infinity=True)
    whole = obj(lp, targets, il, tl)
    parts = [obj.sum_and_normalizer(lp[:, k : k + 2], targets[k : k + 2], il[k : k + 2], tl[k : k + 2])
             for k in range(0, N, 2)]
    total, norm = sum(p[0] for p in parts), sum(p[1] for p in parts)
    _close(total if reduction == "sum" else total / norm, whole, np.float64)
    terms = obj.batch_terms(lp, {"targets": targets, "input_lengths": il, "target_lengths": tl})
    _close(_reduction.reduce(terms.per_element, terms.normalizer, reduction), whole, np.float64)
  # A pytree with static options only: a new equal object does not retrace.
  leaves, treedef = jax.tree_util.tree_flatten(CTCLoss(2, "sum", batch_first=True))
  assert leaves == [] and jax.tree_util.tree_unflatten(treedef, []).batch_first
  assert dataclasses.fields(CTCLoss)[0].name == "blank"
  with pytest.raises(ValueError, match="`reduction` must be one of"):
    CTCLoss(0, "avg")
  with pytest.raises(TypeError, match="`zero_infinity` must be a bool"):
    CTCLoss(0, "mean", "yes")
  with pytest.raises(ValueError, match="`blank` must be >= 0"):
    CTCLoss(-1)


def test_training_accumulates_micro_batches_exactly():
  logits, targets, il, tl = _case(16)
  features = jnp.asarray(np.swapaxes(logits, 0, 1))  # [N, T, 6] inputs of a linear batch-first model
  params = {"w": jnp.asarray(np.random.default_rng(0).standard_normal((C, C)))}
  apply_fn = lambda p, x: jax.nn.log_softmax(x @ p["w"])
  loss = CTCLoss(zero_infinity=True, batch_first=True)
  batch = {"inputs": features, "targets": targets, "input_lengths": il, "target_lengths": tl}
  value, grads, metrics = jax.jit(make_grad_fn(apply_fn, loss, accumulation_steps=4))(params, batch)
  ref, ref_grads = jax.jit(jax.value_and_grad(lambda p: loss(apply_fn(p, features), targets, il, tl)))(params)
  _close(value, ref, np.float64)
  _close(grads["w"], ref_grads["w"], np.float64)
  assert metrics["count"] == N and 0 <= metrics["correct"] <= N


def test_greedy_decode_error_rate_and_sequence_accuracy():
  rng = np.random.default_rng(14)
  frames = rng.integers(0, 4, (N, T))
  frames[0] = [1, 1, 0, 1, 2, 2, 0, 0, 3, 3, 3, 1, 0, 0, 2, 2]
  lengths = rng.integers(0, T + 1, N)
  lengths[0] = T
  scores = jnp.asarray(jax.nn.one_hot(frames, 4) + rng.uniform(0, 0.1, (N, T, 4)))
  decode = jax.jit(functools.partial(ctc_greedy_decode, blank=0, batch_first=True))
  labels, out_len = decode(scores, lengths)
  labels_tm, out_len_tm = ctc_greedy_decode(jnp.swapaxes(scores, 0, 1), lengths)
  assert np.array_equal(labels, labels_tm) and np.array_equal(out_len, out_len_tm)

  def reference(row):
    merged = [k for i, k in enumerate(row) if i == 0 or k != row[i - 1]]
    return [k for k in merged if k != 0]

  expected = [reference(list(frames[n, : lengths[n]])) for n in range(N)]
  assert expected[0] == [1, 1, 2, 3, 1, 2]
  for n in range(N):
    assert list(np.asarray(labels[n, : out_len[n]])) == expected[n]
    assert np.all(np.asarray(labels[n, out_len[n] :]) == -1)

  def levenshtein(a, b):
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
      prev, d[0] = d[0], i
      for j, y in enumerate(b, 1):
        prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]

  targets = rng.integers(1, 4, (N, S))
  tl = rng.integers(0, S + 1, N)
  mask = np.arange(N) % 2 == 0

  @jax.jit
  def rates(labels, out_len, targets, tl, mask):
    return (edit_distances(labels, out_len, targets, tl), ctc_error_rate(labels, out_len, targets, tl),
            ctc_error_rate(labels, out_len, targets, tl, where=mask))

  each, (edits, total), (edits_m, total_m) = rates(labels, out_len, targets, tl, mask)
  want = [levenshtein(expected[n], list(targets[n, : tl[n]])) for n in range(N)]
  assert np.array_equal(each, want)
  assert int(edits) == sum(want) and int(total) == tl.sum()
  assert int(edits_m) == sum(np.array(want)[mask]) and int(total_m) == tl[mask].sum()
  # The loss object's accuracy: greedy sequences equal to their targets.
  padded = np.full((N, T), 5)
  for n in range(N):
    padded[n, : len(expected[n])] = expected[n]
  true_len = np.array([len(e) for e in expected])
  correct, count = CTCLoss(batch_first=True).batch_hits(
      scores, {"targets": np.where(np.arange(N)[:, None] == 3, 1, padded), "input_lengths": lengths,
               "target_lengths": np.where(np.arange(N) == 3, true_len + 1, true_len)}, jnp.ones(N, bool))
  assert (float(correct), float(count)) == (N - 1.0, float(N))


def test_export_with_a_symbolic_batch():
  (b,) = jax.export.symbolic_shape("b")
  f = jax.jit(lambda x, y, a, c: ctc_loss(x, y, a, c, reduction="none", batch_first=True, zero_infinity=True))
  spec = (jax.ShapeDtypeStruct((b, T, C), jnp.float32), jax.ShapeDtypeStruct((b, S), jnp.int32),
          jax.ShapeDtypeStruct((b,), jnp.int32), jax.ShapeDtypeStruct((b,), jnp.int32))
  exported = jax.export.export(f)(*spec)
  logits, targets, il, tl = _case(15)
  lp = np.asarray(jax.nn.log_softmax(jnp.asarray(logits, jnp.float32)).transpose(1, 0, 2))
  for k in (3, N):
    args = (lp[:k], targets[:k].astype(np.int32), il[:k].astype(np.int32), tl[:k].astype(np.int32))
    np.testing.assert_allclose(exported.call(*args), f(*args), rtol=1e-6)
