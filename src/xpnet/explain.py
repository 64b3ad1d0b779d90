"""The forward and backward equations of a concrete network, layer by layer, with shapes.

This is the lesson's derivation, corrected, written out for the user's own layer sizes,
activations and output; each line names the backpropagation equation (BP1-BP4) that
``network.py`` computes at the matching line.
"""

from __future__ import annotations

from collections.abc import Sequence

from .activations import get_activation
from .losses import get_output

__all__ = ["explain"]

_FORWARD = {
    "sigmoid": "sigmoid({Z}) = 1 / (1 + exp(-{Z}))",
    "tanh": "tanh({Z})",
    "relu": "relu({Z}) = max({Z}, 0)",
    "identity": "{Z}",
    "exp": "exp({Z})",
}
_DERIVATIVE = {  # g'(Z) written with A = g(Z), as the code does
    "sigmoid": ("{dA} ⊙ {A} ⊙ (1 - {A})", "sigmoid'(Z{l}) = A{l} ⊙ (1 - A{l})"),
    "tanh": ("{dA} ⊙ (1 - {A}²)", "tanh'(Z{l}) = 1 - A{l}²"),
    "relu": ("{dA} ⊙ 1[{A} > 0]", "relu'(Z{l}) = 1[Z{l} > 0] = 1[A{l} > 0]"),
    "identity": ("{dA}", "identity' = 1: nothing to multiply"),
}
_OUTPUT = {
    "sigmoid": (
        "binary cross-entropy",
        "L = -(1/m) Σ [Y ⊙ log A{L} + (1 - Y) ⊙ log(1 - A{L})]",
        "computed stably from the logits: L = (1/m) Σ [softplus(Z{L}) - Y ⊙ Z{L}]",
        "because dL/dA{L} = (1/m) [-Y / A{L} + (1 - Y) / (1 - A{L})] and "
        "sigmoid'(Z{L}) = A{L} ⊙ (1 - A{L})",
        "Y: 0/1",
    ),
    "softmax": (
        "categorical cross-entropy",
        "L = -(1/m) Σ_i Σ_j Y_ij log A{L}_ij",
        "computed stably from the logits: L = (1/m) Σ_i [logsumexp(Z{L}_i) - Σ_j Y_ij Z{L}_ij]",
        "because dL/dA{L} = -(1/m) Y / A{L}, and through the softmax Jacobian the terms "
        "collapse as each row of Y sums to 1",
        "Y: one-hot rows (class labels are encoded)",
    ),
    "identity": (
        "half squared error",
        "L = (1/2m) Σ_i ‖Y_i - A{L}_i‖²",
        "",
        "because dL/dA{L} = (A{L} - Y) / m and identity' = 1",
        "Y: real values",
    ),
    "exp": (
        "half Poisson deviance",
        "L = (1/m) Σ [Y ⊙ log(Y / A{L}) - Y + A{L}]",
        "computed from the logits (log A{L} = Z{L}): "
        "L = (1/m) Σ [exp(Z{L}) - Y ⊙ Z{L} + Y ⊙ log Y - Y]",
        "because dL/dA{L} = (1/m) (1 - Y / A{L}) and exp'(Z{L}) = A{L}",
        "Y: counts or rates >= 0",
    ),
}


def _count(n: int) -> str:
    """A count in bounded width: ``67``, ``1e+21`` beyond 15 digits (never 300)."""
    if n < 10**15:
        return str(n)
    if n < 10**300:
        return f"{float(n):.6g}"
    return f"about 1e+{int(n.bit_length() * 0.30103)}"


def _shape(*dims: object) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _line(formula: str, shape: str, note: str = "", width: int = 42) -> str:
    text = f"    {formula.ljust(width)} {shape}"
    return f"{text.ljust(82)} {note}".rstrip() if note else text


def explain(
    layer_sizes: Sequence[int],
    activation: str | Sequence[str] = "sigmoid",
    output: str = "sigmoid",
    alpha: float = 0.0,
    rows: int | str = "m",
) -> str:
    """The equations of the network ``layer_sizes`` as text (see the module docstring).

    ``rows`` is the batch size shown in the shapes (the symbol ``m`` by default).
    """
    sizes = [int(s) for s in layer_sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"layer sizes must be 2+ positive integers like 2,4,1; got {sizes}")
    n_hidden = len(sizes) - 2
    acts = [activation] * n_hidden if isinstance(activation, str) else list(activation)
    if isinstance(activation, str):
        get_activation(activation)
    if len(acts) != n_hidden:
        raise ValueError(
            f"{len(acts)} activations given for {n_hidden} hidden layers; give one, or one per "
            "hidden layer"
        )
    acts = [get_activation(name).name for name in acts]  # canonical: logistic is sigmoid
    get_output(output)
    if output == "softmax" and sizes[-1] < 2:
        raise ValueError("a softmax output needs at least 2 units (use sigmoid for one)")
    m = rows
    L = len(sizes) - 1
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    loss_name, loss_eq, stable, bp1_reason, y_kind = _OUTPUT[output]
    hidden = ", ".join(acts) if acts else "none"
    out: list[str] = [
        f"Network {'-'.join(map(str, sizes))}: {L} weight layer(s), {_count(n_params)} "
        "parameters",
        f"  hidden activation(s): {hidden} · output: {output} · loss: {loss_name}"
        + (f" · L2 alpha = {alpha:g}" if alpha else ""),
        f"  rows are samples: X is {_shape(m, sizes[0])}, m = rows in a batch, A0 = X",
        "  @ is the matrix product, ⊙ the element-wise product, ᵀ the transpose",
        "",
        "Forward pass",
    ]
    for layer in range(1, L + 1):
        n_in, n_out = sizes[layer - 1], sizes[layer]
        g = acts[layer - 1] if layer <= n_hidden else output
        role = "hidden" if layer <= n_hidden else "output"
        out.append(f"  layer {layer} ({role}, {g})")
        out.append(_line(
            f"Z{layer} = A{layer - 1} @ W{layer} + b{layer}",
            f"{_shape(m, n_in)} @ {_shape(n_in, n_out)} + {_shape(n_out)} -> {_shape(m, n_out)}",
        ))
        if g == "softmax":
            formula = f"A{layer} = softmax(Z{layer}) = exp(Z{layer}) / Σ_j exp(Z{layer}_j)"
        else:
            formula = f"A{layer} = " + _FORWARD[g].format(Z=f"Z{layer}")
        out.append(_line(formula, _shape(m, n_out)))
    y_shape = _shape(m, sizes[-1])
    out += ["", f"Loss: {loss_name}, mean over the m rows  ({y_kind}, shape {y_shape})"]
    penalty = " + (alpha / 2m) Σ_l ‖W_l‖²" if alpha else ""
    out.append(_line(loss_eq.format(L=L) + penalty, "scalar", width=64))
    if stable:
        out.append("    " + stable.format(L=L))
    out += ["", "Backward pass"]
    for layer in range(L, 0, -1):
        n_in, n_out = sizes[layer - 1], sizes[layer]
        if layer == L:
            out.append(f"  layer {layer} (output)")
            out.append(_line(f"dZ{L} = (A{L} - Y) / m", _shape(m, n_out), "(BP1)"))
            out.append("        " + bp1_reason.format(L=L))
        else:
            g = acts[layer - 1]
            out.append(f"  layer {layer} (hidden, {g})")
            out.append(_line(
                f"dA{layer} = dZ{layer + 1} @ W{layer + 1}ᵀ",
                f"{_shape(m, sizes[layer + 1])} @ {_shape(sizes[layer + 1], n_out)} -> "
                f"{_shape(m, n_out)}",
                f"(BP2) W{layer + 1}, not dW{layer + 1}, carries the error back",
            ))
            formula, why = _DERIVATIVE[g]
            out.append(_line(
                f"dZ{layer} = " + formula.format(dA=f"dA{layer}", A=f"A{layer}"),
                _shape(m, n_out), why.format(l=layer),
            ))
        decay = f" + (alpha/m) W{layer}" if alpha else ""
        out.append(_line(
            f"dW{layer} = A{layer - 1}ᵀ @ dZ{layer}{decay}",
            f"{_shape(n_in, m)} @ {_shape(m, n_out)} -> {_shape(n_in, n_out)}", "(BP3)",
        ))
        out.append(_line(f"db{layer} = Σ_rows dZ{layer}", _shape(n_out), "(BP4)"))
    out += [
        "",
        "Update (gradient descent, learning rate lr), for every layer l:",
        "    W_l ← W_l - lr · dW_l        b_l ← b_l - lr · db_l",
    ]
    if output == "sigmoid" and n_hidden:
        out += [
            "",
            "Corrections to the lesson this project started from:",
            "  - the cross-entropy loss has a leading minus sign, so",
            "    dL/dA = -(Y/A) + (1 - Y)/(1 - A), not Y/A + (1 - Y)/(1 - A);",
            f"  - dZ{L - 1} = (dZ{L} @ W{L}ᵀ) ⊙ g'(Z{L - 1}): the weights W{L} carry the error "
            f"back, not their gradient dW{L},",
            f"    and g' is the derivative of layer {L - 1}'s activation (not of the output's).",
        ]
    return "\n".join(out)
