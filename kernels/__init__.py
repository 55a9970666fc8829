"""Compute backends of ffnn, installed as ``ffnn.kernels``.

``BACKENDS`` is the only list of backends (read by ``TrainConfig``, the tests, ``bench/`` and
``bench/report.py``); ``get_backend(name)`` returns the module. Both modules expose the same
functions with the same signatures:

* ``warm_up(dtype)``: compile (or load from cache) what ``dtype`` needs;
* ``prepare(X, dtype)``: the inputs as the backend takes them (dense or ``scipy.sparse``);
* ``Networks(n_features, n_classes, hidden, activation, optimizer, hyper, thetas, dtype,
  moments=None, steps=None)``: K networks' parameters, states and step counters;
* ``train_group(inputs, y, order, batch_size, nets, active, threads)``: one epoch of the
  networks ``active``, returning their mean minibatch losses;
* ``evaluate_group(inputs, y, nets, active, threads)``: their ``(losses, accuracies)``;
* ``forward`` and ``evaluate``: one network given by its flat ``theta``.

``reference`` holds the math, written for clarity; ``engine`` is the compiled engine (built
from ``flags``, ``codes``, ``intrinsics`` and ``ops``), imported only when asked for, so
``import ffnn`` stays light.
"""

from importlib import import_module

BACKENDS = {"numpy": "reference", "numba": "engine"}


def get_backend(name: str):
    """The backend module called ``name`` (one of ``BACKENDS``)."""
    try:
        module = BACKENDS[name]
    except KeyError:
        raise ValueError(f"backend: unknown backend {name!r}; expected one of {sorted(BACKENDS)}"
                         ) from None
    return import_module(f"{__name__}.{module}")
