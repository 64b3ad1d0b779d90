"""Batch sources: where the training loop gets each batch's loss and gradients.

The protocol (:class:`BatchSource`) is three calls, made by :func:`xpnet.training.loop.run`:

- ``prepare(rng, early_stopping, validation_fraction) -> int``: check and place the data,
  hold out the early-stopping rows; the number of training rows ``m``;
- ``loss_and_grads(params, order, first, last, step) -> (loss, grads)``: the batch of
  rows ``order[first:last]`` (``first:last`` when ``order`` is None) at the flat
  parameters ``[W1, b1, ...]``; ``step`` is the batch's absolute optimiser step (the
  model's steps at the epoch's start plus ``first // batch_size``), which keys the
  dropout masks;
- ``score(params)``: the validation score (0-d array or float; higher is better);
- optionally ``validate(params)``: ``[score, loss]`` on the validation rows (a ``(2,)``
  array or sequence, read back once per epoch by the loop instead of ``score``; see
  :func:`validation`). Without it the validation loss is recorded as NaN.

A source is built with the architecture, backend and dropout key, never with the
network. :class:`ArraySource` serves arrays in memory (dense, or SciPy sparse ``X``);
:mod:`xpnet.distributed` has the Dask one. The early-stopping split is a callable
``split(m, fraction, rng) -> (training rows, held-out rows)`` (:func:`validation_rows`
by default), so the estimators pass scikit-learn's stratified split.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .._dropout import DropoutStream
from .._sparse import is_sparse, row_slice, take_rows
from ..backends import Backend
from ..core import Architecture, hidden_forward, loss_and_grads, penalty

__all__ = ["LOSS_BLOCK_ROWS", "ArraySource", "BatchSource", "Split", "layer_bounds",
           "loss_bound", "score", "training_loss", "validation", "validation_rows"]

Array = Any
#: ``split(m, fraction, rng) -> (training rows, held-out rows)``, host index arrays.
Split = Callable[[int, float, Any], tuple[Any, Any]]
#: Most rows of one block of :func:`training_loss`.
LOSS_BLOCK_ROWS = 1 << 16


class BatchSource(Protocol):
    def prepare(self, rng: Any, early_stopping: bool, validation_fraction: float) -> int: ...
    def loss_and_grads(self, params: list[Array], order: Any, first: int, last: int,
                       step: int) -> tuple[Array, list[Array]]: ...
    def score(self, params: list[Array]) -> Any: ...


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


def _outputs(arch: Architecture, xp: Any, params: list[Array], X: Array) -> tuple[Array, Array]:
    _, Z_out = hidden_forward(arch.hidden, params, X, xp)
    return Z_out, arch.output.activation(xp, Z_out)


def score(arch: Architecture, xp: Any, params: list[Array], X: Array, Y: Array,
          sample_weight: Array | None = None) -> Array:
    """The validation score of ``params`` on checked arrays, a 0-d array (higher is better).

    Accuracy for sigmoid outputs (a row counts when every output is on the right side of
    0.5, i.e. subset accuracy for multi-label) and softmax outputs (arg-max), R² averaged
    over the outputs for identity outputs (1 for a constant target predicted exactly, 0
    otherwise) — scikit-learn's ``accuracy_score``/``r2_score``; NaN when a prediction
    is not finite, as scikit-learn's MLPs score it. ``sample_weight`` weights the rows.
    """
    return _score_of(arch, xp, _outputs(arch, xp, params, X)[1], Y, sample_weight)


def _score_of(arch: Architecture, xp: Any, A: Array, Y: Array,
              sample_weight: Array | None) -> Array:
    task = arch.output.task
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


def validation(arch: Architecture, xp: Any, params: list[Array], X: Array, Y: Array,
               sample_weight: Array | None = None) -> Array:
    """``[score, loss]`` of ``params`` on the validation rows, one ``(2,)`` array from one
    forward pass (read back once per epoch: no extra host sync for the loss).

    The score is :func:`score`'s; the loss is the training batches' loss taken over
    these rows as one batch: the (weighted) mean ``Σ w ℓ / Σ w`` plus the L2 term
    ``alpha/(2S) Σ‖W‖²`` (``S`` the rows or ``Σ w``), without dropout — so it sits on the
    scale of ``History.loss`` (scikit-learn's ``loss_curve_``)."""
    Z_out, A_out = _outputs(arch, xp, params, X)
    value = _score_of(arch, xp, A_out, Y, sample_weight)
    if sample_weight is None:
        total: Any = X.shape[0]
        column = None
    else:
        total = xp.sum(sample_weight)
        total = total + xp.astype(total == 0, total.dtype)
        column = xp.reshape(sample_weight, (-1, 1)) / total
    loss = arch.output.loss(xp, Z_out, A_out, Y, column)
    if arch.alpha:
        loss = loss + penalty(arch.alpha, params, total, xp)
    return xp.stack([xp.astype(value, loss.dtype), loss])


def training_loss(arch: Architecture, xp: Any, params: list[Array], X: Array, Y: Array,
                  batch_size: int) -> Array:
    """The mean loss of ``params`` on the training rows (checked arrays), L2 penalty
    included, as a 0-d array (no host sync), without dropout. A forward pass in blocks of
    ``batch_size`` rows (full batch: at most :data:`LOSS_BLOCK_ROWS`), so it holds no
    more than an epoch did. Non-finite exactly when some row's loss, or the penalty, is:
    finite weights whose products overflow make a network that predicts NaN."""
    m = X.shape[0]
    block = batch_size if batch_size < m else min(m, LOSS_BLOCK_ROWS)
    total: Any = None
    for first in range(0, m, block):
        last = min(first + block, m)
        Z_out, A_out = _outputs(arch, xp, params, row_slice(X, first, last))
        part = arch.output.loss(xp, Z_out, A_out, Y[first:last, ...]) * (last - first)
        total = part if total is None else total + part
    loss = total / m
    return loss + penalty(arch.alpha, params, m, xp) if arch.alpha else loss


def layer_bounds(params: list[Array], x_max: Array, xp: Any) -> list[Array]:
    """Bounds on ``|Z_l|`` (0-d arrays, layer by layer) for any input row whose entries
    are at most ``x_max`` in magnitude, without a forward pass: ``|Z_l| <= a ·
    max_j ‖W_l[:, j]‖₁ + max |b_l|``, starting from ``a = x_max`` and taking ``a = bound
    + 1`` after a hidden layer (``|g(z)| <= |z| + 1`` for every hidden activation: sigmoid
    and tanh are at most 1, relu and the identity at most ``|z|``). A computed ``Z``
    exceeds its exact value by a relative ``n·ε`` at most; an overflowed (inf or NaN)
    bound says nothing."""
    bounds = []
    a = x_max
    for layer in range(len(params) // 2):
        W, b = params[2 * layer], params[2 * layer + 1]
        bound = a * xp.max(xp.sum(xp.abs(W), axis=0)) + xp.max(xp.abs(b))
        bounds.append(bound)
        a = bound + 1
    return bounds


def loss_bound(arch: Architecture, xp: Any, params: list[Array], X: Array,
               Y: Array) -> Array:
    """An upper bound of :func:`training_loss` (a 0-d array) from :func:`layer_bounds`
    and the largest entries of ``X`` and ``Y``, with no forward pass; finite only when
    no sum the loss makes can come near overflowing, so that the loss is finite too.

    With ``E = 2 (B + max|Y| + 1)``, ``B`` the output layer's bound (the factor 2 covers
    the rounding of the forward pass), every output's loss term is at most ``P = 4E² +
    log(n_out) + 1``, plus ``e^E`` for the exp output: softplus(z) - yz for the sigmoid,
    lse(z) - z_y for the softmax, (z - y)²/2 for the identity, y log y - yz - y + e^z for
    Poisson, all non-negative. The data term is at most ``n_out·P``, computed as ``4m·
    n_out·P / (4m)`` (inf when the sum over the rows could overflow), plus the L2 term."""
    m, n_out = X.shape[0], Y.shape[1]
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is the answer "unknown"
        x_max = xp.maximum(xp.max(X), -xp.min(X))
        y_max = xp.maximum(xp.max(Y), -xp.min(Y))
        E = 2 * (layer_bounds(params, x_max, xp)[-1] + y_max + 1)
        P = 4 * E * E + (math.log(n_out) + 1)
        if arch.output.name == "exp":
            P = P + xp.exp(E)
        bound = (4 * m * n_out) * P / (4 * m)
        return bound + penalty(arch.alpha, params, m, xp) if arch.alpha else bound


class ArraySource:
    """Checked arrays in memory on the backend: ``X`` ``(m, n_in)`` (dense, or SciPy
    sparse on NumPy), ``Y`` ``(m, n_out)``, row weights ``w`` ``(m,)`` or None;
    ``validation``: checked ``(X_val, Y_val, w_val)`` rows to score, else the rows
    ``split`` holds out when early stopping is asked for. Each batch is gathered from
    the arrays through the epoch's permutation (never a shuffled copy of the data)."""

    def __init__(
        self, arch: Architecture, backend: Backend, X: Array, Y: Array,
        w: Array | None = None, *, validation: tuple[Array, Array, Array | None] | None = None,
        split: Split | None = None, dropout_key: Any = None,
    ) -> None:
        self.arch, self.backend, self.xp = arch, backend, backend.xp
        self.X, self.Y, self.w = X, Y, w
        self.validation = validation
        self.split = validation_rows if split is None else split
        self.dropout_key = dropout_key if arch.dropout else None
        # the cached ones vectors of the column sums (under jax.jit a cached array would
        # be a tracer, so JAX builds them in the step)
        self.row_sum = None if backend.name == "jax" else self._row_sum
        self.ones: dict[int, Array] = {}

    def prepare(self, rng: Any, early_stopping: bool, validation_fraction: float) -> int:
        if early_stopping and self.validation is None:
            train_rows, val_rows = self.split(self.X.shape[0], validation_fraction, rng)
            held_out = self.rows(self.backend.asarray(val_rows))
            self.X, self.Y, self.w = self.rows(self.backend.asarray(train_rows))
            self.validation = held_out
        return int(self.X.shape[0])

    def rows(self, index: Array) -> tuple[Array, Array, Array | None]:
        """``(X, Y, w)`` of the rows ``index`` (a backend index array)."""
        xp, w = self.xp, self.w
        return (take_rows(xp, self.X, index), xp.take(self.Y, index, axis=0),
                None if w is None else xp.take(w, index, axis=0))

    def _row_sum(self, dZ: Array) -> Array:
        """Column sums of ``dZ`` as one matrix-vector product with a cached ones vector
        (NumPy's axis-0 reduction of a narrow matrix costs 3-10x more)."""
        m = dZ.shape[0]
        ones = self.ones.get(m)
        if ones is None:
            ones = self.ones[m] = self.xp.ones((m,), dtype=dZ.dtype, device=self.backend.device)
        return ones @ dZ

    def loss_and_grads(self, params: list[Array], order: Any, first: int, last: int,
                       step: int) -> tuple[Array, list[Array]]:
        xp, X, Y, w = self.xp, self.X, self.Y, self.w
        rows = None
        if order is None:
            X_batch, Y_batch = row_slice(X, first, last), Y[first:last, ...]
            w_batch = None if w is None else w[first:last]
        else:
            rows = order[first:last]
            X_batch, Y_batch = take_rows(xp, X, rows), xp.take(Y, rows, axis=0)
            w_batch = None if w is None else xp.take(w, rows, axis=0)
        stream = None
        if self.dropout_key is not None:
            if rows is None:
                rows = xp.arange(first, last, dtype=self.backend.index_dtype,
                                 device=self.backend.device)
            stream = DropoutStream(self.dropout_key, step, rows)
        arch = self.arch
        return loss_and_grads(
            params, X_batch, Y_batch, w_batch, None, hidden=arch.hidden, output=arch.output,
            alpha=arch.alpha, xp=xp, row_sum=self.row_sum, dropout=arch.dropout, stream=stream,
        )

    def score(self, params: list[Array]) -> Array:
        assert self.validation is not None
        return score(self.arch, self.xp, params, *self.validation)

    def validate(self, params: list[Array]) -> Array:
        assert self.validation is not None
        return validation(self.arch, self.xp, params, *self.validation)

    def training_loss(self, params: list[Array], batch_size: int) -> Array:
        return training_loss(self.arch, self.xp, params, self.X, self.Y, batch_size)

    def outputs_check(self, params: list[Array], batch_size: int) -> float:
        """The guard's check of a network: a number finite exactly when its training
        loss is: :func:`loss_bound` when that is finite (no forward pass over the data),
        else the loss itself (sparse ``X``: always the loss)."""
        if not is_sparse(self.X):
            bound = float(loss_bound(self.arch, self.xp, params, self.X, self.Y))
            if math.isfinite(bound):
                return bound
        return float(self.training_loss(params, batch_size))
