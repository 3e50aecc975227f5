"""linear_cross_entropy: equal to cross_entropy on the materialized logits (and to torch)."""

from __future__ import annotations

import contextlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxnll
from jaxnll import _linear_cross_entropy as lce
from jaxnll._linear_cross_entropy import LinearCrossEntropyLoss

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
  """Loss and gradients w.r.t. embeddings, classifier, bias and class weights (traced, not compiled)."""

  def total(h_, w_, b_, wt_):
    out = fn(h_, w_, y, bias=b_, weight=wt_, **opts)
    return jnp.sum(out), out

  (_, out), grads = jax.value_and_grad(total, argnums=(0, 1, 2, 3), has_aux=True)(h, w_cls, b, weight)
  return [out, *grads]


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
  if draw(st.booleans()):  # class probabilities (some exactly 0), which take no ignore_index
    t = rng.uniform(size=(*lead, v)) * (rng.uniform(size=(*lead, v)) < 0.8)
    y = (t / np.maximum(t.sum(-1, keepdims=True), 1e-9)).astype(dtype)
  elif draw(st.booleans()):
    opts["ignore_index"] = draw(st.sampled_from([0, v - 1]))
    y = np.where(y == -100, opts["ignore_index"], y)
  if draw(st.booleans()):
    opts["where"] = rng.uniform(size=lead) < 0.7
  weight = rng.uniform(0.2, 3.0, v).astype(dtype) if draw(st.booleans()) else np.ones(v, dtype)
  block = draw(st.sampled_from([None, 1, 7, 16, 1000]))
  chunk = draw(st.sampled_from([None, 3, 5]))  # tokens per tile (backward; eager gradients)
  return h, w_cls, b, weight, y, opts, block, chunk


@contextlib.contextmanager
def _token_tiles(tokens, dim=None, vocab=None):
  """Tiles of ``tokens`` tokens (``None``: the default budgets) inside the block, for
  the streaming backward (``[tokens, D]``) and the eager gradients (``[tokens, V]``; any
  vocabulary up to ``vocab``) alike. Read when tracing."""
  defaults = lce._CHUNK_ELEMENTS, lce._EAGER_ELEMENTS, lce._EAGER_ONE_ARRAY_ELEMENTS
  if tokens is not None:
    lce._CHUNK_ELEMENTS = tokens * (dim or 1)
    lce._EAGER_ELEMENTS = lce._EAGER_ONE_ARRAY_ELEMENTS = tokens * (vocab or 1)
  try:
    yield
  finally:
    lce._CHUNK_ELEMENTS, lce._EAGER_ELEMENTS, lce._EAGER_ONE_ARRAY_ELEMENTS = defaults


# Every example compiles a new program (its options are static): half the profile's
# count (30 by default); JAXNLL_HYPOTHESIS_EXAMPLES scales it up.
@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(configs())
def test_matches_cross_entropy_on_materialized_logits(cfg):
  h, w_cls, b, weight, y, opts, block, chunk = cfg

  # Both in one compiled program: one compilation per example, not two.
  @jax.jit
  def both(*arrays):
    return (_value_and_grads(lce.linear_cross_entropy, *arrays, y, block_size=block, **opts),
            _value_and_grads(_materialized, *arrays, y, **opts))

  with _token_tiles(chunk, *w_cls.shape[::-1]):
    ours, ref = both(*(jnp.asarray(a) for a in (h, w_cls, b, weight)))
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


@pytest.mark.parametrize("bias", [False, True])
def test_gradients_of_different_arguments_in_turn(bias):
  # Each differentiation computes only the gradients it is asked for; one taken under jax.checkpoint or jit,
  # then another with respect to a different argument, must not reuse the first one's choice (a classifier of
  # the embeddings' shape once got the classifier's gradient where the embeddings' was asked for).
  rng = np.random.default_rng(5)
  h, w_cls, b, y = _problem(rng, (8,), 4, 8, np.float32, drop=0.0)
  ht, wt, bt = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (h, w_cls, b))
  F.cross_entropy(F.linear(ht, wt, bt if bias else None), torch.from_numpy(y)).backward()
  refs = [t.grad for t in (ht, wt, bt)]

  def total(h_, w_, *b_):
    return jaxnll.linear_cross_entropy(h_, w_, y, bias=b_[0] if b_ else None)

  args = (h, w_cls, b) if bias else (h, w_cls)
  identity = lambda f: f
  for arg, wrap in [(0, jax.checkpoint), (1, identity), (0, identity), (1, jax.jit), (0, jax.jit), (-1, jax.checkpoint),
                    (0, identity)]:
    arg = arg % len(args)
    got = jax.grad(wrap(total), argnums=arg)(*args)
    np.testing.assert_allclose(got, refs[arg].numpy(), rtol=1e-5, atol=1e-6, err_msg=f"{wrap} argnums={arg}")


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
  batched = jax.jit(jax.vmap(fn))(h, y)
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
        (dict(targets=np.zeros(3, bool)), TypeError, "`targets` must have an integer dtype"),
        (dict(targets=np.zeros(3)), ValueError, r"float64 targets are class probabilities, expected shape \(3, 9\)"),
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


def test_eager_tiles_fit_their_budget_and_recompute_little():
  # Tokens per eager tile: within the tile's budget, as few tiles as it allows, and
  # balanced, so the last tile (which overlaps the one before) recomputes fewer
  # tokens than there are tiles.
  for n, v in [(4096, 50257), (2048, 32768), (100000, 128256), (12345, 1000), (7, 3), (3, 10**9)]:
    for arrays in (1, 2):
      t = lce.eager_chunk(n, v, arrays)
      fit = (lce._EAGER_ONE_ARRAY_ELEMENTS if arrays == 1 else lce._EAGER_ELEMENTS) // v
      tiles = -(-n // t)
      assert 1 <= t <= n and (t <= fit or t == 1), (n, v, arrays, t)
      assert tiles == max(1, -(-n // max(fit, 1))), (n, v, arrays, t)
      assert tiles * t - n < tiles, (n, v, arrays, t)


def test_eager_gradients_hold_one_logits_tile():
  # The default path ('mean') tiles the tokens with every class: with class indices
  # (weights, ignore_index and z_loss included) the exp is written over the tile,
  # so the program holds one [T, V] array; a bias, label smoothing or a softcap
  # keep the logits beside it (two). Deterministic, from the compiled program.
  n, d, v = 1024, 64, 16384
  tokens = lce.eager_chunk(n, v, lce.eager_arrays(False, 0.0, None, False))
  assert tokens == lce.eager_chunk(n, v, lce.eager_arrays(False, 0.1, None, False)) < n  # same tiles, several
  tile = tokens * v * 4
  args = (jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((v, d), jnp.float32),
          jax.ShapeDtypeStruct((n,), jnp.int32), jax.ShapeDtypeStruct((v,), jnp.float32))

  def temp(**opts):
    fn = lambda h, w, y, b: jaxnll.linear_cross_entropy(h, w, y, **opts)
    compiled = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(*args).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  # Besides the tiles: a block of the classifier's gradient (4 MiB) and [T, D] slices.
  extra = lce._DW_ELEMENTS * 4 + 4 * tokens * d * 4
  one = temp(weight=jnp.linspace(0.5, 2.0, v), ignore_index=3, z_loss=1e-4)
  assert tile <= one <= tile + extra, (one, tile)
  assert 2 * tile <= temp(label_smoothing=0.1) <= 2 * tile + extra


# --------------------------------------------------------------------------
# torch 2.13's F.linear_cross_entropy and nn.LinearCrossEntropyLoss, for real.

V_T, D_T = 11, 6


def _torch_case(rng, dtype, probs):
  h, w_cls, b, y = _problem(rng, (9,), D_T, V_T, dtype)
  weight = rng.uniform(0.5, 2.0, V_T).astype(dtype)
  if probs:
    t = rng.uniform(size=(9, V_T)).astype(dtype) * (rng.uniform(size=(9, V_T)) < 0.7)
    y = (t / np.maximum(t.sum(-1, keepdims=True), 1e-9)).astype(dtype)
  return h, w_cls, b, weight, y


def _torch_lce(h, w_cls, b, weight, y, options, **opts):
  """torch's value and gradients (embeddings, classifier, bias), with or without its chunked path."""
  ht, wt, bt = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (h, w_cls, b))
  with warnings.catch_warnings():
    # Outside its chunked path's support (smoothing, probabilities) torch warns and falls back.
    warnings.filterwarnings("ignore", message=".*options.*ignored")
    out = F.linear_cross_entropy(ht, wt, torch.from_numpy(y), linear_bias=bt, weight=torch.from_numpy(weight),
                                 options=options, **opts)
  out.sum().backward()
  return [out.detach().numpy(), ht.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()]


def _torch_blocks(dtype_name, eps):
  """Strategies checked against torch: eager gradients (None) and streaming blocks of 4 in
  float64 (both only with smoothing); one of them per smoothing in float32."""
  if dtype_name == "float64":
    return (None, 4) if eps > 0 else (None,)
  return ((None, 4)[eps > 0],)


@pytest.mark.parametrize("probs", [False, True], ids=["indices", "probabilities"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_torch_linear_cross_entropy(reduction, probs):
  rng = np.random.default_rng(20)
  cases = {dt: _torch_case(rng, dt, probs) for dt in (np.float64, np.float32)}
  smoothing = (0.0, 0.15)

  # Every dtype, smoothing and path (eager gradients, streaming blocks) in one compiled program.
  @jax.jit
  def ours(arrays):
    out = {}
    for dt, (h, w_cls, b, weight, y) in arrays.items():
      for eps in smoothing:
        for block in _torch_blocks(dt, eps):
          def total(h_, w_, b_, eps=eps, block=block, weight=weight, y=y):
            loss = jaxnll.linear_cross_entropy(h_, w_, y, linear_bias=b_, weight=weight, reduction=reduction,
                                               label_smoothing=eps, block_size=block)
            return jnp.sum(loss), loss
          (_, loss), grads = jax.value_and_grad(total, argnums=(0, 1, 2), has_aux=True)(h, w_cls, b)
          out[dt, eps, str(block)] = [loss, *grads]
    return out

  got = ours({dt.__name__: c for dt, c in cases.items()})
  for dt, case in cases.items():
    tol = dict(rtol=1e-10, atol=1e-12) if dt == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for eps in smoothing:
      for options in (None, torch.nn.LinearCrossEntropyOptions()):
        ref = _torch_lce(*case, options, reduction=reduction, label_smoothing=eps)
        for block in _torch_blocks(dt.__name__, eps):
          names = ("loss", "d_input", "d_linear_weight", "d_linear_bias")
          for name, a, r in zip(names, got[dt.__name__, eps, str(block)], ref, strict=True):
            np.testing.assert_allclose(a, r, err_msg=f"{name} {dt.__name__} eps={eps} block={block} {options}",
                                       **tol)


def test_torch_unbatched_ignore_index_and_bias_spelling():
  rng = np.random.default_rng(21)
  h, w_cls, b, weight, y = _torch_case(rng, np.float64, False)
  _, _, _, _, t = _torch_case(rng, np.float64, True)
  y = np.where(y == -100, 3, y)
  T = lambda a: torch.from_numpy(np.asarray(a).copy())
  # One token: input (D,) with a scalar class index, or (V,) probabilities.
  for target in (y[0], t[0]):
    ref = F.linear_cross_entropy(T(h[0]), T(w_cls), T(target), linear_bias=T(b), weight=T(weight))
    np.testing.assert_allclose(
        jaxnll.linear_cross_entropy(h[0], w_cls, target, linear_bias=b, weight=weight), ref.numpy(), rtol=1e-12)
  # ignore_index: None (torch's default) is -100 for class indices; a valid class drops out.
  for ii in (None, -100, 3):
    kw = {} if ii is None else dict(ignore_index=ii)
    ys = np.where(np.arange(9) % 3 == 0, -100 if ii is None else ii, y)
    ref = F.linear_cross_entropy(T(h), T(w_cls), T(ys), **kw).numpy()
    np.testing.assert_allclose(jaxnll.linear_cross_entropy(h, w_cls, ys, **kw), ref, rtol=1e-12)
  np.testing.assert_allclose(jaxnll.linear_cross_entropy(h, w_cls, y, bias=b),
                             jaxnll.linear_cross_entropy(h, w_cls, y, linear_bias=b), rtol=0)
  with pytest.raises(TypeError, match="both `bias` and `linear_bias`"):
    jaxnll.linear_cross_entropy(h, w_cls, y, bias=b, linear_bias=b)
  # Probabilities take no ignore_index at all, as in torch (which raises RuntimeError).
  for ii in (-100, 0):
    with pytest.raises(RuntimeError, match="ignore_index cannot be specified"):
      F.linear_cross_entropy(T(h), T(w_cls), T(t), ignore_index=ii)
    with pytest.raises(ValueError, match="`ignore_index` cannot be specified when `targets` holds class prob"):
      jaxnll.linear_cross_entropy(h, w_cls, t, ignore_index=ii)


# Every reduction, each with one strategy: eager gradients (None) or streaming blocks of 3 (a partial block).
STRATEGIES = [("mean", None), ("sum", 3), ("safe_mean", None), ("none", 3)]


def test_probability_targets_with_every_option_match_materialized_cross_entropy():
  rng = np.random.default_rng(22)
  h, w_cls, b, weight, t = _torch_case(rng, np.float64, True)
  b[-2:] = -np.inf  # masked classes, with probability 0 there
  t[:, -2:] = 0.0
  where = rng.uniform(size=9) < 0.7
  h[~where] = 1e3  # masked tokens contribute nothing (NaN would, to the classifier's gradient: 0 * NaN)

  @jax.jit
  def both(h, w_cls, b, weight, t):
    out = {}
    for red, block in STRATEGIES:
      opts = dict(label_smoothing=0.1, z_loss=1e-3, softcap=5.0, where=where, reduction=red)
      f = lambda h_, w_, b_, wt_, t_, block=block, opts=opts: jnp.sum(jaxnll.linear_cross_entropy(
          h_, w_, t_, bias=b_, weight=wt_, block_size=block, **opts))
      g = lambda h_, w_, b_, wt_, t_, opts=opts: jnp.sum(jaxnll.cross_entropy(
          jnp.where(where[:, None], h_, 0.0) @ w_.T + b_[None, :], t_, weight=wt_, **opts))
      for name, fn in (("fused", f), ("ref", g)):
        out[red, name] = jax.value_and_grad(fn, argnums=(0, 1, 2, 3, 4))(h, w_cls, b, weight, t)
    return out

  out = both(h, w_cls, b, weight, t)
  for red, block in STRATEGIES:
    (val, grads), (ref_v, ref_g) = out[red, "fused"], out[red, "ref"]
    np.testing.assert_allclose(val, ref_v, rtol=1e-10, err_msg=f"{red} {block}")
    for i, (a, r) in enumerate(zip(grads, ref_g, strict=True)):
      r = np.where(where[:, None], r, 0.0) if i == 0 else r  # the reference's mask is outside the matmul
      np.testing.assert_allclose(a, r, rtol=1e-9, atol=1e-12, err_msg=f"{red} {block} arg {i}")
    assert np.all(np.asarray(grads[0])[~where] == 0) and np.all(np.asarray(grads[4])[~where] == 0)


def test_eager_gradients_keep_nan_rules_zero_rows_and_forward_over_reverse():
  # 'mean' with the default block: gradients formed in the forward pass, in tiles of 4 tokens.
  rng = np.random.default_rng(23)
  h, w_cls, b, y = _problem(rng, (10,), 5, 13, np.float64, drop=0.0)
  y[[1, 6]] = -100
  h[1] = 1e3  # an ignored token's embeddings reach nothing
  h_clean = h.copy()
  h_clean[1] = 0.0

  def fused(h_, w_, b_, y_):
    return jaxnll.linear_cross_entropy(h_, w_, y_, bias=b_, label_smoothing=0.1, z_loss=1e-3)

  def ref(h_, w_, b_, y_):
    return _materialized(h_, w_, y_, bias=b_, label_smoothing=0.1, z_loss=1e-3)

  @jax.jit
  def run(h, h_clean, w_cls, b, y, y_bad):
    grads = lambda f, h_, y_: jax.value_and_grad(f, argnums=(0, 1, 2))(h_, w_cls, b, y_)
    hess = lambda f: jax.hessian(lambda a: f(a, w_cls, b, y))(h_clean)
    return dict(ours=grads(fused, h, y), ref=grads(ref, h_clean, y), bad=grads(fused, h_clean, y_bad),
                hess=hess(fused), ref_hess=hess(ref))

  y_bad = y.copy()
  y_bad[3] = 13  # out of range under jit: NaN loss and a NaN gradient row
  with _token_tiles(4, 5, 13):
    r = run(*(jnp.asarray(a) for a in (h, h_clean, w_cls, b, y, y_bad)))
  (loss, grads), (ref_loss, ref_grads) = r["ours"], r["ref"]
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
  for g, rg in zip(grads, ref_grads, strict=True):
    np.testing.assert_allclose(g, rg, rtol=1e-10, atol=1e-13)
  assert np.all(np.asarray(grads[0])[[1, 6]] == 0)
  np.testing.assert_allclose(r["hess"], r["ref_hess"], rtol=1e-9, atol=1e-12)
  bad_loss, (gh, *_) = r["bad"]
  assert np.isnan(bad_loss) and np.all(np.isnan(np.asarray(gh)[3]))
  assert np.all(np.isfinite(np.delete(np.asarray(gh), 3, axis=0)))


def test_non_finite_rules_on_both_strategies():
  # A counted token whose logits are all -inf has a NaN loss and a NaN gradient row (as torch and the
  # materialized cross_entropy); an ignored token's embedding gradient is exactly 0 even where the classifier
  # holds inf (0 * inf would be NaN). Both the eager gradients (default) and the streaming path (block_size).
  h = jnp.array([[jnp.inf, 0.0], [0.3, 0.2], [1.0, 2.0]])
  w_cls = jnp.array([[-1.0, 0.5], [-2.0, 1.0], [-0.5, -1.0]])  # token 0's logits: all -inf
  y = jnp.array([1, 2, -100])
  h_ok = h.at[0].set(0.5)
  w_inf = w_cls.at[0, 1].set(jnp.inf)

  @jax.jit
  def run(h, h_ok, w_cls, w_inf, y):
    out = {}
    for name, opts in (("eager", {}), ("streaming", dict(block_size=2)), ("none", dict(reduction="none"))):
      f = lambda a, b, o=opts: jnp.sum(jaxnll.linear_cross_entropy(a, b, y, **o))
      out[name] = jax.value_and_grad(f, argnums=(0, 1))(h, w_cls), jax.grad(f)(h_ok, w_inf)
    return out

  for name, ((loss, (dh, dw)), dh_inf) in run(h, h_ok, w_cls, w_inf, y).items():
    assert np.isnan(loss) and np.all(np.isnan(np.asarray(dh)[0])), name
    assert np.all(np.isnan(np.asarray(dw))), name  # token 0's NaN row reaches every class
    assert np.all(np.asarray(dh)[2] == 0) and np.all(np.asarray(dh_inf)[2] == 0), name


def test_shape_polymorphic_export_with_every_option():
  (n,) = jax.export.symbolic_shape("b")
  rng = np.random.default_rng(24)
  v, d = 40, 6
  w_cls, b, wt = (jnp.asarray(a) for a in (rng.standard_normal((v, d)), rng.standard_normal(v), rng.uniform(0.5, 2, v)))

  # Every reduction and both strategies (a symbolic token count streams; block 16 has a partial block).
  variants = [("mean", None), ("sum", 16), ("safe_mean", None), ("none", 16)]

  def losses(h, y, t, mask):
    out = []
    for i, (red, block) in enumerate(variants):
      kw = dict(bias=b, weight=wt, reduction=red, label_smoothing=0.1, z_loss=1e-3, softcap=20.0,
                block_size=block, where=mask)
      targets = dict(targets=t) if i % 2 else dict(targets=y, ignore_index=3)
      out.append(jnp.sum(jaxnll.linear_cross_entropy(h, w_cls, **targets, **kw)))
    return jnp.stack(out)

  specs = (jax.ShapeDtypeStruct((n, d), jnp.float64), jax.ShapeDtypeStruct((n,), jnp.int32),
           jax.ShapeDtypeStruct((n, v), jnp.float64), jax.ShapeDtypeStruct((n,), jnp.bool_))
  args = (jnp.asarray(rng.standard_normal((7, d))), jnp.array([0, 39, 3, 4, 3, 17, 8], jnp.int32),
          jax.nn.softmax(jnp.asarray(rng.standard_normal((7, v)))), jnp.array([1, 1, 1, 0, 1, 1, 0], bool))
  for f in (losses, jax.grad(lambda *a: jnp.sum(losses(*a)), argnums=(0, 2))):
    exported = jax.export.export(jax.jit(f))(*specs)
    jax.tree.map(lambda a, r: np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12),
                 exported.call(*args), jax.jit(f)(*args))


# --------------------------------------------------------------------------
# LinearCrossEntropyLoss.


def test_loss_object_matches_torch_module_and_accumulates_exactly():
  rng = np.random.default_rng(25)
  h, _, _, weight, y = _torch_case(rng, np.float64, False)
  torch.manual_seed(0)
  module = torch.nn.LinearCrossEntropyLoss(D_T, V_T, bias=True, dtype=torch.float64, weight=torch.from_numpy(weight),
                                           label_smoothing=0.1)
  W, B = (p.detach().numpy() for p in (module.linear.weight, module.linear.bias))
  ref = module(torch.from_numpy(h), torch.from_numpy(y)).detach().numpy()
  loss = LinearCrossEntropyLoss(D_T, V_T, bias=True, weight=weight, label_smoothing=0.1)

  @jax.jit
  def run(loss, h, W, B):
    halves = [loss.sum_and_normalizer(h[s], W, y[s], linear_bias=B) for s in (slice(0, 4), slice(4, None))]
    terms = loss.terms(h, W, y, linear_bias=B)
    batch = loss.batch_terms((h, W, B), {"targets": y})
    return dict(value=loss(h, W, y, linear_bias=B), halves=halves, terms=terms, batch=batch,
                grad=jax.grad(lambda W_: loss(h, W_, y, linear_bias=B))(W))

  r = run(loss, h, W, B)
  np.testing.assert_allclose(r["value"], ref, rtol=1e-12)
  (s1, n1), (s2, n2) = r["halves"]
  np.testing.assert_allclose((s1 + s2) / (n1 + n2), ref, rtol=1e-12)
  terms, batch = r["terms"], r["batch"]
  assert terms.per_element.shape == (9,) and batch.per_element.shape == (1,)
  np.testing.assert_allclose(jnp.sum(terms.per_element) / jnp.sum(terms.normalizer), ref, rtol=1e-12)
  np.testing.assert_allclose(batch.per_element[0] / batch.normalizer[0], ref, rtol=1e-12)
  np.testing.assert_array_equal(batch.counted, y != -100)
  module(torch.from_numpy(h), torch.from_numpy(y)).backward()
  np.testing.assert_allclose(r["grad"], module.linear.weight.grad.numpy(), rtol=1e-10, atol=1e-13)
  # A new object with the same static options is the same pytree structure: no retrace.
  same = LinearCrossEntropyLoss(D_T, V_T, bias=True, weight=2 * weight, label_smoothing=0.1)
  assert jax.tree.structure(same) == jax.tree.structure(loss)
  assert run._cache_size() == 1 and (run(same, h, W, B), run._cache_size())[1] == 1


def test_loss_object_constructor_init_and_errors():
  loss = LinearCrossEntropyLoss(6, 11, bias=True, reduction="sum", z_loss=1e-4, block_size=64)
  params = loss.init(jax.random.key(0))
  assert params["weight"].shape == (11, 6) and params["bias"].shape == (11,)
  assert float(jnp.max(jnp.abs(params["weight"]))) <= 1 / np.sqrt(6)
  assert set(LinearCrossEntropyLoss(6, 11).init(jax.random.key(1))) == {"weight"}
  h, y = jnp.ones((3, 6)), jnp.array([0, 1, 2])
  with pytest.raises(ValueError, match=r"`linear_weight` must have shape \(num_classes, in_features\) = \(11, 6\)"):
    loss(h, jnp.ones((10, 6)), y)
  with pytest.raises(TypeError, match=r"`apply_fn` must return \(hidden, classifier\)"):
    loss.batch_terms(h, {"targets": y})
  for kwargs, error, match in [
      (dict(in_features=0), TypeError, "`in_features` must be None or a positive int"),
      (dict(reduction="avg"), ValueError, "`reduction` must be one of"),
      (dict(label_smoothing=2.0), ValueError, r"`label_smoothing` must be in \[0, 1\]"),
      (dict(weight=np.ones(3), num_classes=4), ValueError, r"`weight` must have shape \(4,\)"),
      (dict(block_size=0), ValueError, "`block_size` must be None or a positive int"),
      (dict(bias="yes"), TypeError, "`bias` must be a bool"),
      (dict(batch_axis=0), TypeError, "`batch_axis` must be None, a mesh axis name"),
  ]:
    with pytest.raises(error, match=match):
      LinearCrossEntropyLoss(**kwargs)
  with pytest.raises(ValueError, match="`init` needs `in_features` and `num_classes`"):
    LinearCrossEntropyLoss().init(jax.random.key(0))
