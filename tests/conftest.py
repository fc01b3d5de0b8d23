import numpy as np
import pytest

from fastmlp import datasets


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits scaled to [0, 1]: (X_train, y_train, X_test, y_test), float32."""
    return datasets.load_digits(seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
