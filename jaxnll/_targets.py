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
import numbers
import re
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
  if not isinstance(num_classes, numbers.Integral):
    # A symbolic class count (jax.export): compared as a value, in a dtype
    # that holds it (int32 for the narrow dtypes, which cannot wrap there).
    wide = y if dtype.itemsize >= 4 else y.astype(np.int32)
    c = xp.asarray(num_classes).astype(wide.dtype)
    outside = outside | (wide >= c)
    index = xp.clip(wide, xp.asarray(0, wide.dtype), c - xp.asarray(1, wide.dtype)).astype(np.int32)
    return index, counted, counted & outside
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
  if not isinstance(targets, jax.core.Tracer) and where_known and isinstance(num_classes, numbers.Integral):
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


# Checked mode raises each of these exceptions for the messages that start with its key.
_RAISES: dict[str, type[Exception]] = {_MESSAGE.split("{", 1)[0]: IndexError}


def run_time_check(bad: jax.Array, values: jax.Array, error: type[Exception], message: str) -> None:
  """In checked mode, makes any ``bad`` element raise ``error(message.format(its value))``.

  The eager check of a value known at trace time raises ``error`` itself;
  this is the same check for traced values, so ``checked(fn)`` raises on
  everything the eager call raises on, inside ``jit`` too. Outside checked
  mode it adds nothing to the program.
  """
  if _mode.value is _OFF:
    return
  _RAISES.setdefault(message.split("{", 1)[0], error)
  flat = bad.ravel()
  vals = jnp.broadcast_to(values, bad.shape).ravel()
  first = vals[jnp.argmax(flat)] if flat.size else jnp.zeros((), vals.dtype)
  any_bad = jnp.any(flat)
  if _mode.value == _CHECKIFY:
    checkify.check(~any_bad, message, first)
  else:
    jax.debug.callback(functools.partial(_raise_if_bad, error, message), any_bad, first)


def _emit_check(targets: jax.Array, bad: jax.Array) -> None:
  run_time_check(bad, targets, IndexError, _MESSAGE)


def _raise_if_bad(error: type[Exception], message: str, any_bad: Any, first: Any) -> None:
  if bool(any_bad):
    raise error(message.format(first))


def _has_arrays(tree: Any) -> bool:
  return any(isinstance(x, (jax.Array, np.ndarray)) for x in jax.tree_util.tree_leaves(tree))


def _traced(tree: Any) -> bool:
  return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree))


def checked(fn: F) -> F:
  """``fn`` with the checks of an eager call made at run time too: bad values raise instead of giving NaN.

  Without it, a traced out-of-range class index gives a NaN loss and NaN
  gradient row for that element, and so does a traced probability outside
  ``[0, 1]`` for :func:`jaxnll.binary_cross_entropy` or a negative variance
  for :func:`jaxnll.gaussian_nll_loss`. Inside ``checked``, every jaxnll loss
  that ``fn`` calls (directly or through jitted functions) checks its values
  as the eager call does, and raises the same exception:

  * called with concrete arrays, ``fn`` runs jit-compiled under
    :mod:`~jax.experimental.checkify` and the call raises
    ``IndexError("Target 5 is out of bounds.")``;
  * called inside a transformation (``jax.jit(checked(fn))``, ``vmap``,
    ``grad``), the check runs as a host callback and the computation fails
    with a ``JaxRuntimeError`` carrying that ``IndexError``;
  * nested (``checked(checked(fn))``), the outer check covers the inner one.

  Functions traced in checked mode are cached apart from unchecked calls, so
  jitted functions shared with unchecked code are never affected. Pass arrays
  (and pytrees of arrays) as arguments; keyword options that hold no array
  (``reduction="sum"``, ``label_smoothing=0.1``) are static, and must be
  hashable.

  Examples:
    >>> import jax.numpy as jnp, jaxnll
    >>> loss = jaxnll.checked(jaxnll.cross_entropy)
    >>> loss(jnp.zeros((2, 3)), jnp.array([0, 5]))
    Traceback (most recent call last):
    ...
    IndexError: Target 5 is out of bounds.
  """

  def with_checks(static: tuple[tuple[str, Any], ...], *args: Any, **kwargs: Any) -> Any:
    with _mode(_CHECKIFY):
      return fn(*args, **dict(static), **kwargs)

  functional = jax.jit(checkify.checkify(with_checks, errors=checkify.user_checks), static_argnums=0)

  @functools.wraps(fn)
  def run(*args: Any, **kwargs: Any) -> Any:
    if _mode.value is not _OFF:  # already checked by an enclosing `checked`
      return fn(*args, **kwargs)
    if _traced((args, kwargs)):
      with _mode(_CALLBACK):
        return fn(*args, **kwargs)
    # Keyword options that are not arrays (reduction="sum", label_smoothing=0.1) stay static.
    static = tuple(sorted((k, val) for k, val in kwargs.items() if not _has_arrays(val)))
    arrays = {k: val for k, val in kwargs.items() if _has_arrays(val)}
    with _mode(_CHECKIFY):
      err, out = functional(static, *args, **arrays)
    message = err.get()
    if message is not None:
      for prefix, error in _RAISES.items():
        if message.startswith(prefix):
          raise error(re.sub(r" \(`?check`? failed.*$", "", message, flags=re.DOTALL))
      err.throw()
    return out

  return run  # type: ignore[return-value]


# --------------------------------------------------------------------------
# Bounded integers and label sequences (CTC's lengths and labels)


def _outside(xp: Any, y: Any, low: int, high: int) -> Any:
  """``y < low or y > high``, compared in ``y``'s own dtype, so nothing wraps."""
  info = np.iinfo(np.dtype(y.dtype))
  if low > int(info.max) or high < int(info.min) or low > high:
    return xp.ones(y.shape, bool)
  out = xp.zeros(y.shape, bool)
  if low > int(info.min):
    out = out | (y < xp.asarray(low, y.dtype))
  if high < int(info.max):
    out = out | (y > xp.asarray(high, y.dtype))
  return out


def bounded_integers(name: str, values: Any, low: int, high: int, what: str) -> tuple[jax.Array, jax.Array]:
  """Integer ``values`` (already checked to be integer) in ``[low, high]``: ``(int32 clipped, bad)``.

  Host values are checked in their own dtype before JAX narrows them and a
  value outside raises ``ValueError`` naming ``name``, the value and ``what``
  was expected; traced values give a ``bad`` mask (the caller makes those
  elements NaN).
  """
  if not isinstance(values, jax.core.Tracer):
    host = np.asarray(values)
    bad = _outside(np, host, low, high)
    if bad.any():
      raise ValueError(f"`{name}` must be {what}, got {host[bad].flat[0]} (in {host.tolist()}).")
    with jax.ensure_compile_time_eval():
      clipped = np.clip(host, max(low, int(np.iinfo(host.dtype).min)), min(high, int(np.iinfo(host.dtype).max)))
      return jnp.asarray(clipped.astype(np.int32)), jnp.asarray(bad)
  y = jnp.asarray(values)
  dtype = np.dtype(y.dtype)
  bad = _outside(jnp, y, low, high)
  run_time_check(bad, y, ValueError, f"`{name}` must be {what}, got {{}}.")
  lo = max(low, int(np.iinfo(dtype).min))
  hi = min(high, int(np.iinfo(dtype).max))
  return jnp.clip(y, jnp.asarray(lo, dtype), jnp.asarray(hi, dtype)).astype(jnp.int32), bad


def label_sequences(targets: Any, num_classes: int, blank: int, counted: Any) -> ClassTargets:
  """Classifies label sequences (already checked to be integer) against ``C`` classes and the blank.

  ``counted`` marks the labels inside each sequence's length; only those are
  checked. A counted label outside ``[0, C)`` is ``bad`` like a class index
  (``IndexError`` for host labels), and so is one equal to ``blank``
  (``ValueError`` for host labels): no alignment can emit it.
  """
  traced = isinstance(targets, jax.core.Tracer) or isinstance(counted, jax.core.Tracer)
  xp: Any = jnp if traced else np
  y = jnp.asarray(targets) if traced else np.asarray(targets)
  counted = jnp.asarray(counted) if traced else np.asarray(counted)
  index, _, out_of_range = _classify(xp, y, num_classes, None, counted)
  dtype = np.dtype(y.dtype)
  is_blank = (y == xp.asarray(blank, dtype)) if _representable(blank, dtype) else xp.zeros(y.shape, bool)
  is_blank = is_blank & counted
  if not traced:
    if out_of_range.any():
      raise IndexError(_MESSAGE.format(y[out_of_range].flat[0]))  # type: ignore[union-attr]
    if is_blank.any():
      raise ValueError(
          f"`targets` must not contain the blank label {blank} (within `target_lengths`), got {blank} at "
          f"position {tuple(int(i) for i in np.argwhere(is_blank)[0])}."
      )
    with jax.ensure_compile_time_eval():
      return ClassTargets(jnp.asarray(index), jnp.asarray(counted), jnp.asarray(out_of_range | is_blank))
  result = ClassTargets(index, counted, out_of_range | is_blank)
  _emit_check(y, out_of_range)  # type: ignore[arg-type]
  run_time_check(is_blank, y, ValueError, f"`targets` must not contain the blank label {blank} (within "  # type: ignore[arg-type]
                 "`target_lengths`), got {}.")
  return result
