"""Studies with grouping (``ffnn.train_many`` per repeat): what is grouped, the table grouped and
ungrouped, calibrated train times, ``--no-group``, keys, and tasks of not yet recorded runs."""

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


def test_grouped_keys_name_the_group_and_solo_keys_are_unchanged():
    spec = builtin_study("lr-adam")
    solo = plan_study(spec, StudyOptions(repeats=2, group=False), IDENTITY)
    together = plan_study(spec, StudyOptions(repeats=2), IDENTITY)
    data = IDENTITY["float32"]
    assert [r.key for r in solo] == [run_key(r.config.to_dict(), data) for r in solo]
    assert not {r.key for r in solo} & {r.key for r in together}
    assert len({r.key for r in together}) == 10
    members = [r.key for r in solo[:5]]  # repeat 0's settings, in order
    assert together[2].key == run_key(solo[2].config.to_dict(), data, group=members)


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
    """The study grouped, then with --no-group into the same directory, then grouped again."""
    root = tmp_path_factory.mktemp("grouped")
    (root / "widths.toml").write_text(STUDY)
    out = root / "out"
    command = ["study", "--file", root / "widths.toml", *FLAGS, "--out", out]
    reports = [invoke(*command).stdout]
    reports.append(invoke(*command, "--no-group").stdout)
    reports.append(invoke(*command).stdout)
    return out, reports


def test_grouped_and_ungrouped_give_the_same_table_within_float32_rounding(grouped_and_not):
    out, (grouped, alone, _) = grouped_and_not
    a, b = table(grouped), table(alone)
    assert list(a) == list(b) == ["5", "10", "20"]
    for setting in a:
        (_, epochs_a, loss_a, acc_a), (_, epochs_b, loss_b, acc_b) = a[setting], b[setting]
        assert epochs_a == epochs_b == "3.0 ± 0.0"
        assert mean(loss_a) == pytest.approx(mean(loss_b), abs=2e-4)
        assert abs(mean(acc_a) - mean(acc_b)) <= 0.2 + 1e-9
        assert mean(acc_a) > 50, a  # the networks did learn (chance: 10 %)
    records = ffnn.load_results(out)
    assert len(records) == 12
    by_run = {}
    for r in records:
        by_run.setdefault((r["setting"], r["repeat"]), {})[r["grouped"]] = r
    for together, single in (pair.values() for pair in by_run.values()):
        for name in ("epochs", "best_epoch", "stopped_early", "diverged"):
            assert together[name] == single[name]
        assert together["config"] == single["config"]
        for name in ("train_loss", "val_loss", "test_loss"):
            assert together[name] == pytest.approx(single[name], rel=1e-4)
        assert together["history"]["val_loss"] == pytest.approx(
            single["history"]["val_loss"], rel=1e-4)
        assert abs(together["test_accuracy"] - single["test_accuracy"]) <= 0.002 + 1e-12


def test_grouped_runs_report_epochs_times_cost_and_no_group_thread_cpu(grouped_and_not):
    out, (grouped, alone, _) = grouped_and_not
    records = ffnn.load_results(out)
    for r in records:
        if r["grouped"]:
            assert (r["train_time_kind"], r["train_time_source"]) == ("epochs x cost",
                                                                        "calibrated")
            assert r["group_size"] == 3 and r["group_wall_time"] > 0
            assert r["epoch_cost"] > 0 and r["epoch_cost_spread"] >= 0
            assert r["train_time"] == pytest.approx(r["epochs"] * r["epoch_cost"])
        else:
            assert (r["train_time_kind"], r["train_time_source"]) == ("thread cpu", "measured")
            assert r["train_time"] > 0 and r["group_size"] == 1
            assert r["group_wall_time"] is None and r["epoch_cost_spread"] is None
            assert r["epoch_cost"] == pytest.approx(r["train_time"] / r["epochs"])
    assert sorted(r["grouped"] for r in records) == [False] * 6 + [True] * 6
    assert "| epochs x cost |" in grouped and "thread cpu" not in grouped.split("**Concl")[0]
    assert "| thread cpu |" in alone


def test_no_group_never_reuses_grouped_records_and_back_again_reuses_all(grouped_and_not):
    out, _ = grouped_and_not
    log = (out / "logs" / "widths.log").read_text()
    first, second, third = log.split("study widths done")[:3]
    assert "trained together (train time: epochs x" in first
    assert "6 runs; 0 already recorded" in first
    assert "trained one by one (train time: thread CPU time): grouping is off" in second
    assert "6 runs; 0 already recorded, 6 to run" in second
    assert "6 records from other flags or data are kept but not used" in second
    assert "6 runs; 6 already recorded, 0 to run" in third


def test_worker_threads_give_the_same_grouped_records(grouped_and_not, tmp_path):
    """The API's thread executor (measured against worker processes, see docs) computes the same
    records as this process alone: single-threaded groups are bitwise reproducible."""
    from ffnn.studies.plan import DataSpec
    from ffnn.studies.run import run_studies
    from ffnn.studies.specs import load_study_file
    from ffnn.studies.store import canonical_json, non_timing

    out, _ = grouped_and_not
    spec = load_study_file(out.parent / "widths.toml")
    options = StudyOptions(repeats=2, max_epochs=3, data=DataSpec(
        train_size=400, val_size=200, test_size=500))
    run_studies([spec], options, tmp_path, workers=2, executor="threads", progress=False)
    threads = {r["key"]: r for r in ffnn.load_results(tmp_path)}
    alone = {r["key"]: r for r in ffnn.load_results(out) if r["grouped"]}
    assert set(threads) == set(alone) and len(alone) == 6
    for key, record in threads.items():
        assert canonical_json(non_timing(record)) == canonical_json(non_timing(alone[key]))
    assert {r["worker"]["thread"] for r in threads.values()} <= {"ffnn-study_0", "ffnn-study_1"}
