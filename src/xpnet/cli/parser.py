"""The argument parser of every command, with help texts and examples."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterable, Sequence
from typing import NoReturn

from .. import __version__
from ..backends import BACKEND_NAMES
from ._common import (
    DEFAULT_EPOCHS,
    DEFAULT_EPOCHS_2D,
    DEFAULT_HIDDEN,
    DEFAULT_LR,
    DEFAULT_LR_REGRESSION,
    EXIT_ERROR,
    activation_names,
    dropout_rates,
    fraction,
    hidden_sizes,
    layer_sizes,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)
from .convert import cmd_convert
from .distributed import add_dask_options
from .export import cmd_export
from .inspection import cmd_backends, cmd_explain, cmd_gradcheck
from .models import cmd_evaluate, cmd_predict
from .train import class_weight_spec, cmd_train


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``xpnet: error: ...`` and exit status 2, naming the
    command's own help and suggesting the closest option or choice to a mistyped one."""

    def error(self, message: str) -> NoReturn:
        # "invalid choice: 'trian' (choose from 'train', ...)": argparse's wording since 3.9
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if match:
            choices = [c.strip().strip("'") for c in match.group(2).split(",")]
            suggestion = _closest(match.group(1), choices)
            if suggestion is not None:
                message += f"; did you mean {suggestion!r}?"
        self.exit(EXIT_ERROR, f"xpnet: error: {message} (see '{self.prog} --help')\n")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """As argparse, but unrecognised arguments are reported by the command's own parser
        (argparse leaves them to the top-level one, which knows none of its options)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            argv = [str(arg) for arg in (sys.argv[1:] if args is None else args)]
            self._command_parser(parsed)._unrecognized(extras, argv)
        return parsed

    def _command_parser(self, parsed: argparse.Namespace) -> _Parser:
        command = getattr(parsed, "command", None)
        for action in self._actions:
            choices = action.choices  # the subcommands' parsers by name, on add_subparsers'
            if isinstance(choices, dict) and command in choices:
                chosen = choices[command]
                return chosen if isinstance(chosen, _Parser) else self
        return self

    def _unrecognized(self, extras: list[str], argv: list[str]) -> NoReturn:
        message = f"unrecognized arguments: {' '.join(extras)}"
        options = [s for action in self._actions for s in action.option_strings]
        suggestions = [hint for option in _LIST_OPTIONS if option in options
                       for hint in [_list_hint(option, argv, extras)] if hint]
        for extra in extras:
            if extra.startswith("-"):
                suggestion = _closest(extra.split("=", 1)[0], options)
                if suggestion is not None and suggestion not in suggestions:
                    suggestions.append(suggestion)
        if suggestions:
            message += f"; did you mean {' or '.join(suggestions)}?"
        self.error(message)


# Options that take one comma-separated list: "--layers 16 16" means "--layers 16,16"
_LIST_OPTIONS = ("--layers", "--activation", "--dropout")


def _list_hint(option: str, argv: list[str], extras: list[str]) -> str | None:
    """``"--layers 16,16"`` when ``argv`` gives ``option`` several values separated by
    spaces (the first taken, the others left over in ``extras``), else None."""
    if option not in argv:
        return None
    start = len(argv) - argv[::-1].index(option)  # after the last occurrence
    values = []
    for token in argv[start:]:
        if token.startswith("-"):
            break
        values.append(token)
    if len(values) < 2 or not all(value in extras for value in values[1:]):
        return None
    return f"{option} {','.join(values)} (one comma-separated list)"


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

The model's feature columns are taken from a CSV by name, in any order; other
columns are ignored (noted on stderr). A target column, when present, is copied to
the output as true_<target>. .npz/.npy files have no column names: their columns
count by position. Features are standardised with the statistics stored in the model.
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
    "convert": """examples:
  xpnet convert data.csv data.zarr                     # target: the last column
  xpnet convert data.csv data.zarr --target label --chunk-rows 100000
  xpnet convert data.npz data.zarr --dtype float32 --overwrite

The store is one zarr group with arrays X (rows, features) and y (rows), chunked
along rows; xpnet train --data data.zarr reads it on Dask workers. The file is read
one block of rows at a time, never whole. The store is written in a temporary folder
beside it and renamed at the end; an existing store is replaced only with --overwrite.
Needs the dask extra: pip install 'xpnet[dask]'.
""",
    "export": """examples:
  xpnet export m.npz m.onnx                        # raw feature columns in, labels out
  xpnet export m.npz m.onnx --check                # and compare onnxruntime with xpnet
  xpnet export m.npz m.onnx --opset 18 --json

The graph is traced from xpnet's own forward code (ndonnx) and does what
'xpnet predict' does: one input X (N, n_features), float64, the columns in the
model's feature order (standardised inside the graph); outputs label and
probabilities (classifiers) or prediction (regression, in the target's units).
--check runs onnxruntime and xpnet on 256 sample rows and prints the largest
difference; the file is written only when they agree (exit status 1 otherwise).
Needs the onnx extra: pip install 'xpnet[onnx]'.
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
    p.add_argument("--layers", type=layer_sizes, default=[2, 4, 1], metavar="SIZES",
                   help="EVERY layer size, input to output, e.g. 2,4,1 (unlike 'xpnet train "
                   "--layers', which takes the hidden sizes only) (default: 2,4,1)")
    p.add_argument("--activation", type=activation_names, default="sigmoid", metavar="NAME",
                   help="hidden activation(s): sigmoid (or logistic), tanh, relu, identity; "
                   "one, or one per hidden layer like relu,tanh (default: sigmoid)")
    p.add_argument("--output", default="sigmoid", choices=("sigmoid", "softmax", "identity", "exp"),
                   help="output and loss (default: sigmoid)")
    p.add_argument("--alpha", type=nonnegative_float, default=0.0, help="L2 penalty")


def _add_data_options(p: argparse.ArgumentParser, required: bool,
                      target_default: str = "the last column") -> None:
    """--dataset/--data and --target; ``target_default`` says where the target comes
    from when --target is left out (evaluate and predict look first for the column the
    model was trained on, whose name the model file keeps)."""
    from ..data import DATASETS

    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument("--dataset", metavar="NAME",
                       help="built-in data set: " + ", ".join(DATASETS)
                       + ("" if required else " (default: moons)"))
    group.add_argument("--data", metavar="FILE",
                       help="CSV with a header row, .npz with X and y, or .npy (2-D)")
    p.add_argument("--target", metavar="COLUMN",
                   help=f"target column of --data: name or index (default: {target_default})")
    _add_csv_options(p)


def _add_csv_options(p: argparse.ArgumentParser) -> None:
    """How a delimited text file is read: its delimiter and whether it has a header."""
    p.add_argument("--delimiter", type=_delimiter, default=None, metavar="CHAR",
                   help="the CSV's delimiter: one character, or tab, space, semicolon, pipe "
                   "(default: ',' and tab for .tsv files)")
    p.add_argument("--no-header", dest="header", action="store_false",
                   help="the CSV has no header row: its columns are named x1..xn and the "
                   "target is the last unless --target gives its name or index (from 0)")


_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "space": " ", "semicolon": ";", "pipe": "|",
                    "comma": ","}


def _delimiter(text: str) -> str:
    value = _DELIMITER_NAMES.get(text.lower(), text)
    if len(value) != 1 or value in "\"\r\n":
        raise argparse.ArgumentTypeError(
            f"expected one character (or tab, space, semicolon, pipe); got {text!r}")
    return value


_BACKEND_TITLES = {"numpy": "NumPy", "cupy": "CuPy", "torch": "PyTorch", "jax": "JAX",
                   "array_api_strict": "array-api-strict"}


def _backends_text() -> str:
    """"NumPy, CuPy, PyTorch, JAX or array-api-strict": every backend xpnet has."""
    titles = [_BACKEND_TITLES.get(name, name) for name in BACKEND_NAMES]
    return ", ".join(titles[:-1]) + f" or {titles[-1]}" if len(titles) > 1 else titles[0]


def build_parser() -> argparse.ArgumentParser:
    from ..data import DATASETS

    parser = _Parser(
        prog="xpnet", formatter_class=_FORMATTER,
        description=_wrap("Train, evaluate and inspect multilayer perceptrons with explicit "
                          f"backpropagation on {_backends_text()}, or data-parallel on a "
                          "Dask cluster."),
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
    p.add_argument("--n-samples", type=positive_int, default=None, metavar="N",
                   help="rows of a generated data set (default: 400)")
    p.add_argument("--noise", type=nonnegative_float, default=None,
                   help="noise of a generated data set (default: per data set)")
    _add_backend_options(p)
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"),
                   help="floating-point type (default: float64)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="threads of the BLAS/OpenMP/torch pools while training (default: 1 "
                   "for small networks, the libraries' own setting for larger ones); with "
                   "--threads 1 also XLA's (JAX)")
    p.add_argument("--compile", action="store_true",
                   help="JAX: run each epoch as one compiled XLA program (a no-op on numpy "
                   "and array_api_strict; refused on torch and cupy)")
    p.add_argument("--no-cache", action="store_true",
                   help="JAX: keep no compiled programs on disk for later runs (default: "
                   "kept under $XPNET_CACHE_DIR or ~/.cache/xpnet/jax; see 'xpnet backends')")
    p.add_argument("--layers", type=hidden_sizes, default=hidden_sizes(DEFAULT_HIDDEN),
                   metavar="SIZES", help="the HIDDEN layer sizes only, e.g. 16,16 (the input "
                   "and output sizes come from the data; 'xpnet explain/gradcheck --layers' "
                   f"take every size); 'none' for no hidden layer (default: {DEFAULT_HIDDEN})")
    p.add_argument("--activation", type=activation_names, default="sigmoid", metavar="NAME",
                   help="hidden activation: sigmoid (or logistic, scikit-learn's name), tanh, "
                   "relu, identity; one, or one per hidden layer like relu,tanh "
                   "(default: sigmoid)")
    p.add_argument("--output", default=None, choices=("sigmoid", "softmax", "identity", "exp"),
                   help="output and loss (default: from the target: sigmoid for 2 classes, "
                   "softmax for more, identity for regression, exp for counts: Poisson)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="passes over the training rows (default: "
                   f"{DEFAULT_EPOCHS_2D} on the generated 2-D data sets, "
                   f"{DEFAULT_EPOCHS} on other data)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"learning rate (default: {DEFAULT_LR:g} for classification, "
                   f"{DEFAULT_LR_REGRESSION:g} for regression)")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help="mini-batch rows (default: full batch)")
    p.add_argument("--alpha", type=nonnegative_float, default=0.0,
                   help="L2 penalty alpha/(2m)·Σ‖W‖² (default: 0)")
    p.add_argument("--dropout", type=dropout_rates, default=0.0, metavar="P",
                   help="inverted dropout rate of the hidden units while training, one for "
                   "every hidden layer or one per hidden layer like 0.2,0.1; same masks on "
                   "every backend (default: 0, off)")
    p.add_argument("--solver", choices=("sgd", "adam", "lbfgs"), default="sgd",
                   help="update rule (default: sgd, plain gradient descent); lbfgs: SciPy's "
                   "L-BFGS-B on the full batch, --epochs its iterations (also with "
                   "--dask-workers: each evaluation one pass over the chunks)")
    p.add_argument("--momentum", type=nonnegative_float, default=0.0,
                   help="sgd momentum in [0, 1] (default: 0)")
    p.add_argument("--nesterov", action="store_true",
                   help="Nesterov momentum (sgd with --momentum > 0)")
    p.add_argument("--lr-schedule", choices=("constant", "invscaling", "adaptive"),
                   default="constant",
                   help="sgd learning-rate schedule, as in scikit-learn (default: constant)")
    p.add_argument("--early-stopping", action="store_true",
                   help="hold out 10%% of the training rows, stop when their score stops "
                   "improving and restore the best weights")
    p.add_argument("--n-iter-no-change", type=positive_int, default=None, metavar="N",
                   help="stop after N epochs without improvement by --tol (default: never "
                   "without --early-stopping, 10 with it)")
    p.add_argument("--class-weight", type=class_weight_spec, default=None, metavar="SPEC",
                   help="weigh each class's rows in the loss: 'balanced' (n_rows / "
                   "(n_classes * rows of the class), over the training rows) or "
                   "label=weight,... with labels as in the data, e.g. setosa=2,virginica=1 "
                   "(others weigh 1); classification only (default: none)")
    p.add_argument("--tol", type=nonnegative_float, default=1e-4,
                   help="improvement that counts for stopping (default: 1e-4)")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the weights, the split, shuffles and generated data "
                   "(default: 0)")
    p.add_argument("--test-fraction", type=fraction, default=0.25, metavar="F",
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
    p.add_argument("--log-every", type=positive_int, default=None, metavar="N",
                   help="write 'xpnet: epoch E/N loss L' to stderr after every N epochs "
                   "(for logs and batch jobs, where no progress bar is drawn)")
    add_dask_options(p)
    p.set_defaults(func=cmd_train)

    # evaluate
    p = sub.add_parser(
        "evaluate", help="loss and accuracy (or R² and MSE) of a saved model on data",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["evaluate"],
        description=_wrap("Score a saved model on a data set or file: loss and accuracy for "
                          "classifiers, loss, R² and MSE for regression."),
    )
    p.add_argument("model", metavar="MODEL", help="model file written by 'xpnet train --save'")
    _add_data_options(p, required=True, target_default=(
        "the model's target column if the file has it, else the last column"))
    p.add_argument("--split", choices=("all", "train", "test"), default="all",
                   help="rows to score: all, or the training/test split recorded in the model "
                   "(the same data as in training) (default: all)")
    _add_backend_options(p)
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="seed of a generated --dataset (default: the training run's seed)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    add_dask_options(p)
    p.set_defaults(func=cmd_evaluate)

    # predict
    p = sub.add_parser(
        "predict", help="predictions (and class probabilities) for every row",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["predict"],
        description=_wrap("Predict each row of a data file with a saved model; writes CSV "
                          "(row, prediction, one probability column per class)."),
    )
    p.add_argument("model", metavar="MODEL", help="model file written by 'xpnet train --save'")
    _add_data_options(p, required=True, target_default=(
        "the model's target column, copied to the output as true_<target> when the "
        "file has it"))
    p.add_argument("--out", metavar="FILE", help="write the CSV here instead of stdout")
    _add_backend_options(p)
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="seed of a generated --dataset (default: the training run's seed)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary line with --out")
    add_dask_options(p)
    p.set_defaults(func=cmd_predict)

    # backends
    p = sub.add_parser(
        "backends", help="which backends are installed and usable here, and how to install",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["backends"],
        description=_wrap("A table of every backend: installed or not, version, usable "
                          "devices, and the install line when missing."),
    )
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=cmd_backends)

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
    p.add_argument("--rows", type=positive_int, default=16, help="random rows (default: 16)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed (default: 0)")
    p.add_argument("--eps", type=positive_float, default=None,
                   help="finite-difference step (default: 1e-5 float64, 1e-2 float32)")
    p.add_argument("--threshold", type=positive_float, default=None,
                   help="largest relative error allowed (default: 1e-5 float64, 5e-2 float32)")
    p.add_argument("--max-entries", type=positive_int, default=2000, metavar="N",
                   help="entries checked at most, sampled when the network is larger "
                   "(default: 2000)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="print only on failure")
    p.set_defaults(func=cmd_gradcheck)

    # convert
    p = sub.add_parser(
        "convert", help="convert a CSV or .npz file to a zarr store, chunk by chunk",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["convert"],
        description=_wrap("Convert a data file (CSV with a header row, or .npz with X and "
                          "y) to a zarr store for training on Dask workers, reading it one "
                          "block of rows at a time: files larger than memory convert."),
    )
    p.add_argument("source", metavar="SOURCE", help="CSV or .npz data file")
    p.add_argument("dest", metavar="STORE", help="zarr store to create (a folder)")
    p.add_argument("--chunk-rows", type=positive_int, default=None, metavar="N",
                   help="rows per chunk (default: about 32 MiB of features per chunk)")
    p.add_argument("--target", metavar="COLUMN",
                   help="target column of a CSV: name or index (default: the last column)")
    _add_csv_options(p)
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"),
                   help="floating-point type of the features in the store (default: float64)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace STORE if it is an existing zarr store (never anything else)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_convert)

    # export
    p = sub.add_parser(
        "export", help="write a saved model as an ONNX file (onnxruntime, browsers, phones)",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["export"],
        description=_wrap("Export a model file to ONNX: the same predictions as 'xpnet "
                          "predict', served by any ONNX runtime without xpnet or Python."),
    )
    p.add_argument("model", metavar="MODEL", help="model file written by 'xpnet train --save'")
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--check", action="store_true",
                   help="run onnxruntime and xpnet on sample rows, print the largest "
                   "difference, write only if they agree")
    p.add_argument("--opset", type=positive_int, default=None,
                   help="ONNX opset to write (default: 21)")
    p.add_argument("--batch", type=positive_int, default=None, metavar="N",
                   help="a fixed number of rows (default: any)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_export)

    # explain
    p = sub.add_parser(
        "explain", help="the forward and backward equations of a network, with shapes",
        formatter_class=_FORMATTER, epilog=_EXAMPLES["explain"],
        description=_wrap("Print the forward pass, loss and backpropagation of the given "
                          "network layer by layer, with every array's shape: the lesson's "
                          "derivation, corrected and made concrete."),
    )
    _add_network_options(p)
    p.add_argument("--rows", type=positive_int, default=None,
                   help="batch size to show in shapes (default: the symbol m)")
    p.set_defaults(func=cmd_explain)
    return parser
