"""In-place arithmetic on arrays a function created itself, only where it is safe and cheap.

The forward code (:mod:`xpnet.core`, :mod:`xpnet.activations`, :mod:`xpnet.inference`)
saves full-size temporaries by updating arrays it has just made (``Z += b`` on a fresh
product, ``tanh`` written over its own scratch array). Every such update goes through
this module, which does it in place only for namespaces known to do in-place updates
correctly and cheaply: NumPy and CuPy, and PyTorch when the tensor is not part of an
autograd graph (autograd refuses an in-place change of a value its backward pass needs,
e.g. the output of ``tanh``). Everywhere else -- JAX (immutable arrays), array-api-strict,
ndonnx (where ``a += b`` becomes a ``ScatterND`` node of the exported graph), Dask or any
namespace not listed -- the same functions return the functional result (``a + b``), so
the values are bit for bit the same either way.

Callers must only pass arrays they created themselves (never the caller's data or a
parameter): the functions return the updated array, which may or may not be ``a``.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["add", "apply", "divide", "finish_rows", "inplace_ok", "multiply", "set_rows",
           "subtract"]

Array = Any

_KINDS: dict[int, str] = {}  # id(namespace) -> "numpy", "cupy", "torch" or "" (functional)


def _kind(xp: Any) -> str:
    kind = _KINDS.get(id(xp))
    if kind is None:
        import array_api_compat as compat

        kind = (
            "numpy" if compat.is_numpy_namespace(xp)
            else "cupy" if compat.is_cupy_namespace(xp)
            else "torch" if compat.is_torch_namespace(xp)
            else ""
        )
        _KINDS[id(xp)] = kind  # namespaces are modules: they live as long as the process
    return kind


def inplace_ok(xp: Any, a: Array) -> bool:
    """Whether ``a`` (of namespace ``xp``) may be updated in place here."""
    kind = _kind(xp)
    if kind == "torch":
        import torch

        return not (a.requires_grad and torch.is_grad_enabled())
    return bool(kind)


def add(xp: Any, a: Array, b: Any) -> Array:
    """``a + b``, written into ``a`` where :func:`inplace_ok`."""
    if inplace_ok(xp, a):
        a += b
        return a
    return a + b


def subtract(xp: Any, a: Array, b: Any) -> Array:
    """``a - b``, written into ``a`` where :func:`inplace_ok`."""
    if inplace_ok(xp, a):
        a -= b
        return a
    return a - b


def multiply(xp: Any, a: Array, b: Any) -> Array:
    """``a * b``, written into ``a`` where :func:`inplace_ok`."""
    if inplace_ok(xp, a):
        a *= b
        return a
    return a * b


def divide(xp: Any, a: Array, b: Any) -> Array:
    """``a / b``, written into ``a`` where :func:`inplace_ok`."""
    if inplace_ok(xp, a):
        a /= b
        return a
    return a / b


def apply(xp: Any, name: str, a: Array) -> Array:
    """The element-wise function ``xp.<name>`` (``exp``, ``tanh``, ``negative``...) of
    ``a``, written into ``a`` where :func:`inplace_ok` (NumPy's and CuPy's ``out=``,
    PyTorch's ``out=``): the same values as ``xp.<name>(a)``, one array fewer."""
    kind = _kind(xp) if inplace_ok(xp, a) else ""
    if kind:  # the library itself (numpy, cupy, torch): its functions take out=
        library = sys.modules[kind]  # imported: it made ``a``
        getattr(library, name)(a, out=a)
        return a
    if name == "reciprocal":  # only in the 2024.12 standard; a division rounds the same
        return 1.0 / a
    return getattr(xp, name)(a)


def set_rows(
    xp: Any, out: Array | list[Array] | None, start: int, block: Array, rows: int
) -> Array | list[Array]:
    """Put ``block`` into rows ``start:start + len(block)`` of a result of ``rows`` rows
    being assembled (``out`` is ``None`` for the first block; pass back what this returns).

    Where :func:`inplace_ok` the result is one array allocated at the first block and
    filled in place (no second copy of the output), else a list of the blocks, joined by
    :func:`finish_rows`."""
    if out is None:
        if block.shape[0] == rows or not inplace_ok(xp, block):
            return [block]
        from array_api_compat import device

        out = xp.empty((rows, *block.shape[1:]), dtype=block.dtype, device=device(block))
    if isinstance(out, list):
        out.append(block)
        return out
    out[start:start + block.shape[0], ...] = block
    return out


def finish_rows(xp: Any, out: Array | list[Array]) -> Array:
    """The result assembled by :func:`set_rows`."""
    if isinstance(out, list):
        return out[0] if len(out) == 1 else xp.concat(out, axis=0)
    return out
