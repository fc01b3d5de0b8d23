"""scikit-learn's numbers in float32, at real size: Fashion-MNIST's 60000 rows, 5 epochs.

In float32 "the same numbers" cannot mean equal to rounding: scikit-learn's own trajectory
moves when X moves by one ulp, by 1e-7 for smooth activations and by up to 0.06 for relu with
Adam, whose units switch on and off at knife edges. So each of fastmlp's fits is compared with
scikit-learn's fit on the same data, and the departure must stay within 10x of scikit-learn's
own spread: the largest departure of scikit-learn's fit with every nonzero X entry moved up by
one ulp, or only the entries of the even rows. (Both are as valid an input as X; which of them
meets a knife edge is chance, so the spread takes the larger.) docs/migrating.md has the table.
"""

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier as SkMLP

from fastmlp import datasets
from fastmlp.sklearn import MLPClassifier

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

EPOCHS = 5


@pytest.fixture(scope="module")
def fashion():
    try:
        X, y, _, _ = datasets.load_fashion_mnist()
    except FileNotFoundError as exc:
        pytest.skip(f"needs Fashion-MNIST (apt-get install dataset-fashion-mnist): {exc}")
    assert X.dtype == np.float32
    nonzero = X != 0
    up = X.copy()
    up[nonzero] = np.nextafter(up[nonzero], np.float32(2))
    even = nonzero.copy()
    even[1::2] = False
    up_even = X.copy()
    up_even[even] = np.nextafter(up_even[even], np.float32(2))
    return X, y, (up, up_even)


def departure(a, b):
    return max(float(np.abs(p - q).max())
               for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True))


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("activation", ["logistic", "tanh", "relu", "identity"])
def test_float32_within_scikit_learns_own_spread(fashion, activation, solver):
    X, y, perturbed = fashion
    params = dict(hidden_layer_sizes=(100,), activation=activation, solver=solver,
                  random_state=0, max_iter=EPOCHS)
    got = MLPClassifier(**params).fit(X, y)
    ref = SkMLP(**params).fit(X, y)
    assert all(c.dtype == np.float32 for c in got.coefs_ + got.intercepts_)
    spread = max(departure(ref, SkMLP(**params).fit(Xp, y)) for Xp in perturbed)
    gap = departure(got, ref)
    print(f"{activation} {solver}: departure {gap:.3g}, spread {spread:.3g}")  # the docs' table
    assert gap <= 10 * spread, f"departure {gap:.3g}, scikit-learn's own spread {spread:.3g}"
    assert got.n_iter_ == ref.n_iter_ == EPOCHS
    assert got.loss_curve_ == pytest.approx(ref.loss_curve_, rel=1e-3)
