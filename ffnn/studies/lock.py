"""One writer per study output directory: ``RunLock(out)``.

The lock is ``<out>/.ffnn-run.lock``, a file of its own that is never deleted (``--fresh``
included), held with ``flock`` for the whole run: taken before anything else under ``out`` is
created, truncated or deleted, released after the last report is written. The kernel releases a
``flock`` when its holder dies, so a lock left by a killed run never blocks the next one. While
held, the file says who holds it (``{"pid": ..., "host": ..., "since": ...}``); that is
information for the refusal message only, never what decides.

Not POSIX (no ``fcntl``): no lock.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from ..safe_io import naming

__all__ = ["LOCK_FILE", "OutputLocked", "RunLock"]

LOCK_FILE = ".ffnn-run.lock"


class OutputLocked(RuntimeError):
    """Another process holds the run lock of this output directory."""


class RunLock:
    """The exclusive run lock of output directory ``out`` (created if missing).

    ``with RunLock(out):`` or ``acquire()``/``release()``; a second holder, in this process or
    another, gets ``OutputLocked`` naming the directory and the holder (pid, host).
    """

    def __init__(self, out):
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        with naming(self.out):
            self.out.mkdir(parents=True, exist_ok=True)
        with naming(self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputLocked(f"{self.out}: another ffnn-run ({_holder(fd)}) is writing "
                                   "here; wait for it to finish or use another --out") from None
            with naming(self.path):
                holder = json.dumps({"pid": os.getpid(), "host": platform.node(),
                                     "since": datetime.now(UTC).isoformat(timespec="seconds")})
                os.ftruncate(fd, 0)
                os.pwrite(fd, (holder + "\n").encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Clear the holder information and unlock (closing the file releases the flock)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:  # a full or read-only disk: the flock still goes with the close
            pass
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> str:
    """``pid 123 on host h`` from the lock file; the holder writes it just after locking, so
    an empty file is read again for a moment."""
    for _ in range(20):
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"null")
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict):
            return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"
        time.sleep(0.01)
    return "holder unknown"
