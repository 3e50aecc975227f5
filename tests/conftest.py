"""Test configuration: float64 on, and accidental broadcasting or promotion fails loudly."""

import atexit
import os
import shutil
import sys
import tempfile

# The suite starts dozens of interpreters (pytest-xdist's workers, the examples, the docs' code), each
# importing jax, numpy and often torch. Where PYTHONDONTWRITEBYTECODE is set, and the packages were installed
# without bytecode (the README's `pip install --no-compile`), each of them would compile those packages from
# source again, about 3 CPU-seconds apiece: the bytecode is written once, by the first, here and in the
# processes the tests start.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# Tests compile thousands of small programs. Two XLA settings make that compilation cheaper: the LLVM back end
# at its lowest optimization level, and XLA:CPU's elemental emitters in place of its newer MLIR fusion
# emitters (the second took the whole suite's backend compilation from 408 to 149 CPU-seconds). They
# change how the program becomes machine code, hardly the optimized HLO (a reduction may be fused
# differently), and not the memory figures the tests check (the same bytes with XLA's defaults); results may
# differ in the last bit (no fused multiply-adds), within every test's tolerance. The docstring examples,
# which print values to the last digit, and the README's and guide pages' code run with XLA's defaults.
# Set before JAX starts; subprocesses started by the tests inherit it.
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true",
     "--xla_cpu_use_fusion_emitters=false"]
).strip()

# Many checks compile the same program: eager calls of the same operation in different tests, the same
# function defined afresh in each parametrization, the same shapes in both pytest-xdist workers and in the
# examples the tests run. JAX's persistent compilation cache compiles each once per run: a directory made by
# the first process (the one that starts the workers) and removed when it exits, so every run starts cold;
# a contributor's own JAX_COMPILATION_CACHE_DIR is used as it is (kept between runs). Only the compiled
# machine code is reused: tracing, lowering and every check run each time.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="jaxnll-tests-xla-cache-")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import jax  # noqa: E402 (after the settings above, which JAX reads when it starts)
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "default",
    deadline=None,
    max_examples=int(os.environ.get("JAXNLL_HYPOTHESIS_EXAMPLES", "30")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("default")


# tests/multidevice needs 8 devices; tests/test_sharding.py runs it in a process that has them.
collect_ignore = ["multidevice"] if jax.device_count() < 8 else []
