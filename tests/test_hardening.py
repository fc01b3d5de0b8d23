"""Hardening: bad input, faults and concurrency, with nothing lost (issue 6).

Every bad input must raise a documented exception type (ValueError or TypeError; OSError or
ValueError for files) naming what is wrong, and leave a *fitted* model exactly as it was.
Faults (divergence, Ctrl-C, corrupt files) must never leave NaN weights or a half-written
model. Threads and child processes (fork, spawn, joblib) must give the serial results.
"""

import concurrent.futures
import io
import json
import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings
import zipfile

import numba
import numpy as np
import pytest
from commands import INTERRUPTIBLE_FASTMLP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastmlp._engine as engine
from fastmlp import DivergenceError, MLPClassifier, Model, Preprocessing, _config
from fastmlp._kernels.activations import LOGISTIC, SOFTMAX
from fastmlp.datasets import load_digits

# The estimator is fitted for a few iterations only: scikit-learn's ConvergenceWarning is
# expected noise here, never what a test checks.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: Seconds a child process or thread may take before the test calls it a hang.
HANG_TIMEOUT = 180


# -- helpers ------------------------------------------------------------------------------------

def small_data(n=120, n_in=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    y = ((X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)) % 3
    return X, y


def fashion_like(n, seed=0, n_in=784, k=10):
    """Random data shaped like Fashion-MNIST: float32 pixels in [0, 1], labels 0..9."""
    rng = np.random.default_rng(seed)
    return rng.random((n, n_in), dtype=np.float32), rng.integers(0, k, n)


def params(model):
    """Every weight and bias of a Model (or an MLPClassifier), as one new flat array."""
    if isinstance(model, Model):
        arrays = model.weights + model.biases
    else:
        arrays = model.coefs_ + model.intercepts_
    return np.concatenate([a.ravel() for a in arrays]).copy()


FIT = dict(epochs=2, batch_size=8, learning_rate=0.1, progress=False)


def fitted_model(dtype="float64"):
    X, y = small_data()
    model = Model([6, 4, 3], dtype=dtype, seed=0)
    model.fit(X, y, **FIT)
    return model


def model_state(model):
    """What a failed call must not change: parameters, history, the shuffling stream."""
    return (params(model), model.history, model.history.loss.copy(),
            model._rng.bit_generator.state)


def assert_model_unchanged(model, before):
    w, history, losses, rng_state = before
    now = params(model)
    assert now.dtype == w.dtype and np.array_equal(now, w)  # every weight, bit for bit
    assert model.history is history and model.history.loss == losses
    assert model._rng.bit_generator.state == rng_state


def fitted_clf(**kwargs):
    X, y = small_data()
    options = dict(hidden_layer_sizes=(5,), solver="sgd", max_iter=5, random_state=0)
    options.update(kwargs)
    return MLPClassifier(**options).fit(X, y)


def clf_state(clf):
    """Every attribute (pickled), every weight, and the predictions on a fixed input."""
    X, _ = small_data()
    return pickle.dumps(clf), [a.copy() for a in clf.coefs_ + clf.intercepts_], clf.predict_proba(X)


def assert_clf_unchanged(clf, before):
    blob, arrays, proba = before
    now = clf.coefs_ + clf.intercepts_
    assert len(now) == len(arrays)
    for a, b in zip(now, arrays, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert pickle.dumps(clf) == blob  # classes_, n_features_in_, curves, optimizer state...
    X, _ = small_data()
    assert np.array_equal(clf.predict_proba(X), proba)


def nan_at(X, i=3, j=2, value=np.nan):
    X = np.array(X, dtype=float)
    X[i, j] = value
    return X


# -- bad input: Model, on a fitted model --------------------------------------------------------
BAD_DATA = {
    "NaN in X": (lambda X, y: (nan_at(X), y), ValueError, "NaN"),
    "inf in X": (lambda X, y: (nan_at(X, value=np.inf), y), ValueError, "infinity"),
    "-inf in X": (lambda X, y: (nan_at(X, value=-np.inf), y), ValueError, "infinity"),
    "NaN in y": (lambda X, y: (X, np.where(np.arange(len(y)) == 2, np.nan, y)), ValueError,
                 "integer class labels"),
    "inf in target rows": (lambda X, y: (X, nan_at(np.eye(3)[y], 1, 1, np.inf)), ValueError,
                           "NaN or infinity"),
    "X 1-D": (lambda X, y: (X[0], y), ValueError, "2-D"),
    "X 3-D": (lambda X, y: (X[None], y), ValueError, "2-D"),
    "X scalar": (lambda X, y: (1.0, y), ValueError, "2-D"),
    "y too short": (lambda X, y: (X, y[:-1]), ValueError, "rows"),
    "y too long": (lambda X, y: (X, np.r_[y, 0]), ValueError, "rows"),
    "y of shape (n, 1)": (lambda X, y: (X, y[:, None]), ValueError, r"\(120, 3\)"),
    "y of shape (n, K+1)": (lambda X, y: (X, np.eye(4)[y]), ValueError, r"\(120, 3\)"),
    "y 3-D": (lambda X, y: (X, np.eye(3)[y][:, :, None]), ValueError, "shape"),
    "empty X": (lambda X, y: (X[:0], y[:0]), ValueError, "empty"),
    "no features": (lambda X, y: (X[:, :0], y), ValueError, "empty"),
    "strings": (lambda X, y: (X.astype(str), y), TypeError, "numeric"),
    "object array": (lambda X, y: (X.astype(object), y), TypeError, "numeric"),
    "None": (lambda X, y: (None, y), TypeError, "numeric"),
    "ragged lists": (lambda X, y: ([[1.0] * 6] * 119 + [[1.0] * 5], y), ValueError,
                     "rectangular"),
    "complex X": (lambda X, y: (X.astype(complex), y), TypeError, "complex"),
    "fewer features": (lambda X, y: (X[:, :5], y), ValueError, "5 features.*expects 6"),
    "more features": (lambda X, y: (np.c_[X, X], y), ValueError, "12 features.*expects 6"),
    "label too large": (lambda X, y: (X, y + 1), ValueError, r"labels must be in 0\.\.2"),
    "negative label": (lambda X, y: (X, y - 1), ValueError, r"labels must be in 0\.\.2"),
    "huge label": (lambda X, y: (X, np.full(len(y), 1e20)), ValueError, "labels"),
    "fractional label": (lambda X, y: (X, y + 0.5), ValueError, "integer class labels"),
    "string labels": (lambda X, y: (X, y.astype(str)), TypeError, "integer labels"),
    "complex labels": (lambda X, y: (X, y.astype(complex)), TypeError, "complex"),
    "negative target row summing to 1": (lambda X, y: (X, np.tile([1.5, -0.5, 0.0], (120, 1))),
                                         ValueError, "negative"),
    "negative entries": (lambda X, y: (X, np.eye(3)[y] * 2 - 0.5), ValueError, "negative"),
    "rows not summing to 1": (lambda X, y: (X, np.full((len(y), 3), 0.5)), ValueError,
                              "sum to 1"),
    "huge target rows": (lambda X, y: (X, np.full((len(y), 3), 1e308)), ValueError, "sum to 1"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_model_fit_bad_data_keeps_fitted_model(case):
    make, error, match = BAD_DATA[case]
    X, y = small_data()
    model = fitted_model()
    before = model_state(model)
    Xb, yb = make(X.copy(), y.copy())
    with pytest.raises(error, match=match):
        model.fit(Xb, yb, **FIT)
    assert_model_unchanged(model, before)


BAD_X = {k: BAD_DATA[k] for k in (
    "NaN in X", "inf in X", "X 1-D", "X 3-D", "X scalar", "empty X", "no features", "strings",
    "object array", "None", "ragged lists", "complex X", "fewer features", "more features")}


@pytest.mark.parametrize("method", ["predict", "predict_proba", "evaluate", "loss", "gradients"])
@pytest.mark.parametrize("case", list(BAD_X))
def test_model_inference_bad_X_keeps_fitted_model(case, method):
    make, error, match = BAD_X[case]
    X, y = small_data()
    model = fitted_model()
    before = model_state(model)
    Xb, _ = make(X.copy(), y.copy())
    args = (Xb,) if method.startswith("predict") else (Xb, y)
    with pytest.raises(error, match=match):
        getattr(model, method)(*args)
    assert_model_unchanged(model, before)


@pytest.mark.parametrize("method", ["evaluate", "loss", "gradients"])
@pytest.mark.parametrize("case", ["NaN in y", "y too short", "label too large",
                                  "rows not summing to 1", "negative entries"])
def test_model_scoring_bad_y_keeps_fitted_model(case, method):
    make, error, match = BAD_DATA[case]
    X, y = small_data()
    model = fitted_model()
    before = model_state(model)
    Xb, yb = make(X.copy(), y.copy())
    with pytest.raises(error, match=match):
        getattr(model, method)(Xb, yb)
    assert_model_unchanged(model, before)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"epochs": 0}, ValueError, "epochs must be >= 1"),
    ({"epochs": -3}, ValueError, "epochs"),
    ({"epochs": 2.0}, TypeError, "epochs must be an integer"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"batch_size": -1}, ValueError, "batch_size"),
    ({"batch_size": None}, TypeError, "batch_size"),
    ({"learning_rate": 0}, ValueError, "learning_rate"),
    ({"learning_rate": -0.1}, ValueError, "learning_rate"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
    ({"learning_rate": float("inf")}, ValueError, "learning_rate"),
    ({"learning_rate": "0.1"}, TypeError, "learning_rate"),
    ({"momentum": 1.0}, ValueError, "momentum"),
    ({"momentum": -0.1}, ValueError, "momentum"),
    ({"l2": -1.0}, ValueError, "l2"),
    ({"l2": float("nan")}, ValueError, "l2"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
    ({"optimizer": "adam", "beta_1": 1.0}, ValueError, "beta_1"),
    ({"optimizer": "adam", "epsilon": 0.0}, ValueError, "epsilon"),
    ({"validation_data": (np.zeros((5, 2)), np.zeros(5, int))}, ValueError, "validation X"),
    ({"validation_data": (np.full((5, 6), np.nan), np.zeros(5, int))}, ValueError, "NaN"),
    ({"validation_data": (np.zeros((5, 6)), np.full(5, 7))}, ValueError, "validation y"),
    ({"validation_data": np.zeros((5, 6))}, ValueError, "validation_data"),
    ({"callbacks": [object()]}, TypeError, "on_epoch_end"),
])
def test_model_fit_bad_settings_keep_fitted_model(kwargs, error, match):
    X, y = small_data()
    model = fitted_model()
    before = model_state(model)
    with pytest.raises(error, match=match):
        model.fit(X, y, **{**FIT, **kwargs})
    assert_model_unchanged(model, before)


@pytest.mark.parametrize("sizes,error", [
    ([6, 0, 3], ValueError), ([6, -4, 3], ValueError), ([0, 3], ValueError), ([6, 1], ValueError),
    ([6, 4.0, 3], TypeError), ([6, True, 3], TypeError), ([], ValueError), ("643", TypeError),
])
def test_model_bad_layer_sizes(sizes, error):
    with pytest.raises(error, match="layer"):
        Model(sizes)


def test_model_one_sample_trains():
    # one sample is valid input: the batch shrinks to it
    X, y = small_data()
    model = fitted_model()
    history = model.fit(X[:1], y[:1], **FIT)
    assert history.epochs == 2 and np.isfinite(params(model)).all()
    assert model.predict(X[:1]).shape == (1,)


def test_float32_model_names_values_beyond_float32():
    # a finite float64 value that overflows float32 is named as such, without a RuntimeWarning
    X, y = small_data()
    model = fitted_model("float32")
    before = model_state(model)
    Xb = nan_at(X, 5, 1, 1e39)
    with pytest.raises(ValueError, match=r"row 5, column 1.*beyond the range.*float32"):
        model.fit(Xb, y, **FIT)
    with pytest.raises(ValueError, match="beyond the range"):
        model.predict(Xb)
    assert_model_unchanged(model, before)
    # float64 models take it
    assert Model([6, 3], dtype="float64", seed=0).predict(Xb).shape == (120,)


# -- bad input: MLPClassifier, on a fitted estimator --------------------------------------------
CLF_BAD_DATA = {
    "NaN in X": (lambda X, y: (nan_at(X), y), ValueError, "NaN"),
    "inf in X": (lambda X, y: (nan_at(X, value=np.inf), y), ValueError, "infinity"),
    "NaN in y": (lambda X, y: (X, np.where(np.arange(len(y)) == 2, np.nan, y)), ValueError,
                 "NaN"),
    "X 1-D": (lambda X, y: (X[0], y), ValueError, "2D"),
    "X 3-D": (lambda X, y: (X[None], y), ValueError, "dim 3"),
    "y too short": (lambda X, y: (X, y[:-1]), ValueError, "inconsistent numbers of samples"),
    "y 3-D": (lambda X, y: (X, np.eye(3)[y][:, :, None]), ValueError, "dim 3"),
    "empty X": (lambda X, y: (X[:0], y[:0]), ValueError, "0 sample"),
    "non-numeric X": (lambda X, y: (np.full(X.shape, "a"), y), ValueError, "convert"),
    "object array with None": (lambda X, y: (np.full(X.shape, None, dtype=object), y),
                               ValueError, "NaN"),
}


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("case", list(CLF_BAD_DATA))
def test_clf_bad_data_keeps_fitted_estimator(case, method):
    make, error, match = CLF_BAD_DATA[case]
    X, y = small_data()
    clf = fitted_clf()
    before = clf_state(clf)
    Xb, yb = make(X.copy(), y.copy())
    with pytest.raises(error, match=match):
        getattr(clf, method)(Xb, yb)
    assert_clf_unchanged(clf, before)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba", "score"])
@pytest.mark.parametrize("case", ["NaN in X", "inf in X", "X 1-D", "X 3-D", "empty X",
                                  "non-numeric X", "fewer features"])
def test_clf_inference_bad_X_keeps_fitted_estimator(case, method):
    if case == "fewer features":
        make, error, match = BAD_X[case][0], ValueError, "5 features"
    else:
        make, error, match = CLF_BAD_DATA[case]
        if case == "non-numeric X":
            match = "numeric|convert"  # predict says "dtype='numeric' is not compatible"
    X, y = small_data()
    clf = fitted_clf()
    before = clf_state(clf)
    Xb, _ = make(X.copy(), y.copy())
    args = (Xb, y) if method == "score" else (Xb,)
    with pytest.raises(error, match=match):
        getattr(clf, method)(*args)
    assert_clf_unchanged(clf, before)


@pytest.mark.parametrize("params_,match", [
    ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes must be > 0"),
    ({"hidden_layer_sizes": (5, -1)}, "hidden_layer_sizes must be > 0"),
    ({"hidden_layer_sizes": 0}, "hidden_layer_sizes"),
    ({"batch_size": 0}, "batch_size"),
    ({"learning_rate_init": 0.0}, "learning_rate_init"),
    ({"learning_rate_init": -0.1}, "learning_rate_init"),
    ({"learning_rate_init": float("nan")}, "learning_rate_init"),
    ({"max_iter": 0}, "max_iter"),
    ({"alpha": -1.0}, "alpha"),
    ({"momentum": 1.5}, "momentum"),
    ({"solver": "rmsprop"}, "solver"),
])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_clf_bad_parameters_keep_fitted_estimator(params_, match, method):
    X, y = small_data()
    clf = fitted_clf()
    before, settings_ = clf_state(clf), clf.get_params()
    clf.set_params(**params_)
    if method == "partial_fit" and params_.get("solver") == "rmsprop":
        with pytest.raises(AttributeError, match="partial_fit"):
            clf.partial_fit(X, y)
    else:
        with pytest.raises(ValueError, match=match):
            getattr(clf, method)(X, y)
    clf.set_params(**settings_)
    assert_clf_unchanged(clf, before)


def test_clf_partial_fit_labels_not_in_classes():
    X, y = small_data()
    clf = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    before = clf_state(clf)
    with pytest.raises(ValueError, match="classes not in `self.classes_`"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="is not the same as on last call"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="5 features"):
        clf.partial_fit(X[:, :5], y)
    assert_clf_unchanged(clf, before)


def test_clf_failed_first_partial_fit_leaves_it_unfitted():
    X, y = small_data()
    clf = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", random_state=0)
    with pytest.raises(ValueError, match="NaN"):
        clf.partial_fit(nan_at(X), y, classes=[0, 1, 2])
    assert not hasattr(clf, "classes_") and not hasattr(clf, "coefs_")
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)  # as on a fresh estimator


def test_clf_refit_failing_late_keeps_classes_and_features():
    # scikit-learn sets classes_ and n_features_in_ before it checks sample_weight, so a fit
    # failing there leaves new classes_ (or n_features_in_) beside the old weights
    X, y = small_data()
    clf = fitted_clf()
    before = clf_state(clf)
    with pytest.raises(ValueError, match="sample_weight"):
        clf.fit(X[:, :4], y + 5, sample_weight=np.ones(3))
    assert_clf_unchanged(clf, before)
    assert list(clf.classes_) == [0, 1, 2] and clf.n_features_in_ == 6
    with pytest.raises(ValueError, match="warm_start can only be used"):
        clf.set_params(warm_start=True).fit(X, y + 5)
    clf.set_params(warm_start=False)
    assert_clf_unchanged(clf, before)


def test_clf_one_sample_matches_sklearn():
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = small_data()
    options = dict(hidden_layer_sizes=(5,), solver="sgd", max_iter=5, random_state=0)
    ours, theirs = MLPClassifier(**options).fit(X[:1], y[:1]), SkMLP(**options).fit(X[:1], y[:1])
    assert list(ours.classes_) == list(theirs.classes_)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    clf = fitted_clf()
    clf.partial_fit(X[:1], y[:1])  # one more sample for a fitted estimator
    assert np.isfinite(params(clf)).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_clf_failed_fit_puts_back_the_callers_random_state():
    # a retry after a failed fit draws the same initial weights and shuffles as a first try
    X, y = small_data()
    rs = np.random.RandomState(3)
    clf = MLPClassifier(hidden_layer_sizes=(5,), activation="identity", solver="sgd",
                        max_iter=3, momentum=0.0, learning_rate_init=1e300, random_state=rs)
    with pytest.raises(ValueError, match="non-finite"):
        clf.fit(X * 1e10, y)  # draws weights and shuffles from rs, then diverges
    clf.set_params(learning_rate_init=0.01).fit(X, y)
    fresh = MLPClassifier(hidden_layer_sizes=(5,), activation="identity", solver="sgd",
                          max_iter=3, momentum=0.0, learning_rate_init=0.01,
                          random_state=np.random.RandomState(3))
    assert np.array_equal(params(clf), params(fresh.fit(X, y)))


# -- divergence ---------------------------------------------------------------------------------
def test_model_divergence_on_fitted_model_restores_last_finite_weights():
    X, y = small_data(n=200)
    model = Model([6, 64, 3], hidden_activation="identity", dtype="float32", seed=0)
    model.fit(X, y, **FIT)
    snapshots = [params(model)]

    class Snapshot:
        def on_epoch_end(self, epoch, logs):
            snapshots.append(params(model))

    with pytest.raises(DivergenceError, match=r"diverged in epoch (\d+)") as info:
        model.fit(X * 1e3, y, epochs=50, batch_size=10, learning_rate=1e6,
                  callbacks=[Snapshot()], progress=False)
    assert isinstance(info.value, FloatingPointError)
    epoch = int(re.search(r"epoch (\d+)", str(info.value)).group(1))
    assert epoch == model.history.epochs + 1 == len(snapshots)
    assert np.isfinite(params(model)).all()
    assert np.array_equal(params(model), snapshots[-1])
    assert np.isfinite(model.predict_proba(X)).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_clf_divergence_on_fresh_fit_is_a_clear_error_and_no_model():
    X, y = small_data()
    X = X * 1e10
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=1e6,
                        momentum=0.0, max_iter=20, random_state=0)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        clf.fit(X, y)
    # no NaN model left behind: still unfitted, as before the call
    assert not hasattr(clf, "coefs_")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        clf.predict(X)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("how", ["partial_fit", "warm_start", "refit"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_clf_divergence_keeps_fitted_estimator(how, solver):
    X, y = small_data()
    clf = fitted_clf(solver=solver, activation="identity", batch_size=10)
    before, settings_ = clf_state(clf), clf.get_params()
    if how != "partial_fit":  # partial_fit keeps the optimizer and its learning rate
        clf.set_params(learning_rate_init=1e300, warm_start=how == "warm_start")
        bad = X * 1e200
    else:
        # with its own learning rate, Adam's step m / sqrt(v) does not grow with X (on X * 1e200
        # scikit-learn's and fastmlp's fits stay finite, with the same loss); a forward pass that
        # overflows diverges with either solver, in both libraries
        bad = np.sign(X) * 1.7e308
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        getattr(clf, "partial_fit" if how == "partial_fit" else "fit")(bad, y)
    clf.set_params(**settings_)
    assert_clf_unchanged(clf, before)
    assert np.isfinite(params(clf)).all()
    clf.partial_fit(X, y)  # and it trains on from there
    assert np.isfinite(params(clf)).all()


# -- model files --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "good.npz"
    model = fitted_model("float32")
    model.save(path)
    return path, path.read_bytes(), params(model)


def _central_directory(data):
    end = data.rfind(b"PK\x05\x06")
    return int.from_bytes(data[end + 16:end + 20], "little")


def _rewrite_member(data, name, new_bytes):
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, new_bytes if info.filename == name else
                         src.read(info.filename))
    return out.getvalue()


def _npy(header, body=b""):
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + body


BAD_FILES = {
    "empty": lambda good: b"",
    "truncated to 1 byte": lambda good: good[:1],
    "truncated to half": lambda good: good[: len(good) // 2],
    "truncated by 1 byte": lambda good: good[:-1],
    "flipped data byte": lambda good: _flip(good, good.index(b"weights_0.npy") + 200),
    "flipped header byte": lambda good: _flip(good, good.index("fastmlp.Model".encode(
        "utf-32-le"))),  # the JSON header is stored as a numpy unicode (UTF-32) string
    "random bytes": lambda good: np.random.default_rng(0).bytes(len(good)),
    "a plain pickle": lambda good: pickle.dumps({"weights": [1, 2]}),
    "a single .npy": lambda good: _npy({"descr": "<f4", "fortran_order": False,
                                        "shape": (2,)}, b"\0" * 8),
    "a text file": lambda good: b"layer_sizes: [6, 4, 3]\n",
    "wrong version": lambda good: _rewrite_member(
        good, "header.npy", _npy_bytes(_header(good).replace('"version": 1', '"version": 2'))),
    "wrong format name": lambda good: _rewrite_member(
        good, "header.npy", _npy_bytes(_header(good).replace("fastmlp.Model", "other"))),
    "header not JSON": lambda good: _rewrite_member(good, "header.npy", _npy_bytes("{nope")),
    "pickled header": lambda good: _rewrite_member(
        good, "header.npy", _npy_bytes(np.array([{"format": "fastmlp.Model"}], dtype=object))),
    "pickled weights": lambda good: _rewrite_member(
        good, "weights_0.npy", _npy_bytes(np.array([[object()]] * 6, dtype=object))),
    "weights of the wrong shape": lambda good: _rewrite_member(
        good, "weights_0.npy", _npy_bytes(np.zeros((4, 6), np.float32))),
    "weights of the wrong dtype": lambda good: _rewrite_member(
        good, "weights_0.npy", _npy_bytes(np.zeros((6, 4), np.float64))),
    "NaN weights": lambda good: _rewrite_member(
        good, "weights_0.npy", _npy_bytes(np.full((6, 4), np.nan, np.float32))),
    "missing biases": lambda good: _drop_member(good, "biases_1.npy"),
    "an extra array": lambda good: _add_member(good, "extra.npy", _npy_bytes(np.zeros(3))),
}


def _flip(data, pos, x=0x55):
    data = bytearray(data)
    data[pos] ^= x
    return bytes(data)


def _header(good):
    with np.load(io.BytesIO(good)) as z:
        return str(z["header"])


def _npy_bytes(value):
    out = io.BytesIO()
    np.save(out, np.asarray(value) if not isinstance(value, str) else np.array(value),
            allow_pickle=True)
    return out.getvalue()


def _drop_member(data, name):
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info.filename, src.read(info.filename))
    return out.getvalue()


def _add_member(data, name, value):
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as dst:
        dst.writestr(name, value)
    return out.getvalue()


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_load_refuses_bad_files_with_a_clear_value_error(model_file, tmp_path, case):
    _, good, _ = model_file
    path = tmp_path / "bad.npz"
    path.write_bytes(BAD_FILES[case](good))
    with pytest.raises(ValueError, match="is not a fastmlp model file"):
        Model.load(path)


def test_load_file_errors_are_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Model.load(tmp_path / "missing.npz")
    with pytest.raises(IsADirectoryError):
        Model.load(tmp_path)


def test_save_over_a_file_that_fails_midway_keeps_the_old_one(tmp_path, monkeypatch):
    # atomic save: a crash while writing leaves the previous model loadable and unchanged
    path = tmp_path / "m.npz"
    old = fitted_model()
    old.save(path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        Model([6, 4, 3], seed=1).save(path)
    monkeypatch.undo()
    assert np.array_equal(params(Model.load(path)), params(old))
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]





def _corrupt(good, corruption):
    cd = _central_directory(good)
    if corruption == "compression method":
        return _flip(good, cd + 10, 93)  # method 93: not supported by zipfile
    if corruption == "encryption flag":
        return _flip(good, cd + 8, 1)
    if corruption == "zip version":
        return _flip(good, cd + 6, 99)  # "needs zip version 11.9 to extract"
    big = _npy({"descr": "<f4", "fortran_order": False, "shape": (10**7, 10**7)}, b"\0" * 96)
    return _rewrite_member(good, "weights_0.npy", big)  # declares 400 TB in a 2 kB file


ZIP_CORRUPTIONS = ["compression method", "encryption flag", "zip version", "huge array"]


@pytest.mark.parametrize("corruption", ZIP_CORRUPTIONS)
def test_load_refuses_zip_level_corruption(model_file, tmp_path, corruption):
    _, good, _ = model_file
    path = tmp_path / "bad.npz"
    path.write_bytes(_corrupt(good, corruption))
    with pytest.raises(ValueError, match="is not a fastmlp model file"):
        Model.load(path)


_FUZZ = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def _load_bytes(tmp_dir, data, expected=None):
    path = tmp_dir / "fuzz.npz"
    path.write_bytes(data)
    try:
        model = Model.load(path)
    except (ValueError, OSError):
        return
    # whatever loads is the model that was saved: flips only ever hit unchecked zip fields
    if expected is not None:
        assert np.array_equal(params(model), expected)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("load-fuzz")


@_FUZZ
@given(data=st.binary(max_size=3000) | st.builds(lambda b: b"PK\x03\x04" + b, st.binary()))
def test_fuzz_load_random_bytes(fuzz_dir, data):
    _load_bytes(fuzz_dir, data)


@_FUZZ
@given(cut=st.integers(0, 10**6))
def test_fuzz_load_truncations(fuzz_dir, model_file, cut):
    _, good, _ = model_file
    path = fuzz_dir / "cut.npz"
    path.write_bytes(good[: cut % len(good)])
    with pytest.raises(ValueError, match="is not a fastmlp model file"):
        Model.load(path)


@_FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)),
                      min_size=1, max_size=4))
def test_fuzz_load_byte_flips(fuzz_dir, model_file, flips):
    _, good, expected = model_file
    data = bytearray(good)
    for pos, x in flips:
        data[pos % len(data)] ^= x
    _load_bytes(fuzz_dir, bytes(data), expected)


# -- other files: the command's inputs and load_npz ---------------------------------------------
def _cli_error(capsys, *args):
    """Run the command in-process; return its one-line error (exit status 2, no traceback)."""
    from fastmlp import cli

    assert cli.main([str(a) for a in args]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastmlp: error: "), err
    return err[0]


@pytest.mark.parametrize("corruption", ZIP_CORRUPTIONS)
def test_cli_corrupt_model_file_is_a_one_line_error(model_file, tmp_path, capsys, corruption):
    _, good, _ = model_file
    bad = tmp_path / "bad.npz"
    bad.write_bytes(_corrupt(good, corruption))
    samples = tmp_path / "x.npy"
    np.save(samples, np.zeros((2, 6)))
    assert "is not a fastmlp model file" in _cli_error(capsys, "predict", bad, samples)


def _raw_npy(header_text):
    text = header_text.ljust(118) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


@pytest.mark.parametrize("content,match", [
    (_npy({"descr": "<f4", "fortran_order": False, "shape": (10**7, 10**7)}, b"\0" * 64),
     "declares shape"),  # np.load would try to allocate 400 TB: MemoryError
    (_raw_npy(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3"),
     "not a valid .npy"),  # an unclosed bracket: np.load raises tokenize.TokenError
    (b"PK\x03\x04 an npz, not an npy", "magic"),
    (b"", "magic|empty|EOF"),
])
def test_cli_predict_corrupt_npy_is_a_one_line_error(model_file, tmp_path, capsys, content,
                                                     match):
    path, _, _ = model_file
    samples = tmp_path / "x.npy"
    samples.write_bytes(content)
    assert re.search(match, _cli_error(capsys, "predict", path, samples))


@pytest.fixture(scope="module")
def npz_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("npz") / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X_train=rng.standard_normal((10, 3)), y_train=np.arange(10) % 2,
             X_test=rng.standard_normal((4, 3)), y_test=np.array([0, 1, 0, 1]))
    return path.read_bytes()


def _load_npz_bytes(tmp_dir, data):
    from fastmlp.datasets import load_npz

    path = tmp_dir / "fuzz.npz"
    path.write_bytes(data)
    try:
        X_train, _, X_test, _ = load_npz(path)
    except (ValueError, OSError):
        return
    assert X_train.shape == (10, 3) and X_test.shape == (4, 3)


@pytest.mark.parametrize("corruption", ZIP_CORRUPTIONS[:3])
def test_load_npz_refuses_zip_level_corruption(npz_bytes, tmp_path, corruption):
    from fastmlp.datasets import load_npz

    path = tmp_path / "bad.npz"
    path.write_bytes(_corrupt(npz_bytes, corruption))
    with pytest.raises(ValueError, match="not a valid .npz file"):
        load_npz(path)
    big = _npy({"descr": "<f4", "fortran_order": False, "shape": (10**7, 10**7)}, b"\0" * 96)
    path.write_bytes(_rewrite_member(npz_bytes, "X_train.npy", big))
    with pytest.raises(ValueError, match="declares shape"):
        load_npz(path)


@_FUZZ
@given(cut=st.integers(0, 10**6),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4))
def test_fuzz_load_npz_truncations_and_flips(fuzz_dir, npz_bytes, cut, flips):
    data = bytearray(npz_bytes[: len(npz_bytes) - cut % len(npz_bytes)])
    for pos, x in flips:
        if data:
            data[pos % len(data)] ^= x
    _load_npz_bytes(fuzz_dir, bytes(data))


# -- Ctrl-C -------------------------------------------------------------------------------------
def test_cli_ctrl_c_after_the_first_epoch_saves_and_exits_130(tmp_path):
    path = tmp_path / "interrupted.npz"
    proc = subprocess.Popen(
        [*INTERRUPTIBLE_FASTMLP, "train", "--epochs", "100000", "--save", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.split()[:1] == ["1"]:  # the table row of epoch 1
                os.kill(proc.pid, signal.SIGINT)
                break
        stdout, stderr = proc.communicate(timeout=HANG_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    match = re.search(r"interrupted: stopped after epoch (\d+) of 100000; keeping the weights "
                      r"of epoch (\d+)", stdout)
    assert match, stdout
    epochs = int(match.group(1))
    assert epochs >= 1 and match.group(2) == match.group(1)
    assert f"saved {path}" in stdout
    loaded = Model.load(path)
    # nothing lost: the file holds exactly the weights of `epochs` full epochs
    X_train, y_train, _, _ = load_digits(seed=0)
    again = Model([64, 32, 10], seed=0)
    again.fit(X_train, y_train, epochs=epochs, batch_size=32, learning_rate=0.5, progress=False)
    assert np.array_equal(params(loaded), params(again))


def _interrupt_on_call(monkeypatch, n):
    real = engine.Trainer.epoch
    calls = {"n": 0}

    def epoch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(engine.Trainer, "epoch", epoch)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_clf_ctrl_c_in_fit_warns_and_returns_the_model_so_far(monkeypatch, solver):
    X, y = small_data()
    options = dict(hidden_layer_sizes=(5,), solver=solver, max_iter=10, random_state=0)
    two = MLPClassifier(**{**options, "max_iter": 2}).fit(X, y)
    _interrupt_on_call(monkeypatch, 3)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        clf = MLPClassifier(**options).fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2
    assert np.array_equal(params(clf), params(two))  # exactly the two finished epochs
    assert clf.loss_curve_ == two.loss_curve_
    np.testing.assert_array_equal(clf.predict(X), two.predict(X))


def test_model_ctrl_c_in_the_engine_keeps_the_last_full_epoch(monkeypatch):
    X, y = small_data()
    two = Model([6, 4, 3], seed=0)
    two.fit(X, y, **FIT)
    model = Model([6, 4, 3], seed=0)
    _interrupt_on_call(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, **{**FIT, "epochs": 10})
    assert model.history.epochs == 2
    assert np.array_equal(params(model), params(two))


# -- concurrency --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big():
    """A [784, 100, 10] model and 20000 Fashion-like rows: predict uses the parallel kernel."""
    X, y = fashion_like(20000, seed=1)
    model = Model([784, 100, 10], seed=0)
    model.fit(X[:2000], y[:2000], epochs=1, batch_size=200, learning_rate=0.1, progress=False)
    return model, X


def _count_parallel_predicts(monkeypatch):
    calls = []
    real = engine.forward.predict_proba_parallel

    def counting(*args):
        calls.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(engine.forward, "predict_proba_parallel", counting)
    return calls


def _kernels_blas_threads():
    """The thread count of the BLAS the kernels call (see fastmlp._kernels.blas)."""
    from threadpoolctl import threadpool_info

    from fastmlp._kernels import blas

    if blas.BLAS_LIBRARY.startswith("scipy."):
        match = lambda path: "scipy" in path and "numpy" not in path  # noqa: E731
    else:
        match = lambda path: os.path.realpath(path) == os.path.realpath(blas.BLAS_LIBRARY)  # noqa: E731
    found = [lib["num_threads"] for lib in threadpool_info()
             if lib["user_api"] == "blas" and match(lib["filepath"])]
    assert len(found) == 1, threadpool_info()
    return found[0]


def _blas_threads_inside_kernels_from_another_thread():
    """The kernels' BLAS thread count inside engine.blas_single_threaded, from a second thread."""
    with engine.blas_single_threaded():  # the main thread uses the engine first, as in use
        pass

    def probe():
        with engine.blas_single_threaded():
            return _kernels_blas_threads()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(probe).result(timeout=HANG_TIMEOUT)


def test_kernels_hold_blas_to_one_thread_from_any_python_thread():
    before = _kernels_blas_threads()
    if before <= 1:
        pytest.skip("BLAS runs one thread here anyway: nothing to limit")
    assert _blas_threads_inside_kernels_from_another_thread() == 1
    assert _kernels_blas_threads() == before


def test_predict_from_eight_threads_gives_the_serial_results(big, monkeypatch):
    model, X = big
    proba, labels = model.predict_proba(X), model.predict(X)
    calls = _count_parallel_predicts(monkeypatch)
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait(timeout=HANG_TIMEOUT)
        if i % 2:
            return model.predict(X), model.predict_proba(X)
        return model.predict_proba(X), model.predict(X)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = [f.result(timeout=HANG_TIMEOUT) for f in [pool.submit(work, i)
                                                            for i in range(8)]]
    for i, (a, b) in enumerate(results):
        got_proba, got_labels = (b, a) if i % 2 else (a, b)
        np.testing.assert_array_equal(got_proba, proba)
        np.testing.assert_array_equal(got_labels, labels)
    if engine.parallel_lanes() > 1:
        assert len(calls) == 16 and len(set(calls)) == 8  # the parallel kernel, from 8 threads


def test_two_threads_fitting_two_models_match_fitting_them_in_turn():
    X, y = fashion_like(2000, seed=2)
    fit = dict(epochs=2, batch_size=200, learning_rate=0.1, momentum=0.5, progress=False)
    serial = []
    for seed in (1, 2):
        m = Model([784, 100, 10], seed=seed)
        m.fit(X, y, **fit)
        serial.append(params(m))
    models = [Model([784, 100, 10], seed=seed) for seed in (1, 2)]
    barrier = threading.Barrier(2)

    def work(m):
        barrier.wait(timeout=HANG_TIMEOUT)
        return m.fit(X, y, **fit)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(work, m) for m in models]:
            f.result(timeout=HANG_TIMEOUT)
    for m, expected in zip(models, serial, strict=True):
        assert np.array_equal(params(m), expected)


def test_two_threads_fitting_two_estimators_match_fitting_them_in_turn():
    X, y = small_data(n=600)
    options = [dict(hidden_layer_sizes=(20,), solver=s, max_iter=5, random_state=i)
               for i, s in enumerate(("sgd", "adam"))]
    serial = [params(MLPClassifier(**o).fit(X, y)) for o in options]
    clfs = [MLPClassifier(**o) for o in options]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(c.fit, X, y) for c in clfs]:
            f.result(timeout=HANG_TIMEOUT)
    for c, expected in zip(clfs, serial, strict=True):
        assert np.array_equal(params(c), expected)


# Children: functions at module level so that spawned children and joblib workers import them.
_INHERITED = {}


def _child_predict_inherited(name):
    return _INHERITED[name].predict_proba(_INHERITED["X"]), engine.parallel_lanes()


def _child_predict_file(path, X):
    return Model.load(path).predict_proba(X)


def _child_predict_clf(clf, X):
    return clf.predict_proba(X)


@pytest.fixture(scope="module")
def clf_and_data():
    X, y = fashion_like(2000, seed=3)
    clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=2, random_state=0).fit(X, y)
    return clf, X


def test_fork_child_after_parallel_kernels_predicts_without_hanging(big, clf_and_data):
    model, X = big
    clf, X_small = clf_and_data
    model.predict_proba(X)  # the parent's OpenMP pool is up and used when the child forks
    _INHERITED.update(model=model, X=X)
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns that forking a threaded process may deadlock: the point here
            warnings.simplefilter("ignore", DeprecationWarning)
            with multiprocessing.get_context("fork").Pool(1) as pool:
                from_model = pool.apply_async(_child_predict_inherited, ("model",))
                from_clf = pool.apply_async(_child_predict_clf, (clf, X_small))
                proba, child_lanes = from_model.get(timeout=HANG_TIMEOUT)
                clf_proba = from_clf.get(timeout=HANG_TIMEOUT)
    finally:
        _INHERITED.clear()
    assert child_lanes == 1  # the engine runs the serial kernels in a forked child
    expected = model.predict_proba(X)
    np.testing.assert_array_equal(proba.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(clf_proba, clf.predict_proba(X_small), rtol=1e-5, atol=1e-7)


def test_spawn_child_predicts_like_the_parent(big, clf_and_data, tmp_path):
    model, X = big
    clf, X_small = clf_and_data
    path = tmp_path / "m.npz"
    model.save(path)
    X_part = X[:3000]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        from_file = pool.apply_async(_child_predict_file, (path, X_part))
        from_clf = pool.apply_async(_child_predict_clf, (clf, X_small))
        proba = from_file.get(timeout=HANG_TIMEOUT)
        clf_proba = from_clf.get(timeout=HANG_TIMEOUT)
    np.testing.assert_array_equal(proba, model.predict_proba(X_part))
    np.testing.assert_array_equal(clf_proba, clf.predict_proba(X_small))


def test_joblib_workers_predict_like_the_parent(big, clf_and_data, tmp_path):
    from joblib import Parallel, delayed

    model, X = big
    clf, X_small = clf_and_data
    path = tmp_path / "m.npz"
    model.save(path)
    parts = np.array_split(X[:8000], 4)
    with Parallel(n_jobs=2, timeout=HANG_TIMEOUT) as parallel:
        got = parallel(delayed(_child_predict_file)(path, part) for part in parts)
        got_clf = parallel(delayed(_child_predict_clf)(clf, part)
                           for part in np.array_split(X_small, 2))
    for part, proba in zip(parts, got, strict=True):
        np.testing.assert_allclose(proba, model.predict_proba(part), rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(proba.argmax(axis=1), model.predict(part))
    np.testing.assert_allclose(np.vstack(got_clf), clf.predict_proba(X_small), rtol=1e-5,
                               atol=1e-7)


# -- reproducibility ----------------------------------------------------------------------------
@pytest.mark.parametrize("split,batch_size", [("rows", 200), ("units", 32), ("columns", 200)])
@pytest.mark.parametrize("optimizer,extra", [("sgd", {}), ("sgd", {"momentum": 0.9}),
                                             ("adam", {})])
def test_same_seed_is_bit_identical_on_one_and_two_threads(optimizer, extra, split, batch_size):
    X, y = fashion_like(2000, seed=4)
    sizes = [784, 100, 10]
    if split == "columns":  # hidden layers wide enough for every lane of this pool
        wide = _config.COLUMN_SPLIT_MIN_UNITS * engine.parallel_lanes()
        sizes = [784, wide, wide, 10]
    net = engine.Network(sizes, LOGISTIC, SOFTMAX, np.float32)
    trainer = engine.Trainer(net, batch_size, optimizer, learning_rate=0.1)
    if trainer.n_lanes < 2:
        pytest.skip("Numba's pool has one thread (or FASTMLP_PARALLEL=0): no parallel epoch")
    assert trainer.split == split
    lr = 0.001 if optimizer == "adam" else 0.1
    fit = dict(epochs=2, batch_size=batch_size, learning_rate=lr, optimizer=optimizer,
               progress=False, **extra)
    runs = {}
    before = numba.get_num_threads()
    try:
        for threads in (1, 2, 2, 1):
            numba.set_num_threads(threads)
            model = Model(sizes, seed=5)
            model.fit(X, y, **fit)
            runs.setdefault(threads, []).append((params(model), model.predict_proba(X)))
    finally:
        numba.set_num_threads(before)
    reference = runs[1][0]
    for threads, results in runs.items():
        for w, proba in results:
            assert np.array_equal(w, reference[0]), f"{threads} threads"
            assert np.array_equal(proba, reference[1]), f"{threads} threads"


# -- memory -------------------------------------------------------------------------------------
def test_fit_and_predict_make_no_copy_of_float32_input():
    X, y = fashion_like(12800, seed=6)  # 40 MB of float32, C-contiguous
    assert X.nbytes >= 40e6 and X.flags.c_contiguous
    fit = dict(epochs=1, batch_size=200, learning_rate=0.1, progress=False)
    Model([784, 32, 10], seed=0).fit(X[:400], y[:400], **fit)  # load the kernels first
    model = Model([784, 32, 10], seed=0)
    tracemalloc.start()
    try:
        model.fit(X, y, **fit)
        model.predict(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 8, f"peak {peak / 1e6:.1f} MB while fitting {X.nbytes / 1e6} MB"


def test_fit_from_a_memmap_equals_fit_from_memory(tmp_path):
    X, y = fashion_like(2000, seed=7)
    path = tmp_path / "X.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=X.shape)
    out[:] = X
    out.flush()
    del out
    mapped = np.load(path, mmap_mode="r")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    fit = dict(epochs=2, batch_size=200, learning_rate=0.1, progress=False)
    a, b = Model([784, 100, 10], seed=0), Model([784, 100, 10], seed=0)
    a.fit(X, y, **fit)
    b.fit(mapped, y, **fit)
    assert np.array_equal(params(a), params(b))
    np.testing.assert_array_equal(b.predict_proba(mapped), a.predict_proba(X))
    del mapped


# -- property tests of the kernels --------------------------------------------------------------
@st.composite
def networks(draw):
    dtype = draw(st.sampled_from(["float32", "float64"]))
    width = 32 if dtype == "float32" else 64
    sizes = [draw(st.integers(1, 6))]
    sizes += draw(st.lists(st.integers(1, 6), max_size=2))
    sizes.append(draw(st.integers(2, 5)))
    activation = draw(st.sampled_from(["sigmoid", "tanh", "relu", "identity"]))
    model = Model(sizes, hidden_activation=activation, dtype=dtype, seed=0)
    scale = draw(st.sampled_from([2.0**-10, 1.0, 16.0]))  # exact in float32
    for p in model.weights + model.biases:
        p[...] = draw(hnp.arrays(p.dtype, p.shape, elements=st.floats(
            -scale, scale, width=width, allow_nan=False)))
    n = draw(st.integers(1, 8))
    X = draw(hnp.arrays(model.dtype, (n, sizes[0]), elements=st.floats(
        -1e3, 1e3, width=width, allow_nan=False)))
    y = np.array(draw(st.lists(st.integers(0, sizes[-1] - 1), min_size=n, max_size=n)))
    return model, X, y


_PROPERTY = settings(max_examples=50, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_PROPERTY
@given(case=networks())
def test_finite_input_gives_probabilities_gradients_and_a_cost(case):
    model, X, y = case
    proba = model.predict_proba(X)
    assert proba.dtype == model.dtype and np.isfinite(proba).all()
    assert (proba >= 0).all() and (proba <= 1).all()
    rtol = 1e-5 if model.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(proba.sum(axis=1, dtype=np.float64), 1.0, rtol=rtol, atol=0)
    np.testing.assert_array_equal(model.predict(X), proba.argmax(axis=1))
    loss = model.loss(X, y)
    assert np.isfinite(loss) and loss >= 0
    result = model.evaluate(X, y)
    assert result["loss"] == loss and 0 <= result["accuracy"] <= 1
    dW, db = model.gradients(X, y)
    assert all(np.isfinite(g).all() for g in dW + db)
    assert [g.shape for g in dW] == [w.shape for w in model.weights]


# -- model files refused before they cost (issue 29) ---------------------------------------------
def _with_header(good, change):
    """The model file ``good`` with its JSON header changed by ``change(header_dict)``."""
    header = json.loads(_header(good))
    change(header)
    return _rewrite_member(good, "header.npy", _npy_bytes(json.dumps(header)))


def _zeros_member(data, name, n_bytes):
    """``data`` with a deflated member ``name``: a float32 .npy of ``n_bytes`` of zeros.

    Streamed into the archive a block at a time: the test itself never holds it.
    """
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as dst, \
            dst.open(name, "w", force_zip64=True) as member:
        member.write(_npy({"descr": "<f4", "fortran_order": False, "shape": (n_bytes // 4,)}))
        block = bytes(1 << 20)
        for _ in range(n_bytes >> 20):
            member.write(block)
    return out.getvalue()


@pytest.fixture(scope="module")
def crafted_files(model_file, tmp_path_factory):
    """Small files that declare or hold far more than their network: name -> path."""
    folder = tmp_path_factory.mktemp("crafted")
    _, good, _ = model_file
    files = {
        "claims [8000, 8000, 2]": _with_header(
            good, lambda h: h.update(layer_sizes=[8000, 8000, 2], classes=None)),
        "an extra 300 MB of zeros": _zeros_member(good, "extra.npy", 300 << 20),
        "weights_0 of 300 MB": _zeros_member(_drop_member(good, "weights_0.npy"),
                                             "weights_0.npy", 300 << 20),
    }
    paths = {}
    for k, (name, data) in enumerate(files.items()):
        assert len(data) < 400_000, name  # small files, all of them
        paths[name] = folder / f"crafted-{k}.npz"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize("case,message", [
    ("claims [8000, 8000, 2]", r"array weights_0 should be float32\[8000, 8000\], got "
                               r"float32\[6, 4\]"),
    ("an extra 300 MB of zeros", r"unexpected arrays \['extra'\]"),
    ("weights_0 of 300 MB", r"array weights_0 should be float32\[6, 4\], got "
                            r"float32\[78643200\]"),
])
def test_load_refuses_crafted_files_by_their_headers(crafted_files, case, message):
    with pytest.raises(ValueError, match=message):
        Model.load(crafted_files[case])


def test_load_memory_is_bounded_by_the_declared_network(model_file, crafted_files):
    # In a child process whose address space is capped 150 MiB above what it uses once a
    # model has loaded: every crafted file needs more than that to be read as np.load reads
    # it, and each must be a ValueError, not a MemoryError or a kill.
    good, _, _ = model_file
    script = textwrap.dedent("""
        import resource, sys
        from fastmlp import Model

        Model.load(sys.argv[1])  # every import, every first-call cost, paid before the cap
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f
                        if line.startswith("VmSize:"))
        cap = size + (150 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        for path in sys.argv[1:]:
            try:
                Model.load(path)
                print("loaded")
            except ValueError:
                print("ValueError")
            except MemoryError:
                print("MemoryError")
    """)
    paths = [str(good), *map(str, crafted_files.values())]
    done = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["loaded"] + ["ValueError"] * len(crafted_files)


def test_load_refuses_members_that_inflate_beyond_deflate():
    from fastmlp._files import check_npz_member

    info = zipfile.ZipInfo("weights_0.npy")
    info.compress_type, info.compress_size, info.file_size = zipfile.ZIP_DEFLATED, 1000, 10**9
    with pytest.raises(ValueError, match="claims 1000000000 bytes from 1000 deflated bytes"):
        check_npz_member(info)
    info.compress_type, info.compress_size, info.file_size = zipfile.ZIP_STORED, 10, 11
    with pytest.raises(ValueError, match="corrupt or crafted"):
        check_npz_member(info)
    info.compress_type = zipfile.ZIP_BZIP2
    with pytest.raises(ValueError, match="stored or deflated"):
        check_npz_member(info)


@pytest.fixture(scope="module")
def named_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("named") / "named.npz"
    prep = Preprocessing(["a", "b", "c", "d", "e", "f"], fill=np.arange(6.0))
    Model([6, 4, 3], seed=0, preprocessing=prep, classes=np.array(["x", "y", "z"])).save(path)
    return path.read_bytes()


def _set_prep(key, value):
    return lambda h: h["preprocessing"].update({key: value})


@pytest.mark.parametrize("change,message", [
    (_set_prep("fill", ["1", "2", "3", "4", "5", "6"]),
     "fill must be a list of numbers, got a list holding a JSON string"),
    (_set_prep("fill", [True] * 6), "fill must be a list of numbers"),
    (_set_prep("feature_names", "abcdef"), "feature_names must be a list of strings, got a "
                                           "JSON string"),
    (_set_prep("feature_names", [1, 2, 3, 4, 5, 6]), "feature_names must be a list of strings"),
    (lambda h: h.update(classes=["x", 1, "z"]), "'classes' must hold all strings or all "
                                                "numbers"),
    (lambda h: h.update(classes="xyz"), "'classes' is a JSON str"),
    (lambda h: h.update(version=True), "format version True"),
])
def test_load_refuses_header_fields_of_the_wrong_json_type(named_model_file, tmp_path, change,
                                                           message):
    path = tmp_path / "bad.npz"
    path.write_bytes(_with_header(named_model_file, change))
    with pytest.raises(ValueError, match="is not a fastmlp model file") as info:
        Model.load(path)
    assert message in str(info.value)


def test_data_loaders_refuse_what_could_inflate_before_reading(tmp_path):
    import gzip

    from fastmlp import datasets

    # an IDX header declaring 1 GB, gzipped with a few bytes of data: refused from the sizes
    idx = tmp_path / "big-idx3-ubyte.gz"
    idx.write_bytes(gzip.compress(b"\0\0\x08\x03" + (1000).to_bytes(4, "big") * 3 + b"\0" * 64))
    with pytest.raises(ValueError, match="more than the .* bytes of the gzip file can hold"):
        datasets.load_idx(idx)
    # an .npz of bzip2 members (zipfile reads them; NumPy never writes them): refused unread
    npz = tmp_path / "split.npz"
    with zipfile.ZipFile(npz, "w", compression=zipfile.ZIP_BZIP2) as z:
        for key in ("X_train", "y_train", "X_test", "y_test"):
            z.writestr(f"{key}.npy", _npy_bytes(np.zeros((4, 2) if key[0] == "X" else 4)))
    with pytest.raises(ValueError, match="stored or deflated"):
        datasets.load_npz(npz)
