"""The ONNX graph of a network, traced from xpnet's own forward code on ndonnx arrays.

:func:`trace` runs :func:`xpnet.core.hidden_forward` and the output activation (the very
functions ``MLP.forward`` runs) with ndonnx as the array namespace: every operation they
perform becomes a node. Around them, what ``xpnet predict`` does on the host: the
standardisation of the raw features (float64, as xpnet applies it), the class label of each
row and the un-standardised regression target. :mod:`xpnet.onnx._lean` then strips what
ndonnx adds for other runtimes' sake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import core
from ..backends import to_numpy
from ..network import MLP

__all__ = ["Served", "trace"]

# Magnitudes beyond which (X - mean) overflows: xpnet.data.Standardizer divides first there.
_SAFE_MAGNITUDE = 1e154


@dataclass
class Served:
    """What the exported model computes, whatever it came from (MLP, estimator, file).

    ``standardize``/``target``: ``(mean, scale)`` float64 vectors or None. ``labels``: the
    class labels by output index (None: regression, or class indices for a bare MLP).
    ``two_columns``: one sigmoid output reported as ``[1 - p, p]`` (estimators, predict).
    ``input_dtype``: the input tensor's dtype name (float64 for raw model-file columns).
    """

    net: MLP
    input_dtype: str
    standardize: tuple[np.ndarray, np.ndarray] | None = None
    target: tuple[np.ndarray, np.ndarray] | None = None
    labels: np.ndarray | None = None
    two_columns: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)  # JSON values, by key
    #: skl2onnx's conventions: float outputs in this dtype, numeric labels as int64,
    #: a regression prediction always 2-D
    skl2onnx_dtype: str | None = None

    @property
    def task(self) -> str:
        return self.net.output_loss.task


def _constant(ndx: Any, value: Any, dtype: Any) -> Any:
    return ndx.asarray(np.asarray(value, dtype=dtype))


def _standardized(ndx: Any, X: Any, stats: tuple[np.ndarray, np.ndarray]) -> Any:
    """``(X - mean) / scale`` in float64, as :class:`xpnet.data.Standardizer` computes it."""
    mean, scale = (_constant(ndx, v, np.float64) for v in stats)
    if np.all(np.abs(stats[0]) <= _SAFE_MAGNITUDE):
        return (X - mean) / scale
    return X / scale - mean / scale


def _label_values(labels: np.ndarray) -> np.ndarray:
    """Labels as a tensor ONNX can hold: bool, int64, float64 or strings."""
    kind = labels.dtype.kind
    if kind in "iu":
        return labels.astype(np.int64)
    if kind in "bf":
        return labels.astype(np.bool_ if kind == "b" else np.float64)
    return np.asarray([str(v) for v in labels.tolist()], dtype=np.str_)


def _classified(ndx: Any, served: Served, A: Any) -> dict[str, Any]:
    """``label`` and ``probabilities`` of the output activations ``A (N, k)``, by
    ``MLP.predict``'s rule (arg-max; one sigmoid: class 1 when strictly above 0.5)."""
    index_dtype = ndx.int64
    width = served.net.layer_sizes[-1]
    multilabel = served.net.output == "sigmoid" and width > 1
    if served.net.output == "softmax":
        index = ndx.argmax(A, axis=1)
    else:
        index = ndx.astype(A > 0.5, index_dtype)
        if not multilabel:
            index = ndx.reshape(index, (-1,))
    outputs: dict[str, Any] = {"label": index}
    if served.labels is not None and not multilabel:
        labels = _label_values(served.labels)
        if served.skl2onnx_dtype is not None and labels.dtype.kind != "U":
            labels = labels.astype(np.int64)
        outputs["label"] = ndx.take(ndx.asarray(labels), index, axis=0)
    outputs["probabilities"] = _as(ndx, served, ndx.concat([1.0 - A, A], axis=1)
                                   if served.two_columns and width == 1 else A)
    return outputs


def _as(ndx: Any, served: Served, A: Any) -> Any:
    wanted = served.skl2onnx_dtype
    if wanted is None or A.dtype == ndx.from_numpy_dtype(np.dtype(wanted)):
        return A
    return ndx.astype(A, ndx.from_numpy_dtype(np.dtype(wanted)))


def _regressed(ndx: Any, served: Served, A: Any) -> dict[str, Any]:
    """Predictions in the target's units: ``A * scale + mean`` in float64, as predict."""
    if served.target is not None:
        A = ndx.astype(A, ndx.float64) * _constant(ndx, served.target[1], np.float64)
        A = A + _constant(ndx, served.target[0], np.float64)
    if served.skl2onnx_dtype is not None:
        return {"prediction": _as(ndx, served, A)}
    return {"prediction": ndx.reshape(A, (-1,)) if served.net.layer_sizes[-1] == 1 else A}


def trace(served: Served, batch: int | None = None) -> Any:
    """The (naive) ONNX ``ModelProto`` of ``served``: one input ``X (N, n_features)``."""
    import ndonnx as ndx

    net = served.net
    dtype = np.dtype(net.dtype)
    X = ndx.argument(shape=("N" if batch is None else batch, net.layer_sizes[0]),
                     dtype=ndx.from_numpy_dtype(np.dtype(served.input_dtype)))
    A = X
    if served.standardize is not None:
        if A.dtype != ndx.float64:
            A = ndx.astype(A, ndx.float64)
        A = _standardized(ndx, A, served.standardize)
    if A.dtype != ndx.from_numpy_dtype(dtype):
        A = ndx.astype(A, ndx.from_numpy_dtype(dtype))
    params = [_constant(ndx, to_numpy(p), dtype) for p in net.flat_params]
    # xpnet's forward pass itself: the same functions MLP.forward runs on NumPy or torch
    _, Z_out = core.hidden_forward(net.hidden_activations, params, A, ndx)
    A_out = net.output_loss.activation(ndx, Z_out)
    outputs = (_regressed if served.task == "regression" else _classified)(ndx, served, A_out)
    return ndx.build({"X": X}, outputs)
