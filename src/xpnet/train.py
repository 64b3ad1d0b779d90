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
from .training.sources import score, training_loss, validation_rows
from .training.state import DivergenceError, History, Model

__all__ = ["DivergenceError", "History", "fit", "training_loss", "validation_rows",
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
        ``None`` (default) is plain gradient descent with learning rate ``lr``;
        ``"lbfgs"`` is full-batch L-BFGS through SciPy (``epochs`` is its iteration
        limit, ``tol`` its gradient tolerance, ``max_fun`` its limit on loss
        evaluations; ``history.loss`` holds the loss after each L-BFGS iteration); a
        name builds that optimiser with ``lr``; an instance is used as it is (its own
        learning rate, schedule and state; ``lr`` is ignored), so passing the same
        instance to several calls continues its momentum/moments.
    sample_weight : array of shape (m,), optional
        Non-negative row weights: the loss becomes ``Σ w_i ℓ_i / Σ w_i`` (+ L2 term
        ``alpha/(2 Σw) Σ‖W‖²``) per batch, as in scikit-learn.
    class_weight : None, "balanced" or dict {label: weight}, optional
        Per-class weights multiplied with ``sample_weight``, as scikit-learn's
        ``class_weight`` (labels ``0..k-1`` for ``k`` softmax outputs, 0/1 for one
        sigmoid output; labels left out weigh 1; ``"balanced"`` counts the rows of ``X``
        before an early-stopping split). Not for multi-label or regression outputs.
    early_stopping : bool, default False
        Hold out a random ``validation_fraction`` of the rows (or use
        ``validation_data``), score it after each epoch, stop when it has not improved by
        ``tol`` for more than ``n_iter_no_change`` epochs, and restore the best weights.
    validation_data : (X_val, Y_val) or (X_val, Y_val, w_val), optional
        Explicit validation rows; implies early stopping.
    split : callable, optional
        ``split(m, fraction, rng) -> (training rows, held-out rows)``: the early-stopping
        split (default :func:`xpnet.training.sources.validation_rows`).
    tol : float, default 1e-4
        Improvement that counts (loss decrease, or validation score increase).
    n_iter_no_change : int or None
        Epochs without improvement tolerated. ``None``: 10 with early stopping, and no
        stopping on the training loss otherwise (the loop runs all ``epochs``).
    rng : object with ``permutation(m)``, optional
        Source of the per-epoch shuffles and of the validation split (default: the
        network's generator, seeded from its ``seed``).
    history : History, optional
        Continue this history (see :class:`History`); it is updated and returned.
    verbose : bool, default False
        Print the loss (and validation score) of each epoch.
    max_fun : int, default 15000
        ``optimizer="lbfgs"`` only: the most loss evaluations L-BFGS may make.
    on_divergence : {"raise", "continue"}, default "raise"
        What a non-finite epoch loss or non-finite parameters after an epoch do.
        ``"raise"``: roll the network back to the last finite state (the parameters at
        the start of that epoch, or the best weights so far with early stopping; the
        optimiser's state to the start of that epoch) and raise :class:`DivergenceError`.
        ``"continue"``: train on, as scikit-learn's MLPs do with early stopping.
    threads : int or None, default None
        Threads of the BLAS/OpenMP/torch pools during the fit (restored afterwards);
        ``None``: 1 for a small network, the libraries' own settings otherwise (see
        :mod:`xpnet.threads`).
    compile : bool, default False
        On JAX, run each epoch as one compiled XLA program (see
        :mod:`xpnet.training.compiled`), or several epochs per program call when nothing
        is asked for between epochs (no ``callback``, early stopping or ``verbose``);
        same shuffles, batches, history, stopping and rollback. Accepted and ignored on
        NumPy and array-api-strict; refused on torch and CuPy.
    source : batch source, optional
        Where the data live when they are not arrays on the network's backend (see
        :mod:`xpnet.training.sources`; :mod:`xpnet.distributed` passes its Dask source).
        ``X``, ``Y``, ``sample_weight``, ``class_weight`` and ``validation_data`` are then
        its business.

    Returns
    -------
    History
        ``history`` (or a new one), updated.

    Raises
    ------
    DivergenceError
        A ``FloatingPointError``: training diverged (see ``on_divergence``); the message
        names the epoch (1-based, counted within this call) and suggests a smaller ``lr``.

    Notes
    -----
    Ctrl-C (``KeyboardInterrupt``) ends training, not the program, as in scikit-learn:
    an epoch cut short is rolled back (parameters and optimiser state) to its start, or
    one interrupted in ``callback`` counts as complete; with early stopping the best
    weights are restored as at any end. A ``UserWarning`` says where it stopped, and
    ``history.interrupted`` is True. The divergence check costs no extra host
    synchronisation: the parameters' finiteness travels with the epoch's one loss
    read-back.
    """
    legacy = options.pop("_step_source", None)
    if legacy is not None:
        options["source"] = _LegacySource(legacy, net)
    elif options.get("source") is None and any(
        array_module(a) == "dask" for a in (X, Y, options.get("sample_weight"))
    ):
        return net.fit(X, Y, epochs, lr, batch_size, shuffle, callback, **options)
    return api.fit(net, X, Y, epochs, lr, batch_size, shuffle, callback, **options)


class _LegacySource:
    """The batch-source protocol over a source of the former ``_step_source`` one
    (``prepare(net, ...)``, ``loss_and_grads(params, order, first, last)`` keyed by
    ``net.steps``, ``validation_score(net)``): for :mod:`xpnet.distributed` until its
    ``DaskSource`` speaks the protocol itself. To be removed then."""

    def __init__(self, source: Any, net: Any) -> None:
        self.source, self.net = source, net

    def prepare(self, rng: Any, early_stopping: bool, validation_fraction: float) -> int:
        return int(self.source.prepare(self.net, rng, early_stopping, validation_fraction))

    def loss_and_grads(self, params: list[Array], order: Any, first: int, last: int,
                       step: int) -> tuple[Array, list[Array]]:
        # the old source adds its batch number in the epoch to net.steps
        self.net.steps = step - (0 if first == 0 else self.source.batch_in_epoch + 1)
        return self.source.loss_and_grads(params, order, first, last)

    def score(self, params: list[Array]) -> Any:
        self.net.flat_params = params
        return self.source.validation_score(self.net)
