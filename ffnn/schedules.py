"""Learning-rate schedules, after scikit-learn's ``SGDOptimizer`` (one place for both the epoch
loop of ``ffnn.train`` and ``ffnn.MLPClassifier``).

* ``"constant"``: ``rate = initial`` throughout;
* ``"invscaling"``: after each epoch, ``rate = initial / (t + 1) ** power_t`` with ``t`` the
  number of training samples seen so far (the first epoch runs at ``initial``);
* ``"adaptive"``: ``rate = initial`` until the stopping rule's patience runs out; then, instead
  of stopping, ``rate /= 5`` and the patience count starts again, and training stops only once
  patience runs out at a rate already at most ``1e-6``.
"""

from dataclasses import dataclass

SCHEDULES = ("constant", "invscaling", "adaptive")
SMALLEST_ADAPTIVE_RATE = 1e-6


@dataclass
class LearningRate:
    """The current learning rate ``rate`` of one run under ``schedule``."""

    schedule: str
    initial: float
    power_t: float = 0.5
    rate: float = 0.0

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule: {self.schedule!r} is not one of "
                             f"{', '.join(SCHEDULES)}")
        self.rate = float(self.initial)

    def epoch_ended(self, samples_seen: int) -> None:
        """Called after every epoch with the number of samples trained on so far."""
        if self.schedule == "invscaling":
            self.rate = float(self.initial) / (samples_seen + 1) ** self.power_t

    def patience_ran_out(self) -> bool:
        """Called when the stopping rule's patience runs out; True when training should stop
        (always, except under ``"adaptive"`` while the rate can still be divided by 5)."""
        if self.schedule != "adaptive" or self.rate <= SMALLEST_ADAPTIVE_RATE:
            return True
        self.rate /= 5.0
        return False
