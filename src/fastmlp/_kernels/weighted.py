"""Training with per-sample weights (scikit-learn's ``sample_weight``).

The engine's other kernels weigh every row alike; these compose its forward, backward and
optimizer kernels with a weighted BP1 and cost, as scikit-learn's ``_backprop`` does with
``sample_weight``: a batch's cost is ``sum_i w_i C_i / sum_i w_i`` plus
``0.5 * alpha * ||W||^2 / sum_i w_i``, so its BP1 is ``delta^L = (a^L - y) * w_i / sum_i w_i``.
Serial only: weighted fits are rare enough not to need the parallel variant.
"""

import numpy as np

from fastmlp._kernels._jit import jit
from fastmlp._kernels.activations import EXP, IDENTITY, LOGISTIC
from fastmlp._kernels.backward import backward
from fastmlp._kernels.forward import forward
from fastmlp._kernels.layout import activation_layout, rows_view
from fastmlp._kernels.loss import regression_cost1
from fastmlp._kernels.optim import ADAM, add_l2, optimizer_step
from fastmlp._kernels.train import gather_rows, gather_rows_csr


@jit
def weighted_cost_and_delta(a, y, w, w_sum, delta, out_act, clip_eps):
    """Weighted cost (scikit-learn's) and weighted BP1 for one batch.

    Parameters
    ----------
    a, y : (n, K) float arrays
        Outputs and targets (0/1 for the classifier's outputs).
    w : (n,) float array
        Sample weights.
    w_sum : float
        The weight total that normalises the cost (the batch's, or the data set's).
    delta : (n, K) float array
        Written: BP1, ``delta^L = (a^L - y) * w / w_sum``.
    out_act : int
        SOFTMAX (cost ``-sum_j y_j log p_j``), LOGISTIC (binary cross-entropy per output),
        IDENTITY (half squared error, averaged over the outputs) or EXP (half Poisson
        deviance); see :mod:`fastmlp._kernels.loss`.
    clip_eps : float
        Probabilities are clipped to ``[clip_eps, 1 - clip_eps]`` in the cross-entropy.

    Returns
    -------
    float
        ``sum_i w_i C_i`` (not divided by ``w_sum``).
    """
    n, k = a.shape
    T = a.dtype.type
    eps = T(clip_eps)
    one = T(1)
    zero = T(0)
    total = 0.0
    regression = out_act == IDENTITY or out_act == EXP
    per_output = 1.0 / k if out_act == IDENTITY else 1.0
    for i in range(n):
        row = 0.0
        scale = w[i] / w_sum
        if regression:
            for j in range(k):
                row += regression_cost1(a[i, j], y[i, j], out_act)
                delta[i, j] = (a[i, j] - y[i, j]) * scale
            total += w[i] * row * per_output
            continue
        for j in range(k):
            t = y[i, j]
            p = min(max(a[i, j], eps), one - eps)
            if t != zero:
                row -= t * np.log(p)
            if out_act == LOGISTIC and t != one:
                row -= (one - t) * np.log(one - p)
            delta[i, j] = (a[i, j] - t) * scale
        total += w[i] * row
    return total


@jit
def weighted_batch(x, y, w, w_sum, theta, grad, sizes, w_off, b_off, hidden_act, out_act,
                    act_buf, delta_buf, a_off, clip_eps):
    """Forward pass, weighted cost, weighted BP1 and BP2-BP4 of one batch into ``grad``.

    Returns ``sum_i w_i C_i`` (see :func:`weighted_cost_and_delta`); ``grad`` is the gradient
    of ``sum_i w_i C_i / w_sum`` without the L2 term.
    """
    n = x.shape[0]
    k = y.shape[1]
    last = sizes.shape[0] - 2
    forward(theta, sizes, w_off, b_off, x, act_buf, a_off, hidden_act, out_act, y, clip_eps,
            False)
    total = weighted_cost_and_delta(rows_view(act_buf, a_off[last], n, k), y, w, w_sum,
                                     rows_view(delta_buf, a_off[last], n, k), out_act, clip_eps)
    backward(theta, sizes, w_off, b_off, x, act_buf, delta_buf, a_off, hidden_act, grad)
    return total


@jit
def weighted_train_epoch(X, data, indices, indptr, is_csr, Y, sw, order, batch_size, theta,
                          grad, sizes, w_off, b_off, hidden_act, out_act, x_buf, y_buf, w_buf,
                          act_buf, delta_buf, a_off, optimizer, learning_rate, momentum, nesterov,
                          beta_1, beta_2, epsilon, state_1, state_2, step, alpha, clip_eps):
    """:func:`fastmlp._kernels.train.train_epoch` with per-sample weights ``sw``.

    A batch's cost is ``sum_i w_i C_i / sum_i w_i + 0.5 * alpha * ||W||^2 / sum_i w_i``
    (scikit-learn's ``_backprop`` with ``sample_weight``). ``X`` is dense, or, when ``is_csr``,
    given by ``data``/``indices``/``indptr``.

    Returns
    -------
    loss_sum : float
        Sum over batches of ``n_batch * batch cost``.
    n_seen : int
        Rows trained on (fewer than ``len(order)`` when a batch's cost was not finite).
    """
    M = order.shape[0]
    n_weights = b_off[0]
    T = theta.dtype.type
    loss_sum = 0.0
    for start in range(0, M, batch_size):
        n = min(batch_size, M - start)
        x = x_buf[:n]
        y = y_buf[:n]
        w = w_buf[:n]
        if is_csr:
            gather_rows_csr(data, indices, indptr, order, start, x)
        else:
            gather_rows(X, order, start, x)
        gather_rows(Y, order, start, y)
        w_sum = T(0)
        for i in range(n):
            w[i] = sw[order[start + i]]
            w_sum += w[i]
        total = weighted_batch(x, y, w, w_sum, theta, grad, sizes, w_off, b_off, hidden_act,
                                out_act, act_buf, delta_buf, a_off, clip_eps)
        if not np.isfinite(total):
            return loss_sum + total, start
        coef = T(alpha / w_sum)
        if optimizer == ADAM:
            step[0] += 1
        sum_sq = optimizer_step(optimizer, theta, grad, state_1, state_2, n_weights, step[0],
                                learning_rate, momentum, nesterov, beta_1, beta_2, epsilon, coef)
        loss_sum += (total / w_sum + 0.5 * alpha * sum_sq / w_sum) * n
    return loss_sum, M


@jit
def weighted_loss_and_gradient(X, data, indices, indptr, is_csr, Y, sw, theta, grad, sizes,
                                w_off, b_off, hidden_act, out_act, alpha, clip_eps, chunk):
    """Weighted full-data cost and its gradient into ``grad`` (L-BFGS with ``sample_weight``).

    The cost is ``sum_i w_i C_i / sum_i w_i + 0.5 * alpha * ||W||^2 / sum_i w_i``; rows are
    processed ``chunk`` at a time.
    """
    N = Y.shape[0]
    a_off, total_size = activation_layout(sizes, chunk)
    act_buf = np.empty(total_size, theta.dtype)
    delta_buf = np.empty(total_size, theta.dtype)
    x_buf = np.empty((chunk, sizes[0]), theta.dtype)
    chunk_grad = np.empty_like(grad)
    order = np.arange(N)
    T = theta.dtype.type
    w_sum = T(0)
    for i in range(N):
        w_sum += sw[i]
    grad[:] = 0
    total = 0.0
    for start in range(0, N, chunk):
        stop = min(start + chunk, N)
        x = x_buf[: stop - start]
        if is_csr:
            gather_rows_csr(data, indices, indptr, order, start, x)
        else:
            gather_rows(X, order, start, x)
        total += weighted_batch(x, Y[start:stop], sw[start:stop], w_sum, theta, chunk_grad,
                                 sizes, w_off, b_off, hidden_act, out_act, act_buf, delta_buf,
                                 a_off, clip_eps)
        for i in range(grad.shape[0]):
            grad[i] += chunk_grad[i]
    coef = T(alpha / w_sum)
    sum_sq = add_l2(theta, grad, b_off[0], coef)
    return total / w_sum + 0.5 * alpha * sum_sq / w_sum
