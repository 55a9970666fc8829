"""Where runs are computed: worker state, the two kinds of task, and the one execution loop.

Tasks are plain picklable functions, so any ``concurrent.futures.Executor`` runs them:

* ``train_task(task, fingerprints, costs)``: train the runs of one task (``plan.make_tasks``)
  and return ``(record, model)`` per run; a grouped task with one ``ffnn.train_many`` call,
  each other run with ``ffnn.train``.
* ``timing_task(requests, data, fingerprints, settings)``: measure per-epoch costs
  (``timing.measure_costs``) where the training runs, as a task of its own.

``run_tasks(executor, calls, window)`` is the one loop: it keeps at most ``window`` calls
submitted and yields ``(tag, result or exception)`` as each finishes. ``open_executor`` gives
the executor: ``InlineExecutor`` (this process, one call at a time), a ``ThreadPoolExecutor``,
a ``ProcessPoolExecutor`` (spawn; each worker exits when its parent dies), or a Dask cluster's
``Client.get_executor()``.

Every worker limits BLAS to one thread for the whole process (runs in several threads of one
process would otherwise race on restoring the process-wide limit), loads each data set once,
checks its fingerprint, and compiles (or loads) the kernels before its first run, so no train
time includes compilation.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any

from .plan import DataSpec, Task
from .records import make_record
from .timing import Cost, TimingKey, TimingSettings, measure_costs

__all__ = ["InlineExecutor", "open_executor", "prepare_worker", "release_worker",
           "run_tasks", "timing_task", "train_task"]

_STATE: dict[str, Any] = {"data": {}, "ready": set(), "blas": None}
_LOCK = threading.Lock()


def prepare_worker(data: DataSpec, fingerprints: dict[str, str], backends,
                   loaded: dict | None = None) -> None:
    """Load ``data`` once per dtype of ``fingerprints`` (checking each fingerprint) and compile
    or load the kernels of ``backends``; idempotent and thread-safe. ``loaded``: splits this
    process already has (dtype -> Splits)."""
    with _LOCK:
        if _STATE["blas"] is None:
            from threadpoolctl import threadpool_limits

            _STATE["blas"] = threadpool_limits(limits=1)
        for dtype, fingerprint in fingerprints.items():
            key = (data, dtype)
            if key not in _STATE["data"]:
                splits = (loaded or {}).get(dtype) or data.load(dtype)
                if splits.fingerprint() != fingerprint:
                    raise RuntimeError(
                        f"{splits.source}: data differ on worker {platform.node()} "
                        f"(fingerprint {splits.fingerprint()}, expected {fingerprint})")
                _STATE["data"][key] = splits
            for backend in backends:
                if (backend, dtype) not in _STATE["ready"]:
                    from ..kernels import get_backend

                    get_backend(backend).warm_up(dtype)
                    _STATE["ready"].add((backend, dtype))


def release_worker() -> None:
    """Drop the data and restore the BLAS limit (for in-process executors)."""
    with _LOCK:
        if _STATE["blas"] is not None:
            _STATE["blas"].restore_original_limits()
        _STATE.update(data={}, blas=None)


def _splits(data: DataSpec, dtype: str):
    return _STATE["data"][(data, dtype)]


def train_task(task: Task, fingerprints: dict[str, str], costs: dict[str, dict]) -> list:
    """Train the runs of ``task``; ``(record, model)`` per run. ``costs`` maps the timing key
    ids of grouped runs to their measured ``Cost`` dicts."""
    from ..grouped import train_many
    from ..training import train

    data = task[0].data
    prepare_worker(data, fingerprints, sorted({run.config.backend for run in task}))
    if task[0].grouped:
        splits = _splits(data, task[0].config.dtype)
        results = train_many([run.config for run in task], splits, calibrate=False)
    else:
        results = [train(run.config, _splits(data, run.config.dtype)) for run in task]
    out = []
    for run, result in zip(task, results, strict=True):
        cost = costs.get(run.timing.id)
        record = make_record(run, result, _splits(data, run.config.dtype),
                             None if cost is None else Cost.from_dict(cost))
        out.append((record, result.model))
    return out


def timing_task(requests: list[tuple[dict, dict]], data: DataSpec,
                fingerprints: dict[str, str], settings: TimingSettings) -> list[tuple]:
    """Measure the per-epoch costs of ``requests`` (``(key dict, TrainConfig dict)`` pairs) in
    this worker, interleaved round-robin; ``(key dict, cost dict)`` pairs."""
    from ..config import TrainConfig

    configs = [TrainConfig.from_dict(c) for _, c in requests]
    prepare_worker(data, fingerprints, sorted({c.backend for c in configs}))
    pairs = [(TimingKey.from_dict(k), c) for (k, _), c in zip(requests, configs, strict=True)]
    costs = measure_costs(pairs, lambda dtype: _splits(data, dtype), settings)
    return [(key.to_dict(), cost.to_dict()) for key, cost in costs.items()]


# --------------------------------------------------------------------------- executors


class InlineExecutor(Executor):
    """Runs each call in this process when it is submitted (``run_tasks`` submits one at a
    time, so results are recorded as they come)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - delivered through the future
            future.set_exception(e)
        return future


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent dies (e.g. kill -9), instead of lingering as an orphan."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="ffnn-parent-watch").start()


def _process_initializer(parent_pid: int) -> None:
    import signal

    # Ctrl-C reaches the whole process group; the parent alone handles it (and stops us).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(parent_pid)


@contextlib.contextmanager
def open_executor(kind: str, workers: int = 1, client=None) -> Iterator[tuple[Executor, int]]:
    """``(executor, window)`` for ``kind``: ``"inline"``, ``"threads"``, ``"processes"`` or
    ``"dask"`` (``client``: a connected ``distributed.Client``). ``window`` is how many calls
    to keep submitted. On exit, pending calls are cancelled and local workers stopped."""
    if kind == "inline":
        yield InlineExecutor(), 1
        return
    if kind == "dask":
        executor = client.get_executor(pure=False)
        n = max(1, sum(client.nthreads().values()))
        try:
            yield executor, 2 * n
        finally:
            executor.shutdown(wait=False)
        return
    if kind == "threads":
        from concurrent.futures import ThreadPoolExecutor

        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ffnn-study")
    elif kind == "processes":
        from concurrent.futures import ProcessPoolExecutor

        executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_process_initializer, initargs=(os.getpid(),))
        _spawn_ignoring_ctrl_c(executor, workers)
    else:
        raise ValueError(f"executor: {kind!r} is not one of inline, threads, processes, dask")
    try:
        yield executor, 2 * workers
    except BaseException:
        _stop(executor)
        raise
    executor.shutdown(wait=True, cancel_futures=True)


def _spawn_ignoring_ctrl_c(executor, workers: int) -> None:
    """Start every worker process now, with SIGINT ignored: an ignored signal stays ignored
    across exec, so a Ctrl-C (sent to the whole process group) never reaches a worker, not
    even while it starts up; the parent handles it alone and stops them."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for _ in range(workers):
            executor.submit(os.getpid)
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop(executor: Executor) -> None:
    """Cancel what has not started and end local worker processes now (Ctrl-C, an error):
    the runs they were computing are not recorded and a re-run computes them."""
    executor.shutdown(wait=False, cancel_futures=True)
    terminate = getattr(executor, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


def run_tasks(executor: Executor, calls: Iterable[tuple[Any, Any, tuple]], window: int
              ) -> Iterator[tuple[Any, Any]]:
    """Submit ``calls`` (``(tag, fn, args)``), at most ``window`` at a time, in order; yield
    ``(tag, result)`` as each finishes, ``result`` being the exception when the call failed.
    A dead worker process (``BrokenProcessPool``) ends the loop with ``RuntimeError``."""
    from concurrent.futures.process import BrokenProcessPool

    pending: dict[Future, Any] = {}
    calls = iter(calls)

    def top_up():
        for tag, fn, args in calls:
            pending[executor.submit(fn, *args)] = tag
            if len(pending) >= window:
                return

    top_up()
    while pending:
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in done:
            tag = pending.pop(future)
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                raise RuntimeError(f"a worker process died ({error}); every finished run is "
                                   "recorded, re-run the same command to compute the rest")
            yield tag, future.result() if error is None else error
        top_up()
