"""Embedding losses against real torch: cosine embedding, pairwise distance, triplet margin (with distance)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxnll as e
from tests.test_margin import DTYPES, RNG, compare


def _triplet(p, swap):
  return (lambda a, b, c, **kw: e.triplet_margin_loss(a, b, c, p=p, swap=swap, **kw),
          lambda a, b, c, **kw: F.triplet_margin_loss(a, b, c, p=p, swap=swap, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p, swap, shapes", [
    (2.0, False, ((5, 4), (5, 4), (5, 4))), (1.0, True, ((5, 4), (1, 4), (5, 4))),
    (np.inf, True, ((3,), (3,), (3,))), (3.0, False, ((2, 3, 4), (2, 1, 4), (1, 3, 4))),
    (0.5, True, ((4, 2), (4, 2), (4, 2))), (0.0, False, ((2, 3),) * 3)])
def test_triplet_matches_torch(p, swap, shapes, dtype):
  a, pos, neg = (RNG.standard_normal(s) for s in shapes)
  fn, tfn = _TRIPLETS.setdefault((p, swap), _triplet(p, swap))
  compare(fn, tfn, [a, pos, neg], [True, True, True], dtype, margin=0.8)


_TRIPLETS: dict = {}


def _l1(x, y):
  return jnp.sum(jnp.abs(x - y), axis=-1)


def _l1_torch(x, y):
  return torch.sum(torch.abs(x - y), dim=-1)


def _with_distance(a, b, c, **kw):
  return e.triplet_margin_with_distance_loss(a, b, c, distance_function=_l1, swap=True, **kw)


def _with_distance_torch(a, b, c, **kw):
  return F.triplet_margin_with_distance_loss(a, b, c, distance_function=_l1_torch, swap=True, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_triplet_with_distance_matches_torch(dtype):
  a, pos, neg = RNG.standard_normal((3, 5, 4))
  compare(_with_distance, _with_distance_torch, [a, pos, neg], [True, True, True], dtype, margin=1.5)
  compare(e.triplet_margin_with_distance_loss, F.triplet_margin_with_distance_loss, [a, pos, neg],
          [True, True, True], dtype, margin=1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((5, 3), (5, 3), (5,)), ((4, 3), (1, 3), (1,)), ((3,), (3,), ())])
def test_cosine_embedding_matches_torch(shapes, dtype):
  x1, x2 = RNG.standard_normal(shapes[0]), RNG.standard_normal(shapes[1])
  if x1.ndim == 2:
    x1[0] = 0.0  # a zero vector: cosine 0 through torch's 1e-12
  y = RNG.choice([1.0, -1.0, 0.0], size=shapes[2])
  compare(e.cosine_embedding_loss, F.cosine_embedding_loss, [x1, x2, y], [True, True, False], dtype,
          rtol=1e-5 if dtype == np.float32 else 1e-8, margin=0.2)  # gradients of order 1e6 at the zero vector


def test_pairwise_distance_matches_torch():
  for p in (2.0, 1.0, np.inf, 1.5):
    x1, x2 = RNG.standard_normal((4, 3)), RNG.standard_normal((3,))
    x1[0] = x2 - 1e-6  # a zero difference: torch's norm gradient 0
    t1, t2 = (torch.tensor(z, requires_grad=True) for z in (x1, x2))
    ref = torch.pairwise_distance(t1, t2, p=p, keepdim=True)
    ref.sum().backward()
    ours, grads = jax.jit(jax.value_and_grad(lambda a, b, p=p: jnp.sum(e.pairwise_distance(a, b, p=p, keepdim=True)),
                                             argnums=(0, 1)))(x1, x2)
    np.testing.assert_allclose(ours, ref.sum().item(), rtol=1e-12)
    np.testing.assert_allclose(grads[0], t1.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[1], t2.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert e.pairwise_distance(x1, x2, p=p, keepdim=True).shape == ref.shape


def test_where_masks_nan_triplets_exactly():
  a, pos, neg = RNG.standard_normal((3, 4, 2))
  a[1] = np.nan
  keep = np.array([True, False, True, True])
  for fn in (e.triplet_margin_loss, e.triplet_margin_with_distance_loss):
    loss, grads = jax.jit(jax.value_and_grad(lambda *z, fn=fn: fn(*z, where=keep), argnums=(0, 1, 2)))(a, pos, neg)
    ref = F.triplet_margin_loss(*(torch.from_numpy(z[keep]) for z in (a, pos, neg)))
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-12)
    assert all(np.all(np.asarray(g)[1] == 0) and np.all(np.isfinite(g)) for g in grads)
  loss, grads = jax.value_and_grad(lambda x: e.cosine_embedding_loss(x, pos, np.ones(4), where=keep))(a)
  assert np.isfinite(loss) and np.all(grads[1] == 0)


@pytest.mark.parametrize("call, error, match", [
    (lambda: e.triplet_margin_loss(np.ones((2, 3)), np.ones(3), np.ones((2, 3))), ValueError, "same number"),
    (lambda: e.triplet_margin_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), margin=0.0), ValueError,
     "`margin`"),
    (lambda: e.triplet_margin_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), p=-1.0), ValueError, "`p`"),
    (lambda: e.triplet_margin_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), swap=1), TypeError, "`swap`"),
    (lambda: e.triplet_margin_with_distance_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)),
                                                 distance_function=3), TypeError, "`distance_function`"),
    (lambda: e.cosine_embedding_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 1))), ValueError, "`target`"),
    (lambda: e.cosine_embedding_loss(np.ones(3), np.ones(3), np.ones(2)), ValueError, "`input1`"),
    (lambda: e.pairwise_distance(np.ones((2, 3)), np.ones(4)), ValueError, "`x1` and `x2`"),
    (lambda: e.TripletMarginLoss(margin=-1.0), ValueError, "`margin`"),
])
def test_bad_input_names_the_argument(call, error, match):
  with pytest.raises(error, match=match):
    call()


def test_objects_transformations_and_export():
  a, pos, neg = RNG.standard_normal((3, 4, 2))
  obj = e.TripletMarginLoss(margin=0.5, swap=True)
  np.testing.assert_allclose(obj(a, pos, neg), e.triplet_margin_loss(a, pos, neg, margin=0.5, swap=True), rtol=1e-12)
  np.testing.assert_allclose(obj.batch_terms((a, pos, neg), {}).per_element,
                             e.triplet_margin_loss(a, pos, neg, margin=0.5, swap=True, reduction="none"), rtol=1e-12)
  y = np.array([1, -1, 1, -1])
  cos = e.CosineEmbeddingLoss(0.1)
  np.testing.assert_allclose(cos.batch_terms((a, pos), {"targets": y}).per_element,
                             e.cosine_embedding_loss(a, pos, y, margin=0.1, reduction="none"), rtol=1e-12)
  traces = []

  @jax.jit
  def step(o, *z):
    traces.append(1)
    return o(*z)

  step(e.TripletMarginWithDistanceLoss(distance_function=e.pairwise_distance), a, pos, neg)
  step(e.TripletMarginWithDistanceLoss(distance_function=e.pairwise_distance), a, pos, neg)
  assert len(traces) == 1

  @jax.jit
  def derivatives(z):
    f = lambda q: e.triplet_margin_loss(q, pos, neg, swap=True)
    return jax.jacfwd(f)(z), jax.grad(f)(z), jax.hessian(f)(z), jax.jacrev(jax.jacrev(f))(z)

  fwd, rev, hess, hess_rev = derivatives(a)
  np.testing.assert_allclose(fwd, rev, rtol=1e-12)
  np.testing.assert_allclose(hess, hess_rev, rtol=1e-10, atol=1e-12)
  b, = jax.export.symbolic_shape("b")
  exp = jax.export.export(jax.jit(lambda *z: e.triplet_margin_loss(*z, reduction="none")))(
      *(jax.ShapeDtypeStruct((b, 2), np.float64) for _ in range(3)))
  np.testing.assert_allclose(exp.call(a, pos, neg), e.triplet_margin_loss(a, pos, neg, reduction="none"), rtol=1e-12)
  rows = jax.vmap(lambda *z: e.cosine_embedding_loss(*z))(a, pos, np.ones(4))
  np.testing.assert_allclose(rows, e.cosine_embedding_loss(a, pos, np.ones(4), reduction="none"), rtol=1e-12)
