"""The errors and door checks of xpnet's data readers (re-exported by :mod:`xpnet.data`).

They live in a module of their own so that every reader (:mod:`xpnet._csv`,
:mod:`xpnet.data`, :mod:`xpnet._convert`, :mod:`xpnet.distributed.storage`) can use them
without importing another.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

from ._npyfile import ArrayFileError, ArrayInfo, NpzReader, check_memory
from .backends import BackendUnavailableError

__all__ = ["DaskUnavailableError", "DataError", "MissingColumnsError", "check_data_memory",
           "check_file", "check_npz_members", "check_path", "require"]


class DataError(ValueError):
    """A data set or data file cannot be used; the message says why and what to do."""


class MissingColumnsError(DataError):
    """A data file lacks feature columns asked for by name; ``missing`` lists them.

    Parameters
    ----------
    message : str
        The error message.
    missing : sequence of str
        The names of the missing columns.
    """

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = list(missing)


def check_data_memory(path: str, needed: int, what: str) -> None:
    """:func:`xpnet._npyfile.check_memory` for data file ``path``, as a :class:`DataError`
    naming it (the limit of ``XPNET_MAX_DATA_BYTES``, the same for every file type)."""
    try:
        check_memory(needed, what)
    except ArrayFileError as exc:
        raise DataError(f"data file {path!r}: {exc}") from None


def check_npz_members(archive: NpzReader, path: str,
                      need_y: bool) -> tuple[ArrayInfo, ArrayInfo | None]:
    """The ``.npy`` headers of an ``.npz`` data file's ``X`` (2-D numbers) and ``y`` (one
    number or string per row; ``None`` when absent and not ``need_y``), checked before
    any data is read, each problem a :class:`DataError` naming ``path``."""
    for name in ("X", "y"):
        if name in archive.others:  # numpy would hand these back as raw bytes
            raise DataError(f"{path!r}: member {name!r} is not a .npy array")
    names = archive.names
    if "X" not in names:
        shown = ", ".join(n if n.isprintable() else repr(n) for n in sorted(names))
        raise DataError(f"{path!r} must hold an array named 'X' (and 'y'); it holds: "
                        f"{shown or 'nothing'}")
    if need_y and "y" not in names:
        raise DataError(f"{path!r} has no target array 'y'")
    x_info = archive.info("X")
    y_info = archive.info("y") if "y" in names else None
    if len(x_info.shape) != 2 or x_info.shape[0] < 1 or x_info.shape[1] < 1:
        raise DataError(f"'X' in {path!r} must be 2-D (rows, features); got shape "
                        f"{x_info.shape}")
    if x_info.dtype.kind not in "biuf":
        raise DataError(f"'X' in {path!r} must hold numbers; got dtype {x_info.dtype}")
    if y_info is not None:
        shape = y_info.shape
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or \
                shape[0] != x_info.shape[0]:
            raise DataError(f"'y' in {path!r} must be 1-D with one entry per row of X "
                            f"({x_info.shape[0]}); got shape {shape}")
        if y_info.dtype.kind not in "biufU":
            raise DataError(f"'y' in {path!r} must hold numbers or strings; got "
                            f"{y_info.dtype}")
    return x_info, y_info


def check_file(text: str, what: str, error: type[Exception]) -> None:
    """Raise ``error`` naming ``what`` ("data file", "model file") unless ``text`` is an
    existing, non-empty regular file.

    Parameters
    ----------
    text : str
        The path.
    what : str
        What the file is, for the message (``"data file"``, ``"model file"``).
    error : type of Exception
        The exception raised.
    """
    if not os.path.exists(text):
        raise error(f"{what} {text!r} does not exist")
    if os.path.isdir(text):
        raise error(f"{what} {text!r} is a directory, not a file")
    if os.path.getsize(text) == 0:
        raise error(f"{what} {text!r} is empty")


def check_path(path: str | os.PathLike[str]) -> str:
    """``path`` as text, or :class:`DataError` unless it is a non-empty file.

    Parameters
    ----------
    path : str or path
        The file.
    """
    text = os.fspath(path)
    check_file(text, "data file", DataError)
    return text


class DaskUnavailableError(BackendUnavailableError):
    """Dask (or zarr) is needed and not installed; the message says how to install it."""


def require(module: str, what: str) -> Any:
    """Import ``module`` (``"dask.array"``, ``"zarr"``, ...) for ``what``, or raise
    :class:`DaskUnavailableError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DaskUnavailableError(
            f"{what} needs {module.split('.')[0]}, which is not installed ({exc}). Install "
            "it with: pip install 'xpnet[dask]'"
        ) from None
