"""Each optimizer's update equals its formula, worked by hand, and PyTorch's ``torch.optim``:
the reference's ``update`` and the engine's one unified formula (``ops.coefficients`` and
``ops.update``, the step every ``train_group`` minibatch ends with).

The fixed tiny problem: minimise ``f(theta) = 1/2 sum_i a_i theta_i^2`` (gradient ``a * theta``)
from ``theta0`` for three steps, in float64.
"""

import math

import numpy as np
import pytest
from ffnn.kernels import codes, ops, reference

A = np.array([1.0, 3.0, 0.5])
THETA0 = np.array([1.0, -2.0, 0.5])
LR, MU, BETA1, BETA2, EPS, ALPHA = 0.1, 0.9, 0.9, 0.999, 1e-8, 0.99
BACKENDS = ["numpy", "numba"]


def hyper():
    h = np.zeros(codes.N_HYPER)
    h[[codes.LR, codes.MOMENTUM_COEF, codes.BETA1, codes.BETA2, codes.EPS, codes.RMSPROP_ALPHA]] = (
        LR, MU, BETA1, BETA2, EPS, ALPHA)
    return h


def run_backend(backend_name, optimizer, steps=3):
    theta = THETA0.copy()
    m, v = np.zeros(3), np.zeros(3)
    coef = np.zeros(codes.N_COEF)
    for t in range(1, steps + 1):
        grad = A * theta
        if backend_name == "numpy":
            reference.update(theta, grad, m, v, t, codes.optimizer_code(optimizer), hyper())
        else:
            ops.coefficients(codes.optimizer_code(optimizer), hyper(), t, coef)
            ops.update(theta, m, v, grad, 0.0, coef)
            assert not grad.any()  # the engine's update leaves the gradient buffer zero
    return theta


def by_hand(optimizer, steps=3):
    """The update rules, one scalar at a time, straight from the formulas."""
    out = []
    for a, theta in zip(A, THETA0, strict=True):
        m = v = 0.0
        for t in range(1, steps + 1):
            g = a * theta
            if optimizer == "gd":
                theta = theta - LR * g
            elif optimizer == "momentum":
                m = MU * m + g
                theta = theta - LR * m
            elif optimizer == "nesterov":
                m = MU * m + g
                theta = theta - LR * (g + MU * m)
            elif optimizer == "rmsprop":
                v = ALPHA * v + (1 - ALPHA) * g * g
                theta = theta - LR * g / (math.sqrt(v) + EPS)
            elif optimizer == "adam":
                m = BETA1 * m + (1 - BETA1) * g
                v = BETA2 * v + (1 - BETA2) * g * g
                m_hat = m / (1 - BETA1**t)
                v_hat = v / (1 - BETA2**t)
                theta = theta - LR * m_hat / (math.sqrt(v_hat) + EPS)
        out.append(theta)
    return np.array(out)


@pytest.mark.kernels
@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("optimizer", codes.OPTIMIZERS)
def test_three_steps_equal_hand_computed_values(backend_name, optimizer):
    np.testing.assert_allclose(run_backend(backend_name, optimizer), by_hand(optimizer),
                               rtol=0, atol=1e-12)


def test_hand_computed_adam_first_step_is_lr_times_sign_of_gradient():
    # With bias correction, Adam's first step is lr * g / (|g| + eps): a sanity check of by_hand.
    np.testing.assert_allclose(by_hand("adam", steps=1), THETA0 - LR * np.sign(A * THETA0),
                               atol=1e-7)


def torch_optimizer(torch, optimizer, params):
    if optimizer == "gd":
        return torch.optim.SGD(params, lr=LR)
    if optimizer in ("momentum", "nesterov"):
        return torch.optim.SGD(params, lr=LR, momentum=MU, dampening=0,
                               nesterov=optimizer == "nesterov")
    if optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=LR, alpha=ALPHA, eps=EPS)
    return torch.optim.Adam(params, lr=LR, betas=(BETA1, BETA2), eps=EPS)


@pytest.mark.parametrize("optimizer", codes.OPTIMIZERS)
def test_ten_steps_equal_pytorch(optimizer):
    torch = pytest.importorskip("torch")
    theta = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    opt = torch_optimizer(torch, optimizer, [theta])
    a = torch.tensor(A, dtype=torch.float64)
    for _ in range(10):
        opt.zero_grad()
        (0.5 * (a * theta**2).sum()).backward()
        opt.step()
    for backend_name in BACKENDS:
        np.testing.assert_allclose(run_backend(backend_name, optimizer, steps=10),
                                   theta.detach().numpy(), rtol=1e-12, atol=1e-14)
