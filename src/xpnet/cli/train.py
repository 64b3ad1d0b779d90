"""``xpnet train``: train a network, report it, save the model and plot."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any

import numpy as np

from .. import __version__
from ..backends import to_numpy
from ._common import (
    DEFAULT_EPOCHS,
    DEFAULT_EPOCHS_2D,
    DEFAULT_LR,
    DEFAULT_LR_ADAM,
    DEFAULT_LR_REGRESSION,
    _backend,
    _count,
    _describe_net,
    _device,
    _device_name,
    _dropout_text,
    _emit_json,
    _fail,
    _fmt,
    _load_data,
    _score_lines,
    printable,
    rate,
)
from ._paths import check_paths

EXIT_DIVERGED = 1  # training ran but produced no usable network (nothing is written)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class TrainingAborted(BaseException):
    """A second Ctrl-C during training: stop at once and write nothing (exit 130).

    A BaseException, not a KeyboardInterrupt, so that ``fit`` (which turns a
    KeyboardInterrupt into an orderly stop) lets it through.
    """


def log_epoch(every: int | None, done: int, epochs: int, loss: float) -> None:
    """``--log-every N``: ``xpnet: epoch E/N loss L`` on stderr after every N epochs."""
    if every and done % every == 0:
        sys.stderr.write(f"xpnet: epoch {done}/{epochs} loss {_fmt(loss)}\n")
        sys.stderr.flush()


class _StopAfterEpoch:
    """While training, the first Ctrl-C (SIGINT) asks ``fit`` to stop after the epoch in
    progress; a second one raises :class:`TrainingAborted`.

    Used as a context manager around ``fit`` (it installs and restores the SIGINT
    handler, in the main thread only) and as its epoch callback: the handler only sets a
    flag, and the callback, which runs once the epoch is complete, raises the
    KeyboardInterrupt that makes ``fit`` return the history marked ``interrupted``. So
    the weights kept are exactly those after a complete epoch.
    """

    def __init__(self, progress: Callable[[int, float], Any], newline: bool,
                 log_every: int | None = None, epochs: int = 0) -> None:
        self.progress = progress
        self.newline = newline  # a progress bar is on the terminal: start a fresh line
        self.log_every = log_every  # --log-every: a line on stderr after every N epochs
        self.epochs = epochs
        self.requested = False
        self.epochs_done = 0
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _StopAfterEpoch:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise TrainingAborted
        self.requested = True
        sys.stderr.write(f"{chr(10) if self.newline else ''}xpnet: stopping after epoch "
                         f"{self.epochs_done + 1}; press Ctrl-C again to abort\n")
        sys.stderr.flush()

    def __call__(self, epoch: int, loss: float) -> None:
        self.epochs_done = epoch + 1
        self.progress(epoch, loss)
        log_epoch(self.log_every, self.epochs_done, self.epochs, loss)
        if self.requested:
            raise KeyboardInterrupt  # fit keeps this complete epoch and returns


def _optimizer(args: argparse.Namespace) -> Any:
    """The optimiser named by --solver, with its options."""
    from ..optim import get_optimizer

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


def _class_weight_spec(text: str) -> str | list[tuple[str, float]]:
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
        _fail("--class-weight applies to classification targets; this target is a "
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
            _fail(f"--class-weight: {label!r} is not one of the classes ({listed})")
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
    text = f"lr {args.lr:g}"
    if args.solver == "adam":
        return f"adam, {text}"
    if args.momentum:
        text += f", {'nesterov ' if args.nesterov else ''}momentum {args.momentum:g}"
    if args.lr_schedule != "constant":
        text += f" ({args.lr_schedule})"
    return text + (", early stopping" if args.early_stopping else "")


def _check_generated_size(args: argparse.Namespace) -> None:
    """Refuse a generated data set larger than memory before generating it."""
    from .. import _memory
    from ..data import GENERATED

    if args.data is not None or args.n_samples is None:
        return
    if (args.dataset or "moons") not in GENERATED:
        return  # _load_data says that --n-samples applies to generated sets only
    clause = _memory.too_large(_memory.data_bytes(args.n_samples, 3))
    if clause is not None:
        _fail(f"--n-samples {args.n_samples}: generating the data set {clause}; "
              "ask for fewer rows")


def _on_host(args: argparse.Namespace) -> bool:
    """Whether the network computes in host memory (not on a GPU)."""
    if args.backend in ("numpy", "array_api_strict"):
        return True
    return args.backend == "torch" and str(args.device or "cpu").startswith("cpu")


def _check_training_size(
    args: argparse.Namespace, sizes: list[int], n_rows: int, data_name: str
) -> None:
    """Refuse, before building the network, a run whose parameters, data and one batch's
    activations need more memory than is available; name the option to change."""
    from .. import _memory

    batch_rows = min(args.batch_size or n_rows, n_rows)
    found = _memory.training_too_large(sizes, n_rows, batch_rows, np.dtype(args.dtype).itemsize,
                                       on_host=_on_host(args))
    if found is None:
        return
    part, clause = found
    layers = ",".join(map(str, args.layers)) or "none"
    if part == "parameters":
        _fail(f"--layers {layers} ({_memory.n_parameters(sizes):,} parameters): "
              f"training {clause}; use smaller layers")
    if part == "data":
        _fail(f"{data_name}: training on {n_rows:,} rows {clause}; use fewer rows")
    batch = f"--batch-size {args.batch_size}" if args.batch_size else "a full batch"
    _fail(f"--layers {layers} with {batch}: training {clause}; "
          "use a smaller --batch-size or smaller layers")


def _check_per_layer_options(args: argparse.Namespace) -> None:
    """--activation and --dropout lists must give one entry per hidden layer."""
    n_hidden = len(args.layers)
    if isinstance(args.activation, list) and len(args.activation) != n_hidden:
        _fail(f"--activation lists {_count(len(args.activation), 'name')} for "
              f"{_count(n_hidden, 'hidden layer')}; give one name, or one per hidden layer")
    if isinstance(args.dropout, list) and len(args.dropout) != n_hidden:
        _fail(f"--dropout lists {_count(len(args.dropout), 'rate')} for "
              f"{_count(n_hidden, 'hidden layer')}; give one rate, or one per hidden layer")


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


def _cmd_train(args: argparse.Namespace) -> int:
    from ..data import GENERATED, Standardizer, encode_target, split_indices
    from ..io import save
    from ..metrics import score
    from ..network import MLP
    from ..progress import EpochProgress
    from ..train import DivergenceError
    from .distributed import on_cluster, train_on_cluster

    if on_cluster(args):  # --dask-workers/--scheduler: data-parallel on Dask
        return train_on_cluster(args)
    check_paths({"--save": ("model file", args.save), "--plot": ("plot", args.plot)},
                {"--data": ("data file", args.data)})
    device = _device(args.device)
    if args.threads is not None:
        from ..threads import xla_flags

        xla_flags(args.threads)  # XLA sizes its pool when JAX starts: before the backend loads
    _backend(args.backend, device)
    if args.compile:
        from ..compiled import check_compile

        try:
            check_compile(True, args.backend)
        except ValueError as exc:
            _fail(f"--compile: {exc}")
    if args.plot:
        from ..plotting import check_plot_path

        check_plot_path(args.plot)  # matplotlib installed, file type known: before training

    _check_generated_size(args)
    data = _load_data(args)
    if data.y is None:
        _fail(f"{data.name}: no target column to train on")
    if args.epochs is None:
        generated = args.data is None and (args.dataset or "moons") in GENERATED
        args.epochs = DEFAULT_EPOCHS_2D if generated else DEFAULT_EPOCHS
    target = encode_target(data.y, args.output)
    classification = target.task != "regression"
    class_weight, class_weight_shown = _class_weight(args.class_weight, target.classes)
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
    # a Poisson (exp) target stays as it is: standardising would make counts negative
    if not classification and args.standardize and target.output != "exp":
        y_scaler = Standardizer.fit(y_train[:, None])
        y_train_fit = (y_train - y_scaler.mean[0]) / y_scaler.scale[0]
        y_test_fit = (y_test - y_scaler.mean[0]) / y_scaler.scale[0]
    else:
        y_train_fit, y_test_fit = y_train, y_test
    n_out = len(target.classes) if target.output == "softmax" and target.classes else 1
    sizes = [data.n_features, *args.layers, n_out]
    _check_per_layer_options(args)
    note_full_layer_list(args, data.n_features)
    activation = args.activation
    _check_training_size(args, sizes, len(train_rows), data.name)
    net = MLP(sizes, activation=activation, output=target.output, backend=args.backend,
              device=device, dtype=args.dtype, seed=args.seed, alpha=args.alpha,
              dropout=args.dropout)

    show_progress = sys.stdout.isatty() and not args.quiet and not args.json
    optimizer = _optimizer(args)
    try:
        # NumPy's overflow/invalid warnings would only precede the divergence error below
        with EpochProgress(args.epochs, enabled=show_progress) as progress, \
                _StopAfterEpoch(progress, newline=show_progress, log_every=args.log_every,
                                epochs=args.epochs) as stop_after_epoch, \
                np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                warnings.catch_warnings():
            # the summary says it was interrupted: no need for fit's warning too
            warnings.filterwarnings("ignore", "training interrupted", UserWarning)
            history = net.fit(X_train, y_train_fit, epochs=args.epochs, lr=args.lr,
                              batch_size=args.batch_size, callback=stop_after_epoch,
                              optimizer=optimizer, early_stopping=args.early_stopping,
                              n_iter_no_change=args.n_iter_no_change, tol=args.tol,
                              threads=args.threads, compile=args.compile,
                              class_weight=class_weight)
    except DivergenceError as exc:
        sys.stderr.write(f"xpnet: error: training diverged at epoch {exc.epoch}: {exc.reason}; "
                         f"try a smaller --lr (got {args.lr:g}); nothing was written\n")
        return EXIT_DIVERGED
    # a Ctrl-C after the last epoch's callback still counts: the user asked to stop
    interrupted = history.interrupted or stop_after_epoch.requested
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
        from ..plotting import plot_training

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
                "alpha": args.alpha, "dropout": list(net.dropout), "seed": args.seed,
                "solver": args.solver,
                "momentum": args.momentum, "nesterov": args.nesterov,
                "lr_schedule": args.lr_schedule, "early_stopping": args.early_stopping,
                "class_weight": class_weight_shown,
                "seconds": history.seconds, "samples_per_second": samples_per_second,
                "loss_curve": history.loss,
            },
            "loss": history.loss[-1],
            "interrupted": interrupted,
            "train": train_scores,
            "test": test_scores,
            "model": args.save,
            "plot": args.plot,
        })
        return EXIT_INTERRUPTED if interrupted else 0
    if args.quiet:
        return EXIT_INTERRUPTED if interrupted else 0
    kinds = (f"{len(target.classes)} classes "
             f"({', '.join(map(printable, target.classes[:10]))}"
             f"{', ...' if len(target.classes) > 10 else ''})" if target.classes
             else "regression target")
    split = (f"train {len(train_rows)} / test {len(test_rows)} rows" if len(test_rows)
             else f"all {len(train_rows)} rows for training (no test split)")
    batch = "full batch" if args.batch_size is None else f"batches of {args.batch_size}"
    lines = [
        f"data      {printable(data.name)}: {data.n_samples} rows, {data.n_features} features, "
        f"{kinds}",
        f"          {split}, features "
        + ("standardised (training-split statistics)" if scaler else "as given"),
        f"network   {_describe_net(net)}",
        f"backend   {net.backend} on {_device_name(net)}, {net.dtype}",
        f"training  {history.epochs} epochs"
        + (f" (interrupted at epoch {history.epochs} of {args.epochs})" if interrupted else "")
        + f", {batch}, {_solver_text(args)}, "
        f"alpha {args.alpha:g}{_dropout_text(net)}, seed {args.seed}"
        f"{_class_weight_text(class_weight_shown)}",
        f"loss      {_fmt(history.loss[-1])} (last epoch)   train {_fmt(train_scores['loss'])}"
        + (f"   test {_fmt(test_scores['loss'])}" if test_scores else ""),
    ]
    lines += _score_lines(classification, train_scores, test_scores)
    lines.append(f"time      {history.seconds:.2f} s, {rate(samples_per_second)} samples/s "
                 f"({history.epochs} epochs x {m_train} rows, backend synchronised)")
    if args.save:
        lines.append(f"saved     {printable(args.save)}")
    if args.plot:
        lines.append(f"plot      {printable(args.plot)}")
    print("\n".join(lines))
    return EXIT_INTERRUPTED if interrupted else 0
