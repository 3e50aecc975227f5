"""Every docstring example runs and prints what it shows (default JAX config: float32)."""

import re

from tests._subprocess import ROOT, run_python


def test_docstring_examples():
  # XLA's default flags, not the suite's compile-speed ones (tests/conftest.py): the examples print values
  # to the last digit, as a user sees them.
  out = run_python(["-m", "pytest", "-q", "--doctest-modules", "-p", "no:cacheprovider",
                    "--rootdir", str(ROOT), "-c", "/dev/null", "jaxnll"], env={"XLA_FLAGS": ""})
  passed = re.search(r"(\d+) passed", out)
  assert passed and int(passed.group(1)) >= 8, out
  assert "failed" not in out, out
