"""Per-epoch training time of W1-W5 (suite ``epoch``): every implementation side by side.

Workloads W1-W5 (``workloads.WORKLOADS``; the two-layer W5 with Adam only) x optimizers (Adam,
Nesterov) x implementations
(``workloads.IMPLEMENTATIONS``: ffnn on every backend of ``ffnn.kernels.BACKENDS``, numba at 1
and 2 threads; eager PyTorch with fused optimizers and scikit-learn at 2 threads). Each
pytest-benchmark round is one fresh run of ``EPOCHS`` epochs through the implementation's own
loop (``ffnn.train`` for ffnn); the row's figure is the median of the intervals between
successive epoch ends over all rounds (``extra_info["epoch_median"]``), so the first epoch of a
run is never timed. Every run must train: finite losses, a falling training loss, validation
accuracy >= ``ACCURACY_FLOOR``.
"""

import pytest
from workloads import IMPLEMENTATIONS, OPTIMIZERS, WORKLOADS, bench_epochs

EPOCHS = 5  # per run: 4 timed intervals
ROUNDS = {"W1": 3, "W2": 2, "W3": 2, "W4": 2, "W5": 2}
ADAM_ONLY = {"W5"}

# Implementation outermost: runs of one library stay together (fewer thread-pool hand-overs).
CASES = [(impl, w, o) for impl in IMPLEMENTATIONS for w in WORKLOADS for o in OPTIMIZERS
         if o == "adam" or w not in ADAM_ONLY]


@pytest.mark.parametrize("implementation, workload, optimizer", CASES,
                         ids=[f"{w}-{o}-{i.label.replace(' ', '-')}" for i, w, o in CASES])
def test_epoch(benchmark, mnist, implementation, workload, optimizer):
    benchmark.group = f"epoch {workload} {optimizer}"
    benchmark.name = implementation.label
    bench_epochs(benchmark, implementation, WORKLOADS[workload], optimizer, mnist,
                 suite="epoch", epochs=EPOCHS, n_rounds=ROUNDS[workload])
