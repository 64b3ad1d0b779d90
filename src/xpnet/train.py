"""The training loop: epochs, mini-batches, shuffling and the loss history.

It never computes a gradient itself; it asks the network for loss and gradients and
the optimiser for the update. Data are checked and moved to the device once per fit,
each batch is gathered from the device-resident data through one permutation per epoch,
and the loss is read back to the host once per epoch.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _validation as v
from .optim import SGD

if TYPE_CHECKING:
    from .network import MLP

__all__ = ["History", "fit"]


@dataclass
class History:
    """What a call to ``fit`` measured.

    Attributes
    ----------
    loss : list of float
        Mean training loss of each epoch.
    seconds : float
        Wall time of the whole fit, device work included (the backend is synchronised).
    """

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.loss)


def fit(
    net: MLP,
    X: Any,
    Y: Any,
    epochs: int = 100,
    lr: float = 0.5,
    batch_size: int | None = None,
    shuffle: bool = True,
    callback: Callable[[int, float], Any] | None = None,
) -> History:
    """Train ``net`` on ``(X, Y)``; see :meth:`xpnet.MLP.fit`."""
    epochs = v.check_positive_int("epochs", epochs)
    optimizer = SGD(lr)
    if batch_size is not None:
        batch_size = v.check_positive_int("batch_size", batch_size)
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be True or False; got {shuffle!r}")
    X, Y = net._check_XY(X, Y)
    m = X.shape[0]
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
    history = History()
    start = time.perf_counter()
    for epoch in range(epochs):
        # Full-batch gradients do not depend on row order, so only mini-batches shuffle:
        # one permutation per epoch, and each batch gathers its rows with xp.take (never a
        # shuffled copy of the whole data set: less memory and cache-warm batches).
        order = None
        if shuffle and batch_size < m:
            order = backend.asarray(net._shuffle_rng.permutation(m))
        total: Any = None  # 0-d device array: summed on the device, read once per epoch
        for first in range(0, m, batch_size):
            last = min(first + batch_size, m)
            if order is None:
                X_batch, Y_batch = X[first:last, ...], Y[first:last, ...]
            else:
                rows = order[first:last]
                X_batch, Y_batch = xp.take(X, rows, axis=0), xp.take(Y, rows, axis=0)
            loss, grads = net._loss_and_grads(X_batch, Y_batch)
            optimizer.update(net._params, grads)
            weighted = loss * (last - first)
            total = weighted if total is None else total + weighted
        epoch_loss = float(total) / m  # the one host read-back of the epoch
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"training diverged at epoch {epoch + 1}: loss is {epoch_loss}; "
                f"try a smaller lr (got {optimizer.lr})"
            )
        history.loss.append(epoch_loss)
        if callback is not None:
            callback(epoch, epoch_loss)
    backend.synchronize()
    history.seconds = time.perf_counter() - start
    return history
