"""``xpnet train``: train a network, report it, save the model and plot.

One flow (:func:`cmd_train`) that opens the data, encodes the target, splits and
standardises, fits and scores, then saves and reports; where it runs (:class:`Local`, in
this process, or :class:`~xpnet.cli.distributed.OnCluster`, on Dask) says how each step is
done there.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np

from .. import __version__
from .._memory import data_bytes, too_large, training_too_large
from ..backends import to_numpy
from ._common import (
    DEFAULT_EPOCHS,
    DEFAULT_EPOCHS_2D,
    DEFAULT_LR,
    DEFAULT_LR_ADAM,
    DEFAULT_LR_REGRESSION,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    TrainingSets,
    Where,
    check_backend,
    check_parameters,
    describe_net,
    device_name,
    dropout_text,
    emit_json,
    fail,
    fmt,
    load_data,
    on_host,
    parse_device,
    plural,
    printable,
    rate,
    score_lines,
)
from ._paths import check_paths
from ._signals import StopAfterEpoch
from .distributed import OnCluster, on_cluster


def _optimizer(args: argparse.Namespace) -> Any:
    """The optimiser named by --solver, with its options."""
    from ..optim import get_optimizer

    if args.solver != "sgd" and (args.momentum or args.nesterov
                                 or args.lr_schedule != "constant"):
        fail("--momentum, --nesterov and --lr-schedule apply to --solver sgd only")
    if args.solver == "adam":
        return get_optimizer("adam", args.lr)
    if args.solver == "lbfgs":  # SciPy's L-BFGS-B on the full batch (here or on a cluster)
        for flag, given in (("--batch-size", args.batch_size is not None),
                            ("--early-stopping", args.early_stopping),
                            ("--dropout", any(np.atleast_1d(args.dropout)))):
            if given:
                fail(f"{flag} does not apply with --solver lbfgs (full-batch L-BFGS: one "
                     "fixed loss over all training rows)")
        return "lbfgs"
    if args.momentum > 1:
        fail(f"--momentum must lie in [0, 1]; got {args.momentum:g}")
    if args.nesterov and not args.momentum:
        fail("--nesterov needs --momentum > 0")
    return get_optimizer("sgd", args.lr, momentum=args.momentum, nesterov=args.nesterov,
                         schedule=args.lr_schedule)


def class_weight_spec(text: str) -> str | list[tuple[str, float]]:
    """``--class-weight``: ``balanced``, or ``label=weight,...`` (labels as in the data,
    matched to the classes once the data is read; weights finite and >= 0)."""
    if text.strip() == "balanced":
        return "balanced"
    pairs: list[tuple[str, float]] = []
    for part in text.split(","):
        label, sep, weight_text = part.strip().rpartition("=")
        try:
            weight = float(weight_text)
        except ValueError:
            weight = math.nan
        if not sep or not label or not (math.isfinite(weight) and weight >= 0):
            raise argparse.ArgumentTypeError(
                "must be 'balanced' or label=weight pairs separated by commas, with "
                f"weights >= 0, like setosa=2,virginica=1; got {text!r}"
            )
        if label in (seen for seen, _ in pairs):
            raise argparse.ArgumentTypeError(f"names label {label!r} twice; got {text!r}")
        pairs.append((label, weight))
    return pairs


def _class_weight(
    spec: str | list[tuple[str, float]] | None, classes: list[Any] | None
) -> tuple[Any, Any]:
    """``(class_weight for fit, its JSON form)`` from ``--class-weight``: the labels of a
    ``label=weight`` spec become class indices (a label matches a class written the same
    way, or a number of the same value, so ``1`` matches class ``1.0``)."""
    from ..data import label_key

    if spec is None:
        return None, None
    if classes is None:
        fail("--class-weight applies to classification targets; this target is a "
             "regression target")
    if isinstance(spec, str):  # "balanced"
        return "balanced", "balanced"
    by_index: dict[int, float] = {}
    shown: dict[str, float] = {}
    for label, weight in spec:
        try:
            number: float | None = float(label)
        except ValueError:
            number = None
        matches = [
            i for i, c in enumerate(classes)
            if str(c) == label or (number is not None and label_key(c) == ("number", number))
        ]
        if not matches:
            listed = ", ".join(map(str, classes[:10])) + (", ..." if len(classes) > 10 else "")
            fail(f"--class-weight: {label!r} is not one of the classes ({listed})")
        by_index[matches[0]] = weight
        shown[str(classes[matches[0]])] = weight
    return by_index, shown


def _class_weight_text(shown: Any) -> str:
    if shown is None:
        return ""
    if shown == "balanced":
        return ", class weight balanced"
    return ", class weights " + ",".join(
        f"{printable(label)}={weight:g}" for label, weight in shown.items()
    )


def _solver_text(args: argparse.Namespace) -> str:
    if args.solver == "lbfgs":
        return "lbfgs (full batch)"
    text = f"lr {args.lr:g}"
    if args.solver == "adam":
        return f"adam, {text}"
    if args.momentum:
        text += f", {'nesterov ' if args.nesterov else ''}momentum {args.momentum:g}"
    if args.lr_schedule != "constant":
        text += f" ({args.lr_schedule})"
    return text + (", early stopping" if args.early_stopping else "")


def _check_per_layer_options(args: argparse.Namespace) -> None:
    """--activation and --dropout lists must give one entry per hidden layer."""
    n_hidden = len(args.layers)
    if isinstance(args.activation, list) and len(args.activation) != n_hidden:
        fail(f"--activation lists {plural(len(args.activation), 'name')} for "
             f"{plural(n_hidden, 'hidden layer')}; give one name, or one per hidden layer")
    if isinstance(args.dropout, list) and len(args.dropout) != n_hidden:
        fail(f"--dropout lists {plural(len(args.dropout), 'rate')} for "
             f"{plural(n_hidden, 'hidden layer')}; give one rate, or one per hidden layer")


def note_full_layer_list(args: argparse.Namespace, n_features: int) -> None:
    """A note on stderr when ``--layers`` looks like every size, input to output (as
    ``explain`` and ``gradcheck`` take it): two sizes or more, the first the data's width.
    ``train`` takes the hidden sizes only, so ``4,8,3`` on 4 features builds 4-4-8-3-k."""
    layers = args.layers
    if args.quiet or len(layers) < 2 or layers[0] != n_features:
        return
    given = ",".join(map(str, layers))
    hidden = ",".join(map(str, layers[1:-1])) or "none"
    sys.stderr.write(
        f"xpnet: note: --layers {given} gives the hidden layers only (train takes the input "
        f"and output sizes from the data); the first size equals the {n_features} features: "
        f"if {given} was the whole network, use --layers {hidden}\n")


class Local(Where):
    """Where ``xpnet train`` runs without a cluster: in this process, on ``--backend``
    and ``--device``, with a progress bar on a terminal and the Ctrl-C rules of
    :class:`StopAfterEpoch`; the test split is stratified."""

    time_note = ", backend synchronised"

    def check(self) -> None:
        args = self.args
        check_paths({"--save": ("model file", args.save), "--plot": ("plot", args.plot)},
                    {"--data": ("data file", args.data)})
        device = parse_device(args.device)
        self.net_options = {"backend": args.backend, "device": device}
        if args.no_cache:
            from .._jit_cache import set_compile_cache

            set_compile_cache(False)
        if args.threads is not None:
            from ..threads import xla_flags

            xla_flags(args.threads)  # XLA sizes its pool when JAX starts: before the backend
        check_backend(args.backend, device)
        if args.compile:
            from ..compiled import check_compile

            try:
                check_compile(True, args.backend)
            except ValueError as exc:
                fail(f"--compile: {exc}")
        if args.plot:
            from ..plotting import check_plot_path

            check_plot_path(args.plot)  # matplotlib installed, file type known: before training

    def open(self) -> tuple[Any, Any, str, str, Any]:
        """``(data, y encoded, task, output, classes)``."""
        from ..data import GENERATED, encode_target

        args = self.args
        generated = args.data is None and (args.dataset or "moons") in GENERATED
        # a generated set larger than memory is refused before it is made (load_data says
        # that --n-samples applies to generated sets only)
        clause = None if not generated or args.n_samples is None else too_large(
            data_bytes(args.n_samples, 3))
        if clause is not None:
            fail(f"--n-samples {args.n_samples}: generating the data set {clause}; "
                 "ask for fewer rows")
        data = load_data(args)
        if data.y is None:
            fail(f"{data.name}: no target column to train on")
        if args.epochs is None:
            args.epochs = DEFAULT_EPOCHS_2D if generated else DEFAULT_EPOCHS
        target = encode_target(data.y, args.output)
        return data, target.y, target.task, target.output, target.classes

    def split(self, data: Any, y: Any, task: str, output: str, classes: Any) -> TrainingSets:
        from ..data import Standardizer, split_indices

        args = self.args
        train_rows, test_rows = split_indices(
            data.n_samples, args.test_fraction, args.seed,
            stratify=y if task != "regression" else None, labels=classes,
        )
        X_train_raw, X_test_raw = data.X[train_rows], data.X[test_rows]
        y_train, y_test = y[train_rows], y[test_rows]
        self.raw = (X_train_raw, y_train, X_test_raw, y_test)  # for the plot
        scaler = Standardizer.fit(X_train_raw) if args.standardize else None
        sets = TrainingSets(scaler.transform(X_train_raw) if scaler else X_train_raw, y_train,
                            scaler.transform(X_test_raw) if scaler else X_test_raw, y_test,
                            scaler=scaler)
        # a Poisson (exp) target stays as it is: standardising would make counts negative
        if task == "regression" and args.standardize and output != "exp":
            sets.y_scaler = y_scaler = Standardizer.fit(y_train[:, None])
            sets.y_train = (y_train - y_scaler.mean[0]) / y_scaler.scale[0]
            sets.y_test = (y_test - y_scaler.mean[0]) / y_scaler.scale[0]
        return sets

    def check_size(self, sizes: list[int], sets: TrainingSets, name: str) -> None:
        """Refuse, before building the network, a run whose parameters, data and one
        batch's activations need more memory than is available; name the option to
        change."""
        note_full_layer_list(self.args, sizes[0])
        args, n_rows = self.args, sets.X_train.shape[0]
        batch_rows = min(args.batch_size or n_rows, n_rows)
        found = training_too_large(sizes, n_rows, batch_rows, np.dtype(args.dtype).itemsize,
                                   on_host=on_host(args))
        if found is None:
            return
        part, clause = found
        if part == "parameters":
            check_parameters(args, sizes, clause)
        if part == "data":
            fail(f"{name}: training on {n_rows:,} rows {clause}; use fewer rows")
        batch = f"--batch-size {args.batch_size}" if args.batch_size else "a full batch"
        fail(f"--layers {','.join(map(str, args.layers)) or 'none'} with {batch}: training "
             f"{clause}; use a smaller --batch-size or smaller layers")

    def fit(self, net: Any, X: Any, y: Any, options: dict[str, Any]) -> tuple[Any, bool]:
        """``(history, stopped)``: stopped by a Ctrl-C (one after the last epoch's callback
        still counts: the user asked to stop)."""
        from ..progress import EpochProgress

        args = self.args
        show_progress = sys.stdout.isatty() and not args.quiet and not args.json
        # NumPy's overflow/invalid warnings would only precede the divergence error
        with EpochProgress(args.epochs, enabled=show_progress) as progress, \
                StopAfterEpoch(progress, newline=show_progress, log_every=args.log_every,
                                epochs=args.epochs) as stop_after_epoch, \
                np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            history = net.fit(X, y, callback=stop_after_epoch, compile=args.compile,
                              **options)
        return history, history.interrupted or stop_after_epoch.requested

    def score(self, net: Any, X: Any, y: Any, task: str, mean: float, scale: float) -> Any:
        from ..metrics import score

        return score(net, X, y, task, mean, scale)

    def backend(self, net: Any) -> tuple[dict[str, Any], str]:
        """The report's backend: its --json object and its line's text."""
        return ({"name": net.backend, "device": device_name(net), "dtype": net.dtype},
                f"{net.backend} on {device_name(net)}, {net.dtype}")


def cmd_train(args: argparse.Namespace) -> int:
    """``xpnet train``, here or on a cluster (``--dask-workers``/``--scheduler``)."""
    from ..io import save
    from ..network import MLP
    from ..train import DivergenceError

    where: Local | OnCluster = OnCluster(args) if on_cluster(args) else Local(args)
    where.check()
    with where.session():
        data, y, task, output, classes = where.open()
        class_weight, class_weight_shown = _class_weight(args.class_weight, classes)
        if args.lr is None:
            if args.solver == "adam":
                args.lr = DEFAULT_LR_ADAM
            else:
                args.lr = DEFAULT_LR if task != "regression" else DEFAULT_LR_REGRESSION
        sets = where.split(data, y, task, output, classes)
        n_out = len(classes) if output == "softmax" and classes else 1
        sizes = [data.n_features, *args.layers, n_out]
        _check_per_layer_options(args)
        where.check_size(sizes, sets, data.name)
        net = MLP(sizes, activation=args.activation, output=output, dtype=args.dtype,
                  seed=args.seed, alpha=args.alpha, dropout=args.dropout, **where.net_options)
        options = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                   "optimizer": _optimizer(args), "early_stopping": args.early_stopping,
                   "n_iter_no_change": args.n_iter_no_change, "tol": args.tol,
                   "threads": args.threads}
        if class_weight is not None:
            options["class_weight"] = class_weight
        try:
            history, stopped = where.fit(net, sets.X_train, sets.y_train, options)
        except DivergenceError as exc:
            sys.stderr.write(f"xpnet: error: training diverged at epoch {exc.epoch}: "
                             f"{exc.reason}; try a smaller --lr (got {args.lr:g}); nothing "
                             "was written\n")
            return EXIT_DIVERGED
        mean, scale = sets.target_stats
        scores = (where.score(net, sets.X_train, sets.y_train, task, mean, scale),
                  where.score(net, sets.X_test, sets.y_test, task, mean, scale)
                  if sets.X_test.shape[0] else None)
    if args.save:
        save(net, args.save, standardize=sets.scaler, target_standardize=sets.y_scaler,
             classes=classes, feature_names=data.feature_names, target_name=data.target_name,
             task=task, dataset=data.name,
             split={"test_fraction": args.test_fraction, "seed": args.seed})
    if args.plot and isinstance(where, Local):
        _plot(args, net, history, where.raw, sets, task, classes, data)
    _report(args, where, data, sets, net, history, stopped,
            (task, classes, class_weight_shown), scores)
    return EXIT_INTERRUPTED if stopped else 0


def _plot(args: argparse.Namespace, net: Any, history: Any, raw: Any, sets: TrainingSets,
          task: str, classes: Any, data: Any) -> None:
    """``--plot``: the loss curve, and the decision regions or fit of the raw data."""
    from ..plotting import plot_training

    (mean, scale), scaler = sets.target_stats, sets.scaler

    def predict(X_raw: np.ndarray) -> np.ndarray:
        X_net = scaler.transform(X_raw) if scaler else X_raw
        out = to_numpy(net.predict_proba(X_net)).astype(np.float64)
        return out * scale + mean if task == "regression" else out

    X_train, y_train, X_test, y_test = raw
    title = (f"xpnet {'-'.join(map(str, net.layer_sizes))} on {data.name} "
             f"({net.backend}, {net.dtype})")
    plot_training(args.plot, history.loss, task=task, predict=predict,
                  X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
                  classes=classes, feature_names=data.feature_names, title=title,
                  validation_losses=history.validation_loss or None)


def _report(args: argparse.Namespace, where: Local | OnCluster, data: Any,
            sets: TrainingSets, net: Any, history: Any, stopped: bool,
            target: tuple[str, Any, Any], scores: tuple[Any, Any]) -> None:
    """The run's report on stdout: --json, or text lines (none with --quiet)."""
    (task, classes, class_weight), (train, test) = target, scores
    n_train, n_test = int(sets.X_train.shape[0]), int(sets.X_test.shape[0])
    speed = history.epochs * n_train / max(history.seconds, 1e-12)
    backend_json, backend_text = where.backend(net)
    if args.json:
        training = {
            "epochs": history.epochs, "lr": args.lr, "batch_size": args.batch_size,
            "alpha": args.alpha, "dropout": list(net.dropout), "seed": args.seed,
            "solver": args.solver, "momentum": args.momentum, "nesterov": args.nesterov,
            "lr_schedule": args.lr_schedule, "early_stopping": args.early_stopping,
            "class_weight": class_weight, "threads": history.threads,
            "threads_auto": history.threads_auto, "seconds": history.seconds,
            "samples_per_second": speed, "loss_curve": history.loss, **where.training_json}
        if args.early_stopping:  # the held-out rows, one value per epoch
            training["validation_scores"] = history.validation_scores
            training["validation_loss_curve"] = history.validation_loss
        return emit_json({
            "command": "train", "xpnet_version": __version__,
            "data": {"name": data.name, "rows": data.n_samples, "features": data.n_features,
                     "task": task, "classes": classes, "train_rows": n_train,
                     "test_rows": n_test, "standardized": bool(args.standardize)},
            "network": {"layer_sizes": list(net.layer_sizes),
                        "activations": list(net.activations), "output": net.output,
                        "loss": net.loss_name, "parameters": net.n_params},
            "backend": backend_json, **where.json,
            "training": {k: v for k, v in training.items() if k not in where.omitted},
            "loss": history.loss[-1], "interrupted": stopped or history.interrupted,
            "train": train, "test": test, "model": args.save, "plot": args.plot or None,
        })
    if args.quiet:
        return None
    kinds = (f"{len(classes)} classes ({', '.join(map(printable, classes[:10]))}"
             f"{', ...' if len(classes) > 10 else ''})" if classes else "regression target")
    split = (f"train {n_train} / test {n_test} rows{where.split_note}" if n_test
             else f"all {n_train} rows for training (no test split)")
    batch = "full batch" if args.batch_size is None else f"batches of {args.batch_size}"
    lines = [
        f"data      {printable(data.name)}: {data.n_samples} rows, {data.n_features} "
        f"features, {kinds}",
        f"          {split}{where.chunks_note}, features "
        + ("standardised (training-split statistics)" if sets.scaler else "as given"),
        *where.data_lines,
        f"network   {describe_net(net)}",
        f"backend   {backend_text}"
        + ("" if "threads" in where.omitted else
           f", threads {history.threads}{' (auto)' if history.threads_auto else ''}"),
        f"training  {history.epochs} epochs"
        + (f" (interrupted at epoch {history.epochs} of {args.epochs})" if stopped else "")
        + f", {batch}, {_solver_text(args)}, alpha {args.alpha:g}{dropout_text(net)}, "
        f"seed {args.seed}{_class_weight_text(class_weight)}",
        f"loss      {fmt(history.loss[-1])} (last epoch)   train {fmt(train['loss'])}"
        + (f"   test {fmt(test['loss'])}" if test else ""),
        *score_lines(task != "regression", train, test),
        f"time      {history.seconds:.2f} s, {rate(speed)} samples/s "
        f"({history.epochs} epochs x {n_train} rows{where.time_note})",
        *where.time_lines,
    ]
    lines += [f"saved     {printable(args.save)}"] if args.save else []
    lines += [f"plot      {printable(args.plot)}"] if args.plot else []
    print("\n".join(lines))
    return None
