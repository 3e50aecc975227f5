"""cross_entropy forward+backward vs optax and torch, [N, V] float32 logits on CPU.

Run: MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
     python benchmarks/bench_cross_entropy.py [--n 4096] [--v 32000] [--repeats 15]
"""

from __future__ import annotations

import os

# torch's OpenMP threads otherwise spin for a while after each call, taking the
# cores from whichever variant is timed next; sleeping threads keep the
# interleaved runs independent. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from _timing import allocator_note, copy_bandwidth, interleaved_medians, print_table

import jaxnll


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--n", type=int, default=4096)
  p.add_argument("--v", type=int, default=32000)
  p.add_argument("--repeats", type=int, default=15)
  args = p.parse_args()
  n, v = args.n, args.v
  torch.set_num_threads(os.cpu_count() or 1)
  rng = np.random.default_rng(0)
  logits_np = rng.standard_normal((n, v), np.float32)
  targets_np = rng.integers(0, v, n)
  targets_np[::10] = -100
  weight_np = rng.uniform(0.5, 2.0, v).astype(np.float32)
  logits, targets, weight = jnp.asarray(logits_np), jnp.asarray(targets_np), jnp.asarray(weight_np)
  clean_targets = jnp.asarray(np.where(targets_np < 0, 0, targets_np))

  plain = jax.jit(jax.value_and_grad(lambda x, y: jaxnll.cross_entropy(x, y)))
  full = jax.jit(jax.value_and_grad(lambda x, y, w: jaxnll.cross_entropy(
      x, y, weight=w, ignore_index=-100, label_smoothing=0.1)))
  opt = jax.jit(jax.value_and_grad(
      lambda x, y: optax.losses.softmax_cross_entropy_with_integer_labels(x, y).mean()))
  xt = torch.from_numpy(logits_np).requires_grad_(True)
  yt = torch.from_numpy(targets_np)

  def torch_fb():
    xt.grad = None
    loss = F.cross_entropy(xt, yt)
    loss.backward()
    return loss

  times = interleaved_medians({
      "jaxnll plain": lambda: plain(logits, targets),
      "jaxnll weight+ignore+smoothing": lambda: full(logits, targets, weight),
      "optax integer labels (plain)": lambda: opt(logits, clean_targets),
      "torch F.cross_entropy": torch_fb,
  }, args.repeats)

  nbytes = logits_np.nbytes
  bound = 3 * nbytes / copy_bandwidth(nbytes)
  base = times["optax integer labels (plain)"]
  tt = times["torch F.cross_entropy"]
  print(f"cross_entropy forward+backward, [{n}, {v}] float32, CPU x{os.cpu_count()}, "
        f"jax {jax.__version__}, torch {torch.__version__}, optax {optax.__version__}")
  print(allocator_note() + f"; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} (torch's idle threads sleep)")
  print(f"median of {args.repeats} interleaved runs; bandwidth bound = 3 x logits bytes / "
        f"measured copy bandwidth = {bound * 1e3:.1f} ms\n")
  rows = [[name, f"{t * 1e3:.1f}", f"{t / base:.2f}x", f"{t / tt:.2f}x", f"{t / bound:.2f}x"]
          for name, t in times.items()]
  print_table(["variant", "ms", "vs optax", "vs torch", "vs bound"], rows)


if __name__ == "__main__":
  main()
