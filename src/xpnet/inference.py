"""Prediction in blocks of rows: bounded memory whatever the row count, same bits.

:meth:`xpnet.MLP.forward`/``predict_proba``/``predict``, the scikit-learn estimators'
``predict``/``predict_proba``/``predict_log_proba``/``score`` and ``xpnet predict`` /
``xpnet evaluate`` push their input through the network a block of rows at a time and
write each block's result into the output, so the temporaries (each layer's
pre-activation and activation, the input block when it must be cast to the network's
dtype) are those of one block, a few MiB, and the memory a prediction needs above its
input and output does not grow with the row count.

**The rule.** A block has ``block_rows_for(layer_sizes, itemsize)`` rows:
``BLOCK_BYTES`` (4 MiB) divided by the bytes of one row of the widest layer after the
input (``itemsize`` bytes per value: 4 for float32, 8 for float64; these are the
temporaries) or of a quarter of the input row (the input block, a view of ``X`` or its
cast copy, may take 16 MiB), rounded down to a multiple of 192 rows, and at least 1152;
the last block also takes the rows left over (so it has up to twice as many, and no
block is a handful of rows). For 784-256-10 in float32 that is 4032 rows (a hidden
block of 3.9 MiB, an input block of 12 MiB); for 2-4-1 in float64, 130,944 rows.
Blocks of 1152 rows ran 1.3-2x slower than 4032 on medium at 10^5 rows on the loaded
2-core machine (each block's product pays the BLAS threads' start), hence not smaller.

**Bit for bit.** Rows do not interact in a forward pass, so a block's rows get the very
operations of one unblocked pass, and the result is the unblocked one bit for bit
wherever the library computes a row of a product or a row sum the same way whatever
the other rows of the call. The block sizes are chosen for that (measured, see
``tests/test_inference.py``): BLAS kernels handle rows in panels (up to 24 rows:
multiples of 192 keep every block's panels where one unblocked call has them), OpenBLAS
XLA and PyTorch take other code paths for small products and row sums (under about
1000 rows, or 4096 entries: hence the minimum), and a 1-row product is a matrix-vector product
(hence no tiny last block). What no block size can control: a multi-threaded BLAS that
splits one large product among its threads can round some rows differently from the
same rows in a smaller product, by the last bit, exactly as two thread counts do
(seen with OpenBLAS's Haswell kernels on a 784-256 float32 product).

**The hidden sigmoid, folded.** A call of at least 1152 rows computes a hidden sigmoid
``0.5 tanh(z/2) + 0.5`` as ``tanh`` of the layer with its weights halved, and moves the
``0.5 t + 0.5`` into the next layer's weights and bias (:func:`folded`): three passes
over each hidden block fewer (on medium 784-256-10 float32 at 10^5 rows: 1.25x the bare
products' time before, 1.16x after). The hidden values are exactly those of training's
forward pass; the next layer's sums round differently in the last bits (agreement per
dtype in ``tests/test_inference.py``). Blocked and unblocked calls both fold, so they
stay bit-identical; a call under 1152 rows is training's forward pass exactly.

**The knobs.** ``block_rows=`` on the :class:`~xpnet.MLP` methods; for every entry point
at once (the estimators, the command line) the context manager
:func:`prediction_block_rows` or the environment variable ``XPNET_BLOCK_ROWS`` (a
positive integer: rows per block; ``0`` or unset: the rule above).

**The checks** run once per call, not per block: the shape when the call starts; the
values (NaN, infinity, a float64 value too large for a float32 network) through one
sum of every block's first-layer pre-activation ``X W_1 + b_1`` (a non-finite input
value makes its whole row non-finite; summed as ``Z @ 1``, a matrix-vector product, 5x
faster than ``sum(Z)`` on medium), accumulated on the device and read back once at
the end (on NumPy and array-api-strict, where that read is free, after each block). A
non-finite sum means a non-finite input value or an overflowing sum of
finite ones:
only then is the input checked entry by entry (the error names the problem as
:func:`xpnet.MLP.check_X` does). Inputs the caller has checked already (scikit-learn's
``validate_data`` on host arrays) are not checked again.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import _inplace as inplace
from ._validation import cast_finite, check_positive_int, check_X_shape
from .activations import Activation
from .core import hidden_forward, penalty

__all__ = ["BLOCK_BYTES", "block_rows_for", "folded", "outputs_and_loss", "predict_blocks",
           "prediction_block_rows", "resolve_block_rows"]

Array = Any

#: Bytes of one row-block of the widest layer (the largest temporary of a block).
BLOCK_BYTES = 4 * 2**20
_ROW_MULTIPLE = 192
_MIN_ROWS = 1152

_BLOCK_ROWS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "xpnet_block_rows", default=None
)


def block_rows_for(layer_sizes: Sequence[int], itemsize: int) -> int:
    """Rows per prediction block for a network of ``layer_sizes`` computing with
    ``itemsize``-byte floats (the rule in the module docstring)."""
    sizes = [int(n) for n in layer_sizes]
    widest = max(max(sizes[1:]), -(-sizes[0] // 4))  # the input block may take 4x as much
    rows = BLOCK_BYTES // (int(itemsize) * widest)
    return max(_MIN_ROWS, rows // _ROW_MULTIPLE * _ROW_MULTIPLE)


@contextlib.contextmanager
def prediction_block_rows(rows: int | None) -> Iterator[None]:
    """Within the block, every prediction uses blocks of ``rows`` rows (``None``: the
    rule), unless a call passes its own ``block_rows``; e.g. to bound memory further,
    or to test that small blocks give the same result."""
    token = _BLOCK_ROWS.set(None if rows is None else check_positive_int("rows", rows))
    try:
        yield
    finally:
        _BLOCK_ROWS.reset(token)


def _configured_rows() -> int | None:
    rows = _BLOCK_ROWS.get()
    if rows is not None:
        return rows
    text = os.environ.get("XPNET_BLOCK_ROWS", "").strip()
    if not text or text == "0":
        return None
    try:
        return check_positive_int("XPNET_BLOCK_ROWS", int(text))
    except ValueError:
        raise ValueError(
            f"XPNET_BLOCK_ROWS must be a positive integer (rows per prediction block) or 0; "
            f"got {text!r}"
        ) from None


def resolve_block_rows(block_rows: int | None, layer_sizes: Sequence[int], itemsize: int) -> int:
    """``block_rows`` if given (checked), else the configured knob, else the rule."""
    if block_rows is not None:
        return check_positive_int("block_rows", block_rows)
    configured = _configured_rows()
    return configured if configured is not None else block_rows_for(layer_sizes, itemsize)


def _tanh_in_place(xp: Any, z: Array) -> Array:
    return inplace.apply(xp, "tanh", z)  # z is hidden_forward's own fresh array


#: A hidden sigmoid with its two halves folded into the weights (see :func:`folded`).
_FOLDED_SIGMOID = Activation("sigmoid (folded)", _tanh_in_place, None, "glorot")


def folded(
    xp: Any, hidden: Sequence[Activation], params: Sequence[Array]
) -> tuple[list[Activation], list[Array]]:
    """The hidden activations and parameters prediction runs: a hidden sigmoid
    ``0.5 tanh(z/2) + 0.5`` becomes ``tanh`` of the layer with its weights and bias
    halved (exact: a power of two), and its ``0.5 t + 0.5`` moves into the next layer,
    ``(0.5 t + 0.5) W + b = t (0.5 W) + (b + 0.5 Σ_rows W)``: three passes over every
    hidden block fewer, for one pass over the weights per call (hence only for calls of
    at least 1152 rows). The next layer's pre-activation rounds differently from the
    unfolded one in the last bits (tested against it per dtype in
    ``tests/test_inference.py``); the hidden layer's own values are exactly
    ``tanh(z/2)``. Other activations are kept as they are."""
    hidden, params = list(hidden), list(params)
    previous_folded = False
    for layer in range(len(params) // 2):
        W, b = params[2 * layer], params[2 * layer + 1]
        if previous_folded:
            b = b + 0.5 * xp.sum(W, axis=0)
            W = W * 0.5
        previous_folded = layer < len(hidden) and hidden[layer].name == "sigmoid"
        if previous_folded:
            W, b = W * 0.5, b * 0.5
            hidden[layer] = _FOLDED_SIGMOID
        params[2 * layer], params[2 * layer + 1] = W, b
    return hidden, params


def predict_blocks(
    net: Any,
    X: Any,
    finish: Callable[[Array], Array],
    *,
    block_rows: int | None = None,
    checked: bool = False,
    name: str = "X",
) -> Array:
    """``finish(Z_L)`` of every row of ``X``, computed block by block on ``net`` (an
    :class:`xpnet.MLP`): ``Z_L`` is the output pre-activation of a block, and ``finish``
    turns it into that block's rows of the result (the output activation, class
    indices, log-probabilities...), row by row.

    ``X`` is checked here (shape at once, values once for the whole call) unless
    ``checked`` says its values were checked already; it is cast to the network's dtype
    one block at a time. ``block_rows``: rows per block (default: the knobs, then the
    rule, see the module docstring).
    """
    xp = net.xp
    out: Any = None
    for start, _, m, Z in _blocks(net, X, block_rows, checked, name):
        out = inplace.set_rows(xp, out, start, finish(Z), m)
    return inplace.finish_rows(xp, out)


def outputs_and_loss(
    net: Any, X: Any, Y: Any, *, block_rows: int | None = None
) -> tuple[Array, float]:
    """``(A_L, loss)`` of ``net`` on ``(X, Y)`` in one block-wise pass (what ``xpnet
    evaluate`` reports): the output activations (bit for bit those of
    :func:`predict_blocks`) and the mean loss plus the L2 penalty, as
    :meth:`xpnet.MLP.loss` computes it up to rounding (the mean is summed block by block:
    ``Σ_b m_b·mean_b / m``). ``Y`` is checked and encoded once, as ``MLP.loss`` does."""
    X = check_X_shape(net.array_backend, X, net.layer_sizes[0])
    Y = net.check_targets(Y, int(X.shape[0]))
    xp, output = net.xp, net.output_loss
    out: Any = None
    total: Any = 0.0
    m = int(X.shape[0])
    for start, stop, _, Z in _blocks(net, X, block_rows, False, "X"):
        A, loss = output.forward_and_loss(xp, Z, Y[start:stop, ...])
        total = total + loss * float(stop - start)
        out = inplace.set_rows(xp, out, start, A, m)
    loss_value = total / m
    if net.alpha:
        loss_value = loss_value + penalty(net.alpha, net.flat_params, m, xp)
    return inplace.finish_rows(xp, out), float(loss_value)


def _blocks(
    net: Any, X: Any, block_rows: int | None, checked: bool, name: str
) -> Iterator[tuple[int, int, int, Array]]:
    """``(start, stop, rows of X, Z_L)`` of each block of rows of ``X``; the values' check (one
    witness sum, see the module docstring) raises after the last block."""
    backend, xp, dtype = net.array_backend, net.xp, net.array_dtype
    X = check_X_shape(backend, X, net.layer_sizes[0], name)
    rows = resolve_block_rows(block_rows, net.layer_sizes, np.dtype(net.dtype).itemsize)
    cast = X.dtype != dtype
    witness = not checked and xp.isdtype(X.dtype, "real floating")
    hidden, params = net.hidden_activations, net.flat_params
    if int(X.shape[0]) >= _MIN_ROWS:  # the fold's cost (a pass over the weights) pays
        hidden, params = folded(xp, hidden, params)
    on_host = net.backend in ("numpy", "array_api_strict")  # reading the witness costs nothing
    ones = xp.ones((net.layer_sizes[1],), dtype=dtype, device=net.device)  # sums Z's rows
    m = int(X.shape[0])
    total = None
    start = 0
    while start < m:
        # the last block takes the remaining rows too (rows to 2 * rows - 1 of them): no
        # block of a handful of rows, which BLAS would compute another way (a 1-row
        # product is a matrix-vector product), and stop stays in bounds (array-api-strict)
        stop = m if m - start < 2 * rows else start + rows
        block = X[start:stop, ...]
        with np.errstate(over="ignore", invalid="ignore"):  # a value too large for the cast
            if cast:
                block = xp.astype(block, dtype)
            # the first layer as in core.hidden_forward, kept for the witness (a cast value
            # too large, or the witness sum, becomes inf: sorted out after the last block)
            Z = inplace.add(xp, block @ params[0], params[1])
            if witness:
                # A NaN or infinite input value makes its row of Z_1 = X W_1 + b_1 all NaN
                # or infinite (finite weights), and NaN and inf survive a sum: one number
                # witnesses the block, from an array a third of X's width on 784-256-10.
                part = xp.sum(Z @ ones)  # a matrix-vector product: 5x faster than a sum
                total = part if total is None else total + part
                if on_host and not bool(xp.isfinite(part)):  # free on the host: stop now,
                    cast_finite(xp, X, dtype, name)  # before NumPy warns about NaN below
                    witness, total = False, None  # (the sum overflowed: X is finite)
        if hidden:
            Z = hidden_forward(hidden[1:], params[2:], hidden[0].forward(xp, Z), xp)[1]
        yield start, stop, m, Z
        start = stop
    if total is not None and not bool(xp.isfinite(total)):
        cast_finite(xp, X, dtype, name)  # entry by entry: raises, unless the sum overflowed
