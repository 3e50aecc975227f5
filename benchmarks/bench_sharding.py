"""What a vocab-parallel linear_cross_entropy step communicates and holds, per device.

Compiles forward+backward (gradients w.r.t. embeddings, classifier, bias and
class weights) on a simulated 4 x 2 (data x model) CPU mesh from shapes only,
and prints each variant's per-device temporary memory and its collectives:

* vocab-parallel: ``linear_cross_entropy(..., vocab_axis="model", batch_axis="data")`` in ``shard_map``;
* jit fused: the same call under plain ``jit`` with sharded inputs (the partitioner's choice);
* jit materialized: ``cross_entropy(h @ W.T + b, ...)`` under ``jit`` with the same shardings.

Run: python benchmarks/bench_sharding.py [--n 8192] [--d 512] [--v 32768]
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import argparse
import collections
import sys

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

sys.path.insert(0, os.path.dirname(__file__))
from _hlo import collectives
from _timing import print_table

import jaxnll

SPECS = (P("data", None), P("model", None), P("model"), P("model"), P("data"))
OPTIONS = dict(label_smoothing=0.1, z_loss=1e-4)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--n", type=int, default=8192, help="tokens in the global batch")
  p.add_argument("--d", type=int, default=512)
  p.add_argument("--v", type=int, default=32768)
  args = p.parse_args()
  n, d, v = args.n, args.d, args.v
  mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))
  shapes = (jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((v, d), jnp.float32),
            jax.ShapeDtypeStruct((v,), jnp.float32), jax.ShapeDtypeStruct((v,), jnp.float32),
            jax.ShapeDtypeStruct((n,), jnp.int32))

  def vocab_parallel(h, w, b, wt, y):
    return jaxnll.linear_cross_entropy(h, w, y, bias=b, weight=wt, vocab_axis="model", batch_axis="data",
                                       **OPTIONS)

  def fused(h, w, b, wt, y):
    return jaxnll.linear_cross_entropy(h, w, y, bias=b, weight=wt, **OPTIONS)

  def materialized(h, w, b, wt, y):
    return jaxnll.cross_entropy(h @ w.T + jnp.broadcast_to(b, (n, v)), y, weight=wt, **OPTIONS)

  variants = {
      "vocab-parallel (shard_map)": jax.shard_map(vocab_parallel, mesh=mesh, in_specs=SPECS, out_specs=P()),
      "jit fused": fused,
      "jit materialized": materialized,
  }
  print(f"forward+backward, N={n} tokens, D={d}, V={v}, float32, mesh data=4 x model=2 "
        f"({jax.device_count()} {jax.devices()[0].platform} devices); per device: {n // 4} tokens, "
        f"{v // 2} classes\n")
  rows = []
  for name, fn in variants.items():
    step = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2, 3)),
                   in_shardings=[NamedSharding(mesh, s) for s in SPECS])
    compiled = step.lower(*shapes).compile()
    found = collections.Counter(collectives(compiled.as_text()))
    listing = "; ".join(f"{k} {t}" + (f" x{c}" if c > 1 else "") for (k, t), c in sorted(found.items()))
    rows.append([name, f"{compiled.memory_analysis().temp_size_in_bytes / 2**20:.1f}", listing])
  print_table(["variant", "temp MiB / device", "collectives (result types)"], rows)


if __name__ == "__main__":
  main()
