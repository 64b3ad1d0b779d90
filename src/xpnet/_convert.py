"""Convert a CSV or ``.npz`` file to a zarr store, block by block, never loading it whole.

The store is the layout :func:`xpnet.distributed.storage.open_data` reads: one zarr
group with the arrays ``X`` ``(m, n_features)`` and ``y`` ``(m,)``, chunked along rows
(``chunk_rows`` rows per chunk), and the attribute ``xpnet`` holding ``feature_names``,
``target_name``, ``source`` and ``rows``.

The CSV rules are :func:`xpnet.data.load_file`'s (header row, blank lines skipped,
ragged rows refused, the target by name or index, by default the last column, every
feature cell a finite number, a target of numbers or of class labels), applied to one
block at a time: memory holds one chunk of rows, whatever the file's size.

Written "atomically in spirit": everything goes into a temporary folder beside the
destination, ``.xpnet-<16 hex digits>.zarr-partial``, renamed to the destination at the
end; on any error (Ctrl-C and SIGTERM included) the folder is removed. An existing
destination is refused unless ``overwrite=True``, and then only a zarr store is replaced
(never a file or another folder); the old store is removed only after the new one is
in place.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._csv import CsvReader, is_text_file
from ._dataerrors import DataError, check_npz_members, check_path, require
from ._npyfile import ArrayFileError, NpzReader, open_regular
from ._validation import check_positive_int

__all__ = ["ConvertSummary", "convert_to_zarr", "default_chunk_rows"]

#: Bytes of X per chunk when ``chunk_rows`` is not given (rows = this / row bytes).
DEFAULT_CHUNK_BYTES = 32 << 20
PARTIAL_SUFFIX = ".zarr-partial"


class DestinationError(DataError):
    """The destination of a conversion is refused (exists, not a zarr store, ...)."""


@dataclass
class ConvertSummary:
    """What :func:`convert_to_zarr` wrote."""

    path: str
    rows: int
    n_features: int
    chunk_rows: int
    dtype: str
    feature_names: list[str] = field(default_factory=list)
    target_name: str | None = None
    target_dtype: str | None = None

    @property
    def chunks(self) -> int:
        return -(-self.rows // self.chunk_rows)


def default_chunk_rows(n_features: int, itemsize: int = 8) -> int:
    """Rows per chunk so that a chunk of ``X`` holds about 32 MiB."""
    return max(1, DEFAULT_CHUNK_BYTES // (max(1, n_features) * itemsize))


# What a store written by xpnet convert holds, and nothing else: the group's metadata,
# the arrays X and y, each its metadata and its chunks (zarr 3: c/<i>/<j>; zarr 2: <i>.<j>)
_GROUP_FILES = {3: {"zarr.json"}, 2: {".zgroup", ".zattrs"}}
_ARRAY_FILES = {3: {"zarr.json"}, 2: {".zarray", ".zattrs"}}
_CHUNK_NAME = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def _own_store_problem(path: str) -> str:
    """Why ``path`` is not a store that xpnet itself wrote, or "" when it is one.

    Such a store is a plain folder holding the group's metadata, whose attribute
    ``xpnet`` records ``format``, and the arrays ``X`` and ``y`` (plain folders of their
    metadata and chunk files): no link, no other file or folder anywhere in it. Only such
    a folder is ever deleted by ``overwrite=True``.
    """
    try:
        root = {entry.name: entry for entry in os.scandir(path)}
    except OSError as exc:
        return f"it cannot be listed: {exc.strerror}"
    version = 3 if "zarr.json" in root else 2
    expected = _GROUP_FILES[version] | {"X", "y"}
    extra = sorted(set(root) - expected)
    if extra:
        return f"it holds {', '.join(map(repr, extra[:3]))}, which xpnet does not write"
    missing = sorted(expected - set(root))
    if missing:
        return f"it has no {', '.join(map(repr, missing))}"
    meta = os.path.join(path, "zarr.json" if version == 3 else ".zattrs")
    try:
        with open_regular(meta) as handle:
            text = handle.read(1 << 20)
        attributes = json.loads(text)
        if version == 3:
            attributes = attributes.get("attributes")
        recorded = attributes.get("xpnet")
    except (OSError, ValueError, AttributeError, ArrayFileError):
        recorded = None
    if not isinstance(recorded, dict) or "format" not in recorded:
        return f"its {os.path.basename(meta)} carries no 'xpnet' attribute"
    for name in ("X", "y"):
        problem = _array_problem(os.path.join(path, name), version, top=True)
        if problem:
            return f"{name}/{problem}"
    for name in _GROUP_FILES[version]:
        if not root[name].is_file(follow_symlinks=False):
            return f"its {name} is not a plain file"
    return ""


def _array_problem(folder: str, version: int, top: bool) -> str:
    """Why ``folder`` (an array of an xpnet store, or a folder of its chunks) holds
    something xpnet does not write, or ""."""
    if os.path.islink(folder) or not os.path.isdir(folder):
        return "is not a plain folder"
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        return f"cannot be listed: {exc.strerror}"
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if not (entry.name.isdigit() or (top and version == 3 and entry.name == "c")):
                return f"{entry.name}: a folder xpnet does not write"
            problem = _array_problem(entry.path, version, top=False)
            if problem:
                return f"{entry.name}/{problem}"
        elif not entry.is_file(follow_symlinks=False) or not (
                _CHUNK_NAME.fullmatch(entry.name)
                or (top and entry.name in _ARRAY_FILES[version])):
            return f"{entry.name}: not a file xpnet writes"
    return ""


def check_destination(dest: str, source: str, overwrite: bool) -> str:
    """The absolute destination, or :class:`DestinationError` (before any work).

    A link is looked at as itself, with or without a trailing slash (``link/`` would
    otherwise name the folder it points to)."""
    if not dest:
        raise DestinationError("the destination name is empty")
    absolute = os.path.abspath(dest)
    real_source = os.path.realpath(source)
    if os.path.realpath(absolute) == real_source or real_source.startswith(
            os.path.realpath(absolute) + os.sep):
        raise DestinationError(f"{dest!r} is (or holds) the source {source!r}; writing it "
                               "would destroy the source")
    try:
        link = os.lstat(absolute)
    except FileNotFoundError:
        link = None
    except OSError as exc:
        raise DestinationError(f"cannot write {dest!r}: {exc.strerror}") from None
    if link is not None:
        if stat.S_ISLNK(link.st_mode):
            raise DestinationError(f"{dest!r} is a symbolic link; name the store itself")
        if not overwrite:
            raise DestinationError(f"{dest!r} already exists; choose another name, or "
                                   "give --overwrite (overwrite=True) to replace a zarr "
                                   "store that xpnet wrote")
        _check_replaceable(dest, absolute, link)
    folder = os.path.dirname(absolute)
    if not os.path.isdir(folder):
        raise DestinationError(f"cannot write {dest!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise DestinationError(f"cannot write {dest!r}: folder {folder!r} is not writable")
    return absolute


def _check_replaceable(dest: str, path: str, link: os.stat_result | None = None) -> None:
    """:class:`DestinationError` unless ``path`` is a store xpnet wrote."""
    problem = ("it is not a folder" if link is not None and not stat.S_ISDIR(link.st_mode)
               else _own_store_problem(path))
    if problem:
        raise DestinationError(f"{dest!r} exists and is not a zarr store written by xpnet "
                               f"({problem}); --overwrite replaces only such a store, never "
                               "another file or folder")


# --------------------------------------------------------------------------- readers
@dataclass
class _Block:
    X: np.ndarray  # (rows, n_features) float64
    y: np.ndarray | None  # (rows,) numbers or strings
    locate: Callable[[], str]  # where the block starts, for messages (found when asked)

    @property
    def first_line(self) -> str:
        return self.locate()


def _csv_blocks(path: str, target: str | int | None, header_out: dict[str, Any],
                delimiter: str | None = None, header: bool = True) -> Iterator[_Block]:
    """The CSV's rows in blocks of a few hundred KiB of text (whatever the chunk size:
    the writer gathers them into chunks), read by :class:`xpnet._csv.CsvReader` (the
    rules of :func:`xpnet.data.load_file`); ``header_out`` gets the column names once
    known."""
    reader = CsvReader(path, target, delimiter=delimiter, header=header)
    rows = 0
    for block in reader.blocks(target_text=True):
        if "header" not in header_out:
            header_out.update(header=reader.layout.names, target=reader.target_column,
                              features=reader.feature_columns, notes=reader.notes)
        y = reader.target_values(block.y, block.first_row)
        rows += block.X.shape[0]
        yield _Block(block.X, y, functools.partial(reader.where, block.first_row))
    reader.check_row_count(rows)


def _npz_blocks(path: str, rows_per_block: int | None,
                header_out: dict[str, Any]) -> Iterator[_Block]:
    """The ``X``/``y`` members of an ``.npz``, streamed from the archive in blocks."""
    try:
        with NpzReader(path) as archive:
            x_info, y_info = check_npz_members(archive, path, need_y=True)
            assert y_info is not None
            m, n = x_info.shape
            for info in (x_info, y_info):
                if info.fortran_order and len(info.shape) == 2 and info.shape[1] > 1:
                    raise DataError(f"{info.name!r} in {path!r} is stored column by column "
                                    "(Fortran order) and cannot be streamed by rows; save it "
                                    "with numpy.ascontiguousarray")
            header_out.update(features=list(range(n)))
            step = rows_per_block or default_chunk_rows(n)
            x_row = n * x_info.dtype.itemsize
            y_row = y_info.dtype.itemsize
            with archive.open_data(x_info) as fx, archive.open_data(y_info) as fy:
                for start in range(0, m, step):
                    count = min(step, m - start)
                    X = np.frombuffer(_read_exactly(fx, count * x_row, path, "X"),
                                      dtype=x_info.dtype).reshape(count, n)
                    y = np.frombuffer(_read_exactly(fy, count * y_row, path, "y"),
                                      dtype=y_info.dtype)
                    where = f"{path!r}, rows {start + 1}-{start + count}"
                    X = X.astype(np.float64)
                    if not np.all(np.isfinite(X)):
                        raise DataError(f"'X' in {where} contains NaN or infinite values; "
                                        "clean the data first")
                    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
                        raise DataError(f"'y' in {where} contains NaN or infinite values")
                    y = y.astype(str) if y.dtype.kind == "U" else \
                        y.astype(np.float64 if y.dtype.kind == "f" else np.int64)
                    yield _Block(X, y, functools.partial(str, where))
    except DataError:
        raise
    except (ArrayFileError, OSError, ValueError, EOFError, KeyError) as exc:
        raise DataError(f"{path!r} is not a readable .npz file ({exc})") from None
    except Exception as exc:  # zlib.error, zipfile.BadZipFile, ... from a damaged archive
        raise DataError(f"{path!r} is not a readable .npz file ({type(exc).__name__}: "
                        f"{exc})") from None


def _read_exactly(fp: Any, nbytes: int, path: str, name: str) -> bytes:
    data = fp.read(nbytes)
    if len(data) != nbytes:
        raise DataError(f"member {name!r} of {path!r} is truncated")
    return bytes(data)


# --------------------------------------------------------------------------- writer
def _create(group: Any, name: str, shape: tuple[int, ...], chunks: tuple[int, ...],
            dtype: Any) -> Any:
    # Every chunk is written, even one equal to the fill value (zarr 3 leaves those out
    # by default): open_data refuses a store with a missing chunk, never reading zeros.
    create = getattr(group, "create_array", None)  # zarr 3; zarr 2: create_dataset
    if create is None:
        return group.create_dataset(name, shape=shape, chunks=chunks, dtype=dtype,
                                    write_empty_chunks=True)
    return create(name, shape=shape, chunks=chunks, dtype=dtype,
                  config={"write_empty_chunks": True})


def convert_to_zarr(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    chunk_rows: int | None = None,
    target: str | int | None = None,
    *,
    dtype: str = "float64",
    overwrite: bool = False,
    delimiter: str | None = None,
    header: bool = True,
) -> ConvertSummary:
    """Convert a CSV or ``.npz`` file to a zarr store, one block of rows at a time.

    Parameters
    ----------
    source : str or PathLike
        A CSV with a header row (the rules of :func:`xpnet.data.load_file`), or an
        ``.npz`` with arrays ``X`` ``(m, n)`` and ``y`` ``(m,)``.
    dest : str or PathLike
        The zarr store to create (a folder).
    chunk_rows : int, optional
        Rows per zarr chunk (and per Dask task when read by
        :func:`xpnet.distributed.storage.open_data`). Default: about 32 MiB of ``X``.
    target : str or int, optional
        CSV only: the target column, by name or index (default: the last column).
    dtype : {"float64", "float32"}
        dtype of ``X`` in the store.
    overwrite : bool
        Replace ``dest`` if it is an existing zarr store (anything else is refused).
    delimiter, header
        CSV only: as for :func:`xpnet.data.load_file`.

    Returns
    -------
    ConvertSummary
        Rows, features, chunking and column names written.

    Raises
    ------
    DataError
        For the source (naming the file and line) and the destination (exists, not a
        zarr store, a link, the source itself, no folder); nothing is left behind.
    DaskUnavailableError
        When zarr is not installed.
    """
    text = check_path(source)
    dest_text = os.fspath(dest)
    if chunk_rows is not None:
        chunk_rows = check_positive_int("chunk_rows", chunk_rows)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    suffix = os.path.splitext(text)[1].lower()
    if suffix == ".npy":
        raise DataError(f"{text!r} is a single .npy array; convert a CSV or an .npz with X "
                        "and y, or use a folder of .npy shards directly (X_00000.npy, "
                        "y_00000.npy, ...)")
    if suffix != ".npz" and not is_text_file(text):
        raise DataError(f"unsupported data file type {suffix!r} for {text!r}; convert a "
                        ".csv or .npz file")
    if suffix == ".npz" and target is not None:
        raise DataError(f"target= picks a CSV column; {text!r} is an .npz whose target is "
                        "its array 'y'")
    absolute = check_destination(dest_text, text, overwrite)
    zarr = require("zarr", "writing a zarr store")
    folder = os.path.dirname(absolute)
    partial = os.path.join(folder, f".xpnet-{secrets.token_hex(8)}{PARTIAL_SUFFIX}")
    columns: dict[str, Any] = {}  # the source's column names, once read
    blocks = (_npz_blocks(text, chunk_rows, columns) if suffix == ".npz"
              else _csv_blocks(text, target, columns, delimiter, header))
    float_type = np.dtype(dtype)
    # Every zarr call that writes runs in this one thread, and the main thread waits for
    # it. zarr 3 does its I/O on a background event loop, which goes on writing after a
    # signal (SIGTERM, Ctrl-C) interrupts the main thread's wait: removing the partial
    # store then raced with that write, which re-created it (seen in CI: a
    # .zarr-partial folder left after exit 143). On any exception the writer is drained
    # first, so when the folder is removed nothing writes into it any more.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xpnet-convert")

    def write(function: Any, *args: Any, **kwargs: Any) -> Any:
        return writer.submit(function, *args, **kwargs).result()

    try:
        group = write(zarr.open_group, partial, mode="w-")
        x_array = y_array = None
        # Parsed blocks wait here until they fill a chunk: each chunk is then compressed
        # and written once (appending a part of a chunk rewrites the whole chunk).
        pending_X: list[np.ndarray] = []
        pending_y: list[np.ndarray] = []
        rows = pending = 0
        y_kind = None
        for block in blocks:
            if x_array is None:
                n = block.X.shape[1]
                chunk_rows = chunk_rows or default_chunk_rows(n, float_type.itemsize)
                x_array = write(_create, group, "X", (0, n), (chunk_rows, n), float_type)
                y_kind = "U" if block.y is not None and block.y.dtype.kind == "U" else "n"
                y_dtype: Any = str if y_kind == "U" else block.y.dtype  # type: ignore[union-attr]
                y_array = write(_create, group, "y", (0,), (chunk_rows,), y_dtype)
            assert block.y is not None and y_array is not None
            kind = "U" if block.y.dtype.kind == "U" else "n"
            if kind != y_kind:
                first, now = ("numbers", "text") if kind == "U" else ("text", "numbers")
                raise DataError(f"{block.first_line}: the target holds {now} here but "
                                f"{first} in the rows before; xpnet convert needs one kind "
                                "of target per file (all class labels, or all numbers)")
            X = block.X.astype(float_type, copy=False)
            if float_type != block.X.dtype and not np.all(np.isfinite(X)):
                raise DataError(f"{block.first_line}: a value beyond the float32 range; "
                                "convert with dtype float64")
            pending_X.append(X)
            pending_y.append(block.y.astype(y_array.dtype) if kind == "n" else block.y)
            pending += X.shape[0]
            rows += X.shape[0]
            assert chunk_rows is not None
            if pending >= chunk_rows:
                pending = write(_flush, x_array, y_array, pending_X, pending_y, chunk_rows)
        if x_array is not None and pending:
            write(_flush, x_array, y_array, pending_X, pending_y, pending)
        if x_array is None or rows == 0:
            raise DataError(f"data file {text!r} has a header row but no data rows")
        if "header" in columns:
            names = [columns["header"][i] or f"x{i + 1}" for i in columns["features"]]
            target_name = columns["header"][columns["target"]]
        else:
            names = [f"x{i + 1}" for i in columns["features"]]
            target_name = "y"
        write(group.attrs.__setitem__, "xpnet", {
            "format": 1, "rows": rows, "feature_names": names, "target_name": target_name,
            "source": os.path.basename(text),
        })
        assert chunk_rows is not None and y_array is not None
        summary = ConvertSummary(dest_text, rows, len(names), chunk_rows, float_type.name,
                                 names, target_name,
                                 "str" if y_kind == "U" else str(y_array.dtype))
        writer.shutdown(wait=True)
        _move_into_place(partial, absolute, overwrite)
    except BaseException:
        writer.shutdown(wait=True, cancel_futures=True)  # the write under way ends first
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return summary


def _flush(x_array: Any, y_array: Any, pending_X: list[np.ndarray],
           pending_y: list[np.ndarray], count: int) -> int:
    """Append the first ``count`` pending rows (whole chunks, or the last part); keep the
    rest pending. Returns the rows still pending."""
    X, y = np.concatenate(pending_X), np.concatenate(pending_y)
    x_array.append(X[:count], axis=0)
    y_array.append(y[:count], axis=0)
    pending_X[:] = [X[count:]] if X.shape[0] > count else []
    pending_y[:] = [y[count:]] if y.shape[0] > count else []
    return X.shape[0] - count


def _move_into_place(partial: str, dest: str, overwrite: bool) -> None:
    """Rename the finished store to ``dest``; an old store is removed only afterwards.

    Two conversions into one destination at once are put in turn here by a lock on the
    destination's folder: the second finds the first one's store (``overwrite``: it
    replaces that complete store; otherwise it is refused), never a half-moved one. The
    old store is checked again once renamed aside (so nothing put into it since the first
    check is lost): anything but xpnet's own store goes back and the conversion is refused.
    """
    with _folder_lock(os.path.dirname(dest)):
        old = None
        if os.path.lexists(dest):
            if not overwrite:  # appeared while converting: never overwrite it
                raise DestinationError(f"{dest!r} appeared while converting; it was left "
                                       "as it was")
            _check_replaceable(dest, dest, os.lstat(dest))
            old = os.path.join(os.path.dirname(dest),
                               f".xpnet-{secrets.token_hex(8)}.zarr-old")
            os.rename(dest, old)
            try:
                _check_replaceable(dest, old, os.lstat(old))
            except BaseException:
                os.rename(old, dest)
                raise
        try:
            os.rename(partial, dest)
        except BaseException:
            if old is not None:
                os.rename(old, dest)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _folder_lock(folder: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` (released when the process dies, so never
    left behind); a no-op where ``fcntl`` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
