"""Training: one loop over runners and batch sources, with its rules in small modules.

========================  ==================================================================
module                    owns
========================  ==================================================================
``training.state``        ``TrainState``, ``History``, ``DivergenceError``, the ``Model``
                          protocol (the public names read from a network)
``training.sources``      the batch-source protocol, ``ArraySource`` (dense and sparse
                          arrays), the early-stopping split, validation score, training loss
``training.stopping``     scikit-learn's stopping rules (loss plateau, validation plateau)
``training.guard``        epoch snapshots, divergence test, rollback and messages, Ctrl-C
``training.loop``         ``run``: the one loop, and the eager runner
``training.compiled``     JAX programs: one epoch per call, or ``K`` per call with rewind
``training.lbfgs``        full-batch L-BFGS through SciPy
``training.options``      every option checked before anything changes
``training.api``          ``fit(model, X, Y, source=None, **options)``
========================  ==================================================================

Nothing here imports :mod:`xpnet.network`, :mod:`xpnet.distributed` or scikit-learn: a
model is reached through its public seams, data through a batch source.
"""

from .api import fit
from .loop import run
from .sources import ArraySource, BatchSource, score, training_loss, validation_rows
from .state import DivergenceError, History, TrainState

__all__ = ["ArraySource", "BatchSource", "DivergenceError", "History", "TrainState", "fit",
           "run", "score", "training_loss", "validation_rows"]
