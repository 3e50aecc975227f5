"""A small slice of the bundled MNIST digits, flattened, for the short framework examples."""

import numpy as np


def digits(n: int = 1024, padded_to: int | None = None) -> dict[str, np.ndarray]:
  """``n`` training digits as ``{"inputs": [n, 784] float32, "targets": [n] int32}``.

  With ``padded_to`` the batch is padded with zero images whose targets are
  -100 (ignored), as a data loader with fixed shapes would.
  """
  from mnist import load_bundled

  x, y, _, _ = load_bundled()
  x, y = x[:n].reshape(n, -1) / 255.0, y[:n]
  if padded_to is not None and padded_to > n:
    x = np.concatenate([x, np.zeros((padded_to - n, x.shape[1]), x.dtype)])
    y = np.concatenate([y, np.full(padded_to - n, -100, y.dtype)])
  return {"inputs": x.astype(np.float32), "targets": y.astype(np.int32)}
