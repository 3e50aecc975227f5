"""Every JAX transformation on every loss of the cross-entropy family, forward mode included.

Tangents are checked against finite differences and the reverse-mode Jacobian
in float64 (``check_grads(order=2, modes=("fwd", "rev"))``); ignored, masked
and out-of-range elements get exactly zero (or NaN, for their element only)
tangents; the reverse pass is still one pass over the logits; optax's own unit
tests for the two softmax cross-entropies pass with ``jaxnll.losses`` swapped in.
"""

from __future__ import annotations

import os
import re
import types
import unittest
import unittest.mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from optax.losses import _classification_test

import jaxnll
from jaxnll import losses

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.standard_normal((5, 4)))
X_KDIM = jnp.asarray(RNG.standard_normal((2, 4, 3, 2)))       # torch layout, classes on axis 1
Y = jnp.array([0, 3, -100, 2, 1])
Y_KDIM = jnp.asarray(np.array([[[0, 1], [3, -100], [2, 2]], [[1, 1], [0, 3], [-100, 2]]]))
W = jnp.asarray(RNG.uniform(0.5, 2.0, 4))
T = jax.nn.softmax(jnp.asarray(RNG.standard_normal((5, 4))))
WHERE = jnp.array([True, True, True, False, True])
CLASS_WHERE = jnp.asarray(RNG.uniform(size=(5, 4)) < 0.8).at[:, 0].set(True)

# name -> (function of the differentiated arguments, those arguments)
CASES = {
    "ce plain": (lambda x: jaxnll.cross_entropy(x, Y), (X,)),
    "ce all options": (lambda x, w: jaxnll.cross_entropy(
        x, Y, weight=w, label_smoothing=0.2, where=WHERE, z_loss=0.01, softcap=3.0), (X, W)),
    "ce sum": (lambda x: jaxnll.cross_entropy(x, Y, reduction="sum", label_smoothing=0.1), (X,)),
    "ce none": (lambda x: jaxnll.cross_entropy(x, Y, reduction="none", weight=W), (X,)),
    "ce safe_mean": (lambda x: jaxnll.cross_entropy(x, Y, reduction="safe_mean", where=WHERE), (X,)),
    "ce kdim axis=1": (lambda x, w: jaxnll.cross_entropy(x, Y_KDIM, axis=1, weight=w, label_smoothing=0.1),
                       (X_KDIM, W)),
    "ce probabilities": (lambda x, t, w: jaxnll.cross_entropy(x, t, weight=w, label_smoothing=0.1, z_loss=0.01),
                         (X, T, W)),
    "ce probabilities kdim": (lambda x: jaxnll.cross_entropy(x, jax.nn.softmax(x * 0.5, axis=1), axis=1),
                              (X_KDIM,)),
    "nll": (lambda x, w: jaxnll.nll_loss(x, Y, weight=w, where=WHERE), (X, W)),
    "nll of log_softmax": (lambda x: jaxnll.nll_loss(jaxnll.log_softmax(x), Y), (X,)),
    "nll kdim axis=1": (lambda x: jaxnll.nll_loss(jaxnll.log_softmax(x, axis=1), Y_KDIM, axis=1), (X_KDIM,)),
    "log_softmax": (lambda x: jaxnll.log_softmax(x, where=CLASS_WHERE), (X,)),
    "losses integer": (lambda x, w: losses.softmax_cross_entropy_with_integer_labels(
        x, Y, weight=w, ignore_index=-100, label_smoothing=0.1), (X, W)),
    "losses integer class where": (lambda x: losses.softmax_cross_entropy_with_integer_labels(
        x, jnp.array([0, 3, 0, 2, 1]), where=CLASS_WHERE.at[:, 1:].set(True), label_smoothing=0.1), (X,)),
    "losses integer tuple axis": (lambda x: losses.softmax_cross_entropy_with_integer_labels(
        x, jnp.array([[0, 5, 7], [3, 1, 2]]), axis=(1, 3)), (X_KDIM,)),
    "losses soft": (lambda x, t: losses.softmax_cross_entropy(x, t, where=CLASS_WHERE), (X, T)),
    "losses soft example where": (lambda x, t: losses.softmax_cross_entropy(x, t, where=WHERE, weight=W),
                                  (X, T)),
    "object ce": (lambda x: jaxnll.CrossEntropyLoss(weight=W, label_smoothing=0.1, z_loss=0.01)(x, Y), (X,)),
    "object nll": (lambda x: jaxnll.NLLLoss(weight=W, reduction="sum")(x, Y), (X,)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_check_grads_forward_and_reverse_to_second_order(name):
  fn, args = CASES[name]
  # jit: check_grads evaluates each derivative many times; compile it once.
  check_grads(jax.jit(fn), args, order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_forward_and_reverse_jacobians_and_hessians_agree(name):
  fn, args = CASES[name]
  x = args[0]
  f = jax.jit(lambda a: fn(a, *args[1:]))
  scalar = jax.eval_shape(f, x).ndim == 0

  # Every derivative in one compiled program (compiling each apart costs seconds a case).
  @jax.jit
  def derivatives(x, tangent, u):
    _, tan = jax.jvp(f, (x,), (tangent,))
    _, lin = jax.linearize(f, x)
    _, vjp = jax.vjp(f, x)
    d = dict(jacfwd=jax.jacfwd(f)(x), jacrev=jax.jacrev(f)(x), tan=tan, lin=lin(tangent),
             u_jt=jnp.vdot(tan, u), jtu_t=jnp.vdot(tangent, vjp(u)[0]))
    if scalar:
      grad_norm = lambda a: jnp.sum(jax.grad(f)(a) ** 2)
      d.update(fwd_rev=jax.jacfwd(jax.jacrev(f))(x), rev_fwd=jax.jacrev(jax.jacfwd(f))(x),
               hessian=jax.hessian(f)(x), grad_norm_rev=jax.grad(grad_norm)(x),
               grad_norm_fwd=jax.jacfwd(grad_norm)(x))
    return d

  tangent = jnp.asarray(np.random.default_rng(1).standard_normal(x.shape))
  u = jnp.asarray(np.random.default_rng(2).standard_normal(jax.eval_shape(f, x).shape))
  d = derivatives(x, tangent, u)
  np.testing.assert_allclose(d["jacfwd"], d["jacrev"], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(d["lin"], d["tan"], rtol=1e-10, atol=1e-12)
  # <J t, u> == <t, J^T u>
  np.testing.assert_allclose(d["u_jt"], d["jtu_t"], rtol=1e-10, atol=1e-12)
  if scalar:
    np.testing.assert_allclose(d["fwd_rev"], d["rev_fwd"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d["hessian"], d["fwd_rev"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d["grad_norm_rev"], d["grad_norm_fwd"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["ce all options", "ce probabilities", "nll", "losses integer", "object ce"])
def test_vmap_checkpoint_scan_eval_shape_and_export(name):
  fn, args = CASES[name]
  f = lambda a: jnp.sum(fn(a, *args[1:]))
  x = args[0]
  batch = jnp.stack([x, 2 * x, -x])

  def body(carry, b):
    value, tangent = jax.jvp(f, (b,), (jnp.ones_like(b),))
    return carry + value, (jax.grad(f)(b), tangent)

  # Each transformation, traced into one compiled program.
  @jax.jit
  def transformed(x, batch):
    total, (scan_grads, scan_tangents) = jax.lax.scan(body, 0.0, batch)
    return dict(
        value=f(x), grad=jax.grad(f)(x), jvp=jax.jvp(f, (x,), (x,))[1],
        vmap=jax.vmap(f)(batch), loop=jnp.stack([f(b) for b in batch]),
        vmap_grad=jax.vmap(jax.grad(f))(batch), loop_grad=jnp.stack([jax.grad(f)(b) for b in batch]),
        vmap_jacfwd=jax.vmap(jax.jacfwd(f))(batch),
        checkpoint_grad=jax.grad(jax.checkpoint(f))(x), checkpoint_jvp=jax.jvp(jax.checkpoint(f), (x,), (x,))[1],
        scan_total=total, scan_grads=scan_grads, scan_tangents=scan_tangents)

  r = transformed(x, batch)
  per_example = r["vmap_grad"]
  np.testing.assert_allclose(r["vmap"], r["loop"], rtol=1e-12)
  np.testing.assert_allclose(per_example, r["loop_grad"], rtol=1e-12)
  np.testing.assert_allclose(r["vmap_jacfwd"], per_example, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(r["checkpoint_grad"], r["grad"], rtol=1e-12)
  np.testing.assert_allclose(r["checkpoint_jvp"], r["jvp"], rtol=1e-12)
  np.testing.assert_allclose(r["scan_total"], np.sum(r["loop"]), rtol=1e-12)
  np.testing.assert_allclose(r["scan_grads"], per_example, rtol=1e-12)
  np.testing.assert_allclose(r["scan_tangents"], [jnp.sum(g) for g in per_example], rtol=1e-10, atol=1e-12)
  assert jax.eval_shape(f, x).shape == ()
  exported = jax.export.export(jax.jit(jax.value_and_grad(f)))(x)
  value, grad = exported.call(x)
  np.testing.assert_allclose(value, r["value"], rtol=1e-12)
  np.testing.assert_allclose(grad, r["grad"], rtol=1e-12)


@pytest.mark.parametrize("value", [-np.inf, np.inf, np.nan], ids=["-inf", "+inf", "nan"])
@pytest.mark.parametrize("kind", ["ignored", "masked"])
def test_ignored_and_masked_elements_have_zero_tangents_whatever_they_hold(kind, value):
  x = np.asarray(X).copy()
  x[2] = value
  x[2, 1] = 0.0
  y = Y.at[2].set(-100) if kind == "ignored" else Y.at[2].set(1)
  where = None if kind == "ignored" else jnp.array([True, True, False, True, True])
  fns = [
      lambda a: jaxnll.cross_entropy(a, y, reduction="none", where=where, label_smoothing=0.1, weight=W),
      lambda a: jaxnll.nll_loss(jaxnll.log_softmax(a), y, reduction="none", where=where),
      lambda a: losses.softmax_cross_entropy_with_integer_labels(a, y, ignore_index=-100, where=where,
                                                                 label_smoothing=0.1),
      lambda a: jaxnll.cross_entropy(a, T, reduction="none", where=jnp.array([True, True, False, True, True])),
  ]
  tangent = jnp.ones_like(X)
  # The targets and masks are constants of the trace, as when called eagerly; one compilation.
  tangents = jax.jit(lambda a: [(jax.jvp(fn, (a,), (tangent,)), jax.jacfwd(fn)(a)) for fn in fns])
  for (out, tan), jac in tangents(jnp.asarray(x)):
    assert out[2] == 0.0 and tan[2] == 0.0
    assert np.all(np.isfinite(np.asarray(tan)[[0, 1, 3, 4]]))
    assert np.all(np.asarray(jac)[2] == 0.0) and np.all(np.asarray(jac)[:, 2] == 0.0)


def test_minus_inf_logits_give_finite_forward_tangents():
  # optax's open bug: NaN forward tangents at -inf logits (masked classes).
  x = X.at[:, 1].set(-jnp.inf)
  labels = jax.nn.one_hot(jnp.array([0, 2, 3, 0, 2]), 4)
  fns = (lambda a: jaxnll.cross_entropy(a, jnp.array([0, 2, 3, 0, 2])),
         lambda a: losses.softmax_cross_entropy(a, labels).sum(),
         lambda a: jaxnll.cross_entropy(a, labels))

  @jax.jit  # one compiled program for all of them
  def derivatives(x):
    return ([(jax.jacfwd(fn)(x), jax.grad(fn)(x)) for fn in fns],
            jax.jacfwd(lambda t: losses.softmax_cross_entropy(x, t).sum())(labels))

  jacobians_and_gradients, dt = derivatives(x)
  for jac, grad in jacobians_and_gradients:
    assert np.all(np.isfinite(jac)), jac
    np.testing.assert_allclose(jac, grad, rtol=1e-12)
  assert np.all(np.isfinite(np.asarray(dt)[:, [0, 2, 3]])) and np.all(np.asarray(dt)[:, 1] == 0.0)


def test_out_of_range_targets_give_nan_tangents_for_their_element_only():
  fn = lambda a, t: jaxnll.cross_entropy(a, t, reduction="none", label_smoothing=0.1)
  y = jnp.array([0, 7, 2, -3, 1])  # traced below: known bad targets would raise instead
  out, tan = jax.jit(lambda a, t, y: jax.jvp(lambda a: fn(a, y), (a,), (t,)))(X, jnp.ones_like(X), y)
  bad = np.array([False, True, False, True, False])
  assert np.isnan(np.asarray(out)[bad]).all() and np.isnan(np.asarray(tan)[bad]).all()
  assert np.isfinite(np.asarray(out)[~bad]).all() and np.isfinite(np.asarray(tan)[~bad]).all()
  jac = np.asarray(jax.jit(jax.jacfwd(fn))(X, y))  # [element, row, class]
  assert np.isnan(jac[bad][:, bad]).all()
  assert np.isfinite(jac[~bad][:, ~bad]).all() and np.all(jac[~bad][:, bad] == 0.0)


def test_linear_cross_entropy_reverse_mode_everywhere_and_a_clear_forward_mode_error():
  h = jnp.asarray(RNG.standard_normal((6, 3)))
  w_cls = jnp.asarray(RNG.standard_normal((10, 3)))
  y = jnp.array([0, 9, -100, 4, 5, 1])
  f = lambda h, w: jaxnll.linear_cross_entropy(h, w, y, label_smoothing=0.1, block_size=4)
  ref = lambda h, w: jaxnll.cross_entropy(h @ w.T, y, label_smoothing=0.1)

  # Every reverse-mode transformation, traced into one compiled program.
  @jax.jit
  def reverse(h, w_cls):
    return dict(
        grad=jax.grad(lambda h: f(h, w_cls))(h), checkpoint_grad=jax.grad(jax.checkpoint(lambda h: f(h, w_cls)))(h),
        ref_grad=jax.grad(lambda h: ref(h, w_cls))(h),
        jacrev=jax.jacrev(lambda h: jaxnll.linear_cross_entropy(h, w_cls, y, reduction="none"))(h),
        ref_jacrev=jax.jacrev(lambda h: jaxnll.cross_entropy(h @ w_cls.T, y, reduction="none"))(h),
        vmap_grad=jax.vmap(jax.grad(f), in_axes=(0, None))(jnp.stack([h, 2 * h]), w_cls)[1],
        grad_2h=jax.grad(f)(2 * h, w_cls), ref_grad_w=jax.grad(ref, argnums=1)(h, w_cls),
        # Forward over reverse differentiates the block-wise backward itself: exact.
        hessian=jax.hessian(lambda h: f(h, w_cls))(h), ref_hessian=jax.hessian(lambda h: ref(h, w_cls))(h))

  r = reverse(h, w_cls)
  for name in ("grad", "checkpoint_grad"):
    np.testing.assert_allclose(r[name], r["ref_grad"], rtol=1e-10, err_msg=name)
  np.testing.assert_allclose(r["jacrev"], r["ref_jacrev"], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(r["vmap_grad"], r["grad_2h"], rtol=1e-12)
  exported = jax.export.export(jax.jit(jax.grad(f, argnums=(0, 1))))(h, w_cls)
  np.testing.assert_allclose(exported.call(h, w_cls)[1], r["ref_grad_w"], rtol=1e-10)
  np.testing.assert_allclose(r["hessian"], r["ref_hessian"], rtol=1e-9, atol=1e-12)
  _, lin = jax.linearize(lambda h: f(h, w_cls), h)
  with pytest.raises(TypeError, match="forward-mode"):  # its linear map is forward mode
    lin(h)
  for forward in (lambda g: jax.jvp(g, (h,), (h,)), lambda g: jax.jacfwd(g)(h)):
    with pytest.raises(TypeError, match=r"linear_cross_entropy supports reverse-mode.*jaxnll\.cross_entropy"):
      forward(lambda h: f(h, w_cls))


def _compiled_hlo(fn, *args):
  return jax.jit(fn).lower(*args).compile().as_text()


def comps_text(hlo: str, name: str) -> str:
  """The text of computation ``name`` in ``hlo``."""
  return next(b for b in re.split(r"\n\s*\n", hlo) if re.match(r"(?:ENTRY )?%" + re.escape(name) + " ", b))


def _outside_while_bodies(hlo: str) -> str:
  """The compiled program's text without its ``while`` loops' bodies (and what they call)."""
  comps = {}
  for block in re.split(r"\n\s*\n", hlo):
    head = re.match(r"(?:ENTRY )?%(\S+) ", block)
    if head:
      comps[head.group(1)] = block
  called = lambda text: set(re.findall(r"(?:calls|to_apply|body|condition)=%([\w.-]+)", text)) | {
      n for group in re.findall(r"branch_computations=\{([^}]*)\}", text) for n in re.findall(r"%([\w.-]+)", group)}
  todo = {b for text in comps.values() for b in re.findall(r"body=%([\w.-]+)", text)}
  bodies = set()
  while todo:
    name = todo.pop()
    if name not in bodies:
      bodies.add(name)
      todo |= called(comps.get(name, ""))
  return "\n\n".join(text for name, text in comps.items() if name not in bodies)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_value_and_grad_evaluates_exp_once_per_logit(eps):
  # The reverse pass is JAX's transpose of the tangent rule: it must reuse the
  # forward's exp(x - shift), so the compiled program has exactly one
  # exponential over the [N, C] logits (on CPU exp is the dominant cost), and
  # no max over them: the shift is the target's logit. The pass against the
  # row max is the body of a loop that runs only when a sum is not finite.
  x = jnp.zeros((64, 1000), jnp.float32)
  y = jnp.zeros((64,), jnp.int32)
  hlo = _compiled_hlo(jax.value_and_grad(lambda a: jaxnll.cross_entropy(a, y, label_smoothing=eps)), x)
  main = _outside_while_bodies(hlo)
  big = r"f32\[64,1000\]\{[^}]*\} "
  assert len(re.findall(big + "exponential\\(", main)) == 1, hlo
  assert len(re.findall(big + "exponential\\(", hlo)) == 2, hlo  # the fallback's, in the loop body
  reducers = set(re.findall(r"= f32\[64\]\{0\} reduce\(.*to_apply=%([\w.-]+)", main))  # over the classes
  assert reducers and not [r for r in reducers if " maximum(" in comps_text(main, r)], hlo


# --------------------------------------------------------------------------
# optax's own unit tests for the two softmax cross-entropies, on jaxnll.

SOFTMAX = ("softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels")
CALLS: dict[str, int] = {}


def _counted(name):
  # Jitted: optax's tests call these eagerly on many shapes, and eagerly each of their
  # operations compiles on its own for every new shape (their eager use is tested in
  # test_optax_compat.py and test_hostile.py).
  fn = jax.jit(getattr(losses, name), static_argnames="axis")

  def call(*args, **kwargs):
    CALLS[name] = CALLS.get(name, 0) + 1
    return fn(*args, **kwargs)

  return call


def _swapped(case):
  """``case`` with its ``_classification`` module holding jaxnll's two functions only."""

  class Swapped(case):
    def setUp(self):
      super().setUp()
      proxy = types.SimpleNamespace(**{n: _counted(n) for n in SOFTMAX})
      self.enterContext(unittest.mock.patch.object(_classification_test, "_classification", proxy))
      self.enterContext(jax.enable_x64(False))
      self.enterContext(jax.numpy_dtype_promotion("standard"))
      self.enterContext(jax.numpy_rank_promotion("allow"))

  Swapped.__name__ = Swapped.__qualname__ = f"Swapped{case.__name__}"
  return Swapped


def test_optax_softmax_cross_entropy_unit_tests_pass_on_jaxnll():
  CALLS.clear()
  suite = unittest.TestSuite()
  for case in (_classification_test.SoftmaxCrossEntropyTest,
               _classification_test.SoftmaxCrossEntropyWithIntegerLabelsTest):
    suite.addTests(unittest.TestLoader().loadTestsFromTestCase(_swapped(case)))
  with open(os.devnull, "w") as quiet:
    result = unittest.TextTestRunner(verbosity=0, stream=quiet).run(suite)
  problems = [f"{t}: {e}" for t, e in result.failures + result.errors]
  assert not problems, "\n".join(problems)
  assert result.testsRun >= 10
  assert CALLS.get("softmax_cross_entropy", 0) > 0 and CALLS.get("softmax_cross_entropy_with_integer_labels", 0) > 0
