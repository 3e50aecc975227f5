"""Argument checks shared by every front door.

All checks run at trace time on static information (shapes, dtypes, Python
values), so a bad call fails before anything is compiled, with a message that
names the argument, what was received and what was expected.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

REDUCTIONS = ("none", "mean", "sum", "safe_mean")
F = TypeVar("F", bound=Callable[..., Any])


def refuse_dim(fn: F) -> F:
  """Wraps a function that takes ``axis``: torch's ``dim=`` gets an error that names jaxnll's spelling.

  jaxnll follows JAX, so the class axis is ``axis`` everywhere (functions and
  loss objects alike); ``dim`` is not an alias.
  """

  @functools.wraps(fn)
  def wrapper(*args: Any, **kwargs: Any) -> Any:
    if "dim" in kwargs:
      raise TypeError(dim_message(fn.__name__, kwargs["dim"]))
    return fn(*args, **kwargs)

  return wrapper  # type: ignore[return-value]


def dim_message(name: str, dim: object) -> str:
  return (f"{name}() takes `axis=`, not torch's `dim=`: jaxnll follows JAX's spelling, so write "
          f"axis={dim!r}.")


def as_array(name: str, value: jax.typing.ArrayLike) -> jax.Array:
  """Converts ``value`` to a JAX array, naming ``name`` if that fails."""
  if isinstance(value, jax.Array):
    return value
  try:
    with jax.ensure_compile_time_eval():  # host data stays concrete inside jit
      return jnp.asarray(value)
  except (TypeError, ValueError) as e:
    raise TypeError(
        f"`{name}` must be an array, got {type(value).__name__}: {e}"
    ) from None


def as_target_array(name: str, value: object) -> jax.Array | np.ndarray:
  """Targets as given: JAX arrays (and tracers) unchanged, host data as a NumPy
  array in its own dtype, so integer targets can be classified before JAX
  narrows them (``int64`` → ``int32`` without x64) or anything wraps."""
  if isinstance(value, (jax.Array, jax.core.Tracer)):
    return value  # type: ignore[return-value]
  try:
    arr = np.asarray(value)
  except (TypeError, ValueError) as e:
    raise TypeError(f"`{name}` must be an array, got {type(value).__name__}: {e}") from None
  if arr.dtype == object:
    raise TypeError(f"`{name}` must be an array of numbers, got {type(value).__name__} of objects.")
  return arr


def as_value_array(name: str, value: object, dtype: jax.typing.DTypeLike) -> jax.Array:
  """Value targets (or variances) in the loss's floating ``dtype``.

  Host data is converted on the host, in its own dtype, so a NumPy ``int64``
  value is never narrowed to ``int32`` first when x64 is off (``2**32 + 7``
  stays ``4294967303.0``, not ``7``). JAX arrays are cast as they are.
  """
  if isinstance(value, (jax.Array, jax.core.Tracer)):
    check_real(name, value)
    return value.astype(dtype)
  arr = as_target_array(name, value)
  check_real(name, arr)  # type: ignore[arg-type]
  with jax.ensure_compile_time_eval():
    return jnp.asarray(np.asarray(arr).astype(dtype))


def broadcast_shapes(*shapes: Sequence[Any]) -> tuple[Any, ...]:
  """``np.broadcast_shapes``, ``jax.export`` symbolic dimensions included.

  Raises ``ValueError`` where they do not broadcast (or where a symbolic
  dimension cannot be shown to equal the one it meets).
  """
  return functools.reduce(_broadcast_pair, shapes, ())


def _broadcast_pair(a: Sequence[Any], b: Sequence[Any]) -> tuple[Any, ...]:
  n = max(len(a), len(b))
  a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
  out = []
  for m, k in zip(a, b, strict=True):
    if m == 1 or m == k:
      out.append(k)
    elif k == 1:
      out.append(m)
    else:
      raise ValueError(f"shapes {a} and {b} do not broadcast")
  return tuple(out)


def broadcasts_to(shape: Sequence[Any], target: Sequence[Any]) -> bool:
  """Whether ``shape`` broadcasts to exactly ``target`` (symbolic dimensions included)."""
  return len(shape) <= len(target) and all(
      m == 1 or m == t for m, t in zip(tuple(shape)[::-1], tuple(target)[::-1], strict=False))


def check_floating(name: str, x: jax.Array | np.ndarray) -> None:
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(
        f"`{name}` must have a floating dtype, got {x.dtype} instead."
    )


def check_integer(name: str, x: jax.Array | np.ndarray, why: str = "") -> None:
  if not jnp.issubdtype(x.dtype, jnp.integer):
    raise TypeError(
        f"`{name}` must have an integer dtype{why}, got {x.dtype} instead."
    )


def compute_dtype(dtype: jax.typing.DTypeLike) -> np.dtype:
  """The dtype losses are computed and returned in: float32 or wider."""
  dt = np.dtype(dtype)
  return dt if dt.itemsize >= 4 else np.dtype(np.float32)


def canonical_axis(axis: object, ndim: int, name: str = "axis") -> int:
  if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
    raise TypeError(f"`{name}` must be an int, got {axis!r}.")
  if not -ndim <= int(axis) < ndim:
    raise ValueError(
        f"`{name}`={axis} is out of range for an input of {ndim} "
        f"dimension(s); expected an int in [{-ndim}, {ndim - 1}]."
    )
  return int(axis) % ndim


def canonical_axes(axis: object, ndim: int) -> tuple[int, ...]:
  """An int or a non-empty tuple of distinct ints, made non-negative."""
  if isinstance(axis, Sequence) and not isinstance(axis, str):
    axes = tuple(canonical_axis(a, ndim) for a in axis)
    if not axes or len(set(axes)) != len(axes):
      raise ValueError(
          f"`axis` must name distinct axes, got {tuple(axis)!r}."
      )
    return axes
  return (canonical_axis(axis, ndim),)


def check_reduction(reduction: object) -> str:
  if reduction not in REDUCTIONS:
    raise ValueError(
        f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}."
    )
  return str(reduction)


def _static_float(name: str, value: object) -> float:
  if isinstance(value, jax.core.Tracer):
    raise TypeError(
        f"`{name}` must be a Python float known at trace time, got a traced "
        f"value {value}; pass it as a static argument."
    )
  try:
    result = float(value)  # type: ignore[arg-type]
  except (TypeError, ValueError):
    raise TypeError(f"`{name}` must be a float, got {value!r}.") from None
  if np.ndim(value) != 0:  # type: ignore[arg-type]
    raise TypeError(f"`{name}` must be a scalar, got {value!r}.")
  return result


def check_label_smoothing(value: object) -> float:
  eps = _static_float("label_smoothing", value)
  if not 0.0 <= eps <= 1.0:
    raise ValueError(
        f"`label_smoothing` must be in [0, 1], got {value!r}."
    )
  return eps


def check_z_loss(value: object) -> float:
  z = _static_float("z_loss", value)
  if not (z >= 0.0 and np.isfinite(z)):
    raise ValueError(f"`z_loss` must be finite and >= 0, got {value!r}.")
  return z


def check_softcap(value: object) -> float | None:
  if value is None:
    return None
  cap = _static_float("softcap", value)
  if not (cap > 0.0 and np.isfinite(cap)):
    raise ValueError(
        f"`softcap` must be None or a finite float > 0, got {value!r}."
    )
  return cap


def check_ignore_index(value: object, allow_none: bool = False) -> int | None:
  if value is None and allow_none:
    return None
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f"`ignore_index` must be an int, got {value!r}.")
  return int(value)


def check_weight(weight: object, num_classes: int) -> jax.Array | None:
  if weight is None:
    return None
  w = as_array("weight", weight)  # type: ignore[arg-type]
  if not jnp.issubdtype(w.dtype, jnp.floating):
    raise TypeError(
        f"`weight` must have a floating dtype, got {w.dtype} instead."
    )
  if w.shape != (num_classes,):
    raise ValueError(
        f"`weight` must have shape ({num_classes},) (one entry per class), "
        f"got shape {w.shape}."
    )
  return w


def check_where(where: object, shape: tuple[int, ...], what: str = "the targets' shape") -> jax.Array | None:
  """A boolean mask broadcastable to ``shape`` (described as ``what`` in errors), broadcast to it."""
  if where is None:
    return None
  mask = as_array("where", where)  # type: ignore[arg-type]
  if mask.dtype != jnp.bool_:
    raise TypeError(f"`where` must be a boolean array, got {mask.dtype}.")
  if not broadcasts_to(mask.shape, shape):
    raise ValueError(
        f"`where` of shape {mask.shape} does not broadcast to {what}, {tuple(shape)}."
    )
  with jax.ensure_compile_time_eval():  # stays concrete for a concrete mask
    return jnp.broadcast_to(mask, shape)


KL_REDUCTIONS = (*REDUCTIONS, "batchmean")


def check_kl_reduction(reduction: object) -> str:
  if reduction not in KL_REDUCTIONS:
    raise ValueError(
        f"`reduction` must be one of {KL_REDUCTIONS}, got {reduction!r}."
    )
  return str(reduction)


def check_real(name: str, x: jax.Array) -> None:
  """Boolean, integer or floating: values that convert to a real loss dtype."""
  if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)
          or x.dtype == jnp.bool_):
    raise TypeError(
        f"`{name}` must have a real (floating, integer or bool) dtype, got {x.dtype} instead."
    )


def check_flag(name: str, value: object) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(f"`{name}` must be a bool, got {value!r}.")
  return bool(value)


def check_positive(name: str, value: object) -> float:
  x = _static_float(name, value)
  if not (x > 0.0 and np.isfinite(x)):
    raise ValueError(f"`{name}` must be finite and > 0, got {value!r}.")
  return x


def check_nonnegative(name: str, value: object) -> float:
  x = _static_float(name, value)
  if not (x >= 0.0 and np.isfinite(x)):
    raise ValueError(f"`{name}` must be finite and >= 0, got {value!r}.")
  return x


def check_finite(name: str, value: object) -> float:
  x = _static_float(name, value)
  if not np.isfinite(x):
    raise ValueError(f"`{name}` must be finite, got {value!r}.")
  return x


def check_weight_array(name: str, weight: object) -> jax.Array | None:
  """An optional floating array of weights (its shape is checked against the input later)."""
  if weight is None:
    return None
  w = as_array(name, weight)  # type: ignore[arg-type]
  if not jnp.issubdtype(w.dtype, jnp.floating):
    raise TypeError(f"`{name}` must have a floating dtype, got {w.dtype} instead.")
  return w


def check_broadcast_weight(
    name: str, weight: object, shape: tuple[int, ...], expected: str = ""
) -> jax.Array | None:
  """Optional floating weights broadcastable to ``shape`` (never enlarging it), broadcast to it."""
  w = check_weight_array(name, weight)
  if w is None:
    return None
  if not broadcasts_to(w.shape, shape):
    raise ValueError(
        f"`{name}` of shape {w.shape} does not broadcast to the input's shape "
        f"{tuple(shape)}{expected}."
    )
  return jnp.broadcast_to(w, shape)
