"""``ffnn-run train``'s options, generated from ``TrainConfig``'s fields.

Each field becomes one option: its flag is ``--field-name`` unless the field's metadata names
another (``--lr``; ``--no-early-stopping`` and ``--no-restore-best`` turn a True default off);
its help text, least integer and choices come from the metadata too (``config._help``), its
default from the field. ``config_fields`` turns the parsed values back into field values.
"""

from __future__ import annotations

import dataclasses

import click

from .config import TrainConfig

__all__ = ["FLAGS", "config_fields", "config_options"]


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


# field name -> its command-line flag (for error messages)
FLAGS = {f.name: _flag(f) for f in dataclasses.fields(TrainConfig)}


def _option(f: dataclasses.Field):
    meta = f.metadata
    flag = _flag(f)
    if f.type in (bool, "bool"):
        if flag.startswith("--no-") and f.default is True:
            return click.option(flag, f"cfg_{f.name}", is_flag=True, flag_value=False,
                                default=True, help=meta["help"])
        return click.option(f"{flag}/--no-{flag[2:]}", f"cfg_{f.name}", default=f.default,
                            show_default=True, help=meta["help"])
    if meta.get("choices"):
        kind = click.Choice(meta["choices"])
    elif "tuple" in str(f.type):
        kind = _Sizes(meta.get("minimum"))
    elif "int" in str(f.type):
        kind = click.IntRange(min=meta.get("minimum"))
    else:
        kind = float
    return click.option(flag, f"cfg_{f.name}", type=kind, default=f.default,
                        show_default=f.default is not None, help=meta["help"])


class _Sizes(click.ParamType):
    """Comma-separated integers (``--hidden-sizes 100,50``) as a tuple."""

    name = "H1,H2,..."

    def __init__(self, minimum):
        self.minimum = minimum

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            sizes = tuple(int(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"expected comma-separated integers such as 100,50, got {value!r}",
                      param, ctx)
        if self.minimum is not None and min(sizes) < self.minimum:
            self.fail(f"every entry must be >= {self.minimum}, got {value!r}", param, ctx)
        return sizes


def config_options(func):
    """Add one option per ``TrainConfig`` field to a click command (in field order)."""
    for f in reversed(dataclasses.fields(TrainConfig)):
        func = _option(f)(func)
    return func


def config_fields(kwargs: dict) -> dict:
    """Pop the options ``config_options`` added from a command's ``kwargs``; field values."""
    return {name[4:]: kwargs.pop(name) for name in list(kwargs) if name.startswith("cfg_")}
