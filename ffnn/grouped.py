"""Many networks in one pass: ``train_many`` trains a group of configurations together.

Networks that share the minibatch order (``shuffle_seed``), ``batch_size``, ``dtype`` and data
are trained by one compiled call per epoch (``ffnn.kernels.grouped``): each minibatch is gathered
once and the first layers of all of them form one wide product. Everything else stays per
network: initial weights (``seed``), activation, hidden size, optimizer and its
hyperparameters, learning rate, ``l2``, early stopping and divergence. Each network stops on its
own; a stopped one is dropped from the group (its best weights kept) while the others go on.
Every result equals ``ffnn.train`` of that configuration alone, up to rounding.
"""

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .config import TrainConfig
from .data import Splits
from .early_stopping import EarlyStopping
from .kernels import codes
from .model import Network
from .threads import limit_threads
from .training import (
    EpochRecord,
    PreparedData,
    TrainResult,
    _result,
    check_trainable,
    end_of_epoch,
    epoch_order,
    hyper_vector,
    initial_parameters,
    train,
)
from .validation import check_splits

# Fields every configuration of one group must share (the shuffle seed is compared through
# ``effective_shuffle_seed``).
GROUP_FIELDS = ("shuffle_seed", "batch_size", "dtype", "threads")

# Fields that do not change the time an epoch takes: configurations differing only in these share
# one calibration.
_UNTIMED_FIELDS = ("seed", "shuffle_seed", "max_epochs", "early_stopping", "patience",
                   "min_delta", "restore_best")

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
        values.pop(name)
    sizes = (len(splits.y_train), len(splits.y_val), splits.X_train.shape[1], splits.n_classes)
    return tuple(sorted(values.items())), sizes


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


@dataclass
class _Member:
    """One network of the group and its bookkeeping."""

    index: int
    config: TrainConfig
    theta: np.ndarray
    m: np.ndarray
    v: np.ndarray
    stopper: EarlyStopping
    step: int = 0
    best_theta: np.ndarray | None = None
    history: list[EpochRecord] = field(default_factory=list)
    diverged: bool = False
    stopped_early: bool = False
    done: bool = False


def _kernels():
    """``ffnn.kernels.grouped``, imported on first use so ``import ffnn`` does not load numba."""
    from .kernels import grouped

    return grouped


class _Group:
    """The packed arrays of the networks still training."""

    def __init__(self, members: list[_Member], n_features: int, n_classes: int, n_lanes: int):
        self.members = members
        self.layout = _kernels().GroupLayout([m.config.hidden_size for m in members], n_features,
                                          n_classes, n_lanes)
        dtype = members[0].config.dtype
        self.W1, self.W2 = self.layout.pack([m.theta for m in members], dtype)
        self.M1, self.M2 = self.layout.pack([m.m for m in members], dtype)
        self.V1, self.V2 = self.layout.pack([m.v for m in members], dtype)
        self.activation = np.array([codes.activation_code(m.config.activation) for m in members],
                                   dtype=np.int64)
        self.optimizer = np.array([codes.optimizer_code(m.config.optimizer) for m in members],
                                  dtype=np.int64)
        self.hyper = np.array([hyper_vector(m.config) for m in members])
        self.steps = np.array([m.step for m in members], dtype=np.int64)

    def theta(self, i: int) -> np.ndarray:
        return self.layout.unpack(self.W1, self.W2, i)

    def save_states(self) -> None:
        """Copy each member's optimizer state and step counter out of the packed arrays."""
        for i, member in enumerate(self.members):
            member.m = self.layout.unpack(self.M1, self.M2, i)
            member.v = self.layout.unpack(self.V1, self.V2, i)
            member.step = int(self.steps[i])


def train_many(configs: Sequence[TrainConfig], splits: Splits, *,
               callback: Callable[[int, EpochRecord], None] | None = None,
               calibrate: bool = True) -> list[TrainResult]:
    """Train every configuration in ``configs`` on ``splits``, together; one result each, in order.

    The configurations must share ``shuffle_seed`` (effective), ``batch_size``, ``dtype`` and
    ``threads`` (``ValueError`` naming the field otherwise); anything else may differ, hidden
    sizes included. Each result equals ``ffnn.train(config, splits)`` up to rounding (float64:
    within 1e-9 of the largest weight, same epochs; float32: within 1e-3 after one epoch).
    ``callback(i, record)`` is called after every epoch of network ``i``.

    Train time: a group's wall time cannot be split honestly among its networks. With
    ``calibrate=True`` each network's ``train_time`` is ``epochs x`` the median epoch time of its
    configuration trained alone (``calibrated_epoch_seconds``), ``train_time_source`` is
    ``"calibrated"``, and every ``EpochRecord.seconds`` is that per-epoch time. With
    ``calibrate=False`` each epoch's group wall time is shared equally among the networks still
    training (``train_time_source = "group-share"``). Either way ``result.extra`` holds
    ``group_wall_time`` (seconds of the whole group's epoch loop) and ``group_size``, plus
    ``calibration_epoch_seconds`` when calibrated.
    """
    configs = list(configs)
    if not configs:
        return []
    check_group(configs)
    check_splits(splits, configs[0].dtype)
    kernels = _kernels()
    first = configs[0]
    data = PreparedData.from_splits(splits, first.dtype)
    for config in configs:
        check_trainable(config, data)
    kernels.warm_up(first.dtype)
    calibration = ([calibrated_epoch_seconds(config, splits) for config in configs]
                   if calibrate else None)

    F, C = data.n_features, data.n_classes
    members = []
    for i, config in enumerate(configs):
        theta = initial_parameters(config, F, C)
        members.append(_Member(i, config, theta, np.zeros_like(theta), np.zeros_like(theta),
                               EarlyStopping(config.patience, config.min_delta)))
    train_csr = kernels.to_csr(data.X_train)
    has_val = len(data.y_val) > 0
    val_csr = kernels.to_csr(data.X_val) if has_val else None
    n_train = len(data.y_train)

    with limit_threads(first.threads) as n_threads:
        group = _Group(members, F, C, n_threads)
        wall_start = time.perf_counter()
        epoch = 0
        while group is not None:
            epoch += 1
            active = group.members
            K = len(active)
            order = epoch_order(first.effective_shuffle_seed, epoch, n_train)
            losses, val_loss, val_acc = np.zeros(K), np.full(K, math.nan), np.full(K, math.nan)
            start = time.perf_counter()
            kernels.train_epoch(*train_csr, data.y_train, order, first.batch_size, group.W1,
                                group.M1, group.V1, group.W2, group.M2, group.V2,
                                *group.layout.lanes(), group.activation, group.optimizer,
                                group.hyper, group.steps, losses)
            if has_val:
                kernels.evaluate(*val_csr, data.y_val, first.batch_size, group.W1, group.W2,
                                 *group.layout.lanes(), group.activation, val_loss, val_acc)
            share = (time.perf_counter() - start) / K
            for i, member in enumerate(active):
                seconds = calibration[member.index] if calibrate else share
                record = EpochRecord(epoch, float(losses[i]), float(val_loss[i]),
                                     float(val_acc[i]), seconds)
                member.history.append(record)
                member.theta = group.theta(i)
                member.diverged, keep_best, member.stopped_early = end_of_epoch(
                    member.config, member.stopper, record, member.theta, has_val)
                if keep_best:
                    member.best_theta = member.theta.copy()
                if callback is not None:
                    callback(member.index, record)
                member.done = (member.diverged or member.stopped_early
                               or epoch >= member.config.max_epochs)
            if any(member.done for member in active):
                group.save_states()
                remaining = [member for member in active if not member.done]
                group = _Group(remaining, F, C, n_threads) if remaining else None
        wall_time = time.perf_counter() - wall_start

    results = []
    for member in members:
        config = member.config
        theta = member.best_theta if member.best_theta is not None else member.theta
        model = Network(theta, F, config.hidden_size, C, config.activation, config.backend,
                        config)
        result = _result(config, model, data, member.history, member.stopper, member.diverged,
                         member.stopped_early)
        result.train_time_source = "calibrated" if calibrate else "group-share"
        result.extra.update(group_wall_time=wall_time, group_size=len(configs))
        if calibrate:
            result.extra["calibration_epoch_seconds"] = calibration[member.index]
        results.append(result)
    return results
