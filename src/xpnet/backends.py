"""Registry of array backends: import, device, dtypes, conversion and synchronisation.

No math lives here. Every backend is described by a :class:`Backend` holding the
Array API namespace (``xp``), the device arrays are created on, and a few hooks
(``to_numpy``, ``synchronize``) that are not part of the standard.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "BACKEND_NAMES",
    "DTYPE_NAMES",
    "available_backends",
    "backend_info",
    "device_name",
    "get_backend",
    "on_device",
    "scalar",
    "to_numpy",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class BackendUnavailableError(RuntimeError):
    """A backend was asked for that cannot be used here (not installed, or no device).

    The message says what is missing and how to install or enable it.
    """


DTYPE_NAMES = ("float32", "float64")


@dataclass(frozen=True)
class _Spec:
    """How to load one backend and what to tell the user when it is missing."""

    name: str
    module: str
    install: str
    description: str


_SPECS: dict[str, _Spec] = {
    spec.name: spec
    for spec in (
        _Spec("numpy", "numpy", "pip install numpy", "NumPy on the CPU (the reference backend)"),
        _Spec(
            "cupy",
            "cupy",
            "pip install 'xpnet[cupy]'  (or the cupy-cudaXXx wheel matching your CUDA)",
            "CuPy on an NVIDIA GPU (CUDA)",
        ),
        _Spec(
            "torch",
            "torch",
            "pip install 'xpnet[torch]'  (see pytorch.org for CUDA builds)",
            "PyTorch tensors on the CPU or a CUDA GPU",
        ),
        _Spec(
            "array_api_strict",
            "array_api_strict",
            "pip install 'xpnet[strict]'",
            "array-api-strict: the standard and nothing else (compliance check)",
        ),
        _Spec(
            "jax",
            "jax",
            "pip install 'xpnet[jax]'  (see the JAX docs for CUDA builds)",
            "JAX arrays on the CPU or a GPU (XLA; fit(compile=True) compiles each epoch)",
        ),
    )
}

BACKEND_NAMES = tuple(_SPECS)


@dataclass(frozen=True)
class Backend:
    """A usable backend: its namespace, the device arrays live on, and host hooks.

    Attributes
    ----------
    name : str
        Registry name (``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``,
        ``"jax"``).
    xp : module
        The Array API compatible namespace (from ``array_api_compat``).
    device : object or None
        Device object passed to ``xp.asarray(..., device=...)``; ``None`` means the
        backend's default device.
    """

    name: str
    xp: Any
    device: Any
    _sync: Callable[[], None] = field(repr=False, compare=False, default=lambda: None)
    _activate: Callable[[], AbstractContextManager[Any]] = field(
        repr=False, compare=False, default=contextlib.nullcontext
    )
    _block: Callable[[tuple[Any, ...]], None] | None = field(
        repr=False, compare=False, default=None
    )
    _enable_dtype: Callable[[str], None] | None = field(repr=False, compare=False, default=None)
    #: Places a NumPy array (already in its final dtype) on the device without running a
    #: device program, or returns None where it cannot (see :meth:`asarray`).
    _put: Callable[[Any], Any] | None = field(repr=False, compare=False, default=None)

    def dtype(self, name: str) -> Any:
        """The backend's dtype object for ``"float32"`` or ``"float64"``.

        On JAX, asking for ``"float64"`` turns on ``jax_enable_x64`` (see :func:`_make_jax`).
        """
        _check_dtype_name(name)
        if self._enable_dtype is not None:
            self._enable_dtype(name)
        return getattr(self.xp, name)

    @property
    def index_dtype(self) -> Any:
        """Integer dtype for labels, indices and 0/1 predictions: ``int64``, except on JAX
        in its default 32-bit mode (no float64 network built yet), where it is ``int32``
        (JAX would truncate an ``int64`` request to it with a warning)."""
        if self.name == "jax":
            import jax

            if not getattr(jax.config, "jax_enable_x64"):  # noqa: B009 (an attribute mypy cannot see)
                return self.xp.int32
        return self.xp.int64

    @property
    def device_name(self) -> str:
        """Canonical name of the device (``"cpu"``, ``"cuda:0"``...) for files and output."""
        return device_name(self.device)

    def activate(self) -> AbstractContextManager[Any]:
        """Context in which this backend's device is the current one.

        CuPy launches kernels, and array-api-compat's CuPy ``ones``/``arange``/
        ``zeros_like`` allocate, on the *current* device whatever ``device=`` says
        (array-api-compat issue 337, CuPy issue 9848), so every CuPy computation of a
        network runs inside ``with backend.activate():`` (``cupy.cuda.Device(i)``). A no-op
        for the other backends, whose arrays carry their device.
        """
        return self._activate()

    def asarray(self, obj: Any, dtype: Any = None, copy: bool | None = None) -> Any:
        """Move ``obj`` (NumPy array, list or array of this backend) onto this backend.

        An array of this library on another device is copied here (``copy=None`` would
        leave a CuPy array where it is).
        """
        if _on_other_device(obj, self.device):
            if self.name == "cupy":
                # cupy.asarray leaves it on its device and a copy kernel would read the
                # other GPU; ndarray.copy() under the target device is CuPy's documented
                # device-to-device copy
                with self.activate():
                    obj = obj.copy()
            elif copy is None:
                copy = True
        if (self._put is not None and copy is not False and isinstance(obj, np.ndarray)
                and obj.dtype.kind in "biuf"):
            # cast on the host, then one transfer: JAX's asarray compiles two small
            # programs per new shape and dtype (a cast and a copy), each compiled or read
            # from the persistent cache once per process (JAX casts host arrays with
            # NumPy too, warnings included). JAX on the CPU may keep an aligned host
            # array as the device buffer itself, so the caller's array is copied first:
            # later writes to it must not show
            host = np.asarray(obj, dtype=dtype)
            if np.may_share_memory(host, obj):
                host = host.copy()
            placed = self._put(host)
            if placed is not None:
                return placed
        with self.activate():
            return self.xp.asarray(obj, dtype=dtype, device=self.device, copy=copy)

    def synchronize(self, *arrays: Any) -> None:
        """Block until queued device work is done (no-op on CPU backends).

        CuPy and torch wait for the whole device. JAX has no device-wide barrier: it
        blocks until ``arrays`` (arrays or lists/tuples of them, e.g. a network's
        parameters) are computed, so pass what the timing or the next step depends on.
        """
        if self._block is not None:
            self._block(arrays)
        self._sync()

    def to_numpy(self, array: Any) -> np.ndarray:
        """Copy an array of this backend to a NumPy array on the host."""
        return to_numpy(array)


def on_device(method: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
    """Run ``method(obj, ...)`` inside ``obj.array_backend.activate()``.

    For the public entry points of objects that hold a :class:`Backend` (the network,
    the training loop): on CuPy the network's device is the current one for everything
    they compute; elsewhere it costs one no-op ``with``.
    """

    @functools.wraps(method)
    def wrapper(obj: Any, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with obj.array_backend.activate():
            return method(obj, *args, **kwargs)

    return wrapper


def _check_dtype_name(name: object) -> None:
    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_NAMES)}; got {name!r}")


def _import(name: str) -> Any:
    spec = _SPECS[name]
    try:
        return importlib.import_module(spec.module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {name!r} is not installed ({exc}). Install it with: {spec.install}"
        ) from None


def _on_other_device(obj: Any, device: Any) -> bool:
    """Whether ``obj`` is an array that lives on a device other than ``device``."""
    if device is None or isinstance(obj, np.ndarray) or not hasattr(obj, "device"):
        return False
    try:
        from array_api_compat import device as device_of

        return bool(device_of(obj) != device)
    except Exception:  # not an array the compat layer knows: nothing to move
        return False


def _cupy_device_id(device: Any) -> int | None:
    """The index of a CuPy ``Device`` (or any object with an int ``.id`` and no ``.type``
    or ``.platform``: a JAX device has an ``.id`` too, and says its kind in ``.platform``)."""
    index = getattr(device, "id", None)
    if (
        hasattr(device, "type")
        or hasattr(device, "platform")
        or isinstance(index, bool)
        or not isinstance(index, int)
    ):
        return None
    return index


def _jax_device_name(device: Any) -> str | None:
    """``"cpu"`` (``"cpu:N"`` past the first) or ``"cuda:N"`` for a JAX device, else None."""
    platform = getattr(device, "platform", None)
    index = getattr(device, "id", None)
    if not isinstance(platform, str) or not isinstance(index, int):
        return None
    if platform == "cpu":
        return "cpu" if index == 0 else f"cpu:{index}"
    return f"cuda:{index}" if platform in ("gpu", "cuda", "rocm") else f"{platform}:{index}"


def device_name(device: Any) -> str:
    """Canonical name of a device as given to or used by a backend.

    ``None`` is ``"default device"``; CuPy ``Device(1)`` (anything with an int ``.id``) and
    ``1`` are ``"cuda:1"``; ``torch.device("cuda", 0)`` is ``"cuda:0"``; a string is kept;
    anything else is ``str(device)``. This is what saved models and the command line show,
    never a ``repr`` like ``"<CUDA Device 0>"``.
    """
    if device is None:
        return "default device"
    if isinstance(device, int) and not isinstance(device, bool):
        return f"cuda:{device}"
    jax_name = _jax_device_name(device)
    if jax_name is not None:
        return jax_name
    index = _cupy_device_id(device)
    if index is not None:
        return f"cuda:{index}"
    kind, index = getattr(device, "type", None), getattr(device, "index", None)
    if isinstance(kind, str):  # torch.device
        return kind if index is None else f"{kind}:{index}"
    return str(device)


def _parse_cuda_index(device: Any, backend: str) -> int:
    """Turn ``None``, ``0``, ``"cuda"``, ``"cuda:1"``, ``"gpu:1"``, a CuPy ``Device`` (any
    object with an int ``.id``) or a CUDA ``torch.device`` into a device index."""
    if device is None:
        return 0
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    index = _cupy_device_id(device)
    if index is not None:
        return index
    if isinstance(getattr(device, "type", None), str):  # torch.device("cuda", 1)
        if device.type == "cuda":
            return 0 if device.index is None else int(device.index)
    elif isinstance(device, str):
        kind, _, index_text = device.partition(":")
        if kind in ("cuda", "gpu") and (index_text == "" or index_text.isdigit()):
            return int(index_text or 0)
    raise ValueError(
        f"device for backend {backend!r} must be None, an index, 'cuda:N', a "
        f"cupy.cuda.Device or a CUDA torch.device; got {device!r}"
    )


def _make_numpy(device: Any) -> Backend:
    import array_api_compat.numpy as xp

    if device is not None and device_name(device) != "cpu":
        raise ValueError(
            f"device for backend 'numpy' must be None or 'cpu' (a string or torch.device); "
            f"got {device!r}"
        )
    return Backend("numpy", xp, "cpu")


def _make_cupy(device: Any) -> Backend:
    cupy = _import("cupy")
    index = _parse_cuda_index(device, "cupy")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver/runtime errors come in several types
        raise BackendUnavailableError(
            f"backend 'cupy' is installed but no CUDA device is usable here ({exc}). "
            "CuPy needs an NVIDIA GPU with a working driver; use --backend numpy or torch instead."
        ) from None
    if count < 1:
        raise BackendUnavailableError(
            "backend 'cupy' is installed but no CUDA device was found. "
            "CuPy needs an NVIDIA GPU; use --backend numpy or torch instead."
        )
    if not 0 <= index < count:
        raise BackendUnavailableError(
            f"CUDA device {index} requested but only {count} device(s) exist (0..{count - 1})"
        )
    import array_api_compat.cupy as xp

    dev = cupy.cuda.Device(index)

    def sync() -> None:
        dev.synchronize()

    def activate() -> Any:
        # a fresh Device per `with`: its stack of previous devices is per object, so
        # nested or concurrent uses never share one
        return cupy.cuda.Device(index)

    return Backend("cupy", xp, dev, sync, activate)


def _make_torch(device: Any) -> Backend:
    torch = _import("torch")
    import array_api_compat.torch as xp

    if device is None:
        dev = torch.device("cpu")
    else:
        if _cupy_device_id(device) is not None:  # a CuPy Device: the same CUDA device
            device = f"cuda:{_cupy_device_id(device)}"
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"device for backend 'torch' must be like 'cpu' or 'cuda:0'; got {device!r} ({exc})"
            ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"torch device {device!r} requested but this torch has no usable CUDA device "
                f"(torch {torch.__version__}). Use device 'cpu' or install a CUDA build of torch."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendUnavailableError(
                f"torch device {device!r} requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
        if dev.index is None:  # "cuda": pin the current device, so its name is "cuda:N"
            dev = torch.device("cuda", torch.cuda.current_device())

        def sync() -> None:
            torch.cuda.synchronize(dev)

        return Backend("torch", xp, dev, sync)
    if dev.type != "cpu":
        raise ValueError(f"torch device type {dev.type!r} is not supported; use 'cpu' or 'cuda:N'")
    return Backend("torch", xp, dev)


def _make_strict(device: Any) -> Backend:
    strict = _import("array_api_strict")
    if device is None:
        dev = None
    elif isinstance(device, str):
        dev = strict.Device(device)
    else:
        dev = device
    return Backend("array_api_strict", strict, dev)


def _enable_jax_float64(name: str) -> None:
    """Turn on JAX's 64-bit mode the first time a float64 JAX network is built.

    JAX computes in 32 bits unless ``jax_enable_x64`` is set, and the switch is
    process-wide. xpnet's rule: building anything float64 on JAX (a network, a loaded
    model, ``Backend.dtype("float64")``) sets it, silently, once; it is never turned
    off again. xpnet passes ``dtype=`` everywhere, so its float32 networks stay float32
    either way; other JAX code in the process then gets 64-bit defaults (e.g.
    ``jnp.arange`` gives int64), as with ``JAX_ENABLE_X64=1``. Set it yourself at start-up
    (``jax.config.update("jax_enable_x64", True)``) to make that explicit.
    """
    if name != "float64":
        return
    import jax

    if not getattr(jax.config, "jax_enable_x64"):  # noqa: B009 (an attribute mypy cannot see)
        jax.config.update("jax_enable_x64", True)


def _jax_device(jax: Any, device: Any) -> Any:
    """A ``jax.Device`` for ``None``/``"cpu"`` (the first CPU device), ``"cuda:N"``/
    ``"gpu:N"``/an index (the N-th GPU) or a ``jax.Device`` (kept)."""
    if _jax_device_name(device) is not None:
        return device
    if device is None or (isinstance(device, str) and device in ("cpu", "cpu:0")):
        return jax.devices("cpu")[0]
    index = _parse_cuda_index(device, "jax")
    try:
        gpus = jax.devices("gpu")
    except RuntimeError as exc:
        raise BackendUnavailableError(
            f"jax device {device!r} requested but this jax has no usable GPU ({exc}). "
            "Use device 'cpu' or install a CUDA build of jax (pip install 'jax[cuda12]')."
        ) from None
    if not 0 <= index < len(gpus):
        raise BackendUnavailableError(
            f"jax device {device!r} requested but only {len(gpus)} GPU(s) exist"
        )
    return gpus[index]


def _make_jax(device: Any) -> Backend:
    """JAX on ``device`` (default: the CPU, as with torch).

    Arrays are immutable: xpnet's ``p -= lr * g`` rebinds the list entry, so the same
    code path works. There is no device-wide barrier, so ``synchronize(*arrays)`` blocks
    on the arrays given. ``activate()`` makes the device JAX's default device, so arrays
    created without ``device=`` land on it too, and on GPUs sets the float32 matmul
    precision to ``"highest"`` (JAX's default there rounds matmul inputs to TF32).
    """
    jax = _import("jax")
    import jax.numpy as xp

    from ._jit_cache import configure_jax

    configure_jax(jax)  # compiled programs kept across processes (xpnet._jit_cache)
    dev = _jax_device(jax, device)

    def block(arrays: tuple[Any, ...]) -> None:
        jax.block_until_ready(arrays)

    def activate() -> Any:
        if dev.platform == "cpu":
            return jax.default_device(dev)
        # On GPUs JAX's default float32 matmul precision is TF32-like (10-bit mantissa
        # inputs); xpnet asks for full float32 ("highest") so its results agree with the
        # other backends within the cross-backend tolerances.
        stack = contextlib.ExitStack()
        stack.enter_context(jax.default_device(dev))
        stack.enter_context(jax.default_matmul_precision("highest"))
        return stack

    return Backend(
        "jax", xp, dev, _activate=activate, _block=block, _enable_dtype=_enable_jax_float64,
        _put=functools.partial(_jax_put, jax, device=dev),
    )


def _jax_put(jax: Any, host: np.ndarray, device: Any) -> Any:
    """``host`` on JAX's ``device`` without a device program (a transfer), or None in
    JAX's 32-bit mode for a 64-bit dtype (``jnp.asarray`` then narrows it, JAX's way).
    ``host`` must be an array of its own: JAX's CPU client may keep it as the buffer."""
    if jax.dtypes.canonicalize_dtype(host.dtype) != host.dtype:
        return None
    return jax.device_put(host, device)


_FACTORIES: dict[str, Callable[[Any], Backend]] = {
    "numpy": _make_numpy,
    "cupy": _make_cupy,
    "torch": _make_torch,
    "array_api_strict": _make_strict,
    "jax": _make_jax,
}


def get_backend(name: str | Backend = "numpy", device: Any = None) -> Backend:
    """Load backend ``name`` on ``device`` (``None``: the backend's default device).

    Parameters
    ----------
    name : str or Backend, default "numpy"
        A name of :data:`BACKEND_NAMES` (a Backend is returned as it is).
    device : optional
        A device of that backend (a string such as ``"cuda:0"`` or the backend's own
        device object).

    Raises
    ------
    ValueError
        ``name`` is not a known backend, or ``device`` is malformed.
    BackendUnavailableError
        The backend is not installed, or has no usable device here; the message
        says how to install it.
    """
    if isinstance(name, Backend):
        return name
    if name not in _FACTORIES:
        raise ValueError(f"backend must be one of {', '.join(BACKEND_NAMES)}; got {name!r}")
    return _FACTORIES[name](device)


def available_backends() -> list[str]:
    """Names of the backends that are installed and usable on their default device."""
    usable = []
    for name in BACKEND_NAMES:
        try:
            get_backend(name)
        except BackendUnavailableError:
            continue
        usable.append(name)
    return usable


def backend_info(name: str) -> dict[str, Any]:
    """Status of one backend: installed, version, usable, reason and install line."""
    spec = _SPECS[name]
    info: dict[str, Any] = {
        "name": name,
        "description": spec.description,
        "install": spec.install,
        "installed": False,
        "version": None,
        "usable": False,
        "reason": None,
    }
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        info["reason"] = f"not installed ({exc})"
        return info
    info["installed"] = True
    info["version"] = getattr(module, "__version__", None)
    try:
        get_backend(name)
    except BackendUnavailableError as exc:
        info["reason"] = str(exc)
    else:
        info["usable"] = True
    return info


def scalar(xp: Any, value: float, dtype: Any, device: Any) -> Any:
    """A 0-d array of the Python number ``value`` in ``dtype`` on ``device``. On JAX the
    value is put on the device from the host: ``jnp.asarray`` runs a cast and a copy
    program per dtype, each compiled (or read from the persistent cache) once per
    process, six of them for an optimiser's learning rate and step count. The same
    value, dtype and device give the same (immutable) array: it moves once."""
    from array_api_compat import is_jax_namespace

    if is_jax_namespace(xp):
        import jax

        host = np.asarray(value, dtype=np.dtype(dtype))
        key = (host.tobytes(), host.dtype.str, str(device))
        placed = _JAX_SCALARS.get(key)
        if placed is None or placed.is_deleted():  # (a caller's program may donate it)
            placed = _jax_put(jax, host, device)
            if placed is not None:
                if len(_JAX_SCALARS) >= 64:
                    _JAX_SCALARS.clear()
                _JAX_SCALARS[key] = placed
        if placed is not None:
            return placed
    return xp.asarray(value, dtype=dtype, device=device)


# JAX arrays are immutable: one 0-d array per value, dtype and device is put on the
# device once (a transfer costs ~70 µs, two of them at the start of every compiled fit)
_JAX_SCALARS: dict[tuple[bytes, str, str], Any] = {}


def to_numpy(array: Any) -> np.ndarray:
    """Copy an array of any supported backend (or a list/scalar) to a NumPy array.

    Parameters
    ----------
    array : array, list or scalar
        What to copy.
    """
    if isinstance(array, np.ndarray):
        return array
    module = type(array).__module__.split(".")[0]
    if module == "cupy":
        return array.get()
    if module == "torch":
        return array.detach().cpu().numpy()
    if module == "array_api_strict":
        return np.from_dlpack(array)
    if module in ("jax", "jaxlib"):
        return np.array(array)  # a writable copy (np.asarray gives a read-only view)
    return np.asarray(array)
