"""Regression and likelihood losses against real PyTorch 2.13: L1, MSE, Huber, smooth L1, Poisson and Gaussian NLL."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import jaxnll
from tests._elementwise_cases import (
    EXAMPLES,
    assert_close,
    check_against_torch,
    check_transformations,
    jax_value_and_grads,
    make_mask,
    settings_for,
    torch_reference,
)


def _pair(rng, shape, dtype, kinks=0.0):
  """Predictions and targets; a fraction ``kinks`` of the targets equal their prediction exactly."""
  x = (rng.standard_normal(shape) * 2).astype(dtype)
  t = (rng.standard_normal(shape) * 2).astype(dtype)
  return x, np.where(rng.uniform(size=shape) < kinks, x, t).astype(dtype)


def _weight(kind, shape, rng, dtype):
  if kind is None or (kind == "last" and not shape):
    return None, None
  w_shape = {"full": shape, "last": shape[-1:], "one": (1,) * len(shape)}[kind]
  w = rng.uniform(0.1, 3.0, size=w_shape).astype(dtype)
  return w, np.broadcast_to(w, shape).copy()


WEIGHTS = st.sampled_from([None, "full", "last", "one"])


@EXAMPLES
@given(settings_for(), WEIGHTS, st.sampled_from(["l1_loss", "mse_loss"]))
def test_l1_and_mse_match_torch(cfg, weight_kind, name):
  dtype, shape, rng, mask_kind, reduction = cfg
  x, t = _pair(rng, shape, dtype, kinks=0.3)
  w, w_full = _weight(weight_kind, shape, rng, dtype)
  mask, mask_full = make_mask(mask_kind, shape, rng)
  # torch 2.13: with weight, 'mean' is sum(w * loss) / sum(w); without, the element mean.
  check_against_torch(
      lambda a, b: getattr(jaxnll, name)(a, b, weight=w, reduction=reduction, where=mask),
      lambda a, b, ww, reduction: getattr(F, name)(a, b, weight=ww, reduction=reduction),
      [x, t, w_full], (0, 1), reduction, mask_full, dtype, scale=10.0,
  )


@EXAMPLES
@given(settings_for(), WEIGHTS, st.sampled_from([0.5, 1.0, 2.5]))
def test_huber_matches_torch(cfg, weight_kind, delta):
  dtype, shape, rng, mask_kind, reduction = cfg
  x, t = _pair(rng, shape, dtype, kinks=0.2)
  w, w_full = _weight(weight_kind, shape, rng, dtype)
  mask, mask_full = make_mask(mask_kind, shape, rng)
  # Weighted 'mean' divides by the element count here, unlike mse_loss.
  check_against_torch(
      lambda a, b: jaxnll.huber_loss(a, b, delta=delta, weight=w, reduction=reduction, where=mask),
      lambda a, b, ww, reduction: F.huber_loss(a, b, delta=delta, weight=ww, reduction=reduction),
      [x, t, w_full], (0, 1), reduction, mask_full, dtype, scale=10.0,
  )


@EXAMPLES
@given(settings_for(), st.sampled_from([0.0, 0.5, 1.0, 2.0]))
def test_smooth_l1_matches_torch(cfg, beta):
  dtype, shape, rng, mask_kind, reduction = cfg
  x, t = _pair(rng, shape, dtype, kinks=0.3)
  mask, mask_full = make_mask(mask_kind, shape, rng)
  check_against_torch(
      lambda a, b: jaxnll.smooth_l1_loss(a, b, beta=beta, reduction=reduction, where=mask),
      lambda a, b, reduction: F.smooth_l1_loss(a, b, beta=beta, reduction=reduction),
      [x, t], (0, 1), reduction, mask_full, dtype, scale=10.0,
  )


@EXAMPLES
@given(settings_for(), st.booleans(), st.booleans(), st.sampled_from([1e-8, 0.1]))
def test_poisson_nll_matches_torch(cfg, log_input, full, eps):
  dtype, shape, rng, mask_kind, reduction = cfg
  if log_input:
    x = rng.standard_normal(shape) * 2
  else:
    x = np.where(rng.uniform(size=shape) < 0.2, 0.0, rng.uniform(0, 5, size=shape))
  t = rng.poisson(2.0, size=shape) + np.where(rng.uniform(size=shape) < 0.3, 0.5, 0.0)
  if full:  # torch's target gradient is NaN at t = 0 with full=True (test_poisson_corner_cases)
    t = np.maximum(t, 0.5)
  x, t = x.astype(dtype), t.astype(dtype)
  mask, mask_full = make_mask(mask_kind, shape, rng)
  check_against_torch(
      lambda a, b: jaxnll.poisson_nll_loss(a, b, log_input=log_input, full=full, eps=eps, reduction=reduction,
                                           where=mask),
      lambda a, b, reduction: F.poisson_nll_loss(a, b, log_input=log_input, full=full, eps=eps, reduction=reduction),
      [x, t], (0, 1), reduction, mask_full, dtype, scale=100.0,
  )


def _var_shapes(shape):
  """Every ``var`` shape torch accepts for an input of ``shape``."""
  shapes = [shape]
  if shape:
    shapes.append(shape[:-1])
    shapes += [shape[:i] + (1,) + shape[i + 1:] for i in range(len(shape)) if shape[i] != 1]
  return shapes


def _unbroadcast(g, shape):
  """Sums a gradient over the axes along which an array of ``shape`` was broadcast."""
  if len(shape) < g.ndim:
    return g.sum(axis=-1)
  return g.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1), keepdims=True)


@EXAMPLES
@given(settings_for(), st.data(), st.booleans(), st.sampled_from([1e-6, 0.1]))
def test_gaussian_nll_matches_torch(cfg, data, full, eps):
  dtype, shape, rng, mask_kind, reduction = cfg
  x, t = _pair(rng, shape, dtype)
  var_shape = data.draw(st.sampled_from(_var_shapes(shape)))
  var = rng.uniform(0, 2, size=var_shape)
  var = np.where(rng.uniform(size=var_shape) < 0.2, rng.choice([0.0, 1e-9, 1e-3], size=var_shape), var).astype(dtype)
  var_full = np.broadcast_to(var[..., None] if len(var_shape) < len(shape) else var, shape).copy()
  mask, mask_full = make_mask(mask_kind, shape, rng)
  # The reference sees var at the input's shape; jaxnll gets torch's reduced shapes, and its gradient is summed back.
  ref, ref_grads = torch_reference(
      lambda a, b, v, reduction: F.gaussian_nll_loss(a, b, v, full=full, eps=eps, reduction=reduction),
      [x, t, var_full], (0, 1, 2), reduction, mask_full)
  out, grads = jax_value_and_grads(
      lambda a, b, v: jaxnll.gaussian_nll_loss(a, b, v, full=full, eps=eps, reduction=reduction, where=mask),
      [x, t, var])
  assert out.dtype == dtype and out.shape == np.shape(ref)
  scale = 10.0
  assert_close(out, ref, dtype, scale=scale)
  assert_close(grads[0], ref_grads[0], dtype, scale=scale)
  assert_close(grads[1], ref_grads[1], dtype, scale=scale)
  assert_close(grads[2], _unbroadcast(ref_grads[2], var_shape).reshape(var_shape), dtype, scale=scale)


@pytest.mark.parametrize("var_shape", [(4, 3), (4,), (4, 1), (1, 3), (3,), (), (1, 1), (4, 3, 1), (2, 3), (4, 0)])
def test_gaussian_var_shapes_follow_torch(var_shape):
  x = np.zeros((4, 3))
  try:
    ref = F.gaussian_nll_loss(torch.tensor(x), torch.tensor(x), torch.ones(var_shape, dtype=torch.float64),
                              reduction="none").numpy()
  except (ValueError, RuntimeError):
    with pytest.raises(ValueError, match=r"var is of incorrect size.*`var` of shape"):
      jaxnll.gaussian_nll_loss(x, x, np.ones(var_shape))
  else:
    np.testing.assert_allclose(jaxnll.gaussian_nll_loss(x, x, np.ones(var_shape), reduction="none"), ref)


def test_gaussian_scalar_var():
  x, t = np.array([[1.0, 2.0], [0.5, -1.0]]), np.zeros((2, 2))
  ref = F.gaussian_nll_loss(torch.tensor(x), torch.tensor(t), 0.7, reduction="sum").item()
  np.testing.assert_allclose(jaxnll.gaussian_nll_loss(x, t, 0.7, reduction="sum"), ref, rtol=1e-12)
  one_d = F.gaussian_nll_loss(torch.tensor(x[0]), torch.tensor(t[0]), torch.tensor(0.7, dtype=torch.float64),
                              reduction="sum").item()
  np.testing.assert_allclose(jaxnll.gaussian_nll_loss(x[0], t[0], np.array(0.7), reduction="sum"), one_d, rtol=1e-12)
  with pytest.raises(ValueError, match="var has negative entry/entries"):
    jaxnll.gaussian_nll_loss(x, t, -0.1)


def test_gaussian_clamp_passes_the_gradient_through_in_both_modes():
  x, t = jnp.ones(4), jnp.zeros(4)
  var = jnp.array([0.0, 1e-9, 1e-6, 2.0])
  f = lambda v: jaxnll.gaussian_nll_loss(x, t, v, reduction="sum")
  vt = torch.tensor(np.asarray(var), requires_grad=True)
  F.gaussian_nll_loss(torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), vt,
                      reduction="sum").backward()
  np.testing.assert_allclose(jax.grad(f)(var), vt.grad.numpy(), rtol=1e-12)
  jvp = jax.jvp(f, (var,), (jnp.ones(4),))[1]
  np.testing.assert_allclose(jvp, vt.grad.numpy().sum(), rtol=1e-12)


def test_negative_var_raises_when_known_and_is_nan_when_traced():
  x, t = jnp.ones(3), jnp.zeros(3)
  var = jnp.array([1.0, -0.5, 2.0])
  with pytest.raises(ValueError, match="var has negative entry/entries"):
    jaxnll.gaussian_nll_loss(x, t, var)
  with pytest.raises(ValueError, match="var has negative entry/entries"):
    jax.jit(lambda a: jaxnll.gaussian_nll_loss(a, t, np.array([1.0, -0.5, 2.0])))(x)
  assert np.isnan(jax.jit(jaxnll.gaussian_nll_loss)(x, t, var))
  g = jax.jit(jax.grad(lambda v: jaxnll.gaussian_nll_loss(x, t, v, reduction="sum")))(var)
  assert np.isnan(g[1]) and np.isfinite(g[::2]).all()
  # A masked negative variance is not there.
  np.testing.assert_allclose(jaxnll.gaussian_nll_loss(x, t, var, where=jnp.array([True, False, True])),
                             jaxnll.gaussian_nll_loss(x[::2], t[::2], var[::2]))


# --------------------------------------------------------------------------
# Kinks and non-finite values, against torch


KINK_X = np.array([1.0, 2.0, np.nan, np.inf, -np.inf, 0.0, 3.0])
KINK_T = np.array([1.0, 3.0, 0.0, 0.0, 0.0, np.nan, 3.0])


@pytest.mark.parametrize("name, kwargs", [
    ("l1_loss", {}), ("mse_loss", {}), ("huber_loss", {"delta": 1.0}), ("huber_loss", {"delta": 0.5}),
    ("smooth_l1_loss", {"beta": 1.0}), ("smooth_l1_loss", {"beta": 0.0}),
])
def test_kinks_and_non_finite_values_match_torch(name, kwargs):
  # Where input equals target the gradient is 0 (torch), not jax.grad(jnp.abs)(0.) = 1; NaN and infinite errors
  # give torch's values and gradients too (l1: 0 gradient at NaN; the others NaN).
  check_against_torch(
      lambda a, b: getattr(jaxnll, name)(a, b, reduction="none", **kwargs),
      lambda a, b, reduction: getattr(F, name)(a, b, reduction=reduction, **kwargs),
      [KINK_X, KINK_T], (0, 1), "none", None, np.float64,
  )


def test_poisson_corner_cases():
  x = np.array([0.1, 0.1, 0.1, 0.1, np.inf, -np.inf, 30.0])
  t = np.array([0.0, 0.5, 1.0, 2.0, 1.0, 1.0, 3.0])
  xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
  ref = F.poisson_nll_loss(xt, tt, full=True, reduction="none")
  ref.sum().backward()
  out, (gx, gt) = jax_value_and_grads(lambda a, b: jaxnll.poisson_nll_loss(a, b, full=True, reduction="none"), [x, t])
  np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-12)
  np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12)
  # torch's target gradient is NaN at t = 0 with full=True (0 * log 0 inside a masked-out Stirling term);
  # jaxnll differentiates what the loss computes there: -x.
  assert np.isnan(tt.grad.numpy()[0]) and gt[0] == -0.1
  np.testing.assert_allclose(gt[1:], tt.grad.numpy()[1:], rtol=1e-12)
  # A zero count contributes no t * x term even for an infinite log-rate (torch: exp(x) - 0 * x = NaN at -inf).
  assert jaxnll.poisson_nll_loss(np.array([-np.inf]), np.array([0.0]), reduction="sum") == 0.0


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "poisson_nll_loss"])
def test_masked_elements_have_zero_loss_and_gradient(name):
  x = jnp.array([0.5, np.nan, np.inf, 2.0])
  t = jnp.array([1.0, 2.0, np.nan, -np.inf])
  where = jnp.array([True, False, False, False])
  fn = lambda a, b: getattr(jaxnll, name)(a, b, where=where, reduction="none")
  per = jax.jit(fn)(x, t)
  np.testing.assert_array_equal(per[1:], 0.0)
  for g in jax.jit(jax.grad(lambda a, b: jnp.sum(fn(a, b)), argnums=(0, 1)))(x, t):
    np.testing.assert_array_equal(g[1:], 0.0)
    assert np.isfinite(g).all()
  var = jnp.array([1.0, -1.0, np.nan, 0.0])
  gauss = lambda a, b, v: jaxnll.gaussian_nll_loss(a, b, v, where=where, reduction="sum")
  for g in jax.jit(jax.grad(gauss, argnums=(0, 1, 2)))(x, t, var):
    np.testing.assert_array_equal(g[1:], 0.0)


# --------------------------------------------------------------------------
# Bad input, at trace time


X = jnp.zeros((4, 3))


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: jaxnll.mse_loss(X, jnp.zeros((4, 1))), ValueError, r"`targets` of shape \(4, 1\).*\(4, 3\)"),
        (lambda: jaxnll.l1_loss(jnp.zeros(3, int), jnp.zeros(3)), TypeError, r"`input`.*int"),
        (lambda: jaxnll.l1_loss(X, X, weight=jnp.ones(4)), ValueError, r"`weight` of shape \(4,\)"),
        (lambda: jaxnll.huber_loss(X, X, delta=0.0), ValueError, r"`delta`.*> 0"),
        (lambda: jaxnll.huber_loss(X, X, delta=np.inf), ValueError, r"`delta`"),
        (lambda: jaxnll.smooth_l1_loss(X, X, beta=-1.0), ValueError, r"`beta`.*>= 0"),
        (lambda: jaxnll.poisson_nll_loss(X, X, eps=0.0), ValueError, r"`eps`"),
        (lambda: jaxnll.poisson_nll_loss(X, X, full=1), TypeError, r"`full`.*bool"),
        (lambda: jaxnll.gaussian_nll_loss(X, X, X, eps=-1e-6), ValueError, r"`eps`"),
        (lambda: jaxnll.gaussian_nll_loss(X, X, jnp.ones(3)), ValueError, r"var is of incorrect size"),
        (lambda: jaxnll.gaussian_nll_loss(X, X, None), TypeError, r"`var`"),
        (lambda: jaxnll.mse_loss(X, X, reduction="batchmean"), ValueError, r"`reduction`"),
        (lambda: jaxnll.mse_loss(X, X, where=jnp.ones(3)), TypeError, r"`where`.*bool"),
    ],
)
def test_bad_input(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()
  with pytest.raises(error, match=pattern):
    jax.jit(lambda: call())()


def test_traced_options_are_refused():
  with pytest.raises(TypeError, match=r"`delta`.*traced"):
    jax.jit(lambda d: jaxnll.huber_loss(X, X, delta=d))(1.0)


# --------------------------------------------------------------------------
# Transformations, dtypes, empty batches, objects


def _problem(seed=0, shape=(3, 4)):
  rng = np.random.default_rng(seed)
  x, t = _pair(rng, shape, np.float64)
  return (jnp.asarray(x), jnp.asarray(t), jnp.asarray(rng.uniform(0.5, 2.0, shape)))


def _all_losses(x, t, v):
  """Every regression loss at once (away from the kinks): one set of compilations."""
  return (jaxnll.l1_loss(x, t, weight=v) + jaxnll.mse_loss(x, t, weight=v) + jaxnll.huber_loss(x, t, delta=0.7)
          + jaxnll.smooth_l1_loss(x, t, beta=0.8) + jaxnll.poisson_nll_loss(x, jnp.abs(t), full=True)
          + jaxnll.poisson_nll_loss(v, jnp.abs(t), log_input=False)
          + jaxnll.gaussian_nll_loss(x, t, v, full=True) + jaxnll.gaussian_nll_loss(x, t, v[:, 0]))


def test_every_transformation():
  check_transformations(_all_losses, _problem())


def test_half_precision_is_computed_in_float32():
  dtype = jnp.bfloat16
  half = [a.astype(dtype) for a in _problem(1, (64, 8))]
  f = jax.jit(_all_losses)
  out = f(*half)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, f(*[a.astype(jnp.float32) for a in half]), rtol=1e-6)
  assert all(g.dtype == dtype for g in jax.jit(jax.grad(_all_losses, argnums=(0, 1, 2)))(*half))


def test_empty_batches_like_torch():
  e = np.zeros((0, 3))
  for name in ("l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "poisson_nll_loss"):
    fn = getattr(jaxnll, name)
    ref = getattr(F, name)(torch.tensor(e), torch.tensor(e)).item()
    assert np.isnan(ref) and np.isnan(fn(e, e))
    assert fn(e, e, reduction="sum") == 0.0 and fn(e, e, reduction="safe_mean") == 0.0
    assert fn(e, e, reduction="none").shape == (0, 3)
  assert np.isnan(jaxnll.gaussian_nll_loss(e, e, e[:, 0]))
  assert np.isnan(jaxnll.mse_loss(e, e, weight=np.ones(3)))  # sum of no weights: 0 / 0


def test_all_zero_weights_give_nan_mean_like_torch():
  x, t = np.ones((2, 2)), np.zeros((2, 2))
  ref = F.mse_loss(torch.tensor(x), torch.tensor(t), weight=torch.zeros(2, 2)).item()
  assert np.isnan(ref) and np.isnan(jaxnll.mse_loss(x, t, weight=np.zeros(2)))
  assert jaxnll.mse_loss(x, t, weight=np.zeros(2), reduction="safe_mean") == 0.0


def test_objects_equal_functions_and_are_pytrees():
  x, t, v = _problem(2, (5, 4))
  w = v[0]
  mask = jnp.asarray(np.random.default_rng(3).uniform(size=(5, 4)) < 0.7)
  cases = [
      (jaxnll.L1Loss(weight=w), lambda: jaxnll.l1_loss(x, t, weight=w, where=mask)),
      (jaxnll.MSELoss("sum", weight=w), lambda: jaxnll.mse_loss(x, t, weight=w, reduction="sum", where=mask)),
      (jaxnll.HuberLoss(delta=0.5, weight=w), lambda: jaxnll.huber_loss(x, t, weight=w, delta=0.5, where=mask)),
      (jaxnll.SmoothL1Loss(beta=0.5), lambda: jaxnll.smooth_l1_loss(x, t, beta=0.5, where=mask)),
      (jaxnll.PoissonNLLLoss(log_input=False, full=True, eps=0.1),
       lambda: jaxnll.poisson_nll_loss(x, t, log_input=False, full=True, eps=0.1, where=mask)),
  ]
  for loss, ref in cases:
    np.testing.assert_allclose(loss(x, t, where=mask), ref(), rtol=1e-12)
    s, n = loss.sum_and_normalizer(x, t, where=mask)
    np.testing.assert_allclose(s if loss.reduction == "sum" else s / n, ref(), rtol=1e-12)
  # l1/mse with weight: the normalizer is the counted weights (torch's weighted mean).
  _, n = jaxnll.L1Loss(weight=w).sum_and_normalizer(x, t, where=mask)
  np.testing.assert_allclose(n, jnp.sum(jnp.where(mask, jnp.broadcast_to(w, (5, 4)), 0.0)))
  gauss = jaxnll.GaussianNLLLoss(full=True, eps=1e-3)
  np.testing.assert_allclose(gauss(x, t, v, where=mask),
                             jaxnll.gaussian_nll_loss(x, t, v, full=True, eps=1e-3, where=mask), rtol=1e-12)
  s, n = gauss.sum_and_normalizer(x, t, v[:, 0])
  np.testing.assert_allclose(s / n, jaxnll.gaussian_nll_loss(x, t, v[:, 0], full=True, eps=1e-3), rtol=1e-12)
  assert jax.tree_util.tree_leaves(gauss) == [] and jax.tree_util.tree_leaves(cases[0][0]) == [w]
  rebuilt = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(cases[2][0]), [2 * w])
  assert rebuilt.delta == 0.5 and rebuilt.reduction == "mean"
  with pytest.raises(ValueError, match="`delta`"):
    jaxnll.HuberLoss(delta=-1.0)
  with pytest.raises(TypeError, match="`log_input`"):
    jaxnll.PoissonNLLLoss(log_input="yes")
  with pytest.raises(TypeError):
    jaxnll.GaussianNLLLoss(True)  # keyword-only, as torch's
  with pytest.raises(AttributeError):
    gauss.eps = 1.0  # type: ignore[misc]


def test_objects_do_not_retrace():
  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(x, t, v, loss, gauss):
    return loss(x, t) + gauss(x, t, v)

  rng = np.random.default_rng(4)
  for _ in range(3):
    loss = jaxnll.MSELoss(weight=jnp.asarray(rng.uniform(size=4)))
    step(jnp.asarray(rng.standard_normal((5, 4))), jnp.asarray(rng.standard_normal((5, 4))),
         jnp.asarray(rng.uniform(size=(5, 4))), loss, jaxnll.GaussianNLLLoss(eps=1e-4))
