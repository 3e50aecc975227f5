"""Out-of-range class indices: raise when they are known, NaN when traced.

torch raises ``IndexError: Target 5 is out of bounds.``; a traced program
cannot raise, so under ``jit`` a counted target outside ``[0, C)`` makes that
element's loss and its whole gradient row NaN (see ``_xent_kernel``). The
checked mode, :func:`checked`, turns the same condition into an exception
through :mod:`jax.experimental.checkify`.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

_MESSAGE = "Target {} is out of bounds."
_checking = contextvars.ContextVar("jaxnll_checking_targets", default=False)

F = TypeVar("F", bound=Callable[..., Any])


def out_of_bounds(targets: jax.Array, num_classes: int, counted: jax.Array) -> jax.Array:
  """Counted targets outside ``[0, num_classes)``."""
  return counted & ((targets < 0) | (targets >= num_classes))


def counted_mask(targets: jax.Array, ignore_index: int | None, where: jax.Array | None) -> jax.Array:
  """Elements that count: target not ``ignore_index`` (None: every target) and
  not masked by ``where``.

  Evaluated at trace time when its inputs are concrete (targets closed over
  by a jitted function included), so :func:`check_targets` can still raise.
  """
  with jax.ensure_compile_time_eval():
    counted = jnp.ones(targets.shape, bool) if ignore_index is None else targets != ignore_index
    return counted if where is None else counted & where


def _is_concrete(*values: object) -> bool:
  return not any(isinstance(x, jax.core.Tracer) for x in values)


def check_targets(targets: jax.Array, num_classes: int, counted: jax.Array) -> None:
  """Raises like torch when the targets are concrete; emits a check in checked mode.

  Concrete means known at trace time: the caller's targets and mask were not
  traced (arrays closed over by a jitted function count as concrete), so
  ``targets`` and ``counted`` (see :func:`counted_mask`) are not tracers.
  """
  if _is_concrete(targets, counted):
    with jax.ensure_compile_time_eval():
      known_bad = np.asarray(out_of_bounds(targets, num_classes, counted))
    if known_bad.any():
      raise IndexError(_MESSAGE.format(np.asarray(targets)[known_bad].flat[0]))
  elif _checking.get():
    bad = out_of_bounds(targets, num_classes, counted).ravel()
    first = targets.ravel()[jnp.argmax(bad)] if bad.size else jnp.int32(0)
    checkify.check(~jnp.any(bad), _MESSAGE, first)


def checked(fn: F) -> F:
  """Runs ``fn`` jit-compiled, raising ``IndexError`` on out-of-range targets.

  Without it, a traced out-of-range class index gives a NaN loss and NaN
  gradient row for that element. Inside ``checked``, every jaxnll loss that
  ``fn`` calls adds a :mod:`~jax.experimental.checkify` check, and the call
  raises ``IndexError("Target 5 is out of bounds.")`` after running. Pass
  arrays (and pytrees of arrays) as arguments; close over static options.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.checked(jaxnll.cross_entropy)
    >>> loss(jnp.zeros((2, 3)), jnp.array([0, 5]))
    Traceback (most recent call last):
    ...
    IndexError: Target 5 is out of bounds.
  """

  def with_checks(*args: Any, **kwargs: Any) -> Any:
    token = _checking.set(True)
    try:
      return fn(*args, **kwargs)
    finally:
      _checking.reset(token)

  functional = jax.jit(checkify.checkify(with_checks, errors=checkify.user_checks))

  @functools.wraps(fn)
  def run(*args: Any, **kwargs: Any) -> Any:
    err, out = functional(*args, **kwargs)
    message = err.get()
    if message is not None:
      if message.startswith(_MESSAGE.split("{", 1)[0]):
        raise IndexError(message.split(" (", 1)[0])
      err.throw()
    return out

  return run  # type: ignore[return-value]
