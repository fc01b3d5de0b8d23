"""Optimizer steps: one fused loop over the flat parameter vector, or over a block of it.

Each step also adds the L2 term ``l2 * W`` to the weight part of the gradient (the first
``n_weights`` entries; biases are not penalised) and returns ``sum(W**2)`` of the weights
before the update, which the caller needs for the cost ``0.5 * l2 * ||W||^2``. A block (runs of
entries a fixed stride apart) is the part of the parameters one lane of
:mod:`fastmlp._kernels.train_units` owns.
"""

import numpy as np

from fastmlp._kernels._jit import jit

# Optimizer codes (kernels take no strings).
SGD = 0
ADAM = 1


@jit
def add_l2(theta, grad, n_weights, l2):
    """``grad[:n_weights] += l2 * theta[:n_weights]``; returns ``sum(W**2)``."""
    sum_sq = 0.0
    for i in range(n_weights):
        sum_sq += theta[i] * theta[i]
        grad[i] += l2 * theta[i]
    return sum_sq


@jit
def sgd_step(theta, grad, velocity, start, n_rows, row_stride, width, learning_rate, momentum,
             nesterov, l2):
    """SGD, with classical or Nesterov momentum, as scikit-learn's ``SGDOptimizer``, on a block.

    ``v <- momentum * v - lr * g``; ``theta += v`` (classical) or
    ``theta += momentum * v - lr * g`` (Nesterov). With ``momentum == 0`` and no Nesterov,
    ``theta -= lr * g`` and ``velocity`` is not touched.

    Parameters
    ----------
    theta, grad, velocity : (P,) float arrays
        Parameters (updated), gradient without the L2 term (the L2 term is added in place),
        velocity (updated).
    start, n_rows, row_stride, width : int
        The block: runs ``[start + r * row_stride, ... + width)`` for ``r < n_rows`` (one run
        for a contiguous range; a block of columns of a weight matrix otherwise). Indexed
        directly, not sliced per run: slicing short runs was measured 8x slower.
    learning_rate, momentum : float
        Cast to the parameters' dtype.
    nesterov : bool
    l2 : float (the parameters' dtype)
        0 for biases.

    Returns
    -------
    sum_sq : float
        ``sum(W**2)`` of the block before the update (0 when ``l2 == 0``).
    """
    T = theta.dtype.type
    learning_rate = T(learning_rate)  # float32 arithmetic for float32 parameters
    momentum = T(momentum)
    sum_sq = 0.0
    for r in range(n_rows):
        # unsigned, so Numba knows the indices are not negative and emits no wraparound
        # branch, which would stop the loops vectorising (measured 7x slower)
        a = np.uint64(start + r * row_stride)
        b = a + np.uint64(width)
        if l2 != 0:
            for i in range(a, b):
                sum_sq += theta[i] * theta[i]
                grad[i] += l2 * theta[i]
        if momentum == 0 and not nesterov:
            for i in range(a, b):
                theta[i] -= learning_rate * grad[i]
        elif nesterov:
            for i in range(a, b):
                v = momentum * velocity[i] - learning_rate * grad[i]
                velocity[i] = v
                theta[i] += momentum * v - learning_rate * grad[i]
        else:
            for i in range(a, b):
                v = momentum * velocity[i] - learning_rate * grad[i]
                velocity[i] = v
                theta[i] += v
    return sum_sq


@jit
def adam_rate(learning_rate, beta_1, beta_2, step):
    """Adam's step size at step ``t`` (1 for the first), bias corrections folded in.

    Computed in float64 from the float64 settings, as scikit-learn computes it in Python floats.
    """
    return learning_rate * np.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)


@jit
def adam_step(theta, grad, m, v, start, n_rows, row_stride, width, rate, beta_1, beta_2,
              epsilon, l2):
    """Adam, as scikit-learn's ``AdamOptimizer`` (bias correction folded into the rate).

    Parameters
    ----------
    theta, grad, m, v : (P,) float arrays
        Parameters, gradient (L2 term added in place), first and second moments (updated).
    start, n_rows, row_stride, width : int
        The block, as for :func:`sgd_step`.
    rate : float
        :func:`adam_rate` of this step (cast to the parameters' dtype).
    beta_1, beta_2, epsilon : float
        float64 settings, cast to the parameters' dtype for the moments.
    l2 : float (the parameters' dtype)
        0 for biases.

    Returns
    -------
    sum_sq : float
        ``sum(W**2)`` of the block before the update (0 when ``l2 == 0``).
    """
    T = theta.dtype.type
    one = T(1)
    rate = T(rate)
    b1 = T(beta_1)
    b2 = T(beta_2)
    eps = T(epsilon)
    sum_sq = 0.0
    for r in range(n_rows):
        # unsigned, so Numba knows the indices are not negative and emits no wraparound
        # branch, which would stop the loops vectorising (measured 7x slower)
        a = np.uint64(start + r * row_stride)
        b = a + np.uint64(width)
        if l2 != 0:
            for i in range(a, b):
                sum_sq += theta[i] * theta[i]
                grad[i] += l2 * theta[i]
        for i in range(a, b):
            g = grad[i]
            m[i] = b1 * m[i] + (one - b1) * g
            v[i] = b2 * v[i] + (one - b2) * (g * g)
            theta[i] -= rate * m[i] / (np.sqrt(v[i]) + eps)
    return sum_sq


@jit
def optimizer_step_rows(optimizer, theta, grad, state_1, state_2, start, n_rows, row_stride,
                        width, step, learning_rate, momentum, nesterov, beta_1, beta_2, epsilon,
                        l2):
    """One update of a block by ``optimizer`` (``SGD``: :func:`sgd_step`, ``ADAM``: Adam).

    The block is ``start, n_rows, row_stride, width`` (see :func:`sgd_step`). ``state_1`` is
    the velocity or Adam's first moment, ``state_2`` Adam's second (unused by SGD), ``step``
    Adam's step number after this update, ``l2`` the L2 coefficient (0 for biases). Returns
    ``sum(W**2)`` of the block before the update.
    """
    if optimizer == SGD:
        return sgd_step(theta, grad, state_1, start, n_rows, row_stride, width, learning_rate,
                        momentum, nesterov, l2)
    return adam_step(theta, grad, state_1, state_2, start, n_rows, row_stride, width,
                     adam_rate(learning_rate, beta_1, beta_2, step), beta_1, beta_2, epsilon, l2)


@jit
def optimizer_step(optimizer, theta, grad, state_1, state_2, n_weights, step, learning_rate,
                   momentum, nesterov, beta_1, beta_2, epsilon, l2):
    """One update of the whole flat vector by ``optimizer``.

    Its first ``n_weights`` entries are weights (penalised by ``l2``), the rest biases. Returns
    ``sum(W**2)`` before the update.
    """
    settings = (step, learning_rate, momentum, nesterov, beta_1, beta_2, epsilon)
    P = theta.shape[0]
    sum_sq = optimizer_step_rows(optimizer, theta, grad, state_1, state_2, 0, 1, 0, n_weights,
                                 *settings, l2)
    optimizer_step_rows(optimizer, theta, grad, state_1, state_2, n_weights, 1, 0,
                        P - n_weights, *settings, l2 * 0)
    return sum_sq
