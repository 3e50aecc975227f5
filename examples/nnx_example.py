"""Flax NNX: jaxnll loss inside nnx.value_and_grad with an nnx.Optimizer."""

import functools

import _cli
import jax.numpy as jnp
import optax
from _data import digits
from flax import nnx

import jaxnll
from jaxnll import training


class MLP(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(784, 128, rngs=rngs)
    self.out = nnx.Linear(128, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.relu(self.hidden(x)))


def main(steps: int = 30) -> list[float]:
  model = MLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
  # Padded batch: the padding targets are -100 and drop out of loss and metrics.
  batch = {k: jnp.asarray(v) for k, v in digits(500, padded_to=512).items()}
  loss = jaxnll.CrossEntropyLoss(label_smoothing=0.1)

  @functools.partial(nnx.jit, donate_argnums=(0, 1))
  def train_step(model, optimizer, batch):
    def loss_fn(model):
      return training.loss_and_metrics(model(batch["inputs"]), batch, loss)

    (value, metrics), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return value, metrics

  losses = []
  for step in range(steps):
    value, metrics = train_step(model, optimizer, batch)
    losses.append(float(value))
    if step % 10 == 0 or step == steps - 1:
      print(f"step {step:3d}  loss {losses[-1]:.4f}  counted {int(metrics['count'])}")
  return losses


if __name__ == "__main__":
  p = _cli.parser(__doc__)
  p.add_argument("--steps", type=_cli.positive_int, default=30, help="training steps")
  main(p.parse_args().steps)
