"""scikit-learn's own callbacks (``sklearn.callback``) on xpnet's estimators (issue 20,
item 3): ProgressBar, ScoringMonitor, propagation from a Pipeline and a search, a hook
that stops or fails. Real scikit-learn classes only."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators need scikit-learn")
callback = pytest.importorskip(
    "sklearn.callback", reason="sklearn.callback is scikit-learn >= 1.9's")
from sklearn.metrics import accuracy_score  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import xpnet  # noqa: E402

ScoringMonitor = callback.ScoringMonitor


def _data(m=150, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, 4))
    return X, (X[:, 0] - X[:, 1] > 0).astype(int)


def _quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached: these fits are short on purpose
        return func(*args, **kwargs)


SETTINGS = {"hidden_layer_sizes": (5,), "random_state": 0, "learning_rate_init": 0.05,
            "batch_size": 50}


def _epoch_scores(monitor, task_name="epoch"):
    return [row["accuracy"] for row in monitor.get_logs().data if row["task_name"] == task_name]


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_scoring_monitor_records_each_epoch_s_weights(solver):
    """Epoch (L-BFGS: iteration) k's score is that of the plain fit of k epochs: the
    fitted_estimator the hook scores holds the weights after that epoch."""
    X, y = _data()
    monitor = ScoringMonitor(scoring="accuracy")
    est = _quiet(xpnet.MLPClassifier(**SETTINGS, solver=solver, max_iter=6).set_callbacks(
        monitor).fit, X, y)
    name = "lbfgs-iter" if solver == "lbfgs" else "epoch"
    scores = _epoch_scores(monitor, name)
    assert len(scores) == est.n_iter_ == 6
    for epochs in (1, 4, 6):
        plain = _quiet(xpnet.MLPClassifier(**SETTINGS, solver=solver, max_iter=epochs).fit, X, y)
        assert scores[epochs - 1] == accuracy_score(y, plain.predict(X))
    root = [row for row in monitor.get_logs().data if row["task_name"] == "fit"]
    assert [row["accuracy"] for row in root] == [est.score(X, y)]


def test_partial_fit_is_one_epoch_task():
    X, y = _data()
    monitor = ScoringMonitor(scoring="accuracy")
    est = xpnet.MLPClassifier(**SETTINGS).set_callbacks(monitor)
    for _ in range(3):
        est.partial_fit(X, y, classes=[0, 1])
    logs = monitor.get_logs(select="all")
    assert len(logs) == 3  # one run per call
    assert all([row["task_name"] for row in log.data] == ["fit", "epoch"] for log in logs)
    assert logs[-1].data[1]["accuracy"] == est.score(X, y)


def test_callbacks_on_the_estimator_inside_a_search_and_a_pipeline():
    X, y = _data()
    monitor = ScoringMonitor(scoring="accuracy")
    inner = xpnet.MLPClassifier(**SETTINGS, max_iter=3).set_callbacks(monitor)
    search = GridSearchCV(make_pipeline(StandardScaler(), inner),
                          {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=2)
    _quiet(search.fit, X, y)
    rows = monitor.get_logs(select="all")
    epochs = [row for log in rows for row in log.data if row["task_name"] == "epoch"]
    assert len(epochs) == (2 * 2 + 1) * 3  # 2 candidates x 2 folds + the refit, 3 epochs


PROGRESS = """
import warnings
warnings.simplefilter("ignore")
import numpy as np
from sklearn.callback import ProgressBar
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
import xpnet
X = np.random.default_rng(0).normal(size=(120, 4)); y = (X[:, 0] > 0).astype(int)
{body}
"""


def _progress(body):
    proc = subprocess.run([sys.executable, "-c", PROGRESS.format(body=textwrap.dedent(body))],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(__import__("importlib").util.find_spec("rich") is None,
                    reason="ProgressBar needs rich")
def test_progress_bar_shows_the_epochs_and_reaches_the_estimator_in_a_search():
    out = _progress("""
        clf = xpnet.MLPClassifier((4,), max_iter=7, random_state=0)
        clf.set_callbacks(ProgressBar()).fit(X, y)
        clf.partial_fit(X, y)
        search = GridSearchCV(make_pipeline(StandardScaler(),
                                            xpnet.MLPClassifier((4,), max_iter=2)),
                              {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=2)
        search.set_callbacks(ProgressBar(max_propagation_depth=None)).fit(X, y)
    """)
    lines = out.splitlines()
    own = [line for line in lines if line.startswith("MLPClassifier - fit")]
    assert len(own) == 2 and all("100%" in line for line in own)  # fit and partial_fit
    nested = [line for line in lines if "MLPClassifier - fit #" in line]
    assert len(nested) == 5  # 4 fits of the search and the refit, each its own bar


def test_a_hook_that_asks_to_stop_or_fails_ends_training_after_the_epoch():
    X, y = _data()
    calls = []

    def failing_scorer(estimator, X, y):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("scorer broke")
        return {"accuracy": accuracy_score(y, estimator.predict(X))}

    est = xpnet.MLPClassifier(**SETTINGS, max_iter=8).set_callbacks(
        ScoringMonitor(scoring=failing_scorer))
    with pytest.warns(UserWarning, match=(
            r"training interrupted at epoch 3 of 8 \(a callback raised ValueError: scorer "
            r"broke\); the network keeps the weights after epoch 3")):
        est.fit(X, y)
    plain = _quiet(xpnet.MLPClassifier(**SETTINGS, max_iter=3).fit, X, y)
    assert est.n_iter_ == 3 and est.loss_curve_ == plain.loss_curve_
    for p, q in zip(est.coefs_ + est.intercepts_, plain.coefs_ + plain.intercepts_,
                    strict=True):
        np.testing.assert_array_equal(p, q)  # the same run, stopped after epoch 3


def test_set_callbacks_refuses_what_is_not_a_callback():
    with pytest.raises(TypeError, match="FitCallback protocol"):
        xpnet.MLPRegressor().set_callbacks(ScoringMonitor)  # the class, not an instance


def test_core_callback_may_take_the_parameters_and_stop_training():
    """The seam the estimators' hooks use: ``callback(epoch, loss, params)`` gets the
    live parameters after the epoch, and returning True stops after it."""
    X, y = _data()
    seen = []

    def stop_after_three(epoch, loss, params):
        seen.append([np.array(p) for p in params])
        return epoch == 2

    net = xpnet.MLP([4, 3, 1], seed=0)
    history = net.fit(X, y, epochs=10, lr=0.3, callback=stop_after_three)
    assert history.n_iter == len(seen) == 3 and not history.converged
    for p, q in zip(seen[-1], net.flat_params, strict=True):
        np.testing.assert_array_equal(p, q)
    ran = xpnet.MLP([4, 3, 1], seed=0).fit(X, y, epochs=10, lr=0.3, callback=lambda e, loss: 1)
    assert ran.n_iter == 10  # only True stops: other return values are ignored, as before
