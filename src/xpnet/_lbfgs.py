"""L-BFGS on an :class:`xpnet.MLP` (for the estimators): :mod:`xpnet.training.lbfgs`
with the network's public seams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .training import lbfgs
from .training.sources import ArraySource

__all__ = ["flat_objective", "minimize_lbfgs", "pack"]


def _source(net: Any, X: Any, Y: Any, sample_weight: Any = None) -> ArraySource:
    return ArraySource(net.architecture, net.array_backend, X, Y, sample_weight)


def pack(net: Any) -> np.ndarray:
    """The network's parameters as one float64 host vector: weights first, then biases."""
    return lbfgs.pack(net.flat_params)


def flat_objective(net: Any, X: Any, Y: Any, sample_weight: Any = None,
                   ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``f(flat) -> (loss, flat gradient)`` of ``net`` on checked ``(X, Y)``."""
    return lbfgs.flat_objective(_source(net, X, Y, sample_weight), net.layer_sizes,
                                net.array_dtype)


def minimize_lbfgs(net: Any, X: Any, Y: Any, sample_weight: Any = None, *,
                   source: lbfgs.FullBatch | None = None, **options: Any) -> Any:
    """SciPy's L-BFGS-B on the network's loss (options of
    :func:`xpnet.training.lbfgs.minimize_lbfgs`); the network is left at ``result.x``.
    ``source``: a prepared batch source to use instead of ``(X, Y, sample_weight)`` (the
    Dask one, :func:`xpnet.distributed.estimators.full_batch`)."""
    if source is None:
        source = _source(net, X, Y, sample_weight)
    result, net.flat_params = lbfgs.minimize_lbfgs(source, net.flat_params, **options)
    return result
