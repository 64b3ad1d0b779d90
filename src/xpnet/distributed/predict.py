"""Block-wise prediction on Dask arrays: lazy ``map_blocks`` graphs run on the workers.

Each block is checked as :meth:`xpnet.MLP.forward` checks its input and pushed through
the network with the block's own namespace (NumPy, or CuPy for CuPy blocks); nothing is
computed until the caller computes the result, and nothing comes to the driver but what
the caller asks for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as v
from .. import core
from .engine import _host, _worker_backend, check_features, is_dask_array, require_dask

__all__ = ["forward", "predict", "predict_proba"]


def _forward_block(
    block: Any, params: list[np.ndarray], hidden: Any, output: Any, dtype_name: str,
    n_in: int, what: str,
) -> Any:
    """Output activations (``what="proba"``) or predictions of one block (on a worker)."""
    backend = _worker_backend(block)
    xp = backend.xp
    X = v.check_X(backend, block, n_in, backend.dtype(dtype_name))
    _, Z_out = core.hidden_forward(hidden, [xp.asarray(p) for p in params], X, xp)
    A = output.activation(xp, Z_out)
    if what == "proba":
        return A
    if output.task == "multiclass":
        return xp.astype(xp.argmax(A, axis=1), xp.int64)
    if output.task == "binary":
        A = xp.astype(A > 0.5, xp.int64)
    return A[:, 0] if A.shape[1] == 1 else A


def _blockwise(net: Any, X: Any, what: str) -> Any:
    require_dask()
    if not is_dask_array(X):
        raise TypeError(f"X must be a dask array here; got {type(X).__name__}")
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    X = check_features(X, n_in)
    params = [_host(net.array_backend.to_numpy(p)) for p in net._params]
    task = net._output.task
    args = (params, tuple(net._hidden), net._output, net.dtype, n_in, what)
    if what == "proba" or task == "regression":
        dtype = np.dtype(net.dtype)
    else:
        dtype = np.dtype(np.int64)
    if what == "predict" and n_out == 1 or what == "predict" and task == "multiclass":
        return X.map_blocks(_forward_block, *args, drop_axis=1, dtype=dtype)
    return X.map_blocks(_forward_block, *args, chunks=(X.chunks[0], (n_out,)), dtype=dtype)


def forward(net: Any, X: Any) -> Any:
    """Lazy output activations ``(m, n_outputs)`` of ``net`` on dask array ``X``."""
    return _blockwise(net, X, "proba")


predict_proba = forward


def predict(net: Any, X: Any) -> Any:
    """Lazy :meth:`xpnet.MLP.predict` of ``net`` on dask array ``X`` (int64 classes)."""
    return _blockwise(net, X, "predict")
