"""The ``.npz`` model file: written by ``Network.save``, read back by ``load_model`` without
trusting it.

Layout (format version 1): a zip archive (``numpy.savez``) of exactly two ``.npy`` members,

* ``meta.npy``: a 0-d unicode array holding a JSON object with the keys of ``META_KEYS``, and
  ``output`` (``OPTIONAL_META_KEYS``) when the output layer is not softmax: files written
  before the logistic output existed, and every softmax network's file, are exactly as before;
* ``theta.npy``: the flat parameter vector (layout in ``ffnn.kernels.layout``) of the network
  whose layer widths are ``[n_features, *hidden_sizes, n_classes]``: every layer's ``W`` and
  ``b`` in order, the last layer's ``n_classes`` its output units (softmax classes, or
  logistic units: one for a binary network). The metadata's ``hidden_size`` is an int for one
  hidden layer (files written before depth existed are exactly these) and a list of ints for
  more.

``load_model`` decides everything it can before it inflates anything: the members' names,
compression and sizes from the zip directory; the metadata (at most ``MAX_META_BYTES``) checked
key by key, its activation, output, backend, dtype and sizes by building a ``TrainConfig``; then the
``.npy`` header of every parameter array (dtype, shape) against the shapes the layer widths
imply (``layer_shapes``), and the member's size against that header. A member may not inflate
to more than ``MAX_INFLATION`` times its compressed size (beyond ``FREE_INFLATION_BYTES``),
so memory stays proportional to the file. Arrays are then read in chunks into their final
buffers, the zip CRCs checked, and non-finite weights refused. Whatever is wrong raises
:class:`ModelFileError` naming the file and the problem; a file that loads predicts exactly as
the network that was saved.
"""

from __future__ import annotations

import io
import json
import math
import os
import reprlib
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from .config import TrainConfig
from .model import Network

FORMAT_VERSION = 1
META_MEMBER = "meta.npy"
THETA_MEMBER = "theta.npy"
META_KEYS = ("format_version", "n_features", "hidden_size", "n_classes", "activation", "backend",
             "dtype", "config")
OPTIONAL_META_KEYS = {"output": "softmax"}  # key -> the value a file without it means
MAX_META_BYTES = 64 * 1024  # real metadata is ~4 KB (UTF-32 JSON of a TrainConfig)
MAX_NPY_HEADER_BYTES = 12 + 10000  # magic, version, length field, numpy's largest header
MAX_INFLATION = 16  # float weights barely compress: np.savez_compressed gets ~1.1x
FREE_INFLATION_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 20
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what np.savez(_compressed) write
# What zipfile, zlib and numpy's header parser raise on a damaged archive (zipfile raises
# struct.error and EOFError on some truncations, numpy ValueError on a bad header).
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
                   ValueError, struct.error, RecursionError)


class ModelFileError(ValueError):
    """A model file is unreadable, inconsistent or unsafe; the message names the file and the
    problem."""


@dataclass(frozen=True)
class ArraySpec:
    """The shape and dtype a stored array must have."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python ints: no overflow


def layer_shapes(widths: Sequence[int]) -> list[tuple[tuple[int, int], tuple[int]]]:
    """``[(W shape, b shape), ...]`` per layer of a network with layer widths
    ``[n_features, *hidden_sizes, n_classes]``: layer ``l`` maps ``widths[l]`` inputs to
    ``widths[l+1]`` outputs."""
    return [((fan_in, fan_out), (fan_out,)) for fan_in, fan_out in
            zip(widths[:-1], widths[1:], strict=True)]


def parameter_count(widths: Sequence[int]) -> int:
    """Number of parameters (weights and biases) of all layers, as a Python int."""
    return sum(math.prod(w) + math.prod(b) for w, b in layer_shapes(widths))


def parameter_arrays(widths: Sequence[int], dtype: str) -> dict[str, ArraySpec]:
    """The parameter members of a file for layer widths ``widths``, and the spec each must
    meet. Format 1 stores all layers' ``W`` and ``b`` (``layer_shapes``, in order) as one flat
    vector."""
    return {THETA_MEMBER: ArraySpec((parameter_count(widths),), np.dtype(dtype))}


def save_network(network: Network, path, *, compressed: bool = False) -> None:
    """Write ``network`` to ``path`` in the layout of this module's docstring (its members
    deflated with ``compressed``)."""
    meta = {
        "format_version": FORMAT_VERSION,
        "n_features": network.n_features,
        "hidden_size": (network.hidden_size if len(network.hidden_sizes) == 1
                        else list(network.hidden_sizes)),
        "n_classes": network.n_classes,
        "activation": network.activation,
        "backend": network.backend,
        "dtype": str(network.dtype),
        "config": None if network.config is None else network.config.to_dict(),
    }
    for key, default in OPTIONAL_META_KEYS.items():
        if getattr(network, key) != default:
            meta[key] = getattr(network, key)
    with open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(
            f, theta=network.theta, meta=np.array(json.dumps(meta)))


def load_model(path) -> Network:
    """Read a network written by ``Network.save``; :class:`ModelFileError` for any other file.

    Nothing in the file is executed (pickles are refused) and nothing is inflated before the
    sizes are known to fit the metadata (module docstring).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _read(path, f)
    except ModelFileError:
        raise
    except FileNotFoundError:
        raise ModelFileError(f"{path}: file not found") from None
    except _ARCHIVE_ERRORS as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise ModelFileError(f"{path}: not a readable ffnn model file ({reason})") from None


def _read(path: Path, f) -> Network:
    file_size = os.fstat(f.fileno()).st_size
    if file_size == 0:
        raise ModelFileError(f"{path}: empty file")
    try:
        archive = zipfile.ZipFile(f)
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{path}: not an ffnn model file (not a zip archive: {e})") from None
    with archive:
        members = _check_members(path, archive.infolist(), file_size)
        meta = _read_meta(path, archive, members[META_MEMBER])
        fields, config = _check_meta(path, meta)
        hidden = fields["hidden_size"]
        widths = [fields["n_features"], *(hidden if isinstance(hidden, list) else [hidden]),
                  fields["n_classes"]]
        what = f"a {'-'.join(map(str, widths))} network's parameters"
        arrays = {name: _read_array(path, archive, members[name], spec, what)
                  for name, spec in parameter_arrays(widths, fields["dtype"]).items()}
    theta = arrays[THETA_MEMBER]
    bad = np.flatnonzero(~np.isfinite(theta))
    if bad.size:
        raise ModelFileError(f"{path}: {bad.size} non-finite parameter(s) (first at index "
                             f"{bad[0]}): the network diverged and cannot predict")
    return Network(theta=theta, n_features=fields["n_features"],
                   hidden_size=tuple(widths[1:-1]), n_classes=fields["n_classes"],
                   activation=fields["activation"], backend=fields["backend"], config=config,
                   output=fields["output"])


def _check_members(path: Path, infos: list[zipfile.ZipInfo], file_size: int
                   ) -> dict[str, zipfile.ZipInfo]:
    """The members by name, once their names, flags, compression and sizes are acceptable."""
    names = [info.filename for info in infos]
    if sorted(names) != sorted((META_MEMBER, THETA_MEMBER)):
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise ModelFileError(f"{path}: not an ffnn model file (members [{shown}], expected "
                             f"{META_MEMBER!r} and {THETA_MEMBER!r})")
    for info in infos:
        where = f"{path}: member {info.filename}"
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{where} is encrypted")
        if info.compress_type not in _COMPRESSIONS:
            raise ModelFileError(f"{where} uses compression method {info.compress_type}; "
                                 "only stored and deflated members are read")
        if info.header_offset + info.compress_size > file_size:
            raise ModelFileError(f"{where} claims {info.compress_size} bytes at offset "
                                 f"{info.header_offset}, past the end of the {file_size}-byte "
                                 "file (truncated?)")
        limit = max(FREE_INFLATION_BYTES, MAX_INFLATION * info.compress_size)
        if info.file_size > limit:
            raise ModelFileError(f"{where} would inflate {info.compress_size} bytes to "
                                 f"{info.file_size} (more than {MAX_INFLATION}x): refusing a "
                                 "possible zip bomb")
    return {info.filename: info for info in infos}


def _read_meta(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    """The decoded JSON value of the metadata member (any JSON type; checked by the caller)."""
    if info.file_size > MAX_META_BYTES:
        raise ModelFileError(f"{path}: metadata member is {info.file_size} bytes, more than the "
                             f"{MAX_META_BYTES} allowed")
    with archive.open(info) as stream:
        raw = stream.read(MAX_META_BYTES + 1)  # reading to the end checks the CRC
    _, dtype, body = _npy_header(path, META_MEMBER, raw, ndim=0)
    if dtype.kind != "U" or dtype.byteorder not in "=<|" or len(body) != dtype.itemsize:
        raise ModelFileError(f"{path}: {META_MEMBER} is not a unicode string "
                             f"(dtype {dtype}, {len(body)} data bytes)")
    try:
        return json.loads(body.decode("utf-32-le").rstrip("\0"))
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({e})") from None


def _check_meta(path: Path, meta) -> tuple[dict, TrainConfig | None]:
    """The metadata's fields, each of the right type, and its ``TrainConfig`` (or None)."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: metadata is a JSON {_json_type(meta)}, expected an object")
    version = meta.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported format_version {version!r} "
                             f"(this ffnn reads {FORMAT_VERSION})")
    missing = [key for key in META_KEYS if key not in meta]
    unknown = sorted(set(meta) - set(META_KEYS) - set(OPTIONAL_META_KEYS))
    if missing or unknown:
        raise ModelFileError(f"{path}: metadata " + "; ".join(
            part for part in (missing and f"lacks {', '.join(missing)}",
                              unknown and f"has unknown key(s) {', '.join(unknown)}") if part))
    for key in ("n_features", "hidden_size", "n_classes"):
        value = meta[key]
        if key == "hidden_size" and isinstance(value, list) and len(value) > 1 and all(
                _is_int(h) and h >= 1 for h in value):
            continue
        if not _is_int(value) or value < 1:
            wanted = "a positive integer" + (
                " or a list of two or more" if key == "hidden_size" else "")
            raise ModelFileError(f"{path}: metadata {key}: expected {wanted}, got "
                                 f"{reprlib.repr(value)}")
    meta = {**OPTIONAL_META_KEYS, **meta}
    for key in ("activation", "backend", "dtype", "output"):
        if not isinstance(meta[key], str):
            raise ModelFileError(f"{path}: metadata {key}: expected a string, got "
                                 f"{reprlib.repr(meta[key])}")
    try:  # TrainConfig decides which activations, outputs, backends, dtypes and sizes exist
        TrainConfig(hidden_sizes=_sizes(meta["hidden_size"]), activation=meta["activation"],
                    backend=meta["backend"], dtype=meta["dtype"], output=meta["output"])
    except ValueError as e:
        raise ModelFileError(f"{path}: metadata {e}") from None
    config = meta["config"]
    if config is not None:
        if not isinstance(config, dict):
            raise ModelFileError(f"{path}: metadata config: expected an object or null, got a "
                                 f"JSON {_json_type(config)}")
        try:
            config = TrainConfig.from_dict(config)
        except (ValueError, TypeError) as e:
            raise ModelFileError(f"{path}: metadata config: {e}") from None
        for key, ours in (("hidden_size", config.hidden_sizes),
                          ("activation", config.activation), ("output", config.output)):
            theirs = _sizes(meta[key]) if key == "hidden_size" else meta[key]
            if ours != theirs:
                raise ModelFileError(f"{path}: metadata says {key}={meta[key]!r} but its config "
                                     f"says {getattr(config, key) or list(ours)!r}")
    return {key: meta[key] for key in (*META_KEYS, *OPTIONAL_META_KEYS)}, config


def _npy_header(path: Path, member: str, prefix: bytes, ndim: int
                ) -> tuple[tuple, np.dtype, bytes]:
    """``(shape, dtype, data bytes after the header)`` from the first bytes of a ``.npy``
    member (``MAX_NPY_HEADER_BYTES`` at most: numpy refuses longer headers, and reading no more
    keeps a lying header-length field from inflating the member)."""
    reader = io.BytesIO(prefix)
    try:
        version = npy.read_magic(reader)
        if version == (1, 0):
            shape, fortran_order, dtype = npy.read_array_header_1_0(reader)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy.read_array_header_2_0(reader)
        else:
            raise ModelFileError(f"{path}: {member}: unsupported .npy version {version}")
    except ModelFileError:
        raise
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{path}: {member}: bad .npy header ({e})") from None
    if dtype.hasobject:
        raise ModelFileError(f"{path}: {member} holds Python objects (pickled data); refusing to "
                             "load it")
    if len(shape) != ndim:
        raise ModelFileError(f"{path}: {member} has shape {shape}, expected a {ndim}-d array")
    if fortran_order and ndim > 1:
        raise ModelFileError(f"{path}: {member} is stored in Fortran order")
    return shape, dtype, prefix[reader.tell():]


def _read_array(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, spec: ArraySpec,
                what: str) -> np.ndarray:
    """The array of member ``info``, once its header matches ``spec``: read in chunks into its
    final buffer, so a lying size costs no more memory than the truth."""
    member = info.filename
    with archive.open(info) as stream:
        prefix = stream.read(MAX_NPY_HEADER_BYTES)
        shape, dtype, data = _npy_header(path, member, prefix, ndim=len(spec.shape))
        if dtype != spec.dtype:
            raise ModelFileError(f"{path}: {member} holds {dtype} values, the metadata says "
                                 f"{spec.dtype}")
        if shape != spec.shape:
            raise ModelFileError(f"{path}: {member} has shape {shape}, {what} need "
                                 f"{spec.shape}")
        header_bytes = len(prefix) - len(data)
        if info.file_size != header_bytes + spec.nbytes:
            raise ModelFileError(f"{path}: {member} is {info.file_size} bytes, its header "
                                 f"promises {header_bytes + spec.nbytes}")
        array = np.empty(spec.shape, spec.dtype)
        buffer = array.reshape(-1).view(np.uint8)
        position = 0
        while position < spec.nbytes:
            chunk = data or stream.read(min(_CHUNK_BYTES, spec.nbytes - position))
            data = b""
            if not chunk:
                raise ModelFileError(f"{path}: {member} ends after {position} of "
                                     f"{spec.nbytes} data bytes")
            if position + len(chunk) > spec.nbytes:
                break
            buffer[position:position + len(chunk)] = np.frombuffer(chunk, np.uint8)
            position += len(chunk)
        if position != spec.nbytes or stream.read(1):  # reading to the end checks the CRC
            raise ModelFileError(f"{path}: {member} has data past its {spec.nbytes} bytes")
    return array


def _sizes(hidden) -> tuple:
    """The metadata's ``hidden_size`` (an int or a list) as a tuple of sizes."""
    return tuple(hidden) if isinstance(hidden, list) else (hidden,)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)
