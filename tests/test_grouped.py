"""``ffnn.train_many``: a group trains every network exactly as ``ffnn.train`` would alone.

On the compiled engine the group's results equal each network trained alone bitwise; the NumPy
reference backend checks the engine's group against the reference math itself.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from ffnn.kernels import engine, reference

import ffnn
from ffnn import grouped
from ffnn.training import initial_parameters, networks


@pytest.fixture(scope="module")
def splits():
    """1,000 training, 300 validation and 500 test images."""
    return ffnn.load_mnist(train_size=1000, val_size=300, test_size=500)


BASE = ffnn.TrainConfig(backend="numpy", batch_size=100, shuffle_seed=7, max_epochs=12)

# (optimizer, activation, hidden, learning rate, patience, min_delta, l2): every optimizer, every
# activation, mixed widths, and (float64, measured) stops after 12, 6, 10, 11, 9 and 1 epochs.
MIX = [
    ("gd", "sigmoid", 6, 0.5, 0, 0.0, 1e-3),
    ("momentum", "tanh", 12, 0.05, 0, 0.03, 0.0),
    ("nesterov", "relu", 9, 0.05, 1, 0.01, 0.0),
    ("rmsprop", "leaky_relu", 10, 3e-3, 1, 0.01, 0.0),
    ("adam", "elu", 16, 3e-3, 0, 0.01, 0.0),
    ("adam", "relu", 10, 1e3, 5, 0.0, 0.0),  # diverges in its first epoch
]


def mixed_configs(**changes):
    return [BASE.replace(optimizer=o, activation=a, hidden_size=h, learning_rate=lr, patience=p,
                         min_delta=md, l2=l2, seed=i, **changes)
            for i, (o, a, h, lr, p, md, l2) in enumerate(MIX)]


def relative_difference(a, b):
    """Largest absolute difference over the largest absolute value of ``b`` (0 when equal)."""
    diff = np.abs(a - b).max()
    return diff / np.abs(b).max() if diff else 0.0


@pytest.fixture(scope="module")
def float64_runs(splits):
    """The mixed group on the engine, and each network alone on the NumPy reference."""
    configs = mixed_configs(dtype="float64")
    return (configs, ffnn.train_many([c.replace(backend="numba") for c in configs], splits),
            [ffnn.train(c, splits) for c in configs])


def test_float64_engine_group_equals_each_network_trained_alone_by_the_reference(float64_runs):
    configs, together, alone = float64_runs
    assert len({r.epochs for r in alone}) >= 4  # the networks really stop at different epochs
    for config, g, a in zip(configs, together, alone, strict=True):
        assert g.config == config.replace(backend="numba")
        assert (g.epochs, g.best_epoch, g.stopped_early, g.diverged) == (
            a.epochs, a.best_epoch, a.stopped_early, a.diverged), config
        if not a.diverged:
            assert relative_difference(g.model.theta, a.model.theta) < 1e-9, config
            assert g.test_accuracy == a.test_accuracy
            np.testing.assert_allclose([r.val_loss for r in g.history],
                                       [r.val_loss for r in a.history], rtol=1e-9)
            np.testing.assert_allclose([r.train_loss for r in g.history],
                                       [r.train_loss for r in a.history], rtol=1e-9)


def test_a_diverging_network_is_reported_and_leaves_the_others_untouched(float64_runs):
    _, together, _ = float64_runs
    assert [r.diverged for r in together] == [False] * 5 + [True]
    assert together[-1].epochs == 1


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_group_results_equal_each_network_trained_alone_bitwise(splits, dtype, threads):
    # Mixed hidden sizes, activations, optimizers and learning rates; stops at different epochs
    # and one member diverging in its first epoch.
    configs = mixed_configs(dtype=dtype, backend="numba", threads=threads)
    together = ffnn.train_many(configs, splits)
    alone = [ffnn.train(c, splits) for c in configs]
    assert len({r.epochs for r in alone}) >= 3 and alone[-1].diverged
    for g, a in zip(together, alone, strict=True):
        assert_same_run(g, a)
        assert (g.test_loss, g.test_accuracy) == (a.test_loss, a.test_accuracy)


def assert_same_run(g, a):
    """Two runs' stopping, weights and per-epoch metrics are bitwise equal."""
    assert (g.epochs, g.best_epoch, g.stopped_early, g.diverged) == (
        a.epochs, a.best_epoch, a.stopped_early, a.diverged)
    assert g.model.theta.tobytes() == a.model.theta.tobytes()
    assert [(r.train_loss, r.val_loss, r.val_accuracy) for r in g.history] == [
        (r.train_loss, r.val_loss, r.val_accuracy) for r in a.history]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_groups_with_learning_rate_schedules_equal_each_network_alone_bitwise(splits, dtype):
    # Each network's rate is its own (hyper is per network): schedules mix in one group, and the
    # adaptive ones divide their rates at different epochs (patience 0 on the validation loss,
    # patience 1 on the training loss).
    base = BASE.replace(backend="numba", dtype=dtype, optimizer="gd", learning_rate=0.5)
    configs = [
        base.replace(seed=0),
        base.replace(seed=1, lr_schedule="invscaling"),
        base.replace(seed=2, lr_schedule="invscaling", power_t=0.25, optimizer="momentum",
                     learning_rate=0.05),
        base.replace(seed=3, lr_schedule="adaptive", patience=0, min_delta=0.01),
        base.replace(seed=4, lr_schedule="adaptive", patience=1, min_delta=0.15,
                     early_stopping=False, hidden_sizes=(8, 6), activation="tanh"),
    ]
    together = ffnn.train_many(configs, splits)
    alone = [ffnn.train(c, splits) for c in configs]
    for k in (1, 3, 4):  # the schedules acted
        plain = ffnn.train(configs[k].replace(lr_schedule="constant"), splits)
        assert plain.model.theta.tobytes() != alone[k].model.theta.tobytes()
    for g, a in zip(together, alone, strict=True):
        assert_same_run(g, a)


def test_group_company_and_thread_count_change_nothing(splits):
    configs = mixed_configs(dtype="float32", backend="numba", max_epochs=2,
                            early_stopping=False)[:5]
    alone = ffnn.train_many(configs[2:3], splits)[0]
    for threads in (1, 2):
        for group in (configs, configs[::-1][:3]):
            together = ffnn.train_many([c.replace(threads=threads) for c in group], splits)
            member = next(r for r in together if r.config.seed == configs[2].seed)
            assert member.model.theta.tobytes() == alone.model.theta.tobytes()


def test_calibrated_train_time_is_epochs_times_the_solo_epoch_time(splits):
    grouped.clear_calibrations()
    short = BASE.replace(early_stopping=False, max_epochs=2, seed=1)
    long = short.replace(max_epochs=4, seed=2)
    results = ffnn.train_many([short, long], splits, calibrate=True)
    for result in results:
        assert result.train_time_source == "calibrated"
        assert result.train_time > 0
        per_epoch = result.extra["calibration_epoch_seconds"]
        assert result.train_time == pytest.approx(result.epochs * per_epoch)
        assert all(r.seconds == per_epoch for r in result.history)
        assert result.extra["group_wall_time"] > 0 and result.extra["group_size"] == 2
    # same configuration but the seeds and max_epochs: one calibration, time proportional
    assert results[1].train_time == pytest.approx(2 * results[0].train_time)
    assert len(grouped._calibrations) == 1


def test_default_train_time_is_a_share_of_the_group_wall_time(splits):
    configs = [BASE.replace(early_stopping=False, max_epochs=2, seed=s) for s in (1, 2)]
    results = ffnn.train_many(configs, splits)
    for result in results:
        assert result.train_time_source == "group-share"
        assert "calibration_epoch_seconds" not in result.extra
        assert 0 < result.train_time <= result.extra["group_wall_time"]


def test_callback_sees_every_epoch_of_every_network(splits):
    configs = [BASE.replace(early_stopping=False, max_epochs=m, seed=m) for m in (1, 3)]
    seen = []
    results = ffnn.train_many(configs, splits, calibrate=False,
                              callback=lambda i, record: seen.append((i, record.epoch)))
    assert sorted(seen) == [(0, 1), (1, 1), (1, 2), (1, 3)]
    assert [r.epochs for r in results] == [1, 3]


@pytest.mark.parametrize(("field", "value"), [
    ("batch_size", 50), ("shuffle_seed", 8), ("dtype", "float64"), ("threads", 1),
    ("backend", "numba")])
def test_incompatible_group_is_a_value_error_naming_the_field(splits, field, value):
    with pytest.raises(ValueError, match=field):
        ffnn.train_many([BASE, BASE.replace(**{field: value})], splits)


def test_group_checks_the_effective_shuffle_seed():
    grouped.check_group([BASE.replace(seed=3, shuffle_seed=None), BASE.replace(shuffle_seed=3)])
    with pytest.raises(ValueError, match="shuffle_seed"):
        grouped.check_group([BASE.replace(seed=3, shuffle_seed=None), BASE.replace(seed=4)])


def test_empty_group_and_bad_entries():
    assert ffnn.train_many([], None) == []
    with pytest.raises(ValueError, match=r"configs\[1\]"):
        grouped.check_group([BASE, {"batch_size": 100}])


@pytest.mark.kernels
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_engine_group_equals_the_reference_group_for_one_epoch(dtype, threads):
    # Tiny synthetic problem, so it also runs in seconds with NUMBA_DISABLE_JIT=1.
    rng = np.random.default_rng(0)
    n, F, C = 40, 20, 4
    X = (rng.random((n, F)) * (rng.random((n, F)) < 0.3)).astype(dtype)
    y = rng.integers(0, C, n).astype(np.int64)
    configs = [ffnn.TrainConfig(hidden_size=h, activation=a, optimizer=o, learning_rate=lr,
                                l2=l2, seed=i, dtype=dtype)
               for i, (h, a, o, lr, l2) in enumerate([
                   (3, "sigmoid", "gd", 0.5, 0.0), (5, "tanh", "momentum", 0.1, 0.01),
                   (9, "relu", "nesterov", 0.1, 0.0), (4, "leaky_relu", "rmsprop", 0.01, 0.0),
                   (17, "elu", "adam", 0.01, 0.001)])]
    thetas = [initial_parameters(c, F, C) for c in configs]
    order = rng.permutation(n).astype(np.int64)
    active = [0, 2, 3, 4]  # network 1 is retired: it must not move
    out = {}
    for backend in (engine, reference):
        nets = networks(backend, configs, F, C, thetas)
        assert all(np.array_equal(nets.theta(k), t) for k, t in enumerate(thetas))
        inputs = backend.prepare(X, dtype)
        losses = backend.train_group(inputs, y, order, 16, nets, active, threads)
        out[backend] = (nets, losses, backend.evaluate_group(inputs, y, nets, active, threads))
    tolerance = 1e-9 if dtype == "float64" else 1e-3
    (nets, losses, (val_loss, val_acc)), (ref, ref_losses, (ref_val, ref_acc)) = out.values()
    assert list(nets.steps) == list(ref.steps) == [3, 0, 3, 3, 3]
    assert np.array_equal(nets.theta(1), thetas[1])
    np.testing.assert_allclose(losses, ref_losses, rtol=tolerance)
    np.testing.assert_allclose(val_loss, ref_val, rtol=tolerance)
    assert np.array_equal(val_acc, ref_acc)
    for k in active:
        assert relative_difference(nets.theta(k), ref.theta(k)) < tolerance
        assert relative_difference(nets.moments(k)[0], ref.moments(k)[0]) < tolerance


def test_single_thread_results_are_identical_across_processes(splits, tmp_path):
    # The study runner trains groups in worker processes with threads=1 and relies on this.
    script = """
import sys
import numpy as np
import ffnn
splits = ffnn.load_mnist(train_size=1000, val_size=300, test_size=500)
base = ffnn.TrainConfig(backend="numba", batch_size=100, shuffle_seed=7, max_epochs=2,
                        threads=1, early_stopping=False)
configs = [base.replace(seed=s, hidden_size=h) for s, h in ((0, 10), (1, 25))]
thetas = [r.model.theta for r in ffnn.train_many(configs, splits, calibrate=False)]
np.save(sys.argv[1], np.concatenate(thetas))
"""
    out = tmp_path / "theta.npy"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env)
    base = BASE.replace(max_epochs=2, threads=1, early_stopping=False, backend="numba")
    configs = [base.replace(seed=s, hidden_size=h) for s, h in ((0, 10), (1, 25))]
    here = np.concatenate([r.model.theta for r in ffnn.train_many(configs, splits,
                                                                   calibrate=False)])
    assert np.array_equal(np.load(out), here)
