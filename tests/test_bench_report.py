"""``bench/report.py``: the tables and issue 11's verdicts from a saved run, without running a
benchmark (a hand-written run file with known medians)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parent.parent / "bench" / "report.py"
pytestmark = pytest.mark.skipif(not REPORT.is_file(), reason="needs the checkout's bench/")


def epoch_row(suite, workload, implementation, threads, seconds):
    return {"extra_info": {"suite": suite, "workload": workload, "optimizer": "adam",
                           "implementation": implementation, "threads": threads,
                           "epoch_median": seconds, "own_epoch_median": seconds * 0.99},
            "stats": {"median": seconds * 4}}


def grouped_row(mode, k, threads, call, per_model_epoch):
    return {"extra_info": {"suite": "grouped", "mode": mode, "k": k, "hidden_size": 10,
                           "threads": threads, "call_median": call,
                           "per_model_epoch_median": per_model_epoch},
            "stats": {"median": call}}


RUN = {
    "machine_info": {"ffnn": {"cpu_model": "test CPU", "cores_available": 2,
                              "load_average": [0.1, 0.2, 0.3],
                              "load_average_end": [1.0, 0.5, 0.4],
                              "openblas_env": {"OPENBLAS_CORETYPE": "Haswell"},
                              "threadpools": [], "versions": {"numpy": "2.0"},
                              "kernels_code_lines": 1000}},
    "benchmarks": [
        epoch_row("epoch", "W1", "ffnn-numba", 1, 0.010),  # 10 ms
        epoch_row("epoch", "W1", "torch", 2, 0.050),  # 5x
        grouped_row("alone", 5, 1, 1.0, 0.020),
        grouped_row("train_many", 5, 1, 0.4, 0.0025),  # 2.5x, 2.5 ms per model-epoch
        {"extra_info": {"suite": "compile", "mode": "cold", "process_median": 12.0}},
        {"extra_info": {"suite": "compile", "mode": "warm", "process_median": 1.0}},
        {"extra_info": {"suite": "estimator", "estimator": "ffnn", "data": "raw float32"},
         "stats": {"median": 0.4}},
        {"extra_info": {"suite": "estimator", "estimator": "sklearn", "data": "raw float32"},
         "stats": {"median": 1.0}},
        {"extra_info": {"suite": "estimator", "estimator": "ffnn", "data": "lbfgs, raw float64"},
         "stats": {"median": 3.0}},
    ],
}


def report(tmp_path, *args, run=RUN):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    return subprocess.run([sys.executable, str(REPORT), str(path), *args],
                          capture_output=True, text=True)


def test_targets_are_judged_from_the_medians(tmp_path):
    out = report(tmp_path).stdout
    assert "| W1 | 1 | >= 4.5x PyTorch | 5.00x | yes |" in out
    assert "| W1 | 1 | <= 8 ms | 10.0 ms | no |" in out
    assert ("| `train_many` K = 5, hidden 10 | 1 | >= 2x faster than the same five trained "
            "alone (whole calls) | 2.50x | yes |") in out
    assert "| K = 5 | 1 | <= 3 ms per model-epoch | 2.5 ms | yes |" in out
    assert ("| cold compile (cold - warm process) | - | <= 11 s (issue 13: issue 12's 10.0 s + "
            "10 %) | 11.0 s | yes |") in out
    assert ("| `kernels/` code lines | - | <= 1,343 (issue 13: issue 12's 1,221 + 10 %) | 1000 "
            "| yes |") in out
    assert ("| `MLPClassifier.fit`, adam, raw float32 | every core | >= 2x scikit-learn | "
            "2.50x | yes |") in out
    assert "| raw float32 | 0.40 | 1.00 | 2.50x |" in out
    assert "| lbfgs, raw float64 | 3.00 | - | - |" in out


def test_a_figure_the_run_lacks_is_not_measured_never_met(tmp_path):
    out = report(tmp_path).stdout
    assert "| dense W2 | 2 | >= 1.0x PyTorch | not measured | - |" in out
    assert "| W3 | 1 | >= 10x PyTorch | not measured | - |" in out


def test_footer_records_load_blas_environment_and_versions(tmp_path):
    out = report(tmp_path).stdout
    assert "0.10 / 0.20 / 0.30" in out and "1.00 / 0.50 / 0.40" in out
    assert "OPENBLAS_CORETYPE=Haswell" in out
    assert "numpy 2.0" in out


def test_update_rewrites_only_the_marked_blocks_and_is_repeatable(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("before\n<!-- bench-report: grouped -->\nold table\n<!-- /bench-report -->\n"
                   "after\n")
    assert report(tmp_path, "--update", str(doc)).returncode == 0
    first = doc.read_text()
    assert first.startswith("before\n<!-- bench-report: grouped -->\n| K | hidden |")
    assert first.endswith("<!-- /bench-report -->\nafter\n")
    assert "old table" not in first and "Acceptance targets" not in first
    report(tmp_path, "--update", str(doc))
    assert doc.read_text() == first


def test_missing_run_file_is_named(tmp_path):
    out = subprocess.run([sys.executable, str(REPORT), str(tmp_path / "absent.json")],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "absent.json does not exist" in out.stderr
