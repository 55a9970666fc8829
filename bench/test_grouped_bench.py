"""Many networks in one pass: K networks trained together (``ffnn.train_many``) against the same K
trained one after another (``ffnn.train``, numba backend).

Workload: train 34,000 / validation 6,000 MNIST images, batch 250, Adam, float32, two epochs,
early stopping off. The figure that matters is the *per-model-epoch* time, recorded in each
benchmark's ``extra_info``: the epoch loop's wall time (training and validation passes, no
compilation, no final metrics) divided by K x epochs. pytest-benchmark's own table times the
whole call, final train/validation/test metrics of every network included, the same for both.
Targets: K = 5 hidden 10 <= 4 ms per model-epoch and >= 2x faster than one after another;
K = 10 hidden 10 <= 3.5 ms.

Run: ``pytest bench/test_grouped_bench.py --benchmark-enable`` (or ``nox -s bench``).
"""

import pytest

import ffnn

EPOCHS = 2
CASES = [(1, 10, None), (5, 10, None), (10, 10, None), (50, 10, None), (5, 100, None),
         (5, 10, 1), (10, 10, 1)]
IDS = [f"K{k}-H{h}-threads{t or 'all'}" for k, h, t in CASES]


@pytest.fixture(scope="module")
def grouped_mnist():
    return ffnn.load_mnist(train_size=34000, val_size=6000, test_size=0)


def group_configs(k, hidden, threads):
    base = ffnn.TrainConfig(hidden_size=hidden, optimizer="adam", learning_rate=1e-3,
                            batch_size=250, dtype="float32", backend="numba", threads=threads,
                            max_epochs=EPOCHS, early_stopping=False, shuffle_seed=0)
    return [base.replace(seed=s) for s in range(k)]


def record(benchmark, results, k, epoch_seconds):
    per_model_epoch = epoch_seconds / (k * EPOCHS)
    benchmark.extra_info["per_model_epoch_ms"] = round(per_model_epoch * 1e3, 3)
    benchmark.extra_info["val_accuracy_min"] = min(r.val_accuracy for r in results)
    # a fast wrong kernel must not pass: two epochs of Adam reach ~0.91 here
    assert min(r.val_accuracy for r in results) > 0.85


@pytest.mark.parametrize(("k", "hidden", "threads"), CASES, ids=IDS)
def test_grouped(benchmark, grouped_mnist, k, hidden, threads):
    benchmark.group = f"{k} x hidden {hidden}, threads {threads or 'all'}"
    configs = group_configs(k, hidden, threads)
    ffnn.train_many(configs[:1], grouped_mnist, calibrate=False)  # compile / load kernels first
    runs = []

    def run():
        runs.append(ffnn.train_many(configs, grouped_mnist, calibrate=False))
        return runs[-1]

    benchmark.pedantic(run, rounds=3, iterations=1)
    best = min(results[0].extra["group_wall_time"] for results in runs)
    benchmark.extra_info["implementation"] = "train_many"
    record(benchmark, runs[-1], k, best)


@pytest.mark.parametrize(("k", "hidden", "threads"), CASES, ids=IDS)
def test_one_after_another(benchmark, grouped_mnist, k, hidden, threads):
    benchmark.group = f"{k} x hidden {hidden}, threads {threads or 'all'}"
    configs = group_configs(k, hidden, threads)
    ffnn.train(configs[0].replace(max_epochs=1), grouped_mnist)  # compile / load kernels first
    runs = []

    def run():
        runs.append([ffnn.train(c, grouped_mnist) for c in configs])
        return runs[-1]

    benchmark.pedantic(run, rounds=1 if k >= 50 else 3, iterations=1)
    best = min(sum(r.train_time for r in results) for results in runs)
    benchmark.extra_info["implementation"] = "train, one after another"
    record(benchmark, runs[-1], k, best)
