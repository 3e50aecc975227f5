"""jaxnll.losses vs optax.losses: same values and gradients (logits and soft labels)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxnll
from jaxnll import losses


@st.composite
def problems(draw):
  ndim = draw(st.integers(1, 3))
  shape = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
  rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
  x = rng.standard_normal(shape) * draw(st.sampled_from([0.5, 3.0]))
  axis = draw(st.one_of(
      st.integers(-ndim, ndim - 1),
      st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
  ))
  return x, axis, rng


def _close(a, b):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


@given(problems(), st.sampled_from([None, "class", "example"]))
def test_softmax_cross_entropy_matches_optax(problem, mask_kind):
  x, axis, rng = problem
  t = rng.uniform(size=x.shape)
  axes = (axis,) if isinstance(axis, int) else axis
  where = None
  if mask_kind == "class":
    where = rng.uniform(size=x.shape) < 0.7
  elif mask_kind == "example":
    where = rng.uniform(size=x.shape) < 0.7
    where = np.all(where, axis=axes) if len(axes) > 0 else where
  args = (jnp.asarray(x), jnp.asarray(t), axis, None if where is None else jnp.asarray(where))
  _close(losses.softmax_cross_entropy(*args), optax.losses.softmax_cross_entropy(*args))

  def both(fn):
    return jax.grad(lambda a, b: jnp.sum(fn(a, b, *args[2:]) ** 2), argnums=(0, 1))(*args[:2])

  for ours, ref in zip(both(losses.softmax_cross_entropy), both(optax.losses.softmax_cross_entropy), strict=True):
    # optax's gradient is NaN for a fully masked example (log of an empty sum);
    # jaxnll's is 0 there, and equal everywhere else.
    nan = np.isnan(np.asarray(ref))
    np.testing.assert_array_equal(np.asarray(ours)[nan], 0.0)
    _close(np.where(nan, 0.0, ours), np.where(nan, 0.0, ref))


@given(problems(), st.sampled_from([None, "example", "class"]))
def test_integer_labels_match_optax(problem, mask_kind):
  x, axis, rng = problem
  axes = (axis % x.ndim,) if isinstance(axis, int) else axis
  n_classes = int(np.prod([x.shape[a] for a in axes]))
  batch = tuple(s for i, s in enumerate(x.shape) if i not in axes)
  y = rng.integers(0, n_classes, size=batch)
  where = None
  if mask_kind == "example":
    where = rng.uniform(size=batch) < 0.6
  elif mask_kind == "class" and len(axes) == 1:
    # Keep each label's own class unmasked (see the README on masked label classes).
    where = rng.uniform(size=x.shape) < 0.7
    np.put_along_axis(where, np.expand_dims(y, axes[0]), True, axis=axes[0])
  args = (jnp.asarray(x), jnp.asarray(y), axis, None if where is None else jnp.asarray(where))
  ours = losses.softmax_cross_entropy_with_integer_labels(*args)
  _close(ours, optax.losses.softmax_cross_entropy_with_integer_labels(*args))
  g = lambda fn: jax.grad(lambda a: jnp.sum(fn(a, *args[1:]) ** 2))(args[0])
  _close(g(losses.softmax_cross_entropy_with_integer_labels),
         g(optax.losses.softmax_cross_entropy_with_integer_labels))


def test_soft_label_gradient_passes_check_grads():
  rng = np.random.default_rng(0)
  x, t = jnp.asarray(rng.standard_normal((3, 4))), jnp.asarray(rng.uniform(size=(3, 4)))
  check_grads(
      lambda a, b: losses.softmax_cross_entropy(a, b, label_smoothing=0.2), (x, t),
      order=2, modes=["rev"])


def test_smooth_labels_equals_label_smoothing():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((5, 6)))
  y = jnp.asarray(rng.integers(0, 6, 5))
  onehot = jax.nn.one_hot(y, 6, dtype=x.dtype)
  ref = optax.losses.softmax_cross_entropy(x, optax.smooth_labels(onehot, 0.3))
  _close(losses.softmax_cross_entropy_with_integer_labels(x, y, label_smoothing=0.3), ref)
  _close(losses.softmax_cross_entropy(x, onehot, label_smoothing=0.3), ref)


def test_extras_agree_with_cross_entropy():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((6, 4)))
  y = jnp.asarray(np.array([0, 1, 2, 3, 1, 0]))
  w = jnp.asarray(rng.uniform(0.5, 2, 4))
  per = losses.softmax_cross_entropy_with_integer_labels(
      x, y, weight=w, ignore_index=1, label_smoothing=0.2)
  ref = jaxnll.cross_entropy(x, y, weight=w, ignore_index=1, label_smoothing=0.2, reduction="none")
  _close(per, ref)


def test_integer_labels_reject_floats_like_optax():
  with pytest.raises(TypeError, match="labels"):
    losses.softmax_cross_entropy_with_integer_labels(jnp.zeros((2, 3)), jnp.zeros((2,)))
