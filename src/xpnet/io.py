"""Portable model files: weights plus a JSON header in one ``.npz``, never pickled.

Layout of a model file (a NumPy ``.npz`` archive)::

    header     uint8   UTF-8 JSON: format, versions, architecture, dtype, metadata
    W1, b1, …  float32/float64   the parameters, W_l (n_{l-1}, n_l), b_l (n_l,)
    checksum   uint8   SHA-256 (hex) of the header bytes and of every parameter

Loading never unpickles and trusts nothing before checking it: the header's size and
nesting before it is decoded, every field's type and range, each member's name, dtype,
shape and decompressed size (zip directory, ``.npy`` header) before any weight is
decompressed, then the values and the checksum. A corrupt, truncated, crafted or
tampered file is refused with a :class:`ModelFileError` that says what is wrong, in
bounded time and memory. The arrays are plain NumPy, so a model
trained on one backend (CuPy, say) loads on any other (NumPy, say).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import zipfile
from typing import Any

import numpy as np

from ._files import atomic_write
from ._npyfile import NPY_MAGIC, ZIP_MAGIC, ArrayFileError, NpzReader, check_memory
from ._version import __version__
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
# Fields a header may lack. "dropout" (rates per hidden layer) is written only for a
# network with dropout: files of networks without it stay readable by older xpnets, and
# files from before it load with no dropout.
_OPTIONAL_KEYS = {"dropout"}
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


def _check_finite_weights(net: MLP) -> None:
    """Refuse to write NaN or infinite weights (a diverged network): ``load`` would refuse
    the file, and it must never replace a good model."""
    bad = net.nonfinite_parameters()
    if bad:
        layers = sorted({int(name[1:]) for name in bad})
        where = ", ".join(
            f"layer {layer} ({', '.join(n for n in bad if int(n[1:]) == layer)})"
            for layer in layers
        )
        raise ValueError(
            f"cannot save a network with non-finite weights: {where} holds NaN or "
            "infinity (did the training diverge? try a smaller lr)"
        )


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

    Parameters
    ----------
    net : MLP
        The network.
    path : str or path
        The ``.npz`` file to write.
    **metadata
        The keywords described above.

    Examples
    --------
    >>> import os, tempfile
    >>> import xpnet
    >>> net = xpnet.MLP([2, 3, 1], seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> xpnet.save(net, path, classes=["no", "yes"])
    >>> xpnet.load(path).metadata["classes"]
    ['no', 'yes']
    """
    if not isinstance(net, MLP):
        raise TypeError(f"save() needs an xpnet.MLP; got {type(net).__name__}")
    _check_finite_weights(net)
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
    if any(net.dropout):
        header["dropout"] = list(net.dropout)
    _validate_header(header, source="the model to save")  # never write what load refuses
    header_bytes = json.dumps(header, allow_nan=False, sort_keys=True).encode("utf-8")
    _check_header_bytes("the model to save", header_bytes)  # size and nesting, as load
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
# A header is at most this many bytes, nested at most this deep: checked on the raw bytes
# before decoding, since json.loads recurses once per level (100,000 levels crash it with
# RecursionError) and builds ~50 bytes of Python objects per byte of "[[[[...".
_MAX_HEADER_BYTES = 16 * 2**20  # a standardised model with ~350,000 features fits
_MAX_HEADER_DEPTH = 32  # xpnet writes 4 levels; the rest is for metadata "extra"
_MAX_LAYER_SIZE = 2**40  # far beyond memory; keeps shape arithmetic and messages small
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _fail(source: str, message: str) -> ModelFileError:
    return ModelFileError(f"model file {source}: {message}")


def _show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (control characters escaped by repr)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_type(source: str, name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _fail(source, f"field {name!r} has the wrong type ({value!r})")
    if not isinstance(value, kind):
        raise _fail(source, f"field {name!r} has the wrong type ({type(value).__name__})")


def _finite(source: str, name: str, value: Any) -> float:
    """``value`` as a finite float; JSON integers too large for a float are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(source, f"field {name!r} must be a number; got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _fail(source, f"field {name!r} must be a finite number; got {_show(value)}")
    return number


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
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise _fail(source, f"field {name}.{key} must hold finite numbers")
            _finite(source, f"{name}.{key}", v)
    if any(v <= 0 for v in stats["scale"]):
        raise _fail(source, f"field {name}.scale must be positive")


def _check_string(source: str, name: str, value: Any, choices: Any) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(source, f"field {name!r} must be one of {', '.join(choices)}; got "
                    f"{_show(value)}")
    return value


def _validate_header(header: Any, source: str) -> None:
    """Check every field of a header; raise :class:`ModelFileError` naming the first bad one.

    Each field's type is checked before its value is used (a list where a name belongs is
    unhashable; an integer of 400 digits overflows a float), so no other exception escapes.
    """
    _check_type(source, "header", header, dict)
    missing = _HEADER_KEYS - set(header)
    unknown = set(header) - _HEADER_KEYS - _OPTIONAL_KEYS
    if missing:
        raise _fail(source, f"header lacks field(s) {', '.join(sorted(missing))}")
    if unknown:
        raise _fail(source, "header has unknown field(s) "
                    f"{', '.join(_show(k) for k in sorted(unknown))}")
    if header["format"] != FORMAT:
        raise _fail(source, f"not an xpnet model (format {_show(header['format'])})")
    version = header["format_version"]
    _check_type(source, "format_version", version, int)
    if version != FORMAT_VERSION:
        raise _fail(
            source,
            f"format version {_show(version)} is not supported (this xpnet reads version "
            f"{FORMAT_VERSION}); upgrade xpnet" if version > FORMAT_VERSION
            else f"format version {_show(version)} is not supported",
        )
    _check_type(source, "xpnet_version", header["xpnet_version"], str)
    sizes = header["layer_sizes"]
    _check_type(source, "layer_sizes", sizes, list)
    if len(sizes) < 2 or any(
        isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= _MAX_LAYER_SIZE
        for s in sizes
    ):
        raise _fail(source, "field 'layer_sizes' must be 2+ positive integers (at most "
                    f"2**40); got {_show(sizes)}")
    acts = header["activations"]
    _check_type(source, "activations", acts, list)
    if len(acts) != len(sizes) - 2 or any(
        not isinstance(a, str) or a not in ACTIVATIONS for a in acts
    ):
        raise _fail(
            source, f"field 'activations' must name one of {', '.join(ACTIVATIONS)} per hidden "
            f"layer ({len(sizes) - 2}); got {_show(acts)}"
        )
    output = _check_string(source, "output", header["output"], OUTPUTS)
    if header["loss"] != OUTPUTS[output].loss_name:
        raise _fail(source, f"field 'loss' {_show(header['loss'])} does not match output "
                    f"{output!r}")
    if output == "softmax" and sizes[-1] < 2:
        raise _fail(source, "a softmax output needs at least 2 units")
    _check_string(source, "dtype", header["dtype"], DTYPE_NAMES)
    if "dropout" in header:
        rates = header["dropout"]
        _check_type(source, "dropout", rates, list)
        if len(rates) != len(sizes) - 2 or any(
            isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1
            for p in rates
        ):
            raise _fail(source, "field 'dropout' must hold one rate in [0, 1) per hidden "
                        f"layer ({len(sizes) - 2}); got {_show(rates)}")
    alpha = header["alpha"]
    _check_type(source, "alpha", alpha, (int, float))
    if _finite(source, "alpha", alpha) < 0:
        raise _fail(source, f"field 'alpha' must be a finite number >= 0; got {_show(alpha)}")
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
        raise _fail(source, "metadata has unknown field(s) "
                    f"{', '.join(_show(k) for k in sorted(unknown))}")
    n_in, n_out = sizes[0], sizes[-1]
    _check_stats(source, "standardize", meta.get("standardize"), n_in)
    _check_stats(source, "target_standardize", meta.get("target_standardize"), n_out)
    task = meta.get("task")
    if task is not None:
        _check_string(source, "task", task, _TASKS)
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
        for c in classes:
            if not isinstance(c, str):  # labels are compared as floats (1.0 is class 1)
                _finite(source, "classes", c)
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
        if set(split) != {"test_fraction", "seed"}:
            raise _fail(source, "field 'split' must hold 'test_fraction' and 'seed'")
        fraction, seed = split["test_fraction"], split["seed"]
        _check_type(source, "split.test_fraction", fraction, (int, float))
        if not 0 <= _finite(source, "split.test_fraction", fraction) < 1:
            raise _fail(source, f"field 'split.test_fraction' must lie in [0, 1); got "
                        f"{_show(fraction)}")
        if seed is not None:
            _check_type(source, "split.seed", seed, int)
            if seed < 0:
                raise _fail(source, f"field 'split.seed' must be an integer >= 0 or null; got "
                            f"{_show(seed)}")
    if "extra" in meta:
        _check_type(source, "extra", meta["extra"], dict)


# --------------------------------------------------------------------------- loading
class _Unreadable:
    """A JSON number no field can hold (NaN, Infinity, 1e999, 5000 digits): kept as a
    marker so that the error names the field instead of failing inside json.loads."""

    def __init__(self, what: str) -> None:
        self.what = what


def _json_int(text: str) -> int | _Unreadable:
    try:
        return int(text)
    except ValueError:  # beyond the interpreter's digit limit (4300 by default)
        return _Unreadable(f"an integer of {len(text.lstrip('-'))} digits")


def _json_float(text: str) -> float | _Unreadable:
    value = float(text)
    return value if math.isfinite(value) else _Unreadable(f"{text[:20]} (beyond float range)")


def _json_constant(text: str) -> _Unreadable:
    return _Unreadable(text)  # NaN, Infinity, -Infinity: not JSON, though Python writes them


def _find_unreadable(source: str, value: Any, path: str) -> None:
    """Fail naming the field of the first :class:`_Unreadable` in ``value`` (depth is
    bounded by ``_MAX_HEADER_DEPTH``, so the recursion is too)."""
    if isinstance(value, _Unreadable):
        raise _fail(source, f"field {path!r} holds {value.what}; expected a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _find_unreadable(source, item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find_unreadable(source, item, f"{path}[{index}]")


def _json_depth(raw: bytes) -> int:
    """Deepest nesting of ``[``/``{`` in JSON text, ignoring brackets inside strings."""
    code = np.frombuffer(_JSON_STRING.sub(b'""', raw), dtype=np.uint8)
    step = (np.isin(code, (ord("["), ord("{"))).astype(np.int64)
            - np.isin(code, (ord("]"), ord("}"))))
    return int(np.cumsum(step).max()) if step.size else 0


def _check_header_bytes(source: str, raw: bytes) -> None:
    """Refuse a header too large or too deeply nested to decode safely."""
    if len(raw) > _MAX_HEADER_BYTES:
        raise _fail(source, f"its header has {len(raw)} bytes; at most {_MAX_HEADER_BYTES} "
                    "are read")
    depth = _json_depth(raw)
    if depth > _MAX_HEADER_DEPTH:
        raise _fail(source, f"its header is nested {depth} levels deep; at most "
                    f"{_MAX_HEADER_DEPTH} are read")


def _decode_header(source: str, raw: bytes) -> dict[str, Any]:
    """The validated header from its raw bytes (size and depth checked first)."""
    _check_header_bytes(source, raw)
    try:
        header = json.loads(raw.decode("utf-8"), parse_int=_json_int,
                            parse_float=_json_float, parse_constant=_json_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(source, f"its header is not valid JSON ({exc})") from None
    _find_unreadable(source, header, "")
    _validate_header(header, source)
    return header


def _looks_like_text(start: bytes) -> bool:
    """Whether a file's first bytes read as text (UTF-8, no control characters but
    tabs and line breaks): a CSV given where a model belongs."""
    text = start.decode("utf-8", errors="ignore")  # (a character cut at the end is lost)
    return len(text.encode("utf-8")) >= len(start) - 3 and all(
        char.isprintable() or char in "\t\r\n" for char in text)


class _Archive:
    """A model file opened for reading: its members' sizes known, no array data read."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        text = os.fspath(path)
        self.source = repr(text)
        check_file(text, "model file", ModelFileError)
        try:
            with open(text, "rb") as handle:
                start = handle.read(64)
        except OSError as exc:
            raise _fail(self.source, f"cannot be read ({exc.strerror or exc})") from None
        if start[: len(NPY_MAGIC)] == NPY_MAGIC:
            raise _fail(self.source, "is a single .npy array, not an xpnet model (.npz)")
        if not ZIP_MAGIC.startswith(start[: len(ZIP_MAGIC)]):
            # a CSV, a text or any other file: not a damaged model, not a model at all
            kind = "it is text (a CSV or other data file?), " if _looks_like_text(start) else ""
            raise _fail(self.source, f"is not an xpnet model file: {kind}not the .npz archive "
                        "that 'xpnet train --save' (or xpnet.save) writes")
        self.reader = self._guard(lambda: NpzReader(text))

    def _guard(self, action: Any) -> Any:
        """Run ``action`` on the archive; any failure of the zip or .npy layer is a
        :class:`ModelFileError` (zipfile raises a dozen types on a damaged archive)."""
        try:
            return action()
        except ModelFileError:
            raise
        except ArrayFileError as exc:
            raise _fail(self.source, f"is not a readable .npz archive: {exc}") from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _fail(
                self.source,
                f"is not a readable .npz archive; it may be truncated or corrupt ({exc})",
            ) from None
        except Exception as exc:  # zlib.error, struct.error, NotImplementedError, ...
            raise _fail(self.source, f"is corrupt ({type(exc).__name__}: {exc})") from None

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()

    def header(self) -> tuple[dict[str, Any], bytes]:
        """The validated header and its raw bytes (the checksum covers them)."""
        if "header" not in self.reader.infos:
            raise _fail(self.source, "has no 'header'; it is not an xpnet model")
        info = self._guard(lambda: self.reader.info("header"))
        if info.dtype != np.uint8 or len(info.shape) != 1:
            raise _fail(self.source, "its 'header' is not UTF-8 JSON bytes")
        if info.nbytes > _MAX_HEADER_BYTES:
            raise _fail(self.source, f"its header has {info.nbytes} bytes; at most "
                        f"{_MAX_HEADER_BYTES} are read")
        raw = self._guard(lambda: self.reader.read(info)).tobytes()
        return _decode_header(self.source, raw), raw

    def arrays(self, header: dict[str, Any]) -> tuple[list[np.ndarray], bytes]:
        """The parameters and the stored checksum, every member's name, dtype, shape and
        size checked against the header before any of them is decompressed."""
        source, reader = self.source, self.reader
        sizes = header["layer_sizes"]
        n_layers = len(sizes) - 1
        if reader.others:
            raise _fail(source, f"member {_show(reader.others[0])} is not a .npy array")
        names = [f"{kind}{layer + 1}" for layer in range(n_layers) for kind in ("W", "b")]
        expected = {*names, "header", "checksum"}
        if set(reader.names) != expected:
            missing = expected - set(reader.names)
            extra = set(reader.names) - expected
            shown = (n if n.isprintable() else _show(n) for n in sorted(extra))
            what = (f"lacks {', '.join(sorted(missing))}" if missing
                    else f"has unexpected arrays {', '.join(shown)}")
            raise _fail(source, f"{what} for layer sizes {sizes}")
        saved_dtype = np.dtype(header["dtype"])
        infos = []
        for layer in range(n_layers):
            for kind, shape in (("W", (sizes[layer], sizes[layer + 1])),
                                ("b", (sizes[layer + 1],))):
                name = f"{kind}{layer + 1}"
                info = self._guard(lambda name=name: reader.info(name))
                if info.dtype != saved_dtype:
                    raise _fail(source, f"array {name} has dtype {info.dtype}; header says "
                                f"{saved_dtype}")
                if info.shape != shape:
                    raise _fail(source, f"array {name} has shape {info.shape}; expected "
                                f"{shape}")
                infos.append(info)
        checksum_info = self._guard(lambda: reader.info("checksum"))
        if checksum_info.dtype != np.uint8 or checksum_info.shape != (64,):
            raise _fail(source, "checksum mismatch: the file is corrupt or was modified")
        total = sum(info.nbytes for info in infos)
        self._guard(lambda: check_memory(total, f"its {n_layers} layers"))
        params = []
        for info in infos:
            array = self._guard(lambda info=info: reader.read(info))
            if not np.all(np.isfinite(array)):
                raise _fail(source, f"array {info.name} contains NaN or infinite values")
            params.append(array)
        checksum = self._guard(lambda: reader.read(checksum_info)).tobytes()
        return params, checksum


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated JSON header of a model file (architecture and metadata).

    Only the header member is decompressed, after its size is checked.

    Parameters
    ----------
    path : str or path
        The model file.
    """
    with _Archive(path) as archive:
        return archive.header()[0]


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

    Nothing is trusted before it is checked: the header's size and nesting before it is
    decoded, every field's type and range, then each member's name, dtype, shape and
    decompressed size (from the zip directory and the ``.npy`` header) against the layer
    sizes before any weight is decompressed, and finally the values and the checksum.

    Raises :class:`ModelFileError` for a missing, truncated, corrupt, crafted or tampered
    file; :class:`xpnet.BackendUnavailableError` when the backend cannot be used here.

    Parameters
    ----------
    path : str or path
        The model file.
    backend : str, default "numpy"
        The backend to load onto.
    device : optional
        The device of that backend.
    dtype : {None, "float32", "float64"}, optional
        The network's dtype (default: the one it was saved with).
    """
    with _Archive(path) as archive:
        header, header_bytes = archive.header()
        params, checksum = archive.arrays(header)
    if checksum != _checksum(header_bytes, params).encode("ascii"):
        raise _fail(archive.source, "checksum mismatch: the file is corrupt or was modified")
    net = MLP(
        header["layer_sizes"],
        activation=header["activations"],
        output=header["output"],
        backend=backend,
        device=device,
        dtype=dtype or header["dtype"],
        alpha=header["alpha"],
        dropout=header.get("dropout", 0.0),
    )
    net.set_params(list(zip(params[0::2], params[1::2], strict=True)))
    metadata = dict(header["metadata"])
    metadata["header"] = header
    net.metadata = metadata  # type: ignore[attr-defined]
    return net
