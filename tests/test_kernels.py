"""The numba backend against the NumPy reference: parity, determinism, divergence, signatures.

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
from ffnn.kernels import codes, numba_backend, reference
from ffnn.kernels.layout import n_params, unpack

import ffnn
from ffnn.config import DIVERGENCE_LOSS
from ffnn.training import epoch_order, hyper_vector, initial_parameters, is_diverged

BACKENDS = {"numpy": reference, "numba": numba_backend}
JIT = not numba.config.DISABLE_JIT
TOLERANCE = {"float64": 1e-9, "float32": 1e-3}
PUBLIC = ("warm_up", "forward", "loss_and_gradient", "update", "train_epoch", "evaluate")


def relative_error(a, ref):
    """Largest absolute difference over the largest absolute reference value."""
    return float(np.abs(np.asarray(a, np.float64) - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def sample(small_mnist):
    """200 MNIST training images (3 minibatches of 64 and one of 8)."""
    return small_mnist.X_train[:200], small_mnist.y_train[:200]


def dense_problem(dtype, n=50, n_features=37, n_classes=3, seed=0):
    """Dense inputs with dimensions that are no multiple of anything the kernels pad to."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)).astype(dtype)
    y = rng.integers(0, n_classes, n).astype(np.int64)
    return X, y


def one_epoch(backend, X, y, config, batch_size, n_classes=10):
    """``(theta, m, v, loss)`` after one epoch of ``backend`` from ``config``'s initial weights."""
    X = np.ascontiguousarray(X, dtype=config.dtype)
    theta = initial_parameters(config, X.shape[1], n_classes)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    order = epoch_order(config.effective_shuffle_seed, 1, len(y))
    args = (X, y, order, batch_size, theta, m, v, 0, config.hidden_size, n_classes,
            codes.activation_code(config.activation), codes.optimizer_code(config.optimizer),
            hyper_vector(config))
    loss, step = backend.train_epoch(*args)
    assert step == -(-len(y) // batch_size)
    return theta, m, v, loss


def numba_backend_args(args):
    """Arguments of ``train_epoch`` in the exact types the compiled kernels take."""
    X, y, order, batch, theta, m, v, step, H, C, act, opt, hyper = args
    ro = numba_backend._readonly
    return (ro(X), ro(y), ro(order), batch, theta, m, v, step, H, C, act, opt,
            ro(np.asarray(hyper, np.float64)))


# ------------------------------------------------------------------------------------ interface
def test_backends_expose_the_same_functions_with_the_same_signatures():
    for name in PUBLIC:
        ref, fast = getattr(reference, name), getattr(numba_backend, name)
        assert list(inspect.signature(ref).parameters) == list(inspect.signature(fast).parameters)


# ------------------------------------------------------------------------------------ parity
@pytest.mark.kernels
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", codes.OPTIMIZERS)
@pytest.mark.parametrize("activation", codes.ACTIVATIONS)
def test_one_epoch_equals_reference(sample, dtype, activation, optimizer):
    lr = 1e-3 if optimizer in ("rmsprop", "adam") else 0.1
    config = ffnn.TrainConfig(hidden_size=10, activation=activation, optimizer=optimizer,
                              learning_rate=lr, l2=1e-3, dtype=dtype, seed=3)
    X, y = sample
    ref = one_epoch(reference, X, y, config, batch_size=64)
    fast = one_epoch(numba_backend, X, y, config, batch_size=64)
    for name, a, b in zip(("theta", "m", "v"), fast[:3], ref[:3], strict=True):
        if np.any(b):
            assert relative_error(a, b) <= TOLERANCE[dtype], name
    assert fast[3] == pytest.approx(ref[3], rel=TOLERANCE[dtype])


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation, optimizer, l2", [
    ("relu", "adam", 0.0), ("sigmoid", "rmsprop", 0.01), ("tanh", "nesterov", 0.0),
])
def test_one_epoch_equals_reference_on_dense_odd_shapes(dtype, activation, optimizer, l2):
    # 37 features, 21 hidden units and 3 classes: every padded dimension has a ragged tail;
    # no input is zero, so the sparse path sees dense rows; the last minibatch has 2 samples.
    config = ffnn.TrainConfig(hidden_size=21, activation=activation, optimizer=optimizer,
                              learning_rate=0.01, l2=l2, dtype=dtype)
    X, y = dense_problem(dtype)
    ref = one_epoch(reference, X, y, config, batch_size=16, n_classes=3)
    fast = one_epoch(numba_backend, X, y, config, batch_size=16, n_classes=3)
    assert relative_error(fast[0], ref[0]) <= TOLERANCE[dtype]
    assert fast[3] == pytest.approx(ref[3], rel=TOLERANCE[dtype])


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_blocks_compressed_ahead_give_bitwise_identical_weights(sample, dtype):
    # With threads > 1 a producer compresses blocks into a ring while the epoch kernel trains;
    # the kernel takes a block from its slot when published, and compresses it itself when not.
    # Run both orders deterministically: some blocks published ahead, the rest built in place.
    config = ffnn.TrainConfig(hidden_size=20, optimizer="adam", l2=1e-3, dtype=dtype)
    X, y = sample
    X = np.ascontiguousarray(X, dtype=dtype)
    theta0 = initial_parameters(config, X.shape[1], 10)
    order = epoch_order(0, 1, len(y))
    args = numba_backend_args((X, y, order, 64, None, None, None, 0, 20, 10, codes.ELU,
                               codes.ADAM, hyper_vector(config)))
    bounds = numba_backend._blocks(len(order), 64)
    results = []
    for slots, produced in ((0, 0), (3, 3), (3, 0)):
        ring = numba_backend._ring(slots, X.shape[1], X.dtype)
        if slots:
            assert numba_backend._produce(*args[:3], bounds, ring, 0) == produced or not produced
            if not produced:  # the trainer is ahead: the producer skips what it already did
                ring[5][0] = 4
                assert numba_backend._produce(*args[:3], bounds, ring, 0) == 4 + slots
        theta, m, v = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
        loss, step = numba_backend._train_epoch(*args[:4], theta, m, v, *args[7:], bounds, ring)
        results.append((theta.tobytes(), m.tobytes(), v.tobytes(), loss, step))
    assert results[0] == results[1] == results[2]
    assert results[0][4] == 4  # 64, 64, 64, 8


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", codes.ACTIVATIONS)
def test_forward_evaluate_and_gradient_equal_reference(sample, dtype, activation):
    X, y = sample[0][:40].astype(dtype), sample[1][:40]
    act = codes.activation_code(activation)
    config = ffnn.TrainConfig(hidden_size=18, activation=activation, dtype=dtype, seed=1)
    theta = initial_parameters(config, X.shape[1], 10)
    _, b1, _, b2 = unpack(theta, X.shape[1], 18, 10)
    b1 += 0.05  # nonzero biases
    b2 -= 0.05
    tol = TOLERANCE[dtype]

    for a, b in zip(numba_backend.forward(X, theta, 18, 10, act),
                    reference.forward(X, theta, 18, 10, act), strict=True):
        assert a.dtype == np.dtype(dtype) and a.shape == b.shape
        assert relative_error(a, b) <= tol

    loss, accuracy = numba_backend.evaluate(X, y, theta, 18, 10, act)
    ref_loss, ref_accuracy = reference.evaluate(X, y, theta, 18, 10, act)
    assert loss == pytest.approx(ref_loss, rel=tol) and accuracy == ref_accuracy

    grads = []
    for backend in (numba_backend, reference):
        grad = np.full_like(theta, np.nan)
        grads.append((backend.loss_and_gradient(X, y, theta, grad, 18, 10, act, 0.01), grad))
    (loss, grad), (ref_loss, ref_grad) = grads
    assert loss == pytest.approx(ref_loss, rel=tol)
    assert relative_error(grad, ref_grad) <= tol


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", codes.OPTIMIZERS)
def test_update_equals_reference(dtype, optimizer):
    rng = np.random.default_rng(0)
    theta, grad = rng.standard_normal((2, 101)).astype(dtype)
    states = {name: (theta.copy(), np.zeros_like(theta), np.zeros_like(theta))
              for name in BACKENDS}
    hyper = hyper_vector(ffnn.TrainConfig(learning_rate=0.01, l2=0.5))  # l2: not update's job
    for step in (1, 2, 3):
        for name, backend in BACKENDS.items():
            backend.update(*states[name][:1], grad, *states[name][1:], step,
                           codes.optimizer_code(optimizer), hyper)
    for a, b in zip(states["numba"], states["numpy"], strict=True):
        if np.any(b):
            assert relative_error(a, b) <= TOLERANCE[dtype]


@pytest.mark.kernels
def test_update_leaves_the_gradient_alone():
    theta, grad = np.ones(40), np.full(40, 0.5)
    numba_backend.update(theta, grad, np.zeros(40), np.zeros(40), 1, codes.ADAM,
                         hyper_vector(ffnn.TrainConfig()))
    assert np.all(grad == 0.5) and np.all(theta < 1)


@pytest.mark.kernels
def test_inputs_are_validated_with_the_parameter_named():
    X, y = dense_problem("float32", n=8)
    theta = np.zeros(n_params(37, 4, 3), np.float32)
    hyper = hyper_vector(ffnn.TrainConfig())
    order = np.arange(8)

    def epoch(**changes):
        args = dict(X=X, y=y, order=order, batch_size=4, theta=theta, m=theta.copy(),
                    v=theta.copy(), step=0, hidden_size=4, n_classes=3, activation=0,
                    optimizer=0, hyper=hyper)
        args.update(changes)
        return numba_backend.train_epoch(**args)

    with pytest.raises(ValueError, match="theta"):
        epoch(theta=theta.astype(np.float64))
    with pytest.raises(ValueError, match="m"):
        epoch(m=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="order"):
        epoch(order=np.array([0, 8]))
    with pytest.raises(ValueError, match="y"):
        epoch(y=np.full(8, 3))
    with pytest.raises(ValueError, match="X"):
        epoch(X=X.astype(np.int64))
    with pytest.raises(ValueError, match="dtype"):
        numba_backend.warm_up("float16")


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


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seeds_and_threads_give_bitwise_identical_weights(small_mnist, threads):
    config = ffnn.TrainConfig(hidden_size=30, max_epochs=2, early_stopping=False,
                              threads=threads)
    a, b = ffnn.train(config, small_mnist), ffnn.train(config, small_mnist)
    assert a.model.theta.tobytes() == b.model.theta.tobytes()
    assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]


def test_weights_do_not_depend_on_the_thread_count(small_mnist):
    config = ffnn.TrainConfig(hidden_size=30, max_epochs=2, early_stopping=False)
    one, two = (ffnn.train(config.replace(threads=t), small_mnist) for t in (1, 2))
    assert one.model.theta.tobytes() == two.model.theta.tobytes()


def test_the_faster_way_to_run_is_chosen_and_the_other_probed_again():
    modes = numba_backend._ModeChooser(probe_every=4)
    picks = []
    for seconds in ({True: 2.0, False: 1.0}, ) * 8:
        producer = modes.choose("w")
        picks.append(producer)
        modes.record("w", producer, seconds[producer])
    # first with the producer, then without; then the faster (without), the other every 4th call
    assert picks == [True, False, False, True, False, False, False, True]


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
    theta, _, _, loss = one_epoch(numba_backend, X, y, config, batch_size=64)
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
        loss, _ = numba_backend.evaluate(X, y, theta, 5, 3, activation)
        assert np.isnan(loss)


# ------------------------------------------------------------------------------------ signatures
@pytest.mark.skipif(not JIT, reason="signatures exist only when numba compiles")
def test_training_adds_no_compiled_specialisations_after_warm_up(small_mnist):
    config = ffnn.TrainConfig(max_epochs=1, early_stopping=False, threads=1)
    kernels = (numba_backend._train_epoch, numba_backend._produce,
               numba_backend._forward_blocks)
    for dtype in ("float32", "float64"):
        numba_backend.warm_up(dtype)
        before = [len(k.signatures) for k in kernels]
        ffnn.train(config.replace(dtype=dtype), small_mnist)  # read-only data arrays
        numba_backend.forward(small_mnist.X_val[:5].astype(dtype),
                              initial_parameters(config, 784, 10).astype(dtype), 10, 10, 0)
        assert [len(k.signatures) for k in kernels] == before
    assert all(len(k.signatures) <= 2 for k in kernels)  # one per dtype
