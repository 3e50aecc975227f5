"""Losses on a 4 x 2 (data x model) mesh of CPU devices equal the one-device results."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxnll
from benchmarks._hlo import collectives

TOL = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def mesh():
  return jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))


def _put(mesh, x, *spec):
  return jax.device_put(jnp.asarray(x), NamedSharding(mesh, P(*spec)))


def _single(x):
  return jax.device_put(jnp.asarray(x), jax.devices()[0])


def _assert_tree_close(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **TOL)


def _classification_problem(seed=0, n=8, s=3, c=16):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, s, c)) * 3
  y = rng.integers(0, c, (n, s))
  y[rng.uniform(size=(n, s)) < 0.2] = 5  # ignore_index below is a valid class
  where = rng.uniform(size=(n, s)) < 0.8
  weight = rng.uniform(0.5, 2.0, c)
  return x, y, where, weight


OPTIONS = dict(ignore_index=5, label_smoothing=0.1, z_loss=1e-3)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_class_index_losses_sharded_over_batch_and_classes(mesh, fn, reduction):
  x, y, where, weight = _classification_problem()
  opts = dict(OPTIONS) if fn == "cross_entropy" else dict(ignore_index=5)
  loss_fn = getattr(jaxnll, fn)
  if fn == "nll_loss":
    x = np.asarray(jax.nn.log_softmax(x))

  def f(x_, w_):
    out = loss_fn(x_, y_, weight=w_, where=m_, reduction=reduction, **opts)
    return jnp.sum(out), out

  step = jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))
  y_, m_ = _put(mesh, y, "data", None), _put(mesh, where, "data", None)
  sharded = step(_put(mesh, x, "data", None, "model"), _put(mesh, weight, "model"))
  y_, m_ = _single(y), _single(where)
  single = step(_single(x), _single(weight))
  _assert_tree_close(sharded, single)
  assert len(sharded[1][0].sharding.device_set) == 8


def test_torch_layout_and_probability_targets_sharded(mesh):
  x, _, _, weight = _classification_problem(1)
  xt = np.moveaxis(x, -1, 1)  # [N, C, S], classes sharded on axis 1
  t = np.asarray(jax.nn.softmax(np.random.default_rng(2).standard_normal(xt.shape), axis=1))

  def f(x_, t_, w_):
    return jaxnll.cross_entropy(x_, t_, weight=w_, axis=1, label_smoothing=0.2, z_loss=1e-3)

  step = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))
  sharded = step(_put(mesh, xt, "data", "model", None), _put(mesh, t, "data", "model", None),
                 _put(mesh, weight, "model"))
  _assert_tree_close(sharded, step(_single(xt), _single(t), _single(weight)))


def _lm_problem(seed=3, n=16, d=8, v=64):
  rng = np.random.default_rng(seed)
  h = rng.standard_normal((n, d))
  w_cls = rng.standard_normal((v, d)) / np.sqrt(d) * 3
  b = rng.standard_normal(v)
  weight = rng.uniform(0.5, 2.0, v)
  y = rng.integers(0, v, n)
  y[::7] = -100
  where = rng.uniform(size=n) < 0.85
  return h, w_cls, b, weight, y, where


LM_OPTIONS = dict(label_smoothing=0.1, z_loss=1e-3, softcap=5.0)


def _lm_loss(h, w_cls, b, weight, y, where, *, reduction="mean", **kw):
  return jaxnll.linear_cross_entropy(h, w_cls, y, bias=b, weight=weight, where=where, reduction=reduction,
                                     block_size=8, **LM_OPTIONS, **kw)


def _lm_reference(reduction):
  h, w_cls, b, weight, y, where = _lm_problem()
  f = jax.jit(jax.value_and_grad(functools.partial(_lm_loss, reduction=reduction), argnums=(0, 1, 2, 3)))
  return f(*(_single(a) for a in (h, w_cls, b, weight, y, where)))


def test_linear_cross_entropy_under_jit_with_sharded_inputs(mesh):
  h, w_cls, b, weight, y, where = _lm_problem()
  f = jax.jit(jax.value_and_grad(_lm_loss, argnums=(0, 1, 2, 3)))
  sharded = f(_put(mesh, h, "data", None), _put(mesh, w_cls, "model", None), _put(mesh, b, "model"),
              _put(mesh, weight, "model"), _put(mesh, y, "data"), _put(mesh, where, "data"))
  _assert_tree_close(sharded, _lm_reference("mean"))


SPECS = (P("data", None), P("model", None), P("model"), P("model"), P("data"), P("data"))


def _vocab_parallel(mesh, reduction):
  out_spec = P("data") if reduction == "none" else P()
  loss = jax.shard_map(
      functools.partial(_lm_loss, reduction=reduction, vocab_axis="model", batch_axis="data"),
      mesh=mesh, in_specs=SPECS, out_specs=out_spec)
  if reduction == "none":
    return lambda *a: jnp.sum(loss(*a))
  return loss


@pytest.mark.parametrize("reduction", ["mean", "sum", "safe_mean", "none"])
def test_vocab_parallel_linear_cross_entropy_matches_one_device(mesh, reduction):
  h, w_cls, b, weight, y, where = _lm_problem()
  f = jax.jit(jax.value_and_grad(_vocab_parallel(mesh, reduction), argnums=(0, 1, 2, 3)))
  args = [_put(mesh, a, *spec) for a, spec in zip((h, w_cls, b, weight, y, where), SPECS, strict=True)]
  value, grads = f(*args)
  ref_reduction = "sum" if reduction == "none" else reduction
  _assert_tree_close((value, grads), _lm_reference(ref_reduction))
  assert grads[1].sharding.spec[0] == "model"  # the classifier's gradient stays split


def test_vocab_parallel_never_gathers_the_classifier_or_the_logits(mesh):
  n, d, v = 2048, 64, 8192  # per device: 512 tokens, 4096 classes
  args = (jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((v, d), jnp.float32),
          jax.ShapeDtypeStruct((v,), jnp.float32), jax.ShapeDtypeStruct((v,), jnp.float32),
          jax.ShapeDtypeStruct((n,), jnp.int32), jax.ShapeDtypeStruct((n,), jnp.bool_))
  shardings = [NamedSharding(mesh, s) for s in SPECS]

  def loss(h, w_cls, b, weight, y, where):
    return jaxnll.linear_cross_entropy(h, w_cls, y, bias=b, weight=weight, where=where, vocab_axis="model",
                                       batch_axis="data", block_size=512, **LM_OPTIONS)

  def materialized(h, w_cls, b, weight, y, where):
    logits = h @ w_cls.T + jnp.broadcast_to(b, (n, v))
    return jaxnll.cross_entropy(logits, y, weight=weight, where=where, **LM_OPTIONS)

  def compile_step(fn):
    step = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2, 3)), in_shardings=shardings)
    return step.lower(*args).compile()

  compiled = compile_step(jax.shard_map(loss, mesh=mesh, in_specs=SPECS, out_specs=P()))
  hlo = compiled.as_text()
  found = collectives(hlo)
  assert {k for k, _ in found} == {"all-reduce"}, found
  # Nothing of the global vocabulary's size exists on a device, so no [tokens, V] array either.
  assert not re.search(rf"\[[0-9,]*\b{v}\b[0-9,]*\]", hlo), "an array spanning the whole vocabulary"
  # Per device: far less than one [tokens, V / 2] logits shard, and than the
  # same shardings with the logits materialized.
  temp = compiled.memory_analysis().temp_size_in_bytes
  local_logits = (n // 4) * (v // 2) * 4
  reference = compile_step(materialized).memory_analysis().temp_size_in_bytes
  assert temp < local_logits / 2 and temp < reference / 8, (temp, local_logits, reference)


def test_vocab_parallel_without_optional_inputs(mesh):
  # No bias, class weights or mask: the ones the loss makes up are split like the classifier.
  h, w_cls, _, _, y, _ = _lm_problem(4)

  def loss(h_, w_, y_, **kw):
    return jaxnll.linear_cross_entropy(h_, w_, y_, block_size=8, label_smoothing=0.1, **kw)

  sharded = jax.shard_map(functools.partial(loss, vocab_axis="model", batch_axis="data"), mesh=mesh,
                          in_specs=(P("data", None), P("model", None), P("data")), out_specs=P())
  f = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1)))
  got = f(_put(mesh, h, "data", None), _put(mesh, w_cls, "model", None), _put(mesh, y, "data"))
  ref = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(_single(h), _single(w_cls), _single(y))
  _assert_tree_close(got, ref)


def test_vocab_axis_outside_shard_map_is_a_clear_error():
  with pytest.raises(ValueError, match=r"`vocab_axis`='model' is not a mesh axis bound here"):
    jaxnll.linear_cross_entropy(jnp.ones((2, 3)), jnp.ones((5, 3)), jnp.zeros(2, jnp.int32), vocab_axis="model")
