"""Hidden-layer activations, each defined next to its derivative.

Every function takes the namespace ``xp`` first, then arrays of that namespace, and
uses only the Python Array API standard (no NumPy). Derivatives are written in
terms of the activation's *output* ``A`` (never ``Z``), so the backward pass only
needs the cached activations:

==========  ==========================  ==============================
name        g(z)                         g'(z) written with a = g(z)
==========  ==========================  ==============================
sigmoid     1 / (1 + exp(-z))            a * (1 - a)
tanh        tanh(z)                      1 - a**2
relu        max(z, 0)                    1[a > 0]   (= 1[z > 0])
identity    z                            1
==========  ==========================  ==============================

``logistic`` (scikit-learn's name) is accepted for ``sigmoid``; a network and its model
file always carry the canonical name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ACTIVATIONS", "ALIASES", "Activation", "get_activation", "sigmoid", "softmax",
           "relu"]

Array = Any


def sigmoid(xp: Any, z: Array) -> Array:
    """Logistic function without overflow: exp is only ever taken of ``-|z|``."""
    e = xp.exp(-xp.abs(z))  # in (0, 1]: never overflows
    r = 1.0 / (1.0 + e)  # sigmoid(|z|)
    e *= r  # sigmoid(-|z|) = e / (1 + e), in place: e is our own temporary
    return xp.where(z >= 0, r, e)


def sigmoid_derivative(xp: Any, a: Array) -> Array:
    return a * (1.0 - a)


def tanh(xp: Any, z: Array) -> Array:
    return xp.tanh(z)


def tanh_derivative(xp: Any, a: Array) -> Array:
    return 1.0 - a * a


def relu(xp: Any, z: Array) -> Array:
    # (z + |z|) / 2 is exactly max(z, 0) in floating point and needs no scalar argument
    # to a function (scalars in xp.maximum/xp.where only arrived in the 2024.12 standard).
    a = xp.abs(z)
    a += z  # in place on our own temporary: one array instead of three
    a *= 0.5
    return a


def relu_derivative(xp: Any, a: Array) -> Array:
    return xp.astype(a > 0, a.dtype)


def identity(xp: Any, z: Array) -> Array:
    return z


def softmax(xp: Any, z: Array) -> Array:
    """Row-wise softmax with the row maximum subtracted (no overflow)."""
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    e /= xp.sum(e, axis=1, keepdims=True)  # in place: e is our own temporary
    return e


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
        Activation("sigmoid", sigmoid, sigmoid_derivative, "glorot"),
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
