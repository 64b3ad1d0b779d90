"""Parameter update rules. They see flat lists of arrays, never layers.

``params`` and ``grads`` are lists of the same length (``[W1, b1, W2, b2, ...]``).
Updates are in place where the backend allows it (``p -= ...`` mutates NumPy, CuPy and
torch arrays) and rebind the list entry, so immutable backends work too. The optimiser
state (velocities, moments) is created on the first update with ``xp.zeros_like`` of the
parameters, so it lives on the parameters' device and never leaves it; only the scalar
learning rate is a Python float.

The update definitions follow scikit-learn's ``sklearn/neural_network/_stochastic_optimizers.py``
operation for operation, so both give the same numbers from the same weights and gradients:

=========  ===============================================================================
SGD        ``v ← μ·v − η·g``;  ``p ← p + v``  (Nesterov: ``p ← p + (μ·v − η·g)`` with the
           new ``v``);  with ``μ = 0`` this is plain gradient descent ``p ← p − η·g``
Adam       ``t ← t + 1``;  ``m ← β₁·m + (1 − β₁)·g``;  ``s ← β₂·s + (1 − β₂)·g²``;
           ``η_t = η₀·√(1 − β₂ᵗ) / (1 − β₁ᵗ)`` (bias correction);  ``p ← p − η_t·m / (√s + ε)``
=========  ===============================================================================

Learning-rate schedules (SGD only, as in scikit-learn; Adam adapts its own steps):

- ``constant``: ``η = η₀`` throughout.
- ``invscaling``: at the end of each epoch ``η = η₀ / (t + 1)^power_t`` with ``t`` the
  number of training samples seen so far.
- ``adaptive``: ``η = η₀`` while training improves; each time the training loop finds no
  improvement by ``tol`` for ``n_iter_no_change`` epochs it calls :meth:`trigger_stopping`,
  which divides ``η`` by 5 instead of stopping, until ``η ≤ 1e-6``.
"""

from __future__ import annotations

import copy
import math
import numbers
from typing import Any

import numpy as np
from array_api_compat import is_jax_namespace

from ._validation import check_nonnegative_float, check_positive_float
from .backends import scalar

__all__ = ["SCHEDULES", "Adam", "Optimizer", "SGD", "get_optimizer"]

Array = Any

SCHEDULES = ("constant", "invscaling", "adaptive")


def _check_fraction(name: str, value: Any, one_allowed: bool = False) -> float:
    """A decay rate in ``[0, 1)`` (``[0, 1]`` with ``one_allowed``)."""
    number = float(value) if isinstance(value, numbers.Real) else math.nan
    if isinstance(value, bool) or not (
        0.0 <= number <= 1.0 if one_allowed else 0.0 <= number < 1.0
    ):
        interval = "[0, 1]" if one_allowed else "[0, 1)"
        raise ValueError(f"{name} must be a number in {interval}; got {value!r}")
    return number


class Optimizer:
    """Base class: holds the current learning rate and the end-of-epoch hooks.

    Subclasses implement :meth:`update`. ``learning_rate_init`` is the rate given at
    construction; ``learning_rate`` is the current one (changed by the schedules).

    Parameters
    ----------
    lr : float
        The initial learning rate.
    """

    def __init__(self, lr: float) -> None:
        self.learning_rate_init = check_positive_float("lr", lr)
        self.learning_rate = self.learning_rate_init

    @property
    def lr(self) -> float:
        """The current learning rate (alias of ``learning_rate``)."""
        return self.learning_rate

    def update(self, params: list[Array], grads: list[Array]) -> None:  # pragma: no cover
        raise NotImplementedError

    #: True when :meth:`update` changes nothing on the optimiser (only the parameters)
    #: and :meth:`update_copy` computes it out of place: the training loop then takes
    #: an epoch's first step out of place and keeps its start without copies.
    stateless = False

    def update_copy(self, params: list[Array], grads: list[Array]) -> list[Array]:
        """:meth:`update` out of place (same operations, same rounding): new arrays,
        ``params`` untouched; for a :attr:`stateless` optimiser only."""
        raise NotImplementedError  # pragma: no cover

    # -------------------------------------------------------------- explicit state
    # ``update`` keeps its state on the object (scikit-learn's numbers, bit for bit). The
    # functional form below holds everything that changes in a state dict of arrays, the
    # learning rate and the step count as 0-d arrays included, so a compiled step
    # (jax.jit) sees a new learning rate or step as new input instead of freezing the
    # Python values it was traced with.
    def init(self, params: list[Array]) -> dict[str, Any]:
        """The initial state for ``params``: ``{"lr": 0-d, "step": 0-d int, ...}`` on the
        parameters' device (the learning rate in their dtype)."""
        xp = _namespace(params[0])
        return {
            "lr": scalar(xp, self.learning_rate, params[0].dtype, _device(params[0])),
            "step": scalar(xp, 0, _step_dtype(xp), _device(params[0])),
            **self._init_slots(params),
        }

    def _init_slots(self, params: list[Array]) -> dict[str, Any]:
        return {}

    def apply(
        self, params: list[Array], grads: list[Array], state: dict[str, Any]
    ) -> tuple[list[Array], dict[str, Any]]:  # pragma: no cover
        """One update, pure: new parameters and new state; the inputs are not modified."""
        raise NotImplementedError

    def export_state(self, params: list[Array]) -> dict[str, Any]:
        """The object's current state (as :meth:`update` left it) in :meth:`apply`'s form,
        so a compiled epoch continues where eager updates, or an earlier fit, stopped."""
        return self.init(params)

    def import_state(self, state: dict[str, Any], steps: int) -> None:
        """Take back the state after ``steps`` calls of :meth:`apply` (the step count is
        counted on the host: reading it back would cost a device synchronisation)."""

    @property
    def state_learning_rate(self) -> float:
        """The rate the state's ``lr`` holds: the current learning rate (Adam: ``η₀``,
        its bias correction is applied from the step count)."""
        return self.learning_rate

    def with_learning_rate(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` with the optimiser's current learning rate (after a schedule changed
        it at the end of an epoch), as a new 0-d array of the same dtype and device."""
        lr = state["lr"]
        xp = _namespace(lr)
        value = self.state_learning_rate
        return {**state, "lr": scalar(xp, value, lr.dtype, _device(lr))}

    def iteration_ends(self, time_step: int) -> None:
        """Called by the training loop after each epoch; ``time_step``: samples seen."""

    @property
    def epoch_schedule(self) -> bool:
        """Whether :meth:`iteration_ends` may change the learning rate (a compiled
        chunk's rates are then predicted epoch by epoch; else they are all the current
        one): True for any subclass that overrides it."""
        return type(self).iteration_ends is not Optimizer.iteration_ends

    def trigger_stopping(self) -> bool:
        """The loop found no improvement: return True to stop (the default)."""
        return True

    def snapshot(self, reuse: dict[str, Any] | None = None) -> dict[str, Any]:
        """A copy of the optimiser's whole state, for :meth:`restore`.

        The training loop takes one at the start of every epoch and restores it when it
        abandons the epoch (non-finite loss or parameters, Ctrl-C in the middle of it), so
        the parameters and the state that moves them (learning rate, Adam's step count
        ``t``, momentum velocities, Adam's moments) roll back together. It copies every
        attribute, arrays and lists of arrays included (on their device), so a subclass
        that keeps its state in attributes is covered without overriding this.

        ``reuse``: an earlier snapshot of this optimiser that is no longer needed; its
        arrays are overwritten in place (``buffer[...] = array``) instead of allocating
        new ones, where the backend allows it. The training loop passes the previous
        epoch's snapshot.
        """
        reuse = reuse or {}
        return {name: _copy_state(value, reuse.get(name)) for name, value in vars(self).items()}

    def check_state(self, params: list[Array]) -> None:
        """Refuse state (velocities, moments) made for other parameters: an optimiser
        instance passed to a fit of another network (other layer sizes or dtype) would
        fail deep inside an update, or silently turn the network's float32 weights into
        float64 ones. Host-side attribute reads only: no device work."""
        for name, value in vars(self).items():
            if not isinstance(value, list) or not value or isinstance(value[0], _IMMUTABLE):
                continue
            state = [(tuple(a.shape), _dtype_name(a)) for a in value]
            wanted = [(tuple(p.shape), _dtype_name(p)) for p in params]
            if state != wanted:
                raise ValueError(
                    f"the optimiser's state ({name}) was made for other parameters "
                    f"({_describe(state)}) than this network's ({_describe(wanted)}); "
                    f"pass a new {type(self).__name__} for this network, or the same "
                    "network this optimiser trained"
                )

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with its arrays (velocities, moments) as NumPy host arrays, dtypes
        kept: an array pickled by its own library may come back in another dtype (a JAX
        float64 array unpickled before JAX's 64-bit mode is on is float32) or on a device
        that is not there. :meth:`place` puts them back on the network's backend."""
        return {name: _on_host(value) for name, value in vars(self).items()}

    def place(self, backend: Any) -> None:
        """Move state arrays that are on the host (an unpickled optimiser's) to
        ``backend`` (an :class:`xpnet.backends.Backend`), their dtypes kept; arrays
        already elsewhere, and everything on NumPy, are left as they are."""
        if backend.name == "numpy":
            return
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                setattr(self, name, _placed(backend, value))
            elif isinstance(value, list) and any(isinstance(a, np.ndarray) for a in value):
                setattr(self, name, [
                    _placed(backend, a) if isinstance(a, np.ndarray) else a for a in value
                ])

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Put back the state :meth:`snapshot` returned (copied again: the snapshot stays
        valid)."""
        for name, value in snapshot.items():
            setattr(self, name, _copy_state(value))


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and a schedule.

    ``SGD(lr)`` is plain gradient descent ``p ← p − lr·dp`` and keeps no state.

    Parameters
    ----------
    lr : float, default 0.1
        Initial learning rate ``η₀``.
    momentum : float in [0, 1], default 0.0
        Momentum ``μ``; 0 turns momentum off.
    nesterov : bool, default False
        Use Nesterov's momentum (only meaningful with ``momentum > 0``).
    schedule : {"constant", "invscaling", "adaptive"}, default "constant"
        Learning-rate schedule (see the module docs).
    power_t : float, default 0.5
        Exponent of the ``invscaling`` schedule.
    """

    def __init__(
        self,
        lr: float = 0.1,
        momentum: float = 0.0,
        nesterov: bool = False,
        schedule: str = "constant",
        power_t: float = 0.5,
    ) -> None:
        super().__init__(lr)
        self.momentum = _check_fraction("momentum", momentum, one_allowed=True)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False; got {nesterov!r}")
        self.nesterov = nesterov
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
        self.schedule = schedule
        self.power_t = check_nonnegative_float("power_t", power_t)
        self.velocities: list[Array] | None = None

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.learning_rate_init!r}, momentum={self.momentum!r}, "
            f"nesterov={self.nesterov!r}, schedule={self.schedule!r}, power_t={self.power_t!r})"
        )

    @property
    def stateless(self) -> bool:  # type: ignore[override]
        return self.momentum == 0.0

    def update_copy(self, params: list[Array], grads: list[Array]) -> list[Array]:
        lr = self.learning_rate
        return [p - lr * grad for p, grad in zip(params, grads)]

    def update(self, params: list[Array], grads: list[Array]) -> None:
        lr = self.learning_rate
        momentum = self.momentum
        if momentum == 0.0:
            for i, grad in enumerate(grads):
                p = params[i]
                p -= lr * grad
                params[i] = p
            return
        if self.velocities is None:
            self.velocities = [_zeros_like(p) for p in params]
        velocities = self.velocities
        for i, grad in enumerate(grads):
            step = lr * grad
            v = velocities[i]
            v *= momentum  # v ← μ·v − η·g, rounded exactly as scikit-learn's expression
            v -= step
            velocities[i] = v
            p = params[i]
            if self.nesterov:
                p += momentum * v - step  # the look-ahead step with the new velocity
            else:
                p += v
            params[i] = p

    def _init_slots(self, params: list[Array]) -> dict[str, Any]:
        if self.momentum == 0.0:
            return {}
        return {"velocities": [_zeros_like(p) for p in params]}

    def export_state(self, params: list[Array]) -> dict[str, Any]:
        state = self.init(params) if self.velocities is None else {
            **self.init([params[0]]), "velocities": list(self.velocities)
        }
        if self.momentum == 0.0:
            state.pop("velocities", None)
        return state

    def import_state(self, state: dict[str, Any], steps: int) -> None:
        if "velocities" in state:
            self.velocities = list(state["velocities"])

    def apply(
        self, params: list[Array], grads: list[Array], state: dict[str, Any]
    ) -> tuple[list[Array], dict[str, Any]]:
        """:meth:`update`'s rule with explicit state (same operations, same rounding)."""
        lr = state["lr"]
        momentum = self.momentum
        new_state = {**state, "step": state["step"] + 1}
        if momentum == 0.0:
            return [p - lr * grad for p, grad in zip(params, grads)], new_state
        new_params, velocities = [], []
        for p, grad, v in zip(params, grads, state["velocities"]):
            step = lr * grad
            v = v * momentum - step  # v ← μ·v − η·g
            velocities.append(v)
            new_params.append(p + (momentum * v - step) if self.nesterov else p + v)
        new_state["velocities"] = velocities
        return new_params, new_state

    @property
    def epoch_schedule(self) -> bool:
        return self.schedule == "invscaling"

    def iteration_ends(self, time_step: int) -> None:
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self) -> bool:
        if self.schedule != "adaptive":
            return True
        if self.learning_rate <= 1e-6:
            return True
        self.learning_rate /= 5.0
        return False


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2014) with bias correction, as in scikit-learn.

    Parameters
    ----------
    lr : float, default 0.001
        Step size ``η₀``.
    beta_1, beta_2 : float in [0, 1), default 0.9 and 0.999
        Decay rates of the first and second moment estimates.
    epsilon : float, default 1e-8
        Added to ``√s`` for numerical stability.
    """

    def __init__(
        self,
        lr: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(lr)
        self.beta_1 = _check_fraction("beta_1", beta_1)
        self.beta_2 = _check_fraction("beta_2", beta_2)
        self.epsilon = check_positive_float("epsilon", epsilon)
        self.t = 0
        self.ms: list[Array] | None = None
        self.vs: list[Array] | None = None

    def __repr__(self) -> str:
        return (
            f"Adam(lr={self.learning_rate_init!r}, beta_1={self.beta_1!r}, "
            f"beta_2={self.beta_2!r}, epsilon={self.epsilon!r})"
        )

    def update(self, params: list[Array], grads: list[Array]) -> None:
        if self.ms is None or self.vs is None:
            self.ms = [_zeros_like(p) for p in params]
            self.vs = [_zeros_like(p) for p in params]
        beta_1, beta_2, epsilon = self.beta_1, self.beta_2, self.epsilon
        self.t += 1
        t = self.t
        # Bias correction folded into the step size (host arithmetic on Python floats).
        lr = self.learning_rate_init * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        self.learning_rate = lr
        xp = _namespace(params[0])
        ms, vs = self.ms, self.vs
        for i, grad in enumerate(grads):
            m = ms[i]
            m *= beta_1  # m ← β₁·m + (1 − β₁)·g
            m += (1 - beta_1) * grad
            ms[i] = m
            s = vs[i]
            s *= beta_2  # s ← β₂·s + (1 − β₂)·g²
            s += (1 - beta_2) * (grad * grad)
            vs[i] = s
            p = params[i]
            p += -lr * m / (xp.sqrt(s) + epsilon)
            params[i] = p

    def _init_slots(self, params: list[Array]) -> dict[str, Any]:
        return {"ms": [_zeros_like(p) for p in params], "vs": [_zeros_like(p) for p in params]}

    @property
    def state_learning_rate(self) -> float:
        return self.learning_rate_init

    def export_state(self, params: list[Array]) -> dict[str, Any]:
        state = self.init(params)
        xp = _namespace(params[0])
        # the state's lr is η₀ (apply applies the bias correction); t is the step count
        state["lr"] = scalar(xp, self.learning_rate_init, params[0].dtype, _device(params[0]))
        state["step"] = scalar(xp, self.t, _step_dtype(xp), _device(params[0]))
        if self.ms is not None and self.vs is not None:
            state["ms"], state["vs"] = list(self.ms), list(self.vs)
        return state

    def import_state(self, state: dict[str, Any], steps: int) -> None:
        self.ms, self.vs = list(state["ms"]), list(state["vs"])
        self.t += steps
        t = self.t
        if t:
            self.learning_rate = (
                self.learning_rate_init * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
            )

    def apply(
        self, params: list[Array], grads: list[Array], state: dict[str, Any]
    ) -> tuple[list[Array], dict[str, Any]]:
        """:meth:`update`'s rule with explicit state. The step count ``t`` is a 0-d array
        of the state and the bias correction ``η₀·√(1 − β₂ᵗ) / (1 − β₁ᵗ)`` is computed
        from it on the device (in the parameters' dtype; :meth:`update` computes it in
        Python floats, so in float32 the two differ by rounding)."""
        xp = _namespace(params[0])
        beta_1, beta_2, epsilon = self.beta_1, self.beta_2, self.epsilon
        t = state["step"] + 1
        t_real = xp.astype(t, params[0].dtype)
        lr = state["lr"] * xp.sqrt(1 - beta_2**t_real) / (1 - beta_1**t_real)
        new_params, ms, vs = [], [], []
        for p, grad, m, s in zip(params, grads, state["ms"], state["vs"]):
            m = m * beta_1 + (1 - beta_1) * grad  # m ← β₁·m + (1 − β₁)·g
            s = s * beta_2 + (1 - beta_2) * (grad * grad)  # s ← β₂·s + (1 − β₂)·g²
            ms.append(m)
            vs.append(s)
            new_params.append(p + -lr * m / (xp.sqrt(s) + epsilon))
        return new_params, {**state, "step": t, "ms": ms, "vs": vs}


_NAMESPACES: dict[type, Any] = {}


def _step_dtype(xp: Any) -> Any:
    """The step count's dtype: int64 (Adam's count passes 2**31 in long fits with batch
    size 1), or int32 where the namespace has no int64 (JAX in its default 32-bit mode,
    which would otherwise warn and truncate on every fit)."""
    if is_jax_namespace(xp):  # (asking JAX's namespace info builds its dtype table: 0.3 ms)
        import jax

        return xp.int64 if jax.config.read("jax_enable_x64") else xp.int32
    info = getattr(xp, "__array_namespace_info__", None)
    if info is not None and "int64" not in info().dtypes(kind="signed integer"):
        return xp.int32
    return xp.int64


def _device(array: Array) -> Any:
    from array_api_compat import device

    return device(array)


def _namespace(array: Array) -> Any:
    """The array's Array API namespace, looked up once per array type: the lookup costs
    more than an update of a small network's parameters, and the per-epoch snapshot
    needs it too. A JAX array names its own (array-api-compat's lookup builds an empty
    JAX array to find it: two device programs, each compiled or read from the cache once
    per process)."""
    namespace = _NAMESPACES.get(type(array))
    if namespace is None:
        from array_api_compat import array_namespace, is_jax_array

        namespace = (array.__array_namespace__() if is_jax_array(array)
                     else array_namespace(array))
        _NAMESPACES[type(array)] = namespace
    return namespace


_IMMUTABLE = (int, float, str, bool, type(None))


def _copy_state(value: Any, into: Any = None) -> Any:
    """A copy of one optimiser attribute: arrays and lists of arrays are copied on their
    device (into the arrays of the list ``into`` when it is an earlier copy of the same
    list and the backend's arrays are mutable); numbers, strings and None (immutable) are
    shared."""
    if isinstance(value, _IMMUTABLE):
        return value
    if (
        isinstance(value, list) and isinstance(into, list) and len(into) == len(value)
        and not any(isinstance(item, _IMMUTABLE) for item in value)
    ):
        try:
            for buffer, item in zip(into, value):
                buffer[...] = item
            return into
        except (TypeError, ValueError, NotImplementedError):  # immutable arrays: copy
            pass
    if isinstance(value, list):
        arrays = [item for item in value if not isinstance(item, _IMMUTABLE)]
        if not arrays:
            return list(value)
        xp = _namespace(arrays[0])
        return [
            item if isinstance(item, _IMMUTABLE) else xp.asarray(item, copy=True)
            for item in value
        ]
    from array_api_compat import is_array_api_obj

    if is_array_api_obj(value):
        return _namespace(value).asarray(value, copy=True)
    return copy.deepcopy(value)


def _dtype_name(array: Array) -> str:
    """``float64`` for a NumPy, JAX, CuPy or torch (``torch.float64``) float64 array."""
    return str(array.dtype).removeprefix("torch.")


def _describe(shapes: list[tuple[tuple[int, ...], str]]) -> str:
    """``shapes (2, 8), (8,), (8, 1), (1,) in float32`` for a list of (shape, dtype)."""
    dtypes = "/".join(sorted({dtype for _, dtype in shapes}))
    return f"shapes {', '.join(str(shape) for shape, _ in shapes)} in {dtypes}"


def _on_host(value: Any) -> Any:
    """An optimiser attribute with its arrays (alone or in a list) as NumPy arrays."""
    from .backends import to_numpy

    if isinstance(value, list):
        return [item if isinstance(item, _IMMUTABLE) else to_numpy(item) for item in value]
    if isinstance(value, _IMMUTABLE):
        return value
    from array_api_compat import is_array_api_obj

    return to_numpy(value) if is_array_api_obj(value) else value


def _placed(backend: Any, array: np.ndarray) -> Array:
    """A host array on ``backend``, in its own dtype (named in the backend's namespace)."""
    return backend.asarray(array, dtype=getattr(backend.xp, array.dtype.name))


def _zeros_like(array: Array) -> Array:
    """Zeros with the array's shape, dtype and device (state stays on the device)."""
    return _namespace(array).zeros_like(array)


def get_optimizer(
    name: str | Optimizer,
    lr: float,
    **options: Any,
) -> Optimizer:
    """Build an optimiser by name (``"sgd"`` or ``"adam"``); an instance is returned as is.

    ``options`` are the keyword arguments of :class:`SGD` or :class:`Adam`.

    Parameters
    ----------
    name : str or Optimizer
        ``"sgd"``, ``"adam"``, or an optimiser (returned as it is).
    lr : float
        The learning rate.
    **options
        The keyword arguments of :class:`SGD` or :class:`Adam`.
    """
    if isinstance(name, Optimizer):
        if options:
            raise ValueError("options can only be given with an optimiser name, not an instance")
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"optimizer must be 'sgd', 'adam' or an xpnet.optim.Optimizer instance; got {name!r}"
        )
    if name == "sgd":
        return SGD(lr, **options)
    if name == "adam":
        return Adam(lr, **options)
    raise ValueError(f"optimizer must be 'sgd', 'adam' or an Optimizer instance; got {name!r}")
