"""Full-batch L-BFGS training through SciPy's ``minimize(method="L-BFGS-B", jac=True)``.

The parameters are flattened into one float64 vector in scikit-learn's order (all
weights ``W_1, ..., W_L`` row-major, then all biases ``b_1, ..., b_L``, as its
``_pack``), so the optimiser sees exactly the problem scikit-learn's ``lbfgs`` solver
sees and follows the same trajectory.

SciPy's optimiser runs on the host. Each function evaluation moves the flat vector to
the device once (``asarray`` of the whole vector, then views cut out of it), computes
the loss and gradients there with the explicit backward pass of an
:class:`~xpnet.training.sources.ArraySource`, packs ``[loss, dW_1, ..., dW_L, db_1, ...,
db_L]`` into one device vector and copies that back once: one transfer each way per
evaluation, whatever the number of layers.

The source is any :class:`FullBatch`: on a Dask cluster
(:class:`xpnet.distributed.DaskSource`) each evaluation is one pass of chunk tasks over
all rows, their sums added in chunk order on the driver, so the optimiser runs on the
driver and follows the single-process trajectory to rounding.

SciPy is imported only when ``lbfgs`` is asked for: it is not a dependency of the core
(``pip install scipy``, or the ``sklearn`` extra, which brings it).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from ..backends import Backend, to_numpy
from ..core import nonfinite_parameters
from .state import DivergenceError, History, TrainState

__all__ = ["FullBatch", "fit_lbfgs", "flat_objective", "minimize_lbfgs", "pack", "unpack"]

Array = Any


class FullBatch(Protocol):
    """What L-BFGS needs of a batch source (prepared): its backend and namespace, ``X``
    (for the row count) and the loss and gradients of rows ``first:last``. An
    :class:`~xpnet.training.sources.ArraySource` (arrays in memory) or
    :class:`xpnet.distributed.DaskSource` (each call one pass of chunk tasks)."""

    backend: Backend
    xp: Any
    X: Any

    def loss_and_grads(self, params: list[Array], order: Any, first: int, last: int,
                       step: int) -> tuple[Array, list[Array]]: ...


def _import_minimize() -> Any:
    try:
        from scipy.optimize import minimize
    except ImportError:  # pragma: no cover - scipy comes with the test environment
        raise ImportError(
            "optimizer='lbfgs' uses SciPy's L-BFGS-B, which is not installed: "
            'pip install scipy (or pip install "xpnet[sklearn]")'
        ) from None
    return minimize


def pack(params: Sequence[Array]) -> np.ndarray:
    """``[W1, b1, ...]`` as one float64 host vector: weights first, then biases."""
    parts = [to_numpy(W).reshape(-1) for W in params[0::2]]
    parts += [to_numpy(b).reshape(-1) for b in params[1::2]]
    return np.concatenate(parts).astype(np.float64, copy=False)


def unpack(flat: np.ndarray, sizes: Sequence[int], backend: Backend, dtype: Any) -> list[Array]:
    """The flat host vector as ``[W_1, b_1, ...]`` on ``backend`` in ``dtype``: one copy
    of the whole vector to the device, the parameters slices of it, reshaped."""
    xp = backend.xp
    # copy=True: SciPy owns ``flat`` and may reuse it; the parameters must not alias it
    device_flat = backend.asarray(np.asarray(flat), dtype=dtype, copy=True)
    weights, biases = [], []
    start = 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        end = start + fan_in * fan_out
        weights.append(xp.reshape(device_flat[start:end], (fan_in, fan_out)))
        start = end
    for fan_out in sizes[1:]:
        end = start + fan_out
        biases.append(device_flat[start:end])
        start = end
    params: list[Array] = []
    for W, b in zip(weights, biases, strict=True):
        params += [W, b]
    return params


def flat_objective(source: FullBatch, sizes: Sequence[int], dtype: Any,
                   ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``f(flat) -> (loss, flat gradient)`` for SciPy on all rows of ``source``,
    computed on its device (one copy there, one back)."""
    xp, m = source.xp, int(source.X.shape[0])

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        params = unpack(flat, sizes, source.backend, dtype)
        loss, grads = source.loss_and_grads(params, None, 0, m, 0)
        pieces = [xp.reshape(xp.astype(loss, dtype), (1,))]
        pieces += [xp.reshape(g, (-1,)) for g in grads[0::2]]
        pieces += list(grads[1::2])
        host = np.asarray(to_numpy(xp.concat(pieces)), dtype=np.float64)  # the one read-back
        return float(host[0]), host[1:]

    return objective


def minimize_lbfgs(
    source: FullBatch, params: Sequence[Array], *, max_iter: int, max_fun: int,
    tol: float, options: dict[str, Any] | None = None,
    callback: Callable[[Any], Any] | None = None,
) -> tuple[Any, list[Array]]:
    """SciPy's L-BFGS-B on the loss of ``source`` from ``params``: its
    ``OptimizeResult`` and the parameters at ``result.x`` (which need not be the last
    point evaluated). ``maxiter=max_iter``, ``maxfun=max_fun``, ``gtol=tol``
    (scikit-learn's options); ``options`` adds more."""
    sizes = [params[0].shape[0]] + [W.shape[1] for W in params[0::2]]
    dtype = params[0].dtype
    result = _import_minimize()(
        flat_objective(source, sizes, dtype), pack(params), method="L-BFGS-B", jac=True,
        options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol, **(options or {})},
        callback=callback,
    )
    return result, unpack(result.x, sizes, source.backend, dtype)


def fit_lbfgs(
    source: FullBatch, state: TrainState, history: History, *, max_iter: int,
    max_fun: int, tol: float, callback: Callable[[int, float], Any] | None, verbose: bool,
) -> History:
    """``fit(optimizer="lbfgs")``: full-batch L-BFGS, one History entry per L-BFGS
    iteration (its loss), ``n_iter`` as scikit-learn counts it (``min(nit, max_iter)``),
    and a ``RuntimeWarning`` when SciPy stops without converging. A ``KeyboardInterrupt``
    from ``callback`` (Ctrl-C) ends the run after that iteration, ``history.interrupted``
    set, with a ``UserWarning``, as the other optimisers' loop does. A non-finite result
    leaves ``state`` as it was and raises :class:`DivergenceError`."""
    start = time.perf_counter()
    history.n_iter = 0
    history.converged = False
    losses: list[float] = []

    def on_iteration(intermediate_result: Any) -> None:  # SciPy passes it by this name
        loss = float(intermediate_result.fun)
        losses.append(loss)
        history.loss.append(loss)
        if verbose:
            print(f"Iteration {len(losses)}, loss = {loss:.8f}")
        if callback is not None:
            try:
                callback(len(losses) - 1, loss)
            except KeyboardInterrupt:  # Ctrl-C (or a callback's stop): keep this iteration
                history.interrupted = True
                raise StopIteration from None

    history.interrupted = False
    result, params = minimize_lbfgs(source, state.params, max_iter=max_iter,
                                    max_fun=max_fun, tol=tol, callback=on_iteration)
    loss = float(result.fun)
    bad = nonfinite_parameters(params, source.xp)
    if bad or not math.isfinite(loss):  # as fit's other optimisers: roll back, raise
        reason = f"the loss is {loss}" if not math.isfinite(loss) else (
            f"{', '.join(bad)} became non-finite (loss {loss:.6g})"
        )
        raise DivergenceError(
            f"L-BFGS diverged: {reason}. The network was rolled back to its weights "
            "before this fit.",
            epoch=int(result.nit), loss=loss, parameters=tuple(bad), reason=reason,
            lr=math.nan,
        )
    state.params = params
    history.n_iter = min(int(result.nit), max_iter)
    history.samples_seen += int(source.X.shape[0]) * history.n_iter
    history.best_loss = min(history.best_loss, loss)
    history.converged = result.status == 0
    if history.interrupted:
        warnings.warn(
            f"training interrupted at iteration {len(losses)} of {max_iter}; the network "
            "keeps the weights after that iteration", UserWarning, stacklevel=4)
    elif result.status != 0:
        message = result.message.decode() if isinstance(result.message, bytes) else result.message
        warnings.warn(
            f"L-BFGS did not converge ({message}); raise epochs (max_iter) or max_fun",
            RuntimeWarning,
            stacklevel=4,
        )
    source.backend.synchronize()
    history.seconds += time.perf_counter() - start
    return history
