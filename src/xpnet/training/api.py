"""``fit(model, X, Y, source=None, **options)``: options checked, data placed, one runner
chosen, :func:`xpnet.training.loop.run`, the state handed back to the model."""

from __future__ import annotations

import functools
import inspect
import time
import warnings
from collections.abc import Callable
from typing import Any

from .._class_weight import check_class_weight, class_weight_rows
from .._validation import all_finite, to_backend
from ..threads import check_threads, choose_threads, thread_limits
from .compiled import (
    ChunkRunner,
    EpochProgramRunner,
    chunk_epochs,
    chunk_program,
    epoch_program,
    loss_program,
    runs_ahead,
)
from .guard import Guard
from .lbfgs import fit_lbfgs
from .loop import EagerRunner, Plan, run
from .options import Options, check_options, takes_params
from .sources import ArraySource, BatchSource
from .state import History, Model, TrainState
from .stopping import Stopping

__all__ = ["fit"]

Array = Any


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
    model's device current: the pools are capped for the call and restored afterwards."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> History:
        bound = signature.bind(*args, **kwargs)
        threads = check_threads(bound.arguments.get("threads"))
        model = bound.arguments["model"]
        batch_size = bound.arguments.get("batch_size")
        m = _rows(bound.arguments["X"])
        batch = m if not isinstance(batch_size, int) else max(1, min(batch_size, m))
        count, auto = choose_threads(threads, model.layer_sizes, batch)
        with model.array_backend.activate(), thread_limits(count):
            history = func(*args, **kwargs)
        history.threads, history.threads_auto = count, auto
        return history

    return wrapper


def check_sample_weight(model: Model, sample_weight: Any, m: int, name: str) -> Array:
    """``sample_weight`` as ``(m,)`` finite non-negative weights on the model's backend."""
    xp = model.xp
    w = to_backend(model.array_backend, sample_weight, name)
    if w.ndim != 1 or w.shape[0] != m:
        raise ValueError(f"{name} must have shape ({m},), one weight per row; got {tuple(w.shape)}")
    w = xp.astype(w, model.array_dtype)
    if not all_finite(xp, w):
        raise ValueError(f"{name} contains NaN or infinite values")
    if bool(xp.any(w < 0)):
        raise ValueError(f"{name} must be non-negative")
    return w


def _array_source(model: Model, X: Any, Y: Any, sample_weight: Any, class_weight: Any,
                  options: Options) -> ArraySource:
    """The checked training (and validation) arrays as a batch source."""
    X, Y = model.check_XY(X, Y)
    w = None
    if sample_weight is not None:
        w = check_sample_weight(model, sample_weight, X.shape[0], "sample_weight")
    if class_weight is not None:
        rows = class_weight_rows(model, Y, class_weight)
        w = rows if w is None else w * rows
    validation = None
    if options.validation_data is not None:
        X_val, Y_val = model.check_XY(*options.validation_data[:2])
        w_val = None
        if len(options.validation_data) == 3 and options.validation_data[2] is not None:
            w_val = check_sample_weight(model, options.validation_data[2], X_val.shape[0],
                                        "validation_data weights")
        validation = (X_val, Y_val, w_val)
    return ArraySource(model.architecture, model.array_backend, X, Y, w,
                       validation=validation, split=options.split,
                       dropout_key=model.dropout_key)


def _batch_size(batch_size: int | None, m: int) -> int:
    if batch_size is None:
        return m
    if batch_size > m:
        warnings.warn(
            f"batch_size={batch_size} is larger than the {m} rows of X; using {m} "
            "(full batch)", UserWarning, stacklevel=5,
        )
        return m
    return batch_size


def _runner(plan: Plan, model: Model, source: BatchSource, options: Options) -> Any:
    """Eager epochs; on JAX with ``compile=True`` compiled ones, several per call when
    nothing is asked for between epochs (and the generator can be rewound)."""
    backend = model.array_backend
    if not options.compiled or not isinstance(source, ArraySource):
        return EagerRunner(plan, backend, options.shuffle, options.rng)
    m, batch_size = plan.m, plan.batch_size
    shuffled = options.shuffle and batch_size < m
    dropout = any(model.dropout)
    key = (model.architecture, plan.opt, m, batch_size, (source.X.shape[1], source.Y.shape[1]),
           model.array_dtype, backend.device, source.w is not None, shuffled)
    data = (source.X, source.Y, source.w)
    dropout_key = model.dropout_key if dropout else None
    per_epoch = options.callback is not None or options.early_stopping or options.verbose
    span = chunk_epochs(model.layer_sizes, m, shuffled)
    if not per_epoch and span >= 2 and ChunkRunner.supported(shuffled, options.rng):
        program = chunk_program(*key, span, dropout_key)
        return ChunkRunner(plan, program, span, data, shuffled, options.rng, dropout,
                           ahead=runs_ahead(model.layer_sizes, m, span, shuffled))
    program = epoch_program(*key, dropout_key)
    return EpochProgramRunner(plan, backend, options.shuffle, options.rng, program, data,
                              dropout)


_OPTION_NAMES = {name for name, p in inspect.signature(check_options).parameters.items()
                 if p.kind is p.KEYWORD_ONLY}


@_thread_limited  # on CuPy, the whole fit runs with the model's device current
def fit(
    model: Model, X: Any, Y: Any, epochs: int = 100, lr: float = 0.5,
    batch_size: int | None = None, shuffle: bool = True,
    callback: Callable[[int, float], Any] | None = None, *,
    sample_weight: Any = None, class_weight: Any = None, threads: int | None = None,
    source: BatchSource | None = None, **options: Any,
) -> History:
    """Train ``model`` on ``(X, Y)`` (or on ``source``'s data); see :func:`xpnet.train.fit`
    for the options. ``source``: a batch source (:mod:`xpnet.training.sources`) that
    replaces ``X``, ``Y``, ``sample_weight``, ``class_weight`` and ``validation_data``."""
    for name in options.keys() - _OPTION_NAMES:
        raise TypeError(f"fit() got an unexpected keyword argument {name!r}")
    checked = check_options(model, epochs, lr, batch_size, shuffle, callback, **options)
    class_weight = check_class_weight(model, class_weight)
    history = checked.history
    state = TrainState(model.flat_params, model.steps)
    if checked.lbfgs:  # full batch through SciPy: its own loop (over any source's rows)
        data: Any = source
        if data is None:
            data = _array_source(model, X, Y, sample_weight, class_weight, checked)
        data.prepare(checked.rng, False, checked.validation_fraction)
        fit_lbfgs(data, state, history, max_iter=checked.epochs, max_fun=checked.max_fun,
                  tol=checked.tol, callback=checked.callback, verbose=checked.verbose)
        model.flat_params = state.params
        return history
    if source is None:
        source = _array_source(model, X, Y, sample_weight, class_weight, checked)
    m = source.prepare(checked.rng, checked.early_stopping, checked.validation_fraction)
    return _train(model, source, checked, state, m)


def _training_loss(model: Model, source: BatchSource, compiled: bool,
                   batch_size: int) -> Callable[[list[Array]], float] | None:
    """The guard's check of a network's outputs: its loss on the training rows (array
    sources only), as one compiled program when the epochs are compiled."""
    if not isinstance(source, ArraySource):
        return None
    data = source
    if not compiled:
        return lambda params: data.outputs_check(params, batch_size)
    program = loss_program(model.architecture, model.xp, data.X.shape[0],
                           (data.X.shape[1], data.Y.shape[1]), model.array_dtype,
                           model.array_backend.device)
    return lambda params: float(program(params, data.X, data.Y))


def _train(model: Model, source: BatchSource, options: Options, state: TrainState,
           m: int) -> History:
    xp, history, early_stopping = model.xp, options.history, options.early_stopping
    n_iter_no_change = options.n_iter_no_change
    if early_stopping and n_iter_no_change is None:
        n_iter_no_change = 10
    batch_size = _batch_size(options.batch_size, m)
    history.n_iter = 0
    history.converged = history.interrupted = False
    if early_stopping and history.best_params is None:
        # scikit-learn starts from the initial weights as the "best" ones, so a run whose
        # every validation score is NaN ends on them rather than on diverged weights
        history.best_params = [xp.asarray(p, copy=True) for p in state.params]
    outputs = _training_loss(model, source, options.compiled, batch_size)

    guard = Guard(xp, options.on_divergence, early_stopping, options.opt.learning_rate_init,
                  outputs)
    stopping = Stopping(options.tol, n_iter_no_change, early_stopping, options.verbose)
    plan = Plan(source, options.opt, None, guard, stopping, history, xp, options.epochs, m,
                batch_size, options.callback, options.verbose, stacklevel=4,
                callback_params=options.callback is not None and takes_params(options.callback))
    plan.runner = _runner(plan, model, source, options)
    if isinstance(plan.runner, ChunkRunner) and guard.outputs is not None:
        guard.outputs = plan.runner.finished_check(guard.outputs)
    start = time.perf_counter()
    try:
        run(plan, state)
    finally:
        model.flat_params, model.steps = state.params, state.steps
    model.array_backend.synchronize(state.params)  # JAX has no device barrier
    history.seconds += time.perf_counter() - start
    return history
