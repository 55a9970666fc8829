"""Honest train times: the per-epoch cost of a timing key, measured once and persisted.

Runs trained together in a group (``ffnn.train_many``) cannot time themselves: a group's wall
time cannot be split among its members. Their train time is therefore ``epochs x cost``, where
``cost`` is the per-epoch cost of the run's *timing key* trained alone.

The timing key holds every field that changes the work of an epoch:

* ``hidden_sizes`` (the hidden layer widths), ``activation``, ``optimizer``, ``batch_size``,
  ``dtype``, ``backend``, ``threads``, ``input_path`` (the engine's first-layer path), and
  whether ``l2`` is zero (a nonzero ``l2`` adds a
  weight-decay term to every update; its size does not change the work);
* the data: ``n_train`` and ``n_val`` (an epoch is a training pass and a validation pass),
  ``n_features`` and ``n_classes``.

It leaves out what does not change the work of an epoch: the learning rate and the other
optimizer hyperparameters (``momentum``, ``beta1``, ``beta2``, ``eps``, ``rmsprop_alpha``), the
size of a nonzero ``l2``, the seeds (``seed``, ``shuffle_seed``), ``max_epochs`` and the stopping
rules (``early_stopping``, ``patience``, ``min_delta``, ``restore_best``), and the test split
(evaluated once, after the epoch loop).

How a cost is measured (``measure_costs``; in a worker, as a task of its own:
``execute.timing_task``): each key trains alone with ``ffnn.train``, early
stopping off, in *rounds*. A round of a key is one warm-up epoch (discarded) and then
``epochs_per_round`` timed epochs; the rounds of all keys are interleaved round-robin
(round 1 of every key, then round 2 of every key, ...), so a drift of the machine's speed hits
them alike. An epoch's cost is the CPU time of the training thread between the ends of two
consecutive epochs (``time.thread_time()``; with ``threads > 1`` the process CPU time
``time.process_time()``, which includes the helper threads), training and validation pass
included: another process computing on the other core barely moves it. The first round finds
how long an epoch takes; later rounds train enough epochs that every key is timed for at least
``min_seconds`` in ``min_epochs`` epochs or more. The cost is the mean over the timed epochs;
its *spread* is the standard deviation of the per-round means (ddof=1), which covers drift
between rounds.

Costs are kept in ``<out>/timing.json`` (``TimingStore``), keyed by timing key and machine
fingerprint (CPU model, core count, library versions): a resumed study, a later invocation and
every other study writing into the same ``--out`` reuse them, so one configuration has one cost
in every table. ``retime=True`` measures again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..safe_io import write_atomic

__all__ = [
    "TIMING_FILE", "Cost", "TimingKey", "TimingSettings", "TimingStore", "key_from_sizes",
    "machine_fingerprint", "measure_costs", "timing_key",
]

TIMING_FILE = "timing.json"
TIMING_FORMAT = 1


@dataclass(frozen=True)
class TimingKey:
    """Every field that changes the work of one epoch (see the module docstring)."""

    hidden_sizes: tuple[int, ...]
    activation: str
    optimizer: str
    batch_size: int
    dtype: str
    backend: str
    threads: int | None
    l2_nonzero: bool
    n_train: int
    n_val: int
    n_features: int | None
    n_classes: int | None
    input_path: str = "auto"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TimingKey:
        return cls(**{**d, "hidden_sizes": tuple(d["hidden_sizes"])})

    @property
    def id(self) -> str:
        """A short stable name: the first 16 hex digits of the sha256 of the sorted JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def timing_key(config, splits) -> TimingKey:
    """The timing key of ``config`` (a ``TrainConfig``) trained on ``splits``."""
    return key_from_sizes(config, n_train=len(splits.y_train), n_val=len(splits.y_val),
                          n_features=splits.n_features, n_classes=splits.n_classes)


def key_from_sizes(config, *, n_train: int, n_val: int, n_features: int | None,
                   n_classes: int | None) -> TimingKey:
    """The timing key of ``config`` on data of these sizes."""
    hidden = getattr(config, "hidden_sizes", None) or (config.hidden_size,)
    return TimingKey(
        hidden_sizes=tuple(int(h) for h in hidden), activation=config.activation,
        optimizer=config.optimizer, batch_size=config.batch_size, dtype=config.dtype,
        backend=config.backend, threads=config.threads, l2_nonzero=config.l2 != 0,
        n_train=n_train, n_val=n_val, n_features=n_features, n_classes=n_classes,
        input_path=getattr(config, "input_path", "auto"))


@dataclass(frozen=True)
class Cost:
    """A key's measured per-epoch cost: ``mean`` seconds, ``spread`` (std of round means),
    over ``epochs`` timed epochs in ``rounds`` rounds, on ``clock``."""

    mean: float
    spread: float
    epochs: int
    rounds: int
    clock: str
    measured_at: str = ""
    where: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Cost:
        return cls(**d)


@dataclass(frozen=True)
class TimingSettings:
    """How long to measure each key (see the module docstring)."""

    rounds: int = 3
    min_epochs: int = 6
    min_seconds: float = 1.0
    first_round_epochs: int = 2

    def __post_init__(self):
        if self.rounds < 2:
            raise ValueError(f"rounds: at least 2 are needed for a spread, got {self.rounds}")
        if self.min_epochs < self.rounds or self.first_round_epochs < 1:
            raise ValueError("min_epochs must be >= rounds and first_round_epochs >= 1")


# --------------------------------------------------------------------------- machine


@functools.cache
def machine_fingerprint() -> dict:
    """What a cost depends on besides its key: CPU model, core count, library versions."""
    import numba
    import numpy

    from .. import __version__

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "ffnn": __version__, "numpy": numpy.__version__, "numba": numba.__version__}


def _fingerprint_id(machine: dict) -> str:
    text = json.dumps(machine, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- measuring


def _clock(threads: int | None) -> tuple[str, Callable[[], float]]:
    if threads == 1:
        return "thread_time", time.thread_time
    return "process_time", time.process_time


def _timed_epochs(config, splits, epochs: int) -> list[float]:
    """Train ``config`` alone for one warm-up epoch and ``epochs`` more; the CPU seconds of
    each of the latter (the interval between the ends of consecutive epochs)."""
    from ..training import train

    _, clock = _clock(config.threads)
    marks: list[float] = []
    probe = config.replace(early_stopping=False, max_epochs=1 + epochs)
    train(probe, splits, callback=lambda record: marks.append(clock()))
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def measure_costs(requests: Sequence[tuple[TimingKey, object]], splits_for: Callable,
                  settings: TimingSettings = TimingSettings()) -> dict[TimingKey, Cost]:
    """Measure the per-epoch cost of each ``(key, config)`` (a ``TrainConfig`` of that key),
    interleaved round-robin; ``splits_for(dtype)`` gives the data. See the module docstring."""
    requests = list(dict(requests).items())  # one config per key
    samples: dict[TimingKey, list[list[float]]] = {key: [] for key, _ in requests}
    per_round: dict[TimingKey, int] = {}
    for round_ in range(settings.rounds):
        for key, config in requests:
            if round_ == 0:
                epochs = settings.first_round_epochs
            else:
                if key not in per_round:
                    first = statistics.fmean(samples[key][0])
                    budget = max(settings.min_seconds - sum(samples[key][0]), 0.0)
                    wanted = max(settings.min_epochs - len(samples[key][0]),
                                 math.ceil(budget / max(first, 1e-9)))
                    per_round[key] = max(1, math.ceil(wanted / (settings.rounds - 1)))
                epochs = per_round[key]
            samples[key].append(_timed_epochs(config, splits_for(config.dtype), epochs))
    now = datetime.now(UTC).isoformat(timespec="seconds")
    where = f"{platform.node()} pid {os.getpid()}"
    costs = {}
    for key, config in requests:
        rounds = samples[key]
        flat = [s for r in rounds for s in r]
        costs[key] = Cost(mean=statistics.fmean(flat),
                          spread=statistics.stdev([statistics.fmean(r) for r in rounds]),
                          epochs=len(flat), rounds=len(rounds),
                          clock=_clock(config.threads)[0], measured_at=now, where=where)
    return costs


# --------------------------------------------------------------------------- persistence


class TimingStore:
    """The per-epoch costs of ``<out>/timing.json``, for this machine's fingerprint.

    Costs measured on another machine (or with other library versions) stay in the file but are
    not used. A file that cannot be read is reported and its costs measured again.
    """

    def __init__(self, out, machine: dict | None = None):
        self.path = Path(out) / TIMING_FILE
        self.machine = machine_fingerprint() if machine is None else machine
        self._machine_id = _fingerprint_id(self.machine)
        self._entries: dict[tuple[str, str], dict] = {}
        self.problem: str | None = None
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            for entry in doc["entries"]:
                key = TimingKey.from_dict(entry["key"])
                Cost.from_dict(entry["cost"])
                self._entries[(key.id, _fingerprint_id(entry["machine"]))] = entry
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            self.problem = f"{self.path}: unreadable timing file ({type(e).__name__}: {e}); " \
                           "its costs are measured again"
            self._entries = {}

    def get(self, key: TimingKey) -> Cost | None:
        entry = self._entries.get((key.id, self._machine_id))
        return None if entry is None else Cost.from_dict(entry["cost"])

    def __contains__(self, key: TimingKey) -> bool:
        return self.get(key) is not None

    def missing(self, keys, *, retime: bool = False) -> list[TimingKey]:
        """The distinct keys of ``keys`` without a cost (all of them with ``retime``), in order."""
        seen = list(dict.fromkeys(keys))
        return seen if retime else [k for k in seen if k not in self]

    def put(self, costs: dict[TimingKey, Cost]) -> None:
        """Record ``costs`` and rewrite the file atomically."""
        for key, cost in costs.items():
            self._entries[(key.id, self._machine_id)] = {
                "key": key.to_dict(), "machine": self.machine, "cost": cost.to_dict()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"format": TIMING_FORMAT,
                                            "entries": list(self._entries.values())},
                                           indent=1, allow_nan=False))
