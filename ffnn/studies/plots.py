"""The figures of a study, and the data each is drawn from (kept apart, so it can be tested).

Every figure is a PNG drawn with matplotlib's object API (no pyplot state, Agg canvas) and
written atomically (a temporary file renamed over the target). Means ± standard deviations come
from ``table.Row.stat``. Bars are drawn only on an axis that starts at zero (train time,
epochs); any other quantity is a point with error bars.

* ``curves.png`` (``curves_figure``): losses and validation accuracy per epoch;
* ``test.png`` (``test_figure``): per setting, train time, epochs, test loss, test accuracy;
* ``tradeoff.png`` (``tradeoff_figure``): test accuracy against train time, both error bars,
  the Pareto-optimal settings (``pareto_front``) marked;
* ``predictions.png`` (``predictions_figure``): a grid of test images titled predicted/true,
  mistakes in red, then the most confident mistakes (``prediction_panels``);
* ``confusion.png`` (``confusion_figure``): the confusion matrix (``confusion_matrix``);
* ``heatmap.png`` (``heatmap_figure``): test accuracy over two grid parameters (``heatmap_data``);
* ``summary.png`` (``summary_figure``): every study's settings on accuracy against time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..safe_io import replacing
from .table import Row

__all__ = [
    "confusion_figure", "confusion_matrix", "curves_figure", "heatmap_data", "heatmap_figure",
    "mean_curve", "pareto_front", "prediction_panels", "predictions_figure", "summary_figure",
    "test_figure", "tradeoff_figure",
]

_DPI = 100


def save_figure(fig, path) -> Path:
    """Write ``fig`` as a PNG to ``path``, atomically."""
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=_DPI, format="png")
    return Path(path)


def _figure(size):
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _stats(rows: Sequence[Row], name: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Means and error bars: the std over runs; for train time with the cost's spread
    (``Row.time_error``)."""
    stats = [row.stat(name) for row in rows]
    errors = ([row.time_error() for row in rows] if name == "train_time"
              else [s for _, s in stats])
    return (np.array([m for m, _ in stats], float) * scale,
            np.nan_to_num(np.array(errors, float) * scale))


# --------------------------------------------------------------------------- curves.png


def mean_curve(runs: Sequence[dict], name: str) -> np.ndarray:
    """Mean over runs at each epoch, over the runs that reached it (records' histories)."""
    series = [r["history"][name] for r in runs]
    longest = max(len(s) for s in series)
    padded = np.full((len(series), longest), np.nan)
    for i, s in enumerate(series):
        padded[i, :len(s)] = np.array(s, dtype=float)
    counts = np.sum(~np.isnan(padded), axis=0)
    return np.nansum(padded, axis=0) / np.maximum(counts, 1)


def curves_figure(path, curves: Sequence[tuple[str, Sequence[dict]]], label: str,
                  title: str) -> Path:
    """Training loss, validation loss and validation accuracy per epoch, one line per setting
    (``curves``: ``(setting, finished non-diverged records)``), mean over repeats."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    fig = _figure((13, 4.4))
    axes = fig.subplots(1, 3)
    panels = (("train_loss", "training loss", True), ("val_loss", "validation loss", True),
              ("val_accuracy", "validation accuracy (%)", False))
    for ax, (name, ylabel, log) in zip(axes, panels, strict=True):
        for setting, runs in curves:
            if runs:
                curve = mean_curve(runs, name) * (1 if log else 100)
                ax.plot(np.arange(1, len(curve) + 1), curve, label=setting)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if log and any(np.any(np.asarray(line.get_ydata()) > 0) for line in ax.get_lines()):
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(title=label, fontsize="small")
    fig.suptitle(f"{title}\nmean over repeats per epoch (a run that stopped early leaves the "
                 "mean; diverged runs not shown)", fontsize="medium")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- test.png

# (field, axis label, scale, from zero): from-zero quantities are bars, the others points.
TEST_PANELS = (("train_time", "train time (s)", 1.0, True), ("epochs", "epochs", 1.0, True),
               ("test_loss", "test loss", 1.0, False),
               ("test_accuracy", "test accuracy (%)", 100.0, False))


def test_figure(path, rows: Sequence[Row], label: str, title: str) -> Path:
    """Four panels per setting: train time, epochs, test loss, test accuracy (mean ± std)."""
    fig = _figure((14, 4.2))
    axes = fig.subplots(1, 4)
    x = np.arange(len(rows))
    for ax, (name, ylabel, scale, from_zero) in zip(axes, TEST_PANELS, strict=True):
        means, stds = _stats(rows, name, scale)
        if from_zero:
            ax.bar(x, np.nan_to_num(means), yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
            ax.set_ylim(bottom=0)
        else:
            ax.errorbar(x, means, yerr=stds, fmt="o", capsize=4, color="tab:blue")
            ax.margins(x=0.15)
        ax.set_xticks(x, [tick_label(row) for row in rows], rotation=30 if len(rows) > 6 else 0,
                      fontsize="small" if len(rows) > 6 else None)
        ax.set_xlabel(label)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    kinds = sorted({k for row in rows for k in row.time_kinds})
    fig.suptitle(f"{title}\nmean ± std over repeats (diverged runs excluded from the test "
                 f"columns); train time: {', '.join(kinds) or '—'}, its error bar with the "
                 "per-epoch cost's spread", fontsize="medium")
    return save_figure(fig, path)


def tick_label(row: Row) -> str:
    """A setting on an axis: its value, or a grid setting's values one above the other."""
    from .specs import format_value

    if len(row.values) > 1:
        return "\n".join(format_value(v) for v in row.values.values())
    return row.setting


# --------------------------------------------------------------------------- tradeoff.png


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """The names of ``(name, accuracy, time)`` points no other point beats: none has at least
    the accuracy in at most the time, better in one of the two. NaN points are never optimal."""
    ok = [(n, a, t) for n, a, t in points if math.isfinite(a) and math.isfinite(t)]
    front = []
    for name, acc, time in ok:
        beaten = any(a >= acc and t <= time and (a > acc or t < time) for _, a, t in ok)
        if not beaten:
            front.append(name)
    return front


def tradeoff_points(rows: Sequence[Row]) -> list[tuple[str, float, float]]:
    """``(setting, mean test accuracy in %, mean train time)`` per row."""
    return [(row.setting, 100 * row.stat("test_accuracy")[0], row.stat("train_time")[0])
            for row in rows]


def _tradeoff_axes(ax, rows: Sequence[Row], prefix: str = "", color=None, marker="o"):
    points = tradeoff_points(rows)
    front = set(pareto_front(points))
    acc_std = _stats(rows, "test_accuracy", 100.0)[1]
    time_std = _stats(rows, "train_time")[1]
    for (name, acc, time), sa, st in zip(points, acc_std, time_std, strict=True):
        if not (math.isfinite(acc) and math.isfinite(time)):
            continue
        optimal = name in front
        ax.errorbar(time, acc, xerr=st, yerr=sa, fmt=marker, capsize=3, color=color,
                    markersize=9 if optimal else 5,
                    markerfacecolor=None if optimal else "white")
        ax.annotate(f"{prefix}{name}" + (" *" if optimal else ""), (time, acc),
                    textcoords="offset points", xytext=(5, 5), fontsize="small")
    return front


def tradeoff_figure(path, rows: Sequence[Row], label: str, title: str) -> Path:
    """Test accuracy against train time, one point per setting; Pareto-optimal ones filled
    and starred."""
    fig = _figure((9.5, 6))
    ax = fig.subplots()
    _tradeoff_axes(ax, rows, color="tab:blue")
    ax.set_xlabel("train time (s)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    fig.suptitle(f"{title}\n{label}: mean ± std over repeats (train time: with the per-epoch "
                 "cost's spread); * filled = no other setting is both more accurate and faster",
                 fontsize="small")
    return save_figure(fig, path)


def summary_figure(path, studies: Sequence[tuple[str, Sequence[Row]]]) -> Path:
    """Every study's settings on test accuracy against train time, one colour per study."""
    from matplotlib import colormaps
    from matplotlib.ticker import FuncFormatter

    fig = _figure((10, 7))
    ax = fig.subplots()
    colours = colormaps["tab10"]
    markers = "osD^v<>p"
    for i, (name, rows) in enumerate(studies):
        points = [p for p in tradeoff_points(rows) if math.isfinite(p[1] + p[2])]
        if not points:
            continue
        ax.errorbar([t for _, _, t in points], [a for _, a, _ in points], fmt=markers[i % 8],
                    color=colours(i % 10), label=name, linestyle="none")
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("train time (s, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", ncols=2)
    fig.suptitle("every study's settings: mean test accuracy against mean train time",
                 fontsize="medium")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- model figures


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of samples of true class ``i`` predicted as ``j``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


@dataclass(frozen=True)
class PredictionPanels:
    """What ``predictions.png`` shows: the first ``grid`` test images and the most confident
    mistakes (highest predicted probability among misclassified images), by index."""

    grid: np.ndarray
    mistakes: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray


def prediction_panels(proba: np.ndarray, y: np.ndarray, n_grid: int = 32,
                      n_mistakes: int = 8) -> PredictionPanels:
    """The panels of ``predictions.png`` from class probabilities ``proba`` and labels ``y``."""
    predicted = proba.argmax(axis=1)
    confidence = proba.max(axis=1)
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")]
    return PredictionPanels(np.arange(min(n_grid, len(y))), order[:n_mistakes], predicted,
                            confidence)


def _image_shape(n_features: int) -> tuple[int, int]:
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features else (1, n_features)


def predictions_figure(path, proba: np.ndarray, X: np.ndarray, y: np.ndarray,
                       title: str, columns: int = 8) -> Path:
    """A 4 x 8 grid of test images titled ``predicted/true`` (mistakes in red, framed), then a
    row of the most confident mistakes with their probability."""
    panels = prediction_panels(proba, y, n_grid=4 * columns, n_mistakes=columns)
    shape = _image_shape(X.shape[1])
    n_rows = math.ceil(len(panels.grid) / columns) + (1 if len(panels.mistakes) else 0)
    fig = _figure((1.3 * columns, 1.5 * n_rows + 0.8))
    axes = np.atleast_2d(fig.subplots(n_rows, columns, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    cells = [(i, False) for i in panels.grid] + [(i, True) for i in panels.mistakes]
    slots = list(axes[: math.ceil(len(panels.grid) / columns)].flat)[: len(panels.grid)]
    if len(panels.mistakes):
        slots += list(axes[-1].flat)[: len(panels.mistakes)]
    for ax, (i, confident) in zip(slots, cells, strict=True):
        wrong = panels.predicted[i] != y[i]
        ax.imshow(X[i].reshape(shape), cmap="gray_r", interpolation="nearest")
        text = f"{panels.predicted[i]}/{y[i]}"
        if confident:
            text += f" {100 * panels.confidence[i]:.0f}%"
        ax.set_title(text, fontsize="small", color="tab:red" if wrong else "black")
        if wrong:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("tab:red")
                spine.set_linewidth(2)
    n_wrong = int(np.sum(panels.predicted != y))
    footer = (f"; bottom row: the {len(panels.mistakes)} most confident mistakes"
              if len(panels.mistakes) else "")
    fig.suptitle(f"{title}\npredicted/true for the first {len(panels.grid)} test images, "
                 f"mistakes in red ({n_wrong} of {len(y)} wrong){footer}", fontsize="medium")
    return save_figure(fig, path)


def confusion_figure(path, matrix: np.ndarray, title: str) -> Path:
    """The confusion matrix as counts, rows true classes, columns predicted ones."""
    fig = _figure((6.5, 5.8))
    ax = fig.subplots()
    n = matrix.shape[0]
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8, label="test images")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize="x-small",
                    color="white" if matrix[i, j] > threshold else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    fig.suptitle(f"{title}\nconfusion matrix on {matrix.sum()} test images "
                 f"(accuracy {100 * accuracy:.2f} %)", fontsize="medium")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- heatmap.png


def heatmap_data(rows: Sequence[Row], x: str, y: str) -> tuple[list, list, np.ndarray]:
    """``(x values, y values, grid)`` with ``grid[i, j]`` the mean test accuracy (%) of the
    setting with ``y = ys[i]`` and ``x = xs[j]`` (NaN where no run finished), averaged over any
    other grid parameter."""
    xs = list(dict.fromkeys(row.values[x] for row in rows))
    ys = list(dict.fromkeys(row.values[y] for row in rows))
    sums = np.zeros((len(ys), len(xs)))
    counts = np.zeros((len(ys), len(xs)))
    for row in rows:
        acc = row.stat("test_accuracy")[0]
        if math.isfinite(acc):
            i, j = ys.index(row.values[y]), xs.index(row.values[x])
            sums[i, j] += 100 * acc
            counts[i, j] += 1
    with np.errstate(invalid="ignore"):
        return xs, ys, np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def heatmap_figure(path, rows: Sequence[Row], x: str, y: str, title: str) -> Path:
    """Mean test accuracy over the grid of parameters ``x`` (columns) and ``y`` (rows)."""
    from .specs import format_value

    xs, ys, grid = heatmap_data(rows, x, y)
    fig = _figure((max(1.2 * len(xs) + 3, 8), 0.8 * len(ys) + 2.5))
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    finite = grid[np.isfinite(grid)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(len(ys)):
        for j in range(len(xs)):
            if math.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize="small",
                        color="black" if grid[i, j] > middle else "white")
    ax.set_xticks(range(len(xs)), [format_value(v) for v in xs])
    ax.set_yticks(range(len(ys)), [format_value(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.suptitle(f"{title}\nmean test accuracy over repeats", fontsize="small")
    return save_figure(fig, path)
