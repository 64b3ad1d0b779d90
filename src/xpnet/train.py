"""The training loop: epochs, mini-batches, shuffling, the loss history and stopping rules.

It never computes a gradient itself; it asks the network for loss and gradients and
the optimiser for the update. Data are checked and moved to the device once per fit,
each batch is gathered from the device-resident data through one permutation per epoch,
and the loss is read back to the host once per epoch (plus one validation score per
epoch with early stopping).

The stopping rules are scikit-learn's (``MLPClassifier``/``MLPRegressor`` with the
``sgd``/``adam`` solvers), so the estimators in :mod:`xpnet.sklearn` behave the same:

- without early stopping, an epoch *does not improve* when its training loss is above
  ``best_loss - tol``; with early stopping, when its validation score is below
  ``best_score + tol``;
- after more than ``n_iter_no_change`` such epochs in a row the optimiser is asked
  (:meth:`xpnet.optim.Optimizer.trigger_stopping`): it stops training, or, for the
  ``adaptive`` schedule, divides the learning rate by 5 and training goes on;
- with early stopping the weights of the epoch with the best validation score are
  restored at the end.

Two ways out that are not stopping rules: a *diverged* epoch (non-finite loss, or
non-finite parameters after it) rolls the network and the optimiser back to the last
finite state and raises :class:`DivergenceError` (a ``FloatingPointError``); Ctrl-C
(``KeyboardInterrupt``) ends training after rolling back an epoch cut short, and ``fit``
returns the history marked ``interrupted``. To roll back, the loop copies the
parameters and the optimiser's state at the start of every epoch.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _validation as v
from ._class_weight import check_class_weight, class_weight_rows
from ._sparse import row_slice, take_rows
from .backends import to_numpy
from .compiled import check_compile, epoch_program, fit_in_chunks
from .optim import SGD, Optimizer, get_optimizer
from .threads import check_threads, resolve_threads, thread_limits

if TYPE_CHECKING:
    from .network import MLP

__all__ = ["DivergenceError", "History", "fit", "validation_score"]

Array = Any


class DivergenceError(FloatingPointError):
    """Training diverged: the epoch's loss or the parameters after it are not finite.

    Raised by :func:`fit` after rolling the network back (see ``on_divergence``).

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
        self, message: str, *, epoch: int, loss: float, parameters: tuple[str, ...],
        reason: str, lr: float, finished: bool = False,
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.loss = loss
        self.parameters = parameters
        self.reason = reason
        self.lr = lr
        self.finished = finished


@dataclass
class History:
    """What calls to ``fit`` measured.

    Attributes
    ----------
    loss : list of float
        Mean training loss of each epoch.
    seconds : float
        Wall time of the fit(s), device work included (the backend is synchronised).
    validation_scores : list of float
        With early stopping: the validation score after each epoch (accuracy for
        sigmoid/softmax outputs, R² for identity outputs, weighted when the validation
        rows have weights). Empty otherwise.
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
    interrupted : bool
        Whether the latest call was stopped by ``KeyboardInterrupt`` (Ctrl-C). The
        network then holds the weights of the last complete epoch (an epoch cut short is
        rolled back, optimiser state included), or the best weights with early stopping,
        and ``n_iter``/``loss`` count only complete epochs.

    Pass a History back as ``fit(..., history=h)`` to continue training where it left
    off (the counters, best values and best weights carry over, as with scikit-learn's
    ``warm_start``/``partial_fit``).
    """

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    validation_scores: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    n_iter: int = 0
    samples_seen: int = 0
    converged: bool = False
    no_improvement_count: int = 0
    interrupted: bool = False
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


def _check_sample_weight(net: MLP, sample_weight: Any, m: int, name: str) -> Array:
    xp = net.xp
    w = v.to_backend(net.array_backend, sample_weight, name)
    if w.ndim != 1 or w.shape[0] != m:
        raise ValueError(f"{name} must have shape ({m},), one weight per row; got {tuple(w.shape)}")
    w = xp.astype(w, net._dtype)
    if not v.all_finite(xp, w):
        raise ValueError(f"{name} contains NaN or infinite values")
    if bool(xp.any(w < 0)):
        raise ValueError(f"{name} must be non-negative")
    return w


def _with_class_weight(net: MLP, Y: Array, w: Array | None, class_weight: Any) -> Array | None:
    """Row weights ``w`` times the class weights of the rows' labels (checked
    ``class_weight``; None leaves ``w`` as it is)."""
    if class_weight is None:
        return w
    rows = class_weight_rows(net, Y, class_weight)
    return rows if w is None else w * rows


def validation_score(net: MLP, X: Array, Y: Array, sample_weight: Array | None = None) -> Array:
    """Score of ``net`` on checked arrays, as a 0-d backend array (higher is better).

    Accuracy for sigmoid outputs (a row counts when every output is on the right side of
    0.5, i.e. subset accuracy for multi-label) and softmax outputs (arg-max), R² averaged
    over the outputs for identity outputs (1 for a constant target predicted exactly, 0
    otherwise) — scikit-learn's ``accuracy_score``/``r2_score``; NaN when a prediction
    is not finite, as scikit-learn's MLPs score it. ``sample_weight`` weights the rows.
    """
    xp = net.xp
    A = net._forward(X)[2]
    task = net._output.task
    if task == "regression":
        if sample_weight is None:
            mean = xp.mean(Y, axis=0)
            num = xp.sum((Y - A) ** 2, axis=0)
            den = xp.sum((Y - mean) ** 2, axis=0)
        else:
            w = xp.reshape(sample_weight, (-1, 1))
            mean = xp.sum(w * Y, axis=0) / xp.sum(sample_weight)
            num = xp.sum(w * (Y - A) ** 2, axis=0)
            den = xp.sum(w * (Y - mean) ** 2, axis=0)
        safe = den + xp.astype(den == 0, den.dtype)
        r2 = xp.mean(xp.where(den == 0, xp.astype(num == 0, den.dtype), 1.0 - num / safe))
        # scikit-learn scores non-finite predictions (a diverged network) as NaN
        return xp.where(xp.all(xp.isfinite(A)), r2, xp.full_like(r2, math.nan))
    if task == "multiclass":
        correct = xp.argmax(A, axis=1) == xp.argmax(Y, axis=1)
    else:
        correct = xp.all((A > 0.5) == (Y > 0.5), axis=1)
    correct = xp.astype(correct, A.dtype)
    if sample_weight is None:
        return xp.mean(correct)
    return xp.sum(correct * sample_weight) / xp.sum(sample_weight)


#: Most rows of one block of :func:`training_loss` (its forward pass holds one block's
#: activations, never the whole data set's when training ran on mini-batches).
LOSS_BLOCK_ROWS = 1 << 16


def training_loss(net: MLP, X: Array, Y: Array, batch_size: int) -> Array:
    """The network's mean loss on the training rows ``(X, Y)`` (checked arrays), L2
    penalty included, as a 0-d device array (no host sync): the outputs of the model as
    it now is, without dropout. A forward pass in blocks of ``batch_size`` rows (full
    batch: at most :data:`LOSS_BLOCK_ROWS`), so it holds no more than an epoch did.
    Non-finite exactly when some row's loss, or the penalty, is: weights that are finite
    but whose products overflow give a network that predicts NaN, which is divergence
    (see :func:`fit`)."""
    m = X.shape[0]
    block = batch_size if batch_size < m else min(m, LOSS_BLOCK_ROWS)
    total: Any = None
    for first in range(0, m, block):
        last = min(first + block, m)
        _, Z_out, A_out = net._forward(row_slice(X, first, last))
        part = net._output.loss(net.xp, Z_out, A_out, Y[first:last, ...]) * (last - first)
        total = part if total is None else total + part
    loss = total / m
    return loss + net._penalty(m) if net.alpha else loss


def epoch_mark(history: History, net: MLP, opt: Optimizer) -> tuple[Any, ...]:
    """What recording one epoch changes in ``history`` (and in the network's step count
    and the optimiser's learning rate, which the schedules move), taken before it is
    recorded, for :func:`unrecord`: a few numbers per epoch, no array copied."""
    return (len(history.loss), history.n_iter, history.samples_seen, history.best_loss,
            history.no_improvement_count, len(history.validation_scores),
            history.best_validation_score, history.best_params, net._steps,
            opt.learning_rate)


def unrecord(mark: tuple[Any, ...], history: History, net: MLP, opt: Optimizer) -> None:
    """Forget the epochs recorded since :func:`epoch_mark` returned ``mark`` (an epoch
    found diverged only after it was recorded: the finished model's outputs)."""
    (losses, history.n_iter, history.samples_seen, history.best_loss,
     history.no_improvement_count, scores, history.best_validation_score,
     history.best_params, net._steps, opt.learning_rate) = mark
    del history.loss[losses:]
    del history.validation_scores[scores:]
    history.converged = False


def validation_rows(m: int, fraction: float, rng: Any) -> tuple[Any, Any]:
    """The early-stopping split of ``m`` rows: ``(training rows, held-out rows)`` as host
    index arrays, a random ``fraction`` (rounded up, as scikit-learn) held out. One draw
    of ``rng.permutation(m)``; :mod:`xpnet.distributed` uses it too, so a distributed fit
    holds out the same rows as a single-process one."""
    n_val = math.ceil(fraction * m)
    if n_val < 2 or m - n_val < 1:
        raise ValueError(
            f"validation_fraction={fraction} of {m} rows leaves {n_val} validation and "
            f"{m - n_val} training rows; need at least 2 and 1. Increase "
            "validation_fraction or the size of your data set."
        )
    order = rng.permutation(m)
    return order[n_val:], order[:n_val]


def _validation_split(
    net: MLP, X: Array, Y: Array, w: Array | None, fraction: float, rng: Any
) -> tuple[Array, ...]:
    """The rows of :func:`validation_rows` taken out of ``X``, ``Y`` and ``w``."""
    train_rows, val_rows = validation_rows(X.shape[0], fraction, rng)
    xp = net.xp
    train_idx = net.array_backend.asarray(train_rows)
    val_idx = net.array_backend.asarray(val_rows)
    parts = [take_rows(xp, X, train_idx), xp.take(Y, train_idx, axis=0)]
    parts += [None if w is None else xp.take(w, train_idx, axis=0)]
    parts += [take_rows(xp, X, val_idx), xp.take(Y, val_idx, axis=0)]
    parts += [None if w is None else xp.take(w, val_idx, axis=0)]
    return tuple(parts)


def _dask_input(*arrays: Any) -> bool:
    """Whether any of ``arrays`` is a Dask array (by its class's module: the core never
    imports Dask; :mod:`xpnet.distributed` does, when handed one)."""
    return any(v.array_module(a) == "dask" for a in arrays)


def _rows(X: Any) -> int:
    """Rows of ``X`` (an array, a list, or prepared data) for the thread rule; 1 if unknown."""
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape):
        return int(shape[0])
    try:
        return len(X)
    except TypeError:
        return 1


def _thread_limited(func: Callable[..., History]) -> Callable[..., History]:
    """Run ``fit`` under its ``threads=`` limit (see :mod:`xpnet.threads`), with the
    network's device current (as :func:`xpnet.backends.on_device`; one wrapper, so the
    warnings' ``stacklevel`` still reaches the caller): the pools are capped for the call
    and restored afterwards, whatever the call ends with."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> History:
        bound = signature.bind(*args, **kwargs)
        threads = check_threads(bound.arguments.get("threads"))
        net = bound.arguments["net"]
        batch_size = bound.arguments.get("batch_size")
        m = _rows(bound.arguments["X"])
        batch = m if not isinstance(batch_size, int) else max(1, min(batch_size, m))
        with net.array_backend.activate(), thread_limits(
            resolve_threads(threads, net.layer_sizes, batch)
        ):
            return func(*args, **kwargs)

    return wrapper


def _fit_lbfgs(
    net: MLP, X: Any, Y: Any, epochs: int, batch_size: int | None, callback: Any,
    sample_weight: Any, early_stopping: bool, validation_data: Any, tol: float,
    history: History | None, verbose: bool, max_fun: int, class_weight: Any = None,
) -> History:
    """``fit(optimizer="lbfgs")``: checks, then :func:`xpnet._lbfgs.fit_lbfgs`."""
    from ._lbfgs import fit_lbfgs

    if batch_size is not None:
        raise ValueError(
            f"optimizer='lbfgs' trains on the full batch; batch_size must be None, "
            f"got {batch_size!r}"
        )
    if early_stopping or validation_data is not None:
        raise ValueError("optimizer='lbfgs' does not support early stopping or validation_data")
    tol = v.check_nonnegative_float("tol", tol)
    max_fun = v.check_positive_int("max_fun", max_fun)
    X, Y = net._check_XY(X, Y)
    w = None
    if sample_weight is not None:
        w = _check_sample_weight(net, sample_weight, X.shape[0], "sample_weight")
    w = _with_class_weight(net, Y, w, class_weight)
    return fit_lbfgs(
        net, X, Y, w, max_iter=epochs, max_fun=max_fun, tol=tol,
        history=History() if history is None else history, callback=callback,
        verbose=verbose,
    )


@_thread_limited  # on CuPy, the whole fit runs with the network's device current
def fit(
    net: MLP,
    X: Any,
    Y: Any,
    epochs: int = 100,
    lr: float = 0.5,
    batch_size: int | None = None,
    shuffle: bool = True,
    callback: Callable[[int, float], Any] | None = None,
    *,
    optimizer: str | Optimizer | None = None,
    sample_weight: Any = None,
    early_stopping: bool = False,
    validation_fraction: float = 0.1,
    validation_data: tuple[Any, ...] | None = None,
    tol: float = 1e-4,
    n_iter_no_change: int | None = None,
    rng: Any = None,
    history: History | None = None,
    verbose: bool = False,
    max_fun: int = 15000,
    on_divergence: str = "raise",
    class_weight: Any = None,
    threads: int | None = None,
    compile: bool = False,
    source: Any = None,
) -> History:
    """Train ``net`` on ``(X, Y)``; see :meth:`xpnet.MLP.fit` for the first arguments.

    Dask arrays (``X``, ``Y`` or ``sample_weight``) are handed to
    :func:`xpnet.distributed.fit`: the same loop, with each batch's loss and gradients
    summed from one task per chunk on the workers.

    Parameters
    ----------
    optimizer : None, "sgd", "adam", "lbfgs" or an :class:`xpnet.optim.Optimizer`
        ``None`` (default) is plain gradient descent with learning rate ``lr``;
        ``"lbfgs"`` is full-batch L-BFGS through SciPy (``epochs`` is its iteration
        limit, ``tol`` its gradient tolerance, ``max_fun`` its limit on loss
        evaluations; ``lr``, ``batch_size``, ``shuffle`` and early stopping do not
        apply; ``history.loss`` holds the loss after each L-BFGS iteration); a name
        builds that optimiser with ``lr``; an instance is used as it is (its own
        learning rate, schedule and state; ``lr`` is ignored), so passing the same
        instance to several calls continues its momentum/moments.
    sample_weight : array of shape (m,), optional
        Non-negative row weights: the loss becomes ``Σ w_i ℓ_i / Σ w_i`` (+ L2 term
        ``alpha/(2 Σw) Σ‖W‖²``) per batch, as in scikit-learn.
    class_weight : None, "balanced" or dict {label: weight}, optional
        Per-class weights multiplied with ``sample_weight``, as scikit-learn's
        ``class_weight``. Labels are the network's classes: ``0..k-1`` for ``k`` softmax
        outputs (a row's label is its one-hot position), 0/1 for one sigmoid output;
        labels left out weigh 1. ``"balanced"`` weighs class ``c`` by
        ``n_samples / (n_classes * count_c)`` over the rows of ``X`` (before an early
        stopping split, as scikit-learn's ``SGDClassifier``; the held-out rows keep
        their class weights in the validation score). Not for multi-label or
        regression outputs (use ``sample_weight``). Weights of ``validation_data`` are
        used as given.
    early_stopping : bool, default False
        Hold out a random ``validation_fraction`` of the rows (or use
        ``validation_data``), score it after each epoch, stop when it has not improved by
        ``tol`` for more than ``n_iter_no_change`` epochs, and restore the best weights.
    validation_data : (X_val, Y_val) or (X_val, Y_val, w_val), optional
        Explicit validation rows; implies early stopping.
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
        optimiser's state to the start of that epoch) and raise ``FloatingPointError``.
        ``"continue"``: train on, as scikit-learn's MLPs do with early stopping (a NaN
        validation score is never the best one, and the best weights are restored at
        the end); the estimators of :mod:`xpnet.sklearn` use it.

    threads : int or None, default None
        Threads of the BLAS/OpenMP/torch pools during the fit (restored afterwards).
        ``None`` (auto): 1 for a small network (largest per-step matrix product below
        ``xpnet.threads.SMALL_WORK`` multiply-adds), where worker threads only cost
        (10x on torch, measured), and the libraries' own settings otherwise. XLA's pool
        is fixed when JAX starts (see :mod:`xpnet.threads`).
    compile : bool, default False
        On JAX, run each epoch as one compiled XLA program (see :mod:`xpnet.compiled`):
        same shuffles, same batches, numbers equal to rounding; the program is cached
        per shape, so a second fit of the same shape compiles nothing. Without per-epoch
        work (no ``callback``, early stopping or ``verbose``) a small network runs
        several epochs per program call, with the same history, stopping and
        divergence rollback as one epoch per call (a Ctrl-C then rolls back the
        epochs of the running call). Accepted and
        ignored on NumPy and array-api-strict; refused on torch and CuPy (no verified
        compiled path yet). Needs an optimiser with :meth:`~xpnet.optim.Optimizer.apply`
        (``SGD``, ``Adam``).
    source : object, optional
        Where the data live when they are not arrays on the network's backend
        (:class:`xpnet.distributed.DaskSource`). Its ``prepare(rng, early_stopping,
        validation_fraction)`` checks and splits the data and returns the training row
        count; ``loss_and_grads(params, order, first, last, step)`` replaces the batch
        gathering and the step (rows ``order[first:last]``, or ``first:last`` when
        ``order`` is None; ``step`` the optimiser step of the batch, which keys its
        dropout masks); ``score(params)`` scores the held-out rows. ``X``, ``Y``,
        ``sample_weight``, ``class_weight`` and ``validation_data`` are then its business.
    Returns
    -------
    History
        ``history`` (or a new one), updated.

    Raises
    ------
    DivergenceError
        A ``FloatingPointError``: training diverged (see ``on_divergence``); the
        message names the epoch (1-based, counted within this call) and suggests a
        smaller ``lr``.

    Notes
    -----
    Ctrl-C (``KeyboardInterrupt``) ends training, not the program, as in scikit-learn:
    an epoch cut short is rolled back (parameters and optimiser state) to its start, or
    one interrupted in ``callback`` counts as complete; with early stopping the best
    weights are restored as at any end. A ``UserWarning`` says where it stopped, and
    ``history.interrupted`` is True. No other exception is caught.

    The check for divergence costs no extra host synchronisation: the parameters'
    finiteness travels with the epoch's one loss read-back.
    """
    if source is None and _dask_input(X, Y, sample_weight):  # xpnet.distributed.fit
        options = {k: value for k, value in locals().items() if k not in ("net", "X", "Y")}
        from .distributed import fit as distributed_fit

        return distributed_fit(net, X, Y, **options)
    epochs = v.check_positive_int("epochs", epochs)
    lbfgs = isinstance(optimizer, str) and optimizer == "lbfgs"
    if isinstance(optimizer, str) and optimizer not in ("sgd", "adam", "lbfgs"):
        raise ValueError(
            "optimizer must be 'sgd', 'adam', 'lbfgs' or an Optimizer instance; "
            f"got {optimizer!r}"
        )
    opt: Optimizer = SGD(lr) if optimizer is None or lbfgs else get_optimizer(optimizer, lr)
    if batch_size is not None:
        batch_size = v.check_positive_int("batch_size", batch_size)
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be True or False; got {shuffle!r}")
    if not isinstance(early_stopping, bool):
        raise TypeError(f"early_stopping must be True or False; got {early_stopping!r}")
    tol = v.check_nonnegative_float("tol", tol)
    if n_iter_no_change is not None:
        n_iter_no_change = v.check_positive_int("n_iter_no_change", n_iter_no_change)
    if (
        isinstance(validation_fraction, bool)
        or not isinstance(validation_fraction, numbers.Real)
        or not 0.0 < validation_fraction < 1.0
    ):
        raise ValueError(
            f"validation_fraction must be a number in (0, 1); got {validation_fraction!r}"
        )
    # Every argument is checked here, before the data are touched and long before the
    # first update: a mistake must leave the network as it was, not fail after epoch 1.
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be a function called as callback(epoch, loss), or None; "
            f"got {callback!r}"
        )
    if history is not None and not isinstance(history, History):
        raise TypeError(
            f"history must be an xpnet.train.History from an earlier fit, or None; "
            f"got {history!r}"
        )
    if rng is not None and not callable(getattr(rng, "permutation", None)):
        raise TypeError(
            "rng must have a permutation(m) method, like numpy.random.default_rng(seed), "
            f"or be None; got {rng!r}"
        )
    if not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True or False; got {verbose!r}")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)):
            raise TypeError(
                "validation_data must be a tuple (X_val, Y_val) or (X_val, Y_val, w_val); "
                f"got {type(validation_data).__name__}"
            )
        if len(validation_data) not in (2, 3):
            raise ValueError(
                "validation_data must be (X_val, Y_val) or (X_val, Y_val, w_val); got "
                f"{len(validation_data)} items"
            )
    rng = net._shuffle_rng if rng is None else rng
    if on_divergence not in ("raise", "continue"):
        raise ValueError(f"on_divergence must be 'raise' or 'continue'; got {on_divergence!r}")
    class_weight = check_class_weight(net, class_weight)
    opt.check_state(net._params)
    compiled = check_compile(compile, net.backend)
    if compiled and type(opt).apply is Optimizer.apply:
        raise ValueError(
            f"compile=True needs an optimiser with explicit state (apply); "
            f"{type(opt).__name__} has none"
        )
    if lbfgs and any(net.dropout):
        raise ValueError(
            f"optimizer='lbfgs' cannot train with dropout (the network has dropout="
            f"{list(net.dropout)}): its line searches need one fixed loss, and dropout "
            "draws new masks every step; use optimizer='adam' or 'sgd', or dropout=0"
        )
    if lbfgs:  # full batch through SciPy: its own loop (see _lbfgs)
        return _fit_lbfgs(
            net, X, Y, epochs, batch_size, callback, sample_weight, early_stopping,
            validation_data, tol, history, verbose, max_fun, class_weight,
        )

    if source is not None:  # xpnet.distributed: the data stay where they are
        m = source.prepare(rng, early_stopping, validation_fraction)
        X = Y = w = X_val = Y_val = w_val = None
    else:
        X, Y = net._check_XY(X, Y)
        m = X.shape[0]
        w = None
        if sample_weight is not None:
            w = _check_sample_weight(net, sample_weight, m, "sample_weight")
        w = _with_class_weight(net, Y, w, class_weight)
        X_val = Y_val = w_val = None
        if validation_data is not None:
            X_val, Y_val = net._check_XY(*validation_data[:2])
            if len(validation_data) == 3 and validation_data[2] is not None:
                w_val = _check_sample_weight(
                    net, validation_data[2], X_val.shape[0], "validation_data weights"
                )
            early_stopping = True
        elif early_stopping:
            X, Y, w, X_val, Y_val, w_val = _validation_split(net, X, Y, w, validation_fraction, rng)
            m = X.shape[0]
    if early_stopping and n_iter_no_change is None:
        n_iter_no_change = 10

    if batch_size is None:
        batch_size = m
    elif batch_size > m:
        warnings.warn(
            f"batch_size={batch_size} is larger than the {m} rows of X; using {m} "
            "(full batch)",
            UserWarning,
            stacklevel=3,
        )
        batch_size = m

    backend = net.array_backend
    xp = net.xp
    if history is None:
        history = History()
    history.n_iter = 0
    history.converged = False
    history.interrupted = False
    if early_stopping and history.best_params is None:
        # scikit-learn starts from the initial weights as the "best" ones, so a run whose
        # every validation score is NaN ends on them rather than on diverged weights
        history.best_params = [xp.asarray(p, copy=True) for p in net._params]
    start = time.perf_counter()
    if compiled and callback is None and not early_stopping and not verbose and fit_in_chunks(
        net, opt, history, X, Y, w, rng, epochs=epochs, batch_size=batch_size,
        shuffle=shuffle, tol=tol, n_iter_no_change=n_iter_no_change,
        on_divergence=on_divergence,
    ):  # nothing to do between epochs: several epochs per compiled call
        backend.synchronize(net._params)
        history.seconds += time.perf_counter() - start
        return history
    epoch = 0
    in_epoch = False  # True while the parameters hold a partly done epoch
    epoch_start = _EpochStart(xp, net._params)
    # after a divergence: whether the state rolled back to must be checked for finite
    # outputs (the finished model's loss; the Dask engine's rows are not here)
    outputs_checked = not early_stopping and source is None
    program = None
    if compiled:
        program = epoch_program(
            net.architecture, opt, m, batch_size, (X.shape[1], Y.shape[1]), net._dtype,
            backend.device, w is not None, shuffle and batch_size < m,
            net._dropout_key if any(net.dropout) else None,
        )
        steps_per_epoch = -(-m // batch_size)
    compiled_state: dict[str, Any] | None = None  # the optimiser's, carried across epochs
    state_lr = math.nan  # the learning rate that state holds
    try:
        for epoch in range(epochs):
            # The state at the start of the epoch, to roll back to when the epoch is
            # abandoned (non-finite result, Ctrl-C halfway). One copy of the parameters
            # (and of the optimiser's state) per epoch, never per batch.
            epoch_start.take(net._params, opt, epoch_mark(history, net, opt))
            in_epoch = True
            # Full-batch gradients do not depend on row order, so only mini-batches
            # shuffle: one permutation per epoch, and each batch gathers its rows with
            # xp.take (never a shuffled copy of the whole data set: less memory and
            # cache-warm batches).
            order = None
            if shuffle and batch_size < m:
                order = backend.asarray(rng.permutation(m))
            total: Any = None  # 0-d device array: summed on the device, read once per epoch
            if program is not None:  # compile=True on JAX: the epoch is one program
                # The state is exported once and carried on (a 0-d upload costs more than
                # a tiny network's epoch); a schedule's new rate replaces its lr entry.
                if compiled_state is None:
                    compiled_state = opt.export_state(net._params)
                    state_lr = opt.state_learning_rate
                elif opt.state_learning_rate != state_lr:
                    compiled_state = opt.with_learning_rate(compiled_state)
                    state_lr = opt.state_learning_rate
                params, compiled_state, total, checked = program(
                    list(net._params), compiled_state, X, Y, w, order,
                    net._steps if any(net.dropout) else None,  # the stream's step
                )
                net._params = list(params)
                opt.import_state(compiled_state, steps_per_epoch)
            else:
                for first in range(0, m, batch_size):
                    last = min(first + batch_size, m)
                    if source is not None:  # one task per chunk, summed in chunk order
                        loss, grads = source.loss_and_grads(
                            net.flat_params, order, first, last, net.steps + first // batch_size
                        )
                    else:
                        if order is None:
                            X_batch, Y_batch = row_slice(X, first, last), Y[first:last, ...]
                            w_batch = None if w is None else w[first:last]
                        else:
                            rows = order[first:last]
                            X_batch, Y_batch = take_rows(xp, X, rows), xp.take(Y, rows, axis=0)
                            w_batch = None if w is None else xp.take(w, rows, axis=0)
                        loss, grads = net._loss_and_grads(
                            X_batch, Y_batch, w_batch,
                            stream=net._stream(order, first, last, batch_size),
                        )
                    opt.update(net._params, grads)
                    weighted = loss * (last - first)
                    total = weighted if total is None else total + weighted
            # The one host read-back of the epoch carries the parameters' finiteness too:
            # 0·Σp adds exactly 0 to the loss while every parameter is finite, and NaN as
            # soon as one is not (or, harmlessly, if Σp overflows: confirmed below). Plain
            # operators: an xp.where would cost as much again on small networks. (NumPy
            # may warn "invalid value" here when a parameter is infinite: it has already
            # warned of the overflow that made it so.)
            if program is None:
                checked = total + 0 * net._parameter_sum()
            epoch_loss = float(checked) / m  # (compiled: the program added 0·Σp itself)
            if not math.isfinite(epoch_loss):
                epoch_loss = float(total) / m
                bad = net._nonfinite_parameters()
                if bad or not math.isfinite(epoch_loss):
                    if on_divergence == "raise":
                        in_epoch = False
                        raise _roll_back(
                            net, opt, epoch_start, history, early_stopping,
                            _divergence(epoch + 1, epoch_loss, bad, opt, early_stopping),
                            (X, Y, batch_size) if outputs_checked else None,
                        )
                    # on_divergence="continue": scikit-learn's early stopping trains on;
                    # the NaN validation scores never count as the best ones.

            score = math.nan
            if early_stopping and source is not None:
                score = source.score(net.flat_params)
            elif early_stopping:
                score = float(validation_score(net, X_val, Y_val, w_val))
            # The epoch is complete: record it.
            history.loss.append(epoch_loss)
            history.n_iter += 1
            history.samples_seen += m
            net._steps += -(-m // batch_size)  # the dropout stream's step counter
            if verbose:
                print(f"Iteration {len(history.loss)}, loss = {epoch_loss:.8f}")

            improved = True
            if early_stopping:
                history.validation_scores.append(score)
                if verbose:
                    print(f"Validation score: {score:f}")
                # scikit-learn's comparisons, NaN included: a NaN score is not "below"
                # best + tol (the count resets) and never becomes the best one
                improved = not score < history.best_validation_score + tol
                if score > history.best_validation_score:
                    history.best_validation_score = score
                    history.best_params = [xp.asarray(p, copy=True) for p in net._params]
            else:
                improved = not epoch_loss > history.best_loss - tol
                history.best_loss = min(history.best_loss, epoch_loss)
            history.no_improvement_count = 0 if improved else history.no_improvement_count + 1
            opt.iteration_ends(history.samples_seen)
            in_epoch = False
            if callback is not None:
                callback(epoch, epoch_loss)  # a Ctrl-C in here keeps the complete epoch

            if n_iter_no_change is not None and history.no_improvement_count > n_iter_no_change:
                what = "Validation score" if early_stopping else "Training loss"
                message = (
                    f"{what} did not improve more than tol={tol:f} for {n_iter_no_change} "
                    "consecutive epochs."
                )
                if opt.trigger_stopping():
                    history.converged = True
                    if verbose:
                        print(f"{message} Stopping.")
                    break
                history.no_improvement_count = 0
                if verbose:
                    print(f"{message} Setting learning rate to {opt.learning_rate:f}")
        if on_divergence == "raise" and outputs_checked:
            # The epoch losses were the weights' before each update: the finished
            # model's outputs are checked once here (weights may stay finite while their
            # products overflow). A non-finite loss: the last epoch diverged.
            final = float(training_loss(net, X, Y, batch_size))
            if not math.isfinite(final):
                epoch_start.unrecord(history, net, opt)
                raise _roll_back(
                    net, opt, epoch_start, history, early_stopping,
                    _divergence(epoch + 1, final, [], opt, early_stopping, outputs=True,
                                finished=True),
                    (X, Y, batch_size),
                )
    except KeyboardInterrupt:
        # As scikit-learn's MLP: Ctrl-C ends training, not the program. Only
        # KeyboardInterrupt: any other BaseException (SystemExit, a termination signal
        # turned into an exception) propagates untouched.
        if in_epoch:
            net._params = epoch_start.params()
            opt.restore(epoch_start.opt_state)
        history.interrupted = True
        done = epoch if in_epoch else epoch + 1  # complete epochs of this call
        if early_stopping:
            kept = "the best weights so far are restored (early stopping)"
        elif done:
            kept = f"the network keeps the weights after epoch {done}"
        else:
            kept = "the network keeps the weights it had before this fit"
        cut = ", which was cut short and rolled back" if in_epoch else ""
        warnings.warn(
            f"training interrupted at epoch {epoch + 1} of {epochs}{cut}; {kept}",
            UserWarning,
            stacklevel=3,
        )
    if early_stopping and history.best_params is not None:
        net._params = [xp.asarray(p, copy=True) for p in history.best_params]
    backend.synchronize(net._params)  # JAX has no device barrier: wait on the parameters
    history.seconds += time.perf_counter() - start
    return history


class _EpochStart:
    """The state at the start of the current epoch, and of the one before, kept for a
    rollback: the parameters, the optimiser's :meth:`~xpnet.optim.Optimizer.snapshot`
    and the history's :func:`epoch_mark`.

    The epoch before is there for a diverged epoch whose start is already bad: weights
    that are finite but make non-finite outputs are only seen by the next epoch's loss
    (or the finished model's check), so the rollback goes one epoch further back.

    On mutable backends (NumPy, CuPy, torch, array-api-strict) the optimisers update the
    parameters in place, so the values are copied each epoch into one of two sets of
    buffers allocated once per fit, in turn (``buffer[...] = p``: no allocation per
    epoch, no host sync, one copy per epoch as with one set). On an immutable backend
    (JAX) updates rebind the list entries, so keeping references is a snapshot already.
    """

    def __init__(self, xp: Any, params: list[Array]) -> None:
        self.xp = xp
        self.references: list[Array] = list(params)
        self.spare: list[Array] | None = None
        self.buffers: list[Array] | None
        try:
            self.buffers = [xp.empty_like(p) for p in params]
            for buffer, p in zip(self.buffers, params):
                buffer[...] = p
        except (TypeError, ValueError, NotImplementedError):  # immutable arrays
            self.buffers = None
        self.opt_state: dict[str, Any] = {}
        self.mark: tuple[Any, ...] = ()
        self.before: tuple[Any, ...] | None = None  # the epoch before's (params, state, mark)

    def take(self, params: list[Array], opt: Optimizer, mark: tuple[Any, ...]) -> None:
        """Record ``params`` (the network's list), ``opt``'s state and ``mark`` as the
        epoch's start; the previous start becomes the epoch before's (its buffers and
        snapshot are those of two epochs ago, overwritten)."""
        spare_state: dict[str, Any] = {}
        if self.mark:  # an epoch started before this one
            if self.before is not None:
                spare_state = self.before[1]
            self.before = (self._current(), self.opt_state, self.mark)
            if self.buffers is not None:  # write into the other set
                self.buffers, self.spare = (
                    self.spare or [self.xp.empty_like(p) for p in params], self.buffers
                )
        if self.buffers is None:
            self.references = list(params)
        else:
            for buffer, p in zip(self.buffers, params):
                buffer[...] = p
        self.opt_state = opt.snapshot(reuse=spare_state)
        self.mark = mark

    def _current(self) -> list[Array]:
        return list(self.references if self.buffers is None else self.buffers)

    def params(self) -> list[Array]:
        """The recorded parameters, handed over to the network: ``take`` must not be
        called again afterwards (the loop ends after a rollback)."""
        return self._current()

    def unrecord(self, history: History, net: MLP, opt: Optimizer) -> None:
        """Forget the epoch started last, recorded already (see :func:`unrecord`)."""
        unrecord(self.mark, history, net, opt)

    def step_back(self, history: History, net: MLP, opt: Optimizer) -> bool:
        """Make the epoch before's start the current one, forgetting that epoch's
        record; False (nothing done) when this fit has no epoch before."""
        if self.before is None:
            return False
        params, self.opt_state, self.mark = self.before
        self.before = None
        self.references, self.buffers = params, None
        unrecord(self.mark, history, net, opt)
        return True


def _roll_back(
    net: MLP,
    opt: Optimizer,
    epoch_start: _EpochStart,
    history: History,
    early_stopping: bool,
    error: DivergenceError,
    training: tuple[Array, Array, int] | None,
) -> DivergenceError:
    """Back to the last finite state: the best weights with early stopping, else the
    parameters at the start of the diverged epoch; the optimiser to that epoch's start.
    With ``training`` (the training rows and batch size), the start is checked: when
    its outputs are not finite (its weights were finite but their products overflow)
    the epoch before diverged, and the rollback goes to *its* start (once, and only
    within this fit). Returns ``error``, or the error for the epoch before."""
    if early_stopping and history.best_params is not None:
        net._params = [net.xp.asarray(p, copy=True) for p in history.best_params]
        opt.restore(epoch_start.opt_state)
        return error
    net._params = epoch_start.params()
    opt.restore(epoch_start.opt_state)
    if training is None or error.epoch < 2:
        return error
    loss = float(training_loss(net, *training))
    if math.isfinite(loss) or not epoch_start.step_back(history, net, opt):
        return error
    net._params = epoch_start.params()
    opt.restore(epoch_start.opt_state)
    return _divergence(error.epoch - 1, loss, [], opt, early_stopping, outputs=True)


def _divergence(
    epoch: int, loss: float, bad: list[str], opt: Optimizer, early_stopping: bool,
    outputs: bool = False, finished: bool = False,
) -> DivergenceError:
    """The error for epoch ``epoch``; ``outputs``: its parameters were finite but the
    network they make has a non-finite ``loss`` on the training rows; ``finished``: found
    after the last epoch (:attr:`DivergenceError.finished`)."""
    if outputs:
        reason = (f"the network it trained has a loss of {loss} on the training rows "
                  "(its weights are finite but too large: the outputs overflow)")
    elif math.isfinite(loss):
        reason = f"{', '.join(bad)} became non-finite (loss {loss:.6g})"
    else:
        reason = f"the loss is {loss}" + (f" and {', '.join(bad)} became non-finite" if bad else "")
    lr = opt.learning_rate_init
    where = (
        "the best weights so far (early stopping)" if early_stopping
        else f"the weights from the start of epoch {epoch}"
    )
    return DivergenceError(
        f"training diverged at epoch {epoch}: {reason}; try a smaller lr (got {lr:g}). "
        f"The network was rolled back to {where}.",
        epoch=epoch, loss=loss, parameters=tuple(bad), reason=reason, lr=lr,
        finished=finished,
    )
