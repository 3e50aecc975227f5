"""Parity with real PyTorch on values and gradients (hypothesis-driven, plus corner cases)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import jaxnll
from tests._torch_ref import torch_loss_and_grad

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


# Torch-layout inputs: (C,) unbatched, or (N, C, d...) with an empty batch, a single class and
# K dimensions. A small fixed pool: the calls run eagerly and each new shape compiles every
# operation again, while new values and options mostly reuse what is compiled.
UNBATCHED = [(1,), (5,)]
BATCHED = [(0, 3), (1, 1), (4, 5), (2, 7, 3), (3, 4, 1, 2)]


@st.composite
def configs(draw, soft_allowed=True):
  """A random torch-layout problem: input ``(N, C, d...)`` or ``(C,)``, targets, options."""
  dtype = draw(st.sampled_from([np.float32, np.float64]))
  unbatched = draw(st.booleans()) and draw(st.booleans())
  shape = draw(st.sampled_from(UNBATCHED if unbatched else BATCHED))
  c = shape[0] if unbatched else shape[1]
  seed = draw(st.integers(0, 2**31 - 1))
  rng = np.random.default_rng(seed)
  scale = draw(st.sampled_from([0.1, 1.0, 5.0, 30.0]))
  x = (rng.standard_normal(shape) * scale).astype(dtype)
  elem_shape = shape[1:] if unbatched else (shape[0], *shape[2:])
  soft = soft_allowed and draw(st.booleans()) and draw(st.booleans())
  opts = {}
  if draw(st.booleans()):
    opts["weight"] = rng.uniform(0.1, 3.0, size=c).astype(dtype)
  if soft:
    t = rng.uniform(0, 1, size=shape).astype(dtype)
    t /= t.sum(axis=0 if unbatched else 1, keepdims=True)
  else:
    t = rng.integers(0, c, size=elem_shape)
    ii = draw(st.sampled_from([-100, 0, c - 1, -1]))
    if ii != -100 or draw(st.booleans()):
      opts["ignore_index"] = ii
    drop = rng.uniform(size=elem_shape) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    t = np.where(drop, opts.get("ignore_index", -100), t)
  opts["reduction"] = draw(st.sampled_from(["none", "mean", "sum"]))
  return x, t, soft, unbatched, opts


def _jax_value_and_grad(fn, x, t, soft, axis, jit=False, **opts):
  def total(x_, t_):
    out = fn(x_, t_, axis=axis, **opts)
    return jnp.sum(out), out

  argnums = (0, 1) if soft else 0
  value_and_grad = jax.value_and_grad(total, argnums=argnums, has_aux=True)
  (_, out), grads = (jax.jit(value_and_grad) if jit else value_and_grad)(jnp.asarray(x), jnp.asarray(t))
  gx, gt = grads if soft else (grads, None)
  return np.asarray(out), np.asarray(gx), None if gt is None else np.asarray(gt)


def _assert_close(ours, ref, dtype):
  np.testing.assert_allclose(ours, ref, equal_nan=True, **TOL[dtype])


def _check_against_torch(x, t, soft, unbatched, opts, label_smoothing=0.0, last_axis=False, jit=False):
  dtype = x.dtype.type
  ref, ref_gx, ref_gt = torch_loss_and_grad(
      "cross_entropy", x, t, soft=soft, label_smoothing=label_smoothing, **opts
  )
  class_axis = 0 if unbatched else 1
  jx, jt = x, t
  if last_axis:
    jx = np.moveaxis(x, class_axis, -1)
    jt = np.moveaxis(t, class_axis, -1) if soft else t
  jopts = {**opts}
  if jopts.get("weight") is not None:
    jopts["weight"] = jnp.asarray(jopts["weight"])
  out, gx, gt = _jax_value_and_grad(
      jaxnll.cross_entropy, jx, jt, soft, -1 if last_axis else class_axis,
      jit=jit, label_smoothing=label_smoothing, **jopts,
  )
  assert out.dtype == dtype
  _assert_close(out, ref, dtype)
  if last_axis:
    gx = np.moveaxis(gx, -1, class_axis)
    gt = None if gt is None else np.moveaxis(gt, -1, class_axis)
  if np.isnan(ref).any() and opts["reduction"] == "mean":
    # torch: an empty / all-ignored mean is NaN with an all-zero gradient.
    np.testing.assert_array_equal(gx, ref_gx)
  else:
    _assert_close(gx, ref_gx, dtype)
  if soft:
    _assert_close(gt, ref_gt, dtype)


# Eagerly (concrete targets) or jitted (traced targets), drawn per example.
@given(configs(), st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0]), st.booleans(), st.booleans())
def test_cross_entropy_matches_torch(cfg, label_smoothing, last_axis, jit):
  x, t, soft, unbatched, opts = cfg
  _check_against_torch(x, t, soft, unbatched, opts, label_smoothing, last_axis, jit)


@given(configs(soft_allowed=False), st.booleans())
def test_nll_loss_matches_torch(cfg, last_axis):
  x, t, _, unbatched, opts = cfg
  dtype = x.dtype.type
  lp = torch.log_softmax(torch.from_numpy(x), dim=0 if unbatched else 1).numpy()
  ref, ref_gx, _ = torch_loss_and_grad("nll_loss", lp, t, **opts)
  class_axis = 0 if unbatched else 1
  jx = np.moveaxis(lp, class_axis, -1) if last_axis else lp
  jopts = {k: (jnp.asarray(v) if k == "weight" else v) for k, v in opts.items()}
  out, gx, _ = _jax_value_and_grad(
      jaxnll.nll_loss, jx, t, False, -1 if last_axis else class_axis, **jopts
  )
  _assert_close(out, ref, dtype)
  if last_axis:
    gx = np.moveaxis(gx, -1, class_axis)
  _assert_close(gx, ref_gx, dtype)


# --------------------------------------------------------------------------
# Every corner case measured in SEMANTICS.md, against torch itself.

X3 = np.array([[0.3, -1.2, 2.0], [1.0, 0.5, -0.5], [0.0, 0.0, 0.0], [2.5, -3.0, 1.0]])
W3 = np.array([0.2, 1.5, 0.7])


def _case(x, t, **opts):
  opts.setdefault("reduction", "mean")
  eps = opts.pop("label_smoothing", 0.0)
  _check_against_torch(np.asarray(x, np.float64), np.asarray(t), False, False, opts, eps)
  _check_against_torch(np.asarray(x, np.float64), np.asarray(t), False, False, opts, eps, True)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("weight", [None, W3])
def test_all_ignored(reduction, eps, weight):
  # mean -> NaN with an all-zero gradient; sum -> 0; none -> zeros.
  _case(X3, [-100] * 4, reduction=reduction, label_smoothing=eps, weight=weight)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_empty_batch(reduction):
  _case(np.zeros((0, 3)), np.zeros((0,), np.int64), reduction=reduction)


def test_smoothing_with_weights_uses_one_denominator():
  _case(X3, [0, 2, 1, -100], weight=W3, label_smoothing=0.3)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ignore_index_equal_to_a_valid_class(reduction):
  _case(X3, [0, 2, 0, 1], ignore_index=0, weight=W3, reduction=reduction, label_smoothing=0.1)


def test_all_zero_weight_targets_give_nan_value_and_gradient():
  _case(X3, [0, 0, 0, 0], weight=np.array([0.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    ("row", "eps"),
    [
        ([-np.inf, 0.0, 0.0], 0.0),  # target logit -inf: inf loss, gradient [-1, .5, .5]
        ([0.0, -np.inf, 0.0], 0.0),  # non-target -inf: 0.693, gradient [-.5, 0, .5]
        ([0.0, -np.inf, 0.0], 0.1),  # non-target -inf with smoothing: inf, finite gradient
        ([-np.inf, -np.inf, -np.inf], 0.0),  # whole row -inf: NaN, NaN gradient
    ],
)
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_minus_inf_logits(row, eps, reduction):
  _case(np.array([row]), [0], reduction=reduction, label_smoothing=eps)


def test_minus_inf_row_that_is_ignored_has_zero_gradient():
  # torch returns a NaN gradient row here (log_softmax's backward); jaxnll gives 0.
  x = jnp.array([[-np.inf, -np.inf, -np.inf], [1.0, 2.0, 3.0]])
  y = jnp.array([-100, 1])
  loss, g = jax.value_and_grad(jaxnll.cross_entropy)(x, y)
  ref, ref_g, _ = torch_loss_and_grad("cross_entropy", np.asarray(x), np.asarray(y))
  np.testing.assert_allclose(loss, ref)
  np.testing.assert_array_equal(g[0], 0.0)
  assert np.isnan(ref_g[0]).all()
  np.testing.assert_allclose(g[1], ref_g[1])


def test_unbatched_with_scalar_target():
  x = np.array([0.5, -1.0, 2.0, 0.1])
  for eps in (0.0, 0.25):
    _check_against_torch(x, np.array(2), False, True, {"reduction": "mean"}, eps)
    _check_against_torch(x, np.array(2), False, True, {"reduction": "none", "weight": W3[[0, 1, 2, 0]]}, eps)


def test_k_dimensional_mean_is_mean_over_flattened_elements():
  rng = np.random.default_rng(3)
  x = rng.standard_normal((2, 4, 3, 5))
  t = rng.integers(0, 4, size=(2, 3, 5))
  t[0, 1] = -100
  _check_against_torch(x, t, False, False, {"reduction": "mean", "weight": rng.uniform(size=4)}, 0.1)
  flat = jaxnll.cross_entropy(jnp.asarray(np.moveaxis(x, 1, -1).reshape(-1, 4)), jnp.asarray(t.ravel()))
  np.testing.assert_allclose(jaxnll.cross_entropy(jnp.asarray(x), jnp.asarray(t), axis=1), flat)


@pytest.mark.parametrize("weight", [None, W3])
@pytest.mark.parametrize("eps", [0.0, 0.4])
def test_probability_targets_mean_divides_by_element_count(weight, eps):
  t = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.1, 0.1, 0.8]])
  _check_against_torch(X3, t, True, False, {"reduction": "mean", "weight": weight}, eps)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64])
def test_any_integer_target_dtype(dtype):
  t = np.array([0, 2, 1, 1], dtype)
  ref, _, _ = torch_loss_and_grad("cross_entropy", X3, t.astype(np.int64))
  np.testing.assert_allclose(jaxnll.cross_entropy(jnp.asarray(X3), jnp.asarray(t)), ref)


def test_bf16_and_f16_are_computed_in_float32():
  rng = np.random.default_rng(0)
  x32 = rng.standard_normal((64, 1000)).astype(np.float32) * 3
  y = rng.integers(0, 1000, 64)
  exact = float(jaxnll.cross_entropy(jnp.asarray(x32, jnp.float64), jnp.asarray(y)))
  for dt in (jnp.bfloat16, jnp.float16):
    xl = jnp.asarray(x32).astype(dt)
    ref = float(jaxnll.cross_entropy(xl.astype(jnp.float64), jnp.asarray(y)))
    ours = jaxnll.cross_entropy(xl, jnp.asarray(y))
    assert ours.dtype == jnp.float32
    assert abs(float(ours) - ref) < 1e-5 * abs(ref)
    g = jax.grad(jaxnll.cross_entropy)(xl, jnp.asarray(y))
    assert g.dtype == dt
  assert np.isfinite(exact)


# --------------------------------------------------------------------------
# The softmax of rows of 64 classes or more is shifted by the target's logit, and by the row max
# only when that overflows: a logit more than float32's exp range (a row sum above 2^64, about 44) above the target's,
# or a NaN or an infinity.


def _far_above_the_target(shape=(6, 70), axis=1):
  """float32 logits (classes on ``axis``) where two rows hold a logit 95 and 120 above their target's."""
  rng = np.random.default_rng(7)
  x = rng.standard_normal(shape).astype(np.float32) * 2
  y = rng.integers(0, shape[axis], (shape[0], *shape[axis + 1:]))
  y.flat[-1] = -100
  xm = np.moveaxis(x, axis, -1).reshape(-1, shape[axis])
  for row, (cls, gap) in {1: (3, 120.0), 4: (0, 95.0)}.items():
    target = y.flat[row]
    xm[row, cls if cls != target else (cls + 1) % shape[axis]] = xm[row, target] + gap
  return np.moveaxis(xm.reshape(*np.moveaxis(x, axis, -1).shape), -1, axis).copy(), y


@pytest.mark.parametrize("opts", [
    dict(reduction="none"), dict(reduction="mean", label_smoothing=0.1),
    dict(reduction="sum", weight=np.linspace(0.5, 2.0, 70, dtype=np.float32), label_smoothing=0.3),
], ids=["none", "mean-smoothing", "sum-weight-smoothing"])
@pytest.mark.parametrize("shape", [(6, 70), (3, 70, 2)], ids=["N,C", "N,C,d"])
def test_a_logit_far_above_the_targets_falls_back_to_the_row_max(opts, shape):
  x, y = _far_above_the_target(shape)
  eps = opts.pop("label_smoothing", 0.0)
  # torch in float64 on the same float32 inputs: the values are float32-exact, not just finite.
  ref, ref_gx, _ = torch_loss_and_grad("cross_entropy", x.astype(np.float64), y, label_smoothing=eps,
                                       **{k: (v.astype(np.float64) if k == "weight" else v) for k, v in opts.items()})
  jopts = {k: (jnp.asarray(v) if k == "weight" else v) for k, v in opts.items()}
  out, gx, _ = _jax_value_and_grad(jaxnll.cross_entropy, x, y, False, 1, jit=True, label_smoothing=eps, **jopts)
  assert np.isfinite(out).all() and np.isfinite(gx).all()
  np.testing.assert_allclose(out, ref, rtol=2e-6, atol=2e-6)
  np.testing.assert_allclose(gx, ref_gx, rtol=2e-6, atol=1e-7)


def test_the_fallback_under_vmap_and_forward_mode_is_torchs():
  x, y = _far_above_the_target()
  y = np.maximum(y, 0)
  xt = torch.from_numpy(x.astype(np.float64))
  yt = torch.from_numpy(y.astype(np.int64))
  # Per-example gradients where two examples overflow: one flag decides for the whole batch.
  per_example = jax.jit(jax.vmap(jax.grad(lambda a, b: jaxnll.cross_entropy(a, b))))(jnp.asarray(x), jnp.asarray(y))
  ref = torch.func.vmap(torch.func.grad(lambda a, b: torch.nn.functional.cross_entropy(a, b)))(xt, yt)
  np.testing.assert_allclose(per_example, ref.numpy(), rtol=2e-6, atol=1e-7)
  # Forward mode and both orders of the Hessian at the overflowing rows.
  rows = jnp.asarray(x[[0, 1, 4]]), jnp.asarray(y[[0, 1, 4]])
  tangent = np.random.default_rng(3).standard_normal(x[[0, 1, 4]].shape).astype(np.float32)
  loss = lambda a: jaxnll.cross_entropy(a, rows[1], label_smoothing=0.2)
  tloss = lambda a: torch.nn.functional.cross_entropy(a, yt[[0, 1, 4]], label_smoothing=0.2)
  _, jvp = jax.jit(lambda a, t: jax.jvp(loss, (a,), (t,)))(rows[0], jnp.asarray(tangent))
  _, ref_jvp = torch.func.jvp(tloss, (xt[[0, 1, 4]],), (torch.from_numpy(tangent.astype(np.float64)),))
  np.testing.assert_allclose(jvp, ref_jvp.item(), rtol=2e-6, atol=1e-6)
  ref_h = torch.func.hessian(tloss)(xt[[0, 1, 4]]).numpy()
  for hessian in (jax.hessian(loss), jax.jacrev(jax.jacfwd(loss))):
    np.testing.assert_allclose(jax.jit(hessian)(rows[0]), ref_h, rtol=1e-5, atol=1e-7)


def test_a_row_sum_just_below_overflow_keeps_small_gradients():
  # exp(88.5) is finite, but 1 / that sum times a mean's 1/1000 is below float32's normal range: the row
  # must take the max, or its gradient is flushed to 0 (torch: 1e-3 at the large logit).
  x = np.zeros((1000, 100), np.float32)
  x[:, 5] = 88.5
  y = np.zeros(1000, np.int64)
  ref, ref_gx, _ = torch_loss_and_grad("cross_entropy", x.astype(np.float64), y, reduction="mean")
  out, gx, _ = _jax_value_and_grad(jaxnll.cross_entropy, x, y, False, 1, jit=True, reduction="mean")
  np.testing.assert_allclose(out, ref, rtol=2e-6)
  np.testing.assert_allclose(gx, ref_gx, rtol=2e-5, atol=1e-9)
