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
cast copy, may take 16 MiB), rounded down to a multiple of 192 rows, and at least 1152
(and, for two outputs or more, enough rows for 4096 output values:
:func:`min_block_rows`, 1536 rows for three outputs);
the last block also takes the rows left over (so it has up to twice as many, and no
block is a handful of rows). For 784-256-10 in float32 that is 4032 rows (a hidden
block of 3.9 MiB, an input block of 12 MiB); for 2-4-1 in float64, 130,944 rows. On
NumPy, where the blocks run side by side (below), the rows are then lowered
(:func:`balanced_rows`, same multiple and minimum) until the call has a multiple of
the BLAS pool's thread count of blocks: 10^4 rows on 784-256-10 with 2 threads are 4
blocks of 2496 rows (the last 2512), not 4032 + 5968.
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
splits one product among its threads rounds some rows differently from the same rows in
a smaller product, by the last bit, exactly as two thread counts do (OpenBLAS's Haswell
float32 kernels, on a 5000x64 @ 64x64 product as on 784-256). Hence, on the host:

**One BLAS thread per block, the blocks side by side.** On NumPy and array-api-strict a
call of at least 1152 rows runs every product on one BLAS thread
(:func:`xpnet.threads.one_blas_thread`, the previous counts restored when the last
such call ends), where a row's bits do not depend on the other rows of the product
when the blocks keep the kernels' row panels (multiples of 192 rows, as the rule's):
those give the one-block result bit for bit (a ``block_rows`` of 7 or 1153 may not). On
NumPy the blocks then run on as many threads of this process as the BLAS pool had
(NumPy releases the GIL in its products and element-wise kernels): the products are
as fast as the pool's (8 products of 2496x784 @ 784x256 float32: 2 threads side by side
52-59 ms, one 2-thread product after another 51-54 ms), and the element-wise work (the
bias, the witness, the hidden activation, the output activation), single-threaded in
NumPy, is now split between the cores too. ``finish`` (:func:`predict_blocks`) must
therefore be safe to call from several threads. Torch, JAX and CuPy keep their own
pools and run the blocks one after another.

**The hidden sigmoid, folded.** A call of at least 1152 rows computes a hidden sigmoid
as ``1 / (1 + exp(z'))`` of the layer with its weights and bias negated (:func:`folded`),
not as training's ``0.5 tanh(z/2) + 0.5``: NumPy's ``exp`` is twice as fast as its
``tanh``, which was the largest cost above the products (an earlier fold computed
``tanh`` alone and moved ``0.5 t + 0.5`` into the next layer: 1.25x the bare products'
time on medium at 10^5 rows before it, 1.16x after). The hidden values agree with
training's to a few units in the last place of 1 (per dtype in
``tests/test_inference.py``). Blocked and unblocked calls both fold, so they stay
bit-identical; a call under 1152 rows is training's forward pass exactly.

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
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from . import _inplace as inplace
from ._validation import cast_finite, check_positive_int, check_X_shape
from .activations import Activation
from .core import hidden_forward, penalty
from .threads import blas_threads, one_blas_thread

__all__ = ["BLOCK_BYTES", "balanced_rows", "block_rows_for", "folded", "min_block_rows",
           "outputs_and_loss", "predict_blocks", "prediction_block_rows", "resolve_block_rows"]

Array = Any

#: Bytes of one row-block of the widest layer (the largest temporary of a block).
BLOCK_BYTES = 4 * 2**20
_ROW_MULTIPLE = 192
_MIN_ROWS = 1152
_MIN_ENTRIES = 4096  # of a block's output: XLA sums the rows of a smaller one another way

_BLOCK_ROWS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "xpnet_block_rows", default=None
)


def block_rows_for(layer_sizes: Sequence[int], itemsize: int) -> int:
    """Rows per prediction block for a network of ``layer_sizes`` computing with
    ``itemsize``-byte floats (the rule in the module docstring)."""
    sizes = [int(n) for n in layer_sizes]
    widest = max(max(sizes[1:]), -(-sizes[0] // 4))  # the input block may take 4x as much
    rows = BLOCK_BYTES // (int(itemsize) * widest)
    return max(min_block_rows(sizes[-1]), rows // _ROW_MULTIPLE * _ROW_MULTIPLE)


def min_block_rows(n_outputs: int) -> int:
    """The fewest rows of a block of the rule: 1152, and for two outputs or more enough
    rows for 4096 output values, in multiples of 192 (XLA sums the rows of a smaller
    output, such as softmax's, another way: 1152 x 3 values rounded some row sums
    differently from the same rows in a larger block)."""
    values = -(-_MIN_ENTRIES // int(n_outputs)) if n_outputs >= 2 else 0
    return max(_MIN_ROWS, -(-values // _ROW_MULTIPLE) * _ROW_MULTIPLE)


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


def resolve_block_rows(block_rows: int | None, layer_sizes: Sequence[int], itemsize: int,
                       rows: int = 0, workers: int = 1) -> int:
    """``block_rows`` if given (checked), else the configured knob, else the rule (for a
    call of ``rows`` rows on ``workers`` threads: :func:`balanced_rows`)."""
    if block_rows is not None:
        return check_positive_int("block_rows", block_rows)
    configured = _configured_rows()
    if configured is not None:
        return configured
    return balanced_rows(block_rows_for(layer_sizes, itemsize), rows, workers,
                         min_block_rows(layer_sizes[-1]))


def _logistic_of_negated(xp: Any, z: Array) -> Array:
    """``1 / (1 + exp(z))``, the logistic function of ``-z``, in place (``z`` is
    hidden_forward's own fresh array): ``exp(z)`` overflows to ``inf`` for ``z`` above
    about 88 (float32) or 709 (float64), where the result is 0 as it should be."""
    with np.errstate(over="ignore"):  # NumPy's (and array-api-strict's) overflow warning
        e = inplace.apply(xp, "exp", z)
    return inplace.apply(xp, "reciprocal", inplace.add(xp, e, 1.0))


#: A hidden sigmoid whose sign is folded into the weights (see :func:`folded`).
_FOLDED_SIGMOID = Activation("sigmoid (folded)", _logistic_of_negated, None, "glorot")


def folded(
    xp: Any, hidden: Sequence[Activation], params: Sequence[Array]
) -> tuple[list[Activation], list[Array]]:
    """The hidden activations and parameters prediction runs: a hidden sigmoid (computed
    in training as ``0.5 tanh(z/2) + 0.5``, :func:`xpnet.activations.logistic_tanh`)
    becomes ``1 / (1 + exp(z'))`` of the layer with its weights and bias negated
    (``z' = -z``, exact), three in-place passes over the hidden block of which one
    transcendental: NumPy's ``exp`` is about twice as fast as its ``tanh`` (one
    3840x256 float32 block: exp form 3.9 ms, ``tanh`` alone 7.7 ms; PyTorch 1.3 ms
    against 2.9 ms), for one pass over the weights per call (hence only for calls of at
    least 1152 rows). Both forms are within a few units in the last place of 1 of the
    logistic function, which is what the next layer's product sees; the predictions
    agree with the unfolded forward pass to that (tested per dtype in
    ``tests/test_inference.py``). Other activations are kept as they are."""
    hidden, params = list(hidden), list(params)
    for layer in range(min(len(hidden), len(params) // 2)):
        if hidden[layer].name == "sigmoid":
            W, b = params[2 * layer], params[2 * layer + 1]
            params[2 * layer], params[2 * layer + 1] = -W, -b
            hidden[layer] = _FOLDED_SIGMOID
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
    rule, see the module docstring). On NumPy the blocks run on the BLAS pool's threads
    side by side, so ``finish`` must be safe to call from several threads (a function of
    its argument alone).
    """
    result = _Rows(net.xp)
    _run_blocks(net, X, block_rows, checked, name,
                lambda start, stop, m, Z: result.put(start, finish(Z), m))
    return result.finish()


def outputs_and_loss(
    net: Any, X: Any, Y: Any, *, block_rows: int | None = None
) -> tuple[Array, float]:
    """``(A_L, loss)`` of ``net`` on ``(X, Y)`` in one block-wise pass (what ``xpnet
    evaluate`` reports): the output activations (bit for bit those of
    :func:`predict_blocks`) and the mean loss plus the L2 penalty, as
    :meth:`xpnet.MLP.loss` computes it up to rounding (the mean is summed block by block,
    in the order of the rows: ``Σ_b m_b·mean_b / m``). ``Y`` is checked and encoded once,
    as ``MLP.loss`` does."""
    X = check_X_shape(net.array_backend, X, net.layer_sizes[0])
    Y = net.check_targets(Y, int(X.shape[0]))
    xp, output = net.xp, net.output_loss
    m = int(X.shape[0])
    result = _Rows(xp)
    losses: dict[int, Any] = {}

    def block(start: int, stop: int, rows: int, Z: Array) -> None:
        A, loss = output.forward_and_loss(xp, Z, Y[start:stop, ...])
        losses[start] = loss * float(stop - start)
        result.put(start, A, rows)

    _run_blocks(net, X, block_rows, False, "X", block)
    total: Any = 0.0
    for start in sorted(losses):
        total = total + losses[start]
    loss_value = total / m
    if net.alpha:
        loss_value = loss_value + penalty(net.alpha, net.flat_params, m, xp)
    return result.finish(), float(loss_value)


class _Rows:
    """A result assembled from blocks that may arrive in any order
    (:func:`xpnet._inplace.set_rows`; its first call allocates, hence the lock)."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self.out: Any = None
        self.lock = threading.Lock()

    def put(self, start: int, block: Array, rows: int) -> None:
        if self.out is None:
            with self.lock:
                if self.out is None:
                    self.out = inplace.set_rows(self.xp, None, start, block, rows)
                    return
        self.out = inplace.set_rows(self.xp, self.out, start, block, rows)

    def finish(self) -> Array:
        return inplace.finish_rows(self.xp, self.out)


def _bounds(m: int, rows: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each block; the last block takes the remaining rows too (rows
    to 2 * rows - 1 of them): no block of a handful of rows, which BLAS would compute
    another way (a 1-row product is a matrix-vector product), and stop stays in bounds
    (array-api-strict)."""
    bounds, start = [], 0
    while start < m:
        stop = m if m - start < 2 * rows else start + rows
        bounds.append((start, stop))
        start = stop
    return bounds


def balanced_rows(rows: int, m: int, workers: int, minimum: int = _MIN_ROWS) -> int:
    """The rule's ``rows`` lowered so a call of ``m`` rows has a multiple of ``workers``
    blocks (each worker as many rows), in multiples of 192 rows and at least ``minimum``
    (:func:`min_block_rows`)."""
    if workers < 2:
        return rows
    blocks = -(-m // rows)
    blocks = -(-blocks // workers) * workers
    return max(minimum, m // blocks // _ROW_MULTIPLE * _ROW_MULTIPLE)


def _map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    """``[fn(item) for item in items]``, on ``workers`` threads when more than one, each
    call in a copy of the caller's context (its ``errstate``, the block-rows knob)."""
    if workers < 2 or len(items) < 2:
        return [fn(item) for item in items]
    calls = [(contextvars.copy_context(), item) for item in items]
    pool = ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="xpnet-predict")
    try:
        return list(pool.map(lambda call: call[0].run(fn, call[1]), calls))
    finally:
        pool.shutdown(cancel_futures=True)  # after an error, the blocks not started


def _run_blocks(
    net: Any, X: Any, block_rows: int | None, checked: bool, name: str,
    each: Callable[[int, int, int, Array], None],
) -> None:
    """``each(start, stop, rows of X, Z_L)`` for each block of rows of ``X``, in any order (side by
    side on NumPy); the values' check (one witness sum, see the module docstring) raises
    after the last block, or at the first non-finite block on the host."""
    backend, xp, dtype = net.array_backend, net.xp, net.array_dtype
    X = check_X_shape(backend, X, net.layer_sizes[0], name)
    m = int(X.shape[0])
    cast = X.dtype != dtype
    witness = not checked and xp.isdtype(X.dtype, "real floating")
    hidden, params = net.hidden_activations, net.flat_params
    if m >= _MIN_ROWS:  # the fold's cost (a pass over the weights) pays
        hidden, params = folded(xp, hidden, params)
    on_host = net.backend in ("numpy", "array_api_strict")  # reading the witness costs nothing
    one_thread = on_host and m >= _MIN_ROWS  # every block's products on one BLAS thread
    workers = blas_threads() if one_thread and net.backend == "numpy" else 1
    rows = resolve_block_rows(block_rows, net.layer_sizes, np.dtype(net.dtype).itemsize, m,
                              workers)
    ones = xp.ones((net.layer_sizes[1],), dtype=dtype, device=net.device)  # sums Z's rows
    finite_X = [False]  # X checked entry by entry and found finite (the witness overflowed)

    def block(bounds: tuple[int, int]) -> Any:
        start, stop = bounds
        part = None
        rows_of_X = X[start:stop, ...]
        with np.errstate(over="ignore", invalid="ignore"):  # a value too large for the cast
            if cast:
                rows_of_X = xp.astype(rows_of_X, dtype)
            # the first layer as in core.hidden_forward, kept for the witness (a cast value
            # too large, or the witness sum, becomes inf: sorted out after the last block)
            Z = inplace.add(xp, rows_of_X @ params[0], params[1])
            if witness:
                # A NaN or infinite input value makes its row of Z_1 = X W_1 + b_1 all NaN
                # or infinite (finite weights), and NaN and inf survive a sum: one number
                # witnesses the block, from an array a third of X's width on 784-256-10.
                part = xp.sum(Z @ ones)  # a matrix-vector product: 5x faster than a sum
                if on_host and not finite_X[0] and not bool(xp.isfinite(part)):
                    cast_finite(xp, X, dtype, name)  # free on the host: stop now, before
                    finite_X[0] = True  # NumPy warns about NaN below (else: sum overflowed)
        if hidden:
            Z = hidden_forward(hidden[1:], params[2:], hidden[0].forward(xp, Z), xp)[1]
        each(start, stop, m, Z)
        return part

    with one_blas_thread() if one_thread else contextlib.nullcontext():
        parts = _map(block, _bounds(m, rows), workers)
    if witness and not finite_X[0]:
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        if not bool(xp.isfinite(total)):
            cast_finite(xp, X, dtype, name)  # entry by entry: raises, unless the sum overflowed
