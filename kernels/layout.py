"""Flat parameter vectors.

All parameters of one network live in one contiguous vector ``theta`` so that an optimizer update
is a single pass over memory:

    theta = [ W1 (n_features x hidden, row-major) | b1 (hidden) | W2 (hidden x n_classes) | b2 ]

The gradient and the optimizer state (``m``, ``v``) use the same layout.
"""

import numpy as np


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
