"""ffnn: fast small feedforward networks on the CPU.

``ffnn.train(ffnn.TrainConfig(...), ffnn.load_mnist())`` trains one network; the compute lives in
``ffnn.kernels`` (a NumPy reference and Numba kernels behind the same interface).
"""

from pathlib import Path as _Path

# In a source checkout kernels/ sits beside ffnn/ (the installer maps it to ffnn.kernels); let
# ``import ffnn.kernels`` find it there too, so the checkout works without an install.
if not (_Path(__file__).parent / "kernels").is_dir():
    __path__.append(str(_Path(__file__).resolve().parent.parent))  # noqa: F821

from importlib.metadata import PackageNotFoundError as _NotFound  # noqa: E402
from importlib.metadata import version as _version  # noqa: E402

from .config import TrainConfig  # noqa: E402
from .data import DataError, Splits, load_mnist  # noqa: E402
from .grouped import train_many  # noqa: E402
from .model import Network  # noqa: E402
from .model_file import ModelFileError, load_model  # noqa: E402
from .studies.store import load_results  # noqa: E402
from .training import EpochRecord, TrainResult, train  # noqa: E402

try:
    __version__ = _version("ffnn")
except _NotFound:  # pragma: no cover - running from a checkout that was never installed
    __version__ = "0.0.0+checkout"

__all__ = [
    "DataError", "EpochRecord", "ModelFileError", "Network", "Splits", "TrainConfig",
    "TrainResult", "load_mnist", "load_model", "load_results", "run_study", "train",
    "train_many",
]


def run_study(name_or_path, **options):
    """Run (or resume) one study: a built-in name or a TOML file (``ffnn.studies.run``)."""
    from .studies.run import run_study as run

    return run(name_or_path, **options)


def __getattr__(name):
    # ``ffnn.MLPClassifier`` imports scikit-learn (the optional extra ``ffnn[sklearn]``), so it
    # is loaded on first use: ``import ffnn`` alone never imports scikit-learn.
    if name == "MLPClassifier":
        from .estimator import MLPClassifier

        return MLPClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
