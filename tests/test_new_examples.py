"""The binary-classification and Gaussian-regression examples train (a few steps, in one fresh process)."""

import re

from tests._subprocess import run_python

# Both in one interpreter: starting Python with JAX and scikit-learn costs more than the few steps.
RUN_BOTH = """
import sys
sys.path.insert(0, "examples")
import binary_classification, gaussian_regression
binary_classification.main(steps=40)
print("----")
gaussian_regression.main(steps=60)
"""


def _losses(out):
  return [float(v) for v in re.findall(r"step +\d+  loss (-?\d+\.\d+)", out)]


def _metric(out, name):
  return float(re.search(rf"{name} (-?\d+\.\d+)", out).group(1))


def test_examples_train():
  binary, gaussian = run_python(["-c", RUN_BOTH]).split("----")
  losses = _losses(binary)
  assert len(losses) == 2 and losses[-1] < 0.5 * losses[0], binary
  assert _metric(binary, "accuracy") > 0.85 and _metric(binary, "ROC AUC") > 0.95, binary
  losses = _losses(gaussian)
  assert len(losses) == 2 and losses[-1] < losses[0] - 0.2, gaussian
  assert 0.5 < _metric(gaussian, "coverage") <= 1.0 and _metric(gaussian, "NLL") < 7.0, gaussian
