"""Conversion between fastmlp's estimators (or a :class:`fastmlp.Model`) and scikit-learn's.

This room sits above :class:`~fastmlp.Model` and the estimators and imports both; they do not
import it. Their methods ``Model.to_sklearn``, ``Model.from_sklearn``,
``MLPClassifier.to_sklearn``, ... call it through :mod:`fastmlp._hooks`, which the package's
``__init__`` points here: so the import graph has no circle and no arrow from the core up to
a face, and scikit-learn is imported on the first conversion, not with ``import fastmlp``.

A converted estimator is scikit-learn's own class with the very state fastmlp's has (and the
other way round): the parameters, every fitted attribute, and the SGD or Adam optimizer, so
that ``predict_proba`` agrees to rounding and ``partial_fit`` or a ``warm_start`` fit goes on
as either library would have gone on. That lets skl2onnx, joblib and any scikit-learn tooling
serve a model trained by fastmlp where fastmlp is not installed.

The state is copied, never shared: the parameters and attributes are deep-copied, as
:func:`sklearn.base.clone` copies parameters (a ``RandomState`` passed as ``random_state``
too), except NumPy's global ``RandomState`` (``random_state=None``), which stays the global
one, as a fit would leave it.

Only the state each library keeps for itself is translated: fastmlp's flat parameter vector
(``coefs_`` and ``intercepts_`` are views into it) and its optimizer, whose state is one flat
vector laid out as the parameters, against scikit-learn's per-layer lists
(``SGDOptimizer.velocities``, ``AdamOptimizer.ms``/``vs``) and its L-BFGS unpacking table.
"""

import copy

import numpy as np
import sklearn
from sklearn.impute import SimpleImputer
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from fastmlp._params import bias_views, weight_views
from fastmlp.sklearn._base import BaseMultilayerPerceptron
from fastmlp.sklearn._classifier import MLPClassifier
from fastmlp.sklearn._optimizer import StochasticOptimizer
from fastmlp.sklearn._regressor import MLPRegressor

__all__ = ["SKLEARN_ACTIVATIONS", "SKLEARN_LOSSES", "from_sklearn", "model_from_estimator",
           "model_to_sklearn", "to_sklearn"]

#: fastmlp's estimators and the scikit-learn classes they reproduce.
_COUNTERPARTS = ((MLPClassifier, SkMLPClassifier), (MLPRegressor, SkMLPRegressor))

#: fastmlp's own attributes: the flat parameter vector, its layout and views, a cache.
_ENGINE_ATTRS = frozenset({"_theta", "_theta_units", "_theta_views", "_networks"})

#: scikit-learn's L-BFGS unpacking table, which fastmlp does not keep (every L-BFGS fit of
#: either library makes its own afresh).
_LBFGS_ATTRS = frozenset({"_coef_indptr", "_intercept_indptr"})

#: A Model's hidden activations by scikit-learn's names (the command's --scheduler uses it too).
SKLEARN_ACTIVATIONS = {"sigmoid": "logistic", "logistic": "logistic", "tanh": "tanh",
                       "relu": "relu", "identity": "identity"}

#: A Model's regression outputs to scikit-learn's ``MLPRegressor(loss=...)`` (the command's
#: --scheduler uses it too).
SKLEARN_LOSSES = {"identity": "squared_error", "exp": "poisson"}


# -- fastmlp's estimators -> scikit-learn's ----------------------------------------------------
def to_sklearn(estimator):
    """Return scikit-learn's estimator with the parameters and fitted state of ``estimator``.

    Parameters
    ----------
    estimator : fastmlp.MLPClassifier or fastmlp.MLPRegressor
        A fitted estimator.

    Returns
    -------
    sklearn.neural_network.MLPClassifier or sklearn.neural_network.MLPRegressor
        Fitted, with copies of every parameter and fitted attribute and, after 'sgd' or
        'adam', scikit-learn's ``SGDOptimizer``/``AdamOptimizer`` holding fastmlp's state.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        ``estimator`` is not fitted.
    ValueError
        A parameter this scikit-learn does not have.
    """
    sk_class = _sklearn_class(type(estimator))
    check_is_fitted(estimator, "coefs_", msg=(
        "This %(name)s instance is not fitted yet: fit it before converting it. (For the "
        f"parameters alone: sklearn.neural_network.{sk_class.__name__}(**est.get_params()).)"))
    params = estimator.get_params(deep=False)
    _check_param_names(params, sk_class, f"scikit-learn {sklearn.__version__}")
    memo = _copy_memo()
    converted = sk_class(**copy.deepcopy(params, memo))
    # everything the constructor did not set is fitted state; deep-copied with one memo, so
    # aliases survive (after early stopping _best_coefs is the very list coefs_ is, as in
    # scikit-learn) and coefs_/intercepts_ become arrays of their own, no longer views
    skip = converted.__dict__.keys() | _ENGINE_ATTRS | {"_optimizer"}
    state = {k: v for k, v in estimator.__dict__.items() if k not in skip}
    converted.__dict__.update(copy.deepcopy(state, memo))
    units = _layer_units(converted.coefs_)
    if converted.solver == "lbfgs":
        converted._coef_indptr, converted._intercept_indptr = _lbfgs_layout(units)
    optimizer = estimator.__dict__.get("_optimizer")
    if optimizer is not None:
        converted._optimizer = _sklearn_optimizer(
            optimizer, converted.coefs_ + converted.intercepts_, units)
    return converted


def _sklearn_optimizer(optimizer, params, units):
    """Return scikit-learn's SGDOptimizer or AdamOptimizer holding ``optimizer``'s state."""

    def per_layer(flat):  # scikit-learn's order: every weight matrix, then every bias vector
        return [a.copy() for a in (*weight_views(flat, units), *bias_views(flat, units))]

    if optimizer.solver == "sgd":
        converted = SGDOptimizer(
            params, learning_rate_init=optimizer.learning_rate_init,
            lr_schedule=optimizer.lr_schedule, momentum=optimizer.momentum,
            nesterov=optimizer.nesterov, power_t=optimizer.power_t)
        converted.learning_rate = optimizer.learning_rate
        converted.velocities = per_layer(optimizer.state_1)
        return converted
    converted = AdamOptimizer(
        params, learning_rate_init=optimizer.learning_rate_init, beta_1=optimizer.beta_1,
        beta_2=optimizer.beta_2, epsilon=optimizer.epsilon)
    t = int(optimizer.step[0])
    converted.t = t
    converted.ms = per_layer(optimizer.state_1)
    converted.vs = per_layer(optimizer.state_2)
    if t:
        # what scikit-learn's last update left (fastmlp's engine computes it per step instead);
        # its next update recomputes it, so only a reader of the attribute sees it
        converted.learning_rate = (converted.learning_rate_init
                                   * np.sqrt(1 - converted.beta_2**t)
                                   / (1 - converted.beta_1**t))
    return converted


def _lbfgs_layout(units):
    """Return scikit-learn's ``(_coef_indptr, _intercept_indptr)`` for the layer sizes."""
    coef_indptr, intercept_indptr, start = [], [], 0
    for fan_in, fan_out in zip(units[:-1], units[1:], strict=True):
        coef_indptr.append((start, start + fan_in * fan_out, (fan_in, fan_out)))
        start += fan_in * fan_out
    for fan_out in units[1:]:
        intercept_indptr.append((start, start + fan_out))
        start += fan_out
    return coef_indptr, intercept_indptr


# -- scikit-learn's estimators -> fastmlp's ----------------------------------------------------
def from_sklearn(cls, estimator):
    """Return a fastmlp estimator with the parameters and fitted state of scikit-learn's.

    Parameters
    ----------
    cls : type
        :class:`~fastmlp.MLPClassifier`, :class:`~fastmlp.MLPRegressor` (or a subclass), or
        :class:`~fastmlp.sklearn.BaseMultilayerPerceptron` to take the counterpart of
        ``estimator``'s class.
    estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
        A fitted scikit-learn estimator of the class ``cls`` reproduces.

    Returns
    -------
    estimator : cls
        Fitted, with copies of every parameter and fitted attribute and, after 'sgd' or
        'adam', scikit-learn's optimizer state.

    Raises
    ------
    TypeError
        ``estimator`` is not of the scikit-learn class ``cls`` reproduces.
    sklearn.exceptions.NotFittedError
        ``estimator`` is not fitted.
    ValueError
        A parameter fastmlp does not have, or an optimizer state that does not fit the network.
    """
    called = cls.__name__
    if not issubclass(cls, (MLPClassifier, MLPRegressor)):
        cls = next((ours for ours, theirs in _COUNTERPARTS if isinstance(estimator, theirs)),
                   None)
        if cls is None:
            raise TypeError(f"{called}.from_sklearn takes a fitted "
                            "sklearn.neural_network.MLPClassifier or MLPRegressor; got "
                            f"{type(estimator).__module__}.{type(estimator).__qualname__}")
    sk_class = _sklearn_class(cls)
    what = f"{called}.from_sklearn takes a fitted sklearn.neural_network.{sk_class.__name__}"
    if isinstance(estimator, BaseMultilayerPerceptron):
        raise TypeError(f"{what}; got fastmlp's own {type(estimator).__name__}, which needs no "
                        "conversion (copy.deepcopy copies it)")
    if not isinstance(estimator, sk_class):
        hint = next((f": convert it with fastmlp.{ours.__name__}.from_sklearn"
                     for ours, theirs in _COUNTERPARTS
                     if isinstance(estimator, theirs) and ours is not cls), "")
        raise TypeError(f"{what}; got {type(estimator).__module__}."
                        f"{type(estimator).__qualname__}{hint}")
    check_is_fitted(estimator, "coefs_", msg=(
        "This %(name)s instance is not fitted yet: fit it before converting it. (For the "
        f"parameters alone: fastmlp.{cls.__name__}(**est.get_params()).)"))
    params = estimator.get_params(deep=False)
    _check_param_names(params, cls, "fastmlp")
    memo = _copy_memo()
    converted = cls(**copy.deepcopy(params, memo))
    skip = converted.__dict__.keys() | _LBFGS_ATTRS | {"_optimizer"}
    state = {k: v for k, v in estimator.__dict__.items() if k not in skip}
    converted.__dict__.update(copy.deepcopy(state, memo))
    # one flat vector again, coefs_ and intercepts_ its views (_best_coefs keeps its alias)
    converted._ensure_theta(converted._layer_units())
    optimizer = estimator.__dict__.get("_optimizer")
    if optimizer is not None:
        converted._optimizer = _fastmlp_optimizer(optimizer, converted)
    return converted


def _fastmlp_optimizer(optimizer, estimator):
    """Return fastmlp's StochasticOptimizer holding scikit-learn's ``optimizer``'s state."""
    if isinstance(optimizer, SGDOptimizer):
        solver, states = "sgd", (optimizer.velocities,)
    elif isinstance(optimizer, AdamOptimizer):
        solver, states = "adam", (optimizer.ms, optimizer.vs)
    else:
        raise TypeError(f"the estimator's _optimizer is a {type(optimizer).__name__}, not "
                        "scikit-learn's SGDOptimizer or AdamOptimizer")
    theta = estimator._theta

    def setting(name, default):  # an SGDOptimizer has no beta_1, an AdamOptimizer no momentum
        return getattr(optimizer, name, default)

    converted = StochasticOptimizer(
        solver, theta.shape[0], theta.dtype, learning_rate_init=optimizer.learning_rate_init,
        lr_schedule=setting("lr_schedule", estimator.learning_rate),
        momentum=setting("momentum", estimator.momentum),
        nesterov=setting("nesterov", estimator.nesterovs_momentum),
        power_t=setting("power_t", estimator.power_t), beta_1=setting("beta_1", estimator.beta_1),
        beta_2=setting("beta_2", estimator.beta_2), epsilon=setting("epsilon", estimator.epsilon))
    # SGD has one state (the velocities), Adam two (the moments)
    for flat, arrays in zip((converted.state_1, converted.state_2), states, strict=False):
        # scikit-learn's lists follow its params, coefs_ + intercepts_: the flat layout's order
        packed = np.concatenate([np.ravel(a) for a in arrays])
        if packed.shape != flat.shape:
            raise ValueError(f"the optimizer's state holds {packed.shape[0]} values for a "
                             f"network of {flat.shape[0]} parameters")
        flat[...] = packed
    if solver == "sgd":
        converted.learning_rate = optimizer.learning_rate
    else:
        # fastmlp's Adam keeps learning_rate at learning_rate_init; scikit-learn's holds the
        # bias-corrected rate of its last step, recomputed at every step from t
        converted.step[0] = optimizer.t
    return converted


# -- fastmlp.Model -> scikit-learn -------------------------------------------------------------
def model_to_sklearn(model):
    """Return a fitted scikit-learn estimator that computes what ``model`` computes.

    Called by :meth:`fastmlp.Model.to_sklearn`. A softmax model becomes an
    :class:`~sklearn.neural_network.MLPClassifier` (two classes in scikit-learn's binary form,
    one logistic output of the two logits' difference; ``classes_`` sorted, as scikit-learn
    keeps them, with the output units reordered to match); an identity or exp model an
    :class:`~sklearn.neural_network.MLPRegressor` with ``loss="squared_error"`` or
    ``"poisson"``. The network is copied, the training parameters are scikit-learn's defaults,
    and the fitted attributes are those a stochastic fit leaves: ``n_iter_``, ``loss_`` and
    ``loss_curve_`` come from ``model.history`` (``t_``, the samples seen, is not recorded
    there and is 0). Then ``predict_proba`` equals the model's to rounding, and ``predict``
    gives the model's predictions (a classifier's as labels: ``model.classes[model.predict(X)]``).

    A model with :attr:`~fastmlp.Model.preprocessing` that fills or standardises its inputs
    becomes a :class:`~sklearn.pipeline.Pipeline` of ``SimpleImputer(strategy="mean")``
    and/or ``StandardScaler()``, holding those steps' values, ending in the estimator; the
    feature names become the first step's ``feature_names_in_``.

    Parameters
    ----------
    model : fastmlp.Model

    Returns
    -------
    sklearn.neural_network.MLPClassifier, sklearn.neural_network.MLPRegressor or Pipeline

    Raises
    ------
    ValueError
        A setting with no scikit-learn equivalent: ``output="exp"`` on a scikit-learn without
        ``MLPRegressor(loss="poisson")``, class names scikit-learn does not take as labels
        (floats that are not integers), an unknown hidden activation or output.
    """
    output = model.output
    activation = SKLEARN_ACTIVATIONS.get(model.hidden_activation)
    if activation is None:
        known = sorted(set(SKLEARN_ACTIVATIONS.values()))
        raise ValueError(f"the model's hidden_activation={model.hidden_activation!r} has no "
                         f"scikit-learn equivalent (it has {known})")
    sizes = [int(s) for s in model.layer_sizes]
    coefs = [np.array(W, copy=True) for W in model.weights]
    intercepts = [np.array(b, copy=True) for b in model.biases]
    # scikit-learn's MLP takes hidden_layer_sizes=() for a network without hidden layers
    network = {"hidden_layer_sizes": tuple(sizes[1:-1]), "activation": activation}
    if output == "softmax":
        estimator = SkMLPClassifier(**network)
        binarizer, order = _class_binarizer(model.classes)
        W, b = coefs[-1][:, order], intercepts[-1][order]
        if len(order) == 2:
            # scikit-learn's binary form: one logistic unit, the probability of classes_[1];
            # the softmax of two logits is the logistic of their difference
            W, b = W[:, 1:] - W[:, :1], b[1:] - b[:1]
            out_activation = "logistic"
        else:
            out_activation = "softmax"
        coefs[-1], intercepts[-1] = np.ascontiguousarray(W), np.ascontiguousarray(b)
        estimator._label_binarizer = binarizer
        estimator.classes_ = binarizer.classes_
    elif output in SKLEARN_LOSSES:
        loss = SKLEARN_LOSSES[output]
        if "loss" in SkMLPRegressor._get_param_names():
            network["loss"] = loss
        elif loss != "squared_error":
            raise ValueError(f"the model's output={output!r} (loss={loss!r}) has no scikit-learn "
                             f"{sklearn.__version__} equivalent: MLPRegressor(loss='poisson') "
                             "needs scikit-learn 1.7 or later")
        estimator = SkMLPRegressor(**network)
        out_activation = output
    else:
        raise ValueError(f"the model's output={output!r} has no scikit-learn equivalent")

    # the attributes scikit-learn's first stochastic fit ('adam', its default) sets, so that
    # predict works and partial_fit or a warm_start fit goes on from these weights
    estimator.n_features_in_ = sizes[0]
    estimator.n_outputs_ = int(coefs[-1].shape[1])
    estimator.n_layers_ = len(sizes)
    estimator.out_activation_ = out_activation
    estimator.coefs_, estimator.intercepts_ = coefs, intercepts
    estimator._best_coefs = [c.copy() for c in coefs]
    estimator._best_intercepts = [b.copy() for b in intercepts]
    estimator._random_state = check_random_state(estimator.random_state)
    history = getattr(model, "history", None)
    losses = [] if history is None else list(history.loss)
    estimator.n_iter_ = 0 if history is None else int(history.epochs)
    estimator.t_ = 0
    estimator.loss_curve_ = losses
    if losses:
        estimator.loss_ = losses[-1]
    estimator.best_loss_ = min(losses) if losses else np.inf
    estimator._no_improvement_count = 0
    estimator.validation_scores_ = None
    estimator.best_validation_score_ = None
    return _with_preprocessing(estimator, getattr(model, "preprocessing", None))


def model_from_estimator(model_class, estimator):
    """Return a :class:`fastmlp.Model` that computes what a fitted MLP estimator computes.

    The inverse of :func:`model_to_sklearn`, called by :meth:`fastmlp.Model.from_sklearn`:
    ``estimator`` is a fitted scikit-learn or fastmlp ``MLPClassifier`` or ``MLPRegressor``.
    A classifier becomes a softmax model with ``classes`` the estimator's ``classes_``; a
    binary one's single logistic unit ``z`` becomes the two logits ``(0, z)``, whose softmax
    is ``(1 - sigmoid(z), sigmoid(z))``. A regressor becomes an identity model, or an exp model
    for ``loss="poisson"``. The dtype is that of ``coefs_``.

    Raises
    ------
    TypeError
        Not an MLP estimator.
    ValueError
        A multilabel classifier (independent logistic outputs), which a softmax Model is
        not; or an unfitted estimator.
    """
    if not isinstance(estimator, (SkMLPClassifier, SkMLPRegressor, BaseMultilayerPerceptron)):
        raise TypeError(f"expected a fitted MLPClassifier or MLPRegressor (scikit-learn's or "
                        f"fastmlp's), got {type(estimator).__name__}")
    check_is_fitted(estimator, "coefs_")
    coefs = [np.asarray(W) for W in estimator.coefs_]
    intercepts = [np.asarray(b) for b in estimator.intercepts_]
    dtype = coefs[0].dtype if coefs[0].dtype in (np.float32, np.float64) else np.float64
    hidden = {"logistic": "sigmoid"}.get(estimator.activation, estimator.activation)
    out = estimator.out_activation_
    classes = None
    if hasattr(estimator, "classes_"):
        classes = np.asarray(estimator.classes_)
        if out == "logistic" and coefs[-1].shape[1] == 1 and len(classes) == 2:
            W, b = coefs[-1], intercepts[-1]
            coefs[-1] = np.concatenate([np.zeros_like(W), W], axis=1)
            intercepts[-1] = np.concatenate([np.zeros_like(b), b])
        elif out != "softmax":
            raise ValueError(f"a {type(estimator).__name__} with {coefs[-1].shape[1]} "
                             f"independent {out} outputs (multilabel) has no Model equivalent: "
                             "a Model's classes are exclusive (softmax)")
        output = "softmax"
    else:
        output = {"identity": "identity", "exp": "exp"}.get(out)
        if output is None:
            raise ValueError(f"the output activation {out!r} has no Model equivalent")
    sizes = [coefs[0].shape[0]] + [W.shape[1] for W in coefs]
    model = model_class(sizes, output=output, hidden_activation=hidden, dtype=dtype.name,
                        classes=classes)
    for view, W in zip(model.weights, coefs, strict=True):
        view[...] = W
    for view, b in zip(model.biases, intercepts, strict=True):
        view[...] = b
    return model


def _class_binarizer(classes):
    """Return scikit-learn's fitted LabelBinarizer for ``classes`` and the output unit order.

    ``order[i]`` is the model's output unit of ``binarizer.classes_[i]`` (scikit-learn keeps
    the classes sorted, and its output units in that order).
    """
    classes = np.asarray(classes)
    binarizer = LabelBinarizer()
    try:
        binarizer.fit(classes)
    except ValueError as exc:
        raise ValueError(f"the model's classes {classes.tolist()!r} have no scikit-learn "
                         f"equivalent: scikit-learn's classifiers take integer or string labels "
                         f"({exc})") from None
    order = np.argsort(classes, kind="stable")
    if binarizer.y_type_ not in ("binary", "multiclass") or not np.array_equal(
            classes[order], binarizer.classes_):
        raise ValueError(f"the model's classes {classes.tolist()!r} have no scikit-learn "
                         f"equivalent: scikit-learn takes them as {binarizer.y_type_!r} labels "
                         f"{binarizer.classes_.tolist()!r}")
    return binarizer, order


def _with_preprocessing(estimator, preprocessing):
    """Return ``estimator``, after the scikit-learn steps equivalent to ``preprocessing``."""
    if preprocessing is None:
        return estimator
    steps = []
    if preprocessing.fill is not None:
        # the mean of a single row is that row: statistics_ are the fill values exactly
        steps.append(("impute", SimpleImputer(strategy="mean").fit(
            preprocessing.fill.reshape(1, -1))))
    if preprocessing.mean is not None:
        scaler = StandardScaler().fit(preprocessing.mean.reshape(1, -1))
        scaler.mean_ = preprocessing.mean.copy()
        scaler.scale_ = preprocessing.scale.copy()
        # not kept by the model (a constant column has scale 1, as in StandardScaler)
        scaler.var_ = preprocessing.scale**2
        steps.append(("scale", scaler))
    if preprocessing.feature_names is not None:
        first = steps[0][1] if steps else estimator
        first.feature_names_in_ = np.asarray(preprocessing.feature_names, dtype=object)
    if not steps:
        return estimator
    return Pipeline([*steps, ("mlp", estimator)])


# -- shared ------------------------------------------------------------------------------------
def _sklearn_class(cls):
    """Return the scikit-learn class fastmlp's ``cls`` reproduces."""
    for ours, theirs in _COUNTERPARTS:
        if issubclass(cls, ours):
            return theirs
    raise TypeError(f"{cls.__name__} is neither fastmlp's MLPClassifier nor its MLPRegressor")


def _check_param_names(params, target, where):
    """Raise ValueError for parameters ``target``'s constructor does not take."""
    unknown = sorted(set(params) - set(target._get_param_names()))
    if unknown:
        raise ValueError(f"the parameter(s) {unknown} have no equivalent in {where}'s "
                         f"{target.__name__}")


def _copy_memo():
    """Return a deepcopy memo that keeps NumPy's global RandomState (``random_state=None``)."""
    global_rng = np.random.mtrand._rand
    return {id(global_rng): global_rng}


def _layer_units(coefs):
    return [int(c.shape[0]) for c in coefs] + [int(coefs[-1].shape[1])]
