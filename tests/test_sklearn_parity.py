"""In float64, ``ffnn.MLPClassifier`` with the same parameters and ``random_state`` is
scikit-learn's ``MLPClassifier``: the same ``coefs_``, ``loss_curve_`` and ``predict_proba``
within 1e-6 relative, the same ``n_iter_`` and ``validation_scores_``, for every solver and
schedule, with and without early stopping and sample weights, at depths 1 and 2, for binary,
multiclass and multilabel targets; after warm starts and ``partial_fit``; when training blows
up; and scikit-learn's own user-guide snippets give scikit-learn's outputs."""

import re
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_digits, load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as ScikitLearnMLP  # noqa: E402

from ffnn import MLPClassifier  # noqa: E402

RTOL = 1e-6
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _digits300():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def _iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


DATA = {"digits": _digits300(), "iris": _iris()}
X_DIGITS, Y_DIGITS = DATA["digits"]
TARGETS = {  # on the digits subset
    "multiclass": Y_DIGITS,
    "binary": np.where(Y_DIGITS > 4, "high", "low"),
    "multilabel": np.stack([Y_DIGITS % 2, Y_DIGITS > 4, Y_DIGITS == 3], axis=1).astype(int),
}
WEIGHTS = np.random.default_rng(0).uniform(0.2, 3.0, size=300)

SOLVERS = {
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "sgd-nesterov": dict(solver="sgd", learning_rate_init=0.1),
    "sgd-momentum": dict(solver="sgd", learning_rate_init=0.1, nesterovs_momentum=False),
    "sgd-plain": dict(solver="sgd", learning_rate_init=0.3, momentum=0.0),
    "sgd-invscaling": dict(solver="sgd", learning_rate="invscaling", learning_rate_init=2.0,
                           power_t=0.25),
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.1,
                         tol=1e-2, n_iter_no_change=2),
    "lbfgs": dict(solver="lbfgs", max_iter=60),
}


def fit_both(params, X, y, sample_weight=None):
    """Both estimators fitted with ``params`` (random_state 0, 40 epochs unless given)."""
    params = {"hidden_layer_sizes": (20,), "random_state": 0, "max_iter": 40, **params}
    fitted = []
    for cls in (MLPClassifier, ScikitLearnMLP):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted.append(cls(**params).fit(X, y, sample_weight=sample_weight))
    return fitted


def assert_same_model(ours, theirs, X):
    """scikit-learn's model, within ``RTOL``; its integer and list attributes exactly."""
    assert (ours.n_iter_, ours.t_, ours.n_layers_, ours.n_outputs_, ours.out_activation_) == (
        theirs.n_iter_, theirs.t_, theirs.n_layers_, theirs.n_outputs_, theirs.out_activation_)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                    strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=RTOL,
                               atol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    for name in ("loss_curve_", "best_loss_"):
        assert hasattr(ours, name) == hasattr(theirs, name)
        if getattr(theirs, name, None) is not None:
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=RTOL)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=RTOL, nan_ok=True)
    assert getattr(ours, "validation_scores_", None) == getattr(theirs, "validation_scores_", None)
    assert getattr(ours, "best_validation_score_", None) == getattr(
        theirs, "best_validation_score_", None)


# ----------------------------------------------------------------------------- the same model
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("early_stopping", [False, True], ids=["all-epochs", "early-stopping"])
@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("data", sorted(DATA))
def test_every_solver_gives_scikit_learns_model(data, solver, early_stopping, weighted):
    X, y = DATA[data]
    weights = WEIGHTS[:len(y)] if weighted else None
    ours, theirs = fit_both({**SOLVERS[solver], "early_stopping": early_stopping}, X, y, weights)
    assert_same_model(ours, theirs, X)


@pytest.mark.parametrize("early_stopping", [False, True], ids=["all-epochs", "early-stopping"])
@pytest.mark.parametrize("solver", ["adam", "sgd-nesterov", "sgd-adaptive", "lbfgs"])
@pytest.mark.parametrize("hidden", [(20,), (16, 9)], ids=["depth1", "depth2"])
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_binary_multiclass_and_multilabel_at_depths_1_and_2(target, hidden, solver,
                                                            early_stopping):
    ours, theirs = fit_both({**SOLVERS[solver], "hidden_layer_sizes": hidden,
                             "early_stopping": early_stopping}, X_DIGITS, TARGETS[target],
                            WEIGHTS)
    assert_same_model(ours, theirs, X_DIGITS)
    assert ours.n_outputs_ == {"binary": 1, "multiclass": 10, "multilabel": 3}[target]


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_every_scikit_learn_activation_gives_its_model(activation):
    ours, theirs = fit_both({"activation": activation, "hidden_layer_sizes": (12, 8)},
                            X_DIGITS, Y_DIGITS)
    assert_same_model(ours, theirs, X_DIGITS)


def test_early_stopping_stops_where_scikit_learn_stops():
    ours, theirs = fit_both({**SOLVERS["adam"], "early_stopping": True, "max_iter": 300},
                            X_DIGITS, Y_DIGITS)
    assert ours.n_iter_ < 300  # it did stop early, on the validation score
    assert_same_model(ours, theirs, X_DIGITS)


# ----------------------------------------------------------------------------- continuing
@pytest.mark.parametrize("solver", ["adam", "sgd-invscaling", "sgd-adaptive", "lbfgs"])
def test_a_second_fit_with_warm_start_gives_scikit_learns_model(solver):
    ours, theirs = fit_both({**SOLVERS[solver], "warm_start": True, "max_iter": 15},
                            X_DIGITS, Y_DIGITS)
    for clf in (ours, theirs):
        clf.fit(X_DIGITS[:200], Y_DIGITS[:200])
    assert_same_model(ours, theirs, X_DIGITS)


@pytest.mark.parametrize("solver", ["adam", "sgd-nesterov", "sgd-invscaling"])
def test_partial_fit_calls_give_scikit_learns_model_after_each(solver):
    params = {k: v for k, v in SOLVERS[solver].items()}
    ours, theirs = (cls(hidden_layer_sizes=(20,), random_state=0, **params)
                    for cls in (MLPClassifier, ScikitLearnMLP))
    for part in (slice(0, 100), slice(100, 300), slice(0, 300)):
        for clf in (ours, theirs):
            clf.partial_fit(X_DIGITS[part], Y_DIGITS[part], WEIGHTS[part],
                            classes=np.arange(10))
        assert_same_model(ours, theirs, X_DIGITS)


def test_partial_fit_is_unavailable_for_lbfgs_as_in_scikit_learn():
    for cls in (MLPClassifier, ScikitLearnMLP):
        clf = cls(solver="lbfgs")
        assert not hasattr(clf, "partial_fit")
        with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as error:
            clf.partial_fit(X_DIGITS, Y_DIGITS)
        assert str(error.value.__cause__) == ("partial_fit is only available for stochastic "
                                              "optimizers. lbfgs is not stochastic.")


# ----------------------------------------------------------------------------- divergence
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("early_stopping", [False, True], ids=["all-epochs", "early-stopping"])
def test_a_fit_that_blows_up_ends_as_scikit_learns_does(early_stopping):
    """Without early stopping both raise scikit-learn's error; with it both restore the best
    (here: the initial) weights and keep them."""
    params = dict(solver="sgd", learning_rate_init=1e10, momentum=0.0, max_iter=50,
                  early_stopping=early_stopping, hidden_layer_sizes=(10,), random_state=0)
    outcomes = []
    for cls in (MLPClassifier, ScikitLearnMLP):
        try:
            outcomes.append(cls(**params).fit(X_DIGITS * 100, Y_DIGITS))
        except ValueError as error:
            outcomes.append(str(error))
    ours, theirs = outcomes
    if early_stopping:
        assert_same_model(ours, theirs, X_DIGITS)
        assert not np.isfinite(ours.loss_curve_).all()
    else:
        assert ours == theirs == ("Solver produced non-finite parameter weights. The input "
                                  "data may contain large values and need to be preprocessed.")


# ----------------------------------------------------------------------------- errors
MISUSE = {
    "solver": (dict(solver="newton"), "fit"),
    "activation": (dict(activation="softplus"), "fit"),
    "alpha": (dict(alpha=-1.0), "fit"),
    "batch_size": (dict(batch_size=0), "fit"),
    "hidden_layer_sizes": (dict(hidden_layer_sizes=(10, 0)), "fit"),
    "n_iter_no_change": (dict(n_iter_no_change=0), "fit"),
    "validation set": (dict(early_stopping=True, validation_fraction=0.001), "fit"),
    "early stopping in partial_fit": (dict(early_stopping=True), "partial_fit"),
    "classes on the first partial_fit": (dict(), "partial_fit-no-classes"),
    "unseen class in partial_fit": (dict(), "partial_fit-unseen"),
    "warm start with other classes": (dict(warm_start=True), "warm_start-other-classes"),
    "features": (dict(max_iter=2), "predict-wrong-features"),
    "not fitted": (dict(), "predict-unfitted"),
}


def _misuse(cls, params, action):
    clf = cls(random_state=0, **params)
    X, y = X_DIGITS[:60], Y_DIGITS[:60]
    if action == "fit":
        clf.fit(X, y)
    elif action == "partial_fit":
        clf.partial_fit(X, y, classes=np.arange(10))
    elif action == "partial_fit-no-classes":
        clf.partial_fit(X, y)
    elif action == "partial_fit-unseen":
        clf.partial_fit(X, y % 5, classes=np.arange(5)).partial_fit(X, y)
    elif action == "warm_start-other-classes":
        clf.set_params(max_iter=2).fit(X, y % 5).fit(X, y)
    elif action == "predict-wrong-features":
        clf.fit(X, y).predict(X[:, :10])
    else:
        clf.predict(X)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", sorted(MISUSE))
def test_misuse_raises_scikit_learns_error_with_its_message(case):
    params, action = MISUSE[case]
    errors = []
    for cls in (MLPClassifier, ScikitLearnMLP):
        with pytest.raises(Exception) as error:  # noqa: PT011 - compared below
            _misuse(cls, params, action)
        errors.append(error.value)
    ours, theirs = errors
    assert type(ours) is type(theirs)
    # ffnn's parameter lists name its extra options (elu, leaky_relu); otherwise word for word
    assert _without_options(str(ours)) == _without_options(str(theirs))


def _without_options(message):
    return re.sub(r"a str among \{[^}]*\}", "a str among {...}", message)


def test_the_maximum_iterations_warning_is_scikit_learns():
    messages = []
    for cls in (MLPClassifier, ScikitLearnMLP):
        with pytest.warns(ConvergenceWarning) as caught:
            cls(max_iter=3, random_state=0).fit(X_DIGITS, Y_DIGITS)
        messages.append([str(w.message) for w in caught])
    assert messages[0] == messages[1]


# ----------------------------------------------------------------------------- the user guide
USER_GUIDE = """\
from sklearn.neural_network import MLPClassifier
X = [[0., 0.], [1., 1.]]
y = [0, 1]
clf = MLPClassifier(solver='lbfgs', alpha=1e-5,
                    hidden_layer_sizes=(5, 2), random_state=1)
clf.fit(X, y)
predicted = clf.predict([[2., 2.], [-1., -2.]])
shapes = [coef.shape for coef in clf.coefs_]
proba = clf.predict_proba([[2., 2.], [1., 2.]])
X = [[0., 0.], [1., 1.]]
y = [[0, 1], [1, 1]]
clf = MLPClassifier(solver='lbfgs', alpha=1e-5,
                    hidden_layer_sizes=(15,), random_state=1)
clf.fit(X, y)
multilabel = (clf.predict([[1., 2.]]), clf.predict([[0., 0.]]))
"""


def test_scikit_learns_user_guide_snippet_runs_unchanged_after_the_import_swap():
    """Section "Classification" of scikit-learn's "Neural network models (supervised)"."""
    swapped = USER_GUIDE.replace("from sklearn.neural_network import MLPClassifier",
                                 "from ffnn import MLPClassifier")
    ours, theirs = {}, {}
    exec(swapped, ours)  # noqa: S102 - the snippet under test
    exec(USER_GUIDE, theirs)  # noqa: S102
    assert type(ours["clf"]).__module__ == "ffnn.estimator"
    np.testing.assert_array_equal(ours["predicted"], [1, 0])
    assert ours["shapes"] == [(2, 5), (5, 2), (2, 1)]
    np.testing.assert_allclose(ours["proba"], theirs["proba"], rtol=RTOL)
    np.testing.assert_allclose(ours["proba"][:, 1], [0.9998, 0.9998], atol=1e-4)
    np.testing.assert_array_equal(ours["multilabel"][0], [[1, 1]])
    np.testing.assert_array_equal(ours["multilabel"][1], [[0, 1]])


# ----------------------------------------------------------------------------- lbfgs' gradient
@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_the_reference_loss_and_gradient_equal_scikit_learns(target, weighted):
    """What lbfgs minimises for ffnn's own activations (``_reference_backprop``) is what
    scikit-learn's ``_backprop`` computes for its activations, here at a fitted relu network
    of depth 2."""
    y, weights = TARGETS[target], WEIGHTS if weighted else None
    clf = MLPClassifier(hidden_layer_sizes=(12, 7), max_iter=5, random_state=0,
                        alpha=0.01).fit(X_DIGITS, y)
    Y = clf._label_binarizer.transform(y).astype(bool)
    grads = [([np.empty_like(W) for W in clf.coefs_], [np.empty_like(b) for b in clf.intercepts_])
             for _ in range(2)]
    ours = clf._reference_backprop(X_DIGITS, Y, weights, *grads[0])
    activations = [X_DIGITS] + [None] * (clf.n_layers_ - 1)
    theirs = ScikitLearnMLP._backprop(clf, X_DIGITS, Y, weights, activations,
                                      [None] * (clf.n_layers_ - 1), *grads[1])
    assert ours[0] == pytest.approx(theirs[0], rel=1e-12)
    for a, b in zip(ours[1] + ours[2], theirs[1] + theirs[2], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-15)
