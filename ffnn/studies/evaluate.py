"""A saved model on test data: loss, accuracy, confusion matrix, and its two figures.

``evaluate_model(model, X, y)`` computes; ``write_model_figures`` draws ``predictions.png`` and
``confusion.png``; ``ffnn-run evaluate MODEL.npz [--data PATH]`` prints the numbers for the test
split of ``load_mnist(PATH)`` (the shipped MNIST by default) and can write the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import plots

__all__ = ["Evaluation", "PREDICTIONS_FILE", "CONFUSION_FILE", "evaluate_model",
           "evaluate_saved", "format_evaluation", "write_model_figures"]

PREDICTIONS_FILE = "predictions.png"
CONFUSION_FILE = "confusion.png"


@dataclass(frozen=True)
class Evaluation:
    """A model's mean cross-entropy, accuracy, confusion matrix and class probabilities."""

    loss: float
    accuracy: float
    confusion: np.ndarray
    proba: np.ndarray

    @property
    def n(self) -> int:
        return int(self.confusion.sum())


def evaluate_model(model, X, y) -> Evaluation:
    """Evaluate ``model`` (an ``ffnn.Network``) on ``(X, y)``."""
    y = np.asarray(y, dtype=np.int64)
    loss, accuracy = model.evaluate(X, y)
    proba = model.predict_proba(X)
    matrix = plots.confusion_matrix(y, proba.argmax(axis=1), model.n_classes)
    return Evaluation(float(loss), float(accuracy), matrix, proba)


def write_model_figures(directory, evaluation: Evaluation, X, y, title: str) -> list[Path]:
    """``predictions.png`` and ``confusion.png`` of one evaluation into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [plots.predictions_figure(directory / PREDICTIONS_FILE, evaluation.proba,
                                     np.asarray(X), np.asarray(y), title),
            plots.confusion_figure(directory / CONFUSION_FILE, evaluation.confusion, title)]


def format_evaluation(evaluation: Evaluation) -> str:
    """Test loss, accuracy and the confusion matrix as text (rows: true, columns: predicted)."""
    matrix = evaluation.confusion
    width = max(len(str(matrix.max())), len(str(matrix.shape[0] - 1))) + 1
    header = "true\\pred" + "".join(f"{j:>{width}}" for j in range(matrix.shape[1]))
    lines = [f"test loss {evaluation.loss:.4f}, test accuracy {100 * evaluation.accuracy:.2f} % "
             f"({evaluation.n} images)", "", header]
    for i, row in enumerate(matrix):
        lines.append(f"{i:>9}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def evaluate_saved(path, data=None, test_size=None, split_seed=0, figures=None
                   ) -> tuple[Evaluation, list[Path]]:
    """Load the model file ``path`` and evaluate it on the test split of ``load_mnist(data,
    test_size=..., seed=split_seed)`` (the split training used with the same arguments: the
    test images do not depend on the other sizes); with ``figures``, write the two figures
    there. Bad model files raise the ``ValueError`` of ``ffnn.load_model``."""
    from ..data import load_mnist
    from ..model_file import load_model

    model = load_model(path)
    splits = load_mnist(data, train_size=0, val_size=0, test_size=test_size, seed=split_seed,
                        dtype=str(model.dtype), n_classes=model.n_classes)
    evaluation = evaluate_model(model, splits.X_test, splits.y_test)
    paths = []
    if figures is not None:
        config = model.config
        hidden = "-".join(map(str, model.hidden_sizes))
        title = f"{Path(path).name}: hidden {hidden}, {model.activation}" + (
            f", {config.optimizer} lr {config.learning_rate:g}" if config else "")
        paths = write_model_figures(figures, evaluation, splits.X_test, splits.y_test, title)
    return evaluation, paths
