"""linear_cross_entropy vs the materializing path, cross_entropy(h @ W.T, y), and torch: memory and time.

Memory is the compiled program's temporary allocation for forward+backward
(gradients w.r.t. embeddings and classifier),
``jax.jit(jax.value_and_grad(f, argnums=(0, 1))).lower(...).compile().memory_analysis().temp_size_in_bytes``,
compiled from shapes only (nothing is allocated), so it is deterministic. ``fused`` is the default
(eager gradients for a reduced loss), ``streaming`` an explicit ``block_size`` (the least memory).

Time is forward+backward on CPU, variants interleaved (one call of each per round), median over
rounds, with the [min-max] of the per-round ratios. torch 2.13's chunked
``F.linear_cross_entropy(..., options=torch.nn.LinearCrossEntropyOptions())`` runs with
``loss.backward()`` on as many threads as JAX has cores (``OMP_WAIT_POLICY=PASSIVE``, set before torch
is imported, so its idle threads do not take the cores from the next variant). The load average is
printed at the start and the end: on a shared machine the ratios, not the milliseconds, carry over.

Run: MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
     python benchmarks/bench_linear_cross_entropy.py [--repeats 7] [--quick] [--no-torch]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import functools
import statistics
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import allocator_note, interleaved_samples, print_table

import jaxnll
from jaxnll._linear_cross_entropy import default_block_size

MiB = 2**20
# (N tokens, D, V, dtype): the case, GPT-2/Llama-2/Gemma-ish vocabularies, Llama-3 8B.
MEMORY_CASES = [
    (2048, 512, 32768, jnp.float32),
    (4096, 768, 50257, jnp.float32),
    (4096, 1024, 50257, jnp.float32),
    (4096, 2048, 256000, jnp.bfloat16),
    (8192, 4096, 128256, jnp.float32),
    (8192, 4096, 128256, jnp.bfloat16),
]
TIME_CASES = [(2048, 512, 32768, jnp.float32), (4096, 1024, 50257, jnp.float32)]
BLOCKS = [128, 256, 512, 1024, 4096]


def load() -> str:
  try:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    one, five, fifteen = os.getloadavg()
    return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f}"


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
    block = default_block_size(n, v)
    mat, ours, stream = (temp_bytes(f, n, d, v, dtype) for f in (materialized, fused(), fused(block)))
    rows.append([f"{n} x {d} x {v}", jnp.dtype(dtype).name, str(block), f"{mat / MiB:.1f}", f"{ours / MiB:.1f}",
                 f"{stream / MiB:.1f}", f"{100 * ours / mat:.2f}%"])
  print_table(["N x D x V", "dtype", "block", "materializing MiB", "fused MiB", "streaming MiB",
               "fused / mat"], rows)


def problem(n, d, v, dtype=jnp.float32):
  rng = np.random.default_rng(0)
  h = rng.standard_normal((n, d), np.float32)
  w = (rng.standard_normal((v, d), np.float32) / np.sqrt(d)).astype(np.float32)
  y = rng.integers(0, v, n)
  return h, w, y, (jnp.asarray(h, dtype), jnp.asarray(w, dtype), jnp.asarray(y, jnp.int32))


def torch_variant(h, w, y):
  """torch's chunked linear_cross_entropy, forward + backward (gradients of input and weight)."""
  import torch
  import torch.nn.functional as F

  torch.set_num_threads(os.cpu_count() or 1)
  ht = torch.from_numpy(h).requires_grad_(True)
  wt = torch.from_numpy(w).requires_grad_(True)
  yt = torch.from_numpy(y.astype(np.int64))
  options = torch.nn.LinearCrossEntropyOptions()

  def run():
    ht.grad = wt.grad = None
    F.linear_cross_entropy(ht, wt, yt, options=options).backward()
    return ht.grad

  return run


def ratio_text(samples, name, base="materializing") -> str:
  """Median of the per-round ratios to ``base``, with their [min-max]."""
  r = [a / b for a, b in zip(samples[name], samples[base], strict=True)]
  return f"{statistics.median(r):.3f}x [{min(r):.2f}-{max(r):.2f}]"


def time_table(repeats: int, cases, with_torch: bool) -> None:
  device = jax.devices()[0]
  where = f"CPU x{os.cpu_count()}" if device.platform == "cpu" else device.device_kind
  print(f"\nForward+backward time, {where}, median of {repeats} interleaved rounds "
        "(ratios: median of per-round ratios to materializing, [min-max])\n")
  rows = []
  for n, d, v, dtype in cases:
    h_np, w_np, y_np, (h, w, y) = problem(n, d, v, dtype)
    block = default_block_size(n, v)
    jitted = {"materializing": jax.jit(jax.value_and_grad(materialized, argnums=(0, 1))),
              "fused": jax.jit(jax.value_and_grad(fused(), argnums=(0, 1))),
              "streaming": jax.jit(jax.value_and_grad(fused(block), argnums=(0, 1)))}
    fns = {k: functools.partial(f, h, w, y) for k, f in jitted.items()}
    if with_torch and dtype == jnp.float32:
      fns["torch chunked"] = torch_variant(h_np, w_np, y_np)
    s = interleaved_samples(fns, repeats)
    med = {k: statistics.median(x) for k, x in s.items()}
    row = [f"{n} x {d} x {v}", jnp.dtype(dtype).name, f"{med['materializing'] * 1e3:.0f}",
           f"{med['fused'] * 1e3:.0f}", ratio_text(s, "fused"), f"{med['streaming'] * 1e3:.0f}",
           ratio_text(s, "streaming")]
    row += ([f"{med['torch chunked'] * 1e3:.0f}", ratio_text(s, "torch chunked")] if "torch chunked" in s
            else ["-", "-"])
    rows.append(row)
  print_table(["N x D x V", "dtype", "mat ms", "fused ms", "fused / mat", "streaming ms", "streaming / mat",
               "torch chunked ms", "torch / mat"], rows)


def block_table(repeats: int) -> None:
  n, d, v, _ = TIME_CASES[0]
  *_, (h, w, y) = problem(n, d, v)
  default = default_block_size(n, v)
  blocks = sorted(set(BLOCKS) | {default})
  fns = {"materializing": jax.jit(jax.value_and_grad(materialized, argnums=(0, 1))),
         "fused (eager)": jax.jit(jax.value_and_grad(fused(), argnums=(0, 1)))}
  fns.update({f"block {b}": jax.jit(jax.value_and_grad(fused(b), argnums=(0, 1))) for b in blocks})
  s = interleaved_samples({k: functools.partial(f, h, w, y) for k, f in fns.items()}, repeats)
  print(f"\nBlock-size trade-off of the streaming path, {n} x {d} x {v} float32 (default block: {default}), "
        f"median of {repeats} interleaved rounds\n")
  rows = [["materializing", f"{temp_bytes(materialized, n, d, v) / MiB:.1f}",
           f"{statistics.median(s['materializing']) * 1e3:.0f}", "1.000x"],
          ["fused (eager)", f"{temp_bytes(fused(), n, d, v) / MiB:.1f}",
           f"{statistics.median(s['fused (eager)']) * 1e3:.0f}", ratio_text(s, "fused (eager)")]]
  for b in blocks:
    rows.append([f"block {b}" + (" (default)" if b == default else ""), f"{temp_bytes(fused(b), n, d, v) / MiB:.1f}",
                 f"{statistics.median(s[f'block {b}']) * 1e3:.0f}", ratio_text(s, f"block {b}")])
  print_table(["variant", "temp MiB", "ms", "vs materializing"], rows)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--quick", action="store_true", help="memory table and the first timing case only")
  p.add_argument("--time-case", action="append", metavar="N,D,V,DTYPE",
                 help="time these cases instead of the defaults (repeatable), e.g. 8192,4096,128256,bfloat16")
  p.add_argument("--no-blocks", action="store_true", help="skip the block-size table")
  p.add_argument("--no-torch", action="store_true", help="skip torch's chunked linear_cross_entropy")
  p.add_argument("--no-memory", action="store_true", help="skip the memory table")
  args = p.parse_args()
  print(f"start: {load()}")
  print(f"jax {jax.__version__}, {jax.devices()[0].platform}; {allocator_note()}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}\n")
  if not args.no_memory:
    memory_table()
  cases = TIME_CASES[:1] if args.quick else TIME_CASES
  if args.time_case:
    cases = [(int(n), int(d), int(v), jnp.dtype(dt)) for n, d, v, dt in (c.split(",") for c in args.time_case)]
  time_table(args.repeats, cases, not args.no_torch)
  if not (args.quick or args.no_blocks):
    block_table(args.repeats)
  print(f"\nend: {load()}")


if __name__ == "__main__":
  main()
