"""Shared fixtures (small MNIST splits, loaded once per session from the packaged copy), the
Hypothesis profiles and the Hypothesis tests' timeout.

Hypothesis profiles: ``ci`` (derandomized, a fixed example count, no deadline, failing examples
printed as reproduction blobs) is loaded when ``CI=true`` or ``HYPOTHESIS_PROFILE=ci``;
otherwise ``dev`` (random, no deadline: the machine is shared, so timing says nothing), or any
profile named by ``HYPOTHESIS_PROFILE`` (``thorough``: 5,000 examples per test, for a hunt).
"""

import os

import pytest
from hypothesis import is_hypothesis_test, settings

import ffnn

HYPOTHESIS_TIMEOUT = 60  # seconds per Hypothesis test: a hang fails instead of stalling CI

settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None,
                          print_blob=True)
settings.register_profile("dev", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=5000)  # a hunt, on demand
PROFILE = ("ci" if os.environ.get("CI") == "true"
           else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
settings.load_profile(PROFILE)


def pytest_collection_modifyitems(items):
    """Every Hypothesis test gets a hard timeout (pytest-timeout), unless it sets its own or the
    profile is ``thorough`` (a hunt takes as long as it takes)."""
    if PROFILE == "thorough":
        return
    for item in items:
        function = getattr(item, "function", None)
        if (function is not None and is_hypothesis_test(function)
                and item.get_closest_marker("timeout") is None):
            item.add_marker(pytest.mark.timeout(HYPOTHESIS_TIMEOUT))


@pytest.fixture(autouse=True)
def _run_in_a_scratch_directory(tmp_path, monkeypatch):
    """Every test runs in its own empty directory: nothing lands in the checkout, and the
    subprocesses a test starts (``python -c``, ``python -m``) import the installed ffnn rather
    than the checkout's source tree, which the current directory would otherwise shadow."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def small_mnist():
    """2,000 training, 500 validation and 500 test images."""
    return ffnn.load_mnist(train_size=2000, val_size=500, test_size=500)


@pytest.fixture(scope="session")
def mnist_5k():
    """5,000 training images, the default 6,000 validation images, 2,000 test images."""
    return ffnn.load_mnist(train_size=5000, test_size=2000)
