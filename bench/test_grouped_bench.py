"""Many networks in one call (suite ``grouped``): ``ffnn.train_many`` against the same networks
trained one after another by ``ffnn.train``.

Workload: 34,000 / 6,000 MNIST images, ``TrainConfig`` defaults (ELU, Adam, batch 250, float32,
numba, early stopping on: with ``EPOCHS`` below its patience it never stops), hidden 10 or 100,
the networks differing in ``seed`` and ``learning_rate`` (``LEARNING_RATES``) and sharing
``shuffle_seed``. ``train_many`` is called with ``calibrate=False`` (its default after issue 11)
and everything is compiled before the first round.

Two figures per row, from the same rounds:

* **call seconds** (pytest-benchmark's own statistics): one round is the whole user-visible call,
  ``train_many(configs, splits, calibrate=False)``, or for ``alone`` the K ``train`` calls one
  after another: data preparation, ``EPOCHS`` epochs and the final metrics of every network.
  The targets that compare two rows (K = 5 against the same five alone; K = 10 at 2 threads
  against 1 thread) compare these.
* **per model-epoch** (``extra_info["per_model_epoch_median"]``): the interval between the ends
  of successive group epochs (the first callback of each epoch), divided by the networks in the
  group; for ``alone``, the interval between successive epochs of each ``train`` call. As in the
  epoch suite, the first epoch of every call is not timed.

Every network must train (finite, falling training loss; validation accuracy >= the floor) and
run all ``EPOCHS`` epochs.
"""

import time

import numpy as np
import pytest
from workloads import RunLog, ffnn_callback, rounds, subset

import ffnn

EPOCHS = 4  # the protocol: 5 configurations x 4 epochs
LEARNING_RATES = (1e-3, 2e-3, 5e-4, 3e-3, 1.5e-3)
# (mode, K, hidden, threads, rounds)
CASES = [
    ("train_many", 1, 10, 1, 5),
    ("train_many", 5, 10, 1, 5),
    ("alone", 5, 10, 1, 5),
    ("train_many", 10, 10, 1, 3),
    ("train_many", 10, 10, 2, 3),
    ("train_many", 5, 100, 1, 2),
]


def group_configs(k, hidden, threads):
    base = ffnn.TrainConfig(hidden_size=hidden, threads=threads, max_epochs=EPOCHS,
                            shuffle_seed=0)
    return [base.replace(seed=i, learning_rate=LEARNING_RATES[i % len(LEARNING_RATES)])
            for i in range(k)]


def check(results, logs):
    for result, log in zip(results, logs, strict=True):
        assert not result.diverged and result.epochs == EPOCHS, (
            f"{log.label}: diverged={result.diverged}, epochs={result.epochs}")
        log.check(EPOCHS)


def run_many(configs, splits):
    """``train_many``; returns the per-model-epoch intervals, the results and their logs."""
    logs = [RunLog(f"train_many[{i}]") for i in range(len(configs))]
    ends = {}

    def on_epoch(i, record):
        ends.setdefault(record.epoch, time.perf_counter())
        logs[i].epoch_end(record.train_loss, record.val_loss, record.val_accuracy)

    results = ffnn.train_many(configs, splits, callback=on_epoch, calibrate=False)
    group_epochs = np.diff([ends[e] for e in sorted(ends)])
    return list(group_epochs / len(configs)), results, logs


def run_alone(configs, splits):
    """The same configurations, one ``train`` call each, one after another."""
    logs = [RunLog(f"train[{i}]") for i in range(len(configs))]
    results = [ffnn.train(c, splits, callback=ffnn_callback(log))
               for c, log in zip(configs, logs, strict=True)]
    return [s for log in logs for s in log.intervals()], results, logs


@pytest.mark.parametrize(("mode", "k", "hidden", "threads", "n_rounds"), CASES,
                         ids=[f"{m}-K{k}-H{h}-{t}t" for m, k, h, t, _ in CASES])
def test_grouped(benchmark, mnist, mode, k, hidden, threads, n_rounds):
    benchmark.group = f"grouped K={k} hidden {hidden}"
    benchmark.name = f"{mode} {threads}t"
    configs = group_configs(k, hidden, threads)
    run = run_many if mode == "train_many" else run_alone
    run([c.replace(max_epochs=1) for c in configs[:2]], subset(mnist))  # compile first
    per_model_epoch, calls = [], []

    def one_round():
        start = time.perf_counter()
        intervals, results, logs = run(configs, mnist)
        calls.append(time.perf_counter() - start)
        check(results, logs)
        per_model_epoch.extend(intervals)
        return results

    results = benchmark.pedantic(one_round, rounds=rounds(n_rounds), iterations=1)
    benchmark.extra_info.update(
        suite="grouped", mode=mode, k=k, hidden_size=hidden, threads=threads, epochs=EPOCHS,
        call_seconds=calls, call_median=float(np.median(calls)),
        per_model_epoch_seconds=per_model_epoch,
        per_model_epoch_median=float(np.median(per_model_epoch)),
        train_time_source=sorted({str(getattr(r, "train_time_source", "")) for r in results}),
        val_accuracy_min=min(r.val_accuracy for r in results))
