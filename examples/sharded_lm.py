"""Data- and vocab-parallel training step: a tiny language model on a (data x model) mesh.

The output classifier ``[V, D]`` is split over the "model" axis (Megatron-style
vocab parallelism) and the batch over the "data" axis. The loss is
``jaxnll.linear_cross_entropy`` inside ``jax.shard_map``: each device computes
logits only for its own slice of the vocabulary, block by block, and the
per-token statistics are combined with collectives, so neither the whole
classifier nor any ``[tokens, V]`` logits exist on a device.

On a CPU-only machine the script simulates 8 devices (it sets
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` unless XLA_FLAGS is set).

Run: python examples/sharded_lm.py [--steps 60] [--data 4] [--model 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")


import _cli
import jax
import jax.numpy as jnp
import optax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxnll

VOCAB, DIM, BATCH, SEQ = 1024, 64, 32, 16


def make_mesh(data: int, model: int) -> jax.sharding.Mesh:
  return jax.make_mesh((data, model), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))


def init_params(key: jax.Array, mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  k1, k2, k3 = jax.random.split(key, 3)
  params = {
      "embed": jax.random.normal(k1, (VOCAB, DIM)) * 0.1,  # replicated
      "mlp": jax.random.normal(k2, (DIM, DIM)) / jnp.sqrt(DIM),  # replicated
      "classifier": jax.random.normal(k3, (VOCAB, DIM)) * 0.02,  # [V, D], split over "model"
      "bias": jnp.zeros((VOCAB,)),  # split over "model"
  }
  specs = {"embed": P(), "mlp": P(), "classifier": P("model", None), "bias": P("model")}
  return {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in params.items()}


def make_batch(key: jax.Array, mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Sequences with a learnable rule: the next token is (3 * token + 1) mod V."""
  inputs = jax.random.randint(key, (BATCH, SEQ), 0, VOCAB)
  targets = (3 * inputs + 1) % VOCAB
  targets = targets.at[:, -1].set(-100)  # e.g. padding: ignored, and left out of the mean
  data = NamedSharding(mesh, P("data", None))
  return {"inputs": jax.device_put(inputs, data), "targets": jax.device_put(targets, data)}


def make_train_step(mesh: jax.sharding.Mesh, optimizer: optax.GradientTransformation):
  def token_loss(h, classifier, bias, targets):
    # Per device: h [B/data, S, D], classifier [V/model, D], bias [V/model], targets [B/data, S].
    return jaxnll.linear_cross_entropy(
        h, classifier, targets, bias=bias, label_smoothing=0.1, z_loss=1e-4,
        vocab_axis="model", batch_axis="data")

  sharded_loss = jax.shard_map(
      token_loss, mesh=mesh,
      in_specs=(P("data", None, None), P("model", None), P("model"), P("data", None)),
      out_specs=P())  # the exact full-batch mean, the same on every device

  def loss_fn(params, batch):
    h = jnp.tanh(params["embed"][batch["inputs"]] @ params["mlp"])
    return sharded_loss(h, params["classifier"], params["bias"], batch["targets"])

  @jax.jit
  def train_step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return train_step


def main() -> None:
  p = _cli.parser(__doc__)
  p.add_argument("--steps", type=_cli.positive_int, default=60, help="training steps")
  p.add_argument("--data", type=_cli.positive_int, default=None,
                 help="size of the data axis; unset: the devices divided by --model")
  p.add_argument("--model", type=_cli.positive_int, default=2, help="size of the vocabulary (model) axis")
  p.add_argument("--lr", type=_cli.positive_float, default=3e-2, help="learning rate")
  args = p.parse_args()
  model = min(args.model, jax.device_count())
  data = args.data or jax.device_count() // model
  mesh = make_mesh(data, model)
  print(f"mesh: {dict(mesh.shape)} over {jax.device_count()} {jax.devices()[0].platform} devices")

  key = jax.random.key(0)
  params = init_params(key, mesh)
  optimizer = optax.adam(args.lr)
  opt_state = optimizer.init(params)
  train_step = make_train_step(mesh, optimizer)
  for step in range(args.steps):
    batch = make_batch(jax.random.fold_in(key, step), mesh)
    params, opt_state, loss = train_step(params, opt_state, batch)
    if step == 0 or (step + 1) % 10 == 0 or step + 1 == args.steps:
      print(f"step {step + 1:4d}  loss {float(loss):.4f}")
  print(f"classifier sharding: {params['classifier'].sharding.spec}")


if __name__ == "__main__":
  main()
