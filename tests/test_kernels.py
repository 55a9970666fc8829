"""The compiled engine against the NumPy reference: parity, inputs, determinism, divergence,
signatures. The backend registry (``ffnn.kernels.BACKENDS``) drives the parity tests.

Tests marked ``kernels`` also run with ``NUMBA_DISABLE_JIT=1`` (``nox -s tests_nojit``), where the
kernel bodies and the NumPy twins of their LLVM intrinsics execute as plain Python; they use a
few hundred samples so that stays quick.
"""

import hashlib
import inspect
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
import scipy.sparse
from ffnn.kernels import BACKENDS, codes, engine, get_backend, reference
from ffnn.kernels.layout import n_params, unpack

import ffnn
from ffnn.config import DIVERGENCE_LOSS
from ffnn.training import epoch_order, initial_parameters, is_diverged, networks

JIT = not numba.config.DISABLE_JIT
TOLERANCE = {"float64": 1e-9, "float32": 1e-3}
PUBLIC = ("warm_up", "prepare", "Networks", "train_group", "evaluate_group", "forward",
          "evaluate")
FAST = [name for name in BACKENDS if name != "numpy"]  # every backend checked against numpy


def relative_error(a, ref):
    """Largest absolute difference over the largest absolute reference value."""
    return float(np.abs(np.asarray(a, np.float64) - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def sample(small_mnist):
    """200 MNIST training images (3 minibatches of 64 and one of 8)."""
    return small_mnist.X_train[:200], small_mnist.y_train[:200].astype(np.int64)


def dense_problem(dtype, n=50, n_features=37, n_classes=3, seed=0):
    """Dense inputs with dimensions that are no multiple of anything the kernels pad to."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)).astype(dtype)
    y = rng.integers(0, n_classes, n).astype(np.int64)
    return X, y


def one_epoch(backend, X, y, config, batch_size, n_classes=10):
    """``(theta, m, v, loss)`` after one epoch of ``backend`` (a group of one, as
    ``ffnn.train`` runs it) from ``config``'s initial weights."""
    theta = initial_parameters(config, X.shape[1], n_classes)
    nets = networks(backend, [config], X.shape[1], n_classes, [theta])
    order = epoch_order(config.effective_shuffle_seed, 1, len(y))
    (loss,) = backend.train_group(backend.prepare(X, config.dtype), y, order, batch_size,
                                  nets, [0])
    assert nets.steps[0] == -(-len(y) // batch_size)
    return (nets.theta(0), *nets.moments(0), loss)


# ------------------------------------------------------------------------------------ interface
def test_backends_expose_the_same_functions_with_the_same_signatures():
    ref = get_backend("numpy")
    for name in FAST:
        fast = get_backend(name)
        for function in PUBLIC:
            assert (list(inspect.signature(getattr(ref, function)).parameters)
                    == list(inspect.signature(getattr(fast, function)).parameters)), function


# ------------------------------------------------------------------------------------ parity
@pytest.mark.kernels
@pytest.mark.parametrize("backend_name", FAST)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", codes.OPTIMIZERS)
@pytest.mark.parametrize("activation", codes.ACTIVATIONS)
def test_one_epoch_equals_reference(sample, backend_name, dtype, activation, optimizer):
    lr = 1e-3 if optimizer in ("rmsprop", "adam") else 0.1
    config = ffnn.TrainConfig(hidden_size=10, activation=activation, optimizer=optimizer,
                              learning_rate=lr, l2=1e-3, dtype=dtype, seed=3)
    X, y = sample
    ref = one_epoch(reference, X, y, config, batch_size=64)
    fast = one_epoch(get_backend(backend_name), X, y, config, batch_size=64)
    for name, a, b in zip(("theta", "m", "v"), fast[:3], ref[:3], strict=True):
        assert a.dtype == np.dtype(dtype)
        if np.any(b):
            assert relative_error(a, b) <= TOLERANCE[dtype], name
    assert fast[3] == pytest.approx(ref[3], rel=TOLERANCE[dtype])


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation, optimizer, l2, hidden", [
    ("relu", "adam", 0.0, 21), ("sigmoid", "rmsprop", 0.01, 40), ("tanh", "nesterov", 0.0, 130),
])
def test_one_epoch_equals_reference_on_dense_odd_shapes(dtype, activation, optimizer, l2,
                                                        hidden):
    # 37 features, 3 classes, hidden sizes with ragged tails (130: more than 8 chunks of 16);
    # no input is zero, so the sparse path sees dense rows; the last minibatch has 2 samples.
    config = ffnn.TrainConfig(hidden_size=hidden, activation=activation, optimizer=optimizer,
                              learning_rate=0.01, l2=l2, dtype=dtype)
    X, y = dense_problem(dtype)
    ref = one_epoch(reference, X, y, config, batch_size=16, n_classes=3)
    fast = one_epoch(engine, X, y, config, batch_size=16, n_classes=3)
    assert relative_error(fast[0], ref[0]) <= TOLERANCE[dtype]
    assert fast[3] == pytest.approx(ref[3], rel=TOLERANCE[dtype])


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", codes.ACTIVATIONS)
def test_forward_and_evaluate_equal_reference(sample, dtype, activation):
    X, y = sample[0][:40].astype(dtype), sample[1][:40]
    act = codes.activation_code(activation)
    config = ffnn.TrainConfig(hidden_size=18, activation=activation, dtype=dtype, seed=1)
    theta = initial_parameters(config, X.shape[1], 10)
    _, b1, _, b2 = unpack(theta, X.shape[1], 18, 10)
    b1 += 0.05  # nonzero biases
    b2 -= 0.05
    tol = TOLERANCE[dtype]
    for a, b in zip(engine.forward(X, theta, 18, 10, act),
                    reference.forward(X, theta, 18, 10, act), strict=True):
        assert a.dtype == np.dtype(dtype) and a.shape == b.shape
        assert relative_error(a, b) <= tol
    loss, accuracy = engine.evaluate(X, y, theta, 18, 10, act)
    ref_loss, ref_accuracy = reference.evaluate(X, y, theta, 18, 10, act)
    assert loss == pytest.approx(ref_loss, rel=tol) and accuracy == ref_accuracy


# ------------------------------------------------------------------------------------ inputs
@pytest.mark.kernels
@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
def test_scipy_sparse_input_equals_dense_input(sample, backend_name):
    backend = get_backend(backend_name)
    X, y = sample
    config = ffnn.TrainConfig(hidden_size=12, dtype="float64", seed=2)
    dense = one_epoch(backend, X, y, config, batch_size=64)
    for sparse in (scipy.sparse.csr_matrix(X), scipy.sparse.csc_array(X)):
        got = one_epoch(backend, sparse, y, config, batch_size=64)
        assert relative_error(got[0], dense[0]) <= 1e-12
        assert got[3] == pytest.approx(dense[3], rel=1e-12)
    if backend is engine:  # the same CSR rows: bitwise
        assert np.array_equal(one_epoch(engine, scipy.sparse.csr_matrix(X), y, config, 64)[0],
                              dense[0])


@pytest.mark.kernels
def test_non_8_bit_inputs_keep_their_float_values():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 7)) * (rng.random((30, 7)) < 0.5)
    inputs = engine.prepare(X, "float64")
    indptr, indices, values = inputs.csr()
    rebuilt = scipy.sparse.csr_array((values, indices, indptr), X.shape)
    assert np.array_equal(rebuilt.toarray(), X) and inputs.density == np.mean(X != 0)


# ------------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def mnist_2k5():
    return ffnn.load_mnist(train_size=2500, val_size=2000, test_size=500)


@pytest.mark.parametrize("optimizer", codes.OPTIMIZERS)
@pytest.mark.parametrize("activation", codes.ACTIVATIONS)
def test_three_epochs_reach_the_reference_validation_accuracy(mnist_2k5, activation, optimizer):
    lr = 1e-3 if optimizer in ("rmsprop", "adam") else 0.1
    config = ffnn.TrainConfig(hidden_size=10, activation=activation, optimizer=optimizer,
                              learning_rate=lr, max_epochs=3, early_stopping=False)
    accuracy = {backend: ffnn.train(config.replace(backend=backend), mnist_2k5).history[-1]
                .val_accuracy for backend in BACKENDS}
    assert abs(accuracy["numba"] - accuracy["numpy"]) <= 0.003  # 0.3 points of 2,000 images


def test_default_config_trains_on_mnist():
    result = ffnn.train(ffnn.TrainConfig(max_epochs=2), ffnn.load_mnist())
    assert result.config.backend == "numba" and result.epochs == 2
    assert result.val_accuracy > 0.85 and result.model.theta.dtype == np.float32
    assert result.extra["input_path"] == "sparse"


def test_weights_do_not_depend_on_the_thread_count(small_mnist):
    config = ffnn.TrainConfig(hidden_size=30, max_epochs=2, early_stopping=False)
    one, two, again = (ffnn.train(config.replace(threads=t), small_mnist) for t in (1, 2, 1))
    assert one.model.theta.tobytes() == two.model.theta.tobytes() == again.model.theta.tobytes()
    assert [r.train_loss for r in one.history] == [r.train_loss for r in two.history]


TRAIN_AND_HASH = """
import hashlib, ffnn
config = ffnn.TrainConfig(hidden_size=30, max_epochs=2, early_stopping=False, threads=1)
result = ffnn.train(config, ffnn.load_mnist(train_size=2000, val_size=500, test_size=500))
print(hashlib.sha256(result.model.theta.tobytes()).hexdigest())
"""


def test_single_thread_weights_are_bitwise_identical_across_processes(small_mnist):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
    digests = [subprocess.run([sys.executable, "-c", TRAIN_AND_HASH], env=env, check=True,
                              capture_output=True, text=True).stdout.split()[-1]
               for _ in range(2)]
    config = ffnn.TrainConfig(hidden_size=30, max_epochs=2, early_stopping=False, threads=1)
    here = hashlib.sha256(ffnn.train(config, small_mnist).model.theta.tobytes()).hexdigest()
    assert digests[0] == digests[1] == here, (digests, here)


# ------------------------------------------------------------------------------------ divergence
@pytest.mark.kernels
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_diverging_epoch_is_detected_outside_the_kernels(sample, optimizer):
    config = ffnn.TrainConfig(hidden_size=10, activation="relu", optimizer=optimizer,
                              learning_rate=1e3)
    X, y = sample
    theta, _, _, loss = one_epoch(engine, X, y, config, batch_size=64)
    assert is_diverged(loss, theta)
    assert not np.isfinite(theta).all() or loss > DIVERGENCE_LOSS


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_diverging_training_is_reported_not_raised(small_mnist, optimizer, threads):
    config = ffnn.TrainConfig(activation="relu", optimizer=optimizer, learning_rate=1e3,
                              max_epochs=20, threads=threads)
    result = ffnn.train(config, small_mnist)
    assert result.diverged and result.epochs < 20


@pytest.mark.kernels
def test_nan_weights_give_a_nan_loss():
    X, y = dense_problem("float64", n=10)
    theta = np.ones(n_params(37, 5, 3))
    theta[0] = np.nan  # a W1 weight of feature 0, which is nonzero in every dense row
    for activation in range(len(codes.ACTIVATIONS)):
        loss, _ = engine.evaluate(X, y, theta, 5, 3, activation)
        assert np.isnan(loss)


@pytest.mark.kernels
def test_bad_dtype_is_refused_by_name():
    with pytest.raises(ValueError, match="dtype"):
        engine.warm_up("float16")


# ------------------------------------------------------------------------------------ signatures
@pytest.mark.skipif(not JIT, reason="signatures exist only when numba compiles")
def test_training_adds_no_compiled_specialisations_after_warm_up(small_mnist):
    config = ffnn.TrainConfig(max_epochs=1, early_stopping=False, threads=1)
    kernels = (engine.train_networks, engine.evaluate_networks)
    for dtype in ("float32", "float64"):
        engine.warm_up(dtype)
        before = [len(k.signatures) for k in kernels]
        ffnn.train(config.replace(dtype=dtype), small_mnist)
        ffnn.train_many([config.replace(dtype=dtype, seed=s, shuffle_seed=0) for s in (1, 2)],
                        small_mnist)
        engine.forward(small_mnist.X_val[:5].astype(dtype),
                       initial_parameters(config, 784, 10).astype(dtype), 10, 10, 0)
        assert [len(k.signatures) for k in kernels] == before
    assert all(len(k.signatures) <= 2 for k in kernels)  # one per dtype


def test_scipy_sparse_splits_train_like_dense_splits(small_mnist):
    s = small_mnist
    sparse = ffnn.Splits(scipy.sparse.csr_matrix(s.X_train), s.y_train,
                         scipy.sparse.csr_matrix(s.X_val), s.y_val,
                         scipy.sparse.csr_matrix(s.X_test), s.y_test, s.n_classes, "sparse")
    config = ffnn.TrainConfig(hidden_size=12, max_epochs=2, threads=1)
    dense_result = ffnn.train(config, s)
    for result in (ffnn.train(config, sparse), ffnn.train_many([config], sparse)[0]):
        assert result.model.theta.tobytes() == dense_result.model.theta.tobytes()
        assert result.test_accuracy == dense_result.test_accuracy


@pytest.fixture(scope="module")
def standardised(small_mnist):
    """``small_mnist`` after scikit-learn's StandardScaler rule (training mean and std, std 0
    taken as 1): ~86% nonzero, no value k/255."""
    s = small_mnist
    mean, std = s.X_train.mean(axis=0), s.X_train.std(axis=0)
    std[std == 0] = 1

    def scale(X):
        return ((X - mean) / std).astype(np.float32)

    return ffnn.Splits(scale(s.X_train), s.y_train, scale(s.X_val), s.y_val, scale(s.X_test),
                       s.y_test, s.n_classes, "standardised")


def test_the_input_path_is_chosen_by_density_recorded_and_overridable(small_mnist,
                                                                      standardised):
    config = ffnn.TrainConfig(hidden_size=20, max_epochs=1, early_stopping=False, threads=1)
    assert ffnn.train(config, small_mnist).extra["input_path"] == "sparse"
    assert ffnn.train(config, standardised).extra["input_path"] == "dense"
    forced = config.replace(input_path="sparse")
    assert ffnn.train(forced, standardised).extra["input_path"] == "sparse"
    assert "input_path" not in config.to_dict() and forced.to_dict()["input_path"] == "sparse"
    with pytest.raises(ValueError, match="input_path"):
        config.replace(input_path="blas")


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("data", ["small_mnist", "standardised"])
def test_sparse_and_dense_paths_agree_within_rounding(request, data, dtype, tolerance):
    splits = request.getfixturevalue(data)
    config = ffnn.TrainConfig(hidden_size=20, max_epochs=2, early_stopping=False, threads=1,
                              dtype=dtype)
    sparse, dense = (ffnn.train(config.replace(input_path=p), splits) for p in ("sparse", "dense"))
    assert relative_error(dense.model.theta, sparse.model.theta) <= tolerance
    np.testing.assert_allclose([r.train_loss for r in dense.history],
                               [r.train_loss for r in sparse.history], rtol=tolerance)


def test_scipy_sparse_splits_are_validated_without_densifying(small_mnist):
    s = small_mnist
    X = scipy.sparse.csr_matrix(s.X_train)
    X.data[5] = np.nan
    row, col = X.tocoo().row[5], X.tocoo().col[5]
    with pytest.raises(ValueError, match=f"train features.*NaN at row {row}, column {col}"):
        ffnn.Splits(X, s.y_train, s.X_val, s.y_val, s.X_test, s.y_test, s.n_classes, "sparse")
