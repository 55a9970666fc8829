"""Sessions: ``nox -s tests`` (the suite, on the installed wheel), ``tests_nojit`` (kernel tests
with numba's JIT off, so kernel bodies run as Python), ``lint`` (ruff), ``bench`` (opt-in
benchmarks against NumPy, PyTorch and scikit-learn)."""

import nox

nox.options.sessions = ["lint", "tests", "tests_nojit"]
nox.options.reuse_existing_virtualenvs = True

# torch is pinned: this version is a CPU build on the machine's local package index, an unpinned
# torch pulls a multi-GB CUDA build.
TEST_EXTRAS = ".[test,sklearn,dask,compare]"


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite against the installed package (benchmarks disabled)."""
    session.install(TEST_EXTRAS)
    # SCIPY_ARRAY_API=1: otherwise scikit-learn's estimator checks skip their array-API check.
    session.run("pytest", *session.posargs,
                env={"FFNN_TEST_INSTALLED": "1", "SCIPY_ARRAY_API": "1"})


@nox.session
def tests_nojit(session: nox.Session) -> None:
    """Kernel tests with NUMBA_DISABLE_JIT=1 on a few hundred samples."""
    session.install(".[test]")
    session.run("pytest", "-m", "kernels", *session.posargs,
                env={"NUMBA_DISABLE_JIT": "1", "FFNN_TEST_INSTALLED": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (opt-in, ~10 minutes on 2 cores): per-epoch time of W1-W4 and dense W2
    against the NumPy reference, PyTorch and scikit-learn, ``train_many``, cold compile, the
    estimator and a study. Saves the run under .benchmarks/ and as bench/results/latest.json
    (committed: the JSON behind the README's tables) and prints the tables (bench/report.py).
    ``nox -s bench -- --benchmark-compare`` compares with the previous saved run."""
    session.install(".[test,compare]")  # compare pins torch (a CPU build), see above
    session.run("pytest", "bench", "--benchmark-enable", "--benchmark-autosave",
                "--benchmark-json=bench/results/latest.json", "--benchmark-group-by=group",
                "--benchmark-columns=min,median,max,rounds", "--benchmark-sort=name",
                *session.posargs)
    session.run("python", "bench/report.py", "bench/results/latest.json")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole repository."""
    session.install("ruff")
    session.run("ruff", "check", ".")
