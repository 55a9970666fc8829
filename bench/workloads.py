"""The benchmark workloads and one registry of implementations (numbagg's pattern: the same
registry drives every benchmark and the report)."""

import math
from dataclasses import dataclass

import numpy as np
from ffnn.kernels import get_backend

import ffnn
from ffnn.threads import available_cores, limit_threads
from ffnn.training import PreparedData, epoch_order, initial_parameters, networks

N_TRAIN, N_VAL = 34_000, 6_000
THREADS = available_cores()  # every implementation gets the same number of threads
ACTIVATION = "relu"  # the one hidden activation all four implementations offer
LEARNING_RATE = {"adam": 1e-3, "nesterov": 0.05}
ACCURACY_FLOOR = 0.85  # validation accuracy every benchmark must reach after its epochs


@dataclass(frozen=True)
class Workload:
    name: str
    hidden_size: int
    batch_size: int
    dtype: str


WORKLOADS = {w.name: w for w in (
    Workload("W1", 10, 250, "float32"),
    Workload("W2", 100, 250, "float32"),
    Workload("W3", 10, 50, "float32"),
    Workload("W4", 100, 250, "float64"),
)}
OPTIMIZERS = ("adam", "nesterov")


# ----------------------------------------------------------------------------- implementations
# Each runner is built outside the timed region; ``epoch()`` runs one training pass over the
# 34,000 images in minibatches plus one validation pass over the 6,000 (the timed unit);
# ``accuracy()`` is the validation accuracy of the current weights.

class FfnnRunner:
    """One epoch of ``ffnn.train``'s loop (``ffnn.training.train_group``) on one backend: the
    backend's ``train_group`` on the data prepared once, then ``evaluate_group`` on the
    validation set, for a group of one network."""

    def __init__(self, backend, workload, optimizer, splits, threads):
        self.config = ffnn.TrainConfig(
            hidden_size=workload.hidden_size, batch_size=workload.batch_size,
            dtype=workload.dtype, activation=ACTIVATION, optimizer=optimizer,
            learning_rate=LEARNING_RATE[optimizer], backend=backend, threads=threads)
        self.backend = get_backend(backend)
        self.backend.warm_up(workload.dtype)
        self.data = PreparedData.from_splits(splits, workload.dtype, self.backend)
        theta = initial_parameters(self.config, self.data.n_features, splits.n_classes)
        self.nets = networks(self.backend, [self.config], self.data.n_features,
                             splits.n_classes, [theta])
        self.threads = threads
        self.epochs = 0

    def epoch(self):
        self.epochs += 1
        order = epoch_order(0, self.epochs, len(self.data.y_train))
        with limit_threads(self.threads) as n_threads:
            self.backend.train_group(self.data.train, self.data.y_train, order,
                                     self.config.batch_size, self.nets, [0], n_threads)
            self.last = self.backend.evaluate_group(self.data.val, self.data.y_val, self.nets,
                                                    [0], n_threads)

    def accuracy(self):
        return float(self.last[1][0])


class TorchRunner:
    """Idiomatic PyTorch CPU: tensors preloaded, ``randperm`` minibatches, fused optimizers."""

    def __init__(self, workload, optimizer, splits, threads):
        import torch

        self.torch = torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        dtype = getattr(torch, workload.dtype)
        self.X = torch.from_numpy(np.ascontiguousarray(splits.X_train)).to(dtype)
        self.y = torch.from_numpy(splits.y_train.astype(np.int64))
        self.Xv = torch.from_numpy(np.ascontiguousarray(splits.X_val)).to(dtype)
        self.yv = torch.from_numpy(splits.y_val.astype(np.int64))
        self.model = torch.nn.Sequential(
            torch.nn.Linear(self.X.shape[1], workload.hidden_size), torch.nn.ReLU(),
            torch.nn.Linear(workload.hidden_size, splits.n_classes)).to(dtype)
        params = self.model.parameters()
        lr = LEARNING_RATE[optimizer]
        if optimizer == "adam":
            self.optimizer = self._fused(torch.optim.Adam, params, lr=lr)
        else:
            self.optimizer = self._fused(torch.optim.SGD, params, lr=lr, momentum=0.9,
                                         nesterov=True)
        self.loss = torch.nn.CrossEntropyLoss()
        self.batch_size = workload.batch_size
        self.generator = torch.Generator().manual_seed(0)

    @staticmethod
    def _fused(cls, params, **kwargs):
        params = list(params)
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            return cls(params, foreach=True, **kwargs)

    def epoch(self):
        torch = self.torch
        perm = torch.randperm(len(self.y), generator=self.generator)
        for start in range(0, len(perm), self.batch_size):
            idx = perm[start:start + self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            self.loss(self.model(self.X[idx]), self.y[idx]).backward()
            self.optimizer.step()
        with torch.no_grad():
            self.last = (self.model(self.Xv).argmax(dim=1) == self.yv).double().mean().item()

    def accuracy(self):
        return self.last


class SklearnRunner:
    """scikit-learn's ``MLPClassifier.partial_fit``: one call is one pass in its own minibatches."""

    def __init__(self, workload, optimizer, splits, threads):
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits

        self.limits = lambda: threadpool_limits(limits=threads)
        solver = dict(solver="adam") if optimizer == "adam" else dict(
            solver="sgd", momentum=0.9, nesterovs_momentum=True)
        self.model = MLPClassifier(
            hidden_layer_sizes=(workload.hidden_size,), activation=ACTIVATION, alpha=0.0,
            batch_size=workload.batch_size, learning_rate_init=LEARNING_RATE[optimizer],
            shuffle=True, random_state=0, **solver)
        self.X = np.ascontiguousarray(splits.X_train, dtype=workload.dtype)
        self.y = splits.y_train
        self.Xv = np.ascontiguousarray(splits.X_val, dtype=workload.dtype)
        self.yv = splits.y_val
        self.classes = np.arange(splits.n_classes)

    def epoch(self):
        with self.limits():
            self.model.partial_fit(self.X, self.y, classes=self.classes)
            self.last = float((self.model.predict(self.Xv) == self.yv).mean())

    def accuracy(self):
        return self.last


def _requires(module):
    try:
        __import__(module)
        return None
    except ImportError:
        return f"{module} is not installed (pip install ffnn[compare])"


# name -> (factory(workload, optimizer, splits), rounds(workload), reason to skip or None)
IMPLEMENTATIONS = {
    "ffnn-numba": (lambda w, o, s: FfnnRunner("numba", w, o, s, THREADS),
                   lambda w: 15, None),
    "ffnn-numba-1t": (lambda w, o, s: FfnnRunner("numba", w, o, s, 1),
                      lambda w: 10, None),
    "ffnn-numpy": (lambda w, o, s: FfnnRunner("numpy", w, o, s, THREADS),
                   lambda w: 3 if w.hidden_size > 10 else 5, None),
    "torch": (lambda w, o, s: TorchRunner(w, o, s, THREADS),
              lambda w: 3 if w.batch_size < 250 or w.hidden_size > 10 else 5, "torch"),
    "sklearn": (lambda w, o, s: SklearnRunner(w, o, s, THREADS),
                lambda w: 3 if w.batch_size < 250 or w.hidden_size > 10 else 5, "sklearn"),
}


def skip_reason(implementation):
    module = IMPLEMENTATIONS[implementation][2]
    return None if module is None else _requires(module)


def check_accuracy(runner, label):
    accuracy = runner.accuracy()
    assert math.isfinite(accuracy) and accuracy >= ACCURACY_FLOOR, (
        f"{label}: validation accuracy {accuracy:.4f} below the floor {ACCURACY_FLOOR}")
    return accuracy
