"""``xpnet evaluate`` and ``xpnet predict``: a saved model on data."""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from ..backends import to_numpy
from ._common import (
    cell_text,
    check_backend,
    describe_net,
    emit_json,
    evaluation_lines,
    fail,
    load_data,
    parse_device,
    plural,
    printable,
    read_file,
    terminal_safe,
)
from ._paths import check_paths
from .distributed import (
    chunked,
    cluster,
    cluster_text,
    describe_cluster,
    on_cluster,
    open_on_cluster,
)


def _load_model(args: argparse.Namespace) -> Any:
    from ..io import load

    device = parse_device(args.device)
    check_backend(args.backend, device)
    return load(args.model, backend=args.backend, device=device)


def _default_seed(args: argparse.Namespace, meta: dict[str, Any]) -> None:
    """A generated --dataset is re-created with the training run's seed unless --seed says."""
    if args.seed is None:
        split = meta.get("split") or {}
        args.seed = split.get("seed") or 0


def _stderr(kind: str, message: str) -> None:
    sys.stderr.write(f"xpnet: {kind}: {printable(message)}\n")  # may quote a file's names


def _names_text(names: Sequence[str], limit: int = 6) -> str:
    # repr() keeps control characters of names read from files from reaching the terminal
    shown = ", ".join(map(repr, names[:limit]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _placeholders(names: Sequence[str]) -> bool:
    """``x1, x2, ...``: what xpnet calls columns that have no names (``.npz``/``.npy``
    files, the generated 2-D sets), so a model trained on them knows positions only."""
    return list(names) == [f"x{i + 1}" for i in range(len(names))]


def _model_features(net: Any) -> list[str] | None:
    """The model's feature names when they can pick columns (recorded and distinct)."""
    names = net.metadata.get("feature_names")
    if not names or len(set(names)) != len(names):
        return None
    return list(names)


def _target_absent(exc: Exception) -> bool:
    """Whether a :class:`DataError` says that the target column asked for is not there."""
    return "not found" in str(exc) or "out of range" in str(exc)


def _load_for_model(args: argparse.Namespace, net: Any, evaluate: bool) -> Any:
    """The data of ``--data``/``--dataset`` with the model's feature columns, in its order.

    A file with a header (CSV) gives the model's columns by name, wherever they stand;
    other columns but the target are ignored (listed on stderr) and a missing one is an
    error. ``.npz``/``.npy`` files have no column names: their columns count by position,
    said once on stderr. A model without feature names, or trained on unnamed columns
    (``x1, x2, ...``) that the file does not name, uses positions as before.

    The target: ``--target``, else the model's target column. ``evaluate`` never scores
    another column in its place: a CSV without it is an error naming the model's target
    and the file's columns. Only a model that knows no target name of its own (trained
    on unnamed columns, or saved without one) takes the file's last column, as training
    does. ``predict`` reads features only when the target column is absent.
    """
    from ..data import DataError, MissingColumnsError

    meta = net.metadata
    names = _model_features(net)
    if not getattr(args, "data", None):  # a built-in data set, whose columns xpnet named
        data = load_data(args)
        if names and names != data.feature_names:
            if set(names) <= set(data.feature_names):
                data.X = data.X[:, [data.feature_names.index(n) for n in names]]
                data.feature_names = names
            elif not _placeholders(names) and data.n_features == len(names):
                _stderr("warning", f"data set {data.name!r} names its columns "
                        f"{_names_text(data.feature_names)}, not as the model's "
                        f"{_names_text(names)}; they are taken by position")
        return data

    model_target = meta.get("target_name")
    target = args.target if args.target is not None else model_target
    n_features = None if evaluate else net.layer_sizes[0]
    # trained on unnamed columns, the model's target name ('class', 'y') is xpnet's own
    trained_names = meta.get("feature_names")
    binding = model_target is not None and not (trained_names and _placeholders(trained_names))

    def read(features: list[str] | None, target: Any) -> Any:
        return read_file(args, target=target, n_features=n_features, features=features,
                         keep_target_text=not evaluate)

    def load(features: list[str] | None) -> Any:
        try:
            return read(features, target)
        except MissingColumnsError:
            raise
        except DataError as exc:
            # the model's target (not one the user named) is not in this file
            if args.target is not None or target is None or not _target_absent(exc):
                raise
            absent = exc
        try:
            data = read(features, None)  # features only (predict), or the file's last column
        except DataError:
            if evaluate and binding:
                raise absent from None  # (the file's last column is no target either)
            raise
        if evaluate and binding and data.named_columns:  # never another column in its place
            _missing_target(model_target, data, features)
        return data

    try:
        data = load(names)
    except MissingColumnsError:
        if names is None or not _placeholders(names):
            raise
        data = load(None)  # trained on unnamed columns: this file's are taken by position
    if (names and not data.named_columns and not _placeholders(names)
            and data.n_features == len(names)):  # (else _prepare refuses the count)
        _stderr("warning", f"{data.name} has no column names: its columns are taken by "
                f"position as the model's {_names_text(names)}")
    if data.ignored_columns and not args.quiet:
        _stderr("note", f"{data.name}: ignoring column"
                f"{'s' if len(data.ignored_columns) > 1 else ''} the model does not use: "
                f"{_names_text(data.ignored_columns)}")
    return data


def _missing_target(model_target: str, data: Any, features: list[str] | None) -> NoReturn:
    """Fail: the CSV lacks the model's target column; name it and the columns that could
    be the target (``data``: the file read without a target, or with its last column)."""
    others = [*data.ignored_columns, *([data.target_name] if data.y is not None else [])]
    if features is None:
        others = [*data.feature_names, *others]
    where = ("its columns are" if features is None
             else f"its columns besides the model's {plural(len(features), 'feature')} are")
    columns = f"{where} {_names_text(others, limit=8)}" if others else (
        "it holds only the model's features")
    fail(f"{data.name} has no target column {model_target!r} (the model's target) to "
         f"evaluate against; {columns}; name the target column with --target")


def _prepare(net: Any, data: Any) -> np.ndarray:
    from ..data import Standardizer

    n_in = net.layer_sizes[0]
    X = data.X
    if X.shape[1] != n_in:
        name = data.target_name
        target = ("" if data.y is None else " besides the target" if not name
                  else f" besides the target (column {name})" if name.isdigit()  # .npy
                  else f" besides the target array {name!r}" if not data.named_columns
                  else f" besides the target column {name!r}")
        fail(f"{data.name} has {X.shape[1]} feature column{'s' if X.shape[1] != 1 else ''}"
             f"{target} but the model expects {n_in} (feature count does not match the model)")
    stats = net.metadata.get("standardize")
    return Standardizer.from_dict(stats).transform(X) if stats else X


def _target_stats(net: Any) -> tuple[float, float]:
    stats = net.metadata.get("target_standardize")
    return (float(stats["mean"][0]), float(stats["scale"][0])) if stats else (0.0, 1.0)


def _model_summary(net: Any, path: str) -> str:
    trained = net.metadata["header"]["trained_on"]
    return (f"{printable(path)}: {describe_net(net)}; trained on "
            f"{printable(trained['backend'])} ({printable(trained['device'])}), {net.dtype}; "
            f"running on {net.backend}")


def _encode_known(y: np.ndarray, classes: list[Any], source: str) -> np.ndarray:
    """The class indices of the labels ``y``; labels the model never saw are an error
    that counts their rows and shows a few (never a silent miss in the accuracy)."""
    from ..data import DataError, encode_labels

    try:
        return encode_labels(y, classes)
    except DataError:
        pass
    values, counts = np.unique(y, return_counts=True)
    unseen, rows = [], 0
    for value, count in zip(values, counts, strict=True):
        try:
            encode_labels(np.asarray([value]), classes)  # the same rule: 1.0 is class 1
        except DataError:
            unseen.append(value)
            rows += int(count)
    fail(f"{plural(rows, 'row')} of {source} {'has a label' if rows == 1 else 'have labels'} "
         f"the model never saw ({_labels_text(unseen, limit=5)}); the model's classes are "
         f"{_labels_text(classes, limit=10)}; score rows of these classes only, or name the "
         "right target column with --target")


def _labels_text(labels: Sequence[Any], limit: int) -> str:
    """Class labels for a message: numbers as written (bounded width), text quoted."""
    shown = [cell_text(v) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
             else repr(str(v)) for v in labels[:limit]]
    return ", ".join(shown) + (f", ... ({len(labels)} in all)" if len(labels) > limit else "")


def _model_task(net: Any) -> str:
    return net.metadata.get("task") or {"sigmoid": "binary", "softmax": "multiclass"}.get(
        net.output, "regression")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..data import split_indices
    from ..metrics import NonFiniteOutputError, score

    net = _load_model(args)
    meta = net.metadata
    _default_seed(args, meta)
    if on_cluster(args):  # --dask-workers/--scheduler: scored chunk by chunk on Dask
        return _evaluation_report(args, net, *_evaluate_on_cluster(args, net))
    data = _load_for_model(args, net, evaluate=True)
    source = data.name
    if data.y is None:
        fail(f"{source} has no target column to evaluate against")
    X = _prepare(net, data)
    task = _model_task(net)
    classes = meta.get("classes")
    if classes is None and task != "regression":
        classes = list(range(max(net.layer_sizes[-1], 2)))
    y, y_mean, y_scale = _scored_target(net, data.y, task, source,
                                        lambda y: _encode_known(y, classes, source))
    rows = np.arange(data.n_samples)
    if args.split != "all":
        split = meta.get("split")
        if not split:
            fail("the model file records no train/test split; use --split all")
        train_rows, test_rows = split_indices(
            data.n_samples, split["test_fraction"], split["seed"],
            stratify=y if task != "regression" else None, labels=classes,
        )
        rows = train_rows if args.split == "train" else test_rows
        if not len(rows):
            fail("the model was trained without a test split (test fraction 0)")
    try:
        result = score(net, X[rows], y[rows], task, y_mean, y_scale)
    except NonFiniteOutputError as exc:
        fail(f"{args.model} on {source}: {exc}")
    return _evaluation_report(args, net, source, task, result)


def _scored_target(net: Any, y: Any, task: str, source: str, encode: Any
                   ) -> tuple[Any, float, float]:
    """``(y as scored, mean, scale)``: a regression target standardised as in training,
    class labels encoded by ``encode``."""
    if task != "regression":
        return encode(y), 0.0, 1.0
    if y.dtype.kind not in "biuf":
        fail(f"{source}: the target must be numeric for a regression model")
    y_mean, y_scale = _target_stats(net)
    return (y.astype(np.float64) - y_mean) / y_scale, y_mean, y_scale


def _evaluation_report(args: argparse.Namespace, net: Any, source: str, task: str,
                       result: dict[str, Any], info: dict[str, Any] | None = None) -> int:
    where = {} if info is None else {"cluster": info}
    if args.json:
        emit_json({"command": "evaluate", "model": args.model, "data": source,
                  "split": args.split, "task": task, **where, **result})
    elif not args.quiet:
        print("\n".join([f"model     {_model_summary(net, args.model)}",
                         f"data      {printable(source)}: {result['rows']} rows ({args.split})",
                         *([f"cluster   {cluster_text(info)}"] if info else []),
                         *evaluation_lines(result, task)]))
    return 0


def _columns(net: Any, true_name: str | None) -> tuple[list[str], list[Any] | None]:
    """``xpnet predict``'s CSV header and the model's class labels (None: regression)."""
    n_out = net.layer_sizes[-1]
    header = ["row"] + ([] if true_name is None else [f"true_{true_name}"])
    if net.output in ("identity", "exp"):
        return header + (["prediction"] if n_out == 1 else
                         [f"prediction_{j + 1}" for j in range(n_out)]), None
    classes = net.metadata.get("classes")
    labels = classes if classes is not None else list(
        range(2 if net.output == "sigmoid" and n_out == 1 else n_out))
    return header + ["prediction"] + [f"p_{label}" for label in labels], labels


def _predictions(A: np.ndarray, net: Any, labels: list[Any] | None
                 ) -> tuple[list[Any], list[Any] | None]:
    """``(predictions, probabilities or None)`` of the network's outputs ``A`` (float64):
    values on the target's scale, or labels and the probability of each class."""
    from ..metrics import predicted_classes

    if labels is None:
        y_mean, y_scale = _target_stats(net)
        return [row[0] if len(row) == 1 else row for row in (A * y_scale + y_mean).tolist()], None
    probs = (np.column_stack([1.0 - A[:, 0], A[:, 0]])
             if net.output == "sigmoid" and A.shape[1] == 1 else A)
    return [labels[i] for i in predicted_classes(A)], probs.tolist()


def _csv_row(number: int, true: Any, prediction: Any, probs: list[float] | None) -> list[Any]:
    row = [number] + ([] if true is None else [true])
    if probs is None:
        values = prediction if isinstance(prediction, list) else [prediction]
        return row + [f"{v:.10g}" for v in values]
    return row + [prediction] + [f"{p:.6f}" for p in probs]


def _predictions_file(args: argparse.Namespace) -> Any:
    """Where the CSV goes. A file is written atomically (temp file, fsync, rename): killed
    mid-way, the old predictions file stays whole. Labels are data: a file or a pipe gets
    them exactly (CSV quoting keeps a comma or a newline inside its cell); a terminal gets
    control characters escaped, as ls does."""
    from .._files import atomic_write

    return (atomic_write(args.out, "w", newline="") if args.out
            else contextlib.nullcontext(terminal_safe(sys.stdout)))


def cmd_predict(args: argparse.Namespace) -> int:
    from ..metrics import NonFiniteOutputError, check_finite_outputs

    check_paths({"--out": ("predictions file", args.out)},
                {"MODEL": ("model file", args.model), "--data": ("data file", args.data)})
    net = _load_model(args)
    _default_seed(args, net.metadata)
    if on_cluster(args):  # --dask-workers/--scheduler: predicted chunk by chunk on Dask
        return _predict_on_cluster(args, net)
    data = _load_for_model(args, net, evaluate=False)
    X = _prepare(net, data)
    with np.errstate(over="ignore", invalid="ignore"):  # said by the check below
        outputs = to_numpy(net.predict_proba(X)).astype(np.float64)
        y_mean, y_scale = _target_stats(net)
        values = outputs * y_scale + y_mean
    try:
        check_finite_outputs(values)  # no NaN labelled as class 0, no 'nan' predictions
    except NonFiniteOutputError as exc:
        fail(f"{args.model} on {data.name}: {exc}; no predictions were written")
    if net.output == "sigmoid" and outputs.shape[1] > 1:
        fail("multi-label models are not supported by 'xpnet predict'")
    header, labels = _columns(net, None if data.y is None else data.target_name or "target")
    predictions, probabilities = _predictions(outputs, net, labels)
    # the true target as it was in the file (a CSV's cells), never re-typed
    true_text = (data.y_text if data.y_text is not None
                 else None if data.y is None else [cell_text(v) for v in data.y])
    if args.json:
        emit_json({"command": "predict", "model": args.model, "data": data.name,
                  "rows": len(predictions), "classes": net.metadata.get("classes"),
                  "predictions": predictions, "probabilities": probabilities,
                  "out": args.out})
        if not args.out:
            return 0
    with _predictions_file(args) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for i, prediction in enumerate(predictions):
            writer.writerow(_csv_row(i + 1, None if true_text is None else true_text[i],
                                     prediction, None if probabilities is None
                                     else probabilities[i]))
    if args.out and not args.quiet and not args.json:
        print(f"wrote {len(predictions)} predictions to {printable(args.out)}")
    return 0


# --------------------------------------------------------------------------- on Dask
def _model_data(args: argparse.Namespace, net: Any, evaluate: bool) -> tuple[Any, Any, str]:
    """``(X standardised as the model was, y or None, name)`` as Dask arrays."""
    from ..data import Standardizer

    if args.data and not os.path.isdir(args.data):  # a file: the model picks its columns
        data = _load_for_model(args, net, evaluate=evaluate)
        X, y = chunked(args, data)
        name = data.name
    elif args.data:
        from ..distributed import storage

        X, y = storage.open_data(args.data, chunk_rows=args.chunk_rows, target=args.target,
                                 require_target=evaluate)
        name = args.data
    else:
        X, y, name, _ = open_on_cluster(args)
    n_in = net.layer_sizes[0]
    if X.shape[1] != n_in:
        fail(f"{printable(name)} has {X.shape[1]} feature columns but the model expects "
             f"{n_in} (feature count does not match the model)")
    stats = net.metadata.get("standardize")
    if stats:
        scaler = Standardizer.from_dict(stats)
        X = (X.astype(np.float64) - scaler.mean) / scaler.scale
    return X, y, name


def _evaluate_on_cluster(args: argparse.Namespace, net: Any
                         ) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """``(data name, task, scores, cluster)``: scores summed chunk by chunk on the
    workers."""
    from ..data import encode_labels
    from ..distributed.engine import score_blockwise

    if args.split != "all":
        fail(f"--split {args.split}: the recorded split is drawn from all labels on one "
             "machine; with --dask-workers/--scheduler use --split all")
    task = _model_task(net)
    with cluster(args) as client:
        X, y, name = _model_data(args, net, evaluate=True)
        if y is None:
            fail(f"{printable(name)} has no target column to evaluate against")
        classes = net.metadata.get("classes") or list(range(max(net.layer_sizes[-1], 2)))
        y, y_mean, y_scale = _scored_target(
            net, y, task, printable(name),
            lambda y: y.map_blocks(encode_labels, classes, dtype=np.int64))
        result = score_blockwise(client, net, X, y, task, y_mean, y_scale)
        return name, task, result, describe_cluster(client, args)


def _predict_on_cluster(args: argparse.Namespace, net: Any) -> int:
    """``xpnet predict`` on Dask: the outputs are computed block-wise on the workers and
    the CSV written chunk by chunk, in row order (one chunk's predictions on the driver at
    a time; without --json nothing is kept there)."""
    if net.output == "sigmoid" and net.layer_sizes[-1] > 1:
        fail("multi-label models are not supported by 'xpnet predict'")
    json_rows: list[Any] = []
    json_probs: list[Any] = []
    row_number = 0
    with cluster(args) as client:
        X, y, name = _model_data(args, net, evaluate=False)
        outputs = net.forward(X)  # lazy, block-wise on the workers
        blocks = outputs.to_delayed().ravel()
        y_blocks = [None] * len(blocks) if y is None else list(
            y.rechunk((outputs.chunks[0],)).to_delayed().ravel())
        header, labels = _columns(net, None if y is None else "target")
        with _predictions_file(args) as handle:
            writer = csv.writer(handle, lineterminator="\n") if (args.out or not args.json) \
                else None
            if writer is not None:
                writer.writerow(header)
            for block, y_block in zip(blocks, y_blocks):
                A, true = client.compute([block, y_block], sync=True)
                predictions, probs = _predictions(np.asarray(A, dtype=np.float64), net, labels)
                for i, prediction in enumerate(predictions):
                    row_number += 1
                    if writer is not None:
                        writer.writerow(_csv_row(
                            row_number, None if true is None else cell_text(np.asarray(true)[i]),
                            prediction, None if probs is None else probs[i]))
                if args.json:
                    json_rows += predictions
                    json_probs += probs or []
    if args.json:
        emit_json({"command": "predict", "model": args.model, "data": name,
                  "rows": row_number, "classes": net.metadata.get("classes"),
                  "predictions": json_rows,
                  "probabilities": None if labels is None else json_probs, "out": args.out})
    elif args.out and not args.quiet:
        print(f"wrote {row_number} predictions to {printable(args.out)}")
    return 0
