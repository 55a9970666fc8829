"""What a study will compute: its options, runs, record keys, timing keys and tasks.

A *run* is one (study, setting, repeat); repeat ``r`` trains with ``seed = shuffle_seed =
base_seed + r`` and ``threads=1``. Runs are executed in *tasks*, tuples of runs. When the
settings of a repeat can be trained together (``group_reason`` is ``None``: same minibatch
order, batch size, dtype and threads; numba backend; at least two settings) and grouping is on,
the plan marks them *grouped*, and a task holds the not yet recorded runs of one repeat, trained
by one ``ffnn.train_many`` call; otherwise a task is one run trained by ``ffnn.train``.

Options (``StudyOptions``) come from three places, in this order of precedence: the command
line (or ``run_study``'s keywords), the study file's recipe (``specs.RECIPE_FIELDS``), the
defaults. ``resolve_options`` says which value came from where.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..config import TrainConfig
from ..grouped import GROUP_FIELDS
from .specs import StudyError, StudySpec
from .store import run_key
from .timing import TimingKey, key_from_sizes

__all__ = ["DataSpec", "GroupReason", "Run", "StudyOptions", "Ungrouped", "data_identity",
           "group_reason", "make_tasks", "plan_study", "resolve_options"]


@dataclass(frozen=True)
class DataSpec:
    """How every worker loads the data: ``load_mnist(path, sizes, seed=split_seed, dtype)``."""

    path: str | None = None
    train_size: int | None = None
    val_size: int = 6000
    test_size: int | None = None
    split_seed: int = 0

    def load(self, dtype: str):
        from ..data import load_mnist

        return load_mnist(self.path, train_size=self.train_size, val_size=self.val_size,
                          test_size=self.test_size, seed=self.split_seed, dtype=dtype)


# What of the data enters a run's key (``data_identity``).
KEY_FIELDS = ("fingerprint", "train_size", "val_size", "test_size", "split_seed")


def data_identity(splits, spec: DataSpec) -> dict:
    """What enters the key: the fingerprint, the actual split sizes and the split seed; and
    (``n_features``, ``n_classes``) what the timing key needs besides."""
    return {"fingerprint": splits.fingerprint(), "train_size": len(splits.y_train),
            "val_size": len(splits.y_val), "test_size": len(splits.y_test),
            "split_seed": spec.split_seed, "n_features": splits.n_features,
            "n_classes": splits.n_classes}


@dataclass(frozen=True)
class StudyOptions:
    """Run-wide choices (``max_epochs=None``: each study's own, 250 for the built-ins).

    ``group``: train the settings of a repeat together where they can be (``group_reason``).
    ``threads``: numba/BLAS threads of every run or group (1: reproducible whichever executor;
    keys include it, through the config).
    """

    repeats: int = 10
    max_epochs: int | None = None
    backend: str = "numba"
    seed: int = 0
    data: DataSpec = field(default_factory=DataSpec)
    group: bool = True
    threads: int = 1

    def to_dict(self) -> dict:
        return {**asdict(self), "data": asdict(self.data)}


# Options a study file's recipe may set: recipe field -> (where in StudyOptions).
_DATA_FIELDS = {"data": "path", "train_size": "train_size", "val_size": "val_size",
                "test_size": "test_size", "split_seed": "split_seed"}


def resolve_options(spec: StudySpec, given: dict, defaults: StudyOptions | None = None
                    ) -> tuple[StudyOptions, dict[str, str]]:
    """The options of ``spec``: ``given`` (flags the user gave: ``repeats``, ``max_epochs``,
    ``data``, ``train_size``, ... and any other ``StudyOptions`` field) over the study file's
    recipe over ``defaults``. Returns the options and, per recipe field, where its value came
    from (``"command line"``, ``"study file"`` or ``"default"``).

    ``StudyError`` when ``max_epochs`` is given for a study that varies it.
    """
    defaults = StudyOptions() if defaults is None else defaults
    if given.get("max_epochs") is not None and "max_epochs" in spec.parameters:
        raise StudyError(f"--max-epochs: study {spec.name} varies max_epochs; drop the flag")
    sources, top, data = {}, {}, {}
    for name in ("repeats", "max_epochs", *_DATA_FIELDS):
        if given.get(name) is not None:
            value, sources[name] = given[name], "command line"
        elif name in spec.recipe:
            value, sources[name] = spec.recipe[name], "study file"
        else:
            sources[name] = "default"
            continue
        if name in _DATA_FIELDS:
            data[_DATA_FIELDS[name]] = value
        else:
            top[name] = value
    others = {k: v for k, v in given.items()
              if k not in sources and k != "data" and v is not None}
    options = replace(defaults, **others, **top, data=replace(defaults.data, **data))
    return options, sources


@dataclass(frozen=True)
class Run:
    """One (study, setting, repeat) with its full config, record key and timing key."""

    study: str
    parameter: str
    setting: str
    values: dict
    repeat: int
    config: TrainConfig
    key: str
    timing: TimingKey
    data: DataSpec
    grouped: bool = False

    @property
    def value(self) -> Any:
        return next(iter(self.values.values())) if len(self.values) == 1 \
            else list(self.values.values())


Task = tuple[Run, ...]


class GroupReason(enum.Enum):
    """Why the settings of a repeat are trained one by one."""

    GROUPING_OFF = "grouping is off (--no-group)"
    SINGLE_SETTING = "a single setting"
    BACKEND = "the {detail} backend (grouped training uses numba kernels)"
    FIELD_DIFFERS = "{detail} differs between the settings"


@dataclass(frozen=True)
class Ungrouped:
    """A typed reason for not grouping; ``detail`` names the backend or the field."""

    reason: GroupReason
    detail: str = ""

    def __str__(self) -> str:
        return self.reason.value.format(detail=self.detail)


def group_reason(configs: Sequence[TrainConfig], group: bool = True) -> Ungrouped | None:
    """``None`` when ``configs`` (the settings of one repeat) are trained as one group, else
    why not."""
    if not group:
        return Ungrouped(GroupReason.GROUPING_OFF)
    if len(configs) < 2:
        return Ungrouped(GroupReason.SINGLE_SETTING)
    backends = sorted({c.backend for c in configs})
    if backends != ["numba"]:
        return Ungrouped(GroupReason.BACKEND, "/".join(backends))
    for name in GROUP_FIELDS:
        def get(config, name=name):
            return config.effective_shuffle_seed if name == "shuffle_seed" \
                else getattr(config, name)
        if len({get(c) for c in configs}) > 1:
            return Ungrouped(GroupReason.FIELD_DIFFERS, name)
    return None


def plan_study(spec: StudySpec, options: StudyOptions, identities: dict) -> list[Run]:
    """Every run of ``spec``, repeat-major (all settings of repeat 0, then of repeat 1, ...).

    ``identities`` maps a dtype to the ``data_identity`` of ``options.data``. The runs of a
    repeat are grouped (``Run.grouped``) when ``group_reason`` allows it. A run's key never names
    its group: the engine computes every network of a group exactly as it would alone (bitwise),
    so grouped and ``--no-group`` runs share records.
    """
    keys = {dtype: {k: identity[k] for k in KEY_FIELDS} for dtype, identity in identities.items()}
    settings = spec.settings()
    runs = []
    for r in range(options.repeats):
        extra = {"seed": options.seed + r, "shuffle_seed": options.seed + r,
                 "backend": options.backend, "threads": options.threads}
        if options.max_epochs is not None:
            extra["max_epochs"] = options.max_epochs
        configs = [spec.config(s.values, **extra) for s in settings]
        solo = [run_key(c.to_dict(), keys[c.dtype]) for c in configs]
        grouped = group_reason(configs, options.group) is None
        for setting, config, key in zip(settings, configs, solo, strict=True):
            identity = identities[config.dtype]
            timing = key_from_sizes(config, n_train=identity["train_size"],
                                    n_val=identity["val_size"],
                                    n_features=identity.get("n_features"),
                                    n_classes=identity.get("n_classes"))
            runs.append(Run(spec.name, spec.parameter, setting.label, setting.values, r,
                            config, key, timing, options.data, grouped))
    return runs


def make_tasks(runs: Sequence[Run]) -> list[Task]:
    """The units of execution, in the order of ``runs``: the grouped runs of one (study, repeat)
    together (only those given, i.e. not yet recorded), every other run alone."""
    tasks: list[list[Run]] = []
    groups: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        if not run.grouped:
            tasks.append([run])
        elif (run.study, run.repeat) in groups:
            groups[(run.study, run.repeat)].append(run)
        else:
            tasks.append(groups.setdefault((run.study, run.repeat), [run]))
    return [tuple(task) for task in tasks]
