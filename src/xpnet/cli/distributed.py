"""``xpnet train/evaluate/predict`` on a Dask cluster: ``--dask-workers N`` (a LocalCluster
of N worker processes, closed after), ``--scheduler tcp://host:8786`` (a running cluster),
``--chunk-rows N``; ``--data`` may then be a zarr store or a folder of ``.npy`` shards,
read on the workers.

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
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import __version__
from ._common import (
    _count,
    _dropout_text,
    _emit_json,
    _evaluation_lines,
    _fail,
    _fmt,
    _score_lines,
    cell_text,
    printable,
)

DEFAULT_CHUNK_ROWS = 1 << 16


def add_dask_options(p: argparse.ArgumentParser) -> None:
    """``--dask-workers``/``--scheduler``/``--chunk-rows`` for train, evaluate, predict."""
    from ._common import _positive_int

    group = p.add_argument_group(
        "Dask cluster (data-parallel, data read on the workers; pip install 'xpnet[dask]')"
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument("--dask-workers", type=_positive_int, default=None, metavar="N",
                       help="start a local Dask cluster of N worker processes (one thread "
                       "each) for this command, and close it after")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="use the running Dask cluster at ADDRESS (e.g. tcp://host:8786)")
    group.add_argument("--chunk-rows", type=_positive_int, default=None, metavar="N",
                       help="rows per chunk, the unit of work of one task (default: a zarr "
                       f"store's own chunks, else {DEFAULT_CHUNK_ROWS} rows)")


def on_cluster(args: argparse.Namespace) -> bool:
    """Whether the command runs on Dask; refuses Dask-only options without a cluster."""
    wanted = args.dask_workers is not None or args.scheduler is not None
    if not wanted:
        if args.chunk_rows is not None:
            _fail("--chunk-rows applies with --dask-workers N or --scheduler ADDRESS")
        data = getattr(args, "data", None)
        if data and os.path.isdir(data):
            _fail(f"--data {data}: a zarr store or folder of .npy shards is read on Dask "
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
        _fail(f"--dask-workers/--scheduler need dask ({exc}); install it with: "
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
            _fail(f"--scheduler {args.scheduler}: cannot connect ({exc})")
        try:
            yield client
        finally:
            client.close(timeout=10)
    except ClusterError as exc:
        _fail(f"{exc}; nothing was written")


def describe_cluster(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    from ..distributed._client import cluster_description

    info = cluster_description(client)
    info["kind"] = "LocalCluster" if args.dask_workers is not None else "scheduler"
    return info


def _cluster_text(info: dict[str, Any]) -> str:
    where = ("local cluster" if info["kind"] == "LocalCluster"
             else f"scheduler {info['scheduler']}")
    return (f"{where}: {_count(info['workers'], 'worker')}, "
            f"{_count(info['threads'], 'thread')}, "
            f"{info['memory_bytes'] / 2**30:.1f} GiB")


# --------------------------------------------------------------------------- data
def _open(args: argparse.Namespace, client: Any) -> tuple[Any, Any, str, Any]:
    """``(X, y, name, feature_names)`` as Dask arrays, read or made on the workers where
    the source allows it."""
    import dask.array as da

    from ..data import GENERATED, GENERATORS
    from ..distributed import storage
    from ._common import _load_data

    if args.data and os.path.isdir(args.data):
        if getattr(args, "n_samples", None) is not None or getattr(args, "noise", None):
            _fail("--n-samples and --noise apply to the generated --dataset sets, not to --data")
        X, y = storage.open_data(args.data, chunk_rows=args.chunk_rows, target=args.target)
        return X, y, args.data, None
    name = args.dataset or "moons"
    if not args.data and name in GENERATED:
        if args.target is not None:
            _fail("--target picks a column of a --data file; built-in data sets have their "
                  "target")
        n_samples = getattr(args, "n_samples", None)
        if n_samples is None:
            make = GENERATORS[name][0]
            n_samples = int(inspect.signature(make).parameters["n_samples"].default)
        X, y = storage.generate(name, n_samples, args.chunk_rows, args.seed,
                                noise=getattr(args, "noise", None),
                                dtype=getattr(args, "dtype", "float64"))
        return X, y, name, ["x1", "x2"]
    data = _load_data(args)
    rows = args.chunk_rows or min(DEFAULT_CHUNK_ROWS, data.n_samples)
    X = da.from_array(np.asarray(data.X), chunks=(rows, -1))
    y = None if data.y is None else da.from_array(np.asarray(data.y), chunks=(rows,))
    return X, y, data.name, data.feature_names


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
def _check_cluster_size(args: argparse.Namespace, sizes: list[int], chunk_rows: int,
                        name: str, info: dict[str, Any]) -> None:
    """Refuse, before any work on the cluster, a fit that cannot fit in memory: the
    parameters, their gradients and optimiser state on the driver, as single-process
    ``train`` checks them; and one step of the largest chunk (its checked inputs and
    encoded targets, and its share of the batch's activations) in one worker, against
    the smallest worker's memory limit and this host's available memory."""
    from .. import _memory

    itemsize = np.dtype(args.dtype).itemsize
    layers = ",".join(map(str, args.layers)) or "none"
    parts = _memory.training_bytes(sizes, chunk_rows, min(args.batch_size or chunk_rows,
                                                          chunk_rows), itemsize)
    driver = parts["parameters"] + _memory.network_bytes(sizes, itemsize)
    clause = _memory.too_large(driver)
    if clause is not None:
        _fail(f"--layers {layers} ({_memory.n_parameters(sizes):,} parameters): training "
              f"{clause}; use smaller layers")
    chunk = parts["data"] + parts["activations"]
    clause = _memory.too_large(chunk)
    limit = info.get("worker_memory_bytes") or 0
    if clause is None and limit and chunk > limit:
        clause = (f"needs about {_memory.format_bytes(chunk)} of memory, but a worker has "
                  f"about {_memory.format_bytes(limit)}")
    if clause is not None:
        _fail(f"{printable(name)}: one step on a chunk of {chunk_rows:,} rows with "
              f"{sizes[-1]:,} outputs {clause} (data "
              f"{_memory.format_bytes(parts['data'])}, activations "
              f"{_memory.format_bytes(parts['activations'])}); use a smaller --chunk-rows")


def train_on_cluster(args: argparse.Namespace) -> int:
    """``xpnet train`` with ``--dask-workers``/``--scheduler`` (see the module docs)."""
    from ..data import split_indices
    from ..distributed import fit as distributed_fit
    from ..distributed.engine import score_blockwise
    from ..io import save
    from ..network import MLP
    from ..train import DivergenceError
    from ._common import (
        DEFAULT_EPOCHS,
        DEFAULT_EPOCHS_2D,
        DEFAULT_LR,
        DEFAULT_LR_ADAM,
        DEFAULT_LR_REGRESSION,
        _describe_net,
    )
    from ._paths import check_paths
    from .train import (
        EXIT_DIVERGED,
        _check_per_layer_options,
        _optimizer,
        _solver_text,
        log_epoch,
    )

    for flag, given in (("--compile", args.compile), ("--plot", args.plot),
                        ("--class-weight", args.class_weight is not None)):
        if given:
            _fail(f"{flag} does not apply with --dask-workers/--scheduler")
    if args.backend != "numpy":
        _fail("with --dask-workers/--scheduler the workers compute with NumPy (or CuPy for "
              f"CuPy chunks); --backend {args.backend} does not apply")
    check_paths({"--save": ("model file", args.save)}, {})
    with cluster(args) as client:
        info = describe_cluster(client, args)
        X, y, name, feature_names = _open(args, client)
        if y is None:
            _fail(f"{printable(name)}: no target column to train on")
        m, n_features = int(X.shape[0]), int(X.shape[1])
        generated = not args.data and (args.dataset or "moons") in ("moons", "xor", "circles",
                                                                    "spirals", "flower")
        if args.epochs is None:
            args.epochs = DEFAULT_EPOCHS_2D if generated else DEFAULT_EPOCHS
        y_enc, task, output, classes = _encode_target(y, args.output, client)
        classification = task != "regression"
        if args.lr is None:
            if args.solver == "adam":
                args.lr = DEFAULT_LR_ADAM
            else:
                args.lr = DEFAULT_LR if classification else DEFAULT_LR_REGRESSION
        train_rows, test_rows = split_indices(m, args.test_fraction, args.seed)
        # sorted: each chunk keeps its own rows (no shuffle of data between workers)
        train_rows, test_rows = np.sort(train_rows), np.sort(test_rows)
        X_train, y_train = X[train_rows], y_enc[train_rows]
        X_test, y_test = X[test_rows], y_enc[test_rows]
        scaler = None
        if args.standardize:
            X_train, scaler = _standardize(X_train, client)
            X_test = (X_test.astype(np.float64) - scaler.mean) / scaler.scale
        y_scaler = None
        if not classification and args.standardize and output != "exp":
            y_train, y_scaler = _standardize(y_train[:, None], client)
            y_train = y_train[:, 0]
            y_test = (y_test[:, None] - y_scaler.mean) / y_scaler.scale
            y_test = y_test[:, 0]
        n_out = len(classes) if output == "softmax" and classes else 1
        sizes = [n_features, *args.layers, n_out]
        _check_per_layer_options(args)
        _check_cluster_size(args, sizes, max(X_train.chunks[0], default=0), name, info)
        net = MLP(sizes, activation=args.activation, output=output, dtype=args.dtype,
                  seed=args.seed, alpha=args.alpha, dropout=args.dropout)
        report: dict[str, Any] = {}
        try:
            history = distributed_fit(
                net, X_train, y_train, client=client, epochs=args.epochs, lr=args.lr,
                batch_size=args.batch_size, optimizer=_optimizer(args),
                early_stopping=args.early_stopping, n_iter_no_change=args.n_iter_no_change,
                tol=args.tol, threads=args.threads, report=report,
                callback=lambda epoch, loss: log_epoch(args.log_every, epoch + 1, args.epochs,
                                                       loss),
            )
        except DivergenceError as exc:
            sys.stderr.write(f"xpnet: error: training diverged at epoch {exc.epoch}: "
                             f"{exc.reason}; try a smaller --lr (got {args.lr:g}); nothing "
                             "was written\n")
            return EXIT_DIVERGED
        y_mean = float(y_scaler.mean[0]) if y_scaler else 0.0
        y_scale = float(y_scaler.scale[0]) if y_scaler else 1.0
        train_scores = score_blockwise(client, net, X_train, y_train, task, y_mean, y_scale)
        test_scores = (score_blockwise(client, net, X_test, y_test, task, y_mean, y_scale)
                       if len(test_rows) else None)
    steps = report["overhead"]
    if args.save:
        save(net, args.save, standardize=scaler, target_standardize=y_scaler,
             classes=classes, feature_names=feature_names, target_name=None, task=task,
             dataset=name, split={"test_fraction": args.test_fraction, "seed": args.seed})
    m_train = len(train_rows)
    samples_per_second = history.epochs * m_train / max(history.seconds, 1e-12)
    if args.json:
        _emit_json({
            "command": "train",
            "xpnet_version": __version__,
            "data": {"name": name, "rows": m, "features": n_features, "task": task,
                     "classes": classes, "train_rows": m_train, "test_rows": len(test_rows),
                     "standardized": bool(args.standardize)},
            "network": {"layer_sizes": list(net.layer_sizes),
                        "activations": list(net.activations), "output": net.output,
                        "loss": net.loss_name, "parameters": net.n_params},
            "backend": {"name": "numpy", "device": "dask workers", "dtype": net.dtype},
            "cluster": info,
            "training": {"epochs": history.epochs, "lr": args.lr,
                         "batch_size": args.batch_size, "alpha": args.alpha,
                         "dropout": list(net.dropout),
                         "seed": args.seed, "solver": args.solver,
                         "early_stopping": args.early_stopping,
                         "seconds": history.seconds, "samples_per_second": samples_per_second,
                         "loss_curve": history.loss, "chunks": report["chunks"],
                         "steps": steps["steps"], "step_seconds_median": steps["step"],
                         "compute_seconds_median": steps["compute"],
                         "overhead_seconds_median": steps["overhead"]},
            "loss": history.loss[-1],
            "interrupted": history.interrupted,
            "train": train_scores,
            "test": test_scores,
            "model": args.save,
            "plot": None,
        })
        return 0
    if args.quiet:
        return 0
    kinds = (f"{len(classes)} classes ({', '.join(map(printable, classes[:10]))}"
             f"{', ...' if len(classes) > 10 else ''})" if classes else "regression target")
    split = (f"train {m_train} / test {len(test_rows)} rows (by row index, unstratified)"
             if len(test_rows) else f"all {m_train} rows for training (no test split)")
    batch = "full batch" if args.batch_size is None else f"batches of {args.batch_size}"
    lines = [
        f"data      {printable(name)}: {m} rows, {n_features} features, {kinds}",
        f"          {split}, {report['chunks']} chunks, features "
        + ("standardised (training-split statistics)" if scaler else "as given"),
        f"cluster   {_cluster_text(info)}",
        f"network   {_describe_net(net)}",
        f"backend   numpy on the Dask workers, {net.dtype}",
        f"training  {history.epochs} epochs, {batch}, {_solver_text(args)}, "
        f"alpha {args.alpha:g}{_dropout_text(net)}, seed {args.seed}",
        f"loss      {_fmt(history.loss[-1])} (last epoch)   train {_fmt(train_scores['loss'])}"
        + (f"   test {_fmt(test_scores['loss'])}" if test_scores else ""),
    ]
    lines += _score_lines(classification, train_scores, test_scores)
    lines.append(f"time      {history.seconds:.2f} s, {samples_per_second:,.0f} samples/s "
                 f"({history.epochs} epochs x {m_train} rows)")
    lines.append(f"steps     {steps['steps']} steps, median {1000 * steps['step']:.1f} ms: "
                 f"workers' compute {1000 * steps['compute']:.1f} ms, overhead "
                 f"{1000 * steps['overhead']:.1f} ms")
    if args.save:
        lines.append(f"saved     {printable(args.save)}")
    print("\n".join(lines))
    return 0


# --------------------------------------------------------------------------- models
def _model_data(args: argparse.Namespace, net: Any, client: Any, evaluate: bool
                ) -> tuple[Any, Any, str]:
    """``(X standardised as the model was, y or None, name)`` as Dask arrays."""
    import dask.array as da

    from ..data import Standardizer
    from .models import _load_for_model

    if args.data and not os.path.isdir(args.data):  # a file: the model picks its columns
        data = _load_for_model(args, net, evaluate=evaluate)
        rows = args.chunk_rows or min(DEFAULT_CHUNK_ROWS, data.n_samples)
        X = da.from_array(np.asarray(data.X), chunks=(rows, -1))
        y = None if data.y is None else da.from_array(np.asarray(data.y), chunks=(rows,))
        name = data.name
    elif args.data:
        from ..distributed import storage

        X, y = storage.open_data(args.data, chunk_rows=args.chunk_rows, target=args.target,
                                 require_target=evaluate)
        name = args.data
    else:
        X, y, name, _ = _open(args, client)
    n_in = net.layer_sizes[0]
    if X.shape[1] != n_in:
        _fail(f"{printable(name)} has {X.shape[1]} feature columns but the model expects "
              f"{n_in} (feature count does not match the model)")
    stats = net.metadata.get("standardize")
    if stats:
        scaler = Standardizer.from_dict(stats)
        X = (X.astype(np.float64) - scaler.mean) / scaler.scale
    return X, y, name


def _encode_labels(block: np.ndarray, classes: list[Any]) -> np.ndarray:
    from ..data import encode_labels

    return encode_labels(block, classes)


def evaluate_on_cluster(args: argparse.Namespace, net: Any) -> int:
    """``xpnet evaluate`` with ``--dask-workers``/``--scheduler``: scores summed chunk by
    chunk on the workers."""
    from ..distributed.engine import score_blockwise
    from .models import _model_summary, _target_stats

    if args.split != "all":
        _fail(f"--split {args.split}: the recorded split is drawn from all labels on one "
              "machine; with --dask-workers/--scheduler use --split all")
    meta = net.metadata
    task = meta.get("task") or {"sigmoid": "binary", "softmax": "multiclass"}.get(
        net.output, "regression")
    with cluster(args) as client:
        X, y, name = _model_data(args, net, client, evaluate=True)
        if y is None:
            _fail(f"{printable(name)} has no target column to evaluate against")
        if task == "regression":
            if y.dtype.kind not in "biuf":
                _fail(f"{printable(name)}: the target must be numeric for a regression model")
            y_mean, y_scale = _target_stats(net)
            y = (y.astype(np.float64) - y_mean) / y_scale
        else:
            y_mean, y_scale = 0.0, 1.0
            classes = meta.get("classes") or list(range(max(net.layer_sizes[-1], 2)))
            y = y.map_blocks(_encode_labels, classes, dtype=np.int64)
        result = score_blockwise(client, net, X, y, task, y_mean, y_scale)
        info = describe_cluster(client, args)
    if args.json:
        _emit_json({"command": "evaluate", "model": args.model, "data": name,
                    "split": args.split, "task": task, "cluster": info, **result})
        return 0
    lines = [f"model     {_model_summary(net, args.model)}",
             f"data      {printable(name)}: {result['rows']} rows ({args.split})",
             f"cluster   {_cluster_text(info)}",
             *_evaluation_lines(result, task)]
    if not args.quiet:
        print("\n".join(lines))
    return 0


def predict_on_cluster(args: argparse.Namespace, net: Any) -> int:
    """``xpnet predict`` with ``--dask-workers``/``--scheduler``: the outputs are computed
    block-wise on the workers and the CSV written chunk by chunk, in row order (one
    chunk's predictions on the driver at a time)."""
    import csv

    from .._files import atomic_write
    from ..metrics import predicted_classes
    from ._common import terminal_safe
    from .models import _target_stats

    if net.output == "sigmoid" and net.layer_sizes[-1] > 1:
        _fail("multi-label models are not supported by 'xpnet predict'")
    classes = net.metadata.get("classes")
    regression = net.output in ("identity", "exp")
    y_mean, y_scale = _target_stats(net)
    with cluster(args) as client:
        X, y, name = _model_data(args, net, client, evaluate=False)
        outputs = net.forward(X)  # lazy, block-wise on the workers
        blocks = outputs.to_delayed().ravel()
        y_blocks = [None] * len(blocks) if y is None else list(
            y.rechunk((outputs.chunks[0],)).to_delayed().ravel())
        header: list[str] = ["row"] + ([] if y is None else ["true_target"])
        if regression:
            header += (["prediction"] if net.layer_sizes[-1] == 1 else
                       [f"prediction_{j + 1}" for j in range(net.layer_sizes[-1])])
        else:
            labels = classes if classes is not None else list(range(max(2, net.layer_sizes[-1])))
            header += ["prediction"] + [f"p_{label}" for label in labels]
        json_rows: list[Any] = []
        json_probs: list[Any] = []
        output = (atomic_write(args.out, "w", newline="") if args.out
                  else contextlib.nullcontext(terminal_safe(sys.stdout)))
        row_number = 0
        with output as handle:
            writer = csv.writer(handle, lineterminator="\n") if (args.out or not args.json) \
                else None
            if writer is not None:
                writer.writerow(header)
            for block, y_block in zip(blocks, y_blocks):
                A, true = client.compute([block, y_block], sync=True)
                A = np.asarray(A, dtype=np.float64)
                for i in range(A.shape[0]):
                    row_number += 1
                    row: list[Any] = [row_number]
                    if true is not None:
                        row.append(cell_text(np.asarray(true)[i]))
                    if regression:
                        values = A[i] * y_scale + y_mean
                        row += [f"{v:.10g}" for v in values]
                        if args.json:  # without --json nothing is kept on the driver
                            json_rows.append(values[0] if len(values) == 1 else list(values))
                    else:
                        probs = ([1.0 - A[i, 0], A[i, 0]] if A.shape[1] == 1
                                 else list(A[i]))
                        label = labels[int(predicted_classes(A[i:i + 1])[0])]
                        row += [label] + [f"{p:.6f}" for p in probs]
                        if args.json:
                            json_rows.append(label)
                            json_probs.append(probs)
                    if writer is not None:
                        writer.writerow(row)
    if args.json:
        _emit_json({"command": "predict", "model": args.model, "data": name,
                    "rows": row_number, "classes": classes,
                    "predictions": [float(v) if isinstance(v, np.floating) else v
                                    for v in json_rows],
                    "probabilities": None if regression else json_probs, "out": args.out})
    elif args.out and not args.quiet:
        print(f"wrote {row_number} predictions to {printable(args.out)}")
    return 0
