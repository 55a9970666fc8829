"""Study reports from stored records: a markdown table, conclusions and two figures per study.

``write_study_report(study_dir)`` reads ``plan.json`` (which runs belong to the study as last
run, in which order) and ``results.jsonl``, and writes ``report.md``, ``curves.png`` and
``test.png`` into the same directory. ``write_summary(out, names)`` links every study's report.
Nothing here trains; ``ffnn-run report DIR`` calls these on stored results.

Table cells are ``mean ± standard deviation`` over repeats (sample std, ddof=1; only the mean
with one repeat). Diverged runs count in the train time and epoch columns but not in the test
columns (their losses are meaningless); rows with diverged runs say how many.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .results import RESULTS_FILE, read_records
from .safe_io import naming, replacing, write_atomic
from .study_specs import StudySpec, format_value

__all__ = ["SettingSummary", "rebuild_reports", "study_rows", "write_study_report",
           "write_summary"]

PLAN_FILE = "plan.json"
REPORT_FILE = "report.md"
CURVES_FILE = "curves.png"
TEST_FILE = "test.png"
ACCURACY_TOLERANCE = 0.1  # percentage points, for the "nearly as accurate, faster" conclusion

# How the fixed parameters are named in titles, in this order.
_TITLE_FIELDS = (
    ("optimizer", "{}"), ("learning_rate", "lr {:g}"), ("activation", "{}"),
    ("hidden_size", "hidden {}"), ("batch_size", "batch {}"), ("l2", "l2 {:g}"),
)


@dataclass
class SettingSummary:
    """One table row: a setting and its runs' statistics over repeats."""

    setting: str
    runs: list[dict]
    n_planned: int

    @property
    def finite(self) -> list[dict]:
        return [r for r in self.runs if not r["diverged"]]

    @property
    def n_diverged(self) -> int:
        return len(self.runs) - len(self.finite)

    def stat(self, name: str, *, finite_only: bool = False) -> tuple[float, float]:
        """``(mean, std)`` of a record field over the runs (nan when there are none)."""
        values = np.array([r[name] for r in (self.finite if finite_only else self.runs)],
                          dtype=float)
        if values.size == 0:
            return math.nan, math.nan
        std = float(values.std(ddof=1)) if values.size > 1 else math.nan
        return float(values.mean()), std


def _read_plan(plan_path: Path) -> dict:
    """``plan.json`` checked for what the report reads; ``ValueError`` naming the file."""
    try:
        with naming(plan_path):
            plan = json.loads(plan_path.read_bytes())
    except FileNotFoundError:
        raise FileNotFoundError(f"{plan_path}: not a study directory (no plan)") from None
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{plan_path}: not a valid plan: not JSON ({e})") from None
    try:
        if not isinstance(plan, dict):
            raise TypeError("not a JSON object")
        StudySpec.from_dict(plan["study"])
        for name in ("repeats", "seed"):
            if not isinstance(plan["options"][name], int):
                raise TypeError(f"options.{name} is not an integer")
        sizes = next(iter(plan["data"].values()))
        for name in ("train_size", "val_size", "test_size", "split_seed"):
            if not isinstance(sizes[name], int):
                raise TypeError(f"data.{name} is not an integer")
        for run in plan["runs"]:
            if not isinstance(run["key"], str) or not isinstance(run["setting"], str):
                raise TypeError("a run's key or setting is not a string")
    except (KeyError, TypeError, AttributeError, StopIteration) as e:
        what = f"missing {e}" if isinstance(e, KeyError) else str(e) or "no data"
        raise ValueError(f"{plan_path}: not a valid plan ({what})") from None
    return plan


def _load(directory: Path, records=None) -> tuple[StudySpec, dict, list[SettingSummary]]:
    """The study's spec, plan and rows; ``records``: the study's checked records if the caller
    has them already (else read from ``results.jsonl``, each bad line logged once)."""
    plan = _read_plan(directory / PLAN_FILE)
    spec = StudySpec.from_dict(plan["study"])
    if records is None:
        records = read_records(directory / RESULTS_FILE)
    by_key = {r["key"]: r for r in records}
    rows: dict[str, SettingSummary] = {}
    for run in plan["runs"]:
        row = rows.setdefault(run["setting"], SettingSummary(run["setting"], [], 0))
        row.n_planned += 1
        if run["key"] in by_key:
            row.runs.append(by_key[run["key"]])
    return spec, plan, list(rows.values())


def study_rows(directory) -> list[SettingSummary]:
    """The rows of a study's table, in the order of the study's values."""
    return _load(Path(directory))[2]


def _cell(mean, std, fmt, unit="") -> str:
    if math.isnan(mean):
        return "—"
    text = fmt.format(mean)
    if not math.isnan(std):
        text += " ± " + fmt.format(std)
    return text + unit


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _seconds(mean, std) -> str:
    """Train time with decimals to suit its size: 0.012 s, 1.23 s, 12.3 s, 123 s."""
    if math.isnan(mean):
        return "—"
    digits = 3 if mean < 0.1 else 2 if mean < 10 else 1 if mean < 100 else 0
    return _cell(mean, std, f"{{:.{digits}f}}", " s")


def _fixed_text(spec: StudySpec, plan: dict, rows: list[SettingSummary]) -> str:
    runs = [r for row in rows for r in row.runs]
    config = runs[0]["config"] if runs else spec.config(spec.values[0]).to_dict()
    parts = []
    for name, fmt in _TITLE_FIELDS:
        if name != spec.parameter and not (name == "l2" and config[name] == 0):
            parts.append(fmt.format(config[name]))
    if spec.parameter != "early_stopping":
        parts.append(f"early stopping (patience {config['patience']})"
                     if config["early_stopping"] else "no early stopping")
    if spec.parameter != "max_epochs":
        parts.append(f"max {config['max_epochs']} epochs")
    return ", ".join(parts)


def _train_time_text(runs: list[dict]) -> str:
    """What the train-time column means for these records (``train_time_source``)."""
    sources = {r.get("train_time_source", "measured") for r in runs}
    measured = "the measured wall time of the epoch loop of one single-threaded run"
    calibrated = ("epochs x the per-epoch time of the run's configuration trained alone, "
                  "measured by a short solo calibration (the runs were trained together in "
                  "groups, whose wall time cannot be split among them)")
    if sources == {"calibrated"}:
        return f"train time is calibrated: {calibrated}."
    if "calibrated" in sources:
        return (f"train time is {measured} for runs trained alone, and calibrated for grouped "
                f"runs: {calibrated}.")
    return f"train time is {measured}."


def _data_text(plan: dict) -> str:
    sizes = next(iter(plan["data"].values()))
    options = plan["options"]
    return (f"train {sizes['train_size']} / val {sizes['val_size']} / test {sizes['test_size']} "
            f"images (split seed {sizes['split_seed']}), {options['backend']} backend")


def _conclusions(spec: StudySpec, rows: list[SettingSummary]) -> list[str]:
    usable = [row for row in rows if row.finite]
    if not usable:
        return ["No setting has a finished, non-diverged run yet."]
    label = spec.label.lower() if spec.label[:1].isupper() and spec.label[1:].islower() \
        else spec.label

    def name(row):
        return f"{label} {row.setting}"

    time_ = {row.setting: row.stat("train_time")[0] for row in usable}
    acc = {row.setting: 100 * row.stat("test_accuracy", finite_only=True)[0] for row in usable}
    fastest = min(usable, key=lambda row: time_[row.setting])
    best = max(usable, key=lambda row: acc[row.setting])
    near = [row for row in usable if acc[row.setting] >= acc[best.setting] - ACCURACY_TOLERANCE]
    quick = min(near, key=lambda row: time_[row.setting])
    lines = [
        f"Best train time: {name(fastest)} ({time_[fastest.setting]:.2f} s, "
        f"{acc[fastest.setting]:.2f} % test accuracy).",
        f"Best test accuracy: {name(best)} ({acc[best.setting]:.2f} %, "
        f"{time_[best.setting]:.2f} s).",
        f"Within {ACCURACY_TOLERANCE} accuracy points of the best in the least time: "
        f"{name(quick)} ({acc[quick.setting]:.2f} %, {time_[quick.setting]:.2f} s).",
    ]
    diverged = [row for row in rows if row.n_diverged]
    if diverged:
        lines.append("Diverged: " + ", ".join(
            f"{name(row)} ({row.n_diverged} of {len(row.runs)} runs)" for row in diverged) + ".")
    return lines


def table_markdown(spec: StudySpec, rows: list[SettingSummary]) -> str:
    """``| <Label> | Train time | Epochs | Test loss | Test accuracy |`` with mean ± std."""
    lines = [f"| {spec.label} | Train time | Epochs | Test loss | Test accuracy |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for row in rows:
        setting = row.setting
        if row.n_diverged:
            setting += f" ({row.n_diverged}/{len(row.runs)} diverged)"
        if len(row.runs) < row.n_planned:
            setting += f" ({len(row.runs)}/{row.n_planned} runs)"
        test = (("diverged", "diverged") if row.runs and not row.finite else
                (_cell(*row.stat("test_loss", finite_only=True), "{:.4f}"),
                 _cell(*(100 * x for x in row.stat("test_accuracy", finite_only=True)),
                       "{:.2f}", " %")))
        lines.append(f"| {setting} | {_seconds(*row.stat('train_time'))} | "
                     f"{_cell(*row.stat('epochs'), '{:.1f}')} | {test[0]} | {test[1]} |")
    return "\n".join(lines)


def _mean_curve(runs: list[dict], name: str) -> np.ndarray:
    """Mean over runs at each epoch, over the runs that reached it."""
    series = [r["history"][name] for r in runs]
    longest = max(len(s) for s in series)
    padded = np.full((len(series), longest), np.nan)
    for i, s in enumerate(series):
        padded[i, :len(s)] = s
    counts = np.sum(~np.isnan(padded), axis=0)
    return np.nansum(padded, axis=0) / np.maximum(counts, 1)


def _figures(directory: Path, spec: StudySpec, rows, title: str) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    fig = Figure(figsize=(13, 4.4), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (("train_loss", "training loss", True), ("val_loss", "validation loss", True),
              ("val_accuracy", "validation accuracy (%)", False))
    for ax, (field, ylabel, log) in zip(axes, panels, strict=True):
        plotted = False
        for row in rows:
            if not row.finite:
                continue
            curve = _mean_curve(row.finite, field) * (1 if log else 100)
            ax.plot(np.arange(1, len(curve) + 1), curve, label=row.setting)
            plotted |= bool(np.any(np.isfinite(curve) & (curve > 0)))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not plotted:  # e.g. no validation split: nothing to show
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        elif log:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
    axes[0].legend(title=spec.label, fontsize="small")
    fig.suptitle(f"{title}\nmean over repeats per epoch (a run that stopped early leaves the "
                 "mean; diverged runs not shown)", fontsize="medium")
    with replacing(directory / CURVES_FILE) as tmp:
        fig.savefig(tmp, dpi=100, format="png")

    fig = Figure(figsize=(11, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    x = np.arange(len(rows))
    for ax, (field, ylabel, scale) in zip(
            axes, (("test_loss", "test loss", 1), ("test_accuracy", "test accuracy (%)", 100)),
            strict=True):
        stats = [row.stat(field, finite_only=True) for row in rows]
        means = np.array([m for m, _ in stats]) * scale
        stds = np.nan_to_num(np.array([s for _, s in stats]) * scale)
        ax.bar(x, np.nan_to_num(means), yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
        ax.set_xticks(x, [row.setting for row in rows])
        ax.set_xlabel(spec.label)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ok = np.isfinite(means)
        if field == "test_accuracy" and ok.any():  # zoom in: accuracies differ by little
            low = max(0.0, float(np.min(means[ok] - stds[ok])) - 2)
            ax.set_ylim(low, min(100.0, float(np.max(means[ok] + stds[ok])) + 1))
    fig.suptitle(f"{title}\nmean ± std over repeats (diverged runs excluded)",
                 fontsize="medium")
    with replacing(directory / TEST_FILE) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def write_study_report(directory, records=None) -> str:
    """Write ``report.md``, ``curves.png`` and ``test.png`` for one study; return the markdown.

    ``records``: the study's checked records, if the caller has them (the runner does)."""
    directory = Path(directory)
    spec, plan, rows = _load(directory, records)
    repeats = plan["options"]["repeats"]
    seed = plan["options"]["seed"]
    fixed = _fixed_text(spec, plan, rows)
    runs = [r for row in rows for r in row.runs]
    dtype = runs[0]["dtype"] if runs else spec.config(spec.values[0]).dtype
    sizes = next(iter(plan["data"].values()))
    title = (f"{spec.name}: {spec.label} varies; {fixed}\n{_plural(repeats, 'repeat')}, {dtype}, "
             f"{sizes['train_size']} training images")
    seeds = f"seed {seed}" if repeats == 1 else f"seeds {seed}..{seed + repeats - 1}"
    done = len(runs)
    planned = sum(row.n_planned for row in rows)
    parts = [
        f"# Study {spec.name}",
        "",
        *([spec.description, ""] if spec.description else []),
        f"Varies **{spec.label}** over {', '.join(format_value(v) for v in spec.values)}. "
        f"Fixed: {fixed}. {_plural(repeats, 'repeat')} ({seeds}); {_data_text(plan)}, {dtype}.",
        "",
        table_markdown(spec, rows),
        "",
        f"Mean ± standard deviation over repeats; {_train_time_text(runs)} {done} of {planned} "
        "runs recorded.",
        "",
        "**Conclusions**",
        "",
        *[f"- {line}" for line in _conclusions(spec, rows)],
        "",
        f"![Loss and validation accuracy per epoch]({CURVES_FILE})",
        "",
        f"![Test loss and accuracy per setting]({TEST_FILE})",
        "",
    ]
    text = "\n".join(parts)
    if runs:
        _figures(directory, spec, rows, title)
    write_atomic(directory / REPORT_FILE, text)
    return text


def find_study_dirs(directory) -> list[Path]:
    """``directory`` itself if it is a study directory, else its study subdirectories."""
    directory = Path(directory)
    if (directory / PLAN_FILE).is_file():
        return [directory]
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    return sorted(p.parent for p in directory.glob(f"*/{PLAN_FILE}"))


def write_summary(out, names, records: dict[str, list[dict]] | None = None) -> Path:
    """``<out>/summary.md``: every study's table with links to its report and figures
    (``records``: each study's checked records by name, if the caller has them)."""
    out = Path(out)
    parts = ["# Study summary", ""]
    for name in names:
        directory = out / name
        spec, _, rows = _load(directory, None if records is None else records[name])
        parts += [
            f"## [{name}]({name}/{REPORT_FILE})", "",
            *([spec.description, ""] if spec.description else []),
            table_markdown(spec, rows), "",
            f"Figures: [per-epoch curves]({name}/{CURVES_FILE}), "
            f"[test loss and accuracy]({name}/{TEST_FILE}); log: [logs/{name}.log]"
            f"(logs/{name}.log).", "",
        ]
    return write_atomic(out / "summary.md", "\n".join(parts))


def rebuild_reports(directory) -> tuple[list[str], Path | None]:
    """Every study report under ``directory`` (a ``--out`` or one study's directory) again,
    from stored records, each file read once; the markdown of each and the summary's path (only
    for several studies). ``FileNotFoundError`` when there are no studies."""
    directory = Path(directory)
    dirs = find_study_dirs(directory)
    if not dirs:
        raise FileNotFoundError(f"{directory}: no study results here (no */{PLAN_FILE})")
    records = {d.name: read_records(d / RESULTS_FILE) for d in dirs}
    texts = [write_study_report(d, records[d.name]) for d in dirs]
    summary = write_summary(directory, [d.name for d in dirs], records) if len(dirs) > 1 \
        else None
    return texts, summary
