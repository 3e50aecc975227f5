"""Runs Python in a fresh process, for tests that need JAX's default configuration."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> str:
  """Runs ``python args...`` from the repository root; returns stdout, fails on error."""
  full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
  proc = subprocess.run(
      [sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True,
      text=True, timeout=timeout, check=False,
  )
  assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
  return proc.stdout
