"""Activation functions and their derivatives, fused with the bias add.

Derivatives are written in terms of the activation ``a = f(z)`` (not ``z``), so the forward
pass can overwrite ``z`` with ``a`` in place and the backward pass needs no second buffer:
sigmoid' = a(1-a), tanh' = 1-a^2, relu' = [a > 0], identity' = 1.
"""

import numpy as np

from fastmlp._kernels import expfast
from fastmlp._kernels._jit import jit

# Activation codes shared by the kernels and the Python layer (kernels take no strings).
IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3
SOFTMAX = 4
EXP = 5  # an output activation only: MLPRegressor's loss="poisson"

#: Hidden activations by name; "sigmoid" and "logistic" are the same function.
HIDDEN = {
    "identity": IDENTITY, "logistic": LOGISTIC, "sigmoid": LOGISTIC, "tanh": TANH, "relu": RELU,
}


@jit
def sigmoid1(z):
    """Logistic sigmoid of one scalar, exact to rounding for any finite ``z``.

    Parameters
    ----------
    z : float32 or float64

    Returns
    -------
    a : same type as ``z``
        ``1 / (1 + exp(-z))``. For ``z`` below about -88 (float32) or -709 (float64),
        ``exp(-z)`` is ``inf`` and ``a`` is exactly 0, which IEEE arithmetic guarantees (the
        fast-math flags leave out ``ninf``). Branch-free, so the activation loop vectorises:
        measured 3x faster than the two-branch form, with the same largest error; and
        :func:`fastmlp._kernels.expfast.exp` (within 3 ulp of ``np.exp``) vectorises where
        the C library's ``exp`` does not: 3x faster again (a 32 x 100 float32 batch, 10.2 us
        to 3.4 us).
    """
    one = type(z)(1)
    return one / (one + expfast.exp(-z))


@jit
def bias_activation(z, b, act):
    """In place ``z[i, j] <- f(z[i, j] + b[j])`` for a hidden activation ``f``.

    Parameters
    ----------
    z : (n, m) float array, C-contiguous
        Pre-activations without the bias; overwritten by the activations ``a``.
    b : (m,) float array
        Bias of the layer.
    act : int
        IDENTITY, LOGISTIC, TANH or RELU.
    """
    n, m = z.shape
    zero = z.dtype.type(0)
    # One loop per activation, so the inner loop has no branch and vectorises.
    if act == LOGISTIC:
        for i in range(n):
            for j in range(m):
                z[i, j] = sigmoid1(z[i, j] + b[j])
    elif act == TANH:
        for i in range(n):
            for j in range(m):
                z[i, j] = np.tanh(z[i, j] + b[j])
    elif act == RELU:
        for i in range(n):
            for j in range(m):
                z[i, j] = max(z[i, j] + b[j], zero)
    else:
        for i in range(n):
            for j in range(m):
                z[i, j] = z[i, j] + b[j]


@jit
def bias_activation_columns(z, b, act, c0, c1):
    """:func:`bias_activation` of columns ``c0 .. c1 - 1`` of ``z`` only (``b`` is the whole bias).

    Row by row, on 1-D slices indexed from 0: an index that may be negative (``c0 + j`` with
    ``c0`` unknown) keeps Numba's wraparound test in the loop, which then does not vectorise
    (measured: 6.2 ns an element against 1.2). The whole-matrix functions keep their own
    loops: on rows of 50 to 100 the slices cost :func:`multiply_derivative` 18-49% more.
    """
    bs = b[c0:c1]
    zero = z.dtype.type(0)
    # One loop per activation, so the inner loop has no branch and vectorises.
    for i in range(z.shape[0]):
        row = z[i, c0:c1]
        if act == LOGISTIC:
            for j in range(row.shape[0]):
                row[j] = sigmoid1(row[j] + bs[j])
        elif act == TANH:
            for j in range(row.shape[0]):
                row[j] = np.tanh(row[j] + bs[j])
        elif act == RELU:
            for j in range(row.shape[0]):
                row[j] = max(row[j] + bs[j], zero)
        else:
            for j in range(row.shape[0]):
                row[j] = row[j] + bs[j]


@jit
def multiply_derivative(a, delta, act):
    """In place ``delta <- delta * f'(z)``, with ``f'`` computed from ``a = f(z)`` (BP2's ⊙ term).

    Parameters
    ----------
    a : (n, m) float array
        Activations of the layer.
    delta : (n, m) float array
        ``delta^{l+1} W^{l+1}^T`` on entry; ``delta^l`` on exit.
    act : int
        IDENTITY, LOGISTIC, TANH or RELU.
    """
    n, m = a.shape
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    if act == LOGISTIC:
        for i in range(n):
            for j in range(m):
                delta[i, j] *= a[i, j] * (one - a[i, j])
    elif act == TANH:
        for i in range(n):
            for j in range(m):
                delta[i, j] *= one - a[i, j] * a[i, j]
    elif act == RELU:
        for i in range(n):
            for j in range(m):
                if a[i, j] == zero:
                    delta[i, j] = zero


@jit
def multiply_derivative_columns(a, delta, act, c0, c1):
    """:func:`multiply_derivative` of columns ``c0 .. c1 - 1`` only.

    Row by row, for the reason :func:`bias_activation_columns` gives.
    """
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    for i in range(a.shape[0]):
        a_row = a[i, c0:c1]
        d_row = delta[i, c0:c1]
        if act == LOGISTIC:
            for j in range(a_row.shape[0]):
                d_row[j] *= a_row[j] * (one - a_row[j])
        elif act == TANH:
            for j in range(a_row.shape[0]):
                d_row[j] *= one - a_row[j] * a_row[j]
        elif act == RELU:
            for j in range(a_row.shape[0]):
                if a_row[j] == zero:
                    d_row[j] = zero
