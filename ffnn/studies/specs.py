"""Study definitions: the thirteen built-in studies and user studies read from TOML.

A study varies one ``TrainConfig`` field over a list of values, or several as a grid (every
combination), and fixes every other field at the *study defaults* (``STUDY_DEFAULTS``) plus the
study's own ``base`` overrides. The runner adds the seeds (repeat ``r``: ``seed = shuffle_seed
= base_seed + r``), ``threads=1``, the backend and ``--max-epochs``.

TOML format (one study per file; see ``ffnn/studies/example.toml``)::

    name = "l2-adam"                 # required; letters, digits, '-', '_', '.'
    description = "..."              # optional, one line
    parameter = "l2"                 # one parameter: the TrainConfig field that varies
    values = [0.0, 1e-4, 1e-3]       #   and its values (at least one, no duplicates)
    label = "L2"                     # optional: the table's first column header

    [grid]                           # or several parameters, every combination
    hidden_size = [10, 50]           #   (instead of parameter/values)
    batch_size = [100, 250]

    [base]                           # optional: overrides of the study defaults
    optimizer = "adam"

Hidden layers as a parameter: ``parameter = "hidden_sizes"``, ``values = [[100], [100, 50]]``
(labelled ``100`` and ``100-50``; compared as ``TrainConfig`` canonicalises them, so ``[100]``
is ``hidden_size = 100``). Either spelling set by ``values`` or ``base`` replaces the other.

    # optional recipe (``RECIPE_FIELDS``): command-line flags override these
    repeats = 3
    max_epochs = 30
    train_size = 10000
    val_size = 2000
    test_size = 2000
    split_seed = 0
    data = "path/to/mnist"           # relative paths start at the TOML file's directory
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import reprlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import TrainConfig

__all__ = [
    "BUILTIN_STUDIES", "RECIPE_FIELDS", "RUNNER_FIELDS", "STUDY_DEFAULTS", "Setting",
    "StudyError", "StudySpec", "builtin_study", "example_path", "format_value",
    "load_study_file", "parse_study", "resolve_studies", "study_from_mapping",
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

# What a study file may carry besides its settings, and what each must be.
RECIPE_FIELDS = {"repeats": 1, "max_epochs": 1, "train_size": 0, "val_size": 0,
                 "test_size": 0, "split_seed": 0, "data": None}

# Column headers for the parameters the built-in studies vary (others: the field name).
LABELS = {
    "optimizer": "Optimizer", "activation": "Activation", "learning_rate": "Learning rate",
    "hidden_size": "Hidden size", "batch_size": "Batch size", "l2": "L2",
    "hidden_sizes": "Hidden sizes",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_FLOAT_FIELDS = {f.name: f.type in (float, "float") for f in dataclasses.fields(TrainConfig)}
_TOML_KEYS = ("name", "description", "parameter", "values", "grid", "label", "base",
              *RECIPE_FIELDS)
_SCALARS = (bool, int, float, str)
# The two spellings of the hidden layers (``TrainConfig``): setting one drops the other.
_HIDDEN = ("hidden_size", "hidden_sizes")
_REPR = reprlib.Repr()  # user values in messages: short, and never too deep to print
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 60, 60
_show = _REPR.repr


class StudyError(ValueError):
    """A study definition is invalid; the message names the file and field."""


@dataclass(frozen=True)
class Setting:
    """One setting of a study: its label and the value of every varied parameter."""

    label: str
    values: dict

    @property
    def value(self):
        """The value of a one-parameter study's setting; the list of values of a grid's."""
        return next(iter(self.values.values())) if len(self.values) == 1 \
            else list(self.values.values())


@dataclass(frozen=True)
class StudySpec:
    """One study: each combination of ``grid``'s values with everything else fixed.

    ``grid`` holds ``(parameter, values)`` pairs (one pair for a one-parameter study);
    ``base`` the overrides of ``STUDY_DEFAULTS``; ``recipe`` the study file's run options
    (``RECIPE_FIELDS``); ``source`` is ``"built-in"`` or the TOML file's path.
    """

    name: str
    description: str
    grid: tuple[tuple[str, tuple], ...]
    base: dict = field(default_factory=dict)
    label: str = ""
    source: str = "built-in"
    recipe: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.label:
            label = " x ".join(LABELS.get(p, p) for p in self.parameters)
            object.__setattr__(self, "label", label)

    @classmethod
    def one(cls, name, description, parameter, values, base=None, **kwargs) -> StudySpec:
        """A study varying one ``parameter`` over ``values``."""
        return cls(name, description, ((parameter, tuple(values)),), dict(base or {}), **kwargs)

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.grid)

    @property
    def parameter(self) -> str:
        """The varied parameter (``a x b`` for a grid), as records name it."""
        return " x ".join(self.parameters)

    @property
    def is_grid(self) -> bool:
        return len(self.grid) > 1

    @property
    def values(self) -> tuple:
        """A one-parameter study's values (a grid's: the value tuples of its settings)."""
        if not self.is_grid:
            return self.grid[0][1]
        return tuple(itertools.product(*(v for _, v in self.grid)))

    def settings(self) -> list[Setting]:
        """Every setting, the last parameter varying fastest."""
        out = []
        for combo in itertools.product(*(v for _, v in self.grid)):
            values = dict(zip(self.parameters, combo, strict=True))
            out.append(Setting(self.setting_label(values), values))
        return out

    @property
    def fixed(self) -> dict:
        """Every non-default field the study fixes: defaults + base, minus the varied ones."""
        fixed = _merged(STUDY_DEFAULTS, self.base)
        for p in _varied(self.parameters):
            fixed.pop(p, None)
        return fixed

    def config(self, values, **runner_fields) -> TrainConfig:
        """The ``TrainConfig`` of one setting (``values``: a ``Setting``, a dict of the varied
        parameters, or a one-parameter study's value; ``runner_fields``: seeds, backend...)."""
        if isinstance(values, Setting):
            values = values.values
        elif not isinstance(values, dict):
            values = {self.parameters[0]: values}
        merged = _merged(STUDY_DEFAULTS, self.base, runner_fields, values)
        return TrainConfig(**{k: _as_field_type(k, v) for k, v in merged.items()})

    def setting_label(self, values) -> str:
        """How a setting appears in tables, legends and logs: ``0.001``; for a grid
        ``hidden_size=10, batch_size=250``."""
        if not isinstance(values, dict):
            return format_value(values)
        if len(values) == 1:
            return format_value(next(iter(values.values())))
        return ", ".join(f"{p}={format_value(v)}" for p, v in values.items())

    def to_dict(self) -> dict:
        d = {"name": self.name, "description": self.description,
             "grid": [[p, list(v)] for p, v in self.grid], "base": dict(self.base),
             "label": self.label, "source": self.source, "recipe": dict(self.recipe)}
        if not self.is_grid:  # what plans written before grids hold
            d.update(parameter=self.parameters[0], values=list(self.values))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> StudySpec:
        grid = (tuple((p, tuple(v)) for p, v in d["grid"]) if "grid" in d
                else ((d["parameter"], tuple(d["values"])),))
        grid = tuple((p, tuple(_as_field_type(p, x) for x in v)) for p, v in grid)
        return cls(name=d["name"], description=d.get("description", ""), grid=grid,
                   base=dict(d.get("base", {})), label=d.get("label", ""),
                   source=d.get("source", "built-in"), recipe=dict(d.get("recipe", {})))

    def one_line(self) -> str:
        """``name: description`` for ``ffnn-run studies``."""
        return f"{self.name}: {self.description}"


def _merged(*layers: dict) -> dict:
    """The layers of fields, later ones winning; a layer giving one spelling of the hidden
    layers (``_HIDDEN``) replaces the other spelling of earlier layers."""
    merged: dict = {}
    for layer in layers:
        if any(name in layer for name in _HIDDEN):
            for name in _HIDDEN:
                merged.pop(name, None)
        merged.update(layer)
    return merged


def _varied(parameters) -> set:
    """The fields the varied ``parameters`` set, both hidden spellings for either."""
    varied = set(parameters)
    return varied | set(_HIDDEN) if varied & set(_HIDDEN) else varied


def _plain(name: str, value) -> bool:
    """A TOML value a field may take: a scalar, or for ``hidden_sizes`` a non-empty list of
    integers (as ``[100, 50]``)."""
    if name == "hidden_sizes":
        return (isinstance(value, list | tuple) and bool(value)
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
    return isinstance(value, _SCALARS)


def _wanted(name: str) -> str:
    return ("a non-empty list of integers" if name == "hidden_sizes"
            else "a number, string or boolean")


def _as_field_type(name, value):
    """TOML's ``1`` for a float field becomes ``1.0``, and a list of hidden sizes a tuple, so
    equal configs hash equally."""
    if name == "hidden_sizes" and isinstance(value, list):
        return tuple(value)
    if _FLOAT_FIELDS.get(name) and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"{name}: {_show(value)} is too large for a float") from None
    return value


def format_value(value) -> str:
    """``1e-05``, ``0.05``, ``adam``, ``250``, ``on``/``off``, hidden sizes ``100-50``."""
    if isinstance(value, tuple | list):
        return "-".join(format_value(v) for v in value)
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
    depths = ((100,), (100, 100), (256, 128), (128, 64, 32), (512, 256, 128))
    no_es = {"early_stopping": False}
    one = StudySpec.one
    specs = [
        one("optimizers-lr1e-3", "the five optimizers at learning rate 0.001",
            "optimizer", optimizers, {"learning_rate": 1e-3}),
        one("optimizers-lr1e-4", "the five optimizers at learning rate 0.0001",
            "optimizer", optimizers, {"learning_rate": 1e-4}),
        one("activations-nesterov", "five hidden activations, Nesterov at lr 0.05",
            "activation", activations, NESTEROV),
        one("activations-adam", "five hidden activations, Adam at lr 0.001",
            "activation", activations, ADAM),
        one("lr-nesterov-no-es", "learning rates 1e-5..0.05, Nesterov, no early stopping",
            "learning_rate", rates, {"optimizer": "nesterov", **no_es}),
        one("lr-nesterov", "learning rates 1e-5..0.05, Nesterov",
            "learning_rate", rates, {"optimizer": "nesterov"}),
        one("lr-adam-no-es", "learning rates 1e-5..0.05, Adam, no early stopping",
            "learning_rate", rates, {"optimizer": "adam", **no_es}),
        one("lr-adam", "learning rates 1e-5..0.05, Adam",
            "learning_rate", rates, {"optimizer": "adam"}),
        one("hidden-nesterov", "hidden sizes 5..100, Nesterov at lr 0.05",
            "hidden_size", hidden, NESTEROV),
        one("hidden-adam", "hidden sizes 5..100, Adam at lr 0.001",
            "hidden_size", hidden, ADAM),
        one("batch-nesterov", "batch sizes 50..1000, Nesterov at lr 0.05",
            "batch_size", batches, NESTEROV),
        one("batch-adam", "batch sizes 50..1000, Adam at lr 0.001",
            "batch_size", batches, ADAM),
        one("depth-adam", "one to three hidden layers (100 .. 512-256-128), Adam at lr 0.001",
            "hidden_sizes", depths, ADAM),
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
    return Path(__file__).parent / "example.toml"


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
    except ValueError as e:  # TOMLDecodeError, or an integer of more than 4300 digits
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
    if "name" not in doc:
        fail("missing required key 'name'")
    name = doc["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        fail(f"name: {_show(name)} must be a non-empty string of letters, digits, '-', '_', '.'")
    if name in BUILTIN_STUDIES or name == "all":
        fail(f"name: {name!r} is a built-in study name; choose another")
    for key in ("description", "label"):
        if not isinstance(doc.get(key, ""), str):
            fail(f"{key}: expected a string, got {_show(doc[key])}")
    grid = _grid(doc, fail)
    base = _base(doc, [p for p, _ in grid], fail)
    recipe = _recipe(doc, [p for p, _ in grid], Path(source).parent, fail)
    spec = StudySpec(name=name, description=doc.get("description", ""), grid=grid,
                     base=base, label=doc.get("label", ""), source=source, recipe=recipe)
    _check_base(base, grid, fail)
    first = {p: v[0] for p, v in grid}
    for parameter, values in grid:
        for i, value in enumerate(values):
            try:
                spec.config({**first, parameter: value})
            except (ValueError, TypeError) as e:
                fail(f"{_where(doc, parameter)}[{i}] = {value!r}: {e}")
    return spec


def _check_base(base: dict, grid, fail) -> None:
    """Blame a bad ``base`` field on ``base.<field>``: check the study defaults and ``base``
    alone, the varied parameters left at ``TrainConfig``'s defaults."""
    varied = _varied(p for p, _ in grid)
    try:
        TrainConfig(**{k: _as_field_type(k, v) for k, v in _merged(STUDY_DEFAULTS, base).items()
                       if k not in varied})
    except (ValueError, TypeError) as e:
        name = str(e).partition(":")[0]
        fail(f"base.{name}: {str(e).partition(':')[2].strip()}" if name in base else str(e))


def _where(doc, parameter) -> str:
    return f"grid.{parameter}" if "grid" in doc else "values"


def _grid(doc: dict, fail) -> tuple[tuple[str, tuple], ...]:
    variable = [f for f in _CONFIG_FIELDS if f not in RUNNER_FIELDS]
    if "grid" in doc:
        if "parameter" in doc or "values" in doc:
            fail("grid: give either [grid] or parameter/values, not both")
        table = doc["grid"]
        if not isinstance(table, dict) or not table:
            fail("grid: expected a table of parameter = [values] (at least one)")
        pairs = list(table.items())
    else:
        for key in ("parameter", "values"):
            if key not in doc:
                fail(f"missing required key {key!r} (or a [grid] table)")
        pairs = [(doc["parameter"], doc["values"])]
    grid = []
    for parameter, values in pairs:
        where = f"grid.{parameter}" if "grid" in doc else "values"
        if not isinstance(parameter, str) or parameter not in variable:
            fail(f"{'grid' if 'grid' in doc else 'parameter'}: unknown parameter "
                 f"{_show(parameter)}; expected one of {', '.join(variable)}")
        if not isinstance(values, list) or not values:
            fail(f"{where}: expected a non-empty list")
        for i, value in enumerate(values):
            if not _plain(parameter, value):
                fail(f"{where}[{i}]: expected {_wanted(parameter)}, got {_show(value)}")
        converted = []
        for i, value in enumerate(values):
            try:
                converted.append(_as_field_type(parameter, value))
            except ValueError as e:
                fail(f"{where}[{i}]: {e}")
        first: dict = {}
        for i, value in enumerate(converted):
            j = first.setdefault((type(value), value), i)
            if j != i:
                fail(f"{where}[{i}] = {values[i]!r} duplicates {where}[{j}] = {values[j]!r} "
                     f"(both are {parameter} = {value!r})")
        grid.append((parameter, tuple(converted)))
    return tuple(grid)


def _base(doc: dict, parameters, fail) -> dict:
    variable = [f for f in _CONFIG_FIELDS if f not in RUNNER_FIELDS]
    base = doc.get("base", {})
    if not isinstance(base, dict):
        fail("base: expected a table of TrainConfig fields")
    for key in base:
        if key in RUNNER_FIELDS:
            fail(f"base.{key}: set by the runner (seeds from --seed, backend from --backend, "
                 "threads=1); remove it")
        if key not in _CONFIG_FIELDS:
            fail(f"base.{key}: unknown TrainConfig field; expected one of {', '.join(variable)}")
        if not _plain(key, base[key]):
            fail(f"base.{key}: expected {_wanted(key)}, got {_show(base[key])}")
        if key in parameters:
            fail(f"base.{key}: is the varied parameter; give its values in one place only")
    return dict(base)


def _recipe(doc: dict, parameters, directory: Path, fail) -> dict:
    recipe = {}
    for key, minimum in RECIPE_FIELDS.items():
        if key not in doc:
            continue
        value = doc[key]
        if key == "data":
            if not isinstance(value, str) or not value:
                fail(f"data: expected a path (string), got {value!r}")
            path = Path(value).expanduser()
            recipe[key] = str(path if path.is_absolute() else directory / path)
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            fail(f"{key}: expected an integer >= {minimum}, got {value!r}")
        if key == "max_epochs" and "max_epochs" in parameters:
            fail("max_epochs: the study varies max_epochs; remove the fixed value")
        recipe[key] = value
    return recipe
