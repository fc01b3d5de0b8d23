"""``fastmlp.MLPRegressor``: a drop-in for :class:`sklearn.neural_network.MLPRegressor`."""

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, column_or_1d

from fastmlp._kernels.checks import all_finite
from fastmlp.sklearn._base import BaseMultilayerPerceptron
from fastmlp.sklearn._constraints import _Options
from fastmlp.sklearn._inputs import validate_data


class MLPRegressor(RegressorMixin, BaseMultilayerPerceptron):
    """Multi-layer Perceptron regressor, trained by fastmlp's compiled engine.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor`: the same parameters, defaults,
    fitted attributes and methods. Given the same data, arguments and ``random_state`` it draws
    the same initial weights, visits the samples in the same order, makes the same updates and
    stops at the same iteration, so ``coefs_``, ``intercepts_``, ``loss_curve_``, ``n_iter_``
    and the predictions agree with scikit-learn's to rounding (float64); each epoch runs as one
    compiled call. It shares all of its training with :class:`~fastmlp.MLPClassifier`; only
    the output layer differs: identity or exp instead of softmax or logistic.

    This model optimizes the squared error (or the Poisson deviance) using LBFGS or stochastic
    gradient descent.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        The cost and its output activation: half the squared error with an identity output,
        or half the Poisson deviance with an exp output (for counts and rates; ``y`` must be
        non-negative). Both give BP1 as ``a^L - y``.
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
        Whether to set aside ``validation_fraction`` of the training data and stop when its
        R^2 score does not improve by ``tol`` for ``n_iter_no_change`` epochs; the best
        weights are kept ('sgd' and 'adam').
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
    loss_ : float
        The current loss computed with the loss function: half the squared error averaged over
        the samples and the outputs (or half the Poisson deviance averaged over the samples and
        summed over the outputs), plus the L2 term.
    best_loss_ : float or None
        The minimum loss reached by the solver throughout fitting; None with
        ``early_stopping=True``.
    loss_curve_ : list of shape (`n_iter_`,)
        The ith element in the list represents the loss at the ith iteration.
    validation_scores_ : list of shape (`n_iter_`,) or None
        The R^2 score on the held-out validation set at each iteration (``early_stopping``).
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
        Name of the output activation function: 'identity' ('squared_error') or 'exp'
        ('poisson').

    See Also
    --------
    sklearn.neural_network.MLPRegressor : The estimator this one reproduces.
    MLPClassifier : The classifier on the same engine.
    fastmlp.Model : fastmlp's own network interface (``output="identity"`` or ``"exp"``).

    Notes
    -----
    As in scikit-learn, the reported ``loss_`` of a squared-error fit with several outputs is
    averaged over the outputs while the gradient is that of their sum; the numbers follow
    scikit-learn's, that included. ``coefs_`` and ``intercepts_`` are views into one flat
    parameter vector, so writing into them changes the model. Sparse (CSR or CSC) input is
    never densified as a whole.

    A ``fit`` or ``partial_fit`` that raises leaves the estimator as it was before the call.
    Where scikit-learn goes on silently, this one raises: a negative ``y`` with
    ``loss='poisson'`` (scikit-learn's loss is then NaN), a ``y`` with a different number of
    outputs in ``partial_fit``, and string targets.

    Examples
    --------
    >>> from fastmlp import MLPRegressor
    >>> from sklearn.datasets import make_regression
    >>> from sklearn.model_selection import train_test_split
    >>> X, y = make_regression(n_samples=200, n_features=20, random_state=1)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=1)
    >>> regr = MLPRegressor(random_state=1, max_iter=2000, tol=0.1)
    >>> regr.fit(X_train, y_train)
    MLPRegressor(max_iter=2000, random_state=1, tol=0.1)
    >>> regr.predict(X_test[:2])
    array([  28.97..., -290.75...])
    >>> regr.score(X_test, y_test)
    0.98...
    """

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": [_Options(str, {"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss="squared_error",
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
            loss=loss,
        )

    _score_function = staticmethod(r2_score)

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _stratify_by(self, y):
        return None

    def _validation_targets(self, y):
        return y

    def _validate_input(self, X, y, incremental, reset):
        if incremental and not reset and self._plain_incremental_input(X, y):
            return X, y
        _check_numeric_targets(y)  # before validate_data, which would try float("abc")
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson":
            self._check_poisson_targets(y)
        return X, y

    def _check_poisson_targets(self, y):
        negative = int(np.count_nonzero(y < 0))
        if negative:
            self._check_poisson_counts(negative, np.min(y))

    def _check_poisson_counts(self, negative, smallest):
        """Raise for ``negative`` targets below zero, the least ``smallest``.

        A distributed fit counts them in the blocks, where they are.
        """
        if negative:
            raise ValueError(
                f"loss='poisson' needs non-negative targets (counts or rates), but y has "
                f"{negative} negative value(s), the smallest {smallest!r}. Use "
                "loss='squared_error', or shift or transform y."
            )

    def _plain_incremental_input(self, X, y):
        """Return True when ``partial_fit``'s ``(X, y)`` needs no conversion.

        That is a plain float ``X`` (see :meth:`_plain_input`) and a finite float NumPy ``y``
        of as many rows, 1-D or 2-D with several columns (a single column is raveled with a
        warning, by the full way). ``validate_data`` costs about 1 ms of a 300-row call.
        """
        if (type(y) is not np.ndarray or y.dtype.kind != "f" or y.ndim not in (1, 2)
                or (y.ndim == 2 and y.shape[1] == 1)
                or y.shape[0] != getattr(X, "shape", (None,))[0] or not self._plain_input(X)
                or not all_finite(y.reshape(y.shape[0], -1))):
            return False
        if self.loss == "poisson":
            self._check_poisson_targets(y)
        return True

    # partial_fit is offered for every solver, as scikit-learn's MLPRegressor offers it (its
    # check is the method itself, always true): with 'lbfgs' it runs a whole L-BFGS fit from
    # the current weights.
    @available_if(lambda est: est._check_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            Trained MLP model.

        Raises
        ------
        ValueError, TypeError
            Bad data (a different number of features or outputs, non-finite or string
            targets, negative ones with ``loss='poisson'``) or training that stopped being
            finite. A call that raises leaves the estimator exactly as it was before it.
        """
        return self._fit_or_restore(X, y, sample_weight, incremental=True)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def predict(self, X):
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values.
        """
        check_is_fitted(self)
        return self._predict(X)


def _check_numeric_targets(y):
    """Raise a clear error for string targets, which scikit-learn lets through to a crash."""
    dtype = getattr(y, "dtype", None)
    if dtype is None:
        dtype = np.asarray(y).dtype
    if dtype.kind in "US" or (
            dtype.kind == "O" and any(isinstance(v, (str, bytes)) for v in np.ravel(y))):
        raise ValueError(
            f"MLPRegressor needs numeric targets, but y holds strings (dtype {dtype}). Convert "
            "them to numbers, or use MLPClassifier for class labels."
        )
