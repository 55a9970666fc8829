"""The pure-NumPy reference backend: written for clarity, the oracle for the fast kernels.

The network has ``L >= 1`` hidden layers of sizes ``H_1 .. H_L``, all with the activation
``f``, and a softmax output. For a minibatch ``X`` (B x F) with integer labels ``y``, ``A_0 = X``::

    Z_l = A_{l-1} W_l + b_l     A_l = f(Z_l)          (l = 1 .. L)
    Z_out = A_L W_out + b_out   P = softmax(Z_out)    (computed stably, minus each row's max)
    loss = -(1/B) sum_i log P[i, y_i]                 (mean cross-entropy: the reported "loss")

The logistic output (``codes.LOGISTIC``) has ``P = sigmoid(Z_out)`` instead, one sigmoid per
output, and the binary cross-entropy ``loss = -(1/B) sum_i sum_c (T_ic log P_ic + (1 - T_ic)
log(1 - P_ic))``, ``T_ic`` bit ``c`` of the int label ``y_i`` (``P`` clipped to ``[eps, 1 -
eps]`` inside the logarithms, as scikit-learn clips it). Both losses have the output delta
``dZ_out = (P - T) / B``, with ``T`` the one-hot (softmax) or bit-mask targets.

(``W_out = W_{L+1}``). Training minimises ``loss + l2/2 * sum_l ||W_l||^2`` (every weight
matrix, not the biases), whose gradient is, with ``Y`` the one-hot labels::

    dZ_out = (P - Y) / B
    dW_out = A_L^T dZ_out + l2 W_out                  db_out = sum_i dZ_out[i]
    dZ_l   = (dZ_{l+1} W_{l+1}^T) * f'(Z_l)           (l = L .. 1; dZ_{L+1} = dZ_out)
    dW_l   = A_{l-1}^T dZ_l + l2 W_l                  db_l = sum_i dZ_l[i]

Init (``ffnn.training.initial_parameters``): each ``W_l`` in turn, from one
``numpy.random.default_rng(seed)``: He normal (std ``sqrt(2 / fan_in)``) for relu, leaky_relu
and elu, Glorot uniform (limit ``sqrt(6 / (fan_in + fan_out))``) for sigmoid and tanh; biases
zero. For one hidden layer all of this is ``input -> hidden -> softmax`` as before.

``f'`` is computed from the activation's output ``H`` (as scikit-learn does): sigmoid
``H(1-H)``, tanh ``1-H^2``, relu ``[H>0]``, leaky_relu ``1 if H>0 else 0.01``, elu
``1 if H>0 else H+1`` (alpha 1), identity ``1``.

Sample weights ``w`` (``train_group``'s ``weights``; default ones, the formulas above): the
minibatch minimises ``sum_i w_i CE_i / S + l2 B / (2 S) * sum_l ||W_l||^2`` with ``S = sum_i
w_i``, so ``dZ_out = w (P - Y) / S`` and the penalty's coefficient becomes ``l2 B / S``
(scikit-learn's normalisation: ``l2 = alpha / B`` gives ``alpha / S``). A minibatch whose
weights sum to 0 is skipped: no step, loss 0.

Optimizer updates (``g`` the gradient, state zero-initialised, ``t`` the 1-based step) equal
PyTorch's ``torch.optim`` rules:

    gd        theta -= lr g
    momentum  b = mu b + g;                          theta -= lr b          (SGD, dampening 0)
    nesterov  b = mu b + g;                          theta -= lr (g + mu b) (SGD, nesterov=True)
    rmsprop   v = a v + (1-a) g^2;                   theta -= lr g / (sqrt(v) + eps)
    adam      m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
              theta -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)

``b`` and ``m`` are stored in the state vector ``m``, the squared averages in ``v``.
With ``hyper[SKLEARN] = 1`` (scikit-learn's conventions, ``codes.py``) three rules are
scikit-learn's instead, and ``l2`` is ``alpha``, divided by the minibatch's weight sum ``S``::

    momentum  b = mu b + lr g;                       theta -= b             (b: minus the velocity)
    nesterov  b = mu b + lr g;                       theta -= mu b + lr g
    adam      as above, then theta -= lr sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)

and each minibatch's loss includes ``alpha/2 ||W||^2 / S`` at its weights before the step, the
epoch's loss being their mean weighted by minibatch size.
``forward`` and ``evaluate`` have compiled twins of the same name and signature in the engine
(``engine.py``). ``train_group`` and ``evaluate_group`` are the K-network twins of the engine's
functions of those names: they loop over the networks, each trained by ``train_epoch``.
Inputs may be dense arrays or ``scipy.sparse`` matrices (``prepare``).
"""

import numpy as np

from . import codes
from .layout import describe, unpack


def warm_up(dtype: str, path: str | None = None) -> None:
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
    if activation == codes.IDENTITY:
        return Z
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
    if activation == codes.IDENTITY:
        return np.ones_like(H)
    raise ValueError(f"unknown activation code {activation}")


def _hidden_layers(X, params, activation):
    """``[A_1, ..., A_L]`` for the rows of ``X`` (``params``: ``unpack``'s views)."""
    A, layers = X, []
    for W, b in zip(params[:-2:2], params[1:-2:2], strict=True):
        A = activate(A @ W + b, activation)
        layers.append(A)
    return layers


def forward(X, theta, hidden, n_classes, activation, output=codes.SOFTMAX):
    """Last hidden activations ``A_L`` and output probabilities ``P`` for the rows of ``X``
    (``hidden``: the hidden sizes, or one int; ``output``: the output-layer code)."""
    params = unpack(theta, X.shape[1], hidden, n_classes)
    H = _hidden_layers(X, params, activation)[-1]
    Z2 = H @ params[-2] + params[-1]
    if output == codes.LOGISTIC:
        return H, _sigmoid(Z2)
    Z2 = Z2 - Z2.max(axis=1, keepdims=True)
    E = np.exp(Z2)
    return H, E / E.sum(axis=1, keepdims=True)


def _sigmoid(Z):
    """The logistic output ``1 / (1 + exp(-Z))``; a very negative logit overflows ``exp`` to
    inf and gives exactly 0, as intended, so that overflow is not warned about."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-Z))


def _log_softmax(Z2):
    Z2 = Z2 - Z2.max(axis=1, keepdims=True)
    return Z2 - np.log(np.exp(Z2).sum(axis=1, keepdims=True))


def targets(y, n_outputs, output, dtype):
    """The targets ``T`` (B x n_outputs): one-hot labels, or the labels' bits (logistic)."""
    if output == codes.LOGISTIC:
        return ((y[:, None] >> np.arange(n_outputs)) & 1).astype(dtype)
    return np.eye(n_outputs, dtype=dtype)[y]


def _losses(Z_out, T, output, clipped=False):
    """Per-sample losses of the logits ``Z_out`` against the targets ``T``, and ``P`` (softmax
    ``clipped`` as the engine's ``ops.output_loss``)."""
    if output == codes.LOGISTIC:
        P = _sigmoid(Z_out)
        eps = np.finfo(P.dtype).eps
        Pc = np.clip(P, eps, 1 - eps)
        return -(T * np.log(Pc) + (1 - T) * np.log(1 - Pc)).sum(axis=1), P
    log_P = _log_softmax(Z_out)
    if clipped:
        eps = np.finfo(log_P.dtype).eps
        return -(T * np.log(np.clip(np.exp(log_P), eps, 1 - eps))).sum(axis=1), np.exp(log_P)
    return -(T * log_P).sum(axis=1), np.exp(log_P)


def loss_and_gradient(X, y, theta, grad, hidden, n_classes, activation, l2, w=None,
                      output=codes.SOFTMAX, clipped=False):
    """(Weighted) mean loss of the minibatch (cross-entropy, or binary cross-entropy for the
    logistic ``output``); writes the penalised loss's gradient into ``grad`` (``w``: the
    samples' weights, default ones; ``l2`` per sample, the ``l2 B / S`` of the docstring)."""
    B = X.shape[0]
    w = np.ones(B) if w is None else w
    S = w.sum()
    l2 = l2 * B / S
    params = unpack(theta, X.shape[1], hidden, n_classes)
    grads = unpack(grad, X.shape[1], hidden, n_classes)
    inputs = [X, *_hidden_layers(X, params, activation)]  # A_0 .. A_L
    T = targets(y, n_classes, output, theta.dtype)
    losses, P = _losses(inputs[-1] @ params[-2] + params[-1], T, output, clipped)
    loss = (w * losses).sum() / S

    dZ = (P - T) * (w / S)[:, None]
    for layer in range(len(inputs) - 1, -1, -1):  # W_{layer+1}: from A_layer
        W, gW, gb = params[2 * layer], grads[2 * layer], grads[2 * layer + 1]
        gW[...] = inputs[layer].T @ dZ + l2 * W
        gb[...] = dZ.sum(axis=0)
        if layer:
            dZ = (dZ @ W.T) * activation_derivative(inputs[layer], activation)
    return float(loss)


def update(theta, grad, m, v, step, optimizer, hyper):
    """One in-place optimizer step ``step`` (1-based) with the rule of code ``optimizer``."""
    lr = hyper[codes.LR]
    sklearn = hyper[codes.SKLEARN] != 0
    g = grad
    if optimizer == codes.GD:
        theta -= lr * g
    elif optimizer in (codes.MOMENTUM, codes.NESTEROV):
        mu = hyper[codes.MOMENTUM_COEF]
        inside = lr if sklearn else 1.0  # scikit-learn's buffer has the rate inside it
        m *= mu
        m += inside * g
        direction = m if optimizer == codes.MOMENTUM else inside * g + mu * m
        theta -= (lr / inside) * direction
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
        if sklearn:
            theta -= lr * np.sqrt(bias2) / bias1 * m / (np.sqrt(v) + hyper[codes.EPS])
        else:
            theta -= (lr / bias1) * m / (np.sqrt(v) / np.sqrt(bias2) + hyper[codes.EPS])
    else:
        raise ValueError(f"unknown optimizer code {optimizer}")


def train_epoch(X, y, order, batch_size, theta, m, v, step, hidden, n_classes,
                activation, optimizer, hyper, weights=None, output=codes.SOFTMAX):
    """One pass over ``X[order]`` in minibatches of ``batch_size`` (the last may be smaller).

    Returns ``(epoch loss, step after the epoch)``: the mean of the minibatch losses, or with
    scikit-learn's conventions their penalised mean weighted by minibatch size.
    """
    grad = np.empty_like(theta)
    weights = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)
    sklearn = hyper[codes.SKLEARN] != 0
    losses, sizes = [], []
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        S = weights[batch].sum()
        sizes.append(len(batch))
        if S == 0:
            losses.append(0.0)
            continue
        # scikit-learn's alpha / S is the per-sample l2 alpha / B, scaled by B / S below
        l2 = hyper[codes.L2] / len(batch) if sklearn else hyper[codes.L2]
        loss = loss_and_gradient(X[batch], y[batch], theta, grad, hidden, n_classes,
                                 activation, l2, weights[batch], output, sklearn)
        if sklearn:
            W = unpack(theta, X.shape[1], hidden, n_classes)[::2]
            loss += 0.5 * hyper[codes.L2] * sum(float(np.vdot(w, w)) for w in W) / S
        losses.append(loss)
        step += 1
        update(theta, grad, m, v, step, optimizer, hyper)
    if sklearn:
        return float(np.dot(losses, sizes) / len(order)), step
    return float(np.mean(losses)), step


def evaluate(X, y, theta, hidden, n_classes, activation, output=codes.SOFTMAX):
    """``(mean loss, accuracy)`` of the network on ``(X, y)`` (logistic output: subset
    accuracy, every output's ``P > 0.5`` right)."""
    params = unpack(theta, X.shape[1], hidden, n_classes)
    T = targets(y, n_classes, output, theta.dtype)
    losses, P = _losses(_hidden_layers(X, params, activation)[-1] @ params[-2] + params[-1], T,
                        output)
    if output == codes.LOGISTIC:
        right = ((P > 0.5) == (T == 1)).all(axis=1)
    else:
        right = P.argmax(axis=1) == y
    return float(losses.mean()), float(right.mean())


class Networks:
    """K networks as flat parameter vectors (``layout.py``) with their optimizer states, step
    counters, codes and hyperparameters: the plain form of the engine's packed ``Networks``,
    with the same constructor and accessors."""

    def __init__(self, n_features, n_classes, hidden, activation, optimizer, hyper, thetas,
                 dtype, moments=None, steps=None, outputs=None):
        describe(self, n_features, n_classes, hidden, activation, optimizer, hyper, steps,
                 outputs)
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


def train_group(inputs, y, order, batch_size, nets, active, threads=1, weights=None):
    """One epoch of each network ``active`` (indices into ``nets``), one after another; returns
    their mean minibatch losses in that order (``weights``: per sample, default ones).
    ``threads`` is ignored."""
    losses = []
    for k in active:
        m, v = nets.states[k]
        loss, nets.steps[k] = train_epoch(
            inputs, y, order, batch_size, nets.thetas[k], m, v, int(nets.steps[k]),
            nets.sizes[k], nets.n_classes, int(nets.activation[k]),
            int(nets.optimizer[k]), nets.hyper[k], weights, int(nets.output[k]))
        losses.append(loss)
    return np.array(losses)


def evaluate_group(inputs, y, nets, active, threads=1):
    """``(losses, accuracies)`` of the networks ``active`` on ``(inputs, y)``, in that order."""
    results = [evaluate(inputs, y, nets.thetas[k], nets.sizes[k], nets.n_classes,
                        int(nets.activation[k]), int(nets.output[k])) for k in active]
    return np.array([r[0] for r in results]), np.array([r[1] for r in results])
