"""``fastmlp.MLPClassifier``: a drop-in for :class:`sklearn.neural_network.MLPClassifier`."""

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d

from fastmlp.sklearn._base import BaseMultilayerPerceptron
from fastmlp.sklearn._inputs import validate_data


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


class MLPClassifier(ClassifierMixin, BaseMultilayerPerceptron):
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
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            loss="log_loss",
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags

    def _more_tags(self):  # pragma: no cover - scikit-learn < 1.6
        return {"multilabel": True}

    _score_function = staticmethod(accuracy_score)

    def _output_activation(self):
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax"
        return "logistic"  # binary and multilabel

    def _stratify_by(self, y):
        # stratified only with one output unit (binary), as scikit-learn
        return y if self.n_outputs_ == 1 else None

    def _validation_targets(self, y):
        return self._label_binarizer.inverse_transform(y)

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
        def first_call():
            if _check_partial_fit_first_call(self, classes):
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)

        return self._fit_or_restore(X, y, sample_weight, incremental=True, first_call=first_call)

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
