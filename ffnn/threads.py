"""One knob for both thread pools: numba's and BLAS's.

On a 2-core machine two busy pools fight each other, so training sets both to the same count and
restores them afterwards (pynndescent's pattern: what a call sets, it puts back).
"""

import os
from contextlib import contextmanager

from threadpoolctl import threadpool_info, threadpool_limits


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextmanager
def limit_threads(threads: int | None):
    """Run the body with ``threads`` numba and BLAS threads (None: all cores)."""
    import numba

    n = available_cores() if threads is None else threads
    n = min(n, numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        numba.set_num_threads(previous)


def blas_info() -> list[dict]:
    """What threadpoolctl reports (library, version, threads, core type), plus OpenBLAS env vars."""
    env = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    return [dict(pool, env=env) for pool in threadpool_info()]
