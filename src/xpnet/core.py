"""The pure training step: loss and gradients as a function of parameters and data.

Nothing here holds state or touches what it is given: every array it updates in place it
created itself (``Z += b`` on a fresh product, ``dZ /= S`` on a fresh difference, both
through :mod:`xpnet._inplace`, which does them in place only where the namespace does
that correctly and falls back to the functional form elsewhere), there
are no caches, and the sizes of the sum are arguments, so the same function runs eagerly
on any backend, under ``jax.jit`` (no tracer can leak into a cache), and per chunk of a
data set whose gradients are summed afterwards (pass the global row count or weight sum
as ``total``). :class:`xpnet.MLP` is the friendly object around it.

With rows as samples, ``L`` weight layers and ``S`` the total weight (``m`` rows)::

    forward  Z_l = A_{l-1} @ W_l + b_l,  A_l = g_l(Z_l),  A_0 = X
    (BP1)    dZ_L     = w ⊙ (A_L - Y) / S        (w = 1 without row weights)
    (BP2)    dZ_{l-1} = (dZ_l @ W_l.T) ⊙ g'_{l-1}(A_{l-1})
    (BP3)    dW_l     = A_{l-1}.T @ dZ_l (+ alpha·W_l / S)
    (BP4)    db_l     = Σ_rows dZ_l

With inverted dropout (``dropout=`` rates and a ``stream``; training only), hidden layer
``l`` passes on ``Ã_l = A_l ⊙ D_l`` with ``D_l = M_l / (1 - p_l)`` (see
:mod:`xpnet._dropout` for ``M_l``), and::

    (BP2')   dZ_{l-1} = ((dZ_l @ W_l.T) ⊙ D_{l-1}) ⊙ g'_{l-1}(A_{l-1})
    (BP3')   dW_l     = Ã_{l-1}.T @ dZ_l

``g'`` is written with the activation *before* dropout (``A``), ``dW`` with the one the
next layer saw (``Ã``): docs/backprop.md derives both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import _inplace as inplace
from ._dropout import DropoutStream, scaled_masks
from .activations import Activation
from .losses import OutputLoss

__all__ = ["Architecture", "DropoutStream", "check_batch", "hidden_forward", "layer_ones",
           "loss_and_grads", "nonfinite_parameters", "parameter_names", "parameter_sum",
           "penalty"]

Array = Any


def _namespace(array: Array) -> Any:
    from array_api_compat import array_namespace

    return array_namespace(array)


def hidden_forward(
    hidden: Sequence[Activation], params: Sequence[Array], X: Array, xp: Any = None
) -> tuple[list[Array], Array]:
    """``([A_0=X, A_1, ..., A_{L-1}], Z_L)``: the hidden activations and the output
    pre-activation, for ``params = [W_1, b_1, ..., W_L, b_L]``.

    Parameters
    ----------
    hidden : sequence of Activation
        The hidden layers' activations.
    params : sequence of arrays
        ``[W_1, b_1, ..., W_L, b_L]``.
    X : array ``(m, n_in)``
        The batch.
    xp : namespace, optional
        The arrays' Array API namespace (default: found from ``X``).
    """
    xp = _namespace(X) if xp is None else xp
    cache = [X]
    A = X
    for layer, act in enumerate(hidden):
        # Z_l = A_{l-1} W_l + b_l (Z is a fresh array: the bias is added in place where
        # the namespace allows, see xpnet._inplace; a plain Add node on ndonnx)
        Z = inplace.add(xp, A @ params[2 * layer], params[2 * layer + 1])
        A = act.forward(xp, Z)  # A_l = g_l(Z_l)
        cache.append(A)
    return cache, inplace.add(xp, A @ params[-2], params[-1])


def _dropout_forward(
    hidden: Sequence[Activation], params: Sequence[Array], X: Array, masks: Sequence[Any],
    xp: Any,
) -> tuple[list[Array], list[Array], Array]:
    """Training forward pass with inverted dropout: ``(cache, undropped, Z_L)``, where
    ``cache = [X, Ã_1, ..., Ã_{L-1}]`` holds what each next layer saw (``Ã_l = A_l ⊙ D_l``,
    or ``A_l`` where ``D_l`` is None) and ``undropped = [X, A_1, ..., A_{L-1}]`` the
    activations before dropout, which ``g'`` is written in."""
    cache = [X]
    undropped = [X]
    A = X
    for layer, act in enumerate(hidden):
        Z = inplace.add(xp, A @ params[2 * layer], params[2 * layer + 1])
        A = act.forward(xp, Z)  # A_l = g_l(Z_l)
        undropped.append(A)
        if masks[layer] is not None:
            A = A * masks[layer]  # Ã_l = A_l ⊙ M_l / (1 - p_l): a new array, A_l is kept
        cache.append(A)
    return cache, undropped, inplace.add(xp, A @ params[-2], params[-1])


def penalty(alpha: float, params: Sequence[Array], total_weight: Any, xp: Any) -> Array:
    """``alpha / (2 S) * Σ‖W‖²`` (biases not penalised), ``S`` the rows or weight sum.

    Parameters
    ----------
    alpha : float
        The L2 strength.
    params : sequence of arrays
        ``[W_1, b_1, ..., W_L, b_L]`` (only the weights are penalised).
    total_weight : int or 0-d array
        ``S``: the row count, or the sum of the row weights.
    xp : namespace
        The arrays' Array API namespace.
    """
    return (alpha / (2 * total_weight)) * sum(xp.sum(W * W) for W in params[0::2])


def _row_sum(dZ: Array, xp: Any) -> Array:
    """Column sums as one matrix-vector product ``ones(m) @ dZ`` (one BLAS call: NumPy's
    axis-0 reduction of a narrow matrix costs 3-10x more)."""
    from array_api_compat import device

    return xp.ones((dZ.shape[0],), dtype=dZ.dtype, device=device(dZ)) @ dZ


def loss_and_grads(
    params: Sequence[Array],
    X: Array,
    Y: Array,
    weight: Array | None = None,
    total: Any = None,
    *,
    hidden: Sequence[Activation],
    output: OutputLoss,
    alpha: float = 0.0,
    xp: Any = None,
    row_sum: Callable[[Array], Array] | None = None,
    dropout: Sequence[float] = (),
    stream: DropoutStream | None = None,
) -> tuple[Array, list[Array]]:
    """Loss (0-d array) and flat gradients ``[dW_1, db_1, ...]`` of one batch; pure.

    Parameters
    ----------
    params : list of arrays
        ``[W_1, b_1, ..., W_L, b_L]``, ``W_l (n_{l-1}, n_l)``, ``b_l (n_l,)``; not modified.
    X, Y : arrays ``(m, n_in)``, ``(m, n_out)``
        Checked batch (network dtype, ``Y`` encoded for the output); not modified.
    weight : array ``(m,)``, optional
        Non-negative row weights: the loss is ``(1/S) Σ_i w_i ℓ_i + alpha/(2S) Σ‖W‖²``.
    total : number or 0-d array, optional
        ``S``: the row count (or weight sum) the sums are divided by. Default: this
        batch's (``m``, or ``Σ w`` with a zero sum taken as 1). Pass the global value
        when the batch is one chunk of a larger sum (distributed data parallelism): the
        chunks' gradients then add up to the whole batch's. The L2 term is included in
        every call; add it once when summing chunks.
    hidden, output, alpha
        The architecture: hidden activations, output/loss pair, L2 strength.
    xp : namespace, optional
        The arrays' namespace (looked up from ``X`` when left out).
    row_sum : callable, optional
        ``dZ -> Σ_rows dZ``; default ``ones(m) @ dZ`` built on every call. A caller may
        pass a cached variant (the eager :class:`xpnet.MLP` does, outside JAX).
    dropout : sequence of float, optional
        Dropout rate ``p_l`` per hidden layer (``0 <= p < 1``; empty or all 0: none).
        Applied only with a ``stream``.
    stream : DropoutStream, optional
        The batch's place in the dropout stream (network key, optimiser step, global row
        indices ``(m,)`` on the device): the masks are a function of it, so the same
        stream gives the same masks on every backend, eager or compiled, whole or in
        chunks. ``None`` (default): no dropout, as at predict time.

    Examples
    --------
    >>> import numpy as np
    >>> import xpnet
    >>> from xpnet.core import loss_and_grads
    >>> net = xpnet.MLP([3, 4, 1], activation="tanh", seed=0)
    >>> batch = net.prepare(np.ones((5, 3)), np.array([0, 1, 1, 0, 1]))
    >>> params = [p for pair in net.params for p in pair]
    >>> arch = net.architecture
    >>> loss, grads = loss_and_grads(params, batch.X, batch.Y,
    ...                              hidden=arch.hidden, output=arch.output)
    >>> [g.shape for g in grads]
    [(3, 4), (4,), (4, 1), (1,)]
    """
    xp = _namespace(X) if xp is None else xp
    masks: list[Any] = []
    if stream is not None and any(dropout):
        widths = [params[2 * layer].shape[1] for layer in range(len(hidden))]
        masks = scaled_masks(xp, stream, dropout, widths, X.dtype)
    if masks:
        cache, undropped, Z_out = _dropout_forward(hidden, params, X, masks, xp)
    else:
        cache, Z_out = hidden_forward(hidden, params, X, xp)
        undropped = cache
    if weight is None and total is None:
        total_weight: Any = X.shape[0]  # S = m
        weight_column = None
    else:
        if total is None:
            total_weight = xp.sum(weight)
            total_weight = total_weight + xp.astype(total_weight == 0, total_weight.dtype)
        else:
            total_weight = total
        rows = (
            weight if weight is not None
            else xp.ones((X.shape[0],), dtype=X.dtype, device=_device(X))
        )
        weight_column = xp.reshape(rows, (-1, 1)) / total_weight  # w_i / S, a column
    A_out, loss = output.forward_and_loss(xp, Z_out, Y, weight_column)  # shares exp/sums
    if alpha:
        loss = loss + penalty(alpha, params, total_weight, xp)
    grads: list[Array] = [None] * len(params)
    dZ = A_out - Y  # (BP1) matched output/loss pair: dZ_L = (A_L - Y) / m ...
    if weight_column is None:
        dZ = inplace.divide(xp, dZ, total_weight)
    else:
        dZ = inplace.multiply(xp, dZ, weight_column)  # ... or w ⊙ (A_L - Y) / S with row weights
    summed = row_sum if row_sum is not None else (lambda dZ: _row_sum(dZ, xp))
    for layer in range(len(hidden), -1, -1):
        A_prev = cache[layer]  # Ã_{l-1} with dropout: what layer l saw
        W = params[2 * layer]
        dW = A_prev.T @ dZ  # (BP3)
        if alpha:
            dW = dW + (alpha / total_weight) * W
        grads[2 * layer] = dW
        grads[2 * layer + 1] = summed(dZ)  # (BP4)
        if layer:
            dZ = dZ @ W.T  # (BP2): the weights W_l carry the error back ...
            if masks and masks[layer - 1] is not None:
                # (BP2') dA_{l-1} = dÃ_{l-1} ⊙ M_{l-1} / (1 - p)
                dZ = inplace.multiply(xp, dZ, masks[layer - 1])
            derivative = hidden[layer - 1].derivative
            if derivative is not None:  # ... times g'_{l-1}, written with A_{l-1}
                dZ = inplace.multiply(xp, dZ, derivative(xp, undropped[layer]))  # (pre-dropout)
    return loss, grads


def parameter_names(n_layers: int) -> list[str]:
    """``["W1", "b1", ..., "WL", "bL"]``: the names of a flat parameter list.

    Parameters
    ----------
    n_layers : int
        The number of weight layers ``L``.
    """
    return [f"{kind}{layer + 1}" for layer in range(n_layers) for kind in "Wb"]


def layer_ones(params: Sequence[Array], xp: Any) -> list[Array]:
    """One ones vector per layer width (inputs first), for :func:`parameter_sum`.

    Parameters
    ----------
    params : sequence of arrays
        ``[W_1, b_1, ..., W_L, b_L]``.
    xp : namespace
        The arrays' Array API namespace.
    """
    sizes = [params[0].shape[0]] + [W.shape[1] for W in params[0::2]]
    return [xp.ones((n,), dtype=params[0].dtype, device=_device(params[0])) for n in sizes]


def parameter_sum(params: Sequence[Array], ones: Sequence[Array]) -> Array:
    """The sum of every entry of ``params`` as a 0-d array (no host sync): finite exactly
    when every entry is, unless finite values overflow (confirm a non-finite sum with
    :func:`nonfinite_parameters`). Per layer ``(1ᵀ W + b) · 1``: two matrix-vector
    products with the :func:`layer_ones` vectors and plain operators, the cheapest form
    on small networks.

    Parameters
    ----------
    params : sequence of arrays
        ``[W_1, b_1, ..., W_L, b_L]``.
    ones : sequence of arrays
        :func:`layer_ones` of ``params``.
    """
    total = None
    for layer in range(len(params) // 2):
        layer_sum = (ones[layer] @ params[2 * layer] + params[2 * layer + 1]) @ ones[layer + 1]
        total = layer_sum if total is None else total + layer_sum
    return total


def nonfinite_parameters(params: Sequence[Array], xp: Any) -> list[str]:
    """Names (:func:`parameter_names`) of the parameters holding NaN or infinity; one host
    read per array (for error paths).

    Parameters
    ----------
    params : sequence of arrays
        ``[W_1, b_1, ..., W_L, b_L]``.
    xp : namespace
        The arrays' Array API namespace.
    """
    names = parameter_names(len(params) // 2)
    return [name for name, p in zip(names, params) if not bool(xp.all(xp.isfinite(p)))]


def check_batch(params: Sequence[Array], X: Array, Y: Array) -> None:
    """Refuse ``X``/``Y`` whose shape or dtype does not fit ``params`` (``[W_1, b_1, ...]``),
    with a ``ValueError`` that says what is expected.

    Parameters
    ----------
    params : sequence of arrays
        ``[W_1, b_1, ..., W_L, b_L]``.
    X : array ``(m, n_in)``
        Features, in the parameters' dtype.
    Y : array ``(m, n_out)``
        Targets encoded for the output, in ``X``'s dtype.
    """
    n_in, n_out = params[0].shape[0], params[-1].shape[0]
    shape_x, shape_y = tuple(getattr(X, "shape", ())), tuple(getattr(Y, "shape", ()))
    if len(shape_x) != 2 or shape_x[1] != n_in:
        raise ValueError(f"X must be 2-D (m, {n_in}): one row per sample, {n_in} features; "
                         f"got shape {shape_x}")
    expected = f"(m, {n_out}) = ({shape_x[0]}, {n_out})"
    if len(shape_y) != 2 or shape_y != (shape_x[0], n_out):
        hint = ("; a 1-D target must be made a column (Y.reshape(-1, 1)), or one-hot for "
                "a softmax; net.prepare(X, y) encodes labels (its .X and .Y)"
                if len(shape_y) == 1 else "")
        raise ValueError(f"Y must be 2-D {expected}, encoded for the output (a 0/1 column "
                         f"for one sigmoid, one-hot rows for a softmax, values for identity); "
                         f"got shape {shape_y}{hint}")
    if getattr(Y, "dtype", None) != X.dtype:
        raise ValueError(f"Y must have X's dtype ({X.dtype}), as the network computes in one "
                         f"dtype; got {getattr(Y, 'dtype', type(Y).__name__)}")


def _device(array: Array) -> Any:
    from array_api_compat import device

    return device(array)


@dataclass(frozen=True)
class Architecture:
    """What the step needs besides parameters and data: hidden activations, the
    output/loss pair, the L2 strength and the dropout rates per hidden layer. Immutable
    and hashable, so it can key a cache of compiled programs and be closed over by
    ``jax.jit``.

    ``MLP.architecture`` returns the network's.

    Parameters
    ----------
    hidden : tuple of Activation
        The hidden layers' activations, first layer first.
    output : OutputLoss
        The output activation and its matched loss.
    alpha : float, default 0.0
        L2 strength (``alpha / (2 S) Σ‖W‖²``).
    dropout : tuple of float, default ()
        Dropout rate of each hidden layer; empty for none.
    """

    hidden: tuple[Activation, ...]
    output: OutputLoss
    alpha: float = 0.0
    dropout: tuple[float, ...] = ()

    def loss_and_grads(
        self,
        params: Sequence[Array],
        X: Array,
        Y: Array,
        weight: Array | None = None,
        total: Any = None,
        *,
        stream: DropoutStream | None = None,
    ) -> tuple[Array, list[Array]]:
        """:func:`loss_and_grads` with this architecture (pure; see there).

        ``X`` ``(m, n_in)`` and ``Y`` ``(m, n_out)`` must be 2-D and of one floating dtype,
        ``Y`` encoded for the output (a 0/1 column for one sigmoid, one-hot rows for a
        softmax); a wrong shape or dtype is refused here (``ValueError`` naming what is
        expected), not deep inside a product. ``net.prepare(X, y)`` encodes raw labels.
        Shapes and dtypes are static, so the check costs no device synchronisation (and
        runs once per trace under ``jax.jit``).
        """
        check_batch(params, X, Y)
        return loss_and_grads(
            params, X, Y, weight, total, hidden=self.hidden, output=self.output,
            alpha=self.alpha, dropout=self.dropout, stream=stream,
        )
