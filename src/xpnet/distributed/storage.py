"""Data larger than memory, as Dask arrays whose chunks are read or made on the workers.

Three sources, each returning ``(X, y)`` dask arrays chunked along rows only, whose
tasks read (or generate) one block of rows each. Building them reads metadata only
(array headers, zarr metadata): no row of data is ever read on the driver.

- :func:`open_data` on a **zarr store**: one zarr group holding the arrays ``X``
  ``(m, n_features)`` (numbers) and ``y`` ``(m,)`` (numbers, or strings for class
  labels), chunked along rows; ``xpnet convert`` writes this layout, and records the
  column names in the group's attribute ``xpnet`` (``feature_names``,
  ``target_name``, ``source``). Read with :func:`dask.array.from_zarr`.
- :func:`open_data` on a **folder of .npy shards**: ``X_00000.npy``, ``y_00000.npy``,
  ``X_00001.npy``, ``y_00001.npy``, ... (any number of digits; shards in the order of
  their numbers). Every ``X_k`` needs its ``y_k`` with as many rows, and every ``X_k``
  the same number of columns and dtype. Each task memory-maps its shard and copies
  only its block of rows.
- :func:`generate`: the built-in generated 2-D data sets (``moons``, ``xor``, ...), each
  block of rows made by its own task from the seed, so ``--n-samples 50000000`` never
  exists on the driver.

The workers must see the same paths as the driver (a shared or local file system).
Dask itself is optional: without ``pip install 'xpnet[dask]'`` these functions raise
:class:`DaskUnavailableError`, which says how to install it.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import mmap
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._dataerrors import DaskUnavailableError, DataError, require
from .._npyfile import (
    ArrayFileError,
    ArrayInfo,
    _read_header,
    check_memory,
    file_kind,
    open_regular,
)
from .._validation import check_nonnegative_float, check_positive_int
from ..data import GENERATORS

__all__ = [
    "DaskUnavailableError",
    "GENERATED_BLOCK_ROWS",
    "open_data",
    "generate",
    "require",
]


# --------------------------------------------------------------------------- open_data
def open_data(
    path: str | os.PathLike[str],
    chunk_rows: int | None = None,
    target: str | int | None = None,
    *,
    require_target: bool = True,
) -> tuple[Any, Any]:
    """Open a zarr store or a folder of ``.npy`` shards as dask arrays ``(X, y)``.

    Parameters
    ----------
    path : str or PathLike
        A zarr store (a folder with ``zarr.json`` or ``.zgroup``) holding arrays ``X`` and
        ``y``, or a folder of shards ``X_<k>.npy`` / ``y_<k>.npy`` (see the module's
        docstring for both layouts).
    chunk_rows : int, optional
        Rows per chunk (per task). Default: the store's own chunks (zarr), or one chunk
        per shard (``.npy``); a shard larger than ``chunk_rows`` is split into blocks,
        never merged with the next one.
    target : str or int, optional
        Zarr only: the name of the target array in the store (default ``"y"``), or the
        index of a column of ``X`` that is the target (then removed from the features).
    require_target : bool
        With ``False``, a source without a target returns ``y=None`` (for prediction).

    Returns
    -------
    X : dask.array.Array
        ``(m, n_features)``, float32 or float64 (integers and booleans become float64).
    y : dask.array.Array or None
        ``(m,)``, numbers or strings.

    Raises
    ------
    DataError
        Naming the path (and the file): a missing store, a store without ``X`` or ``y``,
        row counts that differ, a non-numeric ``X``, shards of differing columns or dtype.
    DaskUnavailableError
        When dask (or zarr, for a store) is not installed.
    """
    da = require("dask.array", "reading data on Dask workers")
    text = os.fspath(path)
    if chunk_rows is not None:
        chunk_rows = check_positive_int("chunk_rows", chunk_rows)
    if not os.path.exists(text):
        raise DataError(f"data store {text!r} does not exist")
    if not os.path.isdir(text):
        raise DataError(f"data store {text!r} is a file, not a zarr store or a folder of "
                        ".npy shards (X_00000.npy, y_00000.npy, ...)")
    if _is_zarr(text):
        X, y = _open_zarr(da, text, chunk_rows, target)
    else:
        if target is not None:
            raise DataError(f"target= picks an array or a column of a zarr store; {text!r} "
                            "is a folder of .npy shards, whose target is y_<k>.npy")
        X, y = _open_shards(da, text, chunk_rows, require_target)
    if y is None and require_target:
        raise DataError(f"data store {text!r} holds no target array 'y'")
    return X, y


def _is_zarr(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, marker))
               for marker in ("zarr.json", ".zgroup", ".zarray"))


def _check_features(X: Any, what: str) -> Any:
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise DataError(f"{what} must be 2-D (rows, features) with at least one of each; "
                        f"got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise DataError(f"{what} must hold numbers; got dtype {X.dtype}")
    return X if X.dtype.kind == "f" and X.dtype.itemsize >= 4 else X.astype(np.float64)


def _check_target(y: Any, rows: int, what: str, x_what: str) -> Any:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what} must be 1-D (one entry per row); got shape {y.shape}")
    if y.shape[0] != rows:
        raise DataError(f"{what} has {y.shape[0]} rows but {x_what} has {rows}; they must "
                        "have one row per sample each")
    # "O": zarr 2 stores text as object arrays of str (.npy shards never hold objects:
    # their headers are refused before any data is read)
    if y.dtype.kind not in "biufUTO":
        raise DataError(f"{what} must hold numbers or strings; got dtype {y.dtype}")
    if y.dtype.kind == "T" and hasattr(y, "map_blocks"):
        # zarr 3 hands strings back as NumPy's StringDType, which dask's unique() and
        # meta machinery cannot hold yet: labels travel as Python str objects.
        y = y.map_blocks(_as_objects, dtype=object)
    return y


def _as_objects(block: np.ndarray) -> np.ndarray:
    return block.astype(object)


def _open_zarr(da: Any, path: str, chunk_rows: int | None,
               target: str | int | None) -> tuple[Any, Any]:
    zarr = require("zarr", "reading a zarr store")
    layout = _StoreLayout(path)  # every part checked before zarr reads any of it
    names = layout.array_names()
    if "X" not in names:
        raise DataError(f"zarr store {path!r} has no array 'X' (features); it holds: "
                        f"{', '.join(names) or 'no arrays'}")
    x_meta = layout.array("X")
    if len(x_meta.shape) != 2:
        raise DataError(f"array 'X' in {path!r} must be 2-D (rows, features); got shape "
                        f"{x_meta.shape}")
    y_meta = None
    name = "y" if target is None or isinstance(target, (int, np.integer)) else str(target)
    if name == "X":
        raise DataError(f"target array of {path!r} cannot be 'X', the features")
    if name in names and not isinstance(target, (int, np.integer)):
        y_meta = layout.array(name)
    elif target is not None and not isinstance(target, (int, np.integer)):
        raise DataError(f"zarr store {path!r} has no array {name!r} (the target); it holds: "
                        f"{', '.join(names)}")
    group = layout.open_group(zarr)
    x_array = layout.open_array(group, x_meta)
    X = _read_lazily(da, x_array, x_meta, chunk_rows or x_meta.chunks[0])
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        n = X.shape[1]
        if not -n <= target < n:
            raise DataError(f"target column {target} is out of range for 'X' in {path!r} "
                            f"with {n} columns")
        if n < 2:
            raise DataError(f"'X' in {path!r} needs a feature column besides the target")
        column = int(target) % n
        y = X[:, column]
        X = _check_features(X[:, [c for c in range(n) if c != column]],
                            f"array 'X' in {path!r}")
        return X, _check_target(y, X.shape[0], f"column {column} of 'X' in {path!r}",
                                f"'X' in {path!r}")
    X = _check_features(X, f"array 'X' in {path!r}")
    y = None
    if y_meta is not None:
        y_array = layout.open_array(group, y_meta)
        # the shapes are checked on the metadata before dask lines the chunks up with X's
        _check_target(y_array, X.shape[0], f"array {name!r} in {path!r}", f"'X' in {path!r}")
        y = _read_lazily(da, y_array, y_meta, X.chunks[0])
        y = _check_target(y, X.shape[0], f"array {name!r} in {path!r}", f"'X' in {path!r}")
    return X, y


def _read_lazily(da: Any, array: Any, meta: _ArrayMeta, rows: Any) -> Any:
    """``array`` as a dask array of ``rows`` per block, each read by a task whose errors
    name the store and the chunk (see :class:`_ChunkReader`)."""
    from dask.base import tokenize

    reader = _ChunkReader(array, meta)
    chunks = (rows,) + (-1,) * (len(meta.shape) - 1)
    return da.from_array(reader, chunks=chunks, asarray=True, lock=False, fancy=False,
                         meta=np.empty((0,) * len(meta.shape), dtype=reader.dtype),
                         name=f"xpnet-zarr-{tokenize(meta.store, meta.name, meta.stamp)}")


# --------------------------------------------------------------------------- zarr checks
#: The largest zarr metadata file read (a real one is a few kB).
_METADATA_LIMIT = 1 << 24
_METADATA = ("zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata")
# v3 codecs that leave a chunk's bytes as they are (so its file size is known exactly)
_PLAIN_CODECS = {"bytes", "transpose"}


@dataclass(frozen=True)
class _ArrayMeta:
    """What the metadata of one array of a store declares, checked."""

    store: str
    name: str
    zarr_format: int
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    prefix: str  # chunk keys: prefix + separator.join(coordinates)
    separator: str
    plain: bool  # chunks stored uncompressed: a file's size is known
    stamp: tuple[int, int]  # the metadata file's (size, mtime_ns): the dask name

    def key(self, coords: tuple[int, ...]) -> str:
        return f"{self.name}/{self.prefix}{self.separator.join(map(str, coords))}"

    def grid(self) -> tuple[int, ...]:
        return tuple(-(-n // c) for n, c in zip(self.shape, self.chunks, strict=True))

    def rows_of(self, coords: tuple[int, ...]) -> str:
        start = coords[0] * self.chunks[0]
        return f"rows {start + 1}-{min(start + self.chunks[0], self.shape[0])}"


class _StoreLayout:
    """A zarr store's parts, checked from its listing and its metadata before zarr opens
    it: every part zarr would read is a regular file inside the store (a FIFO would block
    the read forever, a link could lead anywhere), the metadata are sane (shapes, chunk
    lengths, sizes: nothing large is allocated on their word), and every chunk of the
    arrays read exists (zarr reads a missing chunk as its fill value: silent zeros)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.real = os.path.realpath(path)
        root = self._files("", recursive=False)
        if "zarr.json" in root:
            self.zarr_format = 3
            meta = self._json("zarr.json", root)
            if meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
                raise self._error("zarr.json", "is not the metadata of a zarr group "
                                  "(zarr_format 3, node_type 'group')")
            self.attributes = meta.get("attributes") or {}
        elif ".zgroup" in root:
            self.zarr_format = 2
            meta = self._json(".zgroup", root)
            if meta.get("zarr_format") != 2:
                raise self._error(".zgroup", "is not the metadata of a zarr 2 group "
                                  "(zarr_format 2)")
            self.attributes = self._json(".zattrs", root) if ".zattrs" in root else {}
        else:
            raise DataError(f"data store {path!r} is not a zarr group (no zarr.json or "
                            ".zgroup); xpnet convert writes one")
        if not isinstance(self.attributes, dict):
            raise self._error("the group's attributes", "are not a JSON object")
        self._dirs = sorted(name for name in os.listdir(path)
                            if os.path.isdir(os.path.join(path, name))
                            and not os.path.islink(os.path.join(path, name)))

    def _error(self, part: str, problem: str) -> DataError:
        return DataError(f"zarr store {self.path!r}: {part} {problem}")

    def _files(self, top: str, recursive: bool = True) -> dict[str, os.stat_result]:
        """The regular files under ``top`` (relative, '/'-separated) and their stats; a
        non-regular file or a link leading out of the store (or to a folder) is an error."""
        files: dict[str, os.stat_result] = {}
        pending = [top]
        while pending:
            folder = pending.pop()
            try:
                entries = list(os.scandir(os.path.join(self.path, folder)))
            except OSError as exc:
                raise self._error(repr(folder or "."), f"cannot be listed ({exc.strerror})"
                                  ) from None
            for entry in entries:
                rel = f"{folder}/{entry.name}" if folder else entry.name
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    info = self._followed(rel, entry.path)
                if stat.S_ISDIR(info.st_mode):
                    if recursive:
                        pending.append(rel)
                elif stat.S_ISREG(info.st_mode):
                    files[rel] = info
                elif recursive or entry.name in _METADATA:
                    raise self._error(repr(rel), f"is {file_kind(info.st_mode)}, not a regular "
                                      "file; a store's parts must be plain files")
        return files

    def _followed(self, rel: str, full: str) -> os.stat_result:
        target = os.path.realpath(full)
        if not target.startswith(self.real + os.sep):
            raise self._error(repr(rel), f"is a link leading outside the store (to "
                              f"{target!r}); a store's parts must lie inside it")
        try:
            info = os.stat(target)
        except OSError as exc:
            raise self._error(repr(rel), f"is a link that cannot be followed "
                              f"({exc.strerror})") from None
        if stat.S_ISDIR(info.st_mode):
            raise self._error(repr(rel), "is a link to a folder; a store's folders must be "
                              "plain folders")
        return info

    def _json(self, rel: str, files: dict[str, os.stat_result]) -> dict[str, Any]:
        size = files[rel].st_size
        if size > _METADATA_LIMIT:
            raise self._error(repr(rel), f"holds {size} bytes; zarr metadata take a few kB")
        try:
            with open_regular(os.path.join(self.path, rel)) as handle:
                text = handle.read(_METADATA_LIMIT + 1)
            meta = json.loads(text)
        except ArrayFileError as exc:
            raise self._error(repr(rel), f"is {exc}") from None
        except OSError as exc:
            raise self._error(repr(rel), f"cannot be read ({exc.strerror})") from None
        except (ValueError, RecursionError) as exc:
            raise self._error(repr(rel), f"is not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise self._error(repr(rel), "is not a JSON object")
        return meta

    def array_names(self) -> list[str]:
        marker = "zarr.json" if self.zarr_format == 3 else ".zarray"
        return [name for name in self._dirs
                if os.path.lexists(os.path.join(self.path, name, marker))]

    def array(self, name: str) -> _ArrayMeta:
        """The checked metadata of array ``name``, all of whose chunks exist."""
        files = self._files(name)
        rel = f"{name}/zarr.json" if self.zarr_format == 3 else f"{name}/.zarray"
        raw = self._json(rel, files)
        stat_ = files[rel]
        meta = (self._v3(name, rel, raw) if self.zarr_format == 3 else
                self._v2(name, rel, raw))(stat=(stat_.st_size, stat_.st_mtime_ns))
        self._check_size(meta, rel, raw)
        self._check_chunks(meta, files, raw)
        return meta

    def _shape(self, rel: str, shape: Any, chunks: Any) -> tuple[tuple[int, ...],
                                                                tuple[int, ...]]:
        def ints(value: Any) -> bool:
            return isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value)

        if not ints(shape) or any(v < 0 for v in shape):
            raise self._error(rel, f"declares the shape {shape!r}; a shape is a list of "
                              "counts >= 0")
        if not ints(chunks) or len(chunks) != len(shape):
            raise self._error(rel, f"declares the chunk shape {chunks!r} for the shape "
                              f"{shape!r}; it needs one length per axis")
        if any(c < 1 for c in chunks):
            raise self._error(rel, f"declares the chunk shape {chunks!r}; every chunk length "
                              "must be at least 1")
        return tuple(shape), tuple(chunks)

    def _v3(self, name: str, rel: str, raw: dict[str, Any]) -> Callable[..., _ArrayMeta]:
        if raw.get("zarr_format") != 3 or raw.get("node_type") != "array":
            raise self._error(rel, "is not the metadata of a zarr array (zarr_format 3, "
                              "node_type 'array')")
        grid = raw.get("chunk_grid") or {}
        if not isinstance(grid, dict) or grid.get("name") != "regular":
            raise self._error(rel, f"declares the chunk grid {grid!r}; xpnet reads the "
                              "'regular' grid only")
        shape, chunks = self._shape(rel, raw.get("shape"),
                                    (grid.get("configuration") or {}).get("chunk_shape"))
        encoding = raw.get("chunk_key_encoding") or {"name": "default"}
        kind = encoding.get("name") if isinstance(encoding, dict) else None
        separator = (encoding.get("configuration") or {}).get(
            "separator", "/" if kind == "default" else ".") if kind else None
        if kind not in ("default", "v2") or separator not in ("/", "."):
            raise self._error(rel, f"declares the chunk key encoding {encoding!r}; xpnet "
                              "reads 'default' and 'v2' with separator '/' or '.'")
        codecs = raw.get("codecs")
        if not isinstance(codecs, list) or not all(isinstance(c, dict) for c in codecs):
            raise self._error(rel, f"declares the codecs {codecs!r}; a list of objects")
        used = {c.get("name") for c in codecs}
        if "sharding_indexed" in used:
            raise self._error(rel, "is sharded (codec 'sharding_indexed'): xpnet cannot "
                              "check that every chunk inside a shard exists; write the "
                              "store without shards (xpnet convert does)")
        prefix = f"c{separator}" if kind == "default" else ""
        return lambda stat: _ArrayMeta(self.path, name, 3, shape, chunks, prefix, separator,
                                       used <= _PLAIN_CODECS, stat)

    def _v2(self, name: str, rel: str, raw: dict[str, Any]) -> Callable[..., _ArrayMeta]:
        if raw.get("zarr_format") != 2:
            raise self._error(rel, "is not the metadata of a zarr 2 array (zarr_format 2)")
        shape, chunks = self._shape(rel, raw.get("shape"), raw.get("chunks"))
        separator = raw.get("dimension_separator", ".")
        if separator not in ("/", "."):
            raise self._error(rel, f"declares the dimension separator {separator!r}; "
                              "'.' or '/'")
        plain = raw.get("compressor") is None and not raw.get("filters")
        return lambda stat: _ArrayMeta(self.path, name, 2, shape, chunks, "", separator,
                                       plain, stat)

    def _check_size(self, meta: _ArrayMeta, rel: str, raw: dict[str, Any]) -> None:
        """A chunk is held whole in memory by the task that reads it."""
        itemsize = _itemsize(raw)
        if itemsize is None:
            return
        try:
            check_memory(math.prod(meta.chunks) * itemsize, f"one chunk of {rel} "
                         f"(chunk shape {meta.chunks})")
        except ArrayFileError as exc:
            raise self._error("", str(exc)) from None

    def _check_chunks(self, meta: _ArrayMeta, files: dict[str, os.stat_result],
                      raw: dict[str, Any]) -> None:
        """Every chunk's file exists (the first missing one is named). At most
        ``len(files) + 1`` keys are looked at, whatever the shape claims: when there are
        more chunks than files, one of the first ``len(files) + 1`` is missing."""
        itemsize = _itemsize(raw)
        expected = (math.prod(meta.chunks) * itemsize if meta.plain and itemsize
                    else None)
        count = math.prod(meta.grid())
        stored = sum(1 for rel in files if rel.rsplit("/", 1)[-1] not in _METADATA)
        for coords in _coordinates(meta.grid()):
            key = meta.key(coords)
            found = files.get(key)
            if found is None and count > stored + 1:
                raise self._error(
                    f"{meta.name}/{'zarr.json' if meta.zarr_format == 3 else '.zarray'}",
                    f"declares the shape {meta.shape} in {count} chunks of {meta.chunks}, "
                    f"but the store holds only {stored} files for {meta.name!r} "
                    f"(the first missing chunk: {key!r}); its metadata are wrong, chunks "
                    "were lost, or it was written without write_empty_chunks=True (zarr "
                    "then leaves out chunks equal to the fill value)")
            if found is None:
                raise self._error(
                    f"chunk {key!r} ({meta.rows_of(coords)} of array {meta.name!r})",
                    "is missing; zarr would read it as zeros (its fill value). Zarr leaves "
                    "out chunks equal to the fill value unless written with "
                    "write_empty_chunks=True: write the store again with that option, or "
                    "with xpnet convert")
            if expected is not None and found.st_size != expected:
                raise self._error(
                    f"chunk {key!r} ({meta.rows_of(coords)} of array {meta.name!r})",
                    f"holds {found.st_size} bytes, but the metadata declare uncompressed "
                    f"chunks of shape {meta.chunks} ({expected} bytes); the store is "
                    "damaged or its metadata do not match its chunks")

    def open_group(self, zarr: Any) -> Any:
        options = {} if zarr.__version__.startswith("2.") else {
            "zarr_format": self.zarr_format}
        try:
            return zarr.open_group(self.path, mode="r", **options)
        except Exception as exc:  # zarr's own errors for a damaged or foreign store
            raise DataError(f"data store {self.path!r} is not a readable zarr group "
                            f"({type(exc).__name__}: {_one_line(exc)})") from None

    def open_array(self, group: Any, meta: _ArrayMeta) -> Any:
        try:
            array = group[meta.name]
            dtype = np.dtype(array.dtype)
        except Exception as exc:
            raise self._error(f"array {meta.name!r}", f"cannot be opened "
                              f"({type(exc).__name__}: {_one_line(exc)})") from None
        if tuple(array.shape) != meta.shape or tuple(array.chunks) != meta.chunks:
            raise self._error(f"array {meta.name!r}", "changed while it was opened")
        try:  # the dtype's own size, known only now for names like 'float64'
            if dtype.kind not in "OT":
                check_memory(math.prod(meta.chunks) * dtype.itemsize,
                             f"one chunk of array {meta.name!r} (chunk shape {meta.chunks}"
                             f" of {dtype})")
        except ArrayFileError as exc:
            raise self._error("", str(exc)) from None
        return array


_V3_SIZES = {"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "float16": 2,
             "int32": 4, "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8,
             "complex64": 8, "complex128": 16}


def _coordinates(grid: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """The chunk coordinates of ``grid`` in C order, lazily (a grid of 10^10 chunks is
    never listed: the caller stops at the first missing file)."""
    if not grid:
        yield ()
        return
    for first in range(grid[0]):
        for rest in _coordinates(grid[1:]):
            yield (first,) + rest


def _itemsize(raw: dict[str, Any]) -> int | None:
    """Bytes per element of a fixed-size dtype named in array metadata, else None."""
    if "data_type" in raw:
        return _V3_SIZES.get(raw["data_type"]) if isinstance(raw["data_type"], str) else None
    try:
        dtype = np.dtype(raw.get("dtype"))
    except (TypeError, ValueError, OverflowError):
        return None  # zarr itself refuses it, named, when it opens the array
    return None if dtype.hasobject else dtype.itemsize


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


class _ChunkReader:
    """What :func:`dask.array.from_array` reads from: a zarr array whose read errors (a
    corrupt or vanished chunk, discovered on the worker that reads it) are one
    :class:`DataError` naming the store and the chunk."""

    def __init__(self, array: Any, meta: _ArrayMeta) -> None:
        self.array = array
        self.meta = meta
        self.shape = meta.shape
        self.ndim = len(meta.shape)
        self.dtype = np.dtype(array.dtype)

    def __getitem__(self, index: tuple[slice, ...]) -> Any:
        try:
            return self.array[index]
        except Exception as exc:
            raise self._named(index, exc) from None

    def _named(self, index: tuple[slice, ...], exc: Exception) -> DataError:
        meta = self.meta
        ranges = [range(s.start // c, max(s.start, s.stop - 1) // c + 1)
                  for s, c in zip(index, meta.chunks, strict=True)]
        for coords in itertools.product(*ranges):  # the first chunk that fails, named
            piece = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, meta.chunks,
                                                                     strict=True))
            try:
                self.array[piece]
            except Exception as first:
                exc = first
                break
        else:
            coords = tuple(r.start for r in ranges)
        return DataError(
            f"zarr store {meta.store!r}: chunk {meta.key(coords)!r} "
            f"({meta.rows_of(coords)} of array {meta.name!r}) cannot be read "
            f"({type(exc).__name__}: {_one_line(exc)}); the store is damaged: write it "
            "again (xpnet convert)")


# Shard names: X_<digits>.npy and y_<digits>.npy.
_SHARD = re.compile(r"([Xy])_([0-9]+)\.npy")


def _shard_info(path: str, folder: str) -> ArrayInfo:
    """The ``.npy`` header of one shard (the data is not read), checked for truncation.

    A shard is a regular file inside ``folder``: a link leading out of it is refused, and
    a FIFO or device is refused without being read (a FIFO would block forever)."""
    if os.path.islink(path):
        target = os.path.realpath(path)
        if not target.startswith(os.path.realpath(folder) + os.sep):
            raise DataError(f"shard {path!r} is a link leading outside {folder!r} (to "
                            f"{target!r}); shards must lie in their folder")
    try:
        with open_regular(path) as fp:
            info = _read_header(fp, os.path.basename(path), "the file")
            size = os.fstat(fp.fileno()).st_size
    except ArrayFileError as exc:
        raise DataError(f"shard {path!r} is not a readable .npy file ({exc})") from None
    except OSError as exc:
        raise DataError(f"shard {path!r} cannot be read ({exc.strerror})") from None
    if size - info.offset < info.nbytes:
        raise DataError(f"shard {path!r} is truncated: its header declares shape "
                        f"{info.shape} of {info.dtype} ({info.nbytes} bytes) but "
                        f"{size - info.offset} bytes follow")
    return info


def _read_rows(path: str, info: ArrayInfo, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a ``.npy`` shard whose header is ``info``: memory-mapped,
    then copied (runs on a worker; only these rows are read from disk). The file is
    opened as :func:`~xpnet._npyfile.open_regular` does (a FIFO put there since the
    header was read would block forever) and must still hold what its header said."""
    try:
        with open_regular(path) as fp:
            size = os.fstat(fp.fileno()).st_size
            if size < info.offset + info.nbytes:
                raise DataError(f"shard {path!r} changed since it was opened: it holds "
                                f"{size} bytes, its header declared {info.offset + info.nbytes}")
            with mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = np.frombuffer(mapped, dtype=info.dtype, count=math.prod(info.shape),
                                     offset=info.offset).reshape(
                    info.shape, order="F" if info.fortran_order else "C")
                rows = np.array(view[start:stop], order="C")
                del view  # the map closes only once no array looks into it
                return rows
    except ArrayFileError as exc:
        raise DataError(f"shard {path!r} is not a readable .npy file ({exc})") from None
    except OSError as exc:
        raise DataError(f"shard {path!r} cannot be read ({exc.strerror})") from None


def _open_shards(da: Any, folder: str, chunk_rows: int | None,
                 require_target: bool) -> tuple[Any, Any]:
    import dask

    found: dict[str, dict[int, str]] = {"X": {}, "y": {}}
    for entry in os.listdir(folder):
        match = _SHARD.fullmatch(entry)
        if match:
            kind, number = match.group(1), int(match.group(2))
            if number in found[kind]:
                raise DataError(f"folder {folder!r} holds two shards numbered {number}: "
                                f"{found[kind][number]!r} and {entry!r}")
            found[kind][number] = entry
    if not found["X"]:
        raise DataError(f"data store {folder!r} is neither a zarr store (no zarr.json or "
                        ".zgroup) nor a folder of .npy shards (no X_00000.npy, ...)")
    if found["y"] or require_target:
        for kind, other in (("X", "y"), ("y", "X")):
            lonely = sorted(set(found[kind]) - set(found[other]))
            if lonely:
                orphan = os.path.join(folder, found[kind][lonely[0]])
                raise DataError(f"shard {orphan!r} has no matching {other}_"
                                f"{lonely[0]:05d}.npy in {folder!r}")
    x_blocks, y_blocks = [], []
    x_first: tuple[str, ArrayInfo] | None = None
    y_dtype: tuple[str, Any] | None = None
    for number in sorted(found["X"]):
        x_path = os.path.join(folder, found["X"][number])
        info = _shard_info(x_path, folder)
        if len(info.shape) != 2 or info.shape[0] < 1 or info.shape[1] < 1:
            raise DataError(f"shard {x_path!r} must be 2-D (rows, features); got shape "
                            f"{info.shape}")
        if info.dtype.kind not in "biuf":
            raise DataError(f"shard {x_path!r} must hold numbers; got dtype {info.dtype}")
        if x_first is None:
            x_first = (x_path, info)
        elif (info.shape[1], info.dtype) != (x_first[1].shape[1], x_first[1].dtype):
            raise DataError(
                f"shard {x_path!r} has {info.shape[1]} columns of {info.dtype} but "
                f"{x_first[0]!r} has {x_first[1].shape[1]} of {x_first[1].dtype}; every X "
                "shard needs the same columns and dtype")
        rows = info.shape[0]
        y_path = os.path.join(folder, found["y"][number]) if found["y"] else None
        y_info = None
        if y_path is not None:
            y_info = _shard_info(y_path, folder)
            shape = y_info.shape
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise DataError(f"shard {y_path!r} must be 1-D (one entry per row); got "
                                f"shape {shape}")
            if shape[0] != rows:
                raise DataError(f"shard {y_path!r} has {shape[0]} rows but {x_path!r} has "
                                f"{rows}; they must have one row per sample each")
            if y_info.dtype.kind not in "biufU":
                raise DataError(f"shard {y_path!r} must hold numbers or strings; got dtype "
                                f"{y_info.dtype}")
            if y_dtype is None:
                y_dtype = (y_path, y_info.dtype)
            elif y_info.dtype.kind != y_dtype[1].kind:
                raise DataError(f"shard {y_path!r} holds {y_info.dtype} but {y_dtype[0]!r} "
                                f"holds {y_dtype[1]}; every y shard needs the same kind")
        step = chunk_rows or rows
        for start in range(0, rows, step):
            stop = min(start + step, rows)
            block = dask.delayed(_read_rows, pure=True)(x_path, info, start, stop)
            x_blocks.append(da.from_delayed(block, (stop - start, info.shape[1]), info.dtype))
            if y_path is not None and y_info is not None:
                block = dask.delayed(_read_rows, pure=True)(y_path, y_info, start, stop)
                y_blocks.append(da.from_delayed(block, (stop - start,) + y_info.shape[1:],
                                                y_info.dtype))
    X = _check_features(da.concatenate(x_blocks, axis=0), f"the X shards in {folder!r}")
    y = None
    if y_blocks:
        y = _check_target(da.concatenate(y_blocks, axis=0), X.shape[0],
                          f"the y shards in {folder!r}", "the X shards")
        if y.dtype.kind == "U":  # shards of different string widths: one width for all
            y = y.astype(str)
    return X, y


# --------------------------------------------------------------------------- generate
#: Rows per noise block: the noise of rows ``[b·B, (b+1)·B)`` comes from the random
#: stream seeded with ``(seed, b)``, so a chunk's rows do not depend on ``chunk_rows``.
GENERATED_BLOCK_ROWS = 1 << 16
_DEFAULT_CHUNK_ROWS = 1 << 20


def _linspace_at(index: np.ndarray, start: float, stop: float, num: int,
                 endpoint: bool = True) -> np.ndarray:
    """``np.linspace(start, stop, num, endpoint)[index]`` without making the whole
    sequence: the same arithmetic as NumPy's (``i·step + start``, last = ``stop``), so
    the values are equal bit for bit."""
    div = num - 1 if endpoint else num
    delta = np.subtract(stop, start, dtype=np.float64)
    values = index.astype(np.float64)
    values = values * (delta / div) if div > 0 else values * delta
    values += start
    if endpoint and num > 1:
        values[index == num - 1] = stop
    return values


def _halves(n: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Which half (0: the first ``ceil(n/2)`` rows) and the index within it."""
    first = (n + 1) // 2
    second = rows >= first
    return second.astype(np.int64), np.where(second, rows - first, rows), first, n - first


def _moons(rows: np.ndarray, n: int, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    label, within, n_upper, n_lower = _halves(n, rows)
    X = np.empty((rows.size, 2))
    up = label == 0
    t = _linspace_at(within[up], 0.0, math.pi, n_upper)
    X[up] = np.column_stack([np.cos(t), np.sin(t)])
    t = _linspace_at(within[~up], 0.0, math.pi, n_lower)
    X[~up] = np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)])
    return X + noise, label


def _xor(rows: np.ndarray, n: int, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    signs = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])[rows % 4]
    return signs + noise, (signs[:, 0] != signs[:, 1]).astype(np.int64)


def _circles(rows: np.ndarray, n: int, noise: np.ndarray,
             factor: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must lie in (0, 1); got {factor!r}")
    label, within, n_outer, n_inner = _halves(n, rows)
    X = np.empty((rows.size, 2))
    for value, count, scale in ((0, n_outer, 1.0), (1, n_inner, factor)):
        mask = label == value
        t = _linspace_at(within[mask], 0.0, 2 * math.pi, count, endpoint=False)
        X[mask] = scale * np.column_stack([np.cos(t), np.sin(t)])
    return X + noise, label


def _spirals(rows: np.ndarray, n: int, noise: np.ndarray, n_classes: int = 2,
             turns: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    n_classes = check_positive_int("n_classes", n_classes)
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2; got {n_classes}")
    # make_spirals sorts arange(n) % n_classes: class j holds counts[j] consecutive rows.
    counts = np.array([n // n_classes + (j < n % n_classes) for j in range(n_classes)])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    label = np.searchsorted(starts, rows, side="right") - 1
    X = np.empty((rows.size, 2))
    for j in np.unique(label):
        mask = label == j
        t = _linspace_at(rows[mask] - starts[j], 0.08, 1.0, int(counts[j]))
        angle = 2 * math.pi * (turns * t + j / n_classes)
        X[mask] = np.column_stack([t * np.cos(angle), t * np.sin(angle)])
    return X + noise, label.astype(np.int64)


def _flower(rows: np.ndarray, n: int, noise: np.ndarray,
            petals: int = 4) -> tuple[np.ndarray, np.ndarray]:
    petals = check_positive_int("petals", petals)
    label, within, n_first, n_second = _halves(n, rows)
    theta = np.empty(rows.size)
    for value, count in ((0, n_first), (1, n_second)):
        mask = label == value
        theta[mask] = _linspace_at(within[mask], value * math.pi, (value + 1) * math.pi,
                                   count)
    theta = theta + noise[:, 0]
    radius = 4.0 * np.sin(petals * theta) + noise[:, 1]
    return np.column_stack([radius * np.sin(theta), radius * np.cos(theta)]), label


_STRUCTURE: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "moons": _moons, "xor": _xor, "circles": _circles, "spirals": _spirals,
    "flower": _flower,
}


def _noise(seed: int, start: int, stop: int, scale: float) -> np.ndarray:
    """Gaussian noise ``(stop - start, 2)`` for global rows ``start:stop``: each block of
    :data:`GENERATED_BLOCK_ROWS` rows from its own stream, seeded with ``(seed, block)``."""
    B = GENERATED_BLOCK_ROWS
    out = np.empty((stop - start, 2))
    row = start
    while row < stop:
        block, offset = divmod(row, B)
        end = min(stop, (block + 1) * B)
        # A stream fills its (rows, 2) draw in order: its first k rows are the same
        # whatever the number drawn, so drawing up to `end` gives the block's rows.
        draws = np.random.default_rng([seed, block]).normal(0.0, scale, (end - block * B, 2))
        out[row - start:end - start] = draws[offset:]
        row = end
    return out


def generated_rows(name: str, start: int, stop: int, n_samples: int, seed: int,
                   noise: float, dtype: str = "float64",
                   options: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``start:stop`` of the generated data set ``name`` of ``n_samples`` rows.

    What one task of :func:`generate` computes; any worker (or the driver, in a test)
    gets the same rows for the same arguments.
    """
    rows = np.arange(start, stop, dtype=np.int64)
    X, y = _STRUCTURE[name](rows, n_samples, _noise(seed, start, stop, noise),
                            **(options or {}))
    return X.astype(dtype, copy=False), y


def _generated_X(*args: Any) -> np.ndarray:
    return generated_rows(*args)[0]


def _generated_y(name: str, start: int, stop: int, n_samples: int,
                 options: dict[str, Any] | None = None) -> np.ndarray:
    # The labels never depend on the noise: zero noise, no stream drawn.
    rows = np.arange(start, stop, dtype=np.int64)
    return _STRUCTURE[name](rows, n_samples, np.zeros((rows.size, 2)), **(options or {}))[1]


def generate(
    name: str,
    n_samples: int,
    chunk_rows: int | None = None,
    seed: int = 0,
    *,
    noise: float | None = None,
    dtype: str = "float64",
    **options: Any,
) -> tuple[Any, Any]:
    """A built-in generated 2-D data set as dask arrays, each chunk made by its own task.

    Parameters
    ----------
    name : str
        One of :data:`xpnet.data.GENERATED` (``moons``, ``xor``, ``circles``,
        ``spirals``, ``flower``).
    n_samples : int
        Rows in all; nothing of this size is ever allocated on the driver.
    chunk_rows : int, optional
        Rows per chunk (default ``min(n_samples, 2**20)``).
    seed : int
        The seed; the noise of rows ``[b·B, (b+1)·B)`` (``B`` =
        :data:`GENERATED_BLOCK_ROWS`) comes from ``numpy.random.default_rng([seed, b])``.
    noise : float, optional
        Standard deviation of the noise (default: the single-process generator's).
    dtype : {"float64", "float32"}
        dtype of ``X``.
    **options
        The generator's own options: ``factor`` (circles), ``n_classes`` and ``turns``
        (spirals), ``petals`` (flower).

    Returns
    -------
    X : dask.array.Array
        ``(n_samples, 2)`` of ``dtype``.
    y : dask.array.Array
        ``(n_samples,)`` int64 class indices.

    Notes
    -----
    Row ``i`` has the same class and lies at the same point of the same curve as row
    ``i`` of the single-process generator (``xpnet.data.make_moons`` etc.; with
    ``noise=0`` the two are equal bit for bit), but the noise differs: the single-process
    generators draw all the noise from one stream, which cannot be split between
    workers, while here each block of rows has its own stream. So the rows depend on
    ``(seed, n_samples)`` only, never on ``chunk_rows`` or on which worker made a chunk.
    """
    da = require("dask.array", "generating data on Dask workers")
    import dask

    if name not in _STRUCTURE:
        known = ", ".join(_STRUCTURE)
        raise DataError(f"unknown generated data set {name!r} for Dask workers; choose one of: "
                        f"{known} (the scikit-learn sets are small: load them whole)")
    n_samples = check_positive_int("n_samples", n_samples)
    chunk_rows = (min(n_samples, _DEFAULT_CHUNK_ROWS) if chunk_rows is None
                  else check_positive_int("chunk_rows", chunk_rows))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    make = GENERATORS[name][0]
    if noise is None:
        noise = float(inspect.signature(make).parameters["noise"].default)
    noise = check_nonnegative_float("noise", noise)
    allowed = set(inspect.signature(_STRUCTURE[name]).parameters) - {"rows", "n", "noise"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"generate({name!r}) got unknown option(s) {', '.join(unknown)}; "
                        f"it takes: {', '.join(sorted(allowed)) or 'none'}")
    # Check the options once, here, on a single row, rather than in every task.
    _generated_y(name, 0, 1, n_samples, options)
    seed = int(seed)
    x_blocks, y_blocks = [], []
    for start in range(0, n_samples, chunk_rows):
        stop = min(start + chunk_rows, n_samples)
        x = dask.delayed(_generated_X, pure=True)(name, start, stop, n_samples, seed,
                                                  noise, dtype, options)
        y = dask.delayed(_generated_y, pure=True)(name, start, stop, n_samples, options)
        x_blocks.append(da.from_delayed(x, (stop - start, 2), np.dtype(dtype)))
        y_blocks.append(da.from_delayed(y, (stop - start,), np.dtype(np.int64)))
    return da.concatenate(x_blocks, axis=0), da.concatenate(y_blocks, axis=0)
