"""``class_weight``: the core (``MLP.fit``/``xpnet.train.fit``), the scikit-learn
estimator and ``xpnet train --class-weight`` (issue 13, section 1).

A class weight is a row weight: every test compares against the same training with
the matching ``sample_weight``, computed by scikit-learn's own ``compute_class_weight``
/ ``compute_sample_weight`` where scikit-learn defines it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import xpnet
from xpnet import MLP

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (xpnet[sklearn])")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import recall_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight  # noqa: E402
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_class_weight_balanced_classifiers,
    check_class_weight_classifiers,
)

from xpnet import MLPClassifier  # noqa: E402

# short fits on purpose: compared with the matching sample_weight, not for accuracy
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y_binary = (X[:, 0] + 0.5 * X[:, 1] > 0.6).astype(np.int64)  # about 1/3 ones
    y_multi = np.digitize(X[:, 1], [-0.8, 0.9])  # three unequal classes
    return X, y_binary, y_multi


def _net(out: str, k: int, backend: str = "numpy") -> MLP:
    return MLP([3, 5, k], output=out, seed=1, dtype="float64", backend=backend)


def _max_diff(a: MLP, b: MLP) -> float:
    return max(
        float(np.max(np.abs(xpnet.to_numpy(p) - xpnet.to_numpy(q))))
        for pa, pb in zip(a.params, b.params, strict=True)
        for p, q in zip(pa, pb, strict=True)
    )


# ---------------------------------------------------------------------- core
@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
def test_core_class_weight_is_the_matching_sample_weight(backend: str, kind: str) -> None:
    """Full batch, float64: class_weight={1: 2} trains exactly as sample_weight = 2 on
    the rows of class 1 (1e-12), on every backend."""
    X, y_binary, y_multi = _data()
    y, k = (y_binary, 1) if kind == "sigmoid" else (y_multi, 3)
    weighted = _net(kind, k, backend)
    weighted.fit(X, y, epochs=30, class_weight={1: 2})
    reference = _net(kind, k, backend)
    reference.fit(X, y, epochs=30, sample_weight=np.where(y == 1, 2.0, 1.0))
    plain = _net(kind, k, backend)
    plain.fit(X, y, epochs=30)
    assert _max_diff(weighted, reference) <= 1e-12
    assert _max_diff(weighted, plain) > 1e-4  # the weights did change the training


@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
def test_core_balanced_is_scikit_learns_formula_times_sample_weight(
    backend: str, kind: str
) -> None:
    X, y_binary, y_multi = _data()
    y, k = (y_binary, 1) if kind == "sigmoid" else (y_multi, 3)
    rows = np.random.default_rng(3).uniform(0.5, 2.0, size=y.shape[0])
    balanced = compute_class_weight("balanced", classes=np.unique(y), y=y)
    weighted = _net(kind, k, backend)
    weighted.fit(X, y, epochs=30, class_weight="balanced", sample_weight=rows)
    reference = _net(kind, k, backend)
    reference.fit(X, y, epochs=30, sample_weight=rows * balanced[y])
    assert _max_diff(weighted, reference) <= 1e-12


def test_core_balanced_row_weights_equal_compute_class_weight() -> None:
    """The NumPy-free formula of the core against scikit-learn's, also where a softmax
    class has no rows (scikit-learn counts only the classes present) and on one-hot Y."""
    from xpnet._class_weight import class_weight_rows

    rng = np.random.default_rng(0)
    for y, k, out in [
        (rng.integers(0, 2, 37), 1, "sigmoid"),
        (rng.integers(0, 4, 53), 4, "softmax"),
        (rng.choice([0, 2, 3], 41, p=[0.7, 0.2, 0.1]), 5, "softmax"),  # classes 1, 4 absent
    ]:
        net = MLP([1, k], output=out, dtype="float64")
        _, Y = net.check_XY(np.zeros((y.shape[0], 1)), y)
        got = xpnet.to_numpy(class_weight_rows(net, Y, "balanced"))
        expected = compute_sample_weight("balanced", y)
        np.testing.assert_array_equal(got, expected)
        if out == "softmax":  # one-hot targets give the same weights
            _, Y1 = net.check_XY(np.zeros((y.shape[0], 1)), np.eye(k)[y])
            np.testing.assert_array_equal(xpnet.to_numpy(class_weight_rows(net, Y1, "balanced")),
                                          expected)


@pytest.mark.filterwarnings("ignore:L-BFGS did not converge:RuntimeWarning")
def test_core_class_weight_with_lbfgs_and_through_mlp_fit() -> None:
    X, _, y = _data()
    weighted = _net("softmax", 3)
    weighted.fit(X, y, epochs=15, optimizer="lbfgs", class_weight={0: 3, 2: 0.5})
    reference = _net("softmax", 3)
    reference.fit(X, y, epochs=15, optimizer="lbfgs",
                  sample_weight=np.select([y == 0, y == 2], [3.0, 0.5], 1.0))
    assert _max_diff(weighted, reference) <= 1e-12


def test_core_class_weight_travels_with_its_rows_into_the_early_stopping_split() -> None:
    X, y, _ = _data(200)
    a, b = _net("sigmoid", 1), _net("sigmoid", 1)
    ha = a.fit(X, y, epochs=5, batch_size=32, early_stopping=True, class_weight={0: 0.25})
    hb = b.fit(X, y, epochs=5, batch_size=32, early_stopping=True,
               sample_weight=np.where(y == 0, 0.25, 1.0))
    assert _max_diff(a, b) == 0.0
    assert ha.validation_scores == hb.validation_scores and len(ha.validation_scores) == 5


@pytest.mark.parametrize(
    ("net_spec", "class_weight", "error", "message"),
    [
        (("softmax", 3), {3: 1.0}, ValueError, "class_weight names class label 3"),
        (("softmax", 3), {-1: 1.0}, ValueError, "class_weight names class label -1"),
        (("sigmoid", 1), {2: 1.0}, ValueError, "network's classes are 0..1"),
        (("softmax", 3), {0: -1.0}, ValueError, "class_weight[0] must be a finite non-negative"),
        (("softmax", 3), {0: float("nan")}, ValueError, "class_weight[0] must be a finite"),
        (("softmax", 3), {0: "2"}, ValueError, "class_weight[0] must be a finite"),
        (("softmax", 3), {"a": 1.0}, TypeError, "class_weight labels must be integer"),
        (("softmax", 3), {True: 1.0}, TypeError, "class_weight labels must be integer"),
        (("softmax", 3), "balance", ValueError, "class_weight must be None, 'balanced' or a dict"),
        (("softmax", 3), [1.0, 2.0], TypeError, "class_weight must be None, 'balanced' or a dict"),
        (("identity", 1), "balanced", ValueError, "class_weight needs a classification network"),
        (("sigmoid", 2), {1: 2.0}, ValueError, "multi-label sigmoid"),
    ],
)
def test_core_refuses_bad_class_weight_before_touching_the_network(
    net_spec, class_weight, error, message
) -> None:
    out, k = net_spec
    X, y_binary, y_multi = _data()
    y = {"softmax": y_multi, "sigmoid": y_binary, "identity": X[:, 0]}[out]
    if k == 2:
        y = np.c_[y_binary, 1 - y_binary]
    net = _net(out, k)
    before = [xpnet.to_numpy(p).copy() for pair in net.params for p in pair]
    with pytest.raises(error, match=None) as info:
        net.fit(X, y, epochs=3, class_weight=class_weight)
    assert message in str(info.value)
    after = [xpnet.to_numpy(p) for pair in net.params for p in pair]
    assert all(np.array_equal(p, q) for p, q in zip(before, after, strict=True))


# ---------------------------------------------------------------------- estimator
def _fit_pair(X, y, cw, sample_weight=None, **params):
    est = MLPClassifier((6,), max_iter=40, random_state=0, class_weight=cw, **params)
    ref = MLPClassifier((6,), max_iter=40, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, sample_weight=sample_weight)
        return est, ref


def _same_weights(a, b) -> float:
    return max(float(np.max(np.abs(p - q))) for p, q in zip(a.coefs_, b.coefs_, strict=True))


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_estimator_dict_and_balanced_are_scikit_learns_sample_weights(solver: str) -> None:
    X, _, y_multi = _data(120)
    labels = np.array(["b", "a", "c"])[y_multi]  # string labels, classes_ = a, b, c
    rows = np.random.default_rng(1).uniform(0.5, 2.0, size=labels.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for cw in [{"b": 2.0}, {"a": 0.5, "c": 4.0}, "balanced"]:
            est, ref = _fit_pair(X, labels, cw, sample_weight=rows, solver=solver)
            ref.fit(X, labels, sample_weight=rows * compute_sample_weight(cw, labels))
            assert _same_weights(est, ref) <= 1e-12, cw


def test_estimator_multilabel_follows_random_forest() -> None:
    """Multi-label: 'balanced' or a list of one dict per output, the row weight being the
    product over the outputs (compute_sample_weight on the indicator matrix); a plain
    dict is refused as RandomForestClassifier refuses it."""
    X, y_binary, y_multi = _data(120)
    Y = np.c_[y_binary, (y_multi == 2).astype(int), (X[:, 2] > 0).astype(int)]
    for cw in ["balanced", [{0: 1, 1: 3}, {1: 2}, {0: 0.5, 1: 1}]]:
        est, ref = _fit_pair(X, Y, cw)
        ref.fit(X, Y, sample_weight=compute_sample_weight(cw, Y))
        assert _same_weights(est, ref) <= 1e-12
    with pytest.raises(ValueError, match="list of one dict per output"):
        MLPClassifier((4,), max_iter=2, class_weight={1: 2}).fit(X, Y)
    with pytest.raises(ValueError, match="list of dicts is for multi-label"):
        MLPClassifier((4,), max_iter=2, class_weight=[{1: 2}]).fit(X, y_binary)


def test_estimator_parameter_validation_and_partial_fit_rules() -> None:
    X, y, _ = _data()
    with pytest.raises(ValueError, match="'class_weight' parameter of MLPClassifier must be"):
        MLPClassifier(class_weight="balance").fit(X, y)
    # scikit-learn's own refusal of a dict naming no class of y
    with pytest.raises(ValueError, match="are not in class_weight"):
        MLPClassifier((4,), max_iter=2, class_weight={7: 2}).fit(X, y)
    # SGDClassifier's rule and message: no "balanced" in partial_fit, nothing fitted
    est = MLPClassifier((4,), class_weight="balanced")
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        est.partial_fit(X, y, classes=[0, 1])
    assert not hasattr(est, "coefs_")
    # a dict works in partial_fit, over the classes given on the first call
    a = MLPClassifier((4,), random_state=0, class_weight={1: 3.0})
    b = MLPClassifier((4,), random_state=0)
    for _ in range(3):
        a.partial_fit(X[y == 0], y[y == 0], classes=[0, 1])  # a batch without class 1
        a.partial_fit(X, y, classes=[0, 1])
        b.partial_fit(X[y == 0], y[y == 0], classes=[0, 1])
        b.partial_fit(X, y, sample_weight=np.where(y == 1, 3.0, 1.0), classes=[0, 1])
    assert _same_weights(a, b) <= 1e-12
    assert "class_weight" not in xpnet.MLPRegressor().get_params()


@pytest.mark.parametrize(("n_classes", "weights"), [(2, [0.8, 0.2]), (3, [0.8, 0.1, 0.1])])
def test_scikit_learns_class_weight_checks(n_classes: int, weights: list[float]) -> None:
    """check_class_weight_classifiers also runs in test_estimators' check_estimator suite
    (scikit-learn yields it for a classifier with a class_weight parameter).
    check_class_weight_balanced_classifiers needs data, and scikit-learn no longer
    calls it itself: the data here are those of its former common test
    (test_class_weight_balanced_classifiers: 200 rows, standardised, 80/20 and 80/10/10).
    The check's claim (weighted F1 rises) depends on the data: on the 3-class set
    LogisticRegression itself fails it, and so does MLPClassifier((8,))."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_class_weight_classifiers("MLPClassifier", MLPClassifier())
        X, y = make_classification(
            n_classes=n_classes, n_samples=200, n_features=10, weights=weights,
            random_state=0, n_informative=n_classes,
        )
        X = StandardScaler().fit_transform(X)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0)
        check_class_weight_balanced_classifiers(
            "MLPClassifier", MLPClassifier(random_state=0), X_train, y_train, X_test, y_test,
            weights=None,
        )


def test_balanced_equals_the_manual_weights_on_non_contiguous_labels() -> None:
    """check_class_weight_balanced_linear_classifier's test (it reads coef_, so
    scikit-learn runs it on linear classifiers only), on coefs_."""
    X = np.array([[-1.0, -1.0], [-1.0, 0], [-0.8, -1.0], [1.0, 1.0], [1.0, 0.0]])
    y = np.array([1, 1, 1, -1, -1])
    est = MLPClassifier((3,), max_iter=1000, random_state=0, solver="lbfgs")
    balanced = clone(est).set_params(class_weight="balanced").fit(X, y).coefs_
    manual = {1: 5 / (3 * 2.0), -1: 5 / (2 * 2.0)}
    by_hand = clone(est).set_params(class_weight=manual).fit(X, y).coefs_
    plain = clone(est).fit(X, y).coefs_
    for a, b in zip(balanced, by_hand, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(balanced, plain, strict=True)) > 1e-6


def test_balanced_raises_minority_recall_on_95_5_data() -> None:
    """The README's figure: 95/5 make_classification, minority recall on held-out rows
    without and with class_weight='balanced' (same network, same seed)."""
    X, y = make_classification(
        n_samples=4000, n_features=10, n_informative=4, weights=[0.95], class_sep=0.8,
        flip_y=0.0, random_state=0,
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    recall = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for cw in [None, "balanced"]:
            model = MLPClassifier((16,), max_iter=200, random_state=0, class_weight=cw)
            recall[cw] = recall_score(y_test, model.fit(X_train, y_train).predict(X_test))
    print(f"minority recall: none {recall[None]:.3f}, balanced {recall['balanced']:.3f}")
    assert recall["balanced"] >= recall[None] + 0.2


# ---------------------------------------------------------------------- CLI
def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("XPNET_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "xpnet", *args], capture_output=True, text=True, timeout=120,
        env=env,
    )


def _assert_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpnet: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_cli_class_weight_changes_training_and_is_reported() -> None:
    base = ["train", "--dataset", "iris", "--epochs", "40", "--json"]
    plain = json.loads(_run(*base).stdout)
    weighted = json.loads(_run(*base, "--class-weight", "setosa=2,virginica=0.5").stdout)
    balanced = json.loads(_run(*base, "--class-weight", "balanced").stdout)
    assert plain["training"]["class_weight"] is None
    assert weighted["training"]["class_weight"] == {"setosa": 2.0, "virginica": 0.5}
    assert balanced["training"]["class_weight"] == "balanced"
    assert weighted["training"]["loss_curve"] != plain["training"]["loss_curve"]
    # each label weighs its own class: setosa=3 is not virginica=3, and a label given
    # weight 1 is the same as a label left out
    curves = [
        json.loads(_run(*base, "--class-weight", spec).stdout)["training"]["loss_curve"]
        for spec in ("setosa=3", "virginica=3", "setosa=3,versicolor=1")
    ]
    assert curves[0] != curves[1]
    assert curves[0] == curves[2]
    text = _run("train", "--dataset", "iris", "--epochs", "5", "--class-weight", "setosa=2")
    assert text.returncode == 0, text.stderr
    training = next(line for line in text.stdout.splitlines() if line.startswith("training"))
    assert training.endswith("class weights setosa=2"), training


def test_cli_class_weight_label_matches_numeric_classes(tmp_path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    path = tmp_path / "d.csv"
    rows = "\n".join(f"{a},{b},{int(a > 0)}" for a, b in X)
    path.write_text("x1,x2,label\n" + rows + "\n")
    proc = _run("train", "--data", str(path), "--epochs", "3", "--json",
                "--class-weight", "1=3")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["training"]["class_weight"] == {"1": 3.0}


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("setosa", ["--class-weight", "label=weight"]),
        ("setosa=-1", ["--class-weight", "weights >= 0"]),
        ("setosa=inf", ["--class-weight", "weights >= 0"]),
        ("=2", ["--class-weight", "label=weight"]),
        ("setosa=2,setosa=1", ["names label 'setosa' twice"]),
        ("rose=2", ["'rose' is not one of the classes (setosa, versicolor, virginica)"]),
    ],
)
def test_cli_bad_class_weight_specs(spec: str, fragments: list[str]) -> None:
    _assert_error(_run("train", "--dataset", "iris", "--epochs", "2", "--class-weight", spec),
                  *fragments)


def test_cli_class_weight_on_a_regression_target() -> None:
    _assert_error(_run("train", "--dataset", "diabetes", "--class-weight", "balanced"),
                  "--class-weight applies to classification targets")
