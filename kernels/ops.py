"""The engine's compiled math, written once: exp, expm1 and tanh; the activations and their
derivatives; the output layers (softmax with cross-entropy, logistic with binary cross-entropy)
and their accuracy counts; dot products; the optimizer update. The math is the reference's
(``reference.py``); this module is how it is computed fast.

``ACTIVATIONS`` and ``DERIVATIVES`` map each activation name to its scalar function (after
scikit-learn's registries of the same names); derivatives take the activation's *output*
``h = f(z)``. ``activate`` and ``times_derivative`` apply them over a vector, selected by the
run-time code of ``codes.py``.

Every function is compiled with the options of ``flags.py`` (no fastmath), so the rounding is
the source's. ``exp_`` and friends have NumPy twins, used when ``NUMBA_DISABLE_JIT=1``; compiled
code uses the ``@overload`` below them: a Cody-Waite reduction ``x = n ln 2 + r``,
``|r| <= ln(2)/2``, a polynomial for ``expm1(r)`` (Cephes' ``expf`` for float32, Taylor to
``r^13`` for float64) and ``2**n`` from its bits. They vectorise; numba's ``math.exp`` is a
scalar libm call.
"""

import math

import numpy as np
from numba import types
from numba.extending import overload

from . import codes
from .flags import OVERLOAD_OPTIONS, jit
from .intrinsics import fma, pow2, typed

_EXP_LIMITS = {np.dtype(np.float32): (-87.0, 88.0), np.dtype(np.float64): (-708.0, 709.0)}
TANH_CLAMP = 20.0  # tanh(20) rounds to 1 in float64 and float32
EPS32, EPS64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)


def exp_(x):
    """``exp(x)``, the argument clamped to the normal range (no denormals, no inf); NaN stays."""
    lo, hi = _EXP_LIMITS[np.asarray(x).dtype]
    return np.exp(np.clip(x, lo, hi))


def expm1_(x):
    """``exp(x) - 1``, precise near 0, clamped as ``exp_``."""
    lo, hi = _EXP_LIMITS[np.asarray(x).dtype]
    return np.expm1(np.clip(x, lo, hi))


def tanh_(x):
    """``tanh(x)``; compiled as ``t / (t + 2)`` with ``t = expm1(2x)``, ``|x|`` clamped to 20."""
    return np.tanh(x)


def _exp_parts(x):
    """``(2**n, expm1(r))`` with ``x = n ln 2 + r`` (compiled only)."""
    raise NotImplementedError


@overload(_exp_parts, jit_options=OVERLOAD_OPTIONS)
def _exp_parts_jit(x):
    if not isinstance(x, types.Float):
        return None
    if x.bitwidth == 32:
        def impl(x):
            x = np.minimum(np.maximum(x, np.float32(-87.0)), np.float32(88.0))
            n = np.floor(x * np.float32(1.44269504) + np.float32(0.5))
            r = x - n * np.float32(0.693359375)
            r = r - n * np.float32(-2.12194440e-4)
            p = np.float32(1.9875691500e-4)
            p = fma(p, r, np.float32(1.3981999507e-3))
            p = fma(p, r, np.float32(8.3334519073e-3))
            p = fma(p, r, np.float32(4.1665795894e-2))
            p = fma(p, r, np.float32(1.6666665459e-1))
            p = fma(p, r, np.float32(5.0000001201e-1))
            return pow2(n, x), fma(p, r * r, r)
    else:
        def impl(x):
            x = np.minimum(np.maximum(x, -708.0), 709.0)
            n = np.floor(x * 1.4426950408889634 + 0.5)
            r = x - n * 0.693359375
            r = r - n * -2.12194440054690583e-4
            p = 1.0 / 6227020800.0
            p = fma(p, r, 1.0 / 479001600.0)
            p = fma(p, r, 1.0 / 39916800.0)
            p = fma(p, r, 1.0 / 3628800.0)
            p = fma(p, r, 1.0 / 362880.0)
            p = fma(p, r, 1.0 / 40320.0)
            p = fma(p, r, 1.0 / 5040.0)
            p = fma(p, r, 1.0 / 720.0)
            p = fma(p, r, 1.0 / 120.0)
            p = fma(p, r, 1.0 / 24.0)
            p = fma(p, r, 1.0 / 6.0)
            p = fma(p, r, 0.5)
            p = fma(p, r, 1.0)
            return pow2(n, x), p * r
    return impl


@overload(exp_, jit_options=OVERLOAD_OPTIONS)
def _exp_jit(x):
    def impl(x):
        scale, em1 = _exp_parts(x)
        return fma(scale, em1, scale)
    return impl


@overload(expm1_, jit_options=OVERLOAD_OPTIONS)
def _expm1_jit(x):
    def impl(x):
        scale, em1 = _exp_parts(x)
        return fma(scale, em1, scale - typed(1.0, x))
    return impl


@overload(tanh_, jit_options=OVERLOAD_OPTIONS)
def _tanh_jit(x):
    def impl(x):
        c = typed(TANH_CLAMP, x)
        t = expm1_(typed(2.0, x) * np.minimum(np.maximum(x, -c), c))
        return t / (t + typed(2.0, x))
    return impl


# ----------------------------------------------------------------------------- activations
@jit()
def sigmoid(z):
    one = typed(1.0, z)
    return one / (one + exp_(-z))


@jit()
def tanh(z):
    return tanh_(z)


@jit()
def relu(z):
    zero = typed(0.0, z)
    return zero if z < zero else z  # NaN stays NaN, like np.maximum


@jit()
def leaky_relu(z):
    return z if z > typed(0.0, z) else typed(codes.LEAKY_RELU_SLOPE, z) * z


@jit()
def elu(z):
    return z if z > typed(0.0, z) else typed(codes.ELU_ALPHA, z) * expm1_(z)


@jit()
def identity(z):
    return z


@jit()
def sigmoid_derivative(h):
    return h * (typed(1.0, h) - h)


@jit()
def tanh_derivative(h):
    return typed(1.0, h) - h * h


@jit()
def relu_derivative(h):
    return typed(1.0, h) if h > typed(0.0, h) else typed(0.0, h)


@jit()
def leaky_relu_derivative(h):
    return typed(1.0, h) if h > typed(0.0, h) else typed(codes.LEAKY_RELU_SLOPE, h)


@jit()
def elu_derivative(h):
    return typed(1.0, h) if h > typed(0.0, h) else h + typed(codes.ELU_ALPHA, h)


@jit()
def identity_derivative(h):
    return typed(1.0, h)


ACTIVATIONS = {"sigmoid": sigmoid, "tanh": tanh, "relu": relu, "leaky_relu": leaky_relu,
               "elu": elu, "identity": identity}
DERIVATIVES = {"sigmoid": sigmoid_derivative, "tanh": tanh_derivative,
               "relu": relu_derivative, "leaky_relu": leaky_relu_derivative,
               "elu": elu_derivative, "identity": identity_derivative}


@jit()
def activate(h, n, code):
    """``h[:n] = f(h[:n])`` in place, ``f`` the activation of code ``code``."""
    if code == codes.SIGMOID:
        for i in range(n):
            h[i] = sigmoid(h[i])
    elif code == codes.TANH:
        for i in range(n):
            h[i] = tanh(h[i])
    elif code == codes.RELU:
        for i in range(n):
            h[i] = relu(h[i])
    elif code == codes.LEAKY_RELU:
        for i in range(n):
            h[i] = leaky_relu(h[i])
    elif code == codes.ELU:
        for i in range(n):
            h[i] = elu(h[i])


@jit()
def times_derivative(d, h, n, code):
    """``d[:n] *= f'(z)``, computed from the activation's output ``h = f(z)``."""
    if code == codes.SIGMOID:
        for i in range(n):
            d[i] *= sigmoid_derivative(h[i])
    elif code == codes.TANH:
        for i in range(n):
            d[i] *= tanh_derivative(h[i])
    elif code == codes.RELU:
        for i in range(n):
            d[i] *= relu_derivative(h[i])
    elif code == codes.LEAKY_RELU:
        for i in range(n):
            d[i] *= leaky_relu_derivative(h[i])
    elif code == codes.ELU:
        for i in range(n):
            d[i] *= elu_derivative(h[i])


# ----------------------------------------------------------------------------- reductions
@jit()
def dot(a, b, n):
    """``sum(a[:n] * b[:n])`` in eight interleaved chains (element ``i`` into chain ``i % 8``,
    the tail into chain 0, then the chains summed pairwise): independent chains instead of one
    latency-bound sum, in an order fixed by ``n`` alone."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = typed(0.0, a)
    full = n - n % 8
    for i in range(0, full, 8):
        s0 = fma(a[i], b[i], s0)
        s1 = fma(a[i + 1], b[i + 1], s1)
        s2 = fma(a[i + 2], b[i + 2], s2)
        s3 = fma(a[i + 3], b[i + 3], s3)
        s4 = fma(a[i + 4], b[i + 4], s4)
        s5 = fma(a[i + 5], b[i + 5], s5)
        s6 = fma(a[i + 6], b[i + 6], s6)
        s7 = fma(a[i + 7], b[i + 7], s7)
    for i in range(full, n):
        s0 = fma(a[i], b[i], s0)
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@jit()
def softmax_cross_entropy(Q, n, labels, top, total, weights):
    """Columns ``i < n`` of the logits ``Q`` (classes x samples) become probabilities; returns
    the weighted summed cross-entropy ``sum_i w_i (log(sum_c exp(q_ci - m_i)) - (q_{y_i, i} -
    m_i))`` (float64), ``m_i`` the column's maximum, ``w_i = weights[i]`` (ones: the plain sum,
    bitwise). ``top`` and ``total`` are scratch of at least ``n``."""
    C = Q.shape[0]
    for i in range(n):
        top[i] = Q[0, i]
        total[i] = typed(0.0, Q)
    for c in range(1, C):
        for i in range(n):
            top[i] = max(top[i], Q[c, i])
    loss = 0.0
    for i in range(n):
        loss -= np.float64(weights[i]) * np.float64(Q[labels[i], i] - top[i])
    for c in range(C):
        q = Q[c]
        for i in range(n):
            q[i] = exp_(q[i] - top[i])
            total[i] += q[i]
    for i in range(n):
        loss += np.float64(weights[i]) * math.log(np.float64(total[i]))
    for c in range(C):
        q = Q[c]
        for i in range(n):
            q[i] = q[i] / total[i]
    return loss


@jit()
def machine_eps(like):
    """The machine epsilon of ``like``'s dtype (np.finfo would cost 0.3 s of compilation)."""
    one, eps = typed(1.0, like), typed(EPS64, like)
    return typed(EPS32, like) if one + eps == one else eps


@jit()
def output_loss(Q, n, labels, top, total, weights, output):
    """The output layer of code ``output`` on the logits ``Q`` (classes x samples): columns
    ``i < n`` become probabilities in place; returns the weighted summed loss (float64).
    Softmax: ``softmax_cross_entropy``. Logistic: ``p = sigmoid(q)`` and the binary
    cross-entropy ``-sum_i w_i sum_c (t_ci log p_ci + (1 - t_ci) log(1 - p_ci))``, ``t_ci`` bit
    ``c`` of ``labels[i]``, ``p`` clipped to ``[eps, 1 - eps]`` as scikit-learn clips it."""
    if output != codes.LOGISTIC:
        return softmax_cross_entropy(Q, n, labels, top, total, weights)
    one, eps, loss = typed(1.0, Q), machine_eps(Q), 0.0
    for c in range(Q.shape[0]):
        q = Q[c]
        for i in range(n):
            q[i] = one / (one + math.exp(-q[i]))  # libm's exp: little code for a cold path
            p = min(max(q[i], eps), one - eps)
            loss -= np.float64(weights[i]) * math.log(np.float64(
                p if (labels[i] >> c) & 1 else one - p))
    return loss


@jit()
def clipped_cross_entropy(P, n, labels, weights):
    """``-sum_i w_i log(p_{y_i i})`` from softmax's probabilities ``P``, ``p`` clipped to ``[eps,
    1 - eps]``: scikit-learn's form of the loss (the log-sum-exp form of
    ``softmax_cross_entropy`` stays finite and large when training blows up; this one does
    not)."""
    one, eps, loss = typed(1.0, P), machine_eps(P), 0.0
    for i in range(n):
        loss -= np.float64(weights[i]) * math.log(np.float64(
            min(max(P[labels[i], i], eps), one - eps)))
    return loss


@jit()
def count_correct(Q, n, labels, output):
    """How many columns ``i < n`` of the probabilities ``Q`` are predicted right: softmax, the
    largest entry (the first one, as ``np.argmax``) at row ``labels[i]``; logistic, every
    output's ``p > 0.5`` equal to its target bit (subset accuracy)."""
    correct = 0
    for i in range(n if output == codes.LOGISTIC else 0):
        wrong = 0
        for c in range(Q.shape[0]):
            wrong |= (Q[c, i] > typed(0.5, Q)) ^ ((labels[i] >> c) & 1)
        correct += wrong == 0
    for i in range(n if output != codes.LOGISTIC else 0):
        best = 0
        for c in range(1, Q.shape[0]):
            if Q[c, i] > Q[best, i]:
                best = c
        correct += best == labels[i]
    return correct


# ----------------------------------------------------------------------------- the update
@jit()
def coefficients(optimizer, hyper, step, out):
    """``out[C_*]``: the unified-update coefficients (table in ``codes.py``) of the optimizer
    of code ``optimizer`` with hyperparameters ``hyper`` at 1-based ``step``."""
    out[:] = 0.0
    out[codes.C_L2] = hyper[codes.L2]
    out[codes.C_LR] = hyper[codes.LR]
    out[codes.C_DIV] = 1.0
    out[codes.C_EPS] = 1.0
    sklearn = hyper[codes.SKLEARN] != 0.0
    if optimizer == codes.GD:
        out[codes.C_G] = 1.0
    elif optimizer == codes.MOMENTUM or optimizer == codes.NESTEROV:
        mu, lr = hyper[codes.MOMENTUM_COEF], hyper[codes.LR]
        nesterov = optimizer == codes.NESTEROV
        out[codes.C_M1] = mu
        out[codes.C_M2] = lr if sklearn else 1.0
        out[codes.C_LR] = 1.0 if sklearn else lr
        out[codes.C_G] = (lr if sklearn else 1.0) if nesterov else 0.0
        out[codes.C_M] = mu if nesterov else 1.0
    elif optimizer == codes.RMSPROP:
        alpha = hyper[codes.RMSPROP_ALPHA]
        out[codes.C_V1] = alpha
        out[codes.C_V2] = 1.0 - alpha
        out[codes.C_G] = 1.0
        out[codes.C_EPS] = hyper[codes.EPS]
    else:
        b1, b2 = hyper[codes.BETA1], hyper[codes.BETA2]
        out[codes.C_M1] = b1
        out[codes.C_M2] = 1.0 - b1
        out[codes.C_V1] = b2
        out[codes.C_V2] = 1.0 - b2
        out[codes.C_LR] = hyper[codes.LR] / (1.0 - b1 ** step)
        out[codes.C_M] = 1.0
        out[codes.C_DIV] = math.sqrt(1.0 - b2 ** step)
        out[codes.C_EPS] = hyper[codes.EPS]
        if sklearn:
            out[codes.C_LR] = hyper[codes.LR] * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
            out[codes.C_DIV] = 1.0


@jit()
def update(w, m, v, g, l2, c):
    """The unified step (``codes.py``) on the flat arrays ``w``, ``m``, ``v`` with gradient
    ``g`` and penalty ``l2``, coefficients ``c`` in ``w``'s dtype; leaves ``g`` zero."""
    m1, m2, v1, v2 = c[codes.C_M1], c[codes.C_M2], c[codes.C_V1], c[codes.C_V2]
    lr, cg, cm, div, eps = c[codes.C_LR], c[codes.C_G], c[codes.C_M], c[codes.C_DIV], \
        c[codes.C_EPS]
    zero = typed(0.0, w)
    for k in range(w.shape[0]):
        gk = g[k] + l2 * w[k]
        mk = m1 * m[k] + m2 * gk
        vk = v1 * v[k] + v2 * (gk * gk)
        m[k] = mk
        v[k] = vk
        w[k] = w[k] - lr * (cg * gk + cm * mk) / (np.sqrt(vk) / div + eps)
        g[k] = zero
