"""CTC forward+backward: jaxnll vs optax vs torch on speech, BPE and OCR shapes, plus compiled temp memory.

Each variant is the gradient of the summed per-sequence losses with respect to the logits, through
``log_softmax``: ``jax.jit(jax.value_and_grad(...))`` with targets and lengths as jit arguments for JAX
(optax with the equivalent paddings), ``loss.backward()`` for torch (2 threads). Rows time the variants
side by side (``_timing.interleaved_samples``: each variant once per round, --repeats rounds); the ratios
are ratios of the medians, with the min-max of the per-round paired ratios in brackets. Calls shorter than
20 ms are repeated back to back inside one sample and divided out. "temp MiB" is the compiled program's
temporary memory (``memory_analysis().temp_size_in_bytes``). The last column is the bound: the loss's two
recursions over T (forward alphas, backward betas) timed alone, and the same scans with empty steps.

Run: MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
     python benchmarks/bench_ctc.py [--repeats 9] [--quick]
"""

from __future__ import annotations

import os

# The 1-minute load average before this script's own imports raise it (read back by QuietCheck).
os.environ["JAXNLL_BENCH_LOAD_AT_START"] = str(os.getloadavg()[0])

# torch's OpenMP threads otherwise spin after each call, taking the cores from the next variant.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import subprocess
import sys

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
# name -> (T, N, C, S) full size, and the --quick size
SHAPES = {
    "speech": ((400, 16, 32, 100), (40, 4, 8, 10)),
    "BPE": ((200, 16, 1024, 60), (20, 4, 64, 6)),
    "OCR": ((64, 64, 100, 20), (16, 8, 20, 4)),
}


def make_case(t: int, n: int, c: int, s: int, seed: int = 0):
  """Logits ``[N, T, C]``, labels ``[N, S]`` in ``1..C-1``, lengths with some padding on both."""
  rng = np.random.default_rng(seed)
  logits = rng.standard_normal((n, t, c)).astype(np.float32)
  labels = rng.integers(1, c, (n, s)).astype(np.int32)
  target_lengths = rng.integers(max(1, s // 2), s + 1, n).astype(np.int32)
  input_lengths = rng.integers(max(t * 3 // 4, 2 * s + 1), t + 1, n).astype(np.int32)
  input_lengths[0], target_lengths[0] = t, s
  return logits, labels, input_lengths, target_lengths


def jaxnll_fn(logits, labels, input_lengths, target_lengths):
  lp = jax.nn.log_softmax(logits)
  return jnp.sum(jaxnll.ctc_loss(lp, labels, input_lengths, target_lengths, reduction="none", batch_first=True))


def optax_fn(logits, labels, input_lengths, target_lengths):
  t, s = logits.shape[1], labels.shape[1]
  logit_paddings = (jnp.arange(t)[None, :] >= input_lengths[:, None]).astype(logits.dtype)
  label_paddings = (jnp.arange(s)[None, :] >= target_lengths[:, None]).astype(logits.dtype)
  return jnp.sum(optax.ctc_loss(logits, logit_paddings, labels, label_paddings))


def torch_step(logits, labels, input_lengths, target_lengths):
  x = torch.from_numpy(logits.transpose(1, 0, 2).copy()).requires_grad_(True)
  y, il, tl = (torch.from_numpy(a.astype(np.int64)) for a in (labels, input_lengths, target_lengths))

  def run():
    x.grad = None
    loss = F.ctc_loss(torch.log_softmax(x, -1), y, il, tl, reduction="sum")
    loss.backward()
    return loss

  return run


def recursion_skeletons(t: int, n: int, s: int):
  """What bounds the loss: its two sequential recursions over ``T`` frames alone (the forward alphas and
  the backward betas, on ``[T, N, 2S + 1]`` emissions already gathered), and the same two scans with an
  empty body (one add per state: the loop's own cost per frame)."""
  from jaxnll._ctc import alpha_recursion

  j = 2 * s + 1
  em = jnp.asarray(np.random.default_rng(1).standard_normal((t, n, j)).astype(np.float32) - 3.0)
  valid, skip = jnp.ones((t, n), bool), jnp.ones((n, j), bool)

  def two_recursions(e):
    return alpha_recursion(e, valid, skip)[0], alpha_recursion(e[::-1], valid, skip)[0]

  def two_empty_scans(e):
    scan = lambda x: lax.scan(lambda a, f: (a + f, None), jnp.zeros((n, j), x.dtype), x)[0]
    return scan(e), scan(e[::-1])

  rec, empty = jax.jit(two_recursions), jax.jit(two_empty_scans)
  return (lambda: rec(em)), (lambda: empty(em))


def uptime() -> str:
  try:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
  except OSError:
    return "uptime unavailable"


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--repeats", type=int, default=9, help="interleaved rounds per row")
  p.add_argument("--quick", action="store_true", help="tiny shapes, 3 rounds (a smoke test)")
  args = p.parse_args(argv)
  repeats = 3 if args.quick else args.repeats
  torch.set_num_threads(2)
  print(f"# load at start: {uptime()}")
  check = QuietCheck(float(os.environ["JAXNLL_BENCH_LOAD_AT_START"]))
  print(f"# jax {jax.__version__}, optax {optax.__version__}, torch {torch.__version__} (2 threads), "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; {allocator_note()}")
  rows = []
  for name, (full, quick) in SHAPES.items():
    t, n, c, s = quick if args.quick else full
    case = make_case(t, n, c, s)
    dev = [jnp.asarray(a) for a in case]
    # Compiled once, ahead of time: the same executables are timed and measured.
    jx = jax.jit(jax.value_and_grad(jaxnll_fn)).lower(*dev).compile()
    ox = jax.jit(jax.value_and_grad(optax_fn)).lower(*dev).compile()
    np.testing.assert_allclose(jx(*dev)[0], ox(*dev)[0], rtol=1e-4)
    fns = {"jaxnll": lambda f=jx, a=dev: f(*a), "optax": lambda f=ox, a=dev: f(*a), "torch": torch_step(*case)}
    fns["recursions"], fns["empty scans"] = recursion_skeletons(t, n, s)
    reps = {k: calls_per_sample(f) for k, f in fns.items()}
    fns = {k: repeated(f, reps[k]) for k, f in fns.items()}
    samples = interleaved_samples(fns, repeats)
    med = {k: statistics.median(v) / reps[k] * 1e3 for k, v in samples.items()}
    paired = {k: [a / b for a, b in zip(samples["jaxnll"], samples[k], strict=True)] for k in ("optax", "torch")}
    ratio = {k: med["jaxnll"] / med[k] for k in ("optax", "torch")}
    mem = {k: f.memory_analysis().temp_size_in_bytes / MiB for k, f in (("jaxnll", jx), ("optax", ox))}
    spread = {k: f"[{min(v) * reps[k] / reps['jaxnll']:.2f}-{max(v) * reps[k] / reps['jaxnll']:.2f}]"
              for k, v in paired.items()}
    rows.append([
        f"{name} [T={t}, N={n}, C={c}, S={s}]", f"{med['jaxnll']:.2f}", f"{med['optax']:.2f}", f"{med['torch']:.2f}",
        f"{ratio['optax']:.2f}x {spread['optax']}", f"{ratio['torch']:.2f}x {spread['torch']}",
        f"{mem['jaxnll']:.1f} / {mem['optax']:.1f}",
        f"{med['recursions']:.2f} / {med['empty scans']:.2f} ({med['recursions'] / med['jaxnll']:.0%} of jaxnll)",
    ])
  print_table(["# shape", "jaxnll ms", "optax ms", "torch ms", "jaxnll/optax", "jaxnll/torch",
               "temp MiB jaxnll / optax", "2 recursions / 2 empty scans ms"], rows)
  print("# the last column times, in the same rounds, the two sequential recursions over T alone (alphas and "
        "betas on gathered emissions) and two scans of T empty steps: the part no vectorization removes")
  print(f"# load at end: {uptime()}")
  quiet, text = check.report()
  print(f"# {text}" + ("" if quiet else "; MACHINE NOT QUIET: these figures are not for the README"))


if __name__ == "__main__":
  main()
