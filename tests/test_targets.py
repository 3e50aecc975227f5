"""Out-of-range class indices: IndexError when concrete, NaN under jit, raise in checked mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnll
from tests._torch_ref import torch_loss_and_grad

X = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3)))


@pytest.mark.parametrize("bad", [3, 5, -1, 100])
@pytest.mark.parametrize("fn", [jaxnll.cross_entropy, jaxnll.nll_loss])
def test_concrete_out_of_range_raises_like_torch(fn, bad):
  y = np.array([0, bad, 1, 2])
  with pytest.raises(IndexError, match=rf"Target {bad} is out of bounds\."):
    torch_loss_and_grad(fn.__name__, np.asarray(X), y)
  with pytest.raises(IndexError, match=rf"Target {bad} is out of bounds\."):
    fn(X, jnp.asarray(y))


def test_out_of_range_equal_to_ignore_index_is_skipped():
  y = jnp.array([0, 7, 1, 2])
  ref, _, _ = torch_loss_and_grad("cross_entropy", np.asarray(X), np.asarray(y), ignore_index=7)
  np.testing.assert_allclose(jaxnll.cross_entropy(X, y, ignore_index=7), ref)
  # ... and a masked one too.
  where = jnp.array([True, False, True, True])
  jaxnll.cross_entropy(X, y, where=where)


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_traced_out_of_range_gives_nan_loss_and_nan_gradient_row(fn, eps):
  kwargs = {"label_smoothing": eps} if fn == "cross_entropy" else {}
  loss_fn = getattr(jaxnll, fn)
  y = jnp.array([0, 5, 1, -1])
  per = jax.jit(lambda x, t: loss_fn(x, t, reduction="none", **kwargs))(X, y)
  assert np.isnan(per[1]) and np.isnan(per[3])
  good = loss_fn(X[::2], y[::2], reduction="none", **kwargs)
  np.testing.assert_allclose(per[::2], good)
  g = jax.jit(jax.grad(lambda x, t: loss_fn(x, t, reduction="sum", **kwargs)))(X, y)
  assert np.isnan(g[1]).all() and np.isnan(g[3]).all()
  np.testing.assert_allclose(g[::2], jax.grad(lambda x: loss_fn(x, y[::2], reduction="sum", **kwargs))(X[::2]))
  assert np.isnan(jax.jit(loss_fn)(X, y))


def test_checked_mode_raises_under_jit():
  checked = jaxnll.checked(lambda x, y: jaxnll.cross_entropy(x, y, label_smoothing=0.1))
  np.testing.assert_allclose(checked(X, jnp.array([0, 1, 2, 0])),
                             jaxnll.cross_entropy(X, jnp.array([0, 1, 2, 0]), label_smoothing=0.1))
  with pytest.raises(IndexError, match=r"Target 9 is out of bounds\."):
    checked(X, jnp.array([0, 9, 2, 0]))
  step = jaxnll.checked(jax.grad(lambda x, y: jaxnll.nll_loss(x, y, ignore_index=-1)))
  step(X, jnp.array([0, -1, 2, 0]))
  with pytest.raises(IndexError, match=r"Target -2 is out of bounds\."):
    step(X, jnp.array([0, -2, 2, 0]))


@pytest.mark.parametrize("mask", [None, np.array([True, False, True, True])])
@pytest.mark.parametrize("fn", [
    jaxnll.cross_entropy,
    jaxnll.nll_loss,
    lambda x, y, **kw: jaxnll.losses.softmax_cross_entropy_with_integer_labels(x, y, **kw),
])
def test_targets_closed_over_by_a_jitted_function_are_checked_at_trace_time(fn, mask):
  # Concrete targets (and mask) captured by a jitted function: the loss works,
  # and an out-of-range one still raises instead of tracing to NaN.
  y, y_bad = np.array([0, 1, 2, 0]), np.array([0, 1, 9, 0])
  kw = {} if mask is None else {"where": mask}
  out = jax.jit(lambda x: fn(x, y, **kw))(X)
  np.testing.assert_allclose(out, fn(X, jnp.asarray(y), **kw))
  np.testing.assert_allclose(jax.jit(lambda x: fn(x[0], y[0]))(X), fn(X[0], y[0]))  # 0-d targets
  with pytest.raises(IndexError, match=r"Target 9 is out of bounds\."):
    jax.jit(lambda x: fn(x, y_bad, **kw))(X)
