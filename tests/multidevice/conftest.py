"""These tests need 8 devices: run them through tests/test_sharding.py, which
starts pytest on this folder with XLA_FLAGS=--xla_force_host_platform_device_count=8."""

import jax
import pytest


def pytest_collection_modifyitems(config, items):
  if jax.device_count() < 8:
    skip = pytest.mark.skip(reason="needs 8 devices; run via tests/test_sharding.py")
    for item in items:
      item.add_marker(skip)
