"""The backward pass is the derivative of the forward pass: central finite differences, float64.

Each backend's gradient is read off one full-batch ``train_group`` step of plain gradient descent
with learning rate 1 (``theta_1 = theta_0 - grad``): the step training takes."""

import numpy as np
import pytest
from ffnn.kernels import BACKENDS, codes, get_backend
from ffnn.kernels.layout import n_params, unpack

N_FEATURES, HIDDEN, N_CLASSES, BATCH = 5, 4, 3, 7
H_STEP = 1e-6


def tiny_problem(seed=0, margin=0.05):
    """Random tiny network and batch whose hidden pre-activations stay ``margin`` from 0,
    so no finite-difference step crosses the kink of relu, leaky_relu or elu."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(BATCH, N_FEATURES))
    y = rng.integers(0, N_CLASSES, size=BATCH).astype(np.int64)
    theta = rng.normal(scale=0.7, size=n_params(N_FEATURES, HIDDEN, N_CLASSES))
    W1, b1, _, _ = unpack(theta, N_FEATURES, HIDDEN, N_CLASSES)
    Z1 = X @ W1 + b1
    assert np.abs(Z1).min() > margin, "pick another seed: a pre-activation sits on a kink"
    return X, y, theta


def loss_and_gradient(backend, X, y, theta, activation, l2):
    """The minibatch's mean loss and the penalised loss's gradient, from one gd step."""
    hyper = np.zeros((1, codes.N_HYPER))
    hyper[0, codes.LR], hyper[0, codes.L2] = 1.0, l2
    nets = backend.Networks(N_FEATURES, N_CLASSES, [HIDDEN], [activation], [codes.GD], hyper,
                            [theta], "float64")
    (loss,) = backend.train_group(backend.prepare(X, "float64"), y, np.arange(BATCH), BATCH,
                                  nets, [0])
    return loss, theta - nets.theta(0)


def objective(backend, X, y, theta, activation, l2):
    loss, grad = loss_and_gradient(backend, X, y, theta, activation, l2)
    W1, _, W2, _ = unpack(theta, N_FEATURES, HIDDEN, N_CLASSES)
    return loss + l2 / 2 * ((W1**2).sum() + (W2**2).sum()), grad


@pytest.mark.kernels
@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@pytest.mark.parametrize("activation", codes.ACTIVATIONS)
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_gradient_matches_central_differences(backend_name, activation, l2):
    backend = get_backend(backend_name)
    X, y, theta = tiny_problem(seed=3)
    code = codes.activation_code(activation)
    _, grad = objective(backend, X, y, theta, code, l2)

    numeric = np.empty_like(theta)
    for i in range(theta.size):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += H_STEP
        minus[i] -= H_STEP
        numeric[i] = (objective(backend, X, y, plus, code, l2)[0]
                      - objective(backend, X, y, minus, code, l2)[0]) / (2 * H_STEP)

    error = np.linalg.norm(grad - numeric) / max(np.linalg.norm(grad), np.linalg.norm(numeric))
    assert error < 1e-6


@pytest.mark.kernels
@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
def test_reported_loss_is_mean_cross_entropy_of_stable_softmax(backend_name):
    backend = get_backend(backend_name)
    X, y, theta = tiny_problem(seed=3)
    W1, b1, W2, b2 = unpack(theta, N_FEATURES, HIDDEN, N_CLASSES)
    logits = np.tanh(X @ W1 + b1) @ W2 + b2
    expected = np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(BATCH), y])

    loss, _ = loss_and_gradient(backend, X, y, theta, codes.TANH, 0.0)
    eval_loss, _ = backend.evaluate(X, y, theta, HIDDEN, N_CLASSES, codes.TANH)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert eval_loss == pytest.approx(expected, rel=1e-12)


@pytest.mark.kernels
@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
def test_softmax_stays_finite_for_huge_logits(backend_name):
    backend = get_backend(backend_name)
    X, y, theta = tiny_problem(seed=3)
    theta = theta * 1e3
    _, P = backend.forward(X, theta, HIDDEN, N_CLASSES, codes.RELU)
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    loss, _ = backend.evaluate(X, y, theta, HIDDEN, N_CLASSES, codes.RELU)
    assert np.isfinite(loss)
