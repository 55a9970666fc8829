"""Every split is validated once, in Python, before any backend runs: the same clear
``ValueError`` from ``train`` and ``train_many`` on both backends, from ``Splits`` and from
``Network.evaluate``."""

import types

import numpy as np
import pytest

import ffnn
from ffnn import training

N_CLASSES = 3


def hand_built(**changes):
    """Splits built by hand (an object with ``Splits``' attributes, so nothing checked them
    yet): 40 / 10 / 10 rows of 8 features, labels ``i % 3``."""
    rng = np.random.default_rng(0)
    X = rng.random((60, 8)).astype(np.float32)
    y = np.arange(60) % N_CLASSES
    arrays = dict(X_train=X[:40], y_train=y[:40], X_val=X[40:50], y_val=y[40:50],
                  X_test=X[50:], y_test=y[50:])
    for name, change in changes.items():
        arrays[name] = change(arrays[name].copy())
    return types.SimpleNamespace(**arrays, n_classes=N_CLASSES, source="by hand")


def put(index, value, dtype=None):
    """A change that sets ``a.flat[index] = value`` (in ``dtype``, if given)."""
    def change(a):
        a = a.astype(dtype) if dtype else a
        a.reshape(-1)[index] = value
        return a
    return change


BAD_SPLITS = {  # case -> (changes, message)
    "label -1": ({"y_test": put(3, -1)}, "test labels (y_test): -1 at index 3 is outside 0..2"),
    "all labels -1": ({"y_test": lambda y: np.full_like(y, -1)},  # reported accuracy 0.0
                      "test labels (y_test): -1 at index 0 is outside 0..2"),
    "label n_classes": ({"y_train": put(5, N_CLASSES)},
                        "train labels (y_train): 3 at index 5 is outside 0..2"),
    "label 1e6": ({"y_val": put(2, 10**6)},
                  "validation labels (y_val): 1000000 at index 2 is outside 0..2"),
    "float labels": ({"y_train": lambda y: y.astype(float)},
                     "train labels (y_train): expected integer class indices 0..2, got dtype "
                     "float64"),
    "float label 1e6": ({"y_test": put(0, 1e6, float)}, "test labels (y_test): expected integer"),
    "2-D labels": ({"y_val": lambda y: y.reshape(-1, 1)},
                   "validation labels (y_val): expected a 1-D array"),
    "NaN in X": ({"X_val": put(10, np.nan)},
                 "validation features (X_val): NaN at row 1, column 2; every value must be "
                 "finite"),
    "inf in X": ({"X_train": put(17, np.inf)}, "train features (X_train): inf at row 2, column 1"),
    "-inf in X": ({"X_test": put(0, -np.inf)}, "test features (X_test): -inf at row 0, column 0"),
    "too large for float32": ({"X_train": put(9, 1e300, np.float64)},
                              "train features (X_train): 1e+300 (too large for float32) at row 1, "
                              "column 1"),
    "1-D X": ({"X_test": lambda X: X[:, 0]},
              "test features (X_test): expected a 2-D array (n_samples, n_features), got shape "
              "(10,)"),
    "length mismatch": ({"y_val": lambda y: y[:9]},
                        "validation split: X_val has 10 rows but y_val has 9 labels"),
    "width mismatch": ({"X_test": lambda X: X[:, :7]},
                       "test features (X_test): has 7 columns, expected 8"),
    "complex X": ({"X_train": lambda X: X.astype(complex)},
                  "train features (X_train): expected real numbers, got dtype complex128"),
    "no features": ({"X_train": lambda X: X[:, :0], "X_val": lambda X: X[:, :0],
                     "X_test": lambda X: X[:, :0]}, "train features (X_train): has no features"),
}


@pytest.fixture
def no_backend(monkeypatch):
    """Make any backend call fail the test: the checks must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a backend ran before the splits were validated")

    monkeypatch.setattr(training, "get_backend", refuse)  # train and train_many both use it


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("entry", ["train", "train_many"])
@pytest.mark.parametrize("case", BAD_SPLITS)
def test_bad_splits_are_refused_before_any_backend_runs(case, entry, backend, no_backend):
    changes, message = BAD_SPLITS[case]
    splits = hand_built(**changes)
    config = ffnn.TrainConfig(backend=backend, max_epochs=1, hidden_size=4)
    with pytest.raises(ValueError) as info:
        if entry == "train":
            ffnn.train(config, splits)
        else:
            ffnn.train_many([config, config.replace(seed=1, shuffle_seed=0)], splits)
    assert message in str(info.value)


@pytest.mark.parametrize("case", [case for case in BAD_SPLITS if "float32" not in case])
def test_the_splits_constructor_gives_the_same_error(case):
    """(The constructor does not know the training dtype: a float64 1e300 is refused only when
    training in float32.)"""
    changes, message = BAD_SPLITS[case]
    s = hand_built(**changes)
    arrays = {k: v for k, v in vars(s).items() if k.startswith(("X_", "y_"))}
    with pytest.raises(ValueError) as info:
        ffnn.Splits(**arrays, n_classes=N_CLASSES, source="by hand")
    assert message in str(info.value)


def test_arrays_changed_after_construction_are_caught_by_train(no_backend):
    s = hand_built()
    splits = ffnn.Splits(s.X_train, s.y_train, s.X_val, s.y_val, s.X_test, s.y_test,
                         n_classes=N_CLASSES, source="by hand")
    splits.y_test[3] = -1
    with pytest.raises(ValueError, match=r"test labels \(y_test\): -1 at index 3"):
        ffnn.train(ffnn.TrainConfig(backend="numpy"), splits)


@pytest.mark.parametrize("n_classes", [0, -1, 2.5, True])
def test_bad_n_classes(n_classes):
    s = hand_built()
    s.n_classes = n_classes
    with pytest.raises(ValueError, match="n_classes: expected a positive integer"):
        ffnn.train(ffnn.TrainConfig(backend="numpy"), s)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_integer_features_and_values_outside_0_1_train(backend):
    """Integer X is converted to the training dtype (as scikit-learn does); values outside
    [0, 1] are allowed."""
    splits = hand_built(X_train=lambda X: (X * 3).astype(np.int64),
                        X_val=lambda X: (X * 3).astype(np.uint8), X_test=lambda X: X * 3 - 1)
    result = ffnn.train(ffnn.TrainConfig(backend=backend, max_epochs=2, hidden_size=4,
                                         batch_size=8), splits)
    assert np.isfinite(result.test_loss) and result.model.dtype == np.float32


def test_network_evaluate_and_predict_validate_their_inputs():
    s = hand_built()
    net = ffnn.train(ffnn.TrainConfig(backend="numpy", max_epochs=1, hidden_size=4), s).model
    with pytest.raises(ValueError, match=r"input labels \(y\): -1 at index 0 is outside 0..2"):
        net.evaluate(s.X_test, np.full(10, -1))
    with pytest.raises(ValueError, match=r"input features \(X\): NaN at row 0, column 0"):
        net.predict(np.full((2, 8), np.nan))
