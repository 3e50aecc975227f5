"""jaxnll.losses vs optax.losses: same values and gradients (logits and soft labels)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxnll
from jaxnll import losses

# 1-D to 3-D, with single-class and single-example axes. A small fixed pool: each new
# (shape, axis, mask) structure compiles a program, new values do not.
SHAPES = [(1,), (5,), (3, 4), (4, 1), (1, 5), (2, 3, 4), (3, 1, 2)]
# Each example is a compilation: a third of the profile's count (20 by default);
# JAXNLL_HYPOTHESIS_EXAMPLES scales it up.
EXAMPLES = settings(max_examples=max(10, settings.default.max_examples // 3))


@st.composite
def problems(draw):
  shape = draw(st.sampled_from(SHAPES))
  ndim = len(shape)
  rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
  x = rng.standard_normal(shape) * draw(st.sampled_from([0.5, 3.0]))
  axis = draw(st.one_of(
      st.integers(-ndim, ndim - 1),
      st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
  ))
  return x, axis, rng


def _close(a, b):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def _values_and_grads(fn, args, argnums):
  """``fn(*args)`` and the gradient of ``sum(fn(*args) ** 2)`` in ``args[argnums]``."""
  grads = jax.grad(lambda *a: jnp.sum(fn(*a) ** 2), argnums=argnums)(*args)
  return fn(*args), grads


@functools.partial(jax.jit, static_argnames=("name", "axis", "argnums"))
def _both_jitted(x, labels, where, *, name, axis, argnums):
  """jaxnll's and optax's ``name``: values and gradients, traced (one compilation per structure)."""
  return tuple(_values_and_grads(lambda a, b, fn=fn: fn(a, b, axis, where), (x, labels), argnums)
               for fn in (getattr(losses, name), getattr(optax.losses, name)))


def _both(x, labels, axis, where, name, argnums, jit):
  args = (jnp.asarray(x), jnp.asarray(labels), None if where is None else jnp.asarray(where))
  jitted = _both_jitted(*args, name=name, axis=axis, argnums=argnums)
  if jit:
    return jitted
  # jaxnll eagerly (a concrete mask and labels), against optax's jitted reference.
  ours = _values_and_grads(lambda a, b: getattr(losses, name)(a, b, axis, args[2]), args[:2], argnums)
  return ours, jitted[1]


def _soft_problem(problem, mask_kind):
  x, axis, rng = problem
  t = rng.uniform(size=x.shape)
  axes = (axis,) if isinstance(axis, int) else axis
  where = None
  if mask_kind == "class":
    where = rng.uniform(size=x.shape) < 0.7
  elif mask_kind == "example":
    where = rng.uniform(size=x.shape) < 0.7
    where = np.all(where, axis=axes) if len(axes) > 0 else where
  return x, t, axis, where


def _check_soft(x, t, axis, where, jit):
  (ours, our_grads), (ref, ref_grads) = _both(x, t, axis, where, "softmax_cross_entropy", (0, 1), jit)
  _close(ours, ref)
  for g, r in zip(our_grads, ref_grads, strict=True):
    # optax's gradient is NaN for a fully masked example (log of an empty sum);
    # jaxnll's is 0 there, and equal everywhere else.
    nan = np.isnan(np.asarray(r))
    np.testing.assert_array_equal(np.asarray(g)[nan], 0.0)
    _close(np.where(nan, 0.0, g), np.where(nan, 0.0, r))


def _integer_problem(problem, mask_kind):
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
  return x, y, axis, where


def _check_integer(x, y, axis, where, jit):
  (ours, our_grad), (ref, ref_grad) = _both(x, y, axis, where, "softmax_cross_entropy_with_integer_labels", 0, jit)
  _close(ours, ref)
  _close(our_grad, ref_grad)


@EXAMPLES
@given(problems(), st.sampled_from([None, "class", "example"]))
def test_softmax_cross_entropy_matches_optax(problem, mask_kind):
  _check_soft(*_soft_problem(problem, mask_kind), jit=True)


@EXAMPLES
@given(problems(), st.sampled_from([None, "example", "class"]))
def test_integer_labels_match_optax(problem, mask_kind):
  _check_integer(*_integer_problem(problem, mask_kind), jit=True)


# Eagerly, with a concrete mask and labels (the library keeps a concrete mask concrete).
def test_eager_calls_with_class_masks_match_optax():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 3, 4))
  _check_soft(*_soft_problem((x, 1, rng), "class"), jit=False)
  _check_integer(*_integer_problem((x, 1, rng), "class"), jit=False)


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
