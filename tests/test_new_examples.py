"""The binary-classification and Gaussian-regression examples train (a few steps, in a fresh process)."""

import re

from tests._subprocess import run_python


def _losses(out):
  return [float(v) for v in re.findall(r"step +\d+  loss (-?\d+\.\d+)", out)]


def _metric(out, name):
  return float(re.search(rf"{name} (-?\d+\.\d+)", out).group(1))


def test_binary_classification_example():
  out = run_python(["examples/binary_classification.py", "--steps", "40"])
  losses = _losses(out)
  assert len(losses) == 2 and losses[-1] < 0.5 * losses[0], out
  assert _metric(out, "accuracy") > 0.85 and _metric(out, "ROC AUC") > 0.95, out


def test_gaussian_regression_example():
  out = run_python(["examples/gaussian_regression.py", "--steps", "60"])
  losses = _losses(out)
  assert len(losses) == 2 and losses[-1] < losses[0] - 0.2, out
  assert 0.5 < _metric(out, "coverage") <= 1.0 and _metric(out, "NLL") < 7.0, out
