"""What an exported model serves, read off each kind of model: an MLP, a fitted
estimator, a model file (with what ``xpnet predict`` applies around the network)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

from ._graph import Served

__all__ = ["served"]


def _from_estimator(est: Any) -> Served:
    from sklearn.utils.validation import check_is_fitted

    from ..backends import to_numpy
    from ..network import MLP

    check_is_fitted(est)
    coefs = [to_numpy(W) for W in est.coefs_]
    intercepts = [to_numpy(b) for b in est.intercepts_]
    output = {"logistic": "sigmoid"}.get(est.out_activation_, est.out_activation_)
    sizes = [coefs[0].shape[0], *(W.shape[1] for W in coefs)]
    net = MLP(sizes, activation=est.activation, output=output, dtype=coefs[0].dtype.name)
    net.set_params(list(zip(coefs, intercepts)))
    classes = getattr(est, "classes_", None)
    multilabel = output == "sigmoid" and sizes[-1] > 1
    meta = {"feature_names": [str(n) for n in getattr(est, "feature_names_in_", [])] or None,
            "classes": None if classes is None or multilabel else np.asarray(classes).tolist(),
            "source": type(est).__name__}
    return Served(net, net.dtype, labels=None if multilabel else classes,
                  two_columns=True, metadata=meta)


def _from_file(path: str) -> Served:
    from ..io import load

    net = load(path)
    meta = net.metadata  # type: ignore[attr-defined]
    n_out = net.layer_sizes[-1]
    stats = {key: (np.asarray(meta[key]["mean"]), np.asarray(meta[key]["scale"]))
             for key in ("standardize", "target_standardize") if meta.get(key)}
    labels = None
    if net.output_loss.task != "regression" and not (net.output == "sigmoid" and n_out > 1):
        classes = meta.get("classes")
        labels = np.asarray(classes if classes is not None else
                            list(range(2 if n_out == 1 else n_out)))
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    info = {"feature_names": meta.get("feature_names"), "target_name": meta.get("target_name"),
            "classes": None if labels is None else labels.tolist(), "model_sha256": digest,
            "source": os.path.basename(os.fspath(path))}
    return Served(net, "float64", stats.get("standardize"), stats.get("target_standardize"),
                  labels, two_columns=True, metadata=info)


def served(model: Any) -> Served:
    """What :func:`build` exports for ``model`` (an MLP, a fitted estimator, a file)."""
    from ..network import MLP

    if isinstance(model, (str, os.PathLike)):
        return _from_file(os.fspath(model))
    if isinstance(model, MLP):
        return Served(model, model.dtype, metadata={"source": "MLP"})
    if hasattr(model, "coefs_") or type(model).__name__ in ("MLPClassifier", "MLPRegressor"):
        return _from_estimator(model)
    raise TypeError("export_onnx needs an xpnet.MLP, a fitted xpnet.MLPClassifier or "
                    f"MLPRegressor, or a model file path; got {type(model).__name__}")
