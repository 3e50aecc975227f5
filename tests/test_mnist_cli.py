"""examples/mnist.py refuses bad flags before loading anything and bad data with a message naming the file."""

import gzip
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import jaxnll
from tests._subprocess import ROOT

TRAIN, TEST = 100, 40


def _mnist(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  started = time.perf_counter()
  proc = subprocess.run([sys.executable, "examples/mnist.py", "--no-progress", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)
  return proc, time.perf_counter() - started


def _idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
  header = struct.pack(">HBB", 0, dtype_code, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
  return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def idx_dir(tmp_path):
  """A small, valid MNIST-format data set: random images, labels cycling over the digits."""
  rng = np.random.default_rng(0)
  for prefix, n in (("train", TRAIN), ("t10k", TEST)):
    (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(_idx_bytes(rng.integers(0, 256, (n, 28, 28))))
    (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes(np.arange(n) % 10))
  return tmp_path


def test_help_shows_defaults():
  proc, _ = _mnist("--help")
  assert proc.returncode == 0, proc.stderr
  for text in ("--epochs N", "(default: 12)", "(default: 64)", "(default: 0.002)", "(default: 0.05)"):
    assert text in proc.stdout, proc.stdout


@pytest.mark.parametrize("flag, value", [
    ("--epochs", "0"), ("--epochs", "two"), ("--batch-size", "0"), ("--batch-size", "-3"),
    ("--lr", "-1"), ("--lr", "0"), ("--lr", "inf"), ("--lr", "nan"),
    ("--label-smoothing", "1"), ("--label-smoothing", "-0.1"), ("--seed", "-1"),
    ("--data-dir", "/nonexistent/mnist"),
])
def test_bad_flags_fail_fast_naming_the_flag(flag, value):
  proc, seconds = _mnist(flag, value)
  assert proc.returncode == 2, proc.stderr
  assert f"argument {flag}:" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
  assert seconds < 3, f"{seconds:.1f} s: the flags must be checked before loading anything"


def test_batch_larger_than_the_training_set(idx_dir):
  proc, _ = _mnist("--data-dir", str(idx_dir), "--batch-size", "1000")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert "argument --batch-size: 1000" in proc.stderr and f"{TRAIN} training images" in proc.stderr, proc.stderr


def _truncate(path, nbytes):
  path.write_bytes(path.read_bytes()[:-nbytes])


def _gzip_then_cut(path):
  data = gzip.compress(path.read_bytes())
  path.unlink()
  path.with_name(path.name + ".gz").write_bytes(data[: len(data) // 2])


def _not_gzip(path):
  data = path.read_bytes()
  path.unlink()
  path.with_name(path.name + ".gz").write_bytes(data)


CORRUPTIONS = {
    "truncated data": ("train-images-idx3-ubyte", lambda p: _truncate(p, 100), "truncated: the header announces"),
    "truncated header": ("t10k-labels-idx1-ubyte", lambda p: p.write_bytes(p.read_bytes()[:6]),
                         "truncated inside the IDX header"),
    "empty file": ("train-labels-idx1-ubyte", lambda p: p.write_bytes(b""), "too short for an IDX header"),
    "trailing bytes": ("t10k-images-idx3-ubyte", lambda p: p.write_bytes(p.read_bytes() + b"\0" * 7),
                       "7 bytes after the 40 x 28 x 28 array"),
    "labels given as images": ("train-images-idx3-ubyte",
                               lambda p: p.write_bytes(_idx_bytes(np.zeros(TRAIN))), "magic number 0x00000801"),
    "float IDX": ("train-labels-idx1-ubyte",
                  lambda p: p.write_bytes(_idx_bytes(np.zeros(TRAIN), dtype_code=0x0D)), "magic number 0x00000d01"),
    "wrong image size": ("t10k-images-idx3-ubyte",
                         lambda p: p.write_bytes(_idx_bytes(np.zeros((TEST, 27, 27)))), "27 x 27 pixels"),
    "count mismatch": ("train-labels-idx1-ubyte",
                       lambda p: p.write_bytes(_idx_bytes(np.arange(TRAIN - 1) % 10)), f"but {{}} holds {TRAIN - 1}"),
    "label 10": ("train-labels-idx1-ubyte",
                 lambda p: p.write_bytes(_idx_bytes(np.where(np.arange(TRAIN) == 5, 10, np.arange(TRAIN) % 10))),
                 "label 10 at index 5 is outside 0..9"),
    "truncated gzip": ("t10k-labels-idx1-ubyte", _gzip_then_cut, "truncated gzip stream"),
    "not gzip": ("train-labels-idx1-ubyte", _not_gzip, "not a valid gzip file"),
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_bad_idx_files_are_named_without_traceback(idx_dir, case):
  name, corrupt, message = CORRUPTIONS[case]
  corrupt(idx_dir / name)
  proc, _ = _mnist("--data-dir", str(idx_dir))
  assert proc.returncode == 1, proc.stderr
  assert name in proc.stderr and message.format(idx_dir / name) in proc.stderr, proc.stderr
  assert "Traceback" not in proc.stderr, proc.stderr


def test_missing_file_is_named(idx_dir):
  (idx_dir / "t10k-labels-idx1-ubyte").unlink()
  proc, _ = _mnist("--data-dir", str(idx_dir))
  assert proc.returncode == 1 and "t10k-labels-idx1-ubyte[.gz] not found" in proc.stderr, proc.stderr


def test_non_finite_loss_exits_nonzero(idx_dir):
  proc, _ = _mnist("--data-dir", str(idx_dir), "--epochs", "1", "--batch-size", "32", "--lr", "1e30")
  assert proc.returncode == 1, proc.stdout + proc.stderr
  assert "the training loss became" in proc.stderr and "--lr" in proc.stderr, proc.stderr
  assert "Traceback" not in proc.stderr, proc.stderr


def test_trains_on_every_image_and_records_hyperparameters(idx_dir, tmp_path):
  out = tmp_path / "metrics.json"
  proc, _ = _mnist("--data-dir", str(idx_dir), "--epochs", "2", "--batch-size", "32", "--lr", "1e-3",
                   "--label-smoothing", "0.1", "--seed", "3", "--metrics-out", str(out))
  assert proc.returncode == 0, proc.stdout + proc.stderr
  metrics = json.loads(out.read_text())
  hp = metrics["hyperparameters"]
  assert (hp["epochs"], hp["batch_size"], hp["lr"], hp["seed"], hp["label_smoothing"]) == (2, 32, 1e-3, 3, 0.1)
  assert hp["steps_per_epoch"] == 4 and hp["total_steps"] == 8  # 100 images: 3 full batches and 4 padded
  assert {"weight_decay", "optimizer", "schedule", "augmentation", "data_dir"} <= hp.keys()
  assert metrics["jaxnll_version"] == jaxnll.__version__ == metrics["versions"]["jaxnll"]
  assert [h["train_images"] for h in metrics["history"]] == [TRAIN, TRAIN]
  assert metrics["train_size"] == TRAIN and metrics["test_size"] == TEST
  assert 0 <= metrics["test_accuracy"] <= 1


@pytest.mark.parametrize("flag, path, why", [
    ("--metrics-out", "/etc/hostname/metrics.json", "is not a directory"),
    ("--metrics-out", "{file}/sub/metrics.json", "is not a directory"),
    ("--plot-dir", "{file}/plots", "is not a directory"),
    ("--plot-dir", "/proc/jaxnll-plots", "does not take new files"),
])
def test_unwritable_output_paths_fail_before_training(flag, path, why, tmp_path):
  blocker = tmp_path / "a-file"
  blocker.write_text("")
  proc, seconds = _mnist(flag, path.format(file=blocker))
  assert proc.returncode == 2, proc.stderr
  assert f"argument {flag}: cannot write" in proc.stderr and why in proc.stderr, proc.stderr
  assert "Traceback" not in proc.stderr and seconds < 3, proc.stderr
