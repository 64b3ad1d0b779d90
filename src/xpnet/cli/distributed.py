"""``xpnet train/evaluate/predict`` on a Dask cluster: ``--dask-workers N`` (a LocalCluster
of N worker processes, closed after), ``--scheduler tcp://host:8786`` (a running cluster),
``--chunk-rows N``; ``--data`` may then be a zarr store or a folder of ``.npy`` shards,
read on the workers. :class:`OnCluster` is where ``xpnet train`` opens, fits and scores
there (:mod:`xpnet.cli.train` holds the one flow); ``xpnet.cli.models`` uses the rest.

The data never come to the driver whole: a zarr store or shard folder is read chunk by
chunk on the workers, a generated ``--dataset`` is generated there from the seed, and a
small data file or built-in table is loaded on the driver and cut into ``--chunk-rows``
chunks. What differs from a single-process run: the test split is drawn by row index and
is not stratified (stratifying needs every label on the driver); statistics (feature
standardisation, scores) are summed chunk by chunk, equal to rounding.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._memory import format_bytes, network_bytes, too_large, training_bytes
from ._common import (
    DEFAULT_EPOCHS,
    DEFAULT_EPOCHS_2D,
    TrainingSets,
    Where,
    check_parameters,
    fail,
    load_data,
    plural,
    positive_int,
    printable,
)
from ._paths import check_paths
from ._signals import StopAfterEpoch

DEFAULT_CHUNK_ROWS = 1 << 16


def add_dask_options(p: argparse.ArgumentParser) -> None:
    """``--dask-workers``/``--scheduler``/``--chunk-rows`` for train, evaluate, predict."""
    group = p.add_argument_group(
        "Dask cluster (data-parallel, data read on the workers; pip install 'xpnet[dask]')"
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument("--dask-workers", type=positive_int, default=None, metavar="N",
                       help="start a local Dask cluster of N worker processes (one thread "
                       "each) for this command, and close it after")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="use the running Dask cluster at ADDRESS (e.g. tcp://host:8786)")
    group.add_argument("--chunk-rows", type=positive_int, default=None, metavar="N",
                       help="rows per chunk, the unit of work of one task (default: a zarr "
                       f"store's own chunks, else {DEFAULT_CHUNK_ROWS} rows)")


def on_cluster(args: argparse.Namespace) -> bool:
    """Whether the command runs on Dask; refuses Dask-only options without a cluster."""
    wanted = args.dask_workers is not None or args.scheduler is not None
    if not wanted:
        if args.chunk_rows is not None:
            fail("--chunk-rows applies with --dask-workers N or --scheduler ADDRESS")
        data = getattr(args, "data", None)
        if data and os.path.isdir(data):
            fail(f"--data {data}: a zarr store or folder of .npy shards is read on Dask "
                 "workers; add --dask-workers N or --scheduler ADDRESS")
    return wanted


def _quiet_dask_logs() -> None:
    """Keep Dask's log off stderr: the CLI reports a fault itself, in one line. Dask logs
    through a handler of its own on ``distributed`` (its child loggers set their own
    levels), tornado and asyncio through the root logger's last resort."""
    silent = logging.CRITICAL + 1
    for handler in logging.getLogger("distributed").handlers:
        handler.setLevel(silent)
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(silent)


@contextlib.contextmanager
def cluster(args: argparse.Namespace) -> Iterator[Any]:
    """The client of ``--dask-workers``' LocalCluster (closed on exit) or ``--scheduler``.

    A cluster fault (:class:`~xpnet.distributed._client.ClusterError`: the scheduler or
    every worker gone, data lost, a wait past its bound) inside the block is one line,
    ``xpnet: error: ...; nothing was written``, exit 2; Dask's own log (tracebacks of
    lost connections, restarted workers) is kept off stderr."""
    try:
        import dask.array  # noqa: F401
        from distributed import Client
    except ImportError as exc:
        fail(f"--dask-workers/--scheduler need dask ({exc}); install it with: "
             "pip install 'xpnet[dask]'")
    from ..distributed._client import (
        ClusterError,
        local_client,
        quiet_resource_tracker,
        timeout_floor,
    )

    timeout_floor()  # a malformed XPNET_DASK_TIMEOUT is refused before any work
    _quiet_dask_logs()
    try:
        if args.dask_workers is not None:
            quiet_resource_tracker()  # a killed worker's leftovers are not the user's news
            with local_client(n_workers=args.dask_workers) as client:
                yield client
            return
        try:
            client = Client(args.scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            fail(f"--scheduler {args.scheduler}: cannot connect ({exc})")
        try:
            yield client
        finally:
            client.close(timeout=10)
    except ClusterError as exc:
        fail(f"{exc}; nothing was written")


def describe_cluster(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    from ..distributed._client import cluster_description

    info = cluster_description(client)
    info["kind"] = "LocalCluster" if args.dask_workers is not None else "scheduler"
    return info


def cluster_text(info: dict[str, Any]) -> str:
    where = ("local cluster" if info["kind"] == "LocalCluster"
             else f"scheduler {info['scheduler']}")
    return (f"{where}: {plural(info['workers'], 'worker')}, "
            f"{plural(info['threads'], 'thread')}, "
            f"{info['memory_bytes'] / 2**30:.1f} GiB")


# --------------------------------------------------------------------------- data
def chunked(args: argparse.Namespace, data: Any) -> tuple[Any, Any]:
    """``(X, y)`` of a data set loaded on the driver, as Dask arrays of ``--chunk-rows``."""
    import dask.array as da

    rows = args.chunk_rows or min(DEFAULT_CHUNK_ROWS, data.n_samples)
    X = da.from_array(np.asarray(data.X), chunks=(rows, -1))
    y = None if data.y is None else da.from_array(np.asarray(data.y), chunks=(rows,))
    return X, y


def open_on_cluster(args: argparse.Namespace) -> tuple[Any, Any, str, Any]:
    """``(X, y, name, feature_names)`` as Dask arrays, read or made on the workers where
    the source allows it."""
    from ..data import GENERATED, GENERATORS
    from ..distributed import storage

    if args.data and os.path.isdir(args.data):
        if getattr(args, "n_samples", None) is not None or getattr(args, "noise", None):
            fail("--n-samples and --noise apply to the generated --dataset sets, not to --data")
        X, y = storage.open_data(args.data, chunk_rows=args.chunk_rows, target=args.target)
        return X, y, args.data, None
    name = args.dataset or "moons"
    if not args.data and name in GENERATED:
        if args.target is not None:
            fail("--target picks a column of a --data file; built-in data sets have their "
                 "target")
        n_samples = getattr(args, "n_samples", None)
        if n_samples is None:
            make = GENERATORS[name][0]
            n_samples = int(inspect.signature(make).parameters["n_samples"].default)
        X, y = storage.generate(name, n_samples, args.chunk_rows, args.seed,
                                noise=getattr(args, "noise", None),
                                dtype=getattr(args, "dtype", "float64"))
        return X, y, name, ["x1", "x2"]
    data = load_data(args)
    return (*chunked(args, data), data.name, data.feature_names)


def _to_index(block: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.searchsorted(labels, block).astype(np.int64)


def _encode_target(y: Any, output: str | None, client: Any) -> tuple[Any, str, str, Any]:
    """``(y encoded, task, output, classes)`` with :func:`xpnet.data.encode_target`'s
    rules, from statistics computed on the cluster (the labels stay there)."""
    import dask.array as da

    from ..data import DataError, encode_target
    from ..distributed._client import compute as bounded
    from ..distributed.engine import unique_values

    def compute(x: Any) -> Any:
        return bounded(client, [x], "while the target was read")[0]

    numeric = y.dtype.kind in "biuf"
    regression = output in ("identity", "exp")
    labels = None
    if not regression and numeric and output is None:
        integral = y.dtype.kind != "f" or bool(compute((y == da.round(y)).all()))
        if integral:
            labels = unique_values(y, client, limit=50)
            regression = not (labels.size <= 50 and labels.size <= max(2, y.shape[0] // 2))
        else:
            regression = True
    if regression:
        if not numeric:
            raise DataError(f"regression (output {output or 'identity'}) needs a numeric target")
        if output == "exp" and bool(compute((y < 0).any())):
            raise DataError("Poisson regression (output exp) needs a target >= 0")
        return y.astype(np.float64), "regression", output or "identity", None
    if labels is None:
        labels = unique_values(y, client)
    chosen = output or ("sigmoid" if labels.size == 2 else "softmax")
    target = encode_target(labels, chosen)  # its checks (two classes or more, ...)
    index = y.map_blocks(_to_index, labels, dtype=np.int64)
    return index, target.task, target.output, target.classes


def _standardize(X: Any, client: Any) -> tuple[Any, Any]:
    """``((X - mean) / scale, Standardizer)`` with the statistics summed on the cluster
    (constant features keep scale 1, as :class:`xpnet.data.Standardizer`)."""
    from ..data import Standardizer
    from ..distributed._client import compute

    X = X.astype(np.float64)
    mean, std = compute(client, [X.mean(axis=0), X.std(axis=0)],
                        "while the features were standardised")
    mean, std = np.asarray(mean), np.asarray(std)
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    scaler = Standardizer(mean, np.where(constant, 1.0, std))
    return (X - scaler.mean) / scaler.scale, scaler


# --------------------------------------------------------------------------- train
class OnCluster(Where):
    """Where ``xpnet train`` runs with ``--dask-workers``/``--scheduler`` (see above)."""

    split_note = " (by row index, unstratified)"
    # threads: the workers' own (the cluster line says how many)
    omitted = ("momentum", "nesterov", "lr_schedule", "threads", "threads_auto")

    def check(self) -> None:
        args = self.args
        for flag, given in (("--compile", args.compile), ("--plot", args.plot)):
            if given:
                fail(f"{flag} does not apply with --dask-workers/--scheduler")
        if args.backend != "numpy":
            fail("with --dask-workers/--scheduler the workers compute with NumPy (or CuPy "
                 f"for CuPy chunks); --backend {args.backend} does not apply")
        check_paths({"--save": ("model file", args.save)}, {})

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        with cluster(self.args) as client:
            self.client = client
            self.json = {"cluster": describe_cluster(client, self.args)}
            self.data_lines = [f"cluster   {cluster_text(self.json['cluster'])}"]
            yield

    def open(self) -> tuple[Any, Any, str, str, Any]:
        """``(data, y encoded, task, output, classes)``."""
        from ..data import GENERATED, Dataset

        args = self.args
        X, y, name, feature_names = open_on_cluster(args)
        if y is None:
            fail(f"{printable(name)}: no target column to train on")
        if args.epochs is None:
            generated = not args.data and (args.dataset or "moons") in GENERATED
            args.epochs = DEFAULT_EPOCHS_2D if generated else DEFAULT_EPOCHS
        return (Dataset(X, y, name, feature_names=feature_names),
                *_encode_target(y, args.output, self.client))

    def split(self, data: Any, y: Any, task: str, output: str, classes: Any) -> TrainingSets:
        from ..data import split_indices

        args = self.args
        train_rows, test_rows = split_indices(data.n_samples, args.test_fraction, args.seed)
        # sorted: each chunk keeps its own rows (no shuffle of data between workers)
        train_rows, test_rows = np.sort(train_rows), np.sort(test_rows)
        sets = TrainingSets(data.X[train_rows], y[train_rows], data.X[test_rows], y[test_rows])
        if args.standardize:
            sets.X_train, sets.scaler = _standardize(sets.X_train, self.client)
            sets.X_test = (sets.X_test.astype(np.float64) - sets.scaler.mean) / sets.scaler.scale
        if task == "regression" and args.standardize and output != "exp":
            y_train, sets.y_scaler = _standardize(sets.y_train[:, None], self.client)
            y_test = (sets.y_test[:, None] - sets.y_scaler.mean) / sets.y_scaler.scale
            sets.y_train, sets.y_test = y_train[:, 0], y_test[:, 0]
        return sets

    def check_size(self, sizes: list[int], sets: TrainingSets, name: str) -> None:
        """Refuse, before any work on the cluster, a fit that cannot fit in memory: the
        parameters, their gradients and optimiser state on the driver, as ``Local``
        checks them; and one step of the largest chunk (its checked inputs and encoded
        targets, and its share of the batch's activations) in one worker, against the
        smallest worker's memory limit and this host's available memory."""
        args, chunk_rows = self.args, max(sets.X_train.chunks[0], default=0)
        itemsize = np.dtype(args.dtype).itemsize
        parts = training_bytes(sizes, chunk_rows, min(args.batch_size or chunk_rows, chunk_rows),
                               itemsize)
        check_parameters(args, sizes, too_large(parts["parameters"]
                                                + network_bytes(sizes, itemsize)))
        chunk = parts["data"] + parts["activations"]
        clause = too_large(chunk)
        limit = self.json["cluster"].get("worker_memory_bytes") or 0
        if clause is None and limit and chunk > limit:
            clause = (f"needs about {format_bytes(chunk)} of memory, but a worker has "
                      f"about {format_bytes(limit)}")
        if clause is not None:
            fail(f"{printable(name)}: one step on a chunk of {chunk_rows:,} rows with "
                 f"{sizes[-1]:,} outputs {clause} (data {format_bytes(parts['data'])}, "
                 f"activations {format_bytes(parts['activations'])}); use a smaller "
                 "--chunk-rows")

    def fit(self, net: Any, X: Any, y: Any, options: dict[str, Any]) -> tuple[Any, bool]:
        """``(history, stopped)``: Ctrl-C as in this process (:class:`StopAfterEpoch`): the
        first stops after the epoch on the cluster, the second aborts."""
        from ..distributed import fit

        args, report = self.args, dict[str, Any]()
        with StopAfterEpoch(lambda epoch, loss: None, newline=False,
                            log_every=args.log_every, epochs=args.epochs) as stop:
            history = fit(net, X, y, client=self.client, report=report, callback=stop,
                          **options)
        steps = report["overhead"]
        self.training_json = {
            "chunks": report["chunks"], "steps": steps["steps"],
            "step_seconds_median": steps["step"], "compute_seconds_median": steps["compute"],
            "overhead_seconds_median": steps["overhead"]}
        self.chunks_note = f", {report['chunks']} chunks"
        self.time_lines = [f"steps     {steps['steps']} steps, median "
                           f"{1000 * steps['step']:.1f} ms: workers' compute "
                           f"{1000 * steps['compute']:.1f} ms, overhead "
                           f"{1000 * steps['overhead']:.1f} ms"]
        return history, history.interrupted or stop.requested

    def score(self, net: Any, X: Any, y: Any, task: str, mean: float, scale: float) -> Any:
        from ..distributed.engine import score_blockwise

        return score_blockwise(self.client, net, X, y, task, mean, scale)

    def backend(self, net: Any) -> tuple[dict[str, Any], str]:
        """The report's backend: its --json object and its line's text."""
        return ({"name": "numpy", "device": "dask workers", "dtype": net.dtype},
                f"numpy on the Dask workers, {net.dtype}")
