"""Turn a pytest-benchmark JSON file into the markdown tables of ``docs/kernels.md``.

    python bench/report.py                 # the newest file under .benchmarks/
    python bench/report.py path/to/run.json [--output table.md]

Prints the per-epoch table (median ms per implementation, side by side per workload, with the
ratios of ffnn-numba to the NumPy reference and to PyTorch and the targets of the kernels
issue), the compile-time table, and a footnote with the machine, library versions, thread
counts and BLAS thread pools (threadpoolctl, incl. ``OPENBLAS_*`` environment variables) the
figures came from.
"""

import argparse
import json
import sys
from pathlib import Path

IMPLEMENTATIONS = ("ffnn-numba", "ffnn-numba-1t", "ffnn-numpy", "torch", "sklearn")
WORKLOADS = {
    "W1": "hidden 10, batch 250, float32",
    "W2": "hidden 100, batch 250, float32",
    "W3": "hidden 10, batch 50, float32",
    "W4": "hidden 100, batch 250, float64",
}
# The kernels issue's targets: (ms per epoch, ratio to ffnn-numpy, ratio to PyTorch).
TARGETS = {"W1": (8, 5, 8), "W2": (35, 2.7, 4), "W3": (10, 6, 20), "W4": (80, 2, 2.4)}


def newest(root: Path) -> Path:
    files = sorted(root.glob("**/*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        sys.exit(f"no pytest-benchmark JSON under {root}; run `nox -s bench` first")
    return files[-1]


def ms(seconds):
    return f"{seconds * 1e3:.1f}" if seconds < 10 else f"{seconds * 1e3:.0f}"


def ratio(a, b):
    return f"{a / b:.1f}x" if a and b else "-"


def epoch_table(benchmarks):
    medians = {}
    for b in benchmarks:
        info = b.get("extra_info", {})
        if "workload" in info:
            medians[(info["workload"], info["optimizer"], info["implementation"])] = \
                b["stats"]["median"]
    if not medians:
        return []
    present = [i for i in IMPLEMENTATIONS if any(k[2] == i for k in medians)]
    head = ["workload", "optimizer", *present, "numpy / numba", "torch / numba",
            "target (ms, x numpy, x torch)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for workload in WORKLOADS:
        for optimizer in ("adam", "nesterov"):
            row = {i: medians.get((workload, optimizer, i)) for i in present}
            if not any(row.values()):
                continue
            numba, numpy, torch = (row.get(i) for i in ("ffnn-numba", "ffnn-numpy", "torch"))
            target = TARGETS.get(workload)
            cells = [f"{workload} ({WORKLOADS[workload]})", optimizer,
                     *(ms(row[i]) if row[i] else "-" for i in present),
                     ratio(numpy, numba), ratio(torch, numba),
                     f"<= {target[0]}, >= {target[1]}x, >= {target[2]}x" if target else ""]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Median milliseconds per epoch (training pass over 34,000 images in minibatches "
                 "plus a validation pass over 6,000), relu hidden layer; ratios are times "
                 "relative to ffnn-numba (higher: ffnn-numba faster).")
    return lines


def compile_table(benchmarks):
    rows = {b["name"]: b for b in benchmarks if b.get("group") == "compile"}
    if not rows:
        return []
    lines = ["| compile (float32) | `warm_up` in the child (s) | whole process (s) |",
             "| --- | --- | --- |"]
    labels = {"cold": "cold: empty `NUMBA_CACHE_DIR`", "cached": "cached: same directory again",
              "import": "import only (baseline)"}
    for name in ("cold", "cached", "import"):
        if name in rows:
            b = rows[name]
            warm = b["extra_info"].get("warm_up_s")
            lines.append(f"| {labels[name]} | {warm:.2f} | {b['stats']['median']:.2f} |"
                         if name != "import" else
                         f"| {labels[name]} | - | {b['stats']['median']:.2f} |")
    return lines


def footnote(data):
    machine = data.get("machine_info", {})
    info = machine.get("ffnn", {})
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items() if v)
    pools = "; ".join(
        f"{p.get('internal_api')} {p.get('version')} ({p.get('threading_layer')}, "
        f"{p.get('num_threads')} threads, core type {p.get('architecture')})"
        for p in info.get("threadpools", []))
    env = info.get("openblas_env") or {}
    env_text = ", ".join(f"{k}={v}" for k, v in env.items()) or "no OPENBLAS_* variables set"
    commit = data.get("commit_info", {})
    load, end = info.get("load_average"), info.get("load_average_end")
    load_text = ""
    if load:
        load_text = (f" Load average (1/5/15 min) when the run started: {load[0]:.2f} / "
                     f"{load[1]:.2f} / {load[2]:.2f}")
        if end:
            load_text += f", when it ended: {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f}"
        load_text += (" (the benchmarks themselves add 1-2; a start value above ~0.5 means "
                      "other processes shared the machine).")
    return [
        f"Machine: {info.get('cpu_model', machine.get('cpu', {}).get('brand_raw', '?'))}, "
        f"{info.get('cores_available', '?')} cores available; every implementation ran with "
        f"{info.get('threads', '?')} threads (ffnn-numba-1t: 1); numba threading layer "
        f"{info.get('numba_threading_layer', '?')}. {machine.get('python_implementation', '')} "
        f"{machine.get('python_version', '')}, {versions}.",
        f"BLAS thread pools (threadpoolctl): {pools or 'none loaded'}. Environment: {env_text}."
        + load_text,
        f"Recorded {info.get('recorded_at', data.get('datetime', '?'))}"
        + (f", commit {commit.get('id', '')[:10]}" if commit.get("id") else "")
        + f"; generated by `python bench/report.py` from `{data.get('_path', '')}`.",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="JSON file or directory (default .benchmarks)")
    parser.add_argument("--output", help="also write the markdown here")
    args = parser.parse_args(argv)
    path = Path(args.path or ".benchmarks")
    if path.is_dir():
        path = newest(path)
    data = json.loads(path.read_text())
    data["_path"] = str(path)
    benchmarks = data.get("benchmarks", [])
    lines = epoch_table(benchmarks)
    compile_lines = compile_table(benchmarks)
    if compile_lines:
        lines += [""] + compile_lines
    lines += [""] + footnote(data)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
