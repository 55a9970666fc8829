"""The logistic output layer, the identity activation and scikit-learn's update conventions
(issue 13), in both backends: the backward pass is the derivative of the forward pass, one step
equals PyTorch's ``BCEWithLogitsLoss`` step and scikit-learn's own optimizers, and the engine
equals the reference."""

import numpy as np
import pytest
from ffnn.kernels import BACKENDS, codes, get_backend
from ffnn.kernels.layout import n_params, unpack

pytestmark = pytest.mark.kernels

F, BATCH, H_STEP = 5, 9, 1e-6


def problem(hidden, n_outputs, seed):
    """A random network and a minibatch whose int labels are bit masks of ``n_outputs``
    targets."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(BATCH, F))
    y = rng.integers(0, 2 ** n_outputs, size=BATCH).astype(np.int64)
    theta = rng.normal(scale=0.7, size=n_params(F, hidden, n_outputs))
    return X, y, theta


def networks(backend, hidden, n_outputs, theta, activation, optimizer, *, lr=1.0, l2=0.0,
             sklearn=False, output=codes.LOGISTIC):
    hyper = np.zeros((1, codes.N_HYPER))
    hyper[0, [codes.LR, codes.MOMENTUM_COEF, codes.BETA1, codes.BETA2, codes.EPS]] = (
        lr, 0.9, 0.9, 0.999, 1e-8)
    hyper[0, codes.L2], hyper[0, codes.SKLEARN] = l2, float(sklearn)
    return backend.Networks(F, n_outputs, [hidden], [activation], [optimizer], hyper, [theta],
                            "float64", outputs=[output])


def one_step(backend, nets, X, y, weights=None):
    (loss,) = backend.train_group(backend.prepare(X, "float64"), y, np.arange(len(y)), len(y),
                                  nets, [0], 1, weights)
    return loss


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@pytest.mark.parametrize("activation", ["tanh", "identity"])
@pytest.mark.parametrize("hidden", [(4,), (4, 3)], ids=["depth1", "depth2"])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_logistic_output_gradient_matches_central_differences(backend_name, activation, hidden,
                                                               n_outputs):
    backend, code, l2 = get_backend(backend_name), codes.activation_code(activation), 0.1
    X, y, theta = problem(hidden, n_outputs, seed=len(hidden) + 7 * n_outputs)
    nets = networks(backend, hidden, n_outputs, theta, code, codes.GD, l2=l2)
    one_step(backend, nets, X, y)
    grad = theta - nets.theta(0)

    def penalised(t):
        loss, _ = backend.evaluate(X, y, t, hidden, n_outputs, code, codes.LOGISTIC)
        return loss + l2 / 2 * sum((W**2).sum() for W in unpack(t, F, hidden, n_outputs)[::2])

    numeric = np.empty_like(theta)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = H_STEP
        numeric[i] = (penalised(theta + step) - penalised(theta - step)) / (2 * H_STEP)
    error = np.linalg.norm(grad - numeric) / max(np.linalg.norm(grad), np.linalg.norm(numeric))
    assert error < 1e-6


def test_the_logistic_loss_and_accuracy_are_binary_cross_entropy_and_subset_accuracy():
    X, y, theta = problem((4,), 3, seed=1)
    for backend in map(get_backend, BACKENDS):
        _, P = backend.forward(X, theta, (4,), 3, codes.TANH, codes.LOGISTIC)
        T = (y[:, None] >> np.arange(3)) & 1
        expected = -(T * np.log(P) + (1 - T) * np.log(1 - P)).sum(axis=1).mean()
        loss, accuracy = backend.evaluate(X, y, theta, (4,), 3, codes.TANH, codes.LOGISTIC)
        assert loss == pytest.approx(expected, rel=1e-12)
        assert accuracy == ((P > 0.5) == T).all(axis=1).mean()
        assert ((0 < P) & (P < 1)).all() and P.shape == (BATCH, 3)


# ----------------------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@pytest.mark.parametrize("optimizer", ["adam", "nesterov"])
def test_one_step_with_the_logistic_output_equals_pytorch_bce_with_logits(backend_name,
                                                                          optimizer):
    torch = pytest.importorskip("torch")
    backend, hidden = get_backend(backend_name), (6, 4)
    X, y, theta = problem(hidden, 3, seed=5)
    nets = networks(backend, hidden, 3, theta, codes.TANH, codes.optimizer_code(optimizer),
                    lr=0.05, l2=0.01)
    one_step(backend, nets, X, y)

    params = unpack(theta, F, hidden, 3)
    linears = [torch.nn.Linear(*W.shape).double() for W in params[::2]]
    with torch.no_grad():
        for linear, W, b in zip(linears, params[::2], params[1::2], strict=True):
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b.copy()))
    model = torch.nn.Sequential(linears[0], torch.nn.Tanh(), linears[1], torch.nn.Tanh(),
                                linears[2])
    groups = [{"params": [m.weight for m in linears], "weight_decay": 0.01},
              {"params": [m.bias for m in linears], "weight_decay": 0.0}]
    opt = (torch.optim.Adam(groups, lr=0.05) if optimizer == "adam" else
           torch.optim.SGD(groups, lr=0.05, momentum=0.9, nesterov=True))
    targets = torch.from_numpy(((y[:, None] >> np.arange(3)) & 1).astype(float))
    # mean over samples, summed over outputs: BCEWithLogitsLoss averages over both
    loss = torch.nn.BCEWithLogitsLoss()(model(torch.from_numpy(X)), targets) * 3
    loss.backward()
    opt.step()
    ours = unpack(nets.theta(0), F, hidden, 3)
    for linear, W, b in zip(linears, ours[::2], ours[1::2], strict=True):
        np.testing.assert_allclose(W, linear.weight.detach().numpy().T, rtol=0, atol=1e-9)
        np.testing.assert_allclose(b, linear.bias.detach().numpy(), rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- scikit-learn
@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@pytest.mark.parametrize("optimizer", ["adam", "nesterov", "momentum", "gd"])
def test_three_steps_with_scikit_learns_conventions_equal_its_optimizers(backend_name,
                                                                         optimizer):
    """The gradient read off a gd step, fed to scikit-learn's own ``AdamOptimizer`` /
    ``SGDOptimizer`` at a learning rate that changes every step (as invscaling changes it)."""
    pytest.importorskip("sklearn")
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

    backend, hidden, alpha = get_backend(backend_name), (4,), 0.3
    X, y, theta = problem(hidden, 2, seed=3)
    weights = np.linspace(0.5, 2.0, BATCH)
    code = codes.optimizer_code(optimizer)
    nets = networks(backend, hidden, 2, theta, codes.RELU, code, l2=alpha, sklearn=True)
    params = [p.copy() for p in unpack(theta, F, hidden, 2)]
    if optimizer == "adam":
        theirs = AdamOptimizer(params, 0.05, 0.9, 0.999, 1e-8)
    else:
        theirs = SGDOptimizer(params, 0.05, "invscaling", 0.0 if optimizer == "gd" else 0.9,
                              optimizer == "nesterov")
    for step, lr in enumerate((0.05, 0.02, 0.01)):
        current = np.concatenate([p.ravel() for p in params])
        probe = networks(backend, hidden, 2, current, codes.RELU, codes.GD, l2=alpha,
                         sklearn=True)
        loss = one_step(backend, probe, X, y, weights)
        grads = unpack(current - probe.theta(0), F, hidden, 2)  # (A^T dZ + alpha W) / S
        penalty = 0.5 * alpha * sum((W**2).sum() for W in params[::2]) / weights.sum()
        data_loss, _ = _weighted_loss(backend, X, y, weights, current, hidden)
        assert loss == pytest.approx(data_loss + penalty, rel=1e-12)

        theirs.learning_rate = lr  # Adam computes its own from learning_rate_init
        theirs.update_params(params, list(grads))
        nets.hyper[0, codes.LR] = lr if optimizer != "adam" else 0.05
        one_step(backend, nets, X, y, weights)
        ours = unpack(nets.theta(0), F, hidden, 2)
        for mine, expected in zip(ours, params, strict=True):
            np.testing.assert_allclose(mine, expected, rtol=0, atol=1e-12)
        assert step + 1 == nets.steps[0]


def _weighted_loss(backend, X, y, weights, theta, hidden):
    _, P = backend.forward(X, theta, hidden, 2, codes.RELU, codes.LOGISTIC)
    T = (y[:, None] >> np.arange(2)) & 1
    per_sample = -(T * np.log(P) + (1 - T) * np.log(1 - P)).sum(axis=1)
    return float(np.dot(weights, per_sample) / weights.sum()), P


@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
def test_with_scikit_learns_conventions_the_epoch_loss_is_the_size_weighted_mean(backend_name):
    """Minibatches of 4, 4 and 1: the epoch loss weights each by its size, not 1/3 each."""
    backend, hidden = get_backend(backend_name), (4,)
    X, y, theta = problem(hidden, 1, seed=2)
    y &= 1
    losses = []
    for sklearn in (False, True):
        nets = networks(backend, hidden, 1, theta.copy(), codes.RELU, codes.GD, lr=0.0,
                        sklearn=sklearn)
        (loss,) = backend.train_group(backend.prepare(X, "float64"), y, np.arange(BATCH), 4,
                                      nets, [0])
        losses.append(loss)
    per_batch = [backend.evaluate(X[s], y[s], theta, hidden, 1, codes.RELU, codes.LOGISTIC)[0]
                 for s in (slice(0, 4), slice(4, 8), slice(8, 9))]
    assert losses[0] == pytest.approx(np.mean(per_batch), rel=1e-12)
    assert losses[1] == pytest.approx(np.dot(per_batch, [4, 4, 1]) / BATCH, rel=1e-12)


# ----------------------------------------------------------------------------- engine == reference
@pytest.mark.parametrize("sklearn", [False, True], ids=["ffnn", "sklearn-conventions"])
@pytest.mark.parametrize(("activation", "output", "n_outputs", "optimizer"), [
    ("identity", codes.SOFTMAX, 4, codes.ADAM),
    ("relu", codes.LOGISTIC, 1, codes.NESTEROV),
    ("identity", codes.LOGISTIC, 3, codes.ADAM),
], ids=["identity-softmax", "relu-binary", "identity-multilabel"])
@pytest.mark.parametrize("hidden", [(16,), (20, 7)], ids=["depth1", "depth2"])
def test_the_engine_equals_the_reference_over_epochs(sklearn, activation, output, n_outputs,
                                                     optimizer, hidden):
    rng = np.random.default_rng(4)
    N, features = 300, 20
    X = rng.normal(size=(N, features)) * (rng.random((N, features)) < 0.3)
    y = rng.integers(0, n_outputs if output == codes.SOFTMAX else 2 ** n_outputs, size=N)
    theta = rng.normal(scale=0.3, size=n_params(features, hidden, n_outputs))
    weights = rng.uniform(0.2, 3.0, size=N)
    results = []
    for name in ("numba", "numpy"):
        backend = get_backend(name)
        hyper = np.zeros((1, codes.N_HYPER))
        hyper[0, [codes.LR, codes.MOMENTUM_COEF, codes.BETA1, codes.BETA2, codes.EPS,
                  codes.L2, codes.SKLEARN]] = (0.01, 0.9, 0.9, 0.999, 1e-8, 1e-3, sklearn)
        nets = backend.Networks(features, n_outputs, [hidden], [codes.activation_code(
            activation)], [optimizer], hyper, [theta], "float64", outputs=[output])
        inputs = backend.prepare(X, "float64")
        losses = [backend.train_group(inputs, y, np.random.default_rng(e).permutation(N), 32,
                                      nets, [0], 1, weights)[0] for e in range(4)]
        results.append((nets.theta(0), losses, backend.evaluate_group(inputs, y, nets, [0])))
    (fast, fast_losses, fast_eval), (slow, slow_losses, slow_eval) = results
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fast_losses, slow_losses, rtol=1e-10)
    np.testing.assert_allclose(fast_eval, slow_eval, rtol=1e-10)
