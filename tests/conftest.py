"""Shared fixtures: small MNIST splits, loaded once per session from the packaged copy."""

import pytest

import ffnn


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
