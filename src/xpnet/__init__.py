"""xpnet: multilayer perceptrons with explicit backpropagation on any Array API backend."""

from . import inference, train
from ._jit_cache import set_compile_cache
from ._version import __version__
from .backends import (
    BACKEND_NAMES,
    Backend,
    BackendUnavailableError,
    available_backends,
    get_backend,
    to_numpy,
)
from .io import load, save
from .network import MLP, Prepared
from .training import History

_SKLEARN_ESTIMATORS = ("MLPClassifier", "MLPRegressor")


def __getattr__(name: str) -> object:
    # The scikit-learn estimators import scikit-learn (an optional dependency), so they
    # are loaded on first use: ``xpnet.MLPClassifier`` is ``xpnet.sklearn.MLPClassifier``.
    if name in _SKLEARN_ESTIMATORS:
        from . import sklearn as _sklearn

        return getattr(_sklearn, name)
    if name == "export_onnx":  # needs the onnx extra; imported (and skl2onnx told) on use
        from .onnx import export_onnx

        return export_onnx
    raise AttributeError(f"module 'xpnet' has no attribute {name!r}")


__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "History",
    "MLP",
    "MLPClassifier",
    "MLPRegressor",
    "Prepared",
    "__version__",
    "available_backends",
    "export_onnx",
    "get_backend",
    "inference",
    "load",
    "save",
    "set_compile_cache",
    "to_numpy",
    "train",
]
