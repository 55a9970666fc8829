"""Running studies: ``run_studies`` (several, into one output directory) and ``run_study``.

For each study: resolve its options (command line over study file over defaults), plan its
runs, skip the recorded ones, measure the per-epoch costs its grouped runs still lack, compute
the rest on one executor, record every run (model first, then record) as it finishes, and
write the study's report as soon as its last run is recorded; at the end ``summary.md`` over
every study under ``out``. Nothing under ``out`` is touched before the options are checked,
the Dask scheduler (if any) answered and the output directory's lock taken; the lock is held
until the summary is written.

Before any worker starts, this process compiles the kernels, so numba's on-disk cache is
written once and workers only load it.

Reproducibility: every run (or group) is single-threaded (numba and BLAS), so every non-timing
field of a record (``store.non_timing``) is bitwise identical whichever executor computed it.
A grouped run's last bits also depend on its group's members, which its key therefore names.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..safe_io import naming, replacing, write_atomic
from . import execute, report
from .plan import (
    DataSpec,
    Run,
    StudyOptions,
    data_identity,
    group_reason,
    make_tasks,
    plan_study,
    resolve_options,
)
from .records import RecordError
from .specs import StudyError, StudySpec, builtin_study, load_study_file
from .store import RESULTS_FILE, ResultStore
from .timing import Cost, TimingKey, TimingSettings, TimingStore

__all__ = ["StudyOutcome", "StudyResult", "run_studies", "run_study"]

LOG_DIR = "logs"
log = logging.getLogger("ffnn.studies")


@dataclass
class StudyOutcome:
    """What one study's execution did; ``report`` is the markdown written to ``report.md``."""

    spec: StudySpec
    directory: Path
    options: StudyOptions
    sources: dict
    runs: list[Run]
    todo: list[Run]
    store: ResultStore
    logger: logging.Logger
    computed: int = 0
    failed: int = 0
    report: str | None = None

    @property
    def total(self) -> int:
        return len(self.runs)

    @property
    def skipped(self) -> int:
        return len(self.runs) - len(self.todo)


def run_studies(specs: Sequence[StudySpec], options: StudyOptions | None = None,
                out="results", *, given: dict | None = None, workers: int = 1,
                scheduler: str | None = None, executor: str = "processes",
                fresh: bool = False, retime: bool = False, save_models: bool = True,
                progress: bool | None = None, timing: TimingSettings | None = None,
                on_report: Callable[[StudyOutcome], None] | None = None,
                scheduler_timeout: float | None = None) -> list[StudyOutcome]:
    """Run ``specs`` into ``out``; one ``StudyOutcome`` per study.

    ``options``: the defaults; ``given``: what the user chose explicitly (command-line flags),
    which overrides each study file's recipe (``plan.resolve_options``). ``executor``:
    ``"processes"`` (``workers`` local processes; one means this process) or ``"threads"``;
    ``scheduler``: a Dask scheduler address instead. ``retime``: measure every needed
    per-epoch cost again. ``progress=None``: a progress bar only when stderr is a terminal.
    """
    from .dask import connect
    from .lock import RunLock

    out = Path(out)
    options = StudyOptions() if options is None else options
    timing = TimingSettings() if timing is None else timing
    resolved = [(spec, *resolve_options(spec, given or {}, options)) for spec in specs]
    check_options(resolved, scheduler)
    client = connect(scheduler, scheduler_timeout) if scheduler is not None else None
    kind = "dask" if client else "inline" if workers <= 1 and executor != "threads" else executor
    try:
        loaded = _load_data(resolved)
        with RunLock(out), _log_files(out, [spec.name for spec in specs]) as loggers:
            outcomes = []
            try:
                for spec, opts, sources in resolved:
                    outcomes.append(_open_study(out, spec, opts, sources, loaded,
                                                loggers[spec.name], fresh))
                _compute(outcomes, loaded, kind, workers, client, retime, save_models,
                         progress, timing, on_report, out)
                report.write_summary(out, {o.spec.name: list(o.store.records.values())
                                           for o in outcomes})
            except KeyboardInterrupt:
                for logger in loggers.values():  # the log files; the console is the caller's
                    logger.warning("interrupted: every finished run is recorded",
                                   extra={"file_only": True})
                raise
            finally:
                for outcome in outcomes:
                    outcome.store.close()
        return outcomes
    finally:
        execute.release_worker()
        if client is not None:
            client.close()


def check_options(resolved, scheduler) -> None:
    """Refuse, before anything is loaded or written, what would fail run by run: a malformed
    scheduler address, several threads per run on Dask, early stopping without validation
    images, an invalid setting (``ValueError`` naming the option)."""
    if scheduler is not None:
        from .dask import check_address

        check_address(scheduler)
    for spec, options, _ in resolved:
        if scheduler is not None and options.threads > 1:
            raise ValueError(f"threads: {options.threads} threads per run cannot go to Dask "
                             "workers (numba's parallel regions in several worker threads); "
                             "use threads=1")
        if options.data.val_size == 0 and any(
                spec.config(s).early_stopping for s in spec.settings()):
            raise ValueError(f"val_size: 0 validation images, but study {spec.name} stops "
                             "early on the validation loss; give a positive val_size "
                             "(--val-size) or a study without early stopping")
        for setting in spec.settings():  # every setting is a valid config
            spec.config(setting, backend=options.backend)


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


class _log_files:
    """``logs/<study>.log`` under ``out`` for each study's logger (``ffnn.studies.<name>``),
    which propagates: the console is the application's (the CLI's) business."""

    def __init__(self, out: Path, names):
        self.out, self.names, self.handlers = out, names, []

    def __enter__(self) -> dict[str, logging.Logger]:
        with naming(self.out / LOG_DIR):
            (self.out / LOG_DIR).mkdir(parents=True, exist_ok=True)
        loggers = {}
        for name in self.names:
            handler = _LogFileHandler(self.out / LOG_DIR / f"{name}.log", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger = log.getChild(name)
            logger.setLevel(logging.INFO)
            logger.addHandler(handler)
            self.handlers.append((logger, handler))
            loggers[name] = logger
        return loggers

    def __exit__(self, *exc) -> None:
        for logger, handler in self.handlers:
            logger.removeHandler(handler)
            handler.close()


def _load_data(resolved) -> dict[tuple[DataSpec, str], object]:
    """Every (data spec, dtype) the studies need, loaded once in this process."""
    loaded = {}
    for spec, options, _ in resolved:
        for dtype in {spec.config(s).dtype for s in spec.settings()}:
            if (options.data, dtype) not in loaded:
                loaded[(options.data, dtype)] = options.data.load(dtype)
    return loaded


def _open_study(out: Path, spec, options, sources, loaded, logger, fresh) -> StudyOutcome:
    """Plan one study, write its ``plan.json``, open its store; what is left to compute."""
    directory = out / spec.name
    with naming(directory):
        directory.mkdir(parents=True, exist_ok=True)
        if fresh:
            for stale in (report.REPORT_FILE, report.PLAN_FILE, *report.FIGURES.values()):
                (directory / stale).unlink(missing_ok=True)
    store = ResultStore(directory / RESULTS_FILE, fresh=fresh)
    identities = {dtype: data_identity(s, options.data)
                  for (data, dtype), s in loaded.items() if data == options.data}
    runs = plan_study(spec, options, identities)
    write_atomic(directory / report.PLAN_FILE, json.dumps({
        "study": spec.to_dict(), "options": options.to_dict(), "sources": sources,
        "data": identities,
        "runs": [{"key": r.key, "setting": r.setting, "values": r.values, "value": r.value,
                  "repeat": r.repeat, "grouped": r.grouped, "timing_key": r.timing.id}
                 for r in runs]}, indent=1))
    todo = [r for r in runs if r.key not in store]
    outcome = StudyOutcome(spec, directory, options, sources, runs, todo, store, logger)
    logger.info("study %s: %d settings x %d repeats = %d runs; %d already recorded, %d to run",
                spec.name, len(spec.settings()), options.repeats, len(runs),
                outcome.skipped, len(todo))
    reason = group_reason([r.config for r in runs if r.repeat == 0], options.group)
    logger.info("the settings of each repeat are %s", "trained together (train time: epochs "
                "x the measured per-epoch cost)" if reason is None else
                f"trained one by one (train time: thread CPU time): {reason}")
    planned = {r.key for r in runs}
    others = sum(1 for key in store.records if key not in planned)
    if others:
        logger.info("%s: %d records from other flags or data are kept but not used",
                    store.path, others)
    for problem in store.problems:
        logger.warning("%s; ignored, its run is computed again", problem)
    return outcome


def _fingerprints(loaded, data: DataSpec) -> dict[str, str]:
    return {dtype: s.fingerprint() for (d, dtype), s in loaded.items() if d == data}


def _compute(outcomes, loaded, kind, workers, client, retime, save_models, progress, timing,
             on_report, out) -> None:
    """Measure the missing costs, then train and record every run still to do."""
    from tqdm import tqdm

    for outcome in outcomes:
        if not outcome.todo:
            _finish(outcome, on_report)
    pending = [run for outcome in outcomes for run in outcome.todo]
    if not pending:
        return
    _warm_up(pending)
    if kind in ("inline", "threads", "dask"):
        for (data, dtype), splits in loaded.items():
            execute.prepare_worker(data, {dtype: splits.fingerprint()},
                                   sorted({r.config.backend for r in pending}), {dtype: splits})
    tasks = make_tasks(pending)
    by_study = {outcome.spec.name: outcome for outcome in outcomes}
    show = sys.stderr.isatty() if progress is None else progress
    with execute.open_executor(kind, min(workers, len(tasks)), client) as (executor, window):
        costs = _measure_costs(out, pending, loaded, executor, window, workers, retime,
                               timing, by_study)
        calls = [(task, execute.train_task,
                  (task, _fingerprints(loaded, task[0].data), costs)) for task in tasks]
        bar = tqdm(total=sum(o.total for o in outcomes), initial=sum(o.skipped for o in
                   outcomes), unit="run", disable=not show, dynamic_ncols=True,
                   desc=outcomes[0].spec.name if len(outcomes) == 1 else "studies")
        with bar:
            for task, result in execute.run_tasks(executor, calls, window):
                outcome = by_study[task[0].study]
                _record(outcome, task, result, save_models)
                bar.update(len(task))
                if outcome.computed + outcome.failed == len(outcome.todo):
                    _finish(outcome, on_report)


def _warm_up(pending: Sequence[Run]) -> None:
    """Compile (or load from numba's cache) here, before any worker starts."""
    from ..kernels import get_backend

    for backend, dtype in {(r.config.backend, r.config.dtype) for r in pending}:
        get_backend(backend).warm_up(dtype)


def _measure_costs(out, pending, loaded, executor, window, workers, retime, timing, by_study
                   ) -> dict[str, dict]:
    """The per-epoch cost of every timing key of the grouped runs to do, by key id: from
    ``timing.json`` where known (unless ``retime``), else measured now in timing tasks (the
    keys of one data set split over the workers, each task interleaving its keys)."""
    store = TimingStore(out)
    if store.problem:
        log.warning("%s", store.problem)
    wanted: dict[TimingKey, Run] = {}
    for run in pending:
        if run.grouped:
            wanted.setdefault(run.timing, run)
    missing = store.missing(wanted, retime=retime)
    if missing:
        calls = []
        for data in dict.fromkeys(wanted[k].data for k in missing):
            keys = [k for k in missing if wanted[k].data == data]
            n = max(1, min(workers, len(keys)))
            for i in range(n):
                chunk = [(k.to_dict(), wanted[k].config.to_dict()) for k in keys[i::n]]
                calls.append((data, execute.timing_task,
                              (chunk, data, _fingerprints(loaded, data), timing)))
        names = sorted({wanted[k].study for k in missing})
        log.info("measuring the per-epoch cost of %d timing key(s) for %s", len(missing),
                 ", ".join(names))
        for _, result in execute.run_tasks(executor, calls, window):
            if isinstance(result, BaseException):
                raise RuntimeError(f"measuring per-epoch costs failed ({type(result).__name__}:"
                                   f" {result})") from result
            store.put({TimingKey.from_dict(k): Cost.from_dict(c) for k, c in result})
    for key, run in wanted.items():
        cost = store.get(key)
        by_study[run.study].logger.info(
            "per-epoch cost of timing key %s: %.3f ± %.3f ms (%d epochs in %d rounds, %s)",
            key.id, 1000 * cost.mean, 1000 * cost.spread, cost.epochs, cost.rounds,
            "measured now" if key in missing else "from " + str(store.path))
    return {key.id: store.get(key).to_dict() for key in wanted}


def _record(outcome: StudyOutcome, task, result, save_models: bool) -> None:
    """Write a finished task's models, then its records (or log its failure)."""
    logger = outcome.logger
    if not isinstance(result, BaseException):
        try:
            if save_models:
                models = outcome.directory / report.MODELS_DIR
                models.mkdir(exist_ok=True)
                for record, model in result:
                    with replacing(models / f"{record['key']}.npz") as tmp:
                        model.save(tmp, compressed=True)
            outcome.store.extend([record for record, _ in result])
        except RecordError as e:  # a disk error (OSError) stops the study: nothing is lost
            result = e
    if isinstance(result, BaseException):
        outcome.failed += len(task)
        for run in task:
            logger.error("%s=%s repeat %d failed (%s: %s); not recorded, a re-run retries it",
                         run.parameter, run.setting, run.repeat, type(result).__name__, result)
        return
    outcome.computed += len(result)
    for record, _ in result:
        _log_run(logger, record)


def _log_run(logger, record) -> None:
    status = ("diverged" if record["diverged"] else
              "stopped early" if record["stopped_early"] else "max epochs")
    logger.info("%s=%s repeat %d: %d epochs (%s, best %d), %.3f s (%s), test loss %.4f, "
                "test accuracy %.2f %%", record["parameter"], record["setting"],
                record["repeat"], record["epochs"], status, record["best_epoch"],
                record["train_time"], record["train_time_kind"], record["test_loss"],
                100 * record["test_accuracy"], extra={"per_run": True})
    if record["diverged"]:
        logger.warning("%s=%s repeat %d diverged at epoch %d; recorded, the study goes on",
                       record["parameter"], record["setting"], record["repeat"],
                       record["epochs"])


def _finish(outcome: StudyOutcome, on_report) -> None:
    outcome.report = report.write_study_report(outcome.directory,
                                               list(outcome.store.records.values()))
    outcome.logger.info("study %s done: %d computed, %d recorded before, %d failed; report in "
                        "%s", outcome.spec.name, outcome.computed, outcome.skipped,
                        outcome.failed, outcome.directory / report.REPORT_FILE)
    if on_report is not None:
        on_report(outcome)


# --------------------------------------------------------------------------- run_study


@dataclass
class StudyResult:
    """What ``run_study`` returns: the report's table as ``records`` (one dict per setting:
    parameter values, means and stds, as in ``table.csv``) and ``.frame`` (pandas), the
    report's path and the study's output directory."""

    name: str
    records: list[dict]
    report_path: Path
    directory: Path
    outcome: StudyOutcome | None = field(default=None, repr=False)

    @property
    def frame(self):
        from .export import as_frame

        return as_frame(self.records)


def run_study(name_or_path, *, out="results", workers: int = 1, **options) -> StudyResult:
    """Run (or resume) one study from Python: a built-in name or a TOML file's path.

    ``options``: ``repeats``, ``max_epochs``, ``train_size``, ``val_size``, ``test_size``,
    ``split_seed``, ``data`` (they override the file's recipe), any other ``StudyOptions``
    field (``backend``, ``seed``, ``group``), and ``run_studies``' keywords (``executor``,
    ``scheduler``, ``fresh``, ``retime``, ``save_models``, ``progress``).
    """
    from .export import table_records

    text = str(name_or_path)
    spec = load_study_file(text) if text.endswith(".toml") or Path(text).is_file() \
        else builtin_study(text)
    keywords = {k: options.pop(k) for k in ("scheduler", "executor", "fresh", "retime",
                                             "save_models", "progress", "timing")
                if k in options}
    unknown = set(options) - set(StudyOptions.__dataclass_fields__) - {
        "train_size", "val_size", "test_size", "split_seed", "data"}
    if unknown:
        raise StudyError(f"run_study: unknown option(s) {', '.join(sorted(unknown))}")
    [outcome] = run_studies([spec], out=out, given=options, workers=workers,
                            **{"progress": False, **keywords})
    _, _, rows = report.load_study(outcome.directory, list(outcome.store.records.values()))
    return StudyResult(spec.name, table_records(rows, spec.parameters),
                       outcome.directory / report.REPORT_FILE, outcome.directory, outcome)
