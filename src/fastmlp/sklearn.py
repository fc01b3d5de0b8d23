"""``fastmlp.MLPClassifier``: a drop-in for :class:`sklearn.neural_network.MLPClassifier`.

The estimator reproduces scikit-learn's MLPClassifier step for step (same constructor, same
fitted attributes, same random draws, same updates, same stopping rule), while every epoch,
every L-BFGS cost-and-gradient evaluation and every prediction runs in fastmlp's compiled
engine. This is the only module of fastmlp that imports scikit-learn.

What makes the numbers equal to scikit-learn's (checked against scikit-learn 1.9):

- a fresh ``check_random_state(random_state)`` at every ``fit``/``partial_fit``; from it, in
  order: the initial weights (``W^1, b^1, W^2, b^2, ...`` uniform in
  ``+-sqrt(f / (fan_in + fan_out))``, ``f = 2`` for logistic and 6 otherwise, drawn in float64
  and cast), then the early-stopping split (``train_test_split``, stratified when there is one
  output unit), then per epoch one shuffle of the previous epoch's order, drawn as
  ``sklearn.utils.shuffle`` draws it (``RandomState.shuffle`` of ``arange(n)``);
- the cost of a batch of ``n`` rows: mean cross-entropy of probabilities clipped to
  ``[eps, 1 - eps]`` plus ``0.5 * alpha * ||W||^2 / n``; ``loss_`` is the row-weighted mean
  of the batch costs, each taken before its update;
- the optimizer (velocities, Adam's moments and step) is made afresh by ``fit`` and kept by
  ``partial_fit``; the learning-rate schedules and the ``tol``/``n_iter_no_change`` rule are
  scikit-learn's;
- L-BFGS is ``scipy.optimize.minimize(method="L-BFGS-B")`` on the flat vector (all ``W``,
  then all ``b``). scipy holds it in float64 but hands the objective the starting point's
  dtype, so, as in scikit-learn, a float32 fit computes each loss and gradient in float32,
  and leaves scipy's float64 ``coefs_``;
- in float32, each optimizer coefficient (``1 - beta_1`` included) is computed in float64 and
  rounded, and Adam's update is computed in float64 (scikit-learn's learning rate is a NumPy
  float64), as NumPy evaluates scikit-learn's expressions (see ``_kernels/optim.py``).
"""

import numbers
import warnings

import numpy as np
import scipy
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.5

    def validate_data(estimator, /, X="no_validation", y="no_validation", **kwargs):
        """Fallback for scikit-learn < 1.6 (the method form of ``validate_data``)."""
        return estimator._validate_data(X, y, **kwargs)


from fastmlp._engine import (
    PREDICT_CHUNK,
    Network,
    Trainer,
    blas_single_threaded,
    every_blas_single_threaded,
    hidden_code,
)
from fastmlp._kernels import weighted as _weighted
from fastmlp._kernels.activations import LOGISTIC, SOFTMAX
from fastmlp._kernels.checks import all_finite
from fastmlp._params import activation_offsets, bias_views, glorot_uniform, weight_views

__all__ = ["MLPClassifier"]

_STOCHASTIC_SOLVERS = ("sgd", "adam")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: Rows per chunk of a full-data weighted cost and gradient (L-BFGS with ``sample_weight``).
_LOSS_CHUNK = 8192
_SCIPY_BEFORE_1_15 = tuple(int(p) for p in scipy.__version__.split(".")[:2]) < (1, 15)


# --------------------------------------------------------------------------------------------
# Parameter validation: a local version of scikit-learn's ``_parameter_constraints`` table
# (``sklearn.utils._param_validation`` is private), with the same rules and messages.
# --------------------------------------------------------------------------------------------


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter has an invalid type or value (a ValueError and a TypeError)."""


class _Interval:
    """Numbers of ``kind`` (``numbers.Integral`` or ``numbers.Real``) in an interval."""

    def __init__(self, kind, left, right, closed):
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, val):
        if not isinstance(val, self.kind):
            return False
        if not isinstance(val, numbers.Integral) and np.isnan(val):
            return False
        left = -np.inf if self.left is None else self.left
        right = np.inf if self.right is None else self.right
        if val < left or (val == left and self.closed not in ("left", "both")):
            return False
        if val > right or (val == right and self.closed not in ("right", "both")):
            return False
        return True

    def __str__(self):
        integral = self.kind is numbers.Integral
        left = "-inf" if self.left is None else (self.left if integral else float(self.left))
        right = "inf" if self.right is None else (self.right if integral else float(self.right))
        return (f"{'an int' if integral else 'a float'} in the range "
                f"{'[' if self.closed in ('left', 'both') else '('}{left}, "
                f"{right}{']' if self.closed in ('right', 'both') else ')'}")


class _Options:
    """One of a set of values (strings, or e.g. ``np.inf``)."""

    def __init__(self, kind, options):
        self.kind, self.options = kind, options

    def is_satisfied_by(self, val):
        return isinstance(val, self.kind) and val in self.options

    def __str__(self):
        listed = ", ".join(repr(o) if isinstance(o, str) else str(o)
                           for o in sorted(self.options, key=str))
        return f"a {'str' if self.kind is str else 'float'} among {{{listed}}}"


class _Predicate:
    """A constraint given by a predicate and its description."""

    def __init__(self, predicate, description):
        self.predicate, self.description = predicate, description

    def is_satisfied_by(self, val):
        return self.predicate(val)

    def __str__(self):
        return self.description


def _is_array_like(val):
    # scikit-learn's "array-like": has a length, a shape or __array__, and is not a scalar
    return (not sp.issparse(val)
            and (hasattr(val, "__len__") or hasattr(val, "shape") or hasattr(val, "__array__"))
            and not np.isscalar(val))


_ARRAY_LIKE = _Predicate(_is_array_like, "an array-like")
_BOOLEAN = _Predicate(lambda v: isinstance(v, (bool, np.bool_)),
                      "an instance of 'bool' or an instance of 'numpy.bool'")
_VERBOSE = _Predicate(
    lambda v: isinstance(v, (bool, np.bool_))
    or _Interval(numbers.Integral, 0, None, "left").is_satisfied_by(v),
    "an int in the range [0, inf), an instance of 'bool' or an instance of 'numpy.bool'",
)
_RANDOM_STATE = _Predicate(
    lambda v: v is None or isinstance(v, np.random.RandomState)
    or _Interval(numbers.Integral, 0, 2**32 - 1, "both").is_satisfied_by(v),
    "an int in the range [0, 4294967295], an instance of 'numpy.random.mtrand.RandomState' "
    "or None",
)


def _validate_parameters(constraints, params, caller_name):
    """Raise InvalidParameterError for the first parameter no constraint accepts."""
    for name, value in params.items():
        allowed = constraints.get(name)
        if allowed is None or any(c.is_satisfied_by(value) for c in allowed):
            continue
        if len(allowed) == 1:
            described = str(allowed[0])
        else:
            described = ", ".join(str(c) for c in allowed[:-1]) + f" or {allowed[-1]}"
        raise InvalidParameterError(
            f"The {name!r} parameter of {caller_name} must be {described}. "
            f"Got {value!r} instead."
        )


def _check_sample_weight(sample_weight, X):
    """``sample_weight`` as a 1-D float array of length ``n_samples`` (scikit-learn's rules)."""
    n_samples = X.shape[0]
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight)
    else:
        sample_weight = check_array(sample_weight, accept_sparse=False, ensure_2d=False,
                                    dtype=[np.float64, np.float32], order="C",
                                    input_name="sample_weight")
        if sample_weight.ndim != 1:
            raise ValueError(
                f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D array. "
                f"Expected either a scalar value or a 1D array of length {n_samples}."
            )
        if sample_weight.shape != (n_samples,):
            raise ValueError(
                f"sample_weight.shape == {sample_weight.shape}, expected {(n_samples,)}!"
            )
    if np.all(sample_weight == 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sample_weight


def _same_classes(classes_, classes):
    """Return True when ``classes``, numbers or strings, holds ``classes_`` exactly.

    The common case of every ``partial_fit`` call, checked without ``unique_labels`` (whose
    ``type_of_target`` costs about 0.7 ms); False sends it there, for its checks and errors.
    """
    if type(classes) in (list, tuple):
        try:
            classes = np.asarray(classes)
        except ValueError:  # ragged: unique_labels says what is wrong
            return False
    return (type(classes) is np.ndarray and classes.ndim == 1 and classes.dtype.kind in "iuUS"
            and classes.dtype.kind == classes_.dtype.kind
            and np.array_equal(classes_, np.unique(classes)))


def _check_partial_fit_first_call(clf, classes=None):
    """Return True on the first ``partial_fit`` call, where ``classes_`` is set from ``classes``."""
    if getattr(clf, "classes_", None) is None and classes is None:
        raise ValueError("classes must be passed on the first call to partial_fit.")
    if classes is not None:
        if getattr(clf, "classes_", None) is not None:
            if _same_classes(clf.classes_, classes):
                return False
            if not np.array_equal(clf.classes_, unique_labels(classes)):
                raise ValueError(
                    f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                    f"was: {clf.classes_!r}"
                )
        else:
            clf.classes_ = unique_labels(classes)
            return True
    return False


def _check_lbfgs_result(result, max_iter):
    """Return the iterations of an L-BFGS run; warn as scikit-learn when it failed."""
    n_iter = min(result.nit, max_iter)
    if result.status != 0:
        msg = (f"lbfgs failed to converge after {n_iter} iteration(s) "
               f"(status={result.status}):\n{result.message}\n")
        if n_iter == max_iter:
            msg += ("\nIncrease the number of iterations to improve the convergence "
                    f"(max_iter={max_iter}).")
        msg += ("\nYou might also want to scale the data as shown in:\n"
                "    https://scikit-learn.org/stable/modules/preprocessing.html")
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
    return n_iter


def _as_csr(X, dtype):
    """``X`` as CSR with sorted, unique indices and data of ``dtype`` (never densified)."""
    X = X.tocsr()  # no copy when it already is CSR (a matrix or an array)
    if X.dtype != dtype:
        X = X.astype(dtype)
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()  # the CSR kernels write entries, they do not add duplicates
    return X


# --------------------------------------------------------------------------------------------
# Optimizer state, kept on the estimator as scikit-learn keeps ``_optimizer``.
# --------------------------------------------------------------------------------------------


class _StochasticOptimizer:
    """SGD or Adam settings and state (velocity or moments, Adam's step), and the schedule.

    Mirrors scikit-learn's ``SGDOptimizer``/``AdamOptimizer``: the settings are taken when it
    is made (``fit`` makes a new one, ``partial_fit`` keeps it), the learning rate follows
    ``iteration_ends``/``trigger_stopping``. The engine's :class:`~fastmlp._engine.Trainer`
    (buffers sized for one batch size) is built on demand around this state and not pickled.
    """

    def __init__(self, solver, n_params, dtype, *, learning_rate_init, lr_schedule, momentum,
                 nesterov, power_t, beta_1, beta_2, epsilon):
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.state_1 = np.zeros(n_params, dtype=dtype)
        self.state_2 = np.zeros(n_params if solver == "adam" else 0, dtype=dtype)
        self.step = np.zeros(1, dtype=np.int64)  # Adam's t
        self._trainer = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_trainer"] = None  # buffers only; rebuilt on the next partial_fit
        return state

    def trainer(self, network, batch_size, alpha):
        """Return the engine's Trainer for ``network`` and ``batch_size``, on this state."""
        t = self._trainer
        if (t is None or t.batch_size != batch_size or t.network.layer_sizes
                != network.layer_sizes or t.network.dtype != network.dtype
                or t.network.hidden_act != network.hidden_act
                or t.network.out_act != network.out_act):
            dtype = network.dtype
            if self.state_1.dtype != dtype or self.state_1.shape[0] != network.n_params:
                raise ValueError("the network changed shape or dtype since the optimizer was "
                                 "made; refit with fit() instead of partial_fit()")
            t = Trainer(network, batch_size, self.solver, learning_rate=self.learning_rate,
                        momentum=self.momentum if self.solver == "sgd" else 0.0,
                        nesterov=bool(self.nesterov) and self.solver == "sgd",
                        beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                        l2=0.0, l2_per_sample=alpha, clip_eps=float(np.finfo(dtype).eps),
                        # the state lives here, across Trainers (partial_fit, new batch sizes)
                        state=(self.state_1, self.state_2, self.step))
            self._trainer = t
        t.l2_per_sample = float(alpha)
        t.learning_rate = (self.learning_rate if self.solver == "sgd"
                           else self.learning_rate_init)
        return t

    def iteration_ends(self, time_step):
        """Learning-rate update at the end of an epoch ('invscaling' uses ``t_``)."""
        if self.solver == "sgd" and self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """Return True to stop; 'adaptive' SGD divides the rate by 5 until it is <= 1e-6."""
        if self.solver != "sgd" or self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(f"{msg} Setting learning rate to {self.learning_rate:f}")
        return False


class _Rollback:
    """The estimator's state before a ``fit``/``partial_fit``, put back if the call raises.

    A failed call (bad data or settings, a cost that stopped being finite) must not leave a
    half-changed model: new ``classes_`` or ``n_features_in_`` with the old weights, or
    weights moved by part of an epoch. Training rebinds the attributes, except the
    parameters, the optimizer's state and the curves, which it updates in place; those are
    copied (or, for the curves, their lengths noted). A ``RandomState`` passed as
    ``random_state`` is put back too, so a retry draws what the failed call drew.
    """

    def __init__(self, est):
        self.est = est
        self.attrs = est.__dict__.copy()
        self.arrays = []
        theta = self.attrs.get("_theta")
        if isinstance(theta, np.ndarray):
            self.arrays.append((theta, theta.copy()))
        self.optimizer = self.attrs.get("_optimizer")
        self.optimizer_attrs = None
        if isinstance(self.optimizer, _StochasticOptimizer):
            self.optimizer_attrs = self.optimizer.__dict__.copy()
            for a in (self.optimizer.state_1, self.optimizer.state_2, self.optimizer.step):
                self.arrays.append((a, a.copy()))
        self.curves = [(self.attrs[k], len(self.attrs[k]))
                       for k in ("loss_curve_", "validation_scores_")
                       if isinstance(self.attrs.get(k), list)]
        rs = est.random_state
        self.random_state = (rs, rs.get_state()) if isinstance(rs, np.random.RandomState) else None

    def restore(self):
        for arr, saved in self.arrays:
            arr[...] = saved
        for curve, n in self.curves:
            del curve[n:]
        if self.optimizer_attrs is not None:
            self.optimizer.__dict__.clear()
            self.optimizer.__dict__.update(self.optimizer_attrs)
        if self.random_state is not None:
            self.random_state[0].set_state(self.random_state[1])
        self.est.__dict__.clear()
        self.est.__dict__.update(self.attrs)


# --------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer Perceptron classifier, trained by fastmlp's compiled engine.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier`: the same parameters, defaults,
    fitted attributes and methods. Given the same data, arguments and ``random_state`` it draws
    the same initial weights, visits the samples in the same order, makes the same updates and
    stops at the same iteration, so ``coefs_``, ``intercepts_``, ``loss_curve_``, ``n_iter_``
    and the predictions agree with scikit-learn's to rounding; each epoch (all its
    mini-batches) runs as one compiled call. In float64 that is about 1e-12. In float32 it
    means within scikit-learn's own spread: the weights depart from scikit-learn's by no more
    than scikit-learn's move when X moves by one ulp (docs/migrating.md has the measurements;
    relu with Adam is chaotic in scikit-learn itself, and its spread is up to 0.06 after five
    Fashion-MNIST epochs).

    This model optimizes the log-loss function using LBFGS or stochastic gradient descent.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element represents the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function for the hidden layers: ``f(x) = x``, ``1 / (1 + exp(-x))``,
        ``tanh(x)`` or ``max(0, x)``.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The solver for weight optimization: L-BFGS (``scipy.optimize.minimize``), stochastic
        gradient descent, or Adam (Kingma and Ba).
    alpha : float, default=0.0001
        Strength of the L2 regularization term. The L2 regularization term is divided by the
        sample size (of the batch) when added to the loss.
    batch_size : int, default='auto'
        Size of minibatches for stochastic optimizers; ``'auto'`` is
        ``min(200, n_samples)``. Not used by 'lbfgs'.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning rate schedule for 'sgd': constant ``learning_rate_init``;
        ``learning_rate_init / pow(t, power_t)`` with ``t`` the samples seen; or divided by 5
        each time ``n_iter_no_change`` consecutive epochs fail to improve by ``tol``.
    learning_rate_init : float, default=0.001
        The initial learning rate ('sgd' and 'adam').
    power_t : float, default=0.5
        The exponent for inverse scaling learning rate ('sgd' with 'invscaling').
    max_iter : int, default=200
        Maximum number of iterations: epochs for 'sgd' and 'adam', L-BFGS iterations for
        'lbfgs'.
    shuffle : bool, default=True
        Whether to shuffle samples in each iteration ('sgd' and 'adam').
    random_state : int, RandomState instance, default=None
        Determines the initial weights, the early-stopping split and the batch sampling.
        Pass an int for reproducible results across multiple function calls.
    tol : float, default=1e-4
        Tolerance for the optimization: training stops (or, with 'adaptive', the rate is cut)
        when the loss or validation score does not improve by at least ``tol`` for
        ``n_iter_no_change`` consecutive iterations.
    verbose : bool, default=False
        Whether to print progress messages to stdout.
    warm_start : bool, default=False
        When True, reuse the solution of the previous call to fit as initialization.
    momentum : float, default=0.9
        Momentum for gradient descent update, in [0, 1] ('sgd').
    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum ('sgd' with ``momentum > 0``).
    early_stopping : bool, default=False
        Whether to set aside ``validation_fraction`` of the training data (stratified, except
        for multilabel and multiclass targets) and stop when its accuracy does not improve by
        ``tol`` for ``n_iter_no_change`` epochs; the best weights are kept ('sgd' and 'adam').
    validation_fraction : float, default=0.1
        The proportion of training data set aside as validation set for early stopping.
    beta_1 : float, default=0.9
        Exponential decay rate for estimates of first moment vector in adam, in [0, 1).
    beta_2 : float, default=0.999
        Exponential decay rate for estimates of second moment vector in adam, in [0, 1).
    epsilon : float, default=1e-8
        Value for numerical stability in adam.
    n_iter_no_change : int, default=10
        Maximum number of epochs to not meet ``tol`` improvement ('sgd' and 'adam').
    max_fun : int, default=15000
        Maximum number of loss function calls ('lbfgs').

    Attributes
    ----------
    classes_ : ndarray or list of ndarray of shape (n_classes,)
        Class labels for each output.
    loss_ : float
        The current loss computed with the loss function.
    best_loss_ : float or None
        The minimum loss reached by the solver throughout fitting; None with
        ``early_stopping=True``.
    loss_curve_ : list of shape (`n_iter_`,)
        The ith element in the list represents the loss at the ith iteration.
    validation_scores_ : list of shape (`n_iter_`,) or None
        The accuracy on the held-out validation set at each iteration (``early_stopping``).
    best_validation_score_ : float or None
        The best validation score (``early_stopping``).
    t_ : int
        The number of training samples seen by the solver during fitting.
    coefs_ : list of shape (n_layers - 1,)
        The ith element in the list represents the weight matrix corresponding to layer i,
        of shape ``(fan_in, fan_out)``.
    intercepts_ : list of shape (n_layers - 1,)
        The ith element in the list represents the bias vector corresponding to layer i + 1.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string feature names.
    n_iter_ : int
        The number of iterations the solver has run.
    n_layers_ : int
        Number of layers.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Name of the output activation function ('softmax' for multiclass, 'logistic' for
        binary and multilabel targets).

    See Also
    --------
    sklearn.neural_network.MLPClassifier : The estimator this one reproduces.
    fastmlp.Model : fastmlp's own network interface.

    Notes
    -----
    ``coefs_`` and ``intercepts_`` are views into one flat parameter vector, so writing into
    them changes the model (as in scikit-learn). Sparse (CSR or CSC) input is never densified
    as a whole: the compiled epoch makes one batch of rows dense at a time.

    A ``fit`` or ``partial_fit`` that raises (bad data, or a cost that stopped being finite)
    leaves the estimator as it was before the call, where scikit-learn may leave it half
    changed (new ``classes_`` with the old weights, or non-finite weights). Ctrl-C during
    'sgd' or 'adam' training warns and keeps the model trained so far, as scikit-learn does.

    References
    ----------
    Hinton, Geoffrey E. "Connectionist learning procedures." Artificial intelligence 40.1
    (1989): 185-234.

    Glorot, Xavier, and Yoshua Bengio. "Understanding the difficulty of training deep
    feedforward neural networks." AISTATS 2010.

    Kingma, Diederik, and Jimmy Ba (2014). "Adam: A method for stochastic optimization."
    arXiv:1412.6980.

    Examples
    --------
    >>> from fastmlp import MLPClassifier
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.model_selection import train_test_split
    >>> X, y = make_classification(n_samples=100, random_state=1)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y,
    ...                                                     random_state=1)
    >>> clf = MLPClassifier(random_state=1, max_iter=300).fit(X_train, y_train)
    >>> clf.predict_proba(X_test[:1]).round(2)
    array([[0.04, 0.96]])
    >>> clf.predict(X_test[:5, :])
    array([1, 0, 1, 0, 1])
    >>> clf.score(X_test, y_test)
    0.88
    """

    #: The loss scikit-learn's MLPClassifier minimises (a class attribute there, too).
    loss = "log_loss"

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [_ARRAY_LIKE, _Interval(numbers.Integral, 1, None, "left")],
        "activation": [_Options(str, {"identity", "logistic", "tanh", "relu"})],
        "solver": [_Options(str, {"lbfgs", "sgd", "adam"})],
        "alpha": [_Interval(numbers.Real, 0, None, "left")],
        "batch_size": [_Options(str, {"auto"}), _Interval(numbers.Integral, 1, None, "left")],
        "learning_rate": [_Options(str, {"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [_Interval(numbers.Real, 0, None, "neither")],
        "power_t": [_Interval(numbers.Real, 0, None, "left")],
        "max_iter": [_Interval(numbers.Integral, 1, None, "left")],
        "shuffle": [_BOOLEAN],
        "random_state": [_RANDOM_STATE],
        "tol": [_Interval(numbers.Real, 0, None, "left")],
        "verbose": [_VERBOSE],
        "warm_start": [_BOOLEAN],
        "momentum": [_Interval(numbers.Real, 0, 1, "both")],
        "nesterovs_momentum": [_BOOLEAN],
        "early_stopping": [_BOOLEAN],
        "validation_fraction": [_Interval(numbers.Real, 0, 1, "left")],
        "beta_1": [_Interval(numbers.Real, 0, 1, "left")],
        "beta_2": [_Interval(numbers.Real, 0, 1, "left")],
        "epsilon": [_Interval(numbers.Real, 0, None, "neither")],
        "n_iter_no_change": [_Interval(numbers.Integral, 1, None, "left"),
                             _Options(numbers.Real, {np.inf})],
        "max_fun": [_Interval(numbers.Integral, 1, None, "left")],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
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
        self.max_fun = max_fun

    # ---------------------------------------------------------------- state and plumbing

    def __getstate__(self):
        state = super().__getstate__()
        # coefs_ and intercepts_ are views into _theta; a pickle holds them as separate arrays,
        # so _theta is left out and rebuilt from them by the next training call.
        state.pop("_theta", None)
        state.pop("_theta_views", None)  # the coefs_ and intercepts_ themselves
        state.pop("_networks", None)  # a cache
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "coefs_" in self.__dict__ and "_theta_units" in self.__dict__:
            self._ensure_theta(self._layer_units())  # one flat vector again, coefs_ its views

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags

    def _more_tags(self):  # pragma: no cover - scikit-learn < 1.6
        return {"multilabel": True}

    @classmethod
    def _get_param_names(cls):
        # computed once per class: scikit-learn's reads the signature of __init__ at every
        # get_params, and partial_fit validates the parameters at every call
        names = cls.__dict__.get("_param_names")
        if names is None:
            names = super()._get_param_names()
            cls._param_names = names
        return names

    def _validate_params(self):
        _validate_parameters(self._parameter_constraints, self.get_params(deep=False),
                             type(self).__name__)

    def _layer_units(self):
        return [int(c.shape[0]) for c in self.coefs_] + [int(self.coefs_[-1].shape[1])]

    def _network(self, dtype, layer_units=None):
        units = tuple(self._layer_units() if layer_units is None else layer_units)
        key = (np.dtype(dtype), units, self.activation, self.out_activation_)
        networks = self.__dict__.setdefault("_networks", {})
        net = networks.get(key)
        if net is None:  # made once: a one-row predict_proba is cheaper than its layout
            out = SOFTMAX if self.out_activation_ == "softmax" else LOGISTIC
            net = networks[key] = Network(units, hidden_code(self.activation), out, dtype)
        return net

    def _views_intact(self):
        """Return True when coefs_/intercepts_ are still the views into _theta."""
        theta = self.__dict__.get("_theta")
        if theta is None:
            return False
        arrays = [*self.coefs_, *self.intercepts_]
        made = self.__dict__.get("_theta_views")
        if made is not None and len(made) == len(arrays) and all(
                a is v for a, v in zip(arrays, made, strict=True)):
            return True  # the very arrays _set_theta made (the common case, checked fast)
        units = self.__dict__.get("_theta_units")
        if not units:
            return False
        views = weight_views(theta, units) + bias_views(theta, units)
        return len(arrays) == len(views) and all(
            type(a) is np.ndarray and a.dtype == v.dtype and a.shape == v.shape
            and a.strides == v.strides and a.ctypes.data == v.ctypes.data
            for a, v in zip(arrays, views, strict=True)
        )

    def _set_theta(self, theta, layer_units):
        """Make ``theta`` the parameters; coefs_/intercepts_ become views into it."""
        old_coefs, old_intercepts = self.__dict__.get("coefs_"), self.__dict__.get("intercepts_")
        self._theta = theta
        self._theta_units = tuple(int(u) for u in layer_units)
        self.coefs_ = weight_views(theta, layer_units)
        self.intercepts_ = bias_views(theta, layer_units)
        self._theta_views = (*self.coefs_, *self.intercepts_)
        # keep scikit-learn's aliasing of the best weights with the live ones (see _fit_stochastic)
        if old_coefs is not None and self.__dict__.get("_best_coefs") is old_coefs:
            self._best_coefs = self.coefs_
        if old_intercepts is not None and self.__dict__.get("_best_intercepts") is old_intercepts:
            self._best_intercepts = self.intercepts_

    def _packed(self, dtype):
        """Return the parameters as one flat vector of ``dtype`` (no copy when possible)."""
        if self._views_intact() and self._theta.dtype == dtype:
            return self._theta
        return np.concatenate([np.ravel(a) for a in (*self.coefs_, *self.intercepts_)]).astype(
            dtype, copy=False)

    def _ensure_theta(self, layer_units):
        """Before training on existing weights: make sure coefs_ are views into a live theta."""
        current = [int(c.shape[0]) for c in self.coefs_] + [int(self.coefs_[-1].shape[1])]
        if current != list(layer_units):
            raise ValueError(
                f"the network's layer sizes {current} do not match the data and "
                f"hidden_layer_sizes ({list(layer_units)}); fit without warm_start to start over"
            )
        if not self._views_intact():
            dtype = np.result_type(*self.coefs_, *self.intercepts_)
            dtype = dtype if dtype in _FLOATS else np.dtype(np.float64)
            self._set_theta(self._packed(dtype).copy(), layer_units)

    # ---------------------------------------------------------------- fitting

    def _initialize(self, y, layer_units, dtype):
        """Set every attribute of a first fit and draw the initial weights (as scikit-learn)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:  # binary and multilabel
            self.out_activation_ = "logistic"
        self.__dict__.pop("coefs_", None)
        self.__dict__.pop("intercepts_", None)
        self._set_theta(glorot_uniform(layer_units, self.activation, self._random_state, dtype),
                        layer_units)
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [b.copy() for b in self.intercepts_]
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _validate_input(self, X, y, incremental, reset):
        if incremental and not reset:
            fast = self._plain_incremental_input(X, y)
            if fast is not None:
                return X, fast
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # classes_ is (re)defined by a fresh fit, checked against by warm_start and partial_fit
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        # bool, so that float32 data is not upcast (the engine casts it to the model's dtype)
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def _plain_incremental_input(self, X, y):
        """``partial_fit``'s binarised ``y`` when ``(X, y)`` needs no conversion, else None.

        That is a plain float ``X`` (see :meth:`_plain_input`) and a 1-D ``y`` of integers or
        strings from ``classes_``, for a binary or multiclass fit: the one-hot rows are made
        here, as ``LabelBinarizer.transform`` makes them. ``validate_data``, ``unique_labels``
        and the transform cost about 4 ms of a 300-row call. None sends the call the full way,
        which converts other inputs or raises scikit-learn's errors.
        """
        binarizer = self._label_binarizer
        classes = self.classes_
        if (type(y) is not np.ndarray or y.ndim != 1 or y.dtype.kind not in "iuUS"
                or y.dtype.kind != classes.dtype.kind or len(classes) < 2
                or binarizer.y_type_ not in ("binary", "multiclass")
                or y.shape[0] != getattr(X, "shape", (None,))[0] or not self._plain_input(X)):
            return None
        index = np.searchsorted(classes, y)
        if not (index < len(classes)).all() or not (classes[np.minimum(
                index, len(classes) - 1)] == y).all():
            return None  # a label not in classes_: validate_data and the checks say so
        if binarizer.y_type_ == "binary":
            return (index == 1).reshape(-1, 1)
        Y = np.zeros((y.shape[0], len(classes)), dtype=bool)
        Y[np.arange(y.shape[0]), index] = True
        return Y

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden_layer_sizes}.")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + [int(h) for h in hidden_layer_sizes] + [self.n_outputs_]

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        else:
            self._ensure_theta(layer_units)

        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, y, sample_weight, layer_units, incremental)
        elif self.solver == "lbfgs":
            self._fit_lbfgs(X, y, sample_weight, layer_units)

        if not all(np.isfinite(w).all() for w in (*self.coefs_, *self.intercepts_)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain "
                "large values and need to be preprocessed."
            )
        return self

    def _fit_lbfgs(self, X, y, sample_weight, layer_units):
        # As scikit-learn's: scipy's L-BFGS-B holds the parameters in float64 but casts them to
        # the dtype of the starting point (the coefs_, float32 for float32 X) for each call of
        # the objective, so the loss and gradient are computed in that dtype; the fitted coefs_
        # are scipy's float64 parameters.
        dtype = self._theta.dtype
        net = self._network(dtype, layer_units)
        Y = np.ascontiguousarray(y, dtype=dtype)
        alpha = float(self.alpha)
        eps = float(np.finfo(dtype).eps)
        X = _as_csr(X, dtype) if sp.issparse(X) else np.ascontiguousarray(X, dtype=dtype)

        if sample_weight is None:
            def loss_and_grad(theta):
                theta = np.ascontiguousarray(theta, dtype=dtype)
                loss, _, grad = net.loss_and_gradient(theta, X, Y, l2=0.0, l2_per_sample=alpha,
                                                      clip_eps=eps)
                return loss, grad
        else:
            sw = np.ascontiguousarray(sample_weight, dtype=dtype)
            chunk = max(1, min(_LOSS_CHUNK, Y.shape[0]))
            no_idx = np.empty(0, np.int32)
            if sp.issparse(X):
                x_args = (np.empty((0, 0), dtype), X.data, X.indices, X.indptr, True)
            else:
                x_args = (X, np.empty(0, dtype), no_idx, no_idx, False)

            def loss_and_grad(theta):
                theta = np.ascontiguousarray(theta, dtype=dtype)
                grad = np.empty(net.n_params, dtype=dtype)
                with blas_single_threaded():
                    loss = _weighted.weighted_loss_and_gradient(
                        *x_args, Y, sw, theta, grad, net.sizes, net.w_off, net.b_off,
                        net.hidden_act, net.out_act, alpha, eps, chunk)
                return float(loss), grad

        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        if _SCIPY_BEFORE_1_15:
            options["iprint"] = iprint
        with every_blas_single_threaded():  # scipy's own BLAS threads too, see there
            result = scipy.optimize.minimize(loss_and_grad, self._packed(dtype).copy(),
                                             method="L-BFGS-B", jac=True, options=options)
        self.n_iter_ = _check_lbfgs_result(result, self.max_iter)
        self.loss_ = result.fun
        self._set_theta(np.ascontiguousarray(result.x, dtype=np.float64), layer_units)

    def _fit_stochastic(self, X, y, sample_weight, layer_units, incremental):
        theta = self._theta
        dtype = theta.dtype
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _StochasticOptimizer(
                self.solver, theta.shape[0], dtype, learning_rate_init=self.learning_rate_init,
                lr_schedule=self.learning_rate, momentum=self.momentum,
                nesterov=self.nesterovs_momentum, power_t=self.power_t, beta_1=self.beta_1,
                beta_2=self.beta_2, epsilon=self.epsilon,
            )
        optimizer = self._optimizer

        # early_stopping in partial_fit doesn't make sense
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        n_all = X.shape[0]
        if early_stopping:
            # stratified only with one output unit (binary); the split is drawn on the indices,
            # which train_test_split permutes exactly as it would permute X and y
            stratify = y if self.n_outputs_ == 1 else None
            train_idx, val_idx = train_test_split(
                np.arange(n_all), random_state=self._random_state,
                test_size=self.validation_fraction, stratify=stratify,
            )
            if val_idx.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the "
                    "size of your dataset."
                )
            X_val = X[val_idx]
            y_val = self._label_binarizer.inverse_transform(y[val_idx])
            sw_val = None if sample_weight is None else sample_weight[val_idx]
        else:
            train_idx = None
            X_val = y_val = sw_val = None

        n_samples = n_all if train_idx is None else train_idx.shape[0]
        sample_idx = np.arange(n_samples, dtype=np.int64)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=4)
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        net = self._network(dtype, layer_units)
        trainer = optimizer.trainer(net, batch_size, float(self.alpha))
        run_epoch = self._epoch_runner(trainer, X, y, sample_weight)

        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    # only the indices are shuffled, from scikit-learn's RandomState, as its
                    # sklearn.utils.shuffle(sample_idx, random_state=...) does it (without its
                    # parameter validation, a third of a digits epoch)
                    permutation = np.arange(sample_idx.shape[0])
                    self._random_state.shuffle(permutation)
                    sample_idx = sample_idx[permutation]
                order = sample_idx if train_idx is None else train_idx[sample_idx]
                trainer.learning_rate = (optimizer.learning_rate if optimizer.solver == "sgd"
                                         else optimizer.learning_rate_init)
                loss_sum, n_seen = run_epoch(np.ascontiguousarray(order, dtype=np.int64))
                if n_seen < order.shape[0]:
                    # a batch's cost was not finite: scikit-learn would go on with non-finite
                    # weights and fail at the end; the engine stops before spoiling them
                    raise ValueError(
                        "Solver produced non-finite parameter weights. The input data may "
                        "contain large values and need to be preprocessed."
                    )
                self.n_iter_ += 1
                self.loss_ = np.float64(loss_sum / n_samples)
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")

                self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
                optimizer.iteration_ends(self.t_)

                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = (f"Validation score did not improve more than tol={self.tol:f} "
                               f"for {self.n_iter_no_change} consecutive epochs.")
                    else:
                        msg = (f"Training loss did not improve more than tol={self.tol:f} "
                               f"for {self.n_iter_no_change} consecutive epochs.")
                    if optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0

                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                        "and the optimization hasn't converged yet.",
                        ConvergenceWarning, stacklevel=4,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)

        if early_stopping:
            # restore the best weights; afterwards, as in scikit-learn (where coefs_ becomes
            # the very list _best_coefs), the best and the live weights are the same arrays
            if self._best_coefs is not self.coefs_:
                for live, best in zip(self.coefs_, self._best_coefs, strict=True):
                    live[...] = best
            if self._best_intercepts is not self.intercepts_:
                for live, best in zip(self.intercepts_, self._best_intercepts, strict=True):
                    live[...] = best
            self._best_coefs = self.coefs_
            self._best_intercepts = self.intercepts_

    def _epoch_runner(self, trainer, X, y, sample_weight):
        """Return a function ``order -> (loss_sum, n_seen)`` that trains one epoch."""
        net = trainer.network
        theta = self._theta
        Y = np.ascontiguousarray(y, dtype=net.dtype)
        sparse = sp.issparse(X)
        X = _as_csr(X, net.dtype) if sparse else np.ascontiguousarray(X, dtype=net.dtype)
        if sample_weight is None:
            # the engine's epoch (dense, or CSR with one batch made dense at a time)
            def run(order):
                loss_sum, _, n_seen = trainer.epoch(theta, X, Y, order)
                return loss_sum, n_seen

            return run

        sw = np.ascontiguousarray(sample_weight, dtype=net.dtype)
        rows = trainer.batch_size
        a_off, total = activation_offsets(net.layer_sizes, rows)
        buffers = (np.empty((rows, net.layer_sizes[0]), net.dtype),
                   np.empty((rows, net.layer_sizes[-1]), net.dtype), np.empty(rows, net.dtype),
                   np.empty(total, net.dtype), np.empty(total, net.dtype), a_off)
        grad = np.empty(net.n_params, net.dtype)
        no_idx = np.empty(0, np.int32)
        if sparse:
            x_args = (np.empty((0, 0), net.dtype), X.data, X.indices, X.indptr, True)
        else:
            x_args = (X, np.empty(0, net.dtype), no_idx, no_idx, False)

        def run_weighted(order):
            with blas_single_threaded():
                loss_sum, n_seen = _weighted.weighted_train_epoch(
                    *x_args, Y, sw, order, rows, theta, grad, net.sizes, net.w_off, net.b_off,
                    net.hidden_act, net.out_act, *buffers, trainer.optimizer,
                    float(trainer.learning_rate), float(trainer.momentum), trainer.nesterov,
                    float(trainer.beta_1), float(trainer.beta_2), float(trainer.epsilon),
                    trainer.state_1,
                    trainer.state_2, trainer.step, float(self.alpha), float(trainer.clip_eps))
            return float(loss_sum), int(n_seen)

        return run_weighted

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if early_stopping:
            # validation accuracy (can be NaN) decides; the best weights are kept
            val_score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print(f"Validation score: {self.validation_scores_[-1]:f}")
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [b.copy() for b in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : ndarray or sparse matrix of shape (n_samples, n_features)
            The input data. float32 data trains in float32 (with 'lbfgs': each loss and
            gradient in float32, the fitted weights float64, as in scikit-learn), anything else
            in float64.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values: class labels, or a label indicator matrix (multilabel).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            Returns a trained MLP model.

        Raises
        ------
        ValueError, TypeError
            Bad data or parameters, or training that stopped being finite. A call that
            raises leaves the estimator exactly as it was before it (fitted or not).
        """
        self._validate_params()
        rollback = _Rollback(self)
        try:
            return self._fit(X, y, sample_weight=sample_weight, incremental=False)
        except BaseException:
            rollback.restore()
            raise

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{self.solver} is not stochastic."
            )
        return True

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit. Can be obtained via
            ``np.unique(y_all)``, where ``y_all`` is the target vector of the entire dataset.
            This argument is required for the first call to partial_fit and can be omitted
            in the subsequent calls. Note that y doesn't need to contain all labels in
            ``classes``.

        Returns
        -------
        self : object
            Trained MLP model.

        Raises
        ------
        ValueError, TypeError
            Bad data (labels not in ``classes``, a different number of features, ...) or
            training that stopped being finite. A call that raises leaves the estimator
            exactly as it was before it: weights, optimizer state, ``classes_``, curves.
        """
        self._validate_params()
        rollback = _Rollback(self)
        try:
            if _check_partial_fit_first_call(self, classes):
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)
            return self._fit(X, y, sample_weight=sample_weight, incremental=True)
        except BaseException:
            rollback.restore()
            raise

    # ---------------------------------------------------------------- prediction

    def _forward_pass_fast(self, X, check_input=True):
        """Output-layer probabilities for ``X``, computed by the compiled forward pass."""
        if check_input and not self._plain_input(X):
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        # the dtype numpy would give X @ coefs_ (scikit-learn computes in it)
        dtype = np.result_type(X.dtype, *self.coefs_, *self.intercepts_)
        dtype = dtype if dtype in _FLOATS else np.dtype(np.float64)
        net = self._network(dtype)
        theta = self._packed(dtype)
        if not sp.issparse(X):
            return net.predict_proba(theta, np.ascontiguousarray(X, dtype=dtype))
        X = X.tocsr()
        out = np.empty((X.shape[0], net.layer_sizes[-1]), dtype=dtype)
        for start in range(0, X.shape[0], PREDICT_CHUNK):
            stop = min(start + PREDICT_CHUNK, X.shape[0])
            dense = np.ascontiguousarray(X[start:stop].toarray(), dtype=dtype)
            out[start:stop] = net.predict_proba(theta, dense)
        return out

    def _plain_input(self, X):
        """Return True when ``X`` would pass ``validate_data`` unchanged (checked in us).

        That is a finite, non-empty, 2-D float NumPy array of the right width, for an
        estimator fitted without feature names. Anything else goes through ``validate_data``,
        which converts it or raises scikit-learn's own error. (``validate_data`` costs about
        100 us, most of the time of a one-row ``predict_proba``.)
        """
        if (type(X) is not np.ndarray or X.ndim != 2 or X.dtype not in _FLOATS
                or X.shape[0] == 0 or "feature_names_in_" in self.__dict__):
            return False
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        return bool(all_finite(X))  # else validate_data says what is not finite

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        binarizer = self._label_binarizer
        if binarizer.y_type_ == "multiclass" and not binarizer.sparse_input_:
            # LabelBinarizer.inverse_transform's own arithmetic for dense multiclass scores,
            # without its array-API dispatch (about 350 us, most of a 1797-row predict)
            index = np.clip(y_pred.argmax(axis=1), 0, len(binarizer.classes_) - 1)
            return binarizer.classes_[index]
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        # no input validation: it would drop the feature names
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return accuracy_score(y, y_pred, sample_weight=sample_weight)

    def predict(self, X):
        """Predict using the multi-layer perceptron classifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray, shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        check_is_fitted(self)
        return self._predict(X)

    def predict_log_proba(self, X):
        """Return the log of probability estimates.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            The predicted log-probability of the sample for each class in the model, where
            classes are ordered as they are in ``self.classes_``. Equivalent to
            ``log(predict_proba(X))``.
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            The predicted probability of the sample for each class in the model, where
            classes are ordered as they are in ``self.classes_``.
        """
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred
