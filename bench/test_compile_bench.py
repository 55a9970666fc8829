"""Cold compile (suite ``compile``), as the issue defines it: the whole process of a float32
``ffnn.train`` of one epoch on 1,000 images, with an empty ``NUMBA_CACHE_DIR``, minus the same
process with the cache warm.

Each round starts a fresh Python process (``CHILD``) that imports ffnn, loads 1,000 training and
200 validation images and trains one epoch with ``TrainConfig`` defaults otherwise (what a new
user's first ``ffnn-run train`` compiles), timed by the parent from start to exit:

* ``cold``: ``NUMBA_CACHE_DIR`` is a new, empty directory, so every kernel the call needs is
  compiled;
* ``warm``: a filled directory (the last cold round's, or one filled by an untimed run first),
  so everything loads from the cache;
* ``import``: ``import ffnn`` alone, the baseline of both (not part of the difference).

The report's figure is median(cold) - median(warm). Each child prints a digest of its trained
weights: every process, cold or warm, must produce the same bits.
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from workloads import rounds

CHILD = """
import hashlib, sys
import ffnn
if sys.argv[1] == "train":
    splits = ffnn.load_mnist(train_size=1000, val_size=200, test_size=0)
    result = ffnn.train(ffnn.TrainConfig(dtype="float32", max_epochs=1), splits)
    assert result.epochs == 1 and not result.diverged
    print(hashlib.sha256(result.model.theta.tobytes()).hexdigest())
else:
    print("-")
"""
MODES = [("cold", 2), ("warm", 3), ("import", 3)]
DIGESTS: dict[str, set] = {}
FILLED: list[str] = []  # cache directories a cold round has filled


def run_child(cache_dir: str, what: str) -> tuple[float, str]:
    """Seconds of the whole child process, and its weights' digest. The child runs in the cache
    directory, so it imports the installed ffnn, as a user's process does."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, what], env=env, check=True, cwd=cache_dir,
                         capture_output=True, text=True).stdout.split()
    return time.perf_counter() - start, out[-1]


def cache_dir(mode: str, tmp_path) -> str:
    """The ``NUMBA_CACHE_DIR`` of one round: new and empty for ``cold``, filled for ``warm``
    (the last cold round's, or filled now by an untimed run), anything for ``import``."""
    if mode == "cold":
        return tempfile.mkdtemp(dir=tmp_path)
    if mode == "import":
        return str(tmp_path)
    if not FILLED:
        FILLED.append(str(tmp_path / "warm"))
        run_child(FILLED[-1], "train")
    return FILLED[-1]


@pytest.mark.parametrize(("mode", "n_rounds"), MODES, ids=[m for m, _ in MODES])
def test_compile(benchmark, tmp_path, mode, n_rounds):
    benchmark.group = "compile"
    benchmark.name = mode
    seconds, digests = [], []

    def setup():  # untimed
        return (cache_dir(mode, tmp_path),), {}

    def child(cache):
        wall, digest = run_child(cache, "import" if mode == "import" else "train")
        if mode == "cold":
            FILLED.append(cache)
        seconds.append(wall)
        digests.append(digest)

    benchmark.pedantic(child, setup=setup, rounds=rounds(n_rounds), iterations=1)
    benchmark.extra_info.update(suite="compile", mode=mode, dtype="float32",
                                process_seconds=seconds,
                                process_median=float(np.median(seconds)))
    if mode != "import":
        assert len(set(digests)) == 1, f"{mode}: rounds trained different weights"
        DIGESTS[mode] = set(digests)


def test_cold_and_warm_weights_agree():
    """A process that compiled the kernels and one that loaded them train the same bits."""
    if {"cold", "warm"} - set(DIGESTS):
        pytest.skip("needs the cold and warm compile benchmarks of this session")
    assert DIGESTS["cold"] == DIGESTS["warm"]
