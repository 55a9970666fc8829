"""Studies with grouping (``ffnn.train_many`` per repeat): what is grouped, grouped and ungrouped
records (bitwise equal, one key), train times, ``--no-group``, tasks of not yet recorded runs."""

import pytest
from click.testing import CliRunner

import ffnn
from ffnn.cli import main
from ffnn.studies.plan import GroupReason, StudyOptions, group_reason, make_tasks, plan_study
from ffnn.studies.specs import builtin_study
from ffnn.studies.store import run_key

IDENTITY = {"float32": {"fingerprint": "f" * 32, "train_size": 300, "val_size": 100,
                        "test_size": 100, "split_seed": 0}}
# Mixed widths in one group; lr 0.01 and batch 50 so that three epochs move the weights well from
# their start (test accuracy 60-80 %).
STUDY = ('name = "widths"\nparameter = "hidden_size"\nvalues = [5, 10, 20]\n'
         '[base]\nlearning_rate = 0.01\nbatch_size = 50\n')
# 3 settings x 2 repeats x 3 epochs; 500 test images, so 0.2 points is one image.
FLAGS = ["--repeats", "2", "--max-epochs", "3", "--train-size", "400", "--val-size", "200",
         "--test-size", "500", "--backend", "numba", "--workers", "1"]


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def table(report: str) -> dict[str, list[str]]:
    """The report's table rows by setting: [train time, epochs, test loss, test accuracy]."""
    rows = [line.strip("|").split("|") for line in report.splitlines()
            if line.startswith("| ") and "---" not in line and "Train time" not in line]
    return {cells[0].strip(): [cells[i].strip() for i in (1, 4, 5, 6)] for cells in rows}


def mean(cell: str) -> float:
    return float(cell.split()[0])


def test_which_studies_are_grouped():
    def grouped(name, **options):
        runs = plan_study(builtin_study(name), StudyOptions(repeats=2, **options), IDENTITY)
        return {run.grouped for run in runs}

    # mixed optimizers, activations, learning rates and widths train together ...
    for name in ("optimizers-lr1e-3", "activations-nesterov", "lr-adam-no-es", "hidden-adam"):
        assert grouped(name) == {True}, name
    # ... different batch sizes cannot; nor the NumPy backend; nor with grouping off
    assert grouped("batch-adam") == {False}
    assert grouped("lr-adam", backend="numpy") == {False}
    assert grouped("lr-adam", group=False) == {False}
    spec = builtin_study("batch-adam")
    reason = group_reason([spec.config(v) for v in spec.values])
    assert (reason.reason, reason.detail) == (GroupReason.FIELD_DIFFERS, "batch_size")
    assert str(reason) == "batch_size differs between the settings"
    assert group_reason([spec.config(5)]).reason is GroupReason.SINGLE_SETTING


def test_a_runs_key_is_the_same_grouped_or_not():
    """The engine trains every member of a group exactly as it would alone (bitwise), so a run's
    key names its config and data only, never its group."""
    spec = builtin_study("lr-adam")
    solo = plan_study(spec, StudyOptions(repeats=2, group=False), IDENTITY)
    together = plan_study(spec, StudyOptions(repeats=2), IDENTITY)
    data = IDENTITY["float32"]
    assert [r.key for r in solo] == [run_key(r.config.to_dict(), data) for r in solo]
    assert [r.key for r in together] == [r.key for r in solo]
    assert len({r.key for r in together}) == 10
    assert {r.grouped for r in together} == {True} and {r.grouped for r in solo} == {False}


def test_a_task_is_the_not_yet_recorded_runs_of_one_repeat():
    runs = plan_study(builtin_study("lr-adam"), StudyOptions(repeats=3), IDENTITY)
    assert [len(t) for t in make_tasks(runs)] == [5, 5, 5]
    pending = [r for r in runs if not (r.repeat == 1 and r.setting in ("1e-05", "0.05"))]
    tasks = make_tasks(pending)
    assert [len(t) for t in tasks] == [5, 3, 5]
    assert all(len({(r.study, r.repeat) for r in task}) == 1 for task in tasks)
    assert [r.setting for r in tasks[1]] == ["0.0001", "0.001", "0.01"]
    ungrouped = plan_study(builtin_study("batch-adam"), StudyOptions(repeats=2), IDENTITY)
    assert [len(t) for t in make_tasks(ungrouped)] == [1] * 10


@pytest.fixture(scope="module")
def grouped_and_not(tmp_path_factory):
    """The study grouped into ``together/``, with --no-group into ``alone/``, then with --no-group
    into ``together/`` (which finds every run recorded)."""
    root = tmp_path_factory.mktemp("grouped")
    (root / "widths.toml").write_text(STUDY)
    command = ["study", "--file", root / "widths.toml", *FLAGS, "--out"]
    reports = [invoke(*command, root / "together").stdout,
               invoke(*command, root / "alone", "--no-group").stdout,
               invoke(*command, root / "together", "--no-group").stdout]
    return root / "together", root / "alone", reports


def test_grouped_and_ungrouped_records_are_bitwise_equal(grouped_and_not):
    together, alone, (grouped_report, alone_report, _) = grouped_and_not
    a, b = table(grouped_report), table(alone_report)
    assert list(a) == list(b) == ["5", "10", "20"]
    for setting in a:
        assert a[setting][1:] == b[setting][1:]  # epochs, test loss, test accuracy
        assert mean(a[setting][3]) > 50, a  # the networks did learn (chance: 10 %)
    grouped = {r["key"]: r for r in ffnn.load_results(together)}
    single = {r["key"]: r for r in ffnn.load_results(alone)}
    assert set(grouped) == set(single) and len(grouped) == 6
    for key, record in grouped.items():
        assert record["grouped"] and not single[key]["grouped"]
        for name in ("config", "epochs", "best_epoch", "stopped_early", "diverged", "train_loss",
                     "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"):
            assert record[name] == single[key][name], name
        for name in ("train_loss", "val_loss", "val_accuracy"):
            assert record["history"][name] == single[key]["history"][name], name


def test_grouped_runs_report_epochs_times_cost_and_no_group_thread_cpu(grouped_and_not):
    together, alone, (grouped, alone_report, _) = grouped_and_not
    for r in ffnn.load_results(together):
        assert (r["train_time_kind"], r["train_time_source"]) == ("epochs x cost", "calibrated")
        assert r["group_size"] == 3 and r["group_wall_time"] > 0
        assert r["epoch_cost"] > 0 and r["epoch_cost_spread"] >= 0
        assert r["train_time"] == pytest.approx(r["epochs"] * r["epoch_cost"])
    for r in ffnn.load_results(alone):
        assert (r["train_time_kind"], r["train_time_source"]) == ("thread cpu", "measured")
        assert r["train_time"] > 0 and r["group_size"] == 1
        assert r["group_wall_time"] is None and r["epoch_cost_spread"] is None
        assert r["epoch_cost"] == pytest.approx(r["train_time"] / r["epochs"])
    assert "| epochs x cost |" in grouped and "thread cpu" not in grouped.split("**Concl")[0]
    assert "| thread cpu |" in alone_report


def test_no_group_reuses_the_grouped_records(grouped_and_not):
    together, alone, _ = grouped_and_not
    first, second = (together / "logs" / "widths.log").read_text().split("study widths done")[:2]
    assert "trained together (train time: epochs x" in first
    assert "6 runs; 0 already recorded" in first
    assert "6 runs; 6 already recorded, 0 to run" in second
    assert "6 runs; 0 already recorded, 6 to run" in (alone / "logs" / "widths.log").read_text()


def test_worker_threads_give_the_same_grouped_records(grouped_and_not, tmp_path):
    """The API's thread executor (measured against worker processes, see docs) computes the same
    records as this process alone: single-threaded groups are bitwise reproducible."""
    from ffnn.studies.plan import DataSpec
    from ffnn.studies.run import run_studies
    from ffnn.studies.specs import load_study_file
    from ffnn.studies.store import canonical_json, non_timing

    out, _, _ = grouped_and_not
    spec = load_study_file(out.parent / "widths.toml")
    options = StudyOptions(repeats=2, max_epochs=3, data=DataSpec(
        train_size=400, val_size=200, test_size=500))
    run_studies([spec], options, tmp_path, workers=2, executor="threads", progress=False)
    threads = {r["key"]: r for r in ffnn.load_results(tmp_path)}
    alone = {r["key"]: r for r in ffnn.load_results(out)}
    assert set(threads) == set(alone) and len(alone) == 6
    for key, record in threads.items():
        assert canonical_json(non_timing(record)) == canonical_json(non_timing(alone[key]))
    assert {r["worker"]["thread"] for r in threads.values()} <= {"ffnn-study_0", "ffnn-study_1"}
