"""The scikit-learn estimators on Dask arrays: targets encoded on the workers, class
weights, full-batch L-BFGS, block-wise prediction (``ParallelPostFit``-style) and scores.

``MLPClassifier``/``MLPRegressor`` call these when handed a Dask array; the training
itself goes through :func:`xpnet.train.fit`, which hands Dask input to
:func:`xpnet.distributed.fit` (``solver="lbfgs"``: :func:`full_batch`, a
:class:`~xpnet.distributed.DaskSource` under SciPy's optimiser on the driver). Nothing
here brings ``X`` to the driver: the classifier's ``classes_`` come from one pass of
per-chunk ``np.unique`` on the cluster (:func:`xpnet.distributed.engine.unique_values`),
the targets are binarised chunk by chunk, ``class_weight="balanced"`` counts the classes
block-wise (per-class weights by scikit-learn's ``compute_class_weight`` on the driver,
then picked per row on the workers), and predictions are ``map_blocks`` graphs in which
each block runs the estimator's own host method (same code, same numbers as NumPy input).

Differences from host input: early stopping's validation split is drawn by row index from
the estimator's ``random_state`` exactly as ``train_test_split`` draws an unstratified
split (the classifier's stratified split, for a single-output target, would need all
labels on the driver). ``score`` returns a float, as scikit-learn's, computed block-wise
on the cluster (:func:`score`); :func:`lazy_score` is the lazy 0-d form.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._client import client_for, current_client
from .engine import DaskSource, is_dask_array, network_options, require_dask, unique_values

__all__ = [
    "binarize_blocks", "check_supported", "class_weight_rows", "compute", "dask_labels",
    "encode_regressor_targets", "full_batch", "lazy_method", "lazy_score", "score",
    "validate_X",
]


def compute(collection: Any) -> Any:
    """Compute a (small) Dask result on the current cluster when there is one."""
    try:
        client = current_client()
    except ImportError:
        return collection.compute()
    return collection.compute() if client is None else client.compute(collection).result()


def check_supported(est: Any, y: Any, sample_weight: Any) -> None:
    """Refuse, before anything is touched, what the Dask path cannot do: nothing is left
    but a missing dask/distributed (every solver, ``class_weight`` and multi-label
    targets train on the cluster)."""
    require_dask()


def validate_X(est: Any, X: Any, reset: bool) -> tuple[Any, None, None, str]:
    """Shape checks only (``n_features_in_``); the values are checked on the workers."""
    from sklearn.utils.validation import validate_data

    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead (shape {tuple(X.shape)}). "
            "Reshape your data with X.reshape(-1, 1) for a single feature."
        )
    validate_data(est, X, reset=reset, skip_check_array=True)
    return X, None, None, "float32" if X.dtype == np.float32 else "float64"


def _check_rows(y: Any, n_samples: int, too_many_axes: bool = False) -> None:
    if too_many_axes or y.ndim == 0 or y.shape[0] != n_samples:  # scikit-learn's words
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: "
            f"[{n_samples}, {y.shape[0] if y.ndim else 0}]"
        )


def _binarize(block: np.ndarray, binarizer: Any) -> np.ndarray:
    return np.asarray(binarizer.transform(block), dtype=np.float64)


def dask_labels(y: Any, n_samples: int) -> tuple[Any, np.ndarray]:
    """``(y, labels)`` for Dask class labels ``y``: for a column, its sorted distinct
    labels; for a matrix (multi-label indicator, or a multi-output target scikit-learn
    refuses), a small stand-in with the same distinct values and columns (row ``i`` all
    value ``i``), which scikit-learn's target checks and ``LabelBinarizer.fit`` see as
    they see ``y``. The values come from one pass of per-chunk ``np.unique`` on the
    cluster (they stay there)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    _check_rows(y, n_samples, too_many_axes=y.ndim > 2)
    values = unique_values(y)
    if y.ndim == 1:
        return y, values
    return y.rechunk({1: -1}), np.repeat(values[:, None], y.shape[1], axis=1)


def binarize_blocks(y: Any, binarizer: Any) -> Any:
    """``(m, n_outputs)`` 0/1 targets as a lazy Dask array, binarised chunk by chunk by
    the classifier's fitted ``LabelBinarizer`` (a multi-label ``y``: its columns)."""
    if y.ndim == 2:
        return y.map_blocks(_binarize, binarizer, dtype=np.float64,
                            chunks=(y.chunks[0], (y.shape[1],)))
    n_out = 1 if len(binarizer.classes_) <= 2 else len(binarizer.classes_)
    return y.map_blocks(
        _binarize, binarizer, dtype=np.float64, chunks=(y.chunks[0], (n_out,)), new_axis=1
    )


def _class_rows(Y: np.ndarray, tables: np.ndarray, multilabel: bool) -> np.ndarray:
    """One block's row weights: ``tables[0][class]`` (one output), or the product over
    the outputs of ``tables[k][Y[:, k]]`` (multi-label: ``compute_sample_weight``'s)."""
    if multilabel:
        index = Y.astype(np.intp)
        per_output = np.stack([tables[k][index[:, k]] for k in range(Y.shape[1])])
        return np.prod(per_output, axis=0, dtype=np.float64)
    index = Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0].astype(np.intp)
    return np.asarray(tables[0][index], dtype=np.float64)


def class_weight_rows(Y: Any, class_weight: Any, classes: np.ndarray, multilabel: bool) -> Any:
    """``(m,)`` row weights of the classifier's ``class_weight`` for encoded Dask targets
    ``Y`` ``(m, n_outputs)``, lazily, as the host path computes them
    (``compute_class_weight`` per row's class, or for multi-label targets
    ``compute_sample_weight``'s product over the outputs): the class counts from one
    block-wise sum, the per-class weights by scikit-learn's own function on the driver
    (``"balanced"``: each class once, weighed by its count, is the same ``bincount``),
    then each block picks its rows' weights."""
    from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

    balanced = isinstance(class_weight, str)
    m = float(Y.shape[0])
    ones = np.asarray(compute(Y.sum(axis=0)), dtype=np.float64)  # integer-valued: exact
    if multilabel:
        counts = np.stack([m - ones, ones], axis=1)  # (outputs, 2): rows of 0, rows of 1
        present = counts > 0
        # the classes of each output as y has them, for scikit-learn's own checks
        compute_sample_weight(class_weight, np.stack([np.where(present[:, 0], 0, 1),
                                                      np.where(present[:, 1], 1, 0)]))
        tables = np.zeros(counts.shape)
        for k, cw in enumerate([class_weight] * len(ones) if balanced else class_weight):
            labels = np.flatnonzero(present[k])
            tables[k, labels] = compute_class_weight(
                cw, classes=labels, y=labels, sample_weight=counts[k, labels] if balanced else None)
    else:
        counts = np.asarray([m - ones[0], ones[0]]) if Y.shape[1] == 1 else ones
        tables = np.asarray(compute_class_weight(
            class_weight, classes=classes, y=classes,
            sample_weight=counts if balanced else None), dtype=np.float64)[None, :]
    return Y.map_blocks(_class_rows, tables, multilabel, drop_axis=1, dtype=np.float64)


@contextlib.contextmanager
def full_batch(net: Any, X: Any, Y: Any, sample_weight: Any) -> Iterator[DaskSource]:
    """A prepared :class:`~xpnet.distributed.DaskSource` of all rows for SciPy's L-BFGS
    (:func:`xpnet.training.lbfgs.minimize_lbfgs`) on the current client (or a
    ``LocalCluster`` for the block): each evaluation one pass of chunk tasks."""
    with client_for(None) as client:
        source = DaskSource(client, X, Y, sample_weight, **network_options(net))
        source.prepare(None, False, 0.1)
        yield source


def encode_regressor_targets(y: Any, n_samples: int) -> Any:
    """``(m, n_outputs)`` float64 targets as a lazy Dask array (checked on the workers)."""
    y = y.astype(np.float64)
    _check_rows(y, n_samples, too_many_axes=y.ndim > 2)
    return y[:, None] if y.ndim == 1 else y


def _run_method(block: Any, state: bytes, method: str) -> Any:
    """One block through the estimator's own host method (on a worker)."""
    est = pickle.loads(state)
    return np.asarray(getattr(est, method)(block))


def lazy_method(est: Any, X: Any, method: str) -> Any:
    """``est.<method>(X)`` for a Dask ``X``: a lazy Dask array, block by block.

    The estimator is pickled when the graph is built, so refitting it afterwards does not
    change a result computed later."""
    require_dask()
    from sklearn.base import is_classifier
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est)
    validate_X(est, X, reset=False)
    X = X.rechunk({1: -1})
    state = pickle.dumps(est)
    # multi-label: the one kind of classifier with several sigmoid outputs
    multilabel = est.out_activation_ == "logistic" and est.n_outputs_ > 1
    dtype = est.coefs_[0].dtype
    if method != "predict":  # predict_proba, predict_log_proba
        width = est.n_outputs_ if multilabel else len(est.classes_)
    elif is_classifier(est):
        width = est.n_outputs_ if multilabel else None
        dtype = np.dtype(np.int64) if multilabel else est.classes_.dtype
    else:
        width = est.n_outputs_ if est.n_outputs_ > 1 else None
    if width is None:
        return X.map_blocks(_run_method, state, method, drop_axis=1, dtype=dtype)
    return X.map_blocks(
        _run_method, state, method, chunks=(X.chunks[0], (width,)), dtype=dtype
    )


def score(est: Any, X: Any, y: Any, sample_weight: Any = None) -> float:
    """:func:`lazy_score` computed on the cluster: a float, as scikit-learn's ``score``."""
    return float(compute(lazy_score(est, X, y, sample_weight)))


def lazy_score(est: Any, X: Any, y: Any, sample_weight: Any = None) -> Any:
    """Accuracy (classifier) or R² averaged over outputs (regressor) as a lazy 0-d Dask
    array computed block-wise (scikit-learn's ``accuracy_score``/``r2_score``)."""
    import dask.array as da
    from sklearn.base import is_classifier

    predicted = lazy_method(est, X, "predict")
    chunks = predicted.chunks[0]

    def aligned(a: Any) -> Any:
        a = a if is_dask_array(a) else da.from_array(np.asarray(a))
        return a.rechunk((chunks,) + ((-1,) * (a.ndim - 1)))

    y = aligned(y)
    weight = None if sample_weight is None else aligned(sample_weight).astype(np.float64)
    if is_classifier(est):
        correct = predicted == y
        if correct.ndim == 2:  # multi-label: subset accuracy
            correct = correct.all(axis=1)
        correct = correct.astype(np.float64)
        if weight is None:
            return correct.mean()
        return (correct * weight).sum() / weight.sum()
    y = y.astype(np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if predicted.ndim == 1:
        predicted = predicted[:, None]
    if weight is None:
        w = da.ones((y.shape[0], 1), chunks=(chunks, (1,)))
    else:
        w = weight[:, None]
    mean = (w * y).sum(axis=0) / w.sum()
    num = (w * (y - predicted) ** 2).sum(axis=0)
    den = (w * (y - mean) ** 2).sum(axis=0)
    # r2_score's force_finite: a constant target scores 1 when predicted exactly, else 0
    safe = da.where(den == 0, 1.0, den)
    per_output = da.where(den == 0, da.where(num == 0, 1.0, 0.0), 1.0 - num / safe)
    return per_output.mean()
