"""Flat parameter vectors.

All parameters of one network with hidden sizes ``(H_1, ..., H_L)`` live in one contiguous
vector ``theta`` so that an optimizer update is a single pass over memory; with widths
``n_0 = n_features``, ``n_l = H_l``, ``n_{L+1} = n_classes``::

    theta = [ W1 (n_0 x n_1, row-major) | b1 (n_1) | W2 (n_1 x n_2) | b2 | ... | b_{L+1} ]

(for one hidden layer: ``[W1 | b1 | W2 | b2]``). The gradient and the optimizer state (``m``,
``v``) use the same layout.
"""

import numpy as np

from . import codes


def hidden_tuple(hidden) -> tuple[int, ...]:
    """Hidden sizes as a tuple of ints (an int ``H`` means ``(H,)``)."""
    if isinstance(hidden, int | np.integer):
        return (int(hidden),)
    return tuple(int(h) for h in hidden)


def widths(n_features: int, hidden, n_classes: int) -> list[int]:
    """``[n_features, H_1, ..., H_L, n_classes]``."""
    return [int(n_features), *hidden_tuple(hidden), int(n_classes)]


def n_params(n_features: int, hidden, n_classes: int) -> int:
    """Length of ``theta`` for a network of these dimensions (``hidden``: int or sizes)."""
    w = widths(n_features, hidden, n_classes)
    return sum(a * b + b for a, b in zip(w[:-1], w[1:], strict=True))


def unpack(theta: np.ndarray, n_features: int, hidden, n_classes: int):
    """Views ``(W1, b1, W2, b2, ..., W_{L+1}, b_{L+1})`` into a flat parameter vector."""
    w = widths(n_features, hidden, n_classes)
    views, at = [], 0
    for a, b in zip(w[:-1], w[1:], strict=True):
        views += [theta[at:at + a * b].reshape(a, b), theta[at + a * b:at + a * b + b]]
        at += a * b + b
    return tuple(views)


def describe(nets, n_features, n_classes, hidden, activation, optimizer, hyper, steps=None,
             outputs=None):
    """Set what both backends' ``Networks`` hold about K networks: ``n_features``,
    ``n_classes``, ``sizes`` (each network's hidden sizes, a tuple), ``layers`` (K x L_max
    int64, zero-padded) and ``depth`` (K), ``hidden`` (first hidden sizes), ``activation``,
    ``optimizer`` and ``output`` codes (int64 vectors; outputs default to softmax), ``hyper``
    (K x ``codes.N_HYPER`` float64, read at every epoch, may change between calls) and the
    1-based optimizer ``steps`` taken so far."""
    nets.n_features, nets.n_classes = int(n_features), int(n_classes)
    nets.sizes = [hidden_tuple(h) for h in hidden]
    nets.depth = np.array([len(s) for s in nets.sizes], dtype=np.int64)
    nets.layers = np.zeros((len(nets.sizes), max(nets.depth)), dtype=np.int64)
    for k, s in enumerate(nets.sizes):
        nets.layers[k, :len(s)] = s
    nets.hidden = nets.layers[:, 0].copy()
    nets.activation = np.array(activation, dtype=np.int64)
    nets.optimizer = np.array(optimizer, dtype=np.int64)
    nets.output = (np.zeros(len(nets.sizes), np.int64) if outputs is None
                   else np.array(outputs, dtype=np.int64))
    nets.hyper = np.array(hyper, dtype=np.float64).reshape(len(nets.sizes), codes.N_HYPER)
    nets.steps = (np.zeros(len(nets.sizes), np.int64) if steps is None
                  else np.array(steps, dtype=np.int64))
