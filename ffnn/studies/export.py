"""Flat exports of a study: ``runs.csv`` (one row per run), ``table.csv`` (the report's table),
and pandas DataFrames.

``runs.csv`` has the columns ``RUN_COLUMNS`` (``table.run_row``): setting, repeat, seeds,
epochs, best epoch, train time and its kind, per-epoch cost and spread, losses, accuracies,
diverged, and the record key. ``table.csv`` has one row per setting: the grid parameters' values
(one column each), ``n_runs``, ``n_planned``, ``n_diverged``, then ``<quantity>_mean`` and
``<quantity>_std`` for every quantity of ``table.QUANTITIES`` and ``train_time_kind``. Numbers
are written as Python's ``repr`` (they read back exactly), NaN as an empty cell, booleans as
``true``/``false``.

pandas is an optional extra (``pip install 'ffnn[pandas]'``): ``as_frame`` raises an
``ImportError`` saying so when it is missing, and never returns anything else.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

from ..safe_io import write_atomic
from .table import QUANTITIES, Row, run_row

__all__ = ["RUNS_FILE", "RUN_COLUMNS", "TABLE_FILE", "as_frame", "flat_records", "read_csv_rows",
           "table_columns", "write_runs_csv", "write_table_csv"]

RUNS_FILE = "runs.csv"
TABLE_FILE = "table.csv"
PANDAS_EXTRA = "pandas"
RUN_COLUMNS = tuple(run_row({
    "setting": "", "repeat": 0, "seed": 0, "epochs": 1, "best_epoch": 1, "train_time": 0.0,
    "diverged": False, "key": ""}))
_BOOL_COLUMNS = ("diverged",)
_TEXT_COLUMNS = ("study", "setting", "train_time_kind", "timing_key", "key")


def _cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def _write_csv_atomic(path: Path, columns: Sequence[str], rows: Sequence[dict]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return write_atomic(path, buffer.getvalue())


def write_runs_csv(path, rows: Sequence[Row]) -> Path:
    """``runs.csv``: every recorded run of ``rows``, in table order."""
    return _write_csv_atomic(path, RUN_COLUMNS, [run for row in rows for run in row.runs])


def table_columns(parameters: Sequence[str]) -> list[str]:
    """The columns of ``table.csv`` for a study varying ``parameters``."""
    columns = ["setting", *parameters, "n_runs", "n_planned", "n_diverged"]
    for name, _ in QUANTITIES:
        columns += [f"{name}_mean", f"{name}_std"]
    return [*columns, "train_time_kind"]


def table_records(rows: Sequence[Row], parameters: Sequence[str]) -> list[dict]:
    """The report's table as plain dicts (the rows of ``table.csv``)."""
    out = []
    for row in rows:
        entry = {"setting": row.setting, **{p: row.values[p] for p in parameters},
                 "n_runs": len(row.runs), "n_planned": row.n_planned,
                 "n_diverged": row.n_diverged}
        for name, _ in QUANTITIES:
            entry[f"{name}_mean"], entry[f"{name}_std"] = row.stat(name)
        entry["train_time_kind"] = "; ".join(row.time_kinds)
        out.append(entry)
    return out


def write_table_csv(path, rows: Sequence[Row], parameters: Sequence[str]) -> Path:
    """``table.csv``: the report's table, numbers only."""
    return _write_csv_atomic(path, table_columns(parameters), table_records(rows, parameters))


def _parse(column: str, text: str):
    if column in _BOOL_COLUMNS:
        return text == "true"
    if column in _TEXT_COLUMNS:
        return text
    if text == "":
        return math.nan
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_csv_rows(path) -> list[dict]:
    """A CSV written here, back as dicts of Python values (the inverse of the writers)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _parse(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def flat_records(records: Sequence[dict]) -> list[dict]:
    """One flat dict per stored record: ``table.run_row``, the varied parameter and value,
    and every ``TrainConfig`` field as ``config.<field>`` (the rows of
    ``load_results(as_frame=True)``)."""
    out = []
    for record in records:
        row = run_row(record)
        row["parameter"] = record.get("parameter", "")
        row["value"] = record.get("value")
        row.update({f"config.{k}": v for k, v in (record.get("config") or {}).items()})
        out.append(row)
    return out


def as_frame(rows: Sequence[dict]):
    """``rows`` (dicts) as a pandas DataFrame; ``ImportError`` naming the extra without pandas."""
    try:
        import pandas
    except ImportError as e:
        raise ImportError(f"as_frame=True needs pandas: pip install 'ffnn[{PANDAS_EXTRA}]' "
                          f"(or pip install pandas) ({e})") from None
    return pandas.DataFrame.from_records(list(rows))
