"""SIGTERM and a closed stdout pipe: end the way Unix tools do, with nothing left behind.

- SIGTERM (``kill PID``, a batch scheduler, ``docker stop``) raises :class:`Terminated`,
  which unwinds the stack like Ctrl-C does, so every ``finally`` runs and the atomic
  writer removes its temporary file; ``main`` then exits with 128 + 15 = 143. It is a
  ``BaseException`` of its own, not a ``KeyboardInterrupt``, so code that turns a first
  Ctrl-C into "stop after this epoch" does not swallow it.
- A reader that stops early (``xpnet predict ... | head``) closes the pipe; the next write
  raises ``BrokenPipeError``. ``main`` then exits quietly with 128 + 13 = 141, the status
  a shell reports for ``yes | head``, with nothing on stderr.
- Ctrl-C during ``xpnet train`` (here or on a cluster): :class:`StopAfterEpoch` turns the
  first into "stop after this epoch, keep it" and the second into :class:`TrainingAborted`
  (exit 130, nothing written).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any

from ._common import log_epoch

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


class TrainingAborted(BaseException):
    """A second Ctrl-C during training: stop at once and write nothing (exit 130). Not a
    KeyboardInterrupt, which ``fit`` turns into an orderly stop."""


class StopAfterEpoch:
    """While training, the first Ctrl-C (SIGINT) asks ``fit`` to stop after the epoch in
    progress; a second one raises :class:`TrainingAborted`.

    Used as a context manager around ``fit`` (it installs and restores the SIGINT
    handler, in the main thread only) and as its epoch callback: the handler only sets a
    flag, and the callback, which runs once the epoch is complete, raises the
    KeyboardInterrupt that makes ``fit`` return the history marked ``interrupted``. So
    the weights kept are exactly those after a complete epoch. Inside the ``with``,
    ``fit``'s "training interrupted" warning is silenced: ``xpnet train``'s report says
    it was interrupted.
    """

    def __init__(self, progress: Callable[[int, float], Any], newline: bool,
                 log_every: int | None = None, epochs: int = 0) -> None:
        self.progress = progress
        self.newline = newline  # a progress bar is on the terminal: start a fresh line
        self.log_every = log_every  # --log-every: a line on stderr after every N epochs
        self.epochs = epochs
        self.requested = False
        self.epochs_done = 0
        self._previous: Any = None
        self._installed = False
        self._warnings = warnings.catch_warnings()

    def __enter__(self) -> StopAfterEpoch:
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", "training interrupted", UserWarning)
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
        self._warnings.__exit__(*exc)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise TrainingAborted
        self.requested = True
        sys.stderr.write(f"{chr(10) if self.newline else ''}xpnet: stopping after epoch "
                         f"{self.epochs_done + 1}; press Ctrl-C again to abort\n")
        sys.stderr.flush()

    def __call__(self, epoch: int, loss: float) -> None:
        self.epochs_done = epoch + 1
        self.progress(epoch, loss)
        log_epoch(self.log_every, self.epochs_done, self.epochs, loss)
        if self.requested:
            raise KeyboardInterrupt  # fit keeps this complete epoch and returns
