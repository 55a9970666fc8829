"""``fit`` time of ``ffnn.MLPClassifier`` against scikit-learn's ``MLPClassifier``.

Same data (20,000 MNIST training images, float32), same settings (hidden 100, relu, adam,
batch 250, 10 epochs, scikit-learn's default alpha, no stopping on ``tol``), each using every
core. Group ``estimator-fit``: pytest-benchmark's table gives the ratio of the two. Every round
also checks the fitted model's test accuracy, so a fast wrong fit cannot pass. JIT compilation is
kept out of the timing by a warm-up round.
"""

import pytest

pytest.importorskip("sklearn")

from sklearn.neural_network import MLPClassifier as SklearnMLP  # noqa: E402

import ffnn  # noqa: E402
from ffnn import MLPClassifier  # noqa: E402

PARAMS = dict(hidden_layer_sizes=(100,), activation="relu", solver="adam", alpha=1e-4,
              batch_size=250, max_iter=10, tol=0.0, n_iter_no_change=10, random_state=0)
ACCURACY_FLOOR = 0.93
ESTIMATORS = {"ffnn": MLPClassifier, "sklearn": SklearnMLP}

# Ten epochs is the setting, not a failure to converge.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def mnist_20k():
    return ffnn.load_mnist(train_size=20000, val_size=0, test_size=10000)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimator_fit(benchmark, mnist_20k, name):
    benchmark.group = "estimator-fit"
    benchmark.extra_info.update(n_train=len(mnist_20k.y_train), **{
        k: str(v) for k, v in PARAMS.items()})
    estimator = ESTIMATORS[name]
    X, y = mnist_20k.X_train, mnist_20k.y_train
    if name == "ffnn":  # compile the kernels outside the timed rounds
        estimator(**{**PARAMS, "max_iter": 1}).fit(X[:500], y[:500])

    clf = benchmark.pedantic(lambda: estimator(**PARAMS).fit(X, y), rounds=3, iterations=1)

    accuracy = clf.score(mnist_20k.X_test, mnist_20k.y_test)
    benchmark.extra_info["test_accuracy"] = accuracy
    assert clf.n_iter_ == PARAMS["max_iter"]
    assert accuracy >= ACCURACY_FLOOR
