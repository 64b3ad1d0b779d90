"""The errors of xpnet's data readers (re-exported by :mod:`xpnet.data`).

They live in a module of their own so that every reader (:mod:`xpnet._csv`,
:mod:`xpnet.data`, :mod:`xpnet._convert`) can raise them without importing another.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._npyfile import ArrayFileError, check_memory

__all__ = ["DataError", "MissingColumnsError", "check_data_memory"]


class DataError(ValueError):
    """A data set or data file cannot be used; the message says why and what to do."""


class MissingColumnsError(DataError):
    """A data file lacks feature columns asked for by name; ``missing`` lists them."""

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
