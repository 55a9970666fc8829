"""Study execution: plan the runs, skip the recorded ones, compute the rest, record, report.

A *run* is one (study, setting, repeat); repeat ``r`` trains with ``seed = shuffle_seed =
base_seed + r`` and ``threads=1``. Runs are executed in *tasks*, tuples of runs. When the
settings of a repeat can be trained together (``ffnn.grouped.check_group``: same minibatch order,
batch size, dtype and threads; numba backend; at least two settings) and grouping is on, the
plan marks them *grouped* and a task holds the not yet recorded runs of one repeat, trained by
one ``ffnn.train_many`` call; otherwise a task is one run trained by ``ffnn.train``. Grouped
runs report a calibrated train time (``train_time_source = "calibrated"``: epochs x the solo
per-epoch time of their configuration); runs trained alone report measured wall time.

Executors: ``workers=1`` computes in this process; ``workers=N`` in N local processes
(``ProcessPoolExecutor``, spawn context; each worker loads the data once in its initializer);
``scheduler=ADDRESS`` on a Dask distributed cluster (one task per worker thread);
``executor="threads"`` (Python only) in N threads of this process. On 2 cores two processes and
two threads tie, and both beat one process running each group on two threads
(``StudyOptions.threads=2``) by ~20 % (measured; see the README's study section), so the CLI
uses processes. Workers only compute: they return records, and this process alone writes them
(``ResultStore``).

Before any worker starts, this process compiles the kernels (``backend.warm_up`` and, for
grouped tasks, ``kernels.grouped.warm_up``), so numba's
on-disk cache is written once and workers only load it; every worker warms up again before its
first run, so no ``train_time`` includes compilation.

Reproducibility: every run (or group) is single-threaded (numba and BLAS), so every non-timing
field of a record (``results.non_timing``) is bitwise identical whichever executor computed it.
A grouped run's last bits also depend on its group's members, which its key therefore includes
(``results.run_key``); the one exception is a group whose records were cut in part by an
interruption: its missing runs are recomputed in a smaller group and agree with an uninterrupted
run to rounding, not bitwise.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .grouped import check_group
from .record_schema import RECORD_FORMAT, RecordError
from .report import CURVES_FILE, PLAN_FILE, REPORT_FILE, TEST_FILE
from .results import RESULTS_FILE, ResultStore, run_key
from .run_lock import RunLock
from .safe_io import naming, write_atomic
from .study_specs import StudySpec

__all__ = [
    "DataSpec", "Run", "StudyOptions", "StudyOutcome", "check_study_options", "execute_task",
    "plan_study", "run_studies", "study_dir",
]

LOG_DIR = "logs"
log = logging.getLogger("ffnn.study")


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class DataSpec:
    """How every worker loads the data: ``load_mnist(path, sizes, seed=split_seed, dtype)``."""

    path: str | None = None
    train_size: int | None = None
    val_size: int = 6000
    test_size: int | None = None
    split_seed: int = 0

    def load(self, dtype: str):
        from .data import load_mnist

        return load_mnist(self.path, train_size=self.train_size, val_size=self.val_size,
                          test_size=self.test_size, seed=self.split_seed, dtype=dtype)


def data_identity(splits, spec: DataSpec) -> dict:
    """What enters the key: the fingerprint, the actual split sizes and the split seed."""
    return {"fingerprint": splits.fingerprint(), "train_size": len(splits.y_train),
            "val_size": len(splits.y_val), "test_size": len(splits.y_test),
            "split_seed": spec.split_seed}


@dataclass(frozen=True)
class Run:
    """One (study, setting, repeat) with its full config and key."""

    study: str
    parameter: str
    setting: str
    value: Any
    repeat: int
    config: TrainConfig
    key: str
    grouped: bool = False


Task = tuple[Run, ...]


@dataclass(frozen=True)
class StudyOptions:
    """Command-wide choices (``max_epochs=None``: each study's own, 250 for the built-ins).

    ``group``: train the settings of a repeat together where they can be (``group_reason``).
    ``threads``: numba/BLAS threads of every run or group (1: reproducible whichever executor;
    keys include it, through the config).
    """

    repeats: int = 10
    max_epochs: int | None = None
    backend: str = "numba"
    seed: int = 0
    data: DataSpec = field(default_factory=DataSpec)
    group: bool = True
    threads: int = 1


def group_reason(configs: Sequence[TrainConfig], group: bool = True) -> str | None:
    """``None`` when ``configs`` (the settings of one repeat) are trained as one group, else why
    not (for the log)."""
    if not group:
        return "grouping is off (--no-group)"
    if len(configs) < 2:
        return "a single setting"
    backends = sorted({c.backend for c in configs})
    if backends != ["numba"]:
        return f"the {'/'.join(backends)} backend (grouped training uses numba kernels)"
    try:
        check_group(configs)
    except ValueError as e:
        return str(e).split(":")[0] + " differs between the settings"
    return None


def plan_study(spec: StudySpec, options: StudyOptions, identities: dict[str, dict]) -> list[Run]:
    """Every run of ``spec``, repeat-major (all settings of repeat 0, then of repeat 1, ...).

    ``identities`` maps a dtype to its ``data_identity``. The runs of a repeat are grouped (each
    ``Run.grouped``, keys with the group's members) when ``group_reason`` allows it.
    """
    runs = []
    for r in range(options.repeats):
        extra = {"seed": options.seed + r, "shuffle_seed": options.seed + r,
                 "backend": options.backend, "threads": options.threads}
        if options.max_epochs is not None and spec.parameter != "max_epochs":
            extra["max_epochs"] = options.max_epochs
        configs = [spec.config(value, **extra) for value in spec.values]
        solo = [run_key(c.to_dict(), identities[c.dtype]) for c in configs]
        grouped = group_reason(configs, options.group) is None
        for value, config, key in zip(spec.values, configs, solo, strict=True):
            if grouped:
                key = run_key(config.to_dict(), identities[config.dtype], group=solo)
            runs.append(Run(spec.name, spec.parameter, spec.setting_label(value), value, r,
                            config, key, grouped))
    return runs


def make_tasks(runs: Sequence[Run]) -> list[Task]:
    """The units of execution, in the order of ``runs``: the grouped runs of one (study, repeat)
    together (only those given, i.e. not yet recorded), every other run alone."""
    tasks: list[list[Run]] = []
    groups: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        if not run.grouped:
            tasks.append([run])
        elif (run.study, run.repeat) in groups:
            groups[(run.study, run.repeat)].append(run)
        else:
            tasks.append(groups.setdefault((run.study, run.repeat), [run]))
    return [tuple(task) for task in tasks]


def study_dir(out, name: str) -> Path:
    return Path(out) / name


# --------------------------------------------------------------------------- worker side

_STATE: dict[str, Any] = {"data": {}, "ready": set(), "blas": None}
_LOCK = threading.Lock()


def prepare_worker(data: DataSpec, fingerprints: dict[str, str], backends: Sequence[str],
                   loaded: dict | None = None) -> None:
    """Load the data (once per dtype) and compile or load the kernels; idempotent, thread-safe.

    Also limits BLAS to one thread for the whole process: runs in several threads of one process
    (Dask) would otherwise race on restoring the process-wide BLAS limit.
    """
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
                    from .kernels import get_backend

                    get_backend(backend).warm_up(dtype)
                    _STATE["ready"].add((backend, dtype))


def release_worker() -> None:
    """Drop the data and restore the BLAS limit (for in-process executors)."""
    with _LOCK:
        if _STATE["blas"] is not None:
            _STATE["blas"].restore_original_limits()
        _STATE.update(data={}, blas=None)


def _process_initializer(data, fingerprints, backends, parent_pid):
    _watch_parent(parent_pid)
    prepare_worker(data, fingerprints, backends)


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent dies (e.g. kill -9), instead of lingering as an orphan."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="ffnn-parent-watch").start()


def execute_task(task: Task, data: DataSpec, fingerprints: dict[str, str]) -> list[dict]:
    """Train the runs of ``task`` and return their records (written by the caller): a grouped
    task with one ``train_many`` call (calibrated train times), any other run with ``train``."""
    from .training import train

    prepare_worker(data, fingerprints, sorted({run.config.backend for run in task}))
    if task[0].grouped:
        from .grouped import train_many

        splits = _STATE["data"][(data, task[0].config.dtype)]
        results = train_many([run.config for run in task], splits, calibrate=True)
        return [make_record(run, result, splits, data)
                for run, result in zip(task, results, strict=True)]
    records = []
    for run in task:
        splits = _STATE["data"][(data, run.config.dtype)]
        result = train(run.config, splits)
        records.append(make_record(run, result, splits, data))
    return records


def make_record(run: Run, result, splits, data: DataSpec) -> dict:
    """The JSON record of one finished run (see ``results`` for the timing fields).

    ``grouped`` and ``group_size`` say how it was trained; a grouped run's ``train_time`` is
    calibrated (``calibration_epoch_seconds`` x epochs) and ``group_wall_time`` is its whole
    group's measured epoch-loop time; both are ``None`` for a run trained alone.
    """
    config = run.config
    hist = result.history
    extra = result.extra
    return {
        "format": RECORD_FORMAT,
        "key": run.key,
        "study": run.study,
        "parameter": run.parameter,
        "setting": run.setting,
        "value": run.value,
        "repeat": run.repeat,
        "seed": config.seed,
        "shuffle_seed": config.effective_shuffle_seed,
        "config": config.to_dict(),
        "data": {**data_identity(splits, data), "source": splits.source,
                 "n_features": splits.n_features, "n_classes": splits.n_classes},
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "stopped_early": bool(result.stopped_early),
        "diverged": bool(result.diverged),
        **{name: float(getattr(result, name)) for name in (
            "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
            "test_accuracy")},
        "history": {
            "train_loss": [float(e.train_loss) for e in hist],
            "val_loss": [float(e.val_loss) for e in hist],
            "val_accuracy": [float(e.val_accuracy) for e in hist],
            "seconds": [float(e.seconds) for e in hist],
        },
        "backend": config.backend,
        "dtype": config.dtype,
        "versions": dict(_versions()),
        "machine": dict(_machine()),
        "grouped": run.grouped,
        "group_size": int(extra.get("group_size", 1)),
        "train_time": float(result.train_time),
        "train_time_source": result.train_time_source,
        "group_wall_time": _float_or_none(extra.get("group_wall_time")),
        "calibration_epoch_seconds": _float_or_none(extra.get("calibration_epoch_seconds")),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "worker": {"host": platform.node(), "pid": os.getpid(),
                   "thread": threading.current_thread().name},
    }


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


@functools.cache
def _versions() -> dict:
    import numba
    import numpy

    from . import __version__

    return {"ffnn": __version__, "python": platform.python_version(),
            "numpy": numpy.__version__, "numba": numba.__version__}


@functools.cache
def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "host": platform.node(),
            "system": platform.system()}


# --------------------------------------------------------------------------- executors


def _inline(tasks, data, fingerprints) -> Iterator[tuple[Task, list | BaseException]]:
    for task in tasks:
        try:
            yield task, execute_task(task, data, fingerprints)
        except Exception as e:  # noqa: BLE001 - reported per task by the caller
            yield task, e


def _processes(tasks, data, fingerprints, workers, backends):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_process_initializer,
        initargs=(data, fingerprints, backends, os.getpid()))
    try:
        futures = {pool.submit(execute_task, task, data, fingerprints): task for task in tasks}
        for future in as_completed(futures):
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                raise RuntimeError(f"a worker process died ({error}); every finished run is "
                                   "recorded, re-run the same command to compute the rest")
            yield futures[future], future.result() if error is None else error
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _threads(tasks, data, fingerprints, workers):
    """``workers`` threads of this process (the kernels release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ffnn-study")
    try:
        futures = {pool.submit(execute_task, task, data, fingerprints): task for task in tasks}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], future.result() if error is None else error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- driver


@dataclass
class StudyOutcome:
    """What one study's execution did; ``report`` is the markdown written to ``report.md``."""

    spec: StudySpec
    directory: Path
    total: int
    skipped: int
    computed: int = 0
    failed: int = 0
    report: str | None = None


class _TqdmHandler(logging.Handler):
    def emit(self, record):
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001
            self.handleError(record)


class _RunFilter(logging.Filter):
    def __init__(self, show_runs):
        super().__init__()
        self.show_runs = show_runs

    def filter(self, record):
        return self.show_runs or not getattr(record, "per_run", False)


class _LogFileHandler(logging.FileHandler):
    """A study's log file; a write that fails (full disk) is said once, in one line naming the
    file, instead of a traceback per message (the records, not the log, are what counts)."""

    failed = False

    def handleError(self, record):
        if not self.failed:
            self.failed = True
            error = sys.exc_info()[1]
            sys.stderr.write(f"ffnn-run: cannot write the log {self.baseFilename} "
                             f"({getattr(error, 'strerror', None) or error}); going on "
                             "without it\n")


def _study_logger(out: Path, name: str) -> tuple[logging.Logger, logging.Handler]:
    with naming(out / LOG_DIR):
        (out / LOG_DIR).mkdir(parents=True, exist_ok=True)
    handler = _LogFileHandler(out / LOG_DIR / f"{name}.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = log.getChild(name)
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, handler


def check_study_options(specs: Sequence[StudySpec], options: StudyOptions,
                        scheduler: str | None = None) -> None:
    """Refuse, before anything is loaded or written, what would fail run by run: early
    stopping without validation images, several threads per run on Dask, a malformed scheduler
    address (``ValueError`` naming the option)."""
    if scheduler is not None:
        from .dask_executor import check_address

        check_address(scheduler)
        if options.threads > 1:
            raise ValueError(f"threads: {options.threads} threads per run cannot go to Dask "
                             "workers (numba's parallel regions in several worker threads); "
                             "use threads=1")
    if options.data.val_size == 0:
        stopping = [spec.name for spec in specs
                    if any(spec.config(v).early_stopping for v in spec.values)]
        if stopping:
            raise ValueError(f"val_size: 0 validation images, but study {', '.join(stopping)} "
                             "stops early on the validation loss; give a positive val_size "
                             "(--val-size) or a study without early stopping")


def run_studies(specs: Sequence[StudySpec], options: StudyOptions, out, *, workers: int = 1,
                scheduler: str | None = None, fresh: bool = False, console: bool = True,
                verbose: bool = False, progress: bool | None = None,
                on_report: Callable[[StudyOutcome], None] | None = None,
                executor: str = "processes",
                scheduler_timeout: float | None = None) -> list[StudyOutcome]:
    """Run ``specs`` with ``options`` into ``out``; returns one ``StudyOutcome`` per study.

    Nothing under ``out`` is touched before the options are checked (``check_study_options``),
    the Dask scheduler (if any) answered within ``scheduler_timeout`` seconds
    (``dask_executor.connect``) and the output directory's ``RunLock`` is taken; it is held
    until the last report is written, so a second writer (``fresh`` or not) is refused with
    ``run_lock.OutputLocked``. Each study's report is written (and ``on_report`` called) as
    soon as its last run is recorded. ``progress=None`` shows a progress bar only when stderr
    is a terminal.
    """
    out = Path(out)
    check_study_options(specs, options, scheduler)
    client = None
    if scheduler is not None:
        from .dask_executor import connect

        client = connect(scheduler, scheduler_timeout)
    try:
        return _run_locked(specs, options, out, workers=workers, client=client, fresh=fresh,
                           console=console, verbose=verbose, progress=progress,
                           on_report=on_report, executor=executor,
                           executor_name=_executor_name(workers, scheduler, options.threads))
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _run_locked(specs, options, out: Path, *, workers, client, fresh, console, verbose,
                progress, on_report, executor, executor_name) -> list[StudyOutcome]:
    from tqdm import tqdm

    from .kernels import get_backend
    from .report import write_study_report, write_summary

    handlers: list[tuple[logging.Logger, logging.Handler]] = []
    show_bar = sys.stderr.isatty() if progress is None else progress
    if console:
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(_RunFilter(verbose or not show_bar))
        log.addHandler(handler)
        handlers.append((log, handler))
    log.setLevel(logging.INFO)
    log.propagate = False
    stores: dict[str, ResultStore] = {}
    lock = RunLock(out)
    try:
        # The data (once per dtype) and its identity, in this process.
        dtypes = sorted({spec.config(v).dtype for spec in specs for v in spec.values})
        loaded = {dtype: options.data.load(dtype) for dtype in dtypes}
        identities = {d: data_identity(s, options.data) for d, s in loaded.items()}
        fingerprints = {d: i["fingerprint"] for d, i in identities.items()}
        lock.acquire()  # before anything under out is created, truncated or deleted

        outcomes, pending, loggers = {}, [], {}
        for spec in specs:
            directory = study_dir(out, spec.name)
            with naming(directory):
                directory.mkdir(parents=True, exist_ok=True)
            logger, handler = _study_logger(out, spec.name)
            handlers.append((logger, handler))
            loggers[spec.name] = logger
            if fresh:
                for stale in (REPORT_FILE, CURVES_FILE, TEST_FILE, PLAN_FILE):
                    with naming(directory / stale):
                        (directory / stale).unlink(missing_ok=True)
            store = stores[spec.name] = ResultStore(directory / RESULTS_FILE, fresh=fresh)
            runs = plan_study(spec, options, identities)
            write_atomic(directory / PLAN_FILE, json.dumps({
                "study": spec.to_dict(),
                "options": {**asdict(options), "data": asdict(options.data)},
                "data": identities,
                "runs": [{"key": r.key, "setting": r.setting, "value": r.value,
                          "repeat": r.repeat, "grouped": r.grouped} for r in runs],
            }, indent=1))
            todo = [r for r in runs if r.key not in store]
            planned = {r.key for r in runs}
            others = sum(1 for k in store.records if k not in planned)
            outcomes[spec.name] = StudyOutcome(spec, directory, len(runs), len(runs) - len(todo))
            logger.info("study %s: %d settings x %d repeats = %d runs; %d already recorded, "
                        "%d to run (%s, %s)", spec.name, len(spec.values), options.repeats,
                        len(runs), len(runs) - len(todo), len(todo), options.backend,
                        executor_name)
            reason = group_reason([r.config for r in runs if r.repeat == 0], options.group)
            logger.info("the settings of each repeat are %s", "trained together (grouped, "
                        "calibrated train times)" if reason is None else
                        f"trained one by one (measured train times): {reason}")
            if others:
                logger.info("%s: %d records from other flags or data are kept but not used",
                            store.path, others)
            for problem in store.problems:
                logger.warning("%s; ignored, its run is computed again", problem)
            pending.extend(todo)

        remaining = {name: sum(1 for r in pending if r.study == name) for name in outcomes}

        def finish(name):
            outcome = outcomes[name]
            outcome.report = write_study_report(outcome.directory,
                                                records=list(stores[name].records.values()))
            loggers[name].info("study %s done: %d computed, %d recorded before, %d failed; "
                               "report in %s", name, outcome.computed, outcome.skipped,
                               outcome.failed, outcome.directory / REPORT_FILE)
            if on_report is not None:
                on_report(outcome)

        for name, count in remaining.items():
            if count == 0:
                finish(name)

        if pending:
            # Compile (or load from numba's cache) here, before any worker starts.
            for dtype in dtypes:
                get_backend(options.backend).warm_up(dtype)
                if any(run.grouped for run in pending):
                    from .kernels import grouped

                    grouped.warm_up(dtype)
            tasks = make_tasks(pending)
            workers = min(workers, len(tasks))
            if client is not None:
                from .dask_executor import run_tasks

                prepare_worker(options.data, fingerprints, [options.backend], loaded)
                results = run_tasks(client, tasks, execute_task, options.data, fingerprints)
            elif workers <= 1:
                prepare_worker(options.data, fingerprints, [options.backend], loaded)
                results = _inline(tasks, options.data, fingerprints)
            elif executor == "threads":
                prepare_worker(options.data, fingerprints, [options.backend], loaded)
                results = _threads(tasks, options.data, fingerprints, workers)
            else:
                results = _processes(tasks, options.data, fingerprints, workers,
                                     [options.backend])
            del loaded
            bar = tqdm(total=sum(o.total for o in outcomes.values()),
                       initial=sum(o.skipped for o in outcomes.values()), unit="run",
                       disable=not show_bar, dynamic_ncols=True, file=sys.stderr,
                       desc=specs[0].name if len(specs) == 1 else "studies")
            with bar:
                try:
                    for task, result in results:
                        name = task[0].study
                        if not isinstance(result, BaseException):
                            try:
                                stores[name].extend(result)
                            except RecordError as e:
                                result = e
                        if isinstance(result, BaseException):
                            _fail(loggers[name], task, result)
                            outcomes[name].failed += len(task)
                        else:
                            outcomes[name].computed += len(result)
                            for record in result:
                                _log_run(loggers[name], record)
                        bar.update(len(task))
                        remaining[name] -= len(task)
                        if remaining[name] == 0:
                            finish(name)
                finally:
                    results.close()
        if len(specs) > 1:
            write_summary(out, [spec.name for spec in specs],
                          {name: list(store.records.values()) for name, store in stores.items()})
        return list(outcomes.values())
    except KeyboardInterrupt:
        log.warning("interrupted: every finished run is recorded; re-run the same command "
                    "to compute the rest")
        raise
    finally:
        release_worker()
        for store in stores.values():
            store.close()
        lock.release()
        for logger, handler in handlers:
            logger.removeHandler(handler)
            handler.close()


def _executor_name(workers, scheduler, threads=1) -> str:
    if scheduler is not None:
        return f"Dask scheduler {scheduler}"
    where = "in this process" if workers <= 1 else f"{workers} worker processes"
    return where if threads == 1 else f"{where}, {threads} threads each"


def _log_run(logger, record) -> None:
    status = ("diverged" if record["diverged"] else
              "stopped early" if record["stopped_early"] else "max epochs")
    logger.info("%s=%s repeat %d: %d epochs (%s, best %d), %.2f s%s, test loss %.4f, "
                "test accuracy %.2f %%", record["parameter"], record["setting"],
                record["repeat"], record["epochs"], status, record["best_epoch"],
                record["train_time"],
                f" calibrated (group of {record['group_size']}: "
                f"{record['group_wall_time']:.2f} s wall)" if record["grouped"] else "",
                record["test_loss"], 100 * record["test_accuracy"], extra={"per_run": True})
    if record["diverged"]:
        logger.warning("%s=%s repeat %d diverged at epoch %d; recorded, the study goes on",
                       record["parameter"], record["setting"], record["repeat"],
                       record["epochs"])


def _fail(logger, task, error) -> None:
    for run in task:
        logger.error("%s=%s repeat %d failed (%s: %s); not recorded, a re-run retries it",
                     run.parameter, run.setting, run.repeat, type(error).__name__, error)
