"""The estimators' user-chosen validation set (issue 20, item 1): ``fit(X, y, *, X_val,
y_val, sample_weight_val)`` with HistGradientBoosting's rules, on every backend, and in a
Pipeline with ``transform_input=["X_val"]`` (real scikit-learn metadata routing)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators need scikit-learn")
import sklearn  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.metrics import accuracy_score, log_loss, r2_score  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import xpnet  # noqa: E402


def _data(m=240, n=5, seed=0, task="classifier"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    if task == "classifier":
        y = np.array(["a", "b", "c"])[(X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
                                      + (X[:, 2] > 1).astype(int)]
    else:
        y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.normal(size=m)
    return X[:160], y[:160], X[160:], y[160:]


def _quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached: these fits are short on purpose
        return func(*args, **kwargs)


SETTINGS = {"hidden_layer_sizes": (6,), "random_state": 0, "batch_size": 40,
            "learning_rate_init": 0.01}


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_scores_are_those_of_the_same_fit_without_early_stopping(kind):
    """With X_val every row of X trains and random_state draws no split, so the run is the
    plain fit's: the same loss curve, and each epoch's validation score is the plain fit of
    that many epochs scored on the validation rows (scikit-learn's own MLP as the
    reference for the curve: xpnet follows it to rounding)."""
    X, y, X_val, y_val = _data(task=kind)
    Est = xpnet.MLPClassifier if kind == "classifier" else xpnet.MLPRegressor
    est = _quiet(Est(**SETTINGS, max_iter=6, early_stopping=True, n_iter_no_change=100).fit,
                 X, y, X_val=X_val, y_val=y_val)
    assert est.n_iter_ == 6 and len(est.validation_scores_) == 6
    metric = accuracy_score if kind == "classifier" else r2_score
    for epochs in (1, 3, 6):
        plain = _quiet(Est(**SETTINGS, max_iter=epochs).fit, X, y)
        assert plain.loss_curve_ == est.loss_curve_[:epochs]  # the same computation
        assert est.validation_scores_[epochs - 1] == pytest.approx(
            metric(y_val, plain.predict(X_val)), abs=1e-12)
    if kind == "classifier":
        reference = _quiet(SkMLPClassifier(**SETTINGS, max_iter=6).fit, X, y)
        # float64, 6 epochs of 4 steps: rounding only
        np.testing.assert_allclose(est.loss_curve_, reference.loss_curve_, rtol=1e-10)
    best = int(np.argmax(est.validation_scores_))
    assert est.best_validation_score_ == est.validation_scores_[best]
    assert est.score(X_val, y_val) == pytest.approx(est.best_validation_score_, abs=1e-12)


def test_sample_weight_val_weights_the_score():
    X, y, X_val, y_val = _data()
    w_val = np.random.default_rng(1).uniform(0, 2, X_val.shape[0])
    est = _quiet(xpnet.MLPClassifier(**SETTINGS, max_iter=3, early_stopping=True).fit,
                 X, y, X_val=X_val, y_val=y_val, sample_weight_val=w_val)
    plain = _quiet(xpnet.MLPClassifier(**SETTINGS, max_iter=3).fit, X, y)
    assert est.validation_scores_[-1] == pytest.approx(
        accuracy_score(y_val, plain.predict(X_val), sample_weight=w_val), abs=1e-12)


@pytest.mark.parametrize("library", ["torch", "array_api_strict", "jax"])
def test_device_arrays_equal_numpy(library):
    X, y, X_val, y_val = _data(task="regressor")
    mod = pytest.importorskip(library, reason=f"{library} is not installed")
    if library == "jax":
        mod.config.update("jax_enable_x64", True)
        mod = mod.numpy
    host = _quiet(xpnet.MLPRegressor(**SETTINGS, max_iter=4, early_stopping=True).fit,
                  X, y, X_val=X_val, y_val=y_val)
    dev = _quiet(xpnet.MLPRegressor(**SETTINGS, max_iter=4, early_stopping=True).fit,
                 mod.asarray(X), mod.asarray(y), X_val=mod.asarray(X_val),
                 y_val=mod.asarray(y_val))
    # float64 on both sides: the same operations, rounding only
    np.testing.assert_allclose(dev.loss_curve_, host.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(dev.validation_scores_, host.validation_scores_, rtol=1e-12)


def test_refusals_are_histgradientboosting_s_and_change_nothing():
    X, y, X_val, y_val = _data()
    est = _quiet(xpnet.MLPClassifier(**SETTINGS, max_iter=2, early_stopping=True).fit, X, y)
    before = (est.n_iter_, list(est.loss_curve_), est.n_features_in_, est.coefs_[0].copy())
    hgb = HistGradientBoostingClassifier(early_stopping=True, max_iter=2)
    cases = [({"X_val": X_val}, "X_val is provided, but y_val was not provided."),
             ({"y_val": y_val}, "y_val is provided, but X_val was not provided.")]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as theirs:
            hgb.fit(X, y, **kwargs)
        assert str(theirs.value) == message  # the rule and words we follow
        with pytest.raises(ValueError) as ours:
            est.fit(X[:, :3], y, **kwargs)  # other columns: refused before X is looked at
        assert str(ours.value) == message
    est.set_params(early_stopping=False)
    with pytest.raises(ValueError, match="early_stopping is False. When passing X_val"):
        est.fit(X[:, :3], y, X_val=X_val, y_val=y_val)
    est.set_params(early_stopping=True)
    with pytest.raises(ValueError, match="X_val and y_val were not provided"):
        est.fit(X[:, :3], y, sample_weight_val=np.ones(3))
    with pytest.raises(ValueError, match="unseen labels: \\['z'\\]"):
        est.fit(X, y, X_val=X_val, y_val=np.where(y_val == "a", "z", y_val))
    with pytest.raises(ValueError, match="has 4 features, but MLPClassifier is expecting 5"):
        est.fit(X, y, X_val=X_val[:, :4], y_val=y_val)
    est.set_params(early_stopping=False)  # as it was
    assert (est.n_iter_, est.loss_curve_, est.n_features_in_) == before[:3]
    np.testing.assert_array_equal(est.coefs_[0], before[3])
    with pytest.raises(ValueError, match="solver='lbfgs'"):
        xpnet.MLPRegressor(solver="lbfgs", early_stopping=True).fit(
            X, X[:, 0], X_val=X_val, y_val=X_val[:, 0])


def test_pipeline_transforms_X_val_by_metadata_routing():
    X, y, X_val, y_val = _data()
    X, X_val = 10 * X + 3, 10 * X_val + 3  # so the scaling matters
    with sklearn.config_context(enable_metadata_routing=True):
        clf = xpnet.MLPClassifier(**SETTINGS, max_iter=4, early_stopping=True)
        clf.set_fit_request(X_val=True, y_val=True)
        pipe = Pipeline([("scale", StandardScaler()), ("mlp", clf)], transform_input=["X_val"])
        _quiet(pipe.fit, X, y, X_val=X_val, y_val=y_val)
    scaler = StandardScaler().fit(X)
    direct = _quiet(xpnet.MLPClassifier(**SETTINGS, max_iter=4, early_stopping=True).fit,
                    scaler.transform(X), y, X_val=scaler.transform(X_val), y_val=y_val)
    assert pipe[-1].validation_scores_ == direct.validation_scores_
    assert pipe[-1].loss_curve_ == direct.loss_curve_


# --------------------------------------------------------------- validation loss curve
def _loss_of(est, X, y, w=None):
    """A fitted classifier's training loss on rows (X, y) taken as one batch, by
    scikit-learn's definition (its MLP's ``_backprop``): the (weighted) mean log loss
    plus ``alpha / (2 Σw) Σ‖W‖²``, from scikit-learn's ``log_loss``."""
    total = X.shape[0] if w is None else float(np.sum(w))
    penalty = est.alpha / (2 * total) * sum(float(np.sum(W * W)) for W in est.coefs_)
    return log_loss(y, est.predict_proba(X), sample_weight=w, labels=est.classes_) + penalty


@pytest.mark.parametrize("weighted", [False, True])
def test_validation_loss_curve_is_the_training_loss_on_the_validation_rows(weighted):
    X, y, X_val, y_val = _data()
    w_val = np.random.default_rng(2).uniform(0.2, 2, X_val.shape[0]) if weighted else None
    settings = {**SETTINGS, "alpha": 0.3}
    est = _quiet(xpnet.MLPClassifier(**settings, max_iter=3, early_stopping=True,
                                     n_iter_no_change=100).fit,
                 X, y, X_val=X_val, y_val=y_val, sample_weight_val=w_val)
    assert len(est.validation_loss_curve_) == len(est.validation_scores_) == 3
    # epoch k's value is the loss of the weights after k epochs: those of the plain fit
    # of k epochs (the same run: X_val draws nothing from random_state)
    for epochs in (1, 2, 3):
        plain = _quiet(xpnet.MLPClassifier(**settings, max_iter=epochs).fit, X, y)
        # float64, one forward pass each side: rounding only
        assert est.validation_loss_curve_[epochs - 1] == pytest.approx(
            _loss_of(plain, X_val, y_val, w_val), rel=1e-12)
    # on the training curve's scale (the L2 term included in both)
    assert 0.5 < est.validation_loss_curve_[0] / est.loss_curve_[0] < 2


def test_multi_output_regressor_validation_loss_is_averaged_as_loss_curve():
    X, _, X_val, _ = _data(task="regressor")
    Y, Y_val = np.c_[X[:, 0], X[:, 1] - X[:, 2]], np.c_[X_val[:, 0], X_val[:, 1] - X_val[:, 2]]
    est = _quiet(xpnet.MLPRegressor(**SETTINGS, max_iter=2, early_stopping=True,
                                    n_iter_no_change=100).fit, X, Y, X_val=X_val, y_val=Y_val)
    plain = _quiet(xpnet.MLPRegressor(**SETTINGS, max_iter=2).fit, X, Y)
    # scikit-learn's squared_error loss: 0.5 * mean over rows and outputs, + L2 term
    expected = 0.5 * np.mean((Y_val - plain.predict(X_val)) ** 2) + plain.alpha / (
        2 * X_val.shape[0]) * sum(float(np.sum(W * W)) for W in plain.coefs_)
    assert est.validation_loss_curve_[-1] == pytest.approx(expected, rel=1e-12)


def test_validation_loss_curve_with_the_split_and_without_early_stopping():
    X, y, _, _ = _data()
    est = _quiet(xpnet.MLPClassifier(**SETTINGS, max_iter=3, early_stopping=True).fit, X, y)
    assert len(est.validation_loss_curve_) == 3
    assert all(np.isfinite(est.validation_loss_curve_))
    plain = _quiet(xpnet.MLPClassifier(**SETTINGS, max_iter=3).fit, X, y)
    assert plain.validation_loss_curve_ is None and plain.validation_scores_ is None
