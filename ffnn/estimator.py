"""``MLPClassifier``: a scikit-learn estimator on top of ffnn's kernels.

Drop-in for ``sklearn.neural_network.MLPClassifier`` with one hidden layer: the constructor
takes scikit-learn's parameter names and defaults, ``fit`` / ``partial_fit`` / ``predict`` /
``predict_proba`` / ``score`` behave as scikit-learn's do, and the fitted attributes
(``classes_``, ``n_features_in_``, ``loss_curve_``, ``n_iter_``, ``best_loss_``,
``validation_scores_``, ``coefs_``, ``intercepts_``, ...) mean what scikit-learn says they mean.
Every mapping onto ``TrainConfig`` and every difference from scikit-learn is tabled in
``docs/estimator.md``.

The estimator drives the backend's per-epoch step (``train_group`` on a group of one, the step
``ffnn.train``'s loop runs) itself, rather than going through ``ffnn.train``: scikit-learn's
stopping rule on the training loss, ``partial_fit``'s resumable optimizer state and the exact
per-minibatch ``alpha`` need control between and inside epochs that ``train`` does not offer.
The pieces of the epoch it shares with ``train`` (weight init, shuffling order, hyperparameter
vector, prepared inputs, early stopping, thread limits) are ``train``'s own. ``scipy.sparse``
input reaches the engine as CSR rows, never densified.

This module imports scikit-learn; ``ffnn`` imports it only when ``ffnn.MLPClassifier`` is used.
"""

import math
import numbers
import sys
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "ffnn.MLPClassifier needs scikit-learn: pip install 'ffnn[sklearn]'") from e

from .config import TrainConfig, check_range
from .early_stopping import EarlyStopping
from .inputs import labels, prepared
from .kernels import codes, get_backend
from .kernels.layout import unpack
from .model import Network
from .threads import limit_threads
from .training import epoch_order, hyper_vector, initial_parameters, networks
from .validation import check_split

# scikit-learn's activation names, and ours, mapped onto ffnn's activation names.
ACTIVATIONS = {"logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "sigmoid": "sigmoid", "leaky_relu": "leaky_relu", "elu": "elu"}
SOLVERS = ("adam", "sgd", "rmsprop")
_MAX_SEED = np.iinfo(np.int32).max


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier with one hidden layer, trained by ffnn's kernels.

    Parameters follow ``sklearn.neural_network.MLPClassifier`` (same names, same defaults);
    ``docs/estimator.md`` lists how each maps onto ``ffnn.TrainConfig`` and where the behaviour
    differs. ffnn's own parameters:

    dtype : {'float32', 'float64'}, default='float32'
        Precision of the weights and of the arrays the kernels see; inputs are converted once.
    backend : {'numba', 'numpy'}, default='numba'
        Compute backend (``ffnn.kernels``).

    Notable differences: one hidden layer only; ``activation='identity'``, ``solver='lbfgs'``
    and learning-rate schedules other than ``'constant'`` are refused; ``solver='rmsprop'`` is
    added; ``early_stopping=True`` monitors the validation *loss* (``tol`` is the minimum
    improvement, ``n_iter_no_change`` the patience) and restores the best weights.

    Fitted attributes: ``classes_``, ``n_features_in_`` (and ``feature_names_in_``),
    ``loss_curve_``, ``loss_``, ``best_loss_`` (None with early stopping), ``n_iter_``, ``t_``,
    ``validation_scores_`` / ``best_validation_score_`` (validation accuracy, with early
    stopping), ``validation_loss_curve_`` (ours), ``coefs_``, ``intercepts_``, ``n_layers_``,
    ``n_outputs_``, ``out_activation_``, and ``network_`` (an ``ffnn.Network`` that can be saved).
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 dtype="float32", backend="numba"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.backend = backend

    # ------------------------------------------------------------------ public API

    def fit(self, X, y):
        """Train on ``(X, y)`` for up to ``max_iter`` epochs (from scratch unless warm_start)."""
        self._check_params()
        resume = self.warm_start and hasattr(self, "_theta")
        X, y = self._validate_X_y(X, y, reset=not resume)
        if resume:
            if not np.array_equal(unique_labels(y), self.classes_):
                raise ValueError(
                    "warm_start can only be used where y has the same classes as in the "
                    f"previous call to fit: previously {self.classes_}, y has {unique_labels(y)}")
        else:
            self.classes_ = unique_labels(y)
        y_codes = np.searchsorted(self.classes_, y).astype(np.int64)
        check_split("train", X, y_codes, len(self.classes_))
        if not resume:
            self._initialize(X.shape[1], len(self.classes_))
        self._train(X, y_codes, incremental=False)
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state.

        ``classes`` (every label that will ever be seen) is required on the first call.
        """
        self._check_params()
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_call = not hasattr(self, "classes_")
        if first_call and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        X, y = self._validate_X_y(X, y, reset=first_call)
        if classes is not None:
            classes = unique_labels(classes)
            if first_call:
                self.classes_ = classes
            elif not np.array_equal(classes, self.classes_):
                raise ValueError(f"classes={classes} is not the same as on the first call to "
                                 f"partial_fit: {self.classes_}")
        unseen = np.setdiff1d(unique_labels(y), self.classes_)
        if len(unseen):
            raise ValueError(f"y has classes not in classes_ {self.classes_}: {unseen}")
        y_codes = np.searchsorted(self.classes_, y).astype(np.int64)
        check_split("train", X, y_codes, len(self.classes_))
        if not hasattr(self, "_theta"):
            self._initialize(X.shape[1], len(self.classes_))
        self._train(X, y_codes, incremental=True)
        return self

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False, dtype=self._theta.dtype)
        theta = self._theta if self._theta.flags.writeable else self._theta.copy()
        _, P = get_backend(self.backend).forward(
            X, theta, self._hidden_size, len(self.classes_),
            codes.activation_code(ACTIVATIONS[self._activation]))
        return P

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        P = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(P, out=P)

    def predict(self, X):
        """The most probable class label of each row."""
        P = self.predict_proba(X)
        return self.classes_[np.argmax(P, axis=1)]

    # ------------------------------------------------------------------ fitted views

    @property
    def coefs_(self):
        """``[W1, W2]``: views into the trained parameters (scikit-learn's layout)."""
        W1, _, W2, _ = self._weights()
        return [W1, W2]

    @property
    def intercepts_(self):
        """``[b1, b2]``: views into the trained parameters."""
        _, b1, _, b2 = self._weights()
        return [b1, b2]

    @property
    def network_(self) -> Network:
        """The trained network as an ``ffnn.Network`` (``.save(path)`` writes it)."""
        check_is_fitted(self)
        return Network(self._theta.copy(), self.n_features_in_, self._hidden_size,
                       len(self.classes_), ACTIVATIONS[self._activation], self.backend,
                       self._config)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------------------------ internals

    def _weights(self):
        if not hasattr(self, "_theta"):
            raise AttributeError("this MLPClassifier is not fitted yet")
        return unpack(self._theta, self.n_features_in_, self._hidden_size, len(self.classes_))

    def _check_params(self) -> None:
        """Validate the constructor parameters (scikit-learn validates in fit, not __init__)."""
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(np.ravel(sizes))
        if len(sizes) != 1:
            raise ValueError(f"hidden_layer_sizes: ffnn supports exactly one hidden layer, got "
                             f"{self.hidden_layer_sizes!r}")
        if (isinstance(sizes[0], bool) or not isinstance(sizes[0], numbers.Integral)
                or sizes[0] < 1):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes!r}")
        if self.activation == "identity":
            raise ValueError("activation: 'identity' is not supported by ffnn; use one of "
                             f"{', '.join(ACTIVATIONS)}")
        _check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if self.solver == "lbfgs":
            raise ValueError("solver: 'lbfgs' is not supported by ffnn; use one of "
                             f"{', '.join(SOLVERS)}")
        _check_choice("solver", self.solver, SOLVERS)
        if self.learning_rate in ("invscaling", "adaptive"):
            raise ValueError(f"learning_rate: the {self.learning_rate!r} schedule is not "
                             "supported by ffnn; only 'constant' is")
        _check_choice("learning_rate", self.learning_rate, ("constant",))
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _check_number("batch_size", self.batch_size, low=1, integer=True)
        _check_number("alpha", self.alpha, low=0.0)
        _check_number("learning_rate_init", self.learning_rate_init, low=0.0, low_open=True)
        _check_number("max_iter", self.max_iter, low=1, integer=True)
        _check_number("n_iter_no_change", self.n_iter_no_change, low=1, integer=True)
        _check_number("tol", self.tol, low=0.0)
        _check_number("momentum", self.momentum, low=0.0, high=1.0)
        _check_number("validation_fraction", self.validation_fraction, low=0.0, high=1.0,
                      high_open=True)
        _check_number("beta_1", self.beta_1, low=0.0, high=1.0, high_open=True)
        _check_number("beta_2", self.beta_2, low=0.0, high=1.0, high_open=True)
        _check_number("epsilon", self.epsilon, low=0.0, low_open=True)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        _check_choice("dtype", self.dtype, ("float32", "float64"))
        _check_choice("backend", self.backend, ("numba", "numpy"))
        if self.random_state is not None and not isinstance(
                self.random_state, numbers.Integral | np.random.RandomState):
            raise ValueError("random_state: expected None, an int or a numpy RandomState, got "
                             f"{self.random_state!r}")

    def _validate_X(self, X, reset, dtype):
        X = validate_data(self, X, reset=reset, dtype=dtype, order="C", accept_sparse="csr")
        return _writeable(X)

    def _validate_X_y(self, X, y, reset):
        X, y = validate_data(self, X, y, reset=reset, dtype=np.dtype(self.dtype), order="C",
                             accept_sparse="csr")
        target = type_of_target(y, input_name="y")
        if target not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: {target!r}. ffnn.MLPClassifier needs binary or "
                             "multiclass labels (no multilabel, no continuous targets)")
        return _writeable(X), y

    def _optimizer(self) -> str:
        if self.solver == "sgd":
            if self.momentum == 0:
                return "gd"
            return "nesterov" if self.nesterovs_momentum else "momentum"
        return self.solver

    def _seed(self) -> int:
        if isinstance(self.random_state, numbers.Integral):
            check_random_state(self.random_state)  # scikit-learn's range check
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(_MAX_SEED))

    def _initialize(self, n_features: int, n_classes: int) -> None:
        """Fresh weights, optimizer state and fitted bookkeeping for a new fit."""
        sizes = self.hidden_layer_sizes
        self._hidden_size = int(sizes if isinstance(sizes, numbers.Integral)
                                else np.ravel(sizes)[0])
        self._activation = self.activation
        self._fit_seed = self._seed()
        self._config = self._train_config(batch_size=1)
        self._theta = initial_parameters(self._config, n_features, n_classes)
        self._m = np.zeros_like(self._theta)
        self._v = np.zeros_like(self._theta)
        self._step = 0
        self._epochs_seen = 0
        self.n_layers_ = 3
        self.n_outputs_ = n_classes
        self.out_activation_ = "softmax"
        self.t_ = 0
        self.loss_curve_ = []
        self._reset_stopping_state()

    def _reset_stopping_state(self) -> None:
        self._no_improvement_count = 0
        if self.early_stopping:
            self.best_loss_ = None
            self.validation_scores_ = []
            self.validation_loss_curve_ = []
            self.best_validation_score_ = -np.inf
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.validation_loss_curve_ = None
            self.best_validation_score_ = None

    def _train_config(self, batch_size: int) -> TrainConfig:
        """The ``TrainConfig`` equivalent of these parameters (``l2 = alpha / batch_size``)."""
        return TrainConfig(
            hidden_size=self._hidden_size, activation=ACTIVATIONS[self._activation],
            optimizer=self._optimizer(), learning_rate=float(self.learning_rate_init),
            batch_size=batch_size, max_epochs=int(self.max_iter),
            early_stopping=bool(self.early_stopping), patience=int(self.n_iter_no_change),
            min_delta=float(self.tol), restore_best=True, l2=float(self.alpha) / batch_size,
            momentum=float(self.momentum), beta1=float(self.beta_1), beta2=float(self.beta_2),
            eps=float(self.epsilon), seed=self._fit_seed, dtype=self.dtype,
            backend=self.backend)

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                          "to be clipped", stacklevel=4)
        return int(np.clip(self.batch_size, 1, n))

    def _train(self, X, y, incremental: bool) -> None:
        """Run the epochs of one ``fit`` (up to ``max_iter``) or ``partial_fit`` call (one)."""
        X_val = y_val = None
        if self.early_stopping != (self.best_loss_ is None):  # warm start after set_params
            self._reset_stopping_state()
        if self.early_stopping:
            X, y, X_val, y_val = self._validation_split(X, y)
        if self._theta.dtype != X.dtype:  # warm start after set_params(dtype=...)
            self._theta, self._m, self._v = (a.astype(X.dtype)
                                             for a in (self._theta, self._m, self._v))
        n = len(y)
        batch_size = self._batch_size(n)
        self._config = self._train_config(batch_size)
        backend = get_backend(self.backend)
        backend.warm_up(self.dtype)
        inputs = prepared(X, X.dtype, backend)
        y = labels(y)
        nets = networks(backend, [self._config], X.shape[1], len(self.classes_), [self._theta],
                        moments=[(self._m, self._v)], steps=[self._step])
        if self.early_stopping:
            val_inputs, y_val = prepared(X_val, X.dtype, backend, "sparse"), labels(y_val)
        # scikit-learn divides alpha by each minibatch's own size, so a smaller last minibatch
        # gets a larger l2: it runs as its own train_group call with its own hyper vector.
        n_full = (n // batch_size) * batch_size
        batches = n // batch_size + (n > n_full)
        hyper_full = hyper_vector(self._config)
        hyper_last = hyper_full.copy()
        hyper_last[codes.L2] = float(self.alpha) / max(n - n_full, 1)
        stopper = EarlyStopping(self.n_iter_no_change, float(self.tol))
        best_theta = None
        stopped = False
        self.n_iter_ = 0

        with limit_threads(None) as n_threads:
            for _ in range(1 if incremental else self.max_iter):
                self._epochs_seen += 1
                order = (epoch_order(self._fit_seed, self._epochs_seen, n) if self.shuffle
                         else np.arange(n, dtype=np.int64))
                loss = 0.0
                for part, hyper in ((order[:n_full], hyper_full), (order[n_full:], hyper_last)):
                    if len(part):
                        nets.hyper[0] = hyper
                        part_loss = backend.train_group(
                            inputs, y, part, min(batch_size, len(part)), nets, [0], n_threads)[0]
                        loss += part_loss * len(part) / n
                self._theta = nets.theta(0)
                loss += 0.5 * float(self.alpha) * self._squared_weights() * batches / n
                if not (math.isfinite(loss) and np.isfinite(self._theta).all()):
                    raise ValueError(
                        "Solver produced non-finite parameter weights (training diverged at "
                        f"epoch {self.n_iter_ + 1}). Lower learning_rate_init, or scale the "
                        "inputs (for example with StandardScaler).")
                self.n_iter_ += 1
                self.t_ += n
                self.loss_ = loss
                self.loss_curve_.append(loss)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {loss:.8f}", file=sys.stdout)
                if self.early_stopping:
                    (val_loss,), (val_accuracy,) = backend.evaluate_group(
                        val_inputs, y_val, nets, [0], n_threads)
                    val_loss, val_accuracy = float(val_loss), float(val_accuracy)
                    self.validation_loss_curve_.append(val_loss)
                    self.validation_scores_.append(val_accuracy)
                    if self.verbose:
                        print(f"Validation loss: {val_loss:.8f}, score: {val_accuracy:f}")
                    if stopper.update(self.n_iter_, val_loss):
                        best_theta = self._theta.copy()
                        self.best_validation_score_ = val_accuracy
                    stopped = stopper.should_stop
                else:
                    stopped = self._update_no_improvement_count(loss)
                if stopped:
                    if self.verbose:
                        print(self._stop_message())
                    break
        self._m, self._v = nets.moments(0)
        self._step = int(nets.steps[0])
        if best_theta is not None:
            self._theta[...] = best_theta
        if not stopped and not incremental:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)

    def _update_no_improvement_count(self, loss: float) -> bool:
        """scikit-learn's rule on the training loss; True once training should stop."""
        if loss > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        self.best_loss_ = min(self.best_loss_, loss)
        return self._no_improvement_count > self.n_iter_no_change

    def _stop_message(self) -> str:
        what = "Validation loss" if self.early_stopping else "Training loss"
        return (f"{what} did not improve more than tol={self.tol:f} for "
                f"{self.n_iter_no_change} consecutive epochs. Stopping.")

    def _squared_weights(self) -> float:
        W1, _, W2, _ = self._weights()
        return float(np.vdot(W1, W1)) + float(np.vdot(W2, W2))

    def _validation_split(self, X, y):
        """Stratified ``validation_fraction`` split, seeded like the rest of the fit."""
        train_idx, val_idx = train_test_split(
            np.arange(len(y)), test_size=self.validation_fraction,
            random_state=self._fit_seed, stratify=y)
        if len(val_idx) < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        train_idx.sort()
        val_idx.sort()
        return X[train_idx], y[train_idx], X[val_idx], y[val_idx]


def _writeable(X):
    """``X``, copied if it is a read-only array (numba types read-only arrays differently)."""
    return X.copy() if isinstance(X, np.ndarray) and not X.flags.writeable else X


def _check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")


def _check_number(name, value, *, low, high=math.inf, low_open=False, high_open=False,
                  integer=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{name}: expected {'an integer' if integer else 'a number'}, "
                         f"got {value!r}")
    check_range(name, value, low=low, high=high, low_open=low_open, high_open=high_open)
