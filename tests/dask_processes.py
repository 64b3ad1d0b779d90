"""A Dask cluster of real processes for the CLI tests: ``dask scheduler`` and ``dask
worker`` started separately on 127.0.0.1, each in its own process group (so that a test
can kill one of them, and the teardown all of them, with their children)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

DASK = os.path.join(os.path.dirname(sys.executable), "dask")


@contextlib.contextmanager
def external_cluster(folder: Path, n_workers: int, stop: int = signal.SIGTERM
                     ) -> Iterator[tuple[str, subprocess.Popen, subprocess.Popen]]:
    """``(address, scheduler, worker)``: a scheduler and ``dask worker --nworkers
    n_workers`` (a nanny per worker), running once every worker has joined. On exit each
    process group gets ``stop`` (SIGKILL where it has not ended 20 s later)."""
    file = folder / "scheduler.json"
    common = {"cwd": folder, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
              "start_new_session": True}
    procs = [subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(file)], **common)]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the scheduler's file, with a deadline
        address = json.loads(file.read_text())["address"]
        procs.append(subprocess.Popen(
            [DASK, "worker", address, "--nworkers", str(n_workers), "--nthreads", "1",
             "--host", "127.0.0.1", "--no-dashboard"], **common))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(n_workers, timeout=60)
        yield address, procs[0], procs[1]
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, stop)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
