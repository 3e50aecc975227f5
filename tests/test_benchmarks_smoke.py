"""benchmarks/bench_sweep.py runs end to end (tiny shapes) and prints every row of its table."""

from tests._subprocess import run_python

ROW_NAMES = [
    "[65536, 10] float32",
    "[8192, 1000] float32",
    "[4096, 32000] float32",
    "[512, 128256] float32",
    "[8, 21, 128, 128] float32 axis=1",
    "bf16 [4096, 32000]",
    "nll_loss(log_softmax(x)) [4096, 32000]",
    "weight+ignore+smoothing [4096, 32000]",
    "compile time value_and_grad [4096, 32000]",
    "linear_cross_entropy [2048, 512, 32768]",
    "[32, 40, 1024] float32 axis=1 (N, C, L)",
    "[2, 8, 32, 64, 64] float32 axis=1 (N, C, D, H, W)",
    "[8, 21, 128, 128] axis=1, no ignored targets",
    "per-example grads vmap(grad) [2048, 1000]",
    "linear_cross_entropy [4096, 1024, 50257]",
    "[2, 21, 256, 256] float32 axis=1 (batch of 2)",
]


def test_bench_sweep_quick():
  out = run_python(["benchmarks/bench_sweep.py", "--quick"], timeout=300)
  header = next(line for line in out.splitlines() if line.startswith("#"))
  for col in ("jaxnll ms", "optax ms", "torch ms", "jaxnll/optax", "jaxnll/torch"):
    assert col in header
  rows = [line for line in out.splitlines() if line[:2].strip().isdigit()]
  assert len(rows) == len(ROW_NAMES), out
  for i, (row, name) in enumerate(zip(rows, ROW_NAMES, strict=True), 1):
    assert row.split("|")[0].strip() == str(i), row
    assert name in row, (name, row)
  assert "OMP_WAIT_POLICY=PASSIVE" in out
  assert "jaxnll bf16 / jaxnll f32" in out
  assert "/ jaxnll cross_entropy" in out
  assert "temp MiB: fused" in out
  assert "at start" in out and "at end" in out and "load average" in out  # printed for the quiet-machine check
