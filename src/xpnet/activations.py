"""Hidden-layer activations, each defined next to its derivative.

Every function takes the namespace ``xp`` first, then arrays of that namespace, and
uses only the Python Array API standard (no NumPy). Derivatives are written in
terms of the activation's *output* ``A`` (never ``Z``), so the backward pass only
needs the cached activations:

==========  ==========================  ==============================
name        g(z)                         g'(z) written with a = g(z)
==========  ==========================  ==============================
sigmoid     1 / (1 + exp(-z))            a * (1 - a)
            (= 0.5 tanh(z/2) + 0.5)
tanh        tanh(z)                      1 - a**2
relu        max(z, 0)                    1[a > 0]   (= 1[z > 0])
identity    z                            1
==========  ==========================  ==============================

A hidden sigmoid is computed as ``0.5 * tanh(z / 2) + 0.5`` (:func:`logistic_tanh`: one
transcendental, small absolute error); the output layer's, a reported probability, keeps
the relatively exact :func:`sigmoid`.

``logistic`` (scikit-learn's name) is accepted for ``sigmoid``; a network and its model
file always carry the canonical name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _inplace as inplace

__all__ = ["ACTIVATIONS", "ALIASES", "Activation", "get_activation", "logistic_tanh", "relu",
           "sigmoid", "softmax"]

Array = Any


def sigmoid(xp: Any, z: Array) -> Array:
    """Logistic function without overflow, relatively exact (the output layer's form,
    where the value is a reported probability): exp is only ever taken of ``-|z|``.

    Four full-size arrays where NumPy, CuPy or PyTorch update in place (see
    :mod:`xpnet._inplace`): ``exp(-|z|)``, ``1 / (1 + e)``, the mask and the result."""
    e = xp.abs(z)
    e = inplace.apply(xp, "negative", e)  # our own temporary from here on
    e = inplace.apply(xp, "exp", e)  # exp(-|z|) in (0, 1]: never overflows
    r = inplace.apply(xp, "reciprocal", e + 1.0)  # sigmoid(|z|) = 1 / (1 + e)
    e = inplace.multiply(xp, e, r)  # sigmoid(-|z|) = e / (1 + e)
    return xp.where(z >= 0, r, e)


def logistic_tanh(xp: Any, z: Array) -> Array:
    """Logistic function as ``0.5 * tanh(z / 2) + 0.5``: one transcendental and one
    full-size array (updated in place where the namespace allows), no overflow.

    The hidden layers' sigmoid: its *absolute* error is a few units in the last place
    of 1 (``tanh`` is accurate to about one ulp), which is what a next layer's product
    sees; the relative error of tiny values (``z`` below about -17 in float32) is large,
    so the output layer, whose values are reported as probabilities, uses
    :func:`sigmoid`."""
    h = z * 0.5  # exact (a power of two)
    h = inplace.apply(xp, "tanh", h)
    h = inplace.multiply(xp, h, 0.5)
    return inplace.add(xp, h, 0.5)


def sigmoid_derivative(xp: Any, a: Array) -> Array:
    return inplace.multiply(xp, 1.0 - a, a)  # a * (1 - a), bit for bit


def tanh(xp: Any, z: Array) -> Array:
    return xp.tanh(z)


def tanh_derivative(xp: Any, a: Array) -> Array:
    d = inplace.apply(xp, "negative", a * a)
    return inplace.add(xp, d, 1.0)  # -(a a) + 1 = 1 - a a, bit for bit


def relu(xp: Any, z: Array) -> Array:
    # (z + |z|) / 2 is exactly max(z, 0) in floating point and needs no scalar argument
    # to a function (scalars in xp.maximum/xp.where only arrived in the 2024.12 standard).
    a = xp.abs(z)
    a = inplace.add(xp, a, z)  # our own temporary: one array instead of three
    return inplace.multiply(xp, a, 0.5)


def relu_derivative(xp: Any, a: Array) -> Array:
    return xp.astype(a > 0, a.dtype)


def identity(xp: Any, z: Array) -> Array:
    return z


def softmax(xp: Any, z: Array) -> Array:
    """Row-wise softmax with the row maximum subtracted (no overflow)."""
    e = inplace.apply(xp, "exp", z - xp.max(z, axis=1, keepdims=True))  # our own array
    return inplace.divide(xp, e, xp.sum(e, axis=1, keepdims=True))


@dataclass(frozen=True)
class Activation:
    """An activation ``g`` and its derivative ``g'`` expressed through ``a = g(z)``.

    ``derivative`` is ``None`` for the identity, whose derivative is 1: the backward
    pass then skips the element-wise product instead of multiplying by ones.
    """

    name: str
    forward: Callable[[Any, Array], Array]
    derivative: Callable[[Any, Array], Array] | None
    init: str  # weight initialisation suited to this activation: "glorot" or "he"


ACTIVATIONS: dict[str, Activation] = {
    act.name: act
    for act in (
        Activation("sigmoid", logistic_tanh, sigmoid_derivative, "glorot"),
        Activation("tanh", tanh, tanh_derivative, "glorot"),
        Activation("relu", relu, relu_derivative, "he"),
        Activation("identity", identity, None, "glorot"),
    )
}


#: Other names of the activations (scikit-learn's ``logistic``) -> the canonical name.
ALIASES: dict[str, str] = {"logistic": "sigmoid"}


def get_activation(name: str) -> Activation:
    """Look up a hidden activation by name or alias (``logistic`` is ``sigmoid``; the
    result's ``name`` is the canonical one); a clear ``ValueError`` lists the valid ones."""
    if isinstance(name, str) and name in ALIASES:
        name = ALIASES[name]
    if not isinstance(name, str) or name not in ACTIVATIONS:
        aliases = ", ".join(f"{alias} for {canonical}" for alias, canonical in ALIASES.items())
        raise ValueError(
            f"activation must be one of {', '.join(sorted(ACTIVATIONS))} (or {aliases}); "
            f"got {name!r}"
        )
    return ACTIVATIONS[name]
