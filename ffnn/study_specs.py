"""Study definitions: the twelve built-in studies and user studies read from TOML.

A study varies one ``TrainConfig`` field over a list of values and fixes every other field at
the *study defaults* (``STUDY_DEFAULTS``) plus the study's own ``base`` overrides. The runner
adds the seeds (repeat ``r``: ``seed = shuffle_seed = base_seed + r``), ``threads=1``, the
backend and ``--max-epochs``.

TOML format (one study per file; see ``ffnn/studies/example.toml``)::

    name = "l2-adam"                 # required; letters, digits, '-', '_', '.'
    description = "..."              # optional, one line
    parameter = "l2"                 # required: the TrainConfig field that varies
    values = [0.0, 1e-4, 1e-3]       # required: at least one, no duplicates
    label = "L2"                     # optional: the table's first column header

    [base]                           # optional: overrides of the study defaults
    optimizer = "adam"
    learning_rate = 1e-3
"""

from __future__ import annotations

import dataclasses
import re
import reprlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import TrainConfig

__all__ = [
    "BUILTIN_STUDIES", "RUNNER_FIELDS", "STUDY_DEFAULTS", "StudyError", "StudySpec",
    "builtin_study", "example_path", "format_value", "load_study_file", "parse_study",
    "resolve_studies", "study_from_mapping",
]

# The defaults every study starts from (they override TrainConfig's where they differ).
STUDY_DEFAULTS: dict[str, Any] = {
    "hidden_size": 10, "batch_size": 250, "activation": "elu", "max_epochs": 250,
    "early_stopping": True, "patience": 10, "min_delta": 0.0,
    "optimizer": "adam", "learning_rate": 1e-3,
}
NESTEROV = {"optimizer": "nesterov", "learning_rate": 0.05}
ADAM = {"optimizer": "adam", "learning_rate": 1e-3}

# Fields the runner sets itself; a study may neither fix nor vary them.
RUNNER_FIELDS = ("seed", "shuffle_seed", "threads", "backend")

# Column headers for the parameters the built-in studies vary (others: the field name).
LABELS = {
    "optimizer": "Optimizer", "activation": "Activation", "learning_rate": "Learning rate",
    "hidden_size": "Hidden size", "batch_size": "Batch size", "l2": "L2",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_FLOAT_FIELDS = {f.name: f.type in (float, "float") for f in dataclasses.fields(TrainConfig)}
_TOML_KEYS = ("name", "description", "parameter", "values", "label", "base")
_SCALARS = (bool, int, float, str)
_REPR = reprlib.Repr()  # user values in messages: short, and never too deep to print
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 60, 60
_show = _REPR.repr


class StudyError(ValueError):
    """A study definition is invalid; the message names the file and field."""


@dataclass(frozen=True)
class StudySpec:
    """One study: ``parameter`` takes each of ``values`` with everything else fixed.

    ``base`` holds the overrides of ``STUDY_DEFAULTS``; ``source`` is ``"built-in"`` or the TOML
    file's path.
    """

    name: str
    description: str
    parameter: str
    values: tuple
    base: dict = field(default_factory=dict)
    label: str = ""
    source: str = "built-in"

    def __post_init__(self):
        if not self.label:
            object.__setattr__(self, "label", LABELS.get(self.parameter, self.parameter))

    @property
    def fixed(self) -> dict:
        """Every non-default field the study fixes: defaults + base, minus the varied one."""
        fixed = {**STUDY_DEFAULTS, **self.base}
        fixed.pop(self.parameter, None)
        return fixed

    def config(self, value, **runner_fields) -> TrainConfig:
        """The ``TrainConfig`` of one setting (``runner_fields``: seeds, backend, threads...)."""
        values = {**STUDY_DEFAULTS, **self.base, **runner_fields, self.parameter: value}
        return TrainConfig(**{k: _as_field_type(k, v) for k, v in values.items()})

    def setting_label(self, value) -> str:
        """How a value appears in tables, legends and logs."""
        return format_value(value)

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description,
                "parameter": self.parameter, "values": list(self.values),
                "base": dict(self.base), "label": self.label, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> StudySpec:
        return cls(name=d["name"], description=d.get("description", ""),
                   parameter=d["parameter"], values=tuple(d["values"]),
                   base=dict(d.get("base", {})), label=d.get("label", ""),
                   source=d.get("source", "built-in"))

    def one_line(self) -> str:
        """``name: description`` for ``ffnn-run studies``."""
        return f"{self.name}: {self.description}"


def _as_field_type(name, value):
    """TOML's ``1`` for a float field becomes ``1.0``, so equal configs hash equally."""
    if _FLOAT_FIELDS.get(name) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def format_value(value) -> str:
    """``1e-05``, ``0.05``, ``adam``, ``250``, ``on``/``off``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _builtins() -> dict[str, StudySpec]:
    optimizers = ("gd", "momentum", "nesterov", "rmsprop", "adam")
    activations = ("sigmoid", "tanh", "relu", "leaky_relu", "elu")
    rates = (1e-5, 1e-4, 1e-3, 1e-2, 5e-2)
    hidden = (5, 10, 25, 50, 100)
    batches = (50, 100, 250, 500, 1000)
    no_es = {"early_stopping": False}
    specs = [
        StudySpec("optimizers-lr1e-3", "the five optimizers at learning rate 0.001",
                  "optimizer", optimizers, {"learning_rate": 1e-3}),
        StudySpec("optimizers-lr1e-4", "the five optimizers at learning rate 0.0001",
                  "optimizer", optimizers, {"learning_rate": 1e-4}),
        StudySpec("activations-nesterov", "five hidden activations, Nesterov at lr 0.05",
                  "activation", activations, NESTEROV),
        StudySpec("activations-adam", "five hidden activations, Adam at lr 0.001",
                  "activation", activations, ADAM),
        StudySpec("lr-nesterov-no-es", "learning rates 1e-5..0.05, Nesterov, no early stopping",
                  "learning_rate", rates, {"optimizer": "nesterov", **no_es}),
        StudySpec("lr-nesterov", "learning rates 1e-5..0.05, Nesterov",
                  "learning_rate", rates, {"optimizer": "nesterov"}),
        StudySpec("lr-adam-no-es", "learning rates 1e-5..0.05, Adam, no early stopping",
                  "learning_rate", rates, {"optimizer": "adam", **no_es}),
        StudySpec("lr-adam", "learning rates 1e-5..0.05, Adam",
                  "learning_rate", rates, {"optimizer": "adam"}),
        StudySpec("hidden-nesterov", "hidden sizes 5..100, Nesterov at lr 0.05",
                  "hidden_size", hidden, NESTEROV),
        StudySpec("hidden-adam", "hidden sizes 5..100, Adam at lr 0.001",
                  "hidden_size", hidden, ADAM),
        StudySpec("batch-nesterov", "batch sizes 50..1000, Nesterov at lr 0.05",
                  "batch_size", batches, NESTEROV),
        StudySpec("batch-adam", "batch sizes 50..1000, Adam at lr 0.001",
                  "batch_size", batches, ADAM),
    ]
    return {s.name: s for s in specs}


BUILTIN_STUDIES: dict[str, StudySpec] = _builtins()


def builtin_study(name: str) -> StudySpec:
    """The built-in study called ``name``; ``StudyError`` listing the known names otherwise."""
    try:
        return BUILTIN_STUDIES[name]
    except KeyError:
        raise StudyError(f"unknown study {name!r}; built-in studies: "
                         f"{', '.join(BUILTIN_STUDIES)} (or 'all')") from None


def resolve_studies(names, files=()) -> list[StudySpec]:
    """Built-in ``names`` (``all`` = every built-in) followed by the studies of ``files``."""
    specs: dict[str, StudySpec] = {}
    for name in names:
        for spec in (BUILTIN_STUDIES.values() if name == "all" else [builtin_study(name)]):
            specs.setdefault(spec.name, spec)
    for path in files:
        spec = load_study_file(path)
        if spec.name in specs:
            raise StudyError(f"{path}: study name {spec.name!r} is used twice")
        specs[spec.name] = spec
    return list(specs.values())


def example_path() -> Path:
    """The example study file shipped with the package."""
    return Path(__file__).parent / "studies" / "example.toml"


def load_study_file(path) -> StudySpec:
    """Read and validate a TOML study file; ``StudyError`` names the file and the field."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StudyError(f"{path}: file not found") from None
    except OSError as e:
        raise StudyError(f"{path}: cannot read ({e.strerror or e})") from None
    return parse_study(data, str(path))


def parse_study(data: bytes, source: str) -> StudySpec:
    """Validate the bytes of a TOML study file (``source``: its name in messages)."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise StudyError(f"{source}: not UTF-8 text ({e.reason})") from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{source}: not valid TOML: {e}") from None
    except RecursionError:
        raise StudyError(f"{source}: not valid TOML: arrays or tables nested too deeply") \
            from None
    return study_from_mapping(doc, source)


def study_from_mapping(doc: dict, source: str) -> StudySpec:
    """Validate a parsed TOML document (see the module docstring)."""
    def fail(message):
        raise StudyError(f"{source}: {message}")

    unknown = sorted(set(doc) - set(_TOML_KEYS))
    if unknown:
        fail(f"unknown key(s) {', '.join(unknown)}; expected {', '.join(_TOML_KEYS)}")
    for key in ("name", "parameter", "values"):
        if key not in doc:
            fail(f"missing required key {key!r}")
    name = doc["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        fail(f"name: {_show(name)} must be a non-empty string of letters, digits, '-', '_', '.'")
    if name in BUILTIN_STUDIES or name == "all":
        fail(f"name: {name!r} is a built-in study name; choose another")
    for key in ("description", "label"):
        if not isinstance(doc.get(key, ""), str):
            fail(f"{key}: expected a string, got {_show(doc[key])}")
    parameter = doc["parameter"]
    variable = [f for f in _CONFIG_FIELDS if f not in RUNNER_FIELDS]
    if not isinstance(parameter, str) or parameter not in variable:
        fail(f"parameter: unknown parameter {_show(parameter)}; expected one of "
             f"{', '.join(variable)}")
    base = doc.get("base", {})
    if not isinstance(base, dict):
        fail("base: expected a table of TrainConfig fields")
    for key in base:
        if key in RUNNER_FIELDS:
            fail(f"base.{key}: set by the runner (seeds from --seed, backend from --backend, "
                 "threads=1); remove it")
        if key not in _CONFIG_FIELDS:
            fail(f"base.{key}: unknown TrainConfig field; expected one of {', '.join(variable)}")
        if not isinstance(base[key], _SCALARS):
            fail(f"base.{key}: expected a number, string or boolean, got {_show(base[key])}")
    if parameter in base:
        fail(f"base.{parameter}: is the varied parameter; give its values in 'values' only")
    values = doc["values"]
    if not isinstance(values, list) or not values:
        fail("values: expected a non-empty list")
    _check_base(base, parameter, fail)
    spec = StudySpec(name=name, description=doc.get("description", ""), parameter=parameter,
                     values=(), base=dict(base), label=doc.get("label", ""), source=source)
    converted = []
    for i, value in enumerate(values):
        if not isinstance(value, _SCALARS):
            fail(f"values[{i}]: expected a number, string or boolean, got {_show(value)}")
        try:
            converted.append(getattr(spec.config(value), parameter))
        except (ValueError, TypeError) as e:
            fail(f"values[{i}] = {value!r}: {e}")
    first: dict = {}
    for i, value in enumerate(converted):
        j = first.setdefault((type(value), value), i)
        if j != i:
            fail(f"values[{i}] = {values[i]!r} duplicates values[{j}] = {values[j]!r} "
                 f"(both are {parameter} = {value!r})")
    return dataclasses.replace(spec, values=tuple(converted))


def _check_base(base: dict, parameter: str, fail) -> None:
    """Blame a bad ``base`` field on ``base.<field>``: check the study defaults and ``base``
    alone, the varied parameter left at ``TrainConfig``'s default."""
    fields = {k: _as_field_type(k, v) for k, v in {**STUDY_DEFAULTS, **base}.items()
              if k != parameter}
    try:
        TrainConfig(**fields)
    except (ValueError, TypeError) as e:
        name = str(e).partition(":")[0]
        fail(f"base.{name}: {str(e).partition(':')[2].strip()}" if name in base else str(e))
