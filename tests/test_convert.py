"""Conversion between fastmlp's estimators or Model and plain scikit-learn estimators.

A converted estimator must hold the very state of the one it came from (parameters, every
fitted attribute, the optimizer), so it predicts the same and its ``partial_fit`` goes on the
same. Tolerances: conversions copy, so the state agrees exactly and the predictions to
rounding: float64 rtol 1e-12, float32 rtol 1e-6, and, as outputs of order one may cancel to
near zero in a regressor's last layer, atol 1e-14 and 1e-6. A fastmlp fit and a scikit-learn
fit agree to about 1e-12 relative in float64 (test_sklearn.py, test_regressor.py): rtol 1e-9
against a scikit-learn fit (1e-7 after L-BFGS, whose line search amplifies rounding). In
float32, where the two fits agree only within scikit-learn's own spread, the check against
scikit-learn is of the attribute names and dtypes only. One more step from the same state on
both sides agrees to rtol 1e-10 (float64) and 1e-5 (float32).
"""

import copy
import types

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler

import fastmlp
from fastmlp import Model, Preprocessing
from fastmlp import convert as _convert
from fastmlp.convert import model_to_sklearn
from fastmlp.sklearn import BaseMultilayerPerceptron, MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: predictions after a conversion, (rtol, atol) by dtype
COPY_TOL = {np.float64: (1e-12, 1e-14), np.float32: (1e-6, 1e-6)}
#: one more step from the same state, (rtol, atol) by dtype
STEP_TOL = {np.float64: (1e-10, 1e-13), np.float32: (1e-5, 1e-6)}
#: a fastmlp fit against a scikit-learn fit, float64, by solver
FIT_RTOL = {"sgd": 1e-9, "adam": 1e-9, "lbfgs": 1e-7}

# -- data (small, so every test is quick) -------------------------------------------------------
_iris = load_iris()
X_IRIS = StandardScaler().fit_transform(_iris.data)
Y_IRIS = _iris.target
_diabetes = load_diabetes()
X_DIAB = StandardScaler().fit_transform(_diabetes.data[:160])
Y_DIAB = _diabetes.target[:160] / 100.0  # positive: fits either loss

KINDS = {
    # name: (fastmlp class, scikit-learn class, loss or None, X, y)
    "binary": (MLPClassifier, SkMLPClassifier, None, X_IRIS, np.where(Y_IRIS == 2, "b", "a")),
    "multiclass": (MLPClassifier, SkMLPClassifier, None, X_IRIS, Y_IRIS),
    "1 output": (MLPRegressor, SkMLPRegressor, "squared_error", X_DIAB, Y_DIAB),
    "2 outputs": (MLPRegressor, SkMLPRegressor, "squared_error", X_DIAB,
                  np.c_[Y_DIAB, np.sqrt(Y_DIAB)]),
    "poisson": (MLPRegressor, SkMLPRegressor, "poisson", X_DIAB, np.round(Y_DIAB * 3)),
}
SOLVERS = ("sgd", "adam", "lbfgs")
DTYPES = (np.float64, np.float32)

#: fastmlp's engine state, not scikit-learn's (and a buffer cache inside its optimizer)
ENGINE = {"_theta", "_theta_units", "_theta_views", "_networks", "_trainer"}
#: scikit-learn's L-BFGS unpacking table, which fastmlp does not keep
LBFGS_TABLE = {"_coef_indptr", "_intercept_indptr"}


def _setup(kind, solver, dtype, **params):
    """Return fastmlp's and scikit-learn's estimator (unfitted, same params), X and y."""
    ours, theirs, loss, X, y = KINDS[kind]
    params = {"hidden_layer_sizes": (6, 4), "activation": "tanh", "solver": solver,
              "max_iter": 4, "random_state": 0, "batch_size": 50, "learning_rate_init": 0.01,
              **params}
    if loss is not None:
        params["loss"] = loss
    return ours(**params), theirs(**params), X.astype(dtype), y


def _outputs(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


def _continue(est, X, y):
    """One more step: partial_fit where there is one, else a 2-iteration warm_start fit."""
    if isinstance(est, (MLPRegressor, SkMLPRegressor)) or est.solver != "lbfgs":
        return est.partial_fit(X, y)
    return est.set_params(warm_start=True, max_iter=2).fit(X, y)


def assert_state_equal(got, expected, rtol, path="", skip=frozenset()):
    """Assert two nested states are equal: arrays to ``rtol``, objects attribute by attribute."""
    if isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray), path
        assert got.dtype == expected.dtype and got.shape == expected.shape, path
        if got.dtype.kind in "fc":
            assert_allclose(got, expected, rtol=rtol, atol=rtol * 1e-3, err_msg=path)
        else:
            assert_array_equal(got, expected, err_msg=path)
    elif isinstance(expected, (list, tuple)):
        assert type(got) is type(expected) and len(got) == len(expected), path
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_state_equal(g, e, rtol, f"{path}[{i}]")
    elif isinstance(expected, dict):
        assert set(got) - skip == set(expected) - skip, (path, set(got) ^ set(expected))
        for key in set(expected) - skip:
            assert_state_equal(got[key], expected[key], rtol, f"{path}.{key}", skip)
    elif isinstance(expected, np.random.RandomState):
        assert_state_equal(got.get_state(), expected.get_state(), 0, path)
    elif isinstance(expected, (float, np.floating)) and not isinstance(expected, bool):
        assert isinstance(got, (float, np.floating)), path
        assert_allclose(got, expected, rtol=rtol, atol=rtol * 1e-3, err_msg=path)
    elif hasattr(expected, "__dict__") and not isinstance(expected, type):
        assert type(got).__name__ == type(expected).__name__, path
        assert_state_equal(vars(got), vars(expected), rtol, path, skip)
    else:
        assert got == expected, (path, got, expected)


def _assert_continues_alike(a, b, X, y, dtype):
    """One more step on ``a`` and ``b`` (the same state) gives the same weights."""
    rtol, atol = STEP_TOL[dtype]
    _continue(a, X, y)
    _continue(b, X, y)
    for got, expected in zip([*a.coefs_, *a.intercepts_], [*b.coefs_, *b.intercepts_],
                             strict=True):
        assert_allclose(got, expected, rtol=rtol, atol=atol)
    assert_allclose(_outputs(a, X), _outputs(b, X), rtol=rtol, atol=atol)


# -- fastmlp -> scikit-learn --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", KINDS)
def test_to_sklearn(kind, solver, dtype):
    ours, theirs, X, y = _setup(kind, solver, dtype)
    ours.fit(X, y)
    theirs.fit(X, y)
    converted = ours.to_sklearn()

    assert type(converted) is type(theirs)
    assert converted.get_params() == theirs.get_params() == ours.get_params()
    # every attribute scikit-learn's own fit has, and no other
    assert set(vars(converted)) == set(vars(theirs))
    # ... holding fastmlp's state exactly
    assert_state_equal(vars(converted), vars(ours), 0,
                       skip=ENGINE | LBFGS_TABLE | {"_optimizer"})
    # ... which is scikit-learn's, to rounding in float64 (float32 fits differ within
    # scikit-learn's own spread: dtypes only)
    if dtype == np.float64:
        assert_state_equal(vars(converted), vars(theirs), FIT_RTOL[solver])
    for got, expected in zip(converted.coefs_ + converted.intercepts_,
                             theirs.coefs_ + theirs.intercepts_, strict=True):
        assert got.dtype == expected.dtype
        assert got.flags.owndata and not np.shares_memory(got, ours._theta)
    if solver == "lbfgs":
        assert "_optimizer" not in vars(converted)
    else:
        assert type(converted._optimizer) is type(theirs._optimizer)
        assert set(vars(converted._optimizer)) == set(vars(theirs._optimizer))

    rtol, atol = COPY_TOL[dtype]
    assert_allclose(_outputs(converted, X), _outputs(ours, X), rtol=rtol, atol=atol)
    if kind in ("binary", "multiclass"):
        assert_array_equal(converted.predict(X), ours.predict(X))
    # and it goes on as fastmlp's would (the optimizer's state included)
    _assert_continues_alike(converted, ours, X, y, dtype)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_to_sklearn_optimizer_state(solver):
    ours, _, X, y = _setup("multiclass", solver, np.float64, learning_rate="invscaling")
    ours.fit(X, y)
    optimizer = ours.to_sklearn()._optimizer
    state = ours._optimizer
    if solver == "sgd":
        assert isinstance(optimizer, SGDOptimizer)
        assert optimizer.learning_rate == state.learning_rate < ours.learning_rate_init
        flat = np.concatenate([v.ravel() for v in optimizer.velocities])
        assert [v.shape for v in optimizer.velocities] == [a.shape for a in
                                                           ours.coefs_ + ours.intercepts_]
        assert_array_equal(flat, state.state_1)
    else:
        assert isinstance(optimizer, AdamOptimizer)
        assert optimizer.t == state.step[0] == 4 * 3  # 4 epochs of 3 batches
        assert_array_equal(np.concatenate([m.ravel() for m in optimizer.ms]), state.state_1)
        assert_array_equal(np.concatenate([v.ravel() for v in optimizer.vs]), state.state_2)


# -- scikit-learn -> fastmlp --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", KINDS)
def test_from_sklearn(kind, solver, dtype):
    ours, theirs, X, y = _setup(kind, solver, dtype)
    theirs.fit(X, y)
    converted = type(ours).from_sklearn(theirs)

    assert type(converted) is type(ours)
    assert converted.get_params() == theirs.get_params()
    assert set(vars(converted)) - ENGINE == set(vars(theirs)) - LBFGS_TABLE
    assert_state_equal(vars(converted), vars(theirs), 0,
                       skip=ENGINE | LBFGS_TABLE | {"_optimizer"})
    if solver != "lbfgs":
        assert converted._optimizer.solver == solver
    # fastmlp's engine state: coefs_ and intercepts_ are views into one fresh flat vector
    assert converted._views_intact()
    for got, expected in zip(converted.coefs_, theirs.coefs_, strict=True):
        assert not np.shares_memory(got, expected)

    rtol, atol = COPY_TOL[dtype]
    assert_allclose(_outputs(converted, X), _outputs(theirs, X), rtol=rtol, atol=atol)
    if kind in ("binary", "multiclass"):
        assert_array_equal(converted.predict(X), theirs.predict(X))
    _assert_continues_alike(converted, theirs, X, y, dtype)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", ["binary", "multiclass", "2 outputs", "poisson"])
def test_round_trip(kind, solver):
    ours, _, X, y = _setup(kind, solver, np.float64)
    ours.fit(X, y)
    back = type(ours).from_sklearn(ours.to_sklearn())
    assert back.get_params() == ours.get_params()
    assert_state_equal(vars(back), vars(ours), 0, skip=ENGINE)
    assert_array_equal(_outputs(back, X), _outputs(ours, X))
    _assert_continues_alike(back, ours, X, y, np.float64)


def test_base_class_picks_the_counterpart():
    _, theirs, X, y = _setup("1 output", "adam", np.float64)
    assert type(BaseMultilayerPerceptron.from_sklearn(theirs.fit(X, y))) is MLPRegressor
    assert fastmlp.MLPClassifier is MLPClassifier  # the public name has the methods too


@pytest.mark.parametrize("kind", ["binary", "1 output"])
def test_early_stopping(kind):
    # the best weights are restored into coefs_, which is then the very list _best_coefs is
    ours, theirs, X, y = _setup(kind, "adam", np.float64, early_stopping=True, max_iter=30,
                                n_iter_no_change=2, validation_fraction=0.2)
    if y.dtype.kind == "U":
        # integer labels: scikit-learn < 1.8 (all Python 3.10 gets) scores early stopping
        # with np.isnan on the predicted labels, which fails for strings
        y = np.unique(y, return_inverse=True)[1]
    ours.fit(X, y)
    theirs.fit(X, y)
    converted = ours.to_sklearn()
    back = type(ours).from_sklearn(theirs)
    assert len(converted.validation_scores_) == converted.n_iter_ > 0
    assert converted.best_loss_ is None
    assert_state_equal(vars(converted), vars(theirs), FIT_RTOL["adam"])
    for est in (converted, back):
        assert est._best_coefs is est.coefs_ and est._best_intercepts is est.intercepts_
    # a warm_start fit goes on from the best weights and the best score on every side
    for est in (ours, theirs, converted, back):
        est.set_params(warm_start=True, max_iter=3).fit(X, y)
    assert_state_equal(vars(converted), vars(ours), 1e-12, skip=ENGINE | {"_optimizer"})
    assert_state_equal(vars(back), vars(theirs), 1e-12, skip=ENGINE | {"_optimizer"})


def test_feature_names():
    pd = pytest.importorskip("pandas")
    ours, _, X, y = _setup("multiclass", "adam", np.float64)
    frame = pd.DataFrame(X, columns=["sepal l", "sepal w", "petal l", "petal w"])
    converted = ours.fit(frame, y).to_sklearn()
    assert_array_equal(converted.feature_names_in_, ours.feature_names_in_)
    assert converted.feature_names_in_.dtype == object
    assert_array_equal(MLPClassifier.from_sklearn(converted).predict(frame), ours.predict(frame))


def test_random_state_copied_not_shared():
    ours, _, X, y = _setup("multiclass", "sgd", np.float64,
                           random_state=np.random.RandomState(3))
    converted = ours.fit(X, y).to_sklearn()
    # copied as sklearn.base.clone copies it, and scikit-learn's alias of it kept
    assert converted.random_state is not ours.random_state
    assert converted._random_state is converted.random_state
    assert_array_equal(converted.random_state.get_state()[1], ours.random_state.get_state()[1])
    # random_state=None draws from NumPy's global RandomState, which stays the global one
    ours.set_params(random_state=None).fit(X, y)
    assert ours.to_sklearn()._random_state is np.random.mtrand._rand


def test_conversions_are_independent():
    ours, _, X, y = _setup("multiclass", "adam", np.float64)
    ours.fit(X, y)
    before = copy.deepcopy(ours.coefs_)
    converted = ours.to_sklearn()
    converted.partial_fit(X, y)
    converted.loss_curve_.append(0.0)
    assert_state_equal(ours.coefs_, before, 0)
    assert len(ours.loss_curve_) == ours.n_iter_


# -- errors -------------------------------------------------------------------------------------
def test_not_fitted():
    with pytest.raises(NotFittedError, match="fit it before converting"):
        MLPClassifier().to_sklearn()
    with pytest.raises(NotFittedError, match="fit it before converting"):
        MLPRegressor.from_sklearn(SkMLPRegressor())


def test_wrong_class():
    _, theirs, X, y = _setup("1 output", "lbfgs", np.float64)
    theirs.fit(X, y)
    with pytest.raises(TypeError, match=r"takes a fitted sklearn.neural_network.MLPClassifier;"
                                        r".*MLPRegressor: convert it with fastmlp.MLPRegressor"):
        MLPClassifier.from_sklearn(theirs)
    with pytest.raises(TypeError, match="takes a fitted .*got .*LogisticRegression"):
        MLPClassifier.from_sklearn(LogisticRegression().fit(X_IRIS, Y_IRIS))
    with pytest.raises(TypeError, match="fastmlp's own MLPRegressor, which needs no conversion"):
        MLPRegressor.from_sklearn(MLPRegressor.from_sklearn(theirs))
    with pytest.raises(TypeError, match="takes a fitted"):
        MLPRegressor.from_sklearn("MLPRegressor")
    with pytest.raises(TypeError, match="BaseMultilayerPerceptron.from_sklearn takes a fitted "
                                        "sklearn.neural_network.MLPClassifier or MLPRegressor"):
        BaseMultilayerPerceptron.from_sklearn(LogisticRegression())


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_onnx(kind):
    # what to_sklearn is for: scikit-learn's tooling serves the model without fastmlp
    to_onnx = pytest.importorskip("skl2onnx").to_onnx
    ort = pytest.importorskip("onnxruntime")
    ours, _, X, y = _setup(kind, "adam", np.float32)
    ours.fit(X, y)
    onx = to_onnx(ours.to_sklearn(), X[:1], options={"zipmap": False})
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {"X": X})
    assert_array_equal(label, ours.predict(X))
    assert_allclose(proba, ours.predict_proba(X), rtol=1e-5, atol=1e-6)


# -- fastmlp.Model -> scikit-learn -------------------------------------------------------------
ACTIVATIONS = ["sigmoid", "logistic", "tanh", "relu", "identity"]
SK_ACTIVATION = {"sigmoid": "logistic"}


def _model(sizes, output, activation, dtype, classes=None, epochs=0, seed=0):
    """A Model trained ``epochs`` epochs on random data (inputs ~ N(0, 1))."""
    model = Model(sizes, output=output, hidden_activation=activation, dtype=dtype, seed=seed,
                  classes=classes)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((60, sizes[0])).astype(dtype)
    if epochs:
        if output == "softmax":
            y = rng.integers(0, sizes[-1], 60)
        else:
            y = rng.random((60, sizes[-1])).squeeze(axis=1) if sizes[-1] == 1 else rng.random(
                (60, sizes[-1]))
        model.fit(X, y, epochs=epochs, batch_size=16, learning_rate=0.1, progress=False)
    return model, X


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("classes", [["no", "yes"], [20, 10], ["c", "a", "b"], None])
def test_model_softmax(classes, activation, dtype):
    k = 3 if classes is None else len(classes)
    model, X = _model([4, 5, 3, k], "softmax", activation, dtype, classes=classes, epochs=2)
    est = model_to_sklearn(model)

    assert type(est) is SkMLPClassifier
    sk_activation = SK_ACTIVATION.get(activation, activation)
    expected = SkMLPClassifier(hidden_layer_sizes=(5, 3), activation=sk_activation)
    assert est.get_params() == expected.get_params()
    # classes_ sorted, as scikit-learn keeps them; the output units follow
    order = np.argsort(model.classes)
    assert_array_equal(est.classes_, model.classes[order])
    assert est.out_activation_ == ("logistic" if k == 2 else "softmax")
    assert est.n_outputs_ == (1 if k == 2 else k) and est.n_layers_ == 4
    assert est.n_features_in_ == 4
    assert all(c.dtype == model.dtype for c in est.coefs_ + est.intercepts_)
    # the binary form's 1 - p rounds near p = 1: an absolute tolerance too
    rtol, atol = COPY_TOL[np.dtype(dtype).type]
    assert_allclose(est.predict_proba(X), model.predict_proba(X)[:, order], rtol=rtol,
                    atol=atol)
    assert_array_equal(est.predict(X), model.classes[model.predict(X)])
    # the history, and a fit that can go on
    assert est.n_iter_ == 2 and est.loss_curve_ == model.history.loss
    assert est.loss_ == model.history.loss[-1] and est.best_loss_ == min(model.history.loss)
    est.partial_fit(X, model.classes[model.predict(X)])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(("output", "n_out"), [("identity", 1), ("identity", 2), ("exp", 1),
                                               ("exp", 3)])
def test_model_regression(output, n_out, activation, dtype):
    model, X = _model([4, 6, n_out], output, activation, dtype, epochs=3)
    est = model_to_sklearn(model)

    assert type(est) is SkMLPRegressor
    loss = "poisson" if output == "exp" else "squared_error"
    expected = SkMLPRegressor(loss=loss, hidden_layer_sizes=(6,),
                              activation=SK_ACTIVATION.get(activation, activation))
    assert est.get_params() == expected.get_params()
    assert est.out_activation_ == output and est.n_outputs_ == n_out
    got, want = est.predict(X), model.predict(X)
    assert got.shape == want.shape and got.dtype == want.dtype
    rtol, atol = COPY_TOL[np.dtype(dtype).type]
    assert_allclose(got, want, rtol=rtol, atol=atol)
    assert est.n_iter_ == 3
    est.partial_fit(X, np.abs(want))


@pytest.mark.parametrize("output", ["softmax", "identity"])
def test_model_attributes_as_sklearn_fit(output):
    # every attribute scikit-learn's own (default, 'adam') fit sets, for any network
    model, X = _model([4, 3], output, "relu", "float64")  # no hidden layer, never trained
    est = model_to_sklearn(model)
    ref = type(est)(hidden_layer_sizes=(), max_iter=1, random_state=0)
    ref.fit(X, model.predict(X))
    assert set(vars(ref)) - {"_optimizer", "loss_"} == set(vars(est))
    assert est.n_iter_ == 0 and est.loss_curve_ == [] and est.best_loss_ == np.inf
    assert est.hidden_layer_sizes == () and [c.shape for c in est.coefs_] == [(4, 3)]
    if output == "softmax":
        assert isinstance(est._label_binarizer, LabelBinarizer)
    # copies: the model's weights stay the model's
    est.coefs_[0][...] = 0.0
    assert np.abs(model.weights[0]).max() > 0


def test_model_preprocessing():
    model, X = _model([3, 4, 2], "softmax", "tanh", "float64", classes=["x", "y"])
    X = X * [1.0, 10.0, 100.0] + [5.0, -3.0, 0.0]
    X[::7, 1] = np.nan
    model.preprocessing = Preprocessing.fit(X, ["a", "b", "c"], fill="mean", scale="standard")
    pipe = model_to_sklearn(model)
    assert isinstance(pipe, Pipeline) and [name for name, _ in pipe.steps] == [
        "impute", "scale", "mlp"]
    assert_array_equal(pipe.steps[0][1].statistics_, model.preprocessing.fill)
    assert_array_equal(pipe.feature_names_in_, ["a", "b", "c"])
    with pytest.warns(UserWarning, match="feature names"):
        proba = pipe.predict_proba(X)  # NumPy X, where the pipeline knows the names
    assert_allclose(proba, model.predict_proba(X), rtol=1e-12)

    # standardising only; names only (no steps: the estimator keeps them)
    model.preprocessing = Preprocessing(mean=[5.0, -3.0, 0.0], scale=[1.0, 10.0, 100.0])
    pipe = model_to_sklearn(model)
    assert [name for name, _ in pipe.steps] == ["scale", "mlp"]
    assert_allclose(pipe.predict_proba(np.nan_to_num(X)),
                    model.predict_proba(np.nan_to_num(X)), rtol=1e-12)
    model.preprocessing = Preprocessing(["a", "b", "c"])
    est = model_to_sklearn(model)
    assert type(est) is SkMLPClassifier
    assert_array_equal(est.feature_names_in_, ["a", "b", "c"])


def test_model_errors(monkeypatch):
    model, _ = _model([3, 4, 3], "softmax", "tanh", "float64", classes=[0.5, 1.5, 2.5])
    with pytest.raises(ValueError, match=r"classes \[0.5, 1.5, 2.5\] have no scikit-learn"):
        model_to_sklearn(model)
    stub = types.SimpleNamespace(output="softmax", hidden_activation="softplus",
                                 layer_sizes=(3, 2))
    with pytest.raises(ValueError, match="hidden_activation='softplus' has no scikit-learn"):
        model_to_sklearn(stub)
    stub.hidden_activation, stub.output = "relu", "sigmoid"
    stub.weights, stub.biases = [np.zeros((3, 2))], [np.zeros(2)]
    with pytest.raises(ValueError, match="output='sigmoid' has no scikit-learn equivalent"):
        model_to_sklearn(stub)

    class OldMLPRegressor(SkMLPRegressor):  # scikit-learn before 1.7: no loss parameter
        @classmethod
        def _get_param_names(cls):
            return [n for n in super()._get_param_names() if n != "loss"]

    monkeypatch.setattr(_convert, "SkMLPRegressor", OldMLPRegressor)
    model, X = _model([3, 2], "exp", "relu", "float64")
    with pytest.raises(ValueError, match=r"output='exp' \(loss='poisson'\) has no scikit-learn"):
        model_to_sklearn(model)
    model, X = _model([3, 2], "identity", "relu", "float64")
    assert_allclose(model_to_sklearn(model).predict(X), model.predict(X), rtol=1e-12)


# -- scikit-learn -> fastmlp.Model ---------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("make", [
    lambda: SkMLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
    lambda: SkMLPClassifier(hidden_layer_sizes=(8, 5), activation="logistic", max_iter=30,
                            random_state=0),
    lambda: fastmlp.MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", max_iter=30,
                                  random_state=0),
    lambda: SkMLPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
    lambda: SkMLPRegressor(hidden_layer_sizes=(8,), loss="poisson", max_iter=30,
                           random_state=0),
])
@pytest.mark.parametrize("binary", [False, True])
def test_model_from_sklearn_computes_what_the_estimator_computes(make, binary):
    X, y = load_iris(return_X_y=True)
    estimator = make()
    if hasattr(estimator, "predict_proba"):
        labels = np.array(["setosa", "versicolor", "virginica"])[y]
        if binary:
            labels = np.where(y == 0, "no", "yes")
        estimator.fit(X, labels)
        model = Model.from_sklearn(estimator)
        np.testing.assert_allclose(model.predict_proba(X), estimator.predict_proba(X),
                                   rtol=0, atol=1e-13)
        np.testing.assert_array_equal(model.classes[model.predict(X)], estimator.predict(X))
    else:
        target = X[:, :2] if binary else X[:, 0]
        estimator.fit(X, target)
        model = Model.from_sklearn(estimator)
        assert model.output == ("exp" if estimator.loss == "poisson" else "identity")
        np.testing.assert_allclose(model.predict(X), estimator.predict(X), rtol=1e-12)
    back = model.to_sklearn()
    assert back.get_params()["hidden_layer_sizes"] == tuple(estimator.hidden_layer_sizes)


def test_model_from_sklearn_refuses_what_it_cannot_hold():
    X, y = load_iris(return_X_y=True)
    multilabel = SkMLPClassifier(hidden_layer_sizes=(4,), max_iter=300, random_state=0)
    with pytest.warns(ConvergenceWarning):
        multilabel.fit(X, np.c_[y == 0, y == 1])
    with pytest.raises(ValueError, match="multilabel"):
        Model.from_sklearn(multilabel)
    with pytest.raises(TypeError, match="MLPClassifier or MLPRegressor"):
        Model.from_sklearn(object())


# -- export of every output kind, and the opset it reports (issue 29) ---------------------------
@pytest.mark.parametrize("n_out", [1, 2])
def test_export_of_an_exp_model_computes_e_to_the_z(tmp_path, capsys, n_out):
    # skl2onnx has no exp output: the export appends an Exp node to the identity network
    onnxruntime = pytest.importorskip("onnxruntime")
    from fastmlp.cli import main

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    prep = Preprocessing(["a", "b", "c"], fill=[0.0, 0.0, 0.0], mean=[0.1, 0.2, 0.3],
                         scale=[1.0, 2.0, 3.0])
    model = Model([3, 5, n_out], output="exp", seed=0, preprocessing=prep)
    path = tmp_path / "counts.npz"
    model.save(path)
    X[0, 1] = np.nan
    onnx_path = tmp_path / "counts.onnx"
    assert main(["export", str(path), "--onnx", str(onnx_path)]) == 0
    assert "outputs variable" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"X": X.astype(np.float32)})[0]
    assert_allclose(got.reshape(len(X), -1), model.predict(X).reshape(len(X), -1), rtol=1e-5)
    # the model's own sklearn estimator is left with its exp output
    assert model.to_sklearn().steps[-1][1].out_activation_ == "exp"


def test_export_reports_the_default_domains_opset(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from fastmlp import export
    from fastmlp.cli import main

    graph = onnx.helper.make_model(
        onnx.helper.make_graph([], "g", [], []),
        opset_imports=[onnx.helper.make_opsetid("ai.onnx.ml", 1),
                       onnx.helper.make_opsetid("", 21)])
    assert export.onnx_opset(graph) == 21  # the ML domain comes first here, and is not it
    path = tmp_path / "m.npz"
    Model([4, 3, 2], seed=0).save(path)
    assert main(["export", str(path), "--onnx", str(tmp_path / "m.onnx")]) == 0
    written = onnx.load(str(tmp_path / "m.onnx"))
    assert f"opset {export.onnx_opset(written)}" in capsys.readouterr().out
    assert export.onnx_opset(written) > 1
