"""Background CPU load for the benchmarks: ``--background-load N`` in run.py and threads.py.

``N`` other processes, each a CPU-bound Python loop (one core each), started before the
timing and stopped after it: "a busy machine", as when a test suite, a compile or another
user's job runs beside the fit. Each process says when it runs (a line on its stdout),
then the load average is waited for until it shows them (the 1-minute average rises
with a time constant of a minute; xpnet's automatic thread count reads it), so every
measurement is taken in the steady loaded state.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

__all__ = ["background_load"]

_SPIN = "import sys\nprint('running', flush=True)\nwhile True:\n    pass\n"


@contextlib.contextmanager
def background_load(n: int, settle_timeout: float = 240.0) -> Iterator[dict[str, object]]:
    """Run ``n`` CPU-bound processes inside the ``with``; yields what was observed (the
    load average once steady, the seconds waited for it)."""
    info: dict[str, object] = {"processes": n}
    if n <= 0:
        yield info
        return
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL) for _ in range(n)]
    try:
        for proc in procs:  # each says it runs before the wait for the load average
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"running":
                raise RuntimeError("a background-load process did not start")
        start = time.monotonic()
        while os.getloadavg()[0] < n - 0.25 and time.monotonic() - start < settle_timeout:
            time.sleep(1.0)  # the kernel updates the average every 5 s
        info["settled_s"] = round(time.monotonic() - start, 1)
        info["loadavg_settled"] = os.getloadavg()
        yield info
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
