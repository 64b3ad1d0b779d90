"""CSV files read by pyarrow's CSV reader, with xpnet's strictness as validation.

Why pyarrow: its ``read_csv`` converts text to float64 columns in C++ without the GIL,
exactly (every bit of a ``%.17g`` number kept), it decompresses gzip, bzip2 and zstd
itself, and it has no dependencies besides NumPy. The file is read in pieces of whole
lines (:func:`_pieces`), each parsed on its own thread, one per core (:func:`_in_order`):
memory holds the float64 result plus the pieces in flight, and two cores read 10^5 x 20
numbers in about 1.2x the time of pandas' (single-threaded) C parser. It is the
``csv`` extra (``pip install 'xpnet[csv]'``); without it, reading a CSV is one clear
error.

What xpnet adds, so that a file is never read in a way that gives a silently wrong
answer:

- **The first line is judged, not assumed.** A first line of numbers only is refused as
  a header (pass ``header=False``, ``--no-header``); scikit-learn's own format (first
  line ``n_samples,n_features[,class names]``, as in its bundled ``iris.csv``) is read
  as what it is: the integer target mapped to the class names, the counts checked
  against the file. Duplicate column names are refused; names are stripped of spaces
  and a UTF-8 byte-order mark.
- **A row index is not a feature.** An unnamed first column (pandas' ``to_csv``
  default, R's ``write.csv``) holding ``0, 1, 2, ...`` or ``1, 2, 3, ...`` is dropped
  with a note; any other unnamed first column is a feature called ``x1``.
- **Every cell is checked**: features are finite numbers (an empty, non-numeric, NaN or
  infinite cell is an error naming its line and column), rows have the header's number
  of cells, the target has no empty cell. When pyarrow rejects a block, the file is
  scanned once more by Python's ``csv`` module to name the exact line and cell.
- **Memory is bounded** by the data memory limit of ``.npz`` files
  (``XPNET_MAX_DATA_BYTES``): estimated from the file size before parsing, checked
  again whenever the result grows.
"""

from __future__ import annotations

import bz2
import codecs
import collections
import contextlib
import csv
import gzip
import io
import lzma
import math
import os
import queue
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, NoReturn

import numpy as np

from ._dataerrors import DataError, MissingColumnsError, check_data_memory

__all__ = [
    "COMPRESSIONS",
    "CsvData",
    "CsvReader",
    "TEXT_SUFFIXES",
    "is_text_file",
    "read_csv",
]

#: Suffixes of delimited text files (``""``: no suffix), and of their compressed forms.
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", "")
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}

# What a CSV reader (pandas, R, a spreadsheet) reads as a number: optional sign, ASCII
# digits, a decimal point, an exponent. Python's float() also takes "1_000", Arabic-Indic
# or full-width digits and Unicode spaces, which no CSV reader does: such a cell is text.
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Spellings float() turns into NaN or infinity, refused with their own message.
NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_NUMERIC = re.compile(f"{NUMBER.pattern}|(?i:{NON_FINITE.pattern})")
CSV_SPACE = " \t"  # stripped around a cell; other (Unicode) spaces make it text
# Text read ahead to judge the first line and estimate the row count.
_HEAD_BYTES = 1 << 16
# Text handed to pyarrow per call. The streaming reader ``open_csv`` converts one block at
# a time (0.15 s on 10^5 x 21 numbers, whatever the block size, against pandas' 0.09 s),
# and a whole-file ``read_csv`` holds the whole table besides the result. So the file is
# cut into pieces of whole lines (a line break always ends a record: newlines inside
# quoted cells are refused, as pyarrow's default ``newlines_in_values=False`` does), and
# each piece is read by a single-threaded ``read_csv`` on one of :func:`_workers`
# threads, in blocks of PARSE_BYTES (64 KiB blocks: 1.44-1.72x pandas' time, 256 KiB
# ones 1.06-1.43x, 1 MiB ones no faster; pieces from 512 KiB to 4 MiB, the larger the
# faster). Wide lines need more: each call costs per column, and 4 MiB of 785 numbers per
# line (260 lines) read 2 x 10^4 such lines in 2.74 s, 16 MiB pieces in 1.47 s (pandas
# 1.26 s): a piece holds at least PIECE_ROWS lines, and a block BLOCK_ROWS. A whole-file
# read caps a piece so that those in flight stay well under the result (:meth:`_gather`).
BLOCK_BYTES = 1 << 16
PIECE_BYTES = 1 << 22
PIECE_ROWS = 1024
BLOCK_ROWS = 128
PARSE_BYTES = 1 << 18
MAX_THREADS = 8  # pieces parsed at once, one per core up to this
# Delimiters suggested when a file does not split on the one in use.
_OTHER_DELIMITERS = (",", ";", "\t", "|", " ")
_UNNAMED = re.compile(r"Unnamed: 0")  # what pandas calls a nameless column on reading


# --------------------------------------------------------------------------- cells
def parse_float(cell: str, where: str) -> float:
    """A feature cell as a finite float, or :class:`DataError` naming ``where``."""
    text = cell.strip(CSV_SPACE)
    if not text:
        raise DataError(f"{where}: empty cell (missing value); fill it in or drop the row")
    if NON_FINITE.fullmatch(text):
        raise DataError(f"{where}: value {text!r} is NaN or infinite; clean the data first")
    if not NUMBER.fullmatch(text):
        raise DataError(f"{where}: non-numeric value {text!r}; features must be numbers "
                        "(digits, optional sign, decimal point and exponent)")
    value = float(text)
    if not math.isfinite(value):
        raise DataError(f"{where}: value {text!r} is NaN or infinite (beyond float64); "
                        "clean the data first")
    return value


def column_name(name: str) -> str:
    """A column name for a message: as is when printable, else its repr (escaped)."""
    return name if name.isprintable() else repr(name)


def resolve_column(target: str | int | None, header: Sequence[str], what: str) -> int:
    """Index of the target column: by name, else by (possibly negative) index."""
    n = len(header)
    if target is None:
        return n - 1
    if isinstance(target, str) and target in header:
        return list(header).index(target)
    try:
        index = int(target)
    except (TypeError, ValueError):
        raise DataError(
            f"target column {target!r} not found in {what}; columns are: "
            f"{', '.join(map(column_name, header))}"
        ) from None
    if not -n <= index < n:
        raise DataError(
            f"target column index {index} is out of range for {what} with {n} columns"
        )
    return index % n


# --------------------------------------------------------------------------- files
def split_suffix(path: str) -> tuple[str, str | None]:
    """``("data.csv.gz") -> (".csv", "gzip")``: the text suffix and the compression."""
    root, suffix = os.path.splitext(path)
    compression = COMPRESSIONS.get(suffix.lower())
    if compression is not None:
        suffix = os.path.splitext(root)[1]
    return suffix.lower(), compression


def is_text_file(path: str) -> bool:
    """Whether ``path`` names a delimited text file xpnet reads (``.csv``, ``.tsv.gz``...)."""
    return split_suffix(path)[0] in TEXT_SUFFIXES


def open_binary(path: str) -> IO[bytes]:
    """The file's bytes, decompressed by its suffix (``.gz``, ``.bz2``, ``.xz``, ``.zst``)."""
    compression = split_suffix(path)[1]
    if compression == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if compression == "bz2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    if compression == "zstd":
        pa = _pyarrow()[0]
        return pa.input_stream(path, compression="zstd")
    return open(path, "rb")


def _arrow_source(path: str) -> Any:
    """What pyarrow reads: the path's stream, decompressed by pyarrow where it can."""
    pa = _pyarrow()[0]
    compression = split_suffix(path)[1]
    if compression == "xz":  # not among pyarrow's codecs
        return lzma.open(path, "rb")
    return pa.input_stream(path, compression=compression)


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.csv
    except ImportError:
        raise DataError("reading CSV files needs pyarrow, which is not installed; install "
                        "it with: pip install 'xpnet[csv]'") from None
    return pyarrow, pyarrow.csv


def _validity(array: Any) -> np.ndarray:
    """Which cells of a pyarrow array are present (not null), from its validity bitmap."""
    bitmap = array.buffers()[0]
    if bitmap is None:
        return np.ones(len(array), dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[array.offset:array.offset + len(array)].astype(bool)


def _floats(array: Any) -> np.ndarray:
    """A float64 pyarrow array's values, read from its buffer (an empty cell's slot holds
    any value: the caller checks :func:`_validity`). Not ``to_numpy(zero_copy_only=False)``,
    which imports pandas where it is installed: a second or more at start-up, and a
    SIGTERM that arrives during that import is lost."""
    return np.frombuffer(array.buffers()[1], dtype=np.float64, count=len(array),
                         offset=8 * array.offset)


def _workers() -> int:
    """Pieces parsed at once: one per core this process may run on, at most
    :data:`MAX_THREADS` (1: parsed in the calling thread)."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_THREADS))


class _BadCell(Exception):
    """A block holds an empty or non-finite cell: :meth:`CsvReader._diagnose` names it."""


class _TargetIsText(Exception):
    """The target, read as numbers, holds a cell that is not one: read it as text."""


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class _Head:
    """The first records of a file and what its first bytes say about its size."""

    records: list[tuple[int, list[str]]]  # (line of the record's end, cells), non-empty
    bytes_per_line: float | None  # average over the lines read ahead (None: too few)


def _read_head(path: str, delimiter: str, records: int = 2) -> _Head:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    parts: list[str] = []
    size = 0
    complete = False
    try:
        with open_binary(path) as handle:
            while True:
                chunk = handle.read(_HEAD_BYTES)
                if not chunk:
                    parts.append(decoder.decode(b"", final=True))
                    complete = True
                    break
                size += len(chunk)
                parts.append(decoder.decode(chunk))
                if size >= _HEAD_BYTES and sum(p.count("\n") for p in parts) > records + 3:
                    break
    except UnicodeDecodeError:
        raise DataError(f"data file {path!r} is not a UTF-8 text (CSV) file") from None
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataError(f"data file {path!r} cannot be read ({exc})") from None
    text = "".join(parts)
    if not complete:
        text = text[: text.rfind("\n") + 1]  # whole lines only
    found: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if row and len(found) < records:
                found.append((reader.line_num, row))
    except csv.Error as exc:
        raise DataError(f"data file {path!r} is not valid CSV ({exc})") from None
    # the lines after the first (a header can be much shorter than a data line)
    lines = text.count("\n") - 1
    rest = text[text.find("\n") + 1:]
    per_line = len(rest.encode()) / lines if lines >= 4 else None
    return _Head(found, per_line)


@dataclass(frozen=True)
class _ScikitLearnHeader:
    n_samples: int
    n_features: int
    class_names: list[str]


def _scikit_learn_header(cells: list[str], n_columns: int) -> _ScikitLearnHeader | None:
    """scikit-learn's CSV header (``150,4,setosa,versicolor,virginica``): two counts, the
    second the number of feature columns, then the class names (if any), which are not
    numbers."""
    if len(cells) < 2 or not all(c.isdigit() and c.isascii() for c in cells[:2]):
        return None
    n_samples, n_features = int(cells[0]), int(cells[1])
    names = cells[2:]
    if n_features != n_columns - 1 or any(NUMBER.fullmatch(c) for c in names):
        return None
    return _ScikitLearnHeader(n_samples, n_features, names)


def _splits_on(line: list[str], n_columns: int, delimiter: str) -> str | None:
    """Another delimiter that splits a one-column file into several columns, if any."""
    if n_columns != 1:
        return None
    text = line[0]
    for other in _OTHER_DELIMITERS:
        if other != delimiter and len(text.split(other)) > 1:
            return other
    return None


@dataclass(frozen=True)
class CsvLayout:
    """How a delimited file is laid out: delimiter, column names, where data start."""

    path: str
    delimiter: str
    names: list[str]  # one per column; an unnamed column is "x<position>"
    skip_rows: int  # physical lines before the data (the header's)
    header_line: int | None  # None: the file has no header row
    index_candidate: bool  # the first column has no name: maybe a row index
    scikit_learn: _ScikitLearnHeader | None
    estimated_rows: int | None  # from the file size and the first lines' length
    bytes_per_line: float | None  # of the first lines read

    @property
    def block_bytes(self) -> int:
        """Bytes of text per block: :data:`BLOCK_BYTES`, or :data:`BLOCK_ROWS` lines."""
        return max(BLOCK_BYTES, int(BLOCK_ROWS * (self.bytes_per_line or 0)))

    @property
    def n_columns(self) -> int:
        return len(self.names)


def _delimiter_for(path: str, delimiter: str | None) -> str:
    if delimiter is None:
        return "\t" if split_suffix(path)[0] == ".tsv" else ","
    if len(delimiter) != 1 or delimiter in "\"\r\n":
        raise DataError(f"delimiter must be one character other than a quote or a line "
                        f"break; got {delimiter!r}")
    return delimiter


def read_layout(path: str, delimiter: str | None = None, header: bool = True) -> CsvLayout:
    """Judge the file's first line: a header, scikit-learn's format, or data."""
    delim = _delimiter_for(path, delimiter)
    head = _read_head(path, delim)
    if not head.records:
        raise DataError(f"data file {path!r} is empty (no header row)" if header
                        else f"data file {path!r} has no data rows")
    first_line, first = head.records[0]
    if header and len(head.records) < 2:
        raise DataError(f"data file {path!r} has a header row but no data rows")
    data_line, data_row = head.records[1] if header else head.records[0]
    n_columns = len(data_row)
    other = _splits_on(first, len(first), delim)
    if other is not None and _splits_on(data_row, n_columns, delim) == other:
        shown = "' '" if other == " " else repr(other)
        raise DataError(f"data file {path!r} has a single column when split on {delim!r}, "
                        f"but its lines split on {shown}; pass --delimiter {shown} "
                        f"(delimiter={other!r})")
    scikit_learn = None
    if not header:
        names = [f"x{i + 1}" for i in range(n_columns)]
    else:
        cells = [cell.strip() for cell in first]
        scikit_learn = _scikit_learn_header(cells, n_columns)
        if scikit_learn is not None:
            names = [f"x{i + 1}" for i in range(n_columns - 1)] + ["target"]
        else:
            names = _header_names(path, cells, first_line, n_columns, data_line)
    estimate = None
    if head.bytes_per_line is not None and split_suffix(path)[1] is None:
        estimate = math.ceil(os.path.getsize(path) / head.bytes_per_line * 1.05) + 1
    return CsvLayout(
        path, delim, names, first_line if header else 0, first_line if header else None,
        header and scikit_learn is None and (not first[0].strip()
                                             or bool(_UNNAMED.fullmatch(first[0].strip()))),
        scikit_learn, estimate, head.bytes_per_line)


def _header_names(path: str, cells: list[str], line: int, n_columns: int,
                  data_line: int) -> list[str]:
    if all(NUMBER.fullmatch(cell) or NON_FINITE.fullmatch(cell) for cell in cells):
        shown = ",".join(cells[:6]) + (",..." if len(cells) > 6 else "")
        raise DataError(
            f"data file {path!r}: its first line ({shown}) holds only numbers, so it looks "
            "like data, not a header; if the file has no header row, pass --no-header "
            f"(header=False): the columns are then named x1..x{n_columns}, the target is "
            "the last unless --target names another")
    if len(cells) != n_columns:
        raise DataError(
            f"{path}, line {data_line}: {n_columns} cells but the header has {len(cells)} "
            f"columns (ragged rows); if line {line} is not a header, pass --no-header")
    names = [cell or f"x{i + 1}" for i, cell in enumerate(cells)]
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    repeated = [name for name, count in seen.items() if count > 1]
    if repeated:
        raise DataError(f"data file {path!r} has more than one column named "
                        f"{', '.join(map(repr, repeated))}; column names must be unique")
    return names


# --------------------------------------------------------------------------- columns
@dataclass(frozen=True)
class _Columns:
    features: list[int]  # columns read as features (the index candidate first, if any)
    target: int | None
    ignored: list[str]


def _named_columns(features: Sequence[str], names: Sequence[str], path: str) -> list[int]:
    """Indices of the columns named ``features``, in that order."""
    missing = [name for name in features if name not in names]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise MissingColumnsError(
            f"data file {path!r} lacks the model's feature column{plural} "
            f"{', '.join(map(repr, missing))} (its columns are: {', '.join(map(repr, names))})",
            missing,
        )
    return [list(names).index(name) for name in features]


def _choose_columns(layout: CsvLayout, target: str | int | None, n_features: int | None,
                    features: Sequence[str] | None) -> _Columns:
    names, path = layout.names, layout.path
    named_but_absent = (
        isinstance(target, str) and target not in names and not target.lstrip("-").isdigit()
    )
    wanted = None if features is None else _named_columns(features, names, path)
    target_index: int | None
    if wanted is not None and target is None:
        # for prediction no target; else the default, the last column, unless it is a
        # feature asked for
        last = len(names) - 1
        target_index = None if n_features is not None or last in wanted else last
    elif n_features is not None and (
        (target is None and len(names) == n_features) or named_but_absent
    ):
        target_index = None  # features only (predict): the target column is not there
    else:
        target_index = resolve_column(target, names, f"{path!r}")
    if wanted is not None and target_index in wanted:
        raise DataError(f"column {names[target_index]!r} of {path!r} cannot be both the "
                        "target and a feature of the model")
    columns = (wanted if wanted is not None
               else [i for i in range(len(names)) if i != target_index])
    ignored = [] if wanted is None else [
        names[i] for i in range(len(names)) if i not in wanted and i != target_index]
    if not columns:
        raise DataError(
            f"data file {path!r} has no feature columns besides the target (a CSV needs "
            "delimited columns: features and a target)"
        )
    return _Columns(columns, target_index, ignored)


# --------------------------------------------------------------------------- reading
class _Buffers:
    """The buffers pieces of text are read into, each used again once its piece is
    parsed (:meth:`give`): fresh memory for every piece cost a page fault per 4 KiB
    (10^6 x 20 numbers, 423 MB of text: 1.05-1.46 s against 0.86-0.96 s in buffers used
    again), and the C heap kept some 15 freed pieces' worth. They are memory pyarrow owns
    (its system pool): no Python ``bytes`` is handed to pyarrow. A reader can drop its
    last hold on its input on one of pyarrow's threads after ``read_csv`` has returned;
    releasing a Python object there needs the GIL, and in a process that is exiting
    meanwhile the thread aborts it ("terminate called without an active exception", exit
    -6: 3 of 180 ``xpnet predict`` runs on two busy cores, after the output was written).
    Memory pyarrow owns is released without the GIL."""

    def __init__(self) -> None:
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def take(self, size: int) -> Any:
        """A buffer of at least ``size`` bytes (its contents: anything); a new one has a
        quarter more, for the next piece's share of a line the last one cut."""
        with contextlib.suppress(queue.Empty):
            buffer = self._free.get_nowait()
            if buffer.size >= size:
                return buffer
        pa = _pyarrow()[0]
        return pa.allocate_buffer(size + size // 4, memory_pool=pa.system_memory_pool())

    def give(self, buffer: Any) -> None:
        """``buffer`` is read no more: :meth:`take` may hand it out again."""
        self._free.put(buffer)


def _pieces(source: Any, size: int, skip_rows: int,
            buffers: _Buffers) -> Iterator[tuple[Any, int, int]]:
    """The stream's bytes in pieces of whole lines, about ``size`` bytes each: a buffer
    from ``buffers``, the length of the piece at its start, and the lines to skip there
    (``skip_rows`` for the first, then 0). A line longer than ``size`` makes its piece
    longer; the last piece may lack a final line break. The stream is closed at the
    end; the consumer gives each buffer back once it has parsed the piece."""
    carry = b""  # the start of a line the last piece did not end
    more = size  # text to read for this piece: doubled while no line ends in it
    with source:
        while True:
            capacity = len(carry) + more
            buffer = buffers.take(capacity)
            view = memoryview(buffer).cast("B")[:capacity]
            view[:len(carry)] = carry
            filled = len(carry)
            while filled < capacity:
                n = source.readinto(view[filled:])
                if not n:
                    break
                filled += n
            if filled < capacity:  # the end of the stream
                if filled:
                    yield buffer, filled, skip_rows
                return
            cut = _after_last_line_break(view) if skip_rows == 0 else (
                _after_line(view, skip_rows))
            if cut == 0:  # no whole line yet, or not past the header: read on
                carry, more = bytes(view), more * 2
                buffers.give(buffer)
                continue
            carry, more = bytes(view[cut:]), size
            yield buffer, cut, skip_rows
            skip_rows = 0


def _after_last_line_break(view: memoryview) -> int:
    """Where the text after its last line break starts (0: it has none)."""
    tail = 1 << 12
    while True:
        start = max(0, len(view) - tail)
        found = bytes(view[start:]).rfind(b"\n")
        if found >= 0 or start == 0:
            return start + found + 1
        tail *= 16


def _after_line(view: memoryview, lines: int) -> int:
    """:func:`_after_last_line_break` if the text holds ``lines`` line breaks, else 0."""
    text = bytes(view)
    return text.rfind(b"\n") + 1 if text.count(b"\n") >= lines else 0


def _in_order(function: Any, items: Iterator[Any], workers: int) -> Iterator[Any]:
    """``function(*item)`` for each item, on ``workers`` threads at once, in order. At
    most ``workers + 1`` items are taken ahead of the one returned (memory: as many
    pieces); a consumer that stops early cancels the rest and waits for the running."""
    if workers <= 1:
        for item in items:
            yield function(*item)
        return
    pending: collections.deque[Any] = collections.deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="xpnet-csv") as pool:
        try:
            for item in items:
                pending.append(pool.submit(function, *item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


@dataclass
class CsvBlock:
    X: np.ndarray  # (rows, n_features) float64, finite
    y: Any  # the target's cells (float64, or text as read), or None
    first_row: int  # data rows before this block


@dataclass
class CsvData:
    """A whole CSV: what :func:`xpnet.data.load_file` turns into a ``Dataset``."""

    X: np.ndarray
    y: np.ndarray | None
    y_text: np.ndarray | None
    feature_names: list[str]
    target_name: str | None
    ignored_columns: list[str]
    notes: list[str] = field(default_factory=list)


class CsvReader:
    """One delimited file, read block by block (:meth:`blocks`) or whole (:meth:`read`).

    ``feature_columns`` are final once the first block is read (a row index found there
    is dropped from them); ``notes`` say what was decided on the user's behalf.
    """

    def __init__(self, path: str, target: str | int | None = None,
                 n_features: int | None = None, features: Sequence[str] | None = None,
                 *, delimiter: str | None = None, header: bool = True) -> None:
        _pyarrow()
        self.layout = read_layout(path, delimiter, header)
        self._columns = _choose_columns(self.layout, target, n_features, features)
        self.feature_columns = list(self._columns.features)
        self.target_column = self._columns.target
        self.notes: list[str] = []
        # the unnamed first column: "pending" until the first block shows whether it is a
        # row index ("index": dropped, then checked in every block) or a "feature"
        self._index = ("pending" if self.layout.index_candidate and features is None
                       and self.feature_columns[0] == 0 else "feature")
        self._next_index = 0.0

    @property
    def path(self) -> str:
        return self.layout.path

    @property
    def feature_names(self) -> list[str]:
        return [self.layout.names[i] for i in self.feature_columns]

    @property
    def target_name(self) -> str | None:
        return None if self.target_column is None else self.layout.names[self.target_column]

    @property
    def ignored_columns(self) -> list[str]:
        return self._columns.ignored

    def bytes_per_row(self) -> int:
        """float64 features plus about 16 bytes of target text per row (an estimate)."""
        return 8 * len(self._columns.features) + (16 if self.target_column is not None else 0)

    # .................................................................. blocks
    def blocks(self, block_bytes: int | None = None,
               target_text: bool = True) -> Iterator[CsvBlock]:
        """The data rows in blocks of whole lines, read in pieces of about
        ``block_bytes`` of text (default: :data:`PARSE_BYTES`, or
        :attr:`CsvLayout.block_bytes` if more), each piece parsed in blocks of that
        default size.

        ``target_text``: the target's cells as read (strings, for :meth:`target_values`);
        ``False`` reads them as float64, and a cell that is not a number then raises
        ``_TargetIsText`` (:meth:`read` starts again, reading it as text).
        """
        self.target_is_text = target_text or self.target_column is None
        pa, pacsv = _pyarrow()
        names = [f"c{i}" for i in range(self.layout.n_columns)]
        types = {names[i]: pa.float64() for i in self._columns.features}
        if self.target_column is not None:
            types[names[self.target_column]] = (pa.string() if self.target_is_text
                                                else pa.float64())
        parse_options = pacsv.ParseOptions(delimiter=self.layout.delimiter)
        convert = pacsv.ConvertOptions(column_types=types, include_columns=list(types),
                                       null_values=[""], strings_can_be_null=True,
                                       quoted_strings_can_be_null=True)
        parse_bytes = max(PARSE_BYTES, self.layout.block_bytes)
        piece = block_bytes or parse_bytes
        buffers = _Buffers()

        def parse(text: Any, length: int, skip: int) -> list[tuple[np.ndarray, Any]]:
            read = pacsv.ReadOptions(skip_rows=skip, column_names=names,
                                     block_size=parse_bytes,
                                     use_threads=False)
            try:  # the system allocator: it hands freed blocks back (pyarrow's default
                # pool held 2x more memory on 10^5 x 20 numbers)
                table = pacsv.read_csv(pa.BufferReader(text.slice(0, length)),
                                       read_options=read, parse_options=parse_options,
                                       convert_options=convert,
                                       memory_pool=pa.system_memory_pool())
            finally:
                buffers.give(text)
            return [part for part in map(self._converted, table.to_batches())
                    if part[0].shape[0]]

        rows = 0
        pieces = _pieces(_arrow_source(self.path), piece, self.layout.skip_rows, buffers)
        try:  # the cores this process may use (once per read): one piece on each
            for parts in _in_order(parse, pieces, _workers()):
                for X, y in parts:
                    block = CsvBlock(self._drop_index(X, rows) if self._index != "feature"
                                     else X, y, rows)
                    rows += X.shape[0]
                    yield block
        except _BadCell:
            self._diagnose(None)
        except pa.ArrowInvalid as exc:
            if not self.target_is_text and self._is_target_error(exc):
                raise _TargetIsText() from None
            self._diagnose(exc)
        except (pa.ArrowException, OSError, EOFError, lzma.LZMAError) as exc:
            self._diagnose(exc)

    def _is_target_error(self, error: BaseException) -> bool:
        """Whether pyarrow could not read a target cell as a number."""
        match = re.search(r"In CSV column #(\d+):", str(error))
        return match is not None and int(match.group(1)) == self.target_column

    def _converted(self, batch: Any) -> tuple[np.ndarray, Any]:
        """One batch as a float64 block and the target's cells, every cell checked (a
        row of empty cells skipped; :class:`_BadCell` for any other empty or non-finite
        cell). Runs on the reader's threads: it reads nothing the reader changes.

        The batch's columns come by position: the features in order, then the target
        (``include_columns``); a numeric target rides in the block until split off."""
        pa = _pyarrow()[0]
        n_features = len(self._columns.features)
        text = self.target_column is not None and self.target_is_text
        target = batch.column(n_features) if text else None
        numbers = batch.select(range(n_features)) if text else batch
        block = nonempty = None
        if target is None or not target.null_count:
            # every row side by side in one C++ call (no Python object per column);
            # refused for an empty cell, and missing before pyarrow 16
            with contextlib.suppress(AttributeError, TypeError, pa.ArrowException):
                block = np.asarray(numbers.to_tensor(memory_pool=pa.system_memory_pool()))
        if block is None:
            block, nonempty = self._present(batch.columns, numbers.num_columns)
        if not np.isfinite(block).all():
            raise _BadCell()
        y = None
        if target is not None:
            y = np.array(target.to_pylist(), dtype=object)
            y = y if nonempty is None else y[nonempty]
        elif self.target_column is not None:
            block, y = block[:, :-1], block[:, -1].copy()
        return block, y

    def _present(self, columns: list[Any], count: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The first ``count`` columns side by side, without the rows whose every cell
        is empty (and which rows those were); any other empty cell is an error."""
        block = np.stack([_floats(column) for column in columns[:count]], axis=1)
        if not any(column.null_count for column in columns):
            return block, None
        present = [_validity(column) for column in columns]
        nonempty = np.logical_or.reduce(present)  # a row of delimiters only: skipped
        if not all(p[nonempty].all() for p in present):
            raise _BadCell()
        return block[nonempty], nonempty

    def _reset_index(self) -> None:
        if self._index == "index":
            self._index = "pending"
            self.feature_columns = list(self._columns.features)
            self.notes.clear()

    def _drop_index(self, X: np.ndarray, rows: int) -> np.ndarray:
        """Judge (on the first :data:`BLOCK_ROWS` rows) and then check (every row) the
        unnamed first column as a row index: one that counts at first and stops later
        is an error, not a feature, however the file falls into blocks."""
        values = X[:, 0]
        if self._index == "pending":
            start, judged = values[0], values[:BLOCK_ROWS]
            if start not in (0.0, 1.0) or not np.array_equal(
                    judged, np.arange(start, start + judged.size)):
                self._index = "feature"  # a feature like any other, named x1
                return X
            if X.shape[1] == 1:
                raise DataError(f"data file {self.path!r} has no feature columns besides "
                                "the target and an unnamed row index (column 1)")
            self._index = "index"
            self.feature_columns = self.feature_columns[1:]
            self._next_index = float(start)
            self.notes.append(f"ignoring column 1 of {self.path}, an unnamed row index "
                              f"({int(start)}, {int(start) + 1}, {int(start) + 2}, ...)")
        expected = np.arange(self._next_index, self._next_index + values.size)
        if not np.array_equal(values, expected):
            bad = int(np.flatnonzero(values != expected)[0])
            line = self._line_of_row(rows + bad)
            raise DataError(
                f"{self.path}, line {line}: column 1 has no name and counted the rows up to "
                f"here ({int(self._next_index)}, ...) but holds {values[bad]:.6g}; it was "
                "taken for a row index (pandas' to_csv writes one); give it a name in the "
                "header to use it as a feature, or drop it")
        self._next_index += values.size
        return X[:, 1:]

    # .................................................................. whole file
    def read(self, keep_target_text: bool = False) -> CsvData:
        """The whole file, within the data memory limit."""
        self._check_memory(self.layout.estimated_rows or 0)
        try:  # the target as numbers first: no strings for a numeric target
            X, targets = self._gather(keep_target_text)
        except _TargetIsText:  # a label: start again, reading the target as text
            X, targets = self._gather(True)
        y = y_text = None
        if self.target_column is not None:
            y, y_text = self._target(np.concatenate(targets), keep_target_text)
        self.check_row_count(X.shape[0])
        return CsvData(X, y, y_text, self.feature_names, self.target_name,
                       self.ignored_columns, list(self.notes))

    def _gather(self, target_text: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        """Every block in one float64 array grown in place (no second copy)."""
        out: np.ndarray | None = None
        rows = 0
        targets: list[np.ndarray] = []
        self._reset_index()
        result = (self.layout.estimated_rows or 0) * self.bytes_per_row()
        # pieces of PIECE_BYTES; for a smaller result, of less: some 2 pieces' text and
        # numbers are held per piece in flight (the workers' and two more), which must
        # stay well under the result (2·10^5 x 21 numbers, 2 workers: pieces of 1 MiB
        # grew the peak by 48 MiB with the 32 MiB result, of 2 MiB by 64-68)
        wide = int(PIECE_ROWS * (self.layout.bytes_per_line or 0))
        in_flight = _workers() + 2
        size = max(self.layout.block_bytes,
                   min(max(PIECE_BYTES, wide), result // (8 * in_flight)))
        for block in self.blocks(size, target_text):
            n = block.X.shape[0]
            if out is None:
                out = np.empty((max(self.layout.estimated_rows or 0, n), block.X.shape[1]))
            if rows + n > out.shape[0]:
                capacity = max(rows + n, out.shape[0] * 3 // 2)
                self._check_memory(capacity)
                out.resize((capacity, out.shape[1]), refcheck=False)
            out[rows:rows + n] = block.X
            rows += n
            if block.y is not None:
                targets.append(block.y)
        if out is None:
            raise DataError(f"data file {self.path!r} has a header row but no data rows"
                            if self.layout.header_line is not None
                            else f"data file {self.path!r} has no data rows")
        out.resize((rows, out.shape[1]), refcheck=False)
        return out, targets

    def _target(self, cells: np.ndarray, as_text: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The target and, when read as text and asked for, its stripped cells."""
        text = np.char.strip(cells.astype(str), CSV_SPACE) if self.target_is_text else None
        return self.target_values(cells if text is None else text), text if as_text else None

    def _check_memory(self, rows: int) -> None:
        check_data_memory(self.path, rows * self.bytes_per_row(), "its data (as float64)")

    def target_values(self, cells: np.ndarray, first_row: int = 0) -> np.ndarray:
        """A block's target (rows from ``first_row`` on) as read: numbers, checked, or
        text cells: numbers when every one is a number, else the labels (stripped)."""
        if cells.dtype.kind == "f":
            return self._numbers(cells, first_row)
        text = np.char.strip(cells.astype(str), CSV_SPACE)
        if not all(_NUMERIC.fullmatch(cell) for cell in text.tolist()):
            if self.layout.scikit_learn is not None:
                raise DataError(f"data file {self.path!r}: scikit-learn's format needs an "
                                "integer target (the class index)")
            return text  # class labels such as "setosa" (or "1_000")
        return self._numbers(text.astype(np.float64), first_row)

    def _numbers(self, y: np.ndarray, first_row: int) -> np.ndarray:
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            line = self._line_of_row(first_row + int(bad[0]))
            raise DataError(f"{self.path}, line {line}, target column {self.target_name!r}: "
                            "value is NaN or infinite")
        if self.layout.scikit_learn is not None and self.layout.scikit_learn.class_names:
            return self._class_names(y, first_row)
        return y

    def _class_names(self, y: np.ndarray, first_row: int) -> np.ndarray:
        """scikit-learn's integer classes as the names its header lists."""
        assert self.layout.scikit_learn is not None
        names = np.asarray(self.layout.scikit_learn.class_names, dtype=str)
        valid = (y == np.round(y)) & (y >= 0) & (y < names.size)
        if not valid.all():
            bad = int(np.flatnonzero(~valid)[0])
            line = self._line_of_row(first_row + bad)
            raise DataError(
                f"{self.path}, line {line}: target {y[bad]:.6g} is not a class index "
                f"0..{names.size - 1} of the header's class names "
                f"({', '.join(names)}) in scikit-learn's CSV format")
        return names[y.astype(np.int64)]

    def check_row_count(self, rows: int) -> None:
        """After the last block: the row count scikit-learn's header announced."""
        header = self.layout.scikit_learn
        if header is not None and header.n_samples != rows:
            raise DataError(
                f"data file {self.path!r}: its first line looks like scikit-learn's CSV "
                f"header ({header.n_samples} rows, {header.n_features} features) but the "
                f"file has {rows} data rows; fix the counts, or replace the line with "
                "column names")

    # .................................................................. errors
    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """The data records with their line numbers, as Python's ``csv`` reads them."""
        with open_binary(self.path) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, delimiter=self.layout.delimiter)
            for row in reader:
                if reader.line_num > self.layout.skip_rows and row and any(
                        cell.strip(CSV_SPACE) for cell in row):
                    yield reader.line_num, row

    def where(self, row: int) -> str:
        """``"data.csv, line 7"``: where data row ``row`` (from 0) stands in the file."""
        return f"{self.path}, line {self._line_of_row(row)}"

    def _line_of_row(self, row: int) -> int:
        for k, (line, _) in enumerate(self._records()):
            if k == row:
                return line
        return -1  # unreachable for a row pyarrow read

    def _check_target_cell(self, cell: str, line: int) -> None:
        text = cell.strip(CSV_SPACE)
        where = (f"{self.path}, line {line}, target column "
                 f"{column_name(self.layout.names[self.target_column or 0])!r}")
        if not text:
            raise DataError(f"{where}: empty cell")
        if self.target_is_text:
            return  # labels or numbers: judged once the whole column is read
        if NON_FINITE.fullmatch(text) or (NUMBER.fullmatch(text)
                                          and not math.isfinite(float(text))):
            raise DataError(f"{where}: value {text!r} is NaN or infinite")

    def _diagnose(self, error: BaseException | None) -> NoReturn:
        """Name the first bad line and cell (pyarrow's messages name neither)."""
        n = self.layout.n_columns
        what = "the header has" if self.layout.header_line is not None else "line 1 has"
        header = self.layout.names
        try:
            for line, row in self._records():
                if len(row) != n:
                    raise DataError(f"{self.path}, line {line}: {len(row)} cells but {what} "
                                    f"{n} columns (ragged rows)")
                for c in self._columns.features:
                    parse_float(row[c], f"{self.path}, line {line}, column "
                                        f"{column_name(header[c])!r}")
                if self.target_column is not None:
                    self._check_target_cell(row[self.target_column], line)
        except UnicodeDecodeError:
            raise DataError(f"data file {self.path!r} is not a UTF-8 text (CSV) file") from None
        except csv.Error as exc:
            raise DataError(f"data file {self.path!r} is not valid CSV ({exc})") from None
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise DataError(f"data file {self.path!r} cannot be read ({exc})") from None
        detail = str(error).splitlines()[0] if error is not None else "unknown problem"
        raise DataError(f"data file {self.path!r} cannot be read as CSV ({detail})")


def read_csv(path: str, target: str | int | None = None, n_features: int | None = None,
             features: Sequence[str] | None = None, *, delimiter: str | None = None,
             header: bool = True, keep_target_text: bool = False) -> CsvData:
    """A whole delimited file (see :class:`CsvReader` and :func:`xpnet.data.load_file`)."""
    reader = CsvReader(path, target, n_features, features, delimiter=delimiter,
                       header=header)
    return reader.read(keep_target_text)
