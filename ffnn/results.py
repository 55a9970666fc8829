"""Durable, append-only storage of study records.

Each study directory holds ``results.jsonl``: one JSON object per line, appended by one process
(the one running the study), flushed and ``fsync``-ed as soon as a run finishes. A kill at any
moment leaves at most one incomplete last line; readers skip it (and any other line that is not a
complete record) with a warning, and the writer cuts it off before appending, so it never
corrupts the records around it.

Every record carries ``key``: the sha256 of the canonical JSON (sorted keys, no spaces) of
everything that determines the run: the full ``TrainConfig`` (seeds, backend, dtype included),
the data identity (``Splits.fingerprint()``, split sizes and split seed) and, for a run trained
in a group (``ffnn.train_many``), the group: the keys its members would have alone, in order
(a group's members change each other's results in the last bits). A re-run with other flags or
data, or grouped where it was not, therefore produces other keys and never reuses old records.
The key of a run trained alone is the same as before grouping existed (format 1).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "RECORD_FORMAT", "RESULTS_FILE", "TIMING_FIELDS", "ResultStore", "canonical_json",
    "load_results", "non_timing", "read_records", "run_key",
]

RESULTS_FILE = "results.jsonl"
RECORD_FORMAT = 2  # 2: adds grouped, group_size, group_wall_time, calibration_epoch_seconds
# Fields that depend on when, where and how fast a run was computed; everything else in a
# record is bitwise reproducible (``non_timing``).
TIMING_FIELDS = ("train_time", "train_time_source", "recorded_at", "worker", "group_wall_time",
                 "calibration_epoch_seconds")
HISTORY_TIMING_FIELDS = ("seconds",)

log = logging.getLogger(__name__)


def canonical_json(obj) -> str:
    """Sorted keys, no whitespace: equal data gives equal text (floats as Python's repr)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def run_key(config: dict, data: dict, group: list[str] | None = None) -> str:
    """sha256 hex of the canonical JSON of a run's config dict and data identity dict, and, for
    a grouped run, ``group``: the solo keys (``run_key(config, data)``) of its group's members in
    training order."""
    what = {"config": config, "data": data}
    if group is not None:
        what["group"] = list(group)
    return hashlib.sha256(canonical_json(what).encode()).hexdigest()


def non_timing(record: dict) -> dict:
    """The record without its timing and provenance fields (``TIMING_FIELDS``, epoch seconds)."""
    out = {k: v for k, v in record.items() if k not in TIMING_FIELDS}
    if isinstance(out.get("history"), dict):
        out["history"] = {k: v for k, v in out["history"].items()
                          if k not in HISTORY_TIMING_FIELDS}
    return out


def _parse(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
        return None
    return record


def _scan(path: Path) -> tuple[list[dict], int, int]:
    """``(records, end of the last complete line, number of bad lines)``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0, 0
    records, bad, good_end, start = [], 0, 0, 0
    while start < len(data):
        newline = data.find(b"\n", start)
        if newline < 0:  # an unterminated last line: a record cut short by a kill or full disk
            log.warning("%s: ignoring an incomplete last record (%d bytes)",
                        path, len(data) - start)
            bad += 1
            break
        line = data[start:newline]
        if line.strip():
            record = _parse(line)
            if record is None:
                log.warning("%s: ignoring a malformed record at byte %d", path, start)
                bad += 1
            else:
                records.append(record)
        good_end = start = newline + 1
    return records, good_end, bad


def read_records(path) -> list[dict]:
    """The complete records of one ``results.jsonl`` (incomplete or malformed lines skipped)."""
    return _scan(Path(path))[0]


def load_results(directory) -> list[dict]:
    """Every record under ``directory``: a study output directory (``--out``), one study's
    directory, or a ``results.jsonl`` file. Records of one file keep their order; files are
    read in sorted path order.
    """
    directory = Path(directory)
    if directory.is_file():
        return read_records(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such results directory")
    files = sorted(directory.rglob(RESULTS_FILE))
    return [r for f in files for r in read_records(f)]


class ResultStore:
    """The append-only record file of one study, opened for writing by one process.

    Opening reads the existing records and cuts off an incomplete last line (a record cut short
    by a kill), so new records start on a fresh line. An advisory lock (``flock``) stops a second
    ``ffnn-run`` from writing the same file at the same time.
    """

    def __init__(self, path, *, fresh: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "ab+")
        try:
            _lock(self._file, self.path)
            records, good_end, self.n_bad = _scan(self.path)
            if good_end < os.fstat(self._file.fileno()).st_size:
                self._file.truncate(good_end)
                os.fsync(self._file.fileno())
        except BaseException:
            self._file.close()
            raise
        self.records: dict[str, dict] = {r["key"]: r for r in records}

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def append(self, record: dict) -> None:
        """Write one record durably (one ``write``, then flush and fsync) before returning."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records[record["key"]] = record

    def extend(self, records: Iterable[dict]) -> None:
        """Write several records durably with one ``write`` and one fsync (a group's records
        land together, so an interruption practically never splits a group)."""
        records = list(records)
        data = b"".join((json.dumps(r, separators=(",", ":")) + "\n").encode() for r in records)
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        for record in records:
            self.records[record["key"]] = record

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _lock(file, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RuntimeError(f"{path}: another ffnn-run is writing these results; "
                           "wait for it or use another --out") from None
