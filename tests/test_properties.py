"""Properties and transformations: invariances, masking, jit/vmap/grad, no retracing."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxnll

# [N, C] logits from a small fixed pool of shapes (one example or one class included).
# The properties below are checked through jitted functions (jit equals eager is
# tested on its own below): a program compiles once per shape, not once per example.
SHAPES = [(1, 1), (1, 8), (6, 1), (3, 5), (6, 8)]
arrays = st.builds(
    lambda seed, shape, scale: np.random.default_rng(seed).standard_normal(shape) * scale,
    st.integers(0, 2**31 - 1), st.sampled_from(SHAPES), st.sampled_from([0.1, 2.0, 50.0]),
)


@jax.jit
def _shifted_pair(x, y, shift):
  """Per-element losses of ``x`` and ``x + shift``, without and with label smoothing."""
  return [(jaxnll.cross_entropy(x, y, label_smoothing=eps, reduction="none"),
           jaxnll.cross_entropy(x + shift, y, label_smoothing=eps, reduction="none")) for eps in (0.0, 0.3)]


@given(arrays, st.floats(-100, 100))
def test_shift_invariance(x, shift):
  y = jnp.asarray(np.arange(x.shape[0]) % x.shape[1])
  for a, b in _shifted_pair(jnp.asarray(x), y, jnp.asarray(shift)):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@given(arrays)
def test_probabilities_sum_to_one(x):
  lp = jaxnll.log_softmax(jnp.asarray(x))
  np.testing.assert_allclose(jnp.exp(lp).sum(-1), 1.0, rtol=1e-12)


@jax.jit
def _smoothed_with_everything(x, y, weight, where):
  kw = dict(label_smoothing=0.2, z_loss=1e-3, weight=weight, where=where)
  per = jaxnll.cross_entropy(x, y, reduction="none", **kw)
  g = jax.grad(lambda a: jaxnll.cross_entropy(a, y, reduction="sum", **kw))(x)
  return per, g


@given(arrays, st.integers(0, 2**31 - 1))
def test_ignored_elements_have_zero_loss_and_gradient(x, seed):
  rng = np.random.default_rng(seed)
  n, c = x.shape
  y = rng.integers(0, c, n)
  ignored = rng.uniform(size=n) < 0.5
  y = jnp.asarray(np.where(ignored, -100, y))
  where = jnp.asarray(rng.uniform(size=n) < 0.7)
  per, g = _smoothed_with_everything(jnp.asarray(x), y, jnp.asarray(rng.uniform(0.1, 2, c)), where)
  off = np.asarray(ignored | ~np.asarray(where))
  np.testing.assert_array_equal(per[off], 0.0)
  np.testing.assert_array_equal(g[off], 0.0)


@jax.jit
def _plain_three_ways(x, y):
  """cross_entropy, with label_smoothing=0.0 given, and nll_loss of log_softmax; their gradients."""
  fns = (jaxnll.cross_entropy,
         lambda a, t: jaxnll.cross_entropy(a, t, label_smoothing=0.0),
         lambda a, t: jaxnll.nll_loss(jaxnll.log_softmax(a), t))
  return [jax.value_and_grad(fn)(x, y) for fn in fns]


@given(arrays)
def test_eps_zero_and_nll_of_log_softmax_equal_plain_cross_entropy(x):
  y = jnp.asarray(np.arange(x.shape[0]) % x.shape[1])
  (plain, g), (eps_zero, g_eps_zero), (pair, g_pair) = _plain_three_ways(jnp.asarray(x), y)
  np.testing.assert_allclose(eps_zero, plain)
  np.testing.assert_allclose(g_eps_zero, g, rtol=1e-12)
  np.testing.assert_allclose(pair, plain, rtol=1e-12)
  np.testing.assert_allclose(g_pair, g, rtol=1e-9, atol=1e-12)


def _plain_formula(x, y, w, eps, z):
  """Autodiff reference: the textbook formula through jax.nn.log_softmax."""
  lp = jax.nn.log_softmax(x)
  c = x.shape[-1]
  nll = -jnp.take_along_axis(lp, y[:, None], -1)[:, 0]
  per = (1 - eps) * w[y] * nll + eps / c * jnp.sum(-lp * w[None, :], -1)
  per = per + z * jax.nn.logsumexp(x, -1) ** 2
  return jnp.sum(per) / jnp.sum(w[y])


@pytest.mark.parametrize("eps", [0.0, 0.3])
@pytest.mark.parametrize("z", [0.0, 0.01])
def test_custom_vjp_matches_autodiff_of_plain_formula(eps, z):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((7, 5)) * 3)
  y = jnp.asarray(rng.integers(0, 5, 7))
  w = jnp.asarray(rng.uniform(0.2, 2, 5))
  ours = jax.grad(lambda a, b: jaxnll.cross_entropy(a, y, weight=b, label_smoothing=eps, z_loss=z),
                  argnums=(0, 1))(x, w)
  ref = jax.grad(lambda a, b: _plain_formula(a, y, b, eps, z), argnums=(0, 1))(x, w)
  for a, b in zip(ours, ref, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("soft", [False, True])
def test_check_grads(soft):
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((4, 3, 2)))
  w = jnp.asarray(rng.uniform(0.5, 2, 3))
  t = jnp.asarray(rng.uniform(size=(4, 3, 2))) if soft else jnp.asarray(rng.integers(0, 3, (4, 2)))
  f = lambda a, b: jaxnll.cross_entropy(a, t, weight=b, axis=1, label_smoothing=0.1, z_loss=0.01)
  # jit: check_grads evaluates each derivative many times; compile it once.
  check_grads(jax.jit(f), (x, w), order=2, modes=["rev"])
  check_grads(lambda a: jaxnll.nll_loss(a, jnp.array([0, 2, 1, 1]), weight=w),
                            (x[:, :, 0],), order=1, modes=["rev"])


def test_jit_equals_eager_and_vmap_equals_loop():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((3, 5, 4)))
  y = jnp.asarray(rng.integers(0, 4, (3, 5)))
  f = lambda a, b: jaxnll.cross_entropy(a, b, label_smoothing=0.1, ignore_index=2)
  jit_f, jit_grad = jax.jit(f), jax.jit(jax.grad(f))
  np.testing.assert_allclose(jit_f(x, y), f(x, y), rtol=1e-12)
  np.testing.assert_allclose(jit_grad(x, y), jax.grad(f)(x, y), rtol=1e-12)
  # vmap against a loop, compiled (eagerly, each batched operation would compile on its own).
  batched = jax.jit(jax.vmap(f))(x, y)
  np.testing.assert_allclose(batched, jnp.stack([jit_f(x[i], y[i]) for i in range(3)]), rtol=1e-12)
  per_example_grads = jax.jit(jax.vmap(jax.grad(f)))(x, y)
  loop = jnp.stack([jit_grad(x[i], y[i]) for i in range(3)])
  np.testing.assert_allclose(per_example_grads, loop, rtol=1e-12)


def test_no_retrace_across_calls():
  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(x, y, loss):
    return loss(x, y)

  rng = np.random.default_rng(3)
  for i in range(3):
    loss = jaxnll.CrossEntropyLoss(weight=jnp.asarray(rng.uniform(size=4)), label_smoothing=0.1)
    step(jnp.asarray(rng.standard_normal((5, 4))), jnp.asarray(rng.integers(0, 4, 5)), loss)
    assert i < 3


def test_log_softmax_masked_rows_and_minus_inf():
  x = jnp.array([[-jnp.inf, -jnp.inf], [1.0, 2.0]])
  out = jaxnll.log_softmax(x)
  assert np.isneginf(out[0]).all()
  g = jax.grad(lambda a: jnp.sum(jnp.where(jnp.isfinite(jaxnll.log_softmax(a)), jaxnll.log_softmax(a), 0.0)))(x)
  assert np.isfinite(g).all()
  where = jnp.array([[False, False], [True, False]])
  out = jaxnll.log_softmax(jnp.ones((2, 2)), where=where)
  assert np.isneginf(out[0]).all() and out[1, 0] == 0.0 and np.isneginf(out[1, 1])
  g = jax.grad(lambda a: jaxnll.log_softmax(a, where=where)[1, 0])(jnp.ones((2, 2)))
  np.testing.assert_array_equal(g, 0.0)
  ref = jax.nn.log_softmax(jnp.array([1.0, 2.0, 3.0], jnp.bfloat16))
  ours = jaxnll.log_softmax(jnp.array([1.0, 2.0, 3.0], jnp.bfloat16))
  assert ours.dtype == jnp.bfloat16
  np.testing.assert_allclose(ours.astype(float), ref.astype(float), atol=1e-2)


def test_safe_mean_gives_zero_for_all_ignored():
  x = jnp.ones((3, 4))
  y = jnp.full((3,), -100)
  assert np.isnan(jaxnll.cross_entropy(x, y))
  val, g = jax.value_and_grad(lambda a: jaxnll.cross_entropy(a, y, reduction="safe_mean"))(x)
  assert val == 0.0
  np.testing.assert_array_equal(g, 0.0)
  y2 = jnp.array([1, -100, 2])
  np.testing.assert_allclose(jaxnll.cross_entropy(x, y2, reduction="safe_mean"), jaxnll.cross_entropy(x, y2))


def test_loss_objects_match_functions_and_are_pytrees():
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.standard_normal((6, 5)))
  y = jnp.asarray(rng.integers(0, 5, 6))
  w = jnp.asarray(rng.uniform(size=5))
  loss = jaxnll.CrossEntropyLoss(weight=w, label_smoothing=0.2, ignore_index=3)
  np.testing.assert_allclose(loss(x, y), jaxnll.cross_entropy(x, y, weight=w, label_smoothing=0.2, ignore_index=3))
  leaves, treedef = jax.tree_util.tree_flatten(loss)
  assert len(leaves) == 1 and leaves[0] is w
  rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
  assert rebuilt.label_smoothing == 0.2 and rebuilt.ignore_index == 3
  nll = jaxnll.NLLLoss(weight=w, reduction="sum")
  lp = jaxnll.log_softmax(x)
  np.testing.assert_allclose(nll(lp, y), jaxnll.nll_loss(lp, y, weight=w, reduction="sum"))
  with pytest.raises(AttributeError):
    loss.reduction = "sum"  # type: ignore[misc]
  s, n = loss.sum_and_normalizer(x, y)
  np.testing.assert_allclose(s / n, loss(x, y))
