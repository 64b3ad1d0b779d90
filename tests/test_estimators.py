"""xpnet.MLPClassifier / xpnet.MLPRegressor: scikit-learn's own estimator checks, the
same trajectory as scikit-learn's MLPs, accuracy parity on scikit-learn's data sets,
Array API dispatch (torch in -> torch out), Pipeline and GridSearchCV.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import xpnet

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (xpnet[sklearn])")

from sklearn import config_context  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits, load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from xpnet import MLPClassifier, MLPRegressor  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the test extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (xpnet[torch])")


def _cupy_usable() -> bool:
    return "cupy" in xpnet.available_backends()


needs_cupy = pytest.mark.skipif(
    not _cupy_usable(), reason="CuPy with a usable CUDA device is not available here"
)


@pytest.fixture(autouse=True)
def _array_api_checks_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    # scikit-learn runs its Array API estimator checks (numpy, array-api-strict, torch)
    # only when this is set; xpnet's estimators do not need SciPy's Array API support.
    # Set after SciPy's import, it leaves SciPy out of array API mode, which xpnet's fit
    # says in a warning under dispatch (tests/test_sklearn_array_api.py): expected here.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    warnings.filterwarnings("ignore", "scikit-learn's array_api_dispatch is on", UserWarning)


# ---------------------------------------------------------------------- sklearn's checks
def _expected_failed_checks(estimator) -> dict[str, str]:
    # With the default batch_size ("auto" = min(200, n): one batch on the checks' small
    # data sets) every check of scikit-learn 1.9's suite passes.
    if estimator.batch_size != "auto":
        reason = (
            "mini-batch SGD is not invariant to repeating rows: a row of weight 2 is "
            "counted twice within its batch, while a repeated row lands in another "
            "batch (and shifts the shuffles). scikit-learn's own MLPClassifier and "
            "MLPRegressor fail this check the same way with small batches."
        )
        return {
            "check_sample_weight_equivalence_on_dense_data": reason,
            "check_sample_weight_equivalence_on_sparse_data": reason,  # same, sparse X
        }
    if estimator.solver == "lbfgs" and hasattr(estimator, "predict_log_proba"):
        return {
            "check_classifiers_train": (
                "predict_log_proba is computed from the logits, so it stays finite where "
                "predict_proba rounds to exactly 0 (see "
                "test_predict_log_proba_stays_finite_when_probabilities_round_to_zero); "
                "the check compares it with log(predict_proba), -inf there, and L-BFGS "
                "fits the check's separable data tightly enough to saturate some rows"
            )
        }
    return {}


@parametrize_with_checks(
    [
        MLPClassifier(max_iter=50),
        MLPRegressor(max_iter=50),
        MLPClassifier(solver="lbfgs", max_iter=50),
        MLPRegressor(solver="lbfgs", max_iter=50),
        MLPClassifier(solver="sgd", batch_size=16, max_iter=50, random_state=0),
        MLPRegressor(
            solver="sgd", learning_rate="adaptive", batch_size=16, max_iter=50, random_state=0
        ),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # batch_size=16 on the checks' tiny data sets: clipped, as scikit-learn does
        warnings.filterwarnings("ignore", message="Got `batch_size`", category=UserWarning)
        check(estimator)


# ---------------------------------------------------------------------- same trajectory
def _data(kind: str, n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    if kind == "binary":
        y = (X[:, 0] + X[:, 1] ** 2 > 0.8).astype(int)
    elif kind == "multiclass":
        y = np.digitize(X[:, 0] + 0.5 * X[:, 2], [-0.5, 0.5])
    elif kind == "multilabel":
        y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5], axis=1).astype(int)
    elif kind == "strings":
        y = np.array(["cat", "dog", "eel"])[np.digitize(X[:, 0], [-0.5, 0.5])]
    elif kind == "regression":
        y = X[:, 0] - 2 * X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=n)
    else:  # two-output regression
        y = np.stack([X[:, 0] - X[:, 1], np.sin(X[:, 2])], axis=1)
    return X, y


TRAJECTORIES = {
    "adam-relu-binary": ("binary", dict()),
    "adam-tanh-multiclass-batches": (
        "multiclass", dict(activation="tanh", batch_size=32, beta_1=0.8, alpha=0.01)
    ),
    "sgd-nesterov-logistic-multilabel": (
        "multilabel", dict(solver="sgd", activation="logistic", learning_rate_init=0.1)
    ),
    "sgd-momentum-invscaling-strings": (
        "strings",
        dict(solver="sgd", nesterovs_momentum=False, momentum=0.5, learning_rate="invscaling",
             learning_rate_init=0.5, power_t=0.25, batch_size=25),
    ),
    "sgd-adaptive-identity": (
        "binary",
        dict(solver="sgd", learning_rate="adaptive", activation="identity", tol=0.05,
             n_iter_no_change=2, learning_rate_init=0.05, batch_size=40),
    ),
    "early-stopping-binary": (
        "binary", dict(early_stopping=True, validation_fraction=0.25, n_iter_no_change=3,
                       learning_rate_init=0.01)
    ),
    "early-stopping-multiclass-weighted": (
        "multiclass", dict(early_stopping=True, learning_rate_init=0.01, n_iter_no_change=4)
    ),
    "regression-sgd": ("regression", dict(solver="sgd", learning_rate_init=0.01)),
    "regression-2-outputs-adam-early": (
        "regression2",
        dict(early_stopping=True, learning_rate_init=0.01, batch_size=16, alpha=0.01),
    ),
}


@pytest.mark.parametrize("name", list(TRAJECTORIES))
def test_same_trajectory_as_scikit_learn(name: str) -> None:
    """Same data, parameters and random_state: the same weights, shuffles, splits and
    updates as scikit-learn, so the loss curves, validation scores and weights agree."""
    kind, params = TRAJECTORIES[name]
    X, y = _data(kind)
    weighted = name.endswith("weighted")
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y)) if weighted else None
    regression = kind.startswith("regression")
    ours = (MLPRegressor if regression else MLPClassifier)(
        hidden_layer_sizes=(7, 5), max_iter=15, random_state=3, **params
    )
    theirs = (SkMLPRegressor if regression else SkMLPClassifier)(
        hidden_layer_sizes=(7, 5), max_iter=15, random_state=3, **params
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y, sample_weight=w)
        theirs.fit(X, y, sample_weight=w)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-6)
    if theirs.validation_scores_ is None:
        assert ours.validation_scores_ is None
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-6)
    else:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_loss_ is None
    ours_params, theirs_params = ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_
    for a, b in zip(ours_params, theirs_params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)
    if regression:
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-7, atol=1e-10)
    else:
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    if not regression:
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-7)
        assert ours.out_activation_ == theirs.out_activation_


def test_shared_random_state_instance_continues_like_scikit_learn() -> None:
    """A RandomState instance is consumed across fits exactly as scikit-learn consumes it
    (initial weights, then one shuffle per epoch even when the batch is the whole set)."""
    X, y = _data("binary", n=50)
    ours_rs, theirs_rs = np.random.RandomState(5), np.random.RandomState(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            ours = MLPClassifier((4,), max_iter=4, batch_size=50, random_state=ours_rs).fit(X, y)
            theirs = SkMLPClassifier((4,), max_iter=4, batch_size=50, random_state=theirs_rs)
            theirs.fit(X, y)
            np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(ours_rs.randint(0, 1000, 5), theirs_rs.randint(0, 1000, 5))


def test_partial_fit_follows_scikit_learn() -> None:
    X, y = _data("multiclass")
    ours = MLPClassifier((6,), solver="sgd", learning_rate_init=0.1, random_state=0)
    theirs = SkMLPClassifier((6,), solver="sgd", learning_rate_init=0.1, random_state=0)
    classes = np.unique(y)
    for start in range(0, 120, 40):
        ours.partial_fit(X[start : start + 40], y[start : start + 40], classes=classes)
        theirs.partial_fit(X[start : start + 40], y[start : start + 40], classes=classes)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-7)
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-7, atol=1e-10)
    assert ours.n_iter_ == 1 and ours.t_ == theirs.t_


# ---------------------------------------------------------------------- accuracy parity
PARITY_SPLITS = (0, 1, 2, 3, 4)
PARITY_PARAMS = dict(hidden_layer_sizes=(32,), max_iter=100, alpha=1e-4, learning_rate_init=0.01)


def _parity_row(name: str, loader) -> tuple[str, float, float, float | None]:
    """Mean test accuracy of xpnet (NumPy float64), scikit-learn, and xpnet trained on
    float32 torch tensors (None without torch)."""
    X, y = loader(return_X_y=True)
    ours_acc, theirs_acc, torch_acc = [], [], []
    for seed in PARITY_SPLITS:
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=0.25, stratify=y, random_state=seed
        )
        scaler = StandardScaler().fit(X_tr)
        X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours = MLPClassifier(random_state=seed, **PARITY_PARAMS).fit(X_tr, y_tr)
            theirs = SkMLPClassifier(random_state=seed, **PARITY_PARAMS).fit(X_tr, y_tr)
            if torch is not None:
                on_torch = MLPClassifier(random_state=seed, **PARITY_PARAMS).fit(
                    torch.asarray(X_tr, dtype=torch.float32), torch.asarray(y_tr)
                )
                torch_acc.append(
                    on_torch.score(torch.asarray(X_te, dtype=torch.float32), torch.asarray(y_te))
                )
        ours_acc.append(ours.score(X_te, y_te))
        theirs_acc.append(theirs.score(X_te, y_te))
    on_torch_mean = float(np.mean(torch_acc)) if torch_acc else None
    return name, float(np.mean(ours_acc)), float(np.mean(theirs_acc)), on_torch_mean


def test_accuracy_parity_with_scikit_learn() -> None:
    rows = [
        _parity_row(name, loader)
        for name, loader in (
            ("digits", load_digits), ("breast_cancer", load_breast_cancer), ("iris", load_iris)
        )
    ]
    print(
        f"\naccuracy parity: mean test accuracy over splits {PARITY_SPLITS}, "
        f"standardised, {PARITY_PARAMS}, adam"
    )
    print(
        f"{'data set':<14} {'sklearn':>8} {'xpnet':>8} {'diff (pp)':>10} "
        f"{'xpnet torch f32':>16} {'diff (pp)':>10}"
    )
    for name, ours, theirs, on_torch in rows:
        torch_cells = (
            f"{on_torch:>16.4f} {100 * (on_torch - theirs):>+10.2f}" if on_torch is not None
            else f"{'(no torch)':>16}"
        )
        print(
            f"{name:<14} {theirs:>8.4f} {ours:>8.4f} {100 * (ours - theirs):>+10.2f} "
            + torch_cells
        )
    for name, ours, theirs, on_torch in rows:
        assert ours >= theirs - 0.005, f"{name}: xpnet {ours:.4f} < sklearn {theirs:.4f} - 0.5pp"
        if on_torch is not None:
            assert on_torch >= theirs - 0.005, f"{name}: xpnet on torch float32 {on_torch:.4f}"


# ---------------------------------------------------------------------- array API dispatch
@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_and_numpy_inputs_give_the_same_model(dtype: str) -> None:
    X, y = _data("multiclass", n=150)
    X = X.astype(dtype)
    est = MLPClassifier((16,), max_iter=40, random_state=0, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        on_numpy = clone(est).fit(X, y)
        on_torch = clone(est).fit(torch.asarray(X), torch.asarray(y))
    Xt = torch.asarray(X)
    proba_t = on_torch.predict_proba(Xt)
    pred_t = on_torch.predict(Xt)
    assert isinstance(proba_t, torch.Tensor) and isinstance(pred_t, torch.Tensor)
    assert proba_t.device == Xt.device and str(proba_t.dtype) == f"torch.{dtype}"
    assert all(isinstance(c, torch.Tensor) for c in on_torch.coefs_ + on_torch.intercepts_)
    assert isinstance(on_numpy.predict_proba(X), np.ndarray)
    rtol = 1e-9 if dtype == "float64" else 2e-3
    np.testing.assert_allclose(
        proba_t.numpy(), on_numpy.predict_proba(X), rtol=rtol, atol=rtol * 1e-2
    )
    np.testing.assert_array_equal(pred_t.numpy(), on_numpy.predict(X))
    np.testing.assert_allclose(on_torch.loss_curve_, on_numpy.loss_curve_, rtol=rtol)
    log_t = on_torch.predict_log_proba(Xt)
    assert isinstance(log_t, torch.Tensor)
    np.testing.assert_allclose(
        log_t.numpy(), np.log(on_numpy.predict_proba(X)), rtol=10 * rtol, atol=1e-6
    )
    assert on_torch.score(Xt, torch.asarray(y)) == pytest.approx(on_numpy.score(X, y))


@needs_torch
def test_numpy_input_on_the_torch_backend_returns_numpy() -> None:
    X, y = _data("regression")
    est = MLPRegressor(
        hidden_layer_sizes=(8,), max_iter=20, random_state=0, backend="torch", device="cpu"
    )
    ref = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        ref.fit(X, y)
    assert est._fitted.net.backend == "torch"  # trained there ...
    pred = est.predict(X)
    assert isinstance(pred, np.ndarray) and pred.shape == (120,)  # ... answers in NumPy
    assert all(isinstance(c, np.ndarray) for c in est.coefs_)
    np.testing.assert_allclose(pred, ref.predict(X), rtol=1e-9, atol=1e-12)
    # a model fitted on NumPy answers torch input in torch (outside array_api_dispatch)
    pred_t = ref.predict(torch.asarray(X))
    assert isinstance(pred_t, torch.Tensor)
    np.testing.assert_allclose(pred_t.numpy(), ref.predict(X), rtol=1e-12)


@needs_torch
def test_array_api_dispatch_refuses_a_different_namespace_at_predict() -> None:
    X, y = _data("binary")
    with config_context(array_api_dispatch=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier((4,), max_iter=5, random_state=0).fit(
            torch.asarray(X), torch.asarray(y)
        )
        with pytest.raises(ValueError, match="must use the same namespace"):
            est.predict(X)
        assert isinstance(est.predict(torch.asarray(X)), torch.Tensor)


@needs_cupy
def test_cupy_inputs_give_the_same_model_as_numpy() -> None:
    import cupy

    X, y = _data("multiclass", n=150)
    est = MLPClassifier((16,), max_iter=30, random_state=0, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        on_numpy = clone(est).fit(X, y)
        on_cupy = clone(est).fit(cupy.asarray(X), cupy.asarray(y))
    proba = on_cupy.predict_proba(cupy.asarray(X))
    assert isinstance(proba, cupy.ndarray)
    np.testing.assert_allclose(proba.get(), on_numpy.predict_proba(X), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(on_cupy.predict(cupy.asarray(X)).get(), on_numpy.predict(X))


# ---------------------------------------------------------------------- composition
def test_pipeline_with_standard_scaler() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0, stratify=y)
    params = dict(hidden_layer_sizes=(16,), max_iter=40, random_state=0, learning_rate_init=0.01)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**params))
    reference = make_pipeline(StandardScaler(), SkMLPClassifier(**params))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(X_tr, y_tr)
        reference.fit(X_tr, y_tr)
    assert pipe.score(X_te, y_te) > 0.93
    assert pipe.score(X_te, y_te) == reference.score(X_te, y_te)
    assert pipe.predict_proba(X_te).shape == (len(y_te), 2)


def _grid_search(X, y) -> GridSearchCV:
    search = GridSearchCV(
        MLPClassifier(max_iter=25, random_state=0, learning_rate_init=0.01),
        {"hidden_layer_sizes": [(4,), (16,)], "alpha": [1e-4, 1.0]},
        cv=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return search.fit(X, y)


def test_grid_search_on_numpy() -> None:
    X, y = _data("multiclass", n=150)
    search = _grid_search(X, y)
    assert search.best_params_["hidden_layer_sizes"] == (16,)
    assert search.best_score_ > 0.8


@needs_torch
@pytest.mark.parametrize("dispatch", [False, True])
def test_grid_search_on_torch_tensors(dispatch: bool) -> None:
    X, y = _data("multiclass", n=150)
    with config_context(array_api_dispatch=dispatch):
        on_torch = _grid_search(torch.asarray(X), torch.asarray(y))
        pred = on_torch.predict(torch.asarray(X))
    on_numpy = _grid_search(X, y)
    assert isinstance(pred, torch.Tensor)
    assert on_torch.best_params_ == on_numpy.best_params_
    np.testing.assert_allclose(
        on_torch.cv_results_["mean_test_score"], on_numpy.cv_results_["mean_test_score"]
    )
    assert isinstance(on_torch.best_estimator_.coefs_[0], torch.Tensor)


# ---------------------------------------------------------------------- conventions
def test_clone_pickle_and_params() -> None:
    est = MLPClassifier((5, 3), activation="tanh", solver="sgd", backend="numpy", dtype="float32")
    params = est.get_params()
    assert params["hidden_layer_sizes"] == (5, 3) and params["dtype"] == "float32"
    assert params["backend"] == "numpy" and params["device"] is None
    assert clone(est).get_params() == params
    est.set_params(alpha=0.5, max_iter=5)
    assert est.alpha == 0.5
    X, y = _data("binary")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.coefs_[0].dtype == np.float32 and est.predict_proba(X).dtype == np.float32
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))
    assert not hasattr(clone(est), "coefs_")


@needs_torch
def test_pickle_a_model_fitted_on_torch() -> None:
    X, y = _data("regression")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(
            torch.asarray(X), torch.asarray(y)
        )
    restored = pickle.loads(pickle.dumps(est))
    out = restored.predict(torch.asarray(X))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), est.predict(torch.asarray(X)).numpy())


def test_fitted_attributes_and_shapes() -> None:
    X, y = _data("multilabel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier((6,), max_iter=7, random_state=0).fit(X, y)
    assert est.n_features_in_ == 4 and est.n_iter_ == 7 and len(est.loss_curve_) == 7
    assert est.loss_ == est.loss_curve_[-1] and est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.out_activation_ == "logistic"
    assert [c.shape for c in est.coefs_] == [(4, 6), (6, 3)]
    assert [b.shape for b in est.intercepts_] == [(6,), (3,)]
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])
    assert est.predict(X).shape == (120, 3) and est.predict_proba(X).shape == (120, 3)
    log_proba = est.predict_log_proba(X)
    np.testing.assert_allclose(np.exp(log_proba), est.predict_proba(X), rtol=1e-12)


def test_predict_log_proba_stays_finite_when_probabilities_round_to_zero() -> None:
    X, y = _data("binary")
    est = MLPClassifier((4,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    far = X * 1e4  # saturates the output: exp(log_proba) rounds to 0 or 1
    log_proba = est.predict_log_proba(far)
    assert np.all(np.isfinite(log_proba))
    np.testing.assert_allclose(np.exp(log_proba), est.predict_proba(far), rtol=1e-9, atol=1e-15)
    assert np.min(log_proba) < -100  # where predict_proba holds an exact 0


def test_warm_start_and_partial_fit_rules() -> None:
    X, y = _data("multiclass")
    est = MLPClassifier((5,), max_iter=3, random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        first = [c.copy() for c in est.coefs_]
        est.fit(X, y)  # continues from the fitted weights
    assert len(est.loss_curve_) == 6 and not np.allclose(first[0], est.coefs_[0])
    with pytest.raises(ValueError, match="warm_start can only be used"):
        est.fit(X[y < 2], y[y < 2])
    fresh = MLPClassifier((5,))
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        fresh.partial_fit(X, y)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(solver="newton"), "'solver' parameter"),
        (dict(activation="softplus"), "'activation' parameter"),
        (dict(learning_rate="cosine"), "'learning_rate' parameter"),
        (dict(hidden_layer_sizes=(3, 0)), "hidden_layer_sizes must be > 0"),
        (dict(momentum=1.5), "'momentum' parameter"),
        (dict(beta_2=1.0), "'beta_2' parameter"),
        (dict(batch_size=0), "'batch_size' parameter"),
        (dict(dtype="float16"), "'dtype' parameter"),
        (dict(backend="tensorflow"), "backend"),
    ],
)
def test_invalid_parameters_are_reported_at_fit(params: dict, message: str) -> None:
    X, y = _data("binary")
    with pytest.raises(ValueError, match=message):
        MLPClassifier(max_iter=2, **params).fit(X, y)


def test_sample_weight_changes_the_fit_and_is_validated() -> None:
    X, y = _data("binary")
    w = np.where(y == 1, 5.0, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = MLPClassifier((4,), max_iter=10, random_state=0).fit(X, y)
        weighted = MLPClassifier((4,), max_iter=10, random_state=0).fit(X, y, sample_weight=w)
    assert weighted.predict(X).mean() > plain.predict(X).mean()  # leans to the heavy class
    with pytest.raises(ValueError, match="non-negative"):
        MLPClassifier(max_iter=2).fit(X, y, sample_weight=-w)


def test_estimators_are_reexported_lazily() -> None:
    import xpnet.sklearn as module

    assert xpnet.MLPClassifier is module.MLPClassifier
    assert xpnet.MLPRegressor is module.MLPRegressor
    with pytest.raises(AttributeError, match="no attribute 'MLPRanker'"):
        xpnet.MLPRanker  # noqa: B018


def test_verbose_prints_scikit_learn_style_progress(capsys: pytest.CaptureFixture) -> None:
    X, y = _data("binary", n=60)
    est = MLPClassifier(
        (4,), solver="sgd", learning_rate="adaptive", tol=0.5, n_iter_no_change=1,
        max_iter=4, verbose=True, random_state=0, early_stopping=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Validation score: " in out
    assert "did not improve more than tol=0.500000 for 1 consecutive epochs. Setting" in out
