"""Attacks from the second hostile review, each widened to its class of bug.

Broadcast targets of the Gaussian NLL; log_softmax's edges; class masks with
smoothing on soft labels; ``jax.export`` with symbolic dimensions through
every family and option; host int64 values with x64 off through every value
front door; degenerate normalizers; checked mode against every eager check;
zero-normalizer train steps; torch's positional orders and spellings.
References are real torch and optax.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxnll
from jaxnll import losses, training

RNG = np.random.default_rng(20261201)


def _t(a, grad=False):
  t = torch.tensor(np.asarray(a))
  return t.requires_grad_(True) if grad else t


# --------------------------------------------------------------------------
# 1. gaussian_nll_loss: every target shape torch broadcasts


GAUSS_SHAPES = [  # (input, target, var)
    ((3,), (1,), (3,)),
    ((5,), (), (5,)),
    ((5, 5), (5,), (5, 5)),
    ((4, 3), (4, 1), (4,)),
    ((3,), (2, 3), (3,)),
    ((2, 3, 4), (1, 3, 1), (2, 3, 1)),
]


@pytest.mark.parametrize("shapes", GAUSS_SHAPES, ids=str)
def test_gaussian_nll_broadcasts_targets_like_torch(shapes):
  xs, ts, vs = shapes
  x, t, var = RNG.standard_normal(xs), RNG.standard_normal(ts), RNG.uniform(0.5, 2.0, vs)
  for reduction in ("none", "mean", "sum"):
    X, T, V = _t(x, True), _t(t, True), _t(var, True)
    ref = F.gaussian_nll_loss(X, T, V, reduction=reduction, full=True)
    (ref * torch.arange(1, ref.numel() + 1, dtype=ref.dtype).reshape(ref.shape)).sum().backward()

    def ours(a, b, c, reduction=reduction):
      out = jaxnll.gaussian_nll_loss(a, b, c, reduction=reduction, full=True)
      return jnp.sum(out * jnp.arange(1, out.size + 1, dtype=out.dtype).reshape(out.shape)), out

    grads, value = jax.grad(ours, argnums=(0, 1, 2), has_aux=True)(jnp.asarray(x), jnp.asarray(t), jnp.asarray(var))
    np.testing.assert_allclose(value, ref.detach().numpy(), rtol=1e-12)
    for g, r in zip(grads, (X, T, V), strict=True):
      assert g.shape == r.shape  # the target's gradient summed back to its own shape
      np.testing.assert_allclose(g, r.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_gaussian_nll_issue_example_and_refusals():
  out = jaxnll.gaussian_nll_loss(jnp.array([0.5, -1, 2]), jnp.array([1.0]), jnp.array([1, 2, 0.5]))
  np.testing.assert_allclose(out, 0.708333333333, rtol=1e-9)
  with pytest.raises(ValueError, match="`targets` of shape \\(2,\\) does not broadcast"):
    jaxnll.gaussian_nll_loss(jnp.zeros(3), jnp.zeros(2), jnp.ones(3))
  # The other elementwise losses keep refusing a target of another shape (a documented difference).
  with pytest.raises(ValueError, match="they are not broadcast"):
    jaxnll.mse_loss(jnp.zeros(3), jnp.zeros(1))


# --------------------------------------------------------------------------
# 2. log_softmax: empty class axes and 0-d inputs, as torch


@pytest.mark.parametrize("shape", [(5, 0, 0), (5, 3, 0), (0,)])
def test_log_softmax_of_an_empty_class_axis_is_empty(shape):
  x = jnp.zeros(shape)
  assert jaxnll.log_softmax(x).shape == shape == tuple(torch.log_softmax(torch.zeros(shape), -1).shape)
  assert jax.grad(lambda a: jnp.sum(jaxnll.log_softmax(a)))(x).shape == shape
  assert jaxnll.LogSoftmax()(x).shape == shape


@pytest.mark.parametrize("value", [1.5, -3.0, np.nan, np.inf])
def test_log_softmax_of_a_scalar_is_torchs(value):
  xt = torch.tensor(value, dtype=torch.float64, requires_grad=True)
  ref = torch.log_softmax(xt, 0)
  ref.backward()
  for axis in (0, -1):
    out, grad = jax.value_and_grad(lambda a, axis=axis: jaxnll.log_softmax(a, axis))(jnp.asarray(value))
    np.testing.assert_array_equal(out, ref.detach().numpy())
    np.testing.assert_array_equal(grad, xt.grad.numpy())
  with pytest.raises(ValueError, match="`axis`=1 is out of range"):
    jaxnll.log_softmax(jnp.asarray(1.0), 1)


# --------------------------------------------------------------------------
# 3. soft labels + class-level where + label smoothing


def test_soft_labels_class_mask_and_smoothing_match_optax_on_kept_classes():
  x = jnp.asarray(RNG.standard_normal((4, 6)))
  t = jax.nn.softmax(jnp.asarray(RNG.standard_normal((4, 6))))
  mask = jnp.asarray(RNG.uniform(size=(4, 6)) < 0.6).at[:, 2].set(True)
  kept = jnp.sum(mask, axis=-1, keepdims=True).astype(x.dtype)

  def ours(x, t):
    return losses.softmax_cross_entropy(x, t, where=mask, label_smoothing=0.1)

  def ref(x, t):
    return optax.softmax_cross_entropy(x, jnp.where(mask, 0.9 * t + 0.1 / kept, 0.0), where=mask)

  np.testing.assert_allclose(ours(x, t), ref(x, t), rtol=1e-12)
  assert np.all(np.isfinite(ours(x, t)))
  for argnum in (0, 1):
    g = jax.grad(lambda *a: jnp.sum(ours(*a) ** 2), argnums=argnum)(x, t)
    r = jax.grad(lambda *a: jnp.sum(ref(*a) ** 2), argnums=argnum)(x, t)
    np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------
# 4. jax.export with a symbolic batch (and class count), every family and option

S = jax.ShapeDtypeStruct
B, C = jax.export.symbolic_shape("b, c")
f32, i32, u8, bl = jnp.float32, jnp.int32, jnp.uint8, jnp.bool_

EXPORTS = {
    "cross_entropy": (lambda x, t, w, m: jaxnll.cross_entropy(
        x, t, w, where=m, label_smoothing=0.1, ignore_index=1, z_loss=1e-3, softcap=5.0),
        [S((B, 5), f32), S((B,), i32), S((5,), f32), S((B,), bl)]),
    "cross_entropy, symbolic classes": (jaxnll.cross_entropy, [S((B, C), f32), S((B,), i32)]),
    "cross_entropy, symbolic classes, uint8": (jaxnll.cross_entropy, [S((B, C), f32), S((B,), u8)]),
    "cross_entropy, probabilities": (lambda x, t, w, m: jaxnll.cross_entropy(
        x, t, weight=w, where=m, label_smoothing=0.1), [S((B, 5), f32), S((B, 5), f32), S((5,), f32), S((B,), bl)]),
    "cross_entropy, axis=1": (lambda x, t, w, m: jaxnll.cross_entropy(x, t, weight=w, where=m, axis=1,
                                                                      reduction="none"),
                              [S((B, 5, 3), f32), S((B, 3), i32), S((5,), f32), S((B, 3), bl)]),
    "CrossEntropyLoss": (lambda x, t, w: jaxnll.CrossEntropyLoss(w, reduction="safe_mean")(x, t),
                         [S((B, 5), f32), S((B,), i32), S((5,), f32)]),
    "nll_loss": (lambda x, t, w, m: jaxnll.nll_loss(x, t, w, where=m),
                 [S((B, 5), f32), S((B,), i32), S((5,), f32), S((B,), bl)]),
    "log_softmax": (lambda x, m: jaxnll.log_softmax(x, where=m), [S((B, 5), f32), S((B, 5), bl)]),
    "binary_cross_entropy": (lambda x, t, w, m: jaxnll.binary_cross_entropy(x, t, w, where=m),
                             [S((B, 3), f32), S((B, 3), f32), S((3,), f32), S((B, 3), bl)]),
    "binary_cross_entropy_with_logits": (
        lambda x, t, w, pw, m: jaxnll.binary_cross_entropy_with_logits(x, t, w, pos_weight=pw, where=m),
        [S((B, 3), f32), S((B, 3), f32), S((B, 3), f32), S((3,), f32), S((B, 1), bl)]),
    "BCEWithLogitsLoss": (lambda x, t, pw: jaxnll.BCEWithLogitsLoss(pos_weight=pw)(x, t),
                          [S((B, 3), f32), S((B, 3), f32), S((3,), f32)]),
    "multilabel_soft_margin_loss": (lambda x, t, w, m: jaxnll.multilabel_soft_margin_loss(x, t, w, where=m),
                                    [S((B, 3), f32), S((B, 3), f32), S((3,), f32), S((B,), bl)]),
    "sigmoid_focal_loss": (lambda x, t, m: jaxnll.sigmoid_focal_loss(x, t, where=m, reduction="mean"),
                           [S((B, 3), f32), S((B, 3), f32), S((B, 3), bl)]),
    "kl_div": (lambda x, t, m: jaxnll.kl_div(x, t, where=m, reduction="batchmean"),
               [S((B, 3), f32), S((B, 3), f32), S((B, 3), bl)]),
    "KLDivLoss batchmean": (jaxnll.KLDivLoss("batchmean"), [S((B, 3), f32), S((B, 3), f32)]),
    "poisson_nll_loss": (lambda x, t, m: jaxnll.poisson_nll_loss(x, t, where=m, full=True),
                         [S((B, 3), f32), S((B, 3), f32), S((B, 3), bl)]),
    "gaussian_nll_loss": (lambda x, t, v, m: jaxnll.gaussian_nll_loss(x, t, v, where=m),
                          [S((B, 3), f32), S((B, 3), f32), S((B,), f32), S((B, 3), bl)]),
    "gaussian_nll_loss, broadcast target": (jaxnll.gaussian_nll_loss, [S((B, 3), f32), S((B, 1), f32), S((B, 3), f32)]),
    "GaussianNLLLoss": (lambda x, t, v: jaxnll.GaussianNLLLoss(full=True)(x, t, v),
                        [S((B, 3), f32), S((B, 3), f32), S((B, 3), f32)]),
    "l1_loss": (lambda x, t, w, m: jaxnll.l1_loss(x, t, weight=w, where=m),
                [S((B, 3), f32), S((B, 3), f32), S((B, 3), f32), S((B, 3), bl)]),
    "mse_loss": (lambda x, t, w, m: jaxnll.mse_loss(x, t, weight=w, where=m),
                 [S((B, 3), f32), S((B, 3), f32), S((3,), f32), S((B, 3), bl)]),
    "huber_loss": (lambda x, t, w, m: jaxnll.huber_loss(x, t, weight=w, where=m),
                   [S((B, 3), f32), S((B, 3), f32), S((3,), f32), S((B, 3), bl)]),
    "SmoothL1Loss": (lambda x, t, m: jaxnll.SmoothL1Loss("sum", 0.5)(x, t, where=m),
                     [S((B, 3), f32), S((B, 3), f32), S((B, 3), bl)]),
    "losses.softmax_cross_entropy": (lambda x, t, m: losses.softmax_cross_entropy(x, t, where=m, label_smoothing=0.1),
                                     [S((B, 5), f32), S((B, 5), f32), S((B, 5), bl)]),
    "losses.softmax_cross_entropy_with_integer_labels": (
        lambda x, t, m, w: losses.softmax_cross_entropy_with_integer_labels(x, t, where=m, weight=w,
                                                                            label_smoothing=0.1),
        [S((B, 5), f32), S((B,), i32), S((B, 5), bl), S((5,), f32)]),
    "losses.softmax_cross_entropy_with_integer_labels, symbolic classes": (
        losses.softmax_cross_entropy_with_integer_labels, [S((B, C), f32), S((B,), i32)]),
    **{f"losses.{n}": (getattr(losses, n), [S((B, 3), f32), S((B, 3), f32)])
       for n in ("squared_error", "l2_loss", "huber_loss", "sigmoid_binary_cross_entropy", "sigmoid_focal_loss",
                 "kl_divergence", "kl_divergence_with_log_targets")},
}


def _concrete(spec, rng):
  shape = tuple(3 if d is B else 5 if d is C else d for d in spec.shape)
  if spec.dtype == bl:
    return jnp.asarray(rng.uniform(size=shape) < 0.7)
  if jnp.issubdtype(spec.dtype, jnp.integer):
    return jnp.asarray(rng.integers(0, 3, shape).astype(spec.dtype))
  return jnp.asarray(rng.uniform(0.1, 0.9, shape).astype(spec.dtype))


@pytest.mark.parametrize("name", list(EXPORTS))
def test_exports_with_symbolic_dimensions_forward_and_gradient(name):
  fn, specs = EXPORTS[name]
  rng = np.random.default_rng(len(name))
  args = [_concrete(s, rng) for s in specs]
  with jax.enable_x64(False):
    args = [a.astype(jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in args]
    # The value and the gradient in every floating argument, in one program.
    floating = tuple(i for i, a in enumerate(args) if jnp.issubdtype(a.dtype, jnp.floating))
    both = jax.jit(lambda *a: (fn(*a), jax.grad(lambda *b: jnp.sum(fn(*b)), argnums=floating)(*a)))
    exported = jax.export.export(both)(*specs)
    for got, want in zip(jax.tree_util.tree_leaves(exported.call(*args)), jax.tree_util.tree_leaves(both(*args)),
                         strict=True):
      np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


# --------------------------------------------------------------------------
# 5. host int64 values with x64 off: never narrowed to int32 first

BIG = np.array([2**32 + 7, -(2**33) + 3], np.int64)
VALUE_DOORS = {
    "mse_loss": (lambda x, t: jaxnll.mse_loss(x, t, reduction="none"),
                 lambda x, t: F.mse_loss(x, t, reduction="none")),
    "l1_loss": (lambda x, t: jaxnll.l1_loss(x, t, reduction="none"), lambda x, t: F.l1_loss(x, t, reduction="none")),
    "huber_loss": (lambda x, t: jaxnll.huber_loss(x, t, reduction="none"),
                   lambda x, t: F.huber_loss(x, t, reduction="none")),
    "smooth_l1_loss": (lambda x, t: jaxnll.smooth_l1_loss(x, t, reduction="none"),
                       lambda x, t: F.smooth_l1_loss(x, t, reduction="none")),
    "poisson_nll_loss": (lambda x, t: jaxnll.poisson_nll_loss(x, t, reduction="none"),
                         lambda x, t: F.poisson_nll_loss(x, t, reduction="none")),
    "gaussian_nll_loss target": (lambda x, t: jaxnll.gaussian_nll_loss(x, t, np.ones(2, np.int64), reduction="none"),
                                 lambda x, t: F.gaussian_nll_loss(x, t, torch.ones(2), reduction="none")),
    "gaussian_nll_loss var": (lambda x, t: jaxnll.gaussian_nll_loss(x, np.zeros(2), np.abs(t), reduction="none"),
                              lambda x, t: F.gaussian_nll_loss(x, torch.zeros(2), t.abs(), reduction="none")),
    "binary_cross_entropy_with_logits": (
        lambda x, t: jaxnll.binary_cross_entropy_with_logits(x, t, reduction="none"),
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none")),
    "MSELoss": (lambda x, t: jaxnll.MSELoss("none")(x, t), lambda x, t: F.mse_loss(x, t, reduction="none")),
    "losses.squared_error": (losses.squared_error, lambda x, t: (x - t) ** 2),
    "margin_ranking_loss": (lambda x, t: jaxnll.margin_ranking_loss(x, -x, t, reduction="none"),
                            lambda x, t: F.margin_ranking_loss(x, -x, t, reduction="none")),
    "hinge_embedding_loss": (lambda x, t: jaxnll.hinge_embedding_loss(x, t, reduction="none"),
                             lambda x, t: F.hinge_embedding_loss(x, t, reduction="none")),
    "soft_margin_loss": (lambda x, t: jaxnll.soft_margin_loss(x * 1e-9, t, reduction="none"),
                         lambda x, t: F.soft_margin_loss(x * 1e-9, t, reduction="none")),
    "losses.hinge_loss": (losses.hinge_loss, lambda x, t: torch.clamp(1 - t * x, min=0)),
    "losses.l2_loss": (losses.l2_loss, lambda x, t: 0.5 * (x - t) ** 2),
}


@pytest.mark.parametrize("name", list(VALUE_DOORS))
def test_host_int64_values_are_not_wrapped_without_x64(name):
  ours, ref = VALUE_DOORS[name]
  x = np.array([0.5, 1.5], np.float32)
  expected = ref(torch.tensor(x), torch.tensor(BIG.astype(np.float32))).numpy()
  with jax.enable_x64(False), jax.numpy_dtype_promotion("standard"):
    out = ours(jnp.asarray(x), BIG)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, expected, rtol=1e-6)


# --------------------------------------------------------------------------
# 6-8. kl_div edges; IEEE division over a zero normalizer


@pytest.mark.parametrize("shape", [(3, 0), (3, 0, 2)])
def test_kl_div_batchmean_of_empty_rows_is_zero_like_torch(shape):
  ref = F.kl_div(torch.zeros(shape), torch.zeros(shape), reduction="batchmean")
  out = jaxnll.kl_div(jnp.zeros(shape), jnp.zeros(shape), reduction="batchmean")
  np.testing.assert_array_equal(out, ref.numpy())


@pytest.mark.parametrize("x", [np.nan, 0.5, -np.inf])
def test_kl_div_log_target_slope_at_an_impossible_target_is_torchs(x):
  xt = torch.tensor([x], dtype=torch.float64, requires_grad=True)
  ref = F.kl_div(xt, torch.tensor([-np.inf], dtype=torch.float64), log_target=True, reduction="sum")
  ref.backward()
  grad = jax.grad(lambda a: jaxnll.kl_div(a, jnp.array([-jnp.inf]), log_target=True, reduction="sum"))(jnp.array([x]))
  np.testing.assert_array_equal(grad, xt.grad.numpy())


@pytest.mark.parametrize("fn", ["l1_loss", "mse_loss"])
@pytest.mark.parametrize("weight", [[1.0, -1.0], [0.0, 0.0], [-1.0, 1.0]])
def test_weights_that_sum_to_zero_divide_like_ieee(fn, weight):
  x, t = [1.0, 3.0], [0.0, 0.0]
  xt = torch.tensor(x, requires_grad=True)
  ref = getattr(F, fn)(xt, torch.tensor(t), weight=torch.tensor(weight))
  ref.backward()
  out, grad = jax.value_and_grad(lambda a: getattr(jaxnll, fn)(a, jnp.array(t), weight=jnp.array(weight)))(
      jnp.array(x))
  np.testing.assert_array_equal(out, ref.detach().numpy())
  np.testing.assert_array_equal(grad, xt.grad.numpy())  # ±inf, NaN for a zero weight (0 · inf), as torch
  assert not np.any(np.isnan(jax.grad(lambda a: getattr(jaxnll, fn)(a, jnp.array(t), reduction="safe_mean",
                                                                    weight=jnp.array(weight)))(jnp.array(x))))


# --------------------------------------------------------------------------
# 9. checked mode raises on everything the eager call raises on


EAGER_CHECKS = {
    "binary_cross_entropy probs": (jaxnll.binary_cross_entropy, (jnp.array([0.5, 1.5]), jnp.array([1.0, 0.0])),
                                   jaxnll._binary.ProbabilityRangeError, "holds 1.5"),
    "binary_cross_entropy targets": (jaxnll.binary_cross_entropy, (jnp.array([0.5, 0.5]), jnp.array([1.0, -2.0])),
                                     jaxnll._binary.ProbabilityRangeError, "holds -2.0"),
    "BCELoss": (jaxnll.BCELoss(), (jnp.array([0.5, 1.5]), jnp.array([1.0, 0.0])),
                jaxnll._binary.ProbabilityRangeError, "holds 1.5"),
    "gaussian_nll_loss var": (jaxnll.gaussian_nll_loss, (jnp.zeros(2), jnp.zeros(2), jnp.array([1.0, -1.0])),
                              ValueError, "var has negative entry"),
    "cross_entropy targets": (jaxnll.cross_entropy, (jnp.zeros((2, 3)), jnp.array([0, 5])), IndexError, "Target 5"),
}


@pytest.mark.parametrize("name", list(EAGER_CHECKS))
def test_checked_raises_what_the_eager_call_raises(name):
  fn, args, error, text = EAGER_CHECKS[name]
  with pytest.raises(error, match=text):
    fn(*args)  # eager
  with pytest.raises(error, match=text):
    jaxnll.checked(fn)(*args)
  with pytest.raises(Exception, match=text):  # inside jit: a JaxRuntimeError carrying the exception
    jax.block_until_ready(jax.jit(jaxnll.checked(fn))(*args))
  assert np.isnan(jax.jit(fn)(*args))  # unchecked and traced: NaN, never a plausible number


def test_checked_passes_good_values_through():
  p, t = jnp.array([0.25, 0.75]), jnp.array([1.0, 0.0])
  np.testing.assert_allclose(jaxnll.checked(jaxnll.binary_cross_entropy)(p, t), jaxnll.binary_cross_entropy(p, t))
  np.testing.assert_allclose(jaxnll.checked(jaxnll.gaussian_nll_loss)(p, t, p), jaxnll.gaussian_nll_loss(p, t, p))


# --------------------------------------------------------------------------
# 10. a zero normalizer leaves params and optimizer state unchanged


@pytest.mark.parametrize("accumulation_steps", [1, 2])
@jax.numpy_dtype_promotion("standard")  # optax's Adam mixes Python floats and int32 counts
def test_train_step_skips_a_zero_normalizer(accumulation_steps):
  params = {"w": jnp.asarray(RNG.standard_normal((4, 3)))}
  optimizer = optax.adam(0.1)
  state = optimizer.init(params)
  # One step on a real batch first, so Adam's moments are nonzero.
  loss = jaxnll.CrossEntropyLoss(jnp.array([0.0, 0.0, 1.0]))
  step = training.make_train_step(lambda p, x: x @ p["w"], loss, optimizer, accumulation_steps=accumulation_steps,
                                  jit=False)
  x = jnp.asarray(RNG.standard_normal((4, 4)))
  params, state, _ = step(params, state, {"inputs": x, "targets": jnp.array([2, 0, 2, 1])})
  # Counted targets whose class weights are all 0: the normalizer is 0.
  new_params, new_state, metrics = step(params, state, {"inputs": x, "targets": jnp.array([0, 1, 0, 1])})
  assert float(metrics["count"]) == 4 and float(metrics["normalizer"]) == 0
  for a, b in zip(jax.tree_util.tree_leaves((new_params, new_state)), jax.tree_util.tree_leaves((params, state)),
                  strict=True):
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# 11. poisson_nll_loss(full=True): the target gradient at targets <= 1 (a deliberate difference)


def test_poisson_full_target_gradient_is_the_derivative_of_the_value():
  x, t = np.array([0.3, -0.2, 1.0]), np.array([0.0, 0.5, 1.0])
  tt = torch.tensor(t, requires_grad=True)
  F.poisson_nll_loss(torch.tensor(x), tt, full=True, reduction="sum").backward()
  assert np.isnan(tt.grad.numpy()[0])  # torch differentiates log(t) through its mask
  g = jax.grad(lambda b: jaxnll.poisson_nll_loss(jnp.asarray(x), b, full=True, reduction="sum"))(jnp.asarray(t))
  np.testing.assert_allclose(g, -x, rtol=1e-12)  # t <= 1 adds no Stirling term: d/dt (exp(x) - t x) = -x


# --------------------------------------------------------------------------
# torch's positional orders and spellings

CE_X = RNG.standard_normal((5, 4))
CE_T = np.array([0, 3, 1, 1, 2])
CE_W = RNG.uniform(0.5, 2.0, 4)


def test_weight_is_the_third_positional_argument_as_in_torch():
  ref = F.cross_entropy(_t(CE_X), _t(CE_T), _t(CE_W)).numpy()
  np.testing.assert_allclose(jaxnll.cross_entropy(CE_X, CE_T, CE_W), ref, rtol=1e-12)
  lp = torch.log_softmax(_t(CE_X), 1)
  np.testing.assert_allclose(jaxnll.nll_loss(lp.numpy(), CE_T, CE_W), F.nll_loss(lp, _t(CE_T), _t(CE_W)).numpy(),
                             rtol=1e-12)
  p, t = RNG.uniform(0.1, 0.9, (3, 4)), RNG.uniform(size=(3, 4))
  w = RNG.uniform(size=4)
  for name, arg in (("binary_cross_entropy", p), ("binary_cross_entropy_with_logits", p),
                    ("multilabel_soft_margin_loss", p)):
    np.testing.assert_allclose(getattr(jaxnll, name)(arg, t, w), getattr(F, name)(_t(arg), _t(t), _t(w)).numpy(),
                               rtol=1e-12)


@pytest.mark.parametrize("call", [
    lambda: jaxnll.log_softmax(jnp.zeros((2, 3)), dim=1),
    lambda: jaxnll.cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 1]), dim=1),
    lambda: jaxnll.nll_loss(jnp.zeros((2, 3)), jnp.array([0, 1]), dim=1),
    lambda: losses.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2, 3)), dim=1),
    lambda: jaxnll.CrossEntropyLoss(dim=1),
    lambda: jaxnll.NLLLoss(dim=1),
    lambda: jaxnll.LogSoftmax(dim=1),
    lambda: jaxnll.Softmax(dim=1),
], ids=["log_softmax", "cross_entropy", "nll_loss", "losses", "CrossEntropyLoss", "NLLLoss", "LogSoftmax", "Softmax"])
def test_dim_is_refused_with_jaxs_spelling(call):
  with pytest.raises(TypeError, match=r"takes `axis=`, not torch's `dim=`.*axis=1"):
    call()


def _objects_in_torch_order():
  """(jaxnll object built positionally, torch module built by keyword, inputs) for every loss object."""
  w4, p, t01 = _t(CE_W), RNG.uniform(0.1, 0.9, (5, 4)), RNG.uniform(size=(5, 4))
  x, y = RNG.standard_normal((5, 4)), RNG.standard_normal((5, 4))
  lp = torch.log_softmax(_t(CE_X), 1).numpy()
  return [
      (jaxnll.NLLLoss(CE_W, 1, "sum"), torch.nn.NLLLoss(weight=w4, ignore_index=1, reduction="sum"), (lp, CE_T)),
      (jaxnll.CrossEntropyLoss(CE_W, 1, "sum", 0.1),
       torch.nn.CrossEntropyLoss(weight=w4, ignore_index=1, reduction="sum", label_smoothing=0.1), (CE_X, CE_T)),
      (jaxnll.BCELoss(CE_W, "sum"), torch.nn.BCELoss(weight=w4, reduction="sum"), (p, t01)),
      (jaxnll.BCEWithLogitsLoss(CE_W, "sum", CE_W),
       torch.nn.BCEWithLogitsLoss(weight=w4, reduction="sum", pos_weight=w4), (x, t01)),
      (jaxnll.MultiLabelSoftMarginLoss(CE_W, "sum"), torch.nn.MultiLabelSoftMarginLoss(weight=w4, reduction="sum"),
       (x, t01)),
      (jaxnll.KLDivLoss("batchmean", True), torch.nn.KLDivLoss(reduction="batchmean", log_target=True), (x, y)),
      (jaxnll.PoissonNLLLoss(False, True, 1e-3, "sum"),
       torch.nn.PoissonNLLLoss(log_input=False, full=True, eps=1e-3, reduction="sum"), (p, 3 * t01)),
      (jaxnll.L1Loss("sum"), torch.nn.L1Loss(reduction="sum"), (x, y)),
      (jaxnll.MSELoss("sum"), torch.nn.MSELoss(reduction="sum"), (x, y)),
      (jaxnll.HuberLoss("sum", 0.5), torch.nn.HuberLoss(reduction="sum", delta=0.5), (x, y)),
      (jaxnll.SmoothL1Loss("sum", 0.5), torch.nn.SmoothL1Loss(reduction="sum", beta=0.5), (x, y)),
  ]


def test_loss_objects_take_torchs_positional_order():
  for ours, ref, args in _objects_in_torch_order():
    np.testing.assert_allclose(ours(*args), ref(*[_t(a) for a in args]).numpy(), rtol=1e-12, err_msg=repr(ours))
  # Our positional parameters are torch's, in torch's order, legacy size_average/reduce left out.
  for ours, ref, _ in _objects_in_torch_order():
    torch_names = [n for n, p in inspect.signature(type(ref).__init__).parameters.items()
                   if n not in ("self", "size_average", "reduce") and p.kind is p.POSITIONAL_OR_KEYWORD]
    our_names = [n for n, p in inspect.signature(type(ours)).parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert our_names == torch_names, type(ours).__name__
  with pytest.raises(TypeError, match="pass weights as `weight=`"):
    jaxnll.L1Loss(jnp.ones(3))
  with pytest.raises(TypeError):
    jaxnll.GaussianNLLLoss(True)  # keyword-only, as torch's



# --------------------------------------------------------------------------
# The second review of this round's changes


def test_adaptive_predict_breaks_head_ties_on_the_raw_logits_as_torch():
  module = torch.nn.AdaptiveLogSoftmaxWithLoss(1, 4, [2], div_value=1.0)
  with torch.no_grad():
    module.head.weight.copy_(torch.tensor([[0.0], [1e-8], [-5.0]]))
  params = {k: jnp.asarray(t.detach().numpy()) for k, t in module.state_dict().items()}
  x = np.ones((1, 1), np.float32)
  ours = jaxnll.adaptive_predict(params, x, cutoffs=[2], div_value=1.0)
  np.testing.assert_array_equal(ours, module.predict(torch.tensor(x)).numpy())


def test_cosine_embedding_of_identical_vectors_is_exactly_zero_as_torch():
  x = RNG.standard_normal((64, 5)).astype(np.float32)
  y = np.ones(64, np.float32)
  ours = jaxnll.cosine_embedding_loss(x, x, y, reduction="none")
  ref = F.cosine_embedding_loss(torch.tensor(x), torch.tensor(x), torch.tensor(y), reduction="none").numpy()
  np.testing.assert_array_equal(ours, ref)
  assert np.all(np.asarray(ours) >= 0)


def test_cosine_similarity_of_empty_vectors_is_optaxs():
  for name in ("cosine_similarity", "cosine_distance"):
    np.testing.assert_array_equal(getattr(losses, name)(jnp.zeros((0,)), jnp.zeros((0,))),
                                  getattr(optax.losses, name)(jnp.zeros((0,)), jnp.zeros((0,))))


def test_cosine_similarity_of_a_fully_masked_pair_is_optaxs():
  a, b = jnp.array([[0.3, -0.2], [1.0, 2.0]]), jnp.array([[0.5, 0.1], [2.0, 1.0]])
  mask = jnp.array([[False, False], [True, False]])
  for name in ("cosine_similarity", "cosine_distance"):
    np.testing.assert_allclose(getattr(losses, name)(a, b, where=mask), getattr(optax.losses, name)(a, b, where=mask),
                               rtol=1e-12)
    g = jax.grad(lambda x, name=name: jnp.sum(getattr(losses, name)(x, b, where=mask)))(a)
    np.testing.assert_array_equal(g[0], 0.0)


def test_softmax_object_is_torchs_formula():
  x = RNG.standard_normal((50, 7)).astype(np.float32)
  np.testing.assert_allclose(jaxnll.Softmax()(x), torch.softmax(torch.tensor(x), -1).numpy(), rtol=3e-7, atol=0)
  np.testing.assert_array_equal(jaxnll.Softmax()(jnp.array([-jnp.inf, -jnp.inf])), [0.0, 0.0])


@jax.numpy_dtype_promotion("standard")
def test_training_reports_torchs_nan_for_smoothing_over_a_zero_normalizer():
  loss = jaxnll.CrossEntropyLoss(jnp.array([1.0, -1.0, 0.0]), label_smoothing=0.1)
  x, y = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]]), jnp.array([0, 1])
  batch = {"inputs": x, "targets": y}
  assert np.isnan(loss(x, y))
  apply = lambda p, a: a * p
  assert np.isnan(training.make_grad_fn(apply, loss)(jnp.float32(1.0), batch)[0])
  metrics = training.make_eval_step(apply, loss)(jnp.float32(1.0), batch)
  assert np.isnan(metrics["loss"]) and np.isnan(training.finalize_metrics(metrics, loss)["loss"])


def test_checked_takes_static_keyword_options():
  f = jaxnll.checked(jaxnll.cross_entropy)
  x = jnp.zeros((2, 3))
  np.testing.assert_allclose(f(x, jnp.array([0, 1]), reduction="sum", label_smoothing=0.1),
                             jaxnll.cross_entropy(x, jnp.array([0, 1]), reduction="sum", label_smoothing=0.1))
  with pytest.raises(IndexError, match="Target 5"):
    f(x, jnp.array([0, 5]), reduction="sum")


@pytest.mark.parametrize("name", ["cosine_similarity", "cosine_distance", "kl_divergence",
                                  "kl_divergence_with_log_targets"])
def test_optax_drop_ins_with_an_axis_refuse_dim_too(name):
  with pytest.raises(TypeError, match="not torch's `dim=`"):
    getattr(losses, name)(jnp.zeros((2, 3)), jnp.zeros((2, 3)), dim=1)


@pytest.mark.parametrize("weight", [None, CE_W])
def test_smoothed_mean_gradients_are_torchs(weight):
  """The NaN-over-zero branch of the mean must not leak into the gradient of an ordinary batch."""
  kw = {} if weight is None else {"weight": weight}
  xt = _t(CE_X, True)
  F.cross_entropy(xt, _t(CE_T), label_smoothing=0.1, **{k: _t(v) for k, v in kw.items()}).backward()
  for loss in (lambda x: jaxnll.cross_entropy(x, CE_T, label_smoothing=0.1, **kw),
               lambda x: jaxnll.CrossEntropyLoss(label_smoothing=0.1, **kw)(x, CE_T)):
    np.testing.assert_allclose(jax.grad(loss)(jnp.asarray(CE_X)), xt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("scores", [[[5.0, -10.0, -10.0]], [[-10.0, -10.0, 5.0]], [[0.0, 0.0, 0.0]]])
def test_an_out_of_range_class_under_jit_gives_a_whole_nan_gradient_row(scores):
  x, bad = jnp.asarray(scores), jnp.array([3])
  for loss in (lambda a, t: jaxnll.multi_margin_loss(a, t, reduction="sum"),
               lambda a, t: jnp.sum(losses.multiclass_hinge_loss(a, t))):
    value, grad = jax.jit(jax.value_and_grad(loss))(x, bad)
    assert np.isnan(value) and np.all(np.isnan(grad))
  grad = jax.jit(jax.grad(lambda a: jaxnll.multilabel_margin_loss(a, jnp.array([[5, -1, 0]]), reduction="sum")))(x)
  assert np.all(np.isnan(grad))


# --------------------------------------------------------------------------
# A non-finite class weight or tangent where a row's coefficient is zero


@pytest.mark.parametrize("fn", ["nll_loss", "cross_entropy"])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize("classes", [3, 64, 200])
def test_a_non_finite_weight_on_an_ignored_targets_class_leaves_its_gradient_zero(fn, bad, classes):
  # The ignored target is clipped to class 0 (ignore_index -100) or is class 0 itself; the
  # weight there is inf or NaN. torch: the values and every gradient row agree, the ignored row is 0.
  x = np.log(RNG.dirichlet(np.ones(classes), size=4)).astype(np.float32)
  w = np.ones(classes, np.float32)
  w[0] = bad
  for ignore, y in ((-100, [1, 2, -100, 1]), (0, [1, 2, 0, 1])):
    xt = _t(x, grad=True)
    lt = getattr(F, fn)(xt, _t(np.array(y)), weight=_t(w), ignore_index=ignore, reduction="sum")
    (gt,) = torch.autograd.grad(lt, xt)
    loss = lambda a, b, ignore=ignore: getattr(jaxnll, fn)(a, b, weight=jnp.asarray(w), ignore_index=ignore,
                                                          reduction="sum")
    value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(float(value), lt.item(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grad), gt.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(grad)[2] == 0)


@pytest.mark.parametrize("classes", [3, 64, 1000])
def test_nll_tangent_ignores_non_finite_tangents_off_the_target_as_torch(classes):
  # nll_loss(log p) with p = 0 at a class that is no row's target: log's tangent there is
  # NaN (0 / 0) or inf; the loss depends on the targets' entries only (torch.func.jvp).
  p = np.full((2, classes), 1.0 / (classes - 1), np.float32)
  p[:, 1] = 0.0
  y = np.array([0, 2])
  dp = np.zeros_like(p)
  dp[:, 0] = 1.0
  dp[1, 1] = 1.0  # inf tangent of log p there
  _, expected = torch.func.jvp(lambda q: F.nll_loss(torch.log(q), _t(y), reduction="sum"), (_t(p),), (_t(dp),))
  f = lambda q: jaxnll.nll_loss(jnp.log(q), jnp.asarray(y), reduction="sum")
  _, got = jax.jit(lambda q, t: jax.jvp(f, (q,), (t,)))(jnp.asarray(p), jnp.asarray(dp))
  np.testing.assert_allclose(float(got), expected.item(), rtol=1e-5)
  # An out-of-range target still makes its row's tangent NaN, whatever the tangent.
  bad = lambda a: jaxnll.nll_loss(a, jnp.asarray([0, classes + 5]), reduction="none")
  _, t = jax.jit(lambda a, d: jax.jvp(bad, (a,), (d,)))(jnp.log(jnp.asarray(p) + 0.1), jnp.zeros_like(p))
  assert np.isfinite(float(t[0])) and np.isnan(float(t[1]))
