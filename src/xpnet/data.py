"""Data sets, user files, splitting and standardisation.

Data are NumPy arrays on the host; nothing here does math on the network's backend.

- Generated 2-D sets: :func:`make_xor`, :func:`make_moons`, :func:`make_circles`,
  :func:`make_spirals`, :func:`make_flower`.
- scikit-learn's bundled sets (``digits``, ``breast_cancer``, ``iris``, ``wine``,
  ``diabetes``) through the optional ``sklearn`` extra.
- User files: CSV (read by pyarrow, :mod:`xpnet._csv`), ``.npz`` with ``X`` and ``y``,
  ``.npy`` (2-D, target in one column). Every problem raises :class:`DataError` with one clear line.
- :class:`Standardizer`: statistics from the training split only.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._convert import convert_to_zarr
from ._csv import is_text_file, read_csv, resolve_column, split_suffix
from ._dataerrors import (
    DataError,
    MissingColumnsError,
    check_data_memory,
    check_file,
    check_npz_members,
    check_path,
)
from ._memory import data_bytes, too_large
from ._npyfile import (
    NPY_MAGIC,
    ZIP_MAGIC,
    ArrayFileError,
    ArrayInfo,
    NpzReader,
    read_npy,
)
from ._validation import check_nonnegative_float, check_positive_int

__all__ = [
    "DATASETS",
    "DataError",
    "GENERATED",
    "MissingColumnsError",
    "check_file",
    "check_path",
    "convert_to_zarr",
    "Dataset",
    "Standardizer",
    "Target",
    "encode_labels",
    "encode_target",
    "load_dataset",
    "load_file",
    "make_circles",
    "make_flower",
    "make_moons",
    "make_spirals",
    "make_xor",
    "split_indices",
    "stratified_split",
    "train_test_split",
]


def make_moons(
    n_samples: int = 400, noise: float = 0.1, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: ``X (n_samples, 2)`` float64, ``y (n_samples,)`` 0/1.

    The first ``ceil(n/2)`` rows form the upper moon (class 0), the rest the lower one
    (class 1); Gaussian noise of standard deviation ``noise`` is added to every coordinate.

    Parameters
    ----------
    n_samples : int, default 400
        Rows to generate.
    noise : float, default 0.1
        Standard deviation of the Gaussian noise.
    seed : int or None, default 0
        Seed of ``numpy.random.default_rng``.
    """
    n_samples, noise = _check_seed_noise(n_samples, noise)
    rng = np.random.default_rng(seed)
    n_upper = (n_samples + 1) // 2
    n_lower = n_samples - n_upper
    t_upper = np.linspace(0.0, math.pi, n_upper)
    t_lower = np.linspace(0.0, math.pi, n_lower)
    upper = np.column_stack([np.cos(t_upper), np.sin(t_upper)])
    lower = np.column_stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)])
    X = np.vstack([upper, lower]) + rng.normal(0.0, noise, size=(n_samples, 2))
    y = np.concatenate([np.zeros(n_upper, dtype=np.int64), np.ones(n_lower, dtype=np.int64)])
    return X, y


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float = 0.25, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle rows with ``seed`` and hold out ``test_fraction`` of them (at least one row
    on each side). ``test_fraction=0`` returns empty test arrays.

    Parameters
    ----------
    X : ndarray ``(m, n_features)``
        Features.
    y : ndarray ``(m,)``
        Targets.
    test_fraction : float, default 0.25
        The share of rows held out.
    seed : int or None, default 0
        Seed of the shuffle.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1); got {test_fraction!r}")
    m = X.shape[0]
    n_test = int(round(m * test_fraction))
    if test_fraction > 0:
        n_test = min(max(n_test, 1), m - 1)
    order = np.random.default_rng(seed).permutation(m)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


# --------------------------------------------------------------------------- generators
def _check_seed_noise(n_samples: int, noise: float) -> tuple[int, float]:
    n_samples = check_positive_int("n_samples", n_samples)
    noise = check_nonnegative_float("noise", noise)
    # Refuse before allocating: a billion rows would otherwise swap for many seconds and
    # end in an unexpected MemoryError (2 features + the label, a few copies each).
    clause = too_large(data_bytes(n_samples, 3))
    if clause is not None:
        raise DataError(f"n_samples={n_samples} {clause}; ask for fewer rows")
    return n_samples, noise


def make_xor(
    n_samples: int = 400, noise: float = 0.25, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Four Gaussian blobs at ``(±1, ±1)``; class 1 where the two signs differ (XOR).

    Returns ``X (n_samples, 2)`` float64 and ``y (n_samples,)`` 0/1. ``noise`` is the
    standard deviation of each blob.

    Parameters
    ----------
    n_samples : int, default 400
        Rows to generate.
    noise : float, default 0.25
        Standard deviation of the Gaussian noise.
    seed : int or None, default 0
        Seed of ``numpy.random.default_rng``.
    """
    n_samples, noise = _check_seed_noise(n_samples, noise)
    rng = np.random.default_rng(seed)
    corner = np.arange(n_samples) % 4  # balanced: 0 (+,+), 1 (-,+), 2 (-,-), 3 (+,-)
    signs = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])[corner]
    X = signs + rng.normal(0.0, noise, size=(n_samples, 2))
    y = (signs[:, 0] != signs[:, 1]).astype(np.int64)
    return X, y


def make_circles(
    n_samples: int = 400, noise: float = 0.1, factor: float = 0.5, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A circle of radius 1 (class 0) around a circle of radius ``factor`` (class 1).

    Parameters
    ----------
    n_samples : int, default 400
        Rows to generate.
    noise : float, default 0.1
        Standard deviation of the Gaussian noise.
    factor : float, default 0.5
        Radius of the inner circle.
    seed : int or None, default 0
        Seed of ``numpy.random.default_rng``.
    """
    n_samples, noise = _check_seed_noise(n_samples, noise)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must lie in (0, 1); got {factor!r}")
    rng = np.random.default_rng(seed)
    n_outer = (n_samples + 1) // 2
    n_inner = n_samples - n_outer
    t_outer = np.linspace(0.0, 2 * math.pi, n_outer, endpoint=False)
    t_inner = np.linspace(0.0, 2 * math.pi, n_inner, endpoint=False)
    outer = np.column_stack([np.cos(t_outer), np.sin(t_outer)])
    inner = factor * np.column_stack([np.cos(t_inner), np.sin(t_inner)])
    X = np.vstack([outer, inner]) + rng.normal(0.0, noise, size=(n_samples, 2))
    y = np.concatenate([np.zeros(n_outer, dtype=np.int64), np.ones(n_inner, dtype=np.int64)])
    return X, y


def make_spirals(
    n_samples: int = 400,
    noise: float = 0.05,
    n_classes: int = 2,
    turns: float = 1.5,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_classes`` interleaved spiral arms (class ``j`` is arm ``j``), radius in (0, 1].

    Arm ``j`` at parameter ``t`` in ``(0, 1]`` lies at radius ``t`` and angle
    ``2π·turns·t + 2πj/n_classes``; ``noise`` is added to every coordinate.

    Parameters
    ----------
    n_samples : int, default 400
        Rows to generate.
    noise : float, default 0.05
        Standard deviation of the Gaussian noise.
    n_classes : int, default 2
        Spiral arms, one per class.
    turns : float, default 1.5
        Turns of each arm.
    seed : int or None, default 0
        Seed of ``numpy.random.default_rng``.
    """
    n_samples, noise = _check_seed_noise(n_samples, noise)
    n_classes = check_positive_int("n_classes", n_classes)
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2; got {n_classes}")
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples, dtype=np.int64) % n_classes
    y.sort()
    X = np.empty((n_samples, 2))
    for j in range(n_classes):
        rows = np.flatnonzero(y == j)
        t = np.linspace(0.08, 1.0, rows.size)
        angle = 2 * math.pi * (turns * t + j / n_classes)
        X[rows] = np.column_stack([t * np.cos(angle), t * np.sin(angle)])
    X += rng.normal(0.0, noise, size=X.shape)
    return X, y


def make_flower(
    n_samples: int = 400, noise: float = 0.2, petals: int = 4, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The planar "flower": points on the rose ``r = 4 sin(petals·θ)``, two classes.

    Class 0 takes angles in ``[0, π)``, class 1 in ``[π, 2π)`` (both jittered by
    ``noise``), and the radius is jittered by ``noise`` too, so each petal is shared by
    the two classes on either side of it, the pattern that a linear classifier cannot
    separate but one hidden layer can.

    Parameters
    ----------
    n_samples : int, default 400
        Rows to generate.
    noise : float, default 0.2
        Standard deviation of the Gaussian noise.
    petals : int, default 4
        Petals of the rose.
    seed : int or None, default 0
        Seed of ``numpy.random.default_rng``.
    """
    n_samples, noise = _check_seed_noise(n_samples, noise)
    petals = check_positive_int("petals", petals)
    rng = np.random.default_rng(seed)
    n_first = (n_samples + 1) // 2
    parts, labels = [], []
    for label, count in enumerate((n_first, n_samples - n_first)):
        theta = np.linspace(label * math.pi, (label + 1) * math.pi, count)
        theta = theta + rng.normal(0.0, noise, count)
        radius = 4.0 * np.sin(petals * theta) + rng.normal(0.0, noise, count)
        parts.append(np.column_stack([radius * np.sin(theta), radius * np.cos(theta)]))
        labels.append(np.full(count, label, dtype=np.int64))
    return np.vstack(parts), np.concatenate(labels)


# --------------------------------------------------------------------------- data sets
@dataclass
class Dataset:
    """Features and (optionally) targets, as loaded from a data set or a file.

    ``X`` is ``(m, n_features)`` float64 and finite; ``y`` is ``(m,)`` (numbers, or
    strings for labelled classes) or ``None`` when the file holds features only.

    Parameters
    ----------
    X : ndarray ``(m, n_features)``
        Features, float64, finite.
    y : ndarray ``(m,)`` or None
        Targets (numbers or class labels), or ``None`` for features only.
    name : str
        The data set's or file's name.
    feature_names : list of str
        One name per feature column.
    target_name : str or None
        The target column's name.
    named_columns : bool, default True
        Whether the columns came with names (CSV) rather than positions (``.npz``, ``.npy``).
    ignored_columns : list of str
        Columns of the file left unread (not among the features asked for).
    y_text : ndarray or None
        The target's cells as the file spells them (``load_file(keep_target_text=True)``).
    notes : list of str
        What was decided while reading (a dropped row index, say), for the user.
    """

    X: np.ndarray
    y: np.ndarray | None
    name: str
    feature_names: list[str] = field(default_factory=list)
    target_name: str | None = None
    #: ``False`` when the columns have no names in the source (``.npz``/``.npy``): the
    #: ``feature_names`` are then placeholders ``x1, x2, ...`` and only positions count.
    named_columns: bool = True
    #: Columns of a CSV that were neither a requested feature nor the target (not read).
    ignored_columns: list[str] = field(default_factory=list)
    #: The target's cells exactly as the file spells them (stripped), when asked for
    #: (``load_file(keep_target_text=True)``): what ``xpnet predict`` copies to its output.
    y_text: np.ndarray | None = None
    #: What the reader decided on the user's behalf (a dropped row index), one line each.
    notes: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])


#: The generated 2-D data sets: name -> (maker, description).
GENERATORS: dict[str, tuple[Callable[..., tuple[np.ndarray, np.ndarray]], str]] = {
    "xor": (make_xor, "four Gaussian blobs, label = XOR of the signs (2-D, 2 classes)"),
    "moons": (make_moons, "two interleaving half circles (2-D, 2 classes)"),
    "circles": (make_circles, "a small circle inside a large one (2-D, 2 classes)"),
    "spirals": (make_spirals, "two interleaved spiral arms (2-D, 2 classes)"),
    "flower": (make_flower, "the planar four-petal flower (2-D, 2 classes)"),
}
_SKLEARN = {
    "digits": ("load_digits", "8x8 images of handwritten digits (1797 x 64, 10 classes)"),
    "breast_cancer": ("load_breast_cancer", "Wisconsin breast cancer (569 x 30, 2 classes)"),
    "iris": ("load_iris", "Fisher's iris flowers (150 x 4, 3 classes)"),
    "wine": ("load_wine", "wine cultivars (178 x 13, 3 classes)"),
    "diabetes": ("load_diabetes", "diabetes progression (442 x 10, regression)"),
}
#: Names of the generated 2-D data sets.
GENERATED = tuple(GENERATORS)
#: Every built-in data set name and a one-line description.
DATASETS: dict[str, str] = {
    **{name: text for name, (_, text) in GENERATORS.items()},
    **{name: text + " [scikit-learn]" for name, (_, text) in _SKLEARN.items()},
}


def load_dataset(
    name: str,
    n_samples: int | None = None,
    noise: float | None = None,
    seed: int | None = 0,
) -> Dataset:
    """A built-in data set by name (see :data:`DATASETS`); no network access needed.

    ``n_samples``, ``noise`` and ``seed`` apply to the generated 2-D sets. The
    scikit-learn sets need the optional extra: ``pip install 'xpnet[sklearn]'``.

    Parameters
    ----------
    name : str
        A name of :data:`DATASETS`.
    n_samples : int, optional
        Rows to generate (generated sets only).
    noise : float, optional
        Noise of the generated sets.
    seed : int or None, default 0
        Seed of the generated sets.
    """
    if name in GENERATORS:
        make = GENERATORS[name][0]
        kwargs: dict[str, Any] = {"seed": seed}
        if n_samples is not None:
            kwargs["n_samples"] = n_samples
        if noise is not None:
            kwargs["noise"] = noise
        X, y = make(**kwargs)
        return Dataset(X, y, name, ["x1", "x2"], "class")
    if name in _SKLEARN:
        if n_samples is not None or noise is not None:
            raise DataError(
                f"n_samples and noise apply to the generated data sets only, not to {name!r}"
            )
        try:
            from sklearn import datasets
        except ImportError:
            raise DataError(
                f"data set {name!r} comes with scikit-learn, which is not installed; "
                "install it with: pip install 'xpnet[sklearn]'"
            ) from None
        bunch = getattr(datasets, _SKLEARN[name][0])()
        X = np.asarray(bunch.data, dtype=np.float64)
        target = np.asarray(bunch.target)
        names = getattr(bunch, "target_names", None)
        if name != "digits" and names is not None and target.dtype.kind in "iu":
            target = np.asarray(names)[target].astype(str)  # class names as labels
        features = [str(f) for f in getattr(bunch, "feature_names", [])]
        if len(features) != X.shape[1]:
            features = [f"x{i + 1}" for i in range(X.shape[1])]
        return Dataset(X, target, name, features, "target")
    raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")


# --------------------------------------------------------------------------- files
def _check_numeric(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise DataError(f"{what} must hold numbers; got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise DataError(f"{what} contains NaN or infinite values; clean the data first")
    return array


def _memory_needed(info: ArrayInfo) -> int:
    """Bytes of an array as read plus its float64 copy (what loading allocates)."""
    size = math.prod(info.shape)
    return info.nbytes + (size * 8 if info.dtype.kind in "biuf" else 0)


def _load_npz(path: str, n_features: int | None) -> Dataset:
    with open(path, "rb") as handle:
        if handle.read(len(NPY_MAGIC)) == NPY_MAGIC:
            raise DataError(f"{path!r} holds a single .npy array, not an .npz archive with X "
                            "and y; rename it to .npy")
    try:
        with NpzReader(path) as archive:
            # Shapes and sizes from the .npy headers first: nothing is decompressed
            # before the total is known to fit in memory.
            x_info, y_info = check_npz_members(archive, path, need_y=n_features is None)
            needed = _memory_needed(x_info) + (_memory_needed(y_info) if y_info else 0)
            check_data_memory(path, needed, "'X' and 'y'" if y_info else "'X'")
            X = archive.read(x_info)
            y = archive.read(y_info) if y_info else None
    except DataError:
        raise
    except (ArrayFileError, zipfile.BadZipFile, OSError, ValueError, EOFError,
            KeyError) as exc:
        raise DataError(f"{path!r} is not a readable .npz file ({exc})") from None
    except Exception as exc:  # zlib.error, struct.error, ... from a damaged archive
        raise DataError(f"{path!r} is not a readable .npz file ({type(exc).__name__}: "
                        f"{exc})") from None
    X = _check_numeric(X, f"'X' in {path!r}")
    if y is not None:
        y = y.reshape(-1)
        y = _check_numeric(y, f"'y' in {path!r}") if y.dtype.kind != "U" else y.astype(str)
    features = [f"x{i + 1}" for i in range(X.shape[1])]
    return Dataset(X, y, os.path.basename(path), features, "y" if y is not None else None)


def _load_npy(path: str, target: str | int | None, n_features: int | None) -> Dataset:
    with open(path, "rb") as handle:
        if handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
            raise DataError(f"{path!r} is an .npz archive, not a single .npy array; rename "
                            "it to .npz")

    def check(info: ArrayInfo) -> None:  # after the header, before the data is read
        check_data_memory(path, _memory_needed(info), "the array")

    try:
        array = read_npy(path, check)
    except ArrayFileError as exc:
        raise DataError(f"{path!r} is not a readable .npy file ({exc})") from None
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path!r} is not a readable .npy file ({exc})") from None
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise DataError(
            f"{path!r} must hold a 2-D array (rows, columns) with the target in one column; "
            f"got shape {array.shape}"
        )
    array = _check_numeric(array, f"the array in {path!r}")
    columns = [f"column {i}" for i in range(array.shape[1])]
    if n_features is not None and array.shape[1] == n_features and target is None:
        features = [f"x{i + 1}" for i in range(n_features)]
        return Dataset(array, None, os.path.basename(path), features)
    if array.shape[1] < 2:
        raise DataError(f"{path!r} needs at least one feature column and a target column")
    index = resolve_column(target, columns, f"{path!r}")
    X = np.delete(array, index, axis=1)
    features = [f"x{i + 1}" for i in range(X.shape[1])]
    return Dataset(X, array[:, index], os.path.basename(path), features, str(index))


def load_file(
    path: str | os.PathLike[str],
    target: str | int | None = None,
    n_features: int | None = None,
    features: Sequence[str] | None = None,
    *,
    delimiter: str | None = None,
    header: bool = True,
    keep_target_text: bool = False,
) -> Dataset:
    """Load features and target from a CSV, ``.npz`` or ``.npy`` file.

    - CSV (also ``.tsv``, ``.txt`` and their ``.gz``/``.bz2``/``.xz``/``.zst`` forms,
      read by pyarrow: the ``csv`` extra): a header row, then one row per sample; every
      feature cell a finite number. ``target`` is the target column's name or index
      (from 0; default: the last column); the target may hold numbers or class labels
      (strings). ``delimiter``: one character (default ``,``; tab for ``.tsv``).
      ``header=False``: no header row, the columns are named ``x1..xn``. A first line
      of numbers only is refused as a header; scikit-learn's CSV format (first line
      ``n_samples,n_features,class names...``) is read with its class names as labels;
      an unnamed first column holding ``0, 1, 2, ...`` (a row index, as pandas writes
      one) is dropped, which ``notes`` records. ``keep_target_text``: also keep the
      target's cells as the file spells them (``y_text``).
    - ``.npz``: arrays ``X`` ``(m, n)`` and ``y`` ``(m,)``; loaded without unpickling.
    - ``.npy``: one 2-D numeric array; ``target`` is the index of its target column
      (default: the last).

    ``n_features`` (for prediction): a CSV without the named ``target`` column, or with
    exactly ``n_features`` columns and no ``target`` given, is read as features only
    (``y`` is ``None``); the caller checks the feature count against the model.

    ``features`` (a model's feature names): a CSV's features are the columns of these
    names, in this order, wherever they stand in the file; any other column but the
    target is skipped unread and listed in ``ignored_columns``. A missing name raises
    :class:`MissingColumnsError`. Without ``target``, the last column is the target
    unless it is one of ``features`` (with ``n_features`` given: no target). ``.npz``
    and ``.npy`` files have no column names: ``features`` does not apply, their columns
    count by position and the result has ``named_columns=False``.

    Raises :class:`DataError` (one line: what is wrong, where, what to do) for a missing
    or empty file, ragged rows, non-numeric cells, a missing target column, NaN or inf.

    Parameters
    ----------
    path : str or path
        The CSV, ``.npz`` or ``.npy`` file.
    target : str or int, optional
        The target column's name or index (default: the last column).
    n_features : int, optional
        For prediction: the model's feature count (see below).
    features : sequence of str, optional
        A model's feature names (see below).
    delimiter : str, optional
        A CSV's delimiter (one character; default ``,``, tab for ``.tsv``).
    header : bool, default True
        Whether a CSV starts with a header row.
    keep_target_text : bool, default False
        Also keep the target's cells as the file spells them (``y_text``).
    """
    text = check_path(path)
    suffix, compression = split_suffix(text)
    if suffix in (".npz", ".npy") and compression is None:
        data = (_load_npz(text, n_features) if suffix == ".npz"
                else _load_npy(text, target, n_features))
        data.named_columns = False
        return data
    if is_text_file(text):
        csv = read_csv(text, target, n_features, features, delimiter=delimiter,
                       header=header, keep_target_text=keep_target_text)
        return Dataset(csv.X, csv.y, os.path.basename(text), csv.feature_names,
                       csv.target_name, ignored_columns=csv.ignored_columns,
                       y_text=csv.y_text, notes=csv.notes)
    raise DataError(f"unsupported data file type {os.path.splitext(text)[1]!r} for {text!r}; "
                    "use .csv (.tsv, .txt, optionally .gz/.bz2/.xz/.zst), .npz or .npy")


# --------------------------------------------------------------------------- targets
@dataclass
class Target:
    """A target encoded for the network: ``y`` (indices or values), task and classes.

    Parameters
    ----------
    y : ndarray ``(m,)``
        Class indices or values.
    task : str
        ``"binary"``, ``"multiclass"`` or ``"regression"``.
    output : str
        The output activation for the task (``sigmoid``, ``softmax``, ``identity``, ...).
    classes : list or None
        The class labels by index (``None`` for regression).
    """

    y: np.ndarray
    task: str  # "binary", "multiclass" or "regression"
    output: str  # the matching output activation
    classes: list[Any] | None  # original labels, by class index (None for regression)


def _is_classification(y: np.ndarray) -> bool:
    if y.dtype.kind not in "biuf":
        return True
    if not np.all(y == np.round(y)):
        return False
    n_unique = np.unique(y).size
    return n_unique <= 50 and n_unique <= max(2, y.size // 2)


def _label(value: Any) -> Any:
    """A class label as a plain JSON-friendly Python value (ints stay ints)."""
    if isinstance(value, (np.floating, float)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def encode_target(y: np.ndarray, output: str | None = None) -> Target:
    """Choose the task from the target (or from ``output``) and encode it.

    ``output=None`` picks: class labels (strings, or few distinct integers) give
    ``sigmoid`` for two classes and ``softmax`` for more; other numbers give ``identity``
    (regression). Classes are the sorted distinct labels; ``y`` becomes their index.

    Parameters
    ----------
    y : ndarray ``(m,)``
        The target column (numbers or labels).
    output : str, optional
        The output activation to encode for (default: chosen from ``y``).
    """
    if output not in (None, "sigmoid", "softmax", "identity", "exp"):
        raise DataError(f"output must be sigmoid, softmax, identity or exp; got {output!r}")
    if output == "exp":  # Poisson regression: counts or rates
        if y.dtype.kind not in "biuf":
            raise DataError("Poisson regression (output exp) needs a numeric target")
        if np.any(y < 0):
            raise DataError("Poisson regression (output exp) needs a target >= 0")
        return Target(y.astype(np.float64), "regression", "exp", None)
    if output == "identity" or (output is None and not _is_classification(y)):
        if y.dtype.kind not in "biuf":
            raise DataError("regression (output identity) needs a numeric target")
        return Target(y.astype(np.float64), "regression", "identity", None)
    labels, index = np.unique(y, return_inverse=True)
    if labels.size < 2:
        raise DataError(
            f"the target has a single class ({_label(labels[0])!r}); classification needs two "
            "or more"
        )
    if output == "sigmoid" and labels.size > 2:
        raise DataError(
            f"output sigmoid needs a binary target but it has {labels.size} classes; "
            "use --output softmax"
        )
    chosen = output or ("sigmoid" if labels.size == 2 else "softmax")
    task = "binary" if chosen == "sigmoid" else "multiclass"
    return Target(index.astype(np.int64), task, chosen, [_label(v) for v in labels])


def encode_labels(y: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    """Class indices of the labels ``y`` in a model's ``classes`` (``DataError`` if one is
    unknown). Numbers compare by value, so ``1.0`` in a file matches class ``1``.

    Parameters
    ----------
    y : ndarray ``(m,)``
        Labels, as read from a file.
    classes : sequence
        The model's class labels, by index.
    """
    lookup = {label_key(c): i for i, c in enumerate(classes)}
    out = np.empty(len(y), dtype=np.int64)
    for row, value in enumerate(y):
        index = lookup.get(label_key(_label(value)))
        if index is None:
            raise DataError(
                f"row {row + 1}: label {_label(value)!r} is not one of the model's classes "
                f"{list(classes)!r}"
            )
        out[row] = index
    return out


def label_key(value: Any) -> tuple[str, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("number", float(value))
    return ("text", str(value))


# --------------------------------------------------------------------------- splitting
def split_indices(
    m: int,
    test_fraction: float = 0.25,
    seed: int | None = 0,
    stratify: np.ndarray | None = None,
    labels: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` holding out ``test_fraction`` of the rows.

    With ``stratify`` (class indices), each class is split in the same proportion and
    must have at least two rows (one on each side); ``labels`` name the classes in the
    error message.

    Parameters
    ----------
    m : int
        The number of rows.
    test_fraction : float, default 0.25
        The share of rows held out.
    seed : int or None, default 0
        Seed of the shuffle.
    stratify : ndarray ``(m,)``, optional
        Class indices to split in proportion.
    labels : sequence, optional
        The classes' labels, for error messages.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test fraction must lie in [0, 1); got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    if test_fraction == 0:
        return rng.permutation(m), np.empty(0, dtype=np.int64)
    if m < 2:
        raise DataError(f"cannot split {m} row into training and test sets; need at least 2")
    if stratify is None:
        order = rng.permutation(m)
        n_test = min(max(int(round(m * test_fraction)), 1), m - 1)
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    # Near-linear in rows: one stable sort groups each class's rows in ascending row
    # order (what a scan for ``stratify == k`` finds), then each class's group is
    # shuffled from ``rng`` in ascending class order, as ``rng.permutation`` of it
    # always was (a permutation is a copy shuffled: the same draws), so the same rows
    # are held out for every input. Its first ``n_test`` rows are the class's test rows.
    stratify = np.asarray(stratify)
    order = np.argsort(stratify, kind="stable")
    classes, counts = np.unique(stratify, return_counts=True)
    small = np.flatnonzero(counts < 2)
    if small.size:
        k, size = classes[small[0]], int(counts[small[0]])
        name = labels[int(k)] if labels is not None else int(k)
        raise DataError(
            f"class {name!r} has only {size} row; each class needs at least 2 rows "
            "to appear in both the training and the test split (add rows, or use "
            "--test-fraction 0)"
        )
    shuffle, n_tests, start = rng.shuffle, [], 0
    for size in counts.tolist():
        shuffle(order[start:start + size])
        start += size
        n_tests.append(min(max(int(round(size * test_fraction)), 1), size - 1))
    starts = np.cumsum(counts) - counts
    in_test = np.arange(order.size) - np.repeat(starts, counts) < np.repeat(n_tests, counts)
    return np.sort(order[~in_test]), np.sort(order[in_test])


def stratified_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float = 0.25, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`train_test_split`, keeping each class's share on both sides.

    Parameters
    ----------
    X : ndarray ``(m, n_features)``
        Features.
    y : ndarray ``(m,)``
        Targets.
    test_fraction : float, default 0.25
        The share of rows held out.
    seed : int or None, default 0
        Seed of the shuffle.
    """
    _, index = np.unique(y, return_inverse=True)
    train, test = split_indices(X.shape[0], test_fraction, seed, stratify=index)
    return X[train], X[test], y[train], y[test]


# --------------------------------------------------------------------------- scaling
#: Magnitudes above this (sqrt of float64's largest value) overflow when squared.
_SAFE_MAGNITUDE = 1e154

@dataclass
class Standardizer:
    """Per-feature ``(x - mean) / scale``, with statistics from the training rows only.

    Constant features get ``scale = 1`` (they are centred, never divided by zero); a
    feature is constant when its standard deviation is at most ``n * eps * |mean|``
    (rounding), whatever its magnitude.

    Parameters
    ----------
    mean : ndarray ``(n_features,)``
        Per-feature mean of the training rows.
    scale : ndarray ``(n_features,)``
        Per-feature standard deviation (1 for constant features).
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        # Finite values near float64's limit (|x| ~ 1e308) overflow in the mean's sum and
        # the variance's squares, and values below 1e-154 underflow in the squares (a
        # column of values ~1e-300 would have std 0); such columns are divided by their
        # largest magnitude first (mean and std scale with it). Other columns keep the
        # plain formula, bit for bit.
        peak = np.max(np.abs(X), axis=0) if X.shape[0] else np.zeros(X.shape[1])
        huge = (peak > _SAFE_MAGNITUDE) | ((peak > 0) & (peak < 1 / _SAFE_MAGNITUDE))
        divisor = np.where(huge, peak, 1.0)
        Xs = X / divisor
        mean = Xs.mean(axis=0) * divisor
        std = Xs.std(axis=0) * divisor
        # Constant: the spread is no more than the rounding of n additions of values of
        # the mean's size (scikit-learn's rule for StandardScaler, compared as standard
        # deviations, since squaring 1e-300 underflows). Relative only: a column whose
        # values all lie near 1e-300 but differ is a real feature or target, not a
        # constant (an absolute floor made such a target "constant" and the model a
        # silent zero).
        n = X.shape[0]
        constant = (std == 0) | (std <= n * np.finfo(np.float64).eps * np.abs(mean))
        return cls(mean, np.where(constant, 1.0, std))

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.size:
            raise DataError(
                f"data have {X.shape[1] if X.ndim == 2 else X.shape} features but the "
                f"standardisation statistics are for {self.mean.size}"
            )
        return X

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``(X - mean) / scale`` as a new float64 array (``X`` is not modified)."""
        X = self._check(X)
        if np.all(np.abs(self.mean) <= _SAFE_MAGNITUDE):
            return (X - self.mean) / self.scale
        # X - mean can overflow when both are near float64's limit: divide first.
        return X / self.scale - self.mean / self.scale

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        return self._check(X) * self.scale + self.mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_dict(cls, stats: dict[str, Any]) -> Standardizer:
        return cls(np.asarray(stats["mean"], dtype=np.float64),
                   np.asarray(stats["scale"], dtype=np.float64))
