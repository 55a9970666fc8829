"""``TrainConfig(output="logistic")``: binary data trains one logistic unit (binary
cross-entropy on the labels 0 and 1) through ``ffnn.train``, ``train_many``, ``Network`` and
model files; other class counts are refused naming ``output``. The identity activation goes the
same way."""

import json

import numpy as np
import pytest

import ffnn
from ffnn import ModelFileError
from ffnn.training import initial_parameters

BINARY = ffnn.TrainConfig(output="logistic", hidden_size=6, learning_rate=0.02, shuffle_seed=3,
                          batch_size=25, max_epochs=15, early_stopping=False, dtype="float64")


def binary_splits(n_classes=2, seed=0):
    """Linearly separable-ish data: the label is whether ``x . w > 0`` (0 or 1), plus noise;
    with ``n_classes=3`` a third class for the refusal test."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=5)

    def part(n):
        X = rng.normal(size=(n, 5))
        y = (X @ w + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
        if n_classes == 3:
            y[::7] = 2
        return X, y

    (Xtr, ytr), (Xv, yv), (Xte, yte) = part(200), part(60), part(60)
    return ffnn.Splits(Xtr, ytr, Xv, yv, Xte, yte, n_classes=n_classes, source="synthetic")


@pytest.fixture(scope="module")
def splits():
    return binary_splits()


@pytest.fixture(scope="module")
def logistic(splits):
    return ffnn.train(BINARY.replace(backend="numpy"), splits)


def test_binary_data_trains_one_logistic_unit(logistic, splits):
    model = logistic.model
    assert (model.output, model.n_classes) == ("logistic", 1)
    assert model.theta.shape == ((5 * 6 + 6) + (6 * 1 + 1),)
    assert logistic.test_accuracy > 0.85 and logistic.history[-1].train_loss < 0.4
    P = model.predict_proba(splits.X_test)
    assert P.shape == (60, 1) and ((P > 0) & (P < 1)).all()
    assert np.array_equal(model.predict(splits.X_test), (P[:, 0] > 0.5).astype(np.int64))


def test_evaluate_is_binary_cross_entropy_and_accuracy(logistic, splits):
    p = logistic.model.predict_proba(splits.X_test)[:, 0]
    y = splits.y_test
    loss, accuracy = logistic.model.evaluate(splits.X_test, y)
    assert loss == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), rel=1e-9)
    assert accuracy == np.mean((p > 0.5) == y)
    assert (loss, accuracy) == (logistic.test_loss, logistic.test_accuracy)
    with pytest.raises(ValueError, match=r"2 at index 0 is outside 0..1"):
        logistic.model.evaluate(splits.X_test[:1], [2])


def test_the_engine_trains_the_same_logistic_network(logistic, splits):
    engine = ffnn.train(BINARY.replace(backend="numba"), splits)
    assert engine.model.n_classes == 1 and engine.epochs == logistic.epochs
    np.testing.assert_allclose(engine.model.theta, logistic.model.theta, rtol=1e-9, atol=1e-12)


def test_softmax_stays_the_default_on_binary_data(splits):
    result = ffnn.train(BINARY.replace(output="softmax", backend="numpy", max_epochs=2), splits)
    assert (result.model.output, result.model.n_classes) == ("softmax", 2)
    assert result.model.predict_proba(splits.X_test).shape == (60, 2)


@pytest.mark.parametrize("n_classes", [3, 10])
def test_logistic_on_other_class_counts_is_refused_naming_output(n_classes):
    splits = (binary_splits(3) if n_classes == 3
              else ffnn.load_mnist(train_size=100, val_size=50, test_size=50))
    with pytest.raises(ValueError, match=rf"^output: 'logistic' .* n_classes={n_classes}"):
        ffnn.train(BINARY.replace(backend="numpy"), splits)


def test_a_logistic_group_equals_each_network_alone_bitwise(splits):
    configs = [BINARY.replace(backend="numba", seed=s, activation=a, hidden_sizes=h)
               for s, a, h in ((0, "elu", (6,)), (1, "identity", (4, 3)), (2, "tanh", (5,)))]
    together = ffnn.train_many(configs, splits)
    for config, g in zip(configs, together, strict=True):
        alone = ffnn.train(config, splits)
        assert g.model.theta.tobytes() == alone.model.theta.tobytes()
        assert [r.val_loss for r in g.history] == [r.val_loss for r in alone.history]
    with pytest.raises(ValueError, match="output: every config of a group must share it"):
        ffnn.train_many([configs[0], configs[1].replace(output="softmax")], splits)


def test_identity_is_initialised_glorot_uniform_like_tanh():
    config = ffnn.TrainConfig(activation="identity", hidden_sizes=(30, 20), dtype="float64")
    tanh = config.replace(activation="tanh")
    assert np.array_equal(initial_parameters(config, 40, 3), initial_parameters(tanh, 40, 3))


# ----------------------------------------------------------------------------- model files
def test_a_logistic_network_round_trips_through_its_file(tmp_path, logistic, splits):
    path = tmp_path / "binary.npz"
    logistic.model.save(path)
    loaded = ffnn.load_model(path)
    assert (loaded.output, loaded.n_classes, loaded.config) == ("logistic", 1, logistic.config)
    assert np.array_equal(loaded.theta, logistic.model.theta)
    X = splits.X_test
    assert np.array_equal(loaded.predict_proba(X), logistic.model.predict_proba(X))
    assert np.array_equal(loaded.predict(X), logistic.model.predict(X))


def test_a_depth_two_identity_network_round_trips_through_its_file(tmp_path, splits):
    result = ffnn.train(BINARY.replace(output="softmax", activation="identity",
                                       hidden_sizes=(4, 3), backend="numpy", max_epochs=3),
                        splits)
    path = tmp_path / "deep.npz"
    result.model.save(path)
    loaded = ffnn.load_model(path)
    assert (loaded.activation, loaded.hidden_sizes, loaded.output) == (
        "identity", (4, 3), "softmax")
    assert "output" not in _meta(path)  # softmax files are written as before
    X = splits.X_test
    assert np.array_equal(loaded.predict_proba(X), result.model.predict_proba(X))


def _meta(path) -> dict:
    with np.load(path) as archive:
        return json.loads(str(archive["meta"]))


def _rewrite(path, drop=(), **changes):
    """The model file at ``path`` with the metadata keys ``drop`` removed and others changed."""
    with np.load(path) as archive:
        theta, meta = archive["theta"], json.loads(str(archive["meta"]))
    meta.update(changes)
    meta = {k: v for k, v in meta.items() if k not in drop}
    np.savez(path, theta=theta, meta=np.array(json.dumps(meta)))
    return path


@pytest.mark.parametrize(("changes", "message"), [
    (dict(output="tanh"), "metadata output: 'tanh' is not one of softmax, logistic"),
    (dict(output=1), "metadata output: expected a string, got 1"),
    (dict(drop=("output",)), "metadata says output='softmax' but its config says 'logistic'"),
])
def test_a_bad_output_in_a_file_is_a_model_file_error_naming_file_and_field(
        tmp_path, logistic, changes, message):
    # (without the key the file claims the default, softmax)
    path = tmp_path / "binary.npz"
    logistic.model.save(path)
    with pytest.raises(ModelFileError) as info:
        ffnn.load_model(_rewrite(path, **changes))
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_file_without_output_is_softmax(tmp_path, logistic):
    path = tmp_path / "binary.npz"
    logistic.model.save(path)
    loaded = ffnn.load_model(_rewrite(path, drop=("output",), config=None))
    assert (loaded.output, loaded.n_classes) == ("softmax", 1)


def test_network_refuses_an_unknown_output():
    with pytest.raises(ValueError, match="output: 'linear' is not one of softmax, logistic"):
        ffnn.Network(np.zeros(7), 5, 1, 1, "elu", output="linear")


def test_several_logistic_units_predict_the_indicator_matrix_and_round_trip(tmp_path):
    # 3 units: a label is the bit mask of the units whose target is 1 (0..7)
    theta = np.random.default_rng(0).normal(size=(5 * 4 + 4) + (4 * 3 + 3))
    net = ffnn.Network(theta, 5, 4, 3, "tanh", "numpy", output="logistic")
    X = np.random.default_rng(1).normal(size=(30, 5))
    P = net.predict_proba(X)
    indicators = net.predict(X)
    assert P.shape == indicators.shape == (30, 3)
    assert np.array_equal(indicators, (P > 0.5).astype(np.int64))
    masks = indicators @ (1 << np.arange(3))
    assert net.evaluate(X, masks)[1] == 1.0  # its own predictions are all right
    with pytest.raises(ValueError, match="8 at index 0 is outside 0..7"):
        net.evaluate(X[:1], [8])
    net.save(tmp_path / "three.npz")
    loaded = ffnn.load_model(tmp_path / "three.npz")
    assert (loaded.output, loaded.n_classes) == ("logistic", 3)
    assert np.array_equal(loaded.predict(X), indicators)
