"""The optax-style CTC drop-ins: optax's own CTC tests with jaxnll swapped in, and parity with optax 0.2.8."""

import unittest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax.losses import _classification_test

from jaxnll import ctc_loss
from jaxnll import losses as _optax_ctc
from tests._optax_swap import CALLS, swapped_in

NAMES = ("ctc_loss", "ctc_loss_with_forward_probs")

TestOptaxCTC = swapped_in(_classification_test.CTCTest, _classification_test, "_classification", NAMES)


def test_the_swap_routes_through_jaxnll_and_is_undone():
  CALLS.clear()
  result = unittest.TestResult()
  TestOptaxCTC("test_repeat_with_one_to_one_alignment").run(result)
  assert result.wasSuccessful() and CALLS == {"ctc_loss": 1}, (result.errors, result.failures, CALLS)
  assert _classification_test._classification is optax.losses._classification


def _case(seed, dtype=np.float32):
  """A batch with repeats, padded frames, padded labels, an empty label sequence and an infeasible one."""
  rng = np.random.default_rng(seed)
  b, t, k, n = 6, 12, 5, 5
  logits = (rng.standard_normal((b, t, k)) * 2).astype(dtype)
  labels = rng.integers(1, k, (b, n)).astype(np.int32)
  labels[0] = [2, 2, 2, 3, 3]
  frames = np.array([12, 9, 12, 4, 7, 1])
  lengths = np.array([5, 3, 4, 4, 0, 3])  # row 3: 4 labels in 4 frames; row 5: 3 labels in 1 frame
  labels[3] = [1, 2, 3, 4, 1]
  logit_paddings = (np.arange(t)[None, :] >= frames[:, None]).astype(dtype)
  label_paddings = (np.arange(n)[None, :] >= lengths[:, None]).astype(dtype)
  return logits, logit_paddings, labels, label_paddings, frames, lengths


def _both(blank_id):
  """jaxnll's and optax's losses, alphas and gradients w.r.t. the logits (of the feasible rows), one program."""

  def f(logits, lpad, labels, ypad):
    out = {}
    for name, fns in (("ours", _optax_ctc), ("theirs", optax)):
      out[name] = fns.ctc_loss_with_forward_probs(logits, lpad, labels, ypad, blank_id=blank_id)
      loss = lambda x, fn=fns.ctc_loss: jnp.sum(fn(x, lpad, labels, ypad, blank_id=blank_id)[:5])
      out[name + "_grad"] = jax.grad(loss)(logits)
    return out

  return jax.jit(f)


@pytest.mark.parametrize("blank_id", [0, 2])
def test_values_alphas_and_gradients_match_optax(blank_id):
  logits, lpad, labels, ypad, _, _ = _case(1)
  labels = np.where(labels == blank_id, 4, labels).astype(np.int32)
  with jax.enable_x64(False), jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
    out = _both(blank_id)(logits, lpad, labels, ypad)
  ours, theirs = out["ours"], out["theirs"]
  feasible = np.asarray(theirs[0]) < 1e4
  assert feasible.sum() == 5 and not feasible[5]
  np.testing.assert_allclose(ours[0][feasible], theirs[0][feasible], rtol=1e-5)
  # An impossible alignment: optax's finite loss of about -log_epsilon, not inf.
  np.testing.assert_allclose(ours[0][5], theirs[0][5], rtol=1e-5)
  for mine, ref in zip(ours[1:], theirs[1:], strict=True):
    reachable = np.asarray(ref) > -1e4
    assert np.array_equal(reachable, np.asarray(mine) > -1e4)
    np.testing.assert_allclose(np.asarray(mine)[reachable], np.asarray(ref)[reachable], rtol=1e-5, atol=2e-5)
  np.testing.assert_allclose(out["ours_grad"], out["theirs_grad"], atol=2e-6)


def test_equals_torch_style_loss_on_log_softmax_and_never_negative():
  logits, lpad, labels, ypad, frames, lengths = _case(2, np.float64)

  @jax.jit
  def both(logits, lpad, labels, ypad, frames, lengths):
    torch_style = ctc_loss(jax.nn.log_softmax(logits), labels, frames, lengths, reduction="none", batch_first=True)
    return _optax_ctc.ctc_loss(logits, lpad, labels, ypad), torch_style

  ours, torch_style = both(logits, lpad, labels, ypad, frames, lengths)
  np.testing.assert_allclose(ours[:5], torch_style[:5], rtol=1e-12)
  assert np.isinf(torch_style[5]) and 9e4 < ours[5] < 1.1e5
  # A certain one-to-one alignment: a loss of 0 up to rounding, which optax lets fall below 0 (optax #1771).
  with jax.enable_x64(False), jax.numpy_dtype_promotion("standard"):
    sure = np.full((16, 50, 40), -30.0, np.float32)
    rng = np.random.default_rng(3)
    steps = rng.integers(1, 39, (16, 50))  # no label repeats the one before it
    lab = (np.cumsum(steps, axis=1) % 39 + 1).astype(np.int32)
    np.put_along_axis(sure, lab[:, :, None], 30.0, axis=2)
    zeros = np.zeros((16, 50), np.float32)
    ours, theirs = jax.jit(lambda *a: (_optax_ctc.ctc_loss(*a), optax.ctc_loss(*a)))(sure, zeros, lab, zeros)
    assert np.all(np.asarray(ours) >= 0)
    np.testing.assert_allclose(ours, np.maximum(theirs, 0), atol=1e-6)


def test_bad_arguments_name_what_is_wrong():
  logits, lpad, labels, ypad, _, _ = _case(4)
  with pytest.raises(ValueError, match="`logits` must have rank 3"):
    _optax_ctc.ctc_loss(logits[0], lpad, labels, ypad)
  with pytest.raises(ValueError, match="batch size 6, got 5"):
    _optax_ctc.ctc_loss(logits, lpad, labels[:5], ypad[:5])
  with pytest.raises(ValueError, match="`label_paddings`"):
    _optax_ctc.ctc_loss(logits, lpad, labels, ypad[:, :2])
  with pytest.raises(ValueError, match="`blank_id` must be in"):
    _optax_ctc.ctc_loss(logits, lpad, labels, ypad, blank_id=5)
  with pytest.raises(TypeError, match="`labels` must have an integer dtype"):
    _optax_ctc.ctc_loss(logits, lpad, labels.astype(np.float32), ypad)
