"""The backward pass: BP2, BP3 and BP4 for one batch, into the flat gradient."""


from fastmlp._kernels._jit import jit
from fastmlp._kernels.activations import multiply_derivative
from fastmlp._kernels.layout import bias, rows_view, weight
from fastmlp._kernels.linalg import matmul_nt, matmul_tn


@jit
def backward(theta, sizes, w_off, b_off, x, act_buf, delta_buf, a_off, hidden_act, grad,
             sgd_rate=0.0):
    """Gradient of the batch cost, given ``delta^L`` (BP1) already in ``delta_buf``.

    Parameters
    ----------
    theta, sizes, w_off, b_off, x, act_buf, a_off, hidden_act
        As for :func:`fastmlp._kernels.forward.forward`, after it ran on ``x``.
    delta_buf : float array
        Same layout as ``act_buf``; holds ``delta^L`` on entry, every ``delta^l`` on exit.
    grad : (P,) float array
        Written with ``dC/dtheta`` in ``theta``'s layout (no regularisation term).
    sgd_rate : float
        When positive, plain SGD fused in: ``theta -= sgd_rate * dC/dtheta`` is applied as
        each layer's BP4/BP3 accumulate straight into the parameters (BLAS ``beta = 1``), and
        ``grad`` is not touched. Each layer's BP2 runs first, from the weights before their
        update.
    """
    n = x.shape[0]
    n_layers = sizes.shape[0] - 1
    fused = sgd_rate > 0
    target = theta if fused else grad  # where BP4/BP3 write
    alpha = -sgd_rate if fused else 1.0
    beta = 1.0 if fused else 0.0
    T = theta.dtype.type
    for layer in range(n_layers - 1, -1, -1):
        fan_in = sizes[layer]
        fan_out = sizes[layer + 1]
        delta = rows_view(delta_buf, a_off[layer], n, fan_out)
        if layer == 0:
            a_prev = x
        else:
            a_prev = rows_view(act_buf, a_off[layer - 1], n, fan_in)
            # BP2: delta^{l-1} = (delta^l W^l^T) * sigma'(z^{l-1})
            delta_prev = rows_view(delta_buf, a_off[layer - 1], n, fan_in)
            matmul_nt(delta, weight(theta, sizes, w_off, layer), delta_prev)
            multiply_derivative(a_prev, delta_prev, hidden_act)
        # BP4: dC/dW^l = (a^{l-1})^T delta^l  (rows are samples, so the sum over x is the product)
        matmul_tn(a_prev, delta, weight(target, sizes, w_off, layer), alpha, beta)
        # BP3: dC/db^l = sum over the batch of delta^l
        target_b = bias(target, sizes, b_off, layer)
        if not fused:
            target_b[:] = 0
        for i in range(n):
            for j in range(fan_out):
                target_b[j] += T(alpha) * delta[i, j]
