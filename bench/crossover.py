"""Where sparse rows beat BLAS: the first-layer products of one minibatch, two ways.

    python bench/crossover.py

For a minibatch of 250 rows drawn at random from the data, times (best of 30, one thread)

* OpenBLAS through NumPy: gather ``X[rows]``, then ``X_b @ W1`` and ``X_b.T @ dZ1``;
* the numba backend's sparse rows: compress each row to its nonzeros, then the row gather
  (forward) and row scatter (backward) intrinsics over the nonzeros only,

for MNIST (about 19% nonzero pixels), for dense data, and for data with a chosen fraction of
nonzeros, at several hidden sizes. Prints markdown tables (``docs/kernels.md``).
"""

import time

import numba
import numpy as np
from ffnn.kernels import numba_backend as nb
from ffnn.kernels._numba_flags import BLOCK, LANES
from threadpoolctl import threadpool_limits

import ffnn

BATCH = 250


@numba.njit(cache=True, nogil=True)
def sparse_products(Xf, F, rows, W, G, Hp, Z, D, idx, vals, ptr, lab, y):
    nch = Hp // LANES
    for b in range(0, rows.size, BLOCK):
        e = min(b + BLOCK, rows.size)
        nb._block_rows(Xf, F, rows, b, e, y, idx, vals, ptr, lab)
        for i in range(e - b):
            nb.gather_all(Z, (b + i) * Hp, vals, ptr[i], idx, ptr[i], ptr[i + 1] - ptr[i], W,
                          Hp, 0, nch)
        for i in range(e - b):
            nb.scatter_all(G, Hp, 0, D, (b + i) * Hp, vals, ptr[i], idx, ptr[i],
                           ptr[i + 1] - ptr[i], nch)


def best_of(f, reps=30):
    f()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times) * 1e6


def compare(X, hidden, rng):
    """``(BLAS microseconds, sparse-rows microseconds)`` for one minibatch of X."""
    F = X.shape[1]
    Xr = nb._readonly(np.ascontiguousarray(X, dtype=np.float32))
    y = nb._readonly(np.zeros(len(X), np.int64))
    Hp = -(-hidden // LANES) * LANES
    rows = nb._readonly(rng.permutation(len(X))[:BATCH].astype(np.int64))
    W = rng.standard_normal(F * Hp).astype(np.float32)
    D = rng.standard_normal(BATCH * Hp).astype(np.float32)
    G, Z = np.zeros_like(W), np.zeros(BATCH * Hp, np.float32)
    idx = np.empty(BLOCK * F + LANES, np.int32)
    vals = np.empty(BLOCK * F + LANES, np.float32)
    ptr, lab = np.zeros(BLOCK + 1, np.int64), np.zeros(BLOCK, np.int64)
    W1 = W.reshape(F, Hp)[:, :hidden].copy()
    dZ1 = D.reshape(BATCH, Hp)[:, :hidden].copy()

    def blas():
        Xb = Xr[rows]
        Xb @ W1
        Xb.T @ dZ1

    with threadpool_limits(1):
        t_blas = best_of(blas)
    t_sparse = best_of(lambda: sparse_products(Xr.reshape(-1), F, rows, W, G, Hp, Z, D, idx,
                                               vals, ptr, lab, y))
    return t_blas, t_sparse


def main():
    rng = np.random.default_rng(0)
    mnist = ffnn.load_mnist(train_size=34_000).X_train
    dense = rng.random((8000, mnist.shape[1]), dtype=np.float32)
    print(f"Layer-1 products of one minibatch of {BATCH} (forward and backward), microseconds,"
          " best of 30, one thread.\n")
    print("| data | hidden | OpenBLAS | sparse rows | faster |")
    print("| --- | --- | --- | --- | --- |")
    for name, X in ((f"MNIST ({np.mean(mnist != 0):.0%} nonzero)", mnist), ("dense", dense)):
        for hidden in (10, 32, 100, 256, 512):
            t_blas, t_sparse = compare(X, hidden, rng)
            winner = "sparse" if t_sparse < t_blas else "BLAS"
            print(f"| {name} | {hidden} | {t_blas:.0f} | {t_sparse:.0f} | {winner} "
                  f"{max(t_blas, t_sparse) / min(t_blas, t_sparse):.1f}x |", flush=True)
    print("\n| nonzero fraction | hidden 10: OpenBLAS / sparse | hidden 100: OpenBLAS / sparse |")
    print("| --- | --- | --- |")
    for fraction in (0.2, 0.3, 0.4, 0.5, 0.7):
        X = (dense * (rng.random(dense.shape) < fraction)).astype(np.float32)
        cells = ["{:.0f} / {:.0f}".format(*compare(X, hidden, rng)) for hidden in (10, 100)]
        print(f"| {fraction:.0%} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
