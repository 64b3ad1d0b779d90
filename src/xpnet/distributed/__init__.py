"""Data-parallel training and block-wise prediction on Dask (``pip install "xpnet[dask]"``).

:func:`fit` trains an :class:`xpnet.MLP` on Dask arrays: the same options as single-process
training and, from the same seed, the same result to rounding, whatever the number of
workers (or a lost one). :func:`predict`, :func:`predict_proba` and :func:`forward` return
lazy Dask arrays computed block-wise on the workers.

Layout: ``chunks`` runs on the workers (pure functions of one chunk); ``engine`` is the
driver (chunk placement, task runs, ordered sums, :class:`DaskSource`, the training loop's
batch source, and :func:`fit`); ``predict`` the lazy graphs; ``_client`` the client and
bounded waits; ``storage`` the data files; ``estimators`` the estimators' Dask path. The
core never imports Dask: ``MLP.fit``/``predict`` import this package when handed a Dask array.
"""

from __future__ import annotations

from .engine import DaskSource, fit, is_dask_array, network_options, require_dask
from .predict import forward, predict, predict_proba

__all__ = ["DaskSource", "fit", "forward", "is_dask_array", "network_options", "predict",
           "predict_proba", "require_dask"]
