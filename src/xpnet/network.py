"""The multilayer perceptron: parameters, forward pass with cache, explicit backward pass.

Rows are samples. For layers ``l = 1..L`` (``A_0 = X``)::

    Z_l = A_{l-1} @ W_l + b_l          W_l: (n_{l-1}, n_l),  b_l: (n_l,)
    A_l = g_l(Z_l)

and the four backpropagation equations, with ``m`` rows in the batch::

    (BP1) dZ_L     = (A_L - Y) / m                      matched output/loss pair
    (BP2) dZ_{l-1} = (dZ_l @ W_l.T) * g'_{l-1}(A_{l-1})  W_l (not dW_l) carries the error back
    (BP3) dW_l     = A_{l-1}.T @ dZ_l  (+ alpha * W_l / m with L2)
    (BP4) db_l     = sum over rows of dZ_l

See ``docs/backprop.md`` for the derivation. Only Array API functions are used here:
the namespace comes from the backend and is resolved once, at construction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import core
from ._dropout import DropoutStream, check_dropout, dropout_key
from ._memory import n_parameters, network_bytes
from ._memory import too_large as memory_refusal
from ._sparse import check_sparse_X, is_sparse
from ._validation import (
    array_module,
    check_nonnegative_float,
    check_parameter,
    check_X,
    check_Y,
)
from .activations import Activation, get_activation
from .backends import DTYPE_NAMES, Backend, get_backend, on_device
from .core import Architecture
from .inference import predict_blocks
from .losses import OutputLoss, get_output
from .optim import SGD
from .training import fit as training_fit

__all__ = ["MLP", "Prepared"]

Array = Any


def _check_layer_sizes(layer_sizes: Any) -> tuple[int, ...]:
    if isinstance(layer_sizes, (Mapping, Set, str, bytes)):
        # A dict or set iterates in an order the caller never wrote down (a dict's keys
        # would silently become the sizes), and a string iterates over characters.
        raise TypeError(
            f"layer_sizes must be a sequence of positive integers like [2, 4, 1], in "
            f"order; got a {type(layer_sizes).__name__}: {layer_sizes!r}"
        )
    try:
        sizes = tuple(layer_sizes)
    except TypeError:
        raise TypeError(
            f"layer_sizes must be a sequence of positive integers like [2, 4, 1]; "
            f"got {layer_sizes!r}"
        ) from None
    if len(sizes) < 2:
        raise ValueError(
            f"layer_sizes needs at least an input and an output size, like [2, 4, 1]; "
            f"got {list(sizes)!r}"
        )
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(
                f"layer_sizes must hold positive integers; got {list(sizes)!r}"
            )
    return tuple(int(s) for s in sizes)


def _check_dtype(dtype: Any) -> str:
    name = dtype if isinstance(dtype, str) else getattr(dtype, "__name__", None)
    if name is None:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = None
    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_NAMES)}; got {dtype!r}")
    return name


@dataclass(frozen=True, eq=False)  # arrays: identity, not element-wise ==
class Prepared:
    """Inputs checked once by :meth:`MLP.prepare`, for a hot loop of ``step``/``loss`` calls.

    ``X`` ``(m, n_features)`` and ``Y`` ``(m, n_outputs)`` are on the network's backend and
    device, in its dtype, finite, and ``Y`` encoded for its output (one-hot rows for
    softmax). Pass the object in place of ``X`` (and leave out ``Y``) to
    :meth:`MLP.step`, :meth:`MLP.loss` or :meth:`MLP.loss_and_grads`: they then skip the
    checks and their host synchronisations. Rows of checked data are checked data, so
    ``prepared[first:last]`` and ``prepared.take(indices)`` give mini-batches without new
    checks. Do not modify ``X``/``Y`` in place.

    Parameters
    ----------
    X : array ``(m, n_features)``
        The checked features.
    Y : array ``(m, n_outputs)``
        The checked, encoded targets.
    spec : tuple
        What the checks were made against (the network's layout, dtype and device).
    """

    X: Array
    Y: Array
    spec: tuple[Any, ...] = field(repr=False)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __getitem__(self, rows: slice) -> Prepared:
        """The rows ``rows`` (a slice) of both arrays, still checked."""
        if not isinstance(rows, slice):
            raise TypeError(
                f"prepared data can be indexed by a slice (use take() for row indices); "
                f"got {rows!r}"
            )
        return Prepared(self.X[rows, ...], self.Y[rows, ...], self.spec)

    def take(self, indices: Array) -> Prepared:
        """The rows ``indices`` (an integer array on the same backend) of both arrays."""
        from array_api_compat import array_namespace

        xp = array_namespace(self.X)
        return Prepared(
            xp.take(self.X, indices, axis=0), xp.take(self.Y, indices, axis=0), self.spec
        )


class MLP:
    """A fully connected network trained by explicit backpropagation on any Array API backend.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden_1, ..., n_outputs]``; at least two entries.
    activation : str or sequence of str, default "sigmoid"
        Hidden-layer activation (``sigmoid``, ``tanh``, ``relu``, ``identity``), one name
        for all hidden layers or one per hidden layer.
    output : str, default "sigmoid"
        Output activation, which fixes the loss: ``sigmoid`` (binary cross-entropy, also
        multi-label), ``softmax`` (categorical cross-entropy), ``identity`` (half
        squared error) or ``exp`` (half Poisson deviance; targets >= 0).
    backend : str, default "numpy"
        ``numpy``, ``cupy``, ``torch`` or ``array_api_strict`` (see
        :func:`xpnet.available_backends`).
    device : str, int or None
        Device on the backend (``None``: the backend's default; ``"cuda:0"`` for GPUs).
    dtype : {"float32", "float64"}
        Floating-point type of parameters and computations.
    seed : int or None, default 0
        Seeds the NumPy generator that draws the initial weights (identical bits on every
        backend) and the per-epoch shuffles.
    alpha : float, default 0.0
        L2 penalty: ``alpha / (2m) * sum ||W||^2`` is added to the loss (biases are not
        penalised), as in scikit-learn.
    dropout : float or sequence of float, default 0.0
        Inverted dropout rate ``p`` (``0 <= p < 1``) of every hidden layer, or one per
        hidden layer; 0 turns it off. While :meth:`fit` trains, each hidden unit's output
        is dropped with probability ``p`` and the kept ones are scaled by ``1/(1-p)``;
        predictions, :meth:`loss`, :meth:`loss_and_grads` and :meth:`step` use the whole
        network. The masks are a hash of (the seed, the optimiser step, the layer, the
        row's index in the training data, the unit), made on the device with integer
        operations: the same masks on every backend, eager or compiled (see
        :mod:`xpnet._dropout`). The step counts every optimiser step of the network's
        life, so a second ``fit`` continues the stream rather than repeating it.

    Examples
    --------
    >>> import xpnet
    >>> from xpnet.data import make_moons
    >>> X, y = make_moons(200, noise=0.1)
    >>> net = xpnet.MLP([2, 8, 1], activation="tanh", seed=0)
    >>> history = net.fit(X, y, epochs=500, lr=1.0)
    >>> bool(history.loss[-1] < 0.1), net.predict(X[:3]).shape
    (True, (3,))
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | Sequence[str] = "sigmoid",
        output: str = "sigmoid",
        backend: str = "numpy",
        device: Any = None,
        dtype: str = "float64",
        seed: int | None = 0,
        alpha: float = 0.0,
        dropout: float | Sequence[float] = 0.0,
    ) -> None:
        self.layer_sizes = _check_layer_sizes(layer_sizes)
        n_hidden = len(self.layer_sizes) - 2
        if isinstance(activation, str):
            names = [activation] * n_hidden
            get_activation(activation)  # validate even when there is no hidden layer
        else:
            try:
                if isinstance(activation, (Mapping, Set, bytes)):
                    raise TypeError  # unordered, or not names
                names = list(activation)
                if not all(isinstance(name, str) for name in names):
                    raise TypeError
            except TypeError:
                raise TypeError(
                    "activation must be a name (sigmoid, tanh, relu, identity) or a list "
                    f"of names, one per hidden layer; got {activation!r}"
                ) from None
            if len(names) != n_hidden:
                raise ValueError(
                    f"activation lists {len(names)} name{'' if len(names) == 1 else 's'} "
                    f"but the network has {n_hidden} hidden layer"
                    f"{'' if n_hidden == 1 else 's'}; give one name, or one per hidden layer"
                )
        self._hidden: list[Activation] = [get_activation(name) for name in names]
        #: dropout rate per hidden layer (all 0: off)
        self.dropout: tuple[float, ...] = check_dropout(dropout, n_hidden)
        self._output: OutputLoss = get_output(output)
        if output == "softmax" and self.layer_sizes[-1] < 2:
            raise ValueError(
                "output 'softmax' needs at least 2 output units; got layer_sizes "
                f"{list(self.layer_sizes)!r} (use output='sigmoid' for one binary output)"
            )
        self.dtype = _check_dtype(dtype)
        too_large = memory_refusal(
            network_bytes(self.layer_sizes, np.dtype(self.dtype).itemsize)
        )
        if too_large is not None:  # refuse before NumPy tries (and fails) to allocate
            raise ValueError(
                f"layer_sizes {list(self.layer_sizes)!r} "
                f"({n_parameters(self.layer_sizes):,} parameters) {too_large}; "
                "use smaller layers"
            )
        self.alpha = check_nonnegative_float("alpha", alpha)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"seed must be a non-negative integer or None; got {seed!r}")
        self.seed = seed
        self.array_backend: Backend = get_backend(backend, device)
        self.xp = self.array_backend.xp
        self._dtype = self.array_backend.dtype(self.dtype)
        # the third child keys the dropout stream (children 0 and 1 are as before it)
        init_seq, shuffle_seq, dropout_seq = np.random.SeedSequence(seed).spawn(3)
        self._shuffle_rng = np.random.default_rng(shuffle_seq)
        self._dropout_key = dropout_key(dropout_seq)
        self._steps = 0  # optimiser steps taken by fit over the network's life (dropout)
        self._params: list[Array] = self._initial_params(np.random.default_rng(init_seq))
        self._ones: dict[int, Array] = {}  # row-summing vectors by batch size (see _row_sum)

    # ------------------------------------------------------------------ description
    @property
    def backend(self) -> str:
        """Name of the backend the parameters live on."""
        return self.array_backend.name

    @property
    def device(self) -> Any:
        return self.array_backend.device

    @property
    def activations(self) -> tuple[str, ...]:
        """Names of the hidden activations, one per hidden layer."""
        return tuple(act.name for act in self._hidden)

    @property
    def output(self) -> str:
        return self._output.name

    @property
    def loss_name(self) -> str:
        return self._output.loss_name

    @property
    def n_layers(self) -> int:
        """Number of weight layers (``len(layer_sizes) - 1``)."""
        return len(self.layer_sizes) - 1

    @property
    def n_params(self) -> int:
        return sum(a * b + b for a, b in zip(self.layer_sizes[:-1], self.layer_sizes[1:]))

    def __repr__(self) -> str:
        acts = self.activations[0] if len(set(self.activations)) == 1 else list(self.activations)
        return (
            f"MLP({list(self.layer_sizes)}, activation={acts!r}, output={self.output!r}, "
            f"backend={self.backend!r}, device={self.device!r}, dtype={self.dtype!r}, "
            f"seed={self.seed!r}, alpha={self.alpha!r}{self._dropout_repr()})"
        )

    def _dropout_repr(self) -> str:
        if not any(self.dropout):
            return ""
        rates = self.dropout
        return f", dropout={rates[0] if len(set(rates)) == 1 else list(rates)!r}"

    # ------------------------------------------------------------------ parameters
    def _initial_params(self, rng: np.random.Generator) -> list[Array]:
        """Glorot/Xavier uniform (He normal before relu), drawn in float64 by NumPy."""
        params = []
        inits = [act.init for act in self._hidden] + ["glorot"]
        for (fan_in, fan_out), init in zip(
            zip(self.layer_sizes[:-1], self.layer_sizes[1:]), inits
        ):
            if init == "he":
                W = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
            else:
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                W = rng.uniform(-limit, limit, size=(fan_in, fan_out))
            params.append(self.array_backend.asarray(W, dtype=self._dtype))
            params.append(self.array_backend.asarray(np.zeros(fan_out), dtype=self._dtype))
        return params

    @property
    @on_device
    def params(self) -> list[tuple[Array, Array]]:
        """A copy of the parameters: list of ``(W, b)``, ``W (n_in, n_out)``, ``b (n_out,)``."""
        xp = self.xp
        copies = [xp.asarray(p, copy=True) for p in self._params]
        return list(zip(copies[0::2], copies[1::2]))

    @on_device
    def set_params(self, params: Sequence[tuple[Any, Any]]) -> None:
        """Replace all parameters with copies of ``params`` (NumPy or backend arrays; a
        JAX array of the network's dtype is immutable and is kept as it is).

        Shapes must match the network exactly; nothing changes if any entry is invalid.
        """
        params = list(params)
        if len(params) != self.n_layers:
            raise ValueError(
                f"params must hold {self.n_layers} (W, b) pairs; got {len(params)}"
            )
        new = []
        for index, pair in enumerate(params):
            try:
                W, b = pair
            except (TypeError, ValueError):
                raise ValueError(f"params[{index}] must be a (W, b) pair") from None
            fan_in, fan_out = self.layer_sizes[index], self.layer_sizes[index + 1]
            for name, value, shape in (
                (f"params[{index}][0] (W)", W, (fan_in, fan_out)),
                (f"params[{index}][1] (b)", b, (fan_out,)),
            ):
                new.append(check_parameter(self.array_backend, value, shape, self._dtype,
                                           name))
        self._params = new

    def parameter_sum(self, params: Sequence[Array] | None = None) -> Array:
        """:func:`xpnet.core.parameter_sum` of ``params`` (default: the network's): a 0-d
        device array, finite exactly when every entry is (barring overflow)."""
        ones = self.__dict__.get("_layer_ones")
        if ones is None:
            ones = self._layer_ones = core.layer_ones(self._params, self.xp)
        return core.parameter_sum(self._params if params is None else params, ones)

    def nonfinite_parameters(self, params: Sequence[Array] | None = None) -> list[str]:
        """Names (``W1``, ``b1``, ...) of the parameters holding NaN or infinity in
        ``params`` (default: the network's); one host read per array."""
        return core.nonfinite_parameters(self._params if params is None else params, self.xp)

    # ------------------------------------------------------------------ training seams
    # What the training loop, the estimators and the distributed engine read and write:
    # public names, so no module outside this class touches its underscore attributes.
    @property
    def flat_params(self) -> list[Array]:
        """The live parameters ``[W1, b1, W2, b2, ...]`` on the backend (no copy): the
        training loop's view. Use :attr:`params` for copies as ``(W, b)`` pairs."""
        return self._params

    @flat_params.setter
    def flat_params(self, params: Sequence[Array]) -> None:
        """Install ``params`` (same layout, already on the backend in the network's dtype;
        unchecked: :meth:`set_params` is the checked way in)."""
        self._params = list(params)

    @property
    def steps(self) -> int:
        """Optimiser steps taken by fit over the network's life (keys the dropout masks)."""
        return self._steps

    @steps.setter
    def steps(self, steps: int) -> None:
        self._steps = int(steps)

    @property
    def dropout_key(self) -> Any:
        """The key of the dropout stream (from the seed)."""
        return self._dropout_key

    @dropout_key.setter
    def dropout_key(self, key: Any) -> None:
        self._dropout_key = key

    @property
    def shuffle_rng(self) -> np.random.Generator:
        """The generator of the per-epoch shuffles (seeded from ``seed``)."""
        return self._shuffle_rng

    @property
    def array_dtype(self) -> Any:
        """The backend's dtype object of the parameters (``dtype`` is its name)."""
        return self._dtype

    @property
    def output_loss(self) -> OutputLoss:
        """The output activation and loss pair."""
        return self._output

    @output_loss.setter
    def output_loss(self, output: OutputLoss) -> None:
        self._output = output

    @property
    def hidden_activations(self) -> tuple[Activation, ...]:
        """The hidden activations, one per hidden layer."""
        return tuple(self._hidden)

    # ------------------------------------------------------------------ checks
    def check_X(self, X: Any, name: str = "X") -> Array:
        if is_sparse(X):  # only the first layer's products touch X (see _sparse)
            return check_sparse_X(self.array_backend, X, self.layer_sizes[0], self._dtype, name)
        return check_X(self.array_backend, X, self.layer_sizes[0], self._dtype, name)

    def check_XY(self, X: Any, Y: Any) -> tuple[Array, Array]:
        X = self.check_X(X)
        return X, self.check_targets(Y, X.shape[0])

    def check_targets(self, Y: Any, m: int) -> Array:
        """``Y`` for ``m`` rows, checked and encoded for the output (as in :meth:`loss`)."""
        Y = check_Y(
            self.array_backend, Y, m, self._output.task, self.layer_sizes[-1], self._dtype,
        )
        if self._output.name == "exp" and bool(self.xp.any(Y < 0)):
            raise ValueError(
                "Y for the exp output (Poisson: counts or rates) must be >= 0; got negative values"
            )
        return Y

    def _input_spec(self) -> tuple[Any, ...]:
        """What checked inputs depend on: backend, device, dtype, input and output kind."""
        return (
            self.backend, self.array_backend.device_name, self.dtype, self.layer_sizes[0],
            self.layer_sizes[-1], self._output.task,
        )

    @on_device
    def prepare(self, X: Any, Y: Any) -> Prepared:
        """Check and convert ``(X, Y)`` once, for many ``step``/``loss`` calls.

        The checks (finite values, target encoding, label range) read a few flags back
        to the host: 2 to 5 synchronisations with the device per call. ``step``,
        ``loss`` and ``loss_and_grads`` run them on every call unless given the
        :class:`Prepared` returned here (slice it, or ``take`` rows, for mini-batches).
        """
        X, Y = self.check_XY(X, Y)
        return Prepared(X, Y, self._input_spec())

    def _checked_XY(self, X: Any, Y: Any) -> tuple[Array, Array]:
        """``(X, Y)`` from prepared data without checks, else checked now."""
        if isinstance(X, Prepared):
            if Y is not None:
                raise TypeError(
                    "Y must be left out when X is Prepared data (it holds Y already); "
                    f"got Y of type {type(Y).__name__}"
                )
            if X.spec != self._input_spec():
                raise ValueError(
                    "X was prepared for another network (backend, device, dtype, "
                    f"features, outputs): {X.spec} != {self._input_spec()}"
                )
            return X.X, X.Y
        if Y is None:
            raise TypeError("Y is required unless X is Prepared data from MLP.prepare(X, Y)")
        return self.check_XY(X, Y)

    # ------------------------------------------------------------------ math
    @property
    def architecture(self) -> Architecture:
        """The network's :class:`xpnet.core.Architecture` (activations, output, alpha,
        dropout rates): with ``params`` (and, for dropout, a ``DropoutStream``) it is all
        the pure step :func:`xpnet.core.loss_and_grads` needs."""
        return Architecture(
            tuple(self._hidden), self._output, self.alpha,
            self.dropout if any(self.dropout) else (),
        )

    def _hidden_forward(self, X: Array) -> tuple[list[Array], Array]:
        """Cache ``[A_0=X, A_1, ..., A_{L-1}]`` and the output pre-activation ``Z_L``."""
        return core.hidden_forward(self._hidden, self._params, X, self.xp)

    def _forward(self, X: Array) -> tuple[list[Array], Array, Array]:
        """Forward pass. Returns the cache ``[A_0=X, A_1, ..., A_{L-1}]``, ``Z_L`` and ``A_L``."""
        cache, Z_out = self._hidden_forward(X)
        return cache, Z_out, self._output.activation(self.xp, Z_out)

    def _penalty(self, total_weight: Any) -> Array:
        """``alpha / (2 S) * Σ‖W‖²`` with ``S`` the batch's rows (or summed row weights)."""
        return core.penalty(self.alpha, self._params, total_weight, self.xp)

    def _loss(self, Z_out: Array, A_out: Array, Y: Array) -> Array:
        loss = self._output.loss(self.xp, Z_out, A_out, Y)
        if self.alpha:
            loss = loss + self._penalty(Z_out.shape[0])
        return loss

    def _row_sum(self, dZ: Array) -> Array:
        """Column sums of ``dZ`` (m, n) as one matrix-vector product ``ones(m) @ dZ``.

        Same value as ``xp.sum(dZ, axis=0)`` up to rounding order, but a single BLAS call:
        NumPy reduces over axis 0 of a narrow matrix row by row, which costs 3-10x more.
        The ones vector is created once per batch size and kept.
        """
        m = dZ.shape[0]
        ones = self._ones.get(m)
        if ones is None:
            if len(self._ones) >= 4:  # a fit uses at most two sizes (batch and last batch)
                self._ones.clear()
            ones = self.xp.ones((m,), dtype=self._dtype, device=self.array_backend.device)
            self._ones[m] = ones
        return ones @ dZ

    def _loss_and_grads(
        self, X: Array, Y: Array, sample_weight: Array | None = None, *,
        stream: DropoutStream | None = None,
    ) -> tuple[Array, list[Array]]:
        """Loss and flat gradients ``[dW_1, db_1, ...]`` for checked arrays.

        This is the training hot path: it runs once per step, so it does no checks and
        no host synchronisation, and updates only arrays it created itself in place.

        ``sample_weight`` (``(m,)``, non-negative, on the backend in the network's dtype)
        turns the mean into scikit-learn's weighted mean: with ``S = Σ_i w_i``,
        ``L_w = (1/S) Σ_i w_i ℓ_i + alpha/(2S) Σ‖W‖²``. Only (BP1) changes, row by row,
        to ``dZ_L = w ⊙ (A_L − Y) / S``, and the L2 gradient to ``alpha·W/S``; with all
        ``w_i = 1`` this is the unweighted loss exactly. A batch whose weights are all
        zero has loss 0 and zero gradients (``S`` is taken as 1 there).

        ``stream``: train with dropout on this batch (a :class:`xpnet._dropout.DropoutStream`).
        """
        # The pure step; outside JAX with the cached ones vector of _row_sum (under
        # jax.jit a cached array would be a tracer, so JAX builds it in the step).
        row_sum = None if self.array_backend.name == "jax" else self._row_sum
        return core.loss_and_grads(
            self._params, X, Y, sample_weight, None, hidden=self._hidden,
            output=self._output, alpha=self.alpha, xp=self.xp, row_sum=row_sum,
            dropout=self.dropout, stream=stream,
        )

    # ------------------------------------------------------------------ public API
    @on_device
    def forward(self, X: Any, *, block_rows: int | None = None) -> Array:
        """Output activations ``A_L`` of shape ``(m, n_outputs)`` (same as predict_proba).

        Computed in blocks of rows (:mod:`xpnet.inference`): the memory needed above ``X``
        and the result stays a few MiB whatever the row count, and the result is bit for
        bit that of one unblocked pass. ``block_rows``: rows per block (default: the
        ``XPNET_BLOCK_ROWS`` / :func:`xpnet.inference.prediction_block_rows` knob, else
        4 MiB for a block of the widest layer). ``X`` is checked once per call.

        On a Dask array: a lazy Dask array computed block-wise on the workers."""
        if array_module(X) == "dask":
            from .distributed import forward

            return forward(self, X)
        if is_sparse(X):  # one pass: the sparse product does not allocate per row
            return self._forward(self.check_X(X))[2]
        return predict_blocks(self, X, self._output_block, block_rows=block_rows)

    def _output_block(self, Z_out: Array) -> Array:
        return self._output.activation(self.xp, Z_out)

    def _class_block(self, Z_out: Array) -> Array:
        return self.class_indices(self._output.activation(self.xp, Z_out))

    @on_device
    def loss(self, X: Any, Y: Any = None) -> Array:
        """Mean loss on ``(X, Y)`` plus the L2 penalty, as a 0-d backend array.

        The inputs are checked on every call (2 to 5 host synchronisations); pass
        ``X=net.prepare(X, Y)`` (and no ``Y``) to check them once.
        """
        X, Y = self._checked_XY(X, Y)
        _, Z_out, A_out = self._forward(X)
        return self._loss(Z_out, A_out, Y)

    @on_device
    def loss_and_grads(
        self, X: Any, Y: Any = None
    ) -> tuple[Array, list[tuple[Array, Array]]]:
        """Loss (0-d backend array) and gradients ``[(dW, db), ...]``.

        ``X``: ``(m, n_features)``. ``Y``: see the class docs; for sigmoid outputs 0/1 of
        shape ``(m,)`` (one output) or ``(m, k)``; for softmax integer labels ``(m,)`` or
        one-hot ``(m, k)``; for identity ``(m,)`` (one output) or ``(m, k)``.

        The computation itself never waits for the device, but the input checks do (2 to
        5 host synchronisations per call); pass ``X=net.prepare(X, Y)`` (and no ``Y``),
        or slices of it, to check once and run the hot loop without them.
        """
        X, Y = self._checked_XY(X, Y)
        loss, grads = self._loss_and_grads(X, Y)
        return loss, list(zip(grads[0::2], grads[1::2]))

    @on_device
    def step(
        self, X: Any, Y: Any = None, lr: float = 0.1, *, check_finite: bool | None = None
    ) -> Array:
        """One gradient-descent update ``W ← W − lr·dW`` on this batch.

        Returns the loss before the update (0-d backend array). Inputs are checked before
        anything changes, so a failing call leaves the parameters as they were. The
        checks cost 2 to 5 host synchronisations per call: in a loop, check once with
        ``batch = net.prepare(X, Y)`` and call ``net.step(batch[first:last], lr=lr)``.

        ``check_finite``: refuse an update that would make a parameter NaN or infinite
        (one more host synchronisation). ``None`` (default): check, except for prepared
        data, whose hot loop stays free of host synchronisations (check the loss you
        read back there, or train with ``fit``, which checks once per epoch).

        Raises
        ------
        FloatingPointError
            If the update would make a parameter NaN or infinite (``lr`` too large, or
            a non-finite loss); the parameters are left unchanged.
        """
        optimizer = SGD(lr)  # checks lr
        if check_finite is None:
            check_finite = not isinstance(X, Prepared)
        elif not isinstance(check_finite, bool):
            raise TypeError(f"check_finite must be True, False or None; got {check_finite!r}")
        X, Y = self._checked_XY(X, Y)
        loss, grads = self._loss_and_grads(X, Y)
        if not check_finite:
            optimizer.update(self._params, grads)
            return loss
        # Out of place (same rounding as SGD's p -= lr * grad), so nothing changes until
        # the new values are known to be finite; one host read for the check.
        lr = optimizer.lr
        new = [p - lr * grad for p, grad in zip(self._params, grads)]
        if not bool(self.xp.isfinite(self.parameter_sum(new))):
            bad = self.nonfinite_parameters(new)  # the sum may also just have overflowed
            if bad:
                raise FloatingPointError(
                    f"step(lr={lr:g}) would make {', '.join(bad)} non-finite (loss before "
                    f"the step: {float(loss):g}); the parameters are unchanged. Try a "
                    "smaller lr."
                )
        self._params = new
        return loss

    def fit(
        self,
        X: Any,
        Y: Any,
        epochs: int = 100,
        lr: float = 0.5,
        batch_size: int | None = None,
        shuffle: bool = True,
        callback: Any = None,
        **options: Any,
    ) -> Any:
        """Train by gradient descent; returns a :class:`xpnet.train.History`.

        ``batch_size=None`` is full-batch gradient descent. With mini-batches the rows are
        reshuffled every epoch (``shuffle=True``) by a generator seeded from ``seed``.
        ``history.loss[e]`` is the mean loss over epoch ``e`` (each batch's loss before its
        update, weighted by its size). ``callback(epoch, loss)`` is called after each epoch
        (``callback(epoch, loss, params)`` when it takes three positional parameters:
        the live parameters ``[W1, b1, ...]``, to copy if kept); returning ``True``
        stops training after that epoch.
        ``options`` are the optimiser and training controls of :func:`xpnet.train.fit`
        (``optimizer``, ``sample_weight``, ``early_stopping``, ``tol``, ...). Dask arrays
        train data-parallel on the current Dask cluster (:func:`xpnet.distributed.fit`).
        """
        if any(array_module(a) == "dask" for a in (X, Y, options.get("sample_weight"))):
            from .distributed.engine import fit as distributed_fit

            return distributed_fit(
                self, X, Y, epochs=epochs, lr=lr, batch_size=batch_size, shuffle=shuffle,
                callback=callback, **options,
            )
        return training_fit(
            self, X, Y, epochs=epochs, lr=lr, batch_size=batch_size, shuffle=shuffle,
            callback=callback, **options,
        )

    def predict_proba(self, X: Any, *, block_rows: int | None = None) -> Array:
        """Output activations, shape ``(m, n_outputs)``: probabilities for sigmoid/softmax
        (computed in blocks of rows, see :meth:`forward`)."""
        return self.forward(X, block_rows=block_rows)

    @on_device
    def predict(self, X: Any, *, block_rows: int | None = None) -> Array:
        """Predictions: class index ``(m,)`` for softmax; 0/1 for sigmoid (``(m,)`` with one
        output, ``(m, k)`` multi-label); raw outputs for identity (``(m,)`` with one output).

        Class predictions are int64 on every backend (int32 on JAX while it runs in
        32-bit mode: no float64 JAX network built yet). A sigmoid output is class 1 when
        strictly above 0.5, scikit-learn's rule (an output of exactly 0.5 is class 0).
        Computed in blocks of rows (``block_rows``: see :meth:`forward`).
        On a Dask array: a lazy Dask array computed block-wise on the workers.
        """
        if array_module(X) == "dask":
            from .distributed import predict

            return predict(self, X)
        if self._output.task == "regression":
            A = self.forward(X, block_rows=block_rows)
        elif is_sparse(X):
            A = self.class_indices(self.forward(X))
        else:
            A = predict_blocks(self, X, self._class_block, block_rows=block_rows)
        return A[:, 0] if A.ndim == 2 and A.shape[1] == 1 else A

    def class_indices(self, A: Array) -> Array:
        """Class indices from output activations ``A (m, k)``, in the backend's index
        dtype: the arg-max ``(m,)`` for softmax; for sigmoid outputs, 1 where strictly
        above 0.5 (scikit-learn's ``LabelBinarizer`` rule), ``(m, k)``."""
        xp = self.xp
        if self._output.task == "multiclass":
            return xp.astype(xp.argmax(A, axis=1), self.array_backend.index_dtype, copy=False)
        return xp.astype(A > 0.5, self.array_backend.index_dtype)
