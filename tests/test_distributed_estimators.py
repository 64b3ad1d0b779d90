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


# --------------------------------------------------------------------------- class_weight
def _labels(kind, X):
    if kind == "binary":
        return (X[:, 0] + X[:, 1] > 0).astype(int)
    if kind == "multilabel":
        return np.stack([X[:, 0] > 0, X[:, 1] > 0.3, X[:, 2] < -1], axis=1).astype(int)
    return _data(X.shape[0])[1]  # three classes, unbalanced


def _dask(a, rows=50):
    return da.from_array(a, chunks=(rows,) + a.shape[1:])


@pytest.mark.parametrize("kind,class_weight,weights", [
    ("multiclass", "balanced", False),
    ("multiclass", {0: 2.0, 2: 0.3}, True),
    ("binary", "balanced", True),
    ("binary", {1: 3.0}, False),
    ("multilabel", "balanced", False),
    ("multilabel", [{0: 1, 1: 2}, {0: 0.5, 1: 1}, {0: 1, 1: 3}], True),
], ids=["balanced", "dict-weights", "binary-balanced-weights", "binary-dict",
        "multilabel-balanced", "multilabel-list"])
def test_class_weight_on_dask_equals_single_process(client, kind, class_weight, weights):
    """Balanced counts summed block-wise, the weights picked per row on the workers: the
    row weights are the host's bit for bit, so the fits agree to rounding (TOL)."""
    X, _ = _data(180)
    y = _labels(kind, X)
    w = np.random.default_rng(2).uniform(0.1, 2.0, 180) if weights else None
    settings = {"hidden_layer_sizes": (5,), "max_iter": 6, "random_state": 0,
                "batch_size": 32, "class_weight": class_weight}
    host = _quiet(xpnet.MLPClassifier(**settings).fit, X, y, sample_weight=w)
    remote = _quiet(xpnet.MLPClassifier(**settings).fit, _dask(X), _dask(y),
                    sample_weight=None if w is None else _dask(w))
    _assert_same_fit(remote, host)
    unweighted = _quiet(xpnet.MLPClassifier(**{**settings, "class_weight": None}).fit,
                        _dask(X), _dask(y), sample_weight=None if w is None else _dask(w))
    assert not np.allclose(unweighted.loss_curve_, remote.loss_curve_)  # the weights count


def test_class_weight_with_early_stopping_on_dask(client):
    """The early-stopping split's held-out rows keep their class weights, as on the host
    (a multi-label target: the host's split is unstratified too)."""
    X, _ = _data(200)
    y = _labels("multilabel", X)
    settings = {"hidden_layer_sizes": (5,), "max_iter": 6, "random_state": 0,
                "batch_size": 32, "class_weight": "balanced", "early_stopping": True}
    host = _quiet(xpnet.MLPClassifier(**settings).fit, X, y)
    remote = _quiet(xpnet.MLPClassifier(**settings).fit, _dask(X), _dask(y))
    _assert_same_fit(remote, host)
    np.testing.assert_allclose(remote.validation_loss_curve_, host.validation_loss_curve_,
                               rtol=TOL)


def test_class_weight_errors_on_dask_are_the_host_ones(client):
    X, _ = _data(60)
    y, labels = _labels("multilabel", X), _data(60)[1]
    for target, class_weight in ((y, {0: 1.0}), (labels, [{0: 1}]), (y, [{0: 1}, {0: 1}])):
        errors = []
        for X_in, y_in in ((X, target), (_dask(X, 20), _dask(target, 20))):
            with pytest.raises(ValueError) as info:
                xpnet.MLPClassifier(class_weight=class_weight, max_iter=2).fit(X_in, y_in)
            errors.append(str(info.value))
        assert errors[0] == errors[1]


# --------------------------------------------------------------------------- multi-label
def test_multilabel_targets_on_dask_equal_single_process(client):
    X, _ = _data(180)
    y = _labels("multilabel", X)
    settings = {"hidden_layer_sizes": (5,), "max_iter": 6, "random_state": 0, "batch_size": 32}
    host = _quiet(xpnet.MLPClassifier(**settings).fit, X, y)
    remote = _quiet(xpnet.MLPClassifier(**settings).fit, _dask(X), _dask(y))
    _assert_same_fit(remote, host)
    assert remote.n_outputs_ == 3 and list(remote.classes_) == [0, 1, 2]
    predicted = remote.predict(_dask(X))
    assert isinstance(predicted, da.Array)  # the lazy form: predict
    assert np.array_equal(predicted.compute(), host.predict(X))
    np.testing.assert_allclose(remote.predict_proba(_dask(X)).compute(), host.predict_proba(X),
                               rtol=TOL, atol=TOL)
    # partial_fit: the first call learns the target type from the Dask matrix too
    host_p, remote_p = (xpnet.MLPClassifier(**settings) for _ in range(2))
    host_p.partial_fit(X, y, classes=[0, 1, 2])
    remote_p.partial_fit(_dask(X), _dask(y), classes=[0, 1, 2])
    _assert_same_fit(remote_p, host_p)
    # two labels: two sigmoid outputs (not one binary output)
    two = _quiet(xpnet.MLPClassifier(**settings).fit, _dask(X), _dask(y[:, :2]))
    assert two.n_outputs_ == 2


def test_multioutput_multiclass_refused_on_dask_as_on_the_host(client):
    X, _ = _data(60)
    y = np.stack([_data(60)[1], _data(60)[1]], axis=1)  # values 0..2 in two columns
    errors = []
    for X_in, y_in in ((X, y), (_dask(X, 20), _dask(y, 20))):
        with pytest.raises(ValueError) as info:
            xpnet.MLPClassifier(max_iter=2).fit(X_in, y_in)
        errors.append(str(info.value))
    assert errors[0] == errors[1]


# --------------------------------------------------------------------------- lbfgs
# 20 L-BFGS iterations, each evaluation the chunk sums added in chunk order: float64
# rounding (1e-16 per evaluation) grows through the line searches to ~3e-13 (measured)
LBFGS_TOL = 1e-10


def _assert_same_lbfgs(remote, host):
    assert remote.n_iter_ == host.n_iter_
    assert remote.loss_ == pytest.approx(host.loss_, rel=LBFGS_TOL)
    for p, q in zip(host.coefs_ + host.intercepts_, remote.coefs_ + remote.intercepts_,
                    strict=True):
        np.testing.assert_allclose(q, p, rtol=LBFGS_TOL, atol=LBFGS_TOL)


@pytest.mark.parametrize("case", ["multiclass", "multilabel-class-weight", "regressor"])
def test_lbfgs_on_dask_equals_single_process(client, case):
    from sklearn.exceptions import ConvergenceWarning

    X, _ = _data(180)
    settings = {"hidden_layer_sizes": (5,), "max_iter": 20, "random_state": 0,
                "solver": "lbfgs", "alpha": 0.01}
    w = None
    if case == "regressor":
        Est, y = xpnet.MLPRegressor, np.stack([X[:, 0] - 2 * X[:, 1], X[:, 3]], axis=1)
    else:
        Est, y = xpnet.MLPClassifier, _labels(case.split("-")[0], X)
        if case != "multiclass":
            settings["class_weight"] = "balanced"
            w = np.random.default_rng(3).uniform(0.1, 2.0, 180)
    with pytest.warns(ConvergenceWarning):
        host = Est(**settings).fit(X, y, sample_weight=w)
    with pytest.warns(ConvergenceWarning):
        remote = Est(**settings).fit(_dask(X), _dask(y),
                                     sample_weight=None if w is None else _dask(w))
    assert remote.n_iter_ == 20
    _assert_same_lbfgs(remote, host)


def test_lbfgs_on_dask_honours_max_fun_and_tol(client):
    from sklearn.exceptions import ConvergenceWarning

    X, y = _data(180)
    settings = {"hidden_layer_sizes": (5,), "random_state": 0, "solver": "lbfgs"}
    few = {**settings, "max_iter": 200, "max_fun": 7}
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        host = xpnet.MLPClassifier(**few).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        remote = xpnet.MLPClassifier(**few).fit(_dask(X), _dask(y))
    assert remote.n_iter_ <= 7
    _assert_same_lbfgs(remote, host)
    loose = {**settings, "max_iter": 500, "tol": 1e-2}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # it converges: no warning
        host = xpnet.MLPClassifier(**loose).fit(X, y)
        remote = xpnet.MLPClassifier(**loose).fit(_dask(X), _dask(y))
    assert remote.n_iter_ < 500
    _assert_same_lbfgs(remote, host)


# --------------------------------------------------------------------------- score
@pytest.mark.parametrize("kind", ["multiclass", "multilabel", "regressor"])
def test_score_on_dask_is_a_float_summed_block_wise(client, kind):
    X, _ = _data(180)
    w = np.random.default_rng(5).uniform(0.1, 2.0, 180)
    if kind == "regressor":
        Est, y = xpnet.MLPRegressor, X[:, 0] - X[:, 1]
    else:
        Est, y = xpnet.MLPClassifier, _labels(kind, X)
    est = _quiet(Est(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit, X, y)
    for weights in (None, w):
        for y_in, w_in in ((y, weights), (_dask(y), None if weights is None else _dask(weights))):
            score = est.score(_dask(X), y_in, sample_weight=w_in)
            assert type(score) is float
            # float64 sums in another order (block-wise, then across blocks): rounding
            assert score == pytest.approx(est.score(X, y, sample_weight=weights), abs=TOL)
