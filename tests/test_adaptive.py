"""AdaptiveLogSoftmaxWithLoss against torch.nn.AdaptiveLogSoftmaxWithLoss: values, gradients, errors, transforms."""

from __future__ import annotations

import functools
import itertools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from jaxnll import _adaptive as asm
from jaxnll import training
from jaxnll._targets import checked

torch.use_deterministic_algorithms(True)
# torch's nn.Linear warns when it initializes a zero-size tail weight (CONFIGS[2]).
pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")

# (in_features, n_classes, cutoffs, div_value, head_bias): three clusters; one
# cluster; a tail whose hidden size is 0 (8 // 4**2), with a head bias.
CONFIGS = [
    (16, 20, (5, 9, 15), 2.0, False),
    (12, 30, (10,), 1.5, True),
    (8, 10, (4, 8), 4.0, True),
]
N = 12


def _module(cfg, dtype, seed=0):
  d, c, cutoffs, div, bias = cfg
  torch.manual_seed(seed)
  module = torch.nn.AdaptiveLogSoftmaxWithLoss(d, c, cutoffs, div_value=div, head_bias=bias).to(dtype)
  with torch.no_grad():  # larger cluster logits, so that some rows predict a tail class
    module.head.weight[cutoffs[0]:] *= 4
  return module


def _params(module):
  return {k: jnp.asarray(t.detach().numpy()) for k, t in module.state_dict().items()}


def _problem(cfg, dtype, seed=0):
  """Inputs scaled so that predictions land in the shortlist and in the tails, and
  targets covering every cluster's first and last class."""
  d, c, cutoffs, _, _ = cfg
  rng = np.random.default_rng(seed)
  x = (3.0 * rng.standard_normal((N, d))).astype(dtype)
  bounds = [0, *cutoffs, c]
  edges = [b for lo, hi in itertools.pairwise(bounds) for b in (lo, hi - 1)]
  y = np.asarray((edges + list(rng.integers(0, c, N)))[:N], np.int64)
  return x, y


def _torch_reference(module, x, y):
  xt = torch.from_numpy(np.array(x)).requires_grad_(True)
  out, loss = module(xt, torch.from_numpy(np.array(y)))
  loss.backward()
  grads = {k: np.zeros(tuple(t.shape)) if t.grad is None else t.grad.numpy() for k, t in module.named_parameters()}
  if xt.ndim == 1:  # torch's log_prob and predict refuse 1-D input
    return out.detach().numpy(), loss.item(), xt.grad.numpy(), grads
  with torch.no_grad():
    log_prob, pred = module.log_prob(xt).numpy(), module.predict(xt).numpy()
  return out.detach().numpy(), loss.item(), xt.grad.numpy(), grads, log_prob, pred


@functools.cache
def _everything(cfg):
  """One jitted function giving output, loss, the loss's gradients (input, params), log_prob and predict."""
  _, _, cutoffs, div, _ = cfg
  opts = dict(cutoffs=cutoffs, div_value=div)

  def loss(params, x, y):
    out = asm.adaptive_log_softmax_with_loss(params, x, y, **opts)
    return out.loss, out.output

  def run(params, x, y):
    (value, output), (gp, gx) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x, y)
    return output, value, gx, gp, asm.adaptive_log_prob(params, x, **opts), asm.adaptive_predict(params, x, **opts)

  return jax.jit(run)


@functools.cache
def _reference_run(cfg, dtype):
  """torch's results and jaxnll's (cached: several tests build on them)."""
  module = _module(cfg, torch.float32 if dtype == np.float32 else torch.float64)
  x, y = _problem(cfg, dtype)
  return _params(module), x, y, _torch_reference(module, x, y), _everything(cfg)(_params(module), x, y)


@pytest.mark.parametrize("cfg, dtype", [
    (CONFIGS[0], np.float64), (CONFIGS[0], np.float32), (CONFIGS[1], np.float64), (CONFIGS[2], np.float32),
])
def test_matches_torch(cfg, dtype):
  _, _, y, (t_out, t_loss, t_gx, t_grads, t_lp, t_pred), (out, loss, gx, gp, lp, pred) = _reference_run(cfg, dtype)
  tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
  assert out.dtype == loss.dtype == lp.dtype == dtype
  np.testing.assert_allclose(out, t_out, **tol)
  np.testing.assert_allclose(loss, t_loss, **tol)
  np.testing.assert_allclose(gx, t_gx, **tol)
  assert sorted(gp) == sorted(t_grads)
  for k, g in t_grads.items():
    np.testing.assert_allclose(gp[k], g, **tol, err_msg=k)
  np.testing.assert_allclose(lp, t_lp, **tol)
  np.testing.assert_array_equal(pred, t_pred)
  # A distribution over the classes, whose entries at the targets are the outputs.
  np.testing.assert_allclose(np.log(np.exp(np.asarray(lp, np.float64)).sum(1)), 0.0, atol=10 * tol["atol"])
  np.testing.assert_allclose(out, np.asarray(lp)[np.arange(N), y], **tol)
  assert (t_pred < cfg[2][0]).any() and (t_pred >= cfg[2][0]).any()  # both of torch's predict branches


def test_unbatched_matches_torch():
  cfg = CONFIGS[0]
  module = _module(cfg, torch.float64)
  x, y = _problem(cfg, np.float64)
  t_out, t_loss, t_gx, t_grads = _torch_reference(module, x[5], y[5])[:4]
  with pytest.raises(IndexError):  # torch's log_prob refuses 1-D input; here it is one row
    module.log_prob(torch.from_numpy(x[5]))
  obj = asm.AdaptiveLogSoftmaxWithLoss(*cfg)

  @jax.jit
  def run(params, row, target):
    (loss, out), grads = jax.value_and_grad(lambda p, r: obj(p, r, target)[::-1], argnums=(0, 1), has_aux=True)(
        params, row)
    return loss, out, grads, obj.log_prob(params, row), obj.predict(params, row)

  params = _params(module)
  loss, out, (gp, gx), lp, pred = run(params, x[5], y[5])
  assert out.shape == loss.shape == pred.shape == () and lp.shape == (cfg[1],)
  np.testing.assert_allclose(out, t_out, rtol=1e-12)
  np.testing.assert_allclose(loss, t_loss, rtol=1e-12)
  np.testing.assert_allclose(gx, t_gx, rtol=1e-12, atol=1e-14)
  for k, g in t_grads.items():
    np.testing.assert_allclose(gp[k], g, rtol=1e-12, atol=1e-14, err_msg=k)
  _, _, _, (_, _, _, _, t_lp, t_pred), _ = _reference_run(cfg, np.float64)
  np.testing.assert_allclose(lp, t_lp[5], rtol=1e-12)
  assert int(pred) == t_pred[5]


def test_object_equals_functional_and_does_not_retrace():
  cfg = CONFIGS[0]
  params, x, y, _, (output, loss, *_) = _reference_run(cfg, np.float64)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(obj, params, x, y):
    return obj(params, x, y), obj.sum_and_normalizer(params, x, y)

  first = run(asm.AdaptiveLogSoftmaxWithLoss(*cfg), params, x, y)
  again = run(asm.AdaptiveLogSoftmaxWithLoss(16, 20, (5, 9, 15), 2.0), params, x, y)
  chex.assert_trees_all_close(first, again)
  (out, value), (total, normalizer) = first
  np.testing.assert_allclose(out, output, rtol=1e-12)
  np.testing.assert_allclose(value, loss, rtol=1e-12)
  np.testing.assert_allclose(total / normalizer, loss, rtol=1e-12)
  obj = asm.AdaptiveLogSoftmaxWithLoss(*cfg)
  assert (obj.cutoffs, obj.shortlist_size, obj.n_clusters, obj.head_size) == ((5, 9, 15), 5, 3, 8)
  assert jax.tree_util.tree_leaves(obj) == []


def test_reductions_and_where_mask():
  cfg = CONFIGS[0]
  params = _params(_module(cfg, torch.float64))
  x, y = _problem(cfg, np.float64)
  keep = np.arange(N) % 3 != 0
  x_bad = np.where(keep[:, None], x, np.nan)  # masked rows hold NaN and an out-of-range target
  y_bad = np.where(keep, y, 99)
  _, t_loss, t_gx, t_grads, _, _ = _torch_reference(_module(cfg, torch.float64), x[keep], y[keep])
  opts = dict(cutoffs=cfg[2], div_value=cfg[3])

  @jax.jit
  def run(p, x_, y_, where):
    def value(reduction):
      return lambda p_, x__: asm.adaptive_log_softmax_with_loss(p_, x__, y_, where=where, reduction=reduction,
                                                                **opts).loss
    none = asm.adaptive_log_softmax_with_loss(p, x_, y_, where=where, reduction="none", **opts)
    return ({r: jax.value_and_grad(value(r), argnums=(0, 1))(p, x_) for r in ("mean", "safe_mean")},
            value("sum")(p, x_), none)

  grads, total, none = run(params, x_bad, jnp.asarray(y_bad), jnp.asarray(keep))
  loss, (gp, gx) = grads["mean"]
  np.testing.assert_allclose(loss, t_loss, rtol=1e-12)
  np.testing.assert_allclose(grads["safe_mean"][0], t_loss, rtol=1e-12)
  np.testing.assert_array_equal(none.output[~keep], 0.0)
  np.testing.assert_array_equal(none.loss, -none.output)
  np.testing.assert_array_equal(gx[~keep], 0.0)
  np.testing.assert_allclose(gx[keep], t_gx, rtol=1e-12, atol=1e-14)
  for k, g in t_grads.items():
    np.testing.assert_allclose(gp[k], g, rtol=1e-12, atol=1e-14, err_msg=k)
  np.testing.assert_allclose(total, t_loss * keep.sum(), rtol=1e-12)
  grads, total, none = run(params, x_bad, jnp.asarray(y_bad), jnp.zeros(N, bool))
  (mean, (gp, gx)), (safe, (gp_safe, gx_safe)) = grads["mean"], grads["safe_mean"]
  assert np.isnan(mean) and safe == 0 and total == 0 and not np.any(none.output)
  for g in (gx, gx_safe, *gp.values(), *gp_safe.values()):
    np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"])
def test_every_integer_target_dtype(dtype):
  cfg = CONFIGS[0]
  params, x, y, _, (expected, *_) = _reference_run(cfg, np.float64)
  for targets in (y.astype(dtype), jnp.asarray(y.astype(dtype))):  # host (classified by NumPy) and device
    out = asm.adaptive_log_softmax_with_loss(params, x, targets, cutoffs=cfg[2], div_value=cfg[3]).output
    np.testing.assert_allclose(out, expected, rtol=1e-12)
  for targets in (np.full(N, 20, dtype), jnp.full(N, 20, dtype)):
    with pytest.raises(IndexError, match="Target 20 is out of bounds"):
      asm.adaptive_log_softmax_with_loss(params, x, targets, cutoffs=cfg[2], div_value=cfg[3])


def test_host_int64_targets_without_x64():
  cfg = CONFIGS[0]
  _, x, y, (t_out, *_), _ = _reference_run(cfg, np.float32)
  module = _module(cfg, torch.float32)
  with jax.enable_x64(False):
    params = _params(module)
    out = jax.jit(lambda p, x_: asm.adaptive_log_softmax_with_loss(p, x_, y, cutoffs=cfg[2], div_value=cfg[3]))(
        params, x)
    np.testing.assert_allclose(out.output, t_out, rtol=2e-5, atol=2e-6)
    with pytest.raises(IndexError, match=f"Target {2**32} is out of bounds"):  # would wrap to 0 as int32
      asm.adaptive_log_softmax_with_loss(params, x, np.full(N, 2**32), cutoffs=cfg[2], div_value=cfg[3])


def test_out_of_range_targets_under_jit_give_nan_rows():
  cfg = CONFIGS[0]
  params, x, y, _, (expected, *_) = _reference_run(cfg, np.float64)
  opts = dict(cutoffs=cfg[2], div_value=cfg[3])

  def f(x_, y_):
    out = asm.adaptive_log_softmax_with_loss(params, x_, y_, **opts)
    return out.loss, out.output

  bad = np.array(y)
  bad[2], bad[5] = -1, 20
  good = np.ones(N, bool)
  good[[2, 5]] = False
  (loss, out), gx = jax.jit(jax.value_and_grad(f, has_aux=True))(x, jnp.asarray(bad))
  assert np.isnan(loss) and np.isnan(out[~good]).all() and np.isnan(gx[~good]).all()
  np.testing.assert_allclose(out[good], expected[good], rtol=1e-12)
  with pytest.raises(IndexError, match="Target -1 is out of bounds"):
    checked(f)(x, jnp.asarray(bad))


def test_vmap_jvp_and_jacfwd():
  cfg = CONFIGS[0]
  params, x, y, _, (output, _, gx, gp, *_) = _reference_run(cfg, np.float64)
  opts = dict(cutoffs=cfg[2], div_value=cfg[3])
  loss = lambda p, x_, y_: asm.adaptive_log_softmax_with_loss(p, x_, y_, **opts).loss
  per_row = jax.jit(jax.vmap(loss, in_axes=(None, 0, 0)))(params, x, y)  # vmapped unbatched calls == the batch
  np.testing.assert_allclose(per_row, -output, rtol=1e-12)
  rng = np.random.default_rng(1)
  tangents = jax.tree.map(lambda a: rng.standard_normal(a.shape), (params, x))

  @jax.jit
  def forward_mode(params, x, tangents):
    _, dot = jax.jvp(lambda p, x_: loss(p, x_, y), (params, x), tangents)
    return dot, jax.jacfwd(loss, argnums=1)(params, x, y)

  dot, jac = forward_mode(params, x, tangents)
  expected = sum(np.vdot(g, t) for g, t in zip(jax.tree.leaves((gp, gx)), jax.tree.leaves(tangents), strict=True))
  np.testing.assert_allclose(dot, expected, rtol=1e-10)
  np.testing.assert_allclose(jac, gx, rtol=1e-10, atol=1e-14)


def test_export_with_symbolic_batch():
  cfg = CONFIGS[0]
  params, x, y, _, (output, loss, _, _, lp, pred) = _reference_run(cfg, np.float32)
  obj = asm.AdaptiveLogSoftmaxWithLoss(*cfg)

  def f(p, x_, y_, where):
    out = obj(p, x_, y_, where=where)
    return out.output, out.loss, obj.log_prob(p, x_), obj.predict(p, x_)

  (b,) = jax.export.symbolic_shape("b")
  spec = jax.ShapeDtypeStruct
  exported = jax.export.export(jax.jit(f))(
      jax.tree.map(lambda a: spec(a.shape, a.dtype), params), spec((b, cfg[0]), jnp.float32), spec((b,), jnp.int64),
      spec((b,), jnp.bool_))
  got = exported.call(params, x, y, jnp.ones(N, bool))
  chex.assert_trees_all_close(got, (output, loss, lp, pred), rtol=1e-6)
  keep = np.array([True, False, True, True, False])
  got_out, got_loss, _, _ = exported.call(params, x[:5], y[:5], keep)
  np.testing.assert_allclose(got_out, np.where(keep, output[:5], 0.0), rtol=1e-6)
  np.testing.assert_allclose(got_loss, -np.mean(output[:5][keep]), rtol=1e-6)


def test_bfloat16_accumulates_in_float32():
  cfg = CONFIGS[0]
  module = _module(cfg, torch.float64)
  x, y = _problem(cfg, np.float64)
  low = {k: p.astype(jnp.bfloat16) for k, p in _params(module).items()}
  x_low = jnp.asarray(x, jnp.bfloat16)
  with torch.no_grad():  # the bf16-rounded values, computed in float64
    for k, t in module.state_dict().items():
      t.copy_(torch.from_numpy(np.array(low[k].astype(jnp.float64))))
  t_out, t_loss, t_gx, _, t_lp, _ = _torch_reference(module, np.array(x_low.astype(jnp.float64)), y)
  out, loss, gx, gp, lp, _ = _everything(cfg)(low, x_low, y)
  assert out.dtype == loss.dtype == lp.dtype == jnp.float32 and gx.dtype == gp["head.weight"].dtype == jnp.bfloat16
  np.testing.assert_allclose(out, t_out, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(loss, t_loss, rtol=1e-5)
  np.testing.assert_allclose(lp, t_lp, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gx.astype(jnp.float64), t_gx, rtol=1e-2, atol=1e-3)


def test_init_shapes_and_ranges():
  d, c, cutoffs, div = 64, 1000, [10, 100, 500], 4.0
  for head_bias in (False, True):
    torch_shapes = {k: tuple(t.shape) for k, t in torch.nn.AdaptiveLogSoftmaxWithLoss(
        d, c, cutoffs, div_value=div, head_bias=head_bias).state_dict().items()}
    shapes = asm._make_layout(d, c, tuple(cutoffs), div).shapes(head_bias)
    assert list(shapes.items()) == list(torch_shapes.items())  # torch's state_dict order
  obj = asm.AdaptiveLogSoftmaxWithLoss(d, c, cutoffs, div, head_bias=True)
  params = jax.device_get(obj.init(jax.random.key(0)))
  assert {k: p.shape for k, p in params.items()} == torch_shapes
  for k, p in params.items():
    bound = 1 / math.sqrt(d if k == "head.bias" else p.shape[1])
    assert p.dtype == np.float32
    assert np.max(np.abs(p)) <= bound * (1 + 1e-6)
    if p.size >= 100:  # uniform over the whole range
      assert np.max(p) > 0.9 * bound and np.min(p) < -0.9 * bound and abs(np.mean(p)) < 0.2 * bound
  again = asm.adaptive_log_softmax_init(jax.random.key(0), d, c, cutoffs, div_value=div, head_bias=True)
  chex.assert_trees_all_equal(params, jax.device_get(again))
  assert not np.array_equal(params["head.weight"], obj.init(jax.random.key(1))["head.weight"])
  small = asm.adaptive_log_softmax_init(jax.random.key(0), 8, 10, [4, 8], dtype=jnp.bfloat16)  # 8 // 4**2 == 0
  assert small["tail.1.0.weight"].shape == (0, 8) and small["tail.1.1.weight"].shape == (2, 0)
  assert all(p.dtype == jnp.bfloat16 for p in small.values())


@pytest.mark.parametrize("cutoffs, error, match", [
    ([], ValueError, "non-empty"),
    ([5, 3], ValueError, "sorted"),
    ([3, 3], ValueError, "unique"),
    ([0, 3], ValueError, "positive"),
    ([3, 20], ValueError, r"\[1, n_classes - 1\] = \[1, 19\]"),
    ([3, 4.5], TypeError, "must hold ints"),
    (5, TypeError, "sequence of ints"),
])
def test_bad_cutoffs_are_refused_as_in_torch(cutoffs, error, match):
  if isinstance(cutoffs, list) and all(float(c).is_integer() for c in cutoffs):
    with pytest.raises(ValueError):
      torch.nn.AdaptiveLogSoftmaxWithLoss(8, 20, cutoffs)
  with pytest.raises(error, match=match):
    asm.AdaptiveLogSoftmaxWithLoss(8, 20, cutoffs)
  with pytest.raises(error, match=match):
    asm.adaptive_log_softmax_init(jax.random.key(0), 8, 20, cutoffs)


_CFG = CONFIGS[0]
_X = np.zeros((4, 16))
_Y = np.array([0, 1, 2, 3])


def _params0(**changes):
  params = {k: np.zeros(s) for k, s in asm._make_layout(16, 20, (5, 9, 15), 2.0).shapes(False).items()}
  params.update(changes)
  return {k: p for k, p in params.items() if p is not None}


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(target=np.zeros((4, 1), int)), ValueError, "0-D or 1-D"),
    (dict(input=np.zeros(16)), ValueError, "1-D `target` needs a 2-D `input`"),
    (dict(target=np.array(1)), ValueError, "0-D `target` needs a 1-D `input`"),
    (dict(target=np.array([0, 1, 2])), ValueError, "same batch size"),
    (dict(input=np.zeros((4, 15))), ValueError, r"shape \(N, 16\)"),
    (dict(input=np.zeros((4, 16), int)), TypeError, "`input` must have a floating dtype"),
    (dict(target=np.zeros(4)), TypeError, "`target` must have an integer dtype"),
    (dict(target=np.array([0, 1, 2, 20])), IndexError, "Target 20 is out of bounds"),
    (dict(target=np.array([0, -3, 2, 1])), IndexError, "Target -3 is out of bounds"),
    (dict(where=np.ones(4)), TypeError, "`where` must be a boolean"),
    (dict(where=np.ones(3, bool)), ValueError, "does not broadcast"),
    (dict(reduction="batchmean"), ValueError, "`reduction`"),
    (dict(params=_params0(**{"tail.2.0.weight": None})), ValueError, r"missing \['tail.2.0.weight'\]"),
    (dict(params=_params0(extra=np.zeros(3))), ValueError, r"unexpected \['extra'\]"),
    (dict(params=_params0(**{"tail.0.0.weight": np.zeros((4, 16))})), ValueError, r"shape \(8, 16\)"),
    (dict(params=_params0(**{"tail.2.1.weight": np.zeros((0, 2))})), ValueError, "at least one row"),
    (dict(params=_params0(**{"head.weight": np.zeros((8, 16), int)})), TypeError, "floating dtype"),
    (dict(div_value=4.0), ValueError, r"tail.0.0.weight'\]` must have shape \(4, 16\)"),
    (dict(div_value=0.0), ValueError, "`div_value` must be finite and > 0"),
    (dict(cutoffs=[5, 9]), ValueError, r"unexpected \['tail.2.0.weight', 'tail.2.1.weight'\]"),
    (dict(params=[np.zeros(3)]), TypeError, "`params` must be a dict"),
])
def test_bad_input(kwargs, error, match):
  args = dict(params=_params0(), input=_X, target=_Y, cutoffs=_CFG[2], div_value=_CFG[3])
  args.update(kwargs)
  with pytest.raises(error, match=match):
    asm.adaptive_log_softmax_with_loss(args.pop("params"), args.pop("input"), args.pop("target"), **args)


def test_object_refuses_bad_options_and_params():
  with pytest.raises(TypeError, match="`in_features` must be an int"):
    asm.AdaptiveLogSoftmaxWithLoss(8.0, 20, [5])
  with pytest.raises(ValueError, match="`reduction`"):
    asm.AdaptiveLogSoftmaxWithLoss(8, 20, [5], reduction="avg")
  with pytest.raises(TypeError, match="`head_bias` must be a bool"):
    asm.AdaptiveLogSoftmaxWithLoss(8, 20, [5], head_bias=1)
  obj = asm.AdaptiveLogSoftmaxWithLoss(16, 20, [5, 9, 15], 2.0, head_bias=True)
  with pytest.raises(ValueError, match=r"missing \['head.bias'\]"):
    obj(_params0(), _X, _Y)
  with pytest.raises(TypeError, match=r"apply_fn` must return a pair \(hidden, adaptive_params\)"):
    obj.batch_terms(_X, {"targets": _Y})


def test_make_train_step():
  cfg = CONFIGS[0]
  params, x, y, (*_, t_pred), _ = _reference_run(cfg, np.float64)
  keep = np.arange(N) != 4
  _, t_loss, _, t_grads = _torch_reference(_module(cfg, torch.float64), x[keep], y[keep])[:4]
  obj = asm.AdaptiveLogSoftmaxWithLoss(*cfg)
  model = {"adaptive": params, "scale": jnp.ones((), jnp.float64)}
  apply_fn = lambda p, inputs: (inputs * p["scale"], p["adaptive"])  # (hidden, adaptive params)
  optimizer = optax.sgd(1.0)
  step = training.make_train_step(apply_fn, obj, optimizer, jit=False)

  @jax.jit
  def run(model, batch):
    new_model, _, metrics = step(model, optimizer.init(model), batch)
    return jax.tree.map(jnp.subtract, model, new_model), metrics  # the gradients (learning rate 1)

  grads, metrics = run(model, {"inputs": x, "targets": y, "where": keep})
  np.testing.assert_allclose(metrics["loss"], t_loss, rtol=1e-12)
  for k, g in t_grads.items():
    np.testing.assert_allclose(grads["adaptive"][k], g, rtol=1e-10, atol=1e-14, err_msg=k)
  assert float(metrics["count"]) == N - 1 and float(metrics["correct"]) == np.sum((t_pred == y)[keep])
