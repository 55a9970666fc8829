"""The tie rule on scripted tables: a clear winner, a tie of two, all equal, too few repeats."""

import pytest

from ffnn.studies.stats import Candidate, best_of
from ffnn.studies.table import Row, build_rows, run_row, verdict


def test_a_clear_winner_is_named():
    v = best_of([Candidate("a", [1.0, 1.1, 0.9]), Candidate("b", [2.0, 2.1, 1.9]),
                 Candidate("c", [3.0, 3.2, 2.8])], lower_is_better=True)
    assert (v.kind, v.winner, v.runner_up) == ("best", "a", "b")
    assert v.p_value < 0.05


def test_two_settings_within_noise_tie():
    v = best_of([Candidate("a", [1.0, 1.5, 0.7]), Candidate("b", [1.1, 0.8, 1.5]),
                 Candidate("c", [9.0, 9.1, 9.2])], lower_is_better=True)
    assert v.kind == "tie" and v.winner is None
    assert set(v.tied) == {"a", "b"}


def test_all_equal_values_tie():
    v = best_of([Candidate(n, [250.0, 250.0, 250.0]) for n in "abc"], lower_is_better=True)
    assert v.kind == "tie" and v.p_value == 1.0
    assert set(v.tied) == {"a", "b", "c"}


def test_higher_is_better_for_accuracy():
    v = best_of([Candidate("a", [0.90, 0.91, 0.90]), Candidate("b", [0.95, 0.96, 0.95])],
                lower_is_better=False)
    assert v.winner == "b"


def test_fewer_than_two_repeats_make_no_claim():
    v = best_of([Candidate("a", [1.0]), Candidate("b", [5.0])], lower_is_better=True)
    assert v.kind == "too few repeats" and v.winner is None and v.leader == "a"


def test_zero_variance_with_equal_epochs_at_different_costs_ties_within_the_cost_spread():
    # 30 epochs x 0.100 s against 30 epochs x 0.101 s, each cost with spread 0.002 s
    a = Candidate("a", [3.0] * 3, systematic=30 * 0.002, cost_key="k1")
    b = Candidate("b", [3.03] * 3, systematic=30 * 0.002, cost_key="k2")
    assert best_of([a, b], lower_is_better=True).kind == "tie"
    far = Candidate("b", [4.5] * 3, systematic=30 * 0.002, cost_key="k2")
    assert best_of([a, far], lower_is_better=True).winner == "a"


def test_zero_variance_at_one_cost_differs_only_when_the_means_differ():
    same = [Candidate("a", [3.0] * 3, 0.5, "k"), Candidate("b", [3.0] * 3, 0.5, "k")]
    assert best_of(same, lower_is_better=True).kind == "tie"
    fewer = [Candidate("a", [2.9] * 3, 0.5, "k"), Candidate("b", [3.0] * 3, 0.5, "k")]
    assert best_of(fewer, lower_is_better=True).winner == "a"  # one cost: its spread cancels


def test_cost_spreads_add_in_quadrature_only_between_different_costs():
    a_values, b_values = [1.00, 1.01, 0.99], [1.10, 1.11, 1.09]
    plain = best_of([Candidate("a", a_values, 0.2, "k"), Candidate("b", b_values, 0.2, "k")],
                    lower_is_better=True)
    assert plain.winner == "a"
    noisy = best_of([Candidate("a", a_values, 0.2, "k1"), Candidate("b", b_values, 0.2, "k2")],
                    lower_is_better=True)
    assert noisy.kind == "tie" and noisy.p_value > plain.p_value


def _record(setting, repeat, time, epochs=10, acc=0.9, diverged=False, kind="epochs x cost",
            cost=None, spread=0.001, key="k"):
    return {"key": f"{setting}-{repeat}", "setting": setting, "repeat": repeat, "seed": repeat,
            "epochs": epochs, "best_epoch": epochs, "train_time": time, "diverged": diverged,
            "test_loss": 0.3, "test_accuracy": acc, "train_time_kind": kind,
            "epoch_cost": time / epochs if cost is None else cost, "epoch_cost_spread": spread,
            "timing_key": key}


def test_rows_of_a_scripted_table_and_their_verdicts():
    records = [_record("x", r, 1.0, acc=0.90 + 0.001 * r, key="kx") for r in range(3)]
    records += [_record("y", r, 2.0, epochs=20, acc=0.95 + 0.001 * r, key="kx") for r in range(3)]
    planned = [(r["setting"], {"p": r["setting"]}, r["key"]) for r in records]
    rows = build_rows(planned + [("y", {"p": "y"}, "missing")], {r["key"]: r for r in records})
    assert [row.setting for row in rows] == ["x", "y"]
    assert rows[1].n_planned == 4 and len(rows[1].runs) == 3
    assert rows[0].stat("epoch_cost") == (pytest.approx(0.1), pytest.approx(0.001))
    assert verdict(rows, "train_time").winner == "x"
    assert verdict(rows, "test_accuracy").winner == "y"


def test_old_records_read_with_their_time_kind():
    old = {"key": "k", "setting": "a", "repeat": 0, "seed": 0, "epochs": 4, "best_epoch": 4,
           "train_time": 2.0, "diverged": False, "test_loss": None, "test_accuracy": 0.5,
           "train_time_source": "calibrated", "calibration_epoch_seconds": 0.5}
    row = run_row(old)
    assert row["train_time_kind"] == "calibrated" and row["epoch_cost"] == 0.5
    assert row["test_loss"] != row["test_loss"]  # null reads back as NaN
    measured = run_row({**old, "train_time_source": "measured",
                        "calibration_epoch_seconds": None})
    assert (measured["train_time_kind"], measured["epoch_cost"]) == ("wall", 0.5)


def test_diverged_runs_leave_the_test_columns_only():
    row = Row("a", runs=[run_row(_record("a", 0, 1.0, acc=0.9)),
                         run_row(_record("a", 1, 3.0, acc=0.1, diverged=True))])
    assert row.stat("train_time")[0] == 2.0
    assert row.stat("test_accuracy") == (0.9, pytest.approx(float("nan"), nan_ok=True))
