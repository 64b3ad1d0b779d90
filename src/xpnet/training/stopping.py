"""The stopping rules, scikit-learn's (``MLPClassifier``/``MLPRegressor``, ``sgd``/``adam``).

- without early stopping, an epoch *does not improve* when its training loss is above
  ``best_loss - tol``; with early stopping, when its validation score is below
  ``best_score + tol`` (a NaN score resets the count and is never the best one);
- after more than ``n_iter_no_change`` such epochs in a row the optimiser is asked
  (:meth:`xpnet.optim.Optimizer.trigger_stopping`): it stops training, or, for the
  ``adaptive`` schedule, divides the learning rate by 5 and training goes on;
- with early stopping the parameters of the best epoch are kept (``history.best_params``)
  and restored at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .state import History

__all__ = ["Stopping"]


@dataclass
class Stopping:
    """The rules with their settings; ``n_iter_no_change`` None: never stop on the count."""

    tol: float
    n_iter_no_change: int | None
    early_stopping: bool
    verbose: bool

    def improve(self, history: History, epoch_loss: float, score: float,
                params: list[Any], xp: Any) -> None:
        """Record the epoch's loss or validation score against the best so far."""
        tol = self.tol
        if self.early_stopping:
            history.validation_scores.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            improved = not score < history.best_validation_score + tol
            if score > history.best_validation_score:
                history.best_validation_score = score
                history.best_params = [xp.asarray(p, copy=True) for p in params]
        else:
            improved = not epoch_loss > history.best_loss - tol
            history.best_loss = min(history.best_loss, epoch_loss)
        history.no_improvement_count = 0 if improved else history.no_improvement_count + 1

    def stop(self, history: History, opt: Any) -> bool:
        """After the epoch is recorded: whether training stops (``history.converged``)."""
        n_iter_no_change = self.n_iter_no_change
        if n_iter_no_change is None or history.no_improvement_count <= n_iter_no_change:
            return False
        what = "Validation score" if self.early_stopping else "Training loss"
        message = (f"{what} did not improve more than tol={self.tol:f} for "
                   f"{n_iter_no_change} consecutive epochs.")
        if opt.trigger_stopping():
            history.converged = True
            if self.verbose:
                print(f"{message} Stopping.")
            return True
        history.no_improvement_count = 0
        if self.verbose:
            print(f"{message} Setting learning rate to {opt.learning_rate:f}")
        return False
