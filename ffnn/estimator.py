"""``MLPClassifier``: scikit-learn's ``MLPClassifier``, trained by ffnn's engine.

The class *is* scikit-learn 1.9's ``sklearn.neural_network.MLPClassifier`` (a subclass), so
everything around the training itself is scikit-learn's own code: parameter validation and its
error messages, label binarising (binary problems get one logistic output unit, multilabel
indicator ``y`` logistic outputs, multiclass softmax), the ``RandomState`` stream (Glorot-uniform
weights *and* biases, then the early-stopping split, then one shuffle per epoch), warm start,
``partial_fit``'s availability, the stopping rules, ``loss_curve_``, ``best_loss_``,
``validation_scores_``, the divergence check and the fitted attributes (``coefs_`` and
``intercepts_`` are plain lists: assigning them, or an item, changes what ``predict`` uses).

ffnn replaces the arithmetic:

* ``_fit_stochastic``: scikit-learn's epoch loop, line for line, with each epoch's minibatches
  (forward, backward and the optimizer step) run by the compiled engine with scikit-learn's
  update conventions (``ffnn.kernels.codes``, ``hyper[SKLEARN]``: its Adam epsilon, its
  momentum velocity, ``alpha`` over each minibatch's weight sum, the penalised loss at the
  weights before each step); the learning-rate schedules are ``ffnn.schedules``;
* ``_backprop`` (lbfgs' full-batch loss and gradient): ``ffnn.kernels.reference``, in the
  dtype scikit-learn hands it (float64 for lbfgs);
* ``_forward_pass_fast`` (``predict``, ``predict_proba``, the validation score): the engine's
  forward pass, in the promotion of ``X``'s dtype and the weights'.

So in float64 the same parameters and ``random_state`` give scikit-learn's model, within
rounding. ffnn's own parameters are opt-in: ``dtype``, ``backend``, ``early_stopping_metric``,
and the activations ``leaky_relu`` and ``elu``; ``docs/estimator.md`` lists every difference.

This module imports scikit-learn; ``ffnn`` imports it only when ``ffnn.MLPClassifier`` is used.
"""

import warnings

import numpy as np

try:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as _ScikitLearnMLPClassifier
    from sklearn.neural_network._base import LOSS_FUNCTIONS
    from sklearn.utils import shuffle
    from sklearn.utils._param_validation import StrOptions
    from sklearn.utils.validation import validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "ffnn.MLPClassifier needs scikit-learn: pip install 'ffnn[sklearn]'") from e

from .inputs import prepared
from .kernels import BACKENDS, codes, get_backend, reference
from .kernels.layout import unpack
from .model import Network
from .schedules import LearningRate
from .threads import limit_threads

# scikit-learn's activation names (and ffnn's two extra ones) -> ffnn's.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "leaky_relu": "leaky_relu", "elu": "elu"}
_SCIKIT_LEARN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")


class MLPClassifier(_ScikitLearnMLPClassifier):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, trained by ffnn.

    Every parameter of ``sklearn.neural_network.MLPClassifier`` (same names, same defaults,
    same meaning), plus:

    dtype : {None, 'float32', 'float64'}, default=None
        Precision of training: None follows the input, as scikit-learn does (float32 input
        trains in float32, anything else in float64); 'float32' or 'float64' forces one.
    backend : {'numba', 'numpy'}, default='numba'
        Compute backend of the stochastic solvers and of prediction (``ffnn.kernels``).
    early_stopping_metric : {'score', 'loss'}, default='score'
        What ``early_stopping=True`` watches on the validation split: scikit-learn's accuracy
        ``'score'``, or ``'loss'``, its log-loss (stop after ``n_iter_no_change`` epochs
        without a decrease of more than ``tol``; best weights restored; the curve is kept in
        ``validation_loss_curve_``).

    ``activation`` also accepts ffnn's ``'leaky_relu'`` and ``'elu'``.
    """

    _parameter_constraints: dict = {
        **_ScikitLearnMLPClassifier._parameter_constraints,
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dtype": [None, StrOptions({"float32", "float64"})],
        "backend": [StrOptions(set(BACKENDS))],
        "early_stopping_metric": [StrOptions({"score", "loss"})],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, backend="numba", early_stopping_metric="score"):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun)
        self.dtype = dtype
        self.backend = backend
        self.early_stopping_metric = early_stopping_metric

    @property
    def network_(self) -> Network:
        """The fitted network as an ``ffnn.Network`` (``.save(path)`` writes it)."""
        theta = self._theta(np.result_type(*self.coefs_, *self.intercepts_))
        return Network(theta, self.coefs_[0].shape[0], self._hidden_sizes(),
                       self.coefs_[-1].shape[1], ACTIVATIONS[self.activation], self.backend,
                       output="softmax" if self.out_activation_ == "softmax" else "logistic")

    # ------------------------------------------------------------------ ffnn's arithmetic
    def _validate_input(self, X, y, incremental, reset):
        X, y = super()._validate_input(X, y, incremental, reset)
        if self.dtype is not None and X.dtype != self.dtype:
            X = X.astype(self.dtype)
        return X, y

    def _forward_pass_fast(self, X, check_input=True):
        """The output layer's activations for the rows of ``X``, by the engine, in the dtype
        ``X @ coefs_[0]`` would have (float32 only when both are float32)."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        dtype = np.result_type(X.dtype, *self.coefs_, *self.intercepts_)
        if dtype not in (np.float32, np.float64):
            dtype = np.dtype(np.float64)
        if isinstance(X, np.ndarray) and not X.flags.writeable:
            X = X.copy()  # numba types read-only arrays differently
        _, P = get_backend(self.backend).forward(
            X, self._theta(dtype), self._hidden_sizes(), self.coefs_[-1].shape[1],
            self._activation_code(), self._output_code())
        return P

    def _backprop(self, X, y, sample_weight, activations, deltas, coef_grads,
                  intercept_grads):
        """lbfgs' full-batch loss and gradient. With scikit-learn's activations, scikit-learn's
        own: ffnn's reference (``_reference_backprop``) agrees with it to 1e-16 at the first
        iterate, but L-BFGS's line searches amplify that, and on iris its fit reached another
        minimum after about 50 iterations, so only the same arithmetic gives the same model.
        With ffnn's ``leaky_relu`` and ``elu``: ``_reference_backprop``."""
        if self.activation in _SCIKIT_LEARN_ACTIVATIONS:
            return super()._backprop(X, y, sample_weight, activations, deltas, coef_grads,
                                     intercept_grads)
        return self._reference_backprop(X, y, sample_weight, coef_grads, intercept_grads)

    def _reference_backprop(self, X, y, sample_weight, coef_grads, intercept_grads):
        """``_backprop`` by ``ffnn.kernels.reference``: the weighted mean loss plus
        ``alpha/2 ||W||^2 / S`` (``S`` the weight sum) and its gradient."""
        n = X.shape[0]
        total = n if sample_weight is None else float(np.sum(sample_weight))
        theta = self._theta(np.result_type(X.dtype, *self.coefs_))
        grad = np.empty_like(theta)
        loss = reference.loss_and_gradient(
            X, self._engine_labels(y), theta, grad, self._hidden_sizes(), self.n_outputs_,
            self._activation_code(), self.alpha / n, sample_weight, self._output_code(),
            clipped=True)
        loss += 0.5 * self.alpha * sum(float(np.vdot(W, W)) for W in self.coefs_) / total
        grads = unpack(grad, X.shape[1], self._hidden_sizes(), self.n_outputs_)
        for i, (gW, gb) in enumerate(zip(grads[::2], grads[1::2], strict=True)):
            coef_grads[i], intercept_grads[i] = gW, gb
        return loss, coef_grads, intercept_grads

    def _fit_stochastic(self, X, y, sample_weight, activations, deltas, coef_grads,
                        intercept_grads, layer_units, incremental):
        """scikit-learn's ``_fit_stochastic``, statement for statement, each epoch's minibatches
        run by the engine (``_EngineRun``)."""
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _OptimizerState(self)

        # early_stopping in partial_fit doesn't make sense
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # don't stratify in multilabel classification
            stratify = y if self.n_outputs_ == 1 else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
                sample_weight_train = sample_weight_val = None
            else:
                (X_train, X_val, y_train, y_val, sample_weight_train,
                 sample_weight_val) = train_test_split(
                    X, y, sample_weight, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset.")
            y_val = self._label_binarizer.inverse_transform(y_val)
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = y_val = sample_weight_val = None

        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=int)

        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than "
                              "sample size. It is going to be clipped", stacklevel=2)
            batch_size = np.clip(self.batch_size, 1, n_samples)

        rate = self._optimizer.rate
        with _EngineRun(self, X_train, y_train, sample_weight_train) as run:
            try:
                self.n_iter_ = 0
                for _ in range(self.max_iter):
                    if self.shuffle:
                        sample_idx = shuffle(sample_idx, random_state=self._random_state)

                    self.loss_ = run.epoch(sample_idx, int(batch_size), rate.rate)
                    self.n_iter_ += 1
                    self.t_ += n_samples
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")

                    self._update_no_improvement_count(early_stopping, X_val, y_val,
                                                      sample_weight_val)
                    rate.epoch_ended(self.t_)

                    if self._no_improvement_count > self.n_iter_no_change:
                        stop = rate.patience_ran_out()
                        if self.verbose:
                            print(f"{self._watched(early_stopping)} did not improve more than "
                                  f"tol={self.tol:f} for {self.n_iter_no_change} consecutive "
                                  f"epochs.{_stopping_note(rate, stop)}")
                        if stop:
                            break
                        self._no_improvement_count = 0

                    if incremental:
                        break

                    if self.n_iter_ == self.max_iter:
                        warnings.warn(
                            f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                            "reached and the optimization hasn't converged yet.",
                            ConvergenceWarning, stacklevel=2)
            except KeyboardInterrupt:
                warnings.warn("Training interrupted by user.", stacklevel=2)

        if early_stopping:
            # restore best weights
            self.coefs_ = self._best_coefs
            self.intercepts_ = self._best_intercepts

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        """scikit-learn's rule; with ``early_stopping_metric='loss'`` the validation log-loss
        in place of the validation score."""
        if not (early_stopping and self.early_stopping_metric == "loss"):
            return super()._update_no_improvement_count(early_stopping, X, y, sample_weight)
        score = self._score(X, y, sample_weight=sample_weight)
        P = self._forward_pass_fast(X, check_input=False)
        name = "binary_log_loss" if self.out_activation_ == "logistic" else "log_loss"
        loss = LOSS_FUNCTIONS[name](self._label_binarizer.transform(y), P, sample_weight)
        self.validation_scores_.append(score)
        if not hasattr(self, "validation_loss_curve_") or not self.validation_loss_curve_:
            self.validation_loss_curve_, self._best_validation_loss = [], np.inf
        self.validation_loss_curve_.append(loss)
        if self.verbose:
            print(f"Validation loss: {loss:f}, score: {score:f}")
        if loss > self._best_validation_loss - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if loss < self._best_validation_loss:
            self._best_validation_loss, self.best_validation_score_ = loss, score
            self._best_coefs = [c.copy() for c in self.coefs_]
            self._best_intercepts = [i.copy() for i in self.intercepts_]

    def _watched(self, early_stopping) -> str:
        if not early_stopping:
            return "Training loss"
        return "Validation loss" if self.early_stopping_metric == "loss" else "Validation score"

    # ------------------------------------------------------------------ conversions
    def _hidden_sizes(self) -> tuple[int, ...]:
        return tuple(int(W.shape[1]) for W in self.coefs_[:-1])

    def _activation_code(self) -> int:
        return codes.activation_code(ACTIVATIONS[self.activation])

    def _output_code(self) -> int:
        return codes.SOFTMAX if self.out_activation_ == "softmax" else codes.LOGISTIC

    def _theta(self, dtype) -> np.ndarray:
        """``coefs_`` and ``intercepts_`` as one flat ffnn parameter vector
        (``ffnn.kernels.layout``)."""
        return np.concatenate([a.ravel() for pair in zip(self.coefs_, self.intercepts_,
                                                          strict=True) for a in pair]
                              ).astype(dtype, copy=False)

    def _set_theta(self, theta) -> None:
        """``coefs_`` and ``intercepts_`` from a flat parameter vector (new arrays)."""
        params = unpack(theta, self.coefs_[0].shape[0], self._hidden_sizes(), self.n_outputs_)
        self.coefs_, self.intercepts_ = list(params[::2]), list(params[1::2])

    def _engine_labels(self, y) -> np.ndarray:
        """The binarised ``y`` (n x n_outputs) as the kernels' int64 labels: the class index
        (softmax), or the bit mask of the positive outputs (logistic)."""
        if self.out_activation_ == "softmax":
            return np.argmax(y, axis=1).astype(np.int64)
        if y.shape[1] > codes.MAX_LOGISTIC_OUTPUTS:
            raise ValueError(f"y: ffnn.MLPClassifier trains at most "
                             f"{codes.MAX_LOGISTIC_OUTPUTS} labels at once, got {y.shape[1]}")
        return (y.astype(np.int64) << np.arange(y.shape[1], dtype=np.int64)).sum(axis=1)


class _OptimizerState:
    """What a ``partial_fit`` carries to the next one and a ``fit`` starts afresh: the
    moments, the step count and the learning rate (``ffnn.schedules``; Adam's rate is
    constant, as in scikit-learn)."""

    def __init__(self, estimator):
        schedule = estimator.learning_rate if estimator.solver == "sgd" else "constant"
        self.rate = LearningRate(schedule, estimator.learning_rate_init, estimator.power_t)
        self.moments = None
        self.step = 0


class _EngineRun:
    """The engine's ``Networks`` (a group of one) for the epochs of one ``_fit_stochastic``
    call, built from the estimator's current ``coefs_``/``intercepts_``; as a context, every
    core for numba and BLAS (``limit_threads``, restored on exit, when the optimizer state is
    kept for the next ``partial_fit``)."""

    def __enter__(self):
        self._limit = limit_threads(None)
        self.threads = self._limit.__enter__()
        return self

    def __exit__(self, *exc):
        self._limit.__exit__(*exc)
        state = self.estimator._optimizer
        state.moments = [self.nets.moments(0)]
        state.step = int(self.nets.steps[0])

    def __init__(self, estimator, X, y, sample_weight):
        self.estimator, state = estimator, estimator._optimizer
        self.backend = get_backend(estimator.backend)
        dtype = X.dtype
        self.inputs = prepared(X, dtype, self.backend)
        self.backend.warm_up(dtype, getattr(self.inputs, "path", None))
        self.labels = estimator._engine_labels(y)
        self.weights = (None if sample_weight is None
                        else np.ascontiguousarray(sample_weight, dtype=dtype))
        hyper = np.zeros(codes.N_HYPER)
        hyper[[codes.LR, codes.MOMENTUM_COEF, codes.BETA1, codes.BETA2, codes.EPS, codes.L2,
               codes.SKLEARN]] = (estimator.learning_rate_init, estimator.momentum,
                                  estimator.beta_1, estimator.beta_2, estimator.epsilon,
                                  estimator.alpha, 1.0)
        theta = estimator._theta(dtype)
        self.nets = self.backend.Networks(
            X.shape[1], estimator.n_outputs_, [estimator._hidden_sizes()],
            [estimator._activation_code()],
            [_optimizer_code(estimator)], [hyper],
            [theta], dtype, moments=state.moments, steps=[state.step],
            outputs=[estimator._output_code()])

    def epoch(self, order, batch_size: int, rate: float) -> float:
        """One epoch over ``order`` at learning rate ``rate``; the estimator's ``coefs_`` and
        ``intercepts_`` become the new weights; returns scikit-learn's epoch loss."""
        self.nets.hyper[0, codes.LR] = rate
        (loss,) = self.backend.train_group(
            self.inputs, self.labels, np.ascontiguousarray(order, np.int64), batch_size,
            self.nets, [0], self.threads, self.weights)
        self.estimator._set_theta(self.nets.theta(0))
        return float(loss)


def _optimizer_code(estimator) -> int:
    """The engine's optimizer for scikit-learn's solver (sgd's velocity is momentum's buffer,
    with scikit-learn's conventions; momentum 0 is plain gradient descent either way)."""
    if estimator.solver == "adam":
        return codes.ADAM
    return codes.NESTEROV if estimator.nesterovs_momentum else codes.MOMENTUM


def _stopping_note(rate: LearningRate, stop: bool) -> str:
    """scikit-learn's verbose ending of the no-improvement message."""
    if rate.schedule != "adaptive":
        return " Stopping."
    if stop:
        return " Learning rate too small. Stopping."
    return f" Setting learning rate to {rate.rate:f}"
