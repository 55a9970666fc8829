"""Dense W2 (suite ``dense``): W2 (hidden 100, batch 250, float32, Adam, relu) on standardised
inputs, the data a user has after scikit-learn's ``StandardScaler`` (``workloads.standardised``:
per-feature mean and std of the training set, std 0 taken as 1; ~86% of the inputs nonzero).

The same protocol as ``test_epoch_bench.py`` (fresh runs of ``EPOCHS`` epochs, median interval
between epoch ends, every run checked), for the same implementations. The ffnn rows also record
``TrainResult.extra`` of a run (where the engine says which first-layer path it took).
"""

import pytest
from workloads import IMPLEMENTATIONS, WORKLOADS, bench_epochs, nonzero_fraction

EPOCHS = 5
ROUNDS = 2


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS,
                         ids=[i.label.replace(" ", "-") for i in IMPLEMENTATIONS])
def test_dense_w2(benchmark, mnist_standardised, implementation):
    benchmark.group = "dense W2 adam"
    benchmark.name = implementation.label
    bench_epochs(benchmark, implementation, WORKLOADS["W2"], "adam", mnist_standardised,
                 suite="dense", epochs=EPOCHS, n_rounds=ROUNDS,
                 nonzero_fraction=round(nonzero_fraction(mnist_standardised), 3))
