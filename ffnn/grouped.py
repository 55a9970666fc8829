"""Many networks in one pass: ``train_many`` trains a group of configurations together.

Networks that share the minibatch order (``shuffle_seed``), ``batch_size``, ``dtype``, backend,
``threads``, ``input_path`` and ``output`` are trained by one engine call per epoch
(``ffnn.training.train_group``, the loop ``ffnn.train`` also runs, with a group of one): each
minibatch is gathered once for all of them. Everything else stays per network: initial weights
(``seed``), activation, hidden sizes and depth, optimizer and its hyperparameters, learning
rate and its schedule (``lr_schedule``, ``power_t``: the engine reads each network's rate
before every epoch), ``l2``, early stopping and divergence. Each network stops on its own and is
retired while the others go on. A network's arithmetic does not depend on its group
(``ffnn.kernels.engine``), so every result equals ``ffnn.train`` of that configuration alone,
bitwise: grouping is a pure speed-up.
"""

import statistics
from collections.abc import Callable, Sequence

from .config import TrainConfig
from .data import Splits
from .training import EpochRecord, TrainResult, train, train_group
from .validation import check_splits

# Fields every configuration of one group must share (the shuffle seed is compared through
# ``effective_shuffle_seed``).
GROUP_FIELDS = ("shuffle_seed", "batch_size", "dtype", "threads", "backend", "input_path",
                "output")

# Fields that do not change the time an epoch takes: configurations differing only in these share
# one calibration.
_UNTIMED_FIELDS = ("seed", "shuffle_seed", "max_epochs", "early_stopping", "patience",
                   "min_delta", "restore_best", "lr_schedule", "power_t")

CALIBRATION_EPOCHS = 3
_calibrations: dict[tuple, float] = {}


def check_group(configs: Sequence[TrainConfig]) -> None:
    """Raise ``ValueError`` naming the field when ``configs`` cannot be trained as one group."""
    for i, config in enumerate(configs):
        if not isinstance(config, TrainConfig):
            raise ValueError(f"configs[{i}]: expected a TrainConfig, got {type(config).__name__}")
    first = configs[0]
    for i, config in enumerate(configs[1:], start=1):
        for name in GROUP_FIELDS:
            a, b = ((first.effective_shuffle_seed, config.effective_shuffle_seed)
                    if name == "shuffle_seed" else (getattr(first, name), getattr(config, name)))
            if a != b:
                raise ValueError(f"{name}: every config of a group must share it; configs[0] has "
                                 f"{a!r}, configs[{i}] has {b!r}")


def calibration_key(config: TrainConfig, splits: Splits) -> tuple:
    """What a calibration depends on: the configuration minus seeds and stopping rules, and the
    data's shape."""
    values = config.to_dict()
    for name in _UNTIMED_FIELDS:
        values.pop(name, None)  # some are left out of to_dict at their defaults
    sizes = (len(splits.y_train), len(splits.y_val), splits.X_train.shape[1], splits.n_classes)
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)  # hidden_sizes: a list
                        for k, v in values.items())), sizes


def calibrated_epoch_seconds(config: TrainConfig, splits: Splits) -> float:
    """Median seconds per epoch of ``config`` trained alone with ``ffnn.train``.

    Measured once per ``calibration_key`` and process (``CALIBRATION_EPOCHS`` epochs, early
    stopping off, the validation pass included as in a real run)."""
    key = calibration_key(config, splits)
    if key not in _calibrations:
        probe = config.replace(max_epochs=CALIBRATION_EPOCHS, early_stopping=False)
        history = train(probe, splits).history
        _calibrations[key] = statistics.median(r.seconds for r in history)
    return _calibrations[key]


def clear_calibrations() -> None:
    """Forget every cached calibration."""
    _calibrations.clear()


def train_many(configs: Sequence[TrainConfig], splits: Splits, *,
               callback: Callable[[int, EpochRecord], None] | None = None,
               calibrate: bool = False) -> list[TrainResult]:
    """Train every configuration in ``configs`` on ``splits``, together; one result each, in order.

    The configurations must share ``shuffle_seed`` (effective), ``batch_size``, ``dtype``,
    ``backend``, ``threads``, ``input_path`` and ``output`` (the number of output units;
    ``ValueError`` naming the field otherwise); anything else may
    differ, hidden sizes and depths included. Each result equals ``ffnn.train(config, splits)``
    bitwise (weights, losses, epochs), whatever the rest of the group. ``callback(i, record)``
    is called after every epoch of network ``i``. With ``threads >= 2`` the networks are split
    between the threads for whole epochs.

    Train time: by default (``calibrate=False``) each epoch's measured group wall time is shared
    equally among the networks that trained in it: ``train_time_source = "group-share"``. With
    ``calibrate=True`` each network's ``train_time`` is ``epochs x`` the median epoch time of its
    configuration trained alone (``calibrated_epoch_seconds``: extra solo epochs first),
    ``train_time_source`` is ``"calibrated"`` and every ``EpochRecord.seconds`` is that time.
    Either way ``result.extra`` holds ``group_wall_time`` (seconds of the whole group's epoch
    loop) and ``group_size``, plus ``calibration_epoch_seconds`` when calibrated.
    """
    configs = list(configs)
    if not configs:
        return []
    check_group(configs)
    check_splits(splits, configs[0].dtype)
    calibration = ([calibrated_epoch_seconds(config, splits) for config in configs]
                   if calibrate else None)
    results, wall_time = train_group(configs, splits, callback)
    for i, result in enumerate(results):
        result.train_time_source = "group-share"
        result.extra.update(group_wall_time=wall_time, group_size=len(configs))
        if calibrate:
            seconds = calibration[i]
            result.history = [EpochRecord(r.epoch, r.train_loss, r.val_loss, r.val_accuracy,
                                          seconds) for r in result.history]
            result.train_time = seconds * result.epochs
            result.train_time_source = "calibrated"
            result.extra["calibration_epoch_seconds"] = seconds
    return results
