"""Class-index targets, handled once: dtypes, ``ignore_index``, range checks, checked mode.

Every front door turns its integer targets into :class:`ClassTargets` here.
Comparisons run in the targets' own dtype against values that dtype can
represent, so nothing wraps: ``uint8`` targets with ``C = 256`` are all valid,
an ``ignore_index`` the dtype cannot hold (``-100`` for ``uint8``, ``2**32``
for ``int32``) matches no target, and host (NumPy) targets are classified in
their own dtype before JAX converts them (``int64`` → ``int32`` without x64).

torch raises ``IndexError: Target 5 is out of bounds.``; a traced program
cannot raise, so under ``jit`` a counted target outside ``[0, C)`` makes that
element's loss and its whole gradient row NaN (see ``_xent_kernel``). The
checked mode, :func:`checked`, turns the same condition into an exception.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

_MESSAGE = "Target {} is out of bounds."

# Checked mode is a jit-cache-sensitive context, so a function traced with
# checks is never reused by a call without them (and vice versa).
_OFF, _CHECKIFY, _CALLBACK = None, "checkify", "callback"
_mode = jax.make_user_context(default_value=_OFF)

F = TypeVar("F", bound=Callable[..., Any])


class ClassTargets(NamedTuple):
  """Class-index targets ready for the kernels (all of the targets' shape).

  ``classes``: int32 in ``[0, C)`` (clipped, safe to gather with); ``counted``:
  not ignored and not masked; ``bad``: counted but outside ``[0, C)``.
  """

  classes: jax.Array
  counted: jax.Array
  bad: jax.Array


def _representable(value: int, dtype: np.dtype) -> bool:
  info = np.iinfo(dtype)
  return int(info.min) <= value <= int(info.max)


def _classify(xp: Any, y: Any, num_classes: int, ignore_index: int | None, where: Any) -> tuple[Any, Any, Any]:
  """``(index, counted, bad)`` computed with ``xp`` (NumPy or jax.numpy) in ``y``'s dtype."""
  dtype = np.dtype(y.dtype)
  if ignore_index is None or not _representable(ignore_index, dtype):
    counted = xp.ones(y.shape, bool)
  else:
    counted = y != xp.asarray(ignore_index, dtype)
  if where is not None:
    counted = counted & where
  outside = xp.zeros(y.shape, bool)
  if dtype.kind == "i":
    outside = outside | (y < xp.asarray(0, dtype))
  if _representable(num_classes, dtype):
    outside = outside | (y >= xp.asarray(num_classes, dtype))
  high = min(num_classes - 1, int(np.iinfo(dtype).max))
  index = xp.clip(y, xp.asarray(0, dtype), xp.asarray(high, dtype)).astype(np.int32)
  return index, counted, counted & outside


def class_targets(
    targets: Any, num_classes: int, ignore_index: int | None, where: jax.Array | None
) -> ClassTargets:
  """Classifies integer ``targets`` (already checked to be integer) against ``C`` classes.

  Host targets (NumPy arrays, lists, arrays closed over by a jitted function)
  and a host mask are classified at trace time, so out-of-range ones raise
  ``IndexError`` like torch. Traced targets give NaN for bad elements, or, in
  checked mode, a run-time error.
  """
  where_known = where is None or not isinstance(where, jax.core.Tracer)
  if not isinstance(targets, jax.core.Tracer) and where_known:
    host = np.asarray(targets)
    mask = None if where is None else np.asarray(where)
    index, counted, bad = _classify(np, host, num_classes, ignore_index, mask)
    if bad.any():
      raise IndexError(_MESSAGE.format(host[bad].flat[0]))
    with jax.ensure_compile_time_eval():
      return ClassTargets(jnp.asarray(index), jnp.asarray(counted), jnp.asarray(bad))
  y = jnp.asarray(targets)
  result = ClassTargets(*_classify(jnp, y, num_classes, ignore_index, where))
  if _mode.value is not _OFF:
    _emit_check(y, result.bad)
  return result


def _emit_check(targets: jax.Array, bad: jax.Array) -> None:
  flat = bad.ravel()
  first = targets.ravel()[jnp.argmax(flat)] if flat.size else jnp.zeros((), targets.dtype)
  any_bad = jnp.any(flat)
  if _mode.value == _CHECKIFY:
    checkify.check(~any_bad, _MESSAGE, first)
  else:
    jax.debug.callback(_raise_if_bad, any_bad, first)


def _raise_if_bad(any_bad: Any, first: Any) -> None:
  if bool(any_bad):
    raise IndexError(_MESSAGE.format(first))


def _traced(tree: Any) -> bool:
  return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree))


def checked(fn: F) -> F:
  """``fn`` with out-of-range class indices raising instead of giving NaN.

  Without it, a traced out-of-range class index gives a NaN loss and NaN
  gradient row for that element. Inside ``checked``, every jaxnll loss that
  ``fn`` calls (directly or through jitted functions) checks its targets:

  * called with concrete arrays, ``fn`` runs jit-compiled under
    :mod:`~jax.experimental.checkify` and the call raises
    ``IndexError("Target 5 is out of bounds.")``;
  * called inside a transformation (``jax.jit(checked(fn))``, ``vmap``,
    ``grad``), the check runs as a host callback and the computation fails
    with a ``JaxRuntimeError`` carrying that ``IndexError``;
  * nested (``checked(checked(fn))``), the outer check covers the inner one.

  Functions traced in checked mode are cached apart from unchecked calls, so
  jitted functions shared with unchecked code are never affected. Pass arrays
  (and pytrees of arrays) as arguments; close over static options.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.checked(jaxnll.cross_entropy)
    >>> loss(jnp.zeros((2, 3)), jnp.array([0, 5]))
    Traceback (most recent call last):
    ...
    IndexError: Target 5 is out of bounds.
  """

  def with_checks(*args: Any, **kwargs: Any) -> Any:
    with _mode(_CHECKIFY):
      return fn(*args, **kwargs)

  functional = jax.jit(checkify.checkify(with_checks, errors=checkify.user_checks))

  @functools.wraps(fn)
  def run(*args: Any, **kwargs: Any) -> Any:
    if _mode.value is not _OFF:  # already checked by an enclosing `checked`
      return fn(*args, **kwargs)
    if _traced((args, kwargs)):
      with _mode(_CALLBACK):
        return fn(*args, **kwargs)
    with _mode(_CHECKIFY):
      err, out = functional(*args, **kwargs)
    message = err.get()
    if message is not None:
      if message.startswith(_MESSAGE.split("{", 1)[0]):
        raise IndexError(message.split(" (", 1)[0])
      err.throw()
    return out

  return run  # type: ignore[return-value]
