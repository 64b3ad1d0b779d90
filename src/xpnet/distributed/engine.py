"""Synchronous data-parallel training on Dask: chunk tasks, ordered sums, the driver's step.

The data stay on the workers as the chunks of a Dask array. Each step, the driver sends
the current parameters to one task per chunk that holds rows of the batch; the task
computes, with ordinary NumPy (or CuPy, when the chunks are CuPy arrays) math and the pure
step :func:`xpnet.core.loss_and_grads`, that chunk's share of the *global* batch's loss and
gradient sums (divided by the batch's row count, not the chunk's). The driver adds the
chunk results **in chunk order**, adds the L2 term once, and hands loss and gradients to
:func:`xpnet.train.fit`'s loop, whose optimiser, schedules, early stopping, ``History``,
divergence checks and callbacks are reused unchanged (this module is its ``_step_source``).

So a distributed fit is the same computation as a single-process one from the same seed:
the driver draws the same permutation (and the same early-stopping split) from the
network's generator, a batch is the same set of rows, and only the order of the additions
differs (results equal to rounding). The number of workers, and a lost worker, change no
bit: the sum's order is fixed by the chunks, and a lost chunk (or a lost step task) is
recomputed by Dask from its recipe.

How the parameters travel: as an ordinary argument of each chunk task, or, when those
copies would exceed ``ARGUMENT_BYTES``, as the result of one small task the chunk tasks
depend on (measured against ``client.scatter``: see ``ARGUMENT_BYTES``). Both live in
task recipes, which the scheduler keeps until the result is gathered, so a task whose
worker dies is simply run again elsewhere. Scattered data and actors were ruled out for
that reason: they die with their worker and cannot be recomputed.

Early stopping (``early_stopping=True`` without ``validation_data``): the driver draws the
split exactly as :func:`xpnet.train.fit` does (one permutation of all rows, the first
``ceil(fraction·m)`` held out), by row index: no data move. Training batches index the
remaining rows in that permutation's order, and the held-out rows are scored where they
live, one task per chunk returning partial sums (weighted correct rows, or the squared
errors of R²), combined on the driver. ``validation_data`` given as Dask arrays is scored
the same way.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _validation as v
from .. import core
from ..backends import get_backend
from ._client import wait_bound

__all__ = ["DaskSource", "fit", "is_dask_array", "require_dask"]

Array = Any

INSTALL_HINT = 'install it with: pip install "xpnet[dask]"'


def require_dask() -> None:
    """Raise :class:`~xpnet.distributed.storage.DaskUnavailableError` (a
    ``BackendUnavailableError``, which the CLI reports in one line) with the install
    command when dask.array or distributed is missing."""
    from .storage import require

    require("dask.array", "training on Dask arrays")
    require("distributed", "training on Dask arrays")


def check_features(X: Any, n_in: int, name: str = "X") -> Any:
    """Dask array ``X`` checked to be 2-D with ``n_in`` columns, its columns gathered into
    one chunk (row chunks are the unit of work); ValueError naming ``name`` otherwise."""
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D of shape (m, {n_in}); got shape {X.shape}")
    if X.shape[1] != n_in:
        raise ValueError(
            f"{name} has {X.shape[1]} features (columns) but the network expects {n_in}; "
            f"got shape {X.shape}"
        )
    return X.rechunk({1: -1})


def is_dask_array(obj: Any) -> bool:
    """Whether ``obj`` is a Dask collection (checked by its class's module: no import)."""
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "__dask_graph__")


# --------------------------------------------------------------------------- worker side
def _worker_backend(chunk: Any) -> Any:
    """NumPy for NumPy chunks, CuPy for CuPy chunks (a dask_cuda cluster needs no code)."""
    return get_backend("cupy" if v.array_module(chunk) == "cupy" else "numpy")


def _prepare_chunk(X: Any, y: Any, w: Any, spec: tuple[Any, ...]) -> tuple[Array, Array, Any]:
    """One chunk checked and encoded as :meth:`xpnet.MLP._check_XY` would (on a worker)."""
    n_in, n_out, task, dtype_name, output_name = spec
    backend = _worker_backend(X)
    dtype = backend.dtype(dtype_name)
    Xc = v.check_X(backend, X, n_in, dtype)
    Yc = v.check_Y(backend, y, Xc.shape[0], task, n_out, dtype)
    xp = backend.xp
    if output_name == "exp" and bool(xp.any(Yc < 0)):
        raise ValueError(
            "Y for the exp output (Poisson: counts or rates) must be >= 0; got negative values"
        )
    wc = None
    if w is not None:
        wc = v.to_backend(backend, w, "sample_weight")
        wc = xp.astype(wc, dtype)
        if not v.all_finite(xp, wc):
            raise ValueError("sample_weight contains NaN or infinite values")
        if bool(xp.any(wc < 0)):
            raise ValueError("sample_weight must be non-negative")
    return Xc, Yc, wc


def _take(xp: Any, array: Any, rows: Any) -> Any:
    if array is None or rows is None:
        return array
    if isinstance(rows, slice):
        return array[rows, ...]
    return xp.take(array, xp.asarray(rows), axis=0)


def _host(array: Any) -> np.ndarray:
    if v.array_module(array) == "cupy":
        return array.get()
    return np.asarray(array)


def _chunk_loss_and_grads(
    data: tuple[Array, Array, Any], params: Sequence[Any], rows: Any, offset: int,
    total: float, hidden: Any, output: Any, step: int,
    dropout: tuple[tuple[float, ...], tuple[int, int], int, np.ndarray] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], float, float, int]:
    """One chunk's share of the global batch (runs on a worker).

    ``rows``: the chunk-local rows of the batch (an index array in the batch's order, a
    slice, or None for the whole chunk); their global row numbers are ``offset + rows``
    and the step counter is ``step`` (for per-row randomness that must not depend on the
    chunking). ``total``: the global row count, or 1 with row weights (the driver
    divides by the global weight sum). Returns ``(Σ loss share, [Σ gradient shares],
    Σ weights of these rows, seconds of math, process id)`` on the host; alpha is 0
    here (the driver adds L2 once). ``dropout``: ``(rates, network key, stream step,
    stream rows)`` with the rows' indices in the training data as single-process
    :func:`xpnet.train.fit` numbers them, so the chunk draws exactly the masks those
    rows get there (:mod:`xpnet._dropout`); None without dropout.
    """
    started = time.perf_counter()
    X, Y, w = data
    xp = _worker_backend(X).xp
    X, Y, w = _take(xp, X, rows), _take(xp, Y, rows), _take(xp, w, rows)
    local = [xp.asarray(p) for p in params]
    rates: tuple[float, ...] = ()
    stream = None
    if dropout is not None:
        from array_api_compat import device

        from .._dropout import DropoutStream

        rates, key, stream_step, ids = dropout
        stream = DropoutStream(key, stream_step, xp.asarray(ids, device=device(X)))
    loss, grads = core.loss_and_grads(
        local, X, Y, w, total, hidden=hidden, output=output, alpha=0.0, xp=xp,
        dropout=rates, stream=stream,
    )
    weight_sum = math.nan if w is None else float(xp.sum(w))
    host_loss, host_grads = _host(loss), [_host(g) for g in grads]
    return host_loss, host_grads, weight_sum, time.perf_counter() - started, os.getpid()


def _chunk_score_sums(
    data: tuple[Array, Array, Any], params: Sequence[Any], rows: Any, hidden: Any,
    output: Any, mean: Any,
) -> tuple[Any, ...]:
    """Partial sums of :func:`xpnet.train.validation_score` over one chunk's rows.

    Regression: ``(Σ w (Y - A)², Σ w (Y - mean)², all A finite)``, per output column
    (``mean`` given: second pass) or ``(Σ w Y, Σ w)`` (``mean`` None: first pass, no
    network needed). Classification: ``(Σ w·correct, Σ w)``.
    """
    X, Y, w = data
    xp = _worker_backend(X).xp
    X, Y, w = _take(xp, X, rows), _take(xp, Y, rows), _take(xp, w, rows)
    weights = xp.ones((Y.shape[0],), dtype=Y.dtype) if w is None else w
    column = xp.reshape(weights, (-1, 1))
    if output.task == "regression" and mean is None:
        return _host(xp.sum(column * Y, axis=0)), float(xp.sum(weights))
    local = [xp.asarray(p) for p in params]
    _, Z_out = core.hidden_forward(hidden, local, X, xp)
    A = output.activation(xp, Z_out)
    if output.task == "regression":
        mean = xp.asarray(mean)
        num = xp.sum(column * (Y - A) ** 2, axis=0)
        den = xp.sum(column * (Y - mean) ** 2, axis=0)
        return _host(num), _host(den), bool(xp.all(xp.isfinite(A)))
    if output.task == "multiclass":
        correct = xp.argmax(A, axis=1) == xp.argmax(Y, axis=1)
    else:
        correct = xp.all((A > 0.5) == (Y > 0.5), axis=1)
    return float(xp.sum(xp.astype(correct, A.dtype) * weights)), float(xp.sum(weights))


def _identity(value: Any) -> Any:
    return value


# --------------------------------------------------------------------------- driver side
# Parameters ride along as an argument of every chunk task while all the copies together
# stay under this size; above it, one task holds them (see DaskSource.loss_and_grads).
# Measured on a 2-worker LocalCluster (2-core box, loaded), median per full-batch step of
# 4 chunks: a 20-16-3 network 26 ms as arguments, 41 ms as one task, 57 ms scattered;
# 784-256-10 (0.8 MB of float32) 175, 106 and 121 ms.
ARGUMENT_BYTES = 1 << 20
class _Chunks:
    """Checked chunks of one data set: a future (persisted) or a delayed (streamed) each,
    in row order, with the first row of each (``bounds[i]:bounds[i+1]`` is chunk ``i``)."""

    def __init__(self, parts: list[Any], sizes: Sequence[int], persisted: bool) -> None:
        self.parts = parts
        self.bounds = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
        self.persisted = persisted

        self._holders: dict[int, list[str] | None] = {}
        self._holders_at = -math.inf

    def holders(self, client: Any) -> dict[int, list[str] | None]:
        """``{chunk: [workers holding it]}``, asked of the scheduler at most once a
        second (a chunk recomputed after a lost worker is found again by the next ask)."""
        now = time.monotonic()
        if self.persisted and now - self._holders_at > 1.0 and client.status == "running":
            who = client.who_has(self.parts)
            self._holders = {
                c: list(who.get(f.key, ())) or None for c, f in enumerate(self.parts)
            }
            self._holders_at = now
        return self._holders

    @property
    def rows(self) -> int:
        return int(self.bounds[-1])

    def split(
        self, rows: np.ndarray | tuple[int, int], companion: np.ndarray | None = None
    ) -> list[tuple[int, Any]]:
        """``[(chunk, local rows)]`` in chunk order for global ``rows`` (an index array,
        kept in its order within a chunk; or a ``(first, last)`` range: slices, and None
        for a whole chunk). Chunks without rows are left out (they add nothing).

        With ``companion`` (an array aligned with the batch's rows, e.g. their stream
        indices), each chunk gets its slice of ``companion`` instead of its local rows,
        in the same order."""
        bounds = self.bounds
        out: list[tuple[int, Any]] = []
        if isinstance(rows, tuple):
            first, last = rows
            for c in range(len(self.parts)):
                lo, hi = max(first, bounds[c]), min(last, bounds[c + 1])
                if lo < hi:
                    whole = lo == bounds[c] and hi == bounds[c + 1]
                    local = None if whole else slice(lo - bounds[c], hi - bounds[c])
                    out.append((c, local if companion is None
                                else companion[lo - first:hi - first]))
            return out
        owner = np.searchsorted(bounds, rows, side="right") - 1
        grouped = np.argsort(owner, kind="stable")  # chunk order, batch order within
        owners = owner[grouped]
        edges = np.flatnonzero(np.diff(owners)) + 1
        for part in np.split(grouped, edges):
            c = int(owner[part[0]])
            out.append((c, rows[part] - bounds[c] if companion is None else companion[part]))
        return out


class DaskSource:
    """The ``_step_source`` of :func:`xpnet.train.fit` for Dask arrays (see module docs).

    Parameters
    ----------
    client : distributed.Client
    X, y : dask arrays ``(m, n_in)`` and ``(m,)``/``(m, k)`` (``y`` may be NumPy)
    sample_weight : dask or NumPy array ``(m,)``, optional
    validation_data : (X_val, y_val[, w_val]), optional
        Explicit validation rows (dask or NumPy), scored block-wise.
    persist : bool or None
        Keep the checked chunks in the workers' memory (True), or read and check them
        again in every step's tasks (False: data larger than the cluster's memory).
        None: persist when the checked data take at most half the workers' memory.
    timeout : float or None
        The floor, in seconds, of every wait on the cluster (None: ``$XPNET_DASK_TIMEOUT``,
        else 60); a step may take up to 10 times the slowest step seen so far. A wait
        that outlasts it, a lost scheduler, no worker left, or data that cannot be
        recomputed raise :class:`~xpnet.distributed._client.ClusterError` (one line).
    """

    def __init__(
        self, client: Any, X: Any, y: Any, sample_weight: Any = None,
        validation_data: Any = None, persist: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        from ._client import timeout_floor

        self.client = client
        self.floor = timeout_floor(timeout)
        self.epoch = 0  # the epoch in progress (1-based; 0 while the data are placed)
        self.X, self.y, self.w = X, y, sample_weight
        self.validation_data = validation_data
        self.persist = persist
        self.steps = 0
        # per step: wall time on the driver, and the busiest worker process's seconds of
        # math (its tasks run one after the other): the difference is the overhead
        self.step_seconds: list[float] = []
        self.compute_seconds: list[float] = []

    # -- preparation
    def _chunks(
        self, net: Any, X: Any, y: Any, w: Any, names: tuple[str, str, str]
    ) -> _Chunks:
        import dask
        import dask.array as da

        n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
        x_name, y_name, w_name = names
        if not is_dask_array(X):
            X = da.from_array(np.asarray(X))
        X = check_features(X, n_in, x_name)
        if any(math.isnan(c) for c in X.chunks[0]):
            raise ValueError(
                f"{x_name} has unknown chunk sizes; call {x_name}.compute_chunk_sizes() first"
            )
        m = X.shape[0]
        if m < 1:
            raise ValueError(f"{x_name} must have at least one row; got shape {X.shape}")
        row_chunks = X.chunks[0]

        def aligned(a: Any, name: str) -> Any:
            if not is_dask_array(a):
                a = np.asarray(a)
            if a.ndim == 0 or a.shape[0] != m:
                raise ValueError(
                    f"{name} has {a.shape[0] if a.ndim else 0} rows but {x_name} has {m}; "
                    f"they must match (got {name} shape {tuple(a.shape)})"
                )
            if not is_dask_array(a):
                a = da.from_array(a, chunks=(row_chunks,) + a.shape[1:])
            return a.rechunk((row_chunks,) + ((-1,) * (a.ndim - 1)))

        y = aligned(y, y_name)
        y_parts = y.to_delayed().ravel()
        w_parts: list[Any] = [None] * len(row_chunks)
        if w is not None:
            w = aligned(w, w_name)
            if w.ndim != 1:
                raise ValueError(
                    f"{w_name} must have shape ({m},), one weight per row; got {w.shape}"
                )
            w_parts = list(w.to_delayed().ravel())
        spec = (n_in, n_out, net._output.task, net.dtype, net._output.name)
        prepare = dask.delayed(_prepare_chunk, pure=True)
        parts = [
            prepare(x, yy, ww, spec)
            for x, yy, ww in zip(X.to_delayed().ravel(), y_parts, w_parts)
        ]
        persist = self.persist
        if persist is None:
            checked = m * (n_in + n_out + 1) * np.dtype(net.dtype).itemsize
            persist = checked <= 0.5 * self._cluster_memory()
        if not persist:
            return _Chunks(parts, row_chunks, persisted=False)
        from ._client import settle

        futures = self.client.compute(parts)
        settle(self.client, futures, self.floor, "while the data were placed", self.floor)
        for future in futures:
            if future.status == "error":
                future.result()  # raises the worker's error (a data check) here
        return _Chunks(futures, row_chunks, persisted=True)

    def _cluster_memory(self) -> float:
        workers = self.client.scheduler_info().get("workers", {}).values()
        limits = [info.get("memory_limit") or 0 for info in workers]
        return float(sum(limits)) if limits and all(limits) else math.inf

    def prepare(
        self, net: Any, rng: Any, early_stopping: bool, validation_fraction: float
    ) -> int:
        """Check and place the data, draw the early-stopping split; the training rows."""
        self.backend = net.array_backend
        self.hidden = tuple(net._hidden)
        self.output = net._output
        self.alpha = net.alpha
        self.net = net  # its dropout rates, key and step counter (net._steps)
        self.batch_in_epoch = 0
        self.weighted = self.w is not None
        self.data = self._chunks(net, self.X, self.y, self.w, ("X", "y", "sample_weight"))
        m = self.data.rows
        self.train_index: np.ndarray | None = None
        self.val_data: _Chunks | None = None
        self.val_rows: Any = None
        if self.validation_data is not None:
            X_val, y_val = self.validation_data[:2]
            w_val = self.validation_data[2] if len(self.validation_data) == 3 else None
            self.val_data = self._chunks(
                net, X_val, y_val, w_val,
                ("validation X", "validation y", "validation_data weights"),
            )
            self.val_rows = (0, self.val_data.rows)
        elif early_stopping:
            # single-process fit's draw, by index: the same rows held out
            from ..train import validation_rows

            train_rows, val_rows = validation_rows(m, validation_fraction, rng)
            self.train_index = np.asarray(train_rows, dtype=np.int64)
            self.val_data, self.val_rows = self.data, np.asarray(val_rows, dtype=np.int64)
            m = len(self.train_index)
        self.val_mean = None
        if self.val_data is not None and self.output.task == "regression":
            sums = self._score_sums([], None)
            total_y = sums[0][0]
            for part in sums[1:]:
                total_y = total_y + part[0]
            weight = sum(part[1] for part in sums)
            self.val_mean = total_y / weight
        return m

    # -- one step
    def _submit(
        self, data: _Chunks, function: Any, pieces: list[tuple[int, Any]],
        arguments: Any, during: str | None = None,
    ) -> list[Any]:
        """One task ``function(chunk data, *arguments(chunk, rows))`` per piece; the
        results in chunk order, waited for at most :func:`~._client.wait_bound` of the
        steps seen (see the class docs)."""
        from ._client import gather

        if data.persisted:
            # Run each task where its chunk lives (a loose restriction: another worker
            # may still take it, e.g. after its worker died), so work stealing never
            # copies a chunk to balance a few milliseconds of work.
            holders = data.holders(self.client)
            futures = [
                self.client.submit(
                    function, data.parts[c], *arguments(c, rows), pure=False,
                    workers=holders.get(c), allow_other_workers=True,
                )
                for c, rows in pieces
            ]
        else:  # streamed: each task reads and checks its chunk again
            import dask

            task = dask.delayed(function, pure=False)
            futures = self.client.compute(
                [task(data.parts[c], *arguments(c, rows)) for c, rows in pieces]
            )
        if during is None:
            during = f"during epoch {self.epoch}" if self.epoch else "before training"
        bound = wait_bound(self.floor, self.step_seconds)
        return gather(self.client, futures, bound, during, self.floor)

    def loss_and_grads(
        self, params: Sequence[Array], order: Any, first: int, last: int
    ) -> tuple[Array, list[Array]]:
        """Loss and gradients of the batch ``order[first:last]`` (``first:last`` when
        ``order`` is None), summed over the chunks in chunk order (see module docs)."""
        started = time.perf_counter()
        backend = self.backend
        # positions: the batch's rows numbered as in the training data (after an early
        # stopping split, within the training rows), as single-process fit numbers them
        # for the dropout stream; rows: the same rows in the Dask arrays
        if order is None:
            positions = np.arange(first, last, dtype=np.int64)
            rows: Any = (first, last) if self.train_index is None else self.train_index[first:last]
        else:
            positions = np.asarray(backend.to_numpy(order[first:last]), dtype=np.int64)
            rows = positions if self.train_index is None else self.train_index[positions]
        self.batch_in_epoch = 0 if first == 0 else self.batch_in_epoch + 1
        self.epoch += first == 0
        host = [np.asarray(backend.to_numpy(p)) for p in params]
        n_rows = last - first
        total = 1.0 if self.weighted else float(n_rows)
        step = self.steps
        self.steps += 1
        pieces = self.data.split(rows)
        bounds = self.data.bounds
        net = self.net
        per_chunk: dict[int, Any] = {c: None for c, _ in pieces}
        if any(net.dropout):
            # the step single-process fit gives this batch: the network's steps before
            # this epoch (train.fit adds each finished epoch's) plus its place in it
            stream_step = net._steps + self.batch_in_epoch
            for c, ids in self.data.split(rows, positions):
                per_chunk[c] = (net.dropout, net._dropout_key, stream_step, ids)
        shipped: Any = host
        if sum(p.nbytes for p in host) * len(pieces) > ARGUMENT_BYTES:
            # one task holds the parameters; the chunk tasks fetch them from its worker
            # (peer to peer) instead of each carrying a copy through the scheduler
            shipped = self.client.submit(_identity, host, pure=False)
        results = self._submit(
            self.data, _chunk_loss_and_grads, pieces,
            lambda c, r: (shipped, r, int(bounds[c]), total, self.hidden, self.output, step,
                          per_chunk[c]),
        )
        loss = results[0][0]
        grads = list(results[0][1])
        for part_loss, part_grads, *_ in results[1:]:  # chunk order: a fixed sum
            loss = loss + part_loss
            grads = [g + d for g, d in zip(grads, part_grads)]
        S = float(n_rows)
        if self.weighted:
            S = _sum_in_order(r[2] for r in results)
            S = S if S != 0 else 1.0  # all-zero weights: loss 0 and zero gradients
            loss = loss / S
            grads = [g / S for g in grads]
        if self.alpha:  # the L2 term, once: alpha/(2S) Σ‖W‖² and alpha·W/S
            loss = loss + core.penalty(self.alpha, host, S, np)
            for i in range(0, len(grads), 2):
                grads[i] = grads[i] + (self.alpha / S) * host[i]
        dtype = params[0].dtype
        out = (
            backend.asarray(np.asarray(loss), dtype=dtype),
            [backend.asarray(g, dtype=dtype) for g in grads],
        )
        busy: dict[int, float] = {}
        for *_, seconds, pid in results:
            busy[pid] = busy.get(pid, 0.0) + seconds
        self.compute_seconds.append(max(busy.values()))
        self.step_seconds.append(time.perf_counter() - started)
        return out

    def overhead(self) -> dict[str, float]:
        """Median per-step wall time, workers' compute (the busiest process) and their
        difference (the overhead of distribution), in seconds; NaN before any step."""
        if not self.step_seconds:
            return {"steps": 0, "step": math.nan, "compute": math.nan, "overhead": math.nan}
        wall, compute = np.asarray(self.step_seconds), np.asarray(self.compute_seconds)
        return {
            "steps": len(wall), "step": float(np.median(wall)),
            "compute": float(np.median(compute)), "overhead": float(np.median(wall - compute)),
        }

    # -- validation
    def _score_sums(self, params: Sequence[Any], mean: Any) -> list[tuple[Any, ...]]:
        assert self.val_data is not None
        pieces = self.val_data.split(self.val_rows)
        return self._submit(
            self.val_data, _chunk_score_sums, pieces,
            lambda c, r: (params, r, self.hidden, self.output, mean),
        )

    def validation_score(self, net: Any) -> float:
        """:func:`xpnet.train.validation_score` of the held-out rows, from chunk sums."""
        host = [np.asarray(net.array_backend.to_numpy(p)) for p in net._params]
        sums = self._score_sums(host, self.val_mean)
        if self.output.task != "regression":
            correct = _sum_in_order(part[0] for part in sums)
            weight = _sum_in_order(part[1] for part in sums)
            return correct / weight if weight else math.nan
        num, den = sums[0][0], sums[0][1]
        for part in sums[1:]:
            num, den = num + part[0], den + part[1]
        if not all(part[2] for part in sums):
            return math.nan
        safe = den + (den == 0)
        return float(np.mean(np.where(den == 0, (num == 0).astype(den.dtype), 1.0 - num / safe)))


def _sum_in_order(values: Any) -> float:
    """Floats added left to right (chunk order: a fixed rounding)."""
    total = 0.0
    for value in values:
        total += value
    return total


# --------------------------------------------------------------------------- entry point
def fit(net: Any, X: Any, y: Any, client: Any = None, **options: Any) -> Any:
    """Train ``net`` on Dask arrays ``(X, y)``, data-parallel; returns a ``History``.

    Same options and same result (to rounding) as :func:`xpnet.train.fit` from the same
    seed; see :mod:`xpnet.distributed`.

    Parameters
    ----------
    net : xpnet.MLP
    X : dask array ``(m, n_in)``
        Row chunks are the unit of work (one task per chunk per step); columns are
        gathered into one chunk.
    y : dask or NumPy array ``(m,)`` or ``(m, k)``
        Targets, as for :meth:`xpnet.MLP.fit`; re-chunked to ``X``'s rows.
    client : distributed.Client, optional
        The cluster to train on. None: the current client, or a ``LocalCluster`` started
        for this call and closed after it.
    **options
        The options of :func:`xpnet.train.fit`. ``sample_weight`` and ``validation_data``
        may be Dask arrays. Not supported here: ``optimizer="lbfgs"``, ``compile=True``,
        ``class_weight`` (pass the class weights as ``sample_weight``). Extra:
        ``persist`` and ``timeout`` (see :class:`DaskSource`), and ``report``: a dict that receives
        ``chunks`` and ``overhead`` (:meth:`DaskSource.overhead`: per-step medians).
    """
    require_dask()
    from .. import train
    from ._client import client_for

    if isinstance(options.get("optimizer"), str) and options["optimizer"] == "lbfgs":
        raise ValueError(
            "optimizer='lbfgs' is not supported on Dask arrays; use 'sgd' or 'adam'"
        )
    if options.get("compile"):
        raise ValueError("compile=True is not supported on Dask arrays (the chunks run NumPy)")
    if options.get("class_weight") is not None:
        raise ValueError(
            "class_weight is not supported on Dask arrays; pass the class weights per row "
            "as sample_weight"
        )
    options.pop("class_weight", None)
    sample_weight = options.pop("sample_weight", None)
    validation_data = options.pop("validation_data", None)
    persist = options.pop("persist", None)
    timeout = options.pop("timeout", None)
    report = options.pop("report", None)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError(
                "validation_data must be a tuple (X_val, Y_val) or (X_val, Y_val, w_val)"
            )
        options["early_stopping"] = True
    options.pop("_step_source", None)
    with client_for(client) as active:
        source = DaskSource(active, X, y, sample_weight, validation_data, persist, timeout)
        try:
            return train.fit(net, X, y, _step_source=source, **options)
        finally:
            if report is not None:
                report["overhead"] = source.overhead()
                data = getattr(source, "data", None)
                report["chunks"] = 0 if data is None else len(data.parts)


# --------------------------------------------------------------------------- labels
def _chunk_unique(block: Any, limit: int | None) -> np.ndarray:
    values = np.unique(np.asarray(block))
    return values if limit is None else values[: limit + 1]


def unique_values(y: Any, client: Any = None, limit: int | None = None) -> np.ndarray:
    """The sorted distinct values of dask array ``y``: ``np.unique`` of each chunk on the
    workers, merged on the driver (one pass; ``da.unique`` cannot build NumPy 2's
    ``StringDType``, which zarr returns for text labels). With ``limit``, each chunk sends
    at most ``limit + 1`` values: enough to tell "more than ``limit``" apart."""
    import dask

    parts = [dask.delayed(_chunk_unique, pure=True)(b, limit) for b in y.to_delayed().ravel()]
    if client is None:
        from .estimators import compute

        found = compute(dask.delayed(list)(parts))
    else:
        from ._client import compute as bounded

        found = bounded(client, parts, "while the labels were read")
    return np.unique(np.concatenate([np.asarray(f) for f in found]))


# --------------------------------------------------------------------------- scores
def _chunk_scores(
    data: tuple[Array, Array, Any], params: Sequence[Any], hidden: Any, output: Any,
    target_mean: float, target_scale: float,
) -> tuple[float, ...]:
    """``(rows, Σ loss, Σ correct, Σ squared error, Σ y, Σ y²)`` of one chunk, the
    regression sums in the target's original units (on a worker)."""
    X, Y, _ = data
    xp = _worker_backend(X).xp
    local = [xp.asarray(p) for p in params]
    _, Z_out = core.hidden_forward(hidden, local, X, xp)
    ones = xp.ones((X.shape[0], 1), dtype=X.dtype)
    A, loss = output.forward_and_loss(xp, Z_out, Y, ones)  # weights 1: the sum of losses
    rows = float(X.shape[0])
    if output.task == "regression":
        pred = _host(A)[:, 0].astype(np.float64) * target_scale + target_mean
        true = _host(Y)[:, 0].astype(np.float64) * target_scale + target_mean
        return (rows, float(loss), 0.0, float(np.sum((pred - true) ** 2)),
                float(np.sum(true)), float(np.sum(true * true)))
    A, Y = _host(A), _host(Y)
    if A.shape[1] == 1:
        correct = (A[:, 0] > 0.5) == (Y[:, 0] > 0.5)
    else:
        correct = A.argmax(axis=1) == Y.argmax(axis=1)
    return rows, float(loss), float(np.sum(correct)), 0.0, 0.0, 0.0


def score_blockwise(
    client: Any, net: Any, X: Any, y: Any, task: str, target_mean: float = 0.0,
    target_scale: float = 1.0,
) -> dict[str, Any]:
    """:func:`xpnet.metrics.score` of ``net`` on Dask arrays, summed chunk by chunk on
    the cluster: ``rows``, ``loss`` (mean, plus the L2 term), and ``accuracy`` or
    ``mse``/``r2`` (in the target's original units)."""
    source = DaskSource(client, X, y, persist=False)
    chunks = source._chunks(net, X, y, None, ("X", "y", "sample_weight"))
    host = [_host(net.array_backend.to_numpy(p)) for p in net._params]
    sums = source._submit(
        chunks, _chunk_scores, [(c, None) for c in range(len(chunks.parts))],
        lambda c, r: (host, tuple(net._hidden), net._output, target_mean, target_scale),
        during="while the model was scored",
    )
    rows, loss, correct, sse, total, squares = (
        _sum_in_order(part[i] for part in sums) for i in range(6)
    )
    result: dict[str, Any] = {"rows": int(rows), "loss": loss / rows}
    if net.alpha:
        result["loss"] += float(core.penalty(net.alpha, host, rows, np))
    if task == "regression":
        result["mse"] = sse / rows
        ss_tot = squares - total * total / rows
        result["r2"] = 1.0 - sse / ss_tot if ss_tot > 0 else 0.0
    else:
        result["accuracy"] = correct / rows
    return result
