"""Runs tests/multidevice and the sharded example on a simulated 8-device CPU mesh,
in separate processes so the device count of the rest of the suite is unaffected."""

import os
import re

from tests._subprocess import run_python

# Added to the suite's own XLA_FLAGS (tests/conftest.py).
EIGHT_CPUS = {"XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8".strip(),
              "JAX_PLATFORMS": "cpu"}


def test_losses_on_an_8_device_mesh():
  out = run_python(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests/multidevice"],
                   env=EIGHT_CPUS)
  assert re.search(r"\b\d+ passed\b", out) and "skipped" not in out, out


def test_sharded_language_model_example_trains():
  out = run_python(["examples/sharded_lm.py", "--steps", "30"], env=EIGHT_CPUS)
  assert "mesh: {'data': 4, 'model': 2} over 8 cpu devices" in out, out
  losses = [float(x) for x in re.findall(r"loss (\d+\.\d+)", out)]
  assert len(losses) >= 3 and losses[-1] < 0.5 * losses[0], out
  assert "classifier sharding: P('model'," in out, out
