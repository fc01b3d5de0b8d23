"""Input checks that must not copy the data (a NumPy ``isfinite(X).all()`` allocates N x F)."""

import numpy as np

from fastmlp._kernels._jit import jit


@jit
def all_finite(X):
    """Return True when every entry of the 2-D float array ``X`` is finite (no NaN, no inf)."""
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            if not np.isfinite(X[i, j]):
                return False
    return True
