"""fastmlp.MLPRegressor against scikit-learn's MLPRegressor: API, and the same numbers.

Every equivalence test fits scikit-learn's estimator and fastmlp's with the same arguments,
data and random_state, checks that both emit the same warnings, and compares what they
learned. Tolerances (float64), from what was measured: sgd and adam rtol 1e-10, atol 1e-12
(measured: relative 5e-13 at most, absolute 4e-15; the two differ only in the order of
floating-point operations), lbfgs rtol 1e-8, atol 1e-10 (measured: relative 8e-13, absolute
3e-14; scipy's line search may amplify those rounding differences over longer runs). In
float32 "the same numbers" means within scikit-learn's own spread (see the last test).
"""

import copy
import io
import pickle
import re
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_diabetes, make_regression
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.metrics import r2_score
from sklearn.neural_network import MLPRegressor as SkMLP
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastmlp
import fastmlp.sklearn
from fastmlp.sklearn import MLPRegressor

ignore_convergence = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: (rtol, atol) per solver, float64
TOL = {"sgd": (1e-10, 1e-12), "adam": (1e-10, 1e-12), "lbfgs": (1e-8, 1e-10)}

# -- data (small, so every test is quick) -------------------------------------------------------
_diabetes = load_diabetes()
X_DIAB = StandardScaler().fit_transform(_diabetes.data)  # 442 rows, 10 features
Y_DIAB = _diabetes.target / 100.0  # in [0.25, 3.46]: fits either loss
Y_DIAB2 = np.c_[Y_DIAB, np.sqrt(Y_DIAB)]  # two non-negative targets
X_MR, _Y_MR = make_regression(n_samples=150, n_features=6, n_targets=3, noise=0.5,
                              random_state=0)
Y_MR = _Y_MR / _Y_MR.std(axis=0)  # three targets of either sign
Y_MR_COUNTS = np.round(np.abs(Y_MR) * 2)  # three targets of counts, zeros among them

TARGETS = {
    "1d": (X_DIAB, Y_DIAB),
    "2 targets": (X_DIAB, Y_DIAB2),
    "3 targets": (X_MR, Y_MR),
}


def _data(target, loss):
    X, y = TARGETS[target]
    if loss == "poisson" and target == "3 targets":
        y = Y_MR_COUNTS
    return X, y


def call_both(ref, got, method, *args, **kwargs):
    """Call ``method`` on both estimators; they must emit the same warnings."""
    seen = []
    for est in (ref, got):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            getattr(est, method)(*args, **kwargs)
        seen.append([(w.category, str(w.message)) for w in caught])
    assert seen[1] == seen[0]
    return seen[0]


def both(X, y, fit=True, sample_weight=None, **params):
    """scikit-learn's and fastmlp's estimators with the same parameters, optionally fitted."""
    ref, got = SkMLP(**params), MLPRegressor(**params)
    if fit:
        kw = {} if sample_weight is None else {"sample_weight": sample_weight}
        call_both(ref, got, "fit", X, y, **kw)
    return ref, got


def assert_same_model(ref, got, X, rtol=None, atol=None):
    """Everything scikit-learn learned, fastmlp learned: weights, curves, counters, outputs."""
    default_rtol, default_atol = TOL[ref.solver]
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    assert got.n_iter_ == ref.n_iter_
    assert got.t_ == ref.t_
    assert got.n_layers_ == ref.n_layers_
    assert got.n_outputs_ == ref.n_outputs_
    assert got.n_features_in_ == ref.n_features_in_
    assert got.out_activation_ == ref.out_activation_
    assert len(got.coefs_) == len(ref.coefs_) and len(got.intercepts_) == len(ref.intercepts_)
    for a, b in zip(ref.coefs_ + ref.intercepts_, got.coefs_ + got.intercepts_, strict=True):
        assert type(b) is np.ndarray
        assert b.dtype == a.dtype and b.shape == a.shape
        assert_allclose(b, a, rtol=rtol, atol=atol)
    assert_allclose(got.loss_, ref.loss_, rtol=rtol, atol=atol)
    for name in ("loss_curve_", "validation_scores_", "best_loss_", "best_validation_score_"):
        assert hasattr(got, name) == hasattr(ref, name), name
        if hasattr(ref, name):
            if getattr(ref, name) is None:
                assert getattr(got, name) is None, name
            else:
                assert_allclose(getattr(got, name), getattr(ref, name), rtol=rtol, atol=atol,
                                err_msg=name)
    p_ref, p_got = ref.predict(X), got.predict(X)
    assert p_got.dtype == p_ref.dtype and p_got.shape == p_ref.shape
    assert_allclose(p_got, p_ref, rtol=rtol, atol=atol)


# -- scikit-learn's estimator checks --------------------------------------------------------------
def _check_name(check):
    return getattr(check, "__name__", None) or check.func.__name__


@ignore_convergence  # scikit-learn's test_common ignores it for every estimator check
@parametrize_with_checks([MLPRegressor(max_iter=100)])
def test_sklearn_estimator_checks(estimator, check):
    if _check_name(check) == "check_sample_weight_equivalence_on_dense_data":
        # as scikit-learn's own suite (PER_ESTIMATOR_CHECK_PARAMS[MLPRegressor]); on a clone:
        # every check gets the same instance, and the later ones must see max_iter=100 alone
        estimator = clone(estimator).set_params(solver="sgd", tol=1e-2, random_state=42)
    check(estimator)


# -- the same numbers as scikit-learn -------------------------------------------------------------
@pytest.mark.parametrize("learning_rate", ["constant", "invscaling", "adaptive"])
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_schedules_and_momentum(learning_rate, momentum, nesterov):
    X, y = TARGETS["1d"]
    # 442 rows in batches of 50: the last batch of each epoch has 42
    params = dict(hidden_layer_sizes=(7,), solver="sgd", learning_rate=learning_rate,
                  learning_rate_init=0.02, momentum=momentum, nesterovs_momentum=nesterov,
                  batch_size=50, max_iter=6, random_state=1)
    if learning_rate == "adaptive":
        # every epoch counts as no improvement: the rate is cut by 5 every other epoch,
        # down to <= 1e-6, where training stops
        params.update(tol=10.0, n_iter_no_change=1, max_iter=40)
    ref, got = both(X, y, **params)
    if learning_rate == "adaptive":
        assert ref.n_iter_ < 40
        assert got._optimizer.learning_rate == ref._optimizer.learning_rate
    assert_same_model(ref, got, X)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_activations_solvers_and_losses(solver, activation, loss):
    X, y = TARGETS["1d"]
    ref, got = both(X, y, loss=loss, hidden_layer_sizes=(6, 5), activation=activation,
                    solver=solver, alpha=1e-3, learning_rate_init=0.01, batch_size=64,
                    max_iter=5, random_state=2)
    assert got.out_activation_ == ("exp" if loss == "poisson" else "identity")
    assert_same_model(ref, got, X)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_targets_and_alpha(solver, alpha, target, loss):
    X, y = _data(target, loss)
    ref, got = both(X, y, loss=loss, hidden_layer_sizes=(5,), solver=solver, alpha=alpha,
                    learning_rate_init=0.01, batch_size=40, max_iter=5, random_state=3)
    assert got.n_outputs_ == (1 if y.ndim == 1 else y.shape[1])
    assert_same_model(ref, got, X)


@pytest.mark.parametrize("batch_size", [1, 37, "auto", 500])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batch_sizes_and_shuffle(batch_size, shuffle):
    X, y = TARGETS["2 targets"]
    # 'auto' is 200 (a last batch of 42); 500 > 442 rows is clipped, with the same warning
    ref, got = both(X, y, hidden_layer_sizes=(4,), solver="sgd", shuffle=shuffle,
                    batch_size=batch_size, learning_rate_init=0.005, max_iter=3,
                    random_state=4)
    assert_same_model(ref, got, X)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_stops_at_the_same_iteration_on_tol(solver):
    X, y = TARGETS["1d"]
    ref, got = both(X, y, hidden_layer_sizes=(8,), solver=solver, learning_rate_init=0.01,
                    tol=1e-3, n_iter_no_change=3, max_iter=300, random_state=5)
    assert ref.n_iter_ < 300  # stopped by the tol rule, not max_iter
    assert_same_model(ref, got, X)


def test_lbfgs_converges_at_the_same_iteration():
    X, y = TARGETS["3 targets"]
    ref, got = both(X, y, hidden_layer_sizes=(3,), solver="lbfgs", activation="tanh",
                    alpha=1.0, tol=1e-4, max_iter=500, random_state=5)
    assert ref.n_iter_ < 500  # converged (gtol), no warning
    assert_same_model(ref, got, X)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("target", ["1d", "2 targets"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_early_stopping(solver, target, loss):
    X, y = _data(target, loss)
    ref, got = both(X, y, loss=loss, hidden_layer_sizes=(6,), solver=solver,
                    early_stopping=True, validation_fraction=0.2, n_iter_no_change=2,
                    learning_rate_init=0.05, batch_size=50, max_iter=40, random_state=6)
    assert got.best_loss_ is None and got.best_validation_score_ is not None
    # the best validation score (R^2) is not the last one: the best weights were restored
    assert ref.n_iter_ < 40
    assert np.argmax(ref.validation_scores_) < ref.n_iter_ - 1
    assert got.best_validation_score_ == max(got.validation_scores_)
    assert_same_model(ref, got, X)


def test_early_stopping_with_sample_weight():
    X, y = TARGETS["2 targets"]
    sw = np.random.RandomState(0).uniform(0.1, 2.0, X.shape[0])
    ref, got = both(X, y, sample_weight=sw, hidden_layer_sizes=(6,), early_stopping=True,
                    n_iter_no_change=2, learning_rate_init=0.05, max_iter=30, random_state=6)
    assert_same_model(ref, got, X)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_warm_start(solver):
    X, y = TARGETS["3 targets"]
    ref, got = both(X, y, fit=False, hidden_layer_sizes=(5,), solver=solver, warm_start=True,
                    learning_rate_init=0.01, max_iter=3, random_state=8)
    call_both(ref, got, "fit", X[::2], y[::2])
    call_both(ref, got, "set_params", max_iter=2)
    call_both(ref, got, "fit", X, y)
    assert_same_model(ref, got, X)


def test_warm_start_with_early_stopping():
    # scikit-learn's restored best weights stay aliased with the live ones across warm starts
    X, y = TARGETS["1d"]
    ref, got = both(X, y, fit=False, hidden_layer_sizes=(5,), warm_start=True,
                    early_stopping=True, n_iter_no_change=1, learning_rate_init=0.05,
                    max_iter=8, random_state=9)
    for _ in range(2):
        call_both(ref, got, "fit", X, y)
        assert_same_model(ref, got, X)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_partial_fit_over_chunks(solver, loss):
    X, y = _data("2 targets", loss)
    ref, got = both(X, y, fit=False, loss=loss, hidden_layer_sizes=(8,), solver=solver,
                    learning_rate_init=0.01, max_iter=4, random_state=7)
    sw = np.linspace(0.5, 1.5, X.shape[0])
    # chunks of different sizes: batch_size='auto' changes, the optimizer state carries on;
    # one chunk weighted. With lbfgs each call is a whole L-BFGS fit, as in scikit-learn.
    for start, stop, weighted in [(0, 70, False), (70, 442, False), (0, 250, True),
                                  (250, 442, False)]:
        kw = {"sample_weight": sw[start:stop]} if weighted else {}
        call_both(ref, got, "partial_fit", X[start:stop], y[start:stop], **kw)
        assert_same_model(ref, got, X)
    if solver == "adam":
        assert got._optimizer.step[0] == ref._optimizer.t


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_after_fit(solver):
    X, y = TARGETS["1d"]
    ref, got = both(X, y, hidden_layer_sizes=(5,), solver=solver, learning_rate_init=0.01,
                    max_iter=3, random_state=11)
    for _ in range(2):
        call_both(ref, got, "partial_fit", X[:300], y[:300])
    assert_same_model(ref, got, X)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sample_weight(solver, loss):
    X, y = _data("3 targets", loss)
    sw = np.random.RandomState(0).uniform(0.1, 2.0, X.shape[0])
    sw[::7] = 0.0
    ref, got = both(X, y, sample_weight=sw, loss=loss, hidden_layer_sizes=(5,), solver=solver,
                    alpha=0.1, learning_rate_init=0.01, batch_size=32, max_iter=4,
                    random_state=10)
    assert_same_model(ref, got, X)


# -- sparse input ---------------------------------------------------------------------------------
X_SPARSE = np.where(np.abs(X_DIAB) < 1.0, 0.0, X_DIAB)  # about 2/3 of the entries are 0


@ignore_convergence  # the dense fit's (both fits warn alike is checked by both())
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("to_sparse", [sp.csr_matrix, sp.csc_matrix], ids=["csr", "csc"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sparse_fit_is_dense_fit(solver, to_sparse, weighted):
    X, y = X_SPARSE, Y_DIAB2
    Xs = to_sparse(X)
    assert Xs.nnz < 0.5 * X.size
    sw = np.linspace(0.5, 1.5, X.shape[0]) if weighted else None
    params = dict(hidden_layer_sizes=(6,), solver=solver, learning_rate_init=0.01,
                  batch_size=50, max_iter=4, random_state=11)
    ref, got = both(Xs, y, sample_weight=sw, **params)
    assert_same_model(ref, got, Xs)
    dense = MLPRegressor(**params).fit(X, y, sample_weight=sw)
    for a, b in zip(dense.coefs_ + dense.intercepts_, got.coefs_ + got.intercepts_, strict=True):
        assert_array_equal(b, a)  # the same kernel on the same batches: bit for bit
    assert got.loss_ == pytest.approx(dense.loss_, rel=1e-13)
    if solver != "lbfgs":
        assert got.loss_curve_ == pytest.approx(dense.loss_curve_, rel=1e-13)
    for Xp in (sp.csr_matrix(X), sp.csc_matrix(X)):
        assert_array_equal(got.predict(Xp), got.predict(X))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_sparse_early_stopping(solver):
    Xs, y = sp.csr_matrix(X_SPARSE), Y_DIAB
    ref, got = both(Xs, y, hidden_layer_sizes=(6,), solver=solver, early_stopping=True,
                    n_iter_no_change=2, learning_rate_init=0.05, max_iter=20, random_state=12)
    assert_same_model(ref, got, Xs)


# -- parameters -----------------------------------------------------------------------------------
def _sorted_sets(message):
    """The message with every ``{...}`` listed in sorted order (scikit-learn lists a set in
    hash order, which changes from one Python process to the next)."""
    return re.sub(r"\{([^{}]*)\}",
                  lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", message)


@pytest.mark.parametrize("params", [
    dict(loss="absolute_error"), dict(loss=None), dict(solver="newton"), dict(alpha=-1.0),
    dict(batch_size=0), dict(learning_rate="optimal"), dict(learning_rate_init=0.0),
    dict(momentum=1.5), dict(beta_1=1.0), dict(beta_2=-0.1), dict(epsilon=0.0),
    dict(n_iter_no_change=0), dict(validation_fraction=1.0), dict(max_iter=0),
    dict(max_fun=0), dict(activation="softmax"), dict(shuffle="yes"), dict(tol=-1.0),
    dict(hidden_layer_sizes=(3, 0)),
], ids=repr)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_parameter_validation_matches_sklearn(params, method):
    X, y = TARGETS["1d"]
    errors = []
    for cls in (SkMLP, MLPRegressor):
        with pytest.raises((ValueError, TypeError)) as info:
            getattr(cls(**params), method)(X, y)
        errors.append(info.value)
    ref, got = errors
    assert type(got).__name__ == type(ref).__name__
    assert isinstance(got, ValueError) == isinstance(ref, ValueError)
    assert isinstance(got, TypeError) == isinstance(ref, TypeError)
    assert _sorted_sets(str(got)) == _sorted_sets(str(ref))


def test_defaults_and_signature_match_sklearn():
    assert MLPRegressor().get_params() == SkMLP().get_params()
    assert fastmlp.MLPRegressor is fastmlp.sklearn.MLPRegressor is MLPRegressor
    with pytest.raises(TypeError):
        MLPRegressor("squared_error", (5,), "relu", "adam")  # keyword-only after three
    # as scikit-learn's, partial_fit is offered for every solver
    for solver in ("sgd", "adam", "lbfgs"):
        assert hasattr(MLPRegressor(solver=solver), "partial_fit")
        assert hasattr(SkMLP(solver=solver), "partial_fit")
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(*TARGETS["1d"])


# -- bad input: an error, and the fitted model as it was ------------------------------------------
def _snapshot(est):
    names = ("coefs_", "intercepts_", "loss_curve_", "loss_", "best_loss_", "n_iter_", "t_",
             "n_outputs_", "n_features_in_", "n_layers_", "out_activation_")
    state = {}
    for name in names:
        value = getattr(est, name)
        if isinstance(value, list):
            value = [np.array(v, copy=True) for v in value]
        state[name] = value
    state["_optimizer"] = pickle.dumps(est._optimizer)
    return state


def _assert_same_snapshot(before, after):
    assert before.keys() == after.keys()
    for name, value in before.items():
        if isinstance(value, list):
            assert len(after[name]) == len(value), name
            for a, b in zip(value, after[name], strict=True):
                assert_array_equal(b, a, err_msg=name)
        else:
            assert after[name] == value, name


_N = X_DIAB.shape[0]
_NAN_Y = np.where(np.arange(_N) == 3, np.nan, Y_DIAB)
_INF_Y = np.where(np.arange(_N) == 3, np.inf, Y_DIAB)

#: name -> (loss, method, X, y, the error's message, whether scikit-learn raises the same);
#: the model was fitted on Y_DIAB (one output), or Y_DIAB2 where the name says so
BAD_INPUT = {
    "nan y, fit": ("squared_error", "fit", X_DIAB, _NAN_Y, "Input y contains NaN", True),
    "nan y, partial_fit": ("squared_error", "partial_fit", X_DIAB, _NAN_Y,
                           "Input y contains NaN", True),
    "inf y, partial_fit": ("squared_error", "partial_fit", X_DIAB, _INF_Y,
                           "Input y contains infinity", True),
    "inf y, fit": ("poisson", "fit", X_DIAB, _INF_Y, "Input y contains infinity", True),
    "negative y, poisson, fit": ("poisson", "fit", X_DIAB, Y_DIAB - 1.0,
                                 "loss='poisson' needs non-negative targets", False),
    "negative y, poisson, partial_fit": ("poisson", "partial_fit", X_DIAB, Y_DIAB - 1.0,
                                         "loss='poisson' needs non-negative targets", False),
    "negative y list, poisson, partial_fit": (
        "poisson", "partial_fit", X_DIAB, list(Y_DIAB - 1.0),
        "loss='poisson' needs non-negative targets", False),
    "2 outputs, partial_fit": ("squared_error", "partial_fit", X_DIAB, Y_DIAB2,
                               r"y has 2 output\(s\) per sample, but MLPRegressor was fitted "
                               r"with 1", False),
    "3 outputs, warm fit": ("squared_error", "fit", X_DIAB, np.c_[Y_DIAB2, Y_DIAB],
                            r"y has 3 output\(s\)", False),
    # scikit-learn broadcasts this one and trains on it
    "fitted on 2 targets, 1 output, partial_fit": (
        "squared_error", "partial_fit", X_DIAB, Y_DIAB,
        r"y has 1 output\(s\) per sample, but MLPRegressor was fitted with 2", False),
    "fitted on 2 targets, a column, partial_fit": (
        "poisson", "partial_fit", X_DIAB, Y_DIAB[:, None], r"y has 1 output\(s\)", False),
    "string y, fit": ("squared_error", "fit", X_DIAB, Y_DIAB.astype(str),
                      "MLPRegressor needs numeric targets", False),
    "object string y, partial_fit": ("squared_error", "partial_fit", X_DIAB,
                                     Y_DIAB.astype(str).astype(object),
                                     "MLPRegressor needs numeric targets", False),
    "features, partial_fit": ("squared_error", "partial_fit", X_DIAB[:, :5], Y_DIAB,
                              "X has 5 features, but MLPRegressor is expecting 10 features",
                              True),
    "features, warm fit": ("squared_error", "fit", X_DIAB[:, :5], Y_DIAB,
                           "X has 5 features, but MLPRegressor is expecting 10 features",
                           True),
    "rows, partial_fit": ("squared_error", "partial_fit", X_DIAB, Y_DIAB[:-1],
                          "inconsistent numbers of samples", True),
}


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_leaves_the_model_unchanged(name):
    loss, method, X_bad, y_bad, message, sklearn_raises = BAD_INPUT[name]
    X, y = TARGETS["2 targets" if "fitted on 2 targets" in name else "1d"]
    params = dict(loss=loss, hidden_layer_sizes=(5,), warm_start=True, learning_rate_init=0.01,
                  max_iter=3, random_state=13)
    ref, got = both(X, y, **params)
    call_both(ref, got, "partial_fit", X, y)  # an optimizer state worth keeping
    before = _snapshot(got)
    with pytest.raises(ValueError, match=message) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataConversionWarning)  # a single column, raveled
        getattr(got, method)(X_bad, y_bad)
    if sklearn_raises:  # then with scikit-learn's message
        with pytest.raises(ValueError) as sk_info:
            getattr(copy.deepcopy(ref), method)(X_bad, y_bad)
        assert str(info.value) == str(sk_info.value)
    _assert_same_snapshot(before, _snapshot(got))
    # and training goes on as scikit-learn's, which never saw the bad call
    call_both(ref, got, "partial_fit", X, y)
    call_both(ref, got, "fit", X, y)
    assert_same_model(ref, got, X)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_warm_start_cannot_change_the_loss(solver):
    # scikit-learn keeps the old output layer and trains it on the new cost (a NaN loss with
    # adam); fastmlp says so and keeps the model
    X, y = TARGETS["1d"]
    got = MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0, warm_start=True,
                       solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        got.fit(X, y)
    before = _snapshot(got) if solver == "adam" else [c.copy() for c in got.coefs_]
    with pytest.raises(ValueError, match="output activation would change from 'identity' to "
                                         "'exp'"):
        got.set_params(loss="poisson").fit(X, y)
    if solver == "adam":
        _assert_same_snapshot(before, _snapshot(got))
    else:
        for a, b in zip(before, got.coefs_, strict=True):
            assert_array_equal(b, a)
    assert got.out_activation_ == "identity"


def test_different_features_raise_sklearns_error():
    X, y = TARGETS["1d"]
    ref, got = both(X, y, hidden_layer_sizes=(3,), warm_start=True, max_iter=2, random_state=0)
    for method in ("fit", "partial_fit", "predict", "score"):
        args = (X[:, :5],) if method == "predict" else (X[:, :5], y)
        errors = []
        for est in (ref, got):
            with pytest.raises(ValueError) as info:
                getattr(est, method)(*args)
            errors.append(str(info.value))
        assert errors[1] == errors[0], method


@pytest.mark.parametrize("y_bad", [_NAN_Y, Y_DIAB - 1.0, Y_DIAB.astype(str)],
                         ids=["nan", "negative", "strings"])
def test_a_failed_fresh_fit_leaves_the_previous_model(y_bad):
    X, y = TARGETS["1d"]
    ref, got = both(X, y, loss="poisson", hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    before = _snapshot(got)
    with pytest.raises(ValueError):
        got.fit(X[:, :4], y_bad)  # even with another number of features
    _assert_same_snapshot(before, _snapshot(got))
    call_both(ref, got, "partial_fit", X, y)
    assert_same_model(ref, got, X)


def test_a_failed_first_fit_leaves_the_estimator_unfitted():
    X, y = TARGETS["1d"]
    est = MLPRegressor(loss="poisson", max_iter=2)
    with pytest.raises(ValueError, match="non-negative"):
        est.fit(X, y - 1.0)
    assert not hasattr(est, "coefs_") and not hasattr(est, "n_features_in_")
    with pytest.raises(ValueError, match="needs numeric targets"):
        est.partial_fit(X, np.array(["a"] * X.shape[0]))
    assert not hasattr(est, "coefs_")


# -- behaviour scikit-learn users rely on ---------------------------------------------------------
@ignore_convergence
def test_predict_shapes_score_and_out_activation():
    X, y = TARGETS["1d"]
    for yy, shape in ((y, (_N,)), (Y_DIAB2, (_N, 2))):
        for loss, out in (("squared_error", "identity"), ("poisson", "exp")):
            ref, got = both(X, yy, loss=loss, hidden_layer_sizes=(4,), max_iter=3,
                            random_state=0)
            assert got.out_activation_ == ref.out_activation_ == out
            pred = got.predict(X)
            assert pred.shape == ref.predict(X).shape == shape
            if loss == "poisson":
                assert (pred > 0).all()
            assert got.score(X, yy) == r2_score(yy, pred)
            assert_allclose(got.score(X, yy), ref.score(X, yy), rtol=1e-10)
            sw = np.linspace(0.1, 1.0, _N)
            assert got.score(X, yy, sample_weight=sw) == r2_score(yy, pred, sample_weight=sw)
    # a single column is raveled, with scikit-learn's warning; predictions are 1-D
    ref, got = both(X, y[:, None], fit=False, hidden_layer_sizes=(4,), max_iter=3,
                    random_state=0)
    caught = call_both(ref, got, "fit", X, y[:, None])
    assert DataConversionWarning in [c for c, _ in caught]
    assert got.n_outputs_ == 1 and got.predict(X).shape == (_N,)
    assert_same_model(ref, got, X)


def test_convergence_warnings_match():
    X, y = TARGETS["1d"]
    for solver, text in (("adam", "Maximum iterations \\(2\\) reached"),
                         ("lbfgs", "lbfgs failed to converge")):
        ref, got = both(X, y, fit=False, hidden_layer_sizes=(3,), solver=solver, max_iter=2,
                        random_state=0)
        caught = call_both(ref, got, "fit", X, y)
        assert [c for c, _ in caught] == [ConvergenceWarning]
        assert re.search(text, caught[0][1])


@pytest.mark.parametrize("early_stopping", [False, True])
def test_verbose_prints_what_sklearn_prints(early_stopping):
    X, y = TARGETS["1d"]
    out = {}
    for cls in (SkMLP, MLPRegressor):
        buf = io.StringIO()
        with redirect_stdout(buf), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            cls(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive", tol=10.0,
                n_iter_no_change=1, max_iter=6, verbose=True, early_stopping=early_stopping,
                learning_rate_init=0.01, random_state=0).fit(X, y)
        out[cls] = buf.getvalue()
    assert out[MLPRegressor] == out[SkMLP]
    assert "Setting learning rate to" in out[SkMLP]


@ignore_convergence
def test_pickle_and_clone():
    X, y = TARGETS["2 targets"]
    ref, got = both(X, y, hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=0.01,
                    max_iter=3, random_state=14)
    loaded = pickle.loads(pickle.dumps(got))
    assert_array_equal(loaded.predict(X), got.predict(X))
    assert_array_equal(loaded.predict(X[:1]), got.predict(X[:1]))
    # partial_fit after unpickling continues with the saved optimizer state
    ref.partial_fit(X, y)
    got.partial_fit(X, y)
    loaded.partial_fit(X, y)
    assert_same_model(ref, loaded, X)
    assert_array_equal(loaded.predict(X), got.predict(X))
    c = clone(got)
    assert c.get_params() == got.get_params() and not hasattr(c, "coefs_")


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_float32_dtypes_match_sklearn(solver):
    X, y = TARGETS["2 targets"]
    X32 = X.astype(np.float32)
    ref, got = both(X32, y, hidden_layer_sizes=(5,), solver=solver, learning_rate_init=0.01,
                    max_iter=3, random_state=15)
    # sgd/adam train in float32; scipy's L-BFGS-B leaves float64 coefs_
    expected = np.float64 if solver == "lbfgs" else np.float32
    for a, b in zip(ref.coefs_ + ref.intercepts_, got.coefs_ + got.intercepts_, strict=True):
        assert a.dtype == b.dtype == expected
    assert got.predict(X32).dtype == ref.predict(X32).dtype
    assert got.predict(X).dtype == np.float64
    assert_allclose(got.predict(X32), ref.predict(X32), rtol=1e-4, atol=1e-5)


# -- float32 at size: within scikit-learn's own spread --------------------------------------------
def _departure(a, b):
    return max(float(np.abs(p - q).max())
               for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True))


@pytest.fixture(scope="module")
def regression32():
    X, y = make_regression(n_samples=20000, n_features=50, n_targets=3, noise=10.0,
                           random_state=0)
    X = X.astype(np.float32)  # already standard normal
    y = y / y.std(axis=0)
    nonzero = X != 0
    up = X.copy()
    up[nonzero] = np.nextafter(up[nonzero], np.float32(np.inf))
    even = nonzero.copy()
    even[1::2] = False
    up_even = X.copy()
    up_even[even] = np.nextafter(up_even[even], np.float32(np.inf))
    return X, y, (up, up_even)


@pytest.mark.slow  # 1 to 20 s a case (three scikit-learn fits of 20000 rows), by machine load
@ignore_convergence
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_float32_within_scikit_learns_own_spread(regression32, solver, activation):
    """scikit-learn's float32 fit moves when X moves by one ulp (every nonzero entry, or those
    of the even rows); fastmlp's float32 fit departs from scikit-learn's by at most 10x that
    spread. (scikit-learn keeps y float64, fastmlp casts it to float32.)"""
    X, y, perturbed = regression32
    params = dict(hidden_layer_sizes=(64,), solver=solver, activation=activation,
                  learning_rate_init=0.001 if solver == "adam" else 0.01, random_state=0,
                  max_iter=4)
    got = MLPRegressor(**params).fit(X, y)
    ref = SkMLP(**params).fit(X, y)
    assert all(c.dtype == np.float32 for c in got.coefs_ + got.intercepts_)
    spread = max(_departure(ref, SkMLP(**params).fit(Xp, y)) for Xp in perturbed)
    gap = _departure(got, ref)
    print(f"{activation} {solver}: departure {gap:.3g}, spread {spread:.3g}")
    assert gap <= 10 * spread, f"departure {gap:.3g}, scikit-learn's own spread {spread:.3g}"
    assert got.n_iter_ == ref.n_iter_ == 4
    assert got.loss_curve_ == pytest.approx(ref.loss_curve_, rel=1e-4)
