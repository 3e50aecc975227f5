"""Heteroscedastic regression with GaussianNLLLoss on scikit-learn's bundled diabetes data (no download).

A small MLP predicts, for each patient, the mean and the variance of disease
progression one year on; ``jaxnll.GaussianNLLLoss`` (torch's
``nn.GaussianNLLLoss``) trains both heads at once. Full-batch AdamW on
standardized data; prints the training loss, then the test NLL (in the
target's original units) and how often the true value falls in the
predicted central 90 % interval (5.45 and 0.91 with the defaults).
"""

import math

import _cli
import jax
import jax.numpy as jnp
import optax
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

import jaxnll

Z_90 = 1.6448536269514722  # the standard normal's 95th percentile: the central 90 % is mean +- Z_90 sd


def load(seed: int):
  x, y = load_diabetes(return_X_y=True)
  x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed)
  x_mean, x_std = x_train.mean(0), x_train.std(0)
  y_mean, y_std = y_train.mean(), y_train.std()
  arrays = ((x_train - x_mean) / x_std, (y_train - y_mean) / y_std,
            (x_test - x_mean) / x_std, (y_test - y_mean) / y_std)
  return [jnp.asarray(a, jnp.float32) for a in arrays], float(y_std)


def init(key, sizes=(10, 32, 2)):
  keys = jax.random.split(key, len(sizes) - 1)
  return [(jax.random.normal(k, (m, n)) * jnp.sqrt(2.0 / m), jnp.zeros(n))
          for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def apply(params, x):
  """The predicted mean and variance (softplus keeps it positive)."""
  for w, b in params[:-1]:
    x = jax.nn.relu(x @ w + b)
  w, b = params[-1]
  out = x @ w + b
  return out[:, 0], jax.nn.softplus(out[:, 1]) + 1e-4


def main(steps: int = 400, lr: float = 3e-3, seed: int = 0) -> dict[str, float]:
  (x_train, y_train, x_test, y_test), y_scale = load(seed)
  loss = jaxnll.GaussianNLLLoss(full=True)
  optimizer = optax.adamw(lr, weight_decay=0.1)
  params = init(jax.random.key(seed))
  opt_state = optimizer.init(params)

  @jax.jit
  def train_step(params, opt_state):
    def objective(p):
      mean, var = apply(p, x_train)
      return loss(mean, y_train, var)

    value, grads = jax.value_and_grad(objective)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  for step in range(steps):
    params, opt_state, value = train_step(params, opt_state)
    if step % 100 == 0 or step == steps - 1:
      print(f"step {step:4d}  loss {float(value):.4f}")
  mean, var = apply(params, x_test)
  inside = jnp.abs(y_test - mean) <= Z_90 * jnp.sqrt(var)
  metrics = {
      # Standardizing y by its scale s shifts a Gaussian NLL by log s.
      "test_nll": float(loss(mean, y_test, var)) + math.log(y_scale),
      "test_coverage_90": float(jnp.mean(inside)),
      "test_rmse": float(jnp.sqrt(jnp.mean((mean - y_test) ** 2))) * y_scale,
  }
  print(f"test NLL {metrics['test_nll']:.3f}  90% interval coverage {metrics['test_coverage_90']:.3f}  "
        f"RMSE {metrics['test_rmse']:.1f}")
  return metrics


if __name__ == "__main__":
  p = _cli.parser(__doc__)
  p.add_argument("--steps", type=_cli.positive_int, default=400, help="full-batch AdamW steps")
  p.add_argument("--lr", type=_cli.positive_float, default=3e-3, help="AdamW learning rate")
  p.add_argument("--seed", type=_cli.nonnegative_int, default=0, help="split and initialization seed")
  args = p.parse_args()
  main(args.steps, args.lr, args.seed)
