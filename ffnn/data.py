"""MNIST-style data loading: IDX or CSV files -> seeded train/validation/test splits.

Formats
-------
IDX (LeCun's MNIST layout; Fashion-MNIST uses the same). All header integers are
big-endian int32; the body is raw unsigned bytes, row-major::

    images: magic 2051, count, rows, cols, then count*rows*cols pixel bytes (0..255)
    labels: magic 2049, count,             then count label bytes

A data directory holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each plain or with ``.gz``
(the dot variant ``t10k-images.idx3-ubyte`` is accepted too). Gzip is recognised by
its magic bytes ``1f 8b``, whatever the suffix. Image ``i`` becomes the row vector of
its ``rows*cols`` pixels.

CSV (one ``.csv`` or ``.csv.gz`` file): one image per line, ``label,p0,p1,...``, with
an optional header line (Kaggle "digit recognizer" ``label,pixel0,...,pixel783``),
detected by its first cell not being a number. ``n_features = columns - 1``; labels
must be integers in ``0..n_classes-1`` and pixels integers in ``0..255``.

Splits
------
With ``rng = np.random.default_rng(seed)`` and ``perm = rng.permutation(n)``:

* IDX: ``n`` = official training images; validation = ``perm[:val_size]``, train =
  the next ``train_size`` (None: all the rest). Test = the official test images in
  official order, or, if ``test_size`` is an int, ``sorted(q[:test_size])`` with
  ``q = rng.permutation(n_test)`` drawn next from the same generator.
* CSV: ``n`` = all rows; test = ``perm[:test_size]`` (None: ``round(n / 7)``, i.e.
  10,000 of MNIST's 70,000 and 6,000 of Kaggle's 42,000), validation = the next
  ``val_size``, train = the next ``train_size`` (None: all the rest).

``X = pixels / 255`` in the requested float dtype (C-contiguous, ``(n, n_features)``),
``y`` is ``int64``. Any inconsistency raises :class:`DataError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .validation import check_n_classes, check_splits

__all__ = [
    "DataError",
    "Splits",
    "load_mnist",
    "read_csv",
    "read_idx_dir",
    "read_idx_images",
    "read_idx_labels",
    "resolve_data_path",
]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
ENV_VAR = "FFNN_DATA"
_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_GZIP_ERRORS = (OSError, EOFError, zlib.error)
_CHUNK_BYTES = 1 << 24
_CACHE_SIZE = 2
_cache: dict[tuple, tuple] = {}


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and the problem."""


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True, eq=False, repr=False)
class Splits:
    """Train/validation/test arrays: X ``(n, n_features)``, y class indices ``0..n_classes-1``.

    ``load_mnist`` gives float X in [0, 1] and int64 y. Splits built by hand pass the same check
    (``ffnn.validation``): finite real X (integers are converted when training), integer y in
    range, matching lengths and widths; ``ValueError`` names the split otherwise. Values outside
    [0, 1] are allowed and trained on as given, but the defaults assume inputs of order one.

    Treat the arrays as read-only: :meth:`fingerprint` is computed once and cached.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str
    _fingerprint: str | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        check_splits(self)

    @property
    def n_features(self) -> int:
        """Number of input features (pixels per image)."""
        return int(self.X_train.shape[1])

    def fingerprint(self) -> str:
        """Hex blake2b-128 digest of n_classes and the six arrays' shapes, dtypes and bytes."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(f"n_classes={self.n_classes};".encode())
            for name in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
                a = np.ascontiguousarray(getattr(self, name))
                h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
                h.update(a.view(np.uint8).reshape(-1) if a.size else b"")
            object.__setattr__(self, "_fingerprint", h.hexdigest())
        return self._fingerprint

    def __repr__(self) -> str:
        sizes = ", ".join(
            f"{p}={getattr(self, 'X_' + p).shape[0]}" for p in ("train", "val", "test")
        )
        return (
            f"Splits({sizes}, n_features={self.n_features}, n_classes={self.n_classes}, "
            f"dtype={self.X_train.dtype}, source={self.source!r})"
        )


# --------------------------------------------------------------------------- files


def _read_file(path: Path) -> bytes:
    """The file's bytes as stored (``DataError`` naming the file if it cannot be read)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _is_gzip(raw: bytes) -> bool:
    return raw[:2] == _GZIP_MAGIC


def _read_bytes(path: Path) -> bytes:
    """File contents, gunzipped if they start with the gzip magic bytes."""
    raw = _read_file(path)
    if _is_gzip(raw):
        try:
            raw = gzip.decompress(raw)
        except _GZIP_ERRORS as exc:
            raise DataError(f"{path}: corrupt gzip data ({exc})") from None
    if not raw:
        raise DataError(f"{path}: empty file")
    return raw


def _read_up_to(path: Path, stream, n: int) -> bytes:
    """Up to ``n`` bytes from a gzip stream, read in chunks: a header promising more than the
    file holds costs no more memory than the file."""
    chunks, left = [], n
    try:
        while left > 0:
            chunk = stream.read(min(left, _CHUNK_BYTES))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except _GZIP_ERRORS as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc})") from None
    return b"".join(chunks)


def _idx_body(path: Path, magic: int, n_dims: int) -> tuple[tuple[int, ...], np.ndarray]:
    """Validate an IDX header and return ``(dims, body as flat uint8)``.

    Sizes are Python ints (a header of 2^21 x 2^21 images overflows int64 arithmetic) and are
    checked against the data before any array is shaped; a gzip file is inflated only as far as
    its header promises (plus one byte, to detect trailing data)."""
    raw = _read_file(path)
    gz = _is_gzip(raw)
    stream = gzip.GzipFile(fileobj=io.BytesIO(raw)) if gz else None
    header_len = 4 * (1 + n_dims)
    header = _read_up_to(path, stream, header_len) if gz else raw[:header_len]
    if not header:
        raise DataError(f"{path}: empty file")
    if len(header) < header_len:
        raise DataError(f"{path}: truncated header ({len(header)} bytes, need {header_len})")
    found, *dims = struct.unpack(f">{1 + n_dims}i", header)
    if found != magic:
        kind = "image" if magic == IMAGES_MAGIC else "label"
        raise DataError(
            f"{path}: wrong magic number {found} (expected {magic} for an IDX {kind} file)"
        )
    if min(dims) < 0:
        raise DataError(f"{path}: negative size in header {tuple(dims)}")
    if n_dims > 1 and min(dims[1:]) == 0:
        raise DataError(f"{path}: header {tuple(dims)} declares images of no pixels")
    body_len = math.prod(dims)
    body = _read_up_to(path, stream, body_len + 1) if gz else memoryview(raw)[header_len:]
    if len(body) < body_len:
        raise DataError(
            f"{path}: truncated body: header {tuple(dims)} promises {header_len + body_len} "
            f"bytes, file has {header_len + len(body)}" + (" after decompression" if gz else "")
        )
    if len(body) > body_len:
        extra = "trailing data" if gz else f"{len(body) - body_len} trailing bytes"
        raise DataError(
            f"{path}: {extra} after the {header_len + body_len} bytes "
            f"the header {tuple(dims)} promises"
        )
    return tuple(dims), np.frombuffer(body, dtype=np.uint8)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX image file (magic 2051, plain or gzip) -> uint8 ``(count, rows, cols)``."""
    path = Path(path)
    dims, body = _idx_body(path, IMAGES_MAGIC, 3)
    return body.reshape(dims).copy()


def read_idx_labels(path: str | os.PathLike, n_classes: int | None = None) -> np.ndarray:
    """Read an IDX label file (magic 2049) -> uint8 ``(count,)``; check ``< n_classes`` if given."""
    path = Path(path)
    _, labels = _idx_body(path, LABELS_MAGIC, 1)
    if n_classes is not None:
        bad = np.flatnonzero(labels >= n_classes)
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{path}: label {labels[i]} at index {i} outside 0..{n_classes - 1} "
                f"(n_classes={n_classes})"
            )
    return labels.copy()


def _idx_file(directory: Path, stem: str) -> Path:
    """Find ``stem`` in ``directory``: plain, ``.gz``, or dotted (``t10k-images.idx3-ubyte``)."""
    dotted = stem.replace("-idx", ".idx")
    candidates = [directory / name for name in (stem, stem + ".gz", dotted, dotted + ".gz")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(f"{candidates[1]}: file not found (nor {stem} or {dotted}[.gz] in {directory})")


def _idx_files(directory: Path) -> dict[str, Path]:
    return {key: _idx_file(directory, stem) for key, stem in IDX_STEMS.items()}


def read_idx_dir(
    directory: str | os.PathLike, n_classes: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the four IDX files -> ``(X_train, y_train, X_test, y_test)``.

    X is uint8 ``(n, rows*cols)``, y uint8; labels are checked against ``n_classes``.
    """
    files = _idx_files(Path(directory))
    out = []
    shapes = {}
    for part in ("train", "test"):
        images_path, labels_path = files[f"{part}_images"], files[f"{part}_labels"]
        images = read_idx_images(images_path)
        labels = read_idx_labels(labels_path, n_classes)
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{images_path}: {images.shape[0]} images, but {labels_path} has "
                f"{labels.shape[0]} labels"
            )
        shapes[images_path] = images.shape[1:]
        out += [images.reshape(images.shape[0], -1), labels]
    (train_path, train_shape), (test_path, test_shape) = shapes.items()
    if train_shape != test_shape:
        raise DataError(f"{test_path}: images are {test_shape}, but {train_path} has {train_shape}")
    return tuple(out)


def _is_number(cell: str, kind: type = float) -> bool:
    try:
        kind(cell)
    except ValueError:
        return False
    return True


def _parse(text: str, dtype: type) -> np.ndarray | None:
    """Comma-separated numbers -> flat array, or None if some cell does not parse as ``dtype``."""
    with warnings.catch_warnings():  # older numpy warns and returns a prefix instead of raising
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=dtype, sep=",")
        except (ValueError, DeprecationWarning):
            return None


def _at(path: Path, line: int, column: int) -> str:
    """``"<path>: line L, column C:"`` from 0-based indices."""
    return f"{path}: line {line + 1}, column {column + 1}:"


def _first_bad_cell(rows: list[str], kind: type) -> tuple[int, int, str]:
    """``(row, column, cell)`` of the first cell not parsing as ``kind`` (slow: errors only)."""
    for i, row in enumerate(rows):
        parsed = _parse(row, np.int64 if kind is int else np.float64)
        if parsed is None or parsed.size != row.count(",") + 1:
            for j, cell in enumerate(row.split(",")):
                if not _is_number(cell, kind):
                    return i, j, cell
            return i, 0, row  # numpy and Python disagree (e.g. "1_0"): blame the row
    raise AssertionError("no bad cell found")  # pragma: no cover


# numpy's parser reads a cell of only spaces and signs (" ", "-", "+ ") as 0, or -1 as a float,
# and "+ 2" (a sign, then a space) as 2, instead of refusing them.
_SPACES_AND_SIGNS = " \t\r\x0b\x0c+-"  # what numpy's parser skips (ASCII whitespace) or signs
_MISREAD_CELL = re.compile(r"(?:^|,)[\s+-]*(?=,|$)|[+-]\s")


def _check_misread_cells(path: Path, rows: list[str], joined: str, first: int) -> None:
    """DataError at the first cell numpy would misread (slow, but only for rare files that hold
    spaces or signs)."""
    if not _MISREAD_CELL.search(joined):
        return
    for i, row in enumerate(rows):
        for j, cell in enumerate(row.split(",")):
            if _MISREAD_CELL.search(cell):
                raise DataError(f"{_at(path, i + first, j)} {cell!r} is not a number")


def _cells(path: Path, rows: list[str], n_cols: int, first: int) -> np.ndarray:
    """All cells as an ``(n_rows, n_cols)`` int64 array (float64 if some integer is written "3.0").

    Plain integers take a fast C path (~1 s for MNIST's 70,000 rows); other numbers fall back
    to a float parse, ten times slower. A cell that is not a number raises DataError.
    """
    joined = ",".join(rows)
    if any(char in joined for char in _SPACES_AND_SIGNS):  # rare: then look for misread cells
        _check_misread_cells(path, rows, joined, first)
    values = _parse(joined, np.int64)
    if values is None or values.size != len(rows) * n_cols:
        i, j, cell = _first_bad_cell(rows, int)
        if not _is_number(cell):
            raise DataError(f"{_at(path, i + first, j)} {cell!r} is not a number")
        if not float(cell).is_integer():
            what = "label" if j == 0 else "pixel"
            raise DataError(f"{_at(path, i + first, j)} {what} {cell.strip()!r} is not an integer")
        values = _parse(joined, np.float64)
        if values is None or values.size != len(rows) * n_cols:
            i, j, cell = _first_bad_cell(rows, float)
            raise DataError(f"{_at(path, i + first, j)} {cell!r} is not a number")
    return values.reshape(len(rows), n_cols)


def read_csv(path: str | os.PathLike, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``label,p0,p1,...`` CSV (optional header, plain or gzip) -> ``(X uint8, y int64)``."""
    path = Path(path)
    try:
        text = _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(f"{path}: empty file")
    first = 0 if _is_number(lines[0].split(",", 1)[0]) else 1  # 1: a header line
    rows = lines[first:]
    if not rows:
        raise DataError(f"{path}: header only, no data rows")
    n_cols = lines[0].count(",") + 1
    if n_cols < 2:
        raise DataError(f"{path}: line 1 has 1 column; need a label and at least one pixel")
    counts = np.fromiter((row.count(",") for row in rows), dtype=np.int64, count=len(rows))
    bad = np.flatnonzero(counts != n_cols - 1)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}: line {i + first + 1} has {counts[i] + 1} columns, "
            f"expected {n_cols} (as on line 1)"
        )
    values = _cells(path, rows, n_cols, first)
    limits = np.full(n_cols, 255, dtype=np.int64)
    limits[0] = n_classes - 1
    bad = (values < 0) | (values > limits)
    if values.dtype.kind == "f":
        bad |= values != np.floor(values)  # also catches nan
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        what = "label" if j == 0 else "pixel"
        raise DataError(
            f"{_at(path, i + first, j)} {what} {values[i, j]:g} is not an integer in 0..{limits[j]}"
            + (f" (n_classes={n_classes})" if j == 0 else "")
        )
    return values[:, 1:].astype(np.uint8), values[:, 0].astype(np.int64)


# --------------------------------------------------------------------------- loading


def _packaged_dir() -> Path:
    """The data directory shipped as package ``ffnn._data``, else the checkout's ``data/``."""
    try:
        from importlib.resources import files

        resource = files("ffnn._data")
        if isinstance(resource, Path):
            return resource
        for child in resource.iterdir():  # namespace package: a MultiplexedPath
            if isinstance(child, Path):
                return child.parent
    except (ImportError, TypeError, OSError):
        pass
    return Path(__file__).resolve().parent.parent / "data"


def resolve_data_path(path: str | os.PathLike | None = None) -> Path:
    """Where :func:`load_mnist` reads: ``path``, else ``$FFNN_DATA``, else the packaged copy."""
    if path is None:
        path = os.environ.get(ENV_VAR) or _packaged_dir()
    return Path(path).expanduser().resolve()


def _stat_key(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return (str(path), st.st_mtime_ns, st.st_size)


def _load_raw(path: Path, n_classes: int) -> tuple[str, tuple[np.ndarray, ...]]:
    """Decoded uint8 images and labels, through a small cache keyed by path, mtime and size."""
    if path.is_dir():
        files = _idx_files(path)
        key = (tuple(_stat_key(f) for f in files.values()), n_classes)
        kind = "IDX"
        reader = read_idx_dir
    elif path.is_file():
        if not path.name.lower().endswith((".csv", ".csv.gz")):
            raise DataError(f"{path}: expected a directory of IDX files or a .csv / .csv.gz file")
        key = (_stat_key(path), n_classes)
        kind = "CSV"
        reader = read_csv
    else:
        raise DataError(f"{path}: no such file or directory")
    if key not in _cache:
        arrays = reader(path, n_classes)
        for a in arrays:
            a.flags.writeable = False
        while len(_cache) >= _CACHE_SIZE:
            del _cache[next(iter(_cache))]
        _cache[key] = arrays
    return kind, _cache[key]


def _check_size(name: str, value: int | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0
    ):
        raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")


def _scale(pixels: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = np.empty(pixels.shape, dtype=dtype)
    return np.divide(pixels, dtype.type(255), out=out, dtype=dtype)


def load_mnist(
    path: str | os.PathLike | None = None,
    *,
    train_size: int | None = None,
    val_size: int = 6000,
    test_size: int | None = None,
    seed: int = 0,
    dtype: str | np.dtype = "float32",
    n_classes: int = 10,
) -> Splits:
    """Load an IDX directory or a CSV file and split it as the module docstring describes.

    ``path`` defaults to ``$FFNN_DATA``, then to the copy shipped as ``ffnn._data``.
    Defaults on MNIST give 54,000 / 6,000 / 10,000 images. Raises ``ValueError`` for a
    negative size, a dtype other than float32/float64 or ``n_classes < 1``, and
    :class:`DataError` for bad files or sizes larger than the data.
    """
    _check_size("train_size", train_size)
    _check_size("val_size", val_size)
    _check_size("test_size", test_size)
    if val_size is None:
        raise ValueError("val_size must be a non-negative integer, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    n_classes = check_n_classes(n_classes)

    where = resolve_data_path(path)
    kind, raw = _load_raw(where, n_classes)
    rng = np.random.default_rng(seed)
    if kind == "IDX":
        X_pool, y_pool, X_test_all, y_test_all = raw
        n_test_all = X_test_all.shape[0]
        if test_size is not None and test_size > n_test_all:
            raise DataError(
                f"{where}: test_size={test_size} but the test set has {n_test_all} images"
            )
        n = X_pool.shape[0]
        perm = rng.permutation(n)
        test_idx = (
            np.arange(n_test_all)
            if test_size is None
            else np.sort(rng.permutation(n_test_all)[:test_size])
        )
        X_tst, y_tst = X_test_all[test_idx], y_test_all[test_idx]
        start, sizes = 0, f"val_size={val_size}, train_size={train_size}"
    else:
        X_pool, y_pool = raw
        n = X_pool.shape[0]
        perm = rng.permutation(n)
        n_tst = round(n / 7) if test_size is None else test_size
        test_idx = perm[:n_tst]
        X_tst, y_tst = X_pool[test_idx], y_pool[test_idx]
        start, sizes = n_tst, f"test_size={n_tst}, val_size={val_size}, train_size={train_size}"
    n_train = n - start - val_size if train_size is None else train_size
    if start + val_size + n_train > n or n_train < 0:
        need = start + val_size + (train_size or 0)
        raise DataError(f"{where}: {sizes} need {need} images, only {n} available")
    val_idx = perm[start : start + val_size]
    train_idx = perm[start + val_size : start + val_size + n_train]
    return Splits(
        X_train=_scale(X_pool[train_idx], dt),
        y_train=y_pool[train_idx].astype(np.int64),
        X_val=_scale(X_pool[val_idx], dt),
        y_val=y_pool[val_idx].astype(np.int64),
        X_test=_scale(X_tst, dt),
        y_test=y_tst.astype(np.int64),
        n_classes=n_classes,
        source=f"{where} ({kind})",
    )
