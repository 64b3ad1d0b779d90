"""Data-parallel training and block-wise prediction on Dask (``pip install "xpnet[dask]"``).

:func:`fit` trains an :class:`xpnet.MLP` on Dask arrays by synchronous data-parallel
gradient descent: the chunks stay on the workers, one task per chunk computes that chunk's
share of each global batch with ordinary NumPy/CuPy math, the driver adds the results in
chunk order and applies xpnet's own optimiser (see :mod:`xpnet.distributed.engine`; what
runs on the workers: :mod:`xpnet.distributed.chunks`). The
result equals a single-process :func:`xpnet.train.fit` from the same seed to rounding, and
neither the number of workers nor a lost worker changes a bit of it.

:func:`predict`, :func:`predict_proba` and :func:`forward` return lazy Dask arrays
computed block-wise on the workers (``map_blocks``).

This package imports the core; the core never imports Dask (``MLP.fit``/``predict``
import this package only when handed a Dask array).
"""

from __future__ import annotations

from .engine import DaskSource, fit, is_dask_array, network_options, require_dask
from .predict import forward, predict, predict_proba

__all__ = ["DaskSource", "fit", "forward", "is_dask_array", "network_options", "predict",
           "predict_proba", "require_dask"]
