"""runs.csv and table.csv read back equal to the records and the table; DataFrames need pandas."""

import builtins
import math

import pytest

from ffnn.studies import export
from ffnn.studies.table import Row, run_row


def _record(setting, repeat, **extra):
    return {"key": f"{setting}-{repeat}", "study": "s", "setting": setting, "repeat": repeat,
            "seed": 10 + repeat, "shuffle_seed": 10 + repeat, "epochs": 7 + repeat,
            "best_epoch": 5, "train_time": 0.1 * (repeat + 1) / 3, "diverged": False,
            "train_loss": 0.2, "train_accuracy": 0.95, "val_loss": 0.25, "val_accuracy": 0.94,
            "test_loss": 0.3 + repeat / 7, "test_accuracy": 0.9125, "epoch_cost": 1 / 3,
            "epoch_cost_spread": 0.01, "train_time_kind": "epochs x cost",
            "timing_key": "abc", "parameter": "hidden_size", "value": int(setting),
            "config": {"hidden_size": int(setting), "learning_rate": 0.001}, **extra}


def _rows():
    diverged = _record("10", 2, diverged=True, test_loss=None, test_accuracy=None)
    return [Row("5", {"hidden_size": 5}, [run_row(_record("5", r)) for r in range(3)], 3),
            Row("10", {"hidden_size": 10},
                [run_row(_record("10", 0)), run_row(_record("10", 1)), run_row(diverged)], 4)]


def _same(a, b):
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) \
        or a == b


def test_runs_csv_round_trips_every_column_and_value(tmp_path):
    rows = _rows()
    path = export.write_runs_csv(tmp_path / export.RUNS_FILE, rows)
    back = export.read_csv_rows(path)
    expected = [run for row in rows for run in row.runs]
    assert list(back[0]) == list(export.RUN_COLUMNS)
    assert len(back) == len(expected) == 6
    for got, want in zip(back, expected, strict=True):
        assert all(_same(got[c], want[c]) for c in export.RUN_COLUMNS), (got, want)
    assert {"setting", "repeat", "seed", "epochs", "best_epoch", "train_time",
            "train_time_kind", "epoch_cost", "test_loss", "test_accuracy",
            "diverged"} <= set(export.RUN_COLUMNS)


def test_table_csv_has_means_and_stds_in_separate_columns(tmp_path):
    rows = _rows()
    path = export.write_table_csv(tmp_path / export.TABLE_FILE, rows, ["hidden_size"])
    back = export.read_csv_rows(path)
    assert list(back[0]) == export.table_columns(["hidden_size"])
    assert [r["hidden_size"] for r in back] == [5, 10]
    assert (back[1]["n_runs"], back[1]["n_planned"], back[1]["n_diverged"]) == (3, 4, 1)
    for got, row in zip(back, rows, strict=True):
        for name in ("train_time", "epochs", "test_loss", "test_accuracy", "epoch_cost"):
            mean, std = row.stat(name)
            assert _same(got[f"{name}_mean"], mean) and _same(got[f"{name}_std"], std)
    assert back[0]["train_time_kind"] == "epochs x cost"


def test_as_frame_gives_a_dataframe_of_the_flat_records():
    pandas = pytest.importorskip("pandas")
    records = [_record("5", r) for r in range(3)]
    frame = export.as_frame(export.flat_records(records))
    assert isinstance(frame, pandas.DataFrame)
    assert len(frame) == 3 and frame["config.hidden_size"].tolist() == [5, 5, 5]
    assert frame["epochs"].tolist() == [7, 8, 9]


def test_as_frame_without_pandas_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match=r"ffnn\[pandas\]"):
        export.as_frame([{"a": 1}])
