"""Flax Linen: a TrainState whose step is built by jaxnll.training."""


import _cli
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from _data import digits
from flax.training.train_state import TrainState

import jaxnll
from jaxnll import training


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(10)(nn.relu(nn.Dense(128)(x)))


def main(steps: int = 30) -> list[float]:
  batch = {k: jnp.asarray(v) for k, v in digits(512).items()}
  model = MLP()
  state = TrainState.create(
      apply_fn=model.apply, params=model.init(jax.random.key(0), batch["inputs"])["params"],
      tx=optax.adam(1e-3))
  apply_fn = lambda params, x: state.apply_fn({"params": params}, x)
  # Class weights and gradient accumulation over 4 micro-batches: still the exact full-batch mean.
  loss = jaxnll.CrossEntropyLoss(weight=jnp.linspace(0.5, 1.5, 10))
  grad_fn = training.make_grad_fn(apply_fn, loss, accumulation_steps=4)

  @jax.jit
  def train_step(state, batch):
    value, grads, _ = grad_fn(state.params, batch)
    return state.apply_gradients(grads=grads), value

  losses = []
  for step in range(steps):
    state, value = train_step(state, batch)
    losses.append(float(value))
    if step % 10 == 0 or step == steps - 1:
      print(f"step {step:3d}  loss {losses[-1]:.4f}")
  return losses


if __name__ == "__main__":
  p = _cli.parser(__doc__)
  p.add_argument("--steps", type=_cli.positive_int, default=30, help="training steps")
  main(p.parse_args().steps)
