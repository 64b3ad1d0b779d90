"""``fit(..., compile=True)``: compiled XLA programs for the training loop on JAX.

Two programs, built from one traced epoch (:func:`_epoch_function`):

- the **epoch program** runs one epoch per call; the training loop reads its loss sum
  back once per epoch, as in eager training, and does its per-epoch work (callback,
  early stopping, progress, verbose output) in between;
- the **chunk program** runs up to ``K`` epochs per call (``lax.fori_loop`` over
  epochs around the epoch loop) and returns the ``K`` epoch losses and each epoch's
  parameter finiteness, read back once per call. :class:`ChunkRunner` uses it when no
  per-epoch work is asked for (no callback, no early stopping, no verbose output): on
  a small network the per-call cost (dispatch, read-back, the loop's Python) is most
  of an epoch's time. On a small unshuffled one the next chunk is queued before the
  last one is read back, so recording epochs on the host overlaps training them.

Both are runners of :func:`xpnet.training.loop.run` (:class:`EpochProgramRunner`,
:class:`ChunkRunner`), which records their epochs as it records eager ones.

Inside an epoch:

- The host draws each epoch's permutation exactly as in eager training (same generator,
  same calls, one ``rng.permutation(m)`` per epoch and in epoch order), so shuffles, and
  so the numbers up to rounding, are those of every other backend. The chunk program
  gets its ``K`` permutations as one ``(K, m)`` int32 upload.
- The full batches run in the loop; the last, smaller batch (``m % batch_size`` rows)
  runs once more after the loop *in the same program*, on a statically shaped slice of
  the permutation. Batch composition and order are exactly the eager loop's, and no
  second program is compiled for it.
- Learning rate and step count are inputs (0-d arrays in the optimiser state), so the
  schedules and Adam's bias correction move on under compilation; the chunk program
  takes one learning rate per epoch (predicted on the host, checked afterwards: see
  :class:`ChunkRunner`).
- Parameter buffers are not donated: the training loop keeps the starting parameters of
  an epoch (or chunk) for a rollback (divergence, Ctrl-C), and a caller may hold them too.

Programs are cached per (architecture, rows, batch size, feature/output widths, dtype,
optimiser kind and constants, weighted or not, shuffled or not, device, and ``K`` for the
chunk program), so a second fit of the same shape (a cross-validation fold, a warm
restart) compiles nothing.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .._dropout import DropoutStream
from ..core import Architecture, parameter_names
from ..optim import Optimizer
from .loop import EagerRunner, Plan
from .sources import loss_bound, training_loss
from .state import TrainState

__all__ = ["CACHE_SIZE", "COMPILE_BACKENDS", "PROGRAMS", "ChunkRunner", "EpochProgramRunner",
           "cached_programs", "check_compile", "chunk_epochs", "chunk_program",
           "epoch_program", "epoch_work", "loss_program", "runs_ahead"]

Array = Any

#: Where ``compile=True`` compiles; NumPy and array-api-strict accept it and run eagerly.
COMPILE_BACKENDS = ("jax",)
_NO_OP = ("numpy", "array_api_strict")
#: Most compiled programs held; the least recently used goes first.
CACHE_SIZE = 32
#: The compiled programs by key (see the module docs), least recently used first.
PROGRAMS: OrderedDict[tuple[Any, ...], Callable[..., Any]] = OrderedDict()

#: Most epochs per chunk call. Measured on the benchmarks' tiny case (2-4-1, 400 rows,
#: full batch, 1000-epoch fits, 2-core CPU): 102, 51, 30, 21 and 23 µs per epoch with
#: 1, 16, 64, 256 and 1024 epochs per call (benchmarks/README.md); 256 also keeps the
#: epochs a Ctrl-C rolls back (those of the running call) to a fraction of a second.
MAX_CHUNK_EPOCHS = 256
#: Most bytes of the ``(K, m)`` int32 permutation upload of one chunk.
MAX_PERMUTATION_BYTES = 4 << 20
#: Most multiply-adds of the matrix products of one chunk (~0.1-1 s on a CPU core):
#: a larger network's epoch is long enough that one call per epoch costs nothing
#: measurable, and Ctrl-C then loses at most an epoch, as in eager training.
MAX_CHUNK_WORK = 1 << 30
#: Most multiply-adds of a chunk that :class:`ChunkRunner` starts ahead, while the host
#: records the one before (a few ms of a CPU core): where an epoch takes microseconds,
#: recording it (history, stopping rules) costs a third of it, and the device would wait
#: for that. A chunk started ahead that is not needed (training stopped) is that work
#: lost, so larger chunks are never started ahead.
MAX_AHEAD_WORK = 1 << 23


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


def _cached(key: tuple[Any, ...], build: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    program = PROGRAMS.get(key)
    if program is not None:
        PROGRAMS.move_to_end(key)
        return program
    program = PROGRAMS[key] = build()
    if len(PROGRAMS) > CACHE_SIZE:
        PROGRAMS.popitem(last=False)
    return program


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
    ``dropout_key``), ``step`` is the network's step count at the epoch's start, and
    batch ``i`` draws the masks of step ``step + i`` for its rows, as the eager loop
    does; without, ``step`` is None."""
    key = ("epoch", arch, m, batch_size, shapes, str(dtype), str(device), weighted,
           shuffled, _optimizer_key(opt), dropout_key)
    return _cached(key, lambda: _build_epoch(arch, opt, m, batch_size, dropout_key))


def chunk_program(
    arch: Architecture,
    opt: Optimizer,
    m: int,
    batch_size: int,
    shapes: tuple[int, int],
    dtype: Any,
    device: Any,
    weighted: bool,
    shuffled: bool,
    chunk: int,
    dropout_key: tuple[int, int] | None = None,
) -> Callable[..., tuple[Any, ...]]:
    """The compiled chunk ``(params, state, X, Y, w, orders, rates, n, step) -> (params,
    state, totals, finite, bound)``: epochs ``0..n-1`` (``n ≤ chunk``, an input, so a shorter
    last chunk or a replay compiles nothing), epoch ``e`` with permutation ``orders[e]``
    (``orders`` is ``(chunk, m)`` int32, None when not shuffled) and learning rate
    ``rates[e]``; ``totals[e]`` is epoch ``e``'s Σ size·loss and ``finite[e, j]`` whether
    parameter ``j`` is finite after it (entries from ``n`` on are not written). With
    dropout, ``step`` is the network's step count at the chunk's start (epoch ``e``
    starts at ``step + e · steps per epoch``); without, None. ``bound``: the
    :func:`~xpnet.training.sources.loss_bound` of the returned parameters on ``X``,
    ``Y``, so the finished network's check after the last call needs no program of its
    own when it is finite (:meth:`ChunkRunner.finished_check`)."""
    key = ("chunk", arch, m, batch_size, shapes, str(dtype), str(device), weighted,
           shuffled, _optimizer_key(opt), dropout_key, chunk)  # K last
    return _cached(key, lambda: _build_chunk(arch, opt, m, batch_size, chunk, dropout_key))


def loss_program(arch: Architecture, xp: Any, m: int, shapes: tuple[int, int], dtype: Any,
                 device: Any) -> Callable[[list[Array], Array, Array], Array]:
    """The guard's check of the finished network's outputs as one compiled program
    ``(params, X, Y) -> 0-d``, finite exactly when the training loss is: the
    :func:`~xpnet.training.sources.loss_bound` when that is finite, else (``lax.cond``:
    only then) :func:`~xpnet.training.sources.training_loss`, a forward pass over the
    data that costs about half an epoch of a dense network. Run eagerly
    it is a dozen JAX operations, each compiled, or read from the persistent cache, on
    its first use in a process: on the tiny case that was about half of a fresh
    process's first compiled fit. The data are inputs, never constants of the program.
    Its blocks are those of a full batch (:data:`~xpnet.training.sources.LOSS_BLOCK_ROWS`
    rows), whatever the training's batch size: the block loop is unrolled into the
    program, and blocks of a small batch would make it as long as the data."""
    key = ("loss", arch, m, shapes, str(dtype), str(device))

    def build() -> Callable[..., Any]:
        import jax

        def check(params: list[Array], X: Array, Y: Array) -> Array:
            bound = loss_bound(arch, xp, params, X, Y)
            return jax.lax.cond(xp.isfinite(bound), lambda: bound,
                                lambda: training_loss(arch, xp, params, X, Y, m))

        return jax.jit(check)

    return _cached(key, build)


def cached_programs() -> int:
    """Number of compiled programs held (for tests and diagnostics)."""
    return len(PROGRAMS)


# --------------------------------------------------------------------------- tracing
class Batch(NamedTuple):
    """One mini-batch inside a program: its rows of ``X``/``Y``/``w`` and where they come
    from (``rows``: their indices into the training data, a traced int array, or None
    when the epoch is not shuffled and the batch is ``first:first + size``)."""

    X: Array
    Y: Array
    w: Array | None
    rows: Array | None
    first: Any


def _step_function(arch: Architecture, opt: Optimizer) -> Callable[..., Any]:
    """``step(params, state, batch, stream) -> (params, state, loss)``: the pure step and
    the optimiser's explicit-state rule; everything per step it may need is in ``state``
    (the step count, the learning rate), ``batch`` and the dropout ``stream`` (None
    without dropout)."""

    def step(params: list[Array], state: dict[str, Any], batch: Batch,
             stream: DropoutStream | None = None,
             ) -> tuple[list[Array], dict[str, Any], Array]:
        loss, grads = arch.loss_and_grads(params, batch.X, batch.Y, batch.w, stream=stream)
        params, state = opt.apply(params, grads, state)
        return params, state, loss

    return step


def _epoch_function(
    arch: Architecture, opt: Optimizer, m: int, batch_size: int,
    dropout_key: tuple[int, int] | None = None,
) -> Callable[..., tuple[list[Array], dict[str, Any], Array]]:
    """``epoch(params, state, X, Y, w, order, step) -> (params, state, Σ size·loss)``,
    traceable; both programs run this one function, so their epochs are the same
    computation. ``step``: the dropout stream's step at the epoch's start (None without
    dropout)."""
    import jax.numpy as jnp
    from jax import lax

    n_full, rest = divmod(m, batch_size)
    step = _step_function(arch, opt)

    def batch_at(X: Array, Y: Array, w: Array | None, order: Array | None, first: Any,
                 size: int) -> Batch:
        if order is not None:
            rows = lax.dynamic_slice_in_dim(order, first, size)
            return Batch(jnp.take(X, rows, axis=0), jnp.take(Y, rows, axis=0),
                         None if w is None else jnp.take(w, rows, axis=0), rows, first)
        return Batch(lax.dynamic_slice_in_dim(X, first, size, axis=0),
                     lax.dynamic_slice_in_dim(Y, first, size, axis=0),
                     None if w is None else lax.dynamic_slice_in_dim(w, first, size),
                     None, first)

    def stream(batch: Batch, size: int, step0: Any, i: Any) -> DropoutStream | None:
        """The eager loop's dropout stream (:meth:`xpnet.MLP.dropout_stream`) of batch ``i``:
        step ``step0 + i``, rows ``batch.rows`` (or ``first..first+size-1``)."""
        if step0 is None or dropout_key is None:
            return None
        rows = batch.first + jnp.arange(size) if batch.rows is None else batch.rows
        return DropoutStream(dropout_key, step0 + i, rows)

    def epoch(params: list[Array], state: dict[str, Any], X: Array, Y: Array,
              w: Array | None, order: Array | None, step0: Any = None,
              ) -> tuple[list[Array], dict[str, Any], Array]:
        total = jnp.zeros((), dtype=X.dtype)

        def body(i: Any, carry: Any) -> Any:
            params, state, total = carry
            batch = batch_at(X, Y, w, order, i * batch_size, batch_size)
            params, state, loss = step(params, state, batch,
                                       stream(batch, batch_size, step0, i))
            return params, state, total + loss * batch_size

        if n_full:
            params, state, total = lax.fori_loop(0, n_full, body, (params, state, total))
        if rest:  # the last, smaller batch: a static slice, in this same program
            batch = batch_at(X, Y, w, order, n_full * batch_size, rest)
            params, state, loss = step(params, state, batch,
                                       stream(batch, rest, step0, n_full))
            total = total + loss * rest
        return params, state, total

    return epoch


def _build_epoch(arch: Architecture, opt: Optimizer, m: int, batch_size: int,
                 dropout_key: tuple[int, int] | None = None) -> Callable[..., Any]:
    import jax
    import jax.numpy as jnp

    run_epoch = _epoch_function(arch, opt, m, batch_size, dropout_key)

    def epoch(params: list[Array], state: dict[str, Any], X: Array, Y: Array,
              w: Array | None, order: Array | None, step0: Any = None) -> tuple[Any, ...]:
        params, state, total = run_epoch(params, state, X, Y, w, order, step0)
        # the loop's divergence check, 0·Σp (NaN once a parameter is), done here rather
        # than as a few more eager dispatches per epoch
        checked = total + 0 * sum(jnp.sum(p) for p in params)
        return params, state, total, checked

    return jax.jit(epoch)  # None inputs (w, order) make their own trace; keyed above


def _build_chunk(arch: Architecture, opt: Optimizer, m: int, batch_size: int,
                 chunk: int, dropout_key: tuple[int, int] | None = None,
                 ) -> Callable[..., Any]:
    import jax
    import jax.numpy as jnp
    from jax import lax

    run_epoch = _epoch_function(arch, opt, m, batch_size, dropout_key)
    steps_per_epoch = -(-m // batch_size)

    def epochs(params: list[Array], state: dict[str, Any], X: Array, Y: Array,
               w: Array | None, orders: Array | None, rates: Array, n: Any,
               step0: Any = None) -> tuple[Any, ...]:
        totals = jnp.zeros((chunk,), dtype=X.dtype)
        finite = jnp.zeros((chunk, len(params)), dtype=bool)

        def body(e: Any, carry: Any) -> Any:
            params, state, totals, finite = carry
            state = {**state, "lr": rates[e]}
            order = None if orders is None else orders[e]
            start = None if step0 is None else step0 + e * steps_per_epoch
            params, state, total = run_epoch(params, state, X, Y, w, order, start)
            flags = jnp.stack([jnp.all(jnp.isfinite(p)) for p in params])
            return params, state, totals.at[e].set(total), finite.at[e].set(flags)

        # n is traced (a while loop): one program for every chunk length up to `chunk`
        params, state, totals, finite = lax.fori_loop(0, n, body,
                                                      (params, state, totals, finite))
        # the finished network's check, should this be the last call: a few reductions
        return params, state, totals, finite, loss_bound(arch, jnp, params, X, Y)

    return jax.jit(epochs)


# --------------------------------------------------------------------------- chunked fit
def chunk_epochs(layer_sizes: tuple[int, ...] | list[int], m: int, shuffled: bool) -> int:
    """``K``, the most epochs per chunk call, for a network and data shape: a power of
    two, at most :data:`MAX_CHUNK_EPOCHS`, with at most :data:`MAX_PERMUTATION_BYTES`
    of permutations and :data:`MAX_CHUNK_WORK` multiply-adds per call; 1 means one
    epoch per call. It does not depend on the number of epochs of a fit (a fit runs
    ``ceil(epochs / K)`` calls, the last one shorter), so fits of any length share one
    program."""
    work = epoch_work(layer_sizes, m)
    limit = min(MAX_CHUNK_EPOCHS, MAX_CHUNK_WORK // max(work, 1))
    if shuffled:
        limit = min(limit, MAX_PERMUTATION_BYTES // (4 * m))
    return 1 << (limit.bit_length() - 1) if limit >= 1 else 1


def epoch_work(layer_sizes: tuple[int, ...] | list[int], m: int) -> int:
    """Multiply-adds of the matrix products of one epoch on ``m`` rows (forward and
    backward, about three products per layer)."""
    return 3 * m * sum(a * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))


def runs_ahead(layer_sizes: tuple[int, ...] | list[int], m: int, span: int,
               shuffled: bool) -> bool:
    """Whether a :class:`ChunkRunner` starts each next chunk ahead: chunks of at most
    :data:`MAX_AHEAD_WORK`, not shuffled (a chunk started ahead draws no permutation
    from the generator, so one that is not used leaves nothing to rewind)."""
    return not shuffled and span * epoch_work(layer_sizes, m) <= MAX_AHEAD_WORK


class _Ahead(NamedTuple):
    """A chunk call started before the loop asked for it: its inputs and its outputs."""

    params: list[Any]
    carried: dict[str, Any]
    n: int
    rates: list[float]
    call: tuple[Any, ...]
    outputs: tuple[Any, ...]


class _RngRewind:
    """Puts the shuffle generator back to where it was, so that after a chunk cut
    short it has drawn exactly the permutations of the epochs kept (as eager training
    would have), and a later fit shuffles the same. For a NumPy ``Generator`` (its
    ``bit_generator.state``) or anything with ``get_state()``/``set_state(state)``
    (``RandomState``, the estimators' scikit-learn shuffle)."""

    def __init__(self, rng: Any) -> None:
        self.rng = rng
        self.bit_generator = getattr(rng, "bit_generator", None)  # numpy Generator
        self.saved: Any = None

    @staticmethod
    def supported(rng: Any) -> bool:
        return isinstance(rng, np.random.Generator) or (
            callable(getattr(rng, "get_state", None))
            and callable(getattr(rng, "set_state", None))
        )

    def save(self) -> None:
        self.saved = (self.bit_generator.state if self.bit_generator is not None
                      else self.rng.get_state())

    def redraw(self, m: int, epochs: int) -> None:
        """Back to the saved state, then ``epochs`` permutations drawn again."""
        if self.bit_generator is not None:
            self.bit_generator.state = self.saved
        else:
            self.rng.set_state(self.saved)
        for _ in range(epochs):
            self.rng.permutation(m)


class EpochProgramRunner(EagerRunner):
    """The eager runner with each epoch one compiled program (:func:`epoch_program`);
    the optimiser's state is exported once and carried on (a 0-d upload costs more
    than a tiny network's epoch), a schedule's new rate replacing its ``lr`` entry."""

    def __init__(self, plan: Plan, backend: Any, shuffle: bool, rng: Any,
                 program: Callable[..., Any], data: tuple[Any, Any, Any],
                 dropout: bool) -> None:
        super().__init__(plan, backend, shuffle, rng)
        self.program, self.data, self.dropout = program, data, dropout
        self.carried: dict[str, Any] | None = None
        self.carried_lr = math.nan

    def epoch(self, state: TrainState, order: Any) -> tuple[Any, Any]:
        opt = self.plan.opt
        if self.carried is None:
            self.carried = opt.export_state(state.params)
            self.carried_lr = opt.state_learning_rate
        elif opt.state_learning_rate != self.carried_lr:
            self.carried = opt.with_learning_rate(self.carried)
            self.carried_lr = opt.state_learning_rate
        params, self.carried, total, checked = self.program(
            list(state.params), self.carried, *self.data, order,
            state.steps if self.dropout else None,  # the stream's step
        )
        state.params = list(params)
        opt.import_state(self.carried, self.plan.steps_per_epoch)
        return total, checked  # (the program added 0·Σp itself)


class ChunkRunner:
    """Up to ``K`` epochs per compiled call (:func:`chunk_program`), for fits with nothing
    to do between epochs (no callback, early stopping or verbose output).

    Per call of ``n ≤ K`` epochs the host draws the ``n`` permutations and predicts the
    ``n`` learning rates (``iteration_ends`` on a shallow copy of the optimiser), runs
    the program and reads the losses and finiteness flags back once. When the loop
    keeps only the first ``k`` epochs (training stops, the rate differs from the
    prediction, an epoch diverged, Ctrl-C), :meth:`rewind` runs the program again from
    the call's start for ``k`` epochs (same uploaded permutations and rates, no compile,
    so the same numbers) and rewinds the generator to the epochs eager training drew.

    With ``ahead`` (:func:`runs_ahead`: small, unshuffled chunks), each call also queues
    the next one, from its outputs, before reading them back: the device trains the next
    chunk while the host records this one's epochs (on the tiny 2-4-1 network a third
    of an epoch's time); the last calls of a fit are cut short, so that the one whose
    records overlap nothing is an eighth of the epochs left. The loop's next call uses it
    only if it follows on exactly (these very parameters and optimiser state, at most as
    many epochs as asked, the rate and dropout step predicted); otherwise it is dropped,
    at most :data:`MAX_AHEAD_WORK` multiply-adds of work lost.
    """

    note = (" (compiled, several epochs per call: the epochs of the running call were "
            "cut short and rolled back)")

    def __init__(self, plan: Plan, program: Callable[..., Any], span: int,
                 data: tuple[Any, Any, Any], shuffled: bool, rng: Any, dropout: bool,
                 ahead: bool = False) -> None:
        self.plan, self.program, self.span, self.data = plan, program, span, data
        self.shuffled, self.rng, self.dropout = shuffled, rng, dropout
        self.rewinder = _RngRewind(rng)
        self.carried: dict[str, Any] | None = None
        self.start: tuple[list[Any], dict[str, Any]] = ([], {})
        self.result: tuple[list[Any], dict[str, Any]] | None = None
        self.n = self.imported = 0
        self.call: tuple[Any, ...] = ()
        self.rates: list[float] = []
        self.runs_ahead = ahead and not shuffled  # see runs_ahead()
        self.ahead: _Ahead | None = None
        self.finished: tuple[list[Any], float] = ([], math.inf)  # last call's params, bound

    def finished_check(self, check: Callable[[list[Array]], float],
                       ) -> Callable[[list[Array]], float]:
        """The guard's check of a network's outputs (``check``, the loss program) that
        takes the last call's bound instead when it is finite and ``params`` are that
        call's own results: the end of a fit then runs no program of its own (a fresh
        process traces and loads one program fewer)."""

        def checked(params: list[Array]) -> float:
            last, bound = self.finished
            if (math.isfinite(bound) and len(params) == len(last)
                    and all(p is q for p, q in zip(params, last))):
                return bound
            return check(params)

        return checked

    @staticmethod
    def supported(shuffled: bool, rng: Any) -> bool:
        return not shuffled or _RngRewind.supported(rng)

    def run(self, state: TrainState, n: int) -> list[tuple[float, list[str]]]:
        plan, m = self.plan, self.plan.m
        if self.carried is None:
            self.carried = plan.opt.export_state(state.params)
        self.start, self.result, self.n, self.imported = (
            (list(state.params), self.carried), None, n, 0)
        ahead, self.ahead = self.ahead, None
        if ahead is not None and self._matches(ahead, state, n):
            self.rates, self.call, outputs = ahead.rates, ahead.call, ahead.outputs
            n = self.n = ahead.n  # (the last chunks are cut shorter: see below)
        else:
            outputs = self._start(state, n)
        if self.runs_ahead:
            # the next chunk queued behind this one, from its outputs: the device runs
            # it while the host reads this one back and records its epochs
            rest = plan.epochs - plan.history.n_iter - n
            following = min(self.span, rest)
            if following == rest >= 8:
                # the last call's records overlap nothing: keep it an eighth of the rest
                following = rest - rest // 8
            if following > 0:
                self.ahead = self._run_ahead(outputs, state, n, following)
        params, carried, totals, finite, bound = outputs
        self.result = (list(params), carried)
        state.params = list(params)
        totals_host, finite_host, bound_host = _read_back(totals, finite, bound)
        flags: list[list[bool]] = np.asarray(finite_host)[:n].tolist()
        self.finished = (self.result[0], float(bound_host))
        names = parameter_names(len(state.params) // 2)
        losses = (np.asarray(totals_host)[:n].astype(np.float64) / m).tolist()  # float(t) / m
        return [(loss, [] if all(row) else [name for name, ok in zip(names, row) if not ok])
                for loss, row in zip(losses, flags)]

    def _start(self, state: TrainState, n: int) -> tuple[Any, ...]:
        """Draw the call's permutations, predict its rates, run it."""
        plan, m = self.plan, self.plan.m
        # Host arrays go to the program as they are: the call moves them with its other
        # inputs (~10 µs) where an upload of their own costs ~0.3 ms. A fresh orders
        # array per call: the call may read it after returning, and a replay uses it.
        orders = None
        if self.shuffled:
            self.rewinder.save()
            orders = np.zeros((self.span, m), dtype=np.int32)
            for e in range(n):
                orders[e] = self.rng.permutation(m)
        self.rates = _predicted_rates(plan.opt, plan.history.samples_seen, m, n, self.span)
        # the dropout stream's step at the call's start, the same for a replay
        self.call = (orders, self._rates_array(self.rates), state.steps if self.dropout else None)
        return self._program(n)

    def _rates_array(self, rates: list[float]) -> np.ndarray:
        assert self.carried is not None
        return np.asarray(rates, dtype=np.dtype(str(self.carried["lr"].dtype)))

    def _run_ahead(self, outputs: tuple[Any, ...], state: TrainState, n: int,
                   following: int) -> _Ahead:
        """The call that follows this one if all its ``n`` epochs are kept (not shuffled:
        no permutations to draw); its rates predicted past this call's."""
        plan = self.plan
        rates = _predicted_rates(plan.opt, plan.history.samples_seen, plan.m, n + following,
                                 n + following)[n:]
        rates += [rates[-1]] * (self.span - following)
        step0 = state.steps + n * plan.steps_per_epoch if self.dropout else None
        call = (None, self._rates_array(rates), step0)
        params, carried = list(outputs[0]), outputs[1]
        started = self.program(params, carried, *self.data, *call[:2], following, step0)
        return _Ahead(params, carried, following, rates, call, started)

    def _matches(self, ahead: _Ahead, state: TrainState, n: int) -> bool:
        """Whether the call started ahead is the one asked for: from these very
        parameters and optimiser state, at most as many epochs, the rate and step
        predicted."""
        step0 = ahead.call[2]
        return (ahead.n <= n and self.carried is ahead.carried
                and len(state.params) == len(ahead.params)
                and all(p is q for p, q in zip(state.params, ahead.params))
                and self.plan.opt.state_learning_rate == ahead.rates[0]
                and (step0 is None or step0 == state.steps))

    def _program(self, n: int) -> tuple[Any, ...]:
        orders, rates, step0 = self.call
        return self.program(*self.start, *self.data, orders, rates, n, step0)

    def rewind(self, state: TrainState, k: int, attempted: int | None) -> bool:
        if k < 0:
            return False
        if k == self.n and self.result is not None:
            params, carried = self.result
        elif k == 0:
            params, carried = self.start
        else:
            params, carried = self._program(k)[:2]
        state.params, self.carried = list(params), carried
        spe = self.plan.steps_per_epoch
        self.plan.opt.import_state(carried, spe * k - self.imported)
        self.imported = spe * k
        if attempted is not None and self.shuffled and attempted < self.n:
            self.rewinder.redraw(self.plan.m, attempted)
        return True

    def replan(self, recorded: int) -> bool:
        return (recorded < self.n
                and self.plan.opt.state_learning_rate != self.rates[recorded])


def _predicted_rates(opt: Optimizer, samples_seen: int, m: int, n: int,
                     chunk: int) -> list[float]:
    """The learning rate of each of the chunk's ``n`` epochs if nothing but
    ``iteration_ends`` changes it (run on a shallow copy of ``opt``; rates after the
    ``n``-th repeat the last). The caller checks the real rate after each epoch."""
    if not opt.epoch_schedule:
        return [opt.state_learning_rate] * chunk
    probe = copy.copy(opt)
    rates = [probe.state_learning_rate]
    for e in range(1, n):
        probe.iteration_ends(samples_seen + e * m)
        rates.append(probe.state_learning_rate)
    return rates + [rates[-1]] * (chunk - n)


def _read_back(*arrays: Array) -> tuple[Any, ...]:
    """The arrays on the host, in one transfer."""
    import jax

    return tuple(jax.device_get(arrays))
