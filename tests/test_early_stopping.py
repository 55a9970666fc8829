"""Early stopping: scripted validation losses give the expected stop and restored epochs."""

import types

import numpy as np
import pytest
from ffnn.kernels import reference

import ffnn
from ffnn import training
from ffnn.early_stopping import EarlyStopping

# Validation loss after epochs 1..10.
SCRIPT = [1.0, 0.8, 0.85, 0.79, 0.9, 0.7, 0.75, 0.72, 0.71, 0.95, 0.96, 0.97]


def scripted_backend(losses):
    """A backend whose epoch ``e`` writes ``e`` into every weight and whose validation loss after
    epoch ``e`` is ``losses[e - 1]``: the returned weights tell which epoch was restored."""

    def train_group(inputs, y, order, batch_size, nets, active, threads=1):
        for k in active:
            nets.steps[k] += 1  # one step per epoch here, so the step is the epoch
            nets.thetas[k][:] = nets.steps[k]
        return np.ones(len(active))

    def evaluate_group(inputs, y, nets, active, threads=1):
        return (np.array([losses[int(nets.thetas[k][0]) - 1] for k in active]),
                np.full(len(active), 0.5))

    return types.SimpleNamespace(__name__="scripted", warm_up=lambda dtype, path=None: None,
                                 prepare=reference.prepare, Networks=reference.Networks,
                                 train_group=train_group, evaluate_group=evaluate_group)


@pytest.fixture
def tiny_splits():
    rng = np.random.default_rng(0)

    def part(n):
        return rng.random((n, 4)), rng.integers(0, 3, n)

    (Xtr, ytr), (Xv, yv), (Xte, yte) = part(20), part(10), part(10)
    return ffnn.Splits(Xtr, ytr, Xv, yv, Xte, yte, n_classes=3, source="synthetic")


@pytest.mark.parametrize(
    ("patience", "min_delta", "stop_epoch", "best_epoch"),
    [
        (0, 0.0, 3, 2),     # 0.85 after 0.8: no improvement, stop at once
        (1, 0.0, 8, 6),     # 0.75 is tolerated, 0.72 is the second miss in a row
        (2, 0.0, 9, 6),
        (3, 0.0, 10, 6),    # 0.75, 0.72, 0.71, 0.95 do not beat 0.7
        (1, 0.05, 4, 2),    # 0.79 would improve on 0.8, but not by 0.05
        (2, 0.05, 5, 2),
    ],
)
def test_scripted_losses_give_expected_stop_and_restored_epoch(
        monkeypatch, tiny_splits, patience, min_delta, stop_epoch, best_epoch):
    monkeypatch.setattr(training, "get_backend", lambda name: scripted_backend(SCRIPT))
    config = ffnn.TrainConfig(backend="numpy", max_epochs=12, patience=patience,
                              min_delta=min_delta, dtype="float64")
    result = ffnn.train(config, tiny_splits)
    assert result.epochs == stop_epoch
    assert result.stopped_early
    assert result.best_epoch == best_epoch
    assert np.all(result.model.theta == best_epoch)  # the best epoch's weights came back


def test_without_restore_best_the_last_weights_are_returned(monkeypatch, tiny_splits):
    monkeypatch.setattr(training, "get_backend", lambda name: scripted_backend(SCRIPT))
    config = ffnn.TrainConfig(backend="numpy", max_epochs=12, patience=1, restore_best=False,
                              dtype="float64")
    result = ffnn.train(config, tiny_splits)
    assert (result.epochs, result.best_epoch) == (8, 6)
    assert np.all(result.model.theta == 8)


def test_without_early_stopping_all_epochs_run_and_the_last_weights_are_returned(
        monkeypatch, tiny_splits):
    monkeypatch.setattr(training, "get_backend", lambda name: scripted_backend(SCRIPT))
    config = ffnn.TrainConfig(backend="numpy", max_epochs=12, early_stopping=False,
                              dtype="float64")
    result = ffnn.train(config, tiny_splits)
    assert result.epochs == 12 and not result.stopped_early
    assert np.all(result.model.theta == 12)


def test_a_stop_on_the_last_allowed_epoch_still_counts_as_early(monkeypatch, tiny_splits):
    monkeypatch.setattr(training, "get_backend", lambda name: scripted_backend(SCRIPT))
    config = ffnn.TrainConfig(backend="numpy", max_epochs=10, patience=3, dtype="float64")
    result = ffnn.train(config, tiny_splits)
    assert result.epochs == 10 and result.stopped_early and result.best_epoch == 6


def test_improvement_resets_the_count():
    stopper = EarlyStopping(patience=2)
    losses = [3, 4, 2, 5, 1, 6, 7, 8]
    improved = [stopper.update(e, loss) for e, loss in enumerate(losses, start=1)]
    assert improved == [True, False, True, False, True, False, False, False]
    assert stopper.should_stop and stopper.best_epoch == 5 and stopper.best_loss == 1
    assert stopper.epochs_without_improvement == 3
