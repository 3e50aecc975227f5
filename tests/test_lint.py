"""ruff and mypy run clean on the package, tests, examples and benchmarks."""

from tests._subprocess import run_python


def test_ruff():
  run_python(["-m", "ruff", "check", "jaxnll", "tests", "examples", "benchmarks"])


def test_mypy():
  run_python(["-m", "mypy"])
