"""Run-time codes shared by every backend.

Kernels select the hidden activation and the optimizer by a small integer rather than by
compiling one specialisation per combination, and read every optimizer hyperparameter from one
float vector ``hyper`` laid out as below. Both backends use the same codes, so one test can loop
over both.
"""

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu")
OPTIMIZERS = ("gd", "momentum", "nesterov", "rmsprop", "adam")

SIGMOID, TANH, RELU, LEAKY_RELU, ELU = range(len(ACTIVATIONS))
GD, MOMENTUM, NESTEROV, RMSPROP, ADAM = range(len(OPTIMIZERS))

LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0

# Layout of the ``hyper`` vector (float64) that every optimizer update reads.
LR, MOMENTUM_COEF, BETA1, BETA2, EPS, RMSPROP_ALPHA, L2 = range(7)
N_HYPER = 7


def activation_code(name: str) -> int:
    """The integer code of a hidden activation name."""
    return ACTIVATIONS.index(name)


def optimizer_code(name: str) -> int:
    """The integer code of an optimizer name."""
    return OPTIMIZERS.index(name)
