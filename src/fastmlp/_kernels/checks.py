"""Input checks that must not copy the data (a NumPy ``isfinite(X).all()`` allocates N x F)."""

from fastmlp._kernels._jit import jit


@jit
def all_finite(X):
    """Return True when every entry of the 2-D float array ``X`` is finite (no NaN, no inf).

    ``x * 0`` is 0 for a finite ``x`` and NaN for NaN or an infinity, so a row's sum of them is
    0 exactly when the row is finite: a loop with no branch, which vectorises (the fast-math
    flags leave out ``nnan``, so the compiler may not fold ``x * 0`` to 0).
    """
    zero = X.dtype.type(0)
    for i in range(X.shape[0]):
        s = zero
        for j in range(X.shape[1]):
            s += X[i, j] * zero
        if not s == zero:
            return False
    return True
