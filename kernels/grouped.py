"""Grouped kernels: train K networks together on the same minibatches, one compiled call an epoch.

The K networks of a group see the same minibatches, so each minibatch is gathered once and the
first layer of every network is computed in one wide product: the first-layer weights of the
networks sit side by side in one matrix of shape ``(n_features + 1, width)`` (the last row holds
the biases). Each network keeps its own second layer, activation, optimizer, hyperparameters,
``l2`` and step counter, selected by run-time codes: one compiled specialisation per dtype. The
math is the reference's (``kernels/reference.py``) up to rounding.

Sparse products, not BLAS
-------------------------
MNIST images are ~81% zeros, so the first-layer products ``X W1`` and ``X^T dZ1`` run over each
row's nonzeros only: the training images are kept in CSR form (built once per group) and each
minibatch is gathered into a contiguous buffer (with prefetching: the epoch's order is known).
The row products are the numba backend's register-blocked primitives ``gather_all`` and
``scatter_all`` (up to 128 columns held in vector registers per pass over a row's nonzeros), so a
wide group reads each row's indices once for all its networks. Dense inputs work too, without the
sparsity gain. No BLAS is called, so numba's threads never compete with BLAS threads.

Threads: lanes, one call per epoch each
---------------------------------------
Starting a numba parallel region costs ~35-50 us here (OpenMP threads sleep between regions), too
much to pay per minibatch. So a group is split into *lanes*, one per thread: each lane owns a
contiguous run of whole networks and their columns (its own slab ``W1[lane]``, padded to a
multiple of 16 columns) and runs the whole epoch for them on its own (``train_lane``), gathering
the minibatches itself. The lane kernels are serial and release the GIL; ``train_epoch`` runs
them on plain Python threads. No ``parallel=True``: compiling is quicker, and numba's threading
layer (whose default aborts when several threads call parallel code, e.g. under Dask) is never
used. Nothing is shared between lanes, so there are no races and no reductions across threads:
the same inputs and thread count give bitwise identical results, in any process. (Across thread
counts, or once a stopped network is dropped and the group repacked, a lane's width changes and
``gather_all`` then sums a row's nonzeros in a different number of interleaved chains: results
agree to rounding, not bitwise.)

Layout (``GroupLayout``):
    W1: (n_lanes, n_features + 1, S)   lane l's networks side by side from column 0 (network k at
                                       ``col0[k]``), row F the biases, S the widest lane's width
    W2: (sum(hidden) + K, n_classes)   network k's hidden-to-output weights in rows
                                       ``row0[k] .. row0[k] + hidden[k]``, then one bias row each
and the optimizer states ``m``, ``v`` alike. Padding columns stay zero and never change.
"""

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from . import codes
from ._numba_flags import LANES
from .layout import n_params, unpack
from .numba_backend import gather_all, prefetch, scatter_all

FASTMATH = {"contract"}  # fused multiply-add only: NaN/inf semantics stay intact
# error_model="numpy": a division by zero gives inf/nan as in NumPy; the default ("python")
# branches to raise ZeroDivisionError, and that branch stops LLVM from vectorising the loop.
JIT = {"fastmath": FASTMATH, "cache": True, "error_model": "numpy"}
JIT_REASSOC = dict(JIT, fastmath={"contract", "reassoc"})
U = np.uintp  # unsigned indices: no negative-index wraparound code in the inner loops

# The unified optimizer step: every rule of the reference is, with per-network coefficients c,
#   g' = g + l2 w (weights only);  m = c_m1 m + c_m2 g';  v = c_v1 v + c_v2 g'^2
#   w -= c_lr (c_g g' + c_m m) / (sqrt(v) / c_div + c_eps)
C_L2, C_M1, C_M2, C_V1, C_V2, C_LR, C_G, C_M, C_DIV, C_EPS = range(10)
N_COEF = 10
ONE, ZERO, SLOPE, ALPHA = range(4)  # positions in the constants array (``_constants``)


if not numba.config.DISABLE_JIT:
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def _as_float(typingctx, bits):
        """Reinterpret the bits of an int32 as a float32 (an LLVM bitcast, so it vectorises)."""
        sig = types.float32(types.int32)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())

        return sig, codegen


def fast_exp(x):
    """``exp(x)``: a vectorisable polynomial for float32 (~1 ulp, Cephes' ``expf``), libm for
    float64 (and everywhere when numba's JIT is off)."""
    return math.exp(x)


def fast_expm1(x):
    """``expm1(x)``, precise near 0; polynomial for float32 as ``fast_exp``."""
    return math.expm1(x)


def fast_tanh(x):
    """``tanh(x)``; for float32 ``expm1(2x) / (expm1(2x) + 2)`` on the clamped input."""
    return math.tanh(x)


if not numba.config.DISABLE_JIT:
    from numba.core import types as _types
    from numba.extending import overload

    @njit(**JIT)
    def _expf_parts(x):
        """``(2**n, expm1(r))`` with ``x = n ln 2 + r``, ``|r| <= ln(2) / 2`` (float32)."""
        x = min(max(x, np.float32(-87.0)), np.float32(88.0))
        n = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))
        r = x - n * np.float32(0.693359375)
        r = r - n * np.float32(-2.12194440e-4)
        p = np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        em1 = p * (r * r) + r
        scale = _as_float(np.int32((np.int64(n) + 127) << 23))
        return scale, em1

    _OVERLOAD_JIT = {"fastmath": FASTMATH, "error_model": "numpy"}

    def _is_float32(x):
        return isinstance(x, _types.Float) and x.bitwidth == 32

    @overload(fast_exp, jit_options=_OVERLOAD_JIT)
    def _fast_exp(x):
        if _is_float32(x):
            def impl(x):
                scale, em1 = _expf_parts(x)
                return scale * em1 + scale
            return impl
        return lambda x: math.exp(x)

    @overload(fast_expm1, jit_options=_OVERLOAD_JIT)
    def _fast_expm1(x):
        if _is_float32(x):
            def impl(x):
                scale, em1 = _expf_parts(x)
                return scale * em1 + (scale - np.float32(1.0))
            return impl
        return lambda x: math.expm1(x)

    @overload(fast_tanh, jit_options=_OVERLOAD_JIT)
    def _fast_tanh(x):
        if _is_float32(x):
            def impl(x):
                scale, em1 = _expf_parts(np.float32(2.0) * min(max(x, np.float32(-9.0)),
                                                                np.float32(9.0)))
                t = scale * em1 + (scale - np.float32(1.0))
                return t / (t + np.float32(2.0))
            return impl
        return lambda x: math.tanh(x)


@njit(**JIT)
def _constants(like):
    """``[1, 0, leaky_relu slope, elu alpha]`` in the dtype of ``like`` (numba would promote a
    bare float literal mixed with float32 values to float64)."""
    cst = np.empty(4, like.dtype)
    cst[ONE] = 1.0
    cst[ZERO] = 0.0
    cst[SLOPE] = codes.LEAKY_RELU_SLOPE
    cst[ALPHA] = codes.ELU_ALPHA
    return cst


@njit(**JIT)
def _gather(indptr, indices, values, order, start, n, bi, bv, bp):
    """Copy the CSR rows ``order[start:start + n]`` into the contiguous buffers ``bi``, ``bv``
    (row ``i`` at ``bp[i]:bp[i + 1]``), prefetching the rows a few samples ahead."""
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
        bi[k:k + m] = indices[a:a + m]
        bv[k:k + m] = values[a:a + m]
        k += m
        bp[i + 1] = k


@njit(**JIT)
def _forward_first(bi, bv, bp, n, W1, width, Z):
    """``Z[i, :width] = x_i W1[:F, :width] + W1[F, :width]`` for the ``n`` gathered rows
    (``gather_all``: up to 128 columns in registers per pass over a row's nonzeros)."""
    stride = W1.shape[1]
    Wf = W1.ravel()
    Zf = Z.ravel()
    bias = (W1.shape[0] - 1) * stride
    for i in range(n):
        zo = i * stride
        for j in range(width):
            Zf[zo + j] = Wf[bias + j]
        gather_all(Zf, zo, bv, bp[i], bi, bp[i], bp[i + 1] - bp[i], Wf, stride, 0,
                   width // LANES)


@njit(**JIT)
def _backward_first(bi, bv, bp, n, dZ, G1, width, zero):
    """``G1[:F, :width] = X^T dZ[:, :width]`` and ``G1[F, :width] = sum_i dZ[i, :width]``
    (``scatter_all``: each row of ``dZ`` in registers while its nonzeros are added in)."""
    stride = G1.shape[1]
    Gf = G1.ravel()
    Df = dZ.ravel()
    F = G1.shape[0] - 1
    for p in range(F + 1):
        for j in range(width):
            Gf[p * stride + j] = zero
    bias = F * stride
    for i in range(n):
        do = i * stride
        scatter_all(Gf, stride, 0, Df, do, bv, bp[i], bi, bp[i], bp[i + 1] - bp[i], width // LANES)
        for j in range(width):
            Gf[bias + j] += Df[do + j]


@njit(**JIT)
def _activate(h, n, code, cst):
    """The reference's activation, in place on ``h[:n]`` (one hidden unit over a minibatch)."""
    zero = cst[ZERO]
    if code == codes.SIGMOID:
        for i in range(n):
            h[i] = cst[ONE] / (cst[ONE] + fast_exp(-h[i]))
    elif code == codes.TANH:
        for i in range(n):
            h[i] = fast_tanh(h[i])
    elif code == codes.RELU:
        for i in range(n):
            h[i] = max(h[i], zero)
    elif code == codes.LEAKY_RELU:
        for i in range(n):
            h[i] = h[i] if h[i] > zero else cst[SLOPE] * h[i]
    else:
        for i in range(n):
            h[i] = h[i] if h[i] > zero else cst[ALPHA] * fast_expm1(min(h[i], zero))


@njit(**JIT)
def _times_derivative(d, h, n, code, cst):
    """``d[:n] *= f'(z)``, computed from the activation's output ``h`` as in the reference."""
    one, zero = cst[ONE], cst[ZERO]
    if code == codes.SIGMOID:
        for i in range(n):
            d[i] *= h[i] * (one - h[i])
    elif code == codes.TANH:
        for i in range(n):
            d[i] *= one - h[i] * h[i]
    elif code == codes.RELU:
        for i in range(n):
            d[i] = d[i] if h[i] > zero else zero
    elif code == codes.LEAKY_RELU:
        for i in range(n):
            d[i] = d[i] if h[i] > zero else d[i] * cst[SLOPE]
    else:
        for i in range(n):
            d[i] = d[i] if h[i] > zero else d[i] * (h[i] + cst[ALPHA])


@njit(**JIT_REASSOC)
def _dot(a, b, n):
    """``sum(a[:n] * b[:n])`` (reassociated so it vectorises)."""
    total = a[0] - a[0]
    for i in range(n):
        total += a[i] * b[i]
    return total


@njit(**JIT)
def _logits(Z, n, W2, c0, h, r0, bias_row, act, cst, HT, Q):
    """Activations ``HT[j, :n]`` of the model's hidden units ``Z[:n, c0 + j]`` (transposed) and
    its logits ``Q[c, :n]`` (weights in rows ``r0 .. r0 + h`` of ``W2``, biases in
    ``bias_row``)."""
    for j in range(h):
        hj = HT[j]
        for i in range(n):
            hj[i] = Z[i, c0 + j]
        _activate(hj, n, act, cst)
    for c in range(W2.shape[1]):
        q = Q[c]
        for i in range(n):
            q[i] = cst[ZERO]
        for j in range(h):
            w = W2[r0 + j, c]
            hj = HT[j]
            for i in range(n):
                q[i] += hj[i] * w
        b = W2[bias_row, c]
        for i in range(n):
            q[i] += b


@njit(**JIT)
def _second_layer(Z, dZ, y, order, start, n, W2, G2, c0, h, r0, bias_row, act, cst, HT, Q, v):
    """Forward and backward pass of one model's second layer over a gathered minibatch.

    ``Z[:n, c0:c0 + h]`` holds the model's first-layer pre-activations; writes ``dZ`` there
    (the gradient at those pre-activations) and adds the second layer's gradient into ``G2``.
    ``HT``, ``Q`` (n_classes x B) and ``v`` (4 x B) are scratch. Returns the minibatch's mean
    cross-entropy."""
    C = W2.shape[1]
    one = cst[ONE]
    _logits(Z, n, W2, c0, h, r0, bias_row, act, cst, HT, Q)
    top, total, picked = v[0], v[1], v[2]
    for i in range(n):
        top[i] = Q[0, i]
        total[i] = cst[ZERO]
    for c in range(1, C):
        for i in range(n):
            top[i] = max(top[i], Q[c, i])
    for i in range(n):
        picked[i] = Q[y[order[start + i]], i] - top[i]
    for c in range(C):
        q = Q[c]
        for i in range(n):
            q[i] = fast_exp(q[i] - top[i])
            total[i] += q[i]
    loss = 0.0
    for i in range(n):
        loss += math.log(total[i]) - picked[i]
    size = v[3]
    size[0] = n  # the batch size in the training dtype (the reference divides by it)
    for c in range(C):
        q = Q[c]
        for i in range(n):
            q[i] = q[i] / total[i]
    for i in range(n):
        Q[y[order[start + i]], i] -= one
    for c in range(C):
        q = Q[c]
        for i in range(n):
            q[i] = q[i] / size[0]
        G2[bias_row, c] += _sum(q, n)
        for j in range(h):
            G2[r0 + j, c] += _dot(HT[j], q, n)
    back = v[0]
    for j in range(h):
        for i in range(n):
            back[i] = cst[ZERO]
        for c in range(C):
            w = W2[r0 + j, c]
            q = Q[c]
            for i in range(n):
                back[i] += q[i] * w
        _times_derivative(back, HT[j], n, act, cst)
        for i in range(n):
            dZ[i, c0 + j] = back[i]
    return loss / n


@njit(**JIT_REASSOC)
def _sum(a, n):
    """``sum(a[:n])`` (reassociated so it vectorises)."""
    total = a[0] - a[0]
    for i in range(n):
        total += a[i]
    return total


@njit(**JIT)
def _coefficients(optimizer, hyper, step, out):
    """The unified-update coefficients (``C_*``) of one model's optimizer at 1-based ``step``."""
    lr = hyper[codes.LR]
    out[:] = 0.0
    out[C_L2] = hyper[codes.L2]
    out[C_LR] = lr
    out[C_DIV] = 1.0
    out[C_EPS] = 1.0
    if optimizer == codes.GD:
        out[C_G] = 1.0
    elif optimizer == codes.MOMENTUM:
        out[C_M1] = hyper[codes.MOMENTUM_COEF]
        out[C_M2] = 1.0
        out[C_M] = 1.0
    elif optimizer == codes.NESTEROV:
        mu = hyper[codes.MOMENTUM_COEF]
        out[C_M1] = mu
        out[C_M2] = 1.0
        out[C_G] = 1.0
        out[C_M] = mu
    elif optimizer == codes.RMSPROP:
        alpha = hyper[codes.RMSPROP_ALPHA]
        out[C_V1] = alpha
        out[C_V2] = 1.0 - alpha
        out[C_G] = 1.0
        out[C_EPS] = hyper[codes.EPS]
    else:  # adam
        b1, b2 = hyper[codes.BETA1], hyper[codes.BETA2]
        out[C_M1] = b1
        out[C_M2] = 1.0 - b1
        out[C_V1] = b2
        out[C_V2] = 1.0 - b2
        out[C_LR] = lr / (1.0 - math.pow(b1, step))
        out[C_M] = 1.0
        out[C_DIV] = math.sqrt(1.0 - math.pow(b2, step))
        out[C_EPS] = hyper[codes.EPS]


@njit(**JIT)
def _update_first(W1, M1, V1, G1, width, cc):
    """The unified step on columns ``:width`` of every row of a lane's ``W1``, per-column
    coefficients ``cc`` (``N_COEF`` x width); ``l2`` on the weight rows only.

    Done in short passes over each row, each touching few arrays: LLVM vectorises a loop only
    when it can check all its pointers for overlap, and gives up beyond about eight of them."""
    l2, m1, m2, v1, v2 = cc[C_L2], cc[C_M1], cc[C_M2], cc[C_V1], cc[C_V2]
    lr, cg, cm, div, eps = cc[C_LR], cc[C_G], cc[C_M], cc[C_DIV], cc[C_EPS]
    n_rows = W1.shape[0]
    for p in range(n_rows):
        w, m, v, g = W1[p], M1[p], V1[p], G1[p]
        if p < n_rows - 1:
            for j in range(U(width)):
                g[j] += l2[j] * w[j]
        for j in range(U(width)):
            m[j] = m1[j] * m[j] + m2[j] * g[j]
        for j in range(U(width)):
            v[j] = v1[j] * v[j] + v2[j] * g[j] * g[j]
        for j in range(U(width)):
            g[j] = lr[j] * (cg[j] * g[j] + cm[j] * m[j])
        for j in range(U(width)):
            w[j] = w[j] - g[j] / (math.sqrt(v[j]) / div[j] + eps[j])


@njit(**JIT)
def _update_flat(w, m, v, g, l2, cf, zero):
    """The unified step on the flat arrays ``w`` (one model's second-layer weights or biases)
    with that model's coefficients ``cf``; zeroes ``g``."""
    c_m1, c_m2, c_v1, c_v2 = cf[C_M1], cf[C_M2], cf[C_V1], cf[C_V2]
    c_lr, c_g, c_m, c_div, c_eps = cf[C_LR], cf[C_G], cf[C_M], cf[C_DIV], cf[C_EPS]
    for k in range(U(w.shape[0])):
        gk = g[k] + l2 * w[k]
        mk = c_m1 * m[k] + c_m2 * gk
        vk = c_v1 * v[k] + c_v2 * gk * gk
        m[k] = mk
        v[k] = vk
        w[k] = w[k] - c_lr * (c_g * gk + c_m * mk) / (math.sqrt(vk) / c_div + c_eps)
        g[k] = zero


@njit(**JIT)
def _update_second(W2, M2, V2, G2, first, last, l2, cf, zero):
    """``_update_flat`` on rows ``first:last`` of ``W2`` (contiguous)."""
    w, m, v, g = W2[first:last].ravel(), M2[first:last].ravel(), V2[first:last].ravel(), \
        G2[first:last].ravel()
    _update_flat(w, m, v, g, l2, cf, zero)


@njit(**JIT)
def _max_row_nnz(indptr):
    top = 0
    for r in range(indptr.shape[0] - 1):
        top = max(top, indptr[r + 1] - indptr[r])
    return top


@njit(nogil=True, **JIT)
def train_lane(lane, indptr, indices, values, y, order, batch_size, W1, M1, V1, W2, M2, V2, G2,
               col0, row0, hidden, lane_width, lane_k0, lane_k1, activation, optimizer, hyper,
               steps, losses):
    """One epoch of lane ``lane``'s networks over ``X[order]`` (``X`` in CSR form: ``indptr``,
    ``indices``, ``values``) in minibatches of ``batch_size``, gathered once per minibatch for
    all of them; parameters and optimizer states are updated in place.

    Touches only the lane's slab ``W1[lane]`` (and ``M1``, ``V1``), its networks' rows of
    ``W2``/``M2``/``V2``/``G2`` (``G2`` zero on entry and exit) and their entries of ``steps``
    (the 1-based optimizer step counters, one more per minibatch) and ``losses`` (the mean
    minibatch loss), so lanes can run concurrently: numba releases the GIL here."""
    dtype = W1.dtype
    cst = _constants(W1)
    zero = cst[ZERO]
    N = order.shape[0]
    B = batch_size
    S = W1.shape[2]
    n_classes = W2.shape[1]
    n_models = col0.shape[0]
    bias0 = W2.shape[0] - n_models
    k0, k1 = lane_k0[lane], lane_k1[lane]
    width = lane_width[lane]
    W1l, M1l, V1l = W1[lane], M1[lane], V1[lane]
    cap = B * _max_row_nnz(indptr)
    bi = np.empty(cap, indices.dtype)
    bv = np.empty(cap, dtype)
    bp = np.zeros(B + 1, np.int64)
    Z = np.zeros((B, S), dtype)
    dZ = np.zeros((B, S), dtype)
    G1 = np.zeros_like(W1l)
    HT = np.empty((hidden[k0:k1].max(), B), dtype)
    Q = np.empty((n_classes, B), dtype)
    vec = np.empty((4, B), dtype)
    coef = np.zeros(N_COEF)
    cf = np.zeros(N_COEF, dtype)
    cc = np.zeros((N_COEF, S), dtype)
    cc[C_DIV, :] = cst[ONE]
    cc[C_EPS, :] = cst[ONE]
    sums = np.zeros(n_models)
    n_batches = (N + B - 1) // B
    for batch in range(n_batches):
        start = batch * B
        n = min(B, N - start)
        _gather(indptr, indices, values, order, start, n, bi, bv, bp)
        _forward_first(bi, bv, bp, n, W1l, width, Z)
        for k in range(k0, k1):
            sums[k] += _second_layer(Z, dZ, y, order, start, n, W2, G2, col0[k], hidden[k],
                                     row0[k], bias0 + k, activation[k], cst, HT, Q, vec)
        _backward_first(bi, bv, bp, n, dZ, G1, width, zero)
        for k in range(k0, k1):
            steps[k] += 1
            _coefficients(optimizer[k], hyper[k], steps[k], coef)
            for c in range(N_COEF):
                for j in range(col0[k], col0[k] + hidden[k]):
                    cc[c, j] = coef[c]
        _update_first(W1l, M1l, V1l, G1, width, cc)
        for k in range(k0, k1):
            _coefficients(optimizer[k], hyper[k], steps[k], coef)
            for c in range(N_COEF):
                cf[c] = coef[c]
            _update_second(W2, M2, V2, G2, row0[k], row0[k] + hidden[k], cf[C_L2], cf, zero)
            _update_second(W2, M2, V2, G2, bias0 + k, bias0 + k + 1, zero, cf, zero)
    for k in range(k0, k1):
        losses[k] = sums[k] / n_batches


@njit(nogil=True, **JIT)
def evaluate_lane(lane, indptr, indices, values, y, chunk, W1, W2, col0, row0, hidden,
                  lane_width, lane_k0, lane_k1, activation, losses, accuracies):
    """Mean cross-entropy ``losses[k]`` and accuracy ``accuracies[k]`` of lane ``lane``'s networks
    on the CSR samples, processed ``chunk`` samples at a time."""
    dtype = W1.dtype
    cst = _constants(W1)
    N = indptr.shape[0] - 1
    S = W1.shape[2]
    n_classes = W2.shape[1]
    bias0 = W2.shape[0] - col0.shape[0]
    k0, k1 = lane_k0[lane], lane_k1[lane]
    order = np.arange(N)
    cap = chunk * _max_row_nnz(indptr)
    bi = np.empty(cap, indices.dtype)
    bv = np.empty(cap, dtype)
    bp = np.zeros(chunk + 1, np.int64)
    Z = np.zeros((chunk, S), dtype)
    HT = np.empty((hidden[k0:k1].max(), chunk), dtype)
    q = np.empty((n_classes, chunk), dtype)
    loss_sum = np.zeros(k1 - k0)
    correct = np.zeros(k1 - k0, np.int64)
    for start in range(0, N, chunk):
        n = min(chunk, N - start)
        _gather(indptr, indices, values, order, start, n, bi, bv, bp)
        _forward_first(bi, bv, bp, n, W1[lane], lane_width[lane], Z)
        for k in range(k0, k1):
            _logits(Z, n, W2, col0[k], hidden[k], row0[k], bias0 + k, activation[k], cst, HT, q)
            for i in range(n):
                label = y[start + i]
                top = q[0, i]
                best = 0
                for c in range(1, n_classes):
                    if q[c, i] > top:
                        top = q[c, i]
                        best = c
                total = cst[ZERO]
                for c in range(n_classes):
                    total += fast_exp(q[c, i] - top)
                loss_sum[k - k0] += math.log(total) - (q[label, i] - top)
                correct[k - k0] += best == label
    for k in range(k0, k1):
        losses[k] = loss_sum[k - k0] / N
        accuracies[k] = correct[k - k0] / N


_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)


def _lane_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool with at least ``workers`` threads, made in this process (a pool inherited
    through ``fork`` has no threads and would never run its tasks)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid() or _pool[1] < workers:
        _pool = (os.getpid(), workers,
                 ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ffnn-lane"))
    return _pool[2]


def _run_lanes(kernel, n_lanes, *args):
    """``kernel(lane, *args)`` for every lane: lane 0 in the calling thread, the others on a
    thread pool (the kernels release the GIL)."""
    if n_lanes == 1:
        kernel(0, *args)
        return
    pool = _lane_pool(n_lanes - 1)
    futures = [pool.submit(kernel, lane, *args) for lane in range(1, n_lanes)]
    kernel(0, *args)
    for future in futures:
        future.result()


def train_epoch(indptr, indices, values, y, order, batch_size, W1, M1, V1, W2, M2, V2, col0,
                row0, hidden, lane_width, lane_k0, lane_k1, activation, optimizer, hyper, steps,
                losses):
    """One epoch of every network of the group (``train_lane`` for each lane, one thread per
    lane); ``W1.shape[0]`` is the number of lanes."""
    _run_lanes(train_lane, W1.shape[0], indptr, indices, values, y, order, batch_size, W1, M1,
               V1, W2, M2, V2, np.zeros_like(W2), col0, row0, hidden, lane_width, lane_k0,
               lane_k1, activation, optimizer, hyper, steps, losses)


def evaluate(indptr, indices, values, y, chunk, W1, W2, col0, row0, hidden, lane_width, lane_k0,
             lane_k1, activation, losses, accuracies):
    """Mean cross-entropy and accuracy of every network of the group (``evaluate_lane`` for each
    lane, one thread per lane)."""
    _run_lanes(evaluate_lane, W1.shape[0], indptr, indices, values, y, chunk, W1, W2, col0, row0,
               hidden, lane_width, lane_k0, lane_k1, activation, losses, accuracies)


def to_csr(X: np.ndarray):
    """``(indptr, indices, values)`` of the nonzero entries of ``X``, row by row."""
    X = np.ascontiguousarray(X)
    nonzero = X != 0
    indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
    np.cumsum(nonzero.sum(axis=1), out=indptr[1:])
    rows, cols = np.nonzero(nonzero)
    return indptr, cols.astype(np.int32), np.ascontiguousarray(X[rows, cols])


class GroupLayout:
    """Where each model of a group lives in the packed arrays, and which lane (thread) runs it.

    Models are split into ``n_lanes`` contiguous runs of roughly equal total hidden width. Lane
    ``l`` owns the slab ``W1[l]`` of shape ``(n_features + 1, S)``, its models side by side from
    column 0 (model ``k`` at ``col0[k]``), its used width ``lane_width[l]`` padded to a multiple
    of ``LANES`` (16); ``S`` is the widest lane's width. ``W2`` stacks every model's
    hidden-to-output weights (model ``k`` in rows ``row0[k] .. row0[k] + hidden[k]``) and then
    one bias row per model.
    """

    def __init__(self, hidden_sizes, n_features: int, n_classes: int, n_lanes: int):
        hidden = np.asarray(hidden_sizes, dtype=np.int64)
        if hidden.ndim != 1 or len(hidden) == 0 or (hidden < 1).any():
            raise ValueError(f"hidden_sizes: expected positive sizes, got {hidden_sizes!r}")
        self.n_features, self.n_classes = n_features, n_classes
        self.hidden = hidden
        K = len(hidden)
        n_lanes = max(1, min(n_lanes, K))
        ends = np.cumsum(hidden)
        cuts = [0]
        for lane in range(1, n_lanes):
            k = int(np.argmin(np.abs(ends - ends[-1] * lane / n_lanes))) + 1
            cuts.append(min(max(k, cuts[-1] + 1), K - (n_lanes - lane)))
        cuts.append(K)
        self.lane_k0 = np.array(cuts[:-1], dtype=np.int64)
        self.lane_k1 = np.array(cuts[1:], dtype=np.int64)
        self.lane_of = np.zeros(K, dtype=np.int64)
        self.col0 = np.zeros(K, dtype=np.int64)
        self.row0 = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        widths = []
        for lane, (k0, k1) in enumerate(zip(self.lane_k0, self.lane_k1, strict=True)):
            column = 0
            for k in range(k0, k1):
                self.lane_of[k], self.col0[k] = lane, column
                column += int(hidden[k])
            widths.append(-(-column // LANES) * LANES)
        self.lane_width = np.array(widths, dtype=np.int64)
        self.slab = int(self.lane_width.max())
        self.n_rows2 = int(ends[-1]) + K

    @property
    def n_models(self) -> int:
        return len(self.hidden)

    @property
    def n_lanes(self) -> int:
        return len(self.lane_width)

    def lanes(self):
        """The layout arguments of the kernels: ``(col0, row0, hidden, lane_width, lane_k0,
        lane_k1)``."""
        return self.col0, self.row0, self.hidden, self.lane_width, self.lane_k0, self.lane_k1

    def pack(self, thetas, dtype) -> tuple[np.ndarray, np.ndarray]:
        """``(W1, W2)`` packed from the models' flat vectors (parameters or optimizer states)."""
        F, C = self.n_features, self.n_classes
        W1 = np.zeros((self.n_lanes, F + 1, self.slab), dtype=dtype)
        W2 = np.zeros((self.n_rows2, C), dtype=dtype)
        bias0 = self.n_rows2 - self.n_models
        for k, theta in enumerate(thetas):
            h, lane, c0, r0 = (int(self.hidden[k]), self.lane_of[k], self.col0[k], self.row0[k])
            w1, b1, w2, b2 = unpack(theta, F, h, C)
            W1[lane, :F, c0:c0 + h] = w1
            W1[lane, F, c0:c0 + h] = b1
            W2[r0:r0 + h] = w2
            W2[bias0 + k] = b2
        return W1, W2

    def unpack(self, W1: np.ndarray, W2: np.ndarray, k: int) -> np.ndarray:
        """Model ``k``'s flat vector (a new array) from packed ``(W1, W2)``."""
        F, C = self.n_features, self.n_classes
        h, lane, c0, r0 = (int(self.hidden[k]), self.lane_of[k], self.col0[k], self.row0[k])
        theta = np.empty(n_params(F, h, C), dtype=W1.dtype)
        w1, b1, w2, b2 = unpack(theta, F, h, C)
        w1[...] = W1[lane, :F, c0:c0 + h]
        b1[...] = W1[lane, F, c0:c0 + h]
        w2[...] = W2[r0:r0 + h]
        b2[...] = W2[self.n_rows2 - self.n_models + k]
        return theta


_WARM = set()


def warm_up(dtype: str) -> None:
    """Compile (or load from numba's cache) the kernels for ``dtype`` on a tiny problem. Call
    before timing anything and before starting worker processes."""
    if dtype in _WARM:
        return
    rng = np.random.default_rng(0)
    X = (rng.random((6, 5)) * (rng.random((6, 5)) > 0.5)).astype(dtype)
    y = np.array([0, 1, 2, 0, 1, 2], dtype=np.int64)
    layout = GroupLayout([2, 3], 5, 3, 1)
    thetas = [np.full(n_params(5, h, 3), 0.1, dtype=dtype) for h in layout.hidden]
    W1, W2 = layout.pack(thetas, dtype)
    states = [np.zeros_like(W1), np.zeros_like(W1), np.zeros_like(W2), np.zeros_like(W2)]
    order = np.arange(6, dtype=np.int64)
    csr = to_csr(X)
    codes_k = np.zeros(2, dtype=np.int64)
    train_epoch(*csr, y, order, 4, W1, states[0], states[1], W2, states[2], states[3],
                *layout.lanes(), codes_k, codes_k, np.zeros((2, codes.N_HYPER)),
                np.zeros(2, dtype=np.int64), np.zeros(2))
    evaluate(*csr, y, 4, W1, W2, *layout.lanes(), codes_k, np.zeros(2), np.zeros(2))
    _WARM.add(dtype)
