"""Scores of a trained network on NumPy data: loss, accuracy, MSE and R².

The network computes on its backend; the outputs are copied to the host once and scored
with NumPy here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backends import to_numpy
from .inference import outputs_and_loss
from .network import MLP

__all__ = ["NonFiniteOutputError", "accuracy", "check_finite_outputs", "predicted_classes",
           "r2_score", "score"]


class NonFiniteOutputError(ValueError):
    """The network's outputs are NaN or infinite on some rows (weights that are finite
    but whose products overflow, as after a diverged training): no score or prediction
    of such a network means anything. ``rows`` is how many, of ``total``."""

    def __init__(self, rows: int, total: int) -> None:
        super().__init__(
            f"the network's outputs are NaN or infinite on {rows} of {total} rows (did its "
            "training diverge? retrain with a smaller learning rate)"
        )
        self.rows = rows
        self.total = total


def check_finite_outputs(outputs: np.ndarray) -> None:
    """Raise :class:`NonFiniteOutputError` unless every row of the host array ``outputs``
    ``(m, k)`` is finite."""
    bad = int(np.count_nonzero(~np.isfinite(outputs).all(axis=1)))
    if bad:
        raise NonFiniteOutputError(bad, int(outputs.shape[0]))


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Class indices (int64) from host output probabilities ``(m, k)``, by ``MLP.predict``'s
    rule: one sigmoid output gives class 1 when strictly above 0.5 (scikit-learn's
    ``LabelBinarizer`` rule, so an output of exactly 0.5 is class 0), several softmax
    outputs take the arg-max."""
    if outputs.shape[1] == 1:
        return (outputs[:, 0] > 0.5).astype(np.int64)
    return outputs.argmax(axis=1).astype(np.int64, copy=False)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of rows where the predicted class index equals the true one."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (averaged over outputs)."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    # R² does not change with the units: in units of the largest |y| per output, the sums
    # of squares neither overflow (targets near 1e200) nor underflow (near 1e-300)
    largest = np.abs(y_true).max(axis=0) if len(y_true) else np.ones(y_true.shape[1])
    unit = np.where((largest > 0) & np.isfinite(largest), largest, 1.0)
    y_true, y_pred = y_true / unit, y_pred / unit
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)
    return float(r2.mean())


def score(
    net: MLP,
    X: np.ndarray,
    y: np.ndarray,
    task: str,
    target_mean: float = 0.0,
    target_scale: float = 1.0,
) -> dict[str, Any]:
    """Loss and metrics of ``net`` on prepared inputs ``X`` and encoded targets ``y``.

    Classification (``y`` class indices, ``0 <= y < k`` for ``k`` outputs, 2 for one
    sigmoid): ``loss`` and ``accuracy``. Regression (``y`` in the network's units, i.e.
    standardised with ``target_mean``/``target_scale``): ``loss``, and ``mse`` and ``r2``
    in the target's original units.

    Raises ``ValueError`` for class indices outside ``0..k-1`` (labels the network never
    saw; :meth:`MLP.loss` checks them) and :class:`NonFiniteOutputError` when the
    network's outputs are NaN or infinite on any row: neither is scored as a silent miss.
    A loss or MSE may still overflow to ``inf`` on finite outputs (targets near 1e308).
    """
    # NumPy's overflow warnings would only precede the error below (or an inf loss)
    with np.errstate(over="ignore", invalid="ignore"):
        # one block-wise pass for outputs and loss (bounded memory; checks y: class
        # indices outside 0..k-1 refused, X's values checked once)
        A, loss = outputs_and_loss(net, X, y)
        outputs = to_numpy(A).astype(np.float64)
    check_finite_outputs(outputs)
    result: dict[str, Any] = {"rows": int(X.shape[0]), "loss": loss}
    if task == "regression":
        pred = outputs[:, 0] * target_scale + target_mean
        true = np.asarray(y, dtype=np.float64) * target_scale + target_mean
        with np.errstate(over="ignore", invalid="ignore"):
            result["mse"] = float(np.mean((pred - true) ** 2))
            result["r2"] = r2_score(true, pred)
    else:
        result["accuracy"] = accuracy(y, predicted_classes(outputs))
    return result
