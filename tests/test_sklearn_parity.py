"""xpnet's estimators beside scikit-learn's: the same trajectory for every solver × task
× dense/sparse input, the same constructor, the same accepted parameter values, the same
fitted (public and private) state and the same messages.

Every comparison fits both estimators with the same data, parameters and
``random_state`` and compares what they fitted (float64 on NumPy): weights, biases, loss
curve, validation scores to 1e-7 relative, ``n_iter_`` exactly.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (xpnet[sklearn])")
scipy_sparse = pytest.importorskip("scipy.sparse", reason="scipy is not installed")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402

from xpnet import MLPClassifier, MLPRegressor  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (xpnet[torch])")

RTOL = 1e-7

TASKS = ("binary", "multiclass", "multilabel", "regression", "regression2", "poisson")
SOLVERS = {
    "sgd": dict(solver="sgd", momentum=0.0, learning_rate_init=0.05),
    "sgd-momentum": dict(
        solver="sgd", momentum=0.8, nesterovs_momentum=False, learning_rate_init=0.05,
        learning_rate="invscaling", power_t=0.3,
    ),
    "sgd-nesterov": dict(solver="sgd", momentum=0.9, learning_rate_init=0.02, batch_size=16),
    "adam": dict(solver="adam", learning_rate_init=0.01, batch_size=25),
    "adam-early-stopping": dict(
        solver="adam", learning_rate_init=0.01, early_stopping=True, validation_fraction=0.2,
        n_iter_no_change=3,
    ),
    "lbfgs": dict(solver="lbfgs"),
    # stopping rules at work: the training loss's tol (n_iter_ < max_iter, on
    # scikit-learn's loss: averaged over outputs for multi-output regression) and
    # L-BFGS's gradient tolerance
    "sgd-stops-on-tol": dict(
        solver="sgd", learning_rate_init=0.05, tol=3e-3, n_iter_no_change=2, max_iter=60
    ),
    "lbfgs-converges": dict(solver="lbfgs", tol=1e-2, max_iter=40),
}


def make_data(task: str, n: int = 60, seed: int = 0):
    """Small data with half of X's entries zero (so the sparse form is really sparse)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)) * (rng.random((n, 5)) < 0.5)
    if task == "binary":
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
    elif task == "multiclass":
        y = np.digitize(X[:, 0] - X[:, 2], [-0.4, 0.4])
    elif task == "multilabel":
        y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 3] > 0, X[:, 4] > 0.2], axis=1).astype(int)
    elif task == "regression":
        y = X[:, 0] - 2 * X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=n)
    elif task == "regression2":
        y = np.stack([X[:, 0] - X[:, 1], np.sin(X[:, 2]), X[:, 3] * X[:, 4]], axis=1)
    else:  # poisson counts
        y = rng.poisson(np.exp(0.6 * X[:, 0] - 0.4 * X[:, 1])).astype(float)
    return X, y


def estimators(task: str, **params):
    if task in ("regression", "regression2", "poisson"):
        loss = "poisson" if task == "poisson" else "squared_error"
        return MLPRegressor(loss=loss, **params), SkMLPRegressor(loss=loss, **params)
    return MLPClassifier(**params), SkMLPClassifier(**params)


def max_relative_difference(ours, theirs) -> float:
    """Largest ``|a - b| / max|b|`` over the arrays (each array relative to its scale)."""
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        if scale > 0:
            worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    return worst


def fit_pair(task: str, solver: str, sparse: str | None, max_iter: int = 12):
    X, y = make_data(task)
    if sparse is not None:
        X = getattr(scipy_sparse, f"{sparse}_matrix")(X)
    params = dict(
        hidden_layer_sizes=(6, 4), activation="tanh", alpha=1e-3, random_state=3,
        max_iter=max_iter,
    )
    params.update(SOLVERS[solver])
    ours, theirs = estimators(task, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    return X, y, ours, theirs


def compare(ours, theirs, X) -> dict[str, float]:
    """Assert the fitted state is scikit-learn's; return the max relative differences."""
    assert ours.n_iter_ == theirs.n_iter_
    diffs = {
        "weights": max_relative_difference(
            ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_
        ),
        "loss_": max_relative_difference([ours.loss_], [theirs.loss_]),
    }
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * np.max(np.abs(b)))
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=RTOL)
    if hasattr(theirs, "loss_curve_"):
        diffs["loss_curve_"] = max_relative_difference([ours.loss_curve_], [theirs.loss_curve_])
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=RTOL)
        assert ours.t_ == theirs.t_
        assert ours._no_improvement_count == theirs._no_improvement_count
        if theirs.best_loss_ is None:
            assert ours.best_loss_ is None
        else:
            assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=RTOL)
    else:  # lbfgs: scikit-learn keeps no curve, no best loss, no stopping counter
        for name in ("loss_curve_", "best_loss_", "_no_improvement_count", "validation_scores_"):
            assert not hasattr(ours, name), name
        assert ours._coef_indptr == theirs._coef_indptr
        assert ours._intercept_indptr == theirs._intercept_indptr
    if getattr(theirs, "validation_scores_", None) is not None:
        diffs["validation_scores_"] = max_relative_difference(
            [ours.validation_scores_], [theirs.validation_scores_]
        )
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=RTOL)
        assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_)
    elif hasattr(theirs, "validation_scores_"):
        assert ours.validation_scores_ is None and ours.best_validation_score_ is None
    # private state scikit-learn's tools read: best weights (the initial ones without
    # early stopping), the random state, the output activation
    diffs["_best_coefs"] = max_relative_difference(
        ours._best_coefs + ours._best_intercepts, theirs._best_coefs + theirs._best_intercepts
    )
    assert diffs["_best_coefs"] <= RTOL
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_outputs_ == theirs.n_outputs_ and ours.n_layers_ == theirs.n_layers_
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)
    return diffs


@pytest.mark.parametrize("sparse", [None, "csr"], ids=["dense", "csr"])
@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("task", TASKS)
def test_trajectory_equals_scikit_learn(task: str, solver: str, sparse: str | None) -> None:
    X, _, ours, theirs = fit_pair(task, solver, sparse)
    diffs = compare(ours, theirs, X)
    assert max(diffs.values()) <= RTOL, diffs


# ---------------------------------------------------------------------- constructor
@pytest.mark.parametrize(
    ("ours", "theirs", "extra"),
    [
        (MLPClassifier, SkMLPClassifier,
         ["backend", "device", "dtype", "class_weight", "threads", "compile", "dropout"]),
        (MLPRegressor, SkMLPRegressor,
         ["backend", "device", "dtype", "threads", "compile", "dropout"]),
    ],
)
def test_signature_is_scikit_learns_plus_backend_device_dtype(ours, theirs, extra) -> None:
    """Every parameter of scikit-learn's constructor, in the same order, of the same kind
    (positional or keyword-only) and with the same default; then only backend, device,
    dtype (and the classifier's class_weight, issue 13), threads and compile (issue 9),
    and dropout (issue 13)."""
    mine = list(inspect.signature(ours.__init__).parameters.values())[1:]
    reference = list(inspect.signature(theirs.__init__).parameters.values())[1:]
    assert [(p.name, p.kind, p.default) for p in mine[: len(reference)]] == [
        (p.name, p.kind, p.default) for p in reference
    ]
    assert [p.name for p in mine[len(reference):]] == extra
    assert ours().get_params().keys() - theirs().get_params().keys() == set(extra)


# ---------------------------------------------------------------------- parameter values
def _outcome(estimator, X, y):
    """``None`` when fit accepts the parameters, else the exception's type and message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(X, y)
    except Exception as exc:  # noqa: BLE001 - compared with scikit-learn's
        return type(exc), str(exc)
    return None


PARAMETER_VALUES = [
    ("n_iter_no_change", np.inf), ("n_iter_no_change", 0), ("n_iter_no_change", 2.5),
    ("n_iter_no_change", -np.inf), ("n_iter_no_change", np.int64(3)),
    ("validation_fraction", 0.0), ("validation_fraction", 1.0), ("validation_fraction", -0.1),
    ("momentum", 1.0), ("momentum", 1.01), ("beta_1", 1.0), ("beta_2", 0.0), ("epsilon", 0.0),
    ("alpha", 0), ("alpha", -1e-9), ("alpha", np.inf), ("learning_rate_init", 0.0),
    ("power_t", 0), ("tol", 0), ("tol", -1.0), ("max_iter", 0), ("max_iter", 1.0),
    ("max_fun", 0), ("max_fun", 10), ("max_fun", 2.0), ("batch_size", "auto"),
    ("batch_size", 0), ("batch_size", "big"), ("batch_size", 1.5), ("shuffle", 1),
    ("shuffle", np.bool_(True)), ("warm_start", "yes"), ("early_stopping", 0),
    ("nesterovs_momentum", None), ("verbose", 2), ("verbose", "loud"), ("solver", "lbfgs"),
    ("solver", "newton"), ("activation", "softmax"), ("learning_rate", "optimal"),
    ("hidden_layer_sizes", 3), ("hidden_layer_sizes", [3, 2]), ("hidden_layer_sizes", (3, 0)),
    ("hidden_layer_sizes", 0), ("hidden_layer_sizes", "3"), ("hidden_layer_sizes", (3.0,)),
    ("hidden_layer_sizes", ()), ("hidden_layer_sizes", np.array([2, 3])),
    ("random_state", "seed"),
    ("random_state", np.random.RandomState(0)), ("random_state", -1),
]


@pytest.mark.parametrize(("name", "value"), PARAMETER_VALUES, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_parameter_values_accepted_and_refused_as_scikit_learn(kind, name, value) -> None:
    X, y = make_data("binary" if kind == "classifier" else "regression", n=30)
    base = dict(hidden_layer_sizes=(3,), max_iter=3, random_state=0)
    base[name] = value
    make = (MLPClassifier, SkMLPClassifier) if kind == "classifier" else (
        MLPRegressor, SkMLPRegressor)
    ours, theirs = (cls(**base) for cls in make)
    mine, reference = _outcome(ours, X, y), _outcome(theirs, X, y)
    if reference is None:
        assert mine is None, mine
    else:
        assert mine is not None, f"{name}={value!r} accepted; scikit-learn refuses: {reference}"
        assert mine[0] is reference[0] or issubclass(mine[0], reference[0]), (mine, reference)
        if "parameter of" in reference[1]:
            assert mine[1].replace("xpnet.", "") == reference[1]


def test_loss_parameter_is_validated_like_scikit_learn() -> None:
    X, y = make_data("regression", n=30)
    mine = _outcome(MLPRegressor(loss="absolute_error", max_iter=2), X, y)
    reference = _outcome(SkMLPRegressor(loss="absolute_error", max_iter=2), X, y)
    assert mine == reference and mine is not None


# ---------------------------------------------------------------------- lbfgs
def test_lbfgs_estimators_have_no_partial_fit() -> None:
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    with pytest.raises(AttributeError) as mine:
        MLPClassifier(solver="lbfgs").partial_fit  # noqa: B018
    with pytest.raises(AttributeError) as reference:
        SkMLPClassifier(solver="lbfgs").partial_fit  # noqa: B018
    assert str(mine.value) == str(reference.value)
    assert hasattr(MLPClassifier(solver="sgd"), "partial_fit")


def test_lbfgs_max_fun_and_convergence_warning_as_scikit_learn() -> None:
    X, y = make_data("multiclass")
    for params in [*(dict(max_fun=n, max_iter=200) for n in (2, 3, 5, 7, 12)), dict(max_iter=4)]:
        ours, theirs = estimators("multiclass", solver="lbfgs", random_state=0, **params)
        with warnings.catch_warnings(record=True) as mine:
            warnings.simplefilter("always")
            ours.fit(X, y)
        with warnings.catch_warnings(record=True) as reference:
            warnings.simplefilter("always")
            theirs.fit(X, y)
        assert [(w.category, str(w.message)) for w in mine] == [
            (w.category, str(w.message)) for w in reference
        ]
        assert any(w.category is ConvergenceWarning for w in mine)
        compare(ours, theirs, X)  # the weights are the result's x, wherever SciPy stopped


def test_lbfgs_warm_start_continues_like_scikit_learn() -> None:
    X, y = make_data("regression")
    ours, theirs = estimators("regression", solver="lbfgs", warm_start=True, max_iter=5,
                              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            ours.fit(X, y)
            theirs.fit(X, y)
    compare(ours, theirs, X)


def test_core_fit_lbfgs_is_full_batch_lbfgs() -> None:
    """MLP.fit(optimizer="lbfgs") minimises the core's loss; the history has one loss per
    L-BFGS iteration, decreasing, and refuses mini-batches."""
    import xpnet

    X, y = make_data("binary")
    net = xpnet.MLP([5, 6, 1], activation="tanh", output="sigmoid", seed=0)
    start = float(net.loss(X, y))
    with pytest.warns(RuntimeWarning, match="L-BFGS did not converge"):
        history = net.fit(X, y, epochs=8, optimizer="lbfgs")
    assert history.n_iter == len(history.loss) == 8 and not history.converged
    assert history.loss[-1] < history.loss[0] < start
    assert float(net.loss(X, y)) == pytest.approx(history.loss[-1], rel=1e-12)
    with pytest.raises(ValueError, match="batch_size must be None"):
        net.fit(X, y, batch_size=10, optimizer="lbfgs")


@needs_torch
@pytest.mark.parametrize("solver", ["sgd-nesterov", "adam-early-stopping", "lbfgs"])
@pytest.mark.parametrize("task", TASKS)
def test_torch_float64_tensors_follow_the_numpy_trajectory(task: str, solver: str) -> None:
    """The same fit from float64 torch tensors (CPU) as from NumPy, within the
    cross-backend tolerance (rtol 1e-9, each array relative to its largest entry)."""
    X, y = make_data(task)
    params = dict(hidden_layer_sizes=(6, 4), activation="tanh", alpha=1e-3, random_state=3,
                  max_iter=12)
    params.update(SOLVERS[solver])
    on_numpy, on_torch = estimators(task, **params)[0], estimators(task, **params)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        on_numpy.fit(X, y)
        on_torch.fit(torch.asarray(X), torch.asarray(y))
    assert isinstance(on_torch.coefs_[0], torch.Tensor)
    assert on_torch.coefs_[0].dtype == torch.float64
    assert on_torch.n_iter_ == on_numpy.n_iter_
    for a, b in zip(on_torch.coefs_ + on_torch.intercepts_,
                    on_numpy.coefs_ + on_numpy.intercepts_, strict=True):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-9, atol=1e-9 * np.max(np.abs(b)))
    assert on_torch.loss_ == pytest.approx(on_numpy.loss_, rel=1e-9)
    if hasattr(on_numpy, "loss_curve_"):
        np.testing.assert_allclose(on_torch.loss_curve_, on_numpy.loss_curve_, rtol=1e-9)
    if getattr(on_numpy, "validation_scores_", None) is not None:
        np.testing.assert_allclose(on_torch.validation_scores_, on_numpy.validation_scores_)


# ---------------------------------------------------------------------- poisson
def test_poisson_refuses_negative_targets() -> None:
    X, y = make_data("regression", n=30)
    with pytest.raises(ValueError, match="negative which is not allowed for Poisson"):
        MLPRegressor(loss="poisson", max_iter=2).fit(X, y)


# ---------------------------------------------------------------------- state, messages
def test_private_stopping_state_follows_scikit_learn_call_by_call() -> None:
    """partial_fit runs one epoch per call: after each, the counters and best loss that
    scikit-learn's stopping logic keeps are the same."""
    X, y = make_data("regression")
    ours, theirs = estimators("regression", solver="sgd", learning_rate_init=0.05,
                              tol=0.05, random_state=0)
    for _ in range(6):
        ours.partial_fit(X, y)
        theirs.partial_fit(X, y)
        assert ours._no_improvement_count == theirs._no_improvement_count
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=RTOL)
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=RTOL)
    assert theirs._no_improvement_count > 0  # the tol made some epochs count as no gain


def test_early_stopping_state_is_scikit_learns() -> None:
    X, y = make_data("binary")
    ours, theirs = estimators("binary", early_stopping=True, max_iter=8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    assert ours.best_loss_ is None and theirs.best_loss_ is None
    assert ours.coefs_ is ours._best_coefs and theirs.coefs_ is theirs._best_coefs
    compare(ours, theirs, X)


def test_early_stopping_split_message_names_the_class_as_scikit_learn() -> None:
    X, y = make_data("binary", n=40)
    y = np.zeros(40, dtype=int)
    y[0] = 1  # one member: too few to stratify
    ours, theirs = estimators("binary", early_stopping=True, max_iter=2, random_state=0)
    mine, reference = _outcome(ours, X, y), _outcome(theirs, X, y)
    assert reference is not None and "['True']" in reference[1]
    assert mine == reference


# ---------------------------------------------------------------------- sparse X
@pytest.mark.parametrize("form", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array"])
@pytest.mark.parametrize("solver", ["sgd-nesterov", "adam-early-stopping", "lbfgs"])
def test_sparse_X_equals_dense_X(form: str, solver: str) -> None:
    """The same fit from a sparse X as from its dense form, to 1e-12 (float64)."""
    X, y = make_data("multiclass")
    params = dict(hidden_layer_sizes=(6,), random_state=0, max_iter=10, alpha=1e-3,
                  **SOLVERS[solver])
    dense, sparse = MLPClassifier(**params), MLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense.fit(X, y)
        sparse.fit(getattr(scipy_sparse, form)(X), y)
    for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_,
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.max(np.abs(b)))
    np.testing.assert_allclose(
        sparse.predict_proba(scipy_sparse.csr_matrix(X)), dense.predict_proba(X), rtol=1e-12,
        atol=1e-15,
    )


def test_core_mlp_trains_on_sparse_X() -> None:
    import xpnet

    X, y = make_data("binary")
    dense, sparse = (xpnet.MLP([5, 4, 1], activation="relu", seed=1) for _ in range(2))
    h_dense = dense.fit(X, y, epochs=5, batch_size=16, lr=0.1, optimizer="adam")
    h_sparse = sparse.fit(scipy_sparse.csr_matrix(X), y, epochs=5, batch_size=16, lr=0.1,
                          optimizer="adam")
    np.testing.assert_allclose(h_sparse.loss, h_dense.loss, rtol=1e-12)
    for (Wa, ba), (Wb, bb) in zip(sparse.params, dense.params, strict=True):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(ba, bb, rtol=1e-12, atol=1e-14)


@needs_torch
def test_sparse_X_on_a_backend_without_sparse_products_is_refused_with_the_reason() -> None:
    X, y = make_data("binary")
    with pytest.raises(TypeError, match="sparse input trains on the numpy backend"):
        MLPClassifier(max_iter=2, backend="torch").fit(scipy_sparse.csr_matrix(X), y)


SPARSE_MEMORY_SCRIPT = """
import resource, sys, time, tracemalloc, warnings
import numpy as np, scipy.sparse as sp
from xpnet import MLPClassifier
n, nnz = 100_000, 1_000_000
rng = np.random.default_rng(0)
X = sp.csr_matrix(
    (rng.normal(size=nnz), (rng.integers(0, n, nnz), rng.integers(0, n, nnz))), shape=(n, n)
)
y = (np.asarray(X.sum(axis=1)).ravel() > 0).astype(int)
x_mb = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
tracemalloc.start()
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    est = MLPClassifier((8,), solver="sgd", batch_size=5000, max_iter=2, random_state=0)
    est.fit(X, y)
    est.predict(X[:10])
seconds = time.perf_counter() - start
peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
# VmHWM is this program's own peak; ru_maxrss is not: Linux carries the forking
# process's peak across exec, so under a pytest worker grown to 2.5 GB it read 2.5 GB.
try:
    with open("/proc/self/status") as status:
        rss_mb = next(int(line.split()[1]) for line in status
                      if line.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(X.nnz, round(x_mb, 1), round(peak_mb, 1), round(rss_mb), round(seconds, 2))
"""


def test_sparse_100k_by_100k_trains_in_memory_proportional_to_its_non_zeros() -> None:
    """A 100,000 x 100,000 CSR with 10^6 non-zeros (dense: 80,000 MB in float64) trains
    allocating a few times X's own size: X's non-zeros, the first layer's 100,000 x 8
    weights, gradients and momentum (6 MB each), per-batch activations."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", SPARSE_MEMORY_SCRIPT], capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    nnz, x_mb, peak_mb, rss_mb, seconds = result.stdout.split()
    print(f"nnz={nnz} X(csr)={x_mb}MB fit peak allocated={peak_mb}MB "
          f"process peak RSS={rss_mb}MB fit={seconds}s")
    assert int(nnz) >= 990_000
    # dense X alone would be 80,000 MB; what fit allocates is bounded by a small
    # multiple of X's CSR arrays (12 MB) plus the first layer's parameter-sized arrays
    assert float(peak_mb) < 10 * float(x_mb) + 60, (peak_mb, x_mb)
    assert float(rss_mb) < 1500


@needs_torch
def test_lbfgs_moves_one_vector_each_way_per_evaluation_on_torch() -> None:
    """Per L-BFGS function evaluation on torch: one upload (the flat parameters) and one
    read-back (loss and flat gradient together), whatever the number of layers."""
    from torch.overrides import TorchFunctionMode

    import xpnet
    from xpnet._lbfgs import flat_objective, pack

    reads_by_name = {"__float__", "__int__", "__bool__", "__index__", "item", "tolist",
                     "numpy", "__array__", "__complex__"}

    class Traffic(TorchFunctionMode):
        reads = uploads = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if getattr(func, "__name__", "") in reads_by_name:
                Traffic.reads += 1
            elif args and isinstance(args[0], np.ndarray):
                Traffic.uploads += 1
            return func(*args, **(kwargs or {}))

    X, y = make_data("multiclass")
    net = xpnet.MLP([5, 6, 4, 3], activation="tanh", output="softmax", backend="torch",
                    alpha=0.01)
    X_t, Y_t = net.check_XY(X, y)
    objective, flat = flat_objective(net, X_t, Y_t), pack(net)
    objective(flat)  # warm up
    Traffic.reads = Traffic.uploads = 0
    with Traffic():
        for _ in range(5):
            loss, grad = objective(flat)
    assert (Traffic.reads, Traffic.uploads) == (5, 5)
    assert isinstance(loss, float) and grad.shape == flat.shape and grad.dtype == np.float64
