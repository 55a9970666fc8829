"""What goes wrong around a study, and what the user sees: bad record lines (reported with file
and line, recomputed, never a crash), strict JSON for diverged runs, Dask addresses, options
refused before any work, unwritable paths, and OS errors that name their file."""

import errno
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import ffnn
from ffnn.cli import main

TINY = ('name = "tiny"\nparameter = "optimizer"\nvalues = ["adam", "nesterov"]\n'
        '[base]\nlearning_rate = 0.01\n')
NO_ES = TINY + "early_stopping = false\n"
SMALL = ["--repeats", "2", "--max-epochs", "2", "--train-size", "300", "--val-size", "100",
         "--test-size", "100", "--backend", "numpy", "--workers", "1"]


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


def one_line_error(result, *needles, exit_code=2):
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def run_tiny(study, out, *extra):
    result = invoke("study", "--file", study, *SMALL, "--out", out, *extra)
    assert result.exit_code == 0, result.output
    return result


# --------------------------------------------------------------------------- bad records


def test_a_record_that_parses_but_is_not_a_record_is_reported_and_recomputed(
        tmp_path, tiny, caplog):
    out = tmp_path / "out"
    run_tiny(tiny, out)
    results = out / "tiny" / "results.jsonl"
    lines = results.read_bytes().splitlines(keepends=True)
    planned = json.loads(lines[1])["key"]
    nulled = {**json.loads(lines[2]), "test_accuracy": None}  # not diverged, 100 test images
    lines[1] = json.dumps({"key": planned, "note": "x"}).encode() + b"\n"
    lines[2] = json.dumps(nulled).encode() + b"\n"
    results.write_bytes(b"".join(lines))

    result = invoke("report", out)  # used to fail with KeyError: 'diverged'
    assert result.exit_code == 0, result.output
    assert "2 of 4 runs recorded" in (out / "tiny" / "report.md").read_text()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    skipped = "; skipped (a re-run of the study computes its run again)"
    assert warnings == [
        f"{results}: line 2: missing field 'format'{skipped}",
        f"{results}: line 3: test_accuracy: null, but the run did not diverge and its test split "
        f"has 100 images{skipped}"]

    run_tiny(tiny, out)  # used to say "4 already recorded" and crash again
    log = (out / "logs" / "tiny.log").read_text().split("study tiny: ")[-1]
    assert "4 runs; 2 already recorded, 2 to run" in log
    assert f"{results}: line 2: missing field 'format'; ignored, its run is computed again" in log
    assert log.count("line 2: missing field") == 1  # once
    assert "study tiny done: 2 computed, 2 recorded before" in log
    assert "4 of 4 runs recorded" in (out / "tiny" / "report.md").read_text()
    records = ffnn.load_results(out)
    assert len(records) == 4 and planned in {r["key"] for r in records}


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")
def test_a_diverged_run_is_written_as_strict_json_and_reads_back_nan(tmp_path):
    study = tmp_path / "div.toml"
    study.write_text('name = "div"\nparameter = "learning_rate"\nvalues = [0.01, 1e30]\n'
                     '[base]\nactivation = "relu"\noptimizer = "gd"\n')  # 1e30: inf and NaN
    out = tmp_path / "out"
    run_tiny(study, out, "--max-epochs", "3")

    def refuse(token):
        raise AssertionError(f"not JSON: {token}")

    lines = (out / "div" / "results.jsonl").read_bytes().splitlines()
    written = [json.loads(line, parse_constant=refuse) for line in lines]
    diverged = [w for w in written if w["diverged"]]
    assert len(diverged) == 2
    nulls = {name for w in diverged for name, v in w.items() if v is None} - {
        "group_wall_time", "calibration_epoch_seconds", "epoch_cost_spread"}
    assert nulls, "a diverged run has metrics without a value"
    for record in ffnn.load_results(out):
        if record["diverged"]:
            assert all(math.isnan(record[name]) for name in nulls)
    assert "| 1e+30 (2/2 diverged) |" in (out / "div" / "report.md").read_text()


def test_a_corrupt_plan_is_named(tmp_path, tiny):
    out = tmp_path / "out"
    run_tiny(tiny, out)
    plan = out / "tiny" / "plan.json"
    plan.write_text('{"study": ')
    one_line_error(invoke("report", out), f"{plan}: not a valid plan: not JSON")
    plan.write_text('{"study": {"name": "tiny"}}')
    one_line_error(invoke("report", out), f"{plan}: not a valid plan (missing 'parameter')")


# --------------------------------------------------------------------------- Dask


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(15)
@pytest.mark.parametrize("address", ["not a url", "http://127.0.0.1:8786", "tcp://host",
                                     "tcp://127.0.0.1:99999"])
def test_a_malformed_scheduler_is_refused_before_anything_is_written(tmp_path, tiny, address):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    one_line_error(invoke("study", "--file", tiny, *SMALL[:-2], "--scheduler", address,
                          "--out", out), f"--scheduler {address!r}: not a Dask scheduler address")
    assert not out.exists()


@pytest.mark.timeout(15)
def test_an_unreachable_scheduler_gives_up_within_the_timeout(tmp_path, tiny):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    address = f"tcp://127.0.0.1:{free_port()}"
    one_line_error(invoke("study", "--file", tiny, *SMALL[:-2], "--scheduler", address,
                          "--out", out), f"--scheduler {address}: cannot connect within 10 s")
    assert not out.exists()


@pytest.mark.timeout(60)
def test_an_unreachable_scheduler_ends_the_process_quietly(tmp_path, tiny):
    """In a real process: exit 2, one line, no traceback and no Client.__del__ noise at exit
    (a shorter connect timeout, $FFNN_DASK_TIMEOUT)."""
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    address = f"tcp://127.0.0.1:{free_port()}"
    package_root = str(Path(ffnn.__file__).resolve().parent.parent)
    env = {**os.environ, "FFNN_DASK_TIMEOUT": "2",
           "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "ffnn.cli", "study", "--file", str(tiny),
                           *SMALL[:-2], "--scheduler", address, "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=50)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: --scheduler {address}: cannot connect within 2 s (Timed out trying to connect "
        f"to {address} after 2 s)"], done.stderr
    assert not out.exists()
    bad = invoke("study", "--file", tiny, "--scheduler", address, "--out", out,
                 env={"FFNN_DASK_TIMEOUT": "soon"})
    one_line_error(bad, "FFNN_DASK_TIMEOUT='soon': expected a positive number of seconds")


# --------------------------------------------------------------------------- options


def test_val_size_0_with_early_stopping_is_refused_before_training(tmp_path, tiny):
    out = tmp_path / "out"
    one_line_error(invoke("study", "--file", tiny, *SMALL, "--val-size", "0", "--out", out),
                   "val_size: 0 validation images, but study tiny stops early",
                   "--val-size")
    one_line_error(invoke("study", "lr-adam", "--val-size", "0", "--out", out), "lr-adam")
    assert not out.exists()


def test_val_size_0_without_early_stopping_runs_with_no_validation_metrics(tmp_path):
    study = tmp_path / "no_es.toml"
    study.write_text(NO_ES)
    out = tmp_path / "out"
    run_tiny(study, out, "--val-size", "0")
    records = ffnn.load_results(out)
    assert len(records) == 4
    assert all(math.isnan(r["val_loss"]) and not math.isnan(r["test_loss"]) for r in records)


def test_train_save_to_an_unwritable_path_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for path, why in ((blocker / "model.npz", "is not a directory"),
                      (tmp_path / "missing" / "model.npz", "does not exist"),
                      (tmp_path, "is a directory")):
        result = invoke("train", "--backend", "numpy", "--max-epochs", "1", "--save", path)
        line = one_line_error(result, "--save", str(path), why)
        assert "epoch" not in result.stdout, line


def test_train_save_writes_the_model_whole(tmp_path):
    path = tmp_path / "model.npz"
    result = invoke("train", "--backend", "numpy", "--max-epochs", "1", "--train-size", "200",
                    "--val-size", "50", "--test-size", "50", "--save", path)
    assert result.exit_code == 0, result.output
    assert ffnn.load_model(path).hidden_size == ffnn.TrainConfig().hidden_size
    assert os.listdir(tmp_path) == ["model.npz"]


# --------------------------------------------------------------------------- OS errors


def test_a_full_disk_names_the_results_file_and_the_study_resumes(tmp_path, tiny, monkeypatch):
    out = tmp_path / "out"
    results = out / "tiny" / "results.jsonl"

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)  # only the record store writes with os.write
    result = invoke("study", "--file", tiny, *SMALL, "--out", out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: [Errno 28] No space left on device: '{results}'")  # after the progress log
    monkeypatch.undo()
    run_tiny(tiny, out)
    assert len(ffnn.load_results(out)) == 4


def test_a_read_only_disk_names_the_file_it_could_not_write(tmp_path, tiny, monkeypatch):
    out = tmp_path / "out"
    run_tiny(tiny, out)
    before = (out / "tiny" / "plan.json").read_bytes()

    def read_only(dir=None, prefix="", suffix="", **_):
        raise OSError(errno.EROFS, "Read-only file system", os.path.join(dir, prefix + "x"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    result = invoke("study", "--file", tiny, *SMALL, "--out", out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: [Errno 30] Read-only file system: '{out / 'tiny' / 'plan.json'}'")
    assert (out / "tiny" / "plan.json").read_bytes() == before  # the old plan is intact
    line = one_line_error(invoke("report", out), exit_code=1)
    assert line.endswith(f"'{out / 'tiny' / 'curves.png'}'") and "[Errno 30]" in line


def test_a_log_file_that_cannot_be_written_is_said_once_naming_it(tmp_path, capsys):
    import logging

    from ffnn.studies.run import _LogFileHandler

    class FullDisk:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    path = tmp_path / "study.log"
    handler = _LogFileHandler(path, encoding="utf-8")
    handler.stream.close()
    handler.stream = FullDisk()
    for message in ("one", "two"):
        handler.emit(logging.LogRecord("ffnn.study", logging.INFO, "", 0, message, (), None))
    handler.stream = None
    assert capsys.readouterr().err.splitlines() == [
        f"ffnn-run: cannot write the log {path} (No space left on device); going on without it"]
