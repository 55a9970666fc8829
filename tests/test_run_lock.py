"""One writer per --out: the run lock is taken before anything under --out is touched, names its
holder, survives --fresh, never outlives a killed holder; whole-file writes are atomic."""

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ffnn
from ffnn.safe_io import replacing, write_atomic
from ffnn.studies.lock import LOCK_FILE, OutputLocked, RunLock

# 2 settings x 10 repeats x 60 epochs on 2,000 images with NumPy: ~0.25 s a run, ~5 s in all,
# long enough for two more processes to start and be refused while the first one writes.
STUDY = ('name = "race"\nparameter = "optimizer"\nvalues = ["adam", "nesterov"]\n'
         '[base]\nlearning_rate = 0.01\nearly_stopping = false\n')
FLAGS = ["--repeats", "10", "--max-epochs", "60", "--train-size", "2000", "--val-size", "200",
         "--test-size", "200", "--backend", "numpy", "--workers", "1"]
TOTAL = 20


def ffnn_run(*args, **kwargs) -> subprocess.Popen:
    package_root = str(Path(ffnn.__file__).resolve().parent.parent)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "ffnn.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def finish(process, timeout=300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out.decode(), err.decode()


def test_a_second_holder_is_refused_naming_the_directory_and_the_holder(tmp_path):
    out = tmp_path / "out"
    with RunLock(out) as lock:
        assert lock.held and (out / LOCK_FILE).is_file()
        assert list(out.iterdir()) == [out / LOCK_FILE]
        with pytest.raises(OutputLocked) as info:
            RunLock(out).acquire()
        message = str(info.value)
        assert message.startswith(f"{out}: another ffnn-run (pid {os.getpid()} on host "
                                  f"{platform.node()})")
        assert "\n" not in message
    assert (out / LOCK_FILE).is_file()  # kept across runs
    with RunLock(out):
        pass


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from ffnn.studies.lock import RunLock; "
         f"RunLock({str(out)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(OutputLocked, match=f"pid {holder.pid} on host"):
            RunLock(out).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        holder.stdout.close()
    assert str(holder.pid) in (out / LOCK_FILE).read_text()  # information left behind ...
    with RunLock(out):  # ... that decides nothing: the kernel released the flock
        pass


@pytest.mark.timeout(600)
def test_fresh_cannot_get_past_a_running_study(tmp_path):
    """The issue's reproduction, smaller: while a study writes, the same command with --fresh
    (and without) is refused; the first study loses and misattributes nothing."""
    study = tmp_path / "race.toml"
    study.write_text(STUDY)
    out = tmp_path / "out"
    results = out / "race" / "results.jsonl"
    first = ffnn_run("study", "--file", study, *FLAGS, "--out", out)
    try:
        while (not results.exists() or results.read_bytes().count(b"\n") < 2) \
                and first.poll() is None:
            time.sleep(0.01)
        assert first.poll() is None, "the first study ended before the race could start"
        before = results.read_bytes()
        fresh = ffnn_run("study", "--file", study, *FLAGS, "--out", out, "--fresh")
        again = ffnn_run("study", "--file", study, *FLAGS, "--out", out)
        for second in (fresh, again):
            code, stdout, stderr = finish(second)
            assert code == 2, stderr
            lines = stderr.strip().splitlines()
            assert lines == [f"Error: {out}: another ffnn-run (pid {first.pid} on host "
                             f"{platform.node()}) is writing here; wait for it to finish or "
                             "use another --out"], stderr
            assert stdout == ""
        assert first.poll() is None, "the first study ended before both were refused"
        assert results.read_bytes().startswith(before)  # nothing deleted or truncated
    finally:
        code, stdout, stderr = finish(first)
    assert code == 0, stderr
    records = ffnn.load_results(out)
    assert len(records) == TOTAL and len({r["key"] for r in records}) == TOTAL
    assert {r["worker"]["pid"] for r in records} == {first.pid}
    log = (out / "logs" / "race.log").read_text()
    assert log.count("study race: ") == 1  # the refused ones did not even log
    assert f"study race done: {TOTAL} computed, 0 recorded before" in log
    assert f"{TOTAL} of {TOTAL} runs recorded" in (out / "race" / "report.md").read_text()
    assert sorted(p.name for p in (out / "race").iterdir()) == [
        "confusion.png", "curves.png", "models", "plan.json", "predictions.png", "report.md",
        "results.jsonl", "runs.csv", "table.csv", "test.png", "tradeoff.png"]  # no temporaries


def test_whole_file_writes_replace_atomically_and_leave_nothing_on_failure(tmp_path):
    path = tmp_path / "report.md"
    write_atomic(path, "old")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["report.md"]
    write_atomic(path, "new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["report.md"]
