"""Resume after kill -9, truncated records, changed flags, and identical records from every
executor (in-process, worker processes, Dask). With the numba backend the two settings of a
repeat are trained together (grouped); with the NumPy backend one by one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import ffnn
from ffnn.cli import main
from ffnn.studies.store import canonical_json, non_timing

STUDY = ('name = "resume"\nparameter = "optimizer"\nvalues = ["adam", "nesterov"]\n'
         '[base]\nlearning_rate = 0.01\nearly_stopping = false\n')
# 2 settings x 3 repeats; 30 epochs on 2,000 images make each task (a run with NumPy, a group
# of two with numba) last ~0.2 s, long enough to catch the process between two tasks.
SLOW = ["--repeats", "3", "--max-epochs", "30", "--train-size", "2000", "--val-size", "200",
        "--test-size", "200"]
TOTAL = 6
# 2 settings x 2 repeats x 2 epochs for the executor comparisons.
TINY = ["--repeats", "2", "--max-epochs", "2", "--train-size", "300", "--val-size", "100",
        "--test-size", "100"]
BACKENDS = pytest.mark.parametrize("backend", ["numpy", "numba"])


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "resume.toml"
    path.write_text(STUDY)
    return path


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def by_key(out):
    """Non-timing record fields as canonical JSON, by key (NaN-safe, bitwise comparison)."""
    return {r["key"]: canonical_json(non_timing(r)) for r in ffnn.load_results(out)}


def table_without_times(out, name):
    """The report's table without its timing columns (train time, per-epoch cost)."""
    lines = (Path(out) / name / "report.md").read_text().splitlines()
    rows = [line.split("|") for line in lines if line.startswith("|")]
    return [cells[:2] + cells[3:4] + cells[5:] for cells in rows]


def complete_records(path):
    return path.read_bytes().count(b"\n") if path.exists() else 0


@BACKENDS
def test_kill_9_then_rerun_computes_exactly_the_missing_runs(tmp_path, study_file, backend):
    flags = [*SLOW, "--backend", backend]
    out = tmp_path / "killed"
    results = out / "resume" / "results.jsonl"
    package_root = str(Path(ffnn.__file__).resolve().parent.parent)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "ffnn.cli", "study", "--file", str(study_file), *flags,
               "--workers", "1", "--out", str(out)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        while complete_records(results) == 0 and process.poll() is None:
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        stderr = process.stderr.read().decode()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL, stderr
    k = complete_records(results)
    assert 0 < k < TOTAL
    assert len(ffnn.load_results(out)) == k

    # a record cut short by the kill (simulated: half of a line, no newline) is ignored
    with open(results, "ab") as f:
        f.write(results.read_bytes().splitlines(keepends=True)[0][:100])
    invoke("study", "--file", study_file, *flags, "--workers", "1", "--out", out)
    log = (out / "logs" / "resume.log").read_text()
    assert f"{TOTAL} runs; {k} already recorded, {TOTAL - k} to run" in log
    assert f"study resume done: {TOTAL - k} computed, {k} recorded before" in log
    assert f"{results}: line {k + 1}: incomplete last record (100 bytes, no newline); " \
        "ignored, its run is computed again" in log
    records = ffnn.load_results(out)
    assert len(records) == TOTAL and len({r["key"] for r in records}) == TOTAL
    assert {r["grouped"] for r in records} == {backend == "numba"}

    reference = tmp_path / "uninterrupted"
    invoke("study", "--file", study_file, *flags, "--workers", "1", "--out", reference)
    assert table_without_times(out, "resume") == table_without_times(reference, "resume")
    assert by_key(out) == by_key(reference)


def test_a_changed_flag_does_not_reuse_old_records_and_fresh_starts_over(tmp_path, study_file):
    out = tmp_path / "out"
    flags = [*TINY, "--backend", "numpy"]
    invoke("study", "--file", study_file, *flags, "--workers", "1", "--out", out)
    first = by_key(out)
    invoke("study", "--file", study_file, *flags, "--max-epochs", "3", "--workers", "1",
           "--out", out)
    log = (out / "logs" / "resume.log").read_text()
    assert "4 runs; 0 already recorded, 4 to run" in log.split("study resume done")[-2]
    assert "4 records from other flags or data are kept but not used" in log
    records = ffnn.load_results(out)
    assert len(records) == 8 and not set(first) & {r["key"] for r in records[4:]}
    assert all(r["epochs"] == 3 for r in records[4:])
    report = (out / "resume" / "report.md").read_text()
    assert "3.0 ±" in report and "2.0 ±" not in report  # only the new runs are reported

    invoke("study", "--file", study_file, *flags, "--split-seed", "1", "--workers", "1",
           "--out", out)
    assert len(ffnn.load_results(out)) == 12  # other data: other keys again

    invoke("study", "--file", study_file, *flags, "--workers", "1", "--out", out, "--fresh")
    assert by_key(out) == first


@BACKENDS
def test_two_worker_processes_give_the_same_records_as_one(tmp_path, study_file, backend):
    flags = [*TINY, "--backend", backend]
    invoke("study", "--file", study_file, *flags, "--workers", "1", "--out", tmp_path / "one")
    invoke("study", "--file", study_file, *flags, "--workers", "2", "--out", tmp_path / "two")
    one, two = by_key(tmp_path / "one"), by_key(tmp_path / "two")
    assert len(one) == 4 and one == two
    records = ffnn.load_results(tmp_path / "two")
    assert {r["grouped"] for r in records} == {backend == "numba"}
    assert os.getpid() not in {r["worker"]["pid"] for r in records}


@BACKENDS
def test_dask_local_cluster_gives_the_same_records(tmp_path, study_file, backend):
    distributed = pytest.importorskip("distributed")
    flags = [*TINY, "--backend", backend]
    invoke("study", "--file", study_file, *flags, "--workers", "1", "--out", tmp_path / "one")
    # Workers in this process (threads), so they share its compiled kernels: no two processes
    # race on numba's on-disk cache. Two threads run two tasks at once; with the numba backend
    # the tasks are groups (train_many, threads=1), whose kernels hold the GIL, so no parallel
    # region is entered from two threads at once (numba's workqueue layer would abort on it).
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        invoke("study", "--file", study_file, *flags, "--scheduler", cluster.scheduler_address,
               "--out", tmp_path / "dask")
    assert by_key(tmp_path / "dask") == by_key(tmp_path / "one")
    threads = {r["worker"]["thread"] for r in ffnn.load_results(tmp_path / "dask")}
    assert all(t != "MainThread" for t in threads)
