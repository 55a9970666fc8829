"""One network, 1 or 2 threads, while another process keeps one core busy (suite ``busy``).

Issue 11 keeps a helper thread for K = 1 only if it still gains, and loses nothing, with another
process busy on the second core. These rows measure exactly that: W1 (Adam) through
``ffnn.train`` at 1 and at 2 threads, the epoch protocol of ``test_epoch_bench.py``, while a
child process spins on one core for the duration of the benchmark (started and stopped by the
fixture). The report shows both and their ratio.
"""

import subprocess
import sys

import pytest
from workloads import IMPLEMENTATIONS, WORKLOADS, bench_epochs

EPOCHS = 5
ROUNDS = 3
ROWS = [i for i in IMPLEMENTATIONS if i.name == "ffnn-numba"]


@pytest.fixture()
def busy_core():
    """A child process spinning on one core while the test runs."""
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield child.pid
    child.kill()
    child.wait()


@pytest.mark.parametrize("implementation", ROWS, ids=[i.label.replace(" ", "-") for i in ROWS])
def test_w1_next_to_a_busy_core(benchmark, mnist, busy_core, implementation):
    benchmark.group = "busy W1 adam"
    benchmark.name = implementation.label
    bench_epochs(benchmark, implementation, WORKLOADS["W1"], "adam", mnist, suite="busy",
                 epochs=EPOCHS, n_rounds=ROUNDS)
