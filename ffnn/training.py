"""The epoch loop: shuffle, train an epoch in the backend, validate, stop early or on divergence."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .config import DIVERGENCE_LOSS, TrainConfig
from .data import Splits
from .early_stopping import EarlyStopping
from .kernels import codes, get_backend
from .kernels.layout import n_params, unpack
from .model import Network
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
    starts. ``train_time_source`` is ``"measured"`` for a network trained on its own.
    ``train_cpu_time`` is the CPU time of the same epochs (``train_cpu_clock``: ``"thread"``
    when single-threaded, else ``"process"``).
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
    # CPU seconds of the same epochs: the training thread's (``train_cpu_clock = "thread"``)
    # when it ran single-threaded, else the whole process's (``"process"``, helpers included).
    train_cpu_time: float = math.nan
    train_cpu_clock: str = ""


def initial_parameters(config: TrainConfig, n_features: int, n_classes: int) -> np.ndarray:
    """The flat initial parameter vector fixed by ``config.seed`` (init scheme: ``TrainConfig``)."""
    rng = np.random.default_rng(config.seed)
    H = config.hidden_size
    theta = np.zeros(n_params(n_features, H, n_classes), dtype=np.float64)
    W1, _, W2, _ = unpack(theta, n_features, H, n_classes)
    for W, (fan_in, fan_out) in ((W1, (n_features, H)), (W2, (H, n_classes))):
        if config.activation in ("sigmoid", "tanh"):
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
    """The splits as contiguous arrays of the training dtype, converted once."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @classmethod
    def from_splits(cls, splits: Splits, dtype: str) -> "PreparedData":
        def x(a):
            return np.ascontiguousarray(a, dtype=dtype)

        def y(a):
            return np.ascontiguousarray(a, dtype=np.int64)

        return cls(x(splits.X_train), y(splits.y_train), x(splits.X_val), y(splits.y_val),
                   x(splits.X_test), y(splits.y_test), splits.n_classes)

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def check_trainable(config: TrainConfig, data: PreparedData) -> None:
    """Raise ``ValueError`` for splits this config cannot train on."""
    if len(data.y_train) == 0:
        raise ValueError("splits: the training set is empty")
    if config.early_stopping and len(data.y_val) == 0:
        raise ValueError("early_stopping: needs a validation set, but the splits have val_size=0; "
                         "pass early_stopping=False or a positive val_size")


def end_of_epoch(config: TrainConfig, stopper: EarlyStopping, record: EpochRecord,
                 theta: np.ndarray, has_val: bool) -> tuple[bool, bool, bool]:
    """The bookkeeping after each epoch, shared by ``train`` and ``train_many``.

    Returns ``(diverged, keep_best, stopped_early)``: divergence per ``is_diverged`` (on the
    training and, if any, validation loss); otherwise ``stopper`` is updated with the validation
    loss when early stopping is on, ``keep_best`` says to copy ``theta`` as the best weights
    (an improving epoch with ``restore_best``), and ``stopped_early`` that patience ran out.
    """
    diverged = is_diverged(record.train_loss, theta) or (
        has_val and is_diverged(record.val_loss, theta))
    keep_best = False
    if not diverged and config.early_stopping:
        keep_best = stopper.update(record.epoch, record.val_loss) and config.restore_best
    stopped_early = config.early_stopping and not diverged and stopper.should_stop
    return diverged, keep_best, stopped_early


def train(config: TrainConfig, splits: Splits, *,
          callback: Callable[[EpochRecord], None] | None = None) -> TrainResult:
    """Train one network on ``splits.X_train`` and report it on validation and test data.

    Every epoch visits the training set in a fresh order (``epoch_order``), in minibatches of
    ``batch_size`` (the last one smaller), then measures validation loss and accuracy and calls
    ``callback(record)``. Early stopping (``config.early_stopping``) follows ``EarlyStopping``;
    with ``restore_best`` the best epoch's weights are returned, otherwise the last epoch's.
    A non-finite or huge loss, or non-finite weights, stop training with ``diverged=True``
    instead of raising.
    """
    check_splits(splits, config.dtype)
    data = PreparedData.from_splits(splits, config.dtype)
    check_trainable(config, data)
    backend = get_backend(config.backend)
    backend.warm_up(config.dtype)
    theta = initial_parameters(config, data.n_features, data.n_classes)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    dims = (config.hidden_size, data.n_classes)
    activation = codes.activation_code(config.activation)
    optimizer = codes.optimizer_code(config.optimizer)
    hyper = hyper_vector(config)
    stopper = EarlyStopping(config.patience, config.min_delta)
    best_theta = None
    history, step, diverged, stopped_early = [], 0, False, False
    has_val = len(data.y_val) > 0

    with limit_threads(config.threads) as n_threads:
        cpu_clock = time.thread_time if n_threads == 1 else time.process_time
        cpu_time = 0.0
        for epoch in range(1, config.max_epochs + 1):
            order = epoch_order(config.effective_shuffle_seed, epoch, len(data.y_train))
            start, cpu_start = time.perf_counter(), cpu_clock()
            train_loss, step = backend.train_epoch(
                data.X_train, data.y_train, order, config.batch_size, theta, m, v, step, *dims,
                activation, optimizer, hyper)
            val_loss, val_accuracy = (
                backend.evaluate(data.X_val, data.y_val, theta, *dims, activation)
                if has_val else (math.nan, math.nan))
            record = EpochRecord(epoch, train_loss, val_loss, val_accuracy,
                                 time.perf_counter() - start)
            cpu_time += cpu_clock() - cpu_start
            history.append(record)
            diverged, keep_best, stopped_early = end_of_epoch(config, stopper, record, theta,
                                                              has_val)
            if keep_best:
                best_theta = theta.copy()
            if callback is not None:
                callback(record)
            if diverged or stopped_early:
                break

        if best_theta is not None:
            theta = best_theta
        model = Network(theta, data.n_features, config.hidden_size, data.n_classes,
                        config.activation, config.backend, config)
        result = _result(config, model, data, history, stopper, diverged, stopped_early)
        result.train_cpu_time, result.train_cpu_clock = cpu_time, (
            "thread" if n_threads == 1 else "process")
        return result


def _result(config, model, data, history, stopper, diverged, stopped_early) -> TrainResult:
    def metrics(X, y):
        return model.evaluate(X, y) if len(y) else (math.nan, math.nan)

    epochs = len(history)
    return TrainResult(
        model=model,
        config=config,
        history=history,
        epochs=epochs,
        best_epoch=stopper.best_epoch if config.early_stopping else epochs,
        stopped_early=stopped_early,
        diverged=diverged,
        train_time=sum(r.seconds for r in history),
        **dict(zip(("train_loss", "train_accuracy"), metrics(data.X_train, data.y_train),
                     strict=True)),
        **dict(zip(("val_loss", "val_accuracy"), metrics(data.X_val, data.y_val),
                     strict=True)),
        **dict(zip(("test_loss", "test_accuracy"), metrics(data.X_test, data.y_test),
                     strict=True)),
    )
