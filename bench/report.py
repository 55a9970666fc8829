"""Markdown tables from a saved benchmark run (``nox -s bench`` saves bench/results/latest.json).

    python bench/report.py                        # bench/results/latest.json, printed
    python bench/report.py RUN.json [--output table.md]
    python bench/report.py --update README.md docs/grouped.md   # rewrite the marked blocks

One table per suite (``epoch``, ``busy``, ``grouped``, ``dense``, ``compile``, ``estimator``,
``study``): medians side by side, the ratios the issues ask about, and a column per acceptance
target and goal of issues 11, 12 and 13 (``bench/targets.py``) with whether it is met; before them
the summary of every target and goal; after them a footer with the machine, the load average at
the start and end of the run, the ``OPENBLAS_*`` variables, the BLAS thread pools
(threadpoolctl) and the library versions.

``--update FILE`` replaces, in each file, every block between ``<!-- bench-report: SUITES -->``
and ``<!-- /bench-report -->`` by the tables of the suites it names (``summary``, a suite name,
``footer``; none named: everything), so the README and the docs regenerate from the committed
JSON without rerunning the benchmarks.
"""

import argparse
import json
import re
import sys
from pathlib import Path

from ffnn.kernels import BACKENDS
from targets import CHECKS, Results, checks_for, ratio

DEFAULT_RUN = Path(__file__).resolve().parent / "results" / "latest.json"
WORKLOADS = {"W1": "hidden 10, batch 250, float32", "W2": "hidden 100, batch 250, float32",
             "W3": "hidden 10, batch 50, float32", "W4": "hidden 100, batch 250, float64",
             "W5": "hidden (256, 128), batch 250, float32"}
MARKER = re.compile(r"(<!-- bench-report:?([^>]*?)-->\n)(.*?)(<!-- /bench-report -->)", re.S)


# ----------------------------------------------------------------------------- reading a run
def load(path: Path) -> dict:
    if path.is_dir():
        files = sorted(path.glob("**/*.json"), key=lambda p: p.stat().st_mtime)
        if not files:
            sys.exit(f"report: no benchmark JSON under {path}; run `nox -s bench` first")
        path = files[-1]
    if not path.is_file():
        sys.exit(f"report: {path} does not exist; run `nox -s bench` (it writes "
                 f"bench/results/latest.json) or pass a pytest-benchmark JSON file")
    data = json.loads(path.read_text())
    data["_path"] = str(path)
    return data


def row_label(info: dict) -> str:
    return f"{info['implementation']} {info['threads']}t"


def collect(benchmarks: list[dict], machine: dict) -> Results:
    """The medians of every benchmark, keyed by suite (``targets.Results``)."""
    results = Results(kernels_code_lines=machine.get("kernels_code_lines"))
    for b in benchmarks:
        info = b.get("extra_info", {})
        suite = info.get("suite")
        if suite == "epoch":
            results.epoch[(info["workload"], info["optimizer"], row_label(info))] = \
                info["epoch_median"]
        elif suite in ("dense", "busy"):
            getattr(results, suite)[row_label(info)] = info["epoch_median"]
        elif suite == "grouped":
            results.grouped[(info["mode"], info["k"], info["hidden_size"], info["threads"])] = {
                "call": info["call_median"], "per_model_epoch": info["per_model_epoch_median"]}
        elif suite == "compile":
            results.compile[info["mode"]] = info["process_median"]
        elif suite == "estimator":
            results.estimator[(info["data"], info["estimator"])] = b["stats"]["median"]
        elif suite == "study":
            results.study[(info["study"], info["grouping"])] = info["wall_seconds"]
    return results


def columns(rows) -> list[str]:
    """Row labels in a fixed order: ffnn's backends in registry order, then the rest as run."""
    labels = list(dict.fromkeys(rows))
    order = {f"ffnn-{name}": i for i, name in enumerate(BACKENDS)}
    return sorted(labels, key=lambda label: (order.get(label.split()[0], len(order)),
                                             labels.index(label)))


# ----------------------------------------------------------------------------- formatting
def ms(seconds):
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.1f}" if seconds < 1 else f"{seconds * 1e3:.0f}"


def times(value):
    return "-" if value is None else f"{value:.2f}x"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head),
            *("| " + " | ".join(row) + " |" for row in rows)]


def check_cells(results, suite, key=()):
    """The ``target`` and ``goal`` cells of one table line: each check as ``text: figure
    met?``."""
    return ["; ".join(f"{c.text}: {c.figure(results)} {c.verdict(results)}"
                      for c in checks_for(suite, key) if c.kind == kind) or "-"
            for kind in ("target", "goal")]


CHECK_HEAD = ["target: measured, met", "goal: measured, met"]


# ----------------------------------------------------------------------------- the tables
def summary_table(results: Results) -> list[str]:
    lines = []
    for kind, title in (("target", "Acceptance targets"), ("goal", "Goals beyond acceptance")):
        rows = [[c.row, c.threads, c.text, c.figure(results), c.verdict(results)]
                for c in CHECKS if c.kind == kind]
        lines += [f"**{title}** (issues 11, 12 and 13)", "",
                  *table(["row", "ffnn threads", kind, "measured", "met"], rows), ""]
    return lines[:-1]


def epoch_table(results: Results) -> list[str]:
    if not results.epoch:
        return []
    present = columns(label for (_, _, label) in results.epoch)
    rows = []
    for workload in WORKLOADS:
        for optimizer in ("adam", "nesterov"):
            cell = {label: results.epoch.get((workload, optimizer, label)) for label in present}
            if not any(cell.values()):
                continue
            one = cell.get("ffnn-numba 1t")
            rows.append([f"{workload} ({WORKLOADS[workload]})", optimizer,
                         *(ms(cell[label]) for label in present),
                         times(ratio(cell.get("ffnn-numpy 2t"), one)),
                         times(ratio(cell.get("torch 2t"), one)),
                         *check_cells(results, "epoch", (workload, optimizer))])
    head = ["workload", "optimizer", *present, "numpy 2t / numba 1t", "torch 2t / numba 1t",
            *CHECK_HEAD]
    return [*table(head, rows), "",
            "Median ms per epoch (34,000 training images in minibatches plus a validation pass "
            "over 6,000; relu), each implementation through its own epoch loop (`ffnn.train` "
            "for ffnn), timed between successive epoch ends of fresh runs (the first epoch of "
            "each run untimed); `Nt`: threads. Ratios: the other time over ffnn-numba's at 1 "
            "thread (higher: ffnn faster). Targets and goals are for Adam."]


def own_clock_table(benchmarks: list[dict]) -> list[str]:
    """The benchmark's clock against ``train``'s own (``EpochRecord.seconds``), ffnn rows."""
    cells = {}
    for b in benchmarks:
        info = b.get("extra_info", {})
        if info.get("suite") in ("epoch", "dense") and "own_epoch_median" in info:
            line = (info["suite"], info["workload"], info["optimizer"])
            cells.setdefault(line, {})[row_label(info)] = (
                f"{ms(info['epoch_median'])} / {ms(info['own_epoch_median'])}")
    if not cells:
        return []
    present = columns(label for line in cells.values() for label in line)
    rows = [[*key, *(cells[key].get(label, "-") for label in present)]
            for key in sorted(cells, key=lambda k: (k[0] != "epoch", k[1], k[2]))]
    return [*table(["suite", "workload", "optimizer", *present], rows), "",
            "The two clocks of the ffnn rows, ms per epoch: the benchmark's (between epoch ends, "
            "the whole loop) / `train`'s own `EpochRecord.seconds`, medians of the same epochs."]


def busy_table(results: Results) -> list[str]:
    if not results.busy:
        return []
    present = columns(results.busy)
    one, two = results.busy.get("ffnn-numba 1t"), results.busy.get("ffnn-numba 2t")
    return [*table(["W1 (adam), another process busy on one core", *present,
                    "1t / 2t (above 1: the second thread gains)"],
                   [["ms per epoch", *(ms(results.busy[label]) for label in present),
                     times(ratio(one, two))]]), "",
            "The epoch protocol while a child process spins on one core: whether a second "
            "thread for one network still gains when the machine is not idle (issue 11, "
            "Threads)."]


def grouped_table(results: Results) -> list[str]:
    if not results.grouped:
        return []
    rows = []
    for (mode, k, hidden, threads), value in sorted(
            results.grouped.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0], kv[0][3])):
        rows.append([str(k), str(hidden), "train_many" if mode == "train_many" else
                     "the same, trained alone", str(threads), f"{value['call']:.2f}",
                     ms(value["per_model_epoch"]),
                     *check_cells(results, "grouped", (mode, k, hidden, threads))])
    return [*table(["K", "hidden", "how", "threads", "whole call (s)",
                    "per model-epoch (ms)", *CHECK_HEAD], rows), "",
            "`TrainConfig` defaults (ELU, Adam, batch 250, float32), 4 epochs, networks "
            "differing in seed and learning rate; `train_many(..., calibrate=False)`. Whole "
            "call: median wall time of the call(s), final metrics included; per model-epoch: "
            "median interval between group epoch ends divided by K (first epoch untimed)."]


def dense_table(results: Results, benchmarks: list[dict]) -> list[str]:
    if not results.dense:
        return []
    present = columns(results.dense)
    ffnn2 = results.dense.get("ffnn-numba 2t")
    info = next((b["extra_info"] for b in benchmarks
                 if b.get("extra_info", {}).get("suite") == "dense"), {})
    paths = sorted({f"{k}={v}" for b in benchmarks
                    if b.get("extra_info", {}).get("suite") == "dense"
                    for k, v in b["extra_info"].get("result_extra", {}).items()})
    row = ["dense W2 (hidden 100, batch 250, float32, adam)",
           *(ms(results.dense[label]) for label in present),
           times(ratio(results.dense.get("torch 2t"), ffnn2)),
           times(ratio(results.dense.get("sklearn 2t"), ffnn2)),
           *check_cells(results, "dense")]
    note = (f"Median ms per epoch, the epoch protocol on W2 after `StandardScaler` semantics "
            f"({info.get('nonzero_fraction', 0):.0%} of the inputs nonzero). Ratios: the other "
            f"time over ffnn-numba's at 2 threads.")
    if paths:
        note += f" `TrainResult.extra` of the ffnn runs: {', '.join(paths)}."
    return [*table(["workload", *present, "torch 2t / numba 2t", "sklearn 2t / numba 2t",
                    *CHECK_HEAD], [row]), "", note]


def compile_table(results: Results) -> list[str]:
    if not results.compile:
        return []
    c = results.compile
    rows = [["cold: empty `NUMBA_CACHE_DIR`", f"{c['cold']:.2f}" if "cold" in c else "-"],
            ["warm: the same cache filled", f"{c['warm']:.2f}" if "warm" in c else "-"],
            ["import only (baseline)", f"{c['import']:.2f}" if "import" in c else "-"]]
    cold = results.cold_compile()
    target, goal = check_cells(results, "compile")
    rows.append(["**cold compile = cold - warm**", "-" if cold is None else f"{cold:.2f}"])
    return [*table(["process: float32 `ffnn.train`, 1 epoch, 1,000 images", "seconds (median)"],
                   rows), "", f"Issues 11 and 13: target {target}; goal {goal}."]


def estimator_table(results: Results) -> list[str]:
    if not results.estimator:
        return []
    rows = []
    for case in dict.fromkeys(case for case, _ in results.estimator):
        ffnn_s, sk = results.estimator.get((case, "ffnn")), results.estimator.get((case, "sklearn"))
        rows.append([case, f"{ffnn_s:.2f}" if ffnn_s else "-", f"{sk:.2f}" if sk else "-",
                     times(ratio(sk, ffnn_s))])
    target, _ = check_cells(results, "estimator")
    return [*table(["case", "ffnn.MLPClassifier.fit (s)", "sklearn MLPClassifier.fit (s)",
                    "sklearn / ffnn"], rows), "",
            "20,000 MNIST images, hidden 100, relu, batch 250, 10 epochs (lbfgs: 10 iterations), "
            "adam unless named, every core; median of 3 fits. Issue 13: target " + target + "."]


def study_table(results: Results) -> list[str]:
    if not results.study:
        return []
    rows = [[study, grouping, f"{wall:.1f}"]
            for (study, grouping), wall in sorted(results.study.items())]
    _, goal = check_cells(results, "study", ("all", "grouped"))
    return [*table(["`ffnn-run study`", "grouping", "wall (s)"], rows), "",
            "34,000 / 6,000 / 2,000 images, default workers, one run each, `--fresh`. Issue 11 "
            f"goal (`all`, only with `FFNN_BENCH_STUDY_ALL=1`): {goal}."]


def footer(data: dict) -> list[str]:
    machine = data.get("machine_info", {})
    info = machine.get("ffnn", {})
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items() if v)
    pools = "; ".join(
        f"{p.get('internal_api')} {p.get('version')} ({p.get('threading_layer')}, "
        f"{p.get('num_threads')} threads, core type {p.get('architecture')})"
        for p in info.get("threadpools", []))
    env = info.get("openblas_env") or {}
    env_text = ", ".join(f"{k}={v}" for k, v in env.items()) or "no OPENBLAS_* variables set"

    def load(values):
        return " / ".join(f"{x:.2f}" for x in values) if values else "?"

    commit = data.get("commit_info", {})
    lines = [
        f"Machine: {info.get('cpu_model', '?')}, {info.get('cores_available', '?')} cores "
        f"available; numba threading layer {info.get('numba_threading_layer', '?')}. "
        f"{machine.get('python_implementation', '')} {machine.get('python_version', '')}, "
        f"{versions}.",
        f"Load average (1/5/15 min) at the start of the run: {load(info.get('load_average'))}; "
        f"at the end: {load(info.get('load_average_end'))} (the benchmarks themselves add 1-2; "
        f"a start value above ~0.5 means other processes shared the machine). The run took "
        f"{info.get('session_seconds', '?')} s.",
        f"BLAS thread pools (threadpoolctl): {pools or 'none loaded'}. Environment: {env_text}.",
        f"Recorded {info.get('recorded_at', data.get('datetime', '?'))}"
        + (f", commit {commit.get('id', '')[:10]}" if commit.get("id") else "")
        + (" (with uncommitted changes)" if commit.get("dirty") else "")
        + f"; `python bench/report.py` from `{Path(data['_path']).name}`.",
    ]
    if info.get("rounds_override"):
        lines.append(f"**Smoke run** (`FFNN_BENCH_ROUNDS={info['rounds_override']}`): these "
                     "figures mean nothing.")
    return lines


def render(data: dict, sections=None) -> str:
    benchmarks = data.get("benchmarks", [])
    results = collect(benchmarks, data.get("machine_info", {}).get("ffnn", {}))
    parts = {
        "summary": summary_table(results),
        "epoch": epoch_table(results) + ([""] + own_clock_table(benchmarks)
                                          if own_clock_table(benchmarks) else []),
        "busy": busy_table(results),
        "grouped": grouped_table(results),
        "dense": dense_table(results, benchmarks),
        "compile": compile_table(results),
        "estimator": estimator_table(results),
        "study": study_table(results),
        "footer": footer(data),
    }
    unknown = set(sections or ()) - set(parts)
    if unknown:
        sys.exit(f"report: unknown section(s) {', '.join(sorted(unknown))}; "
                 f"expected {', '.join(parts)}")
    chosen = [parts[name] for name in (sections or parts) if parts[name]]
    return "\n\n".join("\n".join(lines) for lines in chosen) + "\n"


def update(path: Path, data: dict) -> int:
    """Rewrite every marked block of ``path``; the number of blocks rewritten."""
    text = path.read_text()

    def block(match):
        return match.group(1) + render(data, match.group(2).split() or None) + match.group(4)

    new, count = MARKER.subn(block, text)
    if count == 0:
        sys.exit(f"report: {path} has no `<!-- bench-report: ... -->` block")
    path.write_text(new)
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_RUN,
                        help=f"pytest-benchmark JSON file or directory (default {DEFAULT_RUN})")
    parser.add_argument("--output", type=Path, help="also write the markdown here")
    parser.add_argument("--update", type=Path, nargs="+", default=[],
                        help="rewrite the <!-- bench-report --> blocks of these files")
    args = parser.parse_args(argv)
    data = load(args.path)
    text = render(data)
    if args.update:
        for path in args.update:
            print(f"{path}: {update(path, data)} block(s) rewritten", file=sys.stderr)
    else:
        print(text)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
