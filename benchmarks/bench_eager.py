"""Eager calls (outside ``jit``): the time of one call, after the first, at small shapes.

A notebook, a test or an evaluation loop outside ``jit`` calls the losses eagerly. jaxnll's kernels are
compiled programs, so an eager call dispatches each kernel once instead of operation by operation; this
table shows what such a call costs next to optax's (eager, op by op) and torch's. Medians of interleaved
calls, in milliseconds.

    python benchmarks/bench_eager.py [--repeats 50] [--quick]
"""

from __future__ import annotations

import os

# torch's OpenMP threads otherwise spin after each call, taking the cores from the variant timed next.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
LOAD_AT_START = os.getloadavg()[0]  # before this script's own imports raise it

import argparse  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _timing import QuietCheck, allocator_note, interleaved_medians, print_table  # noqa: E402

import jaxnll  # noqa: E402


def _problems():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((256, 10)).astype(np.float32)
  y = rng.integers(0, 10, 256).astype(np.int64)
  w = rng.uniform(0.5, 2.0, 10).astype(np.float32)
  h = rng.standard_normal((64, 16)).astype(np.float32)
  cls = rng.standard_normal((100, 16)).astype(np.float32)
  yv = rng.integers(0, 100, 64).astype(np.int64)
  return x, y, w, h, cls, yv


def rows():
  """``name -> {variant: call}``; every call computes the same quantity."""
  x, y, w, h, cls, yv = _problems()
  xj, yj, wj, hj, cj, yvj = (jnp.asarray(a) for a in (x, y.astype(np.int32), w, h, cls, yv.astype(np.int32)))
  xt, yt, wt, ht, ct, yvt = (torch.from_numpy(a) for a in (x, y, w, h, cls, yv))
  xt_g, ht_g = xt.clone().requires_grad_(), ht.clone().requires_grad_()
  ox = optax.losses.softmax_cross_entropy_with_integer_labels

  def torch_grad(loss, leaf):
    def run():
      leaf.grad = None
      loss().backward()
      return leaf.grad
    return run

  return {
      "cross_entropy [256, 10]": {
          "jaxnll": lambda: jaxnll.cross_entropy(xj, yj),
          "optax": lambda: ox(xj, yj).mean(),
          "torch": lambda: F.cross_entropy(xt, yt),
      },
      "cross_entropy weight + label_smoothing [256, 10]": {
          "jaxnll": lambda: jaxnll.cross_entropy(xj, yj, weight=wj, label_smoothing=0.1),
          "torch": lambda: F.cross_entropy(xt, yt, weight=wt, label_smoothing=0.1),
      },
      "grad of cross_entropy [256, 10]": {
          "jaxnll": lambda: jax.grad(lambda a: jaxnll.cross_entropy(a, yj))(xj),
          "optax": lambda: jax.grad(lambda a: ox(a, yj).mean())(xj),
          "torch": torch_grad(lambda: F.cross_entropy(xt_g, yt), xt_g),
      },
      "grad with weight + smoothing [256, 10]": {
          "jaxnll": lambda: jax.grad(lambda a: jaxnll.cross_entropy(a, yj, weight=wj, label_smoothing=0.1))(xj),
          "torch": torch_grad(lambda: F.cross_entropy(xt_g, yt, weight=wt, label_smoothing=0.1), xt_g),
      },
      "linear_cross_entropy [64, 16, 100]": {
          "jaxnll": lambda: jaxnll.linear_cross_entropy(hj, cj, yvj),
          "optax": lambda: ox(hj @ cj.T, yvj).mean(),
          "torch": lambda: F.linear_cross_entropy(ht, ct, yvt),
      },
      "grad of linear_cross_entropy [64, 16, 100]": {
          "jaxnll": lambda: jax.grad(lambda a: jaxnll.linear_cross_entropy(a, cj, yvj))(hj),
          "optax": lambda: jax.grad(lambda a: ox(a @ cj.T, yvj).mean())(hj),
          "torch": torch_grad(lambda: F.linear_cross_entropy(ht_g, ct, yvt), ht_g),
      },
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=50, help="interleaved calls per variant (default: 50)")
  parser.add_argument("--quick", action="store_true", help="3 calls per variant, to check that it runs")
  args = parser.parse_args()
  repeats = 3 if args.quick else args.repeats
  quiet = QuietCheck(LOAD_AT_START)
  torch.set_num_threads(os.cpu_count() or 1)
  table = []
  for name, fns in rows().items():
    ms = {k: 1e3 * v for k, v in interleaved_medians(fns, repeats).items()}
    table.append([name, *(f"{ms[k]:.2f}" if k in ms else "-" for k in ("jaxnll", "optax", "torch")),
                  f"{ms['jaxnll'] / ms['optax']:.2f}" if "optax" in ms else "-",
                  f"{ms['jaxnll'] / ms['torch']:.2f}"])
  print(f"# eager calls, median of {repeats} interleaved calls each (after one untimed call), jax {jax.__version__}, "
        f"torch {torch.__version__}, optax {optax.__version__}")
  print(f"# {allocator_note()}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
  print_table(["case", "jaxnll ms", "optax ms", "torch ms", "jaxnll/optax", "jaxnll/torch"], table)
  is_quiet, text = quiet.report()
  print(f"# {text}{'' if is_quiet else ' -- machine not quiet: not a figure to publish'}")


if __name__ == "__main__":
  main()
