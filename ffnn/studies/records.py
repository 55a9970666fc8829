"""The record of one finished run: what ``results.jsonl`` holds per line.

Format 4 adds ``values`` (the setting's value of every varied parameter) and the timing
fields:

* ``train_time``: seconds, of the kind ``train_time_kind`` (``table.TIME_KINDS``): for a
  grouped run ``epochs x epoch_cost`` (``"epochs x cost"``), for a run trained alone the CPU
  time of its own epoch loop (``"thread cpu"`` single-threaded, else ``"process cpu"``);
* ``epoch_cost``, ``epoch_cost_spread``: the per-epoch cost and its spread of the run's timing
  key (``timing``), for a grouped run; for a run trained alone ``train_time / epochs`` and null;
* ``timing_key``: the timing key's id; ``group_wall_time``: a group's measured wall time.

``train_time_source`` keeps its earlier values (``"calibrated"`` for grouped runs,
``"measured"`` for runs trained alone), so older readers still read new records.
"""

from __future__ import annotations

import functools
import os
import platform
import threading
from datetime import UTC, datetime

from .plan import Run, data_identity
from .timing import Cost, machine_fingerprint

__all__ = ["RECORD_FORMAT", "make_record", "versions"]

RECORD_FORMAT = 4


@functools.cache
def versions() -> dict:
    """The versions of everything that can change a run's result."""
    machine = machine_fingerprint()
    return {name: machine[name] for name in ("ffnn", "python", "numpy", "numba")}


@functools.cache
def _machine() -> dict:
    machine = machine_fingerprint()
    return {"cpu": machine["cpu"], "cores": machine["cores"], "host": platform.node(),
            "system": platform.system()}


def train_time_fields(run: Run, result, cost: Cost | None) -> dict:
    """The timing fields of a record (module docstring)."""
    if run.grouped:
        if cost is None:
            raise ValueError(f"{run.setting} repeat {run.repeat}: grouped, but its timing key "
                             f"{run.timing.id} has no measured cost")
        return {"train_time": result.epochs * cost.mean, "train_time_kind": "epochs x cost",
                "train_time_source": "calibrated", "epoch_cost": cost.mean,
                "epoch_cost_spread": cost.spread}
    seconds = float(result.train_cpu_time)
    return {"train_time": seconds,
            "train_time_kind": "thread cpu" if result.train_cpu_clock == "thread"
            else "process cpu",
            "train_time_source": "measured",
            "epoch_cost": seconds / result.epochs if result.epochs else None,
            "epoch_cost_spread": None}


def make_record(run: Run, result, splits, cost: Cost | None, record_format: int) -> dict:
    """The JSON record of one finished run."""
    config = run.config
    hist = result.history
    extra = result.extra
    wall = extra.get("group_wall_time")
    return {
        "format": record_format,
        "key": run.key,
        "study": run.study,
        "parameter": run.parameter,
        "setting": run.setting,
        "value": run.value if len(run.values) == 1 else run.setting,
        "values": dict(run.values),
        "repeat": run.repeat,
        "seed": config.seed,
        "shuffle_seed": config.effective_shuffle_seed,
        "config": config.to_dict(),
        "data": {**data_identity(splits, run.data), "source": splits.source,
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
        "versions": dict(versions()),
        "machine": dict(_machine()),
        "grouped": run.grouped,
        "group_size": int(extra.get("group_size", 1)),
        **train_time_fields(run, result, cost),
        "timing_key": run.timing.id,
        "group_wall_time": None if wall is None else float(wall),
        "calibration_epoch_seconds": None,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "worker": {"host": platform.node(), "pid": os.getpid(),
                   "thread": threading.current_thread().name},
    }
