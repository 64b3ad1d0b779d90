"""``xpnet.train``: the training entry point, re-exported from :mod:`xpnet.training`.

``fit(net, X, Y, **options)``, :class:`History`, :class:`DivergenceError` and
:func:`validation_score` stay importable from here; the loop, its runners, batch sources,
stopping rules and divergence guard live in :mod:`xpnet.training` (see its map).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._validation import array_module
from .training import api
from .training.sources import score, validation_rows
from .training.state import DivergenceError, History, Model

__all__ = ["DivergenceError", "History", "fit", "validation_rows",
           "validation_score"]

Array = Any


def validation_score(net: Model, X: Array, Y: Array, sample_weight: Array | None = None) -> Array:
    """Score of ``net`` on checked arrays, as a 0-d backend array (higher is better):
    accuracy for sigmoid/softmax outputs, R² for identity outputs, NaN for non-finite
    predictions (see :func:`xpnet.training.sources.score`)."""
    return score(net.architecture, net.xp, net.flat_params, X, Y, sample_weight)


def fit(
    net: Any, X: Any, Y: Any, epochs: int = 100, lr: float = 0.5,
    batch_size: int | None = None, shuffle: bool = True,
    callback: Callable[[int, float], Any] | None = None, **options: Any,
) -> History:
    """Train ``net`` on ``(X, Y)``; see :meth:`xpnet.MLP.fit` for the first arguments.

    Dask arrays (``X``, ``Y`` or ``sample_weight``) are handed to :meth:`xpnet.MLP.fit`,
    which trains them data-parallel (:func:`xpnet.distributed.fit`).

    Parameters
    ----------
    optimizer : None, "sgd", "adam", "lbfgs" or an :class:`xpnet.optim.Optimizer`
        ``None``: plain gradient descent with ``lr``; ``"lbfgs"``: full-batch L-BFGS
        through SciPy (``epochs`` its iteration limit, ``tol`` its gradient tolerance,
        ``max_fun`` its limit on loss evaluations); a name builds that optimiser with
        ``lr``; an instance is used as it is, so passing it to several calls continues
        its momentum/moments.
    sample_weight : array (m,), optional
        Non-negative row weights: each batch's loss is ``Σ w_i ℓ_i / Σ w_i`` (+ L2 term
        ``alpha/(2 Σw) Σ‖W‖²``), as in scikit-learn.
    class_weight : None, "balanced" or dict {label: weight}, optional
        Per-class weights multiplied with ``sample_weight``, as scikit-learn's (labels
        ``0..k-1`` for softmax, 0/1 for one sigmoid output; ``"balanced"`` counts the
        rows before an early-stopping split). Not for multi-label or regression outputs.
    early_stopping : bool, default False
        Hold out a random ``validation_fraction`` of the rows (or use
        ``validation_data``), score it after each epoch, stop when it has not improved
        by ``tol`` for more than ``n_iter_no_change`` epochs, restore the best weights.
    validation_data : (X_val, Y_val) or (X_val, Y_val, w_val), optional
        Explicit validation rows; implies early stopping.
    split : callable, optional
        ``split(m, fraction, rng) -> (training rows, held-out rows)``, the early-stopping
        split (default :func:`xpnet.training.sources.validation_rows`).
    tol : float, default 1e-4
        Improvement that counts (loss decrease, or validation score increase).
    n_iter_no_change : int or None
        Epochs without improvement tolerated; ``None``: 10 with early stopping, else
        no stopping on the training loss.
    rng : object with ``permutation(m)``, optional
        The per-epoch shuffles and the validation split (default: the network's).
    history : History, optional
        Continue this history (see :class:`History`); it is updated and returned.
    verbose : bool, default False
        Print the loss (and validation score) of each epoch.
    max_fun : int, default 15000
        ``optimizer="lbfgs"`` only: the most loss evaluations.
    on_divergence : {"raise", "continue"}, default "raise"
        ``"raise"``: a non-finite epoch loss or parameters roll the network (and the
        optimiser) back to the last finite state (the start of that epoch, or the best
        weights with early stopping) and raise :class:`DivergenceError`; ``"continue"``:
        train on, as scikit-learn's MLPs do with early stopping.
    threads : int or None, default None
        Threads of the BLAS/OpenMP/torch pools during the fit (see :mod:`xpnet.threads`).
    compile : bool, default False
        On JAX, compiled epochs (:mod:`xpnet.training.compiled`), several per program call
        when nothing is asked for between epochs; same numbers to rounding. Ignored on
        NumPy and array-api-strict, refused on torch and CuPy.
    source : batch source, optional
        The data when they are not arrays on the network's backend
        (:mod:`xpnet.training.sources`; :mod:`xpnet.distributed` passes its Dask source).

    Raises
    ------
    DivergenceError
        A ``FloatingPointError`` naming the epoch (1-based, within this call).

    Notes
    -----
    Ctrl-C ends training, not the program, as in scikit-learn: an epoch cut short is
    rolled back to its start, one interrupted in ``callback`` counts as complete; a
    ``UserWarning`` says where it stopped and ``history.interrupted`` is True. The
    divergence check costs no extra host synchronisation.
    """
    if options.get("source") is None and any(
        array_module(a) == "dask" for a in (X, Y, options.get("sample_weight"))
    ):
        return net.fit(X, Y, epochs, lr, batch_size, shuffle, callback, **options)
    return api.fit(net, X, Y, epochs, lr, batch_size, shuffle, callback, **options)
