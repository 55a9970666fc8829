"""Compile cost of the numba backend, apart from run time (group ``compile``).

Each round starts a fresh Python process that imports ``ffnn.kernels.numba_backend`` and calls
``warm_up("float32")`` (every kernel of the dtype, the parallel epoch kernel included):

* ``cold``: ``NUMBA_CACHE_DIR`` points at a new, empty directory, so everything is compiled;
* ``cached``: the same directory again, so everything is loaded from numba's on-disk cache;
* ``import``: the process with the import only, the baseline of both.

The timed value is the whole process; the child also measures its own ``warm_up`` call and
the report prints that (``extra_info["warm_up_s"]``). Each child then trains a small network and
prints a digest of its weights: a process that compiled the kernels and one that loaded them from
the cache must produce the same bits (``test_cold_and_cached_weights_agree``).
"""

import os
import subprocess
import sys
import tempfile

import pytest

DTYPE = "float32"
CHILD = """
import hashlib, sys, time
t0 = time.perf_counter()
from ffnn.kernels import numba_backend
t1 = time.perf_counter()
digest = "-"
if sys.argv[1] != "none":
    numba_backend.warm_up(sys.argv[1])
t2 = time.perf_counter()
if sys.argv[1] != "none":
    import ffnn
    config = ffnn.TrainConfig(dtype=sys.argv[1], max_epochs=1, threads=1, early_stopping=False)
    splits = ffnn.load_mnist(train_size=1000, val_size=200, test_size=0)
    theta = ffnn.train(config, splits).model.theta
    digest = hashlib.sha256(theta.tobytes()).hexdigest()
print(t1 - t0, t2 - t1, digest)
"""
DIGESTS = {}


def run_child(cache_dir, dtype):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir,
               PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
    out = subprocess.run([sys.executable, "-c", CHILD, dtype], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[-3]), float(out[-2]), out[-1]


@pytest.fixture()
def timings():
    return []


@pytest.mark.parametrize("mode, rounds", [("cold", 2), ("cached", 3), ("import", 3)])
def test_compile(benchmark, tmp_path, timings, mode, rounds):
    benchmark.group = "compile"
    benchmark.name = mode
    dirs = []

    def setup():
        if mode == "cold":
            dirs.append(tempfile.mkdtemp(dir=tmp_path))
        elif not dirs:
            dirs.append(str(tmp_path))
            run_child(dirs[0], DTYPE)  # fill the cache, untimed
        return (dirs[-1], DTYPE if mode != "import" else "none"), {}

    def child(cache_dir, dtype):
        timings.append(run_child(cache_dir, dtype))

    benchmark.pedantic(child, setup=setup, rounds=rounds, iterations=1)
    imports, warm, digests = zip(*timings, strict=True)
    benchmark.extra_info.update(dtype=DTYPE, import_s=sorted(imports)[len(imports) // 2],
                                warm_up_s=sorted(warm)[len(warm) // 2],
                                rounds_s=[t[:2] for t in timings])
    if mode != "import":
        assert min(warm) > 0
        assert len(set(digests)) == 1  # every round trained the same weights
        DIGESTS[mode] = digests[0]


def test_cold_and_cached_weights_agree():
    if {"cold", "cached"} - set(DIGESTS):
        pytest.skip("needs the cold and cached compile benchmarks of this session")
    assert DIGESTS["cold"] == DIGESTS["cached"]
