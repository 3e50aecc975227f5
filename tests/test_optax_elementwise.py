"""jaxnll.losses' elementwise drop-ins: optax's own unit tests with jaxnll swapped in, and parity with optax."""

import unittest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from optax.losses import _classification_test, _regression_test

import jaxnll
from jaxnll import losses
from tests._elementwise_cases import SHAPES
from tests._optax_swap import CALLS, swapped_in

CLASSIFICATION = ("sigmoid_binary_cross_entropy", "sigmoid_focal_loss", "kl_divergence",
                  "kl_divergence_with_log_targets")
REGRESSION = ("squared_error", "l2_loss", "huber_loss")

TestOptaxSigmoidCrossEntropy = swapped_in(
    _classification_test.SigmoidCrossEntropyTest, _classification_test, "_classification", CLASSIFICATION)
TestOptaxSigmoidFocalLoss = swapped_in(
    _classification_test.SigmoidFocalLossTest, _classification_test, "_classification", CLASSIFICATION)
TestOptaxKLDivergence = swapped_in(
    _classification_test.KLDivergenceTest, _classification_test, "_classification", CLASSIFICATION)
TestOptaxKLDivergenceWithLogTargets = swapped_in(
    _classification_test.KLDivergenceWithLogTargetsTest, _classification_test, "_classification", CLASSIFICATION)
TestOptaxSquaredError = swapped_in(
    _regression_test.SquaredErrorTest, _regression_test, "_regression", REGRESSION)
TestOptaxL2Loss = swapped_in(_regression_test.L2LossTest, _regression_test, "_regression", REGRESSION)
TestOptaxHuberLoss = swapped_in(_regression_test.HuberLossTest, _regression_test, "_regression", REGRESSION)


def test_the_swap_routes_through_jaxnll_and_is_undone():
  case = TestOptaxHuberLoss("test_batched")
  result = unittest.TestResult()
  CALLS.clear()
  case.run(result)
  assert result.wasSuccessful() and CALLS == {"huber_loss": 1}, (result.errors, result.failures, CALLS)
  assert _regression_test._regression is optax.losses._regression
  assert _classification_test._classification is optax.losses._classification


# --------------------------------------------------------------------------
# Parity with optax 0.2.8 beyond its own tests: values and gradients.


def _close(a, b, **kw):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), **{"rtol": 1e-12, "atol": 1e-12, **kw})


@st.composite
def pairs(draw):
  shape = draw(st.sampled_from(SHAPES))
  rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
  x = rng.standard_normal(shape) * draw(st.sampled_from([0.5, 4.0, 30.0]))
  t = rng.uniform(size=shape)
  if draw(st.booleans()):
    t = np.round(t)
  return jnp.asarray(x), jnp.asarray(t), rng


# Fewer examples than the torch parity tests (the kernels are the same): each compiles both implementations.
OPTAX_EXAMPLES = settings(max_examples=max(4, settings.default.max_examples // 12))


def _both(ours, ref, *args, **kw):
  """``(value, gradients of the sum of squares)`` of jaxnll's and optax's function, in one compiled program."""

  def one(fn, *a):
    grads = jax.grad(lambda *b: jnp.sum(fn(*b, **kw) ** 2), argnums=tuple(range(len(a))))(*a)
    return fn(*a, **kw), grads

  return jax.jit(lambda *a: (one(ours, *a), one(ref, *a)))(*args)


def _compare(ours, ref, *args, value_rtol=1e-10, grad_tol=None, **kw):
  (value, grads), (ref_value, ref_grads) = _both(ours, ref, *args, **kw)
  _close(value, ref_value, rtol=value_rtol)
  for a, b in zip(grads, ref_grads, strict=True):
    _close(a, b, **(grad_tol or {"rtol": 1e-9, "atol": 1e-9}))
  return grads, ref_grads


@OPTAX_EXAMPLES
@given(pairs())
def test_sigmoid_binary_cross_entropy_matches_optax(pair):
  x, t, _ = pair
  _compare(losses.sigmoid_binary_cross_entropy, optax.losses.sigmoid_binary_cross_entropy, x, t)


@OPTAX_EXAMPLES
@given(pairs(), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]), st.sampled_from([None, 0.25, 0.9]))
def test_sigmoid_focal_loss_matches_optax(pair, gamma, alpha):
  x, t, _ = pair
  x = jnp.clip(x, -20, 20)  # optax's log-space form loses digits beyond; both are finite there
  t = jnp.clip(t, 0.02, 0.98)  # hard labels: test_focal_at_hard_labels
  _compare(losses.sigmoid_focal_loss, optax.losses.sigmoid_focal_loss, x, t, gamma=gamma, alpha=alpha,
           value_rtol=1e-9, grad_tol={"rtol": 1e-8, "atol": 1e-10})


def test_focal_at_hard_labels():
  # Values and logit gradients equal optax's. optax's label gradient is wrong at labels of exactly 0 and 1
  # (its logsumexp drops the derivative of a zero-weighted term); jaxnll's is the one-sided difference quotient.
  x = jnp.array([0.06, -1.3, 2.5, 9.0, 0.06, -1.3, 2.5, 9.0])
  t = jnp.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
  h = jnp.where(t == 0, 1e-7, -1e-7)
  for gamma in (0.5, 2.0):
    (value, (gx, gt)), (ref_value, (ref_gx, _)) = _both(
        losses.sigmoid_focal_loss, optax.losses.sigmoid_focal_loss, x, t, gamma=gamma, alpha=0.25)
    _close(value, ref_value, rtol=1e-9)
    _close(gx, ref_gx, rtol=1e-8, atol=1e-10)
    f = lambda t, gamma=gamma: losses.sigmoid_focal_loss(x, t, gamma=gamma, alpha=0.25) ** 2
    one_sided = jax.jit(lambda t, f=f: (f(t + h) - f(t)) / h)(t)
    _close(gt, one_sided, rtol=1e-5, atol=1e-7)


@OPTAX_EXAMPLES
@given(pairs(), st.booleans(), st.sampled_from([-1, 0, None]))
def test_kl_divergences_match_optax(pair, masked, axis):
  x, t, rng = pair
  if x.ndim == 0:
    axis = None
  t = jnp.asarray(np.clip(np.asarray(t), 0.05, 1.0))  # optax's target gradient is NaN at t = 0, as ours
  lp = jax.nn.log_sigmoid(x)
  where = jnp.asarray(rng.uniform(size=x.shape) < 0.7) if masked else None

  def both_kls(module):  # one compiled program per example
    return lambda a, b: jnp.stack([module.kl_divergence(a, b, axis=axis, where=where),
                                   module.kl_divergence_with_log_targets(a, jnp.log(b), axis=axis, where=where)])

  _compare(both_kls(losses), both_kls(optax.losses), lp, t, grad_tol={"rtol": 1e-8, "atol": 1e-10})


@OPTAX_EXAMPLES
@given(pairs(), st.sampled_from([0.5, 1.0, 3.0]))
def test_regression_drop_ins_match_optax(pair, delta):
  x, t, _ = pair

  def all_three(module):  # one compiled program per example
    return lambda a, b: jnp.stack([module.squared_error(a, b), module.l2_loss(a, b),
                                   module.huber_loss(a, b, delta=delta), module.squared_error(a),
                                   module.huber_loss(a, delta=delta)])

  _compare(all_three(losses), all_three(optax.losses), x, t, value_rtol=1e-12, grad_tol={"rtol": 1e-12, "atol": 1e-12})


def test_traced_hyperparameters_like_optax():
  x, t = jnp.array([2.0, -0.3, 0.7]), jnp.array([1.0, 0.0, 1.0])
  f = jax.jit(losses.sigmoid_focal_loss)
  _close(f(x, t, gamma=1.5, alpha=0.3), optax.losses.sigmoid_focal_loss(x, t, gamma=1.5, alpha=0.3))
  g = jax.grad(lambda gamma: jnp.sum(losses.sigmoid_focal_loss(x, t, gamma=gamma)))(2.0)
  g_ref = jax.grad(lambda gamma: jnp.sum(optax.losses.sigmoid_focal_loss(x, t, gamma=gamma)))(2.0)
  _close(g, g_ref, rtol=1e-10)
  _close(jax.jit(losses.huber_loss)(x, t, delta=0.5), optax.losses.huber_loss(x, t, delta=0.5))


def test_broadcasting_labels_like_optax():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3)))
  t = jnp.array([[1.0, 0.0, 1.0]])
  _close(losses.sigmoid_binary_cross_entropy(x, t), optax.losses.sigmoid_binary_cross_entropy(x, t))
  _close(losses.huber_loss(x, t), optax.losses.huber_loss(x, t))
  with pytest.raises(ValueError, match="Shape mismatch"):
    losses.squared_error(x, t)


def test_extras_agree_with_the_torch_style_functions():
  rng = np.random.default_rng(1)
  x, t = jnp.asarray(rng.standard_normal((5, 3))), jnp.asarray(rng.uniform(size=(5, 3)))
  w, pw = jnp.asarray(rng.uniform(size=(5, 1))), jnp.asarray(rng.uniform(0.5, 3, size=3))
  _close(losses.sigmoid_binary_cross_entropy(x, t, weight=w, pos_weight=pw),
         jaxnll.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction="none"))
  _close(losses.squared_error(x, t, weight=w), jaxnll.mse_loss(x, t, weight=w, reduction="none"))
  _close(losses.l2_loss(x, t, weight=w), 0.5 * jaxnll.mse_loss(x, t, weight=w, reduction="none"))
  _close(losses.huber_loss(x, t, delta=0.5, weight=w), jaxnll.huber_loss(x, t, delta=0.5, weight=w, reduction="none"))
  _close(losses.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0), jaxnll.sigmoid_focal_loss(x, t))
  lp = jax.nn.log_softmax(x)
  p = jax.nn.softmax(jnp.asarray(rng.standard_normal((5, 3))))
  _close(losses.kl_divergence(lp, p), jnp.sum(jaxnll.kl_div(lp, p, reduction="none"), -1))


def test_deliberate_differences_from_optax():
  # 0 * inf = 0: a saturated correct logit and a zero-probability target give 0, where optax gives NaN.
  assert losses.sigmoid_binary_cross_entropy(jnp.array([jnp.inf]), jnp.array([1.0]))[0] == 0.0
  assert np.isnan(optax.losses.sigmoid_binary_cross_entropy(jnp.array([jnp.inf]), jnp.array([1.0]))[0])
  lp, t = jnp.array([-jnp.inf, 0.0]), jnp.array([0.0, 1.0])
  assert losses.kl_divergence(lp, t) == 0.0 and np.isnan(optax.losses.kl_divergence(lp, t))
  lt = jnp.array([-jnp.inf, 0.0])
  assert losses.kl_divergence_with_log_targets(jnp.array([-1.0, 0.0]), lt) == 0.0
  assert np.isnan(optax.losses.kl_divergence_with_log_targets(jnp.array([-1.0, 0.0]), lt))
  # bf16 is computed and returned in float32.
  xb = jnp.array([1.0, -2.0], jnp.bfloat16)
  assert losses.sigmoid_binary_cross_entropy(xb, jnp.array([1.0, 0.0], jnp.bfloat16)).dtype == jnp.float32
  assert optax.losses.sigmoid_binary_cross_entropy(xb, jnp.array([1.0, 0.0], jnp.bfloat16)).dtype == jnp.bfloat16


def test_integer_logits_are_refused_like_optax():
  for name in CLASSIFICATION[:2]:
    with pytest.raises(TypeError, match="logits"):
      getattr(losses, name)(jnp.array([1, 2]), jnp.array([1.0, 0.0]))
  for name in REGRESSION:
    with pytest.raises(TypeError, match="predictions"):
      getattr(losses, name)(jnp.array([1, 2]), jnp.array([1.0, 0.0]))
  with pytest.raises(TypeError, match="targets"):
    losses.kl_divergence(jnp.array([-1.0, -2.0]), jnp.array([1, 0]))


def test_drop_ins_pass_check_grads_in_both_modes():
  rng = np.random.default_rng(2)
  x, t = jnp.asarray(rng.standard_normal((3, 4))), jnp.asarray(rng.uniform(0.1, 0.9, (3, 4)))

  def f(a, b):  # every drop-in at once (their kernels' transformations are tested with the torch-style losses)
    return sum(jnp.sum(v) for v in (
        losses.sigmoid_binary_cross_entropy(a, b, pos_weight=jnp.full(4, 2.0)), losses.sigmoid_focal_loss(a, b),
        losses.squared_error(a, b), losses.l2_loss(a, b), losses.huber_loss(a, b, delta=0.3),
        losses.kl_divergence(jax.nn.log_softmax(a), b), losses.kl_divergence_with_log_targets(a, jnp.log(b))))

  check_grads(jax.jit(f), (x, t), order=1, modes=("fwd", "rev"))
