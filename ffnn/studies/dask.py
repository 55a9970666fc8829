"""Studies on a Dask distributed cluster: check the scheduler address and connect.

The tasks then run through ``client.get_executor()`` (``execute.open_executor``).

``check_address`` refuses what Dask would not connect to (no ``host:port``, an unknown scheme
such as ``http://``, a port outside 1..65535) before anything is written; ``connect`` gives up
after ``timeout`` seconds (``DEFAULT_TIMEOUT``, or ``$FFNN_DASK_TIMEOUT``) with a one-line
``SchedulerError`` instead of Dask's own 30 s retry and its traceback.
"""

from __future__ import annotations

import logging
import os

__all__ = ["DEFAULT_TIMEOUT", "SchedulerError", "check_address", "connect", "timeout_from_env"]

DEFAULT_TIMEOUT = 10.0
TIMEOUT_ENV = "FFNN_DASK_TIMEOUT"
_HOST_PORT_SCHEMES = ("tcp", "tls", "ws", "wss")


class SchedulerError(ValueError):
    """A Dask scheduler address that is malformed or cannot be reached."""


def _distributed():
    try:
        import distributed
    except ImportError:
        raise RuntimeError("--scheduler needs Dask distributed: pip install 'ffnn[dask]'") from None
    return distributed


def timeout_from_env() -> float:
    """``$FFNN_DASK_TIMEOUT`` (seconds) if set, else ``DEFAULT_TIMEOUT``."""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        timeout = float(text)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout < float("inf"):
        raise SchedulerError(f"{TIMEOUT_ENV}={text!r}: expected a positive number of seconds")
    return timeout


def check_address(address: str) -> str:
    """``address`` if Dask can connect to it in principle (``tcp://host:8786``, ``tls://...``,
    a bare ``host:port`` meaning tcp), else ``SchedulerError`` saying what is wrong."""
    _distributed()
    from distributed.comm import get_address_host, parse_address
    from distributed.comm.addressing import parse_host_port
    from distributed.comm.registry import get_backend

    def bad(why):
        return SchedulerError(f"--scheduler {address!r}: not a Dask scheduler address ({why}); "
                              "expected e.g. tcp://host:8786")

    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        if scheme in _HOST_PORT_SCHEMES:
            host, port = parse_host_port(location)
            if not host:
                raise bad("no host")
            if not 0 < int(port) < 65536:
                raise bad(f"port {port} is not in 1..65535")
        else:
            get_address_host(address)
    except SchedulerError:
        raise
    except (ValueError, TypeError) as e:
        raise bad(str(e).split("\n")[0]) from None
    return address


def connect(address: str, timeout: float | None = None):
    """A ``distributed.Client`` of the scheduler at ``address``, or ``SchedulerError`` after at
    most ``timeout`` seconds (``None``: ``timeout_from_env()``)."""
    distributed = _distributed()
    check_address(address)
    timeout = timeout_from_env() if timeout is None else timeout
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # no "Timed out trying to connect" log lines on top
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        reason = str(e).split("\n")[0] or type(e).__name__
        raise SchedulerError(f"--scheduler {address}: cannot connect within {timeout:g} s "
                             f"({reason})") from None
    finally:
        quiet.setLevel(level)
