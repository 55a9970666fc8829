"""Study reports from stored records: a markdown table, tie-aware conclusions, figures, CSVs.

``write_study_report(study_dir)`` reads ``plan.json`` (which runs belong to the study as last
run, in which order) and ``results.jsonl``, and writes into the same directory ``report.md``,
``runs.csv``, ``table.csv``, ``curves.png``, ``test.png``, ``tradeoff.png``, ``heatmap.png``
(grid studies) and, when the runs' models were saved, ``predictions.png`` and ``confusion.png``
of the leading setting's lower-median repeat. ``write_summary(out)`` writes ``summary.md`` and
``summary.png`` over every study under ``out``. Nothing here trains.

Table cells are ``mean ± standard deviation`` over repeats (sample std, ddof=1; only the mean
with one repeat); the per-epoch cost column holds the cost and its spread (``table.Row.stat``).
Diverged runs count in the train time and epoch columns but not in the test columns. Every
"best" follows the tie rule (``stats``).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from ..safe_io import naming, write_atomic
from . import export, plots
from .specs import StudySpec, format_value
from .table import TIME_KINDS, Row, build_rows, verdict

__all__ = ["find_study_dirs", "load_study", "rebuild_reports", "write_study_report",
           "write_summary"]

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.md"
SUMMARY_FIGURE = "summary.png"
MODELS_DIR = "models"
FIGURES = {"curves": "curves.png", "test": "test.png", "tradeoff": "tradeoff.png",
           "heatmap": "heatmap.png", "predictions": "predictions.png",
           "confusion": "confusion.png"}

# How the fixed parameters are named in titles, in this order.
_TITLE_FIELDS = (
    ("optimizer", "{}"), ("learning_rate", "lr {:g}"), ("activation", "{}"),
    ("hidden_size", "hidden {}"), ("batch_size", "batch {}"), ("l2", "l2 {:g}"),
)


def read_plan(path: Path) -> dict:
    """``plan.json``; ``ValueError``/``FileNotFoundError`` naming the file."""
    try:
        with naming(path):
            plan = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not a study directory (no plan)") from None
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{path}: not a valid plan: not JSON ({e})") from None
    try:
        StudySpec.from_dict(plan["study"])
        for run in plan["runs"]:
            if not isinstance(run["key"], str) or not isinstance(run["setting"], str):
                raise TypeError("a run's key or setting is not a string")
        next(iter(plan["data"].values()))["train_size"]  # noqa: B018 - checked for presence
    except (KeyError, TypeError, AttributeError, StopIteration) as e:
        what = f"missing {e}" if isinstance(e, KeyError) else str(e) or "no data"
        raise ValueError(f"{path}: not a valid plan ({what})") from None
    return plan


def load_study(directory, records=None) -> tuple[StudySpec, dict, list[Row]]:
    """The study's spec, plan and table rows; ``records``: its checked records if the caller
    has them (else read from ``results.jsonl``)."""
    from .store import RESULTS_FILE, read_records

    directory = Path(directory)
    plan = read_plan(directory / PLAN_FILE)
    spec = StudySpec.from_dict(plan["study"])
    if records is None:
        records = read_records(directory / RESULTS_FILE)
    planned = [(run["setting"], run.get("values") or {spec.parameters[0]: run.get("value")},
                run["key"]) for run in plan["runs"]]
    return spec, plan, build_rows(planned, {r["key"]: r for r in records})


# --------------------------------------------------------------------------- text


def _cell(mean, std, fmt, unit="") -> str:
    if math.isnan(mean):
        return "—"
    text = fmt.format(mean)
    if not math.isnan(std):
        text += " ± " + fmt.format(std)
    return text + unit


def _digits(value) -> int:
    return 3 if value < 0.1 else 2 if value < 10 else 1 if value < 100 else 0


def seconds_cell(mean, std) -> str:
    """A time with decimals to suit its size: 0.012 s, 1.23 s, 12.3 s, 123 s."""
    return "—" if math.isnan(mean) else _cell(mean, std, f"{{:.{_digits(mean)}f}}", " s")


def cost_cell(mean, spread) -> str:
    """A per-epoch cost in milliseconds."""
    if math.isnan(mean):
        return "—"
    ms = 1000 * mean
    return _cell(ms, 1000 * spread, f"{{:.{max(_digits(ms), 1)}f}}", " ms")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def table_markdown(spec: StudySpec, rows: list[Row]) -> str:
    """One line per setting: its parameter value(s), train time, time kind, per-epoch cost,
    epochs, test loss and test accuracy."""
    heads = [spec.label] if not spec.is_grid else list(spec.parameters)
    lines = ["| " + " | ".join([*heads, "Train time", "Time", "Per-epoch cost", "Epochs",
                                "Test loss", "Test accuracy"]) + " |",
             "| " + " | ".join(["---"] * len(heads) + ["---:", "---", "---:", "---:", "---:",
                                                      "---:"]) + " |"]
    for row in rows:
        cells = ([row.setting] if not spec.is_grid else
                 [format_value(row.values[p]) for p in spec.parameters])
        notes = []
        if row.n_diverged:
            notes.append(f"{row.n_diverged}/{len(row.runs)} diverged")
        if len(row.runs) < row.n_planned:
            notes.append(f"{len(row.runs)}/{row.n_planned} runs")
        if notes:
            cells[-1] += f" ({', '.join(notes)})"
        test = (("diverged", "diverged") if row.runs and not row.finite else
                (_cell(*row.stat("test_loss"), "{:.4f}"),
                 _cell(*(100 * x for x in row.stat("test_accuracy")), "{:.2f}", " %")))
        lines.append("| " + " | ".join([
            *cells, seconds_cell(*row.stat("train_time")), "; ".join(row.time_kinds) or "—",
            cost_cell(*row.stat("epoch_cost")), _cell(*row.stat("epochs"), "{:.1f}"),
            *test]) + " |")
    return "\n".join(lines)


def _fixed_text(spec: StudySpec, rows: list[Row]) -> str:
    records = [r for row in rows for r in row.records]
    config = records[0]["config"] if records else spec.config(spec.settings()[0]).to_dict()
    parts = []
    for name, fmt in _TITLE_FIELDS:
        if name not in spec.parameters and not (name == "l2" and config[name] == 0):
            parts.append(fmt.format(config[name]))
    if "early_stopping" not in spec.parameters:
        parts.append(f"early stopping (patience {config['patience']})"
                     if config["early_stopping"] else "no early stopping")
    if "max_epochs" not in spec.parameters:
        parts.append(f"max {config['max_epochs']} epochs")
    return ", ".join(parts)


def _name(spec: StudySpec, setting: str) -> str:
    if spec.is_grid:
        return setting
    label = spec.label.lower() if spec.label[:1].isupper() and spec.label[1:].islower() \
        else spec.label
    return f"{label} {setting}"


def verdict_text(spec: StudySpec, rows: list[Row], quantity: str, what: str) -> str:
    """One conclusion line: the tie rule's verdict on ``quantity``."""
    v = verdict(rows, quantity)
    if v.kind == "none":
        return f"{what}: no finished run yet."
    by = {row.setting: row for row in rows}
    lead = by[v.leader]

    def detail(row):
        return (f"{100 * row.stat('test_accuracy')[0]:.2f} %, "
                f"{seconds_cell(row.stat('train_time')[0], math.nan)}")

    if v.kind == "best":
        against = "" if not v.runner_up else (
            f" (Welch p = {v.p_value:.2g} against {_name(spec, v.runner_up)})" if v.p_value > 0
            else f" (against {_name(spec, v.runner_up)}: identical per-run values, a "
                 "difference beyond the per-epoch cost spread)")
        return f"{what}: {_name(spec, v.leader)} ({detail(lead)}){against}."
    if v.kind == "tie":
        names = [_name(spec, v.leader), *v.tied[1:]]
        who = (f"all {len(names)} settings" if len(names) == len(rows)
               else ", ".join(names[:-1]) + f" and {names[-1]}")
        return (f"{what}: {who} tie, within noise (Welch p = {v.p_value:.2g} between the "
                "leader and the runner-up); no setting is named.")
    return (f"{what}: no claim with fewer than 2 repeats ({_name(spec, v.leader)} leads: "
            f"{detail(lead)}).")


def conclusions(spec: StudySpec, rows: list[Row]) -> list[str]:
    """The report's conclusions: tie-aware bests, the trade-off, divergences."""
    if not any(row.finite for row in rows):
        return ["No setting has a finished, non-diverged run yet."]
    lines = [verdict_text(spec, rows, "train_time", "Best train time"),
             verdict_text(spec, rows, "test_accuracy", "Best test accuracy")]
    front = plots.pareto_front(plots.tradeoff_points(rows))
    if front:
        lines.append("Trade-off (no other setting is both more accurate and faster, on the "
                     "means): " + "; ".join(_name(spec, s) for s in front) + ".")
    diverged = [row for row in rows if row.n_diverged]
    if diverged:
        lines.append("Diverged: " + ", ".join(
            f"{_name(spec, row.setting)} ({row.n_diverged} of {len(row.runs)} runs)"
            for row in diverged) + ".")
    return lines


def _time_text(rows: list[Row]) -> str:
    kinds = sorted({k for row in rows for k in row.time_kinds})
    return " ".join(f"Time *{k}*: {TIME_KINDS[k]}." for k in kinds if k in TIME_KINDS)


def _sources_text(plan: dict) -> str:
    sources = plan.get("sources") or {}
    given = {k: v for k, v in sources.items() if v != "default"}
    if not given:
        return ""
    by = {}
    for name, where in given.items():
        by.setdefault(where, []).append(name)
    return "Options: " + "; ".join(f"{', '.join(sorted(names))} from the {where}"
                                   for where, names in sorted(by.items())) + \
        "; the rest default."


# --------------------------------------------------------------------------- figures


def median_run(row: Row) -> dict | None:
    """The repeat whose model stands for a setting: the lower median of test accuracy among
    its finished, non-diverged runs."""
    runs = sorted(row.finite, key=lambda r: (r["test_accuracy"], r["repeat"]))
    return runs[(len(runs) - 1) // 2] if runs else None


def _model_figures(directory: Path, spec: StudySpec, plan: dict, rows: list[Row],
                   title: str) -> list[str]:
    """``predictions.png`` and ``confusion.png`` of the leading setting's median model."""
    from ..model_file import load_model
    from .evaluate import evaluate_model, write_model_figures
    from .plan import DataSpec

    leader = verdict(rows, "test_accuracy").leader
    row = next((r for r in rows if r.setting == leader), None)
    run = median_run(row) if row else None
    path = directory / MODELS_DIR / f"{run['key']}.npz" if run else None
    if path is None or not path.is_file():
        return []
    try:
        model = load_model(path)
        splits = DataSpec(**plan["options"]["data"]).load(str(model.dtype))
    except (OSError, ValueError) as e:
        log.warning("%s: no prediction figures (%s)", directory, e)
        return []
    evaluation = evaluate_model(model, splits.X_test, splits.y_test)
    write_model_figures(directory, evaluation, splits.X_test, splits.y_test,
                        f"{title}\n{_name(spec, leader)}, repeat {run['repeat']} "
                        f"(lower-median test accuracy of its repeats)")
    return [FIGURES["predictions"], FIGURES["confusion"]]


def _figures(directory: Path, spec: StudySpec, plan: dict, rows: list[Row], title: str
             ) -> list[str]:
    names = [FIGURES["curves"], FIGURES["test"], FIGURES["tradeoff"]]
    curves = [(row.setting, [r for r in row.records if not r["diverged"]]) for row in rows]
    plots.curves_figure(directory / FIGURES["curves"], curves, spec.label, title)
    plots.test_figure(directory / FIGURES["test"], rows, spec.label, title)
    plots.tradeoff_figure(directory / FIGURES["tradeoff"], rows, spec.label, title)
    if spec.is_grid:
        x, y = spec.parameters[-1], spec.parameters[0]
        plots.heatmap_figure(directory / FIGURES["heatmap"], rows, x, y, title)
        names.append(FIGURES["heatmap"])
    return names + _model_figures(directory, spec, plan, rows, title)


_CAPTIONS = {"curves.png": "Loss and validation accuracy per epoch",
             "test.png": "Train time, epochs, test loss and accuracy per setting",
             "tradeoff.png": "Test accuracy against train time",
             "heatmap.png": "Test accuracy over the grid",
             "predictions.png": "Predictions of the leading setting's model",
             "confusion.png": "Confusion matrix of the leading setting's model"}


def write_study_report(directory, records=None) -> str:
    """Write one study's report, CSVs and figures (module docstring); return the markdown."""
    directory = Path(directory)
    spec, plan, rows = load_study(directory, records)
    options = plan["options"]
    repeats, seed = options["repeats"], options["seed"]
    fixed = _fixed_text(spec, rows)
    sizes = next(iter(plan["data"].values()))
    dtype = next(iter(plan["data"]))
    title = (f"{spec.name}: {spec.label} varies; {fixed}\n{_plural(repeats, 'repeat')}, {dtype}, "
             f"{sizes['train_size']} training images")
    seeds = f"seed {seed}" if repeats == 1 else f"seeds {seed}..{seed + repeats - 1}"
    done = sum(len(row.runs) for row in rows)
    planned = sum(row.n_planned for row in rows)
    varies = "; ".join(f"**{p}** over {', '.join(format_value(v) for v in values)}"
                       for p, values in spec.grid)
    figures = _figures(directory, spec, plan, rows, title) if done else []
    export.write_runs_csv(directory / export.RUNS_FILE, rows)
    export.write_table_csv(directory / export.TABLE_FILE, rows, spec.parameters)
    parts = [
        f"# Study {spec.name}", "",
        *([spec.description, ""] if spec.description else []),
        f"Varies {varies}. Fixed: {fixed}. {_plural(repeats, 'repeat')} ({seeds}); "
        f"train {sizes['train_size']} / val {sizes['val_size']} / test {sizes['test_size']} "
        f"images (split seed {sizes['split_seed']}), {options['backend']} backend, {dtype}. "
        + _sources_text(plan), "",
        table_markdown(spec, rows), "",
        f"Mean ± standard deviation over repeats; per-epoch cost: the timing key's measured "
        f"cost ± its spread for grouped runs, train time / epochs ± its std over repeats for "
        f"runs trained alone. {_time_text(rows)} {done} of {planned} runs recorded. "
        f"Data: [runs.csv]({export.RUNS_FILE}), [table.csv]({export.TABLE_FILE}).", "",
        "**Conclusions** (a best is named only when Welch's t-test against the runner-up "
        "rejects equality at the 5 % level)", "",
        *[f"- {line}" for line in conclusions(spec, rows)], "",
        *[f"![{_CAPTIONS[name]}]({name})\n" for name in figures],
    ]
    text = "\n".join(parts)
    write_atomic(directory / REPORT_FILE, text)
    return text


# --------------------------------------------------------------------------- summary


def find_study_dirs(directory) -> list[Path]:
    """``directory`` itself if it is a study directory, else its study subdirectories."""
    directory = Path(directory)
    if (directory / PLAN_FILE).is_file():
        return [directory]
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    return sorted(p.parent for p in directory.glob(f"*/{PLAN_FILE}"))


def _overview_line(name: str, spec: StudySpec, rows: list[Row]) -> str:
    v = verdict(rows, "test_accuracy")
    by = {row.setting: row for row in rows}
    if v.leader is None:
        return f"| [{name}]({name}/{REPORT_FILE}) | — | — | — |"
    lead = by[v.leader]
    best = {"best": v.leader, "tie": f"{v.leader} ≈ {v.runner_up} (tie)",
            "too few repeats": f"{v.leader} (1 repeat: no claim)"}[v.kind]
    what = "" if spec.is_grid else f"{spec.label} "
    return (f"| [{name}]({name}/{REPORT_FILE}) | {what}{best} | "
            f"{_cell(*(100 * x for x in lead.stat('test_accuracy')), '{:.2f}', ' %')} | "
            f"{seconds_cell(*lead.stat('train_time'))} |")


def write_summary(out, records: dict[str, list[dict]] | None = None) -> Path:
    """``<out>/summary.md`` and ``summary.png`` over every study under ``out``, whichever
    invocation ran it (``records``: checked records by study name, where the caller has them)."""
    out = Path(out)
    studies = []
    for directory in find_study_dirs(out):
        if directory == out:
            continue
        spec, _, rows = load_study(directory, (records or {}).get(directory.name))
        studies.append((directory.name, spec, rows))
    parts = ["# Study summary", "",
             "| Study | Best test accuracy (tie-aware) | Test accuracy | Train time |",
             "| --- | --- | ---: | ---: |",
             *[_overview_line(name, spec, rows) for name, spec, rows in studies], "",
             f"![Every study's settings: accuracy against train time]({SUMMARY_FIGURE})", ""]
    for name, spec, rows in studies:
        parts += [f"## [{name}]({name}/{REPORT_FILE})", "",
                  *([spec.description, ""] if spec.description else []),
                  table_markdown(spec, rows), "",
                  f"Figures: [curves]({name}/curves.png), [test]({name}/test.png), "
                  f"[trade-off]({name}/tradeoff.png); data: [runs.csv]({name}/runs.csv); "
                  f"log: [logs/{name}.log](logs/{name}.log).", ""]
    plots.summary_figure(out / SUMMARY_FIGURE, [(name, rows) for name, _, rows in studies])
    return write_atomic(out / SUMMARY_FILE, "\n".join(parts))


def rebuild_reports(directory) -> tuple[list[str], Path | None]:
    """Every study report under ``directory`` (a ``--out`` or one study's directory) again,
    from stored records; the markdown of each and the summary's path (``None`` for one study
    directory). ``FileNotFoundError`` when there are no studies."""
    from .store import RESULTS_FILE, read_records

    directory = Path(directory)
    dirs = find_study_dirs(directory)
    if not dirs:
        raise FileNotFoundError(f"{directory}: no study results here (no */{PLAN_FILE})")
    records = {d.name: read_records(d / RESULTS_FILE) for d in dirs}
    texts = [write_study_report(d, records[d.name]) for d in dirs]
    summary = None if dirs == [directory] else write_summary(directory, records)
    return texts, summary
