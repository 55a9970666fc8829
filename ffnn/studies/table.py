"""A study's table: one row per setting, with the mean and standard deviation over its runs.

``run_row(record)`` flattens one stored record into the quantities every table, figure and
export uses (old records included: fields they lack get the defaults below). ``Row`` collects
the runs of one setting; ``Row.stat(name)`` is ``(mean, std)`` (sample std, ddof=1; NaN with
one run). Diverged runs count in the train time, epoch and cost columns, not in the test
columns (their losses are meaningless).

Train time kinds (``train_time_kind``):

* ``epochs x cost``: a run trained in a group; epochs x its timing key's persisted per-epoch
  cost (``ffnn.studies.timing``);
* ``thread cpu``: a run trained alone, single-threaded: the thread CPU time of its epoch loop;
* ``process cpu``: a run trained alone on several threads: the process CPU time of its epochs;
* ``wall``, ``calibrated``, ``group share``: records written before honest timing (wall time of
  the epoch loop; epochs x a 3-epoch solo calibration; an equal share of the group's wall time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .stats import Candidate, Verdict, best_of

__all__ = ["QUANTITIES", "TIME_KINDS", "Row", "build_rows", "run_row", "verdict"]

TIME_KINDS = {
    "epochs x cost": "epochs x the per-epoch cost of the run's timing key, measured alone in "
                     "thread CPU time (the run was trained in a group)",
    "thread cpu": "the thread CPU time of the run's own single-threaded epoch loop",
    "process cpu": "the process CPU time of the run's own epoch loop (several threads)",
    "wall": "the wall time of the run's epoch loop (recorded before honest timing)",
    "calibrated": "epochs x a short solo calibration (recorded before honest timing)",
    "group share": "an equal share of its group's wall time (recorded before honest timing)",
}
NEW_TIME_KINDS = ("epochs x cost", "thread cpu", "process cpu")  # what records of format 4 say
_OLD_KINDS = {"measured": "wall", "calibrated": "calibrated", "group-share": "group share"}

# The table's quantities, in column order: (field, finite runs only).
QUANTITIES = (("train_time", False), ("epoch_cost", False), ("epochs", False),
              ("test_loss", True), ("test_accuracy", True))


def _num(value) -> float:
    return math.nan if value is None else float(value)


def run_row(record: dict) -> dict:
    """The flat view of one record: setting, repeat, seeds, epochs, times, losses, accuracies."""
    epochs = int(record["epochs"])
    kind = record.get("train_time_kind") or _OLD_KINDS.get(
        record.get("train_time_source", "measured"), "wall")
    cost = record.get("epoch_cost")
    if cost is None:
        cost = record.get("calibration_epoch_seconds")
    if cost is None:
        cost = record["train_time"] / epochs if epochs else math.nan
    return {
        "study": record.get("study", ""),
        "setting": str(record["setting"]),
        "repeat": int(record["repeat"]),
        "seed": int(record["seed"]),
        "shuffle_seed": int(record.get("shuffle_seed", record["seed"])),
        "epochs": epochs,
        "best_epoch": int(record["best_epoch"]),
        "train_time": _num(record["train_time"]),
        "train_time_kind": kind,
        "epoch_cost": _num(cost),
        "epoch_cost_spread": _num(record.get("epoch_cost_spread")),
        "timing_key": record.get("timing_key") or "",
        **{name: _num(record.get(name)) for name in (
            "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
            "test_accuracy")},
        "diverged": bool(record["diverged"]),
        "key": record["key"],
    }


@dataclass
class Row:
    """One setting of a study: its label, its parameter values, its runs (``run_row`` views),
    how many runs the plan has for it, and the stored records of its runs."""

    setting: str
    values: dict = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    n_planned: int = 0
    records: list[dict] = field(default_factory=list)

    @property
    def finite(self) -> list[dict]:
        return [r for r in self.runs if not r["diverged"]]

    @property
    def n_diverged(self) -> int:
        return len(self.runs) - len(self.finite)

    def series(self, name: str, *, finite_only: bool | None = None) -> list[float]:
        """Per-run values of ``name`` (finite runs only for the test columns by default)."""
        if finite_only is None:
            finite_only = dict(QUANTITIES).get(name, False)
        return [r[name] for r in (self.finite if finite_only else self.runs)]

    def stat(self, name: str) -> tuple[float, float]:
        """``(mean, std)`` of a quantity; for ``epoch_cost`` the std is the cost's spread when
        its runs share one measured cost."""
        values = np.array(self.series(name), dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return math.nan, math.nan
        mean = float(values.mean())
        if name == "epoch_cost":
            spreads = [r["epoch_cost_spread"] for r in self.runs]
            if spreads and all(math.isfinite(s) for s in spreads) and np.ptp(values) == 0:
                return mean, float(np.mean(spreads))
        return mean, float(values.std(ddof=1)) if values.size > 1 else math.nan

    def time_error(self) -> float:
        """The uncertainty of this row's train time for figures: the runs' std and the
        systematic cost spread (``candidate``) in quadrature (0 when neither is known)."""
        std = self.stat("train_time")[1]
        systematic = self.candidate("train_time").systematic
        return math.hypot(0.0 if math.isnan(std) else std, systematic)

    @property
    def time_kinds(self) -> list[str]:
        return sorted({r["train_time_kind"] for r in self.runs})

    def candidate(self, name: str) -> Candidate:
        """This row for the tie rule: per-run values; for train time the cost's systematic
        spread (mean epochs x cost spread) and its timing key."""
        if name != "train_time":
            return Candidate(self.setting, self.series(name))
        spreads = [r["epoch_cost_spread"] for r in self.runs
                   if r["train_time_kind"] == "epochs x cost"]
        keys = {r["timing_key"] for r in self.runs}
        systematic = (float(np.mean([r["epochs"] for r in self.runs]) * np.mean(spreads))
                      if spreads and all(math.isfinite(s) for s in spreads) else 0.0)
        return Candidate(self.setting, self.series(name), systematic,
                         keys.pop() if len(keys) == 1 else None)


def build_rows(planned: list[tuple[str, dict, str]], records: dict[str, dict]) -> list[Row]:
    """The rows of a table: ``planned`` lists ``(setting, values, key)`` per planned run in
    table order; ``records`` maps keys to stored records (missing keys: not yet run)."""
    rows: dict[str, Row] = {}
    for setting, values, key in planned:
        row = rows.setdefault(setting, Row(setting, dict(values)))
        row.n_planned += 1
        if key in records:
            row.runs.append(run_row(records[key]))
            row.records.append(records[key])
    return list(rows.values())


def verdict(rows: list[Row], name: str) -> Verdict:
    """The tie rule on one quantity: lowest train time, epochs or test loss; highest accuracy."""
    return best_of([row.candidate(name) for row in rows if row.runs],
                   lower_is_better=name != "test_accuracy")
