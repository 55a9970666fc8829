"""The trained network (its ``.npz`` file format: ``ffnn.model_file``)."""

from dataclasses import dataclass

import numpy as np

from .config import TrainConfig
from .kernels import codes, get_backend
from .kernels.layout import hidden_tuple, n_params, unpack
from .validation import check_features, check_labels


@dataclass(eq=False)
class Network:
    """A trained ``input -> hidden layers -> output`` network.

    ``theta`` holds every parameter in one flat vector (layout in ``ffnn.kernels.layout``);
    ``weights`` gives the ``(W1, b1, ..., W_out, b_out)`` views. ``hidden_size`` is an int for
    one hidden layer (as before depth existed) and the tuple of sizes for more (given either
    way; ``hidden_sizes`` is always the tuple).

    ``output`` (``codes.OUTPUTS``) is the output layer and ``n_classes`` its number of units:
    ``"softmax"`` over ``n_classes`` classes, or ``"logistic"``, ``n_classes`` independent
    sigmoid units (one for a binary problem, whose labels are 0 and 1; with several, a label
    is the bit mask of the units whose target is 1, as the kernels take it).
    """

    theta: np.ndarray
    n_features: int
    hidden_size: int | tuple[int, ...]
    n_classes: int
    activation: str
    backend: str = "numpy"
    config: TrainConfig | None = None
    output: str = "softmax"

    def __post_init__(self):
        if self.output not in codes.OUTPUTS:
            raise ValueError(f"output: {self.output!r} is not one of {', '.join(codes.OUTPUTS)}")
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
        """The output layer's values, shape ``(n, n_classes)``: class probabilities (softmax),
        or each logistic unit's probability that its target is 1."""
        _, P = get_backend(self.backend).forward(
            self._inputs(X), self.theta, self.hidden_size, self.n_classes,
            codes.activation_code(self.activation), codes.output_code(self.output))
        return P

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row (softmax); for logistic outputs ``p > 0.5``:
        the class 0 or 1 of each row with one unit, the 0/1 indicator matrix with several."""
        P = self.predict_proba(X)
        if self.output == "softmax":
            return P.argmax(axis=1)
        indicators = (P > 0.5).astype(np.int64)
        return indicators[:, 0] if self.n_classes == 1 else indicators

    def evaluate(self, X, y) -> tuple[float, float]:
        """``(mean cross-entropy, accuracy)`` on ``(X, y)``: for logistic outputs the mean
        binary cross-entropy summed over the units and the subset accuracy, with ``y`` the
        labels as ``TrainConfig.output`` describes them."""
        X = self._inputs(X)
        n_labels = self.n_classes if self.output == "softmax" else 2 ** self.n_classes
        check_labels("input", y, n_labels, n_rows=X.shape[0])
        y = np.ascontiguousarray(y, dtype=np.int64)
        return get_backend(self.backend).evaluate(
            X, y, self.theta, self.hidden_size, self.n_classes,
            codes.activation_code(self.activation), codes.output_code(self.output))

    def save(self, path, *, compressed: bool = False) -> None:
        """Write weights, dimensions, activation, output, dtype and config to ``path`` (``.npz``,
        deflated with ``compressed``; read it back with ``ffnn.load_model``)."""
        from .model_file import save_network  # model_file builds Networks: import on use

        save_network(self, path, compressed=compressed)
