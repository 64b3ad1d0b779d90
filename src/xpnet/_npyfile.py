"""Reading ``.npy`` and ``.npz`` files without trusting them.

``numpy.load`` decompresses a whole ``.npz`` member before anyone can look at it, and
hands back raw ``bytes`` for a member that is not a ``.npy`` array. A 1 MB archive can
hold a 1 GB member of zeros, so a crafted file could exhaust memory before any check ran.
Here every size is known before any array data is read:

- the zip central directory gives each member's decompressed size (``file_size``), and
  :mod:`zipfile` never decompresses more than that size;
- each member's ``.npy`` header (a few hundred bytes) gives its shape and dtype, and the
  two must agree exactly (``file_size == header length + shape x itemsize``);
- the caller checks shape and dtype against what it expects (a model's layer sizes, a
  data file's 2-D ``X``), and :func:`check_memory` against :func:`memory_limit`, before
  :meth:`NpzReader.read` decompresses anything.

Problems raise :class:`ArrayFileError` with a message that does not name the file; the
callers (``xpnet.io``, ``xpnet.data``) add the file name and turn it into their own error.
"""

from __future__ import annotations

import math
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ._memory import available_memory, format_bytes

__all__ = [
    "ENV_LIMIT",
    "ArrayFileError",
    "ArrayInfo",
    "NpzReader",
    "check_memory",
    "file_kind",
    "format_bytes",
    "memory_limit",
    "open_regular",
    "read_npy",
]

#: Environment variable that sets the largest array size (bytes) read from a file.
ENV_LIMIT = "XPNET_MAX_DATA_BYTES"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 24  # bytes decompressed per read: the only memory used beyond the array


class ArrayFileError(ValueError):
    """An ``.npy``/``.npz`` file (or member) is malformed or too large; no file name."""


_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)(?:i?B)?\s*", re.IGNORECASE)


def memory_limit() -> tuple[int | None, str]:
    """The largest array size (bytes) a file may hold, and where the limit comes from.

    ``XPNET_MAX_DATA_BYTES`` (a byte count, optionally with a binary suffix: ``512M``,
    ``8G``) when set; otherwise a quarter of the memory available now: the arrays are
    converted, standardised, split and copied to the backend after loading, so a file
    much larger than that could not be trained on anyway.
    ``(None, ...)`` when the available memory cannot be found out.
    """
    text = os.environ.get(ENV_LIMIT)
    if text is not None and text.strip():
        match = _SIZE.fullmatch(text)
        if not match:
            raise ArrayFileError(
                f"environment variable {ENV_LIMIT}={text!r} is not a size; give bytes, "
                "optionally with a suffix K, M, G or T (like 8G)"
            )
        scale = 1024 ** " KMGT".index(match.group(2).upper() or " ")
        return int(float(match.group(1)) * scale), f"set by {ENV_LIMIT}"
    available = available_memory()
    if available is None:
        return None, "no limit: the available memory is unknown"
    return available // 4, f"a quarter of the {format_bytes(available)} available now"


def _exact(n: int) -> str:
    """``'3.0 GiB (3221225472 bytes)'``: readable, and exact near the limit."""
    return format_bytes(n) if n < 1024 else f"{format_bytes(n)} ({n} bytes)"


def check_memory(nbytes: int, what: str) -> None:
    """Raise :class:`ArrayFileError` if ``nbytes`` exceed :func:`memory_limit`."""
    limit, reason = memory_limit()
    if limit is not None and nbytes > limit:
        raise ArrayFileError(
            f"{what} would take {_exact(nbytes)} in memory, more than the limit of "
            f"{_exact(limit)} ({reason}); to raise it, set the environment variable "
            f"{ENV_LIMIT} (e.g. {ENV_LIMIT}=16G)"
        )


@dataclass(frozen=True)
class ArrayInfo:
    """What a ``.npy`` header declares: ``shape``, ``dtype``, ``nbytes`` of data."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran_order: bool
    offset: int  # bytes before the data: magic, version, header

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _read_header(fp: IO[bytes], key: str, name: str) -> ArrayInfo:
    """The ``.npy`` header at the start of ``fp`` (which is left at the data); ``key``
    names the array, ``name`` describes it in messages."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
    except (ValueError, EOFError) as exc:
        raise ArrayFileError(f"{name} is not a .npy array ({exc})") from None
    try:
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp)
        else:  # 3.0 only adds UTF-8 field names of structured dtypes, never needed here
            raise ArrayFileError(f"{name} has .npy format version {version}, not 1.0 or 2.0")
    except ArrayFileError:
        raise
    except Exception as exc:  # numpy parses the header with tokenize and ast: TokenError,
        # SyntaxError, ValueError, MemoryError on absurd nesting... all mean "malformed"
        raise ArrayFileError(f"{name} has a malformed .npy header ({exc})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ArrayFileError(
            f"{name} has dtype {dtype}; only plain numbers or strings are read (never "
            "Python objects, which would need unpickling)"
        )
    if dtype.itemsize == 0:
        raise ArrayFileError(f"{name} has the empty dtype {dtype}")
    return ArrayInfo(key, tuple(shape), dtype, bool(fortran), fp.tell())


def _fill(fp: IO[bytes], info: ArrayInfo, what: str) -> np.ndarray:
    """Read ``info.nbytes`` from ``fp`` into a new array, ``_CHUNK`` bytes at a time."""
    array = np.empty(info.shape, dtype=info.dtype, order="F" if info.fortran_order else "C")
    flat = array.reshape(-1, order="A").view(np.uint8) if array.size else None
    position = 0
    while position < info.nbytes:
        chunk = fp.read(min(_CHUNK, info.nbytes - position))
        if not chunk:
            raise ArrayFileError(
                f"{what} is truncated: {position} of {info.nbytes} data bytes"
            )
        assert flat is not None
        flat[position:position + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        position += len(chunk)
    if fp.read(1):
        raise ArrayFileError(f"{what} holds more data than its .npy header declares")
    return array


def open_regular(path: str) -> IO[bytes]:
    """``open(path, "rb")`` for a regular file only, never blocking.

    A FIFO would block ``open`` until a writer appears (forever, for a stray named pipe),
    and a device (``/dev/zero``) reads without end: the file is opened without blocking
    and checked with ``fstat`` on the descriptor itself (no window between the check and
    the open), then switched back to blocking reads. Raises :class:`ArrayFileError`
    (no file name) for anything but a regular file, ``OSError`` when it cannot be opened.
    """
    try:
        kind = os.stat(path).st_mode
    except OSError:
        kind = stat.S_IFREG  # let open() report it
    if not stat.S_ISREG(kind):  # a device is never even opened (opening may act)
        raise ArrayFileError(f"{file_kind(kind)}, not a regular file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ArrayFileError(f"{file_kind(mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_kind(mode: int) -> str:
    """What a file of ``mode`` (``st_mode``) is, for messages: ``"a FIFO (named pipe)"``."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a special file"


def read_npy(path: str, check: Any = None) -> np.ndarray:
    """A ``.npy`` file's array; ``check(info)`` runs after the header, before the data."""
    with open_regular(path) as fp:
        info = _read_header(fp, "", "the file")
        if check is not None:
            check(info)
        available = os.fstat(fp.fileno()).st_size - info.offset
        if available < info.nbytes:
            raise ArrayFileError(
                f"the file is truncated: its header declares shape {info.shape} "
                f"({info.nbytes} bytes of {info.dtype}) but {available} bytes follow"
            )
        return _fill(fp, info, "the array")


class NpzReader:
    """A ``.npz`` archive read member by member, sizes checked before data.

    ``arrays`` maps each ``NAME.npy`` member to ``NAME``; ``others`` lists the members
    that are not named ``*.npy``. Use as a context manager.
    """

    def __init__(self, path: str) -> None:
        self._zip = zipfile.ZipFile(path)
        try:
            self.infos: dict[str, zipfile.ZipInfo] = {}
            self.others: list[str] = []
            for info in self._zip.infolist():
                name = info.filename
                if name.endswith(".npy") and not info.is_dir():
                    key = name[:-4]
                    if key in self.infos:
                        raise ArrayFileError(f"the archive holds {key!r} twice")
                    self.infos[key] = info
                else:
                    self.others.append(name)
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def names(self) -> list[str]:
        return list(self.infos)

    def info(self, name: str) -> ArrayInfo:
        """Member ``name``'s declared shape and dtype (reads its header only)."""
        member = self.infos[name]
        with self._zip.open(member) as fp:
            info = _read_header(fp, name, f"member {name!r}")
        if member.file_size != info.offset + info.nbytes:
            raise ArrayFileError(
                f"member {name!r} holds {member.file_size - info.offset} bytes of data but "
                f"its .npy header declares shape {info.shape} of {info.dtype} "
                f"({info.nbytes} bytes)"
            )
        return info

    def open_data(self, info: ArrayInfo) -> IO[bytes]:
        """The member described by ``info`` (from :meth:`info`), open at its data."""
        fp = self._zip.open(self.infos[info.name])
        fp.read(info.offset)
        return fp

    def read(self, info: ArrayInfo) -> np.ndarray:
        """Decompress the member described by ``info`` (from :meth:`info`)."""
        with self.open_data(info) as fp:
            return _fill(fp, info, f"member {info.name!r}")
