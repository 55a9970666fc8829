"""Property-based tests of every file parser of the core: the IDX and CSV loaders and
``load_model``, fed random bytes, random headers and mutated valid files.

The promise under test: each call gives a clean ``DataError`` / ``ModelFileError`` naming the
file, or a correct result (checked against an independent decoding), never anything else,
never a hang (pytest-timeout, see ``conftest.py``) and never more memory than a small multiple
of the file's size (``tracemalloc`` peak).
"""

import gzip
import json
import struct
import tracemalloc
from contextlib import contextmanager

import numpy as np
import pytest
from ffnn.kernels import codes, reference
from hypothesis import HealthCheck, example, given, is_hypothesis_test, settings
from hypothesis import strategies as st

import ffnn
from ffnn import DataError, ModelFileError
from ffnn.data import read_csv, read_idx_images, read_idx_labels

# Examples write a file into one module-wide directory (function-scoped tmp_path would be shared
# by all examples of a test anyway).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@contextmanager
def bounded_memory(file_size: int, factor: int = 20, slack: int = 4 << 20):
    """Fail if the block's peak traced allocation exceeds ``factor x file_size + slack``."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= factor * file_size + slack, f"peak {peak} bytes for a {file_size}-byte file"


def mutate(data: bytes, draw) -> bytes:
    """One to three random edits: flip bits of a byte, truncate, insert or delete bytes."""
    for _ in range(draw(st.integers(1, 3))):
        n = len(data)
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        at = draw(st.integers(0, max(n - 1, 0)))
        if kind == "flip" and n:
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif kind == "truncate":
            data = data[:at]
        elif kind == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif n:
            data = data[:at] + data[at + draw(st.integers(1, 8)):]
    return data


# --------------------------------------------------------------------------- IDX


def idx_file(magic: int, array: np.ndarray) -> bytes:
    return struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.tobytes()


IMAGES = np.random.default_rng(3).integers(0, 256, (5, 3, 4), dtype=np.uint8)
LABELS = np.array([0, 1, 2, 1, 0], dtype=np.uint8)
VALID_IDX = [(2051, idx_file(2051, IMAGES)), (2049, idx_file(2049, LABELS))]


def decode_idx(content: bytes, magic: int):
    """The independent decoding: the array the bytes describe, or None if they describe none."""
    if content[:2] == b"\x1f\x8b":
        try:
            content = gzip.decompress(content)
        except Exception:
            return None
    n_dims = 3 if magic == 2051 else 1
    if len(content) < 4 * (n_dims + 1):
        return None
    found, *dims = struct.unpack(f">{n_dims + 1}i", content[: 4 * (n_dims + 1)])
    body = content[4 * (n_dims + 1):]
    if found != magic or min(dims) < 0 or len(body) != np.prod(dims, dtype=object):
        return None
    if n_dims == 3 and 0 in dims[1:]:
        return None
    return np.frombuffer(body, np.uint8).reshape(dims)


def check_idx(path, content: bytes, magic: int) -> None:
    """Read ``content`` from ``path`` as an IDX file of ``magic``: DataError naming the file,
    or exactly the independent decoding."""
    path.write_bytes(content)
    reader = read_idx_images if magic == 2051 else read_idx_labels
    try:
        with bounded_memory(len(content)):
            result = reader(path)
    except DataError as e:
        assert str(path) in str(e)
        assert decode_idx(content, magic) is None, f"refused a valid file: {e}"
        return
    expected = decode_idx(content, magic)
    assert expected is not None and np.array_equal(result, expected)


@FUZZ
@given(magic=st.sampled_from([2051, 2049]), content=st.binary(max_size=300))
def test_idx_random_bytes(workdir, magic, content):
    check_idx(workdir / "random.idx", content, magic)


@FUZZ
@given(data=st.data(), which=st.sampled_from([0, 1]), gz=st.booleans())
def test_idx_mutated_valid_files(workdir, data, which, gz):
    magic, content = VALID_IDX[which]
    if gz:
        content = gzip.compress(content, mtime=0)
    check_idx(workdir / "mutated.idx", mutate(content, data.draw), magic)


SIZES = st.integers(-2**31, 2**31 - 1) | st.integers(0, 6) | st.sampled_from([2**21, 2**31 - 1])


@FUZZ
@given(magic=st.sampled_from([2051, 2049]), dims=st.lists(SIZES, min_size=3, max_size=3),
       body=st.binary(max_size=200), gz=st.booleans())
@example(magic=2051, dims=[2**22, 2**21, 2**21], body=b"", gz=False)  # overflowed np.prod
@example(magic=2051, dims=[2**21, 2**21, 2**21], body=b"", gz=True)
def test_idx_random_headers(workdir, magic, dims, body, gz):
    dims = dims if magic == 2051 else dims[:1]
    content = struct.pack(f">{1 + len(dims)}i", magic, *dims) + body
    check_idx(workdir / "header.idx", gzip.compress(content, mtime=0) if gz else content, magic)


# --------------------------------------------------------------------------- CSV


VALID_CSV = "label,p0,p1,p2\n" + "".join(f"{i % 3},{i},{(7 * i) % 256},255\n" for i in range(8))
CSV_ALPHABET = st.sampled_from(list("0123456789,\n\r -+.eE_xnaNi\t") + ["\ufeff", "é"])


def decode_csv(text: str, n_classes: int = 10):
    """The independent decoding of a CSV that ``read_csv`` accepted: Python's own number parsing
    of every cell, row by row."""
    lines = [line.rstrip("\r") for line in text.removeprefix("\ufeff").split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    try:
        float(lines[0].split(",")[0])
        rows = lines
    except ValueError:
        rows = lines[1:]
    values = np.array([[float(cell) for cell in row.split(",")] for row in rows])
    assert (values == np.round(values)).all()
    assert ((values[:, 0] >= 0) & (values[:, 0] < n_classes)).all()
    assert ((values[:, 1:] >= 0) & (values[:, 1:] <= 255)).all()
    return values[:, 1:].astype(np.uint8), values[:, 0].astype(np.int64)


def check_csv(path, content: bytes) -> None:
    path.write_bytes(content)
    try:
        with bounded_memory(len(content), factor=200):
            X, y = read_csv(path)
    except DataError as e:
        assert str(path) in str(e)
        return
    if content[:2] == b"\x1f\x8b":
        content = gzip.decompress(content)
    X_expected, y_expected = decode_csv(content.decode("utf-8"))
    assert np.array_equal(X, X_expected) and np.array_equal(y, y_expected)


@FUZZ
@given(text=st.text(CSV_ALPHABET, max_size=120) | st.text(max_size=60))
@example(text="1,2\n0,1_0\n")  # numpy and Python disagree on "1_0"
@example(text="0,\t")  # numpy read a blank cell as 0 (found by this test)
@example(text="1,2\n-,1\n")  # ... and a lone sign
@example(text="1,2.0\n0, \n")  # ... and, as a float, a blank cell as -1
@example(text="1,+ 2\n")  # ... and "+ 2" as 2
def test_csv_random_text(workdir, text):
    check_csv(workdir / "random.csv", text.encode("utf-8"))


@FUZZ
@given(content=st.binary(max_size=200))
def test_csv_random_bytes(workdir, content):
    check_csv(workdir / "bytes.csv", content)


@FUZZ
@given(data=st.data(), gz=st.booleans())
def test_csv_mutated_valid_files(workdir, data, gz):
    text = VALID_CSV
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        insert = data.draw(st.text(CSV_ALPHABET, max_size=3))
        text = text[:at] + insert + text[at + data.draw(st.integers(0, 3)):]
    content = text.encode("utf-8")
    if gz:
        content = mutate(gzip.compress(content, mtime=0), data.draw)
    check_csv(workdir / "mutated.csv", content)


# --------------------------------------------------------------------------- load_model


F, H, C = 5, 3, 4
X_PROBE = np.random.default_rng(5).random((7, F))


@pytest.fixture(scope="module")
def saved(workdir):
    """A valid model file's bytes and the network it holds."""
    config = ffnn.TrainConfig(hidden_size=H, backend="numpy", activation="tanh")
    theta = np.random.default_rng(4).normal(size=F * H + H + H * C + C).astype(np.float32)
    network = ffnn.Network(theta, F, H, C, "tanh", "numpy", config)
    network.save(workdir / "valid.npz")
    return (workdir / "valid.npz").read_bytes(), network


def check_model(path, content: bytes, oracle, refusal_ok: bool = True) -> None:
    """``load_model``: a ModelFileError naming the file (if ``refusal_ok``), or a network that
    predicts as ``oracle(network)`` says it must (None: it must not load)."""
    path.write_bytes(content)
    try:
        with bounded_memory(len(content)):
            network = ffnn.load_model(path)
    except ModelFileError as e:
        assert str(path) in str(e)
        assert refusal_ok, f"refused a good file: {e}"
        return
    expected = oracle(network)
    assert expected is not None, "loaded a file that should have been refused"
    # the numba backend's float32 arithmetic differs from the reference in the last bits
    np.testing.assert_allclose(network.predict_proba(X_PROBE), expected, rtol=1e-5, atol=1e-6)


@FUZZ
@given(data=st.data())
def test_load_model_mutated_files(workdir, saved, data):
    """Any mutation is refused, or (e.g. a flipped byte in an unused zip field) changes nothing."""
    content, network = saved
    reference_P = network.predict_proba(X_PROBE)

    def unchanged(loaded):
        same = (np.array_equal(loaded.theta, network.theta) and loaded.config == network.config
                and loaded.activation == network.activation)
        return reference_P if same else None

    check_model(workdir / "mutated.npz", mutate(content, data.draw), unchanged)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)
META_VALUES = {
    "format_version": st.sampled_from([1, 2, 1.0, True, "1"]),
    "n_features": st.sampled_from([F, F - 1, 0, -F, 10**30, "5", 5.0]),
    "hidden_size": st.sampled_from([H, H + 1, 0, True, 3.0]),
    "n_classes": st.sampled_from([C, C - 1, 1, 2**63]),
    "activation": st.sampled_from(list(codes.ACTIVATIONS) + ["swish", "", 3]),
    "backend": st.sampled_from(["numpy", "numba", "jax", None]),
    "dtype": st.sampled_from(["float32", "float64", "int64", "float16", "object", "<f4"]),
}


CONFIG = ffnn.TrainConfig(hidden_size=H, backend="numpy", activation="tanh").to_dict()
META_KEYS = {"format_version", "n_features", "hidden_size", "n_classes", "activation", "backend",
             "dtype", "config"}


def meta_oracle(meta: dict, theta: np.ndarray):
    """What a network loaded with metadata ``meta`` must predict, decided without ffnn's loader;
    None if no network may be built from it."""
    if set(meta) != META_KEYS or type(meta["format_version"]) is not int:
        return None
    sizes = (meta["n_features"], meta["hidden_size"], meta["n_classes"])
    if meta["format_version"] != 1 or sizes != (F, H, C) or any(type(n) is not int for n in sizes):
        return None
    if (meta["activation"] not in codes.ACTIVATIONS or meta["backend"] not in ("numpy", "numba")
            or meta["dtype"] != "float32"):
        return None
    if meta["config"] is not None:
        if not isinstance(meta["config"], dict):
            return None
        try:
            config = ffnn.TrainConfig.from_dict(meta["config"])
        except (ValueError, TypeError):
            return None
        if config.hidden_size != H or config.activation != meta["activation"]:
            return None
    code = codes.activation_code(meta["activation"])
    return reference.forward(X_PROBE.astype(np.float32), theta, H, C, code)[1]


@FUZZ
@given(data=st.data())
@example(data=None)  # the unedited file loads
def test_load_model_edited_metadata(workdir, saved, data):
    """Edited metadata loads exactly when a network can be built from it, and then predicts
    what the NumPy reference computes from the stored weights with that metadata."""
    _, network = saved
    meta = {"format_version": 1, "n_features": F, "hidden_size": H, "n_classes": C,
            "activation": "tanh", "backend": "numpy", "dtype": "float32", "config": CONFIG}
    if data is not None:
        for _ in range(data.draw(st.integers(1, 3))):
            key = data.draw(st.sampled_from(sorted(META_VALUES) + ["config", "extra", "drop"]))
            if key == "drop" and meta:
                meta.pop(data.draw(st.sampled_from(sorted(meta))))
            elif key == "config":
                field = data.draw(st.sampled_from(sorted(CONFIG) + ["unknown"]))
                meta["config"] = {**CONFIG, field: data.draw(JSON)}
            elif key == "extra":
                meta[data.draw(st.text(max_size=5))] = data.draw(JSON)
            elif key in META_VALUES:
                meta[key] = data.draw(META_VALUES[key])
    path = workdir / "edited.npz"
    np.savez(path, theta=network.theta, meta=np.array(json.dumps(meta)))
    expected = meta_oracle(meta, network.theta)
    check_model(path, path.read_bytes(), lambda loaded: expected, refusal_ok=expected is None)


def test_every_hypothesis_test_of_the_session_has_a_hard_timeout(request):
    assert request.config.pluginmanager.hasplugin("timeout")
    fuzz = [item for item in request.session.items
            if is_hypothesis_test(getattr(item, "function", None))]
    assert all(item.get_closest_marker("timeout") for item in fuzz)
