"""Per-epoch training time: 34,000 MNIST images in minibatches plus a validation pass over 6,000.

Workloads W1-W4 (``conftest.WORKLOADS``) x optimizers (Adam, Nesterov) x implementations
(``conftest.IMPLEMENTATIONS``: ffnn-numba with all cores and with one thread, ffnn's NumPy
reference, PyTorch, scikit-learn). ``benchmark.group = "<workload>|<optimizer>"``, so
pytest-benchmark's table puts the implementations of one workload side by side. Each round is
one epoch of a run that continues across rounds (one untimed warm-up epoch first, which also
keeps JIT compilation out of the timing); afterwards the validation accuracy must clear
``ACCURACY_FLOOR``, so a fast wrong kernel cannot pass.
"""

import pytest
from workloads import IMPLEMENTATIONS, OPTIMIZERS, THREADS, WORKLOADS, check_accuracy, skip_reason

# Implementation outermost: runs of one library stay together (fewer thread-pool hand-overs).
CASES = [(impl, w, o) for impl in IMPLEMENTATIONS for w in WORKLOADS for o in OPTIMIZERS]


@pytest.mark.parametrize("implementation, workload, optimizer", CASES,
                         ids=[f"{w}-{o}-{i}" for i, w, o in CASES])
def test_epoch(benchmark, mnist, implementation, workload, optimizer):
    reason = skip_reason(implementation)
    if reason:
        pytest.skip(reason)
    factory, rounds, _ = IMPLEMENTATIONS[implementation]
    w = WORKLOADS[workload]
    runner = factory(w, optimizer, mnist)
    benchmark.group = f"{workload}|{optimizer}"
    benchmark.name = implementation
    benchmark.extra_info.update(
        implementation=implementation, workload=workload, optimizer=optimizer,
        hidden_size=w.hidden_size, batch_size=w.batch_size, dtype=w.dtype,
        threads=1 if implementation.endswith("-1t") else THREADS)
    benchmark.pedantic(runner.epoch, rounds=rounds(w), iterations=1, warmup_rounds=1)
    benchmark.extra_info["val_accuracy"] = check_accuracy(
        runner, f"{implementation} {workload} {optimizer}")
