"""Sparse ``X``: SciPy sparse matrices/arrays on the NumPy backend, ``cupyx.scipy.sparse``
on CuPy.

Only the first layer touches ``X``, through two products that sparse matrices compute
without densifying: ``Z_1 = X @ W_1`` (sparse × dense → dense ``(m, n_1)``) and
``dW_1 = X.T @ dZ_1`` (→ dense ``(n_in, n_1)``). Everything after the first layer is
dense as before, so memory grows with X's non-zeros, not with ``m × n_in``. Sparse
input is kept in CSR form (rows are what batches gather); COO, CSC and the other
formats are converted once, at the check.

Nothing here imports SciPy or CuPy unless the input is one of their sparse types
(recognised by module name), so the core keeps no hard dependency on either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["check_sparse_X", "is_sparse", "row_slice", "take_rows"]

Array = Any

# the sparse library each backend multiplies with
_SPARSE_MODULES = {"numpy": "scipy.sparse", "cupy": "cupyx.scipy.sparse"}


def _sparse_module(obj: Any) -> str | None:
    module = type(obj).__module__ or ""
    for name in ("scipy.sparse", "cupyx.scipy.sparse"):
        if module == name or module.startswith(name + "."):
            return name
    return None


def is_sparse(obj: Any) -> bool:
    """Whether ``obj`` is a SciPy or CuPy sparse matrix/array."""
    return _sparse_module(obj) is not None


def check_sparse_X(
    backend: Backend, X: Any, n_features: int, dtype: Any, name: str = "X"
) -> Any:
    """``X`` as a CSR matrix of ``dtype`` that the backend's products accept.

    SciPy sparse input goes with the NumPy backend and ``cupyx.scipy.sparse`` input with
    CuPy (SciPy input is moved to the GPU once); other backends have no sparse
    product that xpnet uses, and are refused with the reason.
    """
    module = _sparse_module(X)
    wanted = _SPARSE_MODULES.get(backend.name)
    if wanted is None:
        raise TypeError(
            f"{name} is a sparse matrix ({type(X).__name__}); sparse input trains on the "
            f"numpy backend (scipy.sparse) or cupy (cupyx.scipy.sparse), not on "
            f"{backend.name!r}: use one of those, or pass a dense array"
        )
    if len(X.shape) != 2:
        raise ValueError(f"{name} must be 2-D (m, n_features); got shape {tuple(X.shape)}")
    if X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features (columns) but the network expects "
            f"{n_features}; got shape {tuple(X.shape)}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows; need at least one sample")
    if module != wanted and wanted == "cupyx.scipy.sparse":  # SciPy input on CuPy
        import cupyx.scipy.sparse as cupy_sparse

        X = cupy_sparse.csr_matrix(X.tocsr())  # one copy to the device
    elif module != wanted:  # CuPy sparse input on NumPy: one copy to the host
        X = X.get()
    X = X.tocsr()
    if X.dtype != np.dtype(dtype):
        X = X.astype(np.dtype(dtype))
    data = X.data
    finite = bool((abs(data) < float("inf")).all()) if data.size else True
    if not finite:
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def row_slice(X: Array, first: int, last: int) -> Array:
    """Rows ``first:last`` of a dense or sparse ``X`` (a view where the library gives one)."""
    return X[first:last] if is_sparse(X) else X[first:last, ...]


def take_rows(xp: Any, X: Array, rows: Array) -> Array:
    """``X[rows]`` for a sparse CSR ``X`` (row gather, still sparse), else
    ``xp.take(X, rows, axis=0)``."""
    if is_sparse(X):
        return X[rows]
    return xp.take(X, rows, axis=0)
