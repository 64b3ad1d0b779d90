"""scikit-learn-compatible estimators: :class:`MLPClassifier` and :class:`MLPRegressor`.

They take scikit-learn's parameters (``hidden_layer_sizes``, ``solver`` in sgd/adam,
``learning_rate``, ``early_stopping``...) with the same meanings, and train with xpnet's
network, optimisers and loop (:mod:`xpnet.network`, :mod:`xpnet.optim`,
:mod:`xpnet.train`) on any Array API backend:

- NumPy (or list, pandas) input trains on ``backend``/``device`` (default NumPy) and
  returns NumPy arrays;
- a torch, CuPy, JAX or array-api-strict array trains on that array's library and device
  and the estimator returns arrays of the same kind (like scikit-learn's estimators
  under ``array_api_dispatch``).

The random stream is scikit-learn's: initial weights, the early-stopping split and the
per-epoch shuffles are drawn from ``check_random_state(random_state)`` in the same order
as ``sklearn.neural_network.MLPClassifier``, and the updates are the same, so with the
same ``random_state`` both follow the same trajectory up to floating-point rounding.

All of scikit-learn's solvers (``sgd``, ``adam``, ``lbfgs``), sparse ``X`` and the
``poisson`` loss are supported, with scikit-learn's parameter constraints and fitted state;
``class_weight`` is an addition. Differences: ``predict_log_proba`` is computed from the
logits, so it stays finite where a probability rounds to 0; a Poisson target with
negative values is refused; an ``lbfgs`` regressor has no ``partial_fit``. Class labels
are encoded on the host (a copy of ``y``, one value per row); ``X`` stays on its device
throughout.

This module imports scikit-learn, an optional dependency: ``pip install "xpnet[sklearn]"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import itertools
import math
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device

try:
    import sklearn  # noqa: F401  (the optional extra: one clear error without it)
except ImportError as _missing:
    raise ImportError(
        "xpnet.MLPClassifier and xpnet.MLPRegressor need scikit-learn, which is not "
        "installed. Install it with: pip install 'xpnet[sklearn]'"
    ) from _missing

from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.fixes import parse_version, sp_version
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from ._dropout import check_dropout
from ._lbfgs import minimize_lbfgs
from ._sklearn_callbacks import HAVE_CALLBACKS, CallbackSupportMixin, EpochTasks, with_callbacks
from ._sparse import _sparse_module, is_sparse, take_rows
from ._validation import array_module
from .backends import get_backend, to_numpy
from .core import hidden_forward
from .inference import predict_blocks
from .losses import OutputLoss, softplus
from .network import MLP
from .optim import SGD, Adam, Optimizer
from .threads import check_threads
from .train import History
from .train import fit as train_fit
from .training.lbfgs import unpack

__all__ = ["MLPClassifier", "MLPRegressor"]

Array = Any

# scikit-learn's activation names -> xpnet's
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
# Parameters xpnet adds to scikit-learn's; the backend name is checked by get_backend
# (which lists the installed ones) and the device by the backend.
_EXTRA_CONSTRAINTS: dict[str, Any] = {
    "backend": [str],
    "device": "no_validation",
    "dtype": [StrOptions({"float32", "float64"}), None],
    "threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "compile": ["boolean"],
    "dropout": "no_validation",  # a rate or one per hidden layer: see _check_params
}
_DEVICE_LIBRARIES = ("torch", "cupy", "array_api_strict", "jax")
# scikit-learn's message, word for word (SGDClassifier.partial_fit)
_BALANCED_PARTIAL_FIT = (
    "class_weight '{0}' is not supported for partial_fit. In order to use 'balanced' "
    "weights, use compute_class_weight('{0}', classes=classes, y=y). In place of y you "
    "can use a large enough sample of the full training set target to properly estimate "
    "the class frequency distributions. Pass the resulting weights as the class_weight "
    "parameter."
)


def _is_balanced(class_weight: Any) -> bool:
    return isinstance(class_weight, str) and class_weight == "balanced"


# scikit-learn's message, word for word (BaseMultilayerPerceptron._fit)
_NONFINITE_WEIGHTS = (
    "Solver produced non-finite parameter weights. The input data may contain large "
    "values and need to be preprocessed."
)
# xpnet's own check (scikit-learn's MLPs return such a model, predicting NaN): weights
# that are finite but too large, whose outputs overflow
_NONFINITE_LOSS = (
    "Solver produced a model whose loss on the training data is not finite ({}): its "
    "weights are finite but its outputs overflow. Lower learning_rate_init, or "
    "preprocess the input data (they may contain large values)."
)


# scikit-learn checks the variable when dispatch is turned on, but SciPy reads it once, at
# its import: set later, scikit-learn goes ahead with a SciPy that is not in array API mode
_SCIPY_ARRAY_API_HINT = (
    "scikit-learn's array_api_dispatch is on but SciPy was imported without its array API "
    "support, so scikit-learn may convert device arrays to NumPy or fail: set "
    "SCIPY_ARRAY_API=1 in the environment before SciPy (or scikit-learn) is imported, "
    "e.g. SCIPY_ARRAY_API=1 python script.py"
)


def _scipy_in_array_api_mode() -> bool:
    """Whether SciPy runs with its array API support: its own flag, read from
    ``SCIPY_ARRAY_API`` when SciPy was first imported (the variable as scikit-learn reads
    it while SciPy is not imported yet)."""
    if "scipy" not in sys.modules:
        return os.environ.get("SCIPY_ARRAY_API") == "1"
    try:
        flags = importlib.import_module("scipy._lib._array_api")
    except ImportError:  # a SciPy without the module: nothing xpnet can tell
        return True
    return bool(getattr(flags, "SCIPY_ARRAY_API", True))


def _check_array_api_setup() -> None:
    """Under ``array_api_dispatch``, one warning line saying what to set when SciPy is
    not in array API mode (see :data:`_SCIPY_ARRAY_API_HINT`)."""
    if get_config()["array_api_dispatch"] and not _scipy_in_array_api_mode():
        warnings.warn(_SCIPY_ARRAY_API_HINT, UserWarning, stacklevel=4)


# ---------------------------------------------------------------------- array kinds
def _dense_part(obj: Any) -> Any:
    """A CuPy sparse matrix's ``data`` array (what its library and device are read
    from); anything else unchanged."""
    return obj.data if is_sparse(obj) and _sparse_module(obj) == "cupyx.scipy.sparse" else obj


def _library(obj: Any) -> str | None:
    """``"torch"``, ``"cupy"``, ``"array_api_strict"`` or ``"jax"`` for such arrays (and ``"cupy"``
    for ``cupyx.scipy.sparse`` matrices), else None (host)."""
    module = array_module(_dense_part(obj))
    return module if module in _DEVICE_LIBRARIES else None


def _device_arg(obj: Array, library: str) -> Any:
    """The array's device in the form :func:`xpnet.get_backend` takes."""
    dev = array_device(_dense_part(obj))
    return int(dev.id) if library == "cupy" else dev


def _like(result: Array, like: Any) -> Array:
    """``result`` (a backend array) as the kind of array ``like`` is: NumPy for host input,
    else the same library on the same device."""
    library = _library(like)
    if library is None:
        return to_numpy(result)
    like = _dense_part(like)
    xp = array_namespace(like)
    if _library(result) == library:
        if array_device(result) == array_device(like):
            return result
        return xp.asarray(result, device=array_device(like))
    return xp.asarray(to_numpy(result), device=array_device(like))


def _host(obj: Any) -> Any:
    """Device arrays to NumPy (for labels and weights); anything else unchanged."""
    return to_numpy(obj) if _library(obj) is not None else obj


def _on_input_device(method: Any) -> Any:
    """Run an estimator method with the device of its computation current (CuPy only:
    its kernels run on the current device). That is ``X``'s device for a CuPy ``X``, the
    estimator's ``device`` for host input with ``backend="cupy"``; elsewhere a no-op."""

    @functools.wraps(method)
    def wrapper(self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
        if _library(X) == "cupy":
            context: Any = get_backend("cupy", _device_arg(X, "cupy")).activate()
        elif _library(X) is None and self.backend == "cupy":
            context = get_backend("cupy", self.device).activate()
        else:
            context = contextlib.nullcontext()
        with context:
            return method(self, X, *args, **kwargs)

    return wrapper


def _blockwise_on_dask(method: Any) -> Any:
    """A prediction method (or ``score``) run by :func:`_on_input_device`; on a Dask
    ``X``, the version of :mod:`xpnet.distributed.estimators`: a lazy Dask array whose
    blocks the same method computes on the workers (``score``: a float, as
    scikit-learn's, summed block-wise on the cluster)."""
    on_device = _on_input_device(method)

    @functools.wraps(method)
    def wrapper(self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
        if array_module(X) != "dask":
            return on_device(self, X, *args, **kwargs)
        from .distributed.estimators import lazy_method, score

        if method.__name__ == "score":
            return score(self, X, *args, **kwargs)
        return lazy_method(self, X, method.__name__)

    return wrapper


def _snapshot(weights: list[Any]) -> tuple[Any, ...]:
    """What ``coefs_``/``intercepts_`` were when handed out: the lists, their arrays, and
    private copies of the arrays (to see in-place edits without reading the device)."""
    arrays = [*weights[0], *weights[1]]
    copies = [
        np.array(a) if isinstance(a, np.ndarray) else array_namespace(a).asarray(a, copy=True)
        for a in arrays
    ]
    return list(weights), arrays, copies


def _snapshot_differs(seen: tuple[Any, ...], weights: list[Any]) -> bool:
    lists, arrays, copies = seen
    if any(now is not then for now, then in zip(weights, lists, strict=True)):
        return True  # coefs_ = [...] or intercepts_ = [...]
    current = [*weights[0], *weights[1]]
    if len(current) != len(arrays) or any(a is not b for a, b in zip(current, arrays)):
        return True  # coefs_[i] = ...
    for array, copy in zip(current, copies, strict=True):  # coefs_[i][...] = ... in place
        if isinstance(array, np.ndarray):
            if not np.array_equal(array, copy):
                return True
        elif tuple(array.shape) != tuple(copy.shape) or not bool(
            array_namespace(array).all(array == copy)
        ):
            return True
    return False


def _check_n_samples(y: Any, n_samples: int) -> None:
    """scikit-learn's wording for X and y of different lengths."""
    if y.shape[0] != n_samples:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: "
            f"[{n_samples}, {y.shape[0]}]"
        )


def _output_activations(net: MLP, Z: Array) -> Array:
    """A prediction block's output activations ``A_L`` from its logits ``Z``."""
    return net.output_loss.activation(net.xp, Z)


def _class_indices(net: MLP, Z: Array) -> Array:
    """A prediction block's class indices (arg-max, or LabelBinarizer's ``> 0.5``)."""
    return net.class_indices(_output_activations(net, Z))


def _class_probabilities(net: MLP, Z: Array) -> Array:
    """A prediction block's class probabilities (``[1 - p, p]`` for one sigmoid)."""
    A = _output_activations(net, Z)
    return net.xp.concat([1.0 - A, A], axis=1) if A.shape[1] == 1 else A


def _averaged_over_outputs(output: OutputLoss, n_outputs: int) -> OutputLoss:
    """The half squared error with its data term averaged over the ``n_outputs``
    outputs, as scikit-learn reports it (``0.5 * mean over rows and outputs``) and as
    its ``tol`` and L-BFGS see it; the L2 term is not divided. The gradient is left as
    it is, ``dZ = (A - Y) / m`` per output, which is scikit-learn's too (its gradient is
    that of the sum over outputs), so the training is the same."""

    def loss(xp: Any, z: Array, a: Array, y: Array, weight: Array | None = None) -> Array:
        return output.loss(xp, z, a, y, weight) / n_outputs

    def activation_and_loss(
        xp: Any, z: Array, y: Array, weight: Array | None = None
    ) -> tuple[Array, Array]:
        a, value = output.forward_and_loss(xp, z, y, weight)
        return a, value / n_outputs

    return dataclasses.replace(output, loss=loss, activation_and_loss=activation_and_loss)


class _SklearnShuffle:
    """Per-epoch row orders drawn exactly as scikit-learn's MLP draws them: each epoch
    shuffles the previous order with ``sklearn.utils.shuffle(order, random_state=rs)``,
    i.e. ``order[rs.permutation(m)]``."""

    def __init__(self, random_state: np.random.RandomState) -> None:
        self.random_state = random_state
        self.order: np.ndarray | None = None

    def permutation(self, m: int) -> np.ndarray:
        if self.order is None or self.order.shape[0] != m:
            self.order = np.arange(m)
        self.order = self.order[self.random_state.permutation(m)]
        return self.order

    def get_state(self) -> tuple[Any, np.ndarray | None]:
        """Where the draws stand (the compiled fit rewinds a chunk of epochs cut short)."""
        return self.random_state.get_state(), None if self.order is None else self.order.copy()

    def set_state(self, state: tuple[Any, np.ndarray | None]) -> None:
        """Back to a :meth:`get_state`; the RandomState is set in place (it may be shared)."""
        self.random_state.set_state(state[0])
        self.order = state[1]


# ------------------------------------- scikit-learn's private helpers: same behaviour, words
def _checked_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray:
    """``sklearn.utils.validation._check_sample_weight`` for host weights."""
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight)
    else:
        sample_weight = check_array(
            sample_weight, accept_sparse=False, ensure_2d=False,
            dtype=[np.float64, np.float32], order="C", input_name="sample_weight",
        )
        if sample_weight.ndim != 1:
            raise ValueError(
                f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D "
                f"array. Expected either a scalar value or a 1D array of length {n_samples}."
            )
        if sample_weight.shape != (n_samples,):
            raise ValueError(
                f"sample_weight.shape == {sample_weight.shape}, expected {(n_samples,)}!"
            )
    if np.all(sample_weight == 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    if np.any(sample_weight < 0):
        raise ValueError("sample_weight must be non-negative")
    return sample_weight


def _first_partial_fit(est: Any, classes: Any) -> bool:
    """``sklearn.utils.multiclass._check_partial_fit_first_call``: whether this is the
    first ``partial_fit`` (``classes_`` then set from ``classes``)."""
    known = getattr(est, "classes_", None)
    if known is None and classes is None:
        raise ValueError("classes must be passed on the first call to partial_fit.")
    if classes is None:
        return False
    if known is None:
        est.classes_ = unique_labels(classes)
        return True
    if not np.array_equal(known, unique_labels(classes)):
        raise ValueError(
            f"`classes={classes!r}` is not the same as on last call to partial_fit, "
            f"was: {known!r}"
        )
    return False


def _lbfgs_iterations(result: Any, max_iter: int) -> int:
    """``sklearn.utils.optimize._check_optimize_result("lbfgs", ...)``: ``n_iter_``, and
    its ConvergenceWarning when SciPy did not converge."""
    n_iter = min(result.nit, max_iter)
    if result.status != 0:
        message = (
            f"lbfgs failed to converge after {n_iter} iteration(s) "
            f"(status={result.status}):\n{result.message}\n"
        )
        if n_iter == max_iter:
            message += (
                "\nIncrease the number of iterations to improve the convergence "
                f"(max_iter={max_iter})."
            )
        message += (
            "\nYou might also want to scale the data as shown in:\n"
            "    https://scikit-learn.org/stable/modules/preprocessing.html"
        )
        warnings.warn(message, ConvergenceWarning, stacklevel=3)
    return n_iter


def _lbfgs_options(verbose: Any) -> dict[str, Any]:
    """SciPy options as scikit-learn passes them (``iprint`` is gone in SciPy 1.15)."""
    if sp_version >= parse_version("1.15"):
        return {}
    return {"iprint": 1 if verbose is True or verbose >= 1 else -1}


def _stochastic_only(est: Any) -> bool:
    """``partial_fit`` exists only for the stochastic solvers (scikit-learn's rule
    and message): ``hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")`` is False."""
    if est.solver not in ("sgd", "adam"):
        raise AttributeError(
            "partial_fit is only available for stochastic optimizers. "
            f"{est.solver} is not stochastic."
        )
    return True


# ---------------------------------------------------------------------- fitted weights
def _weight_lists(params: list[tuple[Array, Array]], kind: Any) -> list[Any]:
    """``[coefs, intercepts]`` of the ``(W, b)`` pairs as arrays of the fit input's kind:
    NumPy arrays of their own for host input (``kind`` None), else ``kind``'s library."""
    if kind is None:
        return [[np.array(to_numpy(W)) for W, _ in params],
                [np.array(to_numpy(b)) for _, b in params]]
    backend = get_backend(*kind)
    with backend.activate():
        return [[backend.asarray(W) for W, _ in params], [backend.asarray(b) for _, b in params]]


def _spec_key(spec: Any) -> Any:
    return spec if spec is None else (spec[0], str(spec[1]), spec[2])


class _FittedWeights:
    """Who holds an estimator's fitted weights.

    After a fit the network, on its device, holds them; ``coefs_``/``intercepts_`` are
    copied out of it only when read (:meth:`lists`: one device-to-host copy per fit for
    host input, none for a ``partial_fit`` loop that never looks). Once read or set
    (:meth:`replace`) the lists are the source of truth: a warm start or ``partial_fit``
    loads them back into the network only when they were replaced or edited
    (:meth:`changed`, against private copies taken when they were handed out, without
    any transfer). Pickled without the network, which is rebuilt from the lists.
    """

    def __init__(self, net: MLP | None, spec: tuple[Any, ...] | None, kind: Any) -> None:
        self.net: Any = net
        self.spec: Any = spec  # (backend, device, dtype) of the network
        self.kind = kind  # (library, device) of the fit input; None: host input (NumPy)
        self.weights: list[Any] | None = None  # [coefs, intercepts] once copied out or set
        self.seen: tuple[Any, ...] | None = None  # see _snapshot

    def lists(self) -> list[Any]:
        """``[coefs, intercepts]``: arrays of the fit input's kind."""
        if self.weights is None:
            weights = _weight_lists(self.net.params, self.kind)  # params: copies
            self.weights, self.seen = weights, _snapshot(weights)
        return self.weights

    @classmethod
    def of_params(cls, flat: list[Array], spec: tuple[Any, ...], kind: Any) -> _FittedWeights:
        """Weights of their own copied from the flat parameters ``[W1, b1, ...]`` of a
        fit in progress (a callback's ``fitted_estimator``)."""
        fitted = cls(None, spec, kind)
        copies = [array_namespace(p).asarray(p, copy=True) for p in flat]
        fitted.weights = _weight_lists(list(zip(copies[0::2], copies[1::2])), kind)
        return fitted

    def replace(self, which: int, value: list[Array]) -> None:
        """``coefs_`` (0) or ``intercepts_`` (1) set by the user: loaded by the next fit."""
        weights = [None, None] if self.net is None and self.weights is None else self.lists()
        self.weights = [value if i == which else part for i, part in enumerate(weights)]
        self.seen = None

    def changed(self) -> bool:
        """Whether ``coefs_``/``intercepts_`` differ from what the network holds."""
        if self.weights is None:
            return False  # never read: the network is the only copy
        return self.seen is None or _snapshot_differs(self.seen, self.weights)

    def holds(self, spec: tuple[Any, ...]) -> bool:
        """Whether the network is there, built for ``spec`` (devices compared by name)."""
        return self.net is not None and _spec_key(self.spec) == _spec_key(spec)

    def layer_sizes(self) -> list[int]:
        if self.weights is None:
            return list(self.net.layer_sizes)
        coefs = self.weights[0]
        return [int(coefs[0].shape[0])] + [int(c.shape[1]) for c in coefs]

    def move_to(self, net: MLP, spec: tuple[Any, ...]) -> None:
        """Hand the weights to ``net`` (built for ``spec``), through the lists."""
        weights = self.lists()  # copied out of the old network before it goes

        def usable(array: Array) -> Array:  # device to device in net's library
            return array if array_module(array) == net.backend else to_numpy(array)

        net.set_params([(usable(W), usable(b)) for W, b in zip(*weights, strict=True)])
        self.net, self.spec, self.seen = net, spec, _snapshot(weights)

    def __getstate__(self) -> dict[str, Any]:
        if self.net is not None:
            self.lists()  # the network holds a module (the namespace): not pickled
        return {**self.__dict__, "net": None, "seen": None}


# ---------------------------------------------------------------------- base class
class _BaseMLP(CallbackSupportMixin, BaseEstimator):
    """Shared parameters, validation and the stochastic training driver."""

    _is_classifier = False
    # fitted attributes (annotations only: nothing is set before fit)
    _fitted: _FittedWeights  # set by the first fit (or by setting coefs_/intercepts_)
    _optimizer: Optimizer | None
    loss_curve_: list[float]
    validation_scores_: list[float] | None
    validation_loss_curve_: list[float] | None
    best_loss_: float | None
    best_validation_score_: float | None
    class_weight: Any  # a parameter of MLPClassifier only (read where _is_classifier)

    def __init__(  # the defaults are the estimators' (scikit-learn's)
        self, hidden_layer_sizes: Sequence[int] | int, activation: str, *, solver: str,
        alpha: float, batch_size: int | str, learning_rate: str, learning_rate_init: float,
        power_t: float, max_iter: int, shuffle: bool, random_state: Any, tol: float,
        verbose: bool, warm_start: bool, momentum: float, nesterovs_momentum: bool,
        early_stopping: bool, validation_fraction: float, beta_1: float, beta_2: float,
        epsilon: float, n_iter_no_change: int, max_fun: int, backend: str, device: Any,
        dtype: str | None, threads: int | None, compile: bool,
        dropout: float | Sequence[float],
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.threads = threads
        self.compile = compile
        self.dropout = dropout

    # ------------------------------------------------------------------ validation
    def _check_params(self, y: Any, incremental: bool) -> list[int]:
        """Validate the parameters with scikit-learn's own machinery and constraints
        (:attr:`_parameter_constraints`, read from the installed scikit-learn), so the
        same values are accepted and the rest refused with the same exception
        (``InvalidParameterError``, a ``ValueError`` and ``TypeError``) and message.
        Returns the hidden layer sizes."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        self._validate_params()
        sizes: Any = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        if np.any(np.array(sizes) <= 0):  # scikit-learn's check and message
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in sizes):
            # a TypeError, as scikit-learn's (raised later, where it allocates the layers)
            raise TypeError(
                f"hidden_layer_sizes must hold positive integers, got {self.hidden_layer_sizes!r}."
            )
        check_threads(self.threads)
        rates = check_dropout(self.dropout, len(sizes))
        if any(rates) and self.solver == "lbfgs":
            raise ValueError(
                f"dropout={self.dropout!r} needs solver='adam' or 'sgd': L-BFGS's line "
                "searches need one fixed loss, and dropout draws new masks every step"
            )
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if self._is_classifier and incremental and _is_balanced(self.class_weight):
            raise ValueError(_BALANCED_PARTIAL_FIT.format(self.class_weight))
        return [int(s) for s in sizes]

    def _dtype_name(self, dtype: Any) -> str:
        if self.dtype is not None:
            return str(self.dtype)
        name = str(dtype).rsplit(".", 1)[-1]
        return name if name in ("float32", "float64") else "float64"

    def _validate_X(self, X: Any, reset: bool) -> tuple[Any, str | None, Any, str]:
        """``(X, library, device, dtype name)``: host input through scikit-learn's checks
        (NumPy out), device arrays checked in their own namespace and left on the device."""
        library = _library(X)
        if array_module(X) == "dask":  # values checked on the workers (xpnet.distributed)
            from .distributed.estimators import validate_X

            return validate_X(self, X, reset)
        if library is None:
            # scipy.sparse: CSR/CSC kept, other formats (COO...) converted to CSR, as
            # scikit-learn's MLPs do
            X = validate_data(
                self, X, reset=reset, accept_sparse=["csr", "csc"],
                dtype=(np.float64, np.float32),
            )
            return X, None, None, self._dtype_name(X.dtype)
        if X.ndim != 2:
            raise ValueError(
                f"Expected 2D array, got {X.ndim}D array instead (shape {tuple(X.shape)}). "
                "Reshape your data with X.reshape(-1, 1) for a single feature."
            )
        validate_data(self, X, reset=reset, skip_check_array=True)
        if library == "torch":
            X = X.detach()  # the hand-written backward pass needs no autograd graph
        return X, library, _device_arg(X, library), self._dtype_name(X.dtype)

    # ------------------------------------------------------------------ fitted weights
    @property
    def coefs_(self) -> list[Array]:
        """Weight matrices ``(n_in, n_out)``, one per layer (arrays of the input's kind)."""
        return self._fitted_weights().lists()[0]

    @coefs_.setter
    def coefs_(self, value: list[Array]) -> None:
        self._replace_weights(0, value)

    @property
    def intercepts_(self) -> list[Array]:
        """Bias vectors ``(n_out,)``, one per layer (arrays of the input's kind)."""
        return self._fitted_weights().lists()[1]

    @intercepts_.setter
    def intercepts_(self, value: list[Array]) -> None:
        self._replace_weights(1, value)

    def _fitted_weights(self) -> _FittedWeights:
        fitted: _FittedWeights | None = getattr(self, "_fitted", None)
        if fitted is None:
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute 'coefs_' (not fitted)"
            )
        return fitted

    def _replace_weights(self, which: int, value: list[Array]) -> None:
        if getattr(self, "_fitted", None) is None:
            self._fitted = _FittedWeights(None, None, None)
        self._fitted.replace(which, value)

    def _publish(self, net: MLP, spec: tuple[Any, ...], kind: Any) -> None:
        """The network holds the fitted weights now; with early stopping they are also
        ``_best_coefs``/``_best_intercepts``, the same lists, as in scikit-learn (which
        restores the best weights by assigning those)."""
        self._fitted = _FittedWeights(net, spec, kind)
        if self.early_stopping and self.solver != "lbfgs":  # (one copy out per such fit)
            self._best_coefs, self._best_intercepts = self.coefs_, self.intercepts_

    # ------------------------------------------------------------------ the network
    def _make_net(self, sizes: list[int], spec: tuple[Any, ...]) -> MLP:
        backend, device, dtype = spec
        net = MLP(
            sizes,
            activation=_ACTIVATIONS[self.activation],
            output=self._output_name(),
            backend=backend,
            device=device,
            dtype=dtype,
            seed=0,  # unused: the weights are set from scikit-learn's random stream
            alpha=float(self.alpha),
            dropout=check_dropout(self.dropout, len(sizes) - 2),
        )
        key = getattr(self, "_dropout_key", None)
        if key is not None:  # drawn from random_state by the first fit (see _start)
            net.dropout_key = key
        if net.output == "identity" and sizes[-1] > 1:
            net.output_loss = _averaged_over_outputs(net.output_loss, sizes[-1])
        return net

    def _get_net(self, spec: tuple[Any, ...], reload: bool) -> MLP:
        """The network built for ``spec`` (backend, device, dtype); rebuilt from
        ``coefs_`` when it is missing (after unpickling), lives elsewhere or no longer
        matches the parameters (set_params between warm-started fits may change alpha,
        the activation or dropout), reloaded from ``coefs_`` when ``reload`` (the fitted
        attributes are the source of truth for warm starts)."""
        fitted = self._fitted
        net = fitted.net
        if net is None or not fitted.holds(spec) or net.alpha != self.alpha or any(
            name != _ACTIVATIONS[self.activation] for name in net.activations
        ) or net.dropout != check_dropout(self.dropout, len(net.layer_sizes) - 2):
            rebuilt = self._make_net(fitted.layer_sizes(), spec)
            rebuilt.steps = 0 if net is None else net.steps  # the dropout stream goes on
            net, reload = rebuilt, True
        if reload:
            fitted.move_to(net, spec)
        return net

    def _predict_net(self, library: str | None, device: Any) -> MLP:
        spec = self._fitted.spec
        return self._get_net(spec if library is None else (library, device, spec[2]), False)

    def _new_optimizer(self) -> Optimizer:
        if self.solver == "sgd":
            return SGD(
                self.learning_rate_init,
                momentum=float(self.momentum),
                nesterov=bool(self.nesterovs_momentum),
                schedule=self.learning_rate,
                power_t=float(self.power_t),
            )
        return Adam(
            self.learning_rate_init,
            beta_1=float(self.beta_1),
            beta_2=float(self.beta_2),
            epsilon=float(self.epsilon),
        )

    def _initial_weights(
        self, sizes: list[int], random_state: np.random.RandomState
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """scikit-learn's initialisation, drawn from the same stream in the same order:
        ``U(-b, b)`` for weights and biases, ``b = sqrt(6 / (fan_in + fan_out))``
        (``sqrt(2 / ...)`` for logistic hidden units)."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = np.sqrt(factor / (fan_in + fan_out))
            W = random_state.uniform(-bound, bound, (fan_in, fan_out))
            b = random_state.uniform(-bound, bound, fan_out)
            params.append((W, b))
        return params

    # ------------------------------------------------------------------ training
    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False,
             validation: tuple[Any, Any, Any] | None = None) -> Any:
        hidden = self._check_params(y, incremental)
        _check_array_api_setup()
        given = {"X": X, "y": y,  # what the callbacks' hooks see
                 "metadata": None if sample_weight is None else {"sample_weight": sample_weight}}
        dask_input = array_module(X) == "dask"
        validation = self._check_validation_args(validation, dask_input)
        first_pass = getattr(self, "_fitted", None) is None or (
            not self.warm_start and not incremental
        )
        if dask_input:
            from .distributed.estimators import check_supported

            check_supported(self, y, sample_weight)
        X, library, device, dtype = self._validate_X(X, reset=first_pass)
        Y, sample_weight = self._targets_and_weights(y, sample_weight, X.shape[0], incremental,
                                                     dask_input)
        if validation is not None:
            validation = self._validation_data(validation, dask_input, Y.shape[1])
        spec = (self.backend, self.device, dtype) if library is None else (library, device, dtype)
        random_state = check_random_state(self.random_state)
        sizes = [X.shape[1], *hidden, Y.shape[1]]
        net = self._start(sizes, spec, random_state) if first_pass else self._resume(sizes, spec)
        if self.solver != "lbfgs" and (
            not incremental or getattr(self, "_optimizer", None) is None
        ):
            self._optimizer = self._new_optimizer()
        if not hasattr(self, "_history"):
            self._history = History()
        data = (X, Y, sample_weight)  # dask: train_fit hands them to xpnet.distributed.fit
        if not dask_input:
            if self._optimizer is not None:  # an unpickled one holds its state on the host
                self._optimizer.place(net.array_backend)
            to_net = functools.partial(net.array_backend.asarray, dtype=net.array_dtype)
            data = (net.check_X(X), to_net(Y),
                    None if sample_weight is None else to_net(sample_weight))
            if validation is not None:
                X_val, Y_val, w_val = validation
                validation = (net.check_X(X_val, "X_val"), to_net(Y_val),
                              None if w_val is None else to_net(w_val))
        kind = None if library is None else (library, device)
        root, tasks = self._callback_tasks(given, spec, kind, incremental)
        if tasks is not None:
            tasks.begin(net.flat_params)
        try:
            if self.solver == "lbfgs":
                self._fit_lbfgs(net, data, spec, kind, tasks)
            else:
                self._fit_stochastic(net, data, (Y, random_state, validation, tasks), spec,
                                     kind, incremental, dask_input)
        finally:
            if tasks is not None:
                tasks.close()
        if root is not None:
            root.call_on_fit_task_end(estimator=self, **given, reconstruction_attributes={})
        return self

    def _callback_tasks(self, given: dict[str, Any], spec: tuple[Any, ...], kind: Any,
                        incremental: bool) -> tuple[Any, EpochTasks | None]:
        """The fit's root callback context (begun) and, when callbacks are set, its
        epochs' (or L-BFGS iterations') sub-tasks; ``(None, None)`` without
        ``sklearn.callback``. As in ``LogisticRegression``, L-BFGS has one sub-task more
        (begun for an iteration that SciPy does not run, ended empty)."""
        if not HAVE_CALLBACKS:
            return None, None
        lbfgs = self.solver == "lbfgs"
        epochs = 1 if incremental else max(int(self.max_iter), 1)
        root = self._init_callback_context(max_subtasks=epochs + lbfgs)
        root.call_on_fit_task_begin(estimator=self, **given)
        if not getattr(self, "_skl_callbacks", None):
            return root, None  # nothing listens to the epochs: the loop runs as without

        def attributes(flat: list[Array]) -> dict[str, Any]:
            return {"_fitted": _FittedWeights.of_params(flat, spec, kind)}

        name = "lbfgs-iter" if lbfgs else "epoch"
        return root, EpochTasks(self, root, given, epochs + lbfgs, attributes, name)

    def _fit_stochastic(
        self, net: MLP, data: tuple[Any, ...], extra: tuple[Any, ...], spec: tuple[Any, ...],
        kind: Any, incremental: bool, dask_input: bool,
    ) -> None:
        """sgd/adam: train, publish, scikit-learn's last checks and warning."""
        Y, random_state, validation, tasks = extra
        history = self._train(net, data, Y, random_state, incremental, dask_input, validation,
                              None if tasks is None else tasks.end)
        self._publish(net, spec, kind)
        if net.nonfinite_parameters():  # scikit-learn's last check of every fit
            raise ValueError(_NONFINITE_WEIGHTS)
        if not incremental and not history.converged and self.n_iter_ == self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _targets_and_weights(
        self, y: Any, sample_weight: Any, n_samples: int, incremental: bool, dask_input: bool
    ) -> tuple[Any, Any]:
        """``Y`` ``(m, n_outputs)`` (NumPy, or lazy Dask) and the row weights, the class
        weights included (on the host, from the encoded labels: one ``(m,)`` vector)."""
        Y = self._encode_targets(_host(y), n_samples, incremental)
        if sample_weight is not None and not dask_input:  # (dask: checked on the workers)
            sample_weight = _checked_sample_weight(_host(sample_weight), n_samples)
        if self._is_classifier and self.class_weight is not None:
            class_rows = self._class_weight_rows(Y, dask_input)
            sample_weight = class_rows if sample_weight is None else sample_weight * class_rows
        return Y, sample_weight

    def _check_validation_args(
        self, validation: tuple[Any, Any, Any] | None, dask_input: bool
    ) -> tuple[Any, Any, Any] | None:
        """HistGradientBoosting's rules (and messages) for ``X_val``/``y_val``: both or
        neither, and only with ``early_stopping=True``; checked before anything changes.
        None when no validation data were passed."""
        if validation is None:
            return None
        X_val, y_val, sample_weight_val = validation
        if X_val is None and y_val is None:
            if sample_weight_val is not None:
                raise ValueError(
                    "sample_weight_val is provided, but X_val and y_val were not provided."
                )
            return None
        if y_val is None:
            raise ValueError("X_val is provided, but y_val was not provided.")
        if X_val is None:
            raise ValueError("y_val is provided, but X_val was not provided.")
        if not self.early_stopping:
            raise ValueError(
                "X_val and y_val are passed to fit while at the same time early_stopping is "
                "False. When passing X_val and y_val to fit, early_stopping should be set "
                "to True."
            )
        if self.solver == "lbfgs":
            raise ValueError(
                "X_val and y_val are passed to fit with solver='lbfgs', which does not use "
                "early stopping; use solver='adam' or 'sgd'."
            )
        if array_module(X_val) == "dask" and not dask_input:
            raise ValueError("X_val is a Dask array but X is not; pass both as Dask arrays")
        return X_val, y_val, sample_weight_val

    def _validation_data(
        self, validation: tuple[Any, Any, Any], dask_input: bool, n_outputs: int
    ) -> tuple[Any, Any, Any]:
        """The user's validation rows checked as the training rows are (after them):
        ``(X_val, Y_val, w_val)`` with ``Y_val`` encoded by the fitted encoder. As in
        HistGradientBoosting, ``class_weight`` weights the training rows only (the
        early-stopping split's held-out rows keep theirs: they are drawn after)."""
        X_val, y_val, sample_weight_val = validation
        X_val, library, _, _ = self._validate_X(X_val, reset=False)
        n_val = X_val.shape[0]
        Y_val = self._encode_validation_targets(_host(y_val), n_val, n_outputs)
        if sample_weight_val is not None and not (dask_input and array_module(X_val) == "dask"):
            sample_weight_val = _checked_sample_weight(_host(sample_weight_val), n_val)
        if library is not None and dask_input:
            X_val = to_numpy(X_val)
        return X_val, Y_val, sample_weight_val

    def _start(
        self, sizes: list[int], spec: tuple[Any, ...], random_state: np.random.RandomState
    ) -> MLP:
        """A network with scikit-learn's initial weights, and a fresh fitted state."""
        self._dropout_key = None
        initial = self._initial_weights(sizes, random_state)
        if any(check_dropout(self.dropout, len(sizes) - 2)):
            # the stream's key, from random_state after the weights (nothing is drawn
            # without dropout, so random_state goes on as scikit-learn's)
            words = random_state.randint(0, 2**32, size=2, dtype=np.uint64)
            self._dropout_key = (int(words[0]), int(words[1]))
        net = self._make_net(sizes, spec)
        net.set_params(initial)
        self._optimizer = None
        self._history = History()
        self.n_outputs_ = sizes[-1]
        self.n_layers_ = len(sizes)
        self.out_activation_ = {"sigmoid": "logistic"}.get(
            self._output_name(), self._output_name()
        )
        self.t_ = 0
        # scikit-learn's _initialize: copies of the initial weights; with early
        # stopping they become the best epoch's weights (see _publish)
        self._best_coefs = [np.array(W, dtype=spec[2]) for W, _ in initial]
        self._best_intercepts = [np.array(b, dtype=spec[2]) for _, b in initial]
        if self.solver != "lbfgs":
            self._no_improvement_count = 0
        return net

    def _resume(self, sizes: list[int], spec: tuple[Any, ...]) -> MLP:
        """The fitted network for a warm start or ``partial_fit``, on ``spec``."""
        expected = self._fitted.layer_sizes()
        if sizes != expected:
            raise ValueError(
                f"The network has layer sizes {expected} but this call implies {sizes}; "
                "hidden_layer_sizes and the number of outputs must not change between "
                "warm-started or partial fits."
            )
        previous = _spec_key(self._fitted.spec)
        net = self._get_net(spec, reload=self._fitted.changed())
        if _spec_key(self._fitted.spec) != previous:
            self._optimizer = None  # its state lived with the old network
        return net

    def _validation_split(
        self, net: MLP, data: tuple[Any, ...], Y: np.ndarray,
        random_state: np.random.RandomState,
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """scikit-learn's early-stopping split, ``(training rows, held-out rows)`` of
        ``data``: ``train_test_split``, stratified for single-output classifiers on
        scikit-learn's representation (its binarised labels are bool), so its messages
        (a class too small: "['True']") are the same."""
        stratify = Y.astype(bool) if self._is_classifier and Y.shape[1] == 1 else None
        train_idx, val_idx = train_test_split(
            np.arange(Y.shape[0]), random_state=random_state,
            test_size=self.validation_fraction, stratify=stratify,
        )
        if val_idx.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset."
            )
        xp = net.xp

        def rows(index: np.ndarray) -> tuple[Any, ...]:
            index = net.array_backend.asarray(index)
            X, Y, w = data
            return (take_rows(xp, X, index), xp.take(Y, index, axis=0),
                    None if w is None else xp.take(w, index, axis=0))

        return rows(train_idx), rows(val_idx)

    def _train(
        self, net: MLP, data: tuple[Any, ...], Y: Any, random_state: np.random.RandomState,
        incremental: bool, dask_input: bool, validation: tuple[Any, ...] | None = None,
        callback: Any = None,
    ) -> History:
        """The stochastic solvers: one call of :func:`xpnet.train.fit` with scikit-learn's
        split (or the user's ``validation`` rows), batch size, stopping rules and
        shuffles; the fitted attributes from its :class:`~xpnet.train.History`."""
        validation_data = validation
        dask_split: dict[str, Any] = {}
        m = data[0].shape[0]
        if validation is not None:
            pass  # all rows train; the user's rows are scored
        elif self.early_stopping and dask_input:
            # drawn by row index in xpnet.distributed: train_test_split's unstratified
            # split from the same random_state (the rows stay where they are)
            m -= math.ceil(float(self.validation_fraction) * m)
            dask_split = {"early_stopping": True,
                          "validation_fraction": float(self.validation_fraction)}
        elif self.early_stopping:
            data, validation_data = self._validation_split(net, data, Y, random_state)
            m = data[0].shape[0]
        batch_size = min(200, m) if self.batch_size == "auto" else int(self.batch_size)
        if batch_size > m:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going "
                "to be clipped",
                stacklevel=4,
            )
        batch_size = min(batch_size, m)
        try:
            history = train_fit(
                net, data[0], data[1], epochs=1 if incremental else self.max_iter,
                batch_size=batch_size, shuffle=bool(self.shuffle), optimizer=self._optimizer,
                sample_weight=data[2], validation_data=validation_data, **dask_split,
                tol=float(self.tol),
                # np.inf (scikit-learn accepts it): never stop on the count
                n_iter_no_change=(
                    sys.maxsize if self.n_iter_no_change == np.inf
                    else int(self.n_iter_no_change)
                ),
                rng=_SklearnShuffle(random_state), history=self._history,
                verbose=bool(self.verbose),
                # scikit-learn trains on through non-finite weights with early stopping
                # (NaN scores never become the best; the best weights come back at the end)
                on_divergence="continue" if self.early_stopping else "raise",
                threads=self.threads, compile=self.compile, callback=callback,
            )
        except FloatingPointError as exc:
            # Without early stopping scikit-learn runs on to max_iter and then raises
            # this; xpnet raises it at the diverged epoch (the network rolled back, the
            # fitted attributes untouched), with the epoch in the chained exception.
            if getattr(exc, "finished", False):
                raise ValueError(_NONFINITE_LOSS.format(getattr(exc, "loss", 0.0))) from exc
            raise ValueError(_NONFINITE_WEIGHTS) from exc
        if self.shuffle and batch_size >= m:
            # the loop skips shuffling a full batch (the gradient does not depend on the
            # order); draw the shuffles scikit-learn draws so a shared RandomState
            # instance continues exactly as it would there
            for _ in range(history.n_iter):
                random_state.permutation(m)
        self.n_iter_ = history.n_iter
        self.t_ = history.samples_seen
        self.loss_curve_ = list(history.loss)
        self.loss_ = self.loss_curve_[-1]
        self._no_improvement_count = history.no_improvement_count
        stopped_early = self.early_stopping
        self.best_loss_ = None if stopped_early else history.best_loss
        self.validation_scores_ = list(history.validation_scores) if stopped_early else None
        self.validation_loss_curve_ = list(history.validation_loss) if stopped_early else None
        self.best_validation_score_ = history.best_validation_score if stopped_early else None
        return history

    def _fit_lbfgs(
        self, net: MLP, data: tuple[Any, ...], spec: tuple[Any, ...], kind: Any,
        tasks: EpochTasks | None = None,
    ) -> Any:
        """scikit-learn's ``_fit_lbfgs``: SciPy's L-BFGS-B on the flattened parameters
        with the same options, ``n_iter_`` and warnings; no loss curve. The loss and
        gradient are computed on the network's device (see :mod:`xpnet._lbfgs`).
        ``tasks``: the callbacks' iterations (a hook's True or error ends SciPy's run
        through ``StopIteration``, at the iteration just finished)."""
        initial = [net.xp.asarray(p, copy=True) for p in net.flat_params]
        iterations: list[int] = []

        def on_iteration(intermediate_result: Any) -> None:  # SciPy passes it by this name
            assert tasks is not None
            iterations.append(1)
            params = unpack(intermediate_result.x, net.layer_sizes, net.array_backend,
                            net.array_dtype)
            try:
                stop = tasks.end(len(iterations) - 1, float(intermediate_result.fun), params)
            except KeyboardInterrupt as interrupt:
                warnings.warn(
                    f"training interrupted at iteration {len(iterations)} of {self.max_iter} "
                    f"({interrupt}); the network keeps the weights after that iteration",
                    UserWarning, stacklevel=2)
                raise StopIteration from None
            if stop:
                raise StopIteration

        on_cluster: Any = contextlib.nullcontext()
        if array_module(data[0]) == "dask":  # each evaluation one pass over the chunks
            from .distributed.estimators import full_batch

            on_cluster = full_batch(net, *data)
        with on_cluster as source:
            result = minimize_lbfgs(
                net, *data, source=source, max_iter=self.max_iter, max_fun=self.max_fun,
                tol=self.tol, options=_lbfgs_options(self.verbose),
                callback=None if tasks is None else on_iteration,
            )
        if np.all(np.isfinite(result.x)) and not math.isfinite(float(result.fun)):
            # the loss at result.x, the model's: back to the weights before, as the
            # other solvers roll back, the fitted attributes untouched
            net.flat_params = initial
            raise ValueError(_NONFINITE_LOSS.format(float(result.fun)))
        self.n_iter_ = _lbfgs_iterations(result, self.max_iter)
        self.loss_ = result.fun
        if not np.all(np.isfinite(result.x)):  # scikit-learn's last check of every fit
            raise ValueError(_NONFINITE_WEIGHTS)
        self._publish(net, spec, kind)
        # scikit-learn keeps where each layer sits in the flat vector (see _lbfgs.pack)
        shapes = list(itertools.pairwise(net.layer_sizes))
        ends = list(itertools.accumulate([i * o for i, o in shapes] + [o for _, o in shapes]))
        starts = [0, *ends[:-1]]
        self._coef_indptr = [(starts[k], ends[k], shapes[k]) for k in range(len(shapes))]
        self._intercept_indptr = list(zip(starts, ends))[len(shapes):]
        return self

    @with_callbacks
    @_on_input_device
    def fit(
        self, X: Any, y: Any, sample_weight: Any = None, *, X_val: Any = None,
        y_val: Any = None, sample_weight_val: Any = None,
    ) -> Any:
        """Fit the model to ``X`` ``(n_samples, n_features)`` and targets ``y``.

        ``sample_weight`` ``(n_samples,)``: non-negative row weights (optional).

        ``X_val``, ``y_val`` (and optionally ``sample_weight_val``): the rows early
        stopping scores after each epoch, instead of holding out
        ``validation_fraction`` of ``X`` (every row of ``X`` then trains); both or
        neither, and only with ``early_stopping=True`` (HistGradientBoosting's rules).
        In a ``Pipeline``, ``Pipeline(..., transform_input=["X_val"])`` with
        ``set_fit_request(X_val=True, y_val=True)`` transforms ``X_val`` as ``X``.
        Returns ``self``.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False,
                         validation=(X_val, y_val, sample_weight_val))

    # ------------------------------------------------------------------ inference
    def _check_same_namespace(self, X: Any, method: str) -> None:
        """Under ``sklearn.config_context(array_api_dispatch=True)``, follow scikit-learn's
        rule that prediction inputs use the namespace and device of the fit inputs.
        Outside it, any input kind is accepted and answered in its own kind."""
        if not get_config()["array_api_dispatch"]:
            return
        fitted = self.coefs_[0]
        library = _library(X)
        if library == _library(fitted) and (
            library is None or str(_device_arg(X, library)) == str(_device_arg(fitted, library))
        ):
            return
        raise ValueError(
            f"Inputs passed to {type(self).__name__}.{method}() must use the same namespace "
            f"and the same device as those passed to fit() (fitted on "
            f"{_library(fitted) or 'numpy'}, got {library or 'numpy'})."
        )

    def _predicted(
        self, X: Any, method: str, finish: Callable[[MLP, Array], Array]
    ) -> tuple[MLP, Array]:
        """``(net, result)``: ``finish(net, Z_out)`` of every row of ``X`` on the network's
        backend, computed in blocks of rows (:mod:`xpnet.inference`: bounded memory, the
        bits of one unblocked pass). Host input was checked by scikit-learn's
        ``validate_data`` and is not checked again; device arrays are checked once."""
        check_is_fitted(self)
        self._check_same_namespace(X, method)
        X, library, device, _ = self._validate_X(X, reset=False)
        net = self._predict_net(library, device)
        if library is not None and library != net.backend:
            X = X.get() if is_sparse(X) else to_numpy(X)  # CuPy sparse: to SciPy
        if is_sparse(X):  # one pass: the sparse product allocates nothing per row
            _, Z_out = hidden_forward(
                net.hidden_activations, net.flat_params, net.check_X(X), net.xp
            )
            return net, finish(net, Z_out)
        return net, predict_blocks(net, X, lambda Z: finish(net, Z), checked=library is None)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # scipy.sparse on NumPy (cupyx.scipy.sparse on CuPy)
        tags.array_api_support = True
        return tags


# ---------------------------------------------------------------------- classifier
class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by xpnet on any Array API backend.

    A drop-in for ``sklearn.neural_network.MLPClassifier`` (``sgd``, ``adam`` and
    ``lbfgs``; dense or sparse ``X``), plus ``class_weight``. Binary targets use one
    sigmoid output, multi-class targets a softmax layer, multi-label indicator targets one
    sigmoid output per label.

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate
        As in scikit-learn (``activation`` in identity/logistic/tanh/relu, ``solver``
        in lbfgs/sgd/adam, ``learning_rate`` in constant/invscaling/adaptive).
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose
        As in scikit-learn.
    warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction
        As in scikit-learn.
    beta_1, beta_2, epsilon, n_iter_no_change, max_fun
        As in scikit-learn.
    backend : str, default "numpy"
        Where NumPy input trains (``numpy``, ``torch``, ``cupy``, ``array_api_strict``,
        ``jax``). Device arrays (torch, CuPy, JAX, array-api-strict) always train where
        they live.
    device : optional
        Device for ``backend`` (e.g. ``"cuda:0"``).
    dtype : {None, "float32", "float64"}, default None
        Computation dtype; ``None`` keeps a float32/float64 input's dtype, else float64.
    class_weight : dict, list of dicts, "balanced" or None, default None
        Weights of the classes, multiplied with ``sample_weight``, with the meaning of
        ``LogisticRegression``'s: ``{label: weight}`` (missing labels weigh 1) or
        ``"balanced"`` = ``n_samples / (n_classes * np.bincount(y))``, computed by
        scikit-learn's ``compute_class_weight``. Multi-label targets take ``"balanced"``
        or one ``{0: w0, 1: w1}`` dict per output (as ``RandomForestClassifier``), the
        row weight being the product over the outputs. ``partial_fit`` refuses
        ``"balanced"`` (as ``SGDClassifier``: compute it once with
        ``compute_class_weight`` on a large sample and pass the dict).
    threads : int or None, default None
        Threads of the BLAS/OpenMP/torch pools while fitting (see :func:`xpnet.train.fit`);
        ``None``: 1 for small networks, the libraries' settings otherwise.
    compile : bool, default False
        On JAX, train each epoch as one compiled program (see :func:`xpnet.train.fit`);
        a no-op on NumPy/array-api-strict, refused on torch/CuPy.
    dropout : float or sequence of float, default 0.0
        Inverted dropout rate ``p`` (``0 <= p < 1``) of every hidden layer, or one per
        hidden layer (see :class:`xpnet.MLP`); 0 turns it off. Training only; the masks
        are keyed by two words drawn from ``random_state`` after the initial weights
        (none is drawn without dropout), so a fixed ``random_state`` gives the same
        masks on every backend. ``partial_fit`` and warm starts continue the stream.
        Not with ``solver="lbfgs"``.

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_, n_iter_, t_, loss_, loss_curve_,
    best_loss_, validation_scores_, best_validation_score_, coefs_, intercepts_,
    n_outputs_, n_layers_, out_activation_
        As in scikit-learn; ``coefs_``/``intercepts_`` are arrays of the input's kind
        (NumPy for host input).
    validation_loss_curve_ : list of float or None
        With early stopping, the loss on the validation rows after each epoch, beside
        ``validation_scores_``: the loss of ``loss_curve_`` (row weights and L2 term
        included) with the validation rows taken as one batch; None otherwise.
    """

    _is_classifier = True
    _parameter_constraints: dict = {
        **_SkMLPClassifier._parameter_constraints,
        **_EXTRA_CONSTRAINTS,
        # LogisticRegression's, plus RandomForestClassifier's list (one dict per output)
        # for multi-label targets
        "class_weight": [dict, list, StrOptions({"balanced"}), None],
    }

    def __init__(
        self, hidden_layer_sizes: Sequence[int] | int = (100,), activation: str = "relu", *,
        solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
        learning_rate: str = "constant", learning_rate_init: float = 0.001,
        power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
        random_state: Any = None, tol: float = 1e-4, verbose: bool = False,
        warm_start: bool = False, momentum: float = 0.9, nesterovs_momentum: bool = True,
        early_stopping: bool = False, validation_fraction: float = 0.1,
        beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
        n_iter_no_change: int = 10, max_fun: int = 15000, backend: str = "numpy",
        device: Any = None, dtype: str | None = None,
        class_weight: dict[Any, float] | list[dict[Any, float]] | str | None = None,
        threads: int | None = None, compile: bool = False,
        dropout: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, backend=backend, device=device, dtype=dtype,
            threads=threads, compile=compile, dropout=dropout,
        )
        self.class_weight = class_weight

    def _class_weight_rows(self, Y: Any, dask_input: bool = False) -> Any:
        """One weight per row from ``class_weight``, by scikit-learn's own functions:
        ``compute_class_weight`` indexed by each row's class (as ``LogisticRegression``),
        or for multi-label targets ``compute_sample_weight`` on the 0/1 indicator
        columns, the product of the per-output weights (as ``RandomForestClassifier``).
        Dask ``Y``: the same weights, lazily, the classes counted block-wise
        (:func:`xpnet.distributed.estimators.class_weight_rows`)."""
        class_weight = self.class_weight
        multilabel = self._label_binarizer.y_type_ == "multilabel-indicator"
        if multilabel:
            if isinstance(class_weight, dict):
                raise ValueError(
                    "class_weight for multi-label targets must be 'balanced' or a list of "
                    f"one dict per output ({Y.shape[1]} outputs), as in "
                    f"RandomForestClassifier; got a dict: {class_weight!r}"
                )
        elif isinstance(class_weight, list):
            raise ValueError(
                "class_weight as a list of dicts is for multi-label targets (one dict per "
                "output); for single-output targets pass a dict {label: weight} or "
                f"'balanced'; got {class_weight!r}"
            )
        if dask_input:
            from .distributed.estimators import class_weight_rows

            return class_weight_rows(Y, class_weight, self.classes_, multilabel)
        if multilabel:
            return np.asarray(compute_sample_weight(class_weight, Y.astype(np.int64)))
        index = Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0].astype(np.intp)
        labels = self.classes_[index]
        per_class = compute_class_weight(class_weight, classes=self.classes_, y=labels)
        return np.asarray(per_class, dtype=np.float64)[index]

    def _output_name(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _encode_targets(self, y: Any, n_samples: int, incremental: bool) -> Any:
        """0/1 targets ``(m, n_outputs)`` (NumPy, or lazy Dask for a Dask ``y``, whose
        distinct labels come from one pass over its chunks on the cluster)."""
        dask_y = array_module(y) == "dask"
        if dask_y:
            from .distributed.estimators import binarize_blocks, dask_labels

            y, labels = dask_labels(y, n_samples)
        else:
            y = check_array(y, ensure_2d=False, dtype=None)
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            _check_n_samples(y, n_samples)
            labels = y
        check_classification_targets(labels)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(labels)
            self.classes_ = self._label_binarizer.classes_
        else:
            # (dask: a column's labels are distinct already; a matrix's stand-in is not)
            classes = labels if dask_y and labels.ndim == 1 else unique_labels(labels)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        if dask_y:
            return binarize_blocks(y, self._label_binarizer)
        return np.asarray(self._label_binarizer.transform(y), dtype=np.float64)

    def _encode_validation_targets(self, y: Any, n_samples: int, n_outputs: int) -> Any:
        """``y_val`` encoded by the encoder the training labels fitted (labels it has not
        seen are refused, as HistGradientBoosting's ``LabelEncoder`` refuses them)."""
        if array_module(y) == "dask":
            from .distributed.estimators import binarize_blocks, dask_labels

            y, labels = dask_labels(y, n_samples)
        else:
            y = check_array(y, ensure_2d=False, dtype=None, input_name="y_val")
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            _check_n_samples(y, n_samples)
            labels = y
        binarizer = self._label_binarizer
        if binarizer.y_type_ == "multilabel-indicator":
            if labels.ndim != 2 or labels.shape[1] != len(self.classes_):
                raise ValueError(
                    f"y_val must be a multi-label indicator matrix of {len(self.classes_)} "
                    f"columns, as y; got shape {tuple(labels.shape)}"
                )
        else:
            unseen = np.setdiff1d(unique_labels(labels), self.classes_)
            if len(unseen):
                raise ValueError(f"y_val contains previously unseen labels: {unseen.tolist()}")
        if array_module(y) == "dask":
            return binarize_blocks(y, binarizer)
        return np.asarray(binarizer.transform(y), dtype=np.float64)

    @available_if(_stochastic_only)
    @with_callbacks
    @_on_input_device
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        """One epoch over ``(X, y)``; ``classes`` (all labels) is required on the first call."""
        if _first_partial_fit(self, _host(classes) if classes is not None else None):
            self._label_binarizer = LabelBinarizer()
            labels = _host(y)
            if array_module(y) == "dask":  # a matrix's stand-in: the same target type
                from .distributed.estimators import dask_labels

                labels = dask_labels(y, y.shape[0])[1] if y.ndim == 2 and y.shape[1] > 1 else None
            if labels is not None and type_of_target(labels).startswith("multilabel"):
                self._label_binarizer.fit(labels)
            else:
                self._label_binarizer.fit(self.classes_)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    @_blockwise_on_dask
    def predict(self, X: Any) -> Array:
        """Class labels ``(n_samples,)`` (indicator matrix for multi-label)."""
        net, idx = self._predicted(X, "predict", _class_indices)  # arg-max, or "> 0.5"
        xp = net.xp
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            return _like(idx, X)
        if idx.ndim == 2:
            idx = idx[:, 0]
        library = _library(X)
        if library is None or self.classes_.dtype.kind not in "biuf":
            return self.classes_[to_numpy(idx)]
        classes = net.array_backend.asarray(self.classes_)
        return _like(xp.take(classes, idx, axis=0), X)

    @_blockwise_on_dask
    def predict_proba(self, X: Any) -> Array:
        """Probabilities ``(n_samples, n_classes)`` in the order of ``classes_``."""
        _, A = self._predicted(X, "predict_proba", _class_probabilities)
        return _like(A, X)

    @_blockwise_on_dask
    def predict_log_proba(self, X: Any) -> Array:
        """Log-probabilities, computed from the logits (finite where probabilities round to 0)."""
        def log_proba(net: MLP, Z: Array) -> Array:
            xp = net.xp
            if self._label_binarizer.y_type_ == "multiclass":  # (fitted: checked first)
                z_max = xp.max(Z, axis=1, keepdims=True)
                return Z - (z_max + xp.log(xp.sum(xp.exp(Z - z_max), axis=1, keepdims=True)))
            if Z.shape[1] == 1:  # log sigmoid(z) = -softplus(-z)
                return xp.concat([-softplus(xp, Z), -softplus(xp, -Z)], axis=1)
            return -softplus(xp, -Z)

        _, out = self._predicted(X, "predict_log_proba", log_proba)
        return _like(out, X)

    @_blockwise_on_dask
    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy (subset accuracy for multi-label), computed on the host (on a
        Dask ``X``: summed block-wise on the workers; still a float)."""
        y_pred = to_numpy(self.predict(X)) if _library(X) else self.predict(X)
        return float(
            accuracy_score(_host(y), y_pred, sample_weight=_host(sample_weight))
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


# ---------------------------------------------------------------------- regressor
class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (half squared error, identity output) trained by
    xpnet on any Array API backend.

    A drop-in for ``sklearn.neural_network.MLPRegressor`` (``sgd``, ``adam`` and ``lbfgs``;
    ``loss="squared_error"`` or ``"poisson"``, the latter with an exponential output); see
    :class:`MLPClassifier` for the parameters and attributes (less ``classes_`` and
    ``class_weight``).

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default "squared_error"
        As in scikit-learn; ``"poisson"`` trains an exponential output.
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate
        As in scikit-learn.
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose
        As in scikit-learn.
    warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction
        As in scikit-learn.
    beta_1, beta_2, epsilon, n_iter_no_change, max_fun
        As in scikit-learn.
    backend, device, dtype, threads, compile, dropout
        As in :class:`MLPClassifier`.
    """

    _parameter_constraints: dict = {**_SkMLPRegressor._parameter_constraints, **_EXTRA_CONSTRAINTS}

    def __init__(
        self, loss: str = "squared_error", hidden_layer_sizes: Sequence[int] | int = (100,),
        activation: str = "relu", *,
        solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
        learning_rate: str = "constant", learning_rate_init: float = 0.001,
        power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
        random_state: Any = None, tol: float = 1e-4, verbose: bool = False,
        warm_start: bool = False, momentum: float = 0.9, nesterovs_momentum: bool = True,
        early_stopping: bool = False, validation_fraction: float = 0.1,
        beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
        n_iter_no_change: int = 10, max_fun: int = 15000, backend: str = "numpy",
        device: Any = None, dtype: str | None = None,
        threads: int | None = None, compile: bool = False,
        dropout: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, backend=backend, device=device, dtype=dtype,
            threads=threads, compile=compile, dropout=dropout,
        )
        self.loss = loss

    def _output_name(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _encode_targets(self, y: Any, n_samples: int, incremental: bool) -> np.ndarray:
        if array_module(y) == "dask":  # checked on the workers
            from .distributed.estimators import encode_regressor_targets

            return encode_regressor_targets(y, n_samples)
        y = check_array(y, ensure_2d=False, dtype=np.float64, ensure_all_finite=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        _check_n_samples(y, n_samples)
        if self.loss == "poisson" and np.any(y < 0):
            # scikit-learn's MLPRegressor does not check (it trains on a nan loss); its
            # other Poisson estimators refuse with this message, and so do we
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for Poisson regression."
            )
        return y.reshape(n_samples, -1)

    def _encode_validation_targets(self, y: Any, n_samples: int, n_outputs: int) -> Any:
        """``y_val`` checked as ``y`` is, with as many outputs."""
        Y = self._encode_targets(y, n_samples, incremental=True)
        if Y.shape[1] != n_outputs:
            raise ValueError(
                f"y_val has {Y.shape[1]} outputs but y has {n_outputs}; they must match"
            )
        return Y

    @available_if(_stochastic_only)
    @with_callbacks
    @_on_input_device
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``(X, y)``."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    @_blockwise_on_dask
    def predict(self, X: Any) -> Array:
        """Predicted values ``(n_samples,)`` for one output, else ``(n_samples, n_outputs)``."""
        _, A = self._predicted(X, "predict", _output_activations)
        if A.shape[1] == 1:
            A = A[:, 0]
        return _like(A, X)

    @_blockwise_on_dask
    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² (averaged over outputs), computed on the host (on a Dask ``X``: summed
        block-wise on the workers; still a float)."""
        y_pred = to_numpy(self.predict(X))
        return float(r2_score(_host(y), y_pred, sample_weight=_host(sample_weight)))
