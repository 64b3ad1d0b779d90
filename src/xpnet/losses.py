"""Output activations paired with their losses.

Each pair is *matched*: the derivative of the mean loss with respect to the output
pre-activation ``Z`` collapses to ``dZ = (A - Y) / m`` (``m`` = rows in the batch):

=========  ==============================  =======================================
output     loss (mean over the batch)       computed from the logits ``Z`` as
=========  ==============================  =======================================
sigmoid    binary cross-entropy             (1/m) Σ [softplus(z) - y·z]
softmax    categorical cross-entropy        (1/m) Σ_i Σ_j y_ij (logsumexp(z_i) - z_ij)
identity   half squared error               (1/2m) Σ_i ‖y_i - a_i‖²
exp        half Poisson deviance            (1/m) Σ [e^z - y·z + y log y - y]
=========  ==============================  =======================================

The ``exp`` output (``A = e^Z``, a positive rate) with the half Poisson deviance
``y log(y/a) - y + a`` is scikit-learn's ``MLPRegressor(loss="poisson")``; its targets
are counts or rates ``y >= 0`` (``y log y`` is 0 at ``y = 0``). Per entry,
``d/dz [e^z - y z] = e^z - y = a - y``: the same collapse to ``dZ = (A - Y) / m``.

Losses are computed from ``Z`` rather than from ``A = g(Z)`` so that they stay finite
when the output saturates (``log(0)`` never happens). Only Array API functions are used.

Every loss also takes an optional ``weight``: an ``(m, 1)`` column of normalised row
weights ``w_i / Σw``. With it the mean over rows becomes the weighted mean
``Σ_i w_i ℓ_i / Σw`` (scikit-learn's ``sample_weight``), and the matched delta becomes
``dZ = weight ⊙ (A - Y)``.

For training, each pair also has a fused ``activation_and_loss(xp, z, y)`` that returns
``(A, loss)`` sharing the intermediate arrays the two have in common (``exp(-|z|)`` for
sigmoid, the row maximum, ``exp`` and row sums for softmax). It performs the very same
operations as calling the activation and the loss separately, so the results are
bit-for-bit identical, with fewer array operations per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _inplace as inplace
from .activations import identity, sigmoid, softmax

__all__ = ["OUTPUTS", "OutputLoss", "get_output"]

Array = Any


def softplus(xp: Any, z: Array) -> Array:
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)), finite for any finite z."""
    abs_z = xp.abs(z)
    return (z + abs_z) * 0.5 + xp.log1p(xp.exp(-abs_z))


def _mean(xp: Any, terms: Array, weight: Array | None) -> Array:
    """Mean over the rows of the per-entry loss terms (summed over outputs), or the
    weighted mean when ``weight`` (``w_i / Σw`` as an ``(m, 1)`` column) is given."""
    if weight is None:
        return xp.sum(terms) / terms.shape[0]
    return xp.sum(terms * weight)


def binary_cross_entropy(
    xp: Any, z: Array, a: Array, y: Array, weight: Array | None = None
) -> Array:
    # -[y log σ(z) + (1-y) log(1-σ(z))] = softplus(z) - y·z  (summed over outputs)
    return _mean(xp, softplus(xp, z) - y * z, weight)


def categorical_cross_entropy(
    xp: Any, z: Array, a: Array, y: Array, weight: Array | None = None
) -> Array:
    # -Σ_j y_j log softmax(z)_j = Σ_j y_j (logsumexp(z) - z_j), with the max shifted out
    z_max = xp.max(z, axis=1, keepdims=True)
    lse = z_max + xp.log(xp.sum(xp.exp(z - z_max), axis=1, keepdims=True))
    return _mean(xp, y * (lse - z), weight)


def sigmoid_and_binary_cross_entropy(
    xp: Any, z: Array, y: Array, weight: Array | None = None
) -> tuple[Array, Array]:
    """``(sigmoid(z), binary_cross_entropy(z, ., y))`` with ``|z|`` and ``exp(-|z|)`` shared."""
    abs_z = xp.abs(z)
    e = inplace.apply(xp, "exp", -abs_z)
    loss = _mean(xp, (z + abs_z) * 0.5 + xp.log1p(e) - y * z, weight)  # softplus(z) - y·z
    r = inplace.apply(xp, "reciprocal", e + 1.0)
    e = inplace.multiply(xp, e, r)  # e is ours and no longer needed: sigmoid(-|z|)
    return xp.where(z >= 0, r, e), loss  # as in activations.sigmoid


def softmax_and_categorical_cross_entropy(
    xp: Any, z: Array, y: Array, weight: Array | None = None
) -> tuple[Array, Array]:
    """``(softmax(z), categorical_cross_entropy(z, ., y))`` sharing max, exp and row sums."""
    z_max = xp.max(z, axis=1, keepdims=True)
    e = inplace.apply(xp, "exp", z - z_max)
    row_sum = xp.sum(e, axis=1, keepdims=True)
    lse = z_max + xp.log(row_sum)
    e = inplace.divide(xp, e, row_sum)  # softmax, as in activations.softmax (e is ours)
    return e, _mean(xp, y * (lse - z), weight)


def exp(xp: Any, z: Array) -> Array:
    """The exponential output activation ``A = e^Z`` (a Poisson rate)."""
    return xp.exp(z)


def _xlogy_self(xp: Any, y: Array) -> Array:
    """``y log y`` with ``0 log 0 = 0`` (``log`` of 1 where ``y`` is 0, so no ``-inf``)."""
    return y * xp.log(xp.where(y > 0, y, xp.ones_like(y)))


def half_poisson_deviance(
    xp: Any, z: Array, a: Array, y: Array, weight: Array | None = None
) -> Array:
    # y log(y/a) - y + a with log a = z: y log y - y z - y + e^z (summed over outputs)
    return _mean(xp, _xlogy_self(xp, y) - y * z - y + a, weight)


def half_squared_error(
    xp: Any, z: Array, a: Array, y: Array, weight: Array | None = None
) -> Array:
    diff = a - y
    return _mean(xp, diff * diff, weight) * 0.5


@dataclass(frozen=True)
class OutputLoss:
    """An output activation, its matched loss, and how predictions are read off it."""

    name: str
    loss_name: str
    activation: Callable[[Any, Array], Array]
    loss: Callable[..., Array]  # (xp, z, a, y, weight=None) -> 0-d mean loss
    task: str  # "binary" (also multi-label), "multiclass" or "regression"
    # Fused (A, loss) for training; None: call ``activation`` then ``loss``.
    activation_and_loss: Callable[..., tuple[Array, Array]] | None = None

    def forward_and_loss(
        self, xp: Any, z: Array, y: Array, weight: Array | None = None
    ) -> tuple[Array, Array]:
        """Output activations ``A = g(z)`` and the (weighted) mean loss, as a pair."""
        if self.activation_and_loss is not None:
            return self.activation_and_loss(xp, z, y, weight)
        a = self.activation(xp, z)
        return a, self.loss(xp, z, a, y, weight)


OUTPUTS: dict[str, OutputLoss] = {
    out.name: out
    for out in (
        OutputLoss(
            "sigmoid", "binary_cross_entropy", sigmoid, binary_cross_entropy, "binary",
            sigmoid_and_binary_cross_entropy,
        ),
        OutputLoss(
            "softmax", "categorical_cross_entropy", softmax, categorical_cross_entropy,
            "multiclass", softmax_and_categorical_cross_entropy,
        ),
        OutputLoss("identity", "half_squared_error", identity, half_squared_error, "regression"),
        OutputLoss("exp", "half_poisson_deviance", exp, half_poisson_deviance, "regression"),
    )
}


def get_output(name: str) -> OutputLoss:
    """Look up an output/loss pair by output name; ``ValueError`` lists the valid ones."""
    if not isinstance(name, str) or name not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {name!r}")
    return OUTPUTS[name]
