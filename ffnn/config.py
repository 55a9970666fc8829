"""``TrainConfig``: every choice that determines a training run, validated at construction."""

import dataclasses
import math
import reprlib
from dataclasses import dataclass, field

import numpy as np

from .kernels import BACKENDS, codes
from .schedules import SCHEDULES

DTYPES = ("float32", "float64")
INPUT_PATHS = ("auto", "sparse", "dense")

# Above this mean cross-entropy (nats per sample) a run counts as diverged. A stable log-softmax
# keeps the loss finite even when training has blown up (learning rates of 100 reach ~1e15), and
# no model worth keeping is anywhere near: guessing uniformly over 10 classes costs 2.3.
DIVERGENCE_LOSS = 1e4


def _help(text: str, *, flag: str | None = None, minimum: int | None = None,
          choices: tuple[str, ...] | None = None) -> dict:
    """Field metadata the command line is generated from (``ffnn-run train``): help text, the
    flag's name when it is not ``--field-name`` (a ``--no-...`` flag turns a True default
    off), the least integer, the allowed strings."""
    return {"help": text, "flag": flag, "minimum": minimum, "choices": choices}


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run.

    Hidden layers: ``hidden_sizes=(100, 50)`` (one or more positive ints, every layer with
    ``activation``); ``hidden_size=100`` means ``hidden_sizes=(100,)``. The canonical form,
    whichever was given: ``hidden_sizes`` a tuple, ``hidden_size`` its one entry for one hidden
    layer and ``None`` for more, so both spellings give equal configs and keys.

    Weight init: He normal (std ``sqrt(2 / fan_in)``) for relu, leaky_relu and elu; Glorot
    uniform (limit ``sqrt(6 / (fan_in + fan_out))``) for sigmoid, tanh and identity; biases
    zero. Every layer, in order, is drawn from one ``numpy.random.default_rng(seed)``, so
    ``seed`` fixes them fully.

    ``shuffle_seed`` (default: ``seed``) fixes the minibatch order: epoch ``e`` visits the
    training set in the order ``default_rng([shuffle_seed, e]).permutation(n_train)``, the same
    for every backend.

    ``l2`` adds ``l2/2 * sum(W**2)`` over every weight matrix (not the biases) to the loss that
    is minimised; the reported losses are the plain mean cross-entropy.

    ``threads`` (default: all cores) limits numba's and BLAS's thread pools together for the
    duration of training; both are restored afterwards.

    ``input_path`` is how the numba engine runs the first layer: ``"auto"`` (default: dense
    BLAS products when more than ``ffnn.kernels.engine.DENSE_CROSSOVER`` of the training
    inputs are nonzero, else over each row's nonzeros), ``"sparse"`` or ``"dense"``. The choice
    made is ``TrainResult.extra["input_path"]``.

    ``lr_schedule`` (``ffnn.schedules.LearningRate``, scikit-learn's schedules) sets the
    learning rate each epoch runs at, starting from ``learning_rate``: ``"constant"``;
    ``"invscaling"``, ``learning_rate / (t + 1) ** power_t`` with ``t`` the training samples
    seen in the epochs before; ``"adaptive"``, ``learning_rate`` until the stopping rule's
    patience runs out, then divided by 5 with the patience count started again, stopping only
    when patience runs out at a rate already at most ``1e-6``. Its trigger signal is the one
    early stopping watches, with ``patience`` and ``min_delta``: the validation loss when
    ``early_stopping`` is on, else the mean training loss of each epoch (which then drives the
    schedule only, and ``restore_best`` does not apply).

    ``output`` is the output layer (``codes.OUTPUTS``): ``"softmax"`` over ``n_classes`` units
    with cross-entropy, or ``"logistic"``, for binary data: one sigmoid unit trained with binary
    cross-entropy on the labels 0 and 1 (``ffnn.train`` refuses other class counts).

    ``input_path``, ``lr_schedule``, ``power_t`` and ``output`` are left out of ``to_dict()``
    while at their defaults.
    """

    hidden_size: int | None = field(default=None, metadata=_help(
        "Hidden units of one hidden layer [default: 10].", minimum=1))
    activation: str = field(default="elu", metadata=_help(
        "Hidden activation.", choices=codes.ACTIVATIONS))
    optimizer: str = field(default="adam", metadata=_help(
        "Optimizer.", choices=codes.OPTIMIZERS))
    learning_rate: float = field(default=1e-3, metadata=_help("Learning rate.", flag="--lr"))
    batch_size: int = field(default=250, metadata=_help("Minibatch size.", minimum=1))
    max_epochs: int = field(default=250, metadata=_help("Epoch limit.", minimum=1))
    early_stopping: bool = field(default=True, metadata=_help(
        "Train all --max-epochs epochs.", flag="--no-early-stopping"))
    patience: int = field(default=10, metadata=_help(
        "Early stopping: epochs without improvement.", minimum=0))
    min_delta: float = field(default=0.0, metadata=_help(
        "Early stopping: least validation-loss decrease that counts."))
    restore_best: bool = field(default=True, metadata=_help(
        "Keep the last epoch's weights instead of the best epoch's.", flag="--no-restore-best"))
    l2: float = field(default=0.0, metadata=_help("L2 penalty on the weights."))
    momentum: float = field(default=0.9, metadata=_help(
        "Momentum coefficient (momentum, nesterov)."))
    beta1: float = field(default=0.9, metadata=_help("Adam beta1."))
    beta2: float = field(default=0.999, metadata=_help("Adam beta2."))
    eps: float = field(default=1e-8, metadata=_help("Adam / RMSprop epsilon."))
    rmsprop_alpha: float = field(default=0.99, metadata=_help("RMSprop smoothing constant."))
    seed: int = field(default=0, metadata=_help("Seed of the initial weights.", minimum=0))
    shuffle_seed: int | None = field(default=None, metadata=_help(
        "Seed of the minibatch order [default: --seed].", minimum=0))
    dtype: str = field(default="float32", metadata=_help(
        "Floating-point type of data and weights.", choices=DTYPES))
    backend: str = field(default="numba", metadata=_help(
        "Compute backend.", choices=tuple(BACKENDS)))
    threads: int | None = field(default=None, metadata=_help(
        "numba and BLAS threads [default: all cores].", minimum=1))
    input_path: str = field(default="auto", metadata=_help(
        "First layer of the numba engine: dense products, over nonzeros, or chosen by the "
        "inputs' density.", choices=INPUT_PATHS))
    hidden_sizes: tuple[int, ...] | None = field(default=None, metadata=_help(
        "Hidden units of each hidden layer, e.g. 100,50 (instead of --hidden-size).",
        minimum=1))
    lr_schedule: str = field(default="constant", metadata=_help(
        "Learning-rate schedule (scikit-learn's).", choices=SCHEDULES))
    power_t: float = field(default=0.5, metadata=_help(
        "Exponent of the invscaling schedule."))
    output: str = field(default="softmax", metadata=_help(
        "Output layer: softmax, or one logistic unit for binary data.", choices=codes.OUTPUTS))

    def __post_init__(self):
        self._canonical_hidden_sizes()
        _check_choice("activation", self.activation, codes.ACTIVATIONS)
        _check_choice("optimizer", self.optimizer, codes.OPTIMIZERS)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("backend", self.backend, tuple(BACKENDS))
        _check_choice("input_path", self.input_path, INPUT_PATHS)
        _check_choice("lr_schedule", self.lr_schedule, SCHEDULES)
        _check_choice("output", self.output, codes.OUTPUTS)
        for name in ("batch_size", "max_epochs"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("patience", self.patience, minimum=0)
        _check_int("seed", self.seed, minimum=0)
        if self.shuffle_seed is not None:
            _check_int("shuffle_seed", self.shuffle_seed, minimum=0)
        if self.threads is not None:
            _check_int("threads", self.threads, minimum=1)
        _check_float("learning_rate", self.learning_rate, low=0.0, low_open=True)
        _check_float("min_delta", self.min_delta, low=0.0)
        _check_float("power_t", self.power_t, low=0.0)
        _check_float("l2", self.l2, low=0.0)
        _check_float("eps", self.eps, low=0.0, low_open=True)
        _check_float("momentum", self.momentum, low=0.0, high=1.0)
        for name in ("beta1", "beta2", "rmsprop_alpha"):
            _check_float(name, getattr(self, name), low=0.0, high=1.0, high_open=True)
        for name in ("early_stopping", "restore_best"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"{name}: expected True or False, got {getattr(self, name)!r}")

    @property
    def effective_shuffle_seed(self) -> int:
        """The seed of the minibatch order (``shuffle_seed``, or ``seed`` when that is None)."""
        return self.seed if self.shuffle_seed is None else self.shuffle_seed

    def _canonical_hidden_sizes(self):
        size, sizes = self.hidden_size, self.hidden_sizes
        if size is not None:
            _check_int("hidden_size", size, minimum=1)
        if sizes is None:
            sizes = (10 if size is None else size,)
        if isinstance(sizes, str) or not isinstance(sizes, tuple | list) or not sizes:
            raise ValueError(f"hidden_sizes: expected a non-empty sequence of positive integers, "
                             f"got {sizes!r}")
        for i, h in enumerate(sizes):
            _check_int(f"hidden_sizes[{i}]", h, minimum=1)
        sizes = tuple(int(h) for h in sizes)
        if size is not None and (size,) != sizes:
            raise ValueError(f"hidden_size: {size!r} disagrees with hidden_sizes {sizes!r}; "
                             "give one of them")
        object.__setattr__(self, "hidden_sizes", sizes)
        object.__setattr__(self, "hidden_size", sizes[0] if len(sizes) == 1 else None)

    @property
    def depth(self) -> int:
        """The number of hidden layers."""
        return len(self.hidden_sizes)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated again); changing ``hidden_size`` or
        ``hidden_sizes`` replaces the other too."""
        if "hidden_size" in changes and "hidden_sizes" not in changes:
            changes["hidden_sizes"] = None
        elif "hidden_sizes" in changes and "hidden_size" not in changes:
            changes["hidden_size"] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain-JSON form of the config: the fields of ``OMITTED_AT_DEFAULT`` only when not at
        their defaults, and one hidden layer as ``hidden_size`` alone, more as ``hidden_sizes``
        (a list) alone, so records made before these existed keep their keys."""
        values = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.name in OMITTED_AT_DEFAULT and values[f.name] == f.default:
                del values[f.name]
        if len(self.hidden_sizes) == 1:
            del values["hidden_sizes"]
        else:
            del values["hidden_size"]
            values["hidden_sizes"] = list(self.hidden_sizes)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """The config from ``to_dict`` output; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        return cls(**values)


# Fields added after records existed: ``to_dict`` leaves each out while at its default.
OMITTED_AT_DEFAULT = ("input_path", "lr_schedule", "power_t", "output")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")


def _check_int(name, value, *, minimum):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")


def _check_float(name, value, *, low, high=math.inf, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    check_range(name, value, low=low, high=high, low_open=low_open, high_open=high_open)


def check_range(name, value, *, low, high=math.inf, low_open=False, high_open=False) -> None:
    """``ValueError`` unless ``value`` (a real number) is finite and within the bounds, e.g.
    ``"learning_rate: must be a finite number > 0, got inf"`` or ``"momentum: must be a number in
    [0, 1], got 1.5"``."""
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        number = math.inf if value > 0 else -math.inf
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if math.isfinite(number) and not too_low and not too_high:
        return
    if math.isinf(high):
        wanted = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        wanted = (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
                  f"{')' if high_open else ']'}")
    raise ValueError(f"{name}: must be {wanted}, got {reprlib.repr(value)}")
