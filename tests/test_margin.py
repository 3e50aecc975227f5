"""Margin losses against real torch: values and gradients, every option, kinks, non-finite values, masks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxnll as m

REDUCTIONS = ("none", "mean", "sum")
RNG = np.random.default_rng(0)


def torch_ref(fn, arrays, differentiable, **kw):
  """torch's ``(value per reduction, gradients of the differentiable inputs)``; gradients of ``Σ c·loss``."""
  out = {}
  for red in REDUCTIONS:
    ts = [torch.from_numpy(np.array(a, copy=True)) for a in arrays]
    for t, d in zip(ts, differentiable, strict=True):
      t.requires_grad_(d)
    loss = fn(*ts, reduction=red, **kw)
    c = _cotangent(loss.shape, loss.dtype)
    (loss * torch.from_numpy(c)).sum().backward()
    grads = [np.zeros(t.shape, np.asarray(a).dtype) if t.grad is None else t.grad.numpy()
             for t, a, d in zip(ts, arrays, differentiable, strict=True) if d]
    out[red] = (loss.detach().numpy(), grads)
  return out


def _cotangent(shape, dtype):
  n = int(np.prod(shape))
  return (1.0 + np.arange(n) % 3).reshape(shape).astype(str(dtype).replace("torch.", ""))


@functools.cache
def jax_all(fn, argnums, **kw):
  """One compiled program per loss and options: every reduction's value and gradients of ``Σ c·loss``."""

  def one(red, *args):
    def f(*a):
      loss = fn(*a, reduction=red, **kw)
      return jnp.sum(loss * jnp.asarray(_cotangent(loss.shape, loss.dtype))), loss

    grads, loss = jax.grad(f, argnums=argnums, has_aux=True)(*args)
    return loss, list(grads)

  return jax.jit(lambda *args: {red: one(red, *args) for red in REDUCTIONS})


def assert_matches(ours, ref, rtol, atol=None):
  atol = rtol if atol is None else atol
  for red in REDUCTIONS:
    (v, g), (rv, rg) = ours[red], ref[red]
    assert np.shape(v) == np.shape(rv), (red, np.shape(v), np.shape(rv))
    np.testing.assert_allclose(np.asarray(v), rv, rtol=rtol, atol=atol, equal_nan=True, err_msg=red)
    for a, b in zip(g, rg, strict=True):
      np.testing.assert_allclose(np.asarray(a), b, rtol=rtol, atol=atol, equal_nan=True, err_msg=red)


def compare(fn, tfn, arrays, differentiable, dtype, rtol=None, **kw):
  arrays = [a.astype(dtype) if np.asarray(a).dtype.kind == "f" else a for a in arrays]
  argnums = tuple(i for i, d in enumerate(differentiable) if d)
  ref = torch_ref(tfn, arrays, differentiable, **kw)
  ours = jax_all(fn, argnums, **kw)(*arrays)
  assert_matches(ours, ref, rtol=rtol or (1e-5 if dtype == np.float32 else 1e-12))


DTYPES = (np.float32, np.float64)


def _signs(shape):
  return RNG.choice([-1.0, 1.0], size=shape)


# --------------------------------------------------------------------------
# margin_ranking_loss


RANKING_SHAPES = [((6,), (6,), (6,)), ((3, 4), (1, 4), (3, 1)), ((), (), ()), ((0,), (0,), (0,))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", RANKING_SHAPES)
def test_margin_ranking_matches_torch(shapes, dtype):
  x1, x2 = RNG.standard_normal(shapes[0]), RNG.standard_normal(shapes[1])
  t = _signs(shapes[2])
  margin = 0.7 if dtype == np.float32 else 0.0
  compare(m.margin_ranking_loss, F.margin_ranking_loss, [x1, x2, t], [True, True, True], dtype, margin=margin)


def test_margin_ranking_kinks_and_nonfinite_match_torch():
  x1 = np.array([1.0, 2.0, np.nan, np.inf, -np.inf, 0.5, 3.0, 1.0])
  x2 = np.array([1.0, 0.0, 0.0, 0.0, 0.0, np.nan, np.inf, 0.5])
  t = np.array([1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, np.nan])
  for dtype in DTYPES:
    compare(m.margin_ranking_loss, F.margin_ranking_loss, [x1, x2, t], [True, True, True], dtype, margin=0.0)


# --------------------------------------------------------------------------
# hinge_embedding_loss, soft_margin_loss


ELEMENT_SHAPES = [((7,), (7,)), ((2, 3), (3,)), ((4, 1), (1, 5)), ((), ()), ((0, 2), (0, 2))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", ELEMENT_SHAPES)
def test_hinge_embedding_matches_torch(shapes, dtype):
  x = RNG.standard_normal(shapes[0]) * 2
  t = RNG.choice([-1.0, 1.0, 1.0, -1.0, 0.0, 2.0], size=shapes[1])  # 0 and 2 take both terms, as torch
  margin = 0.3 if dtype == np.float32 else 1.0
  compare(m.hinge_embedding_loss, F.hinge_embedding_loss, [x, t], [True, False], dtype, margin=margin)


def test_hinge_embedding_kinks_nonfinite_and_integer_targets_match_torch():
  x = np.array([1.0, 0.0, np.nan, np.inf, -np.inf, 2.0, np.nan, 0.5])
  t = np.array([-1, -1, -1, -1, -1, 1, 1, 0])
  for dtype in DTYPES:
    compare(m.hinge_embedding_loss, F.hinge_embedding_loss, [x, t], [True, False], dtype, margin=1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [s for s in ELEMENT_SHAPES if s != ((4, 1), (1, 5))])
def test_soft_margin_matches_torch(shapes, dtype):
  x = RNG.standard_normal(shapes[0]) * 5
  compare(m.soft_margin_loss, F.soft_margin_loss, [x, _signs(shapes[1])], [True, False], dtype)


def test_soft_margin_stays_finite_where_torch_overflows():
  x, t = jnp.array([100.0, -100.0, 1000.0]), jnp.array([-1.0, 1.0, -1.0])
  loss, grad = jax.value_and_grad(lambda x: jnp.sum(m.soft_margin_loss(x, t, reduction="none")))(x)
  np.testing.assert_allclose(loss, 1200.0)
  np.testing.assert_array_equal(grad, [1.0, -1.0, 1.0])
  ref = F.soft_margin_loss(torch.tensor([100.0]), torch.tensor([-1.0]))
  assert torch.isinf(ref)  # the documented difference


# --------------------------------------------------------------------------
# multi_margin_loss


MULTI_CASES = [((5, 4), (5,)), ((4,), ()), ((4,), (1,)), ((1, 3), ()), ((), ()), ((3, 1), (3,))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MULTI_CASES)
def test_multi_margin_matches_torch(case, dtype):
  shape, tshape = case
  c = 1 if shape == () else shape[-1]
  x = RNG.standard_normal(shape)
  y = RNG.integers(0, c, size=tshape)
  w = RNG.uniform(0.5, 2.0, size=(c,)).astype(dtype)
  # The options vary across cases: each combination compiles once per case.
  p, margin, weight = [(1, 1.0, None), (2, 0.4, w), (1, 0.4, w), (2, 1.0, None)][MULTI_CASES.index(case) % 4]
  if weight is None:
    compare(m.multi_margin_loss, F.multi_margin_loss, [x, y], [True, False], dtype, p=p, margin=margin)
  else:
    compare(_weighted_multi_margin, _weighted_multi_margin_torch, [x, y, weight], [True, False, False], dtype,
            p=p, margin=margin)


def _weighted_multi_margin(x, y, w, **kw):
  return m.multi_margin_loss(x, y, weight=w, **kw)


def _weighted_multi_margin_torch(x, y, w, **kw):
  return F.multi_margin_loss(x, y, weight=w, **kw)


def test_multi_margin_kinks_and_nonfinite_match_torch():
  # Rows: a pair exactly at z = 0 (slope 0), NaN in a non-target class and in the target class, +-inf scores.
  x = np.array([[1.0, 0.0, 2.0], [np.nan, 0.0, 2.0], [0.0, np.nan, 1.0], [np.inf, 0.0, 1.0],
                [0.0, -np.inf, 1.0], [0.0, 1.0, np.inf]])
  y = np.array([0, 1, 1, 0, 1, 1])
  for dtype in DTYPES:
    for p in (1, 2):
      compare(m.multi_margin_loss, F.multi_margin_loss, [x, y], [True, False], dtype, p=p)


# --------------------------------------------------------------------------
# multilabel_margin_loss


def _multilabel_targets(n, c):
  y = np.full((n, c), -1)
  for i in range(n):
    k = RNG.integers(0, c + 1)
    y[i, :k] = RNG.integers(0, c, size=k)  # duplicates count twice, as in torch
    y[i, k + 1:] = RNG.integers(-1, c, size=max(c - k - 1, 0))  # after the first -1: ignored, still checked
  return y


MULTILABEL_CASES = [(6, 5), (1, 3), (3, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MULTILABEL_CASES)
def test_multilabel_margin_matches_torch(case, dtype):
  x = RNG.standard_normal(case) * 2
  y = _multilabel_targets(*case)
  compare(m.multilabel_margin_loss, F.multilabel_margin_loss, [x, y], [True, False], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multilabel_margin_unbatched_kinks_and_nonfinite_match_torch(dtype):
  x = RNG.standard_normal(5)
  compare(m.multilabel_margin_loss, F.multilabel_margin_loss, [x, np.array([3, 0, -1, 1, 4])], [True, False], dtype)
  compare(m.multilabel_margin_loss, F.multilabel_margin_loss, [np.array(0.3), np.array(0)], [True, False], dtype)
  xs = np.array([[1.0, 0.0, 2.0, np.nan], [np.inf, 0.0, 1.0, 2.0], [0.0, 1.0, -np.inf, np.inf]])
  ys = np.array([[0, -1, 0, 0], [0, 3, -1, -1], [1, 2, -1, 0]])
  compare(m.multilabel_margin_loss, F.multilabel_margin_loss, [xs, ys], [True, False], dtype)


# --------------------------------------------------------------------------
# Masks, empty batches, targets, bad input


def test_where_masks_nan_elements_exactly():
  x = np.array([[0.3, -1.0, 2.0], [np.nan, np.inf, 1.0], [1.0, 0.5, -0.2]])
  y = np.array([2, 0, 1])
  keep = np.array([True, False, True])
  for fn, args, kw in [
      (m.multi_margin_loss, (x, y), {"p": 2}),
      (m.multilabel_margin_loss, (x, np.array([[2, -1, 0], [0, 1, -1], [1, 0, -1]])), {}),
      (m.soft_margin_loss, (x[:, 0], np.ones(3)), {}),
      (m.hinge_embedding_loss, (x[:, 0], -np.ones(3)), {}),
  ]:
    loss, grad = jax.jit(jax.value_and_grad(lambda a, fn=fn, args=args, kw=kw: fn(a, *args[1:], where=keep, **kw)))(
        args[0])
    ref = jax.jit(lambda *a, fn=fn, kw=kw: fn(*a, **kw))(args[0][keep], *(a[keep] for a in args[1:]))
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    assert np.all(np.asarray(grad)[~keep] == 0) and np.all(np.isfinite(grad))
  x1 = np.array([1.0, np.nan, 0.0])
  loss, grads = jax.jit(jax.value_and_grad(lambda a, b, t: m.margin_ranking_loss(a, b, t, where=keep),
                                           argnums=(0, 1, 2)))(
      x1, x1, np.array([1.0, np.nan, -1.0]))
  np.testing.assert_allclose(loss, 0.0)
  assert all(np.all(np.asarray(g)[~keep] == 0) for g in grads)


def test_empty_batches_reduce_like_torch_zero_over_zero():
  for fn, args in [(m.multi_margin_loss, (np.zeros((0, 3)), np.zeros(0, int))),
                   (m.multilabel_margin_loss, (np.zeros((0, 3)), np.zeros((0, 3), int))),
                   (m.soft_margin_loss, (np.zeros(0), np.zeros(0)))]:
    assert np.isnan(fn(*args)) and fn(*args, reduction="sum") == 0 and fn(*args, reduction="safe_mean") == 0
    assert fn(*args, reduction="none").shape == (0,)


INT_DTYPES = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_every_integer_target_dtype(dtype):
  x = RNG.standard_normal((4, 3))
  y = np.array([0, 2, 1, 2])
  ym = np.array([[0, 2, -1], [1, 1, 1], [2, 0, 1], [-1, 0, 1]])
  ref = F.multi_margin_loss(torch.from_numpy(x), torch.from_numpy(y)).item()
  np.testing.assert_allclose(m.multi_margin_loss(x, y.astype(dtype)), ref, rtol=1e-12)
  np.testing.assert_allclose(m.multi_margin_loss(x, jnp.asarray(y.astype(dtype))), ref, rtol=1e-12)
  if np.issubdtype(dtype, np.signedinteger):
    ref = F.multilabel_margin_loss(torch.from_numpy(x), torch.from_numpy(ym)).item()
    np.testing.assert_allclose(m.multilabel_margin_loss(x, ym.astype(dtype)), ref, rtol=1e-12)


def test_out_of_range_targets_raise_when_concrete_and_give_nan_under_jit():
  x = RNG.standard_normal((2, 3))
  for bad in (np.array([0, 3]), np.array([-1, 0]), np.array([0, 300], np.int16)):
    with pytest.raises(IndexError, match="out of bounds"):
      m.multi_margin_loss(x, bad)
    loss, grad = jax.jit(jax.value_and_grad(lambda a, t: m.multi_margin_loss(a, t, reduction="sum")))(x, bad)
    rows = (bad < 0) | (bad >= 3)
    assert np.isnan(loss) and np.all(np.isnan(grad[rows])) and np.all(np.isfinite(grad[~rows]))
  for bad in (np.array([[0, -1, 3], [0, 1, 2]]), np.array([[0, -2, 1], [0, 1, 2]])):
    with pytest.raises(IndexError, match="out of bounds"):
      m.multilabel_margin_loss(x, bad)
    per = jax.jit(lambda a, t: m.multilabel_margin_loss(a, t, reduction="none"))(x, bad)
    assert np.isnan(per[0]) and np.isfinite(per[1])
  with jax.enable_x64(False):  # host int64 is classified before JAX narrows it
    with pytest.raises(IndexError, match="Target 4294967296 is out of bounds"):
      m.multi_margin_loss(np.zeros((1, 3), np.float32), np.array([2**32], np.int64))


@pytest.mark.parametrize("call, error, match", [
    (lambda: m.margin_ranking_loss(np.ones(2), np.ones((1, 2)), np.ones(2)), ValueError, "same number of dim"),
    (lambda: m.margin_ranking_loss(np.ones(2), np.ones(3), np.ones(2)), ValueError, "do not broadcast"),
    (lambda: m.margin_ranking_loss(np.ones(2, int), np.ones(2), np.ones(2)), TypeError, "`input1`"),
    (lambda: m.margin_ranking_loss(np.ones(2), np.ones(2), np.ones(2), margin="a"), TypeError, "`margin`"),
    (lambda: m.hinge_embedding_loss(np.ones(2), np.ones(2), reduction="avg"), ValueError, "`reduction`"),
    (lambda: m.soft_margin_loss(np.ones(2), np.ones((3, 2))), ValueError, "`target`"),
    (lambda: m.soft_margin_loss(np.ones(2), np.ones(2), where=np.ones(3, bool)), ValueError, "`where`"),
    (lambda: m.soft_margin_loss(np.ones(2), np.ones(2), where=np.ones(2)), TypeError, "`where`"),
    (lambda: m.multi_margin_loss(np.ones((2, 3)), np.zeros(2, int), p=3), ValueError, "`p`"),
    (lambda: m.multi_margin_loss(np.ones((2, 3)), np.zeros(2)), TypeError, "`target` must have an integer"),
    (lambda: m.multi_margin_loss(np.ones((2, 3)), np.zeros(3, int)), ValueError, "`target`"),
    (lambda: m.multi_margin_loss(np.ones((2, 3, 4)), np.zeros(2, int)), ValueError, "`input`"),
    (lambda: m.multi_margin_loss(np.ones((2, 0)), np.zeros(2, int)), ValueError, "`input`"),
    (lambda: m.multi_margin_loss(np.ones((2, 3)), np.zeros(2, int), weight=np.ones(2)), ValueError, "`weight`"),
    (lambda: m.multi_margin_loss(np.ones((2, 3)), np.zeros(2, int), weight=np.ones((3, 1))), ValueError, "`weight`"),
    (lambda: m.MultiMarginLoss(p=0), ValueError, "`p`"),
    (lambda: m.multilabel_margin_loss(np.ones((2, 3)), np.zeros((2, 2), int)), ValueError, "`target`"),
    (lambda: m.multilabel_margin_loss(np.ones(3), np.zeros(2, int)), ValueError, "`target`"),
    (lambda: m.multilabel_margin_loss(np.ones((2, 3)), np.zeros((2, 3))), TypeError, "`target`"),
])
def test_bad_input_names_the_argument(call, error, match):
  with pytest.raises(error, match=match):
    call()


# --------------------------------------------------------------------------
# Transformations and objects


def test_jit_vmap_forward_mode_and_export():
  x = RNG.standard_normal((4, 3))
  y = np.array([0, 2, 1, 1])
  ym = np.array([[0, 2, -1], [1, -1, 0], [2, 0, 1], [-1, 0, 1]])
  b, = jax.export.symbolic_shape("b")
  for fn, t in [(functools.partial(m.multi_margin_loss, p=2), y), (m.multilabel_margin_loss, ym)]:

    @jax.jit
    def checks(a, tt, fn=fn):
      loss = functools.partial(fn, target=tt)
      rows = jax.vmap(lambda r, q: fn(r, q))(a, tt)
      return (rows, fn(a, tt, reduction="none"), jax.jacfwd(loss)(a), jax.grad(loss)(a), jax.hessian(loss)(a),
              jax.jacrev(jax.jacrev(loss))(a))

    rows, per, fwd, rev, hess, hess_rev = checks(x, t)
    np.testing.assert_allclose(rows, per, rtol=1e-12)
    np.testing.assert_allclose(fwd, rev, rtol=1e-12)
    np.testing.assert_allclose(hess, hess_rev, rtol=1e-12)
    np.testing.assert_allclose(fn(x, t, reduction="none"), per, rtol=1e-12)  # eager == jit
    exp = jax.export.export(jax.jit(lambda a, tt, fn=fn: fn(a, tt, reduction="none")))(
        jax.ShapeDtypeStruct((b, 3), x.dtype), jax.ShapeDtypeStruct((b, *t.shape[1:]), t.dtype))
    np.testing.assert_allclose(exp.call(x[:3], t[:3]), per[:3], rtol=1e-12)
  x1, x2, s = RNG.standard_normal((3, 5))
  for fn, args in [(m.margin_ranking_loss, (x1, x2, np.sign(s))), (m.hinge_embedding_loss, (x1, np.sign(s))),
                   (m.soft_margin_loss, (x1, np.sign(s)))]:

    @jax.jit
    def fwd_rev(*a, fn=fn):
      f = lambda z: fn(z, *a[1:])
      return jax.jvp(f, (a[0],), (jnp.ones(5),))[1], jnp.sum(jax.grad(f)(a[0]))

    np.testing.assert_allclose(*fwd_rev(*args), rtol=1e-12)
    exp = jax.export.export(jax.jit(lambda *a, fn=fn: fn(*a, reduction="sum")))(
        *(jax.ShapeDtypeStruct((b,), np.float64) for _ in args))
    np.testing.assert_allclose(exp.call(*args), fn(*args, reduction="sum"), rtol=1e-12)


def test_objects_equal_functions_and_do_not_retrace():
  x = RNG.standard_normal((4, 3))
  y = np.array([0, 2, 1, 1])
  w = np.array([1.0, 2.0, 0.5])
  keep = np.array([True, True, False, True])
  cases = [
      (m.MultiMarginLoss(2, 0.5, w, "sum"), functools.partial(m.multi_margin_loss, p=2, margin=0.5, weight=w,
                                                               reduction="sum"), (x, y)),
      (m.MultiLabelMarginLoss(), m.multilabel_margin_loss, (x, np.array([[0, -1, 0]] * 4))),
      (m.SoftMarginLoss("sum"), functools.partial(m.soft_margin_loss, reduction="sum"), (x, np.sign(x))),
      (m.HingeEmbeddingLoss(0.5), functools.partial(m.hinge_embedding_loss, margin=0.5), (x, np.sign(x))),
      (m.MarginRankingLoss(0.2), functools.partial(m.margin_ranking_loss, margin=0.2), (x, x.T[:1].T, np.sign(x))),
  ]
  for obj, fn, args in cases:
    np.testing.assert_allclose(obj(*args), fn(*args), rtol=1e-12)
    where = keep if obj.terms(*args).per_element.ndim == 1 else keep[:, None]
    np.testing.assert_allclose(obj(*args, where=where), fn(*args, where=where), rtol=1e-12)
  traces = []

  @jax.jit
  def step(obj, a, t):
    traces.append(1)
    return obj(a, t)

  step(m.MultiMarginLoss(weight=w), x, y)
  step(m.MultiMarginLoss(weight=w * 2), x, y)
  assert len(traces) == 1
  step(m.MultiMarginLoss(p=2, weight=w), x, y)
  assert len(traces) == 2


def test_training_protocol():
  x = np.array([[2.0, 0.0, 1.0], [0.0, 1.0, 3.0], [1.0, 0.0, 0.0]])
  batch = {"targets": np.array([0, 1, 0]), "where": np.array([True, True, False])}
  obj = m.MultiMarginLoss()
  terms = obj.batch_terms(x, batch)
  np.testing.assert_allclose(jnp.sum(terms.per_element) / jnp.sum(terms.normalizer),
                             m.multi_margin_loss(x, batch["targets"], where=batch["where"]), rtol=1e-12)
  correct, count = obj.batch_hits(x, batch, terms.counted)
  assert (correct, count) == (1.0, 2.0)
  pair = m.MarginRankingLoss().batch_terms((x[:, 0], x[:, 1]), {"targets": np.ones(3)})
  np.testing.assert_allclose(pair.per_element, m.margin_ranking_loss(x[:, 0], x[:, 1], np.ones(3), reduction="none"))
  with pytest.raises(TypeError, match="pair"):
    m.MarginRankingLoss().batch_terms(x, {"targets": np.ones(3)})
  assert m.MultiLabelMarginLoss().batch_hits(x, batch, terms.counted) is None
