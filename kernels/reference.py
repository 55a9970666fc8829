"""The pure-NumPy reference backend: written for clarity, the oracle for the fast kernels.

The network is ``input -> hidden (activation f) -> softmax``. For a minibatch ``X`` (B x F) with
integer labels ``y``::

    Z1 = X W1 + b1          H = f(Z1)
    Z2 = H W2 + b2          P = softmax(Z2)         (computed stably, Z2 - max(Z2) per row)
    loss = -(1/B) sum_i log P[i, y_i]               (mean cross-entropy: the reported "loss")

Training minimises ``loss + l2/2 * (||W1||^2 + ||W2||^2)`` (weights only, not biases), whose
gradient is, with ``Y`` the one-hot labels::

    dZ2 = (P - Y) / B
    dW2 = H^T dZ2 + l2 W2         db2 = sum_i dZ2[i]
    dZ1 = (dZ2 W2^T) * f'(Z1)
    dW1 = X^T dZ1 + l2 W1         db1 = sum_i dZ1[i]

``f'`` is computed from the activation's output ``H`` (as scikit-learn does): sigmoid
``H(1-H)``, tanh ``1-H^2``, relu ``[H>0]``, leaky_relu ``1 if H>0 else 0.01``, elu
``1 if H>0 else H+1`` (alpha 1).

Optimizer updates (``g`` the gradient, state zero-initialised, ``t`` the 1-based step) equal
PyTorch's ``torch.optim`` rules:

    gd        theta -= lr g
    momentum  b = mu b + g;                          theta -= lr b          (SGD, dampening 0)
    nesterov  b = mu b + g;                          theta -= lr (g + mu b) (SGD, nesterov=True)
    rmsprop   v = a v + (1-a) g^2;                   theta -= lr g / (sqrt(v) + eps)
    adam      m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
              theta -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)

``b`` and ``m`` are stored in the state vector ``m``, the squared averages in ``v``.
``forward`` and ``evaluate`` have compiled twins of the same name and signature in the engine
(``engine.py``). ``train_group`` and ``evaluate_group`` are the K-network twins of the engine's
functions of those names: they loop over the networks, each trained by ``train_epoch``.
Inputs may be dense arrays or ``scipy.sparse`` matrices (``prepare``).
"""

import numpy as np

from . import codes
from .layout import describe, unpack


def warm_up(dtype: str) -> None:
    """Nothing to compile in the reference backend."""


def prepare(X, dtype, path="auto"):
    """``X`` in the training dtype: a C-contiguous array, or a CSR matrix if it is sparse
    (``path`` is the engine's choice of first-layer path; the reference has one)."""
    if hasattr(X, "tocsr"):
        return X.tocsr().astype(dtype)
    return np.ascontiguousarray(X, dtype=dtype)


def activate(Z: np.ndarray, activation: int) -> np.ndarray:
    """The hidden activation ``f(Z)``."""
    if activation == codes.SIGMOID:
        return 1.0 / (1.0 + np.exp(-Z))
    if activation == codes.TANH:
        return np.tanh(Z)
    if activation == codes.RELU:
        return np.maximum(Z, 0)
    if activation == codes.LEAKY_RELU:
        return np.where(Z > 0, Z, codes.LEAKY_RELU_SLOPE * Z)
    if activation == codes.ELU:
        return np.where(Z > 0, Z, codes.ELU_ALPHA * np.expm1(np.minimum(Z, 0)))
    raise ValueError(f"unknown activation code {activation}")


def activation_derivative(H: np.ndarray, activation: int) -> np.ndarray:
    """``f'(Z)`` expressed through the activation's output ``H = f(Z)``."""
    if activation == codes.SIGMOID:
        return H * (1 - H)
    if activation == codes.TANH:
        return 1 - H * H
    if activation == codes.RELU:
        return (H > 0).astype(H.dtype)
    if activation == codes.LEAKY_RELU:
        return np.where(H > 0, 1, codes.LEAKY_RELU_SLOPE).astype(H.dtype)
    if activation == codes.ELU:
        return np.where(H > 0, 1, H + codes.ELU_ALPHA).astype(H.dtype)
    raise ValueError(f"unknown activation code {activation}")


def forward(X, theta, hidden_size, n_classes, activation):
    """Hidden activations ``H`` and class probabilities ``P`` for the rows of ``X``."""
    W1, b1, W2, b2 = unpack(theta, X.shape[1], hidden_size, n_classes)
    H = activate(X @ W1 + b1, activation)
    Z2 = H @ W2 + b2
    Z2 = Z2 - Z2.max(axis=1, keepdims=True)
    E = np.exp(Z2)
    return H, E / E.sum(axis=1, keepdims=True)


def _log_softmax(Z2):
    Z2 = Z2 - Z2.max(axis=1, keepdims=True)
    return Z2 - np.log(np.exp(Z2).sum(axis=1, keepdims=True))


def loss_and_gradient(X, y, theta, grad, hidden_size, n_classes, activation, l2):
    """Mean cross-entropy of the minibatch; writes the penalised loss's gradient into ``grad``."""
    B = X.shape[0]
    W1, b1, W2, b2 = unpack(theta, X.shape[1], hidden_size, n_classes)
    gW1, gb1, gW2, gb2 = unpack(grad, X.shape[1], hidden_size, n_classes)
    H = activate(X @ W1 + b1, activation)
    log_P = _log_softmax(H @ W2 + b2)
    rows = np.arange(B)
    loss = -log_P[rows, y].mean()

    dZ2 = np.exp(log_P)
    dZ2[rows, y] -= 1
    dZ2 /= B
    gW2[...] = H.T @ dZ2 + l2 * W2
    gb2[...] = dZ2.sum(axis=0)
    dZ1 = (dZ2 @ W2.T) * activation_derivative(H, activation)
    gW1[...] = X.T @ dZ1 + l2 * W1
    gb1[...] = dZ1.sum(axis=0)
    return float(loss)


def update(theta, grad, m, v, step, optimizer, hyper):
    """One in-place optimizer step ``step`` (1-based) with the rule of code ``optimizer``."""
    lr = hyper[codes.LR]
    g = grad
    if optimizer == codes.GD:
        theta -= lr * g
    elif optimizer == codes.MOMENTUM:
        m *= hyper[codes.MOMENTUM_COEF]
        m += g
        theta -= lr * m
    elif optimizer == codes.NESTEROV:
        mu = hyper[codes.MOMENTUM_COEF]
        m *= mu
        m += g
        theta -= lr * (g + mu * m)
    elif optimizer == codes.RMSPROP:
        a = hyper[codes.RMSPROP_ALPHA]
        v *= a
        v += (1 - a) * g * g
        theta -= lr * g / (np.sqrt(v) + hyper[codes.EPS])
    elif optimizer == codes.ADAM:
        b1, b2 = hyper[codes.BETA1], hyper[codes.BETA2]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        bias1 = 1 - b1**step
        bias2 = 1 - b2**step
        denom = np.sqrt(v) / np.sqrt(bias2) + hyper[codes.EPS]
        theta -= (lr / bias1) * m / denom
    else:
        raise ValueError(f"unknown optimizer code {optimizer}")


def train_epoch(X, y, order, batch_size, theta, m, v, step, hidden_size, n_classes,
                activation, optimizer, hyper):
    """One pass over ``X[order]`` in minibatches of ``batch_size`` (the last may be smaller).

    Returns ``(mean of the minibatch losses, step after the epoch)``.
    """
    grad = np.empty_like(theta)
    losses = []
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        losses.append(loss_and_gradient(X[batch], y[batch], theta, grad, hidden_size,
                                        n_classes, activation, hyper[codes.L2]))
        step += 1
        update(theta, grad, m, v, step, optimizer, hyper)
    return float(np.mean(losses)), step


def evaluate(X, y, theta, hidden_size, n_classes, activation):
    """``(mean cross-entropy, accuracy)`` of the network on ``(X, y)``."""
    W1, b1, W2, b2 = unpack(theta, X.shape[1], hidden_size, n_classes)
    log_P = _log_softmax(activate(X @ W1 + b1, activation) @ W2 + b2)
    loss = -log_P[np.arange(len(y)), y].mean()
    accuracy = (log_P.argmax(axis=1) == y).mean()
    return float(loss), float(accuracy)


class Networks:
    """K networks as flat parameter vectors (``layout.py``) with their optimizer states, step
    counters, codes and hyperparameters: the plain form of the engine's packed ``Networks``,
    with the same constructor and accessors."""

    def __init__(self, n_features, n_classes, hidden, activation, optimizer, hyper, thetas,
                 dtype, moments=None, steps=None):
        describe(self, n_features, n_classes, hidden, activation, optimizer, hyper, steps)
        self.thetas = [np.array(theta, dtype=dtype) for theta in thetas]
        self.states = ([(np.array(m, dtype=dtype), np.array(v, dtype=dtype)) for m, v in moments]
                       if moments is not None else
                       [(np.zeros_like(t), np.zeros_like(t)) for t in self.thetas])

    def __len__(self):
        return len(self.hidden)

    def theta(self, k: int) -> np.ndarray:
        return self.thetas[k].copy()

    def moments(self, k: int):
        return self.states[k][0].copy(), self.states[k][1].copy()


def train_group(inputs, y, order, batch_size, nets, active, threads=1):
    """One epoch of each network ``active`` (indices into ``nets``), one after another; returns
    their mean minibatch losses in that order. ``threads`` is ignored."""
    losses = []
    for k in active:
        m, v = nets.states[k]
        loss, nets.steps[k] = train_epoch(
            inputs, y, order, batch_size, nets.thetas[k], m, v, int(nets.steps[k]),
            int(nets.hidden[k]), nets.n_classes, int(nets.activation[k]),
            int(nets.optimizer[k]), nets.hyper[k])
        losses.append(loss)
    return np.array(losses)


def evaluate_group(inputs, y, nets, active, threads=1):
    """``(losses, accuracies)`` of the networks ``active`` on ``(inputs, y)``, in that order."""
    results = [evaluate(inputs, y, nets.thetas[k], int(nets.hidden[k]), nets.n_classes,
                        int(nets.activation[k])) for k in active]
    return np.array([r[0] for r in results]), np.array([r[1] for r in results])
