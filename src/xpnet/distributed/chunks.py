"""What runs on a Dask worker: pure functions of one chunk, its rows and the parameters.

Each takes the chunk's checked data ``(X, Y, w)`` (see :func:`prepare_chunk`), host
parameters ``[W1, b1, ...]`` and an :class:`xpnet.core.Architecture`, computes with the
chunk's own namespace (NumPy, or CuPy for CuPy chunks) and returns host values, which
the driver (:mod:`xpnet.distributed.engine`) adds in chunk order.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import core
from .._class_weight import class_onehot
from .._validation import all_finite, array_module, check_X, check_Y, to_backend
from ..backends import Backend, get_backend
from ..core import Architecture, DropoutStream, hidden_forward

__all__ = ["class_counts", "identity", "loss_and_grads", "outputs", "predict_block",
           "prepare_chunk", "score_sums", "scores", "to_host", "with_class_weight",
           "worker_backend"]

Data = tuple[Any, Any, Any]  # a chunk's checked (X, Y, w); w None without row weights


def worker_backend(chunk: Any) -> Backend:
    """NumPy for NumPy chunks, CuPy for CuPy chunks (a dask_cuda cluster needs no code)."""
    return get_backend("cupy" if array_module(chunk) == "cupy" else "numpy")


def to_host(array: Any) -> np.ndarray:
    """``array`` as a NumPy array (CuPy arrays copied from the device)."""
    return array.get() if array_module(array) == "cupy" else np.asarray(array)


def identity(value: Any) -> Any:
    return value


def prepare_chunk(X: Any, y: Any, w: Any, spec: tuple[Any, ...]) -> Data:
    """One chunk checked and encoded as :meth:`xpnet.MLP.check_XY` would; ``spec`` is
    ``(n_in, n_out, task, dtype name, output name)``."""
    n_in, n_out, task, dtype_name, output_name = spec
    backend = worker_backend(X)
    dtype = backend.dtype(dtype_name)
    Xc = check_X(backend, X, n_in, dtype)
    Yc = check_Y(backend, y, Xc.shape[0], task, n_out, dtype)
    xp = backend.xp
    if output_name == "exp" and bool(xp.any(Yc < 0)):
        raise ValueError(
            "Y for the exp output (Poisson: counts or rates) must be >= 0; got negative values"
        )
    wc = None
    if w is not None:
        wc = xp.astype(to_backend(backend, w, "sample_weight"), dtype)
        if not all_finite(xp, wc):
            raise ValueError("sample_weight contains NaN or infinite values")
        if bool(xp.any(wc < 0)):
            raise ValueError("sample_weight must be non-negative")
    return Xc, Yc, wc


def class_counts(data: Data, task: str) -> np.ndarray:
    """The chunk's rows per class (sums of its one-hot targets' columns; see
    :func:`xpnet._class_weight.class_onehot`), on the host."""
    xp = worker_backend(data[0]).xp
    return to_host(xp.sum(class_onehot(xp, data[1], task), axis=0))


def with_class_weight(data: Data, per_class: np.ndarray, task: str) -> Data:
    """The chunk with its rows weighed by their classes' weights ``per_class`` ``(k,)``
    (times its row weights, if any), as single-process ``fit(class_weight=...)``
    weighs them (:func:`xpnet._class_weight.class_weight_rows`)."""
    X, Y, w = data
    xp = worker_backend(X).xp
    rows = class_onehot(xp, Y, task) @ xp.asarray(per_class, dtype=Y.dtype)
    return X, Y, rows if w is None else w * rows


def _rows(data: Data, rows: Any) -> tuple[Any, Any, Any, Any]:
    """``(xp, X, Y, w)`` of the chunk-local ``rows`` (an index array, a slice, or None
    for the whole chunk)."""
    xp = worker_backend(data[0]).xp
    if rows is None:
        return (xp, *data)
    if isinstance(rows, slice):
        return (xp, *(None if a is None else a[rows, ...] for a in data))
    index = xp.asarray(rows)
    return (xp, *(None if a is None else xp.take(a, index, axis=0) for a in data))


def loss_and_grads(
    data: Data, params: Sequence[Any], rows: Any, total: float, arch: Architecture,
    stream: tuple[Any, int, np.ndarray] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], float, float, int]:
    """One chunk's share of the global batch: ``(Σ loss share, [Σ gradient shares],
    Σ weights of these rows, seconds of math, process id)`` on the host.

    ``total``: the global row count, or 1 with row weights (the driver divides by the
    global weight sum); L2 is left out (the driver adds it once). ``stream``: ``(key,
    step, row numbers)`` of the dropout stream, the rows numbered as single-process
    training numbers them, so the chunk draws exactly the masks those rows get there
    (:mod:`xpnet._dropout`); None without dropout.
    """
    started = time.perf_counter()
    xp, X, Y, w = _rows(data, rows)
    masks = None
    if stream is not None:
        from array_api_compat import device

        key, stream_step, ids = stream
        masks = DropoutStream(key, stream_step, xp.asarray(ids, device=device(X)))
    loss, grads = core.loss_and_grads(
        [xp.asarray(p) for p in params], X, Y, w, total, hidden=arch.hidden,
        output=arch.output, alpha=0.0, xp=xp, dropout=arch.dropout, stream=masks,
    )
    weight_sum = math.nan if w is None else float(xp.sum(w))
    host_loss, host_grads = to_host(loss), [to_host(g) for g in grads]
    return host_loss, host_grads, weight_sum, time.perf_counter() - started, os.getpid()


def outputs(xp: Any, arch: Architecture, params: Sequence[Any], X: Any) -> tuple[Any, Any]:
    """``(Z_out, A_out)`` of checked rows ``X``, without dropout."""
    _, Z_out = hidden_forward(arch.hidden, [xp.asarray(p) for p in params], X, xp)
    return Z_out, arch.output.activation(xp, Z_out)


def _correct(xp: Any, task: str, A: Any, Y: Any) -> Any:
    """Rows classified right: the arg-max for softmax outputs, every output on the right
    side of 0.5 for sigmoid ones (subset accuracy for multi-label)."""
    if task == "multiclass":
        return xp.argmax(A, axis=1) == xp.argmax(Y, axis=1)
    return xp.all((A > 0.5) == (Y > 0.5), axis=1)


def score_sums(
    data: Data, params: Sequence[Any], rows: Any, arch: Architecture, mean: Any,
) -> tuple[Any, ...]:
    """Partial sums of the validation score (``xpnet.train.validation_score``) and loss
    over one chunk's rows.

    Regression: ``(Σ w (Y - A)², Σ w (Y - mean)², all A finite, Σ w ℓ)``, per output
    column (``mean`` given: second pass) or ``(Σ w Y, Σ w)`` (``mean`` None: first pass,
    no network needed). Classification: ``(Σ w·correct, Σ w, Σ w ℓ)``. ``ℓ`` is the
    row's loss (the training loss, without the L2 term).
    """
    xp, X, Y, w = _rows(data, rows)
    weights = xp.ones((Y.shape[0],), dtype=Y.dtype) if w is None else w
    column = xp.reshape(weights, (-1, 1))
    if arch.output.task == "regression" and mean is None:
        return to_host(xp.sum(column * Y, axis=0)), float(xp.sum(weights))
    Z, A = outputs(xp, arch, params, X)
    loss = float(arch.output.loss(xp, Z, A, Y, column))  # Σ w ℓ (the weights unnormalised)
    if arch.output.task == "regression":
        mean = xp.asarray(mean)
        num = xp.sum(column * (Y - A) ** 2, axis=0)
        den = xp.sum(column * (Y - mean) ** 2, axis=0)
        return to_host(num), to_host(den), bool(xp.all(xp.isfinite(A))), loss
    correct = xp.astype(_correct(xp, arch.output.task, A, Y), A.dtype)
    return float(xp.sum(correct * weights)), float(xp.sum(weights)), loss


def scores(
    data: Data, params: Sequence[Any], arch: Architecture, target_mean: float,
    target_scale: float,
) -> tuple[float, ...]:
    """``(rows, Σ loss, Σ correct, Σ squared error, Σ y, Σ y²)`` of one chunk (the
    evaluation's :func:`xpnet.metrics.score`), the regression sums in the target's
    original units."""
    xp, X, Y, _ = _rows(data, None)
    Z_out, _ = outputs(xp, arch, params, X)
    ones = xp.ones((X.shape[0], 1), dtype=X.dtype)
    A, loss = arch.output.forward_and_loss(xp, Z_out, Y, ones)  # weights 1: the sum of losses
    rows = float(X.shape[0])
    if arch.output.task == "regression":
        pred = to_host(A)[:, 0].astype(np.float64) * target_scale + target_mean
        true = to_host(Y)[:, 0].astype(np.float64) * target_scale + target_mean
        return (rows, float(loss), 0.0, float(np.sum((pred - true) ** 2)),
                float(np.sum(true)), float(np.sum(true * true)))
    correct = to_host(_correct(xp, arch.output.task, A, Y))
    return rows, float(loss), float(np.sum(correct)), 0.0, 0.0, 0.0


def predict_block(
    block: Any, params: Sequence[Any], arch: Architecture, dtype_name: str, n_in: int,
    what: str,
) -> Any:
    """Output activations (``what="proba"``) or predictions of one block, checked as
    :meth:`xpnet.MLP.forward` checks its input."""
    backend = worker_backend(block)
    xp = backend.xp
    _, A = outputs(xp, arch, params, check_X(backend, block, n_in, backend.dtype(dtype_name)))
    if what == "proba":
        return A
    if arch.output.task == "multiclass":
        return xp.astype(xp.argmax(A, axis=1), xp.int64)
    if arch.output.task == "binary":
        A = xp.astype(A > 0.5, xp.int64)
    return A[:, 0] if A.shape[1] == 1 else A
