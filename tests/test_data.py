"""Specification of ffnn.data: IDX/CSV readers, their errors, and the seeded splits.

Most tests build a tiny data set in ``tmp_path`` (35 images of 3x4 pixels, 3 classes, every
image unique); the MNIST tests use the packaged copy (or ``$FFNN_TEST_INSTALLED`` asks that it
come from the installed wheel).
"""

import gzip
import hashlib
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest

import ffnn
from ffnn import data
from ffnn.data import DataError, load_mnist, read_csv, read_idx_dir, read_idx_labels

REPO = Path(__file__).resolve().parent.parent
ROWS, COLS, N_CLASSES = 3, 4, 3
N_TRAIN, N_TEST = 30, 5
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


# ----------------------------------------------------------------------------- tiny data sets


def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    """35 unique uint8 images ``(35, 3, 4)`` using 0 and 255, labels ``i % 3``."""
    images = np.random.default_rng(7).integers(0, 256, (N_TRAIN + N_TEST, ROWS, COLS), np.uint8)
    images[:, 0, 0] = np.arange(N_TRAIN + N_TEST)  # makes every image unique
    images[0, 0, 1], images[0, 0, 2] = 0, 255
    return images, (np.arange(N_TRAIN + N_TEST) % N_CLASSES).astype(np.uint8)


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    return struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.tobytes()


def write_idx_dir(directory: Path, gz: bool = False) -> Path:
    """The tiny set as the four MNIST-named IDX files (first 30 train, last 5 test)."""
    images, labels = tiny_images()
    contents = (
        idx_bytes(2051, images[:N_TRAIN]),
        idx_bytes(2049, labels[:N_TRAIN]),
        idx_bytes(2051, images[N_TRAIN:]),
        idx_bytes(2049, labels[N_TRAIN:]),
    )
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in zip(MNIST_FILES, contents, strict=True):
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(content, mtime=0))
        else:
            (directory / name).write_bytes(content)
    return directory


def csv_text(header: bool) -> str:
    images, labels = tiny_images()
    rows = np.column_stack([labels, images.reshape(len(images), -1)])
    lines = [",".join(str(v) for v in row) for row in rows]
    if header:
        lines.insert(0, "label," + ",".join(f"pixel{i}" for i in range(ROWS * COLS)))
    return "\n".join(lines) + "\n"


def write_csv(path: Path, header: bool = True, text: str | None = None) -> Path:
    content = (csv_text(header) if text is None else text).encode()
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


@pytest.fixture
def idx_dir(tmp_path):
    return write_idx_dir(tmp_path / "idx")


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("FFNN_DATA", raising=False)


def row_keys(X: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in X}


# ----------------------------------------------------------------------------- readers


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dir_reads_what_was_written(tmp_path, gz):
    images, labels = tiny_images()
    X_train, y_train, X_test, y_test = read_idx_dir(write_idx_dir(tmp_path, gz), N_CLASSES)
    flat = images.reshape(len(images), ROWS * COLS)
    assert X_train.dtype == np.uint8 and X_train.shape == (N_TRAIN, ROWS * COLS)
    np.testing.assert_array_equal(X_train, flat[:N_TRAIN])
    np.testing.assert_array_equal(X_test, flat[N_TRAIN:])
    np.testing.assert_array_equal(y_train, labels[:N_TRAIN])
    np.testing.assert_array_equal(y_test, labels[N_TRAIN:])


@pytest.mark.parametrize("name", ["with_header.csv", "headerless.csv", "with_header.csv.gz"])
def test_csv_layouts_read_the_same_data_as_idx(tmp_path, name):
    X_train, y_train, X_test, y_test = read_idx_dir(write_idx_dir(tmp_path / "idx"), N_CLASSES)
    X, y = read_csv(write_csv(tmp_path / name, header=name.startswith("with")), N_CLASSES)
    assert X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(X, np.concatenate([X_train, X_test]))
    np.testing.assert_array_equal(y, np.concatenate([y_train, y_test]))


def test_csv_accepts_crlf_and_integers_written_as_floats(tmp_path):
    text = csv_text(header=True).replace("\n", "\r\n").replace(",255,", ",255.0,")
    X, y = read_csv(write_csv(tmp_path / "t.csv", text=text), N_CLASSES)
    X_ref, y_ref = read_csv(write_csv(tmp_path / "ref.csv"), N_CLASSES)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)


def test_gzip_is_detected_by_magic_bytes_not_suffix(tmp_path):
    write_idx_dir(tmp_path / "gz", gz=True)
    plain_names = tmp_path / "renamed"
    plain_names.mkdir()
    for name in MNIST_FILES:  # gzip content under the plain names
        (tmp_path / "gz" / f"{name}.gz").rename(plain_names / name)
    got = read_idx_dir(plain_names, N_CLASSES)
    want = read_idx_dir(write_idx_dir(tmp_path / "plain"), N_CLASSES)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_dotted_file_names_are_accepted(idx_dir):
    for name in MNIST_FILES:
        (idx_dir / name).rename(idx_dir / name.replace("-idx", ".idx"))
    assert read_idx_dir(idx_dir, N_CLASSES)[0].shape == (N_TRAIN, ROWS * COLS)


# ----------------------------------------------------------------------------- bad input


def _corrupt_idx(directory: Path, case: str) -> Path:
    """Break one file of a good IDX directory; return the file the error must name."""
    images, labels = tiny_images()
    target = directory / MNIST_FILES[0]
    if case == "missing file":
        target.unlink()
        target = directory / (MNIST_FILES[0] + ".gz")  # the name the message suggests
    elif case == "empty file":
        target.write_bytes(b"")
    elif case == "empty gzip":
        target.write_bytes(gzip.compress(b""))
    elif case == "truncated header":
        target.write_bytes(target.read_bytes()[:10])
    elif case == "wrong magic":
        target.write_bytes(idx_bytes(2049, images[:N_TRAIN]))
    elif case == "truncated body":
        target.write_bytes(target.read_bytes()[:-1])
    elif case == "trailing bytes":
        target.write_bytes(target.read_bytes() + b"\x00")
    elif case == "corrupt gzip":
        target.write_bytes(gzip.compress(target.read_bytes())[:-20])
    elif case == "count mismatch":
        (directory / MNIST_FILES[1]).write_bytes(idx_bytes(2049, labels[: N_TRAIN - 1]))
    elif case == "label out of range":
        target = directory / MNIST_FILES[1]
        target.write_bytes(idx_bytes(2049, np.full(N_TRAIN, N_CLASSES, np.uint8)))
    return target


IDX_CASES = {
    "missing file": "not found",
    "empty file": "empty",
    "empty gzip": "empty",
    "truncated header": "truncated header",
    "wrong magic": "magic number 2049",
    "truncated body": "truncated body",
    "trailing bytes": "1 trailing bytes",
    "corrupt gzip": "gzip",
    "count mismatch": "30 images",
    "label out of range": "label 3",
}


@pytest.mark.parametrize("case", IDX_CASES)
def test_bad_idx_raises_data_error_naming_the_file(idx_dir, case):
    target = _corrupt_idx(idx_dir, case)
    with pytest.raises(DataError) as info:
        load_mnist(idx_dir, val_size=2, n_classes=N_CLASSES)
    assert str(target) in str(info.value)
    assert IDX_CASES[case] in str(info.value)


CSV_CASES = {  # (text, expected fragment); line numbers count the header line
    "non-numeric cell": ("label,a,b\n1,2,3\n0,x7,3\n", "line 3, column 2: 'x7' is not a number"),
    "empty cell": ("label,a,b\n1,2,3\n0,,3\n", "line 3, column 2: '' is not a number"),
    "too few columns": ("label,a,b\n1,2,3\n0,2\n", "line 3 has 2 columns, expected 3"),
    "too many columns": ("1,2,3\n0,2,3,4\n", "line 2 has 4 columns, expected 3"),
    "pixel above 255": (
        "1,2,3\n0,256,3\n",
        "line 2, column 2: pixel 256 is not an integer in 0..255",
    ),
    "negative pixel": ("1,2,3\n0,2,-1\n", "line 2, column 3: pixel -1 is not an integer"),
    "non-integer pixel": ("1,2,3\n0,2.5,3\n", "line 2, column 2: pixel '2.5' is not an integer"),
    "nan pixel": ("1,2.0,3\n0,2,nan\n", "line 2, column 3: pixel nan is not an integer"),
    "label out of range": ("label,a,b\n1,2,3\n3,2,3\n", "line 3, column 1: label 3 is not"),
    "empty file": ("", "empty file"),
    "blank file": ("\n\n", "empty file"),
    "header only": ("label,a,b\n", "header only"),
    "label only": ("1\n2\n", "need a label and at least one pixel"),
}


@pytest.mark.parametrize("case", CSV_CASES)
def test_bad_csv_raises_data_error_naming_file_and_line(tmp_path, case):
    text, fragment = CSV_CASES[case]
    path = write_csv(tmp_path / "bad.csv", text=text)
    with pytest.raises(DataError) as info:
        load_mnist(path, val_size=0, test_size=0, n_classes=N_CLASSES)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_missing_path_and_unknown_file_type(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_mnist(tmp_path / "nowhere")
    other = tmp_path / "digits.txt"
    other.write_text("1,2\n")
    with pytest.raises(DataError, match=re.escape(str(other))):
        load_mnist(other)


@pytest.mark.parametrize(
    "sizes",
    [
        {"train_size": 29, "val_size": 2},
        {"val_size": 31},
        {"test_size": 6},
    ],
)
def test_sizes_larger_than_the_idx_data(idx_dir, sizes):
    with pytest.raises(DataError) as info:
        load_mnist(idx_dir, n_classes=N_CLASSES, **sizes)
    assert str(idx_dir) in str(info.value)
    assert all(f"{k}={v}" in str(info.value) for k, v in sizes.items())


def test_sizes_larger_than_the_csv_data(tmp_path):
    path = write_csv(tmp_path / "d.csv")
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*test_size=5, val_size=31"):
        load_mnist(path, val_size=31, n_classes=N_CLASSES)


@pytest.mark.parametrize("name", ["train_size", "val_size", "test_size"])
def test_negative_size_is_a_value_error_naming_the_parameter(idx_dir, name):
    with pytest.raises(ValueError, match=name) as info:
        load_mnist(idx_dir, n_classes=N_CLASSES, **{name: -1})
    assert not isinstance(info.value, DataError)


@pytest.mark.parametrize("dtype", ["float16", "int32", "banana"])
def test_bad_dtype_is_a_value_error_naming_dtype(idx_dir, dtype):
    with pytest.raises(ValueError, match="dtype"):
        load_mnist(idx_dir, dtype=dtype, n_classes=N_CLASSES)


# ----------------------------------------------------------------------------- splits


def expected_idx_split(seed, train_size, val_size, test_size):
    """The documented rule, restated: validation first, then training, from one permutation."""
    images, labels = tiny_images()
    X = images.reshape(len(images), -1) / 255
    rng = np.random.default_rng(seed)
    perm = rng.permutation(N_TRAIN)
    val, train = perm[:val_size], perm[val_size : val_size + train_size]
    test = N_TRAIN + np.sort(rng.permutation(N_TEST)[:test_size])
    return {k: (X[i], labels[i]) for k, i in (("train", train), ("val", val), ("test", test))}


def assert_split(splits, expected):
    for part, (X, y) in expected.items():
        np.testing.assert_array_equal(getattr(splits, f"X_{part}"), X.astype(splits.X_train.dtype))
        np.testing.assert_array_equal(getattr(splits, f"y_{part}"), y)


def test_idx_split_follows_the_documented_rule(idx_dir):
    splits = load_mnist(idx_dir, train_size=20, val_size=6, test_size=3, seed=4, n_classes=3)
    assert_split(splits, expected_idx_split(4, 20, 6, 3))


def test_idx_defaults_keep_the_rest_for_training_and_the_whole_test_set_in_order(idx_dir):
    splits = load_mnist(idx_dir, val_size=6, n_classes=N_CLASSES)
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (24, 6, N_TEST)
    np.testing.assert_array_equal(splits.y_test, tiny_images()[1][N_TRAIN:])


@pytest.mark.parametrize("header", [True, False])
def test_csv_split_follows_the_documented_rule(tmp_path, header):
    images, labels = tiny_images()
    X = images.reshape(len(images), -1) / 255
    perm = np.random.default_rng(3).permutation(len(labels))
    test, val, train = perm[:5], perm[5:12], perm[12:]  # default test_size = round(35 / 7) = 5
    splits = load_mnist(write_csv(tmp_path / "d.csv", header), val_size=7, seed=3, n_classes=3)
    assert_split(
        splits,
        {
            "train": (X[train], labels[train]),
            "val": (X[val], labels[val]),
            "test": (X[test], labels[test]),
        },
    )


def test_splits_are_disjoint_and_cover_the_pool(idx_dir):
    splits = load_mnist(idx_dir, val_size=8, n_classes=N_CLASSES)
    train, val, test = (row_keys(x) for x in (splits.X_train, splits.X_val, splits.X_test))
    assert len(train) == 22 and len(val) == 8 and not train & val
    assert not (train | val) & test


def test_seed_decides_the_split(idx_dir):
    a, b, c = (load_mnist(idx_dir, val_size=8, seed=s, n_classes=3) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert row_keys(a.X_val) != row_keys(c.X_val)


def test_array_types_and_ranges(idx_dir):
    for dtype in ("float32", "float64", np.float64):
        splits = load_mnist(idx_dir, val_size=8, dtype=dtype, n_classes=N_CLASSES)
        for part in ("train", "val", "test"):
            X, y = getattr(splits, f"X_{part}"), getattr(splits, f"y_{part}")
            assert X.dtype == np.dtype(dtype) and X.flags.c_contiguous
            assert X.min() >= 0 and X.max() <= 1 and y.dtype == np.int64
    all_X = np.concatenate([splits.X_train, splits.X_val, splits.X_test])
    assert all_X.min() == 0 and all_X.max() == 1  # pixels / 255, 0 and 255 both occur
    assert splits.n_features == ROWS * COLS and splits.n_classes == N_CLASSES
    assert "(IDX)" in splits.source and str(idx_dir) in splits.source


def test_val_size_zero_gives_empty_arrays_of_the_right_shape(idx_dir):
    splits = load_mnist(idx_dir, val_size=0, n_classes=N_CLASSES)
    assert splits.X_val.shape == (0, ROWS * COLS) and splits.y_val.shape == (0,)
    assert len(splits.y_train) == N_TRAIN


def test_fingerprint_is_stable_and_tells_splits_apart(idx_dir):
    def fp(**kw):
        return load_mnist(idx_dir, **{"val_size": 8, "n_classes": N_CLASSES, **kw}).fingerprint()

    base = fp()
    assert re.fullmatch("[0-9a-f]{32}", base) and fp() == base
    others = {fp(seed=1), fp(val_size=9), fp(test_size=4), fp(dtype="float64"), fp(n_classes=4)}
    assert base not in others and len(others) == 5


def test_fingerprint_is_cached_on_the_frozen_splits(idx_dir):
    splits = load_mnist(idx_dir, val_size=8, n_classes=N_CLASSES)
    first = splits.fingerprint()
    assert splits._fingerprint == first and splits.fingerprint() == first
    with pytest.raises(AttributeError):
        splits.n_classes = 4


def test_decoded_files_are_cached_but_not_exposed(idx_dir, monkeypatch):
    calls = []
    real = data.read_idx_dir
    monkeypatch.setattr(data, "read_idx_dir", lambda *a: calls.append(a) or real(*a))
    data._cache.clear()
    first = load_mnist(idx_dir, val_size=8, n_classes=N_CLASSES)
    first.y_train[:] = 99
    first.X_test[:] = 7
    second = load_mnist(idx_dir, val_size=8, n_classes=N_CLASSES)
    assert len(calls) == 1
    assert second.y_train.max() < N_CLASSES and second.X_test.max() <= 1
    label_file = idx_dir / MNIST_FILES[3]
    label_file.write_bytes(idx_bytes(2049, np.zeros(N_TEST, np.uint8)))
    os.utime(label_file, ns=(0, 0))  # a changed file is decoded again
    assert load_mnist(idx_dir, val_size=8, n_classes=N_CLASSES).y_test.max() == 0
    assert len(calls) == 2


def test_env_var_is_honoured_and_an_explicit_path_beats_it(tmp_path, monkeypatch):
    from_env = write_idx_dir(tmp_path / "env")
    explicit = write_csv(tmp_path / "explicit.csv")
    monkeypatch.setenv("FFNN_DATA", str(from_env))
    assert data.resolve_data_path() == from_env.resolve()
    assert str(from_env.resolve()) in load_mnist(val_size=2, n_classes=N_CLASSES).source
    splits = load_mnist(explicit, val_size=2, n_classes=N_CLASSES)
    assert str(explicit.resolve()) in splits.source and "(CSV)" in splits.source


def test_splits_rejects_mismatched_arrays():
    X, y = np.zeros((4, 3)), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="y_val"):
        data.Splits(X, y, X, y[:3], X, y, n_classes=2, source="test")


# ----------------------------------------------------------------------------- MNIST


def test_mnist_default_and_custom_sizes(no_env):
    splits = ffnn.load_mnist()
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (54000, 6000, 10000)
    assert splits.n_features == 784 and splits.n_classes == 10
    assert splits.X_train.shape == (54000, 784) and splits.X_train.dtype == np.float32
    small = ffnn.load_mnist(train_size=34000, val_size=6000, test_size=2000)
    assert (len(small.y_train), len(small.y_val), len(small.y_test)) == (34000, 6000, 2000)
    np.testing.assert_array_equal(small.y_val, splits.y_val)  # same seed, same validation set
    perm = np.random.default_rng(0).permutation(60000)
    X_pool = read_idx_dir(data.resolve_data_path())[0]
    np.testing.assert_array_equal(np.rint(splits.X_val[:5] * 255), X_pool[perm[:5]])


def test_mnist_packaged_copy(no_env):
    """With FFNN_TEST_INSTALLED=1 the package and its data must come from the installed wheel."""
    where = data.resolve_data_path()
    if os.environ.get("FFNN_TEST_INSTALLED") == "1":
        # nox's virtualenv lives inside the checkout (.nox/), so compare with the source dirs.
        assert not Path(ffnn.__file__).resolve().is_relative_to(REPO / "ffnn"), ffnn.__file__
        assert not where.is_relative_to(REPO / "data"), where
    splits = ffnn.load_mnist()
    assert str(where) in splits.source
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (54000, 6000, 10000)
    labels = read_idx_labels(where / "train-labels-idx1-ubyte.gz", n_classes=10)
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_packaged_files_match_the_readme_sums(no_env):
    readme = (REPO / "data" / "README.md").read_text()
    sums = dict(re.findall(r"^\| (\S+\.gz) \|.*\| ([0-9a-f]{64}) \|$", readme, re.MULTILINE))
    assert sorted(sums) == sorted(f"{name}.gz" for name in MNIST_FILES)
    where = data.resolve_data_path()
    for name, digest in sums.items():
        assert hashlib.sha256(gzip.decompress((where / name).read_bytes())).hexdigest() == digest


# ----------------------------------------------------------------------------- huge headers


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dims", [(2**21, 2**21, 2**21), (2**22, 2**21, 2**21),
                                  (2**31 - 1,) * 3, (1, 2**21, 2**21)])
def test_a_header_promising_more_than_the_file_is_a_data_error(idx_dir, dims, gz):
    """Sizes are Python ints (``np.prod`` overflows int64 for 2^21 x 2^21 x 2^21) checked
    against the data: one DataError naming the file and the exact promised size."""
    target = idx_dir / MNIST_FILES[0]
    content = struct.pack(">4i", 2051, *dims) + bytes(100)
    target.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(DataError) as info:
        load_mnist(idx_dir, val_size=2, n_classes=N_CLASSES)
    message = str(info.value)
    assert str(target) in message
    assert f"promises {16 + dims[0] * dims[1] * dims[2]} bytes, file has 116" in message


def test_a_label_header_promising_more_than_the_file_is_a_data_error(idx_dir):
    target = idx_dir / MNIST_FILES[1]
    target.write_bytes(struct.pack(">2i", 2049, 2**31 - 1) + bytes(30))
    with pytest.raises(DataError, match=re.escape(f"{target}: truncated body")):
        load_mnist(idx_dir, val_size=2, n_classes=N_CLASSES)


def test_images_of_no_pixels_are_a_data_error(idx_dir):
    target = idx_dir / MNIST_FILES[0]
    target.write_bytes(struct.pack(">4i", 2051, 30, 0, 4))
    with pytest.raises(DataError, match=re.escape(f"{target}: header (30, 0, 4) declares images")):
        load_mnist(idx_dir, val_size=2, n_classes=N_CLASSES)
