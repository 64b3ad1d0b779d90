"""``threads=``: the BLAS/OpenMP/torch pools are capped during a fit and restored after.

The pools are read from inside the fit (its per-epoch callback) with threadpoolctl and
``torch.get_num_threads``: what the libraries really use, not what xpnet meant to set.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_cli import assert_error, run

import xpnet
from xpnet.threads import SMALL_WORK, choose_threads, resolve_threads

threadpoolctl = pytest.importorskip("threadpoolctl")
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpoolctl.threadpool_info()
            if pool["user_api"] == "blas"]


def _xor():
    return np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), np.array([0, 1, 1, 0])


@pytest.fixture
def two_threads():
    """Pools at 2 threads outside the fit, so a cap to 1 (and its undoing) shows."""
    with threadpoolctl.threadpool_limits(limits=2):
        if HAVE_TORCH:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(2)
            yield
            torch.set_num_threads(before)
        else:
            yield


def test_threads_caps_blas_during_fit_and_restores_it(two_threads):
    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library in this process")
    X, y = _xor()
    seen = []
    net = xpnet.MLP([2, 4, 1])
    net.fit(X, y, epochs=2, lr=0.5, threads=1, callback=lambda *_: seen.append(_blas_threads()))
    assert seen and all(set(threads) == {1} for threads in seen)
    assert set(_blas_threads()) == {2}  # restored


def test_default_is_one_thread_for_small_networks_only(two_threads, monkeypatch):
    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library in this process")
    X, y = _xor()
    seen: list[list[int]] = []
    xpnet.MLP([2, 4, 1]).fit(X, y, epochs=1, callback=lambda *_: seen.append(_blas_threads()))
    assert set(seen[-1]) == {1}
    # a layer whose batch x fan-in x fan-out reaches SMALL_WORK gets the cores free (the
    # machine's load is what it is: fixed at 2 here, as on an idle 2-core machine)
    monkeypatch.setattr(xpnet.threads, "free_cores", lambda: 2)
    rng = np.random.default_rng(0)
    X_big = rng.normal(size=(64, 256))
    big = xpnet.MLP([256, 64, 1])
    assert 64 * 256 * 64 >= SMALL_WORK
    big.fit(X_big, (X_big[:, 0] > 0).astype(int), epochs=1, lr=0.1,
            callback=lambda *_: seen.append(_blas_threads()))
    assert set(seen[-1]) == {2}
    assert resolve_threads(None, (2, 4, 1), 4) == 1
    assert resolve_threads(3, (2, 4, 1), 4) == 3
    assert resolve_threads(None, (256, 64, 1), 64) == 2


def test_auto_rule_same_on_every_backend_free_cores_and_history(monkeypatch):
    # the digits example's full batch (1347 x 64 x 64 = 5.5 million multiply-adds) gets
    # the free cores on every backend (torch included: its spinning workers are kept off
    # busy cores by free_cores, not by a second threshold)
    monkeypatch.setattr(xpnet.threads, "free_cores", lambda: 3)
    digits = (64, 64, 10)
    assert choose_threads(None, digits, 1347) == (3, True)
    assert choose_threads(None, (784, 256, 10), 128) == (3, True)
    assert choose_threads(None, (64, 32, 10), 32) == (1, True)  # small: 65,536 < SMALL_WORK
    assert choose_threads(2, (2, 4, 1), 4) == (2, False)
    monkeypatch.undo()
    cores = len(os.sched_getaffinity(0))
    assert 1 <= xpnet.threads.free_cores() <= cores
    X, y = _xor()
    net = xpnet.MLP([2, 4, 1])
    history = net.fit(X, y, epochs=1)
    assert (history.threads, history.threads_auto) == (1, True)
    history = net.fit(X, y, epochs=1, threads=2)
    assert (history.threads, history.threads_auto) == (2, False)


def test_busy_cores_counts_what_runs_elsewhere_capped_by_the_load_average():
    from xpnet.threads import busy_cores

    assert busy_cores(3.2, 2) == 2  # two other processes, long enough to show in the average
    assert busy_cores(0.3, 2) == 1  # only just started (or passing): not yet all counted
    assert busy_cores(1.0, 0) == 0  # this process's own past work raised the average: free
    assert busy_cores(2.7, None) == 2  # off Linux: the load average rounded down


def test_this_process_own_threads_are_not_other_work():
    from xpnet.threads import runnable_elsewhere

    assert runnable_elsewhere(5, 3, 2) == 2  # 3 of the 5 are ours (the larger reading)
    assert runnable_elsewhere(5, 0, 0) == 4  # the reading thread runs, even if unseen
    assert runnable_elsewhere(2, 4, 1) == 0  # a worker that started in between


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="needs Linux /proc/loadavg")
def test_cpu_bound_processes_take_cores_from_the_automatic_count(monkeypatch):
    """Real CPU-bound processes, one per core, are seen runnable elsewhere; with the load
    average showing them (held at its steady value: it takes a minute to climb), the
    automatic count is 1."""
    cores = len(os.sched_getaffinity(0))
    spin = "print('running', flush=True)\nwhile True:\n    pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE)
            for _ in range(cores)]
    try:
        for hog in hogs:
            assert hog.stdout is not None and hog.stdout.readline().strip() == b"running"
        assert xpnet.threads._runnable_elsewhere() >= cores
        monkeypatch.setattr(os, "getloadavg", lambda: (cores + 1.0, cores + 1.0, cores))
        assert xpnet.threads.free_cores() == 1
        assert choose_threads(None, (784, 256, 10), 128) == (1, True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
def test_torch_threads_follow_and_are_restored(two_threads):
    import torch

    X, y = _xor()
    seen = []
    net = xpnet.MLP([2, 4, 1], backend="torch")
    net.fit(X, y, epochs=2, callback=lambda *_: seen.append(torch.get_num_threads()))
    assert seen == [1, 1]  # auto: a small network runs torch on one thread
    assert torch.get_num_threads() == 2
    net.fit(X, y, epochs=1, threads=2, callback=lambda *_: seen.append(torch.get_num_threads()))
    assert seen[-1] == 2


def test_limits_are_restored_when_the_fit_fails(two_threads):
    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library in this process")
    X, y = _xor()

    def stop(*_):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        xpnet.MLP([2, 4, 1]).fit(X, y, epochs=3, threads=1, callback=stop)
    assert set(_blas_threads()) == {2}


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_threads_are_refused(bad):
    X, y = _xor()
    with pytest.raises(ValueError, match=r"threads must be a positive integer or None .*; got "):
        xpnet.MLP([2, 4, 1]).fit(X, y, epochs=1, threads=bad)


def test_estimators_take_threads():
    pytest.importorskip("sklearn")
    from xpnet.sklearn import MLPClassifier

    X, y = _xor()
    assert MLPClassifier().get_params()["threads"] is None
    with pytest.raises(ValueError, match="threads"):
        MLPClassifier(threads=0, max_iter=1).fit(X, y)
    clf = MLPClassifier(hidden_layer_sizes=(4,), threads=1, max_iter=3, random_state=0)
    with pytest.warns(Warning):  # not converged after 3 iterations
        clf.fit(X, y)
    assert clf.n_iter_ == 3


def test_cli_threads_option():
    proc = run("train", "--dataset", "xor", "--epochs", "3", "--threads", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert_error(run("train", "--dataset", "xor", "--threads", "0"), "--threads")


@pytest.mark.backend_session("jax")  # needs jax: run by the jax nox session
def test_xla_flag_only_before_jax_starts():
    """XLA sizes its pool once: the flag is added before JAX starts, and refused after."""
    pytest.importorskip("jax")
    code = textwrap.dedent(
        """
        import os
        os.environ.pop("XLA_FLAGS", None)
        from xpnet.threads import xla_flags
        print(xla_flags(2), os.environ.get("XLA_FLAGS"))
        print(xla_flags(1), os.environ.get("XLA_FLAGS"))
        import jax
        jax.numpy.ones(2).block_until_ready()  # starts XLA with the flag (a bad one aborts)
        print(xla_flags(1))
        """
    )
    env = {k: val for k, val in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "False None",
        "True --xla_cpu_multi_thread_eigen=false",
        "False",
    ]


def test_train_reports_the_thread_count_it_chose(tmp_path):
    import json
    import subprocess
    import sys

    def train(*extra):
        proc = subprocess.run([sys.executable, "-m", "xpnet", "train", "--epochs", "3",
                               *extra], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    report = json.loads(train("--json"))["training"]
    assert (report["threads"], report["threads_auto"]) == (1, True)  # 2-8-1: small
    backend = [line for line in train().splitlines() if line.startswith("backend")]
    assert backend == ["backend   numpy on cpu, float64, threads 1 (auto)"]
    given = [line for line in train("--threads", "2").splitlines()
             if line.startswith("backend")]
    assert given == ["backend   numpy on cpu, float64, threads 2"]
