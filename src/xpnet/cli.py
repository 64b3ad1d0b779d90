"""The ``xpnet`` command line: train, evaluate, predict, backends, gradcheck, explain.

Argument parsing and printing only: the work is done by the library (``xpnet.data``,
``xpnet.io``, ``xpnet.metrics``, ``xpnet.gradcheck``, ``xpnet.explain``). Every error
is one line on stderr, ``xpnet: error: ...``, with exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from . import __version__
from .backends import BACKEND_NAMES, BackendUnavailableError, backend_info, get_backend, to_numpy

EXIT_ERROR = 2
EXIT_CHECK_FAILED = 1

# The lesson's network on two moons: 2-8-1 sigmoid, full batch, lr 3. Larger data sets
# (digits, user files) get fewer epochs by default so that a first run stays quick.
DEFAULT_HIDDEN = "8"
DEFAULT_EPOCHS_2D = 3000
DEFAULT_EPOCHS = 500
DEFAULT_LR = 3.0
DEFAULT_LR_REGRESSION = 0.3  # squared error with a linear output diverges at lr 3
DEFAULT_LR_ADAM = 0.01  # Adam's steps are ~lr per weight, whatever the gradient's scale


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# --------------------------------------------------------------------------- helpers
def _fail(message: str) -> NoReturn:
    raise CLIError(message)


def _sizes(text: str, what: str, allow_empty: bool) -> list[int]:
    text = text.strip()
    if allow_empty and text.lower() in ("", "none", "0"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"{what} must be positive integers separated by commas, like 16,16; got {text!r}"
        )
    return sizes


def _hidden_sizes(text: str) -> list[int]:
    return _sizes(text, "hidden layer sizes", allow_empty=True)


def _layer_sizes(text: str) -> list[int]:
    sizes = _sizes(text, "layer sizes", allow_empty=False)
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError(
            f"layer sizes need at least an input and an output size, like 2,4,1; got {text!r}"
        )
    return sizes


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1); got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0; got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; got {text!r}")
    return value


def _activations(text: str) -> str | list[str]:
    names = [part.strip() for part in text.split(",")]
    return names[0] if len(names) == 1 else names


def _device(text: str | None) -> Any:
    """``--device 1`` means CUDA device 1; other values pass through (``cpu``, ``cuda:0``)."""
    if text is not None and text.isdigit():
        return int(text)
    return text


def _backend(name: str, device: Any) -> None:
    """Fail early, before any data is loaded, when the backend cannot be used here."""
    try:
        get_backend(name, device)
    except BackendUnavailableError as exc:
        message = str(exc)
        if name == "cupy" and "not installed" in message:
            message += (
                "; CuPy also needs an NVIDIA GPU with a CUDA driver. Without one, use "
                "--backend numpy or --backend torch"
            )
        _fail(message)


def _emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _device_name(net: Any) -> str:
    return "default device" if net.device is None else str(net.device)


def _fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def _describe_net(net: Any) -> str:
    acts = ", ".join(net.activations) if net.activations else "none"
    return (
        f"{'-'.join(map(str, net.layer_sizes))}  hidden {acts}, output {net.output}, "
        f"{net.loss_name.replace('_', ' ')}, {net.n_params} parameters"
    )


def _check_writable(path: str, what: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        _fail(f"cannot write {what} {path!r}: folder {folder!r} does not exist")
    if os.path.isdir(path):
        _fail(f"cannot write {what} {path!r}: it is a directory")
    if not os.access(folder, os.W_OK):
        _fail(f"cannot write {what} {path!r}: folder {folder!r} is not writable")


def _load_data(args: argparse.Namespace, n_features: int | None = None,
               default_target: str | None = None) -> Any:
    """The data set of ``--dataset``/``--data`` (``--target`` picks a file's column)."""
    from .data import DataError, load_dataset, load_file

    if getattr(args, "data", None):
        if getattr(args, "n_samples", None) is not None or getattr(args, "noise", None) is not None:
            _fail("--n-samples and --noise apply to the generated --dataset sets, not to --data")
        target = args.target
        if target is None and default_target is not None:
            try:  # the model's target column, when the file has it
                return load_file(args.data, target=default_target, n_features=n_features)
            except DataError as exc:
                if "not found" not in str(exc):
                    raise
        return load_file(args.data, target=target, n_features=n_features)
    if args.target is not None:
        _fail("--target picks a column of a --data file; built-in data sets have their target")
    return load_dataset(
        args.dataset or "moons",
        n_samples=getattr(args, "n_samples", None),
        noise=getattr(args, "noise", None),
        seed=args.seed,
    )


# --------------------------------------------------------------------------- train
def _optimizer(args: argparse.Namespace) -> Any:
    """The optimiser named by --solver, with its options."""
    from .optim import get_optimizer

    if args.solver == "adam":
        if args.momentum or args.nesterov or args.lr_schedule != "constant":
            _fail("--momentum, --nesterov and --lr-schedule apply to --solver sgd only")
        return get_optimizer("adam", args.lr)
    if args.momentum > 1:
        _fail(f"--momentum must lie in [0, 1]; got {args.momentum:g}")
    if args.nesterov and not args.momentum:
        _fail("--nesterov needs --momentum > 0")
    return get_optimizer("sgd", args.lr, momentum=args.momentum, nesterov=args.nesterov,
                         schedule=args.lr_schedule)


def _solver_text(args: argparse.Namespace) -> str:
    text = f"lr {args.lr:g}"
    if args.solver == "adam":
        return f"adam, {text}"
    if args.momentum:
        text += f", {'nesterov ' if args.nesterov else ''}momentum {args.momentum:g}"
    if args.lr_schedule != "constant":
        text += f" ({args.lr_schedule})"
    return text + (", early stopping" if args.early_stopping else "")


def _cmd_train(args: argparse.Namespace) -> int:
    from .data import GENERATED, Standardizer, encode_target, split_indices
    from .io import save
    from .metrics import score
    from .network import MLP
    from .progress import EpochProgress

    device = _device(args.device)
    _backend(args.backend, device)
    if args.save:
        _check_writable(args.save, "model file")
    if args.plot:
        from .plotting import check_plot_path

        _check_writable(args.plot, "plot")
        check_plot_path(args.plot)  # matplotlib installed, file type known: before training

    data = _load_data(args)
    if data.y is None:
        _fail(f"{data.name}: no target column to train on")
    if args.epochs is None:
        generated = args.data is None and (args.dataset or "moons") in GENERATED
        args.epochs = DEFAULT_EPOCHS_2D if generated else DEFAULT_EPOCHS
    target = encode_target(data.y, args.output)
    classification = target.task != "regression"
    if args.lr is None:
        if args.solver == "adam":
            args.lr = DEFAULT_LR_ADAM
        else:
            args.lr = DEFAULT_LR if classification else DEFAULT_LR_REGRESSION
    train_rows, test_rows = split_indices(
        data.n_samples, args.test_fraction, args.seed,
        stratify=target.y if classification else None, labels=target.classes,
    )
    X_train_raw, X_test_raw = data.X[train_rows], data.X[test_rows]
    y_train, y_test = target.y[train_rows], target.y[test_rows]
    scaler = Standardizer.fit(X_train_raw) if args.standardize else None
    X_train = scaler.transform(X_train_raw) if scaler else X_train_raw
    X_test = scaler.transform(X_test_raw) if scaler else X_test_raw
    y_scaler = None
    if not classification and args.standardize:
        y_scaler = Standardizer.fit(y_train[:, None])
        y_train_fit = (y_train - y_scaler.mean[0]) / y_scaler.scale[0]
        y_test_fit = (y_test - y_scaler.mean[0]) / y_scaler.scale[0]
    else:
        y_train_fit, y_test_fit = y_train, y_test
    n_out = len(target.classes) if target.output == "softmax" and target.classes else 1
    sizes = [data.n_features, *args.layers, n_out]
    n_hidden = len(args.layers)
    activation = args.activation
    if isinstance(activation, list) and len(activation) != n_hidden:
        _fail(f"--activation lists {len(activation)} names for {n_hidden} hidden layers; "
              "give one name, or one per hidden layer")
    net = MLP(sizes, activation=activation, output=target.output, backend=args.backend,
              device=device, dtype=args.dtype, seed=args.seed, alpha=args.alpha)

    show_progress = sys.stdout.isatty() and not args.quiet and not args.json
    with EpochProgress(args.epochs, enabled=show_progress) as progress:
        history = net.fit(X_train, y_train_fit, epochs=args.epochs, lr=args.lr,
                          batch_size=args.batch_size, callback=progress,
                          optimizer=_optimizer(args), early_stopping=args.early_stopping,
                          n_iter_no_change=args.n_iter_no_change, tol=args.tol)
    m_train = X_train.shape[0]
    samples_per_second = history.epochs * m_train / max(history.seconds, 1e-12)

    y_mean = float(y_scaler.mean[0]) if y_scaler else 0.0
    y_scale = float(y_scaler.scale[0]) if y_scaler else 1.0
    train_scores = score(net, X_train, y_train_fit, target.task, y_mean, y_scale)
    test_scores = (score(net, X_test, y_test_fit, target.task, y_mean, y_scale)
                   if len(test_rows) else None)

    if args.save:
        save(
            net, args.save, standardize=scaler, target_standardize=y_scaler,
            classes=target.classes, feature_names=data.feature_names,
            target_name=data.target_name, task=target.task, dataset=data.name,
            split={"test_fraction": args.test_fraction, "seed": args.seed},
        )
    if args.plot:
        from .plotting import plot_training

        def predict(X_raw: np.ndarray) -> np.ndarray:
            X_net = scaler.transform(X_raw) if scaler else X_raw
            out = to_numpy(net.predict_proba(X_net)).astype(np.float64)
            return out * y_scale + y_mean if not classification else out

        title = (f"xpnet {'-'.join(map(str, net.layer_sizes))} on {data.name} "
                 f"({net.backend}, {net.dtype})")
        plot_training(
            args.plot, history.loss, task=target.task, predict=predict,
            X_train=X_train_raw, y_train=y_train, X_test=X_test_raw, y_test=y_test,
            classes=target.classes, feature_names=data.feature_names, title=title,
        )

    if args.json:
        _emit_json({
            "command": "train",
            "xpnet_version": __version__,
            "data": {
                "name": data.name, "rows": data.n_samples, "features": data.n_features,
                "task": target.task, "classes": target.classes,
                "train_rows": int(len(train_rows)), "test_rows": int(len(test_rows)),
                "standardized": bool(args.standardize),
            },
            "network": {
                "layer_sizes": list(net.layer_sizes), "activations": list(net.activations),
                "output": net.output, "loss": net.loss_name, "parameters": net.n_params,
            },
            "backend": {"name": net.backend, "device": _device_name(net), "dtype": net.dtype},
            "training": {
                "epochs": history.epochs, "lr": args.lr, "batch_size": args.batch_size,
                "alpha": args.alpha, "seed": args.seed, "solver": args.solver,
                "momentum": args.momentum, "nesterov": args.nesterov,
                "lr_schedule": args.lr_schedule, "early_stopping": args.early_stopping,
                "seconds": history.seconds, "samples_per_second": samples_per_second,
                "loss_curve": history.loss,
            },
            "loss": history.loss[-1],
            "train": train_scores,
            "test": test_scores,
            "model": args.save,
            "plot": args.plot,
        })
        return 0
    if args.quiet:
        return 0
    kinds = (f"{len(target.classes)} classes ({', '.join(map(str, target.classes[:10]))}"
             f"{', ...' if len(target.classes) > 10 else ''})" if target.classes
             else "regression target")
    split = (f"train {len(train_rows)} / test {len(test_rows)} rows" if len(test_rows)
             else f"all {len(train_rows)} rows for training (no test split)")
    batch = "full batch" if args.batch_size is None else f"batches of {args.batch_size}"
    lines = [
        f"data      {data.name}: {data.n_samples} rows, {data.n_features} features, {kinds}",
        f"          {split}, features "
        + ("standardised (training-split statistics)" if scaler else "as given"),
        f"network   {_describe_net(net)}",
        f"backend   {net.backend} on {_device_name(net)}, {net.dtype}",
        f"training  {history.epochs} epochs, {batch}, {_solver_text(args)}, "
        f"alpha {args.alpha:g}, seed {args.seed}",
        f"loss      {_fmt(history.loss[-1])} (last epoch)   train {_fmt(train_scores['loss'])}"
        + (f"   test {_fmt(test_scores['loss'])}" if test_scores else ""),
    ]
    if classification:
        lines.append(f"accuracy  train {train_scores['accuracy']:.4f}"
                     + (f"   test {test_scores['accuracy']:.4f}" if test_scores else ""))
    else:
        lines.append(f"R²        train {train_scores['r2']:.4f}"
                     + (f"   test {test_scores['r2']:.4f}" if test_scores else ""))
        lines.append(f"MSE       train {_fmt(train_scores['mse'])}"
                     + (f"   test {_fmt(test_scores['mse'])}" if test_scores else ""))
    lines.append(f"time      {history.seconds:.2f} s, {samples_per_second:,.0f} samples/s "
                 f"({history.epochs} epochs x {m_train} rows, backend synchronised)")
    if args.save:
        lines.append(f"saved     {args.save}")
    if args.plot:
        lines.append(f"plot      {args.plot}")
    print("\n".join(lines))
    return 0


# --------------------------------------------------------------------------- model commands
def _load_model(args: argparse.Namespace) -> Any:
    from .io import load

    device = _device(args.device)
    _backend(args.backend, device)
    return load(args.model, backend=args.backend, device=device)


def _default_seed(args: argparse.Namespace, meta: dict[str, Any]) -> None:
    """A generated --dataset is re-created with the training run's seed unless --seed says."""
    if args.seed is None:
        split = meta.get("split") or {}
        args.seed = split.get("seed") or 0


def _prepare(net: Any, X: np.ndarray, source: str) -> np.ndarray:
    from .data import Standardizer

    n_in = net.layer_sizes[0]
    if X.shape[1] != n_in:
        _fail(f"{source} has {X.shape[1]} feature columns but the model expects {n_in} "
              "(feature count does not match the model)")
    stats = net.metadata.get("standardize")
    return Standardizer.from_dict(stats).transform(X) if stats else X


def _target_stats(net: Any) -> tuple[float, float]:
    stats = net.metadata.get("target_standardize")
    return (float(stats["mean"][0]), float(stats["scale"][0])) if stats else (0.0, 1.0)


def _model_summary(net: Any, path: str) -> str:
    trained = net.metadata["header"]["trained_on"]
    return (f"{path}: {_describe_net(net)}; trained on {trained['backend']} "
            f"({trained['device']}), {net.dtype}; running on {net.backend}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import encode_labels, split_indices
    from .metrics import score

    net = _load_model(args)
    meta = net.metadata
    _default_seed(args, meta)
    data = _load_data(args, default_target=meta.get("target_name"))
    source = data.name
    if data.y is None:
        _fail(f"{source} has no target column to evaluate against")
    X = _prepare(net, data.X, source)
    task = meta.get("task") or {"sigmoid": "binary", "softmax": "multiclass"}.get(
        net.output, "regression")
    classes = meta.get("classes")
    if task == "regression":
        if data.y.dtype.kind not in "biuf":
            _fail(f"{source}: the target must be numeric for a regression model")
        y_mean, y_scale = _target_stats(net)
        y = (data.y.astype(np.float64) - y_mean) / y_scale
    else:
        y_mean, y_scale = 0.0, 1.0
        if classes is None:
            classes = list(range(max(net.layer_sizes[-1], 2)))
        y = encode_labels(data.y, classes)
    rows = np.arange(data.n_samples)
    if args.split != "all":
        split = meta.get("split")
        if not split:
            _fail("the model file records no train/test split; use --split all")
        train_rows, test_rows = split_indices(
            data.n_samples, split["test_fraction"], split["seed"],
            stratify=y if task != "regression" else None, labels=classes,
        )
        rows = train_rows if args.split == "train" else test_rows
        if not len(rows):
            _fail("the model was trained without a test split (test fraction 0)")
    result = score(net, X[rows], y[rows], task, y_mean, y_scale)
    if args.json:
        _emit_json({"command": "evaluate", "model": args.model, "data": source,
                    "split": args.split, "task": task, **result})
        return 0
    lines = [f"model     {_model_summary(net, args.model)}",
             f"data      {source}: {result['rows']} rows ({args.split})",
             f"loss      {_fmt(result['loss'])}"]
    if task == "regression":
        lines += [f"R²        {result['r2']:.4f}", f"MSE       {_fmt(result['mse'])}"]
    else:
        lines.append(f"accuracy  {result['accuracy']:.4f}")
    if not args.quiet:
        print("\n".join(lines))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import csv

    from .metrics import predicted_classes

    net = _load_model(args)
    meta = net.metadata
    _default_seed(args, meta)
    n_in = net.layer_sizes[0]
    data = _load_data(args, n_features=n_in, default_target=meta.get("target_name"))
    X = _prepare(net, data.X, data.name)
    if args.out:
        _check_writable(args.out, "predictions file")
    outputs = to_numpy(net.predict_proba(X)).astype(np.float64)
    classes = meta.get("classes")
    header: list[str] = ["row"]
    if data.y is not None:
        header.append(f"true_{data.target_name or 'target'}")
    if net.output == "identity":
        y_mean, y_scale = _target_stats(net)
        values = outputs * y_scale + y_mean
        names = ["prediction"] if values.shape[1] == 1 else [
            f"prediction_{j + 1}" for j in range(values.shape[1])]
        header += names
        predictions: list[Any] = [row[0] if len(row) == 1 else list(row)
                                  for row in values.tolist()]
        probabilities = None
    else:
        if net.output == "sigmoid" and outputs.shape[1] == 1:
            probs = np.column_stack([1.0 - outputs[:, 0], outputs[:, 0]])
        else:
            probs = outputs
        if net.output == "sigmoid" and outputs.shape[1] > 1:
            _fail("multi-label models are not supported by 'xpnet predict'")
        labels = classes if classes is not None else list(range(probs.shape[1]))
        index = predicted_classes(outputs)
        predictions = [labels[i] for i in index]
        probabilities = probs.tolist()
        header += ["prediction"] + [f"p_{label}" for label in labels]
    if args.json:
        _emit_json({"command": "predict", "model": args.model, "data": data.name,
                    "rows": len(predictions), "classes": classes, "predictions": predictions,
                    "probabilities": probabilities, "out": args.out})
        if not args.out:
            return 0
    handle = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for i, prediction in enumerate(predictions):
            row: list[Any] = [i + 1]
            if data.y is not None:
                true = data.y[i].item()
                row.append(int(true) if isinstance(true, float) and true.is_integer() else true)
            if probabilities is None:
                values_row = prediction if isinstance(prediction, list) else [prediction]
                row += [f"{v:.10g}" for v in values_row]
            else:
                row += [prediction] + [f"{p:.6f}" for p in probabilities[i]]
            writer.writerow(row)
    finally:
        if args.out:
            handle.close()
    if args.out and not args.quiet and not args.json:
        print(f"wrote {len(predictions)} predictions to {args.out}")
    return 0


# --------------------------------------------------------------------------- inspection
def _devices(name: str) -> list[str]:
    """Devices usable by an available backend, as strings for ``--device``."""
    if name == "numpy":
        return ["cpu"]
    if name == "torch":
        import torch

        return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if name == "cupy":
        import cupy

        return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]
    backend = get_backend(name)
    return [str(backend.device) if backend.device is not None else "default"]


def _cmd_backends(args: argparse.Namespace) -> int:
    rows = []
    for name in BACKEND_NAMES:
        info = backend_info(name)
        info["devices"] = []
        if info["usable"]:
            try:
                info["devices"] = _devices(name)
            except Exception as exc:  # a broken driver must not break the table
                info["reason"] = f"could not list devices ({exc})"
        rows.append(info)
    if args.json:
        _emit_json({"command": "backends", "backends": rows})
        return 0
    table = [("backend", "installed", "version", "usable", "devices", "notes")]
    for info in rows:
        if not info["installed"]:
            note = f"install: {info['install']}"
        elif not info["usable"]:
            note = str(info["reason"])
        else:
            note = info["description"]
        table.append((
            info["name"], "yes" if info["installed"] else "no", info["version"] or "-",
            "yes" if info["usable"] else "no", ", ".join(info["devices"]) or "-", note,
        ))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
              + "  " + row[5])
    return 0


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import DEFAULTS, check_gradients, random_problem
    from .network import MLP

    device = _device(args.device)
    _backend(args.backend, device)
    net = MLP(args.layers, activation=args.activation, output=args.output,
              backend=args.backend, device=device, dtype=args.dtype, seed=args.seed,
              alpha=args.alpha)
    X, Y = random_problem(net, rows=args.rows, seed=args.seed)
    eps = args.eps if args.eps is not None else DEFAULTS[net.dtype][0]
    threshold = args.threshold if args.threshold is not None else DEFAULTS[net.dtype][2]
    results = check_gradients(net, X, Y, eps=eps, max_entries=args.max_entries, seed=args.seed)
    worst = max(r.max_rel_error for r in results)
    passed = worst <= threshold
    if args.json:
        _emit_json({
            "command": "gradcheck", "layer_sizes": list(net.layer_sizes),
            "activations": list(net.activations), "output": net.output,
            "backend": net.backend, "device": _device_name(net), "dtype": net.dtype,
            "rows": args.rows, "eps": eps, "threshold": threshold,
            "parameters": [{"name": r.name, "shape": list(r.shape), "checked": r.checked,
                            "max_rel_error": r.max_rel_error, "max_abs_error": r.max_abs_error}
                           for r in results],
            "max_rel_error": worst, "passed": passed,
        })
    elif not args.quiet or not passed:
        print(f"gradcheck {_describe_net(net)}")
        print(f"          on {net.backend} ({_device_name(net)}, {net.dtype}), "
              f"{args.rows} random rows, central differences with eps {eps:g}")
        print(f"{'parameter':<10} {'shape':<12} {'checked':>7}  {'max rel error':>13}  "
              f"{'max abs error':>13}")
        for r in results:
            print(f"{r.name:<10} {str(r.shape):<12} {r.checked:>7}  {r.max_rel_error:>13.2e}  "
                  f"{r.max_abs_error:>13.2e}")
        verdict = "PASS" if passed else "FAIL"
        print(f"largest relative error {worst:.2e} {'<=' if passed else '>'} threshold "
              f"{threshold:g}: {verdict}")
    return 0 if passed else EXIT_CHECK_FAILED


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain

    print(explain(args.layers, args.activation, args.output, alpha=args.alpha,
                  rows=args.rows if args.rows is not None else "m"))
    return 0


# --------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``xpnet: error: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"xpnet: error: {message} (see '{self.prog} --help')\n")


_FORMATTER = argparse.RawDescriptionHelpFormatter


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, width=78)

_EXAMPLES = {
    "train": """examples:
  xpnet train                                   # 2-8-1 sigmoid network on two moons, NumPy
  xpnet train --dataset spirals --layers 32,32 --activation tanh --lr 0.3 --epochs 5000
  xpnet train --backend torch --dataset digits --layers 64 --save m.npz --plot p.png
  xpnet train --data my.csv --target label --test-fraction 0.2 --json
  xpnet train --backend cupy --dtype float32 --dataset digits --layers 256
""",
    "evaluate": """examples:
  xpnet evaluate m.npz --dataset digits
  xpnet evaluate m.npz --dataset digits --split test --backend numpy
  xpnet evaluate m.npz --data held_out.csv --json
""",
    "predict": """examples:
  xpnet predict m.npz --data new_rows.csv              # CSV to stdout
  xpnet predict m.npz --data new_rows.csv --out predictions.csv
  xpnet predict m.npz --dataset digits --json

The file may hold the model's feature columns only, or the target column too (it is
then copied to the output as true_<target>). Features are standardised with the
statistics stored in the model.
""",
    "backends": """examples:
  xpnet backends
  xpnet backends --json
""",
    "gradcheck": """examples:
  xpnet gradcheck                                       # the lesson's 2-4-1 network
  xpnet gradcheck --layers 4,16,8,3 --activation relu,tanh --output softmax
  xpnet gradcheck --backend torch --output identity --alpha 0.1

Exit status: 0 when the largest relative error is at most the threshold, 1 otherwise.
""",
    "explain": """examples:
  xpnet explain                                         # the lesson's 2-4-1 network
  xpnet explain --layers 64,32,10 --activation relu --output softmax --rows 32
""",
}


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="numpy", metavar="NAME",
                   help=f"array backend: {', '.join(BACKEND_NAMES)} (default: numpy)")
    p.add_argument("--device", default=None,
                   help="device on the backend: cpu, cuda:0, 1, ... (default: the backend's)")


def _add_network_options(p: argparse.ArgumentParser) -> None:
    """The whole network, input to output (gradcheck and explain; train takes hidden sizes)."""
    p.add_argument("--layers", type=_layer_sizes, default=[2, 4, 1], metavar="SIZES",
                   help="all layer sizes, input to output, e.g. 2,4,1 (default: 2,4,1)")
    p.add_argument("--activation", type=_activations, default="sigmoid", metavar="NAME",
                   help="hidden activation(s) (default: sigmoid)")
    p.add_argument("--output", default="sigmoid", choices=("sigmoid", "softmax", "identity"),
                   help="output and loss (default: sigmoid)")
    p.add_argument("--alpha", type=_nonnegative_float, default=0.0, help="L2 penalty")


def _add_data_options(p: argparse.ArgumentParser, required: bool) -> None:
    from .data import DATASETS

    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument("--dataset", metavar="NAME",
                       help="built-in data set: " + ", ".join(DATASETS)
                       + ("" if required else " (default: moons)"))
    group.add_argument("--data", metavar="FILE",
                       help="CSV with a header row, .npz with X and y, or .npy (2-D)")
    p.add_argument("--target", metavar="COLUMN",
                   help="target column of --data: name or index (default: the last column)")


def build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS

    parser = _Parser(
        prog="xpnet", formatter_class=_FORMATTER,
        description=_wrap("Train, evaluate and inspect multilayer perceptrons with explicit "
                          "backpropagation on NumPy, CuPy, PyTorch or array-api-strict."),
        epilog="Run 'xpnet COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    # train
    p = sub.add_parser(
        "train", help="train a network and report loss, accuracy and speed",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["train"],
        description=_wrap(
            "Train a network by gradient descent and report loss, accuracy (or R² and "
            "MSE), time and samples/s. With no options: the lesson's network (2 inputs, "
            "one hidden sigmoid layer, sigmoid output, binary cross-entropy, full-batch "
            "gradient descent) on the built-in two-moons data, on NumPy."
        ) + "\n\nbuilt-in data sets:\n" + "\n".join(
            f"  {name:<14} {text}" for name, text in DATASETS.items()),
    )
    _add_data_options(p, required=False)
    p.add_argument("--n-samples", type=_positive_int, default=None, metavar="N",
                   help="rows of a generated data set (default: 400)")
    p.add_argument("--noise", type=_nonnegative_float, default=None,
                   help="noise of a generated data set (default: per data set)")
    _add_backend_options(p)
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"),
                   help="floating-point type (default: float64)")
    p.add_argument("--layers", type=_hidden_sizes, default=_hidden_sizes(DEFAULT_HIDDEN),
                   metavar="SIZES", help="hidden layer sizes, e.g. 16,16; 'none' for no hidden "
                   f"layer (default: {DEFAULT_HIDDEN})")
    p.add_argument("--activation", type=_activations, default="sigmoid", metavar="NAME",
                   help="hidden activation: sigmoid, tanh, relu, identity; one, or one per "
                   "hidden layer like relu,tanh (default: sigmoid)")
    p.add_argument("--output", default=None, choices=("sigmoid", "softmax", "identity"),
                   help="output and loss (default: from the target: sigmoid for 2 classes, "
                   "softmax for more, identity for regression)")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="passes over the training rows (default: "
                   f"{DEFAULT_EPOCHS_2D} on the generated 2-D data sets, "
                   f"{DEFAULT_EPOCHS} on other data)")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help=f"learning rate (default: {DEFAULT_LR:g} for classification, "
                   f"{DEFAULT_LR_REGRESSION:g} for regression)")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                   help="mini-batch rows (default: full batch)")
    p.add_argument("--alpha", type=_nonnegative_float, default=0.0,
                   help="L2 penalty alpha/(2m)·Σ‖W‖² (default: 0)")
    p.add_argument("--solver", choices=("sgd", "adam"), default="sgd",
                   help="update rule (default: sgd, plain gradient descent)")
    p.add_argument("--momentum", type=_nonnegative_float, default=0.0,
                   help="sgd momentum in [0, 1] (default: 0)")
    p.add_argument("--nesterov", action="store_true",
                   help="Nesterov momentum (sgd with --momentum > 0)")
    p.add_argument("--lr-schedule", choices=("constant", "invscaling", "adaptive"),
                   default="constant",
                   help="sgd learning-rate schedule, as in scikit-learn (default: constant)")
    p.add_argument("--early-stopping", action="store_true",
                   help="hold out 10%% of the training rows, stop when their score stops "
                   "improving and restore the best weights")
    p.add_argument("--n-iter-no-change", type=_positive_int, default=None, metavar="N",
                   help="stop after N epochs without improvement by --tol (default: never "
                   "without --early-stopping, 10 with it)")
    p.add_argument("--tol", type=_nonnegative_float, default=1e-4,
                   help="improvement that counts for stopping (default: 1e-4)")
    p.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="seed of the weights, the split, shuffles and generated data "
                   "(default: 0)")
    p.add_argument("--test-fraction", type=_fraction, default=0.25, metavar="F",
                   help="share of rows held out and reported separately (default: 0.25)")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=True,
                   help="standardise features (and a regression target) with training-split "
                   "statistics (default: on)")
    p.add_argument("--save", metavar="MODEL.npz", help="write the trained model here")
    p.add_argument("--plot", metavar="OUT.png",
                   help="save the loss curve and decision boundary (needs matplotlib)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout and nothing else")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print nothing but errors (and no progress bar)")
    p.set_defaults(func=_cmd_train)

    # evaluate
    p = sub.add_parser(
        "evaluate", help="loss and accuracy (or R² and MSE) of a saved model on data",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["evaluate"],
        description=_wrap("Score a saved model on a data set or file: loss and accuracy for "
                          "classifiers, loss, R² and MSE for regression."),
    )
    p.add_argument("model", metavar="MODEL", help="model file written by 'xpnet train --save'")
    _add_data_options(p, required=True)
    p.add_argument("--split", choices=("all", "train", "test"), default="all",
                   help="rows to score: all, or the training/test split recorded in the model "
                   "(the same data as in training) (default: all)")
    _add_backend_options(p)
    p.add_argument("--seed", type=_nonnegative_int, default=None,
                   help="seed of a generated --dataset (default: the training run's seed)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_evaluate)

    # predict
    p = sub.add_parser(
        "predict", help="predictions (and class probabilities) for every row",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["predict"],
        description=_wrap("Predict each row of a data file with a saved model; writes CSV "
                          "(row, prediction, one probability column per class)."),
    )
    p.add_argument("model", metavar="MODEL", help="model file written by 'xpnet train --save'")
    _add_data_options(p, required=True)
    p.add_argument("--out", metavar="FILE", help="write the CSV here instead of stdout")
    _add_backend_options(p)
    p.add_argument("--seed", type=_nonnegative_int, default=None,
                   help="seed of a generated --dataset (default: the training run's seed)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary line with --out")
    p.set_defaults(func=_cmd_predict)

    # backends
    p = sub.add_parser(
        "backends", help="which backends are installed and usable here, and how to install",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["backends"],
        description=_wrap("A table of every backend: installed or not, version, usable "
                          "devices, and the install line when missing."),
    )
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_cmd_backends)

    # gradcheck
    p = sub.add_parser(
        "gradcheck", help="finite-difference check of the explicit backpropagation",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["gradcheck"],
        description=_wrap("Compare the hand-written gradients with central finite "
                          "differences on random data; print the largest relative error per "
                          "parameter."),
    )
    _add_network_options(p)
    _add_backend_options(p)
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"),
                   help="float64 (default) checks formulas; float32 is a coarse check")
    p.add_argument("--rows", type=_positive_int, default=16, help="random rows (default: 16)")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seed (default: 0)")
    p.add_argument("--eps", type=_positive_float, default=None,
                   help="finite-difference step (default: 1e-5 float64, 1e-2 float32)")
    p.add_argument("--threshold", type=_positive_float, default=None,
                   help="largest relative error allowed (default: 1e-5 float64, 5e-2 float32)")
    p.add_argument("--max-entries", type=_positive_int, default=2000, metavar="N",
                   help="entries checked at most, sampled when the network is larger "
                   "(default: 2000)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="print only on failure")
    p.set_defaults(func=_cmd_gradcheck)

    # explain
    p = sub.add_parser(
        "explain", help="the forward and backward equations of a network, with shapes",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["explain"],
        description=_wrap("Print the forward pass, loss and backpropagation of the given "
                          "network layer by layer, with every array's shape: the lesson's "
                          "derivation, corrected and made concrete."),
    )
    _add_network_options(p)
    p.add_argument("--rows", type=_positive_int, default=None,
                   help="batch size to show in shapes (default: the symbol m)")
    p.set_defaults(func=_cmd_explain)
    return parser


# --------------------------------------------------------------------------- entry point
def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _show_warning(message: Any, category: Any, filename: str, lineno: int,
                  file: Any = None, line: Any = None) -> None:
    sys.stderr.write(f"xpnet: warning: {_one_line(message)}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    if args.command is None:
        parser.print_help(sys.stderr)
        sys.stderr.write("xpnet: error: choose a command (train, evaluate, predict, backends, "
                         "gradcheck, explain)\n")
        return EXIT_ERROR

    from .data import DataError
    from .io import ModelFileError
    from .plotting import PlotUnavailableError

    expected = (CLIError, DataError, ModelFileError, BackendUnavailableError,
                PlotUnavailableError, ValueError, TypeError, FloatingPointError, OSError)
    if hasattr(sys.stdout, "reconfigure"):  # never fail on a terminal without UTF-8
        sys.stdout.reconfigure(errors="replace")
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args))
    except BrokenPipeError:  # e.g. 'xpnet predict ... | head'
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("xpnet: interrupted\n")
        return 130
    except expected as exc:
        sys.stderr.write(f"xpnet: error: {_one_line(exc)}\n")
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("XPNET_DEBUG"):
            raise
        sys.stderr.write(f"xpnet: error: unexpected {type(exc).__name__}: {_one_line(exc)} "
                         "(set XPNET_DEBUG=1 to see the traceback, and please report it)\n")
        return EXIT_ERROR
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
