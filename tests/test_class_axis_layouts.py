"""The class axis in every layout the kernel treats differently, against torch.

The kernel reduces a class axis that is not the last, with fewer than four
rows leading it and at most 64 classes, as a tree over its slices
(``_xent_kernel.class_reduce``); other layouts take XLA's reduce, and short
last axes compare a class iota for their row masks. Each layout is checked
here against torch with non-finite logits in counted and ignored positions,
class weights and label smoothing, values and gradients, and in forward mode
against the same loss with the classes moved last.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxnll
from jaxnll import _xent_kernel

# (shape in torch's layout, whether the sliced reduction applies)
LAYOUTS = [
    ((1, 5, 6, 7), True),     # one image
    ((2, 3, 10), True),       # (N, C, L), two sequences
    ((3, 64, 9), True),       # the largest sliced class count
    ((1, 65, 4), False),      # one class too many: XLA's reduce
    ((4, 6, 5, 3), False),    # four leading rows: XLA's reduce
    ((2, 1, 8), True),        # a single class
]


def _problem(shape, seed):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(shape).astype(np.float32) * 3
  c = shape[1]
  tshape = shape[:1] + shape[2:]
  y = rng.integers(0, c, tshape)
  flat_y, flat_x = y.reshape(-1), np.moveaxis(x, 1, -1).reshape(-1, c)
  y_rows = np.arange(flat_y.size)
  flat_y[y_rows[::7]] = -100  # ignored
  # Non-finite logits: in ignored rows (must not leak), and -inf on a
  # non-target class of a counted row (a valid logit).
  ignored = y_rows[::7]
  flat_x[ignored[:1], :] = np.nan
  flat_x[ignored[1:2], :] = np.inf
  counted = [r for r in y_rows if flat_y[r] >= 0]
  if c > 1:
    r = counted[0]
    flat_x[r, (flat_y[r] + 1) % c] = -np.inf
  x = np.moveaxis(flat_x.reshape(shape[:1] + shape[2:] + (c,)), -1, 1).copy()
  y = flat_y.reshape(tshape)
  # torch's gradient of an ignored row holding NaN or inf is NaN (its
  # log_softmax backward multiplies them by 0); jaxnll's is exactly 0. torch
  # gets those rows zeroed, and jaxnll's gradient there is checked to be 0.
  x_torch = np.where(np.expand_dims(y, 1) == -100, np.float32(0), x)
  return x, x_torch, y, rng.uniform(0.5, 2.0, c).astype(np.float32)


def test_layouts_take_the_paths_they_are_listed_under():
  for shape, sliced in LAYOUTS:
    assert sliced == _xent_kernel._sliced(shape, 1)


@pytest.mark.parametrize("shape", [s for s, _ in LAYOUTS], ids=str)
def test_values_and_gradients_match_torch(shape):
  x, x_torch, y, w = _problem(shape, seed=sum(shape))
  ignored = np.broadcast_to(np.expand_dims(y, 1) == -100, x.shape)
  options = [dict(), dict(weight=w), dict(weight=w, label_smoothing=0.2), dict(reduction="sum")]
  xt = torch.from_numpy(x_torch).requires_grad_(True)
  for opts in options:
    def loss(a, b, weight=None, opts=opts):
      kw = {k: v for k, v in opts.items() if k != "weight"}
      return jaxnll.cross_entropy(a, b, weight=weight, axis=1, **kw)

    value, grad = jax.jit(jax.value_and_grad(loss))(x, y, opts.get("weight"))
    xt.grad = None
    topts = dict(opts)
    if "weight" in topts:
      topts["weight"] = torch.from_numpy(topts["weight"])
    ref = F.cross_entropy(xt, torch.from_numpy(y), **topts)
    ref.backward()
    np.testing.assert_allclose(value, ref.item(), rtol=2e-5, atol=1e-6, err_msg=str(opts))
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=2e-5, atol=1e-6, err_msg=str(opts))
    if "label_smoothing" not in opts:  # smoothing puts mass on the -inf logit: inf, as torch
      assert np.isfinite(value) and np.isfinite(grad).all()
    assert (np.asarray(grad)[ignored] == 0).all()


def test_forward_mode_equals_the_classes_moved_last():
  x, _, y, _ = _problem((2, 4, 3), seed=3)
  x = np.where(np.isfinite(x), x, 0.5).astype(np.float64)  # forward mode on finite logits
  with jax.enable_x64():
    moved = jnp.moveaxis(jnp.asarray(x), 1, -1)
    last = lambda m: jaxnll.cross_entropy(m, y, label_smoothing=0.1)
    # The same function of the moved logits, through the sliced layout ([2, 4, 3], classes on axis 1).
    along = lambda m: jaxnll.cross_entropy(jnp.moveaxis(m, -1, 1), y, axis=1, label_smoothing=0.1)
    v = jnp.asarray(np.random.default_rng(0).standard_normal(moved.shape))
    np.testing.assert_allclose(jax.jvp(along, (moved,), (v,))[1], jax.jvp(last, (moved,), (v,))[1], rtol=1e-12)
    np.testing.assert_allclose(jax.jit(jax.hessian(along))(moved), jax.jit(jax.hessian(last))(moved),
                               rtol=1e-10, atol=1e-14)
    # Per-example gradients trace the kernel on one example ([C, 3], axis 0: one leading row).
    per_example = jax.jit(jax.vmap(jax.grad(lambda a, b: jaxnll.cross_entropy(a, b, axis=0, reduction="sum"))))(
        x, jnp.asarray(y))
    whole = jax.grad(lambda a: jaxnll.cross_entropy(a, y, axis=1, reduction="sum"))(jnp.asarray(x))
    np.testing.assert_allclose(per_example, whole, rtol=1e-12, atol=1e-15)
