"""Run-time codes shared by every backend.

Kernels select the hidden activation and the optimizer by a small integer rather than by
compiling one specialisation per combination. A network's optimizer hyperparameters arrive as
one float64 vector ``hyper`` (layout ``LR`` ... ``L2`` below, built by
``ffnn.training.hyper_vector``).

The compiled engine turns ``hyper`` and the 1-based step ``t`` into one coefficient vector
(``ops.coefficients``, layout ``C_*``), the same encoding for every optimizer, so that its update
is one formula (``ops.update``)::

    g' = g + l2 w                     (weights only; biases have l2 = 0)
    m  = c_m1 m + c_m2 g'
    v  = c_v1 v + c_v2 g'^2
    w -= c_lr (c_g g' + c_m m) / (sqrt(v) / c_div + c_eps)

    optimizer  c_m1  c_m2    c_v1   c_v2     c_lr             c_g  c_m  c_div           c_eps
    gd         0     0       0      0        lr               1    0    1               1
    momentum   mu    1       0      0        lr               0    1    1               1
    nesterov   mu    1       0      0        lr               1    mu   1               1
    rmsprop    0     0       a      1 - a    lr               1    0    1               eps
    adam       b1    1 - b1  b2     1 - b2   lr / (1 - b1^t)  0    1    sqrt(1 - b2^t)  eps

(the reference, ``reference.update``, writes each rule out separately).
"""

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu")
OPTIMIZERS = ("gd", "momentum", "nesterov", "rmsprop", "adam")

SIGMOID, TANH, RELU, LEAKY_RELU, ELU = range(len(ACTIVATIONS))
GD, MOMENTUM, NESTEROV, RMSPROP, ADAM = range(len(OPTIMIZERS))

LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0

# Layout of the ``hyper`` vector (float64) of one network.
LR, MOMENTUM_COEF, BETA1, BETA2, EPS, RMSPROP_ALPHA, L2 = range(7)
N_HYPER = 7

# Layout of the coefficient vector of the unified update (see the table above).
C_L2, C_M1, C_M2, C_V1, C_V2, C_LR, C_G, C_M, C_DIV, C_EPS = range(10)
N_COEF = 10


def activation_code(name: str) -> int:
    """The integer code of a hidden activation name."""
    return ACTIVATIONS.index(name)


def optimizer_code(name: str) -> int:
    """The integer code of an optimizer name."""
    return OPTIMIZERS.index(name)
