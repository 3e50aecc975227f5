"""benchmarks/bench_ctc.py runs end to end (tiny shapes) and prints every row of its table."""

from tests._subprocess import run_python


def test_bench_ctc_quick():
  out = run_python(["benchmarks/bench_ctc.py", "--quick"], timeout=300)
  header = next(line for line in out.splitlines() if line.startswith("# shape"))
  for col in ("jaxnll ms", "optax ms", "torch ms", "jaxnll/optax", "jaxnll/torch", "temp MiB jaxnll / optax",
              "2 recursions / 2 empty scans ms"):
    assert col in header
  for name in ("speech", "BPE", "OCR"):
    row = next(line for line in out.splitlines() if line.startswith(name))
    assert row.count("x [") == 2, row
  assert out.count("load average") == 2 and "OMP_WAIT_POLICY=PASSIVE" in out
