"""Reference values and gradients from real PyTorch (CPU)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

torch.use_deterministic_algorithms(True)


def _tensor(a, requires_grad=False):
  t = torch.from_numpy(np.array(a, copy=True))
  if requires_grad:
    t.requires_grad_(True)
  return t


def torch_loss_and_grad(fn_name, x, targets, *, soft=False, **kwargs):
  """torch's loss value and d(loss.sum())/d input for ``F.<fn_name>``.

  ``x`` is in torch's layout (classes on dim 1, or dim 0 unbatched). Integer
  targets are passed as int64, as torch requires.
  """
  xt = _tensor(x, requires_grad=True)
  tt = _tensor(targets) if soft else _tensor(np.asarray(targets, np.int64))
  if soft:
    tt.requires_grad_(True)
  if kwargs.get("weight") is not None:
    kwargs["weight"] = _tensor(kwargs["weight"])
  loss = getattr(F, fn_name)(xt, tt, **kwargs)
  loss.sum().backward()
  tgrad = tt.grad.numpy() if soft else None
  return loss.detach().numpy(), xt.grad.numpy(), tgrad
