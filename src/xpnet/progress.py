"""A live training progress bar for terminals (rich when installed, plain text if not).

Used as the ``callback(epoch, loss)`` of :meth:`xpnet.MLP.fit`, which reads the loss back
from the device once per epoch anyway, so the bar adds no host synchronisation. Screen
updates are throttled to about 10 per second.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["EpochProgress"]


class EpochProgress:
    """Context manager and ``fit`` callback showing epoch, loss, elapsed time and rate.

    ``enabled=False`` makes every method a no-op (not a terminal, ``--quiet``, ``--json``).
    """

    def __init__(
        self, epochs: int, enabled: bool = True, stream: TextIO | None = None,
        interval: float = 0.1,
    ) -> None:
        self.epochs = epochs
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self._rich: Any = None
        self._task: Any = None
        self._start = 0.0
        self._last = -1.0

    def __enter__(self) -> EpochProgress:
        if not self.enabled:
            return self
        self._start = time.perf_counter()
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            return self
        self._rich = Progress(
            TextColumn("epoch"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("<"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[rate]} epochs/s"),
            console=Console(file=self.stream),
            transient=True,
            auto_refresh=False,
        )
        self._rich.__enter__()
        self._task = self._rich.add_task("train", total=self.epochs, loss="-", rate="-")
        return self

    def __call__(self, epoch: int, loss: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        done = epoch + 1
        if now - self._last < self.interval and done < self.epochs:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        rate = f"{done / elapsed:,.0f}"
        if self._rich is not None:
            self._rich.update(self._task, completed=done, loss=f"{loss:.5g}", rate=rate)
            self._rich.refresh()
        else:
            width = 30
            filled = int(width * done / self.epochs)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(
                f"\repoch {done}/{self.epochs} [{bar}] loss {loss:.5g}  "
                f"{elapsed:.1f} s  {rate} epochs/s"
            )
            self.stream.flush()

    def __exit__(self, *exc: Any) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.__exit__(*exc)
        else:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()
