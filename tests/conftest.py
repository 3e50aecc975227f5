"""Test configuration: float64 on, and accidental broadcasting or promotion fails loudly."""

import os

# Tests compile thousands of small programs: XLA's LLVM back end at its lowest optimization level compiles
# them faster. It changes only the machine code, not the optimized HLO or its buffers (the memory figures the
# tests check); results may differ in the last bit (no fused multiply-adds), within every test's tolerance.
# The docstring examples, which print values to the last digit, and the README's and guide pages' code run
# with XLA's defaults. Set before JAX starts; subprocesses started by the tests inherit it.
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true"]
).strip()

import jax
from hypothesis import HealthCheck, settings

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
