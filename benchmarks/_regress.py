"""Whole calls of the regressor: the bodies behind ``bench_regressor.py``.

Like ``_calls.py`` (whose helpers it reuses), each builder returns ``(body, info)``:
``body(...)`` makes the whole call (a fresh ``MLPRegressor``'s ``fit``, or ``predict`` of a
fitted one) and returns a small summary; ``info`` goes to ``benchmark.extra_info``. The same
builders run in the benchmark process (fastmlp) and in the scikit-learn / PyTorch worker
processes of ``_benchlib`` (the worker's ``build`` command imports this module by name).

The data is made here (``regress_data``), in every process alike:

* ``"diabetes"``: ``sklearn.datasets.load_diabetes``, 442 x 10, float64; X standardised
  (zero mean, unit variance per column), y standardised too (its raw scale, 25..346, only
  makes the loss large; the work per epoch is the same);
* ``"regression"``: ``make_regression(100000, 200, n_targets=3, random_state=0)``, X as
  float32, y centred and scaled to unit variance per target (its raw scale is in the
  hundreds), float32.

This module imports only NumPy at the top; the libraries are imported where they are used.
"""

import functools
from dataclasses import dataclass, replace

import _calls
import numpy as np

LIBRARIES = _calls.LIBRARIES
#: Epochs without improvement before scikit-learn's (and fastmlp's) SGD/Adam stop: larger
#: than any ``max_iter`` here, so that every library runs exactly ``max_iter`` epochs.
NO_EARLY_STOP = 10**6


@functools.cache
def regress_data(name, dtype, rows=None):
    """``(X, y)`` of a regression workload in ``dtype``, C-contiguous (y 1-D for diabetes,
    ``(n, 3)`` for regression); the same arrays in every process.

    ``rows`` (the smoke run): make only that many rows of the make_regression data (its 100000
    take seconds to draw, in every process); diabetes is always whole."""
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True)
        X = (X - X.mean(axis=0)) / X.std(axis=0)
        y = (y - y.mean()) / y.std()
    elif name == "regression":
        from sklearn.datasets import make_regression

        X, y = make_regression(100000 if rows is None else rows, 200, n_targets=3,
                               random_state=0)
        y = (y - y.mean(axis=0)) / y.std(axis=0)
    else:
        raise ValueError(name)
    return np.ascontiguousarray(X, dtype=dtype), np.ascontiguousarray(y, dtype=dtype)


@dataclass(frozen=True)
class RegressCall:
    """``MLPRegressor(hidden_layer_sizes=hidden, solver=solver, batch_size=batch_size,
    max_iter=max_iter, n_iter_no_change=NO_EARLY_STOP, random_state=0).fit(X, y)`` on ``data``
    in ``dtype``; every other parameter is the default (squared error, relu, alpha 1e-4,
    learning rate 1e-3, momentum 0.9 with Nesterov for SGD, tol 1e-4: for L-BFGS scipy's
    ``gtol``, not reached in ``max_iter`` iterations). ``target``: the speed-up over
    scikit-learn issue 11 asks for (None: none asked)."""

    data: str  # "diabetes" or "regression" (the names of regress_data)
    dtype: str
    hidden: tuple
    solver: str
    batch_size: object  # int or "auto"
    max_iter: int
    target: object = None

    def params(self):
        return dict(hidden_layer_sizes=self.hidden, solver=self.solver,
                    batch_size=self.batch_size, max_iter=self.max_iter,
                    n_iter_no_change=NO_EARLY_STOP, random_state=0)

    def batch(self, n_rows):
        """The batch size the fit uses on ``n_rows`` rows (scikit-learn's rule)."""
        size = 200 if self.batch_size == "auto" else self.batch_size
        return min(size, n_rows)

    def __str__(self):
        net = "x".join(map(str, self.hidden))
        if self.solver == "lbfgs":
            how = f"{self.max_iter} iter"
        else:
            auto = "(auto)" if self.batch_size == "auto" else ""
            how = f"b{self.batch(10**9)}{auto} {self.max_iter} epochs"
        return f"fit {self.data} h{net} {self.solver} {how} {self.dtype}"


#: The timed whole fits (``bench_regressor.test_fit``), with issue 11's targets.
FIT_CALLS = {
    # overhead-bound: 442 rows of 10 features, 14 batches an epoch
    "diabetes-sgd": RegressCall("diabetes", "float64", (32,), "sgd", 32, 50, target=10.0),
    "regression-adam": RegressCall("regression", "float32", (256,), "adam", 200, 3, target=2.0),
    "regression-lbfgs": RegressCall("regression", "float32", (256,), "lbfgs", "auto", 20,
                                    target=1.5),
}
#: The model ``predict`` is timed on (fitted before the timing): one Adam epoch on the
#: make_regression data (the prediction's speed does not depend on the weights).
PREDICT_MODEL = replace(FIT_CALLS["regression-adam"], max_iter=1, target=None)
#: ``(rows, predict calls per round)``: per call on 1 row; one call on 10000 rows.
PREDICT_CASES = {"1row": (1, 200), "10000rows": (10000, 1)}

TORCH_NO_EQUIVALENT = {"lbfgs": _calls.TORCH_NO_EQUIVALENT["lbfgs"]}


def predict_label(n_rows):
    net = "x".join(map(str, PREDICT_MODEL.hidden))
    rows = "1 row" if n_rows == 1 else f"{n_rows} rows"
    return f"predict {rows} {PREDICT_MODEL.data} h{net} {PREDICT_MODEL.dtype}"


# ---------------------------------------------------------------------------------------------
# Fitting, per library
# ---------------------------------------------------------------------------------------------
def fit_estimator(impl, call, X, y):
    """Fit a fresh ``MLPRegressor`` (or, for ``"torch"``, run :func:`torch_fit`); return it."""
    return _calls.fit_estimator(impl, call, X, y, "MLPRegressor", torch_loop=torch_fit)


def torch_fit(call, X, y):
    """The PyTorch loop doing what ``MLPRegressor.fit`` does for SGD and Adam.

    ``_calls.torch_train`` (the classifier's loop: ``nn.Sequential(Linear, ReLU, ...,
    Linear)``, scikit-learn's optimizer defaults and L2 penalty, one ``torch.randperm`` an
    epoch) with an identity output and scikit-learn's squared error, half the mean over rows
    and outputs (``0.5 * mse_loss``). It reports the mean loss of the last epoch; no
    convergence check (the estimators' is off too: ``n_iter_no_change`` exceeds ``max_iter``).
    """
    import torch

    n = X.shape[0]
    n_out = 1 if y.ndim == 1 else y.shape[1]
    mse = torch.nn.MSELoss()

    def cost(out, target):
        return 0.5 * mse(out, target)

    yt = torch.from_numpy(np.ascontiguousarray(y).reshape(n, n_out))
    return _calls.torch_train(call, X, yt, n_out, cost)


def predict(impl, fitted, X):
    if impl != "torch":
        return fitted.predict(X)
    import torch

    with torch.inference_mode():
        return fitted.net(torch.from_numpy(X)).numpy()


# ---------------------------------------------------------------------------------------------
# Builders (run in the benchmark process or in a worker)
# ---------------------------------------------------------------------------------------------
def build_fit(impl, name, data_rows=None):
    """``(fit(rows=None), info)``: a whole ``fit`` of ``FIT_CALLS[name]`` on the first ``rows``
    rows (all by default), from a fresh estimator each call; it returns ``n_iter`` and
    ``loss``. ``data_rows``: see :func:`regress_data`."""
    call = FIT_CALLS[name]
    if impl == "torch" and call.solver == "lbfgs":
        import pytest

        pytest.skip(TORCH_NO_EQUIVALENT["lbfgs"])
    _calls.prepare(impl)
    X, y = regress_data(call.data, call.dtype, data_rows)

    def fit(rows=None):
        n = X.shape[0] if rows is None else min(rows, X.shape[0])
        return _calls.fit_summary(impl, fit_estimator(impl, call, X[:n], y[:n]))

    return fit, {"n_rows": X.shape[0], **_calls.versions(impl)}


def build_predict(impl, n_rows, calls, fit_rows=None):
    """``(predict(), info)``: ``calls`` times ``predict`` on the first ``n_rows`` rows of the
    make_regression data, by ``PREDICT_MODEL`` fitted (here, outside the timed call) on its
    first ``fit_rows`` rows (all by default). Returns the last prediction's shape and whether
    it is finite. With ``fit_rows`` only ``max(fit_rows, n_rows)`` rows are made."""
    call = PREDICT_MODEL
    _calls.prepare(impl)
    data_rows = None if fit_rows is None else max(fit_rows, n_rows)
    X_train, y_train = regress_data(call.data, call.dtype, data_rows)
    n = X_train.shape[0] if fit_rows is None else min(fit_rows, X_train.shape[0])
    fitted = fit_estimator(impl, call, X_train[:n], y_train[:n])
    X = np.ascontiguousarray(X_train[:n_rows])

    def run():
        for _ in range(calls):
            out = predict(impl, fitted, X)
        return tuple(out.shape), bool(np.isfinite(out).all())

    return run, {"n_rows": X.shape[0], **_calls.versions(impl)}
