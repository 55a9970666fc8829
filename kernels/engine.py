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
``G`` (gradient, zero between minibatches), from ``offset[k]``, with ``Hp`` the first hidden size
padded to a multiple of ``LANES`` (offsets: ``_layout``)::

    [ W1 (F x Hp, row-major) | b1 (Hp) | W2 (H1 x H2) | b2 (H2) | ... | W_out (H_L x C) | b_out ]

Depth: the later hidden layers are BLAS products called from compiled code, on one thread
(``_forward``, ``_backward_hidden``, ``_serial_compiled_blas``; ``docs/kernels.md``, "Depth").

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
from contextlib import contextmanager

import numpy as np

from . import codes
from .flags import JIT_DISABLED, LANES, jit
from .intrinsics import gather_all, gemm, prefetch, scatter_all, typed
from .layout import describe, n_params, unpack
from .ops import (
    activate,
    clipped_cross_entropy,
    coefficients,
    count_correct,
    dot,
    output_loss,
    times_derivative,
    update,
)

EVAL_CHUNK = 256  # samples per block of the validation and prediction passes


def _layout(F, sizes, C):
    """Offsets of one network's slice (hidden ``sizes``): ``[Hp, ob1, ow_2, ob_2, ..., ow_{L+1},
    ob_{L+1}, size]``, ``Hp`` the first hidden size padded, ``ob1`` where ``b1`` starts,
    ``ow_l``/``ob_l`` where ``W_l``/``b_l`` start (``l = L + 1``: the output layer)."""
    Hp = -(-sizes[0] // LANES) * LANES
    off, at = [Hp, F * Hp], F * Hp + Hp
    for n_in, n_out in zip(sizes, (*sizes[1:], C), strict=True):
        off += [at, at + n_in * n_out]
        at += n_in * n_out + n_out
    return np.array([*off, at], dtype=np.int64)


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
def _rows(buffer, layer, rows, n):
    """``buffer[layer]``'s first ``rows * n`` entries as a ``rows x n`` matrix."""
    return buffer[layer, :rows * n].reshape(rows, n)


@jit()
def _forward(p, off, layers, depth, C, n, act, Z, A, Q):
    """From the first layer's pre-activations ``Z`` (``n`` rows of ``Hp``): each hidden
    layer's activations transposed (layer ``l``'s ``H x n`` in ``_rows(A, l - 1, ...)``: one unit
    over the samples), the later hidden layers by BLAS (``np.dot``) with bias and activation
    fused after it, and the logits ``Q[c, :n] = b_out[c] + sum_j A_L[j] W_out[j, c]``."""
    H, Hp = layers[0], off[0]
    HT = _rows(A, 0, H, n)
    for j in range(H):
        hj = HT[j]
        for i in range(n):
            hj[i] = Z[i * Hp + j]
        activate(hj, n, act)
    for ly in range(1, depth):
        Hin, Hout, ow, ob = layers[ly - 1], layers[ly], off[2 * ly], off[2 * ly + 1]
        gemm(1, 0, Hout, n, Hin, p, ow, Hout, A[ly - 1], 0, n, A[ly], 0, n)
        Y = _rows(A, ly, Hout, n)
        for c in range(Hout):
            y, b = Y[c], p[ob + c]
            for i in range(n):
                y[i] += b
            activate(y, n, act)
    H, ow, ob = layers[depth - 1], off[2 * depth], off[2 * depth + 1]
    HT = _rows(A, depth - 1, H, n)
    for c in range(C):
        q = Q[c]
        b = p[ob + c]
        for i in range(n):
            q[i] = b
        for j in range(H):
            w = p[ow + j * C + c]
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
def _backward_hidden(p, g, off, layers, depth, C, n, act, out, A, Q, lab, ones, DT, D, bw,
                     total):
    """Gradient of the minibatch's weighted mean loss, added into ``g`` (zero on entry), from
    the probabilities ``Q`` of the output layer ``out``: ``dZ_out = w (P - Y) / sum(w)`` (``bw``
    the weights, ``total`` their float64 sum; ones and ``n``: the plain mean, bitwise; ``Y`` the
    one-hot or bit-mask targets), ``dW_out = A_L^T dZ_out``,
    ``db_out``; then each hidden layer's ``dZ_l = dZ_{l+1} W_{l+1}^T * f'`` (transposed, in
    ``DT``), the later layers' ``dW_l`` and ``dZ_l`` by BLAS; ``db1`` and the rows of ``dZ_1``
    into ``D`` (``Hp`` wide, padding zero)."""
    size = typed(total, Q)
    for c in range(C if out == codes.LOGISTIC else 0):  # dZ_out = P - T: bit-mask targets
        for i in range(n):
            Q[c, i] -= typed((lab[i] >> c) & 1, Q)
    for i in range(n if out != codes.LOGISTIC else 0):  # one-hot targets
        Q[lab[i], i] -= typed(1.0, Q)
    H, ow, ob = layers[depth - 1], off[2 * depth], off[2 * depth + 1]
    HT = _rows(A, depth - 1, H, n)
    for c in range(C):
        q = Q[c]
        for i in range(n):
            q[i] = q[i] * bw[i] / size
        g[ob + c] += dot(q, ones, n)
        for j in range(H):
            g[ow + j * C + c] += dot(HT[j], q, n)
    delta = _rows(DT, (depth - 1) % 2, H, n)
    for j in range(H):
        back = delta[j]
        for i in range(n):
            back[i] = typed(0.0, Q)
        for c in range(C):
            w = p[ow + j * C + c]
            q = Q[c]
            for i in range(n):
                back[i] += q[i] * w
        times_derivative(back, HT[j], n, act)
    for ly in range(depth - 1, 0, -1):
        Hin, Hout, ow, ob = layers[ly - 1], layers[ly], off[2 * ly], off[2 * ly + 1]
        X, dout = _rows(A, ly - 1, Hin, n), _rows(DT, ly % 2, Hout, n)
        din = _rows(DT, (ly - 1) % 2, Hin, n)
        gemm(0, 1, Hin, Hout, n, A[ly - 1], 0, n, DT[ly % 2], 0, n, g, ow, Hout)  # g was 0
        for c in range(Hout):
            g[ob + c] += dot(dout[c], ones, n)
        gemm(0, 0, Hin, n, Hout, p, ow, Hout, DT[ly % 2], 0, n, DT[(ly - 1) % 2], 0, n)
        for j in range(Hin):
            times_derivative(din[j], X[j], n, act)
    H, Hp, ob1 = layers[0], off[0], off[1]
    delta = _rows(DT, 0, H, n)
    for j in range(H):
        back = delta[j]
        for i in range(n):
            D[i * Hp + j] = back[i]
    for i in range(n):
        do = i * Hp
        for j in range(H, Hp):
            D[do + j] = typed(0.0, Q)
        for j in range(Hp):
            g[ob1 + j] += D[do + j]


@jit()
def _backward(p, g, off, layers, depth, C, n, act, out, A, Q, lab, ones, DT, D, bw, total, bi,
              bv, bp, F, ci, cv, cp):
    """``_backward_hidden``, then ``dW1 = X^T dZ1`` over the nonzeros, feature by feature over
    the minibatch's CSC form (``_by_feature``): each gradient row is read and written once per
    minibatch, its terms summed in ``gather_all``'s chains in sample order. A network of one
    chunk (``Hp == LANES``) adds each sample's outer product instead (``scatter_all``, cheaper
    than building the CSC form for so narrow a layer): either way the order is fixed by the
    network's own width."""
    _backward_hidden(p, g, off, layers, depth, C, n, act, out, A, Q, lab, ones, DT, D, bw, total)
    Hp = off[0]
    if Hp == LANES:
        for i in range(n):
            scatter_all(g, Hp, 0, D, i * Hp, bv, bp[i], bi, bp[i], bp[i + 1] - bp[i], 1)
        return
    for k in range(F):
        a = cp[k]
        if cp[k + 1] > a:
            gather_all(g, k * Hp, cv, a, ci, a, cp[k + 1] - a, D, Hp, 0, Hp // LANES)


@jit()
def dense_middle(p, g, off, layers, depth, C, n, act, out, hyper, Z, A, DT, Q, lab, ones, vec,
                 D, bw, total):
    """The dense path's compiled part of a minibatch, between its two BLAS products: from the
    first layer's pre-activations ``Z`` (``n`` rows of ``Hp``), the hidden layers, the output
    layer and the minibatch's loss (returned, ``_minibatch_loss``), and ``_backward_hidden``."""
    _forward(p, off, layers, depth, C, n, act, Z, A, Q)
    loss = _minibatch_loss(p, off, depth, hyper, out, Q, n, lab, vec, bw, total)
    _backward_hidden(p, g, off, layers, depth, C, n, act, out, A, Q, lab, ones, DT, D, bw, total)
    return loss


@jit()
def _minibatch_loss(p, off, depth, hyper, out, Q, n, lab, vec, bw, total):
    """The output layer ``out`` on the logits ``Q`` (``ops.output_loss``) and the minibatch's
    term of the epoch loss (``codes.py``) from its weighted loss sum: the weighted mean
    ``loss_sum / total``; with scikit-learn's conventions (loss clipped as scikit-learn clips
    it) ``n (loss_sum + alpha/2 ||W||^2) / total``, the weights those before the step
    (``hyper[L2]`` is ``alpha``), so that the epoch's total over ``N`` is scikit-learn's
    size-weighted mean."""
    loss_sum = output_loss(Q, n, lab, vec[0], vec[1], bw, out)
    if hyper[codes.SKLEARN] == 0.0:
        return loss_sum / total
    if out != codes.LOGISTIC:
        loss_sum = clipped_cross_entropy(Q, n, lab, bw)
    squares = 0.0
    for ly in range(depth + 1 if hyper[codes.L2] != 0.0 else 0):
        start, stop = (0, off[1]) if ly == 0 else (off[2 * ly], off[2 * ly + 1])  # W1 (its
        w = p[start:stop]  # padding zeros included), then W_2 .. W_out
        squares += np.float64(dot(w, w, stop - start))
    return n * (loss_sum + 0.5 * hyper[codes.L2] * squares) / total


@jit()
def _step(p, m, v, g, off, depth, optimizer, hyper, step, coef, cf, n, total):
    """Optimizer step ``step`` (1-based) on one network's slice, after a minibatch of ``n``
    samples of weight sum ``total``: ``l2`` on the weights only, times ``n / total`` (1
    unweighted), or with scikit-learn's conventions ``1 / total`` (``alpha / sum(w)``)."""
    coefficients(optimizer, hyper, step, coef)
    coef[codes.C_L2] *= (1.0 if hyper[codes.SKLEARN] != 0.0 else n) / total
    for c in range(codes.N_COEF):
        cf[c] = coef[c]
    l2 = cf[codes.C_L2]
    zero = typed(0.0, p)
    ob1, ow2 = off[1], off[2]
    update(p[:ob1], m[:ob1], v[:ob1], g[:ob1], l2, cf)
    update(p[ob1:ow2], m[ob1:ow2], v[ob1:ow2], g[ob1:ow2], zero, cf)
    for ly in range(depth):
        a, b, e = off[2 + 2 * ly], off[3 + 2 * ly], off[4 + 2 * ly]
        update(p[a:b], m[a:b], v[a:b], g[a:b], l2, cf)
        update(p[b:e], m[b:e], v[b:e], g[b:e], zero, cf)


@jit()
def _max_row_nnz(indptr):
    top = 0
    for r in range(indptr.shape[0] - 1):
        top = max(top, indptr[r + 1] - indptr[r])
    return top


@jit()
def _widest(ids, layers):
    """``(widest first layer, widest layer)`` among the networks ``ids``."""
    H1 = H = 1
    for k in ids:
        H1 = max(H1, layers[k, 0])
        for h in layers[k]:
            H = max(H, h)
    return H1, H


@jit()
def _buffers(indptr, indices, values, B, layers, ids, F, C):
    """Work buffers for blocks of ``B`` samples, for the networks ``ids``: the gathered rows
    (``bi``, ``bv``, ``bp``) and labels, ``Z`` and ``D`` (B x Hp), the activations ``A`` (a row
    per layer) and deltas ``DT`` (two rows), ``Q``, three scratch vectors, ones."""
    cap = B * _max_row_nnz(indptr)
    dtype = values.dtype
    H1, H = _widest(ids, layers)
    Hp = (H1 + LANES - 1) // LANES * LANES
    return (np.empty(cap, np.int32), np.empty(cap, dtype), np.zeros(B + 1, np.int64),
            np.zeros(B, np.int64), np.zeros(B * Hp, dtype), np.zeros(B * Hp, dtype),
            np.zeros((layers.shape[1], H * B), dtype), np.zeros((2, H * B), dtype),
            np.zeros((C, B), dtype), np.zeros((3, B), dtype), np.ones(B, dtype))


@jit()
def _batch_weights(sw, order, start, n, bw):
    """``bw[i] = sw[order[start + i]]`` for the minibatch; returns their float64 sum."""
    total = 0.0
    for i in range(n):
        bw[i] = sw[order[start + i]]
        total += np.float64(bw[i])
    return total


@jit()
def train_networks(ids, indptr, indices, values, y, sw, order, batch_size, F, C, P, M, V, G,
                   offset, layout, layers, depth, activation, output, optimizer, hyper, steps,
                   losses):
    """One epoch of the networks ``ids`` over ``X[order]`` (``X`` in CSR form) in minibatches
    of ``batch_size`` (the last may be smaller), gathered once per minibatch for all of them,
    sample ``r`` weighted ``sw[r]`` (a minibatch whose weights sum to 0 is skipped: no step,
    loss 0); ``output`` holds each network's output-layer code.
    Updates their slices of ``P``, ``M``, ``V`` and their ``steps`` in place; ``losses[k]``
    becomes network k's mean minibatch loss. Touches nothing of the other networks, so calls
    on disjoint ``ids`` can run concurrently (numba releases the GIL)."""
    N = order.shape[0]
    B = batch_size
    bi, bv, bp, lab, Z, D, A, DT, Q, vec, ones = _buffers(indptr, indices, values, B, layers,
                                                          ids, F, C)
    ci, cv, cp = np.empty_like(bi), np.empty_like(bv), np.zeros(F + 1, np.int64)
    coef = np.zeros(codes.N_COEF)
    cf = np.zeros(codes.N_COEF, values.dtype)
    sums = np.zeros(ids.shape[0])
    bw = np.empty(B, values.dtype)
    wide = _widest(ids, layers)[0] > LANES  # some network's first layer is wider than a chunk
    n_batches = (N + B - 1) // B
    for batch in range(n_batches):
        start = batch * B
        n = min(B, N - start)
        total = _batch_weights(sw, order, start, n, bw)
        if total == 0.0:
            continue
        _gather(indptr, indices, values, y, order, start, n, bi, bv, bp, lab)
        if wide:
            _by_feature(bi, bv, bp, n, F, ci, cv, cp)
        for t in range(ids.shape[0]):
            k = ids[t]
            L, act, out = depth[k], activation[k], output[k]
            off = layout[k]
            o, size = offset[k], off[2 * L + 2]
            p, m, v, g = P[o:o + size], M[o:o + size], V[o:o + size], G[o:o + size]
            _first_layer(p, off[0], off[1], bi, bv, bp, n, Z)
            _forward(p, off, layers[k], L, C, n, act, Z, A, Q)
            sums[t] += _minibatch_loss(p, off, L, hyper[k], out, Q, n, lab, vec, bw, total)
            _backward(p, g, off, layers[k], L, C, n, act, out, A, Q, lab, ones, DT, D, bw, total,
                      bi, bv, bp, F, ci, cv, cp)
            steps[k] += 1
            _step(p, m, v, g, off, L, optimizer[k], hyper[k], steps[k], coef, cf, n, total)
    for t in range(ids.shape[0]):
        k = ids[t]
        losses[k] = sums[t] / (N if hyper[k, codes.SKLEARN] != 0.0 else n_batches)


@jit()
def evaluate_networks(ids, indptr, indices, values, y, F, C, P, offset, layout, layers, depth,
                      activation, output, losses, accuracies, Hout, Pout):
    """Mean cross-entropy ``losses[k]`` and accuracy ``accuracies[k]`` of the networks ``ids``
    on the CSR rows in order, ``EVAL_CHUNK`` at a time. When ``Pout`` has a row per sample
    (one network), its probabilities and last hidden activations go to ``Pout`` and ``Hout``."""
    N = indptr.shape[0] - 1
    B = EVAL_CHUNK
    bi, bv, bp, lab, Z, D, A, DT, Q, vec, ones = _buffers(indptr, indices, values, B, layers,
                                                          ids, F, C)
    order = np.arange(N)
    loss_sum = np.zeros(ids.shape[0])
    correct = np.zeros(ids.shape[0], np.int64)
    for start in range(0, N, B):
        n = min(B, N - start)
        _gather(indptr, indices, values, y, order, start, n, bi, bv, bp, lab)
        for t in range(ids.shape[0]):
            k = ids[t]
            L = depth[k]
            off = layout[k]
            p = P[offset[k]:offset[k] + off[2 * L + 2]]
            _first_layer(p, off[0], off[1], bi, bv, bp, n, Z)
            _forward(p, off, layers[k], L, C, n, activation[k], Z, A, Q)
            loss_sum[t] += output_loss(Q, n, lab, vec[0], vec[1], ones, output[k])
            correct[t] += count_correct(Q, n, lab, output[k])
            if Pout.shape[0] == N:
                HT = _rows(A, L - 1, layers[k, L - 1], n)
                for i in range(n):
                    for c in range(C):
                        Pout[start + i, c] = Q[c, i]
                    for j in range(layers[k, L - 1]):
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
                 dtype, moments=None, steps=None, outputs=None):
        describe(self, n_features, n_classes, hidden, activation, optimizer, hyper, steps,
                 outputs)
        self.layout = np.zeros((len(self.sizes), 2 * self.layers.shape[1] + 3), np.int64)
        for k, hidden_sizes in enumerate(self.sizes):
            off = _layout(self.n_features, hidden_sizes, self.n_classes)
            self.layout[k, :len(off)] = off
        sizes = [int(self.layout[k, 2 * d + 2]) for k, d in enumerate(self.depth)]
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
        """``(W1, b1, ..., W_out, b_out)`` of network ``k`` in ``buffer`` (W1 and b1 without
        padding)."""
        F, C, H = self.n_features, self.n_classes, self.sizes[k]
        off = self.layout[k]
        s = buffer[self.offset[k]:self.offset[k] + off[2 * len(H) + 2]]
        views = [s[:off[1]].reshape(F, off[0])[:, :H[0]], s[off[1]:off[1] + H[0]]]
        for ly, (n_in, n_out) in enumerate(zip(H, (*H[1:], C), strict=True)):
            views += [s[off[2 + 2 * ly]:off[3 + 2 * ly]].reshape(n_in, n_out),
                      s[off[3 + 2 * ly]:off[4 + 2 * ly]]]
        return views

    def _pack(self, buffer, k, theta):
        for packed, flat in zip(self._views(buffer, k), unpack(
                theta, self.n_features, self.sizes[k], self.n_classes), strict=True):
            packed[...] = flat

    def _flat(self, buffer, k):
        H = self.sizes[k]
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


def _split(ids, nets, threads):
    """``ids`` in at most ``threads`` parts of about equal work (parameter count), largest
    networks first onto the least loaded part."""
    parts = [[] for _ in range(max(1, min(threads, len(ids))))]
    load = [0] * len(parts)
    work = [int(nets.layout[k, 2 * d + 2]) for k, d in enumerate(nets.depth)]
    for k in sorted(ids, key=lambda k: -work[k]):
        t = load.index(min(load))
        parts[t].append(k)
        load[t] += work[k]
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


_compiled_blas: list | None = None


@contextmanager
def _serial_compiled_blas():
    """Run the body with the BLAS that compiled code calls (numba binds scipy's, through
    ``scipy.linalg.cython_blas``) on one thread: the engine's threads are its own (``_split``),
    and a second pool of spinning BLAS threads beside them, or beside NumPy's BLAS on the dense
    path, was measured here to cost up to 10x. Restored afterwards."""
    global _compiled_blas
    if _compiled_blas is None:
        import scipy.linalg.cython_blas  # noqa: F401 - loaded, so threadpoolctl sees it
        from threadpoolctl import ThreadpoolController

        _compiled_blas = [lib for lib in ThreadpoolController().lib_controllers
                          if os.path.basename(os.path.dirname(lib.filepath)) == "scipy.libs"]
    previous = [lib.num_threads for lib in _compiled_blas]
    for lib in _compiled_blas:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(_compiled_blas, previous, strict=True):
            lib.set_num_threads(n)


def train_group(inputs, y, order, batch_size, nets, active, threads=1, weights=None):
    """``_train_group`` with the compiled code's BLAS on one thread."""
    with _serial_compiled_blas():
        return _train_group(inputs, y, order, batch_size, nets, active, threads, weights)


def _train_group(inputs, y, order, batch_size, nets, active, threads=1, weights=None):
    """One epoch of the networks ``active`` (indices into ``nets``) over ``inputs[order]``;
    returns their mean minibatch losses, in the order of ``active``. ``weights`` (one per
    sample, default ones) weight each minibatch's loss as the reference's
    ``loss_and_gradient`` says."""
    sw = np.ones(len(y), nets.P.dtype) if weights is None else np.asarray(weights, nets.P.dtype)
    if inputs.path == "dense":
        return _train_dense(inputs.dense, y, sw, order, int(batch_size), nets, list(active))
    losses = np.zeros(len(nets))
    parts = _split(list(active), nets, threads)
    _run(train_networks, parts, *inputs.csr(), y, sw, np.ascontiguousarray(order, np.int64),
         int(batch_size), nets.n_features, nets.n_classes, nets.P, nets.M, nets.V, nets.G,
         nets.offset, nets.layout, nets.layers, nets.depth, nets.activation, nets.output,
         nets.optimizer, nets.hyper, nets.steps, losses)
    return losses[list(active)]


def _train_dense(X, y, sw, order, B, nets, active):
    """``train_group`` on the dense path: per minibatch and network, ``Z = X_b W1 + b1`` and
    ``dW1 = X_b^T dZ1`` by BLAS (``np.matmul``, with BLAS's threads: the engine itself never
    starts parallel numba code), the rest compiled (``dense_middle``, ``_step``). BLAS may sum
    in an order that depends on its thread count (numpy issue 25100), so this path promises
    agreement within rounding, not bitwise equality across thread counts."""
    F, C = nets.n_features, nets.n_classes
    H1, H = _widest(np.array(active, np.int64), nets.layers)
    Hp = -(-int(H1) // LANES) * LANES
    dtype = nets.P.dtype
    Z, D = np.zeros(B * Hp, dtype), np.zeros(B * Hp, dtype)
    A, DT = np.zeros((nets.layers.shape[1], H * B), dtype), np.zeros((2, H * B), dtype)
    Q, vec, ones = np.zeros((C, B), dtype), np.zeros((3, B), dtype), np.ones(B, dtype)
    coef, cf, bw = np.zeros(codes.N_COEF), np.zeros(codes.N_COEF, dtype), np.empty(B, dtype)
    order = np.ascontiguousarray(order, np.int64)
    sums = np.zeros(len(active))
    n_batches = -(-len(order) // B)
    for start in range(0, len(order), B):
        rows = order[start:start + B]
        n = len(rows)
        Xb, lab = X[rows], np.ascontiguousarray(y[rows])
        total = _batch_weights(sw, order, start, n, bw)
        if total == 0.0:
            continue
        for t, k in enumerate(active):
            off, o, L = nets.layout[k], int(nets.offset[k]), int(nets.depth[k])
            Hp, ob1, ow2 = (int(x) for x in off[:3])
            p, m, v, g = (a[o:o + off[2 * L + 2]] for a in (nets.P, nets.M, nets.V, nets.G))
            Zb = Z[:n * Hp].reshape(n, Hp)
            np.matmul(Xb, p[:ob1].reshape(F, Hp), out=Zb)
            Zb += p[ob1:ow2]
            sums[t] += dense_middle(p, g, off, nets.layers[k], L, C, n, int(nets.activation[k]),
                                    int(nets.output[k]), nets.hyper[k], Z, A, DT, Q, lab, ones,
                                    vec, D, bw, total)
            np.matmul(Xb.T, D[:n * Hp].reshape(n, Hp), out=g[:ob1].reshape(F, Hp))
            nets.steps[k] += 1
            _step(p, m, v, g, off, L, int(nets.optimizer[k]), nets.hyper[k],
                  int(nets.steps[k]), coef, cf, n, total)
    sklearn = nets.hyper[active, codes.SKLEARN] != 0.0
    return sums / np.where(sklearn, len(order), n_batches)


def evaluate_group(inputs, y, nets, active, threads=1):
    """``(losses, accuracies)`` of the networks ``active`` on ``(inputs, y)``, in that order."""
    with _serial_compiled_blas():
        return _evaluate(inputs, y, nets, active, threads)


def _evaluate(inputs, y, nets, active, threads=1, outputs=None):
    """``evaluate_group``, also writing one network's ``(H, P)`` into ``outputs``."""
    losses, accuracies = np.zeros(len(nets)), np.zeros(len(nets))
    Hout, Pout = outputs if outputs is not None else (np.zeros((0, 1), nets.P.dtype),) * 2
    parts = _split(list(active), nets, threads)
    _run(evaluate_networks, parts, *inputs.csr(), y, nets.n_features, nets.n_classes, nets.P,
         nets.offset, nets.layout, nets.layers, nets.depth, nets.activation, nets.output, losses,
         accuracies, Hout, Pout)
    return losses[list(active)], accuracies[list(active)]


def _single(X, theta, hidden, n_classes, activation, output):
    X = X if isinstance(X, Inputs) else prepare(X, theta.dtype)
    nets = Networks(X.shape[1], n_classes, [hidden], [activation], [0],
                    np.zeros((1, codes.N_HYPER)), [theta], theta.dtype, outputs=[output])
    return X, nets


def forward(X, theta, hidden, n_classes, activation, output=codes.SOFTMAX):
    """Last hidden activations ``H`` and output probabilities ``P`` of one network (``hidden``:
    its hidden sizes, or one int; ``output``: its output-layer code) on the rows of ``X`` (an
    array, a ``scipy.sparse`` matrix or ``Inputs``)."""
    X, nets = _single(X, theta, hidden, n_classes, activation, output)
    Hout = np.zeros((X.shape[0], nets.sizes[0][-1]), theta.dtype)
    Pout = np.zeros((X.shape[0], n_classes), theta.dtype)
    with _serial_compiled_blas():
        _evaluate(X, np.zeros(X.shape[0], np.int64), nets, [0], outputs=(Hout, Pout))
    return Hout, Pout


def evaluate(X, y, theta, hidden, n_classes, activation, output=codes.SOFTMAX):
    """``(mean cross-entropy, accuracy)`` of one network on ``(X, y)``."""
    X, nets = _single(X, theta, hidden, n_classes, activation, output)
    if X.shape[0] == 0:
        return float("nan"), float("nan")
    losses, accuracies = evaluate_group(X, np.ascontiguousarray(y, np.int64), nets, [0])
    return float(losses[0]), float(accuracies[0])


# ----------------------------------------------------------------------------- compile
_WARM: set = set()
log = logging.getLogger("ffnn.kernels")


_TRAINERS = {"sparse": "train_networks", "dense": "dense_middle"}


def _cached(dtype, path) -> bool:
    """Whether numba's on-disk cache holds ``path``'s training kernel for ``dtype`` (best
    effort)."""
    try:
        index = globals()[_TRAINERS[path]]._cache._cache_file._load_index()
        return any(str(arg).startswith(f"array({dtype}") for key in index for arg in key[0])
    except Exception:  # noqa: BLE001 - a private numba API: when unsure, say we compile
        return False


def warm_up(dtype: str, path: str | None = None) -> None:
    """Compile (or load from numba's cache) the engine for ``dtype`` on a tiny problem: the
    first-layer ``path`` training takes (``"sparse"`` or ``"dense"``; None: both) and the
    evaluation pass; says so once on the ``ffnn`` logger (WARNING) when it really compiles.
    Only what is asked for is compiled. Call before timing anything and before starting worker
    processes (several processes writing numba's cache at once has crashed numba)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    paths = [p for p in (INPUT_PATHS[1:] if path in (None, "auto") else (path,))
             if (dtype, p) not in _WARM]
    if not paths:
        return
    if not JIT_DISABLED and not all(_cached(dtype, p) for p in paths):
        log.warning("ffnn: compiling the numba kernels for %s on first use (once; cached in "
                    "numba's cache afterwards)...", dtype)
    X = np.array([[0.0, 0.5, 0.0], [1.0, 0.0, 0.25], [0.0, 0.0, 0.75]], dtype)
    y = np.array([0, 1, 1], np.int64)
    theta = np.full(n_params(3, (2, 2), 2), 0.1, dtype)
    nets = Networks(3, 2, [(2, 2)], [codes.ELU], [codes.ADAM], np.full((1, codes.N_HYPER), 0.1),
                    [theta], dtype, outputs=[codes.LOGISTIC])
    for p in paths:
        inputs = prepare(X, dtype, p)
        train_group(inputs, y, np.arange(3), 2, nets, [0])
        _WARM.add((dtype, p))
    evaluate_group(inputs, y, nets, [0])
    forward(inputs, theta, (2, 2), 2, codes.ELU)
