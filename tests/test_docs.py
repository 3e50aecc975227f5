"""Every docstring example runs and prints what it shows (default JAX config: float32)."""

import re

from tests._subprocess import ROOT, run_python


def test_docstring_examples():
  out = run_python(["-m", "pytest", "-q", "--doctest-modules", "-p", "no:cacheprovider",
                    "--rootdir", str(ROOT), "-c", "/dev/null", "jaxnll"])
  passed = re.search(r"(\d+) passed", out)
  assert passed and int(passed.group(1)) >= 8, out
  assert "failed" not in out, out
