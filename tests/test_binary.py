"""Binary losses against real PyTorch 2.13: BCE on probabilities and logits, focal, multi-label soft margin."""

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
from tests._elementwise_cases import EXAMPLES, check_against_torch, check_transformations, make_mask, settings_for


def _weight(kind, shape, rng, dtype, name="weight"):
  """None, full-shape, one per class on the last axis, or a single broadcast entry."""
  if kind is None or (kind == "last" and not shape):
    return None, None
  w_shape = {"full": shape, "last": shape[-1:], "one": (1,) * len(shape)}[kind]
  w = rng.uniform(0.1, 3.0, size=w_shape).astype(dtype)
  return w, np.broadcast_to(w, shape).copy()


def _targets(rng, shape, dtype, hard):
  t = rng.uniform(size=shape)
  return (np.round(t) if hard else t).astype(dtype)


@EXAMPLES
@given(settings_for(), st.sampled_from([None, "full", "last", "one"]), st.booleans(), st.booleans())
def test_binary_cross_entropy_matches_torch(cfg, weight_kind, hard, saturate):
  dtype, shape, rng, mask_kind, reduction = cfg
  p = rng.uniform(size=shape).astype(dtype)
  if saturate:  # exact 0 and 1: torch's clamp at -100 and its 1e-12 gradient floor
    p = np.where(rng.uniform(size=shape) < 0.3, np.round(p), p).astype(dtype)
  t = _targets(rng, shape, dtype, hard)
  w, w_full = _weight(weight_kind, shape, rng, dtype)
  mask, mask_full = make_mask(mask_kind, shape, rng)
  check_against_torch(
      lambda a, b: jaxnll.binary_cross_entropy(a, b, weight=w, reduction=reduction, where=mask),
      lambda a, b, ww, reduction: F.binary_cross_entropy(a, b, weight=ww, reduction=reduction),
      [p, t, w_full], (0, 1), reduction, mask_full, dtype, scale=100.0,
  )


@EXAMPLES
@given(settings_for(), st.sampled_from([None, "full", "last", "one"]), st.sampled_from([None, "last", "full"]),
       st.booleans(), st.sampled_from([0.5, 5.0, 50.0]))
def test_binary_cross_entropy_with_logits_matches_torch(cfg, weight_kind, pos_kind, hard, scale):
  dtype, shape, rng, mask_kind, reduction = cfg
  x = (rng.standard_normal(shape) * scale).astype(dtype)
  t = _targets(rng, shape, dtype, hard)
  w, w_full = _weight(weight_kind, shape, rng, dtype)
  pw, pw_full = _weight(pos_kind, shape, rng, dtype, "pos_weight")
  mask, mask_full = make_mask(mask_kind, shape, rng)
  check_against_torch(
      lambda a, b: jaxnll.binary_cross_entropy_with_logits(a, b, weight=w, pos_weight=pw, reduction=reduction,
                                                           where=mask),
      lambda a, b, ww, pp, reduction: F.binary_cross_entropy_with_logits(a, b, weight=ww, pos_weight=pp,
                                                                         reduction=reduction),
      [x, t, w_full, pw_full], (0, 1), reduction, mask_full, dtype, scale=3 * scale,
  )


def torchvision_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
  """``torchvision.ops.sigmoid_focal_loss`` transcribed with torch ops.

  torchvision cannot be installed beside torch 2.13 here, so this follows
  its documented formula line by line (torchvision/ops/focal_loss.py).
  """
  p = torch.sigmoid(inputs)
  ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
  p_t = p * targets + (1 - p) * (1 - targets)
  loss = ce_loss * ((1 - p_t) ** gamma)
  if alpha >= 0:
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    loss = alpha_t * loss
  if reduction == "mean":
    loss = loss.mean()
  elif reduction == "sum":
    loss = loss.sum()
  return loss


@EXAMPLES
@given(settings_for(), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]), st.sampled_from([0.25, 0.5, 1.0, -1.0]),
       st.booleans())
def test_sigmoid_focal_loss_matches_torchvision(cfg, gamma, alpha, hard):
  dtype, shape, rng, mask_kind, reduction = cfg
  # Moderate logits: torchvision's 1 - p_t cancels for confident ones (see the saturated test below).
  x = (rng.standard_normal(shape) * 3).astype(dtype)
  t = _targets(rng, shape, dtype, hard)
  mask, mask_full = make_mask(mask_kind, shape, rng)
  # The reference runs in float64 on the same inputs; float32 results are held to float32 tolerance.
  check_against_torch(
      lambda a, b: jaxnll.sigmoid_focal_loss(a, b, alpha=alpha, gamma=gamma, reduction=reduction, where=mask),
      lambda a, b, reduction: torchvision_sigmoid_focal_loss(a.double(), b.double(), alpha, gamma, reduction).to(
          a.dtype),
      [x, t], (0, 1), reduction, mask_full, dtype, grad_tol=dict(atol=1e-5 if dtype == np.float32 else 1e-11),
  )


@EXAMPLES
@given(settings_for(min_ndim=1), st.sampled_from([None, "last", "full"]), st.booleans())
def test_multilabel_soft_margin_loss_matches_torch(cfg, weight_kind, hard):
  dtype, shape, rng, mask_kind, reduction = cfg
  x = (rng.standard_normal(shape) * 3).astype(dtype)
  t = _targets(rng, shape, dtype, hard)
  w, w_full = _weight(weight_kind, shape, rng, dtype)
  mask, mask_full = make_mask(mask_kind if mask_kind != "broadcast" else "elements", shape[:-1], rng)
  check_against_torch(
      lambda a, b: jaxnll.multilabel_soft_margin_loss(a, b, weight=w, reduction=reduction, where=mask),
      lambda a, b, ww, reduction: F.multilabel_soft_margin_loss(a, b, weight=ww, reduction=reduction),
      [x, t, w_full], (0, 1), reduction, mask_full, dtype, scale=3.0,
  )


# --------------------------------------------------------------------------
# Corner cases, against torch where torch is finite


def test_probabilities_of_zero_and_one_give_torchs_values_and_gradients():
  p = np.array([0.0, 0.0, 1.0, 1.0, 0.5, 1e-30, 1 - 1e-16])
  t = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 1.0, 0.0])
  for reduction in ("none", "sum"):
    check_against_torch(
        lambda a, b, r=reduction: jaxnll.binary_cross_entropy(a, b, reduction=r),
        lambda a, b, reduction: F.binary_cross_entropy(a, b, reduction=reduction),
        [p, t], (0, 1), reduction, None, np.float64,
    )
  g = jax.grad(jaxnll.binary_cross_entropy)(jnp.asarray(p), jnp.asarray(t))
  assert np.isfinite(g).all()


def test_infinite_and_nan_logits():
  x = np.array([np.inf, np.inf, -np.inf, -np.inf, np.nan, 1e4, -1e4, 0.0])
  t = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.3, 0.5])
  xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t)
  ref = F.binary_cross_entropy_with_logits(xt, tt, reduction="none")
  ref.sum().backward()
  g = jax.grad(lambda a: jnp.sum(jaxnll.binary_cross_entropy_with_logits(a, t, reduction="none")))(jnp.asarray(x))
  per = np.asarray(jaxnll.binary_cross_entropy_with_logits(x, t, reduction="none"))
  finite = ~np.isnan(ref.detach().numpy())
  np.testing.assert_allclose(per[finite], ref.detach().numpy()[finite])
  # torch gives NaN at x = +inf, t = 1 and x = -inf, t = 0 or 1 ((1 - t) x with 0 * inf); jaxnll gives the limits.
  np.testing.assert_array_equal(per[[0, 2, 3]], [0.0, np.inf, 0.0])
  assert np.isnan(per[4])
  np.testing.assert_array_equal(np.asarray(g), xt.grad.numpy())  # the same gradients, NaN input included


def test_focal_gamma_zero_has_no_nan_gradient_and_equals_weighted_bce():
  x = jnp.array([0.0, 3.0, -3.0, 40.0, -40.0, 800.0, -800.0])
  t = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0])

  @jax.jit
  def derivatives(a, b):
    out = {}
    for gamma in (0.0, 0.5, 1.0, 2.0):
      f = lambda a, b, gamma=gamma: jaxnll.sigmoid_focal_loss(a, b, gamma=gamma, reduction="sum")
      out[gamma] = (jax.grad(f, argnums=(0, 1))(a, b), jax.hessian(f)(a, b))
    return out

  # float32 saturates first: sigmoid(x) rounds to exactly 1 from x = 17 on.
  for gamma, leaves in derivatives(x.astype(jnp.float32), t.astype(jnp.float32)).items():
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(leaves)), (gamma, leaves)
  np.testing.assert_allclose(
      jaxnll.sigmoid_focal_loss(x, t, gamma=0.0, alpha=-1.0),
      jaxnll.binary_cross_entropy_with_logits(x, t, reduction="none"), rtol=1e-12)


def test_focal_saturated_logits_are_accurate_where_torchvision_loses_digits():
  x = np.array([30.0, -30.0, 12.0])
  t = np.array([1.0, 0.0, 1.0])
  ours = np.asarray(jaxnll.sigmoid_focal_loss(x, t, gamma=2.0, alpha=-1.0))
  # (1 - p_t) = sigmoid(-|x|) exactly; ce = softplus(-|x|).
  exact = np.logaddexp(0, -np.abs(x)) * (1 / (1 + np.exp(np.abs(x)))) ** 2
  np.testing.assert_allclose(ours, exact, rtol=1e-12)
  # In float32, torchvision's gradient for gamma < 1 is NaN once sigmoid rounds to 1; ours stays finite.
  xt = torch.tensor([20.0], requires_grad=True)
  torchvision_sigmoid_focal_loss(xt, torch.tensor([1.0]), gamma=0.5).sum().backward()
  assert torch.isnan(xt.grad).all()
  g = jax.grad(lambda a: jaxnll.sigmoid_focal_loss(a, jnp.ones(1, jnp.float32), gamma=0.5, reduction="sum"))(
      jnp.array([20.0], jnp.float32))
  assert np.isfinite(g).all() and abs(float(g[0])) < 1e-8


def _bce_none(p, t):
  return jaxnll.binary_cross_entropy(p, t, reduction="none")


def test_out_of_range_probabilities_raise_when_known_and_give_nan_when_traced():
  good = jnp.array([0.5, 0.5])
  for probs, targets, name in (([1.5, 0.5], good, "input"), (good, [0.5, -0.1], "target"),
                               ([np.nan, 0.5], good, "input")):
    with pytest.raises(RuntimeError, match=f"all elements of {name} should be between 0 and 1"):
      jaxnll.binary_cross_entropy(jnp.asarray(probs), jnp.asarray(targets))
    with pytest.raises(ValueError, match=f"all elements of {name} should be between 0 and 1"):
      jax.jit(lambda p, probs=probs, targets=targets: jaxnll.binary_cross_entropy(
          np.asarray(probs), np.asarray(targets)) + p)(1.0)  # closed-over values are known at trace time
    per = jax.jit(_bce_none)(jnp.asarray(probs), jnp.asarray(targets))
    grads = jax.jit(jax.grad(lambda p, t: jnp.sum(_bce_none(p, t)), argnums=(0, 1)))(
        jnp.asarray(probs), jnp.asarray(targets))
    bad = np.array([not (0 <= a <= 1 and 0 <= b <= 1) for a, b in zip(probs, targets, strict=True)])
    for values in (per, *grads):
      assert np.isnan(values[bad]).all() and np.isfinite(values[~bad]).all()
  # Masked elements are not checked: they are not there.
  out = jaxnll.binary_cross_entropy(jnp.array([1.5, 0.5]), good, where=jnp.array([False, True]))
  np.testing.assert_allclose(out, np.log(2.0))


def test_masked_elements_have_zero_loss_and_gradient_whatever_they_hold():
  x = jnp.array([[0.3, np.nan, np.inf], [-np.inf, 0.7, 0.2]])
  t = jnp.array([[1.0, np.nan, 0.0], [1.0, 0.0, 2.0]])
  w = jnp.array([[1.0, np.inf, 2.0], [np.nan, 1.0, 1.0]])
  where = jnp.array([[True, False, False], [False, True, False]])
  off = ~np.asarray(where)
  fns = [
      lambda a, b, c: jaxnll.binary_cross_entropy(a, b, weight=c, where=where, reduction="none"),
      lambda a, b, c: jaxnll.binary_cross_entropy_with_logits(a, b, weight=c, pos_weight=c, where=where,
                                                              reduction="none"),
      lambda a, b, c: jaxnll.sigmoid_focal_loss(a, b, where=where),
  ]
  for fn in fns:
    per = jax.jit(fn)(x, t, w)
    np.testing.assert_array_equal(np.asarray(per)[off], 0.0)
    assert np.isfinite(per).all()
    grads = jax.jit(jax.grad(lambda *a, fn=fn: jnp.sum(fn(*a)), argnums=(0, 1, 2)))(x, t, w)
    for g in grads:
      np.testing.assert_array_equal(np.asarray(g)[off], 0.0)
      assert np.isfinite(g).all()
  # multilabel_soft_margin_loss masks samples.
  xm = jnp.array([[0.3, -1.0, 2.0], [np.nan, np.inf, -np.inf]])
  tm = jnp.array([[1.0, 0.0, 0.0], [np.nan, 0.0, 2.0]])
  f = lambda a, b: jaxnll.multilabel_soft_margin_loss(a, b, where=jnp.array([True, False]), reduction="none")
  assert jax.jit(f)(xm, tm)[1] == 0.0
  for g in jax.jit(jax.grad(lambda a, b: jnp.sum(f(a, b)), argnums=(0, 1)))(xm, tm):
    np.testing.assert_array_equal(g[1], 0.0)
    assert np.isfinite(g).all()


# --------------------------------------------------------------------------
# Bad input, at trace time


X = jnp.zeros((4, 3))
T = jnp.zeros((4, 3))


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: jaxnll.binary_cross_entropy(X, jnp.zeros((4, 1))), ValueError,
         r"`targets` of shape \(4, 1\).*\(4, 3\)"),
        (lambda: jaxnll.binary_cross_entropy_with_logits(X, jnp.zeros(3)), ValueError, r"`targets` of shape \(3,\)"),
        (lambda: jaxnll.binary_cross_entropy(jnp.zeros(3, int), jnp.zeros(3)), TypeError, r"`probs`.*int"),
        (lambda: jaxnll.binary_cross_entropy_with_logits(jnp.zeros(3, int), jnp.zeros(3)), TypeError, r"`logits`"),
        (lambda: jaxnll.binary_cross_entropy_with_logits(X, T, pos_weight=jnp.ones(4)), ValueError,
         r"`pos_weight` of shape \(4,\).*\(4, 3\).*one entry per class.*\(3,\)"),
        (lambda: jaxnll.binary_cross_entropy_with_logits(X, T, pos_weight=jnp.ones(3, int)), TypeError,
         r"`pos_weight`.*floating"),
        (lambda: jaxnll.binary_cross_entropy(X, T, weight=jnp.ones((5, 1, 3))), ValueError, r"`weight` of shape"),
        (lambda: jaxnll.binary_cross_entropy(X, T, reduction="avg"), ValueError, r"`reduction`.*'avg'"),
        (lambda: jaxnll.binary_cross_entropy(X, T, reduction="batchmean"), ValueError, r"`reduction`"),
        (lambda: jaxnll.binary_cross_entropy(X, T, where=jnp.ones(4, bool)), ValueError, r"`where` of shape \(4,\)"),
        (lambda: jaxnll.binary_cross_entropy(X, jnp.zeros((4, 3), complex)), TypeError, r"`targets`.*complex"),
        (lambda: jaxnll.sigmoid_focal_loss(X, T, gamma=-1.0), ValueError, r"`gamma`"),
        (lambda: jaxnll.sigmoid_focal_loss(X, T, alpha=np.nan), ValueError, r"`alpha`"),
        (lambda: jaxnll.multilabel_soft_margin_loss(jnp.zeros(()), jnp.zeros(())), ValueError, r"class \(last\) axis"),
        (lambda: jaxnll.multilabel_soft_margin_loss(X, T, where=jnp.ones((4, 3), bool)), ValueError,
         r"`where`.*without its last"),
    ],
)
def test_bad_input(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()
  with pytest.raises(error, match=pattern):
    jax.jit(lambda: call())()


def test_traced_focal_hyperparameters_are_refused():
  with pytest.raises(TypeError, match=r"`gamma`.*traced"):
    jax.jit(lambda g: jaxnll.sigmoid_focal_loss(X, T, gamma=g))(2.0)


# --------------------------------------------------------------------------
# Transformations, dtypes, objects


def _problem(seed=0, shape=(3, 4)):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.standard_normal(shape)), jnp.asarray(rng.uniform(0.05, 0.95, shape)),
          jnp.asarray(rng.uniform(0.5, 2.0, shape[-1:])))


def test_every_transformation():
  def f(x, t, w):  # all four losses at once: one set of compilations
    return (jaxnll.binary_cross_entropy(jax.nn.sigmoid(x), t, weight=w)
            + jaxnll.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=2 * w)
            + jaxnll.sigmoid_focal_loss(x, t, gamma=1.5, reduction="mean")
            + jaxnll.multilabel_soft_margin_loss(x, t, weight=w))

  check_transformations(f, _problem())


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_is_computed_in_float32(dtype):
  x, t, w = _problem(1, (64, 8))
  x = jnp.concatenate([jax.nn.sigmoid(x[:32]), x[32:]])  # probabilities for binary_cross_entropy

  def f(a, b, c):
    return jnp.stack([
        jaxnll.binary_cross_entropy(a[:32], b[:32], weight=c),
        jaxnll.binary_cross_entropy_with_logits(a, b, weight=c, pos_weight=2 * c),
        jaxnll.sigmoid_focal_loss(a, b, gamma=1.5, reduction="sum"),
        jaxnll.multilabel_soft_margin_loss(a, b, weight=c),
    ])

  half = [a.astype(dtype) for a in (x, t, w)]
  out = jax.jit(f)(*half)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, jax.jit(f)(*[a.astype(jnp.float32) for a in half]), rtol=1e-6)
  assert jax.jit(jax.grad(lambda *a: jnp.sum(f(*a))))(*half).dtype == dtype


def test_empty_batches_like_torch():
  e = jnp.zeros((0, 3))
  for fn in (jaxnll.binary_cross_entropy, jaxnll.binary_cross_entropy_with_logits, jaxnll.multilabel_soft_margin_loss):
    assert np.isnan(fn(e, e)) and fn(e, e, reduction="sum") == 0.0 and fn(e, e, reduction="safe_mean") == 0.0
    expected = (0,) if fn is jaxnll.multilabel_soft_margin_loss else (0, 3)
    assert fn(e, e, reduction="none").shape == expected
  assert jaxnll.sigmoid_focal_loss(e, e).shape == (0, 3)


def test_objects_equal_functions_and_are_pytrees():
  x, t, w = _problem(2, (5, 4))
  mask = jnp.asarray(np.random.default_rng(3).uniform(size=(5, 4)) < 0.7)
  p = jax.nn.sigmoid(x)
  cases = [
      (jaxnll.BCELoss(w, reduction="sum"), p, lambda: jaxnll.binary_cross_entropy(p, t, weight=w, reduction="sum",
                                                                                    where=mask)),
      (jaxnll.BCEWithLogitsLoss(w, pos_weight=3 * w), x,
       lambda: jaxnll.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=3 * w, where=mask)),
  ]
  for loss, inp, ref in cases:
    np.testing.assert_allclose(loss(inp, t, where=mask), ref(), rtol=1e-12)
    s, n = loss.sum_and_normalizer(inp, t, where=mask)
    np.testing.assert_allclose(s / n if loss.reduction != "sum" else s, ref(), rtol=1e-12)
    terms = loss.terms(inp, t, where=mask)
    np.testing.assert_array_equal(terms.counted, mask)
    np.testing.assert_array_equal(np.asarray(terms.per_element)[~np.asarray(mask)], 0.0)
  leaves, treedef = jax.tree_util.tree_flatten(cases[1][0])
  assert len(leaves) == 2 and leaves[0] is w
  rebuilt = jax.tree_util.tree_unflatten(treedef, [2 * w, w])
  np.testing.assert_allclose(rebuilt(x, t), jaxnll.binary_cross_entropy_with_logits(x, t, weight=2 * w, pos_weight=w))
  ml = jaxnll.MultiLabelSoftMarginLoss(w)
  np.testing.assert_allclose(ml(x, t, where=mask[:, 0]), jaxnll.multilabel_soft_margin_loss(x, t, weight=w,
                                                                                           where=mask[:, 0]))
  with pytest.raises(AttributeError):
    ml.reduction = "sum"  # type: ignore[misc]
  with pytest.raises(ValueError, match="`reduction`"):
    jaxnll.BCELoss(reduction="batchmean")
  with pytest.raises(TypeError, match="`pos_weight`"):
    jaxnll.BCEWithLogitsLoss(pos_weight=np.ones(3, int))
  positional = jaxnll.BCEWithLogitsLoss(None, "sum", jnp.array([2.0]))  # torch's order: weight, reduction, pos_weight
  assert positional.reduction == "sum" and float(positional.pos_weight[0]) == 2.0


def test_objects_do_not_retrace():
  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(x, t, loss):
    return loss(x, t)

  rng = np.random.default_rng(4)
  for _ in range(3):
    loss = jaxnll.BCEWithLogitsLoss(jnp.asarray(rng.uniform(size=4)), pos_weight=jnp.asarray(rng.uniform(size=4)))
    step(jnp.asarray(rng.standard_normal((5, 4))), jnp.asarray(rng.uniform(size=(5, 4))), loss)


def test_exact_gradient_accumulation_over_micro_batches():
  x, t, w = _problem(5, (8, 4))
  loss = jaxnll.BCEWithLogitsLoss(w, pos_weight=2 * w)
  full = jax.jit(jax.grad(loss))(x, t)
  part = jax.jit(jax.value_and_grad(lambda a, b: loss.sum_and_normalizer(a, b)[0]))
  parts = [part(x[i:i + 2], t[i:i + 2])[1] for i in range(0, 8, 2)]
  n = sum(jax.jit(loss.sum_and_normalizer)(x[i:i + 2], t[i:i + 2])[1] for i in range(0, 8, 2))
  np.testing.assert_allclose(jnp.concatenate(parts) / n, full, rtol=1e-12)
