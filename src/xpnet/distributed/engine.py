"""Synchronous data-parallel training on Dask: chunk placement, ordered sums, ``DaskSource``.

The data stay on the workers as the chunks of a Dask array. Each step, the driver sends
the parameters to one task per chunk holding rows of the batch; the task
(:func:`xpnet.distributed.chunks.loss_and_grads`) computes that chunk's share of the
*global* batch's loss and gradient sums. The driver adds them **in chunk order**, adds
the L2 term once, and hands them to the training loop (optimiser, schedules, early
stopping, ``History``, divergence checks, callbacks: all unchanged). :class:`DaskSource`
is that loop's batch source, built from the network's architecture, sizes, dtype,
backend and dropout key, never from the network itself.

So a distributed fit is a single-process one from the same seed: the same permutation
and early-stopping split (drawn on the driver, by row index: no data move), the same
rows per batch, only the order of the additions differs (equal to rounding). The number
of workers, and a lost worker, change no bit: the sum's order is fixed by the chunks, and
a lost chunk or step task is recomputed by Dask from its recipe. The parameters travel
in task recipes too (an argument of each chunk task, or one small task they depend on:
see ``ARGUMENT_BYTES``), never scattered: scattered data and actors die with their worker.
Held-out rows (the split's, or ``validation_data`` as Dask arrays) are scored where they
live, one task per chunk returning partial sums.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._class_weight import balanced_per_class, check_class_weight, dict_per_class
from ..backends import get_backend
from ..core import Architecture, penalty
from . import chunks
from ._client import client_for, compute, current_client, gather, settle, timeout_floor, wait_bound

__all__ = ["Chunks", "DaskSource", "check_features", "fit", "is_dask_array", "network_options",
           "place", "require_dask", "run_tasks", "score_blockwise", "unique_values"]


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
    """Whether ``obj`` is a Dask collection (checked by its class's module: no import).

    Parameters
    ----------
    obj : object
        Anything.
    """
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "__dask_graph__")



# --------------------------------------------------------------------------- placement
# Parameters ride along as an argument of every chunk task while all the copies together
# stay under this size; above it, one task holds them (see DaskSource.loss_and_grads).
# Measured on a 2-worker LocalCluster (2-core box, loaded), median per full-batch step of
# 4 chunks: a 20-16-3 network 26 ms as arguments, 41 ms as one task, 57 ms scattered;
# 784-256-10 (0.8 MB of float32) 175, 106 and 121 ms.
ARGUMENT_BYTES = 1 << 20


class Chunks:
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
        edges = np.flatnonzero(np.diff(owner[grouped])) + 1
        for part in np.split(grouped, edges):
            c = int(owner[part[0]])
            out.append((c, rows[part] - bounds[c] if companion is None else companion[part]))
        return out


def place(
    client: Any, X: Any, y: Any, w: Any, spec: tuple[Any, ...], names: tuple[str, str, str],
    persist: bool | None, floor: float,
) -> Chunks:
    """``(X, y, w)`` as checked chunks (:func:`~xpnet.distributed.chunks.prepare_chunk`
    with ``spec``), aligned to ``X``'s row chunks; ``names`` name the three in errors.
    ``persist`` None: persist when the checked data take at most half the workers'
    memory (see :class:`DaskSource`)."""
    import dask
    import dask.array as da

    n_in, n_out, _, dtype, _ = spec
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

    y_parts = aligned(y, y_name).to_delayed().ravel()
    w_parts: list[Any] = [None] * len(row_chunks)
    if w is not None:
        w = aligned(w, w_name)
        if w.ndim != 1:
            raise ValueError(
                f"{w_name} must have shape ({m},), one weight per row; got {w.shape}"
            )
        w_parts = list(w.to_delayed().ravel())
    prepare = dask.delayed(chunks.prepare_chunk, pure=True)
    parts = [prepare(x, yy, ww, spec)
             for x, yy, ww in zip(X.to_delayed().ravel(), y_parts, w_parts)]
    if persist is None:
        workers = client.scheduler_info().get("workers", {}).values()
        limits = [info.get("memory_limit") or 0 for info in workers]
        memory = float(sum(limits)) if limits and all(limits) else math.inf
        persist = m * (n_in + n_out + 1) * np.dtype(dtype).itemsize <= 0.5 * memory
    if not persist:
        return Chunks(parts, row_chunks, persisted=False)
    futures = client.compute(parts)
    settle(client, futures, floor, "while the data were placed", floor)
    for future in futures:
        if future.status == "error":
            future.result()  # raises the worker's error (a data check) here
    return Chunks(futures, row_chunks, persisted=True)


def run_tasks(
    client: Any, data: Chunks, function: Callable[..., Any], pieces: list[tuple[int, Any]],
    arguments: Callable[[int, Any], tuple[Any, ...]], seconds: float, during: str,
    floor: float | None = None,
) -> list[Any]:
    """One task ``function(chunk data, *arguments(chunk, rows))`` per piece; the results
    in chunk order, waited for at most ``seconds`` (:func:`~._client.gather`)."""
    if data.persisted:
        # Run each task where its chunk lives (a loose restriction: another worker
        # may still take it, e.g. after its worker died), so work stealing never
        # copies a chunk to balance a few milliseconds of work.
        holders = data.holders(client)
        futures = [
            client.submit(function, data.parts[c], *arguments(c, rows), pure=False,
                          workers=holders.get(c), allow_other_workers=True)
            for c, rows in pieces
        ]
    else:  # streamed: each task reads and checks its chunk again
        import dask

        task = dask.delayed(function, pure=False)
        futures = client.compute([task(data.parts[c], *arguments(c, rows)) for c, rows in pieces])
    return gather(client, futures, seconds, during, floor)


def sum_in_order(values: Any) -> Any:
    """Values added left to right (chunk order: a fixed rounding)."""
    values = iter(values)
    total = next(values)
    for value in values:
        total = total + value
    return total


def _spec(layer_sizes: Sequence[int], dtype: str, arch: Architecture) -> tuple[Any, ...]:
    """What a chunk's checks need (:func:`~xpnet.distributed.chunks.prepare_chunk`)."""
    return layer_sizes[0], layer_sizes[-1], arch.output.task, dtype, arch.output.name


def _host(backend: Any, params: Sequence[Any]) -> list[np.ndarray]:
    return [np.asarray(backend.to_numpy(p)) for p in params]


# --------------------------------------------------------------------------- the source
def network_options(net: Any) -> dict[str, Any]:
    """The keywords of :class:`DaskSource` that describe ``net`` (its public surface).

    Parameters
    ----------
    net : MLP
        The network.
    """
    return {"architecture": net.architecture, "layer_sizes": tuple(net.layer_sizes),
            "dtype": net.dtype, "backend": net.array_backend, "dropout_key": net.dropout_key}


class DaskSource:
    """The batch source of the training loop for Dask arrays (see module docs).

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
    architecture, layer_sizes, dtype, backend, dropout_key
        The network's (:func:`network_options` reads them from an ``MLP``): the step's
        math, the data's checks, where the parameters live, the dropout stream's key.
    split : callable, optional
        ``split(m, fraction, rng) -> (training rows, held-out rows)``: the early-stopping
        split of single-process training (needed with early stopping and no
        ``validation_data``).
    class_weight : None, "balanced" or dict {class index: weight}, optional
        As checked by :func:`xpnet._class_weight.check_class_weight`: the training rows
        (and the early-stopping split's held-out rows) weighed by their class, on top of
        ``sample_weight``, as single-process ``fit(class_weight=...)``; ``"balanced"``'s
        class counts come from one pass of per-chunk sums (added in chunk order).
    """

    def __init__(
        self, client: Any, X: Any, y: Any, sample_weight: Any = None,
        validation_data: Any = None, persist: bool | None = None,
        timeout: float | None = None, *, architecture: Architecture,
        layer_sizes: Sequence[int], dtype: str = "float64", backend: Any = "numpy",
        dropout_key: Any = None, split: Callable[..., tuple[Any, Any]] | None = None,
        class_weight: Any = None,
    ) -> None:
        self.client = client
        self.floor = timeout_floor(timeout)
        self.X, self.y, self.w = X, y, sample_weight
        self.validation_data = validation_data
        self.persist = persist
        self.arch = architecture
        self.spec = _spec(layer_sizes, dtype, architecture)
        self.backend = get_backend(backend)
        self.xp = self.backend.xp  # (full-batch L-BFGS reads it, as ArraySource's)
        self.class_weight = class_weight
        self.dropout_key = dropout_key
        self.split = split
        self.epoch = 0  # the epoch in progress (1-based; 0 while the data are placed)
        self.data: Chunks | None = None
        self.train_index: np.ndarray | None = None  # after an early-stopping split
        self.val_data: Chunks | None = None
        self.val_rows: Any = None
        self.val_mean: Any = None
        self.val_weight: Any = None  # Σ w of the held-out rows (regression: first pass)
        # per step: wall time on the driver, and the busiest worker process's seconds of
        # math (its tasks run one after the other): the difference is the overhead
        self.step_seconds: list[float] = []
        self.compute_seconds: list[float] = []

    def _place(self, X: Any, y: Any, w: Any, names: tuple[str, str, str]) -> Chunks:
        return place(self.client, X, y, w, self.spec, names, self.persist, self.floor)

    def _run(self, data: Chunks, function: Callable[..., Any], pieces: list[tuple[int, Any]],
             arguments: Callable[[int, Any], tuple[Any, ...]]) -> list[Any]:
        during = f"during epoch {self.epoch}" if self.epoch else "before training"
        return run_tasks(self.client, data, function, pieces, arguments,
                         wait_bound(self.floor, self.step_seconds), during, self.floor)

    def prepare(self, rng: Any, early_stopping: bool, validation_fraction: float) -> int:
        """Check and place the data, draw the early-stopping split; the training rows."""
        self.data = self._place(self.X, self.y, self.w, ("X", "y", "sample_weight"))
        if self.class_weight is not None:
            self.data = self._weigh_classes(self.data)
        m = self.data.rows
        if self.validation_data is not None:
            X_val, y_val, *w_val = self.validation_data
            self.val_data = self._place(
                X_val, y_val, w_val[0] if w_val else None,
                ("validation X", "validation y", "validation_data weights"),
            )
            self.val_rows = (0, self.val_data.rows)
        elif early_stopping:
            if self.split is None:
                raise ValueError("early stopping needs the split: DaskSource(..., split=...)")
            # single-process training's draw, by index: the same rows held out
            train_rows, val_rows = self.split(m, validation_fraction, rng)
            self.train_index = np.asarray(train_rows, dtype=np.int64)
            self.val_data, self.val_rows = self.data, np.asarray(val_rows, dtype=np.int64)
            m = len(self.train_index)
        if self.val_data is not None and self.arch.output.task == "regression":
            sums = self._score_sums([], None)
            self.val_weight = sum_in_order(s[1] for s in sums)
            self.val_mean = sum_in_order(s[0] for s in sums) / self.val_weight
        return m

    def _weigh_classes(self, data: Chunks) -> Chunks:
        """``data`` with each row weighed by its class (see ``class_weight``): the
        per-class weights on the driver (from the chunks' class counts for
        ``"balanced"``), then one task per chunk multiplies them in where it lives."""
        task, n_out, dtype = self.arch.output.task, self.spec[1], np.dtype(self.spec[3])
        if self.class_weight == "balanced":
            counts = self._run(data, chunks.class_counts,
                               [(c, None) for c in range(len(data.parts))], lambda c, r: (task,))
            # integer-valued sums: exact in any order, so the single-process counts
            total = np.asarray(sum_in_order(np.asarray(n, dtype=dtype) for n in counts))
            per_class = np.asarray(balanced_per_class(np, total, float(data.rows)), dtype=dtype)
        else:
            n_classes = 2 if n_out == 1 else n_out
            per_class = np.asarray(dict_per_class(self.class_weight, n_classes), dtype=dtype)
        if not data.persisted:
            import dask

            weigh = dask.delayed(chunks.with_class_weight, pure=True)
            return Chunks([weigh(part, per_class, task) for part in data.parts],
                          np.diff(data.bounds).tolist(), persisted=False)
        holders = data.holders(self.client)
        parts = [self.client.submit(chunks.with_class_weight, part, per_class, task,
                                    pure=False, workers=holders.get(c), allow_other_workers=True)
                 for c, part in enumerate(data.parts)]
        settle(self.client, parts, self.floor, "while the class weights were applied", self.floor)
        for future in parts:
            if future.status == "error":
                future.result()
        return Chunks(parts, np.diff(data.bounds).tolist(), persisted=True)

    def loss_and_grads(
        self, params: Sequence[Any], order: Any, first: int, last: int, step: int
    ) -> tuple[Any, list[Any]]:
        """Loss and gradients of the batch ``order[first:last]`` (``first:last`` when
        ``order`` is None), summed over the chunks in chunk order (see module docs);
        ``step``, the optimiser's step of this batch, keys its dropout masks."""
        assert self.data is not None, "prepare() first"
        started = time.perf_counter()
        backend, data = self.backend, self.data
        # positions: the batch's rows numbered as in the training data (after an early
        # stopping split, within the training rows), as single-process fit numbers them
        # for the dropout stream; rows: the same rows in the Dask arrays
        if order is None:
            positions = np.arange(first, last, dtype=np.int64)
            rows: Any = (first, last) if self.train_index is None else self.train_index[first:last]
        else:
            positions = np.asarray(backend.to_numpy(order[first:last]), dtype=np.int64)
            rows = positions if self.train_index is None else self.train_index[positions]
        self.epoch += first == 0
        host = _host(backend, params)
        weighted = self.w is not None or self.class_weight is not None
        total = 1.0 if weighted else float(last - first)
        pieces = data.split(rows)
        streams: dict[int, Any] = {c: None for c, _ in pieces}
        if self.arch.dropout:
            for c, ids in data.split(rows, positions):
                streams[c] = (self.dropout_key, step, ids)
        shipped: Any = host
        if sum(p.nbytes for p in host) * len(pieces) > ARGUMENT_BYTES:
            # one task holds the parameters; the chunk tasks fetch them from its worker
            # (peer to peer) instead of each carrying a copy through the scheduler
            shipped = self.client.submit(chunks.identity, host, pure=False)
        results = self._run(data, chunks.loss_and_grads, pieces,
                            lambda c, r: (shipped, r, total, self.arch, streams[c]))
        loss = sum_in_order(r[0] for r in results)
        grads = [sum_in_order(r[1][i] for r in results) for i in range(len(host))]
        S = float(last - first)
        if weighted:
            S = sum_in_order(r[2] for r in results)
            S = S if S != 0 else 1.0  # all-zero weights: loss 0 and zero gradients
            loss = loss / S
            grads = [g / S for g in grads]
        alpha = self.arch.alpha
        if alpha:  # the L2 term, once: alpha/(2S) Σ‖W‖² and alpha·W/S
            loss = loss + penalty(alpha, host, S, np)
            for i in range(0, len(grads), 2):
                grads[i] = grads[i] + (alpha / S) * host[i]
        dtype = params[0].dtype
        out = (backend.asarray(np.asarray(loss), dtype=dtype),
               [backend.asarray(g, dtype=dtype) for g in grads])
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
        return self._run(self.val_data, chunks.score_sums, self.val_data.split(self.val_rows),
                         lambda c, r: (params, r, self.arch, mean))

    def score(self, params: Sequence[Any]) -> float:
        """The validation score of ``params`` on the held-out rows, from chunk sums: the
        single-process score (``xpnet.train.validation_score``), to rounding."""
        return float(self.validate(params)[0])

    def validate(self, params: Sequence[Any]) -> np.ndarray:
        """``[score, loss]`` on the held-out rows from one pass of chunk sums: the
        single-process :func:`xpnet.training.sources.validation`, to rounding."""
        host = _host(self.backend, params)
        sums = self._score_sums(host, self.val_mean)
        regression = self.arch.output.task == "regression"
        if regression:
            assert self.val_data is not None
            weight = self.val_weight
        else:
            weight = sum_in_order(part[1] for part in sums)
        S = weight if weight != 0 else 1.0  # all-zero weights: as the single-process sum
        loss = sum_in_order(part[-1] for part in sums) / S
        if self.arch.alpha:
            loss = loss + float(penalty(self.arch.alpha, host, S, np))
        if not regression:
            value = sum_in_order(part[0] for part in sums) / weight if weight else math.nan
        elif not all(part[2] for part in sums):
            value = math.nan
        else:
            num, den = sum_in_order(p[0] for p in sums), sum_in_order(p[1] for p in sums)
            safe = den + (den == 0)
            value = float(np.mean(np.where(den == 0, (num == 0).astype(den.dtype),
                                           1.0 - num / safe)))
        return np.asarray([value, loss], dtype=np.float64)


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
        may be Dask arrays; ``class_weight`` weighs the rows on the workers (``"balanced"``
        from per-chunk class counts); ``optimizer="lbfgs"`` runs SciPy's L-BFGS-B on the
        driver, each evaluation one pass of chunk tasks over all rows, summed in chunk
        order (:mod:`xpnet.training.lbfgs`). Not supported here: ``compile=True``. Extra:
        ``persist`` and ``timeout`` (see :class:`DaskSource`), and ``report``: a dict that receives
        ``chunks`` and ``overhead`` (:meth:`DaskSource.overhead`: per-step medians).
    """
    require_dask()
    # the training entry point and its split (lazy: the loop is needed only here)
    from ..training.api import fit as train_fit
    from ..training.sources import validation_rows

    if options.get("compile"):
        raise ValueError("compile=True is not supported on Dask arrays (the chunks run NumPy)")
    class_weight = check_class_weight(net, options.pop("class_weight", None))
    sample_weight = options.pop("sample_weight", None)
    validation_data = options.pop("validation_data", None)
    persist, timeout = options.pop("persist", None), options.pop("timeout", None)
    report = options.pop("report", None)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError(
                "validation_data must be a tuple (X_val, Y_val) or (X_val, Y_val, w_val)"
            )
        options["early_stopping"] = True
    options.pop("source", None)
    with client_for(client) as active:
        source = DaskSource(active, X, y, sample_weight, validation_data, persist, timeout,
                            split=validation_rows, class_weight=class_weight,
                            **network_options(net))
        try:
            return train_fit(net, X, y, source=source, **options)
        finally:
            if report is not None:
                report["overhead"] = source.overhead()
                report["chunks"] = 0 if source.data is None else len(source.data.parts)


# --------------------------------------------------------------------------- labels
def _chunk_unique(block: Any, limit: int | None) -> np.ndarray:
    values = np.unique(np.asarray(block))
    return values if limit is None else values[: limit + 1]


def unique_values(y: Any, client: Any = None, limit: int | None = None) -> np.ndarray:
    """The sorted distinct values of dask array ``y``: ``np.unique`` of each chunk on the
    workers, merged on the driver (one pass; ``da.unique`` cannot build NumPy 2's
    ``StringDType``, which zarr returns for text labels). With ``limit``, each chunk sends
    at most ``limit + 1`` values: enough to tell "more than ``limit``" apart. ``client``
    None: the current client (waited for without a bound), else Dask's own scheduler."""
    import dask

    parts = [dask.delayed(_chunk_unique, pure=True)(b, limit) for b in y.to_delayed().ravel()]
    if client is not None:
        found = compute(client, parts, "while the labels were read")
    elif (current := current_client()) is not None:
        found = current.gather(current.compute(parts))
    else:
        found = dask.compute(parts)[0]
    return np.unique(np.concatenate([np.asarray(f) for f in found]))


# --------------------------------------------------------------------------- scores
def score_blockwise(
    client: Any, net: Any, X: Any, y: Any, task: str, target_mean: float = 0.0,
    target_scale: float = 1.0,
) -> dict[str, Any]:
    """:func:`xpnet.metrics.score` of ``net`` on Dask arrays, summed chunk by chunk on
    the cluster: ``rows``, ``loss`` (mean, plus the L2 term), and ``accuracy`` or
    ``mse``/``r2`` (in the target's original units)."""
    arch, floor = net.architecture, timeout_floor()
    data = place(client, X, y, None, _spec(net.layer_sizes, net.dtype, arch),
                 ("X", "y", "sample_weight"), False, floor)
    host = _host(net.array_backend, net.flat_params)
    sums = run_tasks(client, data, chunks.scores, [(c, None) for c in range(len(data.parts))],
                     lambda c, r: (host, arch, target_mean, target_scale), floor,
                     "while the model was scored", floor)
    rows, loss, correct, sse, total, squares = (
        sum_in_order(part[i] for part in sums) for i in range(6)
    )
    result: dict[str, Any] = {"rows": int(rows), "loss": loss / rows}
    if arch.alpha:
        result["loss"] += float(penalty(arch.alpha, host, rows, np))
    if task == "regression":
        result["mse"] = sse / rows
        ss_tot = squares - total * total / rows
        result["r2"] = 1.0 - sse / ss_tot if ss_tot > 0 else 0.0
    else:
        result["accuracy"] = correct / rows
    return result
