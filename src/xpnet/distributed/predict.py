"""Block-wise prediction on Dask arrays: lazy ``map_blocks`` graphs run on the workers.

Each block is checked as :meth:`xpnet.MLP.forward` checks its input and pushed through
the network with the block's own namespace (:func:`~xpnet.distributed.chunks.predict_block`);
nothing is computed until the caller computes the result, and nothing comes to the driver
but what the caller asks for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .chunks import predict_block
from .engine import check_features, is_dask_array, require_dask

__all__ = ["forward", "predict", "predict_proba"]


def _blockwise(net: Any, X: Any, what: str) -> Any:
    require_dask()
    if not is_dask_array(X):
        raise TypeError(f"X must be a dask array here; got {type(X).__name__}")
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    X = check_features(X, n_in)
    arch = net.architecture
    params = [np.asarray(net.array_backend.to_numpy(p)) for p in net.flat_params]
    task = arch.output.task
    args = (params, arch, net.dtype, n_in, what)
    dtype = np.dtype(net.dtype if what == "proba" or task == "regression" else np.int64)
    if what == "predict" and (n_out == 1 or task == "multiclass"):
        return X.map_blocks(predict_block, *args, drop_axis=1, dtype=dtype)
    return X.map_blocks(predict_block, *args, chunks=(X.chunks[0], (n_out,)), dtype=dtype)


def forward(net: Any, X: Any) -> Any:
    """Lazy output activations ``(m, n_outputs)`` of ``net`` on dask array ``X``.

    Parameters
    ----------
    net : MLP
        The network.
    X : dask array ``(m, n_features)``
        The inputs, chunked along rows.
    """
    return _blockwise(net, X, "proba")


predict_proba = forward


def predict(net: Any, X: Any) -> Any:
    """Lazy :meth:`xpnet.MLP.predict` of ``net`` on dask array ``X`` (int64 classes).

    Parameters
    ----------
    net : MLP
        The network.
    X : dask array ``(m, n_features)``
        The inputs, chunked along rows.
    """
    return _blockwise(net, X, "predict")
