"""Flat parameter vectors.

All parameters of one network live in one contiguous vector ``theta`` so that an optimizer update
is a single pass over memory:

    theta = [ W1 (n_features x hidden, row-major) | b1 (hidden) | W2 (hidden x n_classes) | b2 ]

The gradient and the optimizer state (``m``, ``v``) use the same layout.
"""

import numpy as np

from . import codes


def n_params(n_features: int, hidden_size: int, n_classes: int) -> int:
    """Length of ``theta`` for a network of these dimensions."""
    return n_features * hidden_size + hidden_size + hidden_size * n_classes + n_classes


def unpack(theta: np.ndarray, n_features: int, hidden_size: int, n_classes: int):
    """Views ``(W1, b1, W2, b2)`` into a flat parameter vector (no copy)."""
    a = n_features * hidden_size
    b = a + hidden_size
    c = b + hidden_size * n_classes
    return (
        theta[:a].reshape(n_features, hidden_size),
        theta[a:b],
        theta[b:c].reshape(hidden_size, n_classes),
        theta[c:],
    )


def describe(nets, n_features, n_classes, hidden, activation, optimizer, hyper, steps=None):
    """Set what both backends' ``Networks`` hold about K networks: ``n_features``,
    ``n_classes``, ``hidden`` sizes, ``activation`` and ``optimizer`` codes (int64 vectors),
    ``hyper`` (K x ``codes.N_HYPER`` float64, read at every epoch, may change between calls)
    and the 1-based optimizer ``steps`` taken so far."""
    nets.n_features, nets.n_classes = int(n_features), int(n_classes)
    nets.hidden = np.array(hidden, dtype=np.int64)
    nets.activation = np.array(activation, dtype=np.int64)
    nets.optimizer = np.array(optimizer, dtype=np.int64)
    nets.hyper = np.array(hyper, dtype=np.float64).reshape(len(nets.hidden), codes.N_HYPER)
    nets.steps = (np.zeros(len(nets.hidden), np.int64) if steps is None
                  else np.array(steps, dtype=np.int64))
