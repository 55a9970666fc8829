"""Compute backends of ffnn, installed as ``ffnn.kernels``.

A backend is a module exposing the same functions with the same signatures:
``forward``, ``loss_and_gradient``, ``update``, ``train_epoch``, ``evaluate`` (see
``reference`` for the math, written once). ``get_backend(name)`` returns it by name; the numba
backend is imported only when asked for, so ``import ffnn`` stays light.
"""

from importlib import import_module

BACKENDS = {"numpy": "reference", "numba": "numba_backend"}


def get_backend(name: str):
    """The backend module called ``name`` (one of ``BACKENDS``)."""
    try:
        module = BACKENDS[name]
    except KeyError:
        raise ValueError(f"backend: unknown backend {name!r}; expected one of {sorted(BACKENDS)}"
                         ) from None
    return import_module(f"{__name__}.{module}")
