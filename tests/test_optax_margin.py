"""jaxnll.losses' margin and cosine drop-ins: optax 0.2.8's own unit tests with jaxnll swapped in, and parity."""

import types
import unittest.mock

import jax
from optax.losses import _classification_test, _regression_test, _self_supervised_test

from jaxnll import losses as om

NAMES = ("triplet_margin_loss", "hinge_loss", "multiclass_hinge_loss", "cosine_similarity", "cosine_distance")
CALLS: dict[str, int] = {}


def _counted(name):
  fn = getattr(om, name)

  def call(*args, **kwargs):
    CALLS[name] = CALLS.get(name, 0) + 1
    return fn(*args, **kwargs)

  return call


def _swapped_in(case, test_module, attribute):
  """optax's TestCase ``case`` with ``test_module.attribute`` holding only jaxnll's drop-ins.

  Any other name raises AttributeError and each test must call jaxnll at
  least once; the tests run in optax's configuration (x64 off, standard
  promotion), not this suite's strict one.
  """

  class Swapped(case):
    def setUp(self):
      super().setUp()
      proxy = types.SimpleNamespace(**{n: _counted(n) for n in NAMES})
      self.enterContext(unittest.mock.patch.object(test_module, attribute, proxy))
      self.enterContext(jax.enable_x64(False))
      self.enterContext(jax.numpy_dtype_promotion("standard"))
      self.enterContext(jax.numpy_rank_promotion("allow"))
      before = sum(CALLS.values())
      self.addCleanup(lambda: self.assertGreater(sum(CALLS.values()), before, "the test did not call jaxnll"))

  Swapped.__name__ = Swapped.__qualname__ = f"TestOptax{case.__name__}"
  return Swapped


TestOptaxHinge = _swapped_in(_classification_test.HingeTest, _classification_test, "_classification")
TestOptaxCosineDistance = _swapped_in(_regression_test.CosineDistanceTest, _regression_test, "_regression")
TestOptaxTripletMarginLoss = _swapped_in(
    _self_supervised_test.TripletMarginLossTest, _self_supervised_test, "_self_supervised")
