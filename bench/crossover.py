"""Where the dense first layer beats the sparse one: ``ffnn.train`` both ways, by input density.

    python bench/crossover.py [--epochs 4] [--hidden 10,100]

For MNIST (about 19% nonzero pixels), for MNIST with random values k/255 added in zero pixels
until a chosen fraction of the inputs is nonzero, and for standardised MNIST (scikit-learn's
``StandardScaler`` semantics, about 86% nonzero), trains the same network with
``TrainConfig(input_path="sparse")`` and ``input_path="dense"`` (threads=1, ReLU, Adam, float32,
batch 250, 34,000/6,000 images) and prints the median epoch time of each as a markdown table:
the table behind ``DENSE_CROSSOVER`` in ``docs/kernels.md``.
"""

import argparse
import os
import statistics

import numpy as np
from workloads import standardised

import ffnn


def with_density(splits: ffnn.Splits, density: float, seed: int = 0) -> ffnn.Splits:
    """``splits`` with random k/255 values written into zero inputs until ``density`` of every
    split's inputs are nonzero (the data stay 8-bit-like; only the density changes)."""
    rng = np.random.default_rng(seed)

    def fill(X):
        X = X.copy()
        zeros = np.flatnonzero(X == 0)
        extra = int(density * X.size) - (X.size - zeros.size)
        if extra > 0:
            chosen = rng.choice(zeros, size=extra, replace=False)
            X.flat[chosen] = rng.integers(1, 256, size=extra) / X.dtype.type(255)
        return X

    return ffnn.Splits(X_train=fill(splits.X_train), y_train=splits.y_train,
                       X_val=fill(splits.X_val), y_val=splits.y_val,
                       X_test=fill(splits.X_test), y_test=splits.y_test,
                       n_classes=splits.n_classes, source=f"{splits.source} at {density:.0%}")


def epoch_ms(splits: ffnn.Splits, hidden: int, path: str, epochs: int) -> float:
    config = ffnn.TrainConfig(hidden_size=hidden, activation="relu", optimizer="adam",
                              batch_size=250, threads=1, early_stopping=False,
                              max_epochs=epochs, input_path=path)
    result = ffnn.train(config, splits)
    assert result.extra["input_path"] == path, result.extra
    return 1e3 * statistics.median(r.seconds for r in result.history[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--hidden", default="10,100")
    args = parser.parse_args()
    hidden_sizes = [int(h) for h in args.hidden.split(",")]
    mnist = ffnn.load_mnist(train_size=34000, val_size=6000, test_size=2000)
    datasets = [("MNIST", mnist)]
    datasets += [(f"MNIST filled to {d:.0%}", with_density(mnist, d)) for d in (0.3, 0.4, 0.5)]
    datasets.append(("standardised MNIST", standardised(mnist)))
    print(f"load average at start: {os.getloadavg()[0]:.2f}\n")
    print("| data | nonzero | hidden | sparse path (ms) | dense path (ms) | faster |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, splits in datasets:
        nonzero = np.count_nonzero(splits.X_train) / splits.X_train.size
        for hidden in hidden_sizes:
            sparse = epoch_ms(splits, hidden, "sparse", args.epochs)
            dense = epoch_ms(splits, hidden, "dense", args.epochs)
            faster = "sparse" if sparse < dense else "dense"
            print(f"| {name} | {nonzero:.0%} | {hidden} | {sparse:.1f} | {dense:.1f} | {faster} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
