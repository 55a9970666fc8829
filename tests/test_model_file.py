"""``ffnn.load_model`` refuses every bad model file with a ``ModelFileError`` naming the file,
inflates nothing before the sizes fit the metadata, and loads a good file exactly."""

import io
import json
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from ffnn.kernels.layout import n_params, unpack
from numpy.lib import format as npy

import ffnn
from ffnn import ModelFileError
from ffnn.model_file import MAX_META_BYTES, layer_shapes, parameter_count

N_FEATURES, HIDDEN, N_CLASSES = 6, 4, 3
N_PARAMS = N_FEATURES * HIDDEN + HIDDEN + HIDDEN * N_CLASSES + N_CLASSES


def good_network(**config) -> ffnn.Network:
    config = ffnn.TrainConfig(hidden_size=HIDDEN, backend="numpy", **config)
    theta = np.random.default_rng(0).normal(size=N_PARAMS).astype(config.dtype)
    return ffnn.Network(theta, N_FEATURES, HIDDEN, N_CLASSES, config.activation, "numpy", config)


def good_meta() -> dict:
    net = good_network()
    return {"format_version": 1, "n_features": N_FEATURES, "hidden_size": HIDDEN,
            "n_classes": N_CLASSES, "activation": net.activation, "backend": "numpy",
            "dtype": "float32", "config": net.config.to_dict()}


def write_model(path, meta=None, theta=None, *, meta_text=None):
    """An ``np.savez`` file like ``Network.save`` writes, with any metadata and theta."""
    theta = good_network().theta if theta is None else theta
    text = json.dumps(good_meta() if meta is None else meta) if meta_text is None else meta_text
    np.savez(path, theta=theta, meta=np.array(text))
    return path


def npy_header(shape, descr="<f4") -> bytes:
    out = io.BytesIO()
    npy.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue()


def write_deflated_zip(path, members):
    """A zip archive of deflated members, each ``(name, prefix, n_zeros)``: ``prefix`` then
    ``n_zeros`` zero bytes, compressed without ever holding the zeros in memory (the deflate
    stream of one 16 MiB zero block is repeated; each copy refers only to itself)."""
    block = bytes(1 << 24)
    fresh = zlib.compressobj(9, zlib.DEFLATED, -15)
    block_stream = fresh.compress(block) + fresh.flush(zlib.Z_FULL_FLUSH)
    records, central = bytearray(), bytearray()
    for name, prefix, n_zeros in members:
        n_blocks, rest = divmod(n_zeros, len(block))
        head = zlib.compressobj(9, zlib.DEFLATED, -15)
        stream = head.compress(prefix + bytes(rest)) + head.flush(zlib.Z_FULL_FLUSH)
        stream += block_stream * n_blocks + b"\x03\x00"  # then an empty final block
        crc = zlib.crc32(prefix + bytes(rest))
        for _ in range(n_blocks):
            crc = zlib.crc32(block, crc)
        size = len(prefix) + n_zeros
        fields = (20, 0, 8, 0, 0, crc, len(stream), size, len(name), 0)
        offset = len(records)
        records += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + name.encode() + stream
        central += struct.pack("<IH", 0x02014B50, 20) + struct.pack("<HHHHHIIIHH", *fields)
        central += struct.pack("<HHHII", 0, 0, 0, 0, offset) + name.encode()
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                      len(records), 0)
    path.write_bytes(bytes(records + central + end))
    return path


def meta_member(meta: dict) -> bytes:
    out = io.BytesIO()
    np.save(out, np.array(json.dumps(meta)))
    return out.getvalue()


GIGA_PARAMS = 300_000_000  # 1.2 GB of float32


def bomb_inconsistent(path):
    """~1 MB on disk: metadata of a 6-4-3 network, a theta.npy of 1.2 GB of zeros."""
    return write_deflated_zip(path, [("meta.npy", meta_member(good_meta()), 0),
                                     ("theta.npy", npy_header((GIGA_PARAMS,)), 4 * GIGA_PARAMS)])


def bomb_consistent(path):
    """~1 MB on disk; metadata, header and sizes all agree on a 1.2 GB network."""
    hidden = GIGA_PARAMS // (N_FEATURES + 1 + N_CLASSES)
    n_params = N_FEATURES * hidden + hidden + hidden * N_CLASSES + N_CLASSES
    meta = {**good_meta(), "hidden_size": hidden, "config": None}
    return write_deflated_zip(path, [("meta.npy", meta_member(meta), 0),
                                     ("theta.npy", npy_header((n_params,)), 4 * n_params)])


def without(key):
    meta = good_meta()
    del meta[key]
    return meta


def changed(**changes):
    return {**good_meta(), **changes}


def with_config(**changes):
    meta = good_meta()
    meta["config"] = {**meta["config"], **changes}
    return meta


def truncated(path):
    write_model(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# The table of issue 9, then the other ways a file can be wrong: name -> (writer, message part).
BAD_FILES = {
    "truncated": (truncated, "not a zip archive"),
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "missing meta keys": (lambda p: write_model(p, without("activation")), "lacks activation"),
    "meta a JSON list": (lambda p: write_model(p, [1, 2]), "metadata is a JSON list"),
    "wrong type n_features": (lambda p: write_model(p, changed(n_features="6")),
                              "n_features: expected a positive integer, got '6'"),
    "wrong type config": (lambda p: write_model(p, changed(config=[1])),
                          "config: expected an object or null, got a JSON list"),
    "wrong type in config": (lambda p: write_model(p, with_config(learning_rate="fast")),
                             "learning_rate: expected a number"),
    "unknown activation": (lambda p: write_model(p, changed(activation="swish")),
                           "activation: 'swish' is not one of"),
    "unknown backend": (lambda p: write_model(p, changed(backend="jax")),
                        "backend: 'jax' is not one of"),
    "int64 weights": (lambda p: write_model(p, theta=np.zeros(N_PARAMS, np.int64)),
                      "holds int64 values, the metadata says float32"),
    "int64 dtype in meta": (lambda p: write_model(p, changed(dtype="int64"),
                                                  np.zeros(N_PARAMS, np.int64)),
                            "dtype: 'int64' is not one of"),
    "zip bomb, shapes disagree": (bomb_inconsistent, "possible zip bomb"),
    "zip bomb, shapes agree": (bomb_consistent, "possible zip bomb"),
    "pickled metadata": (lambda p: np.savez(p, theta=good_network().theta,
                                            meta=np.array([{"a": 1}], dtype=object)),
                         "pickled data"),
    "not a zip": (lambda p: p.write_bytes(npy_header((0,))), "not a zip archive"),
    "missing member": (lambda p: np.savez(p, theta=np.zeros(3)), "expected 'meta.npy'"),
    "extra member": (lambda p: np.savez(p, theta=good_network().theta,
                                        meta=np.array(json.dumps(good_meta())), x=np.zeros(1)),
                     "'x.npy'"),
    "metadata not JSON": (lambda p: write_model(p, meta_text="{not json"), "not valid JSON"),
    "metadata not a string": (lambda p: np.savez(p, theta=good_network().theta,
                                                 meta=np.zeros(3)),
                              "meta.npy has shape (3,), expected a 0-d array"),
    "metadata a number": (lambda p: np.savez(p, theta=good_network().theta, meta=np.float64(1)),
                          "not a unicode string"),
    "metadata too large": (lambda p: write_model(p, meta_text=" " * MAX_META_BYTES),
                           "more than the 65536 allowed"),
    "deeply nested metadata": (lambda p: write_model(p, meta_text="[" * 10000),
                               "not valid JSON"),
    "unknown meta key": (lambda p: write_model(p, changed(colour="red")),
                         "unknown key(s) colour"),
    "format version 2": (lambda p: write_model(p, changed(format_version=2)),
                         "unsupported format_version 2"),
    "format version true": (lambda p: write_model(p, changed(format_version=True)),
                            "unsupported format_version True"),
    "zero classes": (lambda p: write_model(p, changed(n_classes=0)), "n_classes"),
    "hidden size disagrees with config": (lambda p: write_model(p, with_config(hidden_size=5)),
                                          "its config says 5"),
    "theta too short": (lambda p: write_model(p, theta=good_network().theta[:-1]),
                        f"need ({N_PARAMS},)"),
    "theta 2-D": (lambda p: write_model(p, theta=good_network().theta.reshape(1, -1)),
                  "expected a 1-d array"),
    "big-endian theta": (lambda p: write_model(p, theta=good_network().theta.astype(">f4")),
                         "holds >f4 values"),
    "member longer than its header says": (
        lambda p: write_deflated_zip(p, [("meta.npy", meta_member(good_meta()), 0),
                                         ("theta.npy", npy_header((N_PARAMS,)), 4 * N_PARAMS + 8)]),
        "its header promises"),
    "member shorter than its header says": (
        lambda p: write_deflated_zip(p, [("meta.npy", meta_member(good_meta()), 0),
                                         ("theta.npy", npy_header((N_PARAMS,)), 4 * N_PARAMS - 8)]),
        "its header promises"),
    "non-finite weights": (lambda p: write_model(p, theta=np.full(N_PARAMS, np.nan, np.float32)),
                           "non-finite parameter"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_every_bad_file_is_a_model_file_error_naming_the_file(tmp_path, case):
    make, message = BAD_FILES[case]
    path = tmp_path / "model.npz"
    make(path)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as info:
            ffnn.load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert peak < 8 * 2**20, f"peak {peak} bytes"


def test_the_zip_bombs_are_real(tmp_path):
    """The bombs above are ~1 MB files that a loader without the size checks inflates to over
    1 GB: here their directories are read, and their first megabyte really inflates."""
    for make in (bomb_inconsistent, bomb_consistent):
        path = make(tmp_path / "bomb.npz")
        assert path.stat().st_size < 1.5e6
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("theta.npy")
            assert info.file_size > 1.1e9
            with archive.open(info) as stream:
                assert stream.read(1 << 20)[-4:] == bytes(4)


def test_model_file_error_is_a_value_error_exported_by_ffnn():
    assert issubclass(ffnn.ModelFileError, ValueError)
    assert "ModelFileError" in ffnn.__all__


def test_missing_file_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="nowhere.npz: file not found"):
        ffnn.load_model(tmp_path / "nowhere.npz")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("compressed", [False, True])
def test_a_good_file_round_trips_and_predicts_identically(tmp_path, dtype, compressed):
    net = good_network(dtype=dtype)
    path = tmp_path / "model.npz"
    if compressed:  # np.savez_compressed output is accepted too
        np.savez_compressed(path, theta=net.theta, meta=np.array(json.dumps(
            {**good_meta(), "dtype": dtype, "config": net.config.to_dict()})))
    else:
        net.save(path)
    loaded = ffnn.load_model(path)
    assert loaded.config == net.config and loaded.dtype == net.dtype
    assert np.array_equal(loaded.theta, net.theta) and loaded.theta.flags.writeable
    X = np.random.default_rng(1).random((20, N_FEATURES))
    assert np.array_equal(loaded.predict_proba(X), net.predict_proba(X))


def test_a_network_without_config_round_trips(tmp_path):
    net = good_network()
    net.config = None
    net.save(tmp_path / "m.npz")
    assert ffnn.load_model(tmp_path / "m.npz").config is None


def test_per_layer_shapes_match_the_flat_layout():
    """The per-layer checks (reusable for deeper networks) agree with ``kernels.layout``."""
    assert layer_shapes([784, 10, 10]) == [((784, 10), (10,)), ((10, 10), (10,))]
    assert parameter_count([784, 10, 10]) == n_params(784, 10, 10)
    views = unpack(np.zeros(N_PARAMS), N_FEATURES, HIDDEN, N_CLASSES)
    assert [v.shape for v in views] == [s for layer in layer_shapes([N_FEATURES, HIDDEN,
                                                                      N_CLASSES]) for s in layer]
    assert parameter_count([2**40, 2**40, 2**40]) == 2 * (2**80 + 2**40)  # no int64 overflow
