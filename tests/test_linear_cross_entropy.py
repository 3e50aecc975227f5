"""linear_cross_entropy: equal to cross_entropy on the materialized logits (and to torch)."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import jaxnll
from jaxnll import _linear_cross_entropy as lce

TOL = {np.float32: dict(rtol=5e-5, atol=5e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _problem(rng, lead, d, v, dtype, drop=0.2):
  h = rng.standard_normal((*lead, d)).astype(dtype)
  w_cls = (rng.standard_normal((v, d)) / np.sqrt(d) * 3).astype(dtype)
  b = rng.standard_normal(v).astype(dtype)
  y = rng.integers(0, v, size=lead)
  y = np.where(rng.uniform(size=lead) < drop, -100, y)
  return h, w_cls, b, y


def _materialized(h, w_cls, y, *, bias=None, **opts):
  logits = jnp.einsum("...d,vd->...v", h, w_cls, precision=jax.lax.Precision.HIGHEST)
  if bias is not None:
    logits = logits + jnp.broadcast_to(bias, logits.shape)
  return jaxnll.cross_entropy(logits, y, **opts)


def _value_and_grads(fn, h, w_cls, b, weight, y, **opts):
  """Loss and gradients w.r.t. embeddings, classifier, bias and class weights."""

  def total(h_, w_, b_, wt_):
    out = fn(h_, w_, y, bias=b_, weight=wt_, **opts)
    return jnp.sum(out), out

  (_, out), grads = jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2, 3), has_aux=True))(
      jnp.asarray(h), jnp.asarray(w_cls), jnp.asarray(b), jnp.asarray(weight))
  return [np.asarray(out)] + [np.asarray(g) for g in grads]


@st.composite
def configs(draw):
  dtype = draw(st.sampled_from([np.float32, np.float64]))
  lead = tuple(draw(st.lists(st.integers(1, 9), min_size=0, max_size=2)))
  d = draw(st.integers(1, 12))
  v = draw(st.integers(1, 70))
  rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
  h, w_cls, b, y = _problem(rng, lead, d, v, dtype, drop=draw(st.sampled_from([0.0, 0.3, 1.0])))
  opts = dict(
      reduction=draw(st.sampled_from(["none", "mean", "sum", "safe_mean"])),
      label_smoothing=draw(st.sampled_from([0.0, 0.1, 1.0])),
      z_loss=draw(st.sampled_from([0.0, 1e-3])),
      softcap=draw(st.sampled_from([None, 2.0, 30.0])),
  )
  if draw(st.booleans()):
    opts["ignore_index"] = draw(st.sampled_from([0, v - 1]))
    y = np.where(y == -100, opts["ignore_index"], y)
  if draw(st.booleans()):
    opts["where"] = rng.uniform(size=lead) < 0.7
  weight = rng.uniform(0.2, 3.0, v).astype(dtype) if draw(st.booleans()) else np.ones(v, dtype)
  block = draw(st.sampled_from([None, 1, 7, 16, 1000]))
  chunk = draw(st.sampled_from([None, 3 * d, 5 * d]))  # backward token tiles, in elements
  return h, w_cls, b, weight, y, opts, block, chunk


@contextlib.contextmanager
def _token_tiles(elements):
  """Sets the backward's token-tile budget (``None``: the default) inside the block."""
  default = lce._CHUNK_ELEMENTS
  lce._CHUNK_ELEMENTS = default if elements is None else elements
  try:
    yield
  finally:
    lce._CHUNK_ELEMENTS = default


@given(configs())
def test_matches_cross_entropy_on_materialized_logits(cfg):
  h, w_cls, b, weight, y, opts, block, chunk = cfg
  with _token_tiles(chunk):
    ours = _value_and_grads(lce.linear_cross_entropy, h, w_cls, b, weight, y, block_size=block, **opts)
  ref = _value_and_grads(_materialized, h, w_cls, b, weight, y, **opts)
  for name, a, r in zip(("loss", "d_embeddings", "d_classifier", "d_bias", "d_weight"), ours, ref,
                        strict=True):
    np.testing.assert_allclose(a, r, equal_nan=True, err_msg=name, **TOL[h.dtype.type])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_torch_linear_then_cross_entropy(reduction):
  rng = np.random.default_rng(3)
  h, w_cls, b, y = _problem(rng, (6, 5), 8, 37, np.float64)
  weight = rng.uniform(0.5, 2.0, 37)
  opts = dict(ignore_index=-100, reduction=reduction, label_smoothing=0.2)

  ht, wt, bt = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (h, w_cls, b))
  ref = F.cross_entropy(F.linear(ht, wt, bt).reshape(-1, 37), torch.from_numpy(y.reshape(-1)),
                        weight=torch.from_numpy(weight), **opts)
  ref.sum().backward()

  def total(h_, w_, b_):
    return jnp.sum(jaxnll.linear_cross_entropy(h_, w_, y, bias=b_, weight=weight, block_size=8, **opts))

  value = jaxnll.linear_cross_entropy(h, w_cls, y, bias=b, weight=weight, block_size=8, **opts)
  grads = jax.grad(total, argnums=(0, 1, 2))(h, w_cls, b)
  np.testing.assert_allclose(np.asarray(value).reshape(-1), ref.detach().numpy().reshape(-1), rtol=1e-10)
  for g, t in zip(grads, (ht, wt, bt), strict=True):
    np.testing.assert_allclose(np.asarray(g), t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_bfloat16_inputs_accumulate_in_float32():
  rng = np.random.default_rng(0)
  h, w_cls, _, y = _problem(rng, (64,), 32, 300, np.float32, drop=0.0)
  hb, wb = jnp.asarray(h, jnp.bfloat16), jnp.asarray(w_cls, jnp.bfloat16)
  loss = jaxnll.linear_cross_entropy(hb, wb, y, block_size=128)
  assert loss.dtype == jnp.float32
  # The same bf16 values, computed in float32 throughout.
  ref = _materialized(hb.astype(jnp.float32), wb.astype(jnp.float32), y)
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  gh, gw = jax.jit(jax.grad(lambda a, c: jaxnll.linear_cross_entropy(a, c, y), argnums=(0, 1)))(hb, wb)
  assert gh.dtype == jnp.bfloat16 and gw.dtype == jnp.bfloat16
  rh, rw = jax.grad(lambda a, c: _materialized(a, c, y), argnums=(0, 1))(
      hb.astype(jnp.float32), wb.astype(jnp.float32))
  np.testing.assert_allclose(gh.astype(jnp.float32), rh, rtol=2e-2, atol=2e-4)
  np.testing.assert_allclose(gw.astype(jnp.float32), rw, rtol=2e-2, atol=2e-4)


def test_jit_vmap_and_unbatched():
  rng = np.random.default_rng(1)
  h, w_cls, b, y = _problem(rng, (4, 10), 6, 50, np.float64, drop=0.0)
  fn = lambda h_, y_: jaxnll.linear_cross_entropy(h_, w_cls, y_, bias=b, block_size=16)
  batched = jax.vmap(fn)(h, y)
  looped = np.stack([jax.jit(fn)(h[i], y[i]) for i in range(4)])
  np.testing.assert_allclose(batched, looped, rtol=1e-12)
  np.testing.assert_allclose(fn(h[0], y[0]), looped[0], rtol=1e-12)  # eager
  per_example = jax.jit(jax.vmap(jax.grad(fn)))(h, y)
  np.testing.assert_allclose(per_example[2], jax.jit(jax.grad(fn))(h[2], y[2]), rtol=1e-12)
  # One token: [D] embeddings with a scalar target.
  single = jaxnll.linear_cross_entropy(h[0, 0], w_cls, y[0, 0], bias=b)
  np.testing.assert_allclose(single, _materialized(h[0, 0], w_cls, y[0, 0], bias=b), rtol=1e-12)


def test_masked_vocabulary_entries_get_no_gradient():
  # A -inf bias removes classes from the softmax, as padding of a vocabulary does.
  rng = np.random.default_rng(2)
  h, w_cls, b, y = _problem(rng, (12,), 5, 40, np.float64, drop=0.0)
  b[30:] = -np.inf
  y = y % 30
  loss, (gw, gb) = jax.jit(jax.value_and_grad(
      lambda w_, b_: jaxnll.linear_cross_entropy(h, w_, y, bias=b_, block_size=16), argnums=(0, 1)))(
          w_cls, b)
  ref, (rw, rb) = jax.jit(jax.value_and_grad(
      lambda w_, b_: _materialized(h, w_, y, bias=b_), argnums=(0, 1)))(w_cls, b)
  assert np.isfinite(loss)
  np.testing.assert_allclose(loss, ref, rtol=1e-12)
  np.testing.assert_allclose(gw, rw, rtol=1e-10, atol=1e-14)
  np.testing.assert_allclose(gb, rb, rtol=1e-10, atol=1e-14)
  assert not np.any(gw[30:]) and not np.any(gb[30:])


def test_all_ignored_mean_is_nan_with_zero_gradient_and_safe_mean_is_zero():
  rng = np.random.default_rng(4)
  h, w_cls, _, _ = _problem(rng, (5,), 4, 9, np.float64)
  y = np.full(5, -100)
  loss, (gh, gw) = jax.value_and_grad(
      lambda a, c: jaxnll.linear_cross_entropy(a, c, y), argnums=(0, 1))(h, w_cls)
  assert np.isnan(loss) and not np.any(gh) and not np.any(gw)
  safe = jax.value_and_grad(lambda a: jaxnll.linear_cross_entropy(a, w_cls, y, reduction="safe_mean"))(h)
  assert safe[0] == 0 and not np.any(safe[1])


def test_out_of_range_targets():
  rng = np.random.default_rng(5)
  h, w_cls, _, _ = _problem(rng, (3,), 4, 9, np.float64)
  with pytest.raises(IndexError, match="Target 9 is out of bounds"):
    jaxnll.linear_cross_entropy(h, w_cls, np.array([0, 9, 1]))
  f = jax.jit(lambda y_: jaxnll.linear_cross_entropy(h, w_cls, y_, reduction="none"))
  out = np.asarray(f(jnp.array([0, 9, 1])))
  assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
  g = jax.jit(jax.grad(lambda a, y_: jnp.sum(jaxnll.linear_cross_entropy(a, w_cls, y_, reduction="none"))))
  gh = np.asarray(g(h, jnp.array([0, 9, 1])))
  assert np.all(np.isnan(gh[1])) and np.all(np.isfinite(gh[[0, 2]]))
  with pytest.raises(IndexError, match="Target 9"):
    jaxnll.checked(lambda y_: jaxnll.linear_cross_entropy(h, w_cls, y_))(jnp.array([0, 9, 1]))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(classifier=np.ones((9, 5))), ValueError, r"D=4 but `classifier` of shape \(9, 5\)"),
        (dict(classifier=np.ones((9, 4, 1))), ValueError, r"`classifier` must have shape \[V, D\]"),
        (dict(targets=np.zeros((4,), np.int32)), ValueError, r"`targets` of shape \(4,\) does not fit"),
        (dict(bias=np.ones(8)), ValueError, r"`bias` must have shape \(9,\)"),
        (dict(weight=np.ones(3)), ValueError, r"`weight` must have shape \(9,\)"),
        (dict(block_size=0), ValueError, r"`block_size` must be None or a positive int, got 0"),
        (dict(embeddings=np.ones((3, 4), np.int32)), TypeError, "`embeddings` must have a floating dtype"),
        (dict(targets=np.zeros(3)), TypeError, "`targets` must have an integer dtype"),
        (dict(reduction="avg"), ValueError, "`reduction` must be one of"),
        (dict(softcap=-1.0), ValueError, "`softcap` must be None or a finite float > 0"),
        (dict(where=np.ones((2,), bool)), ValueError, r"`where` of shape \(2,\) does not broadcast"),
    ],
)
def test_bad_input(kwargs, error, match):
  args = dict(embeddings=np.ones((3, 4)), classifier=np.ones((9, 4)), targets=np.zeros(3, np.int32))
  args.update(kwargs)
  with pytest.raises(error, match=match):
    jaxnll.linear_cross_entropy(args.pop("embeddings"), args.pop("classifier"), args.pop("targets"), **args)


def test_flax_dense_kernel_is_passed_transposed():
  rng = np.random.default_rng(6)
  h, w_cls, b, y = _problem(rng, (7,), 5, 11, np.float64, drop=0.0)
  kernel = w_cls.T  # nn.Dense(11) stores [D, V]
  np.testing.assert_allclose(
      jaxnll.linear_cross_entropy(h, kernel.T, y, bias=b), _materialized(h, w_cls, y, bias=b), rtol=1e-12)


def test_compiled_temporary_memory_stays_at_block_size():
  # Deterministic, from the compiled program: the fused path holds [N, block]
  # tiles, the materializing one several [N, V] arrays.
  n, d, v = 512, 64, 16384
  args = (jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((v, d), jnp.float32),
          jax.ShapeDtypeStruct((n,), jnp.int32))

  def temp(fn):
    compiled = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(*args).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  fused = temp(lambda h, w, y: jaxnll.linear_cross_entropy(h, w, y, block_size=256))
  materialized = temp(lambda h, w, y: jaxnll.cross_entropy(h @ w.T, y))
  logits_bytes = n * v * 4
  assert materialized >= logits_bytes
  assert fused <= 4 * n * 256 * 4 + 2 * n * d * 4, (fused, materialized)
