"""``ffnn.train_many``: a group trains every network exactly as ``ffnn.train`` would alone.

The solo runs use the NumPy reference backend, so these tests check the grouped kernels against
the reference math itself.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from ffnn.kernels import codes, reference
from ffnn.kernels import grouped as kernels

import ffnn
from ffnn import grouped
from ffnn.training import hyper_vector, initial_parameters


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
    configs = mixed_configs(dtype="float64")
    return configs, ffnn.train_many(configs, splits), [ffnn.train(c, splits) for c in configs]


def test_float64_group_equals_each_network_trained_alone(float64_runs):
    configs, together, alone = float64_runs
    assert len({r.epochs for r in alone}) >= 4  # the networks really stop at different epochs
    for config, g, a in zip(configs, together, alone, strict=True):
        assert g.config == config
        assert (g.epochs, g.best_epoch, g.stopped_early, g.diverged) == (
            a.epochs, a.best_epoch, a.stopped_early, a.diverged), config
        if not a.diverged:
            assert relative_difference(g.model.theta, a.model.theta) < 1e-9, config
            assert g.test_accuracy == a.test_accuracy
            np.testing.assert_allclose([r.val_loss for r in g.history],
                                       [r.val_loss for r in a.history], rtol=1e-9)
            np.testing.assert_allclose([r.train_loss for r in g.history],
                                       [r.train_loss for r in a.history], rtol=1e-9)


def test_a_diverging_network_is_reported_and_leaves_the_others_untouched(splits, float64_runs):
    configs, together, _ = float64_runs
    assert [r.diverged for r in together] == [False] * 5 + [True]
    assert together[-1].epochs == 1
    without = ffnn.train_many(configs[:-1], splits)
    for g, w in zip(together[:-1], without, strict=True):
        assert (g.epochs, g.best_epoch) == (w.epochs, w.best_epoch)
        assert relative_difference(g.model.theta, w.model.theta) < 1e-12


def test_thread_count_and_group_company_change_only_rounding(splits):
    configs = mixed_configs(dtype="float32", max_epochs=2, early_stopping=False)[:5]
    alone = ffnn.train_many(configs[2:3], splits, calibrate=False)[0]
    for threads in (1, 2):
        together = ffnn.train_many([c.replace(threads=threads) for c in configs], splits,
                                   calibrate=False)
        assert relative_difference(together[2].model.theta, alone.model.theta) < 1e-5
        np.testing.assert_allclose([r.val_loss for r in together[2].history],
                                   [r.val_loss for r in alone.history], rtol=1e-5)


def test_float32_group_matches_alone_after_one_epoch_and_in_final_accuracy(splits):
    configs = mixed_configs(dtype="float32", early_stopping=False, max_epochs=1)[:5]
    for g, a in zip(ffnn.train_many(configs, splits), [ffnn.train(c, splits) for c in configs],
                    strict=True):
        assert g.model.dtype == np.float32
        assert relative_difference(g.model.theta, a.model.theta) < 1e-3
    configs = [c.replace(max_epochs=6) for c in configs]
    for g, a in zip(ffnn.train_many(configs, splits), [ffnn.train(c, splits) for c in configs],
                    strict=True):
        assert abs(g.test_accuracy - a.test_accuracy) <= 0.002 + 1e-12


@pytest.mark.parametrize("threads", [1, 2])
def test_same_inputs_and_threads_give_bitwise_identical_results(splits, threads):
    configs = mixed_configs(dtype="float32", max_epochs=4, threads=threads)
    a = ffnn.train_many(configs, splits, calibrate=False)
    b = ffnn.train_many(configs, splits, calibrate=False)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.model.theta, y.model.theta)
        assert [r.train_loss for r in x.history] == [r.train_loss for r in y.history]
        assert [r.val_loss for r in x.history] == [r.val_loss for r in y.history]


def test_calibrated_train_time_is_epochs_times_the_solo_epoch_time(splits):
    grouped.clear_calibrations()
    short = BASE.replace(early_stopping=False, max_epochs=2, seed=1)
    long = short.replace(max_epochs=4, seed=2)
    results = ffnn.train_many([short, long], splits)
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


def test_uncalibrated_train_time_is_a_share_of_the_group_wall_time(splits):
    configs = [BASE.replace(early_stopping=False, max_epochs=2, seed=s) for s in (1, 2)]
    results = ffnn.train_many(configs, splits, calibrate=False)
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
    ("batch_size", 50), ("shuffle_seed", 8), ("dtype", "float64"), ("threads", 1)])
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
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernels_equal_the_reference_for_one_epoch(dtype):
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
    layout = kernels.GroupLayout([c.hidden_size for c in configs], F, C, n_lanes=2)
    W1, W2 = layout.pack(thetas, dtype)
    assert all(np.array_equal(layout.unpack(W1, W2, k), t) for k, t in enumerate(thetas))
    M1, M2 = np.zeros_like(W1), np.zeros_like(W2)
    V1, V2 = np.zeros_like(W1), np.zeros_like(W2)
    act = np.array([codes.activation_code(c.activation) for c in configs])
    opt = np.array([codes.optimizer_code(c.optimizer) for c in configs])
    hyper = np.array([hyper_vector(c) for c in configs])
    steps, losses = np.zeros(len(configs), dtype=np.int64), np.zeros(len(configs))
    order = rng.permutation(n).astype(np.int64)
    csr = kernels.to_csr(X)
    kernels.train_epoch(*csr, y, order, 16, W1, M1, V1, W2, M2, V2, *layout.lanes(), act, opt,
                        hyper, steps, losses)
    val_loss, val_acc = np.zeros(len(configs)), np.zeros(len(configs))
    kernels.evaluate(*csr, y, 16, W1, W2, *layout.lanes(), act, val_loss, val_acc)
    tolerance = 1e-9 if dtype == "float64" else 1e-3
    for k, config in enumerate(configs):
        theta, m, v = thetas[k].copy(), np.zeros_like(thetas[k]), np.zeros_like(thetas[k])
        loss, step = reference.train_epoch(X, y, order, 16, theta, m, v, 0, config.hidden_size,
                                           C, act[k], opt[k], hyper[k])
        assert steps[k] == step == 3
        assert losses[k] == pytest.approx(loss, rel=tolerance)
        assert relative_difference(layout.unpack(W1, W2, k), theta) < tolerance
        assert relative_difference(layout.unpack(M1, M2, k), m) < tolerance
        ref_loss, ref_acc = reference.evaluate(X, y, theta, config.hidden_size, C, act[k])
        assert val_loss[k] == pytest.approx(ref_loss, rel=tolerance)
        assert val_acc[k] == ref_acc


def test_single_thread_results_are_identical_across_processes(splits, tmp_path):
    # The study runner trains groups in worker processes with threads=1 and relies on this.
    script = """
import sys
import numpy as np
import ffnn
splits = ffnn.load_mnist(train_size=1000, val_size=300, test_size=500)
base = ffnn.TrainConfig(backend="numpy", batch_size=100, shuffle_seed=7, max_epochs=2,
                        threads=1, early_stopping=False)
configs = [base.replace(seed=s, hidden_size=h) for s, h in ((0, 10), (1, 25))]
thetas = [r.model.theta for r in ffnn.train_many(configs, splits, calibrate=False)]
np.save(sys.argv[1], np.concatenate(thetas))
"""
    out = tmp_path / "theta.npy"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env)
    base = BASE.replace(max_epochs=2, threads=1, early_stopping=False)
    configs = [base.replace(seed=s, hidden_size=h) for s, h in ((0, 10), (1, 25))]
    here = np.concatenate([r.model.theta for r in ffnn.train_many(configs, splits,
                                                                   calibrate=False)])
    assert np.array_equal(np.load(out), here)
