"""Sparse input takes every kernel the engine has, and trains exactly as the dense input does.

A sparse ``X`` is made dense a block of whole batches at a time and trained by the kernel the
engine chose for the shape (``Trainer.split``). These tests fit ``MLPClassifier`` on CSR and
CSC input and on the same matrix dense, on shapes that take each split, for every solver and
both dtypes, and check that the sparse fit is the dense fit. ``test_every_split_is_covered``
fails when the engine gains a split that these cases do not reach.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier as SkMLP

from fastmlp import _engine
from fastmlp._engine import SPLITS, Network, Trainer
from fastmlp._kernels import activations
from fastmlp.sklearn import MLPClassifier

ignore_convergence = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

_X, _Y = load_digits(return_X_y=True)
X_DIGITS = _X[:600] / 16.0  # about half the entries are 0
Y_DIGITS = _Y[:600]

#: (hidden_layer_sizes, batch_size) that take each split with two lanes (64 features, 10
#: classes): see Trainer's rules and _config's thresholds.
SHAPES = {
    "none": ((16,), 32),  # 32 * 1184 multiply-adds a batch: too few to split
    "rows": ((48, 24), 200),  # two hidden layers: split by rows
    "units": ((100,), 64),  # one hidden layer of >= 64 units, batch <= 64: split by units
    "columns": ((256, 256), 100),  # hidden layers of >= 256 units: every layer's units split
}


@pytest.fixture
def two_lanes(monkeypatch):
    """Two lanes whatever the machine: results do not depend on how many threads run them."""
    monkeypatch.setattr(_engine, "parallel_lanes", lambda: 2)


@pytest.fixture
def splits_used(monkeypatch):
    """Record the split of every epoch the engine trains."""
    used = []
    dense_epoch = Trainer._dense_epoch

    def recording(self, *args):
        used.append(self.split)
        return dense_epoch(self, *args)

    monkeypatch.setattr(Trainer, "_dense_epoch", recording)
    return used


def test_every_split_is_covered():
    assert set(SHAPES) == set(SPLITS)


def fit_pair(X, y, to_sparse, **params):
    dense = MLPClassifier(random_state=3, max_iter=3, **params).fit(X, y)
    sparse = MLPClassifier(random_state=3, max_iter=3, **params).fit(to_sparse(X), y)
    return dense, sparse


def assert_same_fit(dense, sparse, X):
    for a, b in zip(dense.coefs_ + dense.intercepts_, sparse.coefs_ + sparse.intercepts_,
                    strict=True):
        assert a.dtype == b.dtype == X.dtype
        assert_array_equal(a, b)  # the same kernel on the same batches: bit for bit
    assert dense.loss_curve_ == pytest.approx(sparse.loss_curve_, rel=1e-12)
    assert dense.n_iter_ == sparse.n_iter_ == 3
    assert_array_equal(dense.predict_proba(X), sparse.predict_proba(sp.csr_matrix(X)))


@ignore_convergence
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("to_sparse", [sp.csr_matrix, sp.csc_matrix], ids=["csr", "csc"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("split", SPLITS)
def test_sparse_fit_is_dense_fit(two_lanes, splits_used, split, solver, to_sparse, dtype):
    hidden, batch = SHAPES[split]
    X = X_DIGITS.astype(dtype)
    dense, sparse = fit_pair(X, Y_DIGITS, to_sparse, hidden_layer_sizes=hidden,
                             batch_size=batch, solver=solver, learning_rate_init=0.01)
    assert set(splits_used) == {split}
    assert_same_fit(dense, sparse, X)


@ignore_convergence
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("to_sparse", [sp.csr_matrix, sp.csc_matrix], ids=["csr", "csc"])
def test_sparse_lbfgs_is_dense_lbfgs(to_sparse, dtype):
    X = X_DIGITS.astype(dtype)
    dense, sparse = fit_pair(X, Y_DIGITS, to_sparse, hidden_layer_sizes=(100,), solver="lbfgs")
    # L-BFGS runs in float64 whatever X's dtype (scipy's optimizer), as scikit-learn's does
    for a, b in zip(dense.coefs_ + dense.intercepts_, sparse.coefs_ + sparse.intercepts_,
                    strict=True):
        assert_array_equal(a, b)
    assert dense.loss_ == sparse.loss_


@ignore_convergence
def test_the_readme_crash_case_trains(two_lanes):
    """Issue 15's report: sparse digits with the defaults (hidden (100,), batch 200, adam),
    which crashed whenever a parallel kernel was chosen; now scikit-learn's numbers."""
    X = sp.csr_matrix(X_DIGITS)
    clf = MLPClassifier(max_iter=5, random_state=0).fit(X, Y_DIGITS)
    ref = SkMLP(max_iter=5, random_state=0).fit(X, Y_DIGITS)
    assert clf.n_iter_ == ref.n_iter_ == 5
    for a, b in zip(clf.coefs_ + clf.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert clf.loss_curve_ == pytest.approx(ref.loss_curve_, rel=1e-9)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sparse_blocks_are_the_dense_epoch(two_lanes, monkeypatch, split, optimizer):
    """Blocks of a few batches (the last one short) train as the whole epoch does."""
    hidden, batch = SHAPES[split]
    X = X_DIGITS[:430]  # 430 rows: the last batch and the last block are short
    Y = np.eye(10)[Y_DIGITS[:430]]
    net = Network((64, *hidden, 10), activations.HIDDEN["relu"], activations.SOFTMAX,
                  np.float64)
    theta0 = np.random.default_rng(0).normal(0, 0.1, net.n_params)
    # two batches a block
    monkeypatch.setattr(_engine, "SPARSE_BLOCK_ENTRIES", 2 * batch * X.shape[1])
    order = np.random.default_rng(1).permutation(X.shape[0])
    results = []
    for data in (X, sp.csr_matrix(X)):
        trainer = Trainer(net, batch, optimizer, learning_rate=0.01, momentum=0.9)
        assert trainer.split == split
        theta = theta0.copy()
        results.append((theta, trainer.epoch(theta, data, Y, order), trainer.epoch(
            theta, data, Y, order[::-1].copy())))
    (theta_d, *dense), (theta_s, *sparse) = results
    assert_array_equal(theta_s, theta_d)
    for d, s in zip(dense, sparse, strict=True):
        assert s[0] == pytest.approx(d[0], rel=1e-12)
        assert s[1:] == d[1:]


def test_sparse_divergence_stops_where_dense_does(monkeypatch):
    """A batch whose cost is not finite stops the epoch at the same row, in a later block."""
    X = X_DIGITS[:300].copy()
    X[250, 5] = np.inf  # in the fourth block of two 32-row batches
    Y = np.eye(10)[Y_DIGITS[:300]]
    net = Network((64, 16, 10), activations.HIDDEN["relu"], activations.SOFTMAX, np.float64)
    theta0 = np.random.default_rng(0).normal(0, 0.1, net.n_params)
    monkeypatch.setattr(_engine, "SPARSE_BLOCK_ENTRIES", 2 * 32 * X.shape[1])
    order = np.arange(300)
    seen = []
    for data in (X, sp.csr_matrix(X)):
        theta = theta0.copy()
        _, _, n_seen = Trainer(net, 32, "sgd", learning_rate=0.1).epoch(theta, data, Y, order)
        seen.append((n_seen, theta))
    assert seen[0][0] == seen[1][0] == 224  # the batch of rows 224..255 holds the inf
    assert_array_equal(seen[0][1], seen[1][1])
