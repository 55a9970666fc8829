"""The one check every data split passes before any backend sees it.

``train``, ``train_many``, ``MLPClassifier.fit``/``partial_fit``, ``Network.evaluate`` and the
``Splits`` constructor all call these functions, so every backend gets the same guarantees:

* features ``X``: a 2-D array ``(n, n_features)`` of real numbers (bool, integer or floating;
  converted to the training dtype), every value finite *after* that conversion (a float64
  ``1e300`` is refused for float32 training, where it would become ``inf``);
* labels ``y``: a 1-D integer array with one class index in ``0..n_classes-1`` per row of ``X``
  (float labels are refused rather than truncated).

Values outside [0, 1] are allowed: the networks train on the numbers as given. The defaults
(He/Glorot initialisation, learning rates) assume inputs of order one, like ``load_mnist``'s
pixels / 255; scale other data first.

Each error is a ``ValueError`` naming the split (train, validation, test), the array and the
problem, e.g. ``"test labels (y_test): -1 at index 3 is outside 0..9"``.
"""

from __future__ import annotations

import numpy as np

# Split attribute suffix -> the name used in messages.
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}

_REAL_KINDS = "biuf"  # bool, signed and unsigned integers, floating point
_INTEGER_KINDS = "iu"


def check_n_classes(n_classes) -> int:
    """``n_classes`` as an int; ``ValueError`` unless it is a positive integer."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer) or n_classes < 1:
        raise ValueError(f"n_classes: expected a positive integer, got {n_classes!r}")
    return int(n_classes)


def check_features(split: str, X, *, n_features: int | None = None, dtype=None,
                   name: str = "X") -> None:
    """Raise ``ValueError`` unless ``X`` is a finite 2-D real array (``n_features`` columns if
    given) whose values stay finite when converted to ``dtype`` (if given)."""
    label = f"{split} features ({name})"
    X = _dense_or_sparse(X)
    if X.ndim != 2:
        raise ValueError(f"{label}: expected a 2-D array (n_samples, n_features), "
                         f"got shape {X.shape}")
    if X.dtype.kind not in _REAL_KINDS:
        raise ValueError(f"{label}: expected real numbers, got dtype {X.dtype}")
    if n_features is None and X.shape[1] == 0:
        raise ValueError(f"{label}: has no features (shape {X.shape})")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{label}: has {X.shape[1]} columns, expected {n_features}")
    _check_finite(label, X, dtype)


def check_labels(split: str, y, n_classes: int, *, n_rows: int | None = None,
                 name: str = "y", x_name: str = "X") -> None:
    """Raise ``ValueError`` unless ``y`` is a 1-D integer array of class indices in
    ``0..n_classes-1`` (with ``n_rows`` entries if given)."""
    label = f"{split} labels ({name})"
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{label}: expected a 1-D array of class indices, got shape {y.shape}")
    if n_rows is not None and len(y) != n_rows:
        raise ValueError(f"{split} split: {x_name} has {n_rows} rows but {name} has {len(y)} "
                         "labels")
    if y.dtype.kind not in _INTEGER_KINDS:
        raise ValueError(f"{label}: expected integer class indices 0..{n_classes - 1}, got dtype "
                         f"{y.dtype} (convert with y.astype(np.int64) if the values are whole)")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        i = int(np.flatnonzero((y < 0) | (y >= n_classes))[0])
        raise ValueError(f"{label}: {y[i]} at index {i} is outside 0..{n_classes - 1}")


def check_split(split: str, X, y, n_classes: int, *, n_features: int | None = None, dtype=None,
                x_name: str = "X", y_name: str = "y") -> None:
    """Both checks above for one split, labels first (cheap) and finiteness last."""
    X = _dense_or_sparse(X)
    if X.ndim == 2:
        check_labels(split, y, n_classes, n_rows=X.shape[0], name=y_name, x_name=x_name)
    check_features(split, X, n_features=n_features, dtype=dtype, name=x_name)


def check_splits(splits, dtype=None) -> None:
    """Check all three splits of ``splits`` (a ``Splits``, or any object with its attributes):
    the rules of this module, ``splits.n_classes`` a positive integer, and the validation and
    test features as wide as the training ones. ``dtype``: the training dtype, if known."""
    n_classes = check_n_classes(splits.n_classes)
    n_features = None
    for part, split in SPLIT_NAMES.items():
        X = _dense_or_sparse(getattr(splits, f"X_{part}"))
        check_split(split, X, getattr(splits, f"y_{part}"), n_classes, n_features=n_features,
                    dtype=dtype, x_name=f"X_{part}", y_name=f"y_{part}")
        n_features = X.shape[1]


def _dense_or_sparse(X):
    """``X`` as an array, or unchanged if it is a ``scipy.sparse`` matrix (checked through its
    stored values, never densified)."""
    return X if hasattr(X, "tocoo") else np.asarray(X)


def _check_finite(label: str, X: np.ndarray, dtype) -> None:
    """NaN, infinity, or a value beyond ``dtype``'s range, located by row and column.

    Two reductions (min and max, which propagate NaN) decide; only a failing array pays for
    locating the culprit."""
    if hasattr(X, "tocoo"):  # scipy.sparse: its stored values, located through COO
        coo = X.tocoo()
        X = np.zeros((1, 0), X.dtype) if coo.nnz == 0 else coo.data[None, :]
        try:
            _check_finite(label, X, dtype)
        except ValueError as e:
            t = int(np.argwhere(~(np.abs(coo.data) <= float(np.finfo(
                coo.dtype if dtype is None else dtype).max)))[0, 0])
            raise ValueError(str(e).replace(f"at row 0, column {t}",
                                            f"at row {coo.row[t]}, column {coo.col[t]}")) from None
        return
    if X.size == 0 or X.dtype.kind != "f":
        return  # integers fit every float dtype this package trains in
    limit = float(np.finfo(X.dtype if dtype is None else dtype).max)
    low, high = float(X.min()), float(X.max())
    if -limit <= low and high <= limit:  # False for NaN and for infinities
        return
    row, column = (int(k) for k in np.argwhere(~(np.abs(X) <= limit))[0])
    value = X[row, column]
    problem = ("NaN" if np.isnan(value) else str(float(value)) if np.isinf(value)
               else f"{float(value):g} (too large for {np.dtype(dtype)})")
    raise ValueError(f"{label}: {problem} at row {row}, column {column}; every value must be "
                     "finite")
