"""The divergence guard and the Ctrl-C rule, for every runner of the loop.

An epoch *diverges* when its loss, or a parameter after it, is not finite (the test
travels with the epoch's one loss read-back: ``0·Σp`` is added to the loss sum). With
``on_divergence="raise"`` the loop rolls the state back to the last finite one (the
start of the diverged epoch through the runner, or the best weights with early
stopping) and raises :class:`~xpnet.training.state.DivergenceError`. Finite weights
whose products overflow show only in the outputs, so the start rolled back to is
checked once (its loss on the training rows; with array sources, without early
stopping), and a non-finite start moves the rollback one epoch further back; the
finished model is checked the same way after the last epoch.

Ctrl-C (``KeyboardInterrupt``) ends training, not the program: an epoch cut short is
rolled back, one interrupted after it was recorded (in the callback) is kept.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from array_api_compat import is_jax_namespace

from .state import DivergenceError, History, TrainState

__all__ = ["EpochStart", "Guard", "epoch_mark", "unrecord", "warn_interrupted"]

Array = Any


def epoch_mark(history: History, state: TrainState, opt: Any) -> tuple[Any, ...]:
    """What recording one epoch changes (the history's counters and best values, the
    step count, the learning rate), taken before it is recorded, for :func:`unrecord`."""
    return (len(history.loss), history.n_iter, history.samples_seen, history.best_loss,
            history.no_improvement_count, len(history.validation_scores),
            history.best_validation_score, history.best_params, state.steps,
            opt.learning_rate, len(history.validation_loss))


def unrecord(mark: tuple[Any, ...], history: History, state: TrainState, opt: Any) -> None:
    """Forget the epochs recorded since :func:`epoch_mark` returned ``mark``."""
    (losses, history.n_iter, history.samples_seen, history.best_loss,
     history.no_improvement_count, scores, history.best_validation_score,
     history.best_params, state.steps, opt.learning_rate, validation_losses) = mark
    del history.loss[losses:]
    del history.validation_scores[scores:]
    del history.validation_loss[validation_losses:]
    history.converged = False


def _buffers(xp: Any, params: list[Array]) -> list[Array] | None:
    """Copies of ``params`` to write each epoch's start into; None for immutable arrays."""
    try:
        buffers = [xp.empty_like(p) for p in params]
        for buffer, p in zip(buffers, params):
            buffer[...] = p
    except (TypeError, ValueError, NotImplementedError):
        return None
    return buffers


class EpochStart:
    """The parameters and optimiser snapshot at the start of the current epoch and of
    the one before, for the one-epoch runners' rollback.

    On mutable backends (NumPy, CuPy, torch, array-api-strict) the optimisers update the
    parameters in place, so the values are copied each epoch into one of two sets of
    buffers allocated once per fit, in turn (no allocation per epoch, no host sync). On
    an immutable backend (JAX) updates rebind the list entries, so keeping references is
    a snapshot already.
    """

    def __init__(self, xp: Any, params: list[Array]) -> None:
        self.xp = xp
        self.current: list[Array] = list(params)
        self.spare: list[Array] | None = None
        # JAX's arrays are known immutable without trying (a try runs device programs)
        self.buffers = None if is_jax_namespace(xp) else _buffers(xp, params)
        self.opt_state: dict[str, Any] = {}
        self.before: tuple[list[Array], dict[str, Any]] | None = None
        self.taken = False

    def take(self, params: list[Array], opt: Any) -> bool:
        """Record ``params`` and ``opt``'s state as the epoch's start; the previous
        start becomes the epoch before's. True when nothing was copied because the
        caller takes the epoch's first step out of place (a stateless optimiser:
        :meth:`~xpnet.optim.Optimizer.update_copy`), so ``params`` stay as they are."""
        if opt.stateless:  # its learning rate comes back with the history's marks
            self.before = (self.current, {}) if self.taken else None
            self.current, self.opt_state, self.taken = list(params), {}, True
            return True
        spare_state: dict[str, Any] = {}
        if self.taken:
            if self.before is not None:
                spare_state = self.before[1]
            self.before = (self.current, self.opt_state)
            if self.buffers is not None:  # write into the other set
                self.buffers, self.spare = (
                    self.spare or [self.xp.empty_like(p) for p in params], self.buffers
                )
        if self.buffers is None:
            self.current = list(params)
        else:
            for buffer, p in zip(self.buffers, params):
                buffer[...] = p
            self.current = list(self.buffers)
        self.opt_state = opt.snapshot(reuse=spare_state)
        self.taken = True
        return False

    def restore(self, state: TrainState, opt: Any, back: int) -> bool:
        """The state at the start of this epoch (``back=0``) or of the one before
        (``back=1``; False when this fit has none). The buffers are handed over: the
        loop ends after a rollback."""
        saved = (self.current, self.opt_state) if back == 0 else self.before
        if saved is None:
            return False
        state.params = list(saved[0])
        opt.restore(saved[1])
        return True


class Guard:
    """The divergence test, rollback and messages of one fit. ``outputs``: the training
    loss (a float) of a parameter list, to check a rolled-back start and the finished
    model; None when not checked (early stopping, sources other than arrays)."""

    def __init__(self, xp: Any, on_divergence: str, early_stopping: bool, lr: float,
                 outputs: Callable[[list[Array]], float] | None) -> None:
        self.xp = xp
        self.raising = on_divergence == "raise"
        self.early_stopping = early_stopping
        self.lr = lr
        self.outputs = outputs if self.raising and not early_stopping else None

    def diverged(self, loss: float, bad: list[str]) -> bool:
        return self.raising and (bool(bad) or not math.isfinite(loss))

    def error(self, epoch: int, loss: float, bad: list[str], outputs: bool = False,
              finished: bool = False) -> DivergenceError:
        """The error for epoch ``epoch``; ``outputs``: its parameters were finite but the
        network they make has a non-finite ``loss`` on the training rows; ``finished``:
        found after the last epoch."""
        if outputs:
            reason = (f"the network it trained has a loss of {loss} on the training rows "
                      "(its weights are finite but too large: the outputs overflow)")
        elif math.isfinite(loss):
            reason = f"{', '.join(bad)} became non-finite (loss {loss:.6g})"
        else:
            reason = f"the loss is {loss}" + (
                f" and {', '.join(bad)} became non-finite" if bad else "")
        where = ("the best weights so far (early stopping)" if self.early_stopping
                 else f"the weights from the start of epoch {epoch}")
        return DivergenceError(
            f"training diverged at epoch {epoch}: {reason}; try a smaller lr (got "
            f"{self.lr:g}). The network was rolled back to {where}.",
            epoch=epoch, loss=loss, parameters=tuple(bad), reason=reason, lr=self.lr,
            finished=finished,
        )

    def roll_back(self, state: TrainState, history: History, error: DivergenceError,
                  rewind: Callable[[int], bool], forget: Callable[[], None]) -> DivergenceError:
        """Back to the last finite state: the best weights with early stopping, else the
        start of the diverged epoch (``rewind(0)``), or of the one before
        (``rewind(1)``, after ``forget()`` of its record) when that start's outputs are
        not finite. Returns ``error``, or the error for the epoch before."""
        rewind(0)
        if self.early_stopping and history.best_params is not None:
            state.params = [self.xp.asarray(p, copy=True) for p in history.best_params]
            return error
        if self.outputs is None or error.epoch < 2:
            return error
        loss = self.outputs(state.params)
        if math.isfinite(loss) or not rewind(1):
            return error
        forget()
        return self.error(error.epoch - 1, loss, [], outputs=True)


def warn_interrupted(history: History, running: int, epochs: int, done: int, cut: bool,
                     early_stopping: bool, note: str, stacklevel: int, reason: str = "") -> None:
    """The ``UserWarning`` of a Ctrl-C at epoch ``running`` (1-based) with ``done``
    epochs of this call complete; ``cut``: an epoch was cut short and rolled back;
    ``reason``: what raised the interrupt when it was not the user (a callback)."""
    history.interrupted = True
    if early_stopping:
        kept = "the best weights so far are restored (early stopping)"
    elif done:
        kept = f"the network keeps the weights after epoch {done}"
    else:
        kept = "the network keeps the weights it had before this fit"
    what = note or (", which was cut short and rolled back" if cut else "")
    why = f" ({reason})" if reason else ""
    warnings.warn(f"training interrupted at epoch {running} of {epochs}{what}{why}; {kept}",
                  UserWarning, stacklevel=stacklevel + 1)
