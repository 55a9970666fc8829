"""The trained network, and its ``.npz`` file format."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .kernels import codes, get_backend
from .kernels.layout import n_params, unpack

FORMAT_VERSION = 1


@dataclass(eq=False)
class Network:
    """A trained ``input -> hidden -> softmax`` network.

    ``theta`` holds every parameter in one flat vector (layout in ``ffnn.kernels.layout``);
    ``weights`` gives the ``(W1, b1, W2, b2)`` views.
    """

    theta: np.ndarray
    n_features: int
    hidden_size: int
    n_classes: int
    activation: str
    backend: str = "numpy"
    config: TrainConfig | None = None

    def __post_init__(self):
        expected = n_params(self.n_features, self.hidden_size, self.n_classes)
        if self.theta.shape != (expected,):
            raise ValueError(f"theta: expected shape ({expected},), got {self.theta.shape}")

    @property
    def dtype(self) -> np.dtype:
        return self.theta.dtype

    @property
    def weights(self):
        """``(W1, b1, W2, b2)`` as views into ``theta``."""
        return unpack(self.theta, self.n_features, self.hidden_size, self.n_classes)

    def _inputs(self, X) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X: expected shape (n, {self.n_features}), got {X.shape}")
        return X

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
        y = np.ascontiguousarray(y, dtype=np.int64)
        return get_backend(self.backend).evaluate(
            self._inputs(X), y, self.theta, self.hidden_size, self.n_classes,
            codes.activation_code(self.activation))

    def save(self, path, *, compressed: bool = False) -> None:
        """Write weights, dimensions, activation, dtype and config to ``path`` (``.npz``,
        deflated with ``compressed``)."""
        meta = {
            "format_version": FORMAT_VERSION,
            "n_features": self.n_features,
            "hidden_size": self.hidden_size,
            "n_classes": self.n_classes,
            "activation": self.activation,
            "backend": self.backend,
            "dtype": str(self.dtype),
            "config": None if self.config is None else self.config.to_dict(),
        }
        with open(path, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(
                f, theta=self.theta, meta=np.array(json.dumps(meta)))


def load_model(path) -> Network:
    """Read a network written by ``Network.save``.

    Files are read with ``allow_pickle=False``: a file holding a pickled object is refused with
    a ``ValueError`` rather than run.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            theta = f["theta"]
            meta = json.loads(str(f["meta"]))
    except ValueError as e:
        raise ValueError(f"{path}: refusing to load: {e}") from None
    except (KeyError, OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not an ffnn model file ({e})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version {meta.get('format_version')!r}")
    if str(theta.dtype) != meta["dtype"]:
        raise ValueError(f"{path}: theta has dtype {theta.dtype}, metadata says {meta['dtype']}")
    config = None if meta["config"] is None else TrainConfig.from_dict(meta["config"])
    return Network(theta=theta, n_features=meta["n_features"], hidden_size=meta["hidden_size"],
                   n_classes=meta["n_classes"], activation=meta["activation"],
                   backend=meta["backend"], config=config)
