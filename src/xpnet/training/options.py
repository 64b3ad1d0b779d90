"""The options of ``fit``, all checked once, before the data are touched: a mistake
must leave the network as it was, not fail after epoch 1."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._validation import check_nonnegative_float, check_positive_int
from ..optim import SGD, Optimizer, get_optimizer
from .compiled import check_compile
from .state import History

__all__ = ["Options", "check_options", "takes_params"]


@dataclass
class Options:
    """Checked options (see :func:`xpnet.training.api.fit` for their meaning)."""

    epochs: int
    opt: Optimizer
    lbfgs: bool
    batch_size: int | None
    shuffle: bool
    callback: Callable[[int, float], Any] | None
    early_stopping: bool
    validation_fraction: float
    validation_data: tuple[Any, ...] | None
    tol: float
    n_iter_no_change: int | None
    rng: Any
    history: History
    verbose: bool
    max_fun: int
    on_divergence: str
    compiled: bool
    split: Callable[..., Any] | None


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return value


def _check_optimizer(optimizer: Any, lr: float) -> tuple[Optimizer, bool]:
    lbfgs = isinstance(optimizer, str) and optimizer == "lbfgs"
    if isinstance(optimizer, str) and optimizer not in ("sgd", "adam", "lbfgs"):
        raise ValueError(
            "optimizer must be 'sgd', 'adam', 'lbfgs' or an Optimizer instance; "
            f"got {optimizer!r}"
        )
    return (SGD(lr) if optimizer is None or lbfgs else get_optimizer(optimizer, lr)), lbfgs


def _check_validation(validation_fraction: Any, validation_data: Any) -> None:
    if (isinstance(validation_fraction, bool) or not isinstance(validation_fraction, numbers.Real)
            or not 0.0 < float(validation_fraction) < 1.0):
        raise ValueError(
            f"validation_fraction must be a number in (0, 1); got {validation_fraction!r}"
        )
    if validation_data is None:
        return
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


def takes_params(callback: Any) -> bool:
    """Whether ``callback`` is called as ``callback(epoch, loss, params)``: it has exactly
    three positional parameters without defaults (else ``callback(epoch, loss)``)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.default is p.empty]
    return len(positional) == 3


def _check_objects(callback: Any, history: Any, rng: Any, split: Any) -> None:
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
    if split is not None and not callable(split):
        raise TypeError(
            "split must be a function split(m, fraction, rng) -> (training rows, "
            f"held-out rows), or None; got {split!r}"
        )


def check_options(
    model: Any, epochs: Any, lr: Any, batch_size: Any, shuffle: Any, callback: Any, *,
    optimizer: Any = None, early_stopping: Any = False, validation_fraction: Any = 0.1,
    validation_data: Any = None, tol: Any = 1e-4, n_iter_no_change: Any = None,
    rng: Any = None, history: Any = None, verbose: Any = False, max_fun: Any = 15000,
    on_divergence: Any = "raise", compile: Any = False, split: Any = None,
) -> Options:
    """Every option checked, in the order the errors were always raised."""
    epochs = check_positive_int("epochs", epochs)
    opt, lbfgs = _check_optimizer(optimizer, lr)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    _check_bool("shuffle", shuffle)
    _check_bool("early_stopping", early_stopping)
    tol = check_nonnegative_float("tol", tol)
    if n_iter_no_change is not None:
        n_iter_no_change = check_positive_int("n_iter_no_change", n_iter_no_change)
    _check_validation(validation_fraction, validation_data)
    _check_objects(callback, history, rng, split)
    _check_bool("verbose", verbose)
    if on_divergence not in ("raise", "continue"):
        raise ValueError(f"on_divergence must be 'raise' or 'continue'; got {on_divergence!r}")
    opt.check_state(model.flat_params)
    compiled = check_compile(compile, model.backend)
    if compiled and type(opt).apply is Optimizer.apply:
        raise ValueError(
            f"compile=True needs an optimiser with explicit state (apply); "
            f"{type(opt).__name__} has none"
        )
    if lbfgs:
        _check_lbfgs(model, batch_size, early_stopping, validation_data)
        tol = check_nonnegative_float("tol", tol)
        max_fun = check_positive_int("max_fun", max_fun)
    return Options(
        epochs, opt, lbfgs, batch_size, shuffle, callback,
        early_stopping or validation_data is not None, float(validation_fraction),
        validation_data, tol, n_iter_no_change, model.shuffle_rng if rng is None else rng,
        History() if history is None else history, verbose, max_fun, on_divergence,
        compiled, split,
    )


def _check_lbfgs(model: Any, batch_size: Any, early_stopping: bool, validation_data: Any,
                 ) -> None:
    if any(model.dropout):
        raise ValueError(
            f"optimizer='lbfgs' cannot train with dropout (the network has dropout="
            f"{list(model.dropout)}): its line searches need one fixed loss, and dropout "
            "draws new masks every step; use optimizer='adam' or 'sgd', or dropout=0"
        )
    if batch_size is not None:
        raise ValueError(
            f"optimizer='lbfgs' trains on the full batch; batch_size must be None, "
            f"got {batch_size!r}"
        )
    if early_stopping or validation_data is not None:
        raise ValueError("optimizer='lbfgs' does not support early stopping or validation_data")
