"""ffnn.MLPClassifier against scikit-learn's on MNIST: test accuracy and fit time, same input.

    python bench/estimator_mnist.py [--hidden 256,128] [--max-iter 20] [--seeds 0,1,2]

Both estimators get the same float32 arrays (54,000 training images, the 10,000 official test
images), the same parameters (adam, relu, alpha 1e-4, batch_size "auto" = 200, lr 1e-3,
``max_iter`` epochs, no early stopping) and each ``random_state`` of ``--seeds``; they are fitted
alternately, one seed at a time, so load drifts hit both alike. Prints a markdown table of the
mean ± std of test accuracy and fit time over the seeds, and the ratio of the mean fit times.
"""

import argparse
import os
import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SklearnMLP

import ffnn


def fit_and_score(make, X, y, X_test, y_test) -> tuple[float, float]:
    """Fit on a fresh copy of ``X`` (nothing prepared for an earlier fit is reused) and return
    ``(test accuracy in %, fit seconds)``."""
    estimator, X = make(), X.copy()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)
    seconds = time.perf_counter() - start
    return 100 * float(np.mean(estimator.predict(X_test) == y_test)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="256,128")
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    splits = ffnn.load_mnist(train_size=54000, val_size=6000)
    X, y = splits.X_train.astype(np.float32), splits.y_train
    X_test, y_test = splits.X_test.astype(np.float32), splits.y_test
    params = dict(hidden_layer_sizes=hidden, max_iter=args.max_iter, solver="adam",
                  activation="relu")
    ffnn.MLPClassifier(**{**params, "max_iter": 1}, random_state=0).fit(X[:500], y[:500])  # jit
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    results = {"ffnn": [], "scikit-learn": []}
    for seed in seeds:
        results["ffnn"].append(fit_and_score(
            lambda s=seed: ffnn.MLPClassifier(**params, random_state=s), X, y, X_test, y_test))
        results["scikit-learn"].append(fit_and_score(
            lambda s=seed: SklearnMLP(**params, random_state=s), X, y, X_test, y_test))
    print(f"load average at end: {os.getloadavg()[0]:.2f}\n")
    print(f"MLPClassifier(hidden_layer_sizes={hidden}, max_iter={args.max_iter}), "
          f"seeds {seeds}, 54,000 float32 training images, 10,000 test images\n")
    print("| estimator | test accuracy (%) | fit time (s) |")
    print("| --- | ---: | ---: |")
    for name, runs in results.items():
        acc, sec = zip(*runs, strict=True)
        print(f"| {name} | {statistics.mean(acc):.2f} ± {statistics.stdev(acc):.2f} "
              f"| {statistics.mean(sec):.1f} ± {statistics.stdev(sec):.1f} |")
    ours = statistics.mean(s for _, s in results["ffnn"])
    theirs = statistics.mean(s for _, s in results["scikit-learn"])
    gap = (statistics.mean(a for a, _ in results["ffnn"])
           - statistics.mean(a for a, _ in results["scikit-learn"]))
    print(f"\nfit time scikit-learn / ffnn: {theirs / ours:.2f}x; "
          f"accuracy ffnn - scikit-learn: {gap:+.2f} points")


if __name__ == "__main__":
    main()
