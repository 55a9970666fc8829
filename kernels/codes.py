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

With ``hyper[SKLEARN] = 1`` (scikit-learn's conventions, ``ffnn.MLPClassifier``) three rows
change: the momentum buffer holds scikit-learn's velocity, which has the learning rate inside it
(they differ once the rate changes between steps), and Adam puts epsilon after the bias
correction of ``sqrt(v)``::

    momentum   mu    lr      0      0        1                0    1    1               1
    nesterov   mu    lr      0      0        1                lr   mu   1               1
    adam       b1    1 - b1  b2     1 - b2   lr sqrt(1 - b2^t) / (1 - b1^t)  0  1  1   eps

and so do the penalty and the reported loss: ``hyper[L2]`` is then scikit-learn's ``alpha``,
divided by the minibatch's weight sum, and each minibatch's loss includes ``alpha/2 ||W||^2``
at its weights before the step, the epoch's loss being the minibatch losses' mean weighted by
minibatch size. Otherwise ``l2`` is per sample and the loss is the plain cross-entropy.
(The reference, ``reference.update``, writes each rule out separately.)

Outputs: ``SOFTMAX`` (cross-entropy on the integer label) or ``LOGISTIC`` (each output a
sigmoid with binary cross-entropy; the int64 label is then a bit mask, bit ``c`` the target of
output ``c``, so at most ``MAX_LOGISTIC_OUTPUTS`` outputs).
"""

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "identity")
OPTIMIZERS = ("gd", "momentum", "nesterov", "rmsprop", "adam")
OUTPUTS = ("softmax", "logistic")

SIGMOID, TANH, RELU, LEAKY_RELU, ELU, IDENTITY = range(len(ACTIVATIONS))
GD, MOMENTUM, NESTEROV, RMSPROP, ADAM = range(len(OPTIMIZERS))
SOFTMAX, LOGISTIC = range(len(OUTPUTS))
MAX_LOGISTIC_OUTPUTS = 62

LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0

# Layout of the ``hyper`` vector (float64) of one network.
LR, MOMENTUM_COEF, BETA1, BETA2, EPS, RMSPROP_ALPHA, L2, SKLEARN = range(8)
N_HYPER = 8

# Layout of the coefficient vector of the unified update (see the table above).
C_L2, C_M1, C_M2, C_V1, C_V2, C_LR, C_G, C_M, C_DIV, C_EPS = range(10)
N_COEF = 10


def activation_code(name: str) -> int:
    """The integer code of a hidden activation name."""
    return ACTIVATIONS.index(name)


def optimizer_code(name: str) -> int:
    """The integer code of an optimizer name."""
    return OPTIMIZERS.index(name)


def output_code(name: str) -> int:
    """The integer code of an output layer name."""
    return OUTPUTS.index(name)
