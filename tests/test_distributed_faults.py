"""Cluster faults end in bounded time, in one line (issue 16, part 8).

Real ``xpnet train`` processes on real clusters (``dask scheduler`` + ``dask worker``
processes on 127.0.0.1, or the LocalCluster of ``--dask-workers``), whose scheduler and
worker processes are SIGKILLed mid-fit, once the fit reports an epoch (``--log-every 1``:
no guessed sleeps). Each outcome is timed. Before the fix these runs hung in
``Client.gather`` until killed from outside, or ended in ``unexpected
FutureCancelledError ... please report it`` with Dask's tracebacks on stderr.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("distributed", reason='needs dask[distributed]: pip install "xpnet[dask]"')
psutil = pytest.importorskip("psutil")  # a dependency of distributed

from dask_processes import external_cluster  # noqa: E402

import xpnet  # noqa: E402

EPOCH = re.compile(r"^xpnet: epoch (\d+)/\d+ loss ")
# a small fit: 8 chunks, 4 steps an epoch; epochs enough that it cannot end before a kill
TRAIN = ["train", "--dataset", "moons", "--n-samples", "20000", "--chunk-rows", "2500",
         "--batch-size", "5000", "--epochs", "100000", "--log-every", "1", "--save", "m.npz"]
# how long a fault may take to become the error line (detection, plus closing the client)
BOUND = 40.0


class Run:
    """``xpnet ARGS`` in ``cwd``, its stderr read line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path, timeout: float | None = None) -> None:
        env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
        env.pop("XPNET_DEBUG", None)
        if timeout is not None:
            env["XPNET_DASK_TIMEOUT"] = str(timeout)
        self.proc = subprocess.Popen([sys.executable, "-m", "xpnet", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.lines: queue.Queue[str] = queue.Queue()
        self.out = ""
        self.readers = [threading.Thread(target=self._read_err, daemon=True),
                        threading.Thread(target=self._read_out, daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)
        self.lines.put("")

    def _read_out(self) -> None:
        self.out = self.proc.stdout.read()

    def wait_for_epoch(self, epoch: int, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line, f"xpnet ended before epoch {epoch}: {''.join(self.err)}"
            seen = EPOCH.match(line)
            if seen and int(seen.group(1)) >= epoch:
                return

    def finish(self, timeout: float = BOUND) -> tuple[int, float, list[str]]:
        """Exit status, seconds it took from now, stderr without the epoch lines."""
        started = time.monotonic()
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"xpnet still ran {timeout:g} s after the fault: {''.join(self.err)}")
        seconds = time.monotonic() - started
        for reader in self.readers:
            reader.join(timeout=10)
        told = [line.rstrip("\n") for line in self.err if not EPOCH.match(line)]
        return status, seconds, told

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def external(tmp_path):
    """A ``dask scheduler`` and a ``dask worker`` (a nanny and its worker process), each
    in its own process group; ``(address, scheduler, worker)``. Killed whatever happens."""
    with external_cluster(tmp_path, 1, stop=signal.SIGKILL) as started:
        yield started


def _assert_one_line(told: list[str], pattern: str) -> None:
    assert len(told) == 1, told  # no traceback, no Dask log
    assert re.fullmatch(pattern, told[0]), told[0]


def _killed_after_epoch_2(run, process):
    """Kill ``process``'s group once ``run`` has reported epoch 2; its status, seconds and
    stderr lines."""
    try:
        run.wait_for_epoch(2)
        os.killpg(process.pid, signal.SIGKILL)
        return run.finish()
    finally:
        run.kill()


def test_scheduler_killed_mid_fit_is_one_line_soon(external, tmp_path):
    address, scheduler, _ = external
    run = Run([*TRAIN, "--scheduler", address], tmp_path)
    status, seconds, told = _killed_after_epoch_2(run, scheduler)
    _assert_one_line(told, rf"xpnet: error: the Dask scheduler at {re.escape(address)} went "
                           r"away during epoch \d+; nothing was written")
    assert status == 2 and seconds < BOUND
    assert run.out == "" and not (tmp_path / "m.npz").exists()


def test_every_worker_killed_mid_fit_is_one_line_soon(external, tmp_path):
    """The nanny and its worker both killed: the scheduler has no worker left, and the
    fit's tasks would wait for one forever."""
    address, _, worker = external
    run = Run([*TRAIN, "--scheduler", address], tmp_path, timeout=5)
    status, seconds, told = _killed_after_epoch_2(run, worker)
    _assert_one_line(told, rf"xpnet: error: every Dask worker of the scheduler at "
                           rf"{re.escape(address)} went away during epoch \d+, and none came "
                           r"back within \d+ s; nothing was written")
    assert status == 2 and seconds < BOUND
    assert not (tmp_path / "m.npz").exists()


def _worker_processes(pid: int) -> list[Any]:
    """The LocalCluster's worker processes of ``xpnet`` process ``pid`` (its children
    that multiprocessing started)."""
    return [child for child in psutil.Process(pid).children()
            if "spawn_main" in " ".join(child.cmdline())]


def test_local_workers_killed_again_and_again_give_the_undisturbed_model(tmp_path):
    """Both LocalCluster workers SIGKILLed at epochs 2 and 4 (their nannies start new
    ones; the generated chunks are recomputed from their recipe): the same model, bit for
    bit, as an undisturbed run of the same command, in bounded time."""
    args = [*TRAIN[:-6], "--epochs", "6", "--log-every", "1", "--dask-workers", "2"]
    (tmp_path / "calm").mkdir()
    (tmp_path / "hit").mkdir()
    calm = Run([*args, "--save", "m.npz"], tmp_path / "calm")
    hit = Run([*args, "--save", "m.npz"], tmp_path / "hit")
    try:
        killed = 0
        for epoch in (2, 4):
            hit.wait_for_epoch(epoch)
            for worker in _worker_processes(hit.proc.pid):
                worker.kill()
                killed += 1
        status, seconds, told = hit.finish(timeout=120)
        calm_status, _, _ = calm.finish(timeout=120)
    finally:
        hit.kill()
        calm.kill()
    assert killed >= 4
    assert status == 0 and calm_status == 0, told
    assert told == [], told
    a, b = xpnet.load(tmp_path / "calm" / "m.npz"), xpnet.load(tmp_path / "hit" / "m.npz")
    for p, q in zip(a.params, b.params):
        for u, v in zip(p, q):
            assert np.array_equal(xpnet.to_numpy(u), xpnet.to_numpy(v))


def test_scattered_data_lost_with_their_worker_say_so(tmp_path):
    """Data scattered from the driver live only on their worker: once it dies they cannot
    be recomputed, and the fit says so in one line instead of waiting."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from xpnet.distributed._client import ClusterError

    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 4))
    y = (X[:, 0] > 0).astype(float)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        dX = da.concatenate([da.from_delayed(client.scatter(X[i:i + 1000]), (1000, 4), float)
                             for i in range(0, 4000, 1000)])
        dy = da.concatenate([da.from_delayed(client.scatter(y[i:i + 1000]), (1000,), float)
                             for i in range(0, 4000, 1000)])

        def kill_one(epoch, loss):
            if epoch == 1:
                address = sorted(client.scheduler_info()["workers"])[0]
                os.kill(client.run(os.getpid, workers=[address])[address], signal.SIGKILL)

        net = xpnet.MLP([4, 8, 1], output="sigmoid", seed=0)
        started = time.monotonic()
        with pytest.raises(ClusterError, match="were lost during epoch 3 and cannot be "
                                                "recomputed .data scattered from the driver"):
            xpnet.distributed.fit(net, dX, dy, client=client, epochs=50, lr=0.2,
                                  batch_size=500, callback=kill_one, timeout=30)
        assert time.monotonic() - started < BOUND


def test_malformed_timeout_is_refused_before_any_work(tmp_path):
    env = {**os.environ, "XPNET_DASK_TIMEOUT": "soon"}
    proc = subprocess.run([sys.executable, "-m", "xpnet", *TRAIN, "--dask-workers", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == ("xpnet: error: XPNET_DASK_TIMEOUT='soon': expected a number of "
                           "seconds > 0\n")


def test_memory_check_runs_before_work_on_the_cluster(tmp_path):
    """300,000 rows with 150,000 labels in one chunk: its one-hot targets alone need
    ~335 GiB. Refused in one line before any step (it was ``unexpected MemoryError``
    from a worker, after the data were placed)."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "many.npz", X=rng.normal(size=(300_000, 2)),
             y=np.arange(300_000) // 2)
    proc = subprocess.run(
        [sys.executable, "-m", "xpnet", "train", "--data", "many.npz", "--output", "softmax",
         "--chunk-rows", "300000", "--dask-workers", "1", "--epochs", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert re.fullmatch(r"xpnet: error: many\.npz: one step on a chunk of [\d,]+ rows with "
                        r"150,000 outputs needs about .* of memory, but .*; use a smaller "
                        r"--chunk-rows", last), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
