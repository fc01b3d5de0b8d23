"""The backward pass: BP2, BP3 and BP4 for one batch, into the flat gradient."""


from fastmlp._config import BLAS_MIN_FLOPS
from fastmlp._kernels._jit import jit
from fastmlp._kernels.activations import multiply_derivative
from fastmlp._kernels.blas import gemm
from fastmlp._kernels.layout import bias, rows_view, weight
from fastmlp._kernels.linalg import matmul_nt, matmul_tn


@jit
def backward(theta, sizes, w_off, b_off, x, act_buf, delta_buf, a_off, hidden_act, grad):
    """Gradient of the batch cost, given ``delta^L`` (BP1) already in ``delta_buf``.

    Parameters
    ----------
    theta, sizes, w_off, b_off, x, act_buf, a_off, hidden_act
        As for :func:`fastmlp._kernels.forward.forward`, after it ran on ``x``.
    delta_buf : float array
        Same layout as ``act_buf``; holds ``delta^L`` on entry, every ``delta^l`` on exit.
    grad : (P,) float array
        Written with ``dC/dtheta`` in ``theta``'s layout (no regularisation term).
    """
    n = x.shape[0]
    n_layers = sizes.shape[0] - 1
    for layer in range(n_layers - 1, -1, -1):
        fan_in = sizes[layer]
        fan_out = sizes[layer + 1]
        delta = rows_view(delta_buf, a_off[layer], n, fan_out)
        if layer == 0:
            a_prev = x
        else:
            a_prev = rows_view(act_buf, a_off[layer - 1], n, fan_in)
        # BP4: dC/dW^l = (a^{l-1})^T delta^l  (rows are samples, so the sum over x is the product)
        matmul_tn(a_prev, delta, weight(grad, sizes, w_off, layer))
        # BP3: dC/db^l = sum over the batch of delta^l
        grad_b = bias(grad, sizes, b_off, layer)
        grad_b[:] = 0
        for i in range(n):
            for j in range(fan_out):
                grad_b[j] += delta[i, j]
        if layer > 0:
            # BP2: delta^{l-1} = (delta^l W^l^T) * sigma'(z^{l-1})
            delta_prev = rows_view(delta_buf, a_off[layer - 1], n, fan_in)
            matmul_nt(delta, weight(theta, sizes, w_off, layer), delta_prev)
            multiply_derivative(a_prev, delta_prev, hidden_act)


@jit
def backward_sgd(theta, sizes, w_off, b_off, x, act_buf, delta_buf, a_off, hidden_act,
                 learning_rate):
    """BP2-BP4 fused with plain SGD: ``W -= lr * a_prev^T delta``, ``b -= lr * sum delta``.

    The gradient is never stored: each layer's BP2 runs first, from the weights before their
    update, then BP4 accumulates straight into them (BLAS with ``beta = 1`` from
    ``BLAS_MIN_FLOPS`` on, a loop below). Arguments as for :func:`backward`; ``delta_buf``
    holds ``delta^L`` (for the batch's mean cost) on entry.
    """
    n = x.shape[0]
    n_layers = sizes.shape[0] - 1
    lr = theta.dtype.type(learning_rate)
    for layer in range(n_layers - 1, -1, -1):
        fan_in = sizes[layer]
        fan_out = sizes[layer + 1]
        delta = rows_view(delta_buf, a_off[layer], n, fan_out)
        if layer == 0:
            a_prev = x
        else:
            a_prev = rows_view(act_buf, a_off[layer - 1], n, fan_in)
        W = weight(theta, sizes, w_off, layer)
        if layer > 0:
            # BP2 from W before its update
            delta_prev = rows_view(delta_buf, a_off[layer - 1], n, fan_in)
            matmul_nt(delta, W, delta_prev)
            multiply_derivative(a_prev, delta_prev, hidden_act)
        # BP4 and the step together
        if n * fan_in * fan_out >= BLAS_MIN_FLOPS:
            gemm(True, False, -lr, a_prev, delta, 1.0, W)
        else:
            for i in range(n):
                for p in range(fan_in):
                    a = lr * a_prev[i, p]
                    for j in range(fan_out):
                        W[p, j] -= a * delta[i, j]
        # BP3 and the step
        b = bias(theta, sizes, b_off, layer)
        for j in range(fan_out):
            acc = theta.dtype.type(0)
            for i in range(n):
                acc += delta[i, j]
            b[j] -= lr * acc
