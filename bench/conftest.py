"""Benchmark fixtures and the machine record saved with every run.

Run with ``nox -s bench`` (or ``pytest bench --benchmark-enable``); ``bench/report.py`` turns the
saved JSON (``bench/results/latest.json``) into the markdown tables of the README and the docs.
"""

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
from workloads import N_TRAIN, N_VAL, standardised

import ffnn

_LOAD_AT_START = {}
REPO = Path(__file__).resolve().parent.parent
# The line counter (``python ../shared/tools/sloc.py kernels/*.py``): the nearest
# ``shared/tools/sloc.py`` above the repository, where there is one.
SLOC_TOOL = next((p / "shared" / "tools" / "sloc.py" for p in REPO.parents
                  if (p / "shared" / "tools" / "sloc.py").is_file()), None)


def pytest_sessionstart(session):
    _LOAD_AT_START["load"] = list(os.getloadavg())
    _LOAD_AT_START["time"] = time.time()


@pytest.fixture(scope="session")
def mnist():
    """34,000 training and 6,000 validation images (the benchmark's split)."""
    return ffnn.load_mnist(train_size=N_TRAIN, val_size=N_VAL, test_size=0)


@pytest.fixture(scope="session")
def mnist_standardised(mnist):
    """The same split after ``StandardScaler`` semantics (``workloads.standardised``)."""
    return standardised(mnist)


# ----------------------------------------------------------------------------- machine record
def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module):
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def _kernels_code_lines():
    """Code lines of ``kernels/*.py`` by the issue's counter, or None without it."""
    files = sorted(str(p) for p in (REPO / "kernels").glob("*.py"))
    if SLOC_TOOL is None or not files:
        return None
    out = subprocess.run([sys.executable, str(SLOC_TOOL), *files], capture_output=True,
                         text=True, check=False).stdout.split()
    return int(out[-2]) if len(out) >= 2 and out[-1] == "total" else None


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the figures depend on: CPU, cores, library versions, threads, BLAS, load."""
    import numba
    from threadpoolctl import threadpool_info

    machine_info["ffnn"] = {
        "cpu_model": _cpu_model(),
        "cores_available": len(os.sched_getaffinity(0)),
        "os_cpu_count": os.cpu_count(),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": os.environ.get("NUMBA_THREADING_LAYER", "default"),
        "versions": {m: _version(m) for m in ("ffnn", "numpy", "numba", "llvmlite", "torch",
                                              "sklearn", "threadpoolctl")},
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
        "omp_env": {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "MKL_"))},
        "threadpools": threadpool_info(),
        "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "kernels_code_lines": _kernels_code_lines(),
        # FFNN_BENCH_ROUNDS (workloads.rounds): set for a quick smoke run, whose figures mean
        # nothing.
        "rounds_override": os.environ.get("FFNN_BENCH_ROUNDS"),
        # Other processes on the machine (1, 5, 15-minute load averages) when the session
        # started and when it ended (the benchmarks themselves add about 1-2).
        "load_average": _LOAD_AT_START.get("load"),
        "load_average_end": list(os.getloadavg()),
        "session_seconds": round(time.time() - _LOAD_AT_START.get("time", time.time()), 1),
    }
