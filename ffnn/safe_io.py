"""Whole-file writes that no reader sees half done, and OS errors that name their file.

``replacing(path)`` is the one way study code writes a whole file (``plan.json``, reports,
figures, CSVs, a saved model): the content goes to a temporary file beside ``path``, is flushed
to disk (``fsync``), and only then renamed over ``path`` (``os.replace``, atomic on POSIX). A
reader sees the old file or the new one, never a part; a failure (full disk, read-only disk, a
kill) leaves the old file as it was and no temporary file behind (a kill may leave one, named
``.<name>.<random>.tmp``, which nothing reads).

``naming(path)`` re-raises an ``OSError`` that carries no file name (``write`` on a full disk
says only "No space left on device") with ``path`` as its file name, so ``str(error)`` names it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["check_writable", "naming", "replacing", "write_atomic"]


@contextlib.contextmanager
def naming(path, *, instead_of=None) -> Iterator[None]:
    """Add ``path`` to any ``OSError`` raised inside that names no file (or names
    ``instead_of``, e.g. the temporary file standing for ``path``)."""
    try:
        yield
    except OSError as e:
        if e.filename is not None and (instead_of is None or e.filename != str(instead_of)):
            raise
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e


@contextlib.contextmanager
def replacing(path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it replaces
    ``path`` atomically (after an ``fsync``), on failure it is removed and ``path`` is
    untouched. OS errors name ``path``."""
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # named after the temporary file: name path instead
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    os.close(fd)
    tmp = Path(name)
    try:
        with naming(path, instead_of=tmp):
            yield tmp
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path, content: str | bytes) -> Path:
    """Replace ``path`` by ``content`` (text is written as UTF-8) through ``replacing``."""
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return path


def check_writable(path) -> Path:
    """``path`` if a file can be written there now (its directory exists and takes a new file,
    and it is not a directory), else ``OSError`` naming it: checked before long work whose
    result would otherwise be lost."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    parent = path.parent
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist"
        raise NotADirectoryError(errno.ENOTDIR, f"directory {parent} {why}", str(path))
    try:
        fd, name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, f"cannot write in {parent} ({e.strerror})", str(path)) from e
    os.close(fd)
    os.unlink(name)
    return path
