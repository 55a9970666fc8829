"""Timing keys, the round-robin cost measurement, and the persisted costs under --out."""

import json
import pickle

import pytest

import ffnn
from ffnn.studies import timing
from ffnn.studies.plan import DataSpec
from ffnn.studies.timing import Cost, TimingKey, TimingSettings, TimingStore, timing_key

BASE = ffnn.TrainConfig(threads=1)


@pytest.mark.parametrize("change", [
    {"learning_rate": 0.5}, {"momentum": 0.5}, {"beta1": 0.5}, {"beta2": 0.5}, {"eps": 1e-3},
    {"rmsprop_alpha": 0.5}, {"seed": 7}, {"shuffle_seed": 9}, {"max_epochs": 3},
    {"early_stopping": False}, {"patience": 2}, {"min_delta": 0.1}, {"restore_best": False},
])
def test_the_key_ignores_what_does_not_change_the_work_of_an_epoch(small_mnist, change):
    assert timing_key(BASE.replace(**change), small_mnist) == timing_key(BASE, small_mnist)


@pytest.mark.parametrize("change", [
    {"hidden_size": 11}, {"activation": "relu"}, {"optimizer": "gd"}, {"batch_size": 50},
    {"dtype": "float64"}, {"backend": "numpy"}, {"threads": 2}, {"l2": 1e-4},
])
def test_the_key_changes_with_every_field_that_changes_the_work(small_mnist, change):
    assert timing_key(BASE.replace(**change), small_mnist) != timing_key(BASE, small_mnist)


def test_a_nonzero_l2_counts_only_as_nonzero(small_mnist):
    assert (timing_key(BASE.replace(l2=1e-4), small_mnist)
            == timing_key(BASE.replace(l2=1e-2), small_mnist))


def test_the_key_includes_the_data_sizes(small_mnist):
    key = timing_key(BASE, small_mnist)
    assert (key.n_train, key.n_val, key.n_features, key.n_classes) == (2000, 500, 784, 10)
    assert TimingKey.from_dict(json.loads(json.dumps(key.to_dict()))) == key


def test_keys_are_measured_round_robin_with_mean_and_spread_of_round_means(monkeypatch):
    calls = []
    scripted = {"a": [[1.0, 1.0], [2.0] * 4, [3.0] * 4], "b": [[10.0, 10.0], [10.0] * 4,
                                                               [13.0] * 4]}

    def fake(config, splits, epochs):
        name = "a" if config.hidden_size == 1 else "b"
        calls.append((name, epochs))
        return scripted[name][sum(1 for n, _ in calls if n == name) - 1][:epochs]

    monkeypatch.setattr(timing, "_timed_epochs", fake)
    a, b = (BASE.replace(hidden_size=h) for h in (1, 2))
    key_a, key_b = (TimingKey((h,), "elu", "adam", 250, "float32", "numba", 1, False, 1, 1, 1, 1)
                    for h in (1, 2))
    settings = TimingSettings(rounds=3, min_epochs=10, min_seconds=0.0, first_round_epochs=2)
    costs = timing.measure_costs([(key_a, a), (key_b, b)], lambda dtype: None, settings)
    # round 1 of both keys, then round 2 of both, then round 3: 2 + 4 + 4 >= 10 epochs each
    assert calls == [("a", 2), ("b", 2), ("a", 4), ("b", 4), ("a", 4), ("b", 4)]
    assert costs[key_a].mean == pytest.approx((2 * 1 + 4 * 2 + 4 * 3) / 10)
    assert costs[key_a].spread == pytest.approx(1.0)  # std of the round means 1, 2, 3
    assert costs[key_b].epochs == 10 and costs[key_b].rounds == 3
    assert costs[key_b].clock == "thread_time"


def test_later_rounds_train_for_at_least_min_seconds(monkeypatch):
    monkeypatch.setattr(timing, "_timed_epochs", lambda c, s, epochs: [0.01] * epochs)
    key = TimingKey((1,), "elu", "adam", 250, "float32", "numba", 1, False, 1, 1, 1, 1)
    cost = timing.measure_costs([(key, BASE)], lambda d: None,
                                TimingSettings(rounds=3, min_epochs=4, min_seconds=1.0))[key]
    assert cost.epochs * cost.mean >= 1.0
    assert cost.spread == 0.0


def test_a_real_measurement_times_thread_cpu_of_single_threaded_epochs(small_mnist):
    key = timing_key(BASE, small_mnist)
    settings = TimingSettings(rounds=2, min_epochs=2, min_seconds=0.0, first_round_epochs=1)
    cost = timing.measure_costs([(key, BASE)], lambda d: small_mnist, settings)[key]
    assert cost.epochs == 2 and cost.rounds == 2 and cost.clock == "thread_time"
    assert 0 < cost.mean < 5 and cost.spread >= 0


def test_the_measuring_task_is_a_plain_picklable_function():
    from ffnn.studies import execute

    data = DataSpec(train_size=300, val_size=100, test_size=100)
    splits = data.load("float32")
    config = BASE.replace(hidden_size=5)
    request = [(timing_key(config, splits).to_dict(), config.to_dict())]
    settings = TimingSettings(rounds=2, min_epochs=2, min_seconds=0.0, first_round_epochs=1)
    task = pickle.loads(pickle.dumps((execute.timing_task, request, data,
                                      {"float32": splits.fingerprint()}, settings)))
    try:
        [(key, cost)] = task[0](*task[1:])
    finally:
        execute.release_worker()
    assert TimingKey.from_dict(key) == timing_key(config, splits)
    assert Cost.from_dict(cost).mean > 0


def _cost(mean):
    return Cost(mean, mean / 10, 6, 3, "thread_time")


def _key(hidden):
    return TimingKey((hidden,), "elu", "adam", 250, "float32", "numba", 1, False, 9, 9, 9, 9)


def test_costs_persist_under_out_and_are_reused_by_a_later_store(tmp_path):
    store = TimingStore(tmp_path)
    assert store.missing([_key(1), _key(2), _key(1)]) == [_key(1), _key(2)]
    store.put({_key(1): _cost(0.5)})
    later = TimingStore(tmp_path)
    assert later.get(_key(1)) == _cost(0.5)
    assert later.missing([_key(1), _key(2)]) == [_key(2)]
    assert later.missing([_key(1), _key(2)], retime=True) == [_key(1), _key(2)]
    assert [p.name for p in tmp_path.iterdir()] == [timing.TIMING_FILE]  # no temporary left


def test_costs_of_another_machine_are_kept_but_not_used(tmp_path):
    TimingStore(tmp_path, machine={"cpu": "other", "cores": 64}).put({_key(1): _cost(9.0)})
    here = TimingStore(tmp_path)
    assert here.get(_key(1)) is None
    here.put({_key(1): _cost(0.5)})
    assert TimingStore(tmp_path, machine={"cpu": "other", "cores": 64}).get(_key(1)).mean == 9.0
    assert TimingStore(tmp_path).get(_key(1)).mean == 0.5


def test_the_fingerprint_names_cpu_cores_and_library_versions():
    assert {"cpu", "cores", "numpy", "numba", "ffnn", "python"} <= set(
        timing.machine_fingerprint())


def test_an_unreadable_timing_file_is_reported_and_measured_again(tmp_path):
    (tmp_path / timing.TIMING_FILE).write_text("{not json")
    store = TimingStore(tmp_path)
    assert store.problem and timing.TIMING_FILE in store.problem
    assert store.missing([_key(1)]) == [_key(1)]


def test_train_reports_cpu_time_beside_wall_time_and_names_its_clock(small_mnist):
    config = BASE.replace(max_epochs=2, early_stopping=False)
    single = ffnn.train(config, small_mnist)
    assert single.train_cpu_clock == "thread" and 0 < single.train_cpu_time
    assert single.train_time == pytest.approx(sum(r.seconds for r in single.history))
    several = ffnn.train(config.replace(threads=2), small_mnist)
    assert several.train_cpu_clock == "process" and 0 < several.train_cpu_time
