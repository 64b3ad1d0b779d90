"""Finite-difference check of the explicit backpropagation on any backend.

Central differences ``(L(θ + ε) - L(θ - ε)) / 2ε`` are compared with the gradients of
:meth:`xpnet.MLP.loss_and_grads`, entry by entry, on the network's own backend and dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backends import to_numpy
from .network import MLP

__all__ = ["ParamCheck", "check_gradients", "random_problem"]

#: Per dtype: finite-difference step, relative floor (times the largest gradient) and the
#: pass threshold. float32 round-off makes its check a coarse smoke test; a wrong formula
#: still shows up as errors of order 1.
DEFAULTS = {"float64": (1e-5, 1e-3, 1e-5), "float32": (1e-2, 1e-2, 5e-2)}


@dataclass
class ParamCheck:
    """Result for one parameter array (``W1``, ``b1``, ...)."""

    name: str
    shape: tuple[int, ...]
    checked: int  # entries compared
    max_rel_error: float
    max_abs_error: float


def random_problem(net: MLP, rows: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs ``X`` and targets valid for the network's output (NumPy arrays)."""
    rng = np.random.default_rng(seed)
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    X = rng.normal(size=(rows, n_in))
    Y: np.ndarray
    if net.output == "sigmoid":
        Y = rng.integers(0, 2, size=(rows, n_out)).astype(np.float64)
    elif net.output == "softmax":
        Y = rng.integers(0, n_out, size=rows)
    elif net.output == "exp":  # Poisson counts (>= 0)
        Y = rng.poisson(2.0, size=(rows, n_out)).astype(np.float64)
    else:
        Y = rng.normal(size=(rows, n_out))
    return X, Y


def check_gradients(
    net: MLP,
    X: Any,
    Y: Any,
    eps: float | None = None,
    max_entries: int = 2000,
    seed: int = 0,
) -> list[ParamCheck]:
    """Compare analytic and central-difference gradients of ``net`` on ``(X, Y)``.

    At most ``max_entries`` entries are checked in all (a seeded random subset of each
    parameter when the network is larger). The relative error of an entry is
    ``|a - n| / max(|a| + |n|, floor)`` with ``floor = c · max|a|`` over the whole
    network (``c`` = 1e-3 for float64, 1e-2 for float32), so entries whose gradient is
    essentially zero are judged on the scale of the others rather than on round-off.
    float32 is a coarse check (its step is large, so relu kinks can be crossed); use
    float64 to verify formulas. The parameters are restored afterwards.
    """
    default_eps, floor_factor, _ = DEFAULTS[net.dtype]
    eps = default_eps if eps is None else float(eps)
    _, grads = net.loss_and_grads(X, Y)
    analytic = [to_numpy(g).astype(np.float64) for pair in grads for g in pair]
    original = [to_numpy(p).copy() for pair in net.params for p in pair]
    scale = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in analytic)
    floor = max(floor_factor * scale, 1e-12)
    per_param = max(1, max_entries // len(original))
    rng = np.random.default_rng(seed)
    results = []
    try:
        for k, base in enumerate(original):
            flat_count = base.size
            chosen = np.arange(flat_count)
            if flat_count > per_param:
                chosen = np.sort(rng.choice(flat_count, per_param, replace=False))
            worst_rel = worst_abs = 0.0
            for flat in chosen:
                index = np.unravel_index(int(flat), base.shape)
                values = []
                for sign in (1.0, -1.0):
                    trial = [p.copy() for p in original]
                    trial[k][index] += sign * eps
                    net.set_params(list(zip(trial[0::2], trial[1::2], strict=True)))
                    values.append(float(net.loss(X, Y)))
                numeric = (values[0] - values[1]) / (2 * eps)
                a = float(analytic[k][index])
                abs_err = abs(a - numeric)
                rel_err = abs_err / max(abs(a) + abs(numeric), floor)
                if not math.isfinite(rel_err):
                    rel_err = math.inf
                worst_rel, worst_abs = max(worst_rel, rel_err), max(worst_abs, abs_err)
            layer, kind = divmod(k, 2)
            results.append(ParamCheck(f"{'Wb'[kind]}{layer + 1}", tuple(base.shape),
                                      int(chosen.size), worst_rel, worst_abs))
    finally:
        net.set_params(list(zip(original[0::2], original[1::2], strict=True)))
    return results
