"""``class_weight`` for :func:`xpnet.train.fit`: per-class weights turned into row weights.

The meaning is scikit-learn's (``LogisticRegression``): a class's weight multiplies the
loss of each of its rows, on top of ``sample_weight``; ``"balanced"`` gives class ``c``
the weight ``n_samples / (n_classes * count_c)`` over the rows passed to fit (classes
with no rows are not counted). The labels are read from the checked targets ``Y`` (a
softmax row's one-hot position, 0/1 for one sigmoid output), on the network's device:
the row weights are ``Y @ per_class``, with no read-back to the host
(``tests/test_class_weight.py`` checks them against scikit-learn's).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

Array = Any


def check_class_weight(net: Any, class_weight: Any) -> Any:
    """``class_weight`` checked against ``net`` before any data is touched: None,
    ``"balanced"`` or a dict ``{label: weight}`` with labels of the network's classes
    (``0..k-1`` for ``k`` softmax outputs, 0/1 for one sigmoid output) and finite,
    non-negative weights. Returns it as None, ``"balanced"`` or ``{int: float}``."""
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                "class_weight must be None, 'balanced' or a dict {label: weight}; "
                f"got {class_weight!r}"
            )
        _n_classes(net)  # refuses networks without classes
        return "balanced"
    if not isinstance(class_weight, dict):
        raise TypeError(
            "class_weight must be None, 'balanced' or a dict {label: weight}; "
            f"got {type(class_weight).__name__}: {class_weight!r}"
        )
    n_classes = _n_classes(net)
    checked: dict[int, float] = {}
    for label, weight in class_weight.items():
        if isinstance(label, bool) or not isinstance(label, numbers.Integral):
            raise TypeError(
                f"class_weight labels must be integer class labels in [0, {n_classes - 1}]; "
                f"got {label!r}"
            )
        if not 0 <= int(label) < n_classes:
            raise ValueError(
                f"class_weight names class label {int(label)} but the network's classes "
                f"are 0..{n_classes - 1}"
            )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, numbers.Real)
            or not math.isfinite(float(weight))
            or float(weight) < 0
        ):
            raise ValueError(
                f"class_weight[{int(label)}] must be a finite non-negative number; "
                f"got {weight!r}"
            )
        checked[int(label)] = float(weight)
    return checked


def _n_classes(net: Any) -> int:
    """The number of classes of ``net``'s output: ``k`` for softmax, 2 for one sigmoid."""
    task, n_out = net.output_loss.task, net.layer_sizes[-1]
    if task == "multiclass":
        return int(n_out)
    if task == "binary" and n_out == 1:
        return 2
    kind = "multi-label sigmoid" if task == "binary" else repr(net.output)
    raise ValueError(
        "class_weight needs a classification network with a softmax output or one "
        f"sigmoid output; this one's output is {kind} with {n_out} units (use "
        "sample_weight instead)"
    )


def class_onehot(xp: Any, Y: Array, task: str) -> Array:
    """Checked targets ``Y`` ``(m, k)`` as one column per class: one-hot (softmax) rows
    as they are, a single sigmoid output's 0/1 as ``[1 - y, y]``."""
    if Y.shape[1] == 1 and task == "binary":
        return xp.concat([1.0 - Y, Y], axis=1)  # columns: class 0, class 1
    return Y


def balanced_per_class(xp: Any, counts: Array, m: float) -> Array:
    """``"balanced"``'s per-class weights from the class counts ``(k,)`` (sums of
    :func:`class_onehot`'s columns) over ``m`` rows: ``compute_class_weight``'s
    ``n_samples / (n_classes * bincount)`` in its order, classes without rows 0."""
    present = counts > 0
    n_present = xp.sum(xp.astype(present, counts.dtype))
    return xp.where(present, m / (n_present * xp.where(present, counts, 1.0)), 0.0)


def dict_per_class(class_weight: dict[int, float], n_classes: int) -> list[float]:
    """A checked ``{class index: weight}`` as one weight per class (missing ones 1)."""
    return [class_weight.get(c, 1.0) for c in range(n_classes)]


def class_weight_rows(net: Any, Y: Array, class_weight: Any) -> Array:
    """Row weights ``(m,)`` on ``net``'s device for checked targets ``Y`` ``(m, k)``
    (one-hot rows, or ``(m, 1)`` 0/1 for one sigmoid output). A soft softmax row (a
    probability vector) weighs the mean of the class weights under it."""
    xp = net.xp
    onehot = class_onehot(xp, Y, net.output_loss.task)
    if class_weight == "balanced":
        per_class = balanced_per_class(xp, xp.sum(onehot, axis=0), float(Y.shape[0]))
    else:
        per_class = net.array_backend.asarray(dict_per_class(class_weight, onehot.shape[1]),
                                              dtype=net.array_dtype)
    return onehot @ per_class
