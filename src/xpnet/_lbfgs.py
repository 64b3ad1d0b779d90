"""Full-batch L-BFGS training through SciPy's ``minimize(method="L-BFGS-B", jac=True)``.

The parameters are flattened into one float64 vector in scikit-learn's order (all
weights ``W_1, ..., W_L`` row-major, then all biases ``b_1, ..., b_L``, as its
``_pack``), so the optimiser sees exactly the problem scikit-learn's ``lbfgs`` solver
sees and follows the same trajectory.

SciPy's optimiser runs on the host. Each function evaluation moves the flat vector to
the network's device once (``asarray`` of the whole vector, then views cut out of it),
computes the loss and gradients there with the network's explicit backward pass, packs
``[loss, dW_1, ..., dW_L, db_1, ..., db_L]`` into one device vector and copies that back
to the host once: one transfer each way per evaluation, whatever the number of layers.

SciPy is imported here only, when ``lbfgs`` is asked for: it is not a dependency of the
core (``pip install scipy``, or the ``sklearn`` extra, which brings it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends import to_numpy

if TYPE_CHECKING:
    from .network import MLP

__all__ = ["flat_objective", "minimize_lbfgs", "pack", "unpack"]

Array = Any


def _import_minimize() -> Any:
    try:
        from scipy.optimize import minimize
    except ImportError:  # pragma: no cover - scipy comes with the test environment
        raise ImportError(
            "optimizer='lbfgs' uses SciPy's L-BFGS-B, which is not installed: "
            'pip install scipy (or pip install "xpnet[sklearn]")'
        ) from None
    return minimize


def pack(net: MLP) -> np.ndarray:
    """The network's parameters as one float64 host vector: weights first, then biases."""
    params = net._params
    parts = [to_numpy(W).reshape(-1) for W in params[0::2]]
    parts += [to_numpy(b).reshape(-1) for b in params[1::2]]
    return np.concatenate(parts).astype(np.float64, copy=False)


def unpack(net: MLP, flat: np.ndarray) -> list[Array]:
    """The flat host vector as the network's ``[W_1, b_1, ...]`` on its device and dtype.

    One host-to-device copy of the whole vector; the parameters are slices of it,
    reshaped (fresh arrays only where the backend cannot view).
    """
    xp = net.xp
    sizes = net.layer_sizes
    # copy=True: SciPy owns ``flat`` and may reuse it; the parameters must not alias it
    device_flat = net.array_backend.asarray(np.asarray(flat), dtype=net._dtype, copy=True)
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


def flat_objective(
    net: MLP, X: Array, Y: Array, sample_weight: Array | None = None
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``f(flat) -> (loss, flat gradient)`` for SciPy, computed on the network's device.

    Each call sets the network's parameters from ``flat`` (one copy to the device) and
    returns the loss and the gradient packed like ``flat`` (one copy back).
    """
    xp = net.xp

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        net._params = unpack(net, flat)
        loss, grads = net._loss_and_grads(X, Y, sample_weight)
        pieces = [xp.reshape(xp.astype(loss, net._dtype), (1,))]
        pieces += [xp.reshape(g, (-1,)) for g in grads[0::2]]
        pieces += list(grads[1::2])
        host = np.asarray(to_numpy(xp.concat(pieces)), dtype=np.float64)  # the one read-back
        return float(host[0]), host[1:]

    return objective


def minimize_lbfgs(
    net: MLP,
    X: Array,
    Y: Array,
    sample_weight: Array | None = None,
    *,
    max_iter: int,
    max_fun: int,
    tol: float,
    options: dict[str, Any] | None = None,
    callback: Callable[[Any], Any] | None = None,
) -> Any:
    """Run SciPy's L-BFGS-B on the network's loss; returns SciPy's ``OptimizeResult``.

    ``maxiter=max_iter``, ``maxfun=max_fun``, ``gtol=tol`` (scikit-learn's options);
    ``options`` adds more. The network is left at the result ``x`` (which need not be
    the last point evaluated).
    """
    minimize = _import_minimize()
    result = minimize(
        flat_objective(net, X, Y, sample_weight),
        pack(net),
        method="L-BFGS-B",
        jac=True,
        options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol, **(options or {})},
        callback=callback,
    )
    net._params = unpack(net, result.x)
    return result


def fit_lbfgs(
    net: MLP,
    X: Array,
    Y: Array,
    sample_weight: Array | None,
    *,
    max_iter: int,
    max_fun: int,
    tol: float,
    history: Any,
    callback: Callable[[int, float], Any] | None,
    verbose: bool,
) -> Any:
    """The core's ``fit(optimizer="lbfgs")``: full-batch L-BFGS, one History entry per
    L-BFGS iteration (its loss), ``n_iter`` as scikit-learn counts it
    (``min(nit, max_iter)``), and a ``RuntimeWarning`` when SciPy stops without
    converging (iteration or evaluation limit, or a failed line search)."""
    import warnings

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
            callback(len(losses) - 1, loss)

    from .train import DivergenceError

    initial = [net.xp.asarray(p, copy=True) for p in net._params]
    result = minimize_lbfgs(
        net, X, Y, sample_weight, max_iter=max_iter, max_fun=max_fun, tol=tol,
        callback=on_iteration,
    )
    loss = float(result.fun)
    bad = net._nonfinite_parameters()
    if bad or not math.isfinite(loss):  # as fit's other optimisers: roll back, raise
        net._params = initial
        reason = f"the loss is {loss}" if not math.isfinite(loss) else (
            f"{', '.join(bad)} became non-finite (loss {loss:.6g})"
        )
        raise DivergenceError(
            f"L-BFGS diverged: {reason}. The network was rolled back to its weights "
            "before this fit.",
            epoch=int(result.nit), loss=loss, parameters=tuple(bad), reason=reason,
            lr=math.nan,
        )
    history.n_iter = min(int(result.nit), max_iter)
    history.samples_seen += X.shape[0] * history.n_iter
    history.best_loss = min(history.best_loss, float(result.fun))
    history.converged = result.status == 0
    if result.status != 0:
        message = result.message.decode() if isinstance(result.message, bytes) else result.message
        warnings.warn(
            f"L-BFGS did not converge ({message}); raise epochs (max_iter) or max_fun",
            RuntimeWarning,
            stacklevel=4,
        )
    net.array_backend.synchronize()
    history.seconds += time.perf_counter() - start
    return history
