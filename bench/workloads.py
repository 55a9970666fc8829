"""The benchmark workloads, the implementations that run them, and the one clock they share.

Every implementation runs a *fresh training run of E epochs* (``run(epochs) -> RunLog``) and
calls the same ``RunLog.epoch_end`` after each epoch (training pass in minibatches plus a
validation pass). The per-epoch time is the interval between successive epoch ends, so the first
epoch of every run (cold caches, and for ffnn the data preparation of ``train``) is never timed
and every timed interval covers the whole epoch loop of the implementation: shuffle, training
pass, validation pass, and whatever bookkeeping the loop does between epochs.

ffnn is timed through ``ffnn.train`` itself (its ``callback`` marks the epoch ends), so the
benchmark times exactly what a user's ``train`` call runs; ``train``'s own per-epoch clock
(``EpochRecord.seconds``) is recorded beside it. The ffnn rows come from the one backend registry,
``ffnn.kernels.BACKENDS``.
"""

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from ffnn.kernels import BACKENDS

import ffnn

N_TRAIN, N_VAL = 34_000, 6_000
ACTIVATION = "relu"  # the one hidden activation all implementations offer
LEARNING_RATE = {"adam": 1e-3, "nesterov": 0.05}
ACCURACY_FLOOR = 0.85  # validation accuracy every run must reach after its epochs
PYTORCH_THREADS = 2  # the reference: PyTorch eager, fused Adam, 2 threads
# Threads per ffnn backend row (a backend not named here runs at 2 threads).
BACKEND_THREADS = {"numba": (1, 2)}


def rounds(n: int) -> int:
    """``n`` rounds, or ``FFNN_BENCH_ROUNDS`` for every benchmark (``1``: a quick smoke run
    whose figures mean nothing)."""
    return int(os.environ.get("FFNN_BENCH_ROUNDS", n))


@dataclass(frozen=True)
class Workload:
    name: str
    hidden_sizes: tuple[int, ...]
    batch_size: int
    dtype: str

    @property
    def hidden(self) -> str:
        """``10`` for one hidden layer, ``(256, 128)`` for several."""
        return str(self.hidden_sizes[0]) if len(self.hidden_sizes) == 1 else str(self.hidden_sizes)

    def describe(self) -> str:
        return f"hidden {self.hidden}, batch {self.batch_size}, {self.dtype}"


WORKLOADS = {w.name: w for w in (
    Workload("W1", (10,), 250, "float32"),
    Workload("W2", (100,), 250, "float32"),
    Workload("W3", (10,), 50, "float32"),
    Workload("W4", (100,), 250, "float64"),
    Workload("W5", (256, 128), 250, "float32"),
)}
OPTIMIZERS = ("adam", "nesterov")


# ----------------------------------------------------------------------------- data
def standardised(splits: ffnn.Splits) -> ffnn.Splits:
    """``splits`` scaled as scikit-learn's ``StandardScaler`` fitted on the training set: per
    feature ``(x - mean) / std`` (population std; a std of 0 is taken as 1), float32."""
    X = splits.X_train.astype(np.float64)
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0

    def scale(A):
        return ((A - mean) / std).astype(np.float32)

    return ffnn.Splits(X_train=scale(splits.X_train), y_train=splits.y_train,
                       X_val=scale(splits.X_val), y_val=splits.y_val,
                       X_test=scale(splits.X_test), y_test=splits.y_test,
                       n_classes=splits.n_classes, source=f"{splits.source}, standardised")


def subset(splits: ffnn.Splits, n_train: int = 1000, n_val: int = 200) -> ffnn.Splits:
    """The first images of each split (warm-up runs on the same kind of data)."""
    return ffnn.Splits(X_train=splits.X_train[:n_train], y_train=splits.y_train[:n_train],
                       X_val=splits.X_val[:n_val], y_val=splits.y_val[:n_val],
                       X_test=splits.X_test[:0], y_test=splits.y_test[:0],
                       n_classes=splits.n_classes, source=f"{splits.source}, subset")


def nonzero_fraction(splits: ffnn.Splits) -> float:
    return float(np.count_nonzero(splits.X_train) / splits.X_train.size)


# ----------------------------------------------------------------------------- the clock
@dataclass
class RunLog:
    """What one run recorded: the benchmark's clock at each epoch end, and the epoch's losses.

    ``own_seconds`` is the implementation's own per-epoch clock where it has one (ffnn's
    ``EpochRecord.seconds``); ``extra`` what the run reported about itself (ffnn's
    ``TrainResult.extra``, its plain values)."""

    label: str
    ends: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    own_seconds: list[float] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def epoch_end(self, train_loss, val_loss, val_accuracy):
        self.ends.append(time.perf_counter())
        self.train_loss.append(float(train_loss))
        self.val_loss.append(float(val_loss))
        self.val_accuracy.append(float(val_accuracy))

    def intervals(self) -> list[float]:
        """Seconds of epochs 2..E, each from the end of the previous epoch to its own end."""
        return list(np.diff(self.ends))

    def check(self, epochs: int, floor: float = ACCURACY_FLOOR) -> None:
        """Fail unless the run trained: E epochs, finite losses, the training loss of the last
        epoch below the first's, and the final validation accuracy at least ``floor``. A fast
        wrong kernel cannot pass."""
        assert len(self.ends) == epochs, f"{self.label}: {len(self.ends)} epochs, not {epochs}"
        losses = self.train_loss + self.val_loss
        assert all(math.isfinite(x) for x in losses), f"{self.label}: non-finite loss {losses}"
        assert self.train_loss[-1] < self.train_loss[0], (
            f"{self.label}: training loss did not decrease: {self.train_loss}")
        assert self.val_accuracy[-1] >= floor, (
            f"{self.label}: validation accuracy {self.val_accuracy[-1]:.4f} below {floor}")


def ffnn_callback(log: RunLog):
    """A ``train`` callback that marks each epoch end on ``log``."""
    return lambda record: log.epoch_end(record.train_loss, record.val_loss, record.val_accuracy)


def record_runs(benchmark, logs: list[RunLog], **info) -> None:
    """Store the per-epoch intervals of every run (and the implementation's own clock, if any)
    in ``benchmark.extra_info``; ``bench/report.py`` takes medians of these."""
    epoch_seconds = [s for log in logs for s in log.intervals()]
    own = [s for log in logs for s in log.own_seconds[1:]]
    benchmark.extra_info.update(
        info, epoch_seconds=epoch_seconds, epoch_median=float(np.median(epoch_seconds)),
        epochs_per_run=len(logs[-1].ends), runs=len(logs),
        val_accuracy=logs[-1].val_accuracy[-1], train_loss=logs[-1].train_loss)
    if own:
        benchmark.extra_info.update(own_epoch_seconds=own, own_epoch_median=float(np.median(own)))
    if logs[-1].extra:
        benchmark.extra_info["result_extra"] = logs[-1].extra


def plain(values: dict) -> dict:
    """The entries of ``values`` that JSON can hold as they are (str, bool, int, float)."""
    return {str(k): v.item() if isinstance(v, np.generic) else v for k, v in values.items()
            if isinstance(v, str | bool | int | float | np.generic)}


# ----------------------------------------------------------------------------- implementations
# Each implementation is a factory ``(threads, workload, optimizer, splits) -> run``, where
# ``run(epochs) -> RunLog``. Building it is untimed; each ``run`` trains a new network from its
# initial weights.

def ffnn_config(workload: Workload, optimizer: str, backend: str,
                threads: int) -> ffnn.TrainConfig:
    return ffnn.TrainConfig(
        hidden_sizes=workload.hidden_sizes, batch_size=workload.batch_size, dtype=workload.dtype,
        activation=ACTIVATION, optimizer=optimizer, learning_rate=LEARNING_RATE[optimizer],
        backend=backend, threads=threads, early_stopping=False)


def warm(config: ffnn.TrainConfig, splits: ffnn.Splits) -> None:
    """Compile (or load from numba's cache) what ``config`` runs, on a slice of the same data."""
    ffnn.train(config.replace(max_epochs=1, early_stopping=False), subset(splits))


class FfnnRunner:
    """``ffnn.train(config, splits)`` with ``max_epochs = E`` and early stopping off."""

    def __init__(self, backend, threads, workload, optimizer, splits):
        self.config = ffnn_config(workload, optimizer, backend, threads)
        self.splits = splits
        warm(self.config, splits)

    def __call__(self, epochs: int) -> RunLog:
        log = RunLog(f"ffnn-{self.config.backend} {self.config.threads}t")
        result = ffnn.train(self.config.replace(max_epochs=epochs), self.splits,
                            callback=ffnn_callback(log))
        assert not result.diverged, f"{log.label}: diverged"
        log.own_seconds = [r.seconds for r in result.history]
        log.extra = plain(result.extra)
        return log


class TorchRunner:
    """Idiomatic eager PyTorch on the CPU: tensors preloaded, ``randperm`` minibatches, fused
    optimizers (Adam; SGD with Nesterov momentum)."""

    def __init__(self, threads, workload, optimizer, splits):
        import torch

        self.torch, self.threads = torch, threads
        self.workload, self.optimizer = workload, optimizer
        dtype = getattr(torch, workload.dtype)
        self.X = torch.from_numpy(np.ascontiguousarray(splits.X_train)).to(dtype)
        self.y = torch.from_numpy(splits.y_train.astype(np.int64))
        self.Xv = torch.from_numpy(np.ascontiguousarray(splits.X_val)).to(dtype)
        self.yv = torch.from_numpy(splits.y_val.astype(np.int64))
        self.n_classes = splits.n_classes

    def _optimizer(self, params):
        optim, lr = self.torch.optim, LEARNING_RATE[self.optimizer]
        if self.optimizer == "adam":
            return optim.Adam(params, lr=lr, fused=True)
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, fused=True)

    def __call__(self, epochs: int) -> RunLog:
        torch, w = self.torch, self.workload
        torch.set_num_threads(self.threads)
        torch.manual_seed(0)
        widths = [self.X.shape[1], *w.hidden_sizes]
        layers = [m for n_in, n_out in zip(widths, widths[1:], strict=False)
                  for m in (torch.nn.Linear(n_in, n_out), torch.nn.ReLU())]
        model = torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], self.n_classes)).to(
            getattr(torch, w.dtype))
        optimizer = self._optimizer(list(model.parameters()))
        loss_fn = torch.nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(0)
        log = RunLog(f"torch {self.threads}t")
        for _ in range(epochs):
            perm = torch.randperm(len(self.y), generator=generator)
            total = torch.zeros(())
            for start in range(0, len(perm), w.batch_size):
                idx = perm[start:start + w.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(self.X[idx]), self.y[idx])
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(idx)
            with torch.no_grad():
                logits = model(self.Xv)
                val_loss = loss_fn(logits, self.yv).item()
                val_accuracy = (logits.argmax(dim=1) == self.yv).double().mean().item()
            log.epoch_end(total.item() / len(perm), val_loss, val_accuracy)
        return log


class SklearnRunner:
    """scikit-learn's ``MLPClassifier.partial_fit``: one call is one pass in its own shuffled
    minibatches (``alpha=0``, float32 input)."""

    def __init__(self, threads, workload, optimizer, splits):
        self.threads, self.workload, self.optimizer = threads, workload, optimizer
        self.X = np.ascontiguousarray(splits.X_train, dtype=workload.dtype)
        self.y = splits.y_train
        self.Xv = np.ascontiguousarray(splits.X_val, dtype=workload.dtype)
        self.yv = splits.y_val
        self.classes = np.arange(splits.n_classes)

    def __call__(self, epochs: int) -> RunLog:
        from sklearn.metrics import log_loss
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits

        solver = dict(solver="adam") if self.optimizer == "adam" else dict(
            solver="sgd", momentum=0.9, nesterovs_momentum=True)
        model = MLPClassifier(
            hidden_layer_sizes=self.workload.hidden_sizes, activation=ACTIVATION, alpha=0.0,
            batch_size=self.workload.batch_size,
            learning_rate_init=LEARNING_RATE[self.optimizer], shuffle=True, random_state=0,
            **solver)
        log = RunLog(f"sklearn {self.threads}t")
        with threadpool_limits(limits=self.threads):
            for _ in range(epochs):
                model.partial_fit(self.X, self.y, classes=self.classes)
                proba = model.predict_proba(self.Xv)
                log.epoch_end(model.loss_, log_loss(self.yv, proba, labels=self.classes),
                              float((proba.argmax(axis=1) == self.yv).mean()))
        return log


def _requires(module):
    try:
        __import__(module)
        return None
    except ImportError:
        return f"{module} is not installed (pip install ffnn[compare])"


@dataclass(frozen=True)
class Implementation:
    """One row of the epoch tables: what runs, at how many threads."""

    name: str
    threads: int
    factory: object  # (threads, workload, optimizer, splits) -> run(epochs) -> RunLog
    requires: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.threads}t"

    def skip_reason(self):
        return None if self.requires is None else _requires(self.requires)

    def build(self, workload, optimizer, splits):
        return self.factory(self.threads, workload, optimizer, splits)


def _ffnn_factory(backend):
    return lambda threads, w, o, s: FfnnRunner(backend, threads, w, o, s)


# ffnn's rows come from the backend registry; then the libraries it is compared with.
IMPLEMENTATIONS = [
    *(Implementation(f"ffnn-{backend}", threads, _ffnn_factory(backend))
      for backend in BACKENDS for threads in BACKEND_THREADS.get(backend, (2,))),
    Implementation("torch", PYTORCH_THREADS, TorchRunner, "torch"),
    Implementation("sklearn", 2, SklearnRunner, "sklearn"),
]


def bench_epochs(benchmark, implementation: Implementation, workload: Workload, optimizer: str,
                 splits: ffnn.Splits, *, suite: str, epochs: int, n_rounds: int, **info) -> None:
    """One row: ``n_rounds`` fresh runs of ``epochs`` epochs (pytest-benchmark times each whole
    run); the row's figure is the median per-epoch interval over all runs (``record_runs``)."""
    reason = implementation.skip_reason()
    if reason:
        pytest.skip(reason)
    run = implementation.build(workload, optimizer, splits)
    logs = []

    def one_run():
        logs.append(run(epochs))

    benchmark.pedantic(one_run, rounds=rounds(n_rounds), iterations=1)
    for log in logs:
        log.check(epochs)
    record_runs(benchmark, logs, suite=suite, workload=workload.name, optimizer=optimizer,
                implementation=implementation.name, threads=implementation.threads,
                hidden_sizes=list(workload.hidden_sizes), batch_size=workload.batch_size,
                dtype=workload.dtype, **info)
