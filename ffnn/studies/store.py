"""Durable, append-only storage of study records.

Each study directory holds ``results.jsonl``: one JSON object per line, appended by one process
(the one running the study, which holds the output directory's ``RunLock``), flushed and
``fsync``-ed as soon as a run finishes. A kill at any moment leaves at most one incomplete last
line; the writer cuts it off before appending, so it never corrupts the records around it.

A line counts as a record only if ``records.check_record`` accepts it; readers skip every
other line (an incomplete last line, a line that is not JSON, an object missing a field or with
a field of the wrong type) and report each once, with file, line number and reason
(``ResultStore.problems``; ``read_records`` logs them). The run of a skipped line is computed
again. Records are written as strict JSON (``records.encode_record``).

Every record carries ``key``: the sha256 of the canonical JSON (sorted keys, no spaces) of
everything that determines the run: the full ``TrainConfig`` (seeds, backend, dtype included),
and the data identity (``Splits.fingerprint()``, split sizes and split seed). A re-run with other
flags or data produces other keys and never reuses old records. A run trained in a group
(``ffnn.train_many``) has the key it has alone, because the engine computes each member exactly
as it would alone (bitwise), so grouped and ``--no-group`` runs share records. (Before format 4,
a grouped run's key also named its group; such records still read, and are simply not used.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..safe_io import naming
from .records import RECORD_FORMAT, RecordError, encode_record, parse_record_line

__all__ = [
    "RECORD_FORMAT", "RESULTS_FILE", "TIMING_FIELDS", "BadLine", "ResultStore",
    "canonical_json", "load_results", "non_timing", "read_records", "run_key", "scan_records",
]

RESULTS_FILE = "results.jsonl"
# Fields that depend on when, where and how fast a run was computed; everything else in a
# record is bitwise reproducible (``non_timing``).
TIMING_FIELDS = ("train_time", "train_time_source", "recorded_at", "worker", "group_wall_time",
                 "calibration_epoch_seconds", "epoch_cost", "epoch_cost_spread")
HISTORY_TIMING_FIELDS = ("seconds",)

log = logging.getLogger(__name__)


def canonical_json(obj) -> str:
    """Sorted keys, no whitespace: equal data gives equal text (floats as Python's repr)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def run_key(config: dict, data: dict) -> str:
    """sha256 hex of the canonical JSON of a run's config dict and data identity dict."""
    what = {"config": config, "data": data}
    return hashlib.sha256(canonical_json(what).encode()).hexdigest()


def non_timing(record: dict) -> dict:
    """The record without its timing and provenance fields (``TIMING_FIELDS``, epoch seconds)."""
    out = {k: v for k, v in record.items() if k not in TIMING_FIELDS}
    if isinstance(out.get("history"), dict):
        out["history"] = {k: v for k, v in out["history"].items()
                          if k not in HISTORY_TIMING_FIELDS}
    return out


@dataclass(frozen=True)
class BadLine:
    """A line of a results file that is not a record: 1-based line number and why."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: line {self.line}: {self.reason}"


def scan_records(path, data: bytes) -> tuple[list[dict], int, list[BadLine]]:
    """``(records, end of the last complete line, bad lines)`` of the bytes ``data`` of the
    results file ``path`` (named in the bad lines); never raises."""
    records, bad, good_end, start, number = [], [], 0, 0, 0
    while start < len(data):
        number += 1
        newline = data.find(b"\n", start)
        if newline < 0:  # an unterminated last line: a record cut short by a kill or full disk
            bad.append(BadLine(path, number, f"incomplete last record ({len(data) - start} "
                                             "bytes, no newline)"))
            break
        line = data[start:newline]
        if line.strip():
            try:
                records.append(parse_record_line(line))
            except RecordError as e:
                bad.append(BadLine(path, number, str(e)))
        good_end = start = newline + 1
    return records, good_end, bad


def _read(path: Path) -> bytes:
    try:
        with naming(path):
            return path.read_bytes()
    except FileNotFoundError:
        return b""


def read_records(path) -> list[dict]:
    """The records of one ``results.jsonl`` (each other line logged once and skipped)."""
    path = Path(path)
    records, _, bad = scan_records(path, _read(path))
    for line in bad:
        log.warning("%s; skipped (a re-run of the study computes its run again)", line)
    return records


def load_results(directory, *, as_frame: bool = False):
    """Every record under ``directory``: a study output directory (``--out``), one study's
    directory, or a ``results.jsonl`` file. Records of one file keep their order; files are
    read in sorted path order.

    ``as_frame=True``: a pandas DataFrame instead, one flat row per run
    (``export.flat_records``: setting, repeat, seeds, epochs, times, losses, accuracies and
    ``config.<field>`` columns); an ``ImportError`` naming the extra when pandas is missing.
    """
    directory = Path(directory)
    if directory.is_file():
        records = read_records(directory)
    elif not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such results directory")
    else:
        records = [r for f in sorted(directory.rglob(RESULTS_FILE)) for r in read_records(f)]
    if not as_frame:
        return records
    from .export import as_frame as frame
    from .export import flat_records

    return frame(flat_records(records))


class ResultStore:
    """The append-only record file of one study, opened for writing by the one process that
    holds the output directory's ``RunLock``.

    Opening reads the existing records (``records``, by key; ``problems``: the lines that are
    not records, for the caller to report) and cuts off an incomplete last line (a record cut
    short by a kill), so new records start on a fresh line. ``fresh=True`` deletes the file
    first. OS errors name the file.
    """

    def __init__(self, path, *, fresh: bool = False):
        self.path = Path(path)
        with naming(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if fresh:
                self.path.unlink(missing_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            with naming(self.path):
                records, good_end, self.problems = scan_records(self.path, self.path.read_bytes())
                if good_end < os.fstat(self._fd).st_size:
                    os.ftruncate(self._fd, good_end)
                    os.fsync(self._fd)
        except BaseException:
            os.close(self._fd)
            raise
        self.records: dict[str, dict] = {r["key"]: r for r in records}

    @property
    def n_bad(self) -> int:
        return len(self.problems)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def append(self, record: dict) -> None:
        """Write one record durably (one ``write``, then fsync) before returning."""
        self.extend([record])

    def extend(self, records: Iterable[dict]) -> None:
        """Write several records durably with one ``write`` and one fsync (a group's records
        land together, so an interruption practically never splits a group). Every record is
        checked (``RecordError``) before anything is written; a failed write (full disk) is
        cut off again, so the file stays a sequence of whole records."""
        records = list(records)
        data = memoryview(b"".join(encode_record(r) for r in records))
        with naming(self.path):
            end = os.fstat(self._fd).st_size
            try:
                while data:
                    data = data[os.write(self._fd, data):]
                os.fsync(self._fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, end)
                raise
        for record in records:
            self.records[record["key"]] = record

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
