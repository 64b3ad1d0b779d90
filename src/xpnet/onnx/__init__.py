"""ONNX export: a trained network as a graph any ONNX runtime serves, without xpnet.

``export_onnx(model, path)`` takes an :class:`xpnet.MLP`, a fitted
:class:`xpnet.MLPClassifier`/:class:`xpnet.MLPRegressor` or a model file; ``xpnet export``
is the command line. The graph is traced from xpnet's own forward code on ndonnx arrays
(:mod:`xpnet.onnx._graph`) and made lean (:mod:`xpnet.onnx._lean`). Importing this module
also registers xpnet's estimators with skl2onnx, when it is installed, so that
``skl2onnx.to_onnx`` converts pipelines holding them (:mod:`xpnet.onnx._skl2onnx`).

Needs the ``onnx`` extra (``pip install 'xpnet[onnx]'``: ndonnx, onnx, onnxruntime).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .._version import __version__
from ._graph import Served, trace
from ._sources import served

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "OnnxUnavailableError", "Served", "build",
           "compare", "export_onnx", "require", "served", "xpnet_outputs"]

#: The opset written by default: ndonnx's (its operators are those of opset 21).
DEFAULT_OPSET = 21
#: The oldest opset whose operators mean what the graph needs (ReduceMax's axes input).
MIN_OPSET = 18


class OnnxUnavailableError(ImportError):
    """ndonnx/onnx (or onnxruntime, for checks) are not installed."""


def require(*modules: str) -> None:
    """Import ``modules`` or raise :class:`OnnxUnavailableError` naming the extra."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise OnnxUnavailableError(
                f"ONNX export needs {name}, which is not installed ({exc}); "
                "install it with: pip install 'xpnet[onnx]'") from None


def _checked_opset(opset: Any) -> int:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, newest)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest} (the newest "
                         f"the installed onnx {onnx.__version__} writes); got {opset!r}")
    return int(opset)


def _metadata(model: Any, spec: Served) -> None:
    props = {"xpnet_version": __version__, "task": spec.task, "input_dtype": spec.input_dtype,
             "network": f"{list(spec.net.layer_sizes)} {'-'.join(spec.net.activations)} "
                        f"-> {spec.net.output} ({spec.net.dtype})"}
    for key, value in spec.metadata.items():
        if value is not None:
            props[key] = value if isinstance(value, str) else json.dumps(value)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def build(model: Any, *, batch: int | None = None, opset: int | None = None) -> Any:
    """The lean, checked ONNX ``ModelProto`` of ``model`` (see :func:`export_onnx`; a
    :class:`Served` from :func:`served` is taken as it is)."""
    require("ndonnx", "onnx")
    import onnx

    from ._lean import lean

    opset = _checked_opset(opset)
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)
                              or batch < 1):
        raise ValueError(f"batch must be a positive integer or None (any); got {batch!r}")
    spec = model if isinstance(model, Served) else served(model)
    proto = lean(trace(spec, batch))
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = opset
    proto.ir_version = max(proto.ir_version, onnx.helper.find_min_ir_version_for(
        list(proto.opset_import)))
    proto.producer_name, proto.producer_version = "xpnet", __version__
    proto.graph.name = "xpnet"
    _metadata(proto, spec)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: Any, path: str | os.PathLike[str], *, batch: int | None = None,
                opset: int | None = None) -> Any:
    """Write ``model`` to ``path`` as an ONNX file; returns the ``onnx.ModelProto``.

    The graph has one input ``X`` and outputs ``label`` and ``probabilities`` (classifiers)
    or ``prediction`` (regression). Raises ``NotFittedError`` for an unfitted estimator,
    :class:`xpnet.io.ModelFileError` for an unreadable model file, ``ValueError`` for a
    bad opset or batch, :class:`OnnxUnavailableError` without the ``onnx`` extra.

    Parameters
    ----------
    model : MLP, fitted MLPClassifier/MLPRegressor, or str/path of a model file
        A model file is served as ``xpnet predict`` serves it: raw feature columns in
        (float64; the standardisation statistics are applied in the graph), class labels
        and probabilities out, regression values in the target's units.
    path : str or path
        The ``.onnx`` file, written atomically (never the model file itself, a
        directory or a device).
    batch : int, optional
        A fixed number of rows (default: any, the input is ``(N, n_features)``).
    opset : int, optional
        ONNX opset to write, :data:`MIN_OPSET` to the newest the installed onnx knows
        (default :data:`DEFAULT_OPSET`).

    """
    from .._files import atomic_write

    if isinstance(model, (str, os.PathLike)) and _same_file(model, path):
        raise ValueError(f"cannot write the ONNX file {os.fspath(path)!r}: it is the model "
                         "file itself; give another name")
    proto = build(model, batch=batch, opset=opset)
    with atomic_write(path, "wb") as handle:
        handle.write(proto.SerializeToString())
    return proto


def _same_file(a: Any, b: Any) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def xpnet_outputs(spec: Served, X: np.ndarray) -> dict[str, np.ndarray]:
    """What xpnet itself (NumPy) predicts for raw rows ``X``, by output name: the
    reference the exported graph is checked against."""
    from ..backends import to_numpy

    net = spec.net
    rows = np.asarray(X, dtype=spec.input_dtype)
    if spec.standardize is not None:
        rows = (rows.astype(np.float64) - spec.standardize[0]) / spec.standardize[1]
    A = to_numpy(net.predict_proba(rows))
    if spec.task == "regression":
        if spec.target is not None:
            A = A.astype(np.float64) * spec.target[1] + spec.target[0]
        return {"prediction": A[:, 0] if A.shape[1] == 1 else A}
    index = to_numpy(net.predict(rows))
    label = index if spec.labels is None or index.ndim == 2 else spec.labels[index]
    probs = np.column_stack([1.0 - A[:, 0], A[:, 0]]) if spec.two_columns \
        and A.shape[1] == 1 else A
    return {"label": label, "probabilities": probs}


def compare(proto: Any, spec: Served, X: np.ndarray) -> dict[str, Any]:
    """Run ``proto`` in onnxruntime and xpnet on ``X``: per output, the largest absolute
    and relative difference (labels: the number of rows that differ)."""
    require("onnxruntime")
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    rows = np.asarray(X, dtype=spec.input_dtype)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"X": rows})))
    report: dict[str, Any] = {}
    for name, expected in xpnet_outputs(spec, rows).items():
        value = np.asarray(got[name])
        if name == "label":
            differ = value.astype(str) != np.asarray(expected).astype(str)
            report[name] = {"differing_rows": int(np.sum(
                differ.any(axis=1) if differ.ndim == 2 else differ))}
            continue
        diff = np.abs(value.astype(np.float64) - expected.astype(np.float64))
        scale = np.maximum(np.abs(expected.astype(np.float64)), np.finfo(np.float64).tiny)
        report[name] = {"max_abs": float(diff.max(initial=0.0)),
                        "max_rel": float((diff / scale).max(initial=0.0))}
    return report


def _register() -> None:
    try:
        import skl2onnx  # noqa: F401
    except ImportError:
        return
    from ._skl2onnx import register

    register()


_register()
