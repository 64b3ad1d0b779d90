"""Every file xpnet writes goes through here: atomically, and never onto what it must not.

``atomic_write(path)`` writes into a temporary file in the target's own folder, named
``.xpnet-<16 hex digits>.tmp``, flushes and fsyncs it, renames it over the target
(``os.replace``, atomic on POSIX and Windows) and fsyncs the folder, so a crash, a full
disk or a kill at any moment leaves either the old file or the new one, never half of
one. The rules it enforces:

- the path must not be empty;
- an existing target must be a regular file: a directory, FIFO, socket or device
  (``/dev/null``, ``/dev/full``) is refused before anything is written, since renaming
  over it would replace the node itself;
- a symbolic link is written *through*: the file it points to is replaced atomically
  and the link is kept; a link to nothing (dangling) is refused;
- a new file gets the mode the umask gives (``0o666 & ~umask``); a replaced file keeps
  its mode (and, where permitted, its owner and group);
- every ``OSError`` is re-raised naming the path the caller gave;
- the temporary file is removed on any exception, ``KeyboardInterrupt`` and
  ``SystemExit`` included.

A process killed with SIGKILL cannot clean up. So each write first removes, from the
folder it writes into, regular files named by xpnet's temporary pattern that have not
been modified for :data:`STALE_AFTER_SECONDS`, and the half-written models that earlier
versions left as ``.xpnet-XXXXXXXX.npz`` (only when cut short: see
:func:`_is_legacy_leftover`); no other file is ever touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from typing import IO, Any

from ._npyfile import file_kind

__all__ = [
    "STALE_AFTER_SECONDS",
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "UnsafeOutputError",
    "atomic_write",
    "check_output_path",
    "is_temp_name",
    "remove_stale_temp_files",
]

TEMP_PREFIX = ".xpnet-"
TEMP_SUFFIX = ".tmp"
# A temporary file untouched for this long belongs to a writer that died (a live writer
# keeps modifying it): 10 minutes is far longer than any save takes.
STALE_AFTER_SECONDS = 600.0

_TEMP_NAME = re.compile(r"\.xpnet-[0-9a-f]{16}\.tmp")
# tempfile.mkstemp(prefix=".xpnet-", suffix=".npz") names, used by xpnet.save before
# atomic_write existed: 8 characters of mkstemp's alphabet.
_LEGACY_TEMP_NAME = re.compile(r"\.xpnet-[a-z0-9_]{8}\.npz")


class UnsafeOutputError(OSError):
    """An output path xpnet refuses: empty, not a regular file, a dangling link, no folder.

    Its message names the path; ``errno`` and ``filename`` are set as for any ``OSError``,
    and ``problem`` is the message without the path.
    """

    problem: str = ""

    def __str__(self) -> str:
        return str(self.strerror)


def _refuse(path: str, problem: str, code: int = errno.EINVAL) -> UnsafeOutputError:
    exc = UnsafeOutputError(code, f"cannot write {path!r}: {problem}", path)
    exc.problem = problem
    return exc


def check_output_path(path: str | os.PathLike[str]) -> str:
    """The real path that writing ``path`` replaces, or :class:`UnsafeOutputError`.

    Parameters
    ----------
    path : str or os.PathLike
        The file name the caller asked for.

    Returns
    -------
    str
        ``path`` itself, or for a symbolic link the absolute path of the file it points
        to (written through, the link kept).

    Raises
    ------
    UnsafeOutputError
        If ``path`` is empty, exists and is not a regular file (directory, FIFO, socket,
        device), is a link to nothing, or its folder does not exist.
    """
    name = os.fspath(path)
    if not isinstance(name, str):
        name = os.fsdecode(name)
    if not name:
        raise _refuse(name, "the file name is empty", errno.ENOENT)
    try:
        link = os.lstat(name)
    except FileNotFoundError:
        link = None
    except OSError as exc:  # a parent that is a file (ENOTDIR), a link loop (ELOOP), ...
        raise _refuse(name, exc.strerror or str(exc), exc.errno or errno.EINVAL) from None
    descriptor = _descriptor_link(name)
    if descriptor:
        raise _refuse(name, f"it leads to {descriptor!r}, an open file descriptor or process "
                      "file, not a file name; xpnet writes to stdout when no file is given")
    target = name
    if link is not None and stat.S_ISLNK(link.st_mode):
        target = os.path.realpath(name)
        try:
            os.stat(name)
        except FileNotFoundError:
            raise _refuse(name, f"it is a symbolic link to {target!r}, which does not "
                          "exist", errno.ENOENT) from None
        except OSError as exc:
            raise _refuse(name, exc.strerror or str(exc), exc.errno or errno.EINVAL) from None
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _refuse(name, exc.strerror or str(exc), exc.errno or errno.EINVAL) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        code = errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL
        where = "" if target == name else f" (the link points to {target!r})"
        raise _refuse(name, f"it is {file_kind(st.st_mode)}{where}, not a regular file; xpnet "
                      "only replaces regular files", code)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise _refuse(name, f"folder {folder!r} does not exist", errno.ENOENT)
    if not os.access(folder, os.W_OK):
        raise _refuse(name, f"folder {folder!r} is not writable", errno.EACCES)
    return target


def _descriptor_link(name: str) -> str:
    """The hop of ``name``'s link chain inside ``/proc`` (``/dev/stdout`` leads to
    ``/proc/self/fd/1``, ``/dev/fd/1`` lies there), or "". Writing through such a link
    would replace whatever file the descriptor happens to be open on (a shell's
    redirection target, a log), so these are refused whatever they point to."""
    hop = os.path.abspath(name)
    for _ in range(40):  # the kernel's own limit on links followed
        parent = os.path.realpath(os.path.dirname(hop))
        if parent == "/proc" or parent.startswith("/proc/"):
            return hop
        if not os.path.islink(hop):
            return ""
        try:
            hop = os.path.join(os.path.dirname(hop), os.readlink(hop))
        except OSError:
            return ""
        hop = os.path.abspath(hop)
    return ""


def is_temp_name(name: str) -> bool:
    """Whether ``name`` (a bare file name) is xpnet's temporary-file name."""
    return bool(_TEMP_NAME.fullmatch(name))


def _is_legacy_leftover(path: str) -> bool:
    """A half-written model of an earlier xpnet: ``.xpnet-XXXXXXXX.npz`` could also be a
    user's name (``.xpnet-settings.npz``), so the content must say so too: a zip archive
    whose first member is ``W1.npy`` (``save`` writes W1 first) and which is cut short
    (no central directory: not a complete zip file, so never a model someone kept)."""
    import struct
    import zipfile

    try:
        with open(path, "rb") as handle:
            head = handle.read(30 + len(b"W1.npy"))
        if len(head) < 36 or head[:4] != b"PK\x03\x04":
            return False
        (name_length,) = struct.unpack("<H", head[26:28])
        return head[30:30 + name_length] == b"W1.npy" and not zipfile.is_zipfile(path)
    except OSError:
        return False


def remove_stale_temp_files(folder: str | os.PathLike[str],
                            older_than: float = STALE_AFTER_SECONDS) -> list[str]:
    """Remove xpnet's own temporary files in ``folder`` not modified for ``older_than`` s.

    Only regular files whose names match xpnet's temporary pattern are considered (never a
    link, never another name); errors (a file gone meanwhile, a read-only folder) are
    ignored, since clean-up must never stop a write.

    Returns
    -------
    list of str
        The names removed.
    """
    removed: list[str] = []
    limit = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        legacy = bool(_LEGACY_TEMP_NAME.fullmatch(entry.name))
        if not (is_temp_name(entry.name) or legacy):
            continue
        try:
            if (entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_mtime < limit
                    and (not legacy or _is_legacy_leftover(entry.path))):
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            continue
    return removed


def _named(exc: OSError, path: str, temp: str) -> OSError:
    """``exc`` naming ``path`` (the caller's name) instead of nothing or the temp file."""
    if isinstance(exc, UnsafeOutputError) or (
            exc.filename is not None and exc.filename not in (temp, path)):
        return exc
    if exc.errno is None:
        return OSError(f"{path}: {exc}")
    return type(exc)(exc.errno, exc.strerror, path)


def _temp_name(folder: str) -> str:
    """A fresh name of xpnet's temp pattern in ``folder`` (64 random bits)."""
    return os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}")


def _fsync_folder(folder: str) -> None:
    """Make the rename durable; not every system can open or fsync a folder: then skip."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", *,
                 encoding: str | None = None, newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the block ends without error.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (see the module docstring for what is refused).
    mode : {"wb", "w"}
        Binary or text.
    encoding, newline : str, optional
        As for :func:`open`, text mode only (``encoding`` defaults to UTF-8).

    Yields
    ------
    file object
        Write to it; do not close it.

    Raises
    ------
    UnsafeOutputError
        Before anything is written, if ``path`` may not be written (see
        :func:`check_output_path`).
    OSError
        Any I/O error, naming ``path``; the target is then unchanged and the temporary
        file removed.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w'; got {mode!r}")
    name = os.fspath(path)
    if not isinstance(name, str):
        name = os.fsdecode(name)
    target = check_output_path(name)
    folder = os.path.dirname(os.path.abspath(target))
    remove_stale_temp_files(folder)
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise _named(exc, name, "") from None
    temp = ""
    handle: IO[Any] | None = None
    try:
        # The name is recorded *before* the file is created, so that a signal handled
        # right after the file exists (SIGTERM raises there) still finds it to remove.
        # No bare descriptor is ever held: ``open`` returns the file object that owns it,
        # so an exception raised between the call's return and the assignment (where
        # Python runs signal handlers) lets that object close its descriptor once, and
        # nothing here closes the same number again (a second close would fail with
        # EBADF, or close a descriptor some other code has just been given).
        create_mode = 0o600 if old is not None else 0o666

        def opener(file: str, flags: int) -> int:
            # A file being replaced may be private: its temp starts private too and gets
            # the old file's mode before any byte is written. A new file is created with
            # 0o666 so that the umask decides, as for any program's output.
            return os.open(file, flags | getattr(os, "O_BINARY", 0), create_mode)

        while True:
            temp = _temp_name(folder)
            try:
                # "x": O_CREAT | O_EXCL, so a name that exists is never opened.
                if mode == "w":
                    handle = open(temp, "x", encoding=encoding or "utf-8",  # noqa: SIM115
                                  newline=newline, opener=opener)
                else:
                    handle = open(temp, "xb", opener=opener)  # noqa: SIM115
                break
            except FileExistsError:  # someone else's file (practically never): not ours
                temp = ""
        if old is not None:
            mine = os.fstat(handle.fileno())
            if hasattr(os, "chown") and (old.st_uid, old.st_gid) != (mine.st_uid,
                                                                      mine.st_gid):
                with contextlib.suppress(OSError):  # only root may give files away
                    os.chown(temp, old.st_uid, old.st_gid)
            os.chmod(temp, stat.S_IMODE(old.st_mode))  # after chown, which clears set-id bits
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(temp, target)
        temp = ""
        _fsync_folder(folder)
    except OSError as exc:
        raise _named(exc, name, temp) from exc
    finally:
        if handle is not None and not handle.closed:
            with contextlib.suppress(OSError):
                handle.close()
        if temp:
            with contextlib.suppress(OSError):
                os.unlink(temp)
