"""``fit(..., compile=True)``: one compiled XLA program per epoch on the JAX backend.

The program runs the epoch's mini-batches with ``lax.fori_loop`` around the pure step
(:func:`xpnet.core.loss_and_grads`) and the optimiser's explicit-state rule
(:meth:`xpnet.optim.Optimizer.apply`), and sums the size-weighted batch losses on the
device; the training loop reads that sum back once per epoch, as in eager training.

- The host draws the epoch's permutation exactly as in eager training (same generator,
  same calls), so shuffles, and so the numbers up to rounding, are those of every other
  backend.
- The full batches run in the loop; the last, smaller batch (``m % batch_size`` rows)
  runs once more after the loop *in the same program*, on a statically shaped slice of
  the permutation. Batch composition and order are exactly the eager loop's, and no
  second program is compiled for it.
- Learning rate and step count are inputs (0-d arrays in the optimiser state), so the
  schedules and Adam's bias correction move on under compilation.
- Parameter buffers are not donated: the training loop keeps the epoch's starting
  parameters for a rollback (divergence, Ctrl-C), and a caller may hold them too.

Programs are cached per (architecture, rows, batch size, feature/output widths, dtype,
optimiser kind and constants, weighted or not, shuffled or not, device), so a second fit
of the same shape (a cross-validation fold, a warm restart) compiles nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .core import Architecture
from .optim import Optimizer

__all__ = ["COMPILE_BACKENDS", "check_compile", "epoch_program"]

Array = Any

#: Where ``compile=True`` compiles; NumPy and array-api-strict accept it and run eagerly.
COMPILE_BACKENDS = ("jax",)
_NO_OP = ("numpy", "array_api_strict")
_CACHE_SIZE = 32
_programs: OrderedDict[tuple[Any, ...], Callable[..., Any]] = OrderedDict()


def check_compile(compile: Any, backend: str) -> bool:
    """Whether to run compiled epochs: ``compile`` must be a bool; True is honoured on
    JAX, accepted as a no-op on NumPy/array-api-strict, refused on torch and CuPy."""
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be True or False; got {compile!r}")
    if not compile or backend in _NO_OP:
        return False
    if backend not in COMPILE_BACKENDS:
        raise ValueError(
            f"compile=True is not available on backend {backend!r} yet (no GPU-verified "
            "compiled path: CUDA graphs are the candidates); use backend='jax' to compile "
            "the training step, or compile=False"
        )
    return True


def _optimizer_key(opt: Optimizer) -> tuple[Any, ...]:
    """The optimiser's kind and the constants its ``apply`` bakes into a program (the
    learning rate and step count are inputs, not part of the key)."""
    constants = {
        name: value for name, value in vars(opt).items()
        if isinstance(value, (bool, int, float, str)) and name not in (
            "learning_rate", "learning_rate_init", "t"
        )
    }
    return (type(opt).__qualname__, tuple(sorted(constants.items())))


def epoch_program(
    arch: Architecture,
    opt: Optimizer,
    m: int,
    batch_size: int,
    shapes: tuple[int, int],
    dtype: Any,
    device: Any,
    weighted: bool,
    shuffled: bool,
    dropout_key: tuple[int, int] | None = None,
) -> Callable[..., tuple[Any, ...]]:
    """The compiled epoch ``(params, state, X, Y, w, order, step) -> (params, state,
    Σ size·loss, Σ size·loss + 0·Σp)`` (``w``/``order`` are None when not
    ``weighted``/``shuffled``; the last value is the training loop's divergence check),
    built once per shape. With dropout (``arch.dropout`` and the network's
    ``dropout_key``), ``step`` is the network's step count at the epoch's start (a 0-d
    integer array), and batch ``i`` draws the masks of step ``step + i`` for its global
    rows, as the eager loop does; without, ``step`` is None."""
    key = (arch, m, batch_size, shapes, str(dtype), str(device), weighted, shuffled,
           _optimizer_key(opt), dropout_key)
    program = _programs.get(key)
    if program is not None:
        _programs.move_to_end(key)
        return program
    program = _build(arch, opt, m, batch_size, weighted, shuffled, dropout_key)
    _programs[key] = program
    if len(_programs) > _CACHE_SIZE:
        _programs.popitem(last=False)
    return program


def cached_programs() -> int:
    """Number of compiled epoch programs held (for tests and diagnostics)."""
    return len(_programs)


def _build(
    arch: Architecture, opt: Optimizer, m: int, batch_size: int, weighted: bool,
    shuffled: bool, dropout_key: tuple[int, int] | None = None,
) -> Callable[..., Any]:
    import jax
    import jax.numpy as jnp
    from jax import lax

    from ._dropout import DropoutStream

    n_full, rest = divmod(m, batch_size)

    def batch_rows(X: Array, Y: Array, w: Array | None, order: Array | None,
                   first: Any, size: int) -> tuple[Array, Array, Array | None]:
        if order is not None:
            rows = lax.dynamic_slice_in_dim(order, first, size)
            return (jnp.take(X, rows, axis=0), jnp.take(Y, rows, axis=0),
                    None if w is None else jnp.take(w, rows, axis=0))
        return (lax.dynamic_slice_in_dim(X, first, size, axis=0),
                lax.dynamic_slice_in_dim(Y, first, size, axis=0),
                None if w is None else lax.dynamic_slice_in_dim(w, first, size))

    def stream(order: Array | None, first: Any, size: int, step: Any,
               batch: Any) -> DropoutStream | None:
        """The eager loop's dropout stream (:meth:`xpnet.MLP._stream`) of one batch."""
        if step is None or dropout_key is None:
            return None
        rows = (first + jnp.arange(size) if order is None
                else lax.dynamic_slice_in_dim(order, first, size))
        return DropoutStream(dropout_key, step + jnp.asarray(batch, dtype=step.dtype), rows)

    def step(params: list[Array], state: dict[str, Any], X_b: Array, Y_b: Array,
             w_b: Array | None, stream: DropoutStream | None = None,
             ) -> tuple[list[Array], dict[str, Any], Array]:
        loss, grads = arch.loss_and_grads(params, X_b, Y_b, w_b, stream=stream)
        params, state = opt.apply(params, grads, state)
        return params, state, loss

    def epoch(params: list[Array], state: dict[str, Any], X: Array, Y: Array,
              w: Array | None, order: Array | None, step0: Any = None) -> tuple[Any, ...]:
        total = jnp.zeros((), dtype=X.dtype)

        def body(i: Any, carry: Any) -> Any:
            params, state, total = carry
            X_b, Y_b, w_b = batch_rows(X, Y, w, order, i * batch_size, batch_size)
            params, state, loss = step(params, state, X_b, Y_b, w_b,
                                       stream(order, i * batch_size, batch_size, step0, i))
            return params, state, total + loss * batch_size

        if n_full:
            params, state, total = lax.fori_loop(0, n_full, body, (params, state, total))
        if rest:  # the last, smaller batch: a static slice, in this same program
            X_b, Y_b, w_b = batch_rows(X, Y, w, order, n_full * batch_size, rest)
            params, state, loss = step(params, state, X_b, Y_b, w_b,
                                       stream(order, n_full * batch_size, rest, step0, n_full))
            total = total + loss * rest
        # the loop's divergence check, 0·Σp (NaN once a parameter is), done here rather
        # than as a few more eager dispatches per epoch
        checked = total + 0 * sum(jnp.sum(p) for p in params)
        return params, state, total, checked

    del weighted, shuffled  # None inputs make their own trace; part of the cache key
    return jax.jit(epoch)
