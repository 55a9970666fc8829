"""What a study record must hold: ``check_record`` (used by ``ResultStore`` and ``report`` alike),
``parse_record_line`` and ``encode_record``.

A record counts only if every required field of its format version is there with the right type
(``FIELDS``); anything else raises ``RecordError`` saying why, and its run is computed again.
Fields that format versions before theirs lack get the defaults in ``FIELDS``.

Format versions: 1 the first; 2 adds ``grouped``, ``group_size``, ``group_wall_time`` and
``calibration_epoch_seconds``; 3 writes strict JSON (NaN and infinity as ``null``; 1 and 2
wrote the non-JSON tokens ``NaN``/``Infinity``, which still read); 4 adds ``values`` (the
setting's value of every varied parameter) and honest timing: ``train_time_kind``,
``epoch_cost``, ``epoch_cost_spread`` and ``timing_key`` (``make_record``).

Null: a metric (``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``,
``test_loss``, ``test_accuracy``) may be null (or NaN) only where it has no value: the run
diverged, or its split is empty (``data.<split>_size == 0``); it reads back as NaN. Entries of
the per-epoch loss and accuracy histories may be null (a diverged epoch, an empty validation
split), read back as NaN. ``group_wall_time`` and ``calibration_epoch_seconds`` are null for a
run trained alone and read back as ``None``. No other field may be null.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import re
import threading
from datetime import UTC, datetime
from typing import Any

from ..config import TrainConfig
from .timing import Cost, machine_fingerprint

__all__ = ["FIELDS", "RECORD_FORMAT", "RecordError", "check_record", "encode_record",
           "make_record", "parse_record_line"]

RECORD_FORMAT = 4
METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
           "test_accuracy")
HISTORY = ("train_loss", "val_loss", "val_accuracy", "seconds")
_NO_DEFAULT = object()
_KEY = re.compile(r"^[0-9a-f]{64}$")


class RecordError(ValueError):
    """A line of a results file is not a record; the message says why."""


# name -> (kind, first format that has it, default for earlier formats)
FIELDS: dict[str, tuple[str, int, Any]] = {
    "format": ("int", 1, _NO_DEFAULT),
    "key": ("key", 1, _NO_DEFAULT),
    "study": ("str", 1, _NO_DEFAULT),
    "parameter": ("str", 1, _NO_DEFAULT),
    "setting": ("str", 1, _NO_DEFAULT),
    "value": ("scalar", 1, _NO_DEFAULT),
    "repeat": ("count", 1, _NO_DEFAULT),
    "seed": ("count", 1, _NO_DEFAULT),
    "shuffle_seed": ("count", 1, _NO_DEFAULT),
    "config": ("config", 1, _NO_DEFAULT),
    "data": ("data", 1, _NO_DEFAULT),
    "epochs": ("count", 1, _NO_DEFAULT),
    "best_epoch": ("count", 1, _NO_DEFAULT),
    "stopped_early": ("bool", 1, _NO_DEFAULT),
    "diverged": ("bool", 1, _NO_DEFAULT),
    **{name: ("metric", 1, _NO_DEFAULT) for name in METRICS},
    "history": ("history", 1, _NO_DEFAULT),
    "backend": ("str", 1, _NO_DEFAULT),
    "dtype": ("str", 1, _NO_DEFAULT),
    "versions": ("dict", 1, _NO_DEFAULT),
    "machine": ("dict", 1, _NO_DEFAULT),
    "grouped": ("bool", 2, False),
    "group_size": ("positive", 2, 1),
    "train_time": ("seconds", 1, _NO_DEFAULT),
    "train_time_source": ("source", 1, _NO_DEFAULT),
    "group_wall_time": ("seconds or null", 2, None),
    "calibration_epoch_seconds": ("seconds or null", 2, None),
    "recorded_at": ("str", 1, _NO_DEFAULT),
    "worker": ("dict", 1, _NO_DEFAULT),
    "values": ("values", 4, None),
    "train_time_kind": ("time kind", 4, None),
    "epoch_cost": ("seconds or null", 4, None),
    "epoch_cost_spread": ("seconds or null", 4, None),
    "timing_key": ("str", 4, None),
}
DATA_FIELDS = ("train_size", "val_size", "test_size", "split_seed")


def check_record(obj) -> dict:
    """The record ``obj`` (a parsed JSON object) as the study code uses it: defaults of later
    formats filled in, null metrics as NaN, numbers of float fields as floats, ``config``
    completed with ``TrainConfig``'s defaults. ``RecordError`` says what is wrong."""
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {_kind(obj)}")
    if "format" not in obj:
        raise RecordError("missing field 'format'")
    version = obj["format"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise _wrong("format", f"a format version (1..{RECORD_FORMAT})", version)
    if not 1 <= version <= RECORD_FORMAT:
        raise RecordError(f"format: version {version} is not one this ffnn reads "
                          f"(1..{RECORD_FORMAT})")
    record = dict(obj)
    for name, (kind, since, default) in FIELDS.items():
        if name not in obj:
            if version >= since or default is _NO_DEFAULT:
                raise RecordError(f"missing field {name!r} (format {version})")
            record[name] = default
            continue
        record[name] = _CHECKS[kind](name, obj[name])
    for name in METRICS:  # null only where there is no value
        split = name.split("_")[0]
        if math.isnan(record[name]) and not record["diverged"] \
                and record["data"][f"{split}_size"] > 0:
            raise RecordError(f"{name}: null, but the run did not diverge and its {split} split "
                              f"has {record['data'][f'{split}_size']} images")
    epochs = record["epochs"]
    if record["best_epoch"] > epochs:
        raise RecordError(f"best_epoch: {record['best_epoch']} is after the last epoch {epochs}")
    for name, series in record["history"].items():
        if len(series) != epochs:
            raise RecordError(f"history.{name}: {len(series)} entries for {epochs} epochs")
    return record


def parse_record_line(line: bytes) -> dict:
    """One line of a results file (without its newline) as a checked record."""
    try:
        obj = json.loads(line)
    except RecursionError:
        raise RecordError("not a record: JSON nested too deeply") from None
    except UnicodeDecodeError as e:
        raise RecordError(f"not UTF-8 text ({e.reason})") from None
    except ValueError as e:
        raise RecordError(f"not valid JSON ({e})") from None
    return check_record(obj)


def encode_record(record: dict) -> bytes:
    """The record as one line of strict JSON (NaN and infinity written as null), checked by
    ``check_record`` first: the store never writes a line its readers would refuse."""
    strict = _finite_or_null(record)
    check_record(strict)
    return (json.dumps(strict, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _finite_or_null(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_null(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- field checks


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "an integer", float: "a number"}.get(type(value), "?")


def _short(value) -> str:
    """A scalar's text, cut to 40 characters; nothing for objects and lists (the kind says
    enough, and their text may be huge or nested too deeply to print)."""
    if isinstance(value, dict | list):
        return ""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _wrong(name, expected, value) -> RecordError:
    return RecordError(f"{name}: expected {expected}, got {_kind(value)} {_short(value)}".rstrip())


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(name, value, *, nullable: bool) -> float:
    if value is None and nullable:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(name, "a number or null" if nullable else "a number", value)
    try:
        number = float(value)
    except OverflowError:
        raise RecordError(f"{name}: {_short(value)} is out of range") from None
    if math.isnan(number) and not nullable:
        raise _wrong(name, "a number", value)
    return number


def _of_type(types, expected: str):
    """A check that ``value`` is an instance of ``types`` (``expected`` says so in words)."""
    def check(name, value):
        if not isinstance(value, types):
            raise _wrong(name, expected, value)
        return value
    return check


_check_str = _of_type(str, "a string")
_check_bool = _of_type(bool, "true or false")
_check_dict = _of_type(dict, "an object")


def _check_key(name, value):
    if not isinstance(value, str) or not _KEY.match(value):
        raise _wrong(name, "64 hexadecimal digits (sha256)", value)
    return value


def _check_int(name, value, minimum=None):
    if not _is_int(value):
        raise _wrong(name, "an integer", value)
    if minimum is not None and value < minimum:
        raise RecordError(f"{name}: expected an integer >= {minimum}, got {value}")
    return value


def _check_scalar(name, value):
    """A setting's value: a number, string or boolean, or a list of integers (hidden sizes)."""
    if isinstance(value, list) and value and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    if value is None or isinstance(value, dict | list):
        raise _wrong(name, "a number, string, boolean or list of integers", value)
    return value


def _check_metric(name, value):
    number = _number(name, value, nullable=True)
    if not math.isnan(number):
        if name.endswith("accuracy") and not 0.0 <= number <= 1.0:
            raise RecordError(f"{name}: {number!r} is not in [0, 1]")
        if name.endswith("loss") and number < 0.0:
            raise RecordError(f"{name}: {number!r} is negative")
    return number


def _check_seconds(name, value, nullable=False):
    if value is None and nullable:
        return None
    number = _number(name, value, nullable=False)
    if not 0.0 <= number < math.inf:
        raise RecordError(f"{name}: {number!r} is not a time in seconds")
    return number


def _check_source(name, value):
    if value not in ("measured", "calibrated"):
        raise _wrong(name, "'measured' or 'calibrated'", value)
    return value


def _check_time_kind(name, value):
    from .table import NEW_TIME_KINDS

    if value not in NEW_TIME_KINDS:
        raise _wrong(name, "one of " + ", ".join(map(repr, NEW_TIME_KINDS)), value)
    return value


def _check_values(name, value):
    _check_dict(name, value)
    for key, item in value.items():
        _check_scalar(f"{name}.{key}", item)
    return value


def _check_config(name, value):
    _check_dict(name, value)
    try:
        return TrainConfig.from_dict(value).to_dict()
    except (TypeError, ValueError, ArithmeticError) as e:  # ArithmeticError: a huge integer
        raise RecordError(f"{name}: {e}") from None


def _check_data(name, value):
    _check_dict(name, value)
    for field in DATA_FIELDS:
        if field not in value:
            raise RecordError(f"{name}: missing {field!r}")
        _check_int(f"{name}.{field}", value[field], minimum=0)
    _check_str(f"{name}.fingerprint", value.get("fingerprint"))
    return value


def _check_history(name, value):
    _check_dict(name, value)
    history = {}
    for series in HISTORY:
        entries = value.get(series)
        if not isinstance(entries, list):
            raise _wrong(f"{name}.{series}", "a list", entries)
        if series == "seconds":
            history[series] = [_check_seconds(f"{name}.seconds[{i}]", v)
                               for i, v in enumerate(entries)]
        else:
            history[series] = [_number(f"{name}.{series}[{i}]", v, nullable=True)
                               for i, v in enumerate(entries)]
    return history


_CHECKS = {
    "int": _check_int,
    "key": _check_key,
    "str": _check_str,
    "scalar": _check_scalar,
    "count": lambda name, value: _check_int(name, value, minimum=0),
    "positive": lambda name, value: _check_int(name, value, minimum=1),
    "config": _check_config,
    "data": _check_data,
    "bool": _check_bool,
    "metric": _check_metric,
    "history": _check_history,
    "dict": _check_dict,
    "seconds": _check_seconds,
    "seconds or null": lambda name, value: _check_seconds(name, value, nullable=True),
    "source": _check_source,
    "time kind": _check_time_kind,
    "values": _check_values,
}


# --------------------------------------------------------------------------- writing records


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


def train_time_fields(run, result, cost: Cost | None) -> dict:
    """The timing fields of a record: a grouped run's train time is ``epochs x cost``; a run
    trained alone reports the CPU time of its own epoch loop (``TrainResult.train_cpu_time``),
    its per-epoch cost is that over its epochs, without a spread. ``train_time_source`` keeps
    its earlier values (``"calibrated"`` grouped, ``"measured"`` alone)."""
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


def make_record(run, result, splits, cost: Cost | None) -> dict:
    """The record of one finished run (``run``: a ``plan.Run``; ``result``: its
    ``TrainResult``; ``cost``: its timing key's ``Cost``, needed when it was grouped)."""
    from .plan import data_identity

    config = run.config
    hist = result.history
    extra = result.extra
    wall = extra.get("group_wall_time")
    return {
        "format": RECORD_FORMAT,
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
