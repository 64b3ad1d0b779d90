"""Data-parallel training on a real Dask cluster (xpnet.distributed, issue 10).

One session-scoped ``LocalCluster`` of two worker processes (one thread each) serves every
test; nothing is mocked. The distributed fit must be the same computation as the
single-process one from the same seed: equal to 1e-12 in float64 and 2e-5 in float32.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason='needs dask[distributed]: pip install "xpnet[dask]"')
da = pytest.importorskip("dask.array", reason='needs dask[array]: pip install "xpnet[dask]"')
from distributed import Client, LocalCluster  # noqa: E402

import xpnet  # noqa: E402
from xpnet import distributed as xd  # noqa: E402
from xpnet.optim import SGD, Adam  # noqa: E402

TOL = {"float64": 1e-12, "float32": 2e-5}


@pytest.fixture(scope="session")
def client():
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with Client(cluster) as c:
        yield c
    cluster.close()


def _data(m=157, n_in=6, seed=0, task="multiclass"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n_in))
    if task == "multiclass":
        y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    elif task == "binary":
        y = (X[:, 0] + X[:, 2] > 0).astype(np.float64)
    else:
        y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.normal(size=m)
    return X, y


def _net(task="multiclass", dtype="float64", alpha=0.0, n_in=6):
    out = {"multiclass": ("softmax", 3), "binary": ("sigmoid", 1), "regression": ("identity", 1)}
    name, k = out[task]
    return xpnet.MLP([n_in, 5, k], activation="tanh", output=name, dtype=dtype, alpha=alpha)


def _compare(client, *, task="multiclass", dtype="float64", alpha=0.0, chunks=40, m=157,
             optimizer=None, epochs=4, weights=False, **options):
    """Fit the same seed once in-process and once on the cluster; return both."""
    X, y = _data(m, task=task)
    sw = np.random.default_rng(1).uniform(0.0, 2.0, size=m) if weights else None
    local, remote = _net(task, dtype, alpha), _net(task, dtype, alpha)
    opt = (lambda: None) if optimizer is None else optimizer
    h_local = local.fit(X, y, epochs=epochs, lr=0.2, optimizer=opt(), sample_weight=sw, **options)
    dX, dy = da.from_array(X, chunks=(chunks, 6)), da.from_array(y, chunks=(chunks,))
    dw = None if sw is None else da.from_array(sw, chunks=(chunks,))
    h_remote = xd.fit(
        remote, dX, dy, client=client, epochs=epochs, lr=0.2, optimizer=opt(),
        sample_weight=dw, **options,
    )
    tol = TOL[dtype]
    for p, q in zip(local._params, remote._params):
        np.testing.assert_allclose(q, p, rtol=tol, atol=tol)
    np.testing.assert_allclose(h_remote.loss, h_local.loss, rtol=tol, atol=tol)
    assert h_remote.n_iter == h_local.n_iter
    np.testing.assert_allclose(
        h_remote.validation_scores, h_local.validation_scores, rtol=tol, atol=tol
    )
    return local, remote, h_local, h_remote


CASES = {
    "full-batch": {},
    "mini-batch": {"batch_size": 16},
    "no-shuffle": {"batch_size": 30, "shuffle": False},
    "momentum": {"batch_size": 16, "optimizer": lambda: SGD(0.1, momentum=0.9)},
    "nesterov": {"batch_size": 16, "optimizer": lambda: SGD(0.1, momentum=0.9, nesterov=True)},
    "adam": {"batch_size": 16, "optimizer": lambda: Adam(0.01)},
    "adaptive": {
        "batch_size": 32, "epochs": 8, "tol": 10.0, "n_iter_no_change": 1,
        "optimizer": lambda: SGD(0.1, schedule="adaptive"),
    },
    "invscaling": {"batch_size": 32, "optimizer": lambda: SGD(0.1, schedule="invscaling")},
    "early-stopping": {"batch_size": 20, "early_stopping": True, "epochs": 12,
                       "n_iter_no_change": 2},
    "sample-weight": {"batch_size": 16, "weights": True},
    "sample-weight-full": {"weights": True},
    "alpha": {"batch_size": 16, "alpha": 0.3},
    "alpha-weights": {"alpha": 0.3, "weights": True},
    "uneven-chunks": {"batch_size": 16, "chunks": (50, 7, 90, 10)},
    "more-chunks-than-workers": {"batch_size": 16, "chunks": 11},
    "one-chunk": {"batch_size": 16, "chunks": 157},
    "binary": {"batch_size": 16, "task": "binary"},
    "regression-early-stopping": {"task": "regression", "early_stopping": True,
                                  "batch_size": 25, "epochs": 6},
    "regression-weights-es": {"task": "regression", "early_stopping": True, "weights": True,
                              "batch_size": 25, "epochs": 6},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_equals_single_process_fit(client, case, dtype):
    _compare(client, dtype=dtype, **CASES[case])


def test_early_stopping_stops_and_restores_like_single_process(client):
    _, remote, h_local, h_remote = _compare(
        client, batch_size=10, early_stopping=True, epochs=60, n_iter_no_change=1, tol=0.5,
    )
    assert h_remote.converged and h_local.converged and h_remote.n_iter < 60


def test_validation_data_as_dask_arrays(client):
    X, y = _data(120)
    Xv, yv = _data(40, seed=5)
    local, remote = _net(), _net()
    h1 = local.fit(X, y, epochs=5, lr=0.2, batch_size=16, validation_data=(Xv, yv))
    h2 = xd.fit(
        remote, da.from_array(X, chunks=30), da.from_array(y, chunks=30), client=client,
        epochs=5, lr=0.2, batch_size=16,
        validation_data=(da.from_array(Xv, chunks=15), da.from_array(yv, chunks=15)),
    )
    np.testing.assert_allclose(h2.validation_scores, h1.validation_scores, rtol=1e-12)
    for p, q in zip(local._params, remote._params):
        np.testing.assert_allclose(q, p, rtol=1e-12, atol=1e-12)


def test_number_of_workers_changes_no_bit(client):
    """Chunk-ordered sums: the same chunks on 2 workers or on 1 give identical bits."""
    X, y = _data(157)
    dX, dy = da.from_array(X, chunks=(20, 6)), da.from_array(y, chunks=20)
    a, b = _net(), _net()
    xd.fit(a, dX, dy, client=client, epochs=3, lr=0.2, batch_size=16)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as one, Client(one) as single:
        xd.fit(b, dX, dy, client=single, epochs=3, lr=0.2, batch_size=16)
    for p, q in zip(a._params, b._params):
        assert np.array_equal(p, q)


def test_lost_worker_changes_no_bit(client):
    """Kill a worker process after epoch 2: Dask recomputes its chunks and step tasks
    elsewhere (the nanny restarts the process) and the result is bit-identical."""
    X, y = _data(400)
    dX, dy = da.from_array(X, chunks=(50, 6)), da.from_array(y, chunks=50)
    reference = _net()
    xd.fit(reference, dX, dy, client=client, epochs=6, lr=0.2, batch_size=32)

    killed = []

    def kill_one(epoch, loss):
        if epoch == 1:
            workers = client.scheduler_info()["workers"]
            address = sorted(workers)[0]
            pid = client.run(os.getpid, workers=[address])[address]
            os.kill(pid, signal.SIGKILL)
            killed.append((address, pid))

    net = _net()
    history = xd.fit(net, dX, dy, client=client, epochs=6, lr=0.2, batch_size=32,
                     callback=kill_one)
    assert killed and history.n_iter == 6
    for p, q in zip(reference._params, net._params):
        assert np.array_equal(p, q)
    # the nanny brings the cluster back to two workers for the tests that follow
    deadline = time.monotonic() + 60
    while len(client.scheduler_info()["workers"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
