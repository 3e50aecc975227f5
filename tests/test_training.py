"""Training helpers: exact accumulation, metrics that skip ignored targets, the examples."""

import functools
import gzip
import json
import re
import struct
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnll
from jaxnll import training
from tests._subprocess import ROOT, run_python


def _problem(seed=0, n=24, d=5, c=4):
  rng = np.random.default_rng(seed)
  params = {"w": jnp.asarray(rng.standard_normal((d, c))), "b": jnp.asarray(rng.standard_normal(c))}
  x = jnp.asarray(rng.standard_normal((n, d)))
  y = rng.integers(0, c, n)
  y[rng.uniform(size=n) < 0.3] = -100
  y[: n // 4] = -100  # one micro-batch almost entirely ignored
  where = jnp.asarray(rng.uniform(size=n) < 0.8)
  return params, {"inputs": x, "targets": jnp.asarray(y), "where": where}, rng


def apply_fn(params, x):
  return x @ params["w"] + params["b"][None, :]


@pytest.mark.parametrize("reduction", ["mean", "sum", "safe_mean"])
def test_accumulation_equals_full_batch(reduction):
  params, batch, rng = _problem()
  loss = jaxnll.CrossEntropyLoss(weight=jnp.asarray(rng.uniform(0.2, 3, 4)), label_smoothing=0.1,
                                 reduction=reduction, z_loss=1e-3)
  full_value, full_grads, full_m = training.make_grad_fn(apply_fn, loss)(params, batch)
  direct = jax.value_and_grad(lambda p: loss(apply_fn(p, batch["inputs"]), batch["targets"],
                                             where=batch["where"]))(params)
  np.testing.assert_allclose(full_value, direct[0], rtol=1e-12)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), full_grads, direct[1])
  for steps in (2, 4, 6):
    value, grads, m = jax.jit(training.make_grad_fn(apply_fn, loss, accumulation_steps=steps))(params, batch)
    np.testing.assert_allclose(value, full_value, rtol=1e-12)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14),
                           grads, direct[1])
    assert float(m["count"]) == float(full_m["count"])
  if reduction == "mean":
    # What the helper avoids: averaging per-micro-batch means is a different number.
    micro = [jax.tree_util.tree_map(lambda a, i=i: a[i * 6:(i + 1) * 6], batch) for i in range(4)]
    means = [loss(apply_fn(params, b["inputs"]), b["targets"], where=b["where"]) for b in micro]
    assert abs(float(np.nanmean(means)) - float(full_value)) > 1e-3


def test_metrics_skip_ignored_and_masked_targets():
  logits = jnp.array([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0], [0.0, 5.0]])
  batch = {"targets": jnp.array([0, 1, -100, 1]), "where": jnp.array([True, True, True, False])}
  value, m = training.loss_and_metrics(logits, batch, jaxnll.cross_entropy)
  assert float(m["count"]) == 2.0 and float(m["correct"]) == 1.0
  np.testing.assert_allclose(value, jaxnll.cross_entropy(logits, batch["targets"], where=batch["where"]))
  assert training.finalize_metrics(m, jaxnll.cross_entropy)["accuracy"] == 0.5


def test_loss_forms():
  obj = training.as_loss_object(functools.partial(jaxnll.cross_entropy, label_smoothing=0.2, ignore_index=0))
  assert isinstance(obj, jaxnll.CrossEntropyLoss) and obj.label_smoothing == 0.2 and obj.ignore_index == 0
  assert isinstance(training.as_loss_object(jaxnll.nll_loss), jaxnll.NLLLoss)
  with pytest.raises(TypeError, match="`loss`"):
    training.as_loss_object(optax.losses.softmax_cross_entropy)
  with pytest.raises(ValueError, match="reduce"):
    training.loss_and_metrics(jnp.zeros((2, 3)), {"targets": jnp.array([0, 1])},
                              jaxnll.CrossEntropyLoss(reduction="none"))


def test_train_and_eval_step_reduce_the_loss():
  params, batch, _ = _problem(seed=1, n=64)
  loss = jaxnll.CrossEntropyLoss(label_smoothing=0.05)
  optimizer = optax.sgd(0.5)
  step = training.make_train_step(apply_fn, loss, optimizer, accumulation_steps=2)
  evaluate = training.make_eval_step(apply_fn, loss)
  before = float(evaluate(params, batch)["loss"])
  opt_state = optimizer.init(params)
  for _ in range(20):
    params, opt_state, metrics = step(params, opt_state, batch)
  after = evaluate(params, batch)
  assert float(after["loss"]) < before - 0.1
  assert 0.0 <= float(after["accuracy"]) <= 1.0 and float(metrics["count"]) == float(after["count"])


def _losses(out):
  return [float(v) for v in re.findall(r"loss (\d+\.\d+)", out)]


FRAMEWORK_EXAMPLES = ["nnx_example", "linen_example", "haiku_example"]
# Each from its command line, one after the other in one interpreter: starting Python with
# JAX and the frameworks costs more than the few steps.
RUN_FRAMEWORK_EXAMPLES = """
import runpy, sys
sys.path.insert(0, "examples")
for name in sys.argv[1:]:
  sys.argv = [f"examples/{name}.py", "--steps", "15"]
  print(f"---- {name}", flush=True)
  runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_framework_examples_train():
  out = run_python(["-c", RUN_FRAMEWORK_EXAMPLES, *FRAMEWORK_EXAMPLES])
  runs = dict(part.split("\n", 1) for part in out.split("---- ")[1:])
  assert list(runs) == FRAMEWORK_EXAMPLES, out
  for example, printed in runs.items():
    losses = _losses(printed)
    assert len(losses) >= 2 and losses[-1] < 0.6 * losses[0], (example, losses)


def test_mnist_example_end_to_end(tmp_path):
  out = run_python(["examples/mnist.py", "--epochs", "1", "--no-progress", "--metrics-out",
                    str(tmp_path / "m.json"), "--plot-dir", str(tmp_path / "plots")])
  metrics = json.loads((tmp_path / "m.json").read_text())
  assert {"test_accuracy", "test_loss", "epochs", "seconds"} <= metrics.keys()
  assert metrics["epochs"] == 1 and metrics["test_accuracy"] > 0.85, out
  for name in ("training_curves.png", "confusion_matrix.png"):
    assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _write_idx(path, array, compress):
  header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
  data = header + array.astype(np.uint8).tobytes()
  (gzip.open if compress else open)(path, "wb").write(data)


def test_mnist_reads_idx_files_and_names_missing_ones(tmp_path):
  sys.path.insert(0, str(ROOT / "examples"))
  try:
    import mnist
  finally:
    sys.path.pop(0)
  x_train, y_train, x_test, y_test = mnist.load_bundled()
  _write_idx(tmp_path / "train-images-idx3-ubyte.gz", x_train[:600], True)
  _write_idx(tmp_path / "train-labels-idx1-ubyte", y_train[:600], False)
  _write_idx(tmp_path / "t10k-images-idx3-ubyte", x_test[:200], False)
  proc = subprocess.run([sys.executable, "examples/mnist.py", "--data-dir", str(tmp_path), "--epochs", "1"],
                        cwd=ROOT, capture_output=True, text=True, check=False)
  assert proc.returncode != 0 and "t10k-labels-idx1-ubyte" in proc.stderr, proc.stderr
  _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y_test[:200], True)
  loaded = mnist.load_idx(tmp_path)
  np.testing.assert_array_equal(loaded[0], x_train[:600])
  np.testing.assert_array_equal(loaded[3], y_test[:200])


def _elementwise_problem(loss):
  """A linear model, a batch and its targets for each family of loss."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((12, 5)))
  params = {"w": jnp.asarray(rng.standard_normal((5, 3)) * 0.3)}
  where = jnp.asarray(rng.uniform(size=(12, 3)) < 0.8)
  if isinstance(loss, (jaxnll.BCEWithLogitsLoss, jaxnll.BCELoss, jaxnll.MultiLabelSoftMarginLoss)):
    targets = jnp.asarray((rng.uniform(size=(12, 3)) < 0.4).astype(np.float64))
  elif isinstance(loss, jaxnll.KLDivLoss):
    targets = jax.nn.softmax(jnp.asarray(rng.standard_normal((12, 3))))
  elif isinstance(loss, jaxnll.PoissonNLLLoss):
    targets = jnp.asarray(rng.poisson(2.0, (12, 3)).astype(np.float64))
  else:
    targets = jnp.asarray(rng.standard_normal((12, 3)))
  if isinstance(loss, jaxnll.MultiLabelSoftMarginLoss):
    where = where[:, 0]

  def apply(p, inputs):
    out = inputs @ p["w"]
    if isinstance(loss, jaxnll.BCELoss):
      return jax.nn.sigmoid(out)
    if isinstance(loss, jaxnll.KLDivLoss):
      return jax.nn.log_softmax(out)
    if isinstance(loss, jaxnll.GaussianNLLLoss):
      return out, jnp.exp(0.1 * out)
    return out

  return params, {"inputs": x, "targets": targets, "where": where}, apply


ELEMENTWISE_LOSSES = [
    jaxnll.BCEWithLogitsLoss(pos_weight=jnp.array([2.0, 1.0, 0.5])),
    jaxnll.BCELoss(weight=jnp.array([1.0, 2.0, 1.0])),
    jaxnll.MultiLabelSoftMarginLoss(),
    jaxnll.KLDivLoss(reduction="batchmean"),
    jaxnll.PoissonNLLLoss(),
    jaxnll.GaussianNLLLoss(),
    jaxnll.L1Loss(weight=jnp.array([1.0, 2.0, 3.0])),
    jaxnll.MSELoss(reduction="sum"),
    jaxnll.HuberLoss(delta=0.5),
    jaxnll.SmoothL1Loss(reduction="safe_mean"),
]


@pytest.mark.parametrize("loss", ELEMENTWISE_LOSSES, ids=lambda loss: type(loss).__name__)
def test_training_helpers_work_with_every_loss_object(loss):
  params, batch, apply = _elementwise_problem(loss)
  value, grads, metrics = training.make_grad_fn(apply, loss)(params, batch)
  outputs = apply(params, batch["inputs"])
  args = (*outputs[:1], batch["targets"], outputs[1]) if isinstance(outputs, tuple) else (outputs, batch["targets"])
  direct = jax.value_and_grad(lambda p: loss(*(
      (apply(p, batch["inputs"])[0], batch["targets"], apply(p, batch["inputs"])[1])
      if isinstance(loss, jaxnll.GaussianNLLLoss) else (apply(p, batch["inputs"]), batch["targets"])),
      where=batch["where"]))(params)
  np.testing.assert_allclose(value, direct[0], rtol=1e-12)
  np.testing.assert_allclose(grads["w"], direct[1]["w"], rtol=1e-10)
  np.testing.assert_allclose(value, loss(*args, where=batch["where"]), rtol=1e-12)
  # Exact accumulation over micro-batches, for every loss.
  acc_value, acc_grads, acc_metrics = training.make_grad_fn(apply, loss, accumulation_steps=3)(params, batch)
  np.testing.assert_allclose(acc_value, value, rtol=1e-12)
  np.testing.assert_allclose(acc_grads["w"], grads["w"], rtol=1e-10, atol=1e-14)
  assert float(acc_metrics["count"]) == float(metrics["count"])
  has_accuracy = isinstance(loss, (jaxnll.BCEWithLogitsLoss, jaxnll.BCELoss, jaxnll.MultiLabelSoftMarginLoss))
  assert ("correct" in metrics) == has_accuracy
  if has_accuracy:
    predicted = (outputs > (0.5 if isinstance(loss, jaxnll.BCELoss) else 0.0)) == (batch["targets"] > 0.5)
    counted = jnp.broadcast_to(batch["where"].reshape(12, -1), predicted.shape)
    assert float(metrics["correct"]) == float(jnp.sum(predicted & counted))
    assert float(metrics["count"]) == float(jnp.sum(counted))
  final = training.finalize_metrics(metrics, loss)
  assert ("accuracy" in final) == has_accuracy and np.isclose(final["loss"], float(value))
  # And a few optimizer steps lower the loss.
  optimizer = optax.sgd(0.002 if loss.reduction == "sum" else 0.05)
  step = training.make_train_step(apply, loss, optimizer)
  opt_state = optimizer.init(params)
  for _ in range(10):
    params, opt_state, step_metrics = step(params, opt_state, batch)
  assert float(training.make_eval_step(apply, loss)(params, batch)["loss"]) < float(value)
  assert ("accuracy" in step_metrics) == has_accuracy


def test_loss_functions_and_partials_of_every_family_become_objects():
  obj = training.as_loss_object(functools.partial(jaxnll.binary_cross_entropy_with_logits, pos_weight=jnp.ones(3)))
  assert isinstance(obj, jaxnll.BCEWithLogitsLoss)
  assert isinstance(training.as_loss_object(functools.partial(jaxnll.kl_div, reduction="batchmean")),
                    jaxnll.KLDivLoss)
  assert isinstance(training.as_loss_object(jaxnll.gaussian_nll_loss), jaxnll.GaussianNLLLoss)
  with pytest.raises(TypeError, match=r"`loss` must be a jaxnll loss object"):
    training.as_loss_object(jaxnll.sigmoid_focal_loss)
  with pytest.raises(TypeError, match=r"apply_fn` must return a pair \(mean, var\)"):
    training.loss_and_metrics(jnp.zeros((2, 3)), {"targets": jnp.zeros((2, 3))}, jaxnll.GaussianNLLLoss())


def test_make_train_step_without_optax_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "optax", None)
  with pytest.raises(ModuleNotFoundError, match=r"pip install 'jaxnll\[training\]'"):
    training.make_train_step(apply_fn, jaxnll.cross_entropy, object())
