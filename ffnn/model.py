"""The trained network (its ``.npz`` file format: ``ffnn.model_file``)."""

from dataclasses import dataclass

import numpy as np

from .config import TrainConfig
from .kernels import codes, get_backend
from .kernels.layout import hidden_tuple, n_params, unpack
from .validation import check_features, check_labels


@dataclass(eq=False)
class Network:
    """A trained ``input -> hidden layers -> softmax`` network.

    ``theta`` holds every parameter in one flat vector (layout in ``ffnn.kernels.layout``);
    ``weights`` gives the ``(W1, b1, ..., W_out, b_out)`` views. ``hidden_size`` is an int for
    one hidden layer (as before depth existed) and the tuple of sizes for more (given either
    way; ``hidden_sizes`` is always the tuple).
    """

    theta: np.ndarray
    n_features: int
    hidden_size: int | tuple[int, ...]
    n_classes: int
    activation: str
    backend: str = "numpy"
    config: TrainConfig | None = None

    def __post_init__(self):
        sizes = hidden_tuple(self.hidden_size)
        self.hidden_size = sizes[0] if len(sizes) == 1 else sizes
        expected = n_params(self.n_features, sizes, self.n_classes)
        if self.theta.shape != (expected,):
            raise ValueError(f"theta: expected shape ({expected},), got {self.theta.shape}")

    @property
    def dtype(self) -> np.dtype:
        return self.theta.dtype

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return hidden_tuple(self.hidden_size)

    @property
    def weights(self):
        """``(W1, b1, ..., W_out, b_out)`` as views into ``theta``."""
        return unpack(self.theta, self.n_features, self.hidden_size, self.n_classes)

    def _inputs(self, X) -> np.ndarray:
        check_features("input", X, n_features=self.n_features, dtype=self.dtype)
        return np.ascontiguousarray(X, dtype=self.dtype)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``."""
        _, P = get_backend(self.backend).forward(
            self._inputs(X), self.theta, self.hidden_size, self.n_classes,
            codes.activation_code(self.activation))
        return P

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row."""
        return self.predict_proba(X).argmax(axis=1)

    def evaluate(self, X, y) -> tuple[float, float]:
        """``(mean cross-entropy, accuracy)`` on ``(X, y)``."""
        X = self._inputs(X)
        check_labels("input", y, self.n_classes, n_rows=X.shape[0])
        y = np.ascontiguousarray(y, dtype=np.int64)
        return get_backend(self.backend).evaluate(
            X, y, self.theta, self.hidden_size, self.n_classes,
            codes.activation_code(self.activation))

    def save(self, path, *, compressed: bool = False) -> None:
        """Write weights, dimensions, activation, dtype and config to ``path`` (``.npz``,
        deflated with ``compressed``; read it back with ``ffnn.load_model``)."""
        from .model_file import save_network  # model_file builds Networks: import on use

        save_network(self, path, compressed=compressed)
