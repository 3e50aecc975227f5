"""Haiku: hk.transform'd network trained with jaxnll.training.make_train_step."""


import _cli
import haiku as hk
import jax
import jax.numpy as jnp
import optax
from _data import digits

import jaxnll
from jaxnll import training


def main(steps: int = 30) -> list[float]:
  net = hk.without_apply_rng(hk.transform(lambda x: hk.nets.MLP([128, 10])(x)))
  batch = {k: jnp.asarray(v) for k, v in digits(512).items()}
  params = net.init(jax.random.key(0), batch["inputs"])
  optimizer = optax.adam(1e-3)
  opt_state = optimizer.init(params)
  train_step = training.make_train_step(net.apply, jaxnll.cross_entropy, optimizer)

  losses = []
  for step in range(steps):
    params, opt_state, metrics = train_step(params, opt_state, batch)
    losses.append(float(metrics["loss"]))
    if step % 10 == 0 or step == steps - 1:
      print(f"step {step:3d}  loss {losses[-1]:.4f}  accuracy {float(metrics['accuracy']):.3f}")
  return losses


if __name__ == "__main__":
  p = _cli.parser(__doc__)
  p.add_argument("--steps", type=_cli.positive_int, default=30, help="training steps")
  main(p.parse_args().steps)
