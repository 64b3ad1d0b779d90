"""SIGTERM and a closed stdout pipe: end the way Unix tools do, with nothing left behind.

- SIGTERM (``kill PID``, a batch scheduler, ``docker stop``) raises :class:`Terminated`,
  which unwinds the stack like Ctrl-C does, so every ``finally`` runs and the atomic
  writer removes its temporary file; ``main`` then exits with 128 + 15 = 143. It is a
  ``BaseException`` of its own, not a ``KeyboardInterrupt``, so code that turns a first
  Ctrl-C into "stop after this epoch" does not swallow it.
- A reader that stops early (``xpnet predict ... | head``) closes the pipe; the next write
  raises ``BrokenPipeError``. ``main`` then exits quietly with 128 + 13 = 141, the status
  a shell reports for ``yes | head``, with nothing on stderr.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

EXIT_SIGTERM = 128 + signal.SIGTERM  # 143
EXIT_BROKEN_PIPE = 128 + 13  # 141: 128 + SIGPIPE (not in the signal module on Windows)


class Terminated(BaseException):  # noqa: N818  # named like KeyboardInterrupt, its sibling
    """SIGTERM arrived. Not an ``Exception``: only ``finally`` blocks and ``main`` see it."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # One is enough: a second SIGTERM while the first unwinds must not cut the clean-up
    # (removing a temporary file) short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(f"terminated by signal {signum}")


def install_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into :class:`Terminated`; return the function that restores the old
    handler. Only the main thread may set handlers: elsewhere (``main`` called from a
    thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def silence_stdout() -> None:
    """Point stdout at the null device, so that flushing what is left at exit (Python
    flushes ``sys.stdout`` on the way out) does not raise a second ``BrokenPipeError``."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced or already closed
        pass
