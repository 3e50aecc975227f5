"""Measures what jaxnll, torch and optax give for NaN / +inf / -inf logits in each position.

Run: python benchmarks/nonfinite_table.py  (prints the Markdown table the docs and README show;
tests/test_nonfinite_table.py checks that the published table is what this prints).

Each case is one row of 3 logits, target class 0, inside a batch with one ordinary row; the
loss column is that row's ``reduction='none'`` loss, the gradient column its gradient row
(of the summed loss): "0" means exactly zero, "finite" finite (and not all zero), else the
non-finite values it holds. ``ignored`` is ``ignore_index`` (jaxnll, torch) or an example
mask (optax: ``where``); ``masked`` is jaxnll's ``where`` (torch has none: n/a).
"""

from __future__ import annotations

import numpy as np

CASES = [
    ("target", "nan"), ("target", "+inf"), ("target", "-inf"),
    ("non-target", "nan"), ("non-target", "+inf"), ("non-target", "-inf"),
    ("every class", "-inf"),
    ("ignored row", "nan"), ("ignored row", "+inf"), ("ignored row", "-inf"),
    ("masked row", "nan"), ("masked row", "+inf"),
]
VALUES = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}


def _logits(position: str, value: str) -> np.ndarray:
  x = np.array([[0.5, -0.25, 1.0], [1.0, 2.0, 3.0]])
  v = VALUES[value]
  if position == "target":
    x[0, 0] = v
  elif position == "non-target":
    x[0, 1] = v
  else:
    x[0, :] = v
  return x


def _describe_loss(v: float) -> str:
  if v == 0:
    return "0"
  if np.isnan(v):
    return "NaN"
  if np.isinf(v):
    return "+inf" if v > 0 else "-inf"
  return "finite"


def _describe_grad(g: np.ndarray) -> str:
  if np.all(g == 0):
    return "0"
  if np.all(np.isfinite(g)):
    return "finite"
  kinds = sorted({_describe_loss(float(e)) for e in g if not np.isfinite(e)})
  return ("all " if np.all(~np.isfinite(g)) else "") + "/".join(kinds)


def measure() -> list[list[str]]:
  import jax
  import jax.numpy as jnp
  import optax
  import torch
  import torch.nn.functional as F

  import jaxnll

  rows = []
  for position, value in CASES:
    x = _logits(position, value)
    ignored = position == "ignored row"
    masked = position == "masked row"
    y = np.array([-100 if ignored else 0, 2])
    where = np.array([not masked, True])

    def ours(a, y=y, where=where):
      return jaxnll.cross_entropy(a, jnp.asarray(y), reduction="none", where=jnp.asarray(where))

    xj = jnp.asarray(x, jnp.float32)
    loss = float(ours(xj)[0])
    grad = np.asarray(jax.grad(lambda a: ours(a).sum())(xj))[0]
    if masked:
      t_loss, t_grad = "n/a", "n/a"
    else:
      xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
      lt = F.cross_entropy(xt, torch.tensor(y), reduction="none")
      lt.sum().backward()
      t_loss, t_grad = _describe_loss(float(lt[0].detach())), _describe_grad(xt.grad.numpy()[0])
    keep = jnp.asarray(~(ignored | ~where))
    opt = lambda a, keep=keep, y=y: optax.losses.softmax_cross_entropy_with_integer_labels(
        a, jnp.asarray(np.maximum(y, 0)), where=keep)
    o_loss = float(opt(xj)[0])
    o_grad = np.asarray(jax.grad(lambda a, opt=opt: opt(a).sum())(xj))[0]
    rows.append([f"{value} in {position}", _describe_loss(loss), _describe_grad(grad), t_loss, t_grad,
                 _describe_loss(o_loss), _describe_grad(o_grad)])
  return rows


def markdown(rows: list[list[str]]) -> str:
  head = ["logits (target class 0)", "jaxnll loss", "jaxnll grad row", "torch loss", "torch grad row",
          "optax loss", "optax grad row"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines)


if __name__ == "__main__":
  print(markdown(measure()))
