"""xpnet: multilayer perceptrons with explicit backpropagation on any Array API backend."""

from .backends import (
    BACKEND_NAMES,
    Backend,
    BackendUnavailableError,
    available_backends,
    get_backend,
    to_numpy,
)
from .io import load, save
from .network import MLP
from .train import History

__version__ = "0.1.0"

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "History",
    "MLP",
    "__version__",
    "available_backends",
    "get_backend",
    "load",
    "save",
    "to_numpy",
]
