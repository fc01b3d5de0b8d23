"""The base of both estimators, as scikit-learn's ``BaseMultilayerPerceptron`` is of its two.

Each estimator reproduces scikit-learn's step for step (same constructor, same
fitted attributes, same random draws, same updates, same stopping rule), while every epoch,
every L-BFGS cost-and-gradient evaluation and every prediction runs in fastmlp's compiled
engine. The package ``fastmlp.sklearn`` (with ``fastmlp.convert`` above it) is the only one
of fastmlp that imports scikit-learn.

What makes the numbers equal to scikit-learn's (checked against scikit-learn 1.9):

- a fresh ``check_random_state(random_state)`` at every ``fit``/``partial_fit``; from it, in
  order: the initial weights (``W^1, b^1, W^2, b^2, ...`` uniform in
  ``+-sqrt(f / (fan_in + fan_out))``, ``f = 2`` for logistic and 6 otherwise, drawn in float64
  and cast), then the early-stopping split (``train_test_split``, stratified when there is one
  output unit), then per epoch one shuffle of the previous epoch's order, drawn as
  ``sklearn.utils.shuffle`` draws it (``RandomState.shuffle`` of ``arange(n)``);
- the cost of a batch of ``n`` rows: the mean cost (cross-entropy of probabilities clipped
  to ``[eps, 1 - eps]``; half the squared error, averaged over the outputs too; or half the
  Poisson deviance) plus ``0.5 * alpha * ||W||^2 / n``; ``loss_`` is the row-weighted mean of
  the batch costs, each taken before its update;
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
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from fastmlp import _hooks
from fastmlp._engine import (
    PREDICT_CHUNK,
    Network,
    blas_single_threaded,
    every_blas_single_threaded,
    hidden_code,
)
from fastmlp._kernels import weighted as _weighted
from fastmlp._kernels.activations import EXP, IDENTITY, LOGISTIC, SOFTMAX
from fastmlp._kernels.checks import all_finite
from fastmlp._outofcore import RowBlocks, is_out_of_core, stream_epoch
from fastmlp._params import activation_offsets, bias_views, glorot_uniform, weight_views
from fastmlp._validation import check_X
from fastmlp.sklearn import _distributed
from fastmlp.sklearn._constraints import (
    _ARRAY_LIKE,
    _BOOLEAN,
    _RANDOM_STATE,
    _VERBOSE,
    _Interval,
    _Options,
    _validate_parameters,
)
from fastmlp.sklearn._inputs import (
    FLOATS,
    as_csr,
    check_sample_weight,
    compute_dtype,
    stand_in,
    validate_data,
)
from fastmlp.sklearn._lbfgs import check_lbfgs_result
from fastmlp.sklearn._optimizer import StochasticOptimizer
from fastmlp.sklearn._rollback import Rollback

_STOCHASTIC_SOLVERS = ("sgd", "adam")
#: Rows per chunk of a full-data weighted cost and gradient (L-BFGS with ``sample_weight``).
_LOSS_CHUNK = 8192
_SCIPY_BEFORE_1_15 = tuple(int(p) for p in scipy.__version__.split(".")[:2]) < (1, 15)


class BaseMultilayerPerceptron(BaseEstimator):
    """What the two estimators share: parameters, training (every solver) and the forward pass.

    Not for direct use: :class:`~fastmlp.sklearn.MLPClassifier` and
    :class:`~fastmlp.sklearn.MLPRegressor` add the targets (``_validate_input``), the output
    activation (``_output_activation``), the early-stopping split and score, and prediction.
    """

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

    #: Output activation names, as scikit-learn's ``out_activation_``, to the kernels' codes.
    _OUT_CODES = {"softmax": SOFTMAX, "logistic": LOGISTIC, "identity": IDENTITY, "exp": EXP}

    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, loss, shuffle, random_state, tol, verbose,
                 warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction,
                 beta_1, beta_2, epsilon, n_iter_no_change, max_fun):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
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

    # -- what each estimator defines --------------------------------------------------------------
    def _validate_input(self, X, y, incremental, reset):
        """Return ``(X, y)`` checked, with ``y`` as the output layer's targets (2-D or 1-D)."""
        raise NotImplementedError

    def _output_activation(self):
        """Return the ``out_activation_`` a first fit sets (from the targets or the loss)."""
        raise NotImplementedError

    def _stratify_by(self, y):
        """Return the labels the early-stopping split is stratified by, or None."""
        raise NotImplementedError

    def _validation_targets(self, y):
        """Return the early-stopping validation rows' targets as ``_score`` takes them."""
        raise NotImplementedError

    def _predict(self, X, check_input=True):
        """Return the predictions (labels or values) for ``X``."""
        raise NotImplementedError

    #: ``f(y_true, y_pred, sample_weight=...)``: the early-stopping validation score (and
    #: scikit-learn's ``score``): accuracy for the classifier, R^2 for the regressor.
    _score_function = None

    def _score(self, X, y, sample_weight=None):
        """Return the early-stopping validation score, NaN when a prediction is not finite."""
        # no input validation: it would drop the feature names
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return self._score_function(y, y_pred, sample_weight=sample_weight)

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
        return tags

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
            out = self._OUT_CODES[self.out_activation_]
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
            dtype = compute_dtype(np.result_type(*self.coefs_, *self.intercepts_))
            self._set_theta(self._packed(dtype).copy(), layer_units)

    def _initialize(self, y, layer_units, dtype):
        """Set every attribute of a first fit and draw the initial weights (as scikit-learn)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
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

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden_layer_sizes}.")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        blocks = None
        if self.solver == "lbfgs" and _distributed.is_dask_array(X):
            # one fit on a Dask cluster (_distributed.py): X, y and sample_weight stay in
            # their blocks on the workers, checked there; X and y are stand-ins from here on
            blocks = _distributed.prepare(X, y, sample_weight)
        if blocks is not None:
            X, y = blocks.validate(self, incremental, reset=first_pass)
            sample_weight = None  # on the workers, with their blocks
        elif is_out_of_core(X) and self.solver in _STOCHASTIC_SOLVERS:
            X, y = self._validate_stream_input(X, y, sample_weight, incremental, first_pass)
        else:
            X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        if not first_pass and y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y.shape[1]} output(s) per sample, but {type(self).__name__} was fitted "
                f"with {self.n_outputs_}; fit afresh (without warm_start) to change the outputs"
            )
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + [int(h) for h in hidden_layer_sizes] + [self.n_outputs_]

        if not first_pass and self._output_activation() != self.out_activation_:
            # scikit-learn would go on with the old output layer and the new cost
            raise ValueError(
                f"the output activation would change from {self.out_activation_!r} to "
                f"{self._output_activation()!r} (loss={getattr(self, 'loss', None)!r}); "
                "fit afresh (without warm_start) to change the loss"
            )
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        else:
            self._ensure_theta(layer_units)

        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, y, sample_weight, layer_units, incremental)
        elif blocks is not None:
            _distributed.fit_lbfgs(self, blocks, layer_units)
        elif self.solver == "lbfgs":
            self._fit_lbfgs(X, y, sample_weight, layer_units)

        if not all(np.isfinite(w).all() for w in (*self.coefs_, *self.intercepts_)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain "
                "large values and need to be preprocessed."
            )
        return self

    def _validate_stream_input(self, X, y, sample_weight, incremental, reset):
        """Check an out-of-core ``X`` (read in blocks by sgd and adam) and ``y``.

        Returns ``(RowBlocks, y)``. ``y`` is checked and encoded by the estimator's own
        :meth:`_validate_input`, given in place of ``X`` a stand-in of ``X``'s shape and
        dtype that takes no memory (``_inputs.stand_in``); each block's values are checked
        as it is read.
        """
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported for an X read in blocks (a "
                             "numpy.memmap, zarr or dask array); load X into memory to weight "
                             "its samples")
        if self.early_stopping:
            raise ValueError("early_stopping holds out a validation split of X, which needs X "
                             "in memory; with an X read in blocks, set early_stopping=False "
                             "(and score a validation set of your own between partial_fit "
                             "calls)")
        blocks = RowBlocks(X)
        no_data = stand_in(blocks.shape, blocks.dtype)
        _, y = self._validate_input(no_data, y, incremental, reset)
        blocks.dtype = no_data.dtype  # what the blocks are converted to as they are read
        return blocks, y

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
        X = as_csr(X, dtype) if sp.issparse(X) else np.ascontiguousarray(X, dtype=dtype)

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

        with every_blas_single_threaded():  # scipy's own BLAS threads too, see there
            result = scipy.optimize.minimize(loss_and_grad, self._packed(dtype).copy(),
                                             method="L-BFGS-B", jac=True,
                                             options=self._lbfgs_options())
        self.n_iter_ = check_lbfgs_result(result, self.max_iter)
        self.loss_ = result.fun
        self._set_theta(np.ascontiguousarray(result.x, dtype=np.float64), layer_units)

    def _lbfgs_options(self):
        """Return scipy's L-BFGS-B options, as scikit-learn passes them (also distributed)."""
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        if _SCIPY_BEFORE_1_15:
            options["iprint"] = 1 if (self.verbose is True or self.verbose >= 1) else -1
        return options

    def _fit_stochastic(self, X, y, sample_weight, layer_units, incremental):
        theta = self._theta
        dtype = theta.dtype
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = StochasticOptimizer(
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
            # the split is drawn on the indices, which train_test_split permutes exactly as it
            # would permute X and y
            stratify = self._stratify_by(y)
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
            y_val = self._validation_targets(y[val_idx])
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
                if self.shuffle and not isinstance(X, RowBlocks):  # a stream draws its own
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
        if isinstance(X, RowBlocks):
            # X read in blocks: each epoch draws its own block and row orders from the
            # estimator's RandomState (``order`` only says how many rows there are)
            n_features = X.shape[1]

            def prepare(rows, start, stop):
                return check_X(rows, net.dtype, n_features,
                               name=f"the block of X rows {start}..{stop - 1} (its rows "
                                    f"counted from {start} as 0)")

            def run_stream(order):
                loss_sum, _, n_seen = stream_epoch(trainer, theta, X, Y, prepare,
                                                   self._random_state, self.shuffle)
                return loss_sum, n_seen

            return run_stream
        sparse = sp.issparse(X)
        X = as_csr(X, net.dtype) if sparse else np.ascontiguousarray(X, dtype=net.dtype)
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
            # the validation score (accuracy or R^2, can be NaN) decides; the best weights
            # are kept
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
            in float64. With 'lbfgs', a dask array while a ``distributed`` client is active
            trains on the cluster: each loss and gradient is computed on the workers that
            hold ``X``'s blocks and summed, with the in-memory fit's numbers to rounding.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values: class labels or a label indicator matrix (multilabel) for
            the classifier, real numbers for the regressor. With a dask ``X`` on a cluster,
            ``y`` (best a dask array too) stays on the workers, blocked like ``X``'s rows,
            and is checked and encoded there.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights. On a cluster, as ``y``: they stay on the workers.

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
        return self._fit_or_restore(X, y, sample_weight, incremental=False)

    def _fit_or_restore(self, X, y, sample_weight, incremental, first_call=None):
        """``_fit``, after ``first_call()`` if given; put everything back if either raises."""
        self._validate_params()
        rollback = Rollback(self)
        # in a Dask task (a search under joblib's dask backend), Numba's threads are held to
        # the task's share of the worker's; elsewhere a no-op
        with _distributed.worker_threads():
            try:
                if first_call is not None:
                    first_call()
                return self._fit(X, y, sample_weight=sample_weight, incremental=incremental)
            except BaseException:
                rollback.restore()
                raise

    def to_sklearn(self):
        """Return this fitted estimator as scikit-learn's own, for where fastmlp is not installed.

        The result is :class:`sklearn.neural_network.MLPClassifier` (or ``MLPRegressor``) with
        copies of the parameters and of every fitted attribute (``coefs_``, ``intercepts_``,
        ``loss_curve_``, ``classes_``, ...) and, after 'sgd' or 'adam', scikit-learn's
        optimizer holding this one's state: it predicts the same to rounding, and its
        ``partial_fit`` goes on as this estimator's would.

        Returns
        -------
        sklearn.neural_network.MLPClassifier or sklearn.neural_network.MLPRegressor
            A fitted scikit-learn estimator, independent of this one.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            This estimator is not fitted.

        See Also
        --------
        from_sklearn : The other way.
        """
        # fastmlp.convert does it: a room above the estimators, reached without importing it
        return _hooks.load("convert").to_sklearn(self)

    @classmethod
    def from_sklearn(cls, estimator):
        """Return a fitted estimator of this class made from scikit-learn's fitted one.

        The parameters, every fitted attribute and the SGD or Adam optimizer state are copied,
        so the result predicts what ``estimator`` predicts, to rounding, and its
        ``partial_fit`` goes on as scikit-learn's would.

        Parameters
        ----------
        estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
            A fitted estimator of the scikit-learn class this one reproduces.

        Returns
        -------
        estimator : object
            A fitted fastmlp estimator, independent of ``estimator``.

        Raises
        ------
        TypeError
            ``estimator`` is not of the scikit-learn class this one reproduces.
        sklearn.exceptions.NotFittedError
            ``estimator`` is not fitted.

        See Also
        --------
        to_sklearn : The other way.
        """
        return _hooks.load("convert").from_sklearn(cls, estimator)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{self.solver} is not stochastic."
            )
        return True

    def _forward_pass_fast(self, X, check_input=True):
        """Return the output layer for ``X`` (probabilities or values), by the compiled engine."""
        if check_input and not self._plain_input(X):
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        # the dtype numpy would give X @ coefs_ (scikit-learn computes in it)
        dtype = compute_dtype(np.result_type(X.dtype, *self.coefs_, *self.intercepts_))
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
        if (type(X) is not np.ndarray or X.ndim != 2 or X.dtype not in FLOATS
                or X.shape[0] == 0 or "feature_names_in_" in self.__dict__):
            return False
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        return bool(all_finite(X))  # else validate_data says what is not finite
