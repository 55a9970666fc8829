"""The epoch loop, shared by ``train`` (a group of one) and ``train_many``: shuffle, set each
network's learning rate, one engine epoch for every network still training, validate, early
stopping and learning-rate schedules, divergence, retire the networks that are done."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .config import DIVERGENCE_LOSS, TrainConfig
from .data import Splits
from .early_stopping import EarlyStopping
from .inputs import labels, prepared
from .kernels import codes, get_backend
from .kernels.layout import n_params, unpack
from .model import Network
from .schedules import LearningRate
from .threads import limit_threads
from .validation import check_splits


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch measured. ``train_loss`` is the mean of that epoch's minibatch losses;
    ``seconds`` covers the training pass and the validation pass."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass
class TrainResult:
    """The outcome of ``train``.

    ``train_time`` is the wall time of the epoch loop (training and validation passes), excluding
    data loading, parameter initialisation and any JIT compilation, which happens before the loop
    starts. ``train_time_source`` is ``"measured"`` for a network trained on its own,
    ``"group-share"`` or ``"calibrated"`` for one trained by ``train_many``.
    ``train_cpu_time`` is the CPU time of the same epochs, shared in a group as ``train_time``
    is (``train_cpu_clock``: ``"thread"`` when single-threaded, else ``"process"``, which
    includes the helper threads).
    The final ``train_*``, ``val_*`` and ``test_*`` metrics are those of the returned ``model``.
    """

    model: Network
    config: TrainConfig
    history: list[EpochRecord]
    epochs: int
    best_epoch: int
    stopped_early: bool
    diverged: bool
    train_time: float
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    test_loss: float
    test_accuracy: float
    train_time_source: str = "measured"
    extra: dict = field(default_factory=dict)
    # CPU seconds of the same epochs (shared like ``train_time``): the training thread's
    # (``train_cpu_clock = "thread"``) when single-threaded, else the process's (``"process"``).
    train_cpu_time: float = math.nan
    train_cpu_clock: str = ""


def initial_parameters(config: TrainConfig, n_features: int, n_classes: int) -> np.ndarray:
    """The flat initial parameter vector fixed by ``config.seed`` (init scheme: ``TrainConfig``)
    of a network with ``n_classes`` output units."""
    rng = np.random.default_rng(config.seed)
    H = config.hidden_sizes
    theta = np.zeros(n_params(n_features, H, n_classes), dtype=np.float64)
    for W in unpack(theta, n_features, H, n_classes)[::2]:
        fan_in, fan_out = W.shape
        if config.activation in ("sigmoid", "tanh", "identity"):
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            W[...] = rng.uniform(-limit, limit, size=W.shape)
        else:
            W[...] = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=W.shape)
    return theta.astype(config.dtype)


def epoch_order(shuffle_seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which epoch ``epoch`` (1-based) visits ``n`` training samples."""
    return np.random.default_rng([shuffle_seed, epoch]).permutation(n).astype(np.int64)


def hyper_vector(config: TrainConfig) -> np.ndarray:
    """The optimizer hyperparameters as the float64 vector the kernels read (``codes.N_HYPER``)."""
    hyper = np.zeros(codes.N_HYPER)
    hyper[codes.LR] = config.learning_rate
    hyper[codes.MOMENTUM_COEF] = config.momentum
    hyper[codes.BETA1] = config.beta1
    hyper[codes.BETA2] = config.beta2
    hyper[codes.EPS] = config.eps
    hyper[codes.RMSPROP_ALPHA] = config.rmsprop_alpha
    hyper[codes.L2] = config.l2
    return hyper


def is_diverged(loss: float, theta: np.ndarray) -> bool:
    """A non-finite or huge loss, or a non-finite parameter (checked in NumPy, outside fastmath)."""
    return not (math.isfinite(loss) and loss <= DIVERGENCE_LOSS and np.isfinite(theta).all())


@dataclass
class PreparedData:
    """The splits as the backend takes them (``ffnn.inputs``: converted once per array, dtype
    and backend), labels as int64 vectors."""

    train: object
    y_train: np.ndarray
    val: object
    y_val: np.ndarray
    test: object
    y_test: np.ndarray
    n_features: int
    n_classes: int

    @classmethod
    def from_splits(cls, splits: Splits, dtype: str, backend,
                    input_path: str = "auto") -> "PreparedData":
        """Validation and test inputs are only evaluated, which runs over CSR rows either way."""
        def x(a):
            return prepared(a, dtype, backend, "sparse")

        return cls(prepared(splits.X_train, dtype, backend, input_path),
                   labels(splits.y_train), x(splits.X_val),
                   labels(splits.y_val), x(splits.X_test), labels(splits.y_test),
                   int(splits.X_train.shape[1]), splits.n_classes)


def check_trainable(config: TrainConfig, data: PreparedData) -> None:
    """Raise ``ValueError`` for splits this config cannot train on."""
    if len(data.y_train) == 0:
        raise ValueError("splits: the training set is empty")
    if config.output == "logistic" and data.n_classes != 2:
        raise ValueError(f"output: 'logistic' trains one logistic unit on binary data (2 "
                         f"classes), but the splits have n_classes={data.n_classes}; use "
                         "output='softmax'")
    if config.early_stopping and len(data.y_val) == 0:
        raise ValueError("early_stopping: needs a validation set, but the splits have val_size=0; "
                         "pass early_stopping=False or a positive val_size")


def stopping_signal(config: TrainConfig, record: EpochRecord) -> float | None:
    """The loss the stopping rule watches (``TrainConfig``): the validation loss with early
    stopping, else the training loss under the adaptive schedule, else none."""
    if config.early_stopping:
        return record.val_loss
    return record.train_loss if config.lr_schedule == "adaptive" else None


def end_of_epoch(config: TrainConfig, stopper: EarlyStopping, rate: LearningRate,
                 record: EpochRecord, theta: np.ndarray, has_val: bool
                 ) -> tuple[bool, bool, bool]:
    """The bookkeeping after each epoch of one network.

    Returns ``(diverged, keep_best, stopped_early)``: divergence per ``is_diverged`` (on the
    training and, if any, validation loss); otherwise ``stopper`` is updated with the
    ``stopping_signal`` if there is one, ``keep_best`` says to copy ``theta`` as the best
    weights (an improving epoch with early stopping and ``restore_best``), and when patience
    has run out ``rate.patience_ran_out()`` decides: ``stopped_early``, or the adaptive rate
    was divided and the patience count starts again.
    """
    diverged = is_diverged(record.train_loss, theta) or (
        has_val and is_diverged(record.val_loss, theta))
    keep_best = stopped_early = False
    signal = stopping_signal(config, record)
    if not diverged and signal is not None:
        improved = stopper.update(record.epoch, signal)
        keep_best = improved and config.early_stopping and config.restore_best
        if stopper.should_stop:
            stopped_early = rate.patience_ran_out()
            if not stopped_early:
                stopper.restart()
    return diverged, keep_best, stopped_early


def output_units(config: TrainConfig, n_classes: int) -> int:
    """The number of output units for ``n_classes`` classes: one per class for softmax, one
    logistic unit for binary data (its labels 0 and 1 are the engine's bit-mask labels)."""
    return 1 if config.output == "logistic" else n_classes


def networks(backend, configs, n_features: int, n_outputs: int, thetas, **state):
    """The backend's ``Networks`` for ``configs`` (all of one dtype, ``n_outputs`` output
    units each) from flat ``thetas``."""
    state.setdefault("outputs", [codes.output_code(c.output) for c in configs])
    return backend.Networks(
        n_features, n_outputs, [c.hidden_sizes for c in configs],
        [codes.activation_code(c.activation) for c in configs],
        [codes.optimizer_code(c.optimizer) for c in configs],
        [hyper_vector(c) for c in configs], thetas, configs[0].dtype, **state)


@dataclass
class _Member:
    """One network of a group and its bookkeeping."""

    config: TrainConfig
    stopper: EarlyStopping
    rate: LearningRate
    theta: np.ndarray | None = None
    best_theta: np.ndarray | None = None
    history: list[EpochRecord] = field(default_factory=list)
    diverged: bool = False
    stopped_early: bool = False
    cpu_time: float = 0.0


def train_group(configs: list[TrainConfig], splits: Splits,
                callback: Callable[[int, EpochRecord], None] | None = None
                ) -> tuple[list[TrainResult], float]:
    """The one epoch loop: every configuration of ``configs`` (which share the minibatch order,
    batch size, dtype, backend and threads) trained together on ``splits``; returns the results
    in order and the loop's wall time.

    Each epoch visits the training set in the order ``epoch_order``, in minibatches of
    ``batch_size``; the backend trains every network still active on them (``train_group``), each
    at its schedule's current rate (``hyper[k, codes.LR]``, set before every epoch), then
    measures their validation loss and accuracy. Per network: the schedule's ``epoch_ended``
    with the samples seen so far, ``callback(i, record)``, divergence (``diverged=True``, not
    an exception), early stopping and the adaptive schedule (``end_of_epoch``; with
    ``restore_best`` the best epoch's weights are returned), and ``max_epochs``; a network that
    is done is retired and the others go on. An epoch's ``seconds`` is its wall time shared
    among the networks that trained in it (for a group of one: its measured time).
    """
    first = configs[0]
    check_splits(splits, first.dtype)
    backend = get_backend(first.backend)
    data = PreparedData.from_splits(splits, first.dtype, backend, first.input_path)
    for config in configs:
        check_trainable(config, data)
    backend.warm_up(first.dtype, getattr(data.train, "path", None))
    F, C = data.n_features, output_units(first, data.n_classes)
    nets = networks(backend, configs, F, C, [initial_parameters(c, F, C) for c in configs])
    members = [_Member(c, EarlyStopping(c.patience, c.min_delta),
                       LearningRate(c.lr_schedule, c.learning_rate, c.power_t)) for c in configs]
    has_val = len(data.y_val) > 0
    active = list(range(len(configs)))
    epoch = 0
    with limit_threads(first.threads) as n_threads:
        cpu_clock = time.thread_time if n_threads == 1 else time.process_time
        wall_start = time.perf_counter()
        while active:
            epoch += 1
            order = epoch_order(first.effective_shuffle_seed, epoch, len(data.y_train))
            for k in active:
                nets.hyper[k, codes.LR] = members[k].rate.rate
            start, cpu_start = time.perf_counter(), cpu_clock()
            losses = backend.train_group(data.train, data.y_train, order, first.batch_size,
                                         nets, active, n_threads)
            val_loss, val_accuracy = (
                backend.evaluate_group(data.val, data.y_val, nets, active, n_threads)
                if has_val else (np.full(len(active), math.nan),) * 2)
            seconds = (time.perf_counter() - start) / len(active)
            cpu = (cpu_clock() - cpu_start) / len(active)
            still = []
            for t, k in enumerate(active):
                member = members[k]
                record = EpochRecord(epoch, float(losses[t]), float(val_loss[t]),
                                     float(val_accuracy[t]), seconds)
                member.history.append(record)
                member.cpu_time += cpu
                member.theta = nets.theta(k)
                member.rate.epoch_ended(epoch * len(data.y_train))
                member.diverged, keep_best, member.stopped_early = end_of_epoch(
                    member.config, member.stopper, member.rate, record, member.theta, has_val)
                if keep_best:
                    member.best_theta = member.theta.copy()
                if callback is not None:
                    callback(k, record)
                if not (member.diverged or member.stopped_early
                        or epoch >= member.config.max_epochs):
                    still.append(k)
            active = still
        wall_time = time.perf_counter() - wall_start
        finals = [m.best_theta if m.best_theta is not None else m.theta for m in members]
        results = _results(backend, configs, members, finals, data, C, n_threads)
        for result, member in zip(results, members, strict=True):
            result.train_cpu_time = member.cpu_time
            result.train_cpu_clock = "thread" if n_threads == 1 else "process"
        return results, wall_time


def _results(backend, configs, members, thetas, data, n_outputs, n_threads
             ) -> list[TrainResult]:
    """One ``TrainResult`` per member, its final metrics those of the returned weights."""
    final = networks(backend, configs, data.n_features, n_outputs, thetas)
    everyone = list(range(len(configs)))
    metrics = []
    for inputs, y in ((data.train, data.y_train), (data.val, data.y_val),
                      (data.test, data.y_test)):
        metrics.append(backend.evaluate_group(inputs, y, final, everyone, n_threads) if len(y)
                       else (np.full(len(configs), math.nan),) * 2)
    results = []
    for k, (config, member, theta) in enumerate(zip(configs, members, thetas, strict=True)):
        model = Network(theta, data.n_features, config.hidden_sizes, n_outputs,
                        config.activation, config.backend, config, config.output)
        epochs = len(member.history)
        results.append(TrainResult(
            model=model, config=config, history=member.history, epochs=epochs,
            best_epoch=member.stopper.best_epoch if config.early_stopping else epochs,
            stopped_early=member.stopped_early, diverged=member.diverged,
            train_time=sum(r.seconds for r in member.history),
            train_loss=float(metrics[0][0][k]), train_accuracy=float(metrics[0][1][k]),
            val_loss=float(metrics[1][0][k]), val_accuracy=float(metrics[1][1][k]),
            test_loss=float(metrics[2][0][k]), test_accuracy=float(metrics[2][1][k]),
            extra={"input_path": getattr(data.train, "path", "dense")}))
    return results


def train(config: TrainConfig, splits: Splits, *,
          callback: Callable[[EpochRecord], None] | None = None) -> TrainResult:
    """Train one network on ``splits.X_train`` and report it on validation and test data.

    ``train`` is ``train_group`` with a group of one (see there for the epoch loop, early
    stopping and divergence); ``callback(record)`` is called after every epoch. ``X`` may be a
    dense array or a ``scipy.sparse`` matrix (never densified).
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config: expected a TrainConfig, got {type(config).__name__}")
    (result,), _ = train_group([config], splits,
                               None if callback is None else lambda _, record: callback(record))
    return result
