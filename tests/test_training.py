"""``ffnn.train`` end to end: learning, history, divergence, determinism, bad splits."""

import math

import numpy as np
import pytest

import ffnn


@pytest.mark.slow
def test_reference_backend_learns_mnist(mnist_5k):
    config = ffnn.TrainConfig(backend="numpy", hidden_size=100, optimizer="adam", max_epochs=3,
                              early_stopping=False)
    result = ffnn.train(config, mnist_5k)
    assert result.epochs == 3
    assert result.history[-1].val_accuracy >= 0.85
    assert result.test_accuracy >= 0.85


def test_history_records_every_epoch_and_callback_sees_them(small_mnist):
    seen = []
    config = ffnn.TrainConfig(backend="numpy", max_epochs=4, early_stopping=False)
    result = ffnn.train(config, small_mnist, callback=seen.append)
    assert [r.epoch for r in result.history] == [1, 2, 3, 4]
    assert seen == result.history
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert all(r.seconds > 0 for r in result.history)
    assert result.train_time == pytest.approx(sum(r.seconds for r in result.history))
    assert result.val_loss == pytest.approx(result.history[-1].val_loss)
    assert 0 <= result.test_accuracy <= 1 and math.isfinite(result.test_loss)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_huge_learning_rate_is_reported_as_diverged_not_raised(small_mnist, backend, optimizer):
    # Measured: lr 1e3 with relu drives the first epoch's loss past 1e7 for gd and adam.
    config = ffnn.TrainConfig(backend=backend, optimizer=optimizer, activation="relu",
                              learning_rate=1e3, max_epochs=20)
    result = ffnn.train(config, small_mnist)
    assert result.diverged
    assert not result.stopped_early
    assert result.epochs < 20


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_same_config_gives_bitwise_identical_runs(small_mnist, backend):
    config = ffnn.TrainConfig(backend=backend, max_epochs=2, threads=1)
    a, b = ffnn.train(config, small_mnist), ffnn.train(config, small_mnist)
    assert np.array_equal(a.model.theta, b.model.theta)
    assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]
    assert [r.val_loss for r in a.history] == [r.val_loss for r in b.history]


def test_seed_fixes_initial_weights_and_shuffle_seed_the_batch_order(small_mnist):
    base = ffnn.TrainConfig(backend="numpy", max_epochs=1, early_stopping=False, dtype="float64")

    def theta(**changes):
        return ffnn.train(base.replace(**changes), small_mnist).model.theta

    assert np.array_equal(theta(seed=1, shuffle_seed=5), theta(seed=1, shuffle_seed=5))
    assert not np.array_equal(theta(seed=1, shuffle_seed=5), theta(seed=2, shuffle_seed=5))
    assert not np.array_equal(theta(seed=1, shuffle_seed=5), theta(seed=1, shuffle_seed=6))
    assert np.array_equal(theta(seed=3), theta(seed=3, shuffle_seed=3))


def test_epoch_order_is_a_permutation_that_changes_every_epoch():
    first, second = ffnn.training.epoch_order(7, 1, 100), ffnn.training.epoch_order(7, 2, 100)
    assert sorted(first) == list(range(100))
    assert not np.array_equal(first, second)
    assert np.array_equal(first, ffnn.training.epoch_order(7, 1, 100))


@pytest.mark.parametrize(
    ("activation", "scheme"),
    [("relu", "he"), ("leaky_relu", "he"), ("elu", "he"), ("sigmoid", "glorot"),
     ("tanh", "glorot"), ("identity", "glorot")])
def test_initialisation_scheme_follows_the_activation(activation, scheme):
    config = ffnn.TrainConfig(activation=activation, hidden_size=300, dtype="float64")
    W1, b1, W2, b2 = ffnn.kernels.layout.unpack(
        ffnn.training.initial_parameters(config, 400, 10), 400, 300, 10)
    assert not b1.any() and not b2.any()
    if scheme == "he":
        assert W1.std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    else:
        limit = math.sqrt(6 / (400 + 300))
        assert np.abs(W1).max() <= limit
        assert W1.std() == pytest.approx(limit / math.sqrt(3), rel=0.02)


def test_early_stopping_without_validation_data_is_a_value_error():
    splits = ffnn.load_mnist(train_size=100, val_size=0, test_size=100)
    with pytest.raises(ValueError, match="early_stopping"):
        ffnn.train(ffnn.TrainConfig(backend="numpy"), splits)
    result = ffnn.train(ffnn.TrainConfig(backend="numpy", early_stopping=False, max_epochs=1),
                        splits)
    assert math.isnan(result.history[0].val_loss) and math.isnan(result.val_loss)


def test_float64_training_keeps_float64(small_mnist):
    result = ffnn.train(ffnn.TrainConfig(backend="numpy", dtype="float64", max_epochs=1),
                        small_mnist)
    assert result.model.dtype == np.float64


def _copy(splits):
    return ffnn.Splits(X_train=splits.X_train.copy(), y_train=splits.y_train.copy(),
                       X_val=splits.X_val.copy(), y_val=splits.y_val.copy(),
                       X_test=splits.X_test.copy(), y_test=splits.y_test.copy(),
                       n_classes=splits.n_classes, source=splits.source)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_inputs_changed_in_place_are_prepared_again(small_mnist, backend):
    """Prepared inputs are reused across calls only while the array holds the same values: an
    array rescaled in place trains on its new values, exactly as a fresh copy of them does."""
    config = ffnn.TrainConfig(backend=backend, max_epochs=2, early_stopping=False)
    splits = _copy(small_mnist)
    before = ffnn.train(config, splits)
    np.multiply(splits.X_train, np.float32(0.5), out=splits.X_train)  # in place
    after = ffnn.train(config, splits)
    fresh = ffnn.train(config, _copy(splits))
    np.testing.assert_array_equal(after.model.theta, fresh.model.theta)
    assert not np.array_equal(after.model.theta, before.model.theta)
