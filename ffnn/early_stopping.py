"""Early stopping on a loss (the validation loss; the training loss for the adaptive learning-rate
schedule without early stopping)."""

import math
from dataclasses import dataclass


@dataclass
class EarlyStopping:
    """Tracks the best loss and says when to stop.

    An epoch *improves* when ``loss < best - min_delta``. ``patience`` is the number of
    consecutive epochs without improvement that are tolerated: training stops at the
    ``patience + 1``-th such epoch (so ``patience=0`` stops at the first epoch that does not
    improve). This is scikit-learn's ``n_iter_no_change`` rule.
    """

    patience: int
    min_delta: float = 0.0
    best_loss: float = math.inf
    best_epoch: int = 0
    epochs_without_improvement: int = 0

    def update(self, epoch: int, loss: float) -> bool:
        """Record the loss of ``epoch``; True when it improves on the best so far."""
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch = loss, epoch
            self.epochs_without_improvement = 0
            return True
        self.epochs_without_improvement += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once more than ``patience`` epochs in a row have not improved."""
        return self.epochs_without_improvement > self.patience

    def restart(self) -> None:
        """Start the count of epochs without improvement again (the best loss and epoch are
        kept): the adaptive schedule's response to running out of patience at a rate it can
        still divide."""
        self.epochs_without_improvement = 0
