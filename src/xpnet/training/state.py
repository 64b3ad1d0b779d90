"""What one training run carries: the live state, the record of the epochs, the error.

:class:`TrainState` is the state the loop moves (flat parameters and the step count that
keys the dropout masks; the optimiser holds its own); :class:`History` what calls to
``fit`` measured; :class:`DivergenceError` how a diverged run ends; :class:`Model` the
few public names the training package reads from a network (``xpnet.MLP`` has them), so
the package never imports :mod:`xpnet.network`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..backends import Backend, to_numpy
from ..core import Architecture

__all__ = ["DivergenceError", "History", "Model", "TrainState"]

Array = Any


class Model(Protocol):
    """The public surface of a network that :func:`xpnet.training.fit` uses."""

    layer_sizes: tuple[int, ...]
    dropout: tuple[float, ...]
    alpha: float
    backend: str
    flat_params: list[Array]
    steps: int
    dropout_key: Any

    @property
    def architecture(self) -> Architecture: ...
    @property
    def array_backend(self) -> Backend: ...
    @property
    def xp(self) -> Any: ...
    @property
    def array_dtype(self) -> Any: ...
    @property
    def shuffle_rng(self) -> Any: ...
    def check_XY(self, X: Any, Y: Any) -> tuple[Array, Array]: ...


@dataclass
class TrainState:
    """The parameters ``[W1, b1, ...]`` being trained and the optimiser steps taken over
    the model's life (the dropout stream's step counter)."""

    params: list[Array]
    steps: int


class DivergenceError(FloatingPointError):
    """Training diverged: the epoch's loss or the parameters after it are not finite.

    Raised by ``fit`` after rolling the network back (see ``on_divergence``).

    Attributes
    ----------
    epoch : int
        The epoch that diverged, 1-based, counted within the call to ``fit``.
    loss : float
        Its mean loss (NaN or infinite, or finite when only the parameters are not).
    parameters : tuple of str
        Names of the parameters that became non-finite (``"W1"``, ``"b2"``, ...).
    reason : str
        What went wrong, in words (without the advice).
    lr : float
        The optimiser's initial learning rate.
    finished : bool
        Found by the once-per-fit check of the finished model (after the last epoch): its
        weights are finite but its loss on the training rows is not (the outputs
        overflow). ``False`` for an epoch whose loss or weights were non-finite.
    """

    def __init__(
        self, message: str, *, epoch: int, loss: float, parameters: Sequence[str],
        reason: str, lr: float, finished: bool = False,
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.loss = loss
        self.parameters = tuple(parameters)
        self.reason = reason
        self.lr = lr
        self.finished = finished


@dataclass
class History:
    """What calls to ``fit`` measured.

    Pass a History back as ``fit(..., history=h)`` to continue training where it left
    off (the counters, best values and best weights carry over, as with scikit-learn's
    ``warm_start``/``partial_fit``).

    Parameters
    ----------
    loss : list of float
        Mean training loss of each epoch.
    seconds : float
        Wall time of the fit(s), device work included (the backend is synchronised).
    validation_scores : list of float
        With early stopping: the validation score after each epoch (accuracy for
        sigmoid/softmax outputs, R² for identity outputs, weighted when the validation
        rows have weights). Empty otherwise.
    validation_loss : list of float
        With early stopping: the loss on the validation rows after each epoch, on the
        scale of ``loss`` (the same loss, row weights and L2 term, the rows taken as one
        batch; read back with the score: no extra host sync). Empty otherwise.
    best_loss : float
        Lowest epoch loss seen (``inf`` before the first epoch).
    best_validation_score : float
        Highest validation score seen (``-inf`` without early stopping).
    n_iter : int
        Epochs run by the latest call to ``fit``.
    samples_seen : int
        Training rows processed over all calls (the ``t`` of the ``invscaling`` schedule).
    converged : bool
        Whether the latest call stopped on ``tol``/``n_iter_no_change`` rather than
        after ``epochs``.
    no_improvement_count : int
        Epochs in a row without improvement at the end of the latest call.
    threads : int
        Threads the latest call allowed each library's pool (BLAS, OpenMP, torch; 0
        before any call; XLA's pool is fixed when JAX starts: see :mod:`xpnet.threads`).
    threads_auto : bool
        Whether ``threads`` was the automatic choice (``fit(threads=None)``).
    interrupted : bool
        Whether the latest call was stopped by ``KeyboardInterrupt`` (Ctrl-C). The
        network then holds the weights of the last complete epoch (an epoch cut short is
        rolled back, optimiser state included), or the best weights with early stopping,
        and ``n_iter``/``loss`` count only complete epochs.
    best_params : list of arrays or None
        With early stopping: the flat parameters ``[W_1, b_1, ...]`` of the best epoch
        so far (restored at the end of the fit).
    """

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    validation_scores: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    n_iter: int = 0
    samples_seen: int = 0
    converged: bool = False
    no_improvement_count: int = 0
    interrupted: bool = False
    threads: int = 0
    threads_auto: bool = False
    best_params: list[Array] | None = field(default=None, repr=False, compare=False)

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def __getstate__(self) -> dict[str, Any]:
        # the best weights as NumPy host arrays, dtypes kept (a device array pickled by
        # its library may come back in another dtype: JAX without 64-bit mode); the
        # loop copies them onto the network's backend when it uses them
        state = dict(vars(self))
        if self.best_params is not None:
            state["best_params"] = [to_numpy(p) for p in self.best_params]
        return state
