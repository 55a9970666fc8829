"""Learning-rate schedules in the epoch loop (``TrainConfig.lr_schedule``): every epoch runs at
the rate its schedule gives, computed by hand here; the adaptive schedule divides the rate by 5
each time the stopping rule's patience runs out and stops once the rate is at most 1e-6."""

import types

import numpy as np
import pytest
from ffnn.kernels import codes, reference

import ffnn
from ffnn import training
from ffnn.early_stopping import EarlyStopping
from ffnn.schedules import LearningRate

N_TRAIN = 20


@pytest.fixture
def tiny_splits():
    rng = np.random.default_rng(0)

    def part(n):
        return rng.random((n, 4)), rng.integers(0, 3, n)

    (Xtr, ytr), (Xv, yv), (Xte, yte) = part(N_TRAIN), part(10), part(10)
    return ffnn.Splits(Xtr, ytr, Xv, yv, Xte, yte, n_classes=3, source="synthetic")


def rate_spy(monkeypatch, train_losses=None, val_losses=None):
    """Patch the epoch loop's backend: the NumPy reference, with every epoch's learning rate
    (``hyper[k, LR]`` as the backend sees it) appended to the returned list. With scripted
    ``train_losses`` / ``val_losses`` (by epoch), epoch ``e`` instead writes ``e`` into every
    weight and reports the scripted losses."""
    rates = []

    def train_group(inputs, y, order, batch_size, nets, active, threads=1):
        rates.append(float(nets.hyper[active[0], codes.LR]))
        if train_losses is None and val_losses is None:
            return reference.train_group(inputs, y, order, batch_size, nets, active, threads)
        for k in active:
            nets.thetas[k][:] = len(rates)
        return np.array([train_losses[len(rates) - 1] if train_losses else 1.0] * len(active))

    def evaluate_group(inputs, y, nets, active, threads=1):
        if val_losses is None:
            return reference.evaluate_group(inputs, y, nets, active, threads)
        return (np.array([val_losses[int(nets.thetas[k][0]) - 1] for k in active]),
                np.full(len(active), 0.5))

    backend = types.SimpleNamespace(__name__="spy", warm_up=lambda dtype, path=None: None,
                                    prepare=reference.prepare, Networks=reference.Networks,
                                    train_group=train_group, evaluate_group=evaluate_group)
    monkeypatch.setattr(training, "get_backend", lambda name: backend)
    return rates


def test_constant_runs_every_epoch_at_the_learning_rate(monkeypatch, tiny_splits):
    rates = rate_spy(monkeypatch)
    ffnn.train(ffnn.TrainConfig(backend="numpy", learning_rate=0.1, max_epochs=4,
                                early_stopping=False), tiny_splits)
    assert rates == [0.1] * 4


@pytest.mark.parametrize(("power_t", "expected"), [
    # 0.1 / (t + 1) ** power_t, t = 20 (e - 1) samples seen before epoch e
    (0.5, [0.1, 0.1 / 21 ** 0.5, 0.1 / 41 ** 0.5, 0.1 / 61 ** 0.5]),
    (0.25, [0.1, 0.046713797772820, 0.039518826132440, 0.035782241396103]),
    (0.0, [0.1] * 4),
])
def test_invscaling_divides_by_samples_seen_plus_one_to_the_power_t(
        monkeypatch, tiny_splits, power_t, expected):
    rates = rate_spy(monkeypatch)
    result = ffnn.train(ffnn.TrainConfig(
        backend="numpy", optimizer="gd", learning_rate=0.1, lr_schedule="invscaling",
        power_t=power_t, max_epochs=4, early_stopping=False, dtype="float64"), tiny_splits)
    assert rates == pytest.approx(expected, rel=1e-12)
    assert result.epochs == 4


def test_invscaling_changes_the_trained_weights(tiny_splits):
    base = ffnn.TrainConfig(backend="numpy", optimizer="gd", learning_rate=0.1, max_epochs=3,
                            early_stopping=False, dtype="float64")
    constant = ffnn.train(base, tiny_splits).model.theta
    assert not np.array_equal(
        constant, ffnn.train(base.replace(lr_schedule="invscaling"), tiny_splits).model.theta)
    # epoch 1 runs at the initial rate either way
    assert np.array_equal(ffnn.train(base.replace(max_epochs=1), tiny_splits).model.theta,
                          ffnn.train(base.replace(max_epochs=1, lr_schedule="invscaling"),
                                     tiny_splits).model.theta)


# A loss script for patience=1: epochs 1, 2 and 5 improve; patience runs out at epochs 4, 7, 9
# and 11, where the rate has been divided 0, 1, 2 and 3 times.
SCRIPT = [1.0, 0.9, 0.95, 0.91, 0.8] + [0.85] * 20
LR = 1e-4
SCRIPTED_RATES = [LR] * 4 + [LR / 5] * 3 + [LR / 5 / 5] * 2 + [LR / 5 / 5 / 5] * 2


def test_adaptive_without_early_stopping_watches_the_training_loss(monkeypatch, tiny_splits):
    rates = rate_spy(monkeypatch, train_losses=SCRIPT)
    result = ffnn.train(ffnn.TrainConfig(
        backend="numpy", optimizer="gd", learning_rate=LR, lr_schedule="adaptive", patience=1,
        early_stopping=False, max_epochs=25, dtype="float64"), tiny_splits)
    # at epoch 11 the rate 8e-7 is already <= 1e-6: stop instead of dividing
    assert rates == SCRIPTED_RATES
    assert (result.epochs, result.stopped_early) == (11, True)
    assert result.best_epoch == 11 and np.all(result.model.theta == 11)  # no restore_best


def test_adaptive_with_early_stopping_watches_the_validation_loss(monkeypatch, tiny_splits):
    rates = rate_spy(monkeypatch, val_losses=SCRIPT)
    result = ffnn.train(ffnn.TrainConfig(
        backend="numpy", optimizer="gd", learning_rate=LR, lr_schedule="adaptive", patience=1,
        max_epochs=25, dtype="float64"), tiny_splits)
    assert rates == SCRIPTED_RATES
    assert (result.epochs, result.stopped_early) == (11, True)
    assert result.best_epoch == 5 and np.all(result.model.theta == 5)  # restored across drops


def test_adaptive_respects_max_epochs_and_min_delta(monkeypatch, tiny_splits):
    rates = rate_spy(monkeypatch, train_losses=SCRIPT)
    result = ffnn.train(ffnn.TrainConfig(
        backend="numpy", learning_rate=LR, lr_schedule="adaptive", patience=1, min_delta=0.5,
        early_stopping=False, max_epochs=6, dtype="float64"), tiny_splits)
    # min_delta 0.5: only epoch 1 improves, so patience runs out at epochs 3 and 5
    assert rates == [LR] * 3 + [LR / 5] * 2 + [LR / 5 / 5]
    assert (result.epochs, result.stopped_early) == (6, False)


def test_without_adaptive_the_same_script_stops_at_the_first_run_out(monkeypatch, tiny_splits):
    rate_spy(monkeypatch, val_losses=SCRIPT)
    config = ffnn.TrainConfig(backend="numpy", learning_rate=LR, patience=1, max_epochs=25,
                              dtype="float64")
    assert ffnn.train(config, tiny_splits).epochs == 4
    rate_spy(monkeypatch, train_losses=SCRIPT)
    no_rule = ffnn.train(config.replace(early_stopping=False, lr_schedule="invscaling"),
                         tiny_splits)
    assert (no_rule.epochs, no_rule.stopped_early) == (25, False)  # the training loss is unwatched


def test_restart_keeps_the_best_and_counts_again():
    stopper = EarlyStopping(patience=0)
    stopper.update(1, 1.0)
    stopper.update(2, 2.0)
    assert stopper.should_stop
    stopper.restart()
    assert not stopper.should_stop and (stopper.best_epoch, stopper.best_loss) == (1, 1.0)


def test_learning_rate_rejects_an_unknown_schedule():
    with pytest.raises(ValueError, match="lr_schedule: 'optimal' is not one of"):
        LearningRate("optimal", 0.1)
