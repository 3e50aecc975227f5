"""Attacks on the cross-entropy family, as a hostile user would make them.

Every integer dtype against class counts at its limits, through every front
door; NaN and ±inf in every position; ``checked`` composed with ``jit`` in
every order; training on batches that are all padding or oddly shaped; empty
batches; precision at large offsets. References are real torch and optax.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxnll
from jaxnll import training

INT_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


def _limit_class_counts(dtype) -> list[int]:
  """Class counts around the largest value of ``dtype`` that is practical to allocate."""
  top = int(np.iinfo(dtype).max)
  if top >= 70000:
    return [300]
  return [top, top + 1]  # the largest value is out of range / C itself is unrepresentable


def _targets_for(dtype, c, rng):
  """Targets that include 0, C - 1 (clipped to the dtype) and a few random classes."""
  hi = min(c - 1, int(np.iinfo(dtype).max))
  y = np.array([0, hi, rng.integers(0, hi + 1), hi // 2], dtype)
  return y


def _torch_ce(x, y, **kw):
  xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
  loss = F.cross_entropy(xt, torch.tensor(np.asarray(y).astype(np.int64)), **kw)
  loss.sum().backward()
  return loss.detach().numpy(), xt.grad.numpy()


def _front_doors(c):
  """Each front door as ``f(x, y) -> per-element losses`` for ``[N, C]`` logits."""
  rng = np.random.default_rng(c)
  d = 6
  h = jnp.asarray(rng.standard_normal((4, d)))
  w_cls = jnp.asarray(rng.standard_normal((c, d)))
  return {
      "cross_entropy": lambda x, y: jaxnll.cross_entropy(x, y, reduction="none"),
      "nll_loss": lambda x, y: jaxnll.nll_loss(jaxnll.log_softmax(x), y, reduction="none"),
      "losses": lambda x, y: jaxnll.losses.softmax_cross_entropy_with_integer_labels(x, y, ignore_index=-100),
      "object": lambda x, y: jaxnll.CrossEntropyLoss(reduction="none")(x, y),
      "nll_object": lambda x, y: jaxnll.NLLLoss(reduction="none")(jaxnll.log_softmax(x), y),
      # linear_cross_entropy on h @ W.T: its logits replace x.
      "linear_cross_entropy": (lambda x, y: jaxnll.linear_cross_entropy(h, w_cls, y, reduction="none"),
                               h @ w_cls.T),
  }


HOST_TARGET_DOORS = ("cross_entropy", "linear_cross_entropy")


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_integer_dtype_at_its_class_limits_through_every_front_door(dtype):
  rng = np.random.default_rng(0)
  for c in _limit_class_counts(dtype):
    x = jnp.asarray(rng.standard_normal((4, c)))
    y = _targets_for(dtype, c, rng)
    doors = {name: door if isinstance(door, tuple) else (door, x) for name, door in _front_doors(c).items()}
    # The doors together in one compiled program (one compilation, not one a door): host
    # targets, classified at trace time in their own dtype, and traced ones.
    host_out = jax.jit(lambda a, doors=doors, y=y: {name: doors[name][0](a, y) for name in HOST_TARGET_DOORS})(x)
    traced_out = jax.jit(lambda a, t, doors=doors: {name: fn(a, t) for name, (fn, _) in doors.items()})(
        x, jnp.asarray(y))
    for name, (_, logits) in doors.items():
      ref, _ = _torch_ce(logits, y, reduction="none")
      if name in HOST_TARGET_DOORS:
        np.testing.assert_allclose(host_out[name], ref, rtol=1e-9, atol=1e-9, err_msg=f"{name} C={c}")
      np.testing.assert_allclose(traced_out[name], ref, rtol=1e-9, atol=1e-9, err_msg=f"{name} jit C={c}")
    ref, _ = _torch_ce(x, y, reduction="none")
    np.testing.assert_allclose(jaxnll.cross_entropy(x, y, reduction="none"), ref, rtol=1e-9)  # eager


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_out_of_range_targets_of_every_dtype_raise_when_known_and_are_nan_when_traced(dtype):
  info = np.iinfo(dtype)
  c = int(min(info.max, 300)) if info.max < 300 else 300
  x = jnp.zeros((4, c))
  candidates = [int(info.max), c] + ([-1, int(info.min)] if info.min < 0 else [])
  doors = {name: door[0] if isinstance(door, tuple) else door for name, door in _front_doors(c).items()}
  traced = {name: jax.jit(fn) for name, fn in doors.items()}  # compiled once, for every bad target
  for bad in candidates:
    if not (info.min <= bad <= info.max) or 0 <= bad < c:
      continue
    y = np.array([0, bad, 1, 1], dtype)
    with pytest.raises(IndexError, match=rf"Target {bad} is out of bounds\."):
      jaxnll.nll_loss(x, y)  # eager
    for name, fn in doors.items():
      with pytest.raises(IndexError, match=rf"Target {bad} is out of bounds\."):
        jax.jit(lambda a, fn=fn, y=y: fn(a, y))(x)
      per = traced[name](x, jnp.asarray(y))
      assert np.isnan(per[1]) and np.isfinite(np.asarray(per)[[0, 2, 3]]).all(), (name, bad)


@pytest.mark.parametrize(("dtype", "ignore_index", "aliased"), [
    (np.uint8, -100, False),        # -100 does not exist in uint8: nothing is ignored
    (np.uint8, 255, True),
    (np.int8, 200, False),
    (np.int32, 2**32, False),       # would wrap to 0
    (np.int32, 2**32 + 1, False),   # would wrap to 1
    (np.uint32, -1, False),         # would wrap to 2**32 - 1
    (np.int64, -100, True),
])
def test_an_ignore_index_the_dtype_cannot_hold_never_aliases_a_class(dtype, ignore_index, aliased):
  c = 300
  x = jnp.asarray(np.random.default_rng(1).standard_normal((4, c)))
  y = np.array([0, 1, 255, 3], dtype) if np.iinfo(dtype).max >= 255 else np.array([0, 1, 127, 3], dtype)
  if aliased:
    y[2] = np.array(ignore_index).astype(dtype)
  expected_counted = np.array([True, True, not aliased, True])
  y_valid = np.where(expected_counted, y, 0).astype(np.int64)
  ref_x = np.asarray(jaxnll.cross_entropy(x, y_valid, reduction="none", ignore_index=-(10**6)))
  for name in _front_doors(c):
    if name == "losses":
      fn = lambda a, t: jaxnll.losses.softmax_cross_entropy_with_integer_labels(a, t, ignore_index=ignore_index)
    elif name in ("nll_loss", "nll_object"):
      fn = lambda a, t: jaxnll.nll_loss(jaxnll.log_softmax(a), t, reduction="none", ignore_index=ignore_index)
    elif name == "linear_cross_entropy":
      h, w_cls = jnp.eye(4, 8), jnp.asarray(np.random.default_rng(2).standard_normal((c, 8)))
      x_lce = h @ w_cls.T
      per = jaxnll.linear_cross_entropy(h, w_cls, y, reduction="none", ignore_index=ignore_index)
      ref = jaxnll.cross_entropy(x_lce, y_valid, reduction="none", ignore_index=-(10**6))
      np.testing.assert_allclose(per, np.where(expected_counted, ref, 0.0), rtol=1e-9)
      continue
    else:
      fn = lambda a, t: jaxnll.cross_entropy(a, t, reduction="none", ignore_index=ignore_index)
    per = np.asarray(fn(x, y))
    np.testing.assert_allclose(per, np.where(expected_counted, ref_x, 0.0), rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(jax.jit(fn)(x, jnp.asarray(y)), per, rtol=1e-9, err_msg=name)
  obj = jaxnll.CrossEntropyLoss(ignore_index=ignore_index, reduction="none")
  np.testing.assert_allclose(obj(x, y), np.where(expected_counted, ref_x, 0.0), rtol=1e-9)


def test_uint8_byte_level_targets_match_torch():
  x = jnp.zeros((2, 256))
  y = np.array([97, 156], np.uint8)
  np.testing.assert_allclose(jaxnll.cross_entropy(x, y), np.log(256), rtol=1e-6)
  np.testing.assert_allclose(jax.jit(jaxnll.cross_entropy)(x, y), np.log(256), rtol=1e-6)
  ref, _ = _torch_ce(np.zeros((1, 200)), np.array([156]), reduction="none")
  np.testing.assert_allclose(jaxnll.cross_entropy(jnp.zeros((1, 200)), np.array([156], np.uint8), reduction="none"),
                             ref, rtol=1e-9)


# --------------------------------------------------------------------------
# Non-finite values in every position.

POSITIONS = ["target", "non_target", "ignored", "masked"]
VALUES = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}


def _nonfinite_case(position, value, num_classes=5):
  rng = np.random.default_rng(3)
  x = rng.standard_normal((4, num_classes))
  y = np.array([1, 3, 0, 2])
  where = np.ones(4, bool)
  if position == "target":
    x[0, 1] = value
  elif position == "non_target":
    x[0, 4] = value
  elif position == "ignored":
    x[0, :] = value
    x[0, 2] = 0.5
    y[0] = -100
  else:
    x[0, :] = value
    where[0] = False
  return x, y, where


# 5 and 80 classes: short rows are masked through a class-iota comparison, long ones directly.
@pytest.mark.parametrize(("eps", "num_classes"), [(0.0, 5), (0.1, 5), (0.1, 80)])
@pytest.mark.parametrize("value", list(VALUES), ids=str)
@pytest.mark.parametrize("position", POSITIONS)
def test_nonfinite_logits_in_every_position_match_torch(position, value, eps, num_classes):
  x, y, where = _nonfinite_case(position, VALUES[value], num_classes)
  w = np.resize(np.array([1.0, 2.0, 0.5, 1.5, 1.0]), num_classes)
  kw = dict(label_smoothing=eps, weight=jnp.asarray(w))
  per = jaxnll.cross_entropy(jnp.asarray(x), jnp.asarray(y), reduction="none", where=jnp.asarray(where), **kw)
  grad = jax.grad(lambda a: jaxnll.cross_entropy(a, jnp.asarray(y), reduction="sum", where=jnp.asarray(where),
                                                  **kw))(jnp.asarray(x))
  # torch has no mask: a masked row is what an ignored one is.
  y_t = np.where(where, y, -100)
  ref, ref_grad = _torch_ce(x, y_t, reduction="none", label_smoothing=eps, weight=torch.tensor(w))
  np.testing.assert_allclose(per, ref, rtol=1e-9, equal_nan=True)
  if position in ("ignored", "masked"):
    # Not counted: exactly zero loss and gradient row (torch: a NaN row, from log_softmax's backward).
    assert per[0] == 0.0 and np.all(np.asarray(grad[0]) == 0.0)
    np.testing.assert_allclose(grad[1:], ref_grad[1:], rtol=1e-9, atol=1e-12)
  else:
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12, equal_nan=True)
  if value == "nan" and position in ("target", "non_target"):
    assert np.isnan(per[0]) and np.isnan(np.asarray(grad[0])).all()
    assert np.isnan(jaxnll.cross_entropy(jnp.asarray(x), jnp.asarray(y), **kw))  # the mean sees it


@pytest.mark.parametrize("value", list(VALUES), ids=str)
@pytest.mark.parametrize("position", POSITIONS)
def test_nonfinite_through_log_softmax_nll_loss_losses_and_fused(position, value):
  x, y, where = _nonfinite_case(position, VALUES[value])
  xj, yj, wj = jnp.asarray(x), jnp.asarray(y), jnp.asarray(where)
  y_t = np.where(where, y, -100)
  ref, ref_grad = _torch_ce(x, y_t, reduction="none")
  # nll_loss(log_softmax(x)): torch's pair.
  xt = torch.tensor(x, requires_grad=True)
  ref_pair = F.nll_loss(F.log_softmax(xt, 1), torch.tensor(y_t), reduction="none")
  ref_pair.sum().backward()
  pair = lambda a: jaxnll.nll_loss(jaxnll.log_softmax(a), yj, reduction="none", where=wj)
  np.testing.assert_allclose(pair(xj), ref_pair.detach().numpy(), rtol=1e-9, equal_nan=True)
  g_pair = jax.grad(lambda a: pair(a).sum())(xj)
  counted = where & (y != -100)
  np.testing.assert_allclose(np.asarray(g_pair)[counted], xt.grad.numpy()[counted], rtol=1e-9, atol=1e-12,
                             equal_nan=True)
  # log_softmax of a row with NaN or +inf is all NaN, as in torch; an all -inf
  # row is -inf (torch: NaN), a deliberate difference.
  lsm = np.asarray(jaxnll.log_softmax(xj))
  all_neginf = np.isneginf(x).all(axis=1)
  np.testing.assert_allclose(lsm[~all_neginf], F.log_softmax(torch.tensor(x), 1).numpy()[~all_neginf], rtol=1e-9,
                             equal_nan=True)
  assert np.isneginf(lsm[all_neginf]).all()
  # jaxnll.losses: example-level where; ignored rows give 0 and zero gradient.
  lo = lambda a: jaxnll.losses.softmax_cross_entropy_with_integer_labels(a, yj, where=wj, ignore_index=-100)
  np.testing.assert_allclose(lo(xj), ref, rtol=1e-9, equal_nan=True)
  g_lo = jax.grad(lambda a: lo(a).sum())(xj)
  np.testing.assert_allclose(np.asarray(g_lo)[counted], ref_grad[counted], rtol=1e-9, atol=1e-12, equal_nan=True)
  assert np.all(np.asarray(g_lo)[~counted] == 0.0)
  # optax agrees on the counted rows, but for +inf: its integer-label loss is
  # logsumexp - x_y = inf there (its own softmax_cross_entropy and torch: NaN).
  if value == "+inf":
    return
  opt = optax.losses.softmax_cross_entropy_with_integer_labels(xj, jnp.asarray(np.where(counted, y, 0)))
  np.testing.assert_allclose(np.asarray(lo(xj))[counted], np.asarray(opt)[counted], rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("value", list(VALUES), ids=str)
def test_nonfinite_classifier_row_in_linear_cross_entropy(value):
  rng = np.random.default_rng(4)
  h = jnp.asarray(rng.standard_normal((6, 4)))
  w_cls = rng.standard_normal((300, 4))
  w_cls[7] = VALUES[value]
  w_cls = jnp.asarray(w_cls)
  y = jnp.array([0, 7, 299, -100, 5, 6])
  per = jaxnll.linear_cross_entropy(h, w_cls, y, reduction="none", block_size=128)
  ref = jaxnll.cross_entropy(h @ w_cls.T, y, reduction="none")
  np.testing.assert_allclose(per, ref, rtol=1e-9, equal_nan=True)
  assert per[3] == 0.0
  if value == "nan":
    assert np.isnan(np.asarray(per)[[0, 1, 2, 4, 5]]).all()
    # Every counted token's gradient passes through the NaN row of the classifier, on both strategies, as on
    # the materialized path; the ignored token's is exactly 0 on both (the materialized path's matmul makes
    # it 0 * NaN = NaN there).
    for block in (128, None):
      g = jax.grad(lambda a, b=block: jaxnll.linear_cross_entropy(a, w_cls, y, reduction="sum", block_size=b))(h)
      assert np.isnan(np.delete(np.asarray(g), 3, axis=0)).all() and np.all(np.asarray(g)[3] == 0), block
    g_ref = jax.grad(lambda a: jaxnll.cross_entropy(a @ w_cls.T, y, reduction="sum"))(h)
    assert np.isnan(np.asarray(g_ref)).all()


@pytest.mark.parametrize("value", list(VALUES), ids=str)
def test_ignored_rows_leave_the_weight_gradient_finite(value):
  x = np.random.default_rng(5).standard_normal((3, 4))
  x[1] = VALUES[value]
  y = jnp.array([0, -100, 3])
  w = jnp.array([1.0, 2.0, 0.5, 1.5])
  for eps in (0.0, 0.2):
    gw = jax.grad(lambda w, eps=eps: jaxnll.cross_entropy(jnp.asarray(x), y, weight=w, label_smoothing=eps))(w)
    ref = jax.grad(lambda w, eps=eps: jaxnll.cross_entropy(jnp.asarray(x[[0, 2]]), y[jnp.array([0, 2])], weight=w,
                                                           label_smoothing=eps))(w)
    np.testing.assert_allclose(gw, ref, rtol=1e-12)


# --------------------------------------------------------------------------
# checked(): composes with jit in every order, nests, never leaks.

X3 = jnp.zeros((2, 3))
GOOD, BAD = jnp.array([0, 1]), jnp.array([0, 5])


def _fresh_jitted():
  return jax.jit(lambda a, t: jaxnll.cross_entropy(a, t))


def test_checked_does_not_leak_into_the_jit_cache_of_the_function_it_wraps():
  f = _fresh_jitted()
  np.testing.assert_allclose(jaxnll.checked(f)(X3, GOOD), np.log(3), rtol=1e-6)
  np.testing.assert_allclose(f(X3, GOOD), np.log(3), rtol=1e-6)  # unchecked again, no checkify error
  assert np.isnan(f(X3, BAD))
  g = _fresh_jitted()
  np.testing.assert_allclose(g(X3, GOOD), np.log(3), rtol=1e-6)   # traced unchecked first
  with pytest.raises(IndexError, match=r"Target 5 is out of bounds\."):
    jaxnll.checked(g)(X3, BAD)                                    # ... still checked
  assert np.isnan(g(X3, BAD))


def test_checked_under_jit_and_nested():
  f = _fresh_jitted()
  outer = jax.jit(jaxnll.checked(f))
  np.testing.assert_allclose(outer(X3, GOOD), np.log(3), rtol=1e-6)
  with pytest.raises(Exception, match=r"Target 5 is out of bounds\."):
    jax.block_until_ready(outer(X3, BAD))
  nested = jaxnll.checked(jaxnll.checked(f))
  np.testing.assert_allclose(nested(X3, GOOD), np.log(3), rtol=1e-6)
  with pytest.raises(IndexError, match=r"Target 5 is out of bounds\."):
    nested(X3, BAD)
  with pytest.raises(IndexError, match=r"Target 5 is out of bounds\."):
    jaxnll.checked(jax.jit(jaxnll.checked(f)))(X3, BAD)
  with pytest.raises(IndexError, match=r"Target 5 is out of bounds\."):
    jaxnll.checked(jax.grad(lambda a, t: jaxnll.cross_entropy(a, t)))(X3, BAD)
  np.testing.assert_allclose(jax.vmap(jaxnll.checked(jaxnll.cross_entropy))(X3, GOOD), [np.log(3)] * 2, rtol=1e-6)
  assert np.isnan(f(X3, BAD))


@pytest.mark.parametrize("door", ["nll_loss", "losses", "object", "linear_cross_entropy"])
def test_checked_covers_every_front_door(door):
  fns = {
      "nll_loss": lambda a, t: jaxnll.nll_loss(a, t),
      "losses": lambda a, t: jaxnll.losses.softmax_cross_entropy_with_integer_labels(a, t).sum(),
      "object": lambda a, t: jaxnll.CrossEntropyLoss()(a, t),
      "linear_cross_entropy": lambda a, t: jaxnll.linear_cross_entropy(a, jnp.eye(3), t),
  }
  fn = jaxnll.checked(fns[door])
  assert np.isfinite(fn(X3, GOOD))
  with pytest.raises(IndexError, match=r"Target 5 is out of bounds\."):
    fn(X3, BAD)


# --------------------------------------------------------------------------
# Training helpers on all-padding and odd batches.


def _apply(params, x):
  return x @ params["w"]


def _params():
  return {"w": jnp.asarray(np.random.default_rng(6).standard_normal((3, 4)))}


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("reduction", ["mean", "safe_mean", "sum"])
def test_an_all_padding_batch_is_a_no_op_update(reduction, steps):
  params = _params()
  loss = jaxnll.CrossEntropyLoss(reduction=reduction, label_smoothing=0.1)
  batch = {"inputs": jnp.ones((4, 3)), "targets": jnp.full((4,), -100)}
  value, grads, _ = training.make_grad_fn(_apply, loss, accumulation_steps=steps)(params, batch)
  assert np.all(np.asarray(grads["w"]) == 0.0)
  direct = jax.grad(lambda p: loss(_apply(p, batch["inputs"]), batch["targets"]))(params)
  np.testing.assert_array_equal(grads["w"], direct["w"])
  assert np.isnan(value) if reduction == "mean" else value == 0.0
  optimizer = optax.adam(1e-2)
  opt_state = optimizer.init(params)
  real = {"inputs": jnp.ones((4, 3)), "targets": jnp.array([0, 1, 2, 3])}
  step = training.make_train_step(_apply, loss, optimizer, accumulation_steps=steps, jit=False)
  with jax.numpy_dtype_promotion("standard"):  # optax's Adam mixes int and float
    params, opt_state, _ = step(params, opt_state, real)       # momentum is nonzero now
    before = jax.tree_util.tree_map(np.asarray, (params, opt_state))
    params, opt_state, metrics = step(params, opt_state, batch)
  after = jax.tree_util.tree_map(np.asarray, (params, opt_state))
  jax.tree_util.tree_map(np.testing.assert_array_equal, after, before)
  assert float(metrics["count"]) == 0.0 and np.all(np.isfinite(after[0]["w"]))


def test_accumulation_with_odd_batch_contents():
  params = _params()
  loss = jaxnll.CrossEntropyLoss()
  rng = np.random.default_rng(7)
  base = {"inputs": jnp.asarray(rng.standard_normal((8, 3))), "targets": jnp.asarray(rng.integers(0, 4, 8))}
  full, grads, _ = training.make_grad_fn(_apply, loss)(params, base)
  for extra in ({"step": jnp.asarray(3)}, {"where": None}, {"temperature": 0.5, "where": None}):
    value, g, _ = training.make_grad_fn(_apply, loss, accumulation_steps=2)(params, {**base, **extra})
    np.testing.assert_allclose(value, full, rtol=1e-12)
    np.testing.assert_allclose(g["w"], grads["w"], rtol=1e-10)
  with pytest.raises(ValueError, match=r"batch\['inputs'\] has leading size 8, not divisible by accumulation_steps=3"):
    training.make_grad_fn(_apply, loss, accumulation_steps=3)(params, base)


@pytest.mark.parametrize("steps", [2.0, "2", True, 0, -1, None])
def test_accumulation_steps_must_be_a_positive_int(steps):
  with pytest.raises((TypeError, ValueError), match="`accumulation_steps`"):
    training.make_grad_fn(_apply, jaxnll.cross_entropy, accumulation_steps=steps)
  assert training.make_grad_fn(_apply, jaxnll.cross_entropy, accumulation_steps=np.int64(2))


def test_unreduced_loss_is_refused_at_construction():
  for make in (lambda loss: training.make_train_step(_apply, loss, optax.sgd(1.0)),
               lambda loss: training.make_grad_fn(_apply, loss),
               lambda loss: training.make_eval_step(_apply, loss),
               lambda loss: training.make_loss_fn(_apply, loss)):
    with pytest.raises(ValueError, match="reduction='none'"):
      make(jaxnll.CrossEntropyLoss(reduction="none"))
    with pytest.raises(ValueError, match="reduction='none'"):
      make(functools.partial(jaxnll.nll_loss, reduction="none"))


# --------------------------------------------------------------------------
# Empty batches, every front door.


@pytest.mark.parametrize("shape", [(0, 3), (2, 0, 3)])
def test_empty_batches_in_every_front_door(shape):
  x = jnp.zeros(shape)
  y = jnp.zeros(shape[:-1], jnp.int32)
  for reduction, check in (("mean", np.isnan), ("sum", lambda v: v == 0.0), ("safe_mean", lambda v: v == 0.0)):
    assert check(jaxnll.cross_entropy(x, y, reduction=reduction))
    assert check(jaxnll.nll_loss(x, y, reduction=reduction))
    assert check(jaxnll.CrossEntropyLoss(reduction=reduction)(x, y))
    assert check(jaxnll.linear_cross_entropy(x, jnp.eye(3), y, reduction=reduction))
  assert jaxnll.cross_entropy(x, y, reduction="none").shape == shape[:-1]
  assert jaxnll.cross_entropy(x, jnp.zeros(shape), reduction="none").shape == shape[:-1]
  assert jaxnll.log_softmax(x).shape == shape
  for fn, labels in ((jaxnll.losses.softmax_cross_entropy_with_integer_labels, y),
                     (jaxnll.losses.softmax_cross_entropy, jnp.zeros(shape))):
    out = fn(x, labels)
    ref = (optax.losses.softmax_cross_entropy_with_integer_labels if labels.dtype == y.dtype
           else optax.losses.softmax_cross_entropy)(x, labels)
    assert out.shape == ref.shape == shape[:-1]
  assert np.all(np.asarray(jax.grad(lambda a: jaxnll.cross_entropy(a, y, reduction="sum"))(x)) == 0)
  for reduction in ("mean", "sum"):  # torch: zero gradients for the embeddings and the classifier
    def lce(a, c, reduction=reduction):
      return jaxnll.linear_cross_entropy(a, c, y, reduction=reduction)
    assert jax.grad(lce)(x, jnp.eye(3)).shape == shape
    assert np.all(np.asarray(jax.grad(lce, argnums=1)(x, jnp.eye(3))) == 0)


# --------------------------------------------------------------------------
# Smoothing over a class mask, precision, degenerate weights, export, errors.


def test_class_level_where_spreads_smoothing_over_the_kept_classes_like_optax():
  rng = np.random.default_rng(8)
  x = jnp.asarray(rng.standard_normal((5, 6)))
  y = np.array([0, 2, 3, 5, 2])
  keep = np.array([True, False, True, True, False, True])
  eps = 0.2
  kept = np.flatnonzero(keep)
  onehot_kept = np.eye(len(kept))[np.searchsorted(kept, y)]
  labels = np.zeros((5, 6))
  labels[:, kept] = optax.smooth_labels(jnp.asarray(onehot_kept), eps)
  ref = optax.losses.softmax_cross_entropy(x, jnp.asarray(labels), where=jnp.asarray(np.broadcast_to(keep, (5, 6))))
  out = jaxnll.losses.softmax_cross_entropy_with_integer_labels(x, jnp.asarray(y), where=jnp.asarray(keep[None]),
                                                                label_smoothing=eps)
  assert np.all(np.isfinite(out))
  np.testing.assert_allclose(out, ref, rtol=1e-9)
  grad = jax.grad(lambda a: jaxnll.losses.softmax_cross_entropy_with_integer_labels(
      a, jnp.asarray(y), where=jnp.asarray(keep[None]), label_smoothing=eps).sum())(x)
  ref_grad = jax.grad(lambda a: optax.losses.softmax_cross_entropy(
      a, jnp.asarray(labels), where=jnp.asarray(np.broadcast_to(keep, (5, 6)))).sum())(x)
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("offset", "rtol"), [(1e4, 1e-6), (1e6, 1e-6)])
def test_label_smoothing_error_does_not_grow_with_the_offset(offset, rtol):
  rng = np.random.default_rng(9)
  x = (rng.standard_normal((8, 32000)) + offset).astype(np.float32)
  y = rng.integers(0, 32000, 8)
  ref = F.cross_entropy(torch.tensor(x, dtype=torch.float64), torch.tensor(y), label_smoothing=0.1).item()
  out = float(jaxnll.cross_entropy(jnp.asarray(x), jnp.asarray(y), label_smoothing=0.1))
  assert abs(out - ref) / ref < rtol, (out, ref)
  h = jnp.asarray(x[:, :64])
  w_cls = jnp.eye(32000, 64, dtype=jnp.float32)
  fused = float(jaxnll.linear_cross_entropy(h, w_cls, jnp.asarray(y), label_smoothing=0.1))
  ref_fused = F.cross_entropy(torch.tensor(x[:, :64] @ np.eye(32000, 64).T, dtype=torch.float64),
                              torch.tensor(y), label_smoothing=0.1).item()
  assert abs(fused - ref_fused) / ref_fused < 1e-5, (fused, ref_fused)


def test_huge_logits_give_inf_like_torch_not_nan():
  x = np.full((2, 5), 1e37, np.float32)
  x[:, 0] = -1e37
  y = np.array([0, 0])
  ref = F.cross_entropy(torch.tensor(x), torch.tensor(y), label_smoothing=0.1, reduction="none").numpy()
  out = jaxnll.cross_entropy(jnp.asarray(x), jnp.asarray(y), label_smoothing=0.1, reduction="none")
  np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_all_target_weights_zero_with_smoothing_is_nan_like_torch():
  x = np.random.default_rng(10).standard_normal((3, 4))
  y = np.array([0, 0, 0])
  w = np.array([0.0, 1.0, 2.0, 3.0])
  ref, _ = _torch_ce(x, y, weight=torch.tensor(w), label_smoothing=0.1)
  assert np.isnan(ref)
  assert np.isnan(jaxnll.cross_entropy(jnp.asarray(x), jnp.asarray(y), weight=jnp.asarray(w), label_smoothing=0.1))


def test_shape_polymorphic_export_of_linear_cross_entropy():
  (b,) = jax.export.symbolic_shape("b")
  w_cls = jnp.asarray(np.random.default_rng(11).standard_normal((300, 8)), jnp.float32)
  h_spec = jax.ShapeDtypeStruct((b, 8), jnp.float32)
  y_spec = jax.ShapeDtypeStruct((b,), jnp.int32)
  h = jnp.asarray(np.random.default_rng(12).standard_normal((5, 8)), jnp.float32)
  y = jnp.array([0, 299, -100, 4, 128], jnp.int32)
  for block in (None, 128):
    loss = lambda h, y, block=block: jaxnll.linear_cross_entropy(h, w_cls, y, block_size=block, label_smoothing=0.1)
    for f in (loss, jax.grad(loss)):
      exported = jax.export.export(jax.jit(f))(h_spec, y_spec)
      np.testing.assert_allclose(exported.call(h, y), jax.jit(f)(h, y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: jaxnll.linear_cross_entropy(jnp.ones((2, 3)), jnp.eye(3), jnp.array([0, 1]), batch_axis="data"),
     ValueError, r"`batch_axis`='data'.*shard_map"),
    (lambda: jaxnll.linear_cross_entropy(jnp.ones((2, 3)), jnp.eye(3), jnp.array([0, 1]), batch_axis=0),
     TypeError, r"`batch_axis` must be None, a mesh axis name"),
    (lambda: jaxnll.losses.softmax_cross_entropy_with_integer_labels(
        jnp.ones((2, 3)), jnp.array([0, 1]), where=jnp.ones((4,), bool)),
     ValueError, r"`where` of shape \(4,\) broadcasts neither to the logits' shape \(2, 3\)"),
    (lambda: jaxnll.cross_entropy(jnp.ones((2, 3)), jnp.array([0, 1, 2])),
     ValueError, r"class axis=-1 \(axis 1\)"),
])
def test_errors_name_what_the_user_passed(call, error, match):
  with pytest.raises(error, match=match):
    call()


def test_numpy_integers_are_accepted_where_ints_are():
  h, w_cls, y = jnp.ones((2, 3)), jnp.eye(3), jnp.array([0, 1])
  np.testing.assert_allclose(jaxnll.linear_cross_entropy(h, w_cls, y, block_size=np.int64(2)),
                             jaxnll.linear_cross_entropy(h, w_cls, y), rtol=1e-12)
  assert jaxnll.CrossEntropyLoss(axis=np.int64(1)).axis == 1
  assert jaxnll.NLLLoss(axis=np.int32(-1)).axis == -1


# --------------------------------------------------------------------------
# The soft cap and large offsets.


@pytest.mark.parametrize("mask", ["ignored", "where", "probabilities", "fused"])
def test_softcap_keeps_uncounted_rows_with_nan_at_zero_gradient(mask):
  x = jnp.array([[1.0, 2.0, 3.0], [jnp.nan, 0.0, 0.0]])
  y = jnp.array([0, -100])
  keep = jnp.array([True, False])
  if mask == "fused":
    h = jnp.array([[1.0, 2.0], [jnp.nan, 1.0]])
    g = jax.grad(lambda a: jaxnll.linear_cross_entropy(a, jnp.full((3, 2), 0.1), y, softcap=30.0))(h)
    assert np.isfinite(g[0]).all() and np.all(np.asarray(g[1]) == 0.0)
    return
  if mask == "ignored":
    f = lambda a: jaxnll.cross_entropy(a, y, softcap=30.0, reduction="sum")
  elif mask == "where":
    f = lambda a: jaxnll.cross_entropy(a, jnp.array([0, 1]), softcap=30.0, where=keep, reduction="sum")
  else:
    f = lambda a: jaxnll.cross_entropy(a, jnp.full((2, 3), 1 / 3), softcap=30.0, where=keep, reduction="sum")
  g = np.asarray(jax.grad(f)(x))
  assert np.all(g[1] == 0.0), g
  # The counted row as torch computes it: cross-entropy of 30 tanh(x / 30).
  xt = torch.tensor(np.asarray(x[:1]), requires_grad=True)
  target = torch.full((1, 3), 1 / 3) if mask == "probabilities" else torch.tensor([0])
  F.cross_entropy(30 * torch.tanh(xt / 30), target, reduction="sum").backward()
  np.testing.assert_allclose(g[0], xt.grad.numpy()[0], rtol=1e-6)


@pytest.mark.parametrize("offset", [0.0, 30.0, 1e3, 1e4, -1e4])
def test_log_softmax_error_does_not_grow_with_the_offset(offset):
  x = np.random.default_rng(0).standard_normal((4, 50)).astype(np.float32) * 3 + np.float32(offset)
  ref = F.log_softmax(torch.tensor(x, dtype=torch.float64), 1).numpy()
  np.testing.assert_allclose(jaxnll.log_softmax(jnp.asarray(x)), ref, rtol=0, atol=2e-6)
  mask = np.arange(50) % 3 > 0
  ref_masked = F.log_softmax(torch.tensor(np.where(mask, x, -np.inf), dtype=torch.float64), 1).numpy()
  np.testing.assert_allclose(jaxnll.log_softmax(jnp.asarray(x), where=jnp.asarray(mask)), ref_masked, rtol=0,
                             atol=2e-6)
