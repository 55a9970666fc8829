"""Every figure exists and shows something; the data each is drawn from is checked apart."""

import math

import numpy as np
import pytest
from matplotlib.image import imread

from ffnn import Network
from ffnn.studies import plots
from ffnn.studies.evaluate import evaluate_model, format_evaluation, write_model_figures
from ffnn.studies.table import Row, run_row


def _run(setting, repeat, time, acc, epochs=10):
    return run_row({"key": f"{setting}{repeat}", "setting": setting, "repeat": repeat,
                    "seed": repeat, "epochs": epochs, "best_epoch": epochs, "train_time": time,
                    "diverged": False, "test_loss": 1 - acc, "test_accuracy": acc,
                    "train_time_kind": "epochs x cost", "epoch_cost": time / epochs,
                    "epoch_cost_spread": 0.001})


def _rows():
    spec = {"5": (1.0, 0.90), "10": (1.2, 0.93), "25": (2.0, 0.92), "50": (3.0, 0.95)}
    return [Row(s, {"hidden_size": int(s)}, [_run(s, r, t + 0.05 * r, a + 0.002 * r)
                                             for r in range(3)], 3)
            for s, (t, a) in spec.items()]


def _assert_a_real_picture(path, min_bytes=8000):
    assert path.stat().st_size > min_bytes
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels[..., :3].std() > 0.05  # not a blank canvas


def test_the_pareto_set_of_a_scripted_table():
    points = [("a", 90.0, 1.0), ("b", 93.0, 1.2), ("c", 92.0, 2.0), ("d", 95.0, 3.0),
              ("e", 95.0, 3.5), ("f", math.nan, 0.1)]
    assert plots.pareto_front(points) == ["a", "b", "d"]  # c: b beats it; e: d beats it
    assert plots.pareto_front([("x", 90.0, 1.0), ("y", 90.0, 1.0)]) == ["x", "y"]


def test_tradeoff_points_are_the_rows_means():
    points = plots.tradeoff_points(_rows())
    assert points[0] == ("5", pytest.approx(90.2), pytest.approx(1.05))


def test_test_tradeoff_and_summary_figures(tmp_path):
    rows = _rows()
    _assert_a_real_picture(plots.test_figure(tmp_path / "test.png", rows, "Hidden size", "t"))
    _assert_a_real_picture(plots.tradeoff_figure(tmp_path / "tradeoff.png", rows, "Hidden",
                                                 "t"))
    _assert_a_real_picture(plots.summary_figure(tmp_path / "summary.png",
                                                [("s1", rows), ("s2", rows[:2])]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.png", "test.png",
                                                          "tradeoff.png"]


def test_the_heatmap_and_its_grid():
    rows = [Row(f"{h}/{b}", {"hidden_size": h, "batch_size": b},
                [_run("x", 0, 1.0, 0.9 + h / 1000 + b / 10000)], 1)
            for h in (5, 10) for b in (50, 100, 250)]
    xs, ys, grid = plots.heatmap_data(rows, "batch_size", "hidden_size")
    assert xs == [50, 100, 250] and ys == [5, 10]
    assert grid[1, 2] == pytest.approx(100 * (0.9 + 0.01 + 0.025))


def test_heatmap_figure(tmp_path):
    rows = [Row(f"{h}/{b}", {"hidden_size": h, "batch_size": b}, [_run("x", 0, 1.0, 0.9)], 1)
            for h in (5, 10) for b in (50, 100)]
    _assert_a_real_picture(plots.heatmap_figure(tmp_path / "h.png", rows, "batch_size",
                                                "hidden_size", "grid"), 5000)


def _scripted_model():
    """4 inputs, 4 classes: W1 = I, W2 = 10 I with relu predicts the largest input."""
    net = Network(np.zeros(4 * 4 + 4 + 4 * 4 + 4), 4, 4, 4, "relu", "numpy")
    W1, _, W2, _ = net.weights
    W1[...] = np.eye(4)
    W2[...] = 10 * np.eye(4)
    return net


def test_the_confusion_matrix_of_a_scripted_model():
    X = np.eye(4)[[0, 1, 2, 3, 3, 2]]
    y = np.array([0, 1, 2, 3, 1, 0])
    evaluation = evaluate_model(_scripted_model(), X, y)
    expected = np.zeros((4, 4), int)
    for true, pred in [(0, 0), (1, 1), (2, 2), (3, 3), (1, 3), (0, 2)]:
        expected[true, pred] += 1
    np.testing.assert_array_equal(evaluation.confusion, expected)
    assert evaluation.accuracy == pytest.approx(4 / 6)
    assert "66.67 %" in format_evaluation(evaluation)


def test_the_prediction_panels_pick_the_most_confident_mistakes():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.99, 0.01]])
    panels = plots.prediction_panels(proba, np.array([0, 0, 1, 1]), n_grid=3, n_mistakes=2)
    np.testing.assert_array_equal(panels.grid, [0, 1, 2])
    np.testing.assert_array_equal(panels.mistakes, [3, 1])  # 0.99 wrong, then 0.8 wrong


def test_predictions_and_confusion_figures_of_a_trained_model(tmp_path, small_mnist):
    import ffnn

    result = ffnn.train(ffnn.TrainConfig(max_epochs=2, early_stopping=False, threads=1),
                        small_mnist)
    evaluation = evaluate_model(result.model, small_mnist.X_test, small_mnist.y_test)
    assert evaluation.accuracy == pytest.approx(result.test_accuracy)
    paths = write_model_figures(tmp_path, evaluation, small_mnist.X_test, small_mnist.y_test,
                                "hidden 10")
    for path in paths:
        _assert_a_real_picture(path)


def test_a_settings_figures_use_the_repeat_with_the_lower_median_test_accuracy():
    from ffnn.studies.report import median_run

    row = Row("x", {}, [_run("x", r, 1.0, acc) for r, acc in enumerate((0.9, 0.8, 0.95, 0.85))])
    assert median_run(row)["repeat"] == 3  # 0.8 < [0.85] < 0.9 < 0.95
    assert median_run(Row("y", {}, [_run("y", 0, 1.0, 0.5)]))["repeat"] == 0
    assert median_run(Row("z")) is None
