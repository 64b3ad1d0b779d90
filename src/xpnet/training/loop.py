"""The training loop: :func:`run` over a runner that trains 1..K epochs per call.

A *runner* trains epochs from a :class:`~xpnet.training.state.TrainState`:

- ``span``: the most epochs per call (1 for :class:`EagerRunner`; ``K`` for the
  compiled chunk runner of :mod:`xpnet.training.compiled`);
- ``run(state, n) -> [(epoch loss, non-finite parameter names), ...]``: ``n`` epochs
  (or fewer, ``len`` of the list: the chunk runner cuts its last calls short), the
  state left after the last one, each epoch's loss read back once;
- ``rewind(state, k, attempted) -> bool``: the state after the first ``k`` epochs of the
  latest call (``k = -1``: the start of the epoch before it; False when the runner
  cannot), the shuffle generator left as if ``attempted`` epochs had run (None: as it
  is);
- ``replan(recorded) -> bool``: whether the epochs after the first ``recorded`` must run
  again (the chunk runner's predicted learning rates no longer hold);
- ``note``: what a Ctrl-C message adds.

:func:`run` records every epoch the same way whatever the runner (loss, counters, step
count, validation score, stopping rules, schedule, callback), and hands divergence and
Ctrl-C to :mod:`xpnet.training.guard`. It never computes a gradient itself: the batch
source does, and the optimiser updates.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..backends import to_numpy
from ..core import layer_ones, nonfinite_parameters, parameter_sum
from .guard import EpochStart, Guard, epoch_mark, unrecord, warn_interrupted
from .sources import BatchSource
from .state import History, TrainState
from .stopping import Stopping

__all__ = ["EagerRunner", "Plan", "run"]

Array = Any


@dataclass
class Plan:
    """One fit's checked settings and parts, for :func:`run`."""

    source: BatchSource
    opt: Any
    runner: Any
    guard: Guard
    stopping: Stopping
    history: History
    xp: Any
    epochs: int
    m: int
    batch_size: int
    callback: Callable[..., Any] | None = None
    verbose: bool = False
    stacklevel: int = 1
    callback_params: bool = False  # callback(epoch, loss, params): see check_options

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.m // self.batch_size)


class EagerRunner:
    """One epoch per call, batch by batch: ``source.loss_and_grads`` then the optimiser's
    in-place ``update``, the epoch's loss summed on the device and read back once with
    the parameters' finiteness (``0·Σp`` is added: 0 while every parameter is finite,
    NaN as soon as one is not). Rollback through an :class:`EpochStart`."""

    span = 1
    note = ""

    def __init__(self, plan: Plan, backend: Any, shuffle: bool, rng: Any) -> None:
        self.plan, self.backend, self.rng = plan, backend, rng
        self.shuffled = shuffle and plan.batch_size < plan.m
        self.start: EpochStart | None = None
        self.ones: list[Array] | None = None
        self.fresh = False  # the epoch's first step out of place (see EpochStart.take)

    def run(self, state: TrainState, n: int) -> list[tuple[float, list[str]]]:
        plan = self.plan
        if self.start is None:
            self.start = EpochStart(plan.xp, state.params)
        self.fresh = self.start.take(state.params, plan.opt)
        # Full-batch gradients do not depend on row order, so only mini-batches shuffle:
        # one permutation per epoch, each batch gathers its rows through it.
        order = None
        if self.shuffled:
            order = self.backend.asarray(self.rng.permutation(plan.m),
                                         dtype=self.backend.index_dtype)
        total, checked = self.epoch(state, order)
        epoch_loss = float(checked) / plan.m
        bad: list[str] = []
        if not math.isfinite(epoch_loss):  # or only Σp overflowed: confirmed here
            epoch_loss = float(total) / plan.m
            bad = nonfinite_parameters(state.params, plan.xp)
        return [(epoch_loss, bad)]

    def epoch(self, state: TrainState, order: Array | None) -> tuple[Array, Array]:
        """One epoch's batches: ``(Σ size·loss, Σ size·loss + 0·Σp)``, 0-d arrays."""
        plan = self.plan
        source, opt, params = plan.source, plan.opt, state.params
        m, batch_size, step = plan.m, plan.batch_size, state.steps
        total: Any = None
        for first in range(0, m, batch_size):
            last = min(first + batch_size, m)
            loss, grads = source.loss_and_grads(params, order, first, last,
                                                step + first // batch_size)
            if first == 0 and self.fresh:
                params[:] = opt.update_copy(params, grads)
            else:
                opt.update(params, grads)
            weighted = loss * (last - first)
            total = weighted if total is None else total + weighted
        # (NumPy may warn "invalid value" here when a parameter is infinite: it has
        # already warned of the overflow that made it so.)
        if self.ones is None:  # (a compiled epoch checks its parameters itself)
            self.ones = layer_ones(params, plan.xp)
        return total, total + 0 * parameter_sum(params, self.ones)

    def rewind(self, state: TrainState, k: int, attempted: int | None) -> bool:
        if k >= 1:
            return True
        return self.start is not None and self.start.restore(state, self.plan.opt, back=-k)

    def replan(self, recorded: int) -> bool:
        return False


def _validation(source: BatchSource, params: list[Array]) -> tuple[float, float]:
    """``(score, loss)`` on the validation rows, read back together: one host sync."""
    validate = getattr(source, "validate", None)
    if validate is None:  # a source with the score only
        return float(source.score(params)), math.nan
    score, loss = to_numpy(validate(params))
    return float(score), float(loss)


def _record(plan: Plan, state: TrainState, epoch_loss: float) -> None:
    """Record one complete epoch: its loss, the counters, the step count, the
    validation score and the improvement rules, then the schedule's epoch end."""
    history = plan.history
    score = math.nan
    if plan.stopping.early_stopping:
        score, validation_loss = _validation(plan.source, state.params)
        history.validation_loss.append(validation_loss)
    history.loss.append(epoch_loss)
    history.n_iter += 1
    history.samples_seen += plan.m
    state.steps += plan.steps_per_epoch  # the dropout stream's step counter
    if plan.verbose:
        print(f"Iteration {len(history.loss)}, loss = {epoch_loss:.8f}")
    plan.stopping.improve(history, epoch_loss, score, state.params, plan.xp)
    plan.opt.iteration_ends(history.samples_seen)


def _rewind(runner: Any, state: TrainState, recorded: int, attempted: int,
            back: int) -> bool:
    return bool(runner.rewind(state, recorded - back, attempted))


def run(plan: Plan, state: TrainState) -> None:
    """Train ``state`` for ``plan.epochs`` epochs (fewer when a stopping rule ends it).

    Raises :class:`~xpnet.training.state.DivergenceError` after the guard's rollback; a
    Ctrl-C ends the loop with ``history.interrupted`` (see :mod:`xpnet.training.guard`).
    With early stopping the best parameters are put back at every end.
    """
    history, opt, runner, guard = plan.history, plan.opt, plan.runner, plan.guard
    marks: list[tuple[Any, ...]] = []  # the latest two epochs' marks, for unrecord
    done = ran = recorded = 0  # epochs of this call; of the running call; recorded of it

    def forget() -> None:
        unrecord(marks.pop(), history, state, opt)

    try:
        while done < plan.epochs:
            ran, recorded = 0, 0
            results = runner.run(state, min(runner.span, plan.epochs - done))
            ran = len(results)
            error, stop = None, False
            for epoch_loss, bad in results:
                if guard.diverged(epoch_loss, bad):
                    error = guard.error(done + recorded + 1, epoch_loss, bad)
                    break
                marks = [*marks[-1:], epoch_mark(history, state, opt)]
                _record(plan, state, epoch_loss)
                recorded += 1
                requested = False
                if plan.callback is not None:  # a Ctrl-C in here keeps the epoch
                    arguments: tuple[Any, ...] = (done + recorded - 1, epoch_loss)
                    if plan.callback_params:
                        arguments += (state.params,)
                    requested = plan.callback(*arguments) is True  # True: stop here
                stop = plan.stopping.stop(history, opt) or requested
                if stop or runner.replan(recorded):
                    break
            attempted = recorded + (error is not None)
            runner.rewind(state, recorded, attempted)
            if error is None and recorded and guard.outputs is not None and (
                stop or done + recorded == plan.epochs
            ):
                # the epoch losses were the weights' before each update: the finished
                # model's outputs are checked once (finite weights may overflow)
                final = guard.outputs(state.params)
                if not math.isfinite(final):
                    forget()
                    recorded -= 1
                    error = guard.error(done + recorded + 1, final, [], outputs=True,
                                        finished=True)
            if error is not None:
                raise guard.roll_back(
                    state, history, error,
                    functools.partial(_rewind, runner, state, recorded, attempted), forget,
                )
            done += recorded
            if stop:
                break
    except KeyboardInterrupt as interrupt:
        # As scikit-learn's MLP: Ctrl-C ends training, not the program. Only
        # KeyboardInterrupt: any other BaseException propagates untouched. (A callback
        # may raise one with a reason: the warning says it.)
        cut = recorded < ran or ran == 0
        if cut:
            runner.rewind(state, recorded, None)
        done += recorded
        warn_interrupted(history, done + cut, plan.epochs, done, cut,
                         plan.stopping.early_stopping, runner.note, plan.stacklevel + 1,
                         reason=str(interrupt))
    if plan.stopping.early_stopping and history.best_params is not None:
        state.params = [plan.xp.asarray(p, copy=True) for p in history.best_params]
