"""Shared timing helpers: interleaved repetitions, medians, allocator note."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import jax
import numpy as np

ALLOCATOR_VARS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")


def allocator_note() -> str:
  tuned = {k: os.environ.get(k) for k in ALLOCATOR_VARS}
  if all(tuned.values()):
    return "allocator tuned: " + " ".join(f"{k}={v}" for k, v in tuned.items())
  return ("allocator NOT tuned (set MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 "
          "MALLOC_TRIM_THRESHOLD_=100000000000 for stable timings)")


def block(out):
  return jax.tree_util.tree_map(
      lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, out
  )


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
  """Runs each variant once per round, ``repeats`` rounds; median seconds per variant."""
  for fn in fns.values():
    block(fn())
  times: dict[str, list[float]] = {k: [] for k in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      block(fn())
      times[name].append(time.perf_counter() - t0)
  return {k: statistics.median(v) for k, v in times.items()}


def copy_bandwidth(nbytes: int, repeats: int = 7) -> float:
  """Measured memory-copy bandwidth in bytes/s (read + write counted)."""
  src = np.ones(nbytes // 4, np.float32)
  dst = np.empty_like(src)
  best = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    np.copyto(dst, src)
    best.append(time.perf_counter() - t0)
  return 2 * nbytes / statistics.median(best)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
  widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
  line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
  print(line)
  print("-+-".join("-" * w for w in widths))
  for r in rows:
    print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def interleaved_samples(
    fns: dict[str, Callable[[], object]], repeats: int, *, setup: Callable[[], object] | None = None,
    warmup: bool = True,
) -> dict[str, list[float]]:
  """Like :func:`interleaved_medians` but returns every sample (seconds).

  ``setup`` runs untimed before each timed call (e.g. ``jax.clear_caches`` when
  timing compilation); ``warmup=False`` skips the untimed first call of each variant.
  """
  if warmup:
    for fn in fns.values():
      if setup is not None:
        setup()
      block(fn())
  times: dict[str, list[float]] = {k: [] for k in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      if setup is not None:
        setup()
      t0 = time.perf_counter()
      block(fn())
      times[name].append(time.perf_counter() - t0)
  return times


def calls_per_sample(fn: Callable[[], object], min_seconds: float = 0.02, cap: int = 64) -> int:
  """How many back-to-back calls of ``fn`` (each blocked on) make one sample last ``min_seconds``."""
  block(fn())
  t0 = time.perf_counter()
  block(fn())
  dt = time.perf_counter() - t0
  return max(1, min(cap, int(min_seconds / max(dt, 1e-6)) + 1)) if dt < min_seconds else 1


def repeated(fn: Callable[[], object], k: int) -> Callable[[], object]:
  """``fn`` called ``k`` times, each result blocked on; returns the last result."""
  if k == 1:
    return fn

  def run():
    out = None
    for _ in range(k):
      out = block(fn())
    return out

  return run


# A run is quiet when the 1-minute load average is at most 0.5 per 2 cores when it starts, and other
# processes use at most as much CPU while it runs. (Its own threads raise the load average, so the load at
# the end says nothing about the others; /proc/stat's busy time minus the run's own CPU time does.)
QUIET_LOAD_PER_CORE = 0.25


def _busy_seconds() -> float | None:
  """CPU-seconds every core has spent busy since boot (Linux's /proc/stat), or None."""
  try:
    with open("/proc/stat") as f:
      ticks = [int(t) for t in f.readline().split()[1:9]]
  except (OSError, ValueError):
    return None
  return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def _own_seconds() -> float:
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


class QuietCheck:
  """Started before a benchmark; ``report()`` after it says whether the machine was quiet."""

  def __init__(self, load: float | None = None) -> None:
    """``load``: the 1-minute load average read before the script's own imports (which raise it)."""
    self.limit = QUIET_LOAD_PER_CORE * (os.cpu_count() or 1)
    if load is None:
      try:
        load = os.getloadavg()[0]
      except OSError:
        load = float("inf")
    self.load = load
    self.wall, self.busy, self.own = time.perf_counter(), _busy_seconds(), _own_seconds()

  def others(self) -> float | None:
    """Cores' worth of CPU that other processes used since the start."""
    busy = _busy_seconds()
    if busy is None or self.busy is None:
      return None
    return max(0.0, (busy - self.busy) - (_own_seconds() - self.own)) / max(time.perf_counter() - self.wall, 1e-9)

  def report(self) -> tuple[bool, str]:
    others = self.others()
    quiet = self.load <= self.limit and others is not None and others <= self.limit
    text = (f"1-minute load {self.load:.2f} at start, other processes {'?' if others is None else f'{others:.2f}'} "
            f"cores during the run (quiet: both at most {self.limit:.2f})")
    return quiet, text
