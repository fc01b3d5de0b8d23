"""fastmlp.MLPClassifier against scikit-learn's MLPClassifier: API, and the same numbers.

Every equivalence test fits scikit-learn's estimator and fastmlp's with the same arguments,
data and random_state and compares what they learned. Tolerances: float64 rtol 1e-6 (the two
differ only in the order of floating-point operations: BLAS vs compiled loops, fused
multiply-adds, fast-math reassociation); float32 rtol 1e-3 (the same differences at float32's
2^-24 resolution, compounded over a few epochs). ConvergenceWarning is silenced where
scikit-learn's own MLP tests silence it (short fits by design).
"""

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
from sklearn.datasets import (
    load_digits,
    load_iris,
    make_classification,
    make_multilabel_classification,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier as SkMLP
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastmlp
from fastmlp.sklearn import MLPClassifier

ignore_convergence = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# -- data (small, so every test is quick) -------------------------------------------------------
_iris = load_iris()
X_IRIS = StandardScaler().fit_transform(_iris.data)
Y_IRIS = _iris.target
_digits = load_digits()
X_DIGITS = _digits.data[:200] / 16.0
Y_DIGITS = _digits.target[:200]
X_BIN, Y_BIN = make_classification(n_samples=120, n_features=8, n_informative=4,
                                   random_state=0)
X_ML, Y_ML = make_multilabel_classification(n_samples=100, n_features=6, n_classes=3,
                                            random_state=0)
X_ML = X_ML / X_ML.max()

DATA = {
    "multiclass": (X_IRIS, Y_IRIS),
    "digits": (X_DIGITS, Y_DIGITS),
    "binary": (X_BIN, Y_BIN),
    "multilabel": (X_ML, Y_ML),
}


def both(X, y, fit=True, sample_weight=None, **params):
    """scikit-learn's and fastmlp's estimators with the same parameters, optionally fitted."""
    ref = SkMLP(**params)
    got = MLPClassifier(**params)
    if fit:
        kw = {} if sample_weight is None else {"sample_weight": sample_weight}
        ref.fit(X, y, **kw)
        got.fit(X, y, **kw)
    return ref, got


def assert_same_model(ref, got, X, rtol=1e-6, atol=1e-9):
    """Everything scikit-learn learned, fastmlp learned: weights, curves, counters, outputs."""
    assert got.n_iter_ == ref.n_iter_
    assert got.t_ == ref.t_
    assert got.n_layers_ == ref.n_layers_
    assert got.n_outputs_ == ref.n_outputs_
    assert got.out_activation_ == ref.out_activation_
    assert_array_equal(got.classes_, ref.classes_)
    assert len(got.coefs_) == len(ref.coefs_)
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
                assert_allclose(getattr(got, name), getattr(ref, name), rtol=rtol, atol=atol)
    p_ref, p_got = ref.predict_proba(X), got.predict_proba(X)
    assert p_got.dtype == p_ref.dtype
    assert_allclose(p_got, p_ref, rtol=rtol, atol=atol)
    assert_allclose(got.predict_log_proba(X), ref.predict_log_proba(X), rtol=rtol,
                    atol=max(atol, 1e-12))
    assert_array_equal(got.predict(X), ref.predict(X))
    assert got.score(X, ref.predict(X)) == 1.0


# -- scikit-learn's estimator checks --------------------------------------------------------------
def _check_name(check):
    return getattr(check, "__name__", None) or check.func.__name__


@ignore_convergence  # scikit-learn's test_common ignores it for every estimator check
@parametrize_with_checks([MLPClassifier(max_iter=100)])
def test_sklearn_estimator_checks(estimator, check):
    if _check_name(check) == "check_sample_weight_equivalence_on_dense_data":
        # as scikit-learn's own suite (PER_ESTIMATOR_CHECK_PARAMS): weights equal repetitions
        # for the full-batch solver; mini-batches of repeated rows differ by construction. On
        # a clone: every check gets the same estimator object, the later ones its defaults.
        estimator = clone(estimator).set_params(solver="lbfgs")
    check(estimator)


# -- the same numbers as scikit-learn -------------------------------------------------------------
@ignore_convergence
@pytest.mark.parametrize("learning_rate", ["constant", "invscaling", "adaptive"])
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_schedules_and_momentum(learning_rate, momentum, nesterov):
    X, y = DATA["multiclass"]
    params = dict(hidden_layer_sizes=(7,), solver="sgd", learning_rate=learning_rate,
                  learning_rate_init=0.1, momentum=momentum, nesterovs_momentum=nesterov,
                  batch_size=32, max_iter=6, random_state=1)
    if learning_rate == "adaptive":
        # every epoch counts as no improvement: the rate is cut by 5 every other epoch,
        # down to <= 1e-6, where training stops (18 epochs)
        params.update(tol=10.0, n_iter_no_change=1, max_iter=40)
    ref, got = both(X, y, **params)
    if learning_rate == "adaptive":
        assert ref.n_iter_ < 40
        assert got._optimizer.learning_rate == ref._optimizer.learning_rate
    assert_same_model(ref, got, X)


@ignore_convergence
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_activations_and_solvers(activation, solver):
    X, y = DATA["digits"]
    ref, got = both(X, y, hidden_layer_sizes=(6, 5), activation=activation, solver=solver,
                    alpha=1e-3, learning_rate_init=0.05, batch_size=50, max_iter=4,
                    random_state=2)
    assert_same_model(ref, got, X)


@ignore_convergence
@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_targets_and_alpha(target, alpha, solver):
    X, y = DATA[target]
    ref, got = both(X, y, hidden_layer_sizes=(5,), solver=solver, alpha=alpha,
                    learning_rate_init=0.05, batch_size=25, max_iter=5, random_state=3)
    assert got.out_activation_ == ("softmax" if target == "multiclass" else "logistic")
    assert_same_model(ref, got, X)


@ignore_convergence
@pytest.mark.parametrize("hidden", [(4,), (6, 4), 3])
@pytest.mark.parametrize("shuffle", [True, False])
def test_layers_and_shuffle(hidden, shuffle):
    X, y = DATA["multiclass"]
    ref, got = both(X, y, hidden_layer_sizes=hidden, shuffle=shuffle, batch_size=40,
                    learning_rate_init=0.02, max_iter=5, random_state=4)
    assert_same_model(ref, got, X)


def test_stops_at_the_same_iteration_on_tol():
    X, y = DATA["multiclass"]
    ref, got = both(X, y, hidden_layer_sizes=(8,), learning_rate_init=0.05, tol=1e-2,
                    n_iter_no_change=2, max_iter=200, random_state=5)
    assert ref.n_iter_ < 200  # stopped by the tol rule, not max_iter
    assert_same_model(ref, got, X)


@ignore_convergence
@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_early_stopping(target, solver):
    X, y = DATA[target]
    ref, got = both(X, y, hidden_layer_sizes=(6,), solver=solver, early_stopping=True,
                    validation_fraction=0.2, n_iter_no_change=2, learning_rate_init=0.05,
                    max_iter=30, random_state=6)
    assert got.best_loss_ is None and got.best_validation_score_ is not None
    assert_same_model(ref, got, X)


@ignore_convergence
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_over_chunks(solver):
    X, y = DATA["digits"]
    ref, got = both(X, y, fit=False, hidden_layer_sizes=(8,), solver=solver,
                    learning_rate_init=0.05, random_state=7)
    classes = np.unique(y)
    # chunks of different sizes: batch_size='auto' changes, the optimizer state carries on
    for start, stop in [(0, 70), (70, 200), (0, 30), (30, 200)]:
        ref.partial_fit(X[start:stop], y[start:stop], classes=classes)
        got.partial_fit(X[start:stop], y[start:stop], classes=classes)
    assert got._optimizer.step[0] == (ref._optimizer.t if solver == "adam" else 0)
    assert_same_model(ref, got, X)


@ignore_convergence
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_warm_start(solver):
    X, y = DATA["multiclass"]
    ref, got = both(X, y, hidden_layer_sizes=(5,), solver=solver, warm_start=True,
                    learning_rate_init=0.05, max_iter=3, random_state=8)
    ref.fit(X[::2], y[::2])
    got.fit(X[::2], y[::2])
    ref.set_params(max_iter=2).fit(X, y)
    got.set_params(max_iter=2).fit(X, y)
    assert_same_model(ref, got, X)


@ignore_convergence
def test_warm_start_with_early_stopping():
    # scikit-learn's restored best weights stay aliased with the live ones across warm starts
    X, y = DATA["binary"]
    ref, got = both(X, y, hidden_layer_sizes=(5,), warm_start=True, early_stopping=True,
                    n_iter_no_change=1, learning_rate_init=0.05, max_iter=8, random_state=9)
    for _ in range(2):
        ref.fit(X, y)
        got.fit(X, y)
        assert_same_model(ref, got, X)


@ignore_convergence
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sample_weight(solver):
    X, y = DATA["multiclass"]
    sw = np.random.RandomState(0).uniform(0.1, 2.0, X.shape[0])
    ref, got = both(X, y, sample_weight=sw, hidden_layer_sizes=(5,), solver=solver, alpha=0.1,
                    learning_rate_init=0.05, batch_size=32, max_iter=4, random_state=10)
    assert_same_model(ref, got, X)


@ignore_convergence
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_csr_input(solver):
    X, y = DATA["digits"]
    Xs = sp.csr_matrix(X)
    assert Xs.nnz < X.size  # really sparse
    ref, got = both(Xs, y, hidden_layer_sizes=(6,), solver=solver, learning_rate_init=0.05,
                    batch_size=50, max_iter=4, random_state=11)
    assert_same_model(ref, got, Xs)
    dense = MLPClassifier(hidden_layer_sizes=(6,), solver=solver, learning_rate_init=0.05,
                          batch_size=50, max_iter=4, random_state=11).fit(X, y)
    assert_allclose(got.predict_proba(X), dense.predict_proba(X), rtol=1e-6, atol=1e-9)
    # CSC, and CSR with weights and early stopping
    assert_allclose(got.predict_proba(Xs.tocsc()), got.predict_proba(X), rtol=1e-12)
    if solver != "lbfgs":
        sw = np.linspace(0.5, 1.5, X.shape[0])
        ref, got = both(Xs, y, sample_weight=sw, hidden_layer_sizes=(6,), solver=solver,
                        early_stopping=True, max_iter=4, random_state=11)
        assert_same_model(ref, got, Xs)


@ignore_convergence
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_float32(solver):
    X, y = DATA["digits"]
    X32 = X.astype(np.float32)
    ref, got = both(X32, y, hidden_layer_sizes=(8,), solver=solver, learning_rate_init=0.05,
                    batch_size=50, max_iter=4, random_state=12)
    # sgd/adam train in float32; scipy's L-BFGS-B holds float64 parameters, so scikit-learn's
    # (and fastmlp's) L-BFGS trains in float64 and leaves float64 coefs_
    expected = np.float64 if solver == "lbfgs" else np.float32
    assert all(c.dtype == expected for c in got.coefs_ + got.intercepts_)
    assert_same_model(ref, got, X32, rtol=1e-3, atol=1e-5)
    # and predicting float64 data with float32 weights computes in float64, as numpy would
    assert got.predict_proba(X).dtype == np.float64


@ignore_convergence
def test_string_labels_and_any_label_type():
    X, y = DATA["multiclass"]
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    ref, got = both(X, names, hidden_layer_sizes=(5,), max_iter=3, random_state=13)
    assert_array_equal(got.classes_, ["setosa", "versicolor", "virginica"])
    assert_same_model(ref, got, X)
    for labels in (y * 2.0 - 1, np.array([-1, 7])[(y > 0).astype(int)]):
        ref, got = both(X, labels, hidden_layer_sizes=(5,), max_iter=3, random_state=13)
        assert_same_model(ref, got, X)


@ignore_convergence
def test_random_state_instance_and_none():
    X, y = DATA["binary"]
    ref = SkMLP(hidden_layer_sizes=(4,), max_iter=3, random_state=np.random.RandomState(3))
    got = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3,
                        random_state=np.random.RandomState(3))
    for _ in range(2):  # the instance's stream goes on from one fit to the next
        ref.fit(X, y)
        got.fit(X, y)
        assert_same_model(ref, got, X)
    np.random.seed(0)
    a = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3).fit(X, y)
    np.random.seed(0)
    b = SkMLP(hidden_layer_sizes=(4,), max_iter=3).fit(X, y)
    assert_same_model(b, a, X)


# -- behaviour scikit-learn users rely on ---------------------------------------------------------
def test_defaults_and_signature_match_sklearn():
    assert MLPClassifier().get_params() == SkMLP().get_params()
    assert fastmlp.MLPClassifier is MLPClassifier
    with pytest.raises(TypeError):
        MLPClassifier((5,), "relu", "adam")  # keyword-only after the first two


def test_convergence_warning_and_messages():
    X, y = DATA["multiclass"]
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(2\\) reached"):
        MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        MLPClassifier(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=2,
                      random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="The 'alpha' parameter of MLPClassifier must be"):
        MLPClassifier(alpha=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="The 'solver' parameter"):
        MLPClassifier(solver="newton").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0"):
        MLPClassifier(hidden_layer_sizes=(3, 0)).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


@ignore_convergence
@pytest.mark.parametrize("early_stopping", [False, True])
def test_verbose_prints_what_sklearn_prints(early_stopping):
    X, y = DATA["multiclass"]
    out = {}
    for cls in (SkMLP, MLPClassifier):
        buf = io.StringIO()
        with redirect_stdout(buf):
            cls(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive", tol=10.0,
                n_iter_no_change=1, max_iter=6, verbose=True, early_stopping=early_stopping,
                random_state=0).fit(X, y)
        out[cls] = buf.getvalue()
    # the losses agree to ~1e-15, far below the 8 printed digits
    assert out[MLPClassifier] == out[SkMLP]
    assert "Setting learning rate to" in out[SkMLP]


def test_keyboard_interrupt_returns_the_model_so_far(monkeypatch):
    from fastmlp._engine import Trainer

    calls = {"n": 0}
    real_epoch = Trainer.epoch

    def interrupting_epoch(*args, **kwargs):  # Ctrl-C during the third epoch
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(Trainer, "epoch", interrupting_epoch)
    X, y = DATA["multiclass"]
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=10, random_state=0).fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2
    assert clf.predict(X).shape == y.shape


def test_non_finite_weights_raise():
    X, y = DATA["multiclass"]
    for cls in (SkMLP, MLPClassifier):
        with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # overflow and convergence warnings
                cls(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=1e6,
                    momentum=0.0, max_iter=20, random_state=0).fit(X * 1e10, y)


@ignore_convergence
def test_coefs_are_live_views_and_can_be_replaced():
    X, y = DATA["multiclass"]
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    before = clf.predict_proba(X)
    clf.coefs_[1][...] = 0.0  # in place, as with scikit-learn
    clf.intercepts_[1][...] = 0.0
    assert_allclose(clf.predict_proba(X), 1 / 3)
    clf.coefs_ = [c.copy() for c in clf.coefs_]  # replacing the arrays also works
    clf.coefs_[1] = np.ones_like(clf.coefs_[1])
    sk = SkMLP(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    sk.coefs_ = [c.copy() for c in clf.coefs_]
    sk.intercepts_ = [b.copy() for b in clf.intercepts_]
    assert_allclose(clf.predict_proba(X), sk.predict_proba(X), rtol=1e-12)
    assert not np.allclose(clf.predict_proba(X), before)
    clf.partial_fit(X, y)  # trains from the replaced arrays
    sk.partial_fit(X, y)
    assert_allclose(clf.predict_proba(X), sk.predict_proba(X), rtol=1e-6)


@ignore_convergence
def test_pickle_and_clone():
    X, y = DATA["multiclass"]
    ref, got = both(X, y, hidden_layer_sizes=(5,), solver="sgd", max_iter=3, random_state=14)
    loaded = pickle.loads(pickle.dumps(got))
    assert_array_equal(loaded.predict_proba(X), got.predict_proba(X))
    # after unpickling, coefs_ and intercepts_ are again views into one parameter vector
    assert all(a.base is loaded.coefs_[0].base for a in loaded.coefs_ + loaded.intercepts_)
    # partial_fit after unpickling continues with the saved optimizer state
    ref.partial_fit(X, y)
    got.partial_fit(X, y)
    loaded.partial_fit(X, y)
    assert_same_model(ref, loaded, X)
    assert_array_equal(loaded.predict_proba(X), got.predict_proba(X))
    c = clone(got)
    assert c.get_params() == got.get_params() and not hasattr(c, "coefs_")


@ignore_convergence
def test_grid_search_cross_val_score_and_pipeline():
    X, y = DATA["multiclass"]
    grid = GridSearchCV(MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0),
                        {"alpha": [1e-4, 1e-1], "solver": ["adam", "lbfgs"]}, cv=3)
    grid.fit(X, y)
    sk_grid = GridSearchCV(SkMLP(hidden_layer_sizes=(5,), max_iter=20, random_state=0),
                           {"alpha": [1e-4, 1e-1], "solver": ["adam", "lbfgs"]}, cv=3).fit(X, y)
    assert grid.best_params_ == sk_grid.best_params_
    assert_allclose(grid.cv_results_["mean_test_score"], sk_grid.cv_results_["mean_test_score"])

    scores = cross_val_score(MLPClassifier(hidden_layer_sizes=(5,), max_iter=20,
                                           random_state=0), X, y, cv=3, n_jobs=2)
    sk_scores = cross_val_score(SkMLP(hidden_layer_sizes=(5,), max_iter=20, random_state=0),
                                X, y, cv=3)
    assert_allclose(scores, sk_scores)

    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(5,), max_iter=20,
                                                         random_state=0))
    sk_pipe = make_pipeline(StandardScaler(), SkMLP(hidden_layer_sizes=(5,), max_iter=20,
                                                    random_state=0))
    pipe.fit(_iris.data, y)
    sk_pipe.fit(_iris.data, y)
    assert_allclose(pipe.predict_proba(_iris.data), sk_pipe.predict_proba(_iris.data),
                    rtol=1e-6)


def test_docstring_documents_every_parameter():
    doc = MLPClassifier.__doc__
    for name in MLPClassifier().get_params():
        assert re.search(rf"^    {name} : ", doc, re.M), name
