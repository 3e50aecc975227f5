"""kl_div and KLDivLoss against real PyTorch 2.13, 'batchmean' included."""

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

pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")


def _problem(rng, shape, dtype, log_target):
  log_probs = rng.standard_normal(shape) - 1.0
  t = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]) if shape and shape[-1] else rng.uniform(size=shape)
  if log_target:
    t = np.log(t)
  else:  # zero-probability targets: 0 log 0 = 0 (their gradient is NaN in torch and here)
    t = np.where(rng.uniform(size=shape) < 0.2, 0.0, t)
  return log_probs.astype(dtype), np.asarray(t, dtype)


@EXAMPLES
@given(settings_for(), st.booleans(), st.booleans())
def test_kl_div_matches_torch(cfg, log_target, batchmean):
  dtype, shape, rng, mask_kind, reduction = cfg
  x, t = _problem(rng, shape, dtype, log_target)
  mask, mask_full = make_mask(mask_kind, shape, rng)
  if batchmean:
    reduction = "batchmean"
  fn = lambda a, b: jaxnll.kl_div(a, b, reduction=reduction, log_target=log_target, where=mask)
  torch_fn = lambda a, b, reduction: F.kl_div(a, b, reduction=reduction, log_target=log_target)
  if not (batchmean and mask is not None):
    check_against_torch(fn, torch_fn, [x, t], (0, 1), reduction, mask_full, dtype)
    return
  # With a mask, 'batchmean' divides the counted sum by the rows of axis 0 that hold a counted element.
  rows = int(np.any(mask_full.reshape(shape[0], int(np.prod(shape[1:]))), axis=1).sum()) if shape else int(mask_full)
  ref, ref_grads = torch_reference(torch_fn, [x, t], (0, 1), "sum", mask_full)
  out, grads = jax_value_and_grads(fn, [x, t])
  with np.errstate(divide="ignore", invalid="ignore"):
    assert_close(out, ref / rows if rows else np.nan, dtype)
    for g, rg in zip(grads, ref_grads, strict=True):
      assert_close(g, rg / rows if rows else np.zeros_like(rg), dtype)


def test_batchmean_divides_by_the_first_axis_and_a_scalar_by_one():
  rng = np.random.default_rng(0)
  for shape in [(2, 3, 2), ()]:
    x, t = _problem(rng, shape, np.float64, False)
    ref = F.kl_div(torch.tensor(x), torch.tensor(t), reduction="batchmean").item()
    np.testing.assert_allclose(jax.jit(jaxnll.kl_div, static_argnames="reduction")(x, t, reduction="batchmean"),
                               ref, rtol=1e-12)
  assert np.isnan(jaxnll.kl_div(np.zeros((0, 3)), np.zeros((0, 3)), reduction="batchmean"))


def test_zero_probability_targets():
  x = np.array([-1.0, -np.inf, -np.inf, 0.0, np.nan, 0.0])
  t = np.array([0.0, 0.0, 0.5, -0.1, 0.0, 1.0])
  xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
  ref = F.kl_div(xt, tt, reduction="none")
  ref.sum().backward()
  out, (gx, gt) = jax_value_and_grads(lambda a, b: jaxnll.kl_div(a, b, reduction="none"), [x, t])
  # torch: 0 * -inf is NaN; jaxnll: a target of probability 0 contributes 0 unless the input is NaN.
  assert np.isnan(ref.detach().numpy()[1]) and out[1] == 0.0
  keep = [0, 2, 3, 4, 5]
  np.testing.assert_array_equal(out[keep], ref.detach().numpy()[keep])
  np.testing.assert_array_equal(gx, xt.grad.numpy())
  np.testing.assert_array_equal(gt, tt.grad.numpy())  # NaN at t = 0, as torch: d(t log t)/dt is unbounded


def test_log_targets_of_minus_inf():
  x = np.array([-1.0, -np.inf, np.nan, -2.0])
  t = np.array([-np.inf, -np.inf, -np.inf, np.log(0.3)])
  ref = F.kl_div(torch.tensor(x), torch.tensor(t), reduction="none", log_target=True).numpy()
  out, (gx, gt) = jax_value_and_grads(lambda a, b: jaxnll.kl_div(a, b, reduction="none", log_target=True), [x, t])
  assert np.isnan(ref[:3]).all()  # torch: exp(-inf) * (-inf - x)
  np.testing.assert_array_equal(out[:2], 0.0)
  assert np.isnan(out[2])
  np.testing.assert_allclose(out[3], ref[3], rtol=1e-12)
  np.testing.assert_array_equal(gx[:2], 0.0)
  np.testing.assert_array_equal(gt[:2], 0.0)  # the limit of e^t (t - x + 1)


def test_masked_elements_have_zero_loss_and_gradient():
  x = jnp.array([[-0.5, np.nan, -np.inf], [-1.0, -2.0, np.inf]])
  t = jnp.array([[0.5, 0.0, 0.7], [np.nan, 0.3, -1.0]])
  where = jnp.array([[True, False, False], [False, True, False]])
  for log_target in (False, True):
    fn = lambda a, b, lt=log_target: jaxnll.kl_div(a, b, reduction="batchmean", log_target=lt, where=where)
    val, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(x, t)
    assert np.isfinite(val)
    for g in grads:
      np.testing.assert_array_equal(np.asarray(g)[~np.asarray(where)], 0.0)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: jaxnll.kl_div(jnp.zeros((2, 3)), jnp.zeros((2, 1))), ValueError, r"`targets` of shape \(2, 1\)"),
        (lambda: jaxnll.kl_div(jnp.zeros(3, int), jnp.zeros(3)), TypeError, r"`log_probs`.*int"),
        (lambda: jaxnll.kl_div(jnp.zeros(3), jnp.zeros(3), reduction="avg"), ValueError, r"`reduction`.*batchmean"),
        (lambda: jaxnll.kl_div(jnp.zeros(3), jnp.zeros(3), log_target=None), TypeError, r"`log_target`"),
    ],
)
def test_bad_input(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()
  with pytest.raises(error, match=pattern):
    jax.jit(lambda: call())()


def _kl_both(x, t):
  return (jaxnll.kl_div(jax.nn.log_softmax(x), jax.nn.softmax(t), reduction="batchmean")
          + jaxnll.kl_div(jax.nn.log_softmax(x), jax.nn.log_softmax(t), log_target=True))


def test_every_transformation():
  rng = np.random.default_rng(1)
  check_transformations(_kl_both, (jnp.asarray(rng.standard_normal((3, 4))), jnp.asarray(rng.standard_normal((3, 4)))))


def test_half_precision_is_computed_in_float32():
  rng = np.random.default_rng(2)
  x, t = (jnp.asarray(rng.standard_normal((16, 8)), jnp.bfloat16) for _ in range(2))
  out = jax.jit(_kl_both)(x, t)
  assert out.dtype == jnp.float32
  assert jax.jit(jax.grad(_kl_both))(x, t).dtype == jnp.bfloat16


def test_object_equals_function_and_accumulates_batchmean_exactly():
  rng = np.random.default_rng(3)
  x, t = _problem(rng, (6, 4), np.float64, False)
  x, t = jnp.asarray(x), jnp.asarray(t)
  mask = jnp.asarray(rng.uniform(size=(6, 4)) < 0.8).at[2].set(False)
  loss = jaxnll.KLDivLoss(reduction="batchmean")
  np.testing.assert_allclose(loss(x, t, where=mask), jaxnll.kl_div(x, t, reduction="batchmean", where=mask))
  # Micro-batches: the row normalizers add up to the full batch's.
  parts = [loss.sum_and_normalizer(x[i:i + 2], t[i:i + 2], where=mask[i:i + 2]) for i in range(0, 6, 2)]
  total = sum(p[0] for p in parts) / sum(p[1] for p in parts)
  np.testing.assert_allclose(total, loss(x, t, where=mask), rtol=1e-12)
  assert float(sum(p[1] for p in parts)) == 5.0  # row 2 is fully masked
  log_loss = jaxnll.KLDivLoss(log_target=True, reduction="sum")
  np.testing.assert_allclose(log_loss(x, jnp.log(t + 0.1)), jaxnll.kl_div(x, jnp.log(t + 0.1), log_target=True,
                                                                          reduction="sum"))
  assert jax.tree_util.tree_leaves(loss) == []
  with pytest.raises(ValueError, match="`reduction`"):
    jaxnll.KLDivLoss(reduction="avg")

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(a, b, loss):
    return loss(a, b)

  for _ in range(3):
    step(x, t, jaxnll.KLDivLoss(reduction="batchmean"))
