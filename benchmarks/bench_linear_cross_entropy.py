"""linear_cross_entropy vs the materializing path, cross_entropy(h @ W.T, y): memory and time.

Memory is the compiled program's temporary allocation for forward+backward
(gradients w.r.t. embeddings and classifier),
``jax.jit(jax.value_and_grad(f, argnums=(0, 1))).lower(...).compile().memory_analysis().temp_size_in_bytes``,
compiled from shapes only (nothing is allocated), so it is deterministic.
Time is forward+backward on CPU, variants interleaved, median of --repeats.

Run: MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
     python benchmarks/bench_linear_cross_entropy.py [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import allocator_note, interleaved_medians, print_table

import jaxnll
from jaxnll._linear_cross_entropy import default_block_size

MiB = 2**20
# (N tokens, D, V, dtype): the case, GPT-2/Llama-2/Gemma-ish vocabularies, Llama-3 8B.
MEMORY_CASES = [
    (2048, 512, 32768, jnp.float32),
    (4096, 768, 50257, jnp.float32),
    (4096, 2048, 256000, jnp.bfloat16),
    (8192, 4096, 128256, jnp.float32),
    (8192, 4096, 128256, jnp.bfloat16),
]
TIME_CASES = [(2048, 512, 32768, jnp.float32), (1024, 256, 50257, jnp.float32)]
BLOCKS = [128, 256, 512, 1024, 4096]


def materialized(h, w, y):
  return jaxnll.cross_entropy(jnp.einsum("nd,vd->nv", h, w, preferred_element_type=jnp.float32), y)


def fused(block=None):
  return lambda h, w, y: jaxnll.linear_cross_entropy(h, w, y, block_size=block)


def compiled(fn, n, d, v, dtype):
  args = (jax.ShapeDtypeStruct((n, d), dtype), jax.ShapeDtypeStruct((v, d), dtype),
          jax.ShapeDtypeStruct((n,), jnp.int32))
  return jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(*args).compile()


def temp_bytes(fn, n, d, v, dtype=jnp.float32) -> int:
  return compiled(fn, n, d, v, dtype).memory_analysis().temp_size_in_bytes


def memory_table() -> None:
  print("Compiled temporary memory, forward+backward (from shapes only):\n")
  rows = []
  for n, d, v, dtype in MEMORY_CASES:
    mat, ours = temp_bytes(materialized, n, d, v, dtype), temp_bytes(fused(), n, d, v, dtype)
    rows.append([f"{n} x {d} x {v}", jnp.dtype(dtype).name, str(default_block_size(n, v)),
                 f"{mat / MiB:.1f}", f"{ours / MiB:.1f}", f"{100 * ours / mat:.2f}%"])
  print_table(["N x D x V", "dtype", "block", "materializing MiB", "fused MiB", "fused / mat"], rows)


def problem(n, d, v, dtype=jnp.float32):
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.standard_normal((n, d), np.float32), dtype)
  w = jnp.asarray(rng.standard_normal((v, d), np.float32) / np.sqrt(d), dtype)
  y = jnp.asarray(rng.integers(0, v, n), jnp.int32)
  return h, w, y


def time_table(repeats: int, cases) -> None:
  device = jax.devices()[0]
  where = f"CPU x{os.cpu_count()}" if device.platform == "cpu" else device.device_kind
  print(f"\nForward+backward time, {where}, median of {repeats} interleaved runs\n")
  rows = []
  for n, d, v, dtype in cases:
    h, w, y = problem(n, d, v, dtype)
    fns = {"materializing": jax.jit(jax.value_and_grad(materialized, argnums=(0, 1))),
           "fused": jax.jit(jax.value_and_grad(fused(), argnums=(0, 1)))}
    t = interleaved_medians({k: functools.partial(f, h, w, y) for k, f in fns.items()}, repeats)
    mat_mib = temp_bytes(materialized, n, d, v, dtype) / MiB
    ours_mib = temp_bytes(fused(), n, d, v, dtype) / MiB
    rows.append([f"{n} x {d} x {v}", jnp.dtype(dtype).name, f"{t['materializing'] * 1e3:.1f}",
                 f"{t['fused'] * 1e3:.1f}",
                 f"{t['fused'] / t['materializing']:.3f}x", f"{mat_mib:.1f}", f"{ours_mib:.1f}"])
  print_table(["N x D x V", "dtype", "materializing ms", "fused ms", "fused / mat", "mat MiB", "fused MiB"],
              rows)


def block_table(repeats: int) -> None:
  n, d, v, _ = TIME_CASES[0]
  h, w, y = problem(n, d, v)
  default = default_block_size(n, v)
  blocks = sorted(set(BLOCKS) | {default})
  fns = {"materializing": jax.jit(jax.value_and_grad(materialized, argnums=(0, 1)))}
  fns.update({f"block {b}": jax.jit(jax.value_and_grad(fused(b), argnums=(0, 1))) for b in blocks})
  t = interleaved_medians({k: functools.partial(f, h, w, y) for k, f in fns.items()}, repeats)
  print(f"\nBlock-size trade-off, {n} x {d} x {v} float32 (default block: {default}), median of "
        f"{repeats} interleaved runs\n")
  base = t["materializing"]
  rows = [["materializing", f"{temp_bytes(materialized, n, d, v) / MiB:.1f}", f"{base * 1e3:.0f}", "1.000x"]]
  for b in blocks:
    tb = t[f"block {b}"]
    rows.append([f"block {b}" + (" (default)" if b == default else ""),
                 f"{temp_bytes(fused(b), n, d, v) / MiB:.1f}", f"{tb * 1e3:.0f}", f"{tb / base:.3f}x"])
  print_table(["variant", "temp MiB", "ms", "vs materializing"], rows)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--quick", action="store_true", help="memory table and the first timing case only")
  p.add_argument("--time-case", action="append", metavar="N,D,V,DTYPE",
                 help="time these cases instead of the defaults (repeatable), e.g. 8192,4096,128256,bfloat16")
  p.add_argument("--no-blocks", action="store_true", help="skip the block-size table")
  args = p.parse_args()
  print(f"jax {jax.__version__}, {jax.devices()[0].platform}; {allocator_note()}\n")
  memory_table()
  cases = TIME_CASES[:1] if args.quick else TIME_CASES
  if args.time_case:
    cases = [(int(n), int(d), int(v), jnp.dtype(dt)) for n, d, v, dt in (c.split(",") for c in args.time_case)]
  time_table(args.repeats, cases)
  if not (args.quick or args.no_blocks):
    block_table(args.repeats)


if __name__ == "__main__":
  main()
