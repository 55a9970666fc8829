"""Saving and loading a trained network; model files never run code."""

import pickle

import numpy as np
import pytest

import ffnn


@pytest.fixture(scope="module")
def trained(small_mnist):
    return ffnn.train(ffnn.TrainConfig(backend="numpy", max_epochs=2), small_mnist)


def test_save_load_round_trip_gives_identical_predictions(tmp_path, trained, small_mnist):
    path = tmp_path / "model.npz"
    trained.model.save(path)
    loaded = ffnn.load_model(path)
    assert loaded.config == trained.config
    assert loaded.dtype == trained.model.dtype
    assert np.array_equal(loaded.theta, trained.model.theta)
    X = small_mnist.X_test
    assert np.array_equal(loaded.predict_proba(X), trained.model.predict_proba(X))
    assert np.array_equal(loaded.predict(X), trained.model.predict(X))


def test_predictions_are_probabilities_and_evaluate_matches_them(trained, small_mnist):
    P = trained.model.predict_proba(small_mnist.X_test)
    assert P.shape == (500, 10)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-5)
    loss, accuracy = trained.model.evaluate(small_mnist.X_test, small_mnist.y_test)
    assert accuracy == pytest.approx((P.argmax(axis=1) == small_mnist.y_test).mean())
    picked = P[np.arange(500), small_mnist.y_test]
    assert loss == pytest.approx(-np.log(picked).mean(), rel=1e-4)


def test_a_file_holding_a_pickled_object_is_refused(tmp_path, trained):
    path = tmp_path / "evil.npz"
    np.savez(path, theta=trained.model.theta,
             meta=np.array([pickle.dumps("payload")], dtype=object))
    with pytest.raises(ValueError, match="evil.npz"):
        ffnn.load_model(path)


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, something=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz"):
        ffnn.load_model(path)


def test_wrong_input_width_names_the_expected_shape(trained):
    with pytest.raises(ValueError, match="784"):
        trained.model.predict(np.zeros((2, 10)))
