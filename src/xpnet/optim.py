"""Parameter update rules. They see flat lists of arrays, never layers.

``params`` and ``grads`` are lists of the same length (``[W1, b1, W2, b2, ...]``).
Updates are in place where the backend allows it (``p -= ...`` mutates NumPy, CuPy and
torch arrays) and rebind the list entry, so immutable backends work too.
"""

from __future__ import annotations

from typing import Any

from ._validation import check_positive_float

__all__ = ["SGD"]

Array = Any


class SGD:
    """Plain gradient descent: ``p ← p − lr · dp``."""

    def __init__(self, lr: float = 0.1) -> None:
        self.lr = check_positive_float("lr", lr)

    def update(self, params: list[Array], grads: list[Array]) -> None:
        lr = self.lr
        for i, grad in enumerate(grads):
            p = params[i]
            p -= lr * grad
            params[i] = p
