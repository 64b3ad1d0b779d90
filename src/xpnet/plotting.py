"""Figures for the command line: loss curve, decision boundary, confusion matrix.

matplotlib is an optional extra (``pip install 'xpnet[plot]'``); it is imported only
when a figure is drawn, through its object-oriented API (no pyplot, no GUI backend).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["PlotUnavailableError", "check_plot_path", "plot_training"]


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed; the message says how to install it."""


def check_plot_path(path: str | os.PathLike[str]) -> None:
    """Fail early if matplotlib is missing or cannot write the file type of ``path``."""
    fig, _ = _figure(1)
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    supported = fig.canvas.get_supported_filetypes()
    if suffix not in supported:
        raise ValueError(
            f"cannot write a plot to {os.fspath(path)!r}: use one of the file types "
            f"{', '.join('.' + k for k in sorted(supported))}"
        )


def _figure(n_panels: int) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailableError(
            "--plot needs matplotlib, which is not installed; install it with: "
            "pip install 'xpnet[plot]'"
        ) from None
    fig = Figure(figsize=(5.2 * n_panels, 4.4), layout="constrained")
    return fig, fig.subplots(1, n_panels, squeeze=False)[0]


def _loss_panel(ax: Any, losses: Sequence[float],
                validation: Sequence[float] | None = None) -> None:
    epochs = np.arange(1, len(losses) + 1)
    ax.plot(epochs, losses, color="tab:blue", lw=1.5, label="training")
    shown = list(losses)
    if validation:  # early stopping: the held-out rows' loss on the same axis
        ax.plot(np.arange(1, len(validation) + 1), validation, color="tab:orange", lw=1.5,
                label="validation")
        shown += [v for v in validation if np.isfinite(v)]
        ax.legend()
    if len(shown) and min(shown) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" if validation else "training loss")
    ax.set_title(f"loss curve (final {losses[-1]:.4g})" if len(losses) else "loss curve")
    ax.grid(True, which="both", alpha=0.3)


def _boundary_panel(
    ax: Any,
    predict: Callable[[np.ndarray], np.ndarray],
    task: str,
    classes: Sequence[Any] | None,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray | None,
    y_test: np.ndarray | None,
    feature_names: Sequence[str],
) -> None:
    X_all = X_train if X_test is None or not len(X_test) else np.vstack([X_train, X_test])
    low, high = X_all.min(axis=0), X_all.max(axis=0)
    pad = 0.1 * np.maximum(high - low, 1e-9)
    xs = np.linspace(low[0] - pad[0], high[0] + pad[0], 250)
    ys = np.linspace(low[1] - pad[1], high[1] + pad[1], 250)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    out = predict(grid)  # probabilities (m, k) or regression values (m, k)
    cmap = "coolwarm" if task != "multiclass" else "tab10"
    if task == "binary":
        z = out[:, 0].reshape(gx.shape)
        filled = ax.contourf(gx, gy, z, levels=np.linspace(0, 1, 11), cmap=cmap, alpha=0.55)
        ax.contour(gx, gy, z, levels=[0.5], colors="k", linewidths=1.5)
        ax.figure.colorbar(filled, ax=ax, label=f"P(class {classes[1] if classes else 1})")
    elif task == "multiclass":
        k = out.shape[1]
        z = np.argmax(out, axis=1).reshape(gx.shape)
        ax.contourf(gx, gy, z, levels=np.arange(k + 1) - 0.5, cmap=cmap, vmin=0, vmax=9,
                    alpha=0.45)
    else:
        z = out[:, 0].reshape(gx.shape)
        filled = ax.contourf(gx, gy, z, levels=20, cmap="viridis", alpha=0.6)
        ax.figure.colorbar(filled, ax=ax, label="prediction")
    point_kw: dict[str, Any] = {"edgecolors": "k", "linewidths": 0.5}
    if task == "regression":  # points coloured on the same scale as the prediction surface
        ax.scatter(X_train[:, 0], X_train[:, 1], c=y_train, cmap="viridis", norm=filled.norm,
                   s=18, **point_kw)
    else:
        colors = (
            np.array(["tab:blue", "tab:red"]) if task == "binary"
            else np.array([f"C{i % 10}" for i in range(int(y_train.max()) + 1 + 10)])
        )
        ax.scatter(X_train[:, 0], X_train[:, 1], c=colors[y_train], s=18, marker="o",
                   label="train", **point_kw)
        if X_test is not None and y_test is not None and len(X_test):
            ax.scatter(X_test[:, 0], X_test[:, 1], c=colors[y_test], s=34, marker="^",
                       label="test", **point_kw)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_xlabel(feature_names[0] if feature_names else "x1")
    ax.set_ylabel(feature_names[1] if len(feature_names) > 1 else "x2")
    ax.set_title("decision boundary" if task != "regression" else "predictions")


def _confusion_panel(
    ax: Any, y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[Any], title: str
) -> None:
    k = len(classes)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    ax.imshow(counts, cmap="Blues")
    for i in range(k):
        for j in range(k):
            color = "white" if counts[i, j] > counts.max() / 2 else "black"
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=color,
                    fontsize=8 if k > 6 else 10)
    labels = [str(c) for c in classes]
    ax.set_xticks(range(k), labels, rotation=45 if max(map(len, labels)) > 3 else 0)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = float(np.trace(counts)) / max(int(counts.sum()), 1)
    ax.set_title(f"{title} (accuracy {accuracy:.3f})")


def _scatter_panel(ax: Any, y_true: np.ndarray, y_pred: np.ndarray, title: str) -> None:
    ax.scatter(y_true, y_pred, s=14, alpha=0.7, edgecolors="k", linewidths=0.3)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], color="k", lw=1, ls="--")
    ax.set_xlabel("true value")
    ax.set_ylabel("predicted value")
    ax.set_title(title)


def plot_training(
    path: str | os.PathLike[str],
    losses: Sequence[float],
    *,
    task: str,
    predict: Callable[[np.ndarray], np.ndarray],
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
    feature_names: Sequence[str] = (),
    title: str = "",
    validation_losses: Sequence[float] | None = None,
) -> None:
    """Save a PNG (or any format matplotlib knows from the suffix) of a training run.

    Left: the training loss per epoch (and ``validation_losses``, the early-stopping
    rows' loss, on the same axis). Right: for 2-D inputs the decision boundary
    (``predict`` maps raw feature rows to the network's outputs) with the training and
    test points; otherwise the confusion matrix (classification) or predicted against
    true values (regression) on the test rows (the training rows if there are none).
    ``y_*`` are class indices (classification) or values (regression).
    """
    fig, axes = _figure(2)
    _loss_panel(axes[0], losses, validation_losses)
    if X_train.shape[1] == 2:
        _boundary_panel(axes[1], predict, task, classes, X_train, y_train, X_test, y_test,
                        feature_names)
    else:
        held_out = X_test is not None and y_test is not None and len(X_test) > 0
        X_eval, y_eval = (X_test, y_test) if held_out else (X_train, y_train)
        assert X_eval is not None and y_eval is not None
        which = "test" if held_out else "train"
        out = predict(X_eval)
        if task == "regression":
            _scatter_panel(axes[1], y_eval, out[:, 0], f"{which} rows: predicted vs true")
        else:
            from .metrics import predicted_classes

            pred = predicted_classes(out)
            labels = list(classes) if classes else list(range(max(out.shape[1], 2)))
            _confusion_panel(axes[1], y_eval.astype(np.int64), pred, labels,
                             f"{which} confusion matrix")
    if title:
        fig.suptitle(title)
    # Into xpnet's atomic writer (temp file, fsync, rename), so the format cannot come
    # from the file name: pass it, taken from the suffix as check_plot_path checked it.
    from ._files import atomic_write

    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or None
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format=suffix, dpi=110)
