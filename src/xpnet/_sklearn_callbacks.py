"""scikit-learn's callbacks (``sklearn.callback``, scikit-learn >= 1.9) for the estimators.

The estimators inherit :class:`CallbackSupportMixin` (``set_callbacks``) and wrap
``fit``/``partial_fit`` in :func:`with_callbacks` (the callbacks' ``teardown``, whatever
happens); where scikit-learn has no ``sklearn.callback`` both are no-ops.

:class:`EpochTasks` maps xpnet's epochs (or L-BFGS iterations) onto scikit-learn's task
tree, as ``LogisticRegression`` maps its L-BFGS iterations: the fit is the root task with
one sub-task per epoch, begun before the epoch and ended after it, the ``fitted_estimator``
of each end built (only if a callback asks for it) from that epoch's weights. A hook that
returns True stops training after the epoch; a hook that raises stops it the way Ctrl-C
does (the weights of the last complete epoch, a ``UserWarning`` naming the error).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["HAVE_CALLBACKS", "CallbackSupportMixin", "EpochTasks", "with_callbacks"]

try:
    from sklearn.callback import CallbackSupportMixin, with_callbacks

    HAVE_CALLBACKS = True
except ImportError:  # scikit-learn < 1.9: no callback API
    HAVE_CALLBACKS = False

    class CallbackSupportMixin:  # type: ignore[no-redef]
        """scikit-learn < 1.9 has no callbacks: nothing to support."""

    def with_callbacks(method: Any) -> Any:
        return method


class EpochTasks:
    """The per-epoch sub-tasks of one fit's root callback context ``root``.

    ``attributes(params)``: the reconstruction attributes (a dict) of a fitted copy of
    the estimator at the flat parameters ``params``; ``data``: the ``X``, ``y`` and
    ``metadata`` handed to every hook; ``epochs``: the most sub-tasks that will run."""

    def __init__(self, estimator: Any, root: Any, data: dict[str, Any], epochs: int,
                 attributes: Callable[[Any], dict[str, Any]], task_name: str = "epoch") -> None:
        self.estimator, self.root, self.data = estimator, root, data
        self.epochs, self.attributes, self.task_name = epochs, attributes, task_name
        self.task: Any = None
        self.begun = 0

    def begin(self, params: Any) -> None:
        """Begin the next sub-task, at the weights ``params`` it starts from."""
        if self.begun >= self.epochs:
            return
        self.begun += 1
        self.task = self.root.subcontext(task_name=self.task_name)
        self.task.call_on_fit_task_begin(
            estimator=self.estimator, **self.data,
            reconstruction_attributes=lambda: self.attributes(params))

    def end(self, epoch: int, loss: float, params: Any) -> bool:
        """The loop's ``callback(epoch, loss, params)``: end this epoch's task, begin the
        next; True when a hook asks to stop. A hook's error becomes a KeyboardInterrupt
        naming it, which the loop handles as a Ctrl-C after a complete epoch."""
        try:
            stop = bool(self.task.call_on_fit_task_end(
                estimator=self.estimator, **self.data,
                reconstruction_attributes=lambda: self.attributes(params)))
            self.task = None
            if not stop:
                self.begin(params)
            return stop
        except Exception as error:  # a hook's failure ends training, not the program
            self.task = None
            raise KeyboardInterrupt(
                f"a callback raised {type(error).__name__}: {error}") from error

    def close(self) -> None:
        """End a sub-task begun for an epoch that did not run (as an empty task)."""
        if self.task is not None:
            task, self.task = self.task, None
            task.call_on_fit_task_end(estimator=self.estimator)
