"""Shared helpers for the elementwise-loss tests: shapes, tolerances and torch references with masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch
from hypothesis import settings
from hypothesis import strategies as st
from jax.test_util import check_grads

torch.use_deterministic_algorithms(True)

# 0-D to 4-D, empty included.
SHAPES = [(), (1,), (5,), (0,), (2, 3), (0, 3), (3, 1, 2), (2, 1, 2, 3)]
REDUCTIONS = ["none", "mean", "sum", "safe_mean"]
# Each example compiles a new program: a sixth of the profile's count (10 by default) keeps these tests quick;
# JAXNLL_HYPOTHESIS_EXAMPLES scales them up.
EXAMPLES = settings(max_examples=max(5, settings.default.max_examples // 6))
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


@st.composite
def settings_for(draw, shapes=SHAPES, min_ndim=0):
  """dtype, shape, a seeded generator, a mask (None, elementwise or broadcast) and a reduction."""
  dtype = draw(st.sampled_from([np.float32, np.float64]))
  shape = draw(st.sampled_from([s for s in shapes if len(s) >= min_ndim]))
  rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
  mask_kind = draw(st.sampled_from([None, None, "elements", "broadcast", "none_counted"]))
  reduction = draw(st.sampled_from(REDUCTIONS))
  return dtype, shape, rng, mask_kind, reduction


def make_mask(kind, shape, rng):
  """A boolean mask for ``shape`` of the given kind, as (the mask passed to jaxnll, its broadcast form)."""
  if kind is None:
    return None, None
  if kind == "none_counted":
    return np.zeros(shape, bool), np.zeros(shape, bool)
  if kind == "broadcast" and len(shape) >= 1:
    mask = rng.uniform(size=shape[-1:]) < 0.6
    return mask, np.broadcast_to(mask, shape).copy()
  mask = rng.uniform(size=shape) < 0.6
  return mask, mask


def torch_reference(loss, arrays, grads_of, reduction, where=None):
  """torch's value and gradients of ``loss(*tensors, reduction=...)``, masked elements removed.

  ``arrays`` are NumPy arrays (or None) whose leading dimensions are the
  mask's; masked elements are dropped before calling torch, which is what
  "False elements leave the sum and the mean's denominator" means. For
  ``'safe_mean'`` the reference is torch's mean, or 0 (and zero gradients)
  when nothing is counted.
  """
  tensors = [None if a is None else torch.from_numpy(np.array(a, copy=True)) for a in arrays]
  for i in grads_of:
    tensors[i].requires_grad_(True)
  red = "mean" if reduction == "safe_mean" else reduction
  if where is None:
    args = tensors
  else:
    m = torch.from_numpy(np.asarray(where))
    args = [None if t is None else t[m] for t in tensors]
  if reduction == "safe_mean" and loss(*args, reduction="none").numel() == 0:
    return np.zeros((), arrays[0].dtype), [np.zeros(np.shape(arrays[i]), arrays[i].dtype) for i in grads_of]
  out = loss(*args, reduction=red)
  if where is not None and reduction == "none":
    full = torch.zeros(where.shape, dtype=out.dtype)
    full[torch.from_numpy(np.asarray(where))] = out
    out = full
  if any(t.requires_grad for t in args if t is not None) and out.numel():
    out.sum().backward()
  grads = [np.zeros(np.shape(arrays[i]), arrays[i].dtype) if tensors[i].grad is None else tensors[i].grad.numpy()
           for i in grads_of]
  return out.detach().numpy(), grads


def jax_value_and_grads(fn, arrays):
  """``fn(*arrays)`` and the gradients of its sum with respect to each of ``arrays``."""

  def total(*args):
    out = fn(*args)
    return jnp.sum(out), out

  (_, out), grads = jax.jit(jax.value_and_grad(total, argnums=tuple(range(len(arrays))), has_aux=True))(
      *[jnp.asarray(a) for a in arrays])
  return np.asarray(out), [np.asarray(g) for g in grads]


def assert_close(ours, ref, dtype, scale=1.0, **kw):
  tol = dict(TOL[dtype])
  tol["atol"] *= scale
  tol.update(kw)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), equal_nan=True, **tol)


def check_against_torch(jax_fn, torch_fn, arrays, grads_of, reduction, where, dtype, *, scale=1.0,
                        grad_tol=None):
  """``jax_fn`` of the differentiated arrays against ``torch_fn(*arrays)`` on the counted elements.

  Values and gradients with respect to ``arrays[i]`` for ``i`` in ``grads_of``;
  the other arrays (weights) are the torch side's only, jax_fn closes over its own.
  """
  ref, ref_grads = torch_reference(torch_fn, arrays, grads_of, reduction, where)
  out, grads = jax_value_and_grads(jax_fn, [arrays[i] for i in grads_of])
  assert out.dtype == dtype, (out.dtype, dtype)
  assert out.shape == np.shape(ref), (out.shape, np.shape(ref))
  assert_close(out, ref, dtype, scale)
  for g, rg in zip(grads, ref_grads, strict=True):
    assert g.shape == rg.shape
    assert_close(g, rg, dtype, scale, **(grad_tol or {}))
  return out, grads


def check_transformations(f, args):
  """vmap, per-example gradients, and first and second derivatives in forward and reverse mode.

  ``f(x, *rest)`` is a scalar loss of a ``[batch, ...]`` input. Everything is
  compiled: eager op-by-op dispatch of second derivatives is slow on CPU (eager
  calls are compared with torch by the corner-case tests, compiled ones by the
  parity tests).
  """
  x = args[0]
  jf = jax.jit(f)
  one = lambda i: [a[i:i + 1] if np.shape(a)[:1] == x.shape[:1] else a for a in args]
  batched = [a[:, None] if np.shape(a)[:1] == x.shape[:1] else None for a in args]
  axes = [None if b is None else 0 for b in batched]
  vargs = [b if b is not None else a for a, b in zip(args, batched, strict=True)]
  np.testing.assert_allclose(jax.jit(jax.vmap(f, in_axes=axes))(*vargs),
                             jnp.stack([jf(*one(i)) for i in range(x.shape[0])]), rtol=1e-12)
  grad = jax.jit(jax.grad(f))
  per_example = jax.jit(jax.vmap(jax.grad(f), in_axes=axes))(*vargs)
  np.testing.assert_allclose(per_example[:, 0], jnp.concatenate([grad(*one(i)) for i in range(x.shape[0])]),
                             rtol=1e-12)
  check_grads(jf, args, order=1, modes=("fwd", "rev"))
  check_grads(grad, args, order=1, modes=("fwd",))  # second derivatives, forward over reverse
  hess_rev = jax.jit(jax.hessian(f))(*args)
  hess_fwd = jax.jit(jax.jacfwd(jax.jacfwd(f)))(*args)
  np.testing.assert_allclose(hess_rev, hess_fwd, rtol=1e-9, atol=1e-12)
