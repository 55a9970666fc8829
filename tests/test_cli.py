"""``ffnn-run`` through click's CliRunner: help, studies, a tiny study's outputs, report,
divergence, train, and one-line usage errors with exit code 2."""

import json
import math
import re
import shutil

import pytest
from click.testing import CliRunner

import ffnn
from ffnn.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = 'name = "tiny"\nparameter = "optimizer"\nvalues = ["adam", "nesterov"]\n' \
       '[base]\nlearning_rate = 0.01\n'
SMALL_DATA = ["--train-size", "300", "--val-size", "100", "--test-size", "100"]
# 2 settings x 2 repeats x 2 epochs on 300 images, in this process, NumPy backend.
TINY_FLAGS = ["--repeats", "2", "--max-epochs", "2", *SMALL_DATA, "--backend", "numpy",
              "--workers", "1"]
HEADER = "| Optimizer | Train time | Time | Per-epoch cost | Epochs | Test loss | Test accuracy |"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def tiny_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """The tiny study run once; its output directory and CliRunner result."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "tiny.toml").write_text(TINY)
    out = root / "out"
    result = invoke("study", "--file", root / "tiny.toml", *TINY_FLAGS, "--out", out)
    return out, result


def test_help_of_every_command_lists_its_options():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "studies", "study", "report"):
        assert command in result.output
    flags = {
        "train": ["--hidden-size", "--activation", "--optimizer", "--lr", "--batch-size",
                  "--max-epochs", "--patience", "--min-delta", "--no-early-stopping", "--l2",
                  "--seed", "--dtype", "--backend", "--data", "--train-size", "--val-size",
                  "--test-size", "--split-seed", "--save"],
        "study": ["--file", "--repeats", "--max-epochs", "--out", "--workers", "--scheduler",
                  "--backend", "--data", "--train-size", "--val-size", "--test-size",
                  "--split-seed", "--seed", "--fresh", "--no-group"],
        "report": ["DIRECTORY"],
        "studies": ["List the built-in studies"],
    }
    for command, expected in flags.items():
        result = invoke(command, "--help")
        assert result.exit_code == 0, result.output
        for flag in expected:
            assert flag in result.output, (command, flag)
    assert re.search(r"--repeats.*?\[default:.*?\b10\]", invoke("study", "--help").output, re.S)


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"ffnn-run {ffnn.__version__}"


def test_studies_lists_the_thirteen_builtins_one_line_each():
    lines = invoke("studies").output.splitlines()
    names = [line.split()[0] for line in lines[:13]]
    assert names[0] == "optimizers-lr1e-3" and names[-1] == "depth-adam"
    assert len(set(names)) == 13
    assert "example.toml" in lines[-1]


def test_tiny_study_writes_table_figures_log_and_records(tiny_study):
    out, result = tiny_study
    assert result.exit_code == 0, result.output
    report = (out / "tiny" / "report.md").read_text()
    assert HEADER in result.stdout and HEADER in report
    rows = [line for line in report.splitlines() if line.startswith(("| adam", "| nesterov"))]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 7
        assert cells[1].endswith(" s") and cells[6].endswith(" %")
        assert cells[2] == "thread cpu" and cells[3].endswith(" ms")
        assert all(" ± " in c for c in cells[1:2] + cells[3:])
        assert cells[4].startswith("2.0 ±")  # two epochs each
    assert "Best train time:" in report and "Best test accuracy:" in report
    assert "Trade-off (no other setting is both more accurate and faster" in report
    for name in ("curves.png", "test.png"):
        data = (out / "tiny" / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
        assert f"]({name})" in report
    log = (out / "logs" / "tiny.log").read_text()
    assert "4 runs; 0 already recorded, 4 to run" in log
    assert log.count("test accuracy") == 4 and "study tiny done: 4 computed" in log

    records = ffnn.load_results(out)
    assert len(records) == 4
    assert sorted((r["setting"], r["repeat"]) for r in records) == [
        ("adam", 0), ("adam", 1), ("nesterov", 0), ("nesterov", 1)]
    for r in records:
        assert r["seed"] == r["shuffle_seed"] == r["repeat"]
        assert r["config"]["threads"] == 1 and r["config"]["backend"] == "numpy"
        assert r["epochs"] == 2 == len(r["history"]["val_loss"])
        assert r["train_time"] > 0 and r["train_time_source"] == "measured"
        assert r["data"]["train_size"] == 300 and len(r["data"]["fingerprint"]) == 32
        assert r["diverged"] is False and r["stopped_early"] is False
        assert {"test_loss", "test_accuracy", "val_loss", "train_accuracy", "best_epoch",
                "versions", "machine", "dtype", "backend"} <= set(r)
        assert r["machine"]["cores"] >= 1 and "numpy" in r["versions"]


def test_rerunning_a_finished_study_computes_nothing(tiny_study, tiny_toml):
    out, _ = tiny_study
    result = invoke("study", "--file", tiny_toml, *TINY_FLAGS, "--out", out)
    assert result.exit_code == 0
    assert "4 already recorded, 0 to run" in (out / "logs" / "tiny.log").read_text()
    assert len(ffnn.load_results(out)) == 4


def test_report_rebuilds_table_and_figures_without_training(tiny_study, tmp_path):
    out, _ = tiny_study
    table = (out / "tiny" / "report.md").read_text()
    copy = tmp_path / "copy" / "tiny"
    copy.mkdir(parents=True)
    for name in ("plan.json", "results.jsonl"):
        (copy / name).write_bytes((out / "tiny" / name).read_bytes())
    shutil.copytree(out / "tiny" / "models", copy / "models")
    result = invoke("report", tmp_path / "copy")
    assert result.exit_code == 0, result.output
    assert (copy / "report.md").read_text() == table
    assert (copy / "curves.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (copy / "test.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (copy / "runs.csv").read_text() == (out / "tiny" / "runs.csv").read_text()


def test_several_studies_write_a_summary_linking_every_report(tmp_path, tiny_toml):
    other = tmp_path / "other.toml"
    other.write_text('name = "other"\nparameter = "hidden_size"\nvalues = [5, 10]\n')
    out = tmp_path / "out"
    result = invoke("study", "--file", tiny_toml, "--file", other, "--repeats", "1",
                    "--max-epochs", "1", *SMALL_DATA, "--backend", "numpy", "--workers", "1",
                    "--out", out)
    assert result.exit_code == 0, result.output
    summary = (out / "summary.md").read_text()
    for link in ("tiny/report.md", "other/report.md", "tiny/curves.png", "other/test.png",
                 "logs/other.log"):
        assert f"]({link})" in summary
    assert "| Hidden size | Train time |" in summary and HEADER in summary


def test_a_diverging_setting_is_recorded_and_the_study_finishes(tmp_path):
    path = tmp_path / "div.toml"
    path.write_text('name = "div"\nparameter = "learning_rate"\nvalues = [0.01, 1000.0]\n'
                    '[base]\nactivation = "relu"\noptimizer = "gd"\n')
    out = tmp_path / "out"
    result = invoke("study", "--file", path, *TINY_FLAGS, "--max-epochs", "3", "--out", out)
    assert result.exit_code == 0, result.output
    records = ffnn.load_results(out)
    assert len(records) == 4
    for r in records:
        assert r["diverged"] is (r["value"] == 1000.0)
        assert r["stopped_early"] is False
        if r["diverged"]:
            assert r["epochs"] < 3 or not math.isfinite(r["history"]["train_loss"][-1]) or \
                r["history"]["train_loss"][-1] > ffnn.config.DIVERGENCE_LOSS
    report = (out / "div" / "report.md").read_text()
    assert "| 1000 (2/2 diverged) |" in report and "Diverged: learning rate 1000" in report
    assert "diverged at epoch" in (out / "logs" / "div.log").read_text()


def test_train_prints_progress_and_saves_a_model(tmp_path):
    path = tmp_path / "model.npz"
    result = invoke("train", "--backend", "numpy", "--max-epochs", "3", "--hidden-size", "8",
                    *SMALL_DATA, "--save", path)
    assert result.exit_code == 0, result.output
    assert result.output.count("epoch ") >= 3 and "test accuracy" in result.output
    model = ffnn.load_model(path)
    assert model.hidden_size == 8 and model.config.max_epochs == 3


def test_train_takes_the_learning_rate_schedule(tmp_path):
    path = tmp_path / "model.npz"
    result = invoke("train", "--backend", "numpy", "--max-epochs", "2", "--hidden-size", "8",
                    "--optimizer", "gd", "--lr", "0.1", "--lr-schedule", "invscaling",
                    "--power-t", "0.25", *SMALL_DATA, "--save", path)
    assert result.exit_code == 0, result.output
    config = ffnn.load_model(path).config
    assert (config.lr_schedule, config.power_t) == ("invscaling", 0.25)
    _one_line_error(invoke("train", "--lr-schedule", "optimal"), "--lr-schedule", "optimal")
    _one_line_error(invoke("train", "--power-t", "-1"), "--power-t", ">= 0")


def test_train_takes_the_identity_activation_and_the_logistic_output(tmp_path):
    path = tmp_path / "model.npz"
    result = invoke("train", "--backend", "numpy", "--max-epochs", "1", "--hidden-sizes", "6,4",
                    "--activation", "identity", *SMALL_DATA, "--save", path)
    assert result.exit_code == 0, result.output
    assert ffnn.load_model(path).activation == "identity"
    # MNIST has ten classes: the logistic output is refused in the words of ffnn.train
    _one_line_error(invoke("train", "--backend", "numpy", "--output", "logistic", *SMALL_DATA),
                    "output: 'logistic'", "n_classes=10")
    _one_line_error(invoke("train", "--output", "linear"), "--output", "linear")


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path, tiny_toml):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('name = "bad"\nparameter = [\n')
    bad_param = tmp_path / "param.toml"
    bad_param.write_text('name = "p"\nparameter = "width"\nvalues = [1, 2]\n')
    out = ["--out", tmp_path / "out"]
    _one_line_error(invoke("study", "nope", *out), "unknown study 'nope'", "hidden-adam")
    _one_line_error(invoke("study", "--file", bad_toml, *out), str(bad_toml), "not valid TOML")
    _one_line_error(invoke("study", "--file", bad_param, *out), "unknown parameter 'width'")
    _one_line_error(invoke("study", "--file", tmp_path / "missing.toml", *out), "not found")
    _one_line_error(invoke("study", "lr-adam", "--bogus"), "--bogus")
    _one_line_error(invoke("study", "lr-adam", "--workers", "0"), "--workers")
    _one_line_error(invoke("study", "lr-adam", "--workers", "2", "--scheduler", "tcp://x:1"),
                    "--scheduler")
    _one_line_error(invoke("study", *out), "give a study NAME")
    _one_line_error(invoke("train", "--lr", "-1"), "--lr")
    _one_line_error(invoke("train", "--activation", "softplus"), "--activation")
    _one_line_error(invoke("nope"), "nope")
    _one_line_error(invoke("report", tmp_path), "no study results")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_plan_records_the_options_used(tiny_study):
    out, _ = tiny_study
    plan = json.loads((out / "tiny" / "plan.json").read_text())
    assert plan["options"]["repeats"] == 2 and plan["options"]["max_epochs"] == 2
    assert len(plan["runs"]) == 4


def test_progress_bar_counts_runs_when_asked_and_stays_quiet_otherwise(tmp_path, capsys,
                                                                        tiny_study, tiny_toml):
    from ffnn.studies.plan import DataSpec, StudyOptions
    from ffnn.studies.run import run_studies
    from ffnn.studies.specs import load_study_file

    _, result = tiny_study
    assert "%|" not in result.output  # CliRunner's stderr is not a terminal: no bar
    options = StudyOptions(repeats=2, max_epochs=2, backend="numpy",
                           data=DataSpec(train_size=300, val_size=100, test_size=100))
    run_studies([load_study_file(tiny_toml)], options, tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "run" in err and "%|" in err
