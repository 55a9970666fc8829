"""Study records: the schema every reader shares (``studies.records.check_record``), strict
JSON, older formats, and the append-only store (truncated and malformed lines, a failed write)."""

import copy
import errno
import json
import math
import os

import pytest

import ffnn
from ffnn.studies.records import (
    RECORD_FORMAT,
    RecordError,
    check_record,
    encode_record,
    parse_record_line,
)
from ffnn.studies.store import ResultStore, load_results, non_timing, read_records


def valid_record(key="a", **changes) -> dict:
    """A complete record of the current format, as ``records.make_record`` writes it."""
    record = {
        "format": RECORD_FORMAT, "key": key * 64 if len(key) == 1 else key,
        "study": "s", "parameter": "optimizer", "setting": "adam", "value": "adam",
        "repeat": 0, "seed": 0, "shuffle_seed": 0,
        "config": ffnn.TrainConfig(backend="numpy", seed=0, shuffle_seed=0, threads=1).to_dict(),
        "data": {"fingerprint": "f" * 32, "train_size": 300, "val_size": 100, "test_size": 100,
                 "split_seed": 0, "source": "mnist", "n_features": 784, "n_classes": 10},
        "epochs": 2, "best_epoch": 2, "stopped_early": False, "diverged": False,
        "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.75,
        "test_loss": 0.7, "test_accuracy": 0.7,
        "history": {"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6],
                    "val_accuracy": [0.6, 0.75], "seconds": [0.1, 0.1]},
        "backend": "numpy", "dtype": "float32", "versions": {"ffnn": "0"}, "machine": {},
        "grouped": False, "group_size": 1, "train_time": 0.2, "train_time_source": "measured",
        "group_wall_time": None, "calibration_epoch_seconds": None,
        "recorded_at": "2026-01-01T00:00:00+00:00", "worker": {"pid": 1},
        "values": {"optimizer": "adam"}, "train_time_kind": "thread cpu", "epoch_cost": 0.1,
        "epoch_cost_spread": None, "timing_key": "0123456789abcdef",
    }
    record.update(changes)
    return record


def line(record) -> bytes:
    return (json.dumps(record) + "\n").encode()


def test_a_complete_record_is_accepted_and_reads_back_as_written():
    record = valid_record()
    assert check_record(json.loads(encode_record(record))) == record


@pytest.mark.parametrize(("change", "reason"), [
    ({"diverged": None}, "diverged: expected true or false, got null"),
    ({"epochs": "2"}, "epochs: expected an integer, got a string '2'"),
    ({"epochs": True}, "epochs: expected an integer"),
    ({"repeat": -1}, "repeat: expected an integer >= 0"),
    ({"key": "k"}, "key: expected 64 hexadecimal digits"),
    ({"test_accuracy": "high"}, "test_accuracy: expected a number or null"),
    ({"test_accuracy": 1.5}, r"test_accuracy: 1.5 is not in \[0, 1\]"),
    ({"test_accuracy": None}, "test_accuracy: null, but the run did not diverge and its test "
                              "split has 100 images"),
    ({"train_time": None}, "train_time: expected a number, got null"),
    ({"history": {"train_loss": [1.0]}}, "history.val_loss: expected a list"),
    ({"best_epoch": 3}, "best_epoch: 3 is after the last epoch 2"),
    ({"config": {"optimizer": "sgd"}}, "config: optimizer: 'sgd' is not one of"),
    ({"config": {"width": 3}}, "config: unknown TrainConfig field"),
    ({"data": {"train_size": 1}}, "data: missing 'val_size'"),
    ({"format": RECORD_FORMAT + 1}, f"format: version {RECORD_FORMAT + 1} is not one"),
    ({"value": None}, "value: expected a number, string, boolean or list of integers"),
])
def test_a_record_with_a_wrong_field_is_refused_with_the_reason(change, reason):
    with pytest.raises(RecordError, match=reason):
        check_record(valid_record(**change))


def test_each_missing_field_is_named():
    for name in valid_record():
        record = valid_record()
        del record[name]
        with pytest.raises(RecordError, match=name):
            check_record(record)


def test_metrics_may_be_null_for_a_diverged_run_or_an_empty_split():
    diverged = check_record(valid_record(diverged=True, test_loss=None, test_accuracy=None))
    assert math.isnan(diverged["test_loss"]) and math.isnan(diverged["test_accuracy"])
    data = {**valid_record()["data"], "val_size": 0}
    no_val = check_record(valid_record(data=data, val_loss=None, val_accuracy=None,
                                       history={**valid_record()["history"],
                                                "val_loss": [None, None]}))
    assert math.isnan(no_val["val_loss"]) and math.isnan(no_val["history"]["val_loss"][1])


def test_a_diverged_record_is_written_as_strict_json_and_reads_back_nan():
    record = valid_record(diverged=True, train_loss=math.inf, test_loss=math.nan,
                          test_accuracy=math.nan,
                          history={**valid_record()["history"], "train_loss": [1.0, math.inf]})
    text = encode_record(record)

    def refuse(token):
        raise AssertionError(f"non-JSON token {token}")

    strict = json.loads(text, parse_constant=refuse)
    assert strict["test_loss"] is None and strict["history"]["train_loss"][1] is None
    back = parse_record_line(text.rstrip(b"\n"))
    assert math.isnan(back["test_loss"]) and math.isnan(back["train_loss"])
    assert math.isnan(back["history"]["train_loss"][1])


def test_the_store_never_writes_a_record_it_would_refuse(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultStore(path) as store:
        with pytest.raises(RecordError, match="test_accuracy"):
            store.extend([valid_record("a"), valid_record("b", test_accuracy=None)])
        assert not store.records
    assert path.read_bytes() == b""


def test_older_formats_read_with_defaults_for_the_fields_they_lack():
    old = valid_record(format=1, test_loss=math.nan, diverged=True)
    for name in ("grouped", "group_size", "group_wall_time", "calibration_epoch_seconds"):
        del old[name]
    text = json.dumps(old).encode()  # format 1 wrote NaN as the token NaN
    assert b"NaN" in text
    record = parse_record_line(text)
    assert record["grouped"] is False and record["group_size"] == 1
    assert record["group_wall_time"] is None and math.isnan(record["test_loss"])
    with pytest.raises(RecordError, match="missing field 'grouped' \\(format 2\\)"):
        check_record({**old, "format": 2})


def test_store_ignores_and_cuts_off_a_truncated_last_record(tmp_path, caplog):
    path = tmp_path / "results.jsonl"
    with ResultStore(path) as store:
        store.append(valid_record("a"))
        store.append(valid_record("b"))
    whole = path.read_bytes()
    path.write_bytes(whole + whole.splitlines(keepends=True)[0][:25])  # a record cut short
    assert [r["key"][0] for r in read_records(path)] == ["a", "b"]
    assert f"{path}: line 3: incomplete last record (25 bytes, no newline); skipped" in caplog.text
    with ResultStore(path) as store:
        assert set(store.records) == {"a" * 64, "b" * 64} and store.n_bad == 1
        store.append(valid_record("c"))
    assert [r["key"][0] for r in load_results(tmp_path)] == ["a", "b", "c"]
    assert path.read_bytes().startswith(whole) and path.read_bytes().count(b"\n") == 3


def test_store_skips_each_line_that_is_not_a_record_naming_file_and_line(tmp_path, caplog):
    path = tmp_path / "results.jsonl"
    planned = "b" * 64
    path.write_bytes(line(valid_record("a")) + b'{"key": "a", \n'
                     + line({"key": planned, "note": "x"}) + b"[1, 2]\n"
                     + line(valid_record("c")))
    assert [r["key"][0] for r in read_records(path)] == ["a", "c"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert messages[0].startswith(f"{path}: line 2: not valid JSON")
    assert messages[1] == (f"{path}: line 3: missing field 'format'; skipped (a re-run of the "
                           "study computes its run again)")
    assert messages[2].startswith(f"{path}: line 4: expected a JSON object, got a list")
    with ResultStore(path) as store:
        assert [p.line for p in store.problems] == [2, 3, 4] and planned not in store


def test_fresh_store_starts_over(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultStore(path) as store:
        store.append(valid_record("a"))
    with ResultStore(path, fresh=True) as store:
        assert not store.records
    assert read_records(path) == []


def test_a_failed_write_names_the_file_and_leaves_whole_records(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, bytes(data[:10]))  # part of the line lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    with ResultStore(path) as store:
        store.append(valid_record("a"))
        monkeypatch.setattr(os, "write", full_disk)
        with pytest.raises(OSError, match="No space left on device") as info:
            store.append(valid_record("b"))
        monkeypatch.setattr(os, "write", real_write)
        assert info.value.filename == str(path) and str(path) in str(info.value)
        store.append(valid_record("c"))
    assert [r["key"][0] for r in read_records(path)] == ["a", "c"]


def test_non_timing_drops_times_only():
    record = {"key": "a", "train_time": 1.0, "history": {"val_loss": [1.0], "seconds": [0.5]},
              "test_loss": 0.5, "recorded_at": "now", "worker": {"pid": 1}}
    assert non_timing(record) == {"key": "a", "test_loss": 0.5,
                                  "history": {"val_loss": [1.0]}}


def test_check_record_does_not_change_its_input():
    record = valid_record(test_loss=1)
    before = copy.deepcopy(record)
    assert isinstance(check_record(record)["test_loss"], float)
    assert record == before
