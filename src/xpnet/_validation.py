"""Input checks shared by the network, the training loop and the command line.

Every error names the argument and says what was expected and what was given.
Checks run once per public call (once per ``fit``), never inside the training loop.
"""

from __future__ import annotations

import functools
import math
import numbers
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from .backends import Backend, get_backend

Array = Any

_ARRAY_MODULES = ("numpy", "cupy", "torch", "array_api_strict", "jax", "jaxlib", "dask")


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_positive_float(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


def check_nonnegative_float(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def array_module(obj: Any) -> str | None:
    """Library of an array object (``"torch"``, ``"cupy"``, ``"jax"``...), else ``None``.

    The name is the backend's registry name: a JAX array's class lives in ``jaxlib``
    (``jaxlib._jax.ArrayImpl``), which is reported as ``"jax"``.
    """
    module = type(obj).__module__.split(".")[0]
    if module == "jaxlib":
        return "jax"
    return module if module in _ARRAY_MODULES else None


def to_backend(backend: Backend, obj: Any, name: str) -> Array:
    """Bring ``obj`` onto ``backend`` keeping its dtype: NumPy/lists are moved there,
    arrays of the backend itself are used as they are (torch tensors detached from any
    autograd graph; arrays on another device of the same library copied to the backend's
    device), other backends' arrays refused.
    """
    module = array_module(obj)
    if module is None or module == "numpy":
        try:
            host = np.asarray(obj)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{name} must be a rectangular numeric array; could not convert it ({exc})"
            ) from None
        if host.dtype.kind not in "biuf":
            raise TypeError(
                f"{name} must hold numbers (bool, int or float); got dtype {host.dtype}"
            )
        if backend.name == "numpy":
            return host
        return backend.asarray(host)
    if module == "dask":
        raise TypeError(
            f"{name} is a dask array; MLP.fit/predict/predict_proba/forward and the "
            "estimators' fit/partial_fit/predict/predict_proba/score take dask arrays "
            f"(see xpnet.distributed), this call does not: compute it first ({name}.compute())"
        )
    if module != backend.name:
        raise TypeError(
            f"{name} is a {module} array but this network uses backend {backend.name!r}. "
            f"Convert it first, e.g. xpnet.to_numpy({name}), or build the network with "
            f"backend={module!r}."
        )
    xp = backend.xp
    if not xp.isdtype(obj.dtype, ("bool", "integral", "real floating")):
        raise TypeError(f"{name} must hold real numbers; got dtype {obj.dtype}")
    if module == "torch":
        # The hand-written backward pass needs no autograd graph: a tensor that requires
        # grad would attach every parameter updated from it to the caller's graph, which
        # then grows with every step (and holds device memory). detach() shares storage.
        obj = obj.detach()
    if backend.device is not None and _device_of(obj) != backend.device:
        obj = backend.asarray(obj)  # same library, other device: move (copy) it here
    return obj


def _device_of(array: Array) -> Any:
    from array_api_compat import device

    return device(array)


def all_finite(xp: Any, array: Array) -> bool:
    if xp.isdtype(array.dtype, "real floating"):
        return bool(xp.all(xp.isfinite(array)))
    return True


def _checked_on_host(backend: Backend, obj: Any) -> bool:
    """Whether ``obj`` (NumPy, a list...) is checked on the host before it moves to
    ``backend``: the checks are the same NumPy operations there, with no device work
    (JAX compiles each eager operation per shape, or reads it from the persistent cache,
    once per process: 11 programs of a tiny compiled fit), and the data move once,
    in their final dtype."""
    return backend.name != "numpy" and array_module(obj) in (None, "numpy")


def host_view(backend: Backend, obj: Any) -> np.ndarray | None:
    """A JAX array of ``backend`` held on its CPU device, as NumPy sees it: a read-only
    view of the same memory (no copy, no device program), so its checks are the host's;
    None for anything else (another backend, an array on a GPU or spread over devices, a
    tracer, a dtype NumPy has no number kind for, such as bfloat16)."""
    if backend.name != "jax" or array_module(obj) != "jax":
        return None
    try:
        devices = obj.devices()
    except Exception:  # a tracer (inside jax.jit): checked by the backend
        return None
    if len(devices) != 1:
        return None
    (device,) = devices
    if device.platform != "cpu" or (backend.device is not None and device != backend.device):
        return None
    if np.dtype(obj.dtype).kind not in "biuf":
        return None
    return np.asarray(obj)


def _on_host(backend: Backend, obj: Any) -> Any:
    """What to check on the host instead of on ``backend`` (see :func:`_checked_on_host`
    and :func:`host_view`), or None."""
    if _checked_on_host(backend, obj):
        return obj
    return host_view(backend, obj)


def _placed(backend: Backend, obj: Any, host: Any, checked: np.ndarray, dtype: Any) -> Array:
    """The host-checked ``checked`` on ``backend``: ``obj`` itself when it is a
    backend array the checks passed unchanged (``checked`` is its view), else moved."""
    if checked is host and host is not obj:
        return obj
    return backend.asarray(checked, dtype=dtype)


# The last checks of immutable inputs (JAX arrays on the CPU), by identity: a fit, a
# score or a grid search that passes the same JAX array again skips its checks and the
# targets' encoding and upload (~0.1 ms of a warm tiny compiled fit). An entry never
# holds its input alive (a weak reference, and the input itself is not kept as a
# result) and goes with it.
_MEMO_SIZE = 8
_MEMO: dict[tuple[Any, ...], tuple[weakref.ref, Any]] = {}


def _checked_once(backend: Backend, obj: Any, dtype: Any, key: tuple[Any, ...],
                  check: Callable[[Backend, Any], Array],
                  place: Callable[..., Array] = _placed) -> Array | None:
    """``check(host backend, host view)`` placed on ``backend`` (``place(backend, obj,
    host, checked, dtype)``) when ``obj`` is checked on the host (else None), remembered
    while a JAX array ``obj`` lives."""
    memo_key = (id(obj), str(backend.device), str(dtype), *key)
    if backend.name == "jax":  # (the only backend whose arrays have a host view)
        hit = _MEMO.get(memo_key)
        if hit is not None and hit[0]() is obj:
            return obj if hit[1] is None else hit[1]
    host = _on_host(backend, obj)
    if host is None:
        return None
    placed = place(backend, obj, host, check(_host(), host), dtype)
    if host is obj:  # host data (mutable): checked each time; else a JAX array's view
        return placed
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.clear()  # (rarely reached: fits pass one X and one Y)
    _MEMO[memo_key] = (weakref.ref(obj, lambda _: _MEMO.pop(memo_key, None)),
                       None if placed is obj else placed)
    return placed


@functools.cache
def _host() -> Backend:
    """The host's checks: NumPy itself where it is an Array API namespace (NumPy 2), else
    array-api-compat's wrapper, whose first import walks NumPy's lazy submodules (0.1 s,
    a third of a JAX process's first tiny fit)."""
    if hasattr(np, "isdtype"):
        return Backend("numpy", np, "cpu")
    return get_backend("numpy")


def _host_dtype(dtype: Any) -> np.dtype:
    return np.dtype(_dtype_name(dtype))


def check_X(backend: Backend, X: Any, n_features: int, dtype: Any, name: str = "X") -> Array:
    """``X`` as a finite ``(m, n_features)`` array of ``dtype`` on ``backend``."""
    placed = _checked_once(backend, X, dtype, ("X", n_features, name), lambda be, host: check_X(
        be, host, n_features, _host_dtype(dtype), name))
    if placed is not None:
        return placed
    return cast_finite(backend.xp, check_X_shape(backend, X, n_features, name), dtype, name)


def check_X_shape(backend: Backend, X: Any, n_features: int, name: str = "X") -> Array:
    """``X`` as a ``(m, n_features)`` array (``m >= 1``) of real numbers on ``backend``,
    in its own dtype and with its values unchecked: :func:`check_X` without the
    finiteness check and the cast (block-wise prediction does those per block)."""
    X = to_backend(backend, X, name)
    if X.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if X.ndim == 1 else ""
        raise ValueError(
            f"{name} must be 2-D of shape (m, {n_features}); got shape {tuple(X.shape)}{hint}"
        )
    if X.shape[0] < 1:
        raise ValueError(f"{name} must have at least one row; got shape {tuple(X.shape)}")
    if X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features (columns) but the network expects "
            f"{n_features}; got shape {tuple(X.shape)}"
        )
    return X


def cast_finite(xp: Any, array: Array, dtype: Any, name: str) -> Array:
    """``array`` as ``dtype``, refusing NaN/inf and finite values the dtype cannot hold.

    A float64 value beyond ``finfo(float32).max`` would become inf in the cast (with
    NumPy's overflow warnings) and then be reported as "infinite", which the user's data
    are not: the range is checked in the source dtype first.
    """
    if not all_finite(xp, array):
        raise ValueError(f"{name} contains NaN or infinite values")
    if array.dtype == dtype:
        return array
    if xp.isdtype(array.dtype, "real floating") and array.shape[0] > 0:
        largest = float(xp.finfo(dtype).max)
        if float(xp.finfo(array.dtype).max) > largest:
            peak = float(xp.max(xp.abs(array)))
            if peak > largest:
                raise ValueError(
                    f"{name} holds values up to {peak:.3g} in magnitude, too large for "
                    f"{_dtype_name(dtype)} (largest {largest:.3g}); rescale the data "
                    "or use dtype float64"
                )
    return xp.astype(array, dtype)


def check_parameter(backend: Backend, value: Any, shape: tuple[int, ...], dtype: Any,
                    name: str) -> Array:
    """``value`` as a finite array of ``shape`` and ``dtype`` on ``backend``, never the
    caller's mutable array: a copy, except a JAX array of the right dtype (immutable),
    which is used as it is. Host data and JAX arrays on the CPU are checked on the host
    (one transfer, no device program)."""
    placed = _checked_once(backend, value, dtype, ("parameter", shape, name),
                           lambda be, host: check_parameter(be, host, shape,
                                                            _host_dtype(dtype), name),
                           _placed_parameter)
    if placed is not None:
        return placed
    array = to_backend(backend, value, name)
    if tuple(array.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}; got {tuple(array.shape)}")
    array = backend.xp.astype(array, dtype, copy=True)
    if not all_finite(backend.xp, array):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _placed_parameter(backend: Backend, value: Any, host: Any, checked: np.ndarray,
                      dtype: Any) -> Array:
    if host is not value and np.dtype(value.dtype) == checked.dtype:
        return value  # a JAX array on the CPU (its view was checked)
    return backend.asarray(checked, dtype=dtype)


def _dtype_name(dtype: Any) -> str:
    text = str(dtype)
    return text.rsplit(".", 1)[-1].strip("'>")


def check_Y(
    backend: Backend, Y: Any, m: int, task: str, n_out: int, dtype: Any, name: str = "Y"
) -> Array:
    """``Y`` as a finite ``(m, n_out)`` float array on ``backend``, encoded for ``task``.

    ``task`` is ``"binary"`` (sigmoid outputs: 0/1 targets), ``"multiclass"`` (softmax:
    integer labels in ``[0, n_out)`` or one-hot rows) or ``"regression"`` (identity).
    A 1-D target is accepted only where it is unambiguous and is reshaped explicitly,
    never broadcast.
    """
    placed = _checked_once(backend, Y, dtype, ("Y", m, task, n_out, name),
                           lambda be, host: check_Y(be, host, m, task, n_out,
                                                    _host_dtype(dtype), name))
    if placed is not None:
        return placed
    xp = backend.xp
    Y = to_backend(backend, Y, name)
    if Y.ndim == 0 or Y.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D; got shape {tuple(Y.shape)}")
    if Y.shape[0] != m:
        raise ValueError(
            f"{name} has {Y.shape[0]} rows but X has {m}; they must match "
            f"(got {name} shape {tuple(Y.shape)})"
        )
    if not all_finite(xp, Y):
        raise ValueError(f"{name} contains NaN or infinite values")

    if task == "multiclass" and Y.ndim == 1:
        if xp.isdtype(Y.dtype, "real floating") and not bool(xp.all(Y == xp.round(Y))):
            raise ValueError(
                f"{name} as 1-D softmax targets must be integer class labels in [0, {n_out}); "
                "got non-integer values"
            )
        # The range is checked before the cast to int64: a label like 1e19 would wrap
        # around to a meaningless integer.
        if Y.dtype == xp.bool:
            Y = xp.astype(Y, backend.index_dtype)
        # PyTorch has no min/max for uint64: compare unsigned labels as float64.
        ranged = xp.astype(Y, xp.float64) if xp.isdtype(Y.dtype, "unsigned integer") else Y
        low, high = xp.min(ranged), xp.max(ranged)
        bad = low if bool(low < 0) else high if bool(high >= n_out) else None
        if bad is not None:
            value = float(bad) if xp.isdtype(Y.dtype, "real floating") else int(bad)
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            raise ValueError(
                f"{name} holds class label {shown} but the network has {n_out} softmax "
                f"outputs, so labels must lie in [0, {n_out - 1}]"
            )
        labels = xp.astype(Y, backend.index_dtype)
        classes = xp.arange(n_out, dtype=backend.index_dtype, device=_device_of(labels))
        return xp.astype(xp.reshape(labels, (m, 1)) == classes, dtype)

    if Y.ndim == 1:
        if n_out != 1:
            expected = (
                f"(m, {n_out})" if task != "multiclass" else f"(m,) labels or (m, {n_out})"
            )
            raise ValueError(
                f"{name} has shape {tuple(Y.shape)} but the network has {n_out} outputs; "
                f"expected {expected}"
            )
        Y = xp.reshape(Y, (m, 1))
    elif Y.shape[1] != n_out:
        extra = " or (m,) class labels" if task == "multiclass" else ""
        raise ValueError(
            f"{name} has shape {tuple(Y.shape)} but the network has {n_out} outputs; "
            f"expected (m, {n_out}){extra}"
        )

    Y = cast_finite(xp, Y, dtype, name)
    if task == "binary":
        if not bool(xp.all((Y == 0.0) | (Y == 1.0))):
            raise ValueError(
                f"{name} for sigmoid outputs must be binary (only 0 and 1); got other values"
            )
    elif task == "multiclass":
        rows_ok = bool(xp.all(Y >= 0.0)) and bool(
            xp.all(xp.abs(xp.sum(Y, axis=1) - 1.0) <= 1e-6)
        )
        if not rows_ok:
            raise ValueError(
                f"{name} of shape (m, {n_out}) for softmax outputs must be one-hot rows "
                "(non-negative, each row summing to 1)"
            )
    return Y
