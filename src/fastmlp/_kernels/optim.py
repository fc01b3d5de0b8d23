"""Optimizer steps: one fused loop over the flat parameter vector.

The steps do scikit-learn's arithmetic (``sklearn/neural_network/_stochastic_optimizers.py``)
in its order and precision, compiled without fast-math: each Python-float coefficient,
``1 - beta_1`` included, is computed in float64 and rounded to the parameters' dtype, as
NumPy rounds a Python float that meets a float32 array. Adam's ``m / (sqrt(v) + eps)``
amplifies any other rounding: in float32, ``1 - float32(beta_2)`` for ``float32(1 - beta_2)``
alone (``9.9998713e-4`` for ``1e-3``) took the weights 0.12 away from scikit-learn's after one
Fashion-MNIST epoch, where scikit-learn's own spread under a one-ulp change of X is 2e-6.

Each step also adds the L2 term ``l2 * W`` to the weight part of the gradient (the first
``n_weights`` entries; biases are not penalised) and returns ``sum(W**2)`` of the weights
before the update, which the caller needs for the cost ``0.5 * l2 * ||W||^2``.
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


@jit(strict=True)
def sgd_step(theta, grad, velocity, n_weights, learning_rate, momentum, nesterov, l2):
    """SGD, with classical or Nesterov momentum, as scikit-learn's ``SGDOptimizer``.

    ``v <- momentum * v - lr * g``; ``theta += v`` (classical) or
    ``theta += momentum * v - lr * g`` (Nesterov). With ``momentum == 0`` and no Nesterov,
    ``theta -= lr * g`` and ``velocity`` is not touched.

    Parameters
    ----------
    theta, grad, velocity : (P,) float arrays
        Parameters (updated), gradient without the L2 term (the L2 term is added in place),
        velocity (updated).
    n_weights : int
        Number of weight entries at the start of ``theta``.
    learning_rate, momentum : float
        Cast to the parameters' dtype.
    l2 : float (the parameters' dtype)
    nesterov : bool

    Returns
    -------
    sum_sq : float
        ``sum(W**2)`` before the update (0 when ``l2 == 0``).
    """
    sum_sq = add_l2(theta, grad, n_weights, l2) if l2 != 0 else 0.0
    T = theta.dtype.type
    learning_rate = T(learning_rate)  # float32 arithmetic for float32 parameters
    momentum = T(momentum)
    P = theta.shape[0]
    if momentum == 0 and not nesterov:
        for i in range(P):
            theta[i] -= learning_rate * grad[i]
    elif nesterov:
        for i in range(P):
            v = momentum * velocity[i] - learning_rate * grad[i]
            velocity[i] = v
            theta[i] += momentum * v - learning_rate * grad[i]
    else:
        for i in range(P):
            v = momentum * velocity[i] - learning_rate * grad[i]
            velocity[i] = v
            theta[i] += v
    return sum_sq


@jit(strict=True)
def adam_step(theta, grad, m, v, n_weights, step, learning_rate, beta_1, beta_2, epsilon, l2):
    """Adam, as scikit-learn's ``AdamOptimizer`` (bias correction folded into the rate).

    Parameters
    ----------
    theta, grad, m, v : (P,) float arrays
        Parameters, gradient (L2 term added in place), first and second moments (updated).
    n_weights : int
    step : int
        The step number ``t`` after this update (1 for the first).
    learning_rate, beta_1, beta_2, epsilon : float
        float64 settings: the step's rate and the update are computed in float64, the moments
        with the coefficients rounded to the parameters' dtype (as scikit-learn does).
    l2 : float (the parameters' dtype)

    Returns
    -------
    sum_sq : float
        ``sum(W**2)`` before the update (0 when ``l2 == 0``).
    """
    sum_sq = add_l2(theta, grad, n_weights, l2) if l2 != 0 else 0.0
    T = theta.dtype.type
    # scikit-learn: m = beta_1 * m + (1 - beta_1) * g and v = beta_2 * v + (1 - beta_2) * g**2
    # in the parameters' dtype; lr = lr_init * sqrt(1 - beta_2**t) / (1 - beta_1**t) is a NumPy
    # float64 (np.sqrt's), so update = -lr * m / (sqrt(v) + eps) is float64 (sqrt(v) + eps is
    # not), and theta += update rounds theta + update to theta's dtype. beta**t with a float
    # exponent: C's pow, as Python's float ** int.
    t = float(step)
    rate = -(learning_rate * np.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t))
    b1 = T(beta_1)
    c1 = T(1.0 - beta_1)
    b2 = T(beta_2)
    c2 = T(1.0 - beta_2)
    eps = T(epsilon)
    for i in range(theta.shape[0]):
        g = grad[i]
        mi = b1 * m[i] + c1 * g
        vi = b2 * v[i] + c2 * (g * g)
        m[i] = mi
        v[i] = vi
        theta[i] = T(theta[i] + rate * mi / (np.sqrt(vi) + eps))
    return sum_sq


@jit
def optimizer_step(optimizer, theta, grad, state_1, state_2, n_weights, step, learning_rate,
                   momentum, nesterov, beta_1, beta_2, epsilon, l2):
    """One update by ``optimizer`` (``SGD``: :func:`sgd_step`, ``ADAM``: :func:`adam_step`).

    ``state_1`` is the velocity or Adam's first moment, ``state_2`` Adam's second (unused by
    SGD), ``step`` Adam's step number after this update. Returns ``sum(W**2)`` before it.
    """
    if optimizer == SGD:
        return sgd_step(theta, grad, state_1, n_weights, learning_rate, momentum, nesterov, l2)
    return adam_step(theta, grad, state_1, state_2, n_weights, step, learning_rate, beta_1,
                     beta_2, epsilon, l2)
