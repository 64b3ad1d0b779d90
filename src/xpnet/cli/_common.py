"""Shared pieces of the command line: exit codes, option types, errors, data loading,
formatting."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from .._memory import n_parameters
from ..backends import BackendUnavailableError, get_backend

EXIT_ERROR = 2  # a user error: one line on stderr
EXIT_CHECK_FAILED = 1  # gradcheck: a gradient does not match
EXIT_DIVERGED = 1  # training ran but produced no usable network (nothing is written)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C

# The lesson's network on two moons: 2-8-1 sigmoid, full batch, lr 3. Larger data sets
# (digits, user files) get fewer epochs by default so that a first run stays quick.
DEFAULT_HIDDEN = "8"
DEFAULT_EPOCHS_2D = 3000
DEFAULT_EPOCHS = 500
DEFAULT_LR = 3.0
DEFAULT_LR_REGRESSION = 0.3  # squared error with a linear output diverges at lr 3
DEFAULT_LR_ADAM = 0.01  # Adam's steps are ~lr per weight, whatever the gradient's scale
# Bounds of integer options: larger values help no run, and echoed in a report they
# would print as hundreds of digits.
MAX_LAYER_SIZE = 10**9
MAX_COUNT = 10**15


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# --------------------------------------------------------------------------- helpers
# Characters a terminal acts on instead of showing: C0/C1 controls (ESC starts colour,
# title and cursor sequences; a newline forges a line), format characters (bidi
# overrides reorder what is shown), line/paragraph separators and lone surrogates.
_HIDDEN = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: object) -> str:
    """``str(text)`` with every control character escaped as Python writes it.

    For any string that comes from a file (model header fields, CSV column names, class
    labels): ``"a\x1b[31m\nb"`` prints as ``a\x1b[31m\nb``, one line, no colour. Other
    characters (accents, ``R²``, CJK) are kept as they are.
    """
    out = []
    for char in str(text):
        if unicodedata.category(char) not in _HIDDEN:
            out.append(char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


class _TerminalSafe:
    """A text stream that escapes control characters inside each line it is given, for
    CSV rows shown on a terminal (a file or a pipe gets the labels unchanged)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        body, newline = (text[:-1], "\n") if text.endswith("\n") else (text, "")
        return self._stream.write(printable(body) + newline)


def terminal_safe(stream: Any) -> Any:
    """``stream`` itself, or a :class:`_TerminalSafe` wrapper when it is a terminal."""
    isatty = getattr(stream, "isatty", None)
    return _TerminalSafe(stream) if isatty is not None and isatty() else stream


def fail(message: str) -> NoReturn:
    raise CLIError(message)


def _sizes(text: str, what: str, allow_empty: bool) -> list[int]:
    text = text.strip()
    if allow_empty and text.lower() == "none":
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if any(s > MAX_LAYER_SIZE for s in sizes):
        raise argparse.ArgumentTypeError(
            f"{what} must be at most {MAX_LAYER_SIZE:,} units per layer; got a size of "
            f"{_digits(max(sizes))}")
    if not sizes or any(s < 1 for s in sizes):
        # '0' once meant no hidden layer while '0,8' was an error: only 'none' says that
        hint = "; for no hidden layer, use 'none'" if allow_empty else ""
        raise argparse.ArgumentTypeError(
            f"{what} must be positive integers separated by commas, like 16,16{hint}; "
            f"got {text!r}"
        )
    return sizes


def hidden_sizes(text: str) -> list[int]:
    return _sizes(text, "hidden layer sizes", allow_empty=True)


def layer_sizes(text: str) -> list[int]:
    sizes = _sizes(text, "layer sizes", allow_empty=False)
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError(
            f"layer sizes need at least an input and an output size, like 2,4,1; got {text!r}"
        )
    return sizes


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1); got {text!r}")
    return value


def _digits(value: int) -> str:
    """A user's integer in an error of bounded width: as typed, or its digit count."""
    return str(value) if value < 10**15 else f"{len(str(value))} digits"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer up to 1e15; got {_digits(value)}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}")
    return value


def dropout_rates(text: str) -> float | list[float]:
    """``--dropout 0.2`` (every hidden layer) or ``0.2,0.1`` (one per hidden layer)."""
    rates = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not 0.0 <= value < 1.0:
            raise argparse.ArgumentTypeError(
                f"must be a rate in [0, 1), or one per hidden layer like 0.2,0.1; got {text!r}"
            )
        rates.append(value)
    return rates[0] if len(rates) == 1 else rates


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0; got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; got {text!r}")
    return value


def activation_names(text: str) -> str | list[str]:
    names = [part.strip() for part in text.split(",")]
    return names[0] if len(names) == 1 else names


def parse_device(text: str | None) -> Any:
    """``--device 1`` means CUDA device 1; other values pass through (``cpu``, ``cuda:0``)."""
    if text is not None and text.isdigit():
        return int(text)
    return text


def on_host(args: argparse.Namespace) -> bool:
    """Whether ``--backend``/``--device`` compute in host memory (not on a GPU)."""
    if args.backend in ("numpy", "array_api_strict"):
        return True
    return args.backend == "torch" and str(args.device or "cpu").startswith("cpu")


def check_parameters(args: argparse.Namespace, sizes: list[int], clause: str | None) -> None:
    """Fail when the network's parameters ``clause`` (e.g. need more memory than is
    available); nothing when ``clause`` is None."""
    if clause is not None:
        fail(f"--layers {','.join(map(str, args.layers)) or 'none'} "
             f"({n_parameters(sizes):,} parameters): training {clause}; use smaller layers")


def check_backend(name: str, device: Any) -> None:
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
        fail(message)


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON's ``null``)
    and NumPy scalars made Python numbers: what :func:`json.dumps` writes of it is then
    standard JSON (Python would write the tokens ``NaN`` and ``Infinity``, which strict
    parsers refuse)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def emit_json(obj: dict[str, Any]) -> None:
    text = json.dumps(strict_json(obj), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")


def device_name(net: Any) -> str:
    return net.array_backend.device_name  # canonical: "cpu", "cuda:0"


#: Beyond this magnitude a report writes numbers in exponent form, never 300 digits.
_FIXED_LIMIT = 1e6


def fixed(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals (``0.9733``, ``-12.5000``), or in exponent form
    with 6 significant digits from a magnitude of 1e6 (``1.04150e+302`` is written
    ``1.0415e+302``): of bounded width whatever the value (``nan``, ``inf`` too)."""
    value = float(value)
    if math.isfinite(value) and abs(value) >= _FIXED_LIMIT:
        return f"{value:.6g}"
    return f"{value:.{digits}f}"


def fmt(value: float, digits: int = 4) -> str:
    """A loss or an error for a report line: ``0.0521``, ``1.234e-05``, ``2.95409e+302``."""
    value = float(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3e}"
    return fixed(value, digits)


def rate(value: float) -> str:
    """A throughput such as samples/s: ``766,473``, or ``1.2e+16`` when that large."""
    return f"{value:,.0f}" if abs(value) < 1e15 else f"{value:.3g}"


def cell_text(value: Any) -> str:
    """A number or label of an array for a CSV cell, exact and of bounded width: labels
    as they are, integral numbers below 1e16 as integers (``3``), other numbers by their
    shortest round-trip form (``6.782788445840636e+150``, never 151 digits)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**16 else repr(float(value))
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def describe_net(net: Any) -> str:
    acts = ", ".join(net.activations) if net.activations else "none"
    return (
        f"{'-'.join(map(str, net.layer_sizes))}  hidden {acts}, output {net.output}, "
        f"{net.loss_name.replace('_', ' ')}, {net.n_params} parameters"
    )


def read_file(args: argparse.Namespace, **options: Any) -> Any:
    """``load_file(args.data, ...)`` with the CSV options of the command line; what the
    reader decided on the user's behalf (a dropped row index) is noted on stderr."""
    from ..data import load_file

    data = load_file(args.data, delimiter=getattr(args, "delimiter", None),
                     header=getattr(args, "header", True), **options)
    if not getattr(args, "quiet", False):
        for note in data.notes:
            print(f"xpnet: note: {note}", file=sys.stderr)
    return data


def load_data(args: argparse.Namespace, n_features: int | None = None,
              default_target: str | None = None) -> Any:
    """The data set of ``--dataset``/``--data`` (``--target`` picks a file's column)."""
    from ..data import DataError, load_dataset

    if getattr(args, "data", None):
        if getattr(args, "n_samples", None) is not None or getattr(args, "noise", None) is not None:
            fail("--n-samples and --noise apply to the generated --dataset sets, not to --data")
        target = args.target
        if target is None and default_target is not None:
            try:  # the model's target column, when the file has it
                return read_file(args, target=default_target, n_features=n_features)
            except DataError as exc:
                if "not found" not in str(exc):
                    raise
        return read_file(args, target=target, n_features=n_features)
    if args.target is not None:
        fail("--target picks a column of a --data file; built-in data sets have their target")
    return load_dataset(
        args.dataset or "moons",
        n_samples=getattr(args, "n_samples", None),
        noise=getattr(args, "noise", None),
        seed=args.seed,
    )


def score_lines(classification: bool, train: dict[str, Any],
                test: dict[str, Any] | None) -> list[str]:
    """The report's accuracy (or R² and MSE) lines of a training run, train and test."""
    def both(key: str, show: Any) -> str:
        return f"train {show(train[key])}" + (f"   test {show(test[key])}" if test else "")

    if classification:
        return [f"accuracy  {both('accuracy', fixed)}"]
    return [f"R²        {both('r2', fixed)}", f"MSE       {both('mse', fmt)}"]


def evaluation_lines(result: dict[str, Any], task: str) -> list[str]:
    """``xpnet evaluate``'s score lines: loss, then accuracy or R² and MSE."""
    lines = [f"loss      {fmt(result['loss'])}"]
    if task == "regression":
        return lines + [f"R²        {fixed(result['r2'])}", f"MSE       {fmt(result['mse'])}"]
    return lines + [f"accuracy  {fixed(result['accuracy'])}"]


def dropout_text(net: Any) -> str:
    """", dropout 0.3" (or "0.3,0.1" per layer) for the training line; "" without."""
    rates = net.dropout
    if not any(rates):
        return ""
    return ", dropout " + (f"{rates[0]:g}" if len(set(rates)) == 1
                           else ",".join(f"{p:g}" for p in rates))


def plural(n: int, noun: str) -> str:
    """``1 name``, ``2 names``, ``0 hidden layers``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def log_epoch(every: int | None, done: int, epochs: int, loss: float) -> None:
    """``--log-every N``: ``xpnet: epoch E/N loss L`` on stderr after every N epochs."""
    if every and done % every == 0:
        sys.stderr.write(f"xpnet: epoch {done}/{epochs} loss {fmt(loss)}\n")
        sys.stderr.flush()


@dataclass
class TrainingSets:
    """``xpnet train``'s training and test sets as the network sees them (standardised
    when asked), with the statistics used; NumPy arrays, or Dask arrays on a cluster."""

    X_train: Any
    y_train: Any
    X_test: Any
    y_test: Any
    scaler: Any = None
    y_scaler: Any = None

    @property
    def target_stats(self) -> tuple[float, float]:
        """``(mean, scale)`` of a standardised regression target, else ``(0, 1)``."""
        if self.y_scaler is None:
            return 0.0, 1.0
        return float(self.y_scaler.mean[0]), float(self.y_scaler.scale[0])


class Where:
    """Where ``xpnet train`` runs (``train.Local``, ``distributed.OnCluster``): its methods
    open, encode, split, fit and score there; these attributes, what its report adds."""

    split_note = ""  # after "train N / test M rows"
    time_note = ""  # in the time line's parentheses
    omitted: tuple[str, ...] = ()  # --json "training" fields that do not apply there

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.net_options: dict[str, Any] = {}  # MLP's backend and device
        self.json: dict[str, Any] = {}  # --json fields after "backend"
        self.training_json: dict[str, Any] = {}  # after the "training" fields
        self.chunks_note = ""  # after the split
        self.data_lines: list[str] = []  # after the data lines
        self.time_lines: list[str] = []  # after the time line

    def session(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()
