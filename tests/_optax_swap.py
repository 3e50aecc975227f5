"""optax's own unit tests run on ``jaxnll.losses``: a TestCase with optax's loss module swapped for jaxnll's."""

import types
import unittest.mock

import jax

from jaxnll import losses

# Calls of each jaxnll function made through a swapped-in test, by name.
CALLS: dict[str, int] = {}


def _counted(name):
  fn = getattr(losses, name)

  def call(*args, **kwargs):
    CALLS[name] = CALLS.get(name, 0) + 1
    return fn(*args, **kwargs)

  return call


def swapped_in(case, test_module, attribute, names):
  """A subclass of optax's TestCase ``case`` whose ``test_module.attribute`` holds jaxnll's ``names`` only.

  Any other name a test reaches for raises AttributeError, and each test
  must call at least one of them, so a passing test ran on jaxnll. The tests
  run in optax's own configuration (default dtypes and promotion), not this
  suite's strict one.
  """

  class Swapped(case):
    def setUp(self):
      super().setUp()
      proxy = types.SimpleNamespace(**{n: _counted(n) for n in names})
      self.enterContext(unittest.mock.patch.object(test_module, attribute, proxy))
      self.enterContext(jax.enable_x64(False))
      self.enterContext(jax.numpy_dtype_promotion("standard"))
      self.enterContext(jax.numpy_rank_promotion("allow"))
      before = sum(CALLS.values())
      self.addCleanup(lambda: self.assertGreater(sum(CALLS.values()), before, "the test did not call jaxnll"))

  Swapped.__name__ = Swapped.__qualname__ = f"TestOptax{case.__name__}"
  return Swapped
