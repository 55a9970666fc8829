"""The numba options of the compiled kernels, in one place (stumpy's ``config.py`` pattern).

``FASTMATH`` lets LLVM reassociate and contract floating-point sums (vectorised reductions, FMA)
but keeps ``nnan``/``ninf`` off, so comparisons with NaN and inf keep their IEEE meaning inside
the kernels. Divergence is still detected outside compiled code (``ffnn.training.is_diverged``
checks the loss and ``np.isfinite(theta)`` in NumPy).

numba's on-disk cache (``CACHE``) keys entries by function and signature, not by these flags:
after editing this file, delete the ``__pycache__`` directory next to ``numba_backend.py`` (or set
``NUMBA_CACHE_DIR`` to a fresh directory), otherwise stale machine code compiled with the old
flags is loaded. The serial and the parallel epoch kernels are separate functions, so they never
share a cache entry.
"""

import numba

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
CACHE = True
JIT_DISABLED = bool(numba.config.DISABLE_JIT)

# Width, in elements, of the padded hidden and class dimensions: one AVX-512 register of float32,
# two of float64. Every row of a packed weight matrix starts on a multiple of LANES elements.
LANES = 16

# Samples processed per block: forward, activation, softmax and backward run on a block of this
# many samples at a time so the element-wise passes are throughput-bound, not latency-bound.
BLOCK = 32

# Alignment of packed parameter and work buffers, in bytes (one cache line).
ALIGN = 64


def jit(**options):
    """``numba.njit`` with the kernel options (nogil, so threads can train concurrently)."""
    return numba.njit(cache=CACHE, fastmath=set(FASTMATH), error_model="numpy",
                      boundscheck=False, nogil=True, **options)
