"""The numba options of the compiled kernels, in one place (stumpy's ``config.py`` pattern).

No fastmath. Measured here: with ``reassoc``/``contract`` LLVM rounds the same source differently
depending on what it inlines where, and numba's cached object code is optimised in a different
inlining context than the code a cold process compiles and runs, so a cold process and a process
loading the cache computed different weights (bitwise) from the same seeds. Without fastmath
every operation is rounded as written (fused multiply-adds are explicit, ``fma`` in
``numba_backend``), results are bitwise identical across processes and compile states, and NaN
and inf keep their IEEE meaning inside the kernels. Nothing was lost: the kernels' reductions
are explicit accumulator registers (LLVM IR intrinsics), not loops LLVM must reassociate to
vectorise. Divergence is also checked outside compiled code (``ffnn.training.is_diverged``).

numba's on-disk cache (``CACHE``) keys entries by function and signature, not by these flags:
after editing this file, delete the ``__pycache__`` directory next to ``numba_backend.py`` (or set
``NUMBA_CACHE_DIR`` to a fresh directory), otherwise stale machine code compiled with the old
flags is loaded.
"""

import numba

FASTMATH = False
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

# Slots of compressed blocks a producer thread may run ahead of the trainer (threads > 1).
RING_SLOTS = 32


def jit(**options):
    """``numba.njit`` with the kernel options (nogil, so threads can train concurrently)."""
    return numba.njit(cache=CACHE, fastmath=FASTMATH, error_model="numpy",
                      boundscheck=False, nogil=True, **options)
