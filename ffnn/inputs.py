"""Inputs prepared once: each array (or ``scipy.sparse`` matrix) is converted into the form a
backend takes (``backend.prepare``: the engine's CSR rows) once per process, dtype and backend,
and reused by every ``train``/``train_many`` call, every ``partial_fit`` call and every task of
a study worker on the same data, never once per epoch.

The cache is keyed by the array object itself (held weakly: an entry goes when its array does),
so the arrays must be treated as read-only, as ``ffnn.Splits`` already asks: an array changed in
place after it was first used would be served stale.
"""

import weakref

import numpy as np

_CACHE: dict[tuple, tuple] = {}


def prepared(X, dtype, backend, path="auto"):
    """``backend.prepare(X, dtype, path)``, computed once per live object ``X``."""
    key = (id(X), np.dtype(dtype).str, backend.__name__, path)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is X:
        return hit[1]
    value = backend.prepare(X, dtype, path)
    try:
        ref = weakref.ref(X, lambda _, key=key, cache=_CACHE: cache.pop(key, None))
    except TypeError:  # an object without weak references: not cached
        return value
    _CACHE[key] = (ref, value)
    return value


def labels(y) -> np.ndarray:
    """``y`` as a private, writeable int64 vector (one compiled signature whatever the caller
    holds: numba types read-only arrays differently)."""
    return np.array(y, dtype=np.int64)
