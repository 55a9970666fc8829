"""The compiled engine: one epoch of K >= 1 networks over one minibatch order, in one call.

``ffnn.train`` is a group of one; ``ffnn.train_many`` a group of K. Each network keeps its own
hidden size, activation, optimizer and hyperparameters (run-time codes, ``codes.py``), its own
step counter, and its own contiguous slice of the packed buffers. The minibatches of an epoch
are gathered once per thread and each network then runs its forward pass, backward pass and
optimizer step on them, one network after another.

**A network's arithmetic does not depend on its group.** Every sum a network computes has an
order fixed by that network's own shapes: the first-layer row products (``gather_all``,
``scatter_all``) run over the network's own padded width, the second layer over its own hidden
units, the reductions over the minibatch in chains fixed by the minibatch size (``ops.dot``), and
no fastmath (``flags.py``) lets LLVM reorder anything. So ``train(c)`` equals
``train_many([..., c, ...])[i]`` bitwise, whatever the neighbours, K, the thread split or which
members have retired, and a network's results do not depend on ``threads``.

Inputs (``prepare``): the rows in CSR form, built once per array by the caller
(``ffnn.inputs``), never per epoch. MNIST images are ~81% zeros, so on the sparse path the
first-layer products ``X W1`` and ``X^T dZ1`` run over each row's nonzeros only, with no BLAS.
Inputs denser than ``DENSE_CROSSOVER`` take the dense path (``_train_dense``): those two
products by BLAS through NumPy, the rest compiled.

Layout of network k in the flat buffers ``P`` (parameters), ``M``, ``V`` (optimizer states) and
``G`` (gradient, zero between minibatches), from ``offset[k]``, with ``Hp`` the hidden size padded
to a multiple of ``LANES``::

    [ W1 (F x Hp, row-major) | b1 (Hp) | W2 (H x C, row-major) | b2 (C) ]

Padding entries are zero and stay zero (zero gradient, zero state).

Threads: with ``threads >= 2`` the networks are split between threads for the whole epoch
(``_split``), each thread gathering the minibatches itself over the shared read-only inputs and
training its own networks, with no barrier per minibatch. The kernels are serial and release
the GIL; plain Python threads run them. No ``parallel=True``: numba's threading layer is never
started, so the engine is safe in forked workers, under Dask and beside threaded BLAS.
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import codes
from .flags import JIT_DISABLED, LANES, jit
from .intrinsics import gather_all, prefetch, scatter_all, typed
from .layout import describe, n_params, unpack
from .ops import (
    activate,
    coefficients,
    count_correct,
    dot,
    softmax_cross_entropy,
    times_derivative,
    update,
)

EVAL_CHUNK = 256  # samples per block of the validation and prediction passes


@jit()
def _sizes(F, H, C):
    """``(Hp, ob1, ow2, ob2, size)``: padded width and offsets of one network's slice."""
    Hp = (H + LANES - 1) // LANES * LANES
    ob1 = F * Hp
    ow2 = ob1 + Hp
    ob2 = ow2 + H * C
    return Hp, ob1, ow2, ob2, ob2 + C


@jit()
def _gather(indptr, indices, values, y, order, start, n, bi, bv, bp, lab):
    """Copy the CSR rows ``order[start:start + n]`` into the contiguous buffers ``bi``, ``bv``
    (row ``i`` at ``bp[i]:bp[i + 1]``) and their labels into ``lab``, prefetching ahead."""
    N = order.shape[0]
    k = 0
    bp[0] = 0
    for i in range(n):
        g = start + i
        if g + 16 < N:
            prefetch(indptr, order[g + 16])
        if g + 8 < N:
            r2 = order[g + 8]
            for q in range(indptr[r2], indptr[r2 + 1], 16):
                prefetch(indices, q)
                prefetch(values, q)
        r = order[g]
        a = indptr[r]
        m = indptr[r + 1] - a
        for q in range(m):  # a loop, not a slice copy: no shape check to compile
            bi[k + q] = indices[a + q]
            bv[k + q] = values[a + q]
        k += m
        bp[i + 1] = k
        lab[i] = y[r]


@jit()
def _first_layer(p, Hp, ob1, bi, bv, bp, n, Z):
    """``Z[i*Hp : (i+1)*Hp] = b1 + x_i W1`` for the ``n`` gathered rows."""
    for i in range(n):
        zo = i * Hp
        for j in range(Hp):
            Z[zo + j] = p[ob1 + j]
        gather_all(Z, zo, bv, bp[i], bi, bp[i], bp[i + 1] - bp[i], p, Hp, 0, Hp // LANES)


@jit()
def _logits(p, H, C, Hp, ow2, ob2, n, act, Z, HT, Q):
    """Hidden activations ``HT[j, :n] = f(Z[:, j])`` (transposed: one unit over the samples)
    and logits ``Q[c, :n] = b2[c] + sum_j HT[j] W2[j, c]``."""
    for j in range(H):
        hj = HT[j]
        for i in range(n):
            hj[i] = Z[i * Hp + j]
        activate(hj, n, act)
    for c in range(C):
        q = Q[c]
        b = p[ob2 + c]
        for i in range(n):
            q[i] = b
        for j in range(H):
            w = p[ow2 + j * C + c]
            hj = HT[j]
            for i in range(n):
                q[i] += hj[i] * w


@jit()
def _by_feature(bi, bv, bp, n, F, ci, cv, cp):
    """The gathered rows regrouped by feature (CSC): feature ``k``'s nonzeros at
    ``cp[k]:cp[k + 1]``, their samples in ``ci`` (in increasing order), values in ``cv``."""
    for k in range(F + 1):
        cp[k] = 0
    for t in range(bp[n]):
        cp[bi[t] + 1] += 1
    for k in range(F):
        cp[k + 1] += cp[k]
    for i in range(n):
        for t in range(bp[i], bp[i + 1]):
            k = bi[t]
            ci[cp[k]] = i
            cv[cp[k]] = bv[t]
            cp[k] += 1
    for k in range(F, 0, -1):
        cp[k] = cp[k - 1]
    cp[0] = 0


@jit()
def _backward_hidden(p, g, H, C, Hp, ob1, ow2, ob2, n, act, HT, Q, lab, ones, back, D):
    """Gradient of the minibatch's mean loss, added into ``g`` (zero on entry), from the
    probabilities ``Q``: ``dZ2 = (P - Y) / n``, ``dW2 = H^T dZ2``, ``db2``, ``db1`` and the rows
    of ``dZ1 = dZ2 W2^T * f'`` into ``D`` (``Hp`` wide, padding zero)."""
    size = typed(n, Q)
    for i in range(n):
        Q[lab[i], i] -= typed(1.0, Q)
    for c in range(C):
        q = Q[c]
        for i in range(n):
            q[i] = q[i] / size
        g[ob2 + c] += dot(q, ones, n)
        for j in range(H):
            g[ow2 + j * C + c] += dot(HT[j], q, n)
    for j in range(H):
        for i in range(n):
            back[i] = typed(0.0, Q)
        for c in range(C):
            w = p[ow2 + j * C + c]
            q = Q[c]
            for i in range(n):
                back[i] += q[i] * w
        times_derivative(back, HT[j], n, act)
        for i in range(n):
            D[i * Hp + j] = back[i]
    for i in range(n):
        do = i * Hp
        for j in range(H, Hp):
            D[do + j] = typed(0.0, Q)
        for j in range(Hp):
            g[ob1 + j] += D[do + j]


@jit()
def _backward(p, g, H, C, Hp, ob1, ow2, ob2, n, act, HT, Q, lab, ones, back, D, bi, bv, bp, F,
              ci, cv, cp):
    """``_backward_hidden``, then ``dW1 = X^T dZ1`` over the nonzeros, feature by feature over
    the minibatch's CSC form (``_by_feature``): each gradient row is read and written once per
    minibatch, its terms summed in ``gather_all``'s chains in sample order. A network of one
    chunk (``Hp == LANES``) adds each sample's outer product instead (``scatter_all``, cheaper
    than building the CSC form for so narrow a layer): either way the order is fixed by the
    network's own width."""
    _backward_hidden(p, g, H, C, Hp, ob1, ow2, ob2, n, act, HT, Q, lab, ones, back, D)
    if Hp == LANES:
        for i in range(n):
            scatter_all(g, Hp, 0, D, i * Hp, bv, bp[i], bi, bp[i], bp[i + 1] - bp[i], 1)
        return
    for k in range(F):
        a = cp[k]
        if cp[k + 1] > a:
            gather_all(g, k * Hp, cv, a, ci, a, cp[k + 1] - a, D, Hp, 0, Hp // LANES)


@jit()
def dense_middle(p, g, H, C, Hp, ob1, ow2, ob2, n, act, Z, HT, Q, lab, ones, vec, D):
    """The dense path's compiled part of a minibatch, between its two BLAS products: from the
    first layer's pre-activations ``Z`` (``n`` rows of ``Hp``), the hidden layer, softmax and
    loss (returned, summed) and ``_backward_hidden``."""
    _logits(p, H, C, Hp, ow2, ob2, n, act, Z, HT, Q)
    loss = softmax_cross_entropy(Q, n, lab, vec[0], vec[1])
    _backward_hidden(p, g, H, C, Hp, ob1, ow2, ob2, n, act, HT, Q, lab, ones, vec[2], D)
    return loss


@jit()
def _step(p, m, v, g, ob1, ow2, ob2, size, optimizer, hyper, step, coef, cf):
    """Optimizer step ``step`` (1-based) on one network's slice (``l2`` on W1 and W2 only)."""
    coefficients(optimizer, hyper, step, coef)
    for c in range(codes.N_COEF):
        cf[c] = coef[c]
    l2 = cf[codes.C_L2]
    zero = typed(0.0, p)
    update(p[:ob1], m[:ob1], v[:ob1], g[:ob1], l2, cf)
    update(p[ob1:ow2], m[ob1:ow2], v[ob1:ow2], g[ob1:ow2], zero, cf)
    update(p[ow2:ob2], m[ow2:ob2], v[ow2:ob2], g[ow2:ob2], l2, cf)
    update(p[ob2:size], m[ob2:size], v[ob2:size], g[ob2:size], zero, cf)


@jit()
def _max_row_nnz(indptr):
    top = 0
    for r in range(indptr.shape[0] - 1):
        top = max(top, indptr[r + 1] - indptr[r])
    return top


@jit()
def _widest(ids, hidden):
    """The largest hidden size among the networks ``ids``."""
    H = 1
    for k in ids:
        H = max(H, hidden[k])
    return H


@jit()
def _buffers(indptr, indices, values, B, H, F, C):
    """Work buffers for blocks of ``B`` samples, networks of up to ``H`` units:
    the gathered rows (``bi``, ``bv``, ``bp``) and labels, ``Z`` and ``D`` (B x Hp), ``HT``,
    ``Q``, three scratch vectors, ones."""
    cap = B * _max_row_nnz(indptr)
    dtype = values.dtype
    Hp = _sizes(F, H, C)[0]
    return (np.empty(cap, np.int32), np.empty(cap, dtype), np.zeros(B + 1, np.int64),
            np.zeros(B, np.int64), np.zeros(B * Hp, dtype), np.zeros(B * Hp, dtype),
            np.zeros((H, B), dtype), np.zeros((C, B), dtype), np.zeros((3, B), dtype),
            np.ones(B, dtype))


@jit()
def train_networks(ids, indptr, indices, values, y, order, batch_size, F, C, P, M, V, G, offset,
                   hidden, activation, optimizer, hyper, steps, losses):
    """One epoch of the networks ``ids`` over ``X[order]`` (``X`` in CSR form) in minibatches
    of ``batch_size`` (the last may be smaller), gathered once per minibatch for all of them.
    Updates their slices of ``P``, ``M``, ``V`` and their ``steps`` in place; ``losses[k]``
    becomes network k's mean minibatch loss. Touches nothing of the other networks, so calls
    on disjoint ``ids`` can run concurrently (numba releases the GIL)."""
    N = order.shape[0]
    B = batch_size
    H = _widest(ids, hidden)
    bi, bv, bp, lab, Z, D, HT, Q, vec, ones = _buffers(indptr, indices, values, B, H, F, C)
    ci, cv, cp = np.empty_like(bi), np.empty_like(bv), np.zeros(F + 1, np.int64)
    coef = np.zeros(codes.N_COEF)
    cf = np.zeros(codes.N_COEF, values.dtype)
    sums = np.zeros(ids.shape[0])
    n_batches = (N + B - 1) // B
    for batch in range(n_batches):
        start = batch * B
        n = min(B, N - start)
        _gather(indptr, indices, values, y, order, start, n, bi, bv, bp, lab)
        if H > LANES:  # some network is wider than one chunk
            _by_feature(bi, bv, bp, n, F, ci, cv, cp)
        for t in range(ids.shape[0]):
            k = ids[t]
            Hp, ob1, ow2, ob2, size = _sizes(F, hidden[k], C)
            o = offset[k]
            p, m, v, g = P[o:o + size], M[o:o + size], V[o:o + size], G[o:o + size]
            _first_layer(p, Hp, ob1, bi, bv, bp, n, Z)
            _logits(p, hidden[k], C, Hp, ow2, ob2, n, activation[k], Z, HT, Q)
            sums[t] += softmax_cross_entropy(Q, n, lab, vec[0], vec[1]) / n
            _backward(p, g, hidden[k], C, Hp, ob1, ow2, ob2, n, activation[k], HT, Q, lab,
                      ones, vec[2], D, bi, bv, bp, F, ci, cv, cp)
            steps[k] += 1
            _step(p, m, v, g, ob1, ow2, ob2, size, optimizer[k], hyper[k], steps[k], coef, cf)
    for t in range(ids.shape[0]):
        losses[ids[t]] = sums[t] / n_batches


@jit()
def evaluate_networks(ids, indptr, indices, values, y, F, C, P, offset, hidden, activation,
                      losses, accuracies, Hout, Pout):
    """Mean cross-entropy ``losses[k]`` and accuracy ``accuracies[k]`` of the networks ``ids``
    on the CSR rows in order, ``EVAL_CHUNK`` at a time. When ``Pout`` has a row per sample
    (one network), its probabilities and hidden activations go to ``Pout`` and ``Hout``."""
    N = indptr.shape[0] - 1
    B = EVAL_CHUNK
    H = _widest(ids, hidden)
    bi, bv, bp, lab, Z, D, HT, Q, vec, ones = _buffers(indptr, indices, values, B, H, F, C)
    order = np.arange(N)
    loss_sum = np.zeros(ids.shape[0])
    correct = np.zeros(ids.shape[0], np.int64)
    for start in range(0, N, B):
        n = min(B, N - start)
        _gather(indptr, indices, values, y, order, start, n, bi, bv, bp, lab)
        for t in range(ids.shape[0]):
            k = ids[t]
            Hp, ob1, ow2, ob2, size = _sizes(F, hidden[k], C)
            p = P[offset[k]:offset[k] + size]
            _first_layer(p, Hp, ob1, bi, bv, bp, n, Z)
            _logits(p, hidden[k], C, Hp, ow2, ob2, n, activation[k], Z, HT, Q)
            correct[t] += count_correct(Q, n, lab)
            loss_sum[t] += softmax_cross_entropy(Q, n, lab, vec[0], vec[1])
            if Pout.shape[0] == N:
                for i in range(n):
                    for c in range(C):
                        Pout[start + i, c] = Q[c, i]
                    for j in range(hidden[k]):
                        Hout[start + i, j] = HT[j, i]
    for t in range(ids.shape[0]):
        losses[ids[t]] = loss_sum[t] / N
        accuracies[ids[t]] = correct[t] / N


# ----------------------------------------------------------------------------- Python side
# Input density above which the first layer runs dense (BLAS through NumPy) rather than over
# each row's nonzeros; measured in docs/kernels.md ("Dense path").
DENSE_CROSSOVER = 0.35
INPUT_PATHS = ("auto", "sparse", "dense")


class Inputs:
    """Rows of ``X`` prepared once: always in CSR form (``indptr`` int64, ``indices`` int32,
    ``values`` in the training dtype; from a dense array or any ``scipy.sparse`` matrix, without
    densifying), plus, on the dense path, ``dense``: ``X`` as a C-contiguous array.

    ``path`` is how training runs the first layer: ``"sparse"`` (over each row's nonzeros) or
    ``"dense"`` (BLAS products, ``_train_dense``). ``"auto"`` picks dense above
    ``DENSE_CROSSOVER``."""

    def __init__(self, X, dtype, path="auto"):
        if path not in INPUT_PATHS:
            raise ValueError(f"input_path: {path!r} is not one of {', '.join(INPUT_PATHS)}")
        self.dtype = np.dtype(dtype)
        self.X = X.tocsr() if hasattr(X, "tocsr") else np.asarray(X)
        self.shape = X.shape
        nonzeros = self.X.count_nonzero() if hasattr(X, "tocsr") else np.count_nonzero(self.X)
        self.density = nonzeros / max(1, self.shape[0] * self.shape[1])
        if path == "auto":
            path = "dense" if self.density > DENSE_CROSSOVER else "sparse"
        self.path = path
        self.dense = None
        if path == "dense":
            self.dense = np.ascontiguousarray(
                self.X.toarray() if hasattr(self.X, "toarray") else self.X, dtype=self.dtype)
        self._csr = None

    def csr(self):
        """``(indptr, indices, values)``, built on first use (the dense path trains without)."""
        if self._csr is None:
            X = self.X
            if hasattr(X, "tocsr"):  # scipy.sparse
                X = X.copy()
                X.sum_duplicates()
                X.sort_indices()
                X.eliminate_zeros()
                self._csr = (np.ascontiguousarray(X.indptr, dtype=np.int64),
                             np.ascontiguousarray(X.indices, dtype=np.int32),
                             np.ascontiguousarray(X.data, dtype=self.dtype))
            else:
                nonzero = X != 0
                indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
                np.cumsum(nonzero.sum(axis=1), out=indptr[1:])
                rows, cols = np.nonzero(nonzero)
                self._csr = (indptr, cols.astype(np.int32),
                             np.ascontiguousarray(X[rows, cols], dtype=self.dtype))
            self.X = None  # only the CSR form is needed from now on
        return self._csr


def prepare(X, dtype, path="auto") -> Inputs:
    """The inputs as the engine takes them (see ``Inputs``)."""
    return Inputs(X, dtype, path)


class Networks:
    """K networks' parameters, optimizer states and step counters, packed (module docstring);
    their shapes, codes and hyperparameters as ``layout.describe`` sets them.

    ``hyper`` (K x ``codes.N_HYPER``) is read at every epoch and may be changed between calls.
    """

    def __init__(self, n_features, n_classes, hidden, activation, optimizer, hyper, thetas,
                 dtype, moments=None, steps=None):
        describe(self, n_features, n_classes, hidden, activation, optimizer, hyper, steps)
        sizes = [_sizes(self.n_features, int(h), self.n_classes)[4] for h in self.hidden]
        self.offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        total = int(sum(sizes))
        self.P, self.M, self.V, self.G = (np.zeros(total, dtype) for _ in range(4))
        for k, theta in enumerate(thetas):
            self._pack(self.P, k, theta)
            if moments is not None:
                self._pack(self.M, k, moments[k][0])
                self._pack(self.V, k, moments[k][1])

    def __len__(self):
        return len(self.hidden)

    def _views(self, buffer, k):
        """``(W1, b1, W2, b2)`` of network ``k`` in ``buffer`` (W1 and b1 without padding)."""
        F, C, H = self.n_features, self.n_classes, int(self.hidden[k])
        Hp, ob1, ow2, ob2, size = _sizes(F, H, C)
        s = buffer[self.offset[k]:self.offset[k] + size]
        return (s[:ob1].reshape(F, Hp)[:, :H], s[ob1:ob1 + H], s[ow2:ob2].reshape(H, C),
                s[ob2:size])

    def _pack(self, buffer, k, theta):
        for packed, flat in zip(self._views(buffer, k), unpack(
                theta, self.n_features, int(self.hidden[k]), self.n_classes), strict=True):
            packed[...] = flat

    def _flat(self, buffer, k):
        H = int(self.hidden[k])
        theta = np.empty(n_params(self.n_features, H, self.n_classes), buffer.dtype)
        for flat, packed in zip(unpack(theta, self.n_features, H, self.n_classes),
                                self._views(buffer, k), strict=True):
            flat[...] = packed
        return theta

    def theta(self, k: int) -> np.ndarray:
        """Network ``k``'s flat parameter vector (``layout.py``; a new array)."""
        return self._flat(self.P, k)

    def moments(self, k: int):
        """Network ``k``'s optimizer states ``(m, v)`` as flat vectors (new arrays)."""
        return self._flat(self.M, k), self._flat(self.V, k)


_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool with at least ``workers`` threads, made in this process (a pool inherited
    through ``fork`` has no threads)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid() or _pool[1] < workers:
        _pool = (os.getpid(), workers,
                 ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ffnn-engine"))
    return _pool[2]


def _split(ids, hidden, threads):
    """``ids`` in at most ``threads`` parts of about equal work (padded hidden width), largest
    networks first onto the least loaded part."""
    parts = [[] for _ in range(max(1, min(threads, len(ids))))]
    load = [0] * len(parts)
    for k in sorted(ids, key=lambda k: -int(hidden[k])):
        t = load.index(min(load))
        parts[t].append(k)
        load[t] += -(-int(hidden[k]) // LANES) + 1
    return [np.array(sorted(part), dtype=np.int64) for part in parts]


def _run(kernel, parts, *args):
    """``kernel(part, *args)`` for every part: the first in the calling thread, the others on
    the thread pool."""
    if len(parts) == 1:
        kernel(parts[0], *args)
        return
    pool = _thread_pool(len(parts) - 1)
    futures = [pool.submit(kernel, part, *args) for part in parts[1:]]
    kernel(parts[0], *args)
    for future in futures:
        future.result()


def train_group(inputs, y, order, batch_size, nets, active, threads=1):
    """One epoch of the networks ``active`` (indices into ``nets``) over ``inputs[order]``;
    returns their mean minibatch losses, in the order of ``active``."""
    if inputs.path == "dense":
        return _train_dense(inputs.dense, y, order, int(batch_size), nets, list(active))
    losses = np.zeros(len(nets))
    parts = _split(list(active), nets.hidden, threads)
    _run(train_networks, parts, *inputs.csr(), y, np.ascontiguousarray(order, np.int64),
         int(batch_size), nets.n_features, nets.n_classes, nets.P, nets.M, nets.V, nets.G,
         nets.offset, nets.hidden, nets.activation, nets.optimizer, nets.hyper, nets.steps,
         losses)
    return losses[list(active)]


def _train_dense(X, y, order, B, nets, active):
    """``train_group`` on the dense path: per minibatch and network, ``Z = X_b W1 + b1`` and
    ``dW1 = X_b^T dZ1`` by BLAS (``np.matmul``, with BLAS's threads: the engine itself never
    starts parallel numba code), the rest compiled (``dense_middle``, ``_step``). BLAS may sum
    in an order that depends on its thread count (numpy issue 25100), so this path promises
    agreement within rounding, not bitwise equality across thread counts."""
    F, C = nets.n_features, nets.n_classes
    H = int(max(nets.hidden[k] for k in active))
    Hp = _sizes(F, H, C)[0]
    dtype = nets.P.dtype
    Z, D = np.zeros(B * Hp, dtype), np.zeros(B * Hp, dtype)
    HT, Q, vec, ones = (np.zeros((H, B), dtype), np.zeros((C, B), dtype),
                        np.zeros((3, B), dtype), np.ones(B, dtype))
    coef, cf = np.zeros(codes.N_COEF), np.zeros(codes.N_COEF, dtype)
    sums = np.zeros(len(active))
    n_batches = -(-len(order) // B)
    for start in range(0, len(order), B):
        rows = order[start:start + B]
        n = len(rows)
        Xb, lab = X[rows], np.ascontiguousarray(y[rows])
        for t, k in enumerate(active):
            Hk, o = int(nets.hidden[k]), int(nets.offset[k])
            Hp, ob1, ow2, ob2, size = _sizes(F, Hk, C)
            p, m, v, g = (a[o:o + size] for a in (nets.P, nets.M, nets.V, nets.G))
            Zb = Z[:n * Hp].reshape(n, Hp)
            np.matmul(Xb, p[:ob1].reshape(F, Hp), out=Zb)
            Zb += p[ob1:ow2]
            sums[t] += dense_middle(p, g, Hk, C, Hp, ob1, ow2, ob2, n, int(nets.activation[k]),
                                    Z, HT, Q, lab, ones, vec, D) / n
            np.matmul(Xb.T, D[:n * Hp].reshape(n, Hp), out=g[:ob1].reshape(F, Hp))
            nets.steps[k] += 1
            _step(p, m, v, g, ob1, ow2, ob2, size, int(nets.optimizer[k]), nets.hyper[k],
                  int(nets.steps[k]), coef, cf)
    return sums / n_batches


def evaluate_group(inputs, y, nets, active, threads=1):
    """``(losses, accuracies)`` of the networks ``active`` on ``(inputs, y)``, in that order."""
    return _evaluate(inputs, y, nets, active, threads)


def _evaluate(inputs, y, nets, active, threads=1, outputs=None):
    """``evaluate_group``, also writing one network's ``(H, P)`` into ``outputs``."""
    losses, accuracies = np.zeros(len(nets)), np.zeros(len(nets))
    Hout, Pout = outputs if outputs is not None else (np.zeros((0, 1), nets.P.dtype),) * 2
    parts = _split(list(active), nets.hidden, threads)
    _run(evaluate_networks, parts, *inputs.csr(), y, nets.n_features, nets.n_classes, nets.P,
         nets.offset, nets.hidden, nets.activation, losses, accuracies, Hout, Pout)
    return losses[list(active)], accuracies[list(active)]


def _single(X, theta, hidden_size, n_classes, activation):
    X = X if isinstance(X, Inputs) else prepare(X, theta.dtype)
    nets = Networks(X.shape[1], n_classes, [hidden_size], [activation], [0],
                    np.zeros((1, codes.N_HYPER)), [theta], theta.dtype)
    return X, nets


def forward(X, theta, hidden_size, n_classes, activation):
    """Hidden activations ``H`` and class probabilities ``P`` of one network on the rows of
    ``X`` (an array, a ``scipy.sparse`` matrix or ``Inputs``)."""
    X, nets = _single(X, theta, hidden_size, n_classes, activation)
    Hout = np.zeros((X.shape[0], hidden_size), theta.dtype)
    Pout = np.zeros((X.shape[0], n_classes), theta.dtype)
    _evaluate(X, np.zeros(X.shape[0], np.int64), nets, [0], outputs=(Hout, Pout))
    return Hout, Pout


def evaluate(X, y, theta, hidden_size, n_classes, activation):
    """``(mean cross-entropy, accuracy)`` of one network on ``(X, y)``."""
    X, nets = _single(X, theta, hidden_size, n_classes, activation)
    if X.shape[0] == 0:
        return float("nan"), float("nan")
    losses, accuracies = evaluate_group(X, np.ascontiguousarray(y, np.int64), nets, [0])
    return float(losses[0]), float(accuracies[0])


# ----------------------------------------------------------------------------- compile
_WARM: set = set()
log = logging.getLogger("ffnn.kernels")


def _cached(dtype) -> bool:
    """Whether numba's on-disk cache holds ``train_networks`` for ``dtype`` (best effort)."""
    try:
        index = train_networks._cache._cache_file._load_index()
        return any(str(key[0][3]).startswith(f"array({dtype}") for key in index)
    except Exception:  # noqa: BLE001 - a private numba API: when unsure, say we compile
        return False


def warm_up(dtype: str) -> None:
    """Compile (or load from numba's cache) the engine for ``dtype`` on a tiny problem; says so
    once on the ``ffnn`` logger (WARNING) when it really compiles. Only the dtype asked for is
    compiled. Call before timing anything and before starting worker processes (several
    processes writing numba's cache at once has crashed numba)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    if dtype in _WARM:
        return
    if not JIT_DISABLED and not _cached(dtype):
        log.warning("ffnn: compiling the numba kernels for %s on first use (once; cached in "
                    "numba's cache afterwards)...", dtype)
    X = np.array([[0.0, 0.5, 0.0], [1.0, 0.0, 0.25], [0.0, 0.0, 0.75]], dtype)
    y = np.array([0, 1, 1], np.int64)
    theta = np.full(n_params(3, 2, 2), 0.1, dtype)
    nets = Networks(3, 2, [2], [codes.ELU], [codes.ADAM], np.full((1, codes.N_HYPER), 0.1),
                    [theta], dtype)
    for path in INPUT_PATHS[1:]:  # both first-layer paths
        inputs = prepare(X, dtype, path)
        train_group(inputs, y, np.arange(3), 2, nets, [0])
    evaluate_group(inputs, y, nets, [0])
    forward(inputs, theta, 2, 2, codes.ELU)
    _WARM.add(dtype)
