"""Forward+backward sweep over the shapes users train on: jaxnll vs optax vs torch, one table of ratios.

Every row times its variants side by side in one run (``_timing.interleaved_samples``: each variant once
per round, --repeats rounds) and reports medians; the ratio columns are ratios of those medians, and the
bracket after each is the min-max of the per-round paired ratios (the run's own noise). JAX variants are
``jax.jit(jax.value_and_grad(loss))``; torch is ``loss.backward()``. Calls shorter than 20 ms are repeated
back to back inside one sample (and divided out) so timer and dispatch jitter stay small.

Targets: jaxnll and torch get 10 % ignored targets (-100); optax and plain JAX, which have no
ignore_index, get the same targets with the ignored ones replaced by class 0 (as bench_cross_entropy.py).

Rows (``--rows 1,3,6`` selects):
  1-4  [N, V] float32 cross_entropy; row 3's "note" times single passes over its logits in the same rounds
       (a reduction: one read; x * 2: a read and a write; exp(x - 3): the same with exp), the units the
       kernels' times are made of (cross_entropy: max, exp written, sum, backward = 4 passes, 6 transfers)
  5    [8, 21, 128, 128] float32, axis=1 (segmentation; optax with axis=1, torch native layout)
  6    bf16 [4096, 32000], peers in bf16; "note" is jaxnll bf16 / jaxnll float32 on the same values
  7    jaxnll.nll_loss(jaxnll.log_softmax(x)) vs plain JAX log_softmax + take_along_axis (the optax
       column) vs torch F.nll_loss(F.log_softmax(x)); "note" is this row / jaxnll.cross_entropy, and, timed
       in the same rounds, what the pair adds to it: an [N, C] one-hot array written and summed over the
       classes (log_softmax's backward sums its one-hot cotangent; XLA:CPU stores that array first)
  8    weight + ignore_index + label_smoothing=0.1 vs optax plain (torch with the same options); "note" has
       jaxnll plain / optax and, timed in the same rounds, one read of the logits (sum_c w_c x_c as a
       matrix-vector product), which smoothing adds to the plain kernel's passes
  9    compile time (.lower().compile() of the jitted value_and_grad, jax.clear_caches() before each)
  11   [32, 40, 1024] axis=1 (sequence labelling, (N, C, L)); 12 [2, 8, 32, 64, 64] axis=1 (volumes, (N, C, D, H, W))
  13   row 5 with no ignored targets
  16   [2, 21, 256, 256] axis=1 (segmentation at a small batch: few rows lead the class axis)
  14   per-example gradients: jit(vmap(grad)) of each row's loss [2048, 1000] (torch: torch.func.vmap(grad))
  15   row 10 at [4096, 1024, 50257] (GPT-2's vocabulary)
  10   linear_cross_entropy vs the materializing jaxnll.cross_entropy(h @ W.T, y) (in the optax column),
       gradients w.r.t. h and W; "note" is the compiled temp memory of both (memory_analysis) and, timed in
       the same rounds, the matrix products alone: the fused path's 3 over tiles of tokens (each tile adds into
       the whole [V, D] gradient) / the materializing path's 3 at full size, the bound tiling puts on the row; the
       torch column is torch 2.13's chunked F.linear_cross_entropy(..., options=LinearCrossEntropyOptions())

The header prints the load average and the date; a run whose 1-minute load average is above 0.5 per 2 cores
at its start, or during which other processes used more than that much CPU (/proc/stat's busy time minus the
run's own), is marked "MACHINE NOT QUIET" and is not a figure for the README.

Run: MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
     python benchmarks/bench_sweep.py [--repeats 9] [--rows 1,3,6] [--quick]
"""

from __future__ import annotations

import os

# The 1-minute load average before this script's own imports raise it (read back by QuietCheck).
os.environ["JAXNLL_BENCH_LOAD_AT_START"] = str(os.getloadavg()[0])

# torch's OpenMP threads otherwise spin for a while after each call, taking the
# cores from whichever variant is timed next; sleeping threads keep the
# interleaved runs independent. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import dataclasses
import functools
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import torch.nn.functional as F
from jax import lax

sys.path.insert(0, os.path.dirname(__file__))
from _timing import QuietCheck, allocator_note, calls_per_sample, interleaved_samples, print_table, repeated

import jaxnll

MiB = 2**20
IGNORE = -100

# Row number -> (name, full-size shape, --quick shape).
ROWS: dict[int, tuple[str, tuple[int, ...], tuple[int, ...]]] = {
    1: ("[65536, 10] float32", (65536, 10), (512, 10)),
    2: ("[8192, 1000] float32", (8192, 1000), (64, 100)),
    3: ("[4096, 32000] float32", (4096, 32000), (64, 320)),
    4: ("[512, 128256] float32", (512, 128256), (16, 1283)),
    5: ("[8, 21, 128, 128] float32 axis=1", (8, 21, 128, 128), (2, 5, 8, 8)),
    6: ("bf16 [4096, 32000]", (4096, 32000), (64, 320)),
    7: ("nll_loss(log_softmax(x)) [4096, 32000]", (4096, 32000), (64, 320)),
    8: ("weight+ignore+smoothing [4096, 32000]", (4096, 32000), (64, 320)),
    9: ("compile time value_and_grad [4096, 32000]", (4096, 32000), (64, 320)),
    10: ("linear_cross_entropy [2048, 512, 32768] (optax col: materializing)", (2048, 512, 32768), (64, 32, 512)),
    11: ("[32, 40, 1024] float32 axis=1 (N, C, L)", (32, 40, 1024), (2, 5, 16)),
    12: ("[2, 8, 32, 64, 64] float32 axis=1 (N, C, D, H, W)", (2, 8, 32, 64, 64), (1, 3, 4, 4, 4)),
    13: ("[8, 21, 128, 128] axis=1, no ignored targets", (8, 21, 128, 128), (2, 5, 8, 8)),
    14: ("per-example grads vmap(grad) [2048, 1000]", (2048, 1000), (16, 10)),
    15: ("linear_cross_entropy [4096, 1024, 50257] (optax col: materializing)", (4096, 1024, 50257), (64, 32, 515)),
    16: ("[2, 21, 256, 256] float32 axis=1 (batch of 2)", (2, 21, 256, 256), (1, 3, 4, 4)),
}
# Rows whose targets have no ignored elements (row 13; row 14's per-example losses).
CLEAN_ROWS = (13, 14)


@dataclasses.dataclass
class Result:
  name: str
  samples: dict[str, list[float]]  # "jaxnll" | "optax" | "torch" (+ extras) -> seconds per call
  note: str = ""


def med(xs: list[float]) -> float:
  return statistics.median(xs)


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
  r = [x / y for x, y in zip(a, b, strict=True)]
  return min(r), max(r)


MIN_SAMPLE_S = 0.02  # calls shorter than this are repeated inside one sample; 0 under --quick


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
  """Interleaved samples, seconds per call; short calls repeated inside a sample."""
  # calls_per_sample runs each variant twice, which also serves as the warm-up.
  ks = {name: calls_per_sample(fn, MIN_SAMPLE_S) if MIN_SAMPLE_S else 1 for name, fn in fns.items()}
  samples = interleaved_samples({name: repeated(fn, ks[name]) for name, fn in fns.items()}, repeats,
                                warmup=not MIN_SAMPLE_S)
  return {name: [t / ks[name] for t in ts] for name, ts in samples.items()}


# ---------------------------------------------------------------------------------------------------------
# Problem data and variants.


def class_problem(shape: tuple[int, ...], axis: int, seed: int = 0, ignored: bool = True):
  """float32 logits (NumPy), targets with every 10th element ignored (unless not ``ignored``), and the same
  targets made clean."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(shape, np.float32)
  c = shape[axis]
  tshape = shape[:axis] + shape[axis + 1:]
  y = rng.integers(0, c, tshape).astype(np.int64)
  if ignored:
    y.reshape(-1)[::10] = IGNORE
  clean = np.where(y < 0, 0, y)
  return x, y, clean


def jax_fb(loss: Callable[..., jax.Array], *args) -> Callable[[], object]:
  fn = jax.jit(jax.value_and_grad(loss))
  return lambda: fn(*args)


def torch_fb(loss: Callable[[torch.Tensor], torch.Tensor], x_np: np.ndarray,
             dtype: torch.dtype = torch.float32) -> Callable[[], object]:
  xt = torch.from_numpy(x_np).to(dtype).requires_grad_(True)

  def run():
    xt.grad = None
    out = loss(xt)
    out.backward()
    return out

  return run


def optax_ce(axis: int = -1):
  return lambda x, y: optax.losses.softmax_cross_entropy_with_integer_labels(x, y, axis=axis).mean()


# Single passes over the logits, for reading the kernels' times: a reduction
# reads them once, an elementwise op reads them and writes a result.
PASSES = {
    "read (max)": lambda a: jnp.max(a, axis=-1),
    "read+write (2x)": lambda a: a * 2,
    "read+exp+write": lambda a: jnp.exp(a - 3.0),
}


def row_cross_entropy(name, shape, repeats, axis=-1, passes=False, ignored=True) -> Result:
  x, y, clean = class_problem(shape, axis % len(shape), ignored=ignored)
  xj, yj, cj = jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.asarray(clean, jnp.int32)
  yt = torch.from_numpy(y)
  fns = {
      "jaxnll": jax_fb(lambda a, b: jaxnll.cross_entropy(a, b, axis=axis), xj, yj),
      "optax": jax_fb(optax_ce(axis), xj, cj),
      "torch": torch_fb(lambda a: F.cross_entropy(a, yt), x),  # torch's class axis is 1
  }
  if passes:
    fns.update({k: functools.partial(jax.jit(f), xj) for k, f in PASSES.items()})
  s = timed(fns, repeats)
  note = ("single passes over the logits, ms: " + ", ".join(f"{k} {med(s[k]) * 1e3:.1f}" for k in PASSES)
          if passes else "")
  return Result(name, s, note)


def row_bf16(name, shape, repeats) -> Result:
  x, y, clean = class_problem(shape, 1)
  x32 = jnp.asarray(x)
  xb = x32.astype(jnp.bfloat16)
  x32 = xb.astype(jnp.float32)  # the same values in both dtypes
  yj, cj, yt = jnp.asarray(y, jnp.int32), jnp.asarray(clean, jnp.int32), torch.from_numpy(y)
  ce = lambda a, b: jaxnll.cross_entropy(a, b)
  fns = {
      "jaxnll": jax_fb(ce, xb, yj),
      "jaxnll f32": jax_fb(ce, x32, yj),
      "optax": jax_fb(optax_ce(), xb, cj),
      "torch": torch_fb(lambda a: F.cross_entropy(a, yt), np.array(x32), torch.bfloat16),
  }
  s = timed(fns, repeats)
  lo, hi = paired(s["jaxnll"], s["jaxnll f32"])
  note = (f"jaxnll bf16 / jaxnll f32 = {med(s['jaxnll']) / med(s['jaxnll f32']):.2f} [{lo:.2f}-{hi:.2f}] "
          f"(f32 {med(s['jaxnll f32']) * 1e3:.1f} ms)")
  return Result(name, s, note)


def row_nll(name, shape, repeats) -> Result:
  x, y, clean = class_problem(shape, 1)
  xj, yj, cj = jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.asarray(clean, jnp.int32)
  yt = torch.from_numpy(y)
  v = jnp.asarray(np.random.default_rng(1).standard_normal(shape[0], np.float32))
  fns = {
      "jaxnll": jax_fb(lambda a, b: jaxnll.nll_loss(jaxnll.log_softmax(a), b), xj, yj),
      "jaxnll cross_entropy": jax_fb(lambda a, b: jaxnll.cross_entropy(a, b), xj, yj),
      "optax": jax_fb(lambda a, b: -(jnp.take_along_axis(jax.nn.log_softmax(a), b[:, None], 1)).mean(), xj, cj),
      "torch": torch_fb(lambda a: F.nll_loss(F.log_softmax(a, 1), yt), x),
      # What the pair does beyond cross_entropy: log_softmax's backward sums the
      # one-hot cotangent over the classes, and XLA:CPU writes it whole first.
      "one-hot": functools.partial(jax.jit(one_hot_written_and_summed, static_argnums=2), cj, v, shape[1]),
  }
  s = timed(fns, repeats)
  lo, hi = paired(s["jaxnll"], s["jaxnll cross_entropy"])
  bound = med(s["jaxnll cross_entropy"]) + med(s["one-hot"])
  note = (f"/ jaxnll cross_entropy = {med(s['jaxnll']) / med(s['jaxnll cross_entropy']):.2f} [{lo:.2f}-{hi:.2f}]"
          f" (cross_entropy {med(s['jaxnll cross_entropy']) * 1e3:.1f} ms); cross_entropy + one-hot cotangent "
          f"written and summed ({med(s['one-hot']) * 1e3:.1f} ms) = {bound * 1e3:.1f} ms "
          f"= {bound / med(s['jaxnll cross_entropy']):.2f}x; optax col: plain JAX pair")
  return Result(name, s, note)


def one_hot_written_and_summed(y, v, num_classes):
  """An ``[N, C]`` one-hot array of ``v`` at ``y``, returned (so written) and summed over the classes."""
  hot = jnp.where(lax.broadcasted_iota(jnp.int32, (y.shape[0], num_classes), 1) == y[:, None], v[:, None], 0.0)
  return hot, jnp.sum(hot, axis=1)


def row_options(name, shape, repeats) -> Result:
  x, y, clean = class_problem(shape, 1)
  w = np.random.default_rng(1).uniform(0.5, 2.0, shape[1]).astype(np.float32)
  xj, yj, cj, wj = jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.asarray(clean, jnp.int32), jnp.asarray(w)
  yt, wt = torch.from_numpy(y), torch.from_numpy(w)
  fns = {
      "jaxnll": jax_fb(lambda a, b, c: jaxnll.cross_entropy(a, b, weight=c, ignore_index=IGNORE,
                                                            label_smoothing=0.1), xj, yj, wj),
      "optax": jax_fb(optax_ce(), xj, cj),
      "torch": torch_fb(lambda a: F.cross_entropy(a, yt, weight=wt, ignore_index=IGNORE, label_smoothing=0.1), x),
      "jaxnll plain": jax_fb(lambda a, b: jaxnll.cross_entropy(a, b), xj, yj),
      # What smoothing adds: sum_c w_c x_c per row, one more read of the logits.
      "w.x": functools.partial(jax.jit(lambda a, c: jnp.dot(a, c, precision=lax.Precision.HIGHEST)), xj, wj),
  }
  s = timed(fns, repeats)
  lo, hi = paired(s["jaxnll plain"], s["optax"])
  bound = med(s["jaxnll plain"]) + med(s["w.x"])
  note = (f"optax plain; torch with the same options; jaxnll plain / optax = "
          f"{med(s['jaxnll plain']) / med(s['optax']):.2f} [{lo:.2f}-{hi:.2f}], jaxnll plain + one read of the "
          f"logits for sum w.x ({med(s['w.x']) * 1e3:.1f} ms) = {bound / med(s['optax']):.2f}x optax")
  return Result(name, s, note)


def row_compile(name, shape, repeats, warmup=True) -> Result:
  args = (jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct(shape[:1], jnp.int32))
  losses = {"jaxnll": lambda a, b: jaxnll.cross_entropy(a, b), "optax": optax_ce()}

  def compile_fresh(loss):
    # A fresh jit object each time, so nothing is reused from a previous trace.
    return lambda: jax.jit(jax.value_and_grad(loss)).lower(*args).compile()

  s = interleaved_samples({k: compile_fresh(f) for k, f in losses.items()}, repeats, setup=jax.clear_caches,
                          warmup=warmup)
  return Result(name, s, "trace + lower + compile, jax.clear_caches() before each")


def _dot_t(a, b):
  return lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)


def matmul_skeletons(n: int, v: int):
  """The matrix products alone, with one cheap elementwise op standing in for the loss's:

  * ``3 dots``: the materializing path's logits, ``dX @ W`` and ``dX.T @ h`` at full size;
  * ``3 tiled``: the fused path's structure (gradients formed in the forward), over tiles of
    ``eager_chunk(n, v, 1)`` tokens: each tile's logits, ``dX @ W`` for its rows of ``dh``, and ``dX.T @ h``
    added into the whole ``[V, D]`` accumulator (jaxnll's own blocked accumulation).

  Their time ratio is what tiling the tokens costs on this machine (the accumulator is read and
  written once per tile): the bound on fused / materializing that no elementwise tuning removes.
  """
  from jaxnll._linear_cross_entropy import _accumulate_classifier_grad, eager_arrays, eager_chunk

  size = eager_chunk(n, v, eager_arrays(False, 0.0, None, False))  # the rows' case: class indices, no options

  def three(h, w):
    g = _dot_t(h, w) * 1e-3
    return g @ w, lax.dot_general(g, h, (((0,), (0,)), ((), ())))

  def tiled(h, w):
    def tile(i, carry):
      dh, dw = carry
      start = jnp.minimum(i * size, h.shape[0] - size)  # the last tile overlaps the one before, as jaxnll's
      h_c = lax.dynamic_slice_in_dim(h, start, size, 0)
      g = _dot_t(h_c, w) * 1e-3
      dh = lax.dynamic_update_slice_in_dim(dh, g @ w, start, 0)
      return dh, _accumulate_classifier_grad(dw, g, h_c, jnp.float32)

    return lax.fori_loop(0, -(-h.shape[0] // size), tile, (jnp.zeros_like(h), jnp.zeros_like(w)))

  return jax.jit(three), jax.jit(tiled), size


def row_per_example(name, shape, repeats) -> Result:
  """Per-example gradients: ``vmap(grad)`` of each row's loss (torch: ``torch.func.vmap(grad)``)."""
  x, _, clean = class_problem(shape, 1, ignored=False)
  xj, cj = jnp.asarray(x), jnp.asarray(clean, jnp.int32)

  def per_example(loss):
    fn = jax.jit(jax.vmap(jax.grad(loss)))
    return lambda: fn(xj, cj)

  import torch.func

  yt = torch.from_numpy(clean)
  xt = torch.from_numpy(x)
  torch_fn = torch.func.vmap(torch.func.grad(lambda a, b: F.cross_entropy(a[None], b[None])))
  fns = {
      "jaxnll": per_example(lambda a, b: jaxnll.cross_entropy(a, b)),
      "optax": per_example(lambda a, b: optax.losses.softmax_cross_entropy_with_integer_labels(a, b)),
      "torch": lambda: torch_fn(xt, yt),
  }
  return Result(name, timed(fns, repeats))


def row_linear(name, shape, repeats) -> Result:
  n, d, v = shape
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.standard_normal((n, d), np.float32))
  w = jnp.asarray(rng.standard_normal((v, d), np.float32) / np.sqrt(d))
  y = jnp.asarray(rng.integers(0, v, n), jnp.int32)
  fused = lambda a, b, c: jaxnll.linear_cross_entropy(a, b, c)
  mat = lambda a, b, c: jaxnll.cross_entropy(jnp.einsum("nd,vd->nv", a, b, preferred_element_type=jnp.float32), c)

  def program(f):
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

  # One compilation each, used for both the memory figure and the timing.
  exe = {k: program(f).lower(h, w, y).compile() for k, f in (("jaxnll", fused), ("optax", mat))}
  temp = {k: e.memory_analysis().temp_size_in_bytes / MiB for k, e in exe.items()}
  fns = {k: functools.partial(e, h, w, y) for k, e in exe.items()}
  three, tiled, tokens = matmul_skeletons(n, v)
  fns["3 dots"], fns["3 tiled"] = functools.partial(three, h, w), functools.partial(tiled, h, w)
  chunked = getattr(torch.nn, "LinearCrossEntropyOptions", None)
  if chunked is not None:  # torch 2.13's chunked F.linear_cross_entropy, gradients w.r.t. h and W
    ht = torch.from_numpy(np.asarray(h)).requires_grad_(True)
    wt = torch.from_numpy(np.asarray(w)).requires_grad_(True)
    yt = torch.from_numpy(np.asarray(y).astype(np.int64))

    def torch_chunked():
      ht.grad = wt.grad = None
      out = F.linear_cross_entropy(ht, wt, yt, options=chunked())
      out.backward()
      return out

    fns["torch"] = torch_chunked
  s = timed(fns, repeats)
  lo, hi = paired(s["3 tiled"], s["3 dots"])
  note = (f"temp MiB: fused {temp['jaxnll']:.1f} vs materializing {temp['optax']:.1f}; matmuls alone: "
          f"3 tiled ({tokens} tokens) / 3 full = {med(s['3 tiled']) / med(s['3 dots']):.2f} [{lo:.2f}-{hi:.2f}]")
  return Result(name, s, note)


def run_row(i: int, quick: bool, repeats: int) -> Result:
  name, full, small = ROWS[i]
  shape = small if quick else full
  if quick:
    name = f"{name} (quick: {list(shape)})"
  if i in (1, 2, 3, 4):
    return row_cross_entropy(name, shape, repeats, passes=i == 3)
  if i == 5:
    return row_cross_entropy(name, shape, repeats, axis=1)
  if i == 6:
    return row_bf16(name, shape, repeats)
  if i == 7:
    return row_nll(name, shape, repeats)
  if i == 8:
    return row_options(name, shape, repeats)
  if i == 9:
    return row_compile(name, shape, 1 if quick else min(repeats, 5), warmup=not quick)
  if i in (11, 12, 13, 16):
    return row_cross_entropy(name, shape, repeats, axis=1, ignored=i not in CLEAN_ROWS)
  if i == 14:
    return row_per_example(name, shape, repeats)
  return row_linear(name, shape, repeats)


def load_average() -> str:
  try:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
  except OSError:
    return "load average unknown"


def fmt_ms(s: dict[str, list[float]], k: str) -> str:
  return f"{med(s[k]) * 1e3:.1f}" if k in s else "-"


def fmt_ratio(s: dict[str, list[float]], a: str, b: str) -> str:
  if a not in s or b not in s:
    return "-"
  lo, hi = paired(s[a], s[b])
  return f"{med(s[a]) / med(s[b]):.2f} [{lo:.2f}-{hi:.2f}]"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--repeats", type=int, default=9, help="interleaved rounds per row (compile row: at most 5)")
  p.add_argument("--rows", default=",".join(map(str, ROWS)), help="comma-separated row numbers, e.g. 1,3,6")
  p.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats (compile row: 1): a smoke run")
  args = p.parse_args()
  rows = [int(r) for r in args.rows.split(",") if r.strip()]
  unknown = sorted(set(rows) - set(ROWS))
  if unknown:
    p.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
  repeats = 2 if args.quick else args.repeats
  if args.quick:
    global MIN_SAMPLE_S
    MIN_SAMPLE_S = 0.0
  torch.set_num_threads(os.cpu_count() or 1)

  print(f"jaxnll {jaxnll.__version__} sweep, forward+backward; CPU x{os.cpu_count()} "
        f"(torch threads {torch.get_num_threads()}), jax {jax.__version__} ({jax.devices()[0].platform}), "
        f"optax {optax.__version__}, torch {torch.__version__}")
  print(allocator_note() + f"; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} (torch's idle threads sleep)")
  load = load_average()
  check = QuietCheck(float(os.environ["JAXNLL_BENCH_LOAD_AT_START"]))
  print(f"median of {repeats} interleaved rounds per row; [min-max] of the per-round paired ratios; {load} "
        f"at start; {time.strftime('%Y-%m-%d %H:%M')}")
  print("JAX: jit(value_and_grad), torch: loss.backward(); jaxnll and torch get 10 % ignored targets (-100), "
        "optax / plain JAX the same targets made valid.\nRow 7's optax column is plain JAX log_softmax + "
        "take_along_axis; row 10's is the materializing jaxnll.cross_entropy(h @ W.T, y).\n", flush=True)

  results = []
  t_start = time.perf_counter()
  for i in rows:
    t0 = time.perf_counter()
    results.append((i, run_row(i, args.quick, repeats)))
    print(f"  row {i} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

  table = []
  for i, r in results:
    s = r.samples
    table.append([str(i), r.name, fmt_ms(s, "jaxnll"), fmt_ms(s, "optax"),
                  fmt_ms(s, "torch"), fmt_ratio(s, "jaxnll", "optax"), fmt_ratio(s, "jaxnll", "torch"), r.note])
  quiet_run, quiet_text = check.report()
  if not quiet_run:
    print(f"MACHINE NOT QUIET ({quiet_text}): these figures are not for the README")
  print_table(["#", "case", "jaxnll ms", "optax ms", "torch ms", "jaxnll/optax", "jaxnll/torch", "note"], table)
  load = load_average()
  print(f"\ntotal {time.perf_counter() - t_start:.0f} s; {load} at end; {quiet_text}"
        + ("" if quiet_run else "; machine not quiet"))


if __name__ == "__main__":
  main()
