"""Studies end to end (in this process, tiny data): honest train times, persisted costs, models,
figures and exports, grid and recipe files, ``run_study``."""

import json
import logging

import pytest

import ffnn
from ffnn.studies import export, timing
from ffnn.studies.plan import DataSpec, StudyOptions, resolve_options
from ffnn.studies.run import run_studies, run_study
from ffnn.studies.specs import StudyError, builtin_study, load_study_file
from ffnn.studies.store import read_records

QUICK = timing.TimingSettings(rounds=2, min_epochs=2, min_seconds=0.0, first_round_epochs=1)
TINY = DataSpec(train_size=300, val_size=100, test_size=100)


def _run(specs, out, **kwargs):
    options = StudyOptions(repeats=2, max_epochs=3, data=TINY)
    return run_studies(specs, options, out, timing=QUICK, progress=False, **kwargs)


@pytest.fixture(scope="module")
def lr_study(tmp_path_factory):
    """lr-adam-no-es: five learning rates of one shape, grouped, 2 repeats of 3 epochs."""
    out = tmp_path_factory.mktemp("lr")
    [outcome] = _run([builtin_study("lr-adam-no-es")], out)
    return out, outcome


def test_identical_configurations_get_the_same_per_epoch_cost(lr_study):
    out, _ = lr_study
    records = read_records(out / "lr-adam-no-es" / "results.jsonl")
    assert len(records) == 10 and all(r["grouped"] for r in records)
    assert len({r["timing_key"] for r in records}) == 1  # the learning rate is not timed
    assert len({(r["epoch_cost"], r["epoch_cost_spread"]) for r in records}) == 1


def test_grouped_train_time_is_epochs_times_the_cost(lr_study):
    out, _ = lr_study
    for r in read_records(out / "lr-adam-no-es" / "results.jsonl"):
        assert r["train_time_kind"] == "epochs x cost"
        assert r["train_time"] == pytest.approx(r["epochs"] * r["epoch_cost"], rel=1e-12)


def test_equal_work_at_one_cost_is_called_a_tie(lr_study):
    _, outcome = lr_study
    line = outcome.report.split("Best train time")[1].split("\n")[0]
    assert line.startswith(": all 5 settings tie, within noise"), line
    assert "| Train time | Time | Per-epoch cost | Epochs |" in outcome.report
    assert "| epochs x cost |" in outcome.report


def test_costs_persist_and_a_later_study_in_the_same_dir_reuses_them(lr_study, caplog):
    out, _ = lr_study
    stored = json.loads((out / timing.TIMING_FILE).read_text())["entries"]
    assert len(stored) == 1
    with caplog.at_level(logging.INFO, logger="ffnn.studies"):
        _run([builtin_study("lr-adam")], out)  # same shape, early stopping: same timing key
    assert "measuring the per-epoch cost" not in caplog.text
    records = read_records(out / "lr-adam" / "results.jsonl")
    assert {r["epoch_cost"] for r in records} == {stored[0]["cost"]["mean"]}


def test_every_figure_csv_and_model_of_a_small_study(lr_study):
    out, _ = lr_study
    directory = out / "lr-adam-no-es"
    for name in ("curves.png", "test.png", "tradeoff.png", "predictions.png", "confusion.png"):
        assert (directory / name).stat().st_size > 10_000, name
    models = sorted((directory / "models").glob("*.npz"))
    keys = {r["key"] for r in read_records(directory / "results.jsonl")}
    assert {m.stem for m in models} == keys
    model = ffnn.load_model(models[0])
    assert model.hidden_size == 10
    assert len(export.read_csv_rows(directory / "runs.csv")) == 10
    assert len(export.read_csv_rows(directory / "table.csv")) == 5
    assert (out / "summary.md").read_text().startswith("# Study summary")
    assert (out / "summary.png").stat().st_size > 10_000


def test_runs_trained_alone_report_their_own_thread_cpu_time(tmp_path):
    options = StudyOptions(repeats=1, max_epochs=2, data=TINY, group=False)
    run_studies([builtin_study("hidden-adam")], options, tmp_path, timing=QUICK,
                progress=False, save_models=False)
    records = read_records(tmp_path / "hidden-adam" / "results.jsonl")
    assert {r["train_time_kind"] for r in records} == {"thread cpu"}
    assert all(r["train_time"] > 0 and r["epoch_cost"] == r["train_time"] / r["epochs"]
               for r in records)
    assert not (tmp_path / "hidden-adam" / "models").exists()
    assert not (tmp_path / timing.TIMING_FILE).exists()  # nothing grouped: nothing to time


GRID = """
name = "grid-test"
description = "hidden x batch"
repeats = 2
max_epochs = 2
train_size = 300
val_size = 100
test_size = 100

[grid]
hidden_size = [5, 10]
batch_size = [50, 100, 250]
"""


def test_a_grid_study_gives_settings_by_parameters_and_resumes(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    spec = load_study_file(path)
    assert [s.values for s in spec.settings()][:2] == [{"hidden_size": 5, "batch_size": 50},
                                                       {"hidden_size": 5, "batch_size": 100}]
    out = tmp_path / "out"
    [first] = run_studies([spec], out=out, timing=QUICK, progress=False)
    assert first.total == 12 and first.computed == 12
    assert len({r.key for r in first.runs}) == 12
    table = export.read_csv_rows(out / "grid-test" / "table.csv")
    assert [(r["hidden_size"], r["batch_size"]) for r in table] == [
        (5, 50), (5, 100), (5, 250), (10, 50), (10, 100), (10, 250)]
    assert "| hidden_size | batch_size | Train time |" in first.report
    assert (out / "grid-test" / "heatmap.png").stat().st_size > 5_000
    [again] = run_studies([spec], out=out, timing=QUICK, progress=False)
    assert (again.skipped, again.computed) == (12, 0)


def test_a_recipe_is_used_and_flags_override_it(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    spec = load_study_file(path)
    options, sources = resolve_options(spec, {})
    assert (options.repeats, options.max_epochs, options.data.train_size) == (2, 2, 300)
    assert sources["repeats"] == "study file"
    options, sources = resolve_options(spec, {"repeats": 5, "train_size": 200})
    assert (options.repeats, options.data.train_size, options.data.val_size) == (5, 200, 100)
    assert sources["repeats"] == "command line" and sources["val_size"] == "study file"
    assert sources["split_seed"] == "default"


def test_max_epochs_flag_on_a_study_varying_max_epochs_is_an_error(tmp_path):
    path = tmp_path / "epochs.toml"
    path.write_text('name = "epochs"\nparameter = "max_epochs"\nvalues = [1, 2]\n')
    with pytest.raises(StudyError, match="max-epochs"):
        resolve_options(load_study_file(path), {"max_epochs": 3})


@pytest.mark.parametrize("text, message", [
    ('name = "g"\n[grid]\n', "grid: expected a table"),
    ('name = "g"\n[grid]\nhidden_size = []\n', "grid.hidden_size: expected a non-empty list"),
    ('name = "g"\n[grid]\nnope = [1]\n', "unknown parameter 'nope'"),
    ('name = "g"\n[grid]\nl2 = [0, 0.0]\n', r"grid.l2\[1\] = 0.0 duplicates grid.l2\[0\] = 0"),
    ('name = "g"\n[grid]\nhidden_size = [0, 5]\n', r"grid.hidden_size\[0\]"),
    ('name = "g"\nparameter = "l2"\nvalues = [0.1]\n[grid]\nhidden_size = [1]\n', "not both"),
    ('name = "g"\nrepeats = 0\n[grid]\nhidden_size = [1]\n', "repeats: expected an integer"),
    ('name = "g"\nmax_epochs = 3\n[grid]\nmax_epochs = [1, 2]\n', "varies max_epochs"),
])
def test_bad_grids_are_refused_naming_the_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(StudyError, match=message):
        load_study_file(path)


def test_run_study_from_python_returns_the_table_and_paths(tmp_path):
    result = run_study("hidden-adam", out=tmp_path, repeats=1, max_epochs=2, train_size=300,
                       val_size=100, test_size=100, timing=QUICK, save_models=False)
    assert result.name == "hidden-adam"
    assert [r["hidden_size"] for r in result.records] == [5, 10, 25, 50, 100]
    assert result.report_path == tmp_path / "hidden-adam" / "report.md"
    assert result.report_path.is_file() and result.directory == tmp_path / "hidden-adam"
    frame = result.frame
    assert list(frame["hidden_size"]) == [5, 10, 25, 50, 100]
    assert "test_accuracy_mean" in frame.columns


def test_load_results_as_frame_gives_one_row_per_run(lr_study):
    pandas = pytest.importorskip("pandas")
    out, _ = lr_study
    frame = ffnn.load_results(out / "lr-adam-no-es", as_frame=True)
    assert isinstance(frame, pandas.DataFrame) and len(frame) == 10
    assert set(frame["config.learning_rate"]) == {1e-5, 1e-4, 1e-3, 1e-2, 5e-2}
    assert (frame["train_time_kind"] == "epochs x cost").all()


def test_load_results_as_frame_without_pandas_names_the_extra(lr_study, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    out, _ = lr_study
    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match=r"pip install 'ffnn\[pandas\]'"):
        ffnn.load_results(out, as_frame=True)
    assert len(ffnn.load_results(out)) >= 10  # records need no pandas


def test_the_report_says_where_each_option_came_from(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    [outcome] = run_studies([load_study_file(path)], out=tmp_path / "out", timing=QUICK,
                            progress=False, given={"repeats": 1}, save_models=False)
    assert outcome.total == 6
    assert ("Options: repeats from the command line; max_epochs, test_size, train_size, "
            "val_size from the study file; the rest default.") in outcome.report


def test_library_loggers_propagate_and_configure_no_console(lr_study):
    logger = logging.getLogger("ffnn.studies")
    assert logger.propagate and logging.getLogger("ffnn").propagate
    assert not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                   for h in logger.handlers + logging.getLogger("ffnn").handlers)


def test_a_study_written_before_honest_timing_still_reports(tmp_path):
    """A plan and records of format 3 (no values, no timing key or cost): the report reads them,
    calls their times what they were, and rebuilds."""
    from test_records import valid_record

    from ffnn.studies.report import rebuild_reports

    directory = tmp_path / "old"
    directory.mkdir()
    old_fields = ("values", "train_time_kind", "epoch_cost", "epoch_cost_spread", "timing_key")
    records = []
    for i, (setting, source) in enumerate([("adam", "measured"), ("gd", "calibrated")] * 2):
        record = valid_record("abcd"[i], format=3, setting=setting, value=setting, repeat=i // 2,
                              train_time_source=source, train_time=0.2 + i / 100,
                              calibration_epoch_seconds=0.1 if source == "calibrated" else None)
        records.append({k: v for k, v in record.items() if k not in old_fields})
    (directory / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (directory / "plan.json").write_text(json.dumps({
        "study": {"name": "old", "description": "", "parameter": "optimizer",
                  "values": ["adam", "gd"], "base": {}, "label": "Optimizer",
                  "source": "built-in"},
        "options": {"repeats": 2, "seed": 0, "backend": "numpy", "max_epochs": 2,
                    "data": {"path": None, "train_size": 300, "val_size": 100,
                             "test_size": 100, "split_seed": 0}},
        "data": {"float32": records[0]["data"]},
        "runs": [{"key": r["key"], "setting": r["setting"], "value": r["value"],
                  "repeat": r["repeat"], "grouped": False} for r in records]}))
    [text], summary = rebuild_reports(directory)
    assert summary is None and "4 of 4 runs recorded" in text
    assert "| adam | 0.21 ± 0.01 s | wall |" in text
    assert "| gd | 0.22 ± 0.01 s | calibrated |" in text
    assert len(export.read_csv_rows(directory / "runs.csv")) == 4
