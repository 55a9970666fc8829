"""The command line of studies: evaluate, grid files, generated train options, python -m ffnn,
Ctrl-C."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ffnn.cli import main

TINY = ["--train-size", "300", "--val-size", "100", "--test-size", "100"]


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_train_options_are_generated_from_trainconfig_with_todays_flags():
    text = _cli("train", "--help").output
    for flag in ("--hidden-size", "--lr", "--no-early-stopping", "--no-restore-best",
                 "--rmsprop-alpha", "--shuffle-seed", "--threads", "--backend", "--dtype"):
        assert flag in text
    assert "Learning rate." in text and "Adam beta1." in text


def test_evaluate_prints_loss_accuracy_and_confusion_and_writes_figures(tmp_path):
    model = tmp_path / "m.npz"
    trained = _cli("train", "--max-epochs", "2", "--threads", "1", *TINY, "--save", model)
    assert trained.exit_code == 0, trained.output
    accuracy = trained.output.split("test accuracy ")[1].split(" %")[0]
    result = _cli("evaluate", model, "--test-size", "100", "--figures", tmp_path / "figs")
    assert result.exit_code == 0, result.output
    assert f"test accuracy {accuracy} %" in result.output  # the same 100 test images
    assert "true\\pred" in result.output
    assert len([line for line in result.output.splitlines() if line[:9].strip().isdigit()]) == 10
    for name in ("predictions.png", "confusion.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 10_000


def test_evaluate_refuses_a_bad_model_file_in_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    result = CliRunner().invoke(main, ["evaluate", str(bad)])
    assert result.exit_code == 2 and str(bad) in result.output
    assert "Traceback" not in result.output


def test_a_bad_grid_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('name = "g"\n[grid]\nhidden_size = [0, 5]\n')
    result = CliRunner().invoke(main, ["study", "--file", str(path), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "grid.hidden_size[0]" in result.output and len(result.output.splitlines()) == 1


def test_max_epochs_on_a_study_varying_it_is_exit_2(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text('name = "e"\nparameter = "max_epochs"\nvalues = [1, 2]\n')
    result = CliRunner().invoke(main, ["study", "--file", str(path), "--max-epochs", "3",
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--max-epochs" in result.output


def test_python_dash_m_ffnn_runs_ffnn_run():
    result = subprocess.run([sys.executable, "-m", "ffnn", "--version"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("ffnn-run ")


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line_and_loses_nothing(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ffnn", "study", "lr-adam-no-es", "--no-group",
               "--repeats", "10", "--max-epochs", "1000", "--train-size", "1000",
               "--val-size", "100", "--test-size", "100", "--workers", "2", "--no-models",
               "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    results = Path(out / "lr-adam-no-es" / "results.jsonl")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()
    os.killpg(process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: every finished run is")
    from ffnn.studies.store import ResultStore

    lines = results.read_bytes().count(b"\n")
    with ResultStore(results) as store:  # every line written is a whole record
        assert len(store.records) == lines >= 2 and not store.problems
    assert "interrupted" in (out / "logs" / "lr-adam-no-es.log").read_text()


def test_command_line_flags_override_a_recipe_file(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text('name = "recipe"\nrepeats = 3\nmax_epochs = 1\ntrain_size = 300\n'
                    'val_size = 100\ntest_size = 100\n[grid]\nhidden_size = [5, 10]\n'
                    'batch_size = [100, 300]\n')
    result = _cli("study", "--file", path, "--repeats", "1", "--workers", "1", "--no-models",
                  "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "recipe" / "report.md").read_text()
    assert "1 repeat (seed 0)" in report and "4 of 4 runs recorded" in report
    assert "repeats from the command line" in report
    assert "max_epochs, test_size, train_size, val_size from the study file" in report
