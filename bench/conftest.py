"""Benchmark fixtures and the machine record saved with every run.

Run with ``nox -s bench`` (or ``pytest bench --benchmark-enable``); ``bench/report.py`` turns the
saved JSON into the markdown table of ``docs/kernels.md``.
"""

import os
import platform
import time

import pytest
from workloads import N_TRAIN, N_VAL, THREADS

import ffnn
from ffnn.threads import available_cores, blas_info

_LOAD_AT_START = {}


def pytest_sessionstart(session):
    if hasattr(os, "getloadavg"):
        _LOAD_AT_START["load"] = list(os.getloadavg())


@pytest.fixture(scope="session")
def mnist():
    """34,000 training and 6,000 validation images (the benchmark's split)."""
    return ffnn.load_mnist(train_size=N_TRAIN, val_size=N_VAL, test_size=0)


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


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the figures depend on: CPU, cores, library versions, threads, BLAS."""
    import numba

    machine_info["ffnn"] = {
        "cpu_model": _cpu_model(),
        "cores_available": available_cores(),
        "os_cpu_count": os.cpu_count(),
        "threads": THREADS,
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": os.environ.get("NUMBA_THREADING_LAYER", "default"),
        "versions": {m: _version(m) for m in ("ffnn", "numpy", "numba", "llvmlite", "torch",
                                              "sklearn", "threadpoolctl")},
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
        "omp_env": {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "MKL_"))},
        "threadpools": blas_info(),
        "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        # Other processes on the machine (1, 5, 15-minute load averages) when the session
        # started and when it ended (the benchmarks themselves add about 1-2).
        "load_average": _LOAD_AT_START.get("load"),
        "load_average_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
