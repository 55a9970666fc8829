"""``fit`` time of ``ffnn.MLPClassifier`` against scikit-learn's ``MLPClassifier`` (suite
``estimator``).

Same data (20,000 MNIST training images, float32), same settings (hidden 100, relu, adam,
batch 250, 10 epochs, scikit-learn's default alpha, no stopping on ``tol``), each using every
core; once on the raw pixels and once standardised (``workloads.standardised``, the pipeline
``StandardScaler() -> MLPClassifier`` a scikit-learn user writes). pytest-benchmark times whole
``fit`` calls; the report gives their medians and the ratio. Every fit must reach the test
accuracy floor, so a fast wrong fit cannot pass. JIT compilation is kept out of the timing by an
untimed fit on a slice of the same data.
"""

import pytest

pytest.importorskip("sklearn")

from sklearn.neural_network import MLPClassifier as SklearnMLP  # noqa: E402
from workloads import rounds, standardised  # noqa: E402

import ffnn  # noqa: E402

PARAMS = dict(hidden_layer_sizes=(100,), activation="relu", solver="adam", alpha=1e-4,
              batch_size=250, max_iter=10, tol=0.0, n_iter_no_change=10, random_state=0)
ACCURACY_FLOOR = 0.93
ESTIMATORS = {"ffnn": ffnn.MLPClassifier, "sklearn": SklearnMLP}
DATA = ("raw", "standardised")

# Ten epochs is the setting, not a failure to converge.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def mnist_20k():
    raw = ffnn.load_mnist(train_size=20000, val_size=0, test_size=10000)
    return {"raw": raw, "standardised": standardised(raw)}


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimator_fit(benchmark, mnist_20k, name, data):
    benchmark.group = f"estimator fit, {data}"
    benchmark.name = name
    splits = mnist_20k[data]
    estimator = ESTIMATORS[name]
    X, y = splits.X_train, splits.y_train
    if name == "ffnn":  # compile the kernels outside the timed rounds
        estimator(**{**PARAMS, "max_iter": 1}).fit(X[:500], y[:500])

    clf = benchmark.pedantic(lambda: estimator(**PARAMS).fit(X, y), rounds=rounds(3),
                             iterations=1)

    accuracy = clf.score(splits.X_test, splits.y_test)
    benchmark.extra_info.update(suite="estimator", estimator=name, data=data,
                                n_train=len(y), test_accuracy=accuracy,
                                **{k: str(v) for k, v in PARAMS.items()})
    assert clf.n_iter_ == PARAMS["max_iter"]
    assert accuracy >= ACCURACY_FLOOR
