"""The numba options of every compiled kernel, and the fastmath policy, in one place.

**No fastmath, anywhere.** With ``reassoc`` or ``contract`` LLVM may round the same source
differently depending on what it inlines where, whether a loop was vectorised or ran its scalar
remainder, and numba's cached object code is optimised in a different context than the code a
cold process compiles: measured here, a cold process and a process loading the cache computed
different weights (bitwise) from the same seeds. Without fastmath every operation is rounded as
written, so results are bitwise identical across processes, compile states and thread counts,
and NaN and inf keep their IEEE meaning inside the kernels. What fastmath would buy is written
out instead: fused multiply-adds are explicit (``intrinsics.fma``, the row products), and
reductions use several explicit accumulator chains (``ops.dot``), whose order is fixed by the
source. Divergence is checked outside compiled code (``ffnn.training.is_diverged``).

numba's on-disk cache (``CACHE``) keys entries by function and signature, not by these flags:
after editing this file or any kernel module, delete ``kernels/__pycache__`` (or point
``NUMBA_CACHE_DIR`` at a fresh directory), otherwise stale machine code is loaded.
"""

import numba

FASTMATH = False
CACHE = True
JIT_DISABLED = bool(numba.config.DISABLE_JIT)

# Width, in elements, of one padded chunk of a hidden layer: one AVX-512 register of float32
# (two of float64). Every row of a packed first-layer weight matrix is a whole number of chunks.
LANES = 16

# Options of the @overload implementations (the compiled twins of the intrinsics and math).
OVERLOAD_OPTIONS = {"fastmath": FASTMATH, "error_model": "numpy", "boundscheck": False,
                    "nogil": True}


def jit(**options):
    """``numba.njit`` with the kernel options: cached, no fastmath, NumPy's error model (a
    division by zero gives inf or NaN, and no exception branch blocks vectorisation), no bounds
    checks, and the GIL released so threads can train networks concurrently."""
    return numba.njit(cache=CACHE, fastmath=FASTMATH, error_model="numpy", boundscheck=False,
                      nogil=True, **options)
