"""Press Ctrl-C (a real SIGINT) at ``xpnet train`` once its output shows it is ready."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

EPOCH_LINE = re.compile(r"^xpnet: epoch (\d+)/\d+ loss ")


def train_with_sigint(tmp_path: Path, args: list[str], presses: int, after_epoch: int = 1):
    """Run ``xpnet train ARGS --log-every 1`` and press Ctrl-C (a real SIGINT) ``presses``
    times once epoch ``after_epoch`` is reported on stderr; return (exit status, stdout,
    stderr without the epoch lines).

    Readiness is observed, not guessed: ``--log-every`` writes ``xpnet: epoch E/N loss L``
    after each epoch, so the first press is sent once that many epochs are complete,
    however slow the machine. The second press is sent once the first one's message is
    seen (two signals arriving during one long BLAS call coalesce into one, as they would
    for a user).
    """
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("XPNET_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "xpnet", "train", *args, "--log-every", "1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    out: list[str] = []
    err: list[str] = []

    def read(stream, into: list[str], lines: queue.Queue[str] | None) -> None:
        for line in stream:
            into.append(line)
            if lines is not None:
                lines.put(line)
        if lines is not None:
            lines.put("")  # end of stream

    def next_line() -> str:
        line = lines.get(timeout=300)
        assert line, ("xpnet ended before it was interrupted", proc.wait(), "".join(err))
        return line

    readers = [threading.Thread(target=read, args=(proc.stdout, out, None), daemon=True),
               threading.Thread(target=read, args=(proc.stderr, err, lines), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        while True:
            seen = EPOCH_LINE.match(next_line())
            assert seen, err
            if int(seen.group(1)) >= after_epoch:
                break
        proc.send_signal(signal.SIGINT)
        while EPOCH_LINE.match(first := next_line()):
            pass  # epochs that ended before the handler ran
        assert first.startswith("xpnet: stopping after epoch "), err
        if presses == 2:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
        for reader in readers:
            reader.join(timeout=10)
        told = [line for line in err if not EPOCH_LINE.match(line)]
        return proc.returncode, "".join(out), "".join(told)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
