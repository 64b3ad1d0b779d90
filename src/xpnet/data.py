"""Built-in data sets and splitting. Data are NumPy arrays; nothing here does math on the
network's backend."""

from __future__ import annotations

import math

import numpy as np

from ._validation import check_nonnegative_float, check_positive_int

__all__ = ["make_moons", "train_test_split"]


def make_moons(
    n_samples: int = 400, noise: float = 0.1, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: ``X (n_samples, 2)`` float64, ``y (n_samples,)`` 0/1.

    The first ``ceil(n/2)`` rows form the upper moon (class 0), the rest the lower one
    (class 1); Gaussian noise of standard deviation ``noise`` is added to every coordinate.
    """
    n_samples = check_positive_int("n_samples", n_samples)
    noise = check_nonnegative_float("noise", noise)
    rng = np.random.default_rng(seed)
    n_upper = (n_samples + 1) // 2
    n_lower = n_samples - n_upper
    t_upper = np.linspace(0.0, math.pi, n_upper)
    t_lower = np.linspace(0.0, math.pi, n_lower)
    upper = np.column_stack([np.cos(t_upper), np.sin(t_upper)])
    lower = np.column_stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)])
    X = np.vstack([upper, lower]) + rng.normal(0.0, noise, size=(n_samples, 2))
    y = np.concatenate([np.zeros(n_upper, dtype=np.int64), np.ones(n_lower, dtype=np.int64)])
    return X, y


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float = 0.25, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle rows with ``seed`` and hold out ``test_fraction`` of them (at least one row
    on each side). ``test_fraction=0`` returns empty test arrays."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1); got {test_fraction!r}")
    m = X.shape[0]
    n_test = int(round(m * test_fraction))
    if test_fraction > 0:
        n_test = min(max(n_test, 1), m - 1)
    order = np.random.default_rng(seed).permutation(m)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]
