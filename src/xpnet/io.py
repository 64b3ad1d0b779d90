"""Portable model files: weights plus a JSON header in one ``.npz``, never pickled.

Layout of a model file (a NumPy ``.npz`` archive)::

    header     uint8   UTF-8 JSON: format, versions, architecture, dtype, metadata
    W1, b1, …  float32/float64   the parameters, W_l (n_{l-1}, n_l), b_l (n_l,)
    checksum   uint8   SHA-256 (hex) of the header bytes and of every parameter

Loading uses ``allow_pickle=False`` and checks every field, every array's shape, dtype
and values, and the checksum, so a corrupt, truncated or tampered file is refused with a
:class:`ModelFileError` that says what is wrong. The arrays are plain NumPy, so a model
trained on one backend (CuPy, say) loads on any other (NumPy, say).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from typing import Any

import numpy as np

from ._files import atomic_write
from .activations import ACTIVATIONS
from .backends import DTYPE_NAMES, to_numpy
from .data import check_file
from .losses import OUTPUTS
from .network import MLP

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "load", "read_header", "save"]

FORMAT = "xpnet-model"
FORMAT_VERSION = 1

# Metadata keys with a meaning (validated); any other keyword given to save() is kept,
# as JSON, under "metadata"["extra"].
_TASKS = ("binary", "multiclass", "regression")
_HEADER_KEYS = {
    "format", "format_version", "xpnet_version", "layer_sizes", "activations", "output",
    "loss", "dtype", "alpha", "trained_on", "metadata",
}
_METADATA_KEYS = {
    "standardize", "target_standardize", "classes", "feature_names", "target_name", "task",
    "dataset", "split", "extra",
}


class ModelFileError(ValueError):
    """A model file cannot be read: missing, not an xpnet model, corrupt or tampered."""


# --------------------------------------------------------------------------- saving
def _json_value(name: str, value: Any) -> Any:
    """``value`` as JSON-ready Python data (NumPy arrays and scalars converted)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"metadata {name!r} must be JSON-serialisable and finite ({exc})"
        ) from None
    return value


def _stats(name: str, value: Any) -> dict[str, list[float]] | None:
    """``(mean, scale)``, a ``{"mean", "scale"}`` dict or an object with those attributes."""
    if value is None:
        return None
    if isinstance(value, dict):
        mean, scale = value.get("mean"), value.get("scale")
    elif hasattr(value, "mean") and hasattr(value, "scale"):
        mean, scale = value.mean, value.scale
    else:
        try:
            mean, scale = value
        except (TypeError, ValueError):
            raise ValueError(f"metadata {name!r} must be (mean, scale) or a dict") from None
    return {
        "mean": [float(v) for v in np.ravel(np.asarray(mean, dtype=np.float64))],
        "scale": [float(v) for v in np.ravel(np.asarray(scale, dtype=np.float64))],
    }


def _checksum(header: bytes, arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256(header)
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def save(net: MLP, path: str | os.PathLike[str], **metadata: Any) -> None:
    """Write ``net`` to ``path`` (an ``.npz`` model file; the name is used as given).

    Keyword metadata with a meaning, all optional:

    - ``standardize``: feature statistics ``(mean, scale)`` (or a dict / an object with
      ``mean`` and ``scale``) applied to inputs at predict time;
    - ``target_standardize``: the same for a regression target;
    - ``classes``: the class labels, by output index;
    - ``feature_names``, ``target_name``, ``task`` (``binary``, ``multiclass``,
      ``regression``), ``dataset``, ``split``.

    Any other keyword (JSON-serialisable) is stored under ``metadata["extra"]``. The file
    is written to a temporary name and renamed, so a crash never leaves half a model.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"save() needs an xpnet.MLP; got {type(net).__name__}")
    from . import __version__

    meta: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in ("standardize", "target_standardize"):
            meta[key] = _stats(key, value)
        elif key in _METADATA_KEYS and key != "extra":
            meta[key] = _json_value(key, value)
        else:
            extra[key] = _json_value(key, value)
    if extra:
        meta["extra"] = extra
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xpnet_version": __version__,
        "layer_sizes": list(net.layer_sizes),
        "activations": list(net.activations),
        "output": net.output,
        "loss": net.loss_name,
        "dtype": net.dtype,
        "alpha": net.alpha,
        "trained_on": {
            "backend": net.backend,
            "device": net.array_backend.device_name,  # "cuda:0", never "<CUDA Device 0>"
        },
        "metadata": meta,
    }
    _validate_header(header, source="the model to save")  # never write what load refuses
    header_bytes = json.dumps(header, allow_nan=False, sort_keys=True).encode("utf-8")
    arrays = [np.ascontiguousarray(to_numpy(p)) for pair in net.params for p in pair]
    names = [f"{kind}{layer + 1}" for layer in range(net.n_layers) for kind in ("W", "b")]
    payload = {name: array for name, array in zip(names, arrays, strict=True)}
    payload["header"] = np.frombuffer(header_bytes, dtype=np.uint8)
    payload["checksum"] = np.frombuffer(
        _checksum(header_bytes, arrays).encode("ascii"), dtype=np.uint8
    )
    # Temp file, fsync, rename (see xpnet._files): a crash never leaves half a model, and
    # directories, devices and FIFOs are refused rather than replaced.
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, **payload)  # type: ignore[arg-type]  # numeric arrays only: nothing to pickle


# --------------------------------------------------------------------------- checks
def _fail(source: str, message: str) -> ModelFileError:
    return ModelFileError(f"model file {source}: {message}")


def _check_type(source: str, name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _fail(source, f"field {name!r} has the wrong type ({value!r})")
    if not isinstance(value, kind):
        raise _fail(source, f"field {name!r} has the wrong type ({type(value).__name__})")


def _check_stats(source: str, name: str, stats: Any, size: int) -> None:
    if stats is None:
        return
    _check_type(source, name, stats, dict)
    if set(stats) != {"mean", "scale"}:
        raise _fail(source, f"field {name!r} must hold exactly 'mean' and 'scale'")
    for key in ("mean", "scale"):
        values = stats[key]
        _check_type(source, f"{name}.{key}", values, list)
        if len(values) != size:
            raise _fail(source, f"field {name}.{key} has {len(values)} entries; expected {size}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise _fail(source, f"field {name}.{key} must hold finite numbers")
    if any(v <= 0 for v in stats["scale"]):
        raise _fail(source, f"field {name}.scale must be positive")


def _validate_header(header: Any, source: str) -> None:
    """Check every field of a header; raise :class:`ModelFileError` naming the first bad one."""
    _check_type(source, "header", header, dict)
    missing = _HEADER_KEYS - set(header)
    unknown = set(header) - _HEADER_KEYS
    if missing:
        raise _fail(source, f"header lacks field(s) {', '.join(sorted(missing))}")
    if unknown:
        raise _fail(source, f"header has unknown field(s) {', '.join(sorted(unknown))}")
    if header["format"] != FORMAT:
        raise _fail(source, f"not an xpnet model (format {header['format']!r})")
    version = header["format_version"]
    _check_type(source, "format_version", version, int)
    if version != FORMAT_VERSION:
        raise _fail(
            source,
            f"format version {version} is not supported (this xpnet reads version "
            f"{FORMAT_VERSION}); upgrade xpnet" if version > FORMAT_VERSION
            else f"format version {version} is not supported",
        )
    _check_type(source, "xpnet_version", header["xpnet_version"], str)
    sizes = header["layer_sizes"]
    _check_type(source, "layer_sizes", sizes, list)
    if len(sizes) < 2 or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes
    ):
        raise _fail(source, f"field 'layer_sizes' must be 2+ positive integers; got {sizes!r}")
    acts = header["activations"]
    _check_type(source, "activations", acts, list)
    if len(acts) != len(sizes) - 2 or any(a not in ACTIVATIONS for a in acts):
        raise _fail(
            source, f"field 'activations' must name one of {', '.join(ACTIVATIONS)} per hidden "
            f"layer ({len(sizes) - 2}); got {acts!r}"
        )
    output = header["output"]
    if output not in OUTPUTS:
        raise _fail(source, f"field 'output' must be one of {', '.join(OUTPUTS)}; got {output!r}")
    if header["loss"] != OUTPUTS[output].loss_name:
        raise _fail(source, f"field 'loss' {header['loss']!r} does not match output {output!r}")
    if output == "softmax" and sizes[-1] < 2:
        raise _fail(source, "a softmax output needs at least 2 units")
    if header["dtype"] not in DTYPE_NAMES:
        raise _fail(source, f"field 'dtype' must be one of {', '.join(DTYPE_NAMES)}")
    alpha = header["alpha"]
    _check_type(source, "alpha", alpha, (int, float))
    if not math.isfinite(alpha) or alpha < 0:
        raise _fail(source, f"field 'alpha' must be a finite number >= 0; got {alpha!r}")
    trained = header["trained_on"]
    _check_type(source, "trained_on", trained, dict)
    if set(trained) != {"backend", "device"} or not all(
        isinstance(v, str) for v in trained.values()
    ):
        raise _fail(source, "field 'trained_on' must hold the strings 'backend' and 'device'")

    meta = header["metadata"]
    _check_type(source, "metadata", meta, dict)
    unknown = set(meta) - _METADATA_KEYS
    if unknown:
        raise _fail(source, f"metadata has unknown field(s) {', '.join(sorted(unknown))}")
    n_in, n_out = sizes[0], sizes[-1]
    _check_stats(source, "standardize", meta.get("standardize"), n_in)
    _check_stats(source, "target_standardize", meta.get("target_standardize"), n_out)
    task = meta.get("task")
    if task is not None and task not in _TASKS:
        raise _fail(source, f"field 'task' must be one of {', '.join(_TASKS)}; got {task!r}")
    expected_task = OUTPUTS[output].task
    if task is not None and task != expected_task:
        raise _fail(source, f"field 'task' {task!r} does not match output {output!r}")
    classes = meta.get("classes")
    if classes is not None:
        _check_type(source, "classes", classes, list)
        if output == "identity":
            raise _fail(source, "a regression model (identity output) has no classes")
        expected = 2 if output == "sigmoid" and n_out == 1 else n_out
        if len(classes) != expected:
            raise _fail(source, f"field 'classes' has {len(classes)} labels; expected {expected}")
        if any(isinstance(c, bool) or not isinstance(c, (str, int, float)) for c in classes):
            raise _fail(source, "field 'classes' must hold strings or numbers")
        if len({json.dumps(c) for c in classes}) != len(classes):
            raise _fail(source, "field 'classes' holds duplicate labels")
    names = meta.get("feature_names")
    if names is not None:
        _check_type(source, "feature_names", names, list)
        if len(names) != n_in or not all(isinstance(n, str) for n in names):
            raise _fail(source, f"field 'feature_names' must hold {n_in} strings")
    for key in ("target_name", "dataset"):
        if meta.get(key) is not None:
            _check_type(source, key, meta[key], str)
    split = meta.get("split")
    if split is not None:
        _check_type(source, "split", split, dict)
        fraction, seed = split.get("test_fraction"), split.get("seed")
        if set(split) != {"test_fraction", "seed"} or not (
            isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
            and 0 <= fraction < 1
        ) or not (seed is None or (isinstance(seed, int) and not isinstance(seed, bool))):
            raise _fail(source, "field 'split' must hold 'test_fraction' in [0, 1) and 'seed'")
    if "extra" in meta:
        _check_type(source, "extra", meta["extra"], dict)


# --------------------------------------------------------------------------- loading
def _open(path: str | os.PathLike[str]) -> tuple[str, dict[str, np.ndarray]]:
    text = os.fspath(path)
    source = repr(text)
    check_file(text, "model file", ModelFileError)
    try:
        loaded = np.load(text, allow_pickle=False)
        if not hasattr(loaded, "files"):
            raise _fail(source, "is a single .npy array, not an xpnet model (.npz)")
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise _fail(
            source, f"is not a readable .npz archive; it may be truncated or corrupt ({exc})"
        ) from None
    except Exception as exc:  # zlib.error and friends from a damaged archive
        raise _fail(source, f"is corrupt ({type(exc).__name__}: {exc})") from None
    return source, arrays


def _decode_header(source: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if "header" not in arrays:
        raise _fail(source, "has no 'header'; it is not an xpnet model")
    raw = arrays["header"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _fail(source, "its 'header' is not UTF-8 JSON bytes")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(source, f"its header is not valid JSON ({exc})") from None
    _validate_header(header, source)
    return header


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated JSON header of a model file (architecture and metadata)."""
    source, arrays = _open(path)
    return _decode_header(source, arrays)


def load(
    path: str | os.PathLike[str],
    backend: str = "numpy",
    device: Any = None,
    dtype: str | None = None,
) -> MLP:
    """Read a model file written by :func:`save` onto ``backend``/``device``.

    ``dtype`` defaults to the dtype the model was saved with. The returned network has a
    ``metadata`` attribute: the header's metadata dict (standardisation statistics,
    classes, feature names, ...), with ``metadata["header"]`` the whole header.

    Raises :class:`ModelFileError` for a missing, truncated, corrupt or tampered file;
    :class:`xpnet.BackendUnavailableError` when the backend cannot be used here.
    """
    source, arrays = _open(path)
    header = _decode_header(source, arrays)
    sizes = header["layer_sizes"]
    n_layers = len(sizes) - 1
    names = [f"{kind}{layer + 1}" for layer in range(n_layers) for kind in ("W", "b")]
    expected = {*names, "header", "checksum"}
    if set(arrays) != expected:
        missing = expected - set(arrays)
        extra = set(arrays) - expected
        what = (f"lacks {', '.join(sorted(missing))}" if missing
                else f"has unexpected arrays {', '.join(sorted(extra))}")
        raise _fail(source, f"{what} for layer sizes {sizes}")
    saved_dtype = header["dtype"]
    params = []
    for layer in range(n_layers):
        for kind, shape in (("W", (sizes[layer], sizes[layer + 1])), ("b", (sizes[layer + 1],))):
            name = f"{kind}{layer + 1}"
            array = arrays[name]
            if array.dtype != np.dtype(saved_dtype):
                raise _fail(source, f"array {name} has dtype {array.dtype}; header says "
                            f"{saved_dtype}")
            if array.shape != shape:
                raise _fail(source, f"array {name} has shape {array.shape}; expected {shape}")
            if not np.all(np.isfinite(array)):
                raise _fail(source, f"array {name} contains NaN or infinite values")
            params.append(array)
    checksum = arrays["checksum"]
    header_bytes = arrays["header"].tobytes()
    if checksum.dtype != np.uint8 or checksum.tobytes() != _checksum(
        header_bytes, params
    ).encode("ascii"):
        raise _fail(source, "checksum mismatch: the file is corrupt or was modified")
    net = MLP(
        sizes,
        activation=header["activations"],
        output=header["output"],
        backend=backend,
        device=device,
        dtype=dtype or saved_dtype,
        alpha=header["alpha"],
    )
    net.set_params(list(zip(params[0::2], params[1::2], strict=True)))
    metadata = dict(header["metadata"])
    metadata["header"] = header
    net.metadata = metadata  # type: ignore[attr-defined]
    return net
