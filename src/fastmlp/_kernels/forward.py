"""The forward pass: ``z^l = a^{l-1} W^l + b^l``, ``a^l = f(z^l)``, softmax/logistic on top."""

import numpy as np
from numba import prange

from fastmlp._kernels._jit import jit
from fastmlp._kernels.activations import bias_activation
from fastmlp._kernels.layout import activation_layout, bias, copy_rows_into, rows_view, weight
from fastmlp._kernels.linalg import matmul
from fastmlp._kernels.loss import output_layer


@jit
def forward(theta, sizes, w_off, b_off, x, act_buf, a_off, hidden_act, out_act, y, clip_eps,
            with_loss):
    """Forward pass of one batch, activations written into ``act_buf``.

    Parameters
    ----------
    theta : (P,) float array
        Flat parameters (see :mod:`fastmlp._kernels.layout`).
    sizes : (L+1,) int64 array
        Layer sizes ``s_0 .. s_L``.
    w_off, b_off : (L,) int64 arrays
        Offsets of each layer's weights and bias in ``theta``.
    x : (n, s_0) float array, C-contiguous
        The batch.
    act_buf : float array
        Flat buffer for ``a^1 .. a^L``; layer ``l`` at ``a_off[l-1]``, ``n`` rows.
    a_off : (L,) int64 array
    hidden_act, out_act : int
        Activation codes (see :mod:`fastmlp._kernels.activations`).
    y : (n, s_L) float array
        Targets, read only when ``with_loss``.
    clip_eps : float
        See :func:`fastmlp._kernels.loss.output_layer`.
    with_loss : bool

    Returns
    -------
    loss_sum : float
        Summed cost over the batch (0 unless ``with_loss``).
    n_correct : int
    """
    n = x.shape[0]
    n_layers = sizes.shape[0] - 1
    a_prev = x
    for layer in range(n_layers):
        W = weight(theta, sizes, w_off, layer)
        b = bias(theta, sizes, b_off, layer)
        z = rows_view(act_buf, a_off[layer], n, sizes[layer + 1])
        matmul(a_prev, W, z)  # z = a^{l-1} W^l; the bias is added in the fused loop
        if layer < n_layers - 1:
            bias_activation(z, b, hidden_act)
        else:
            return output_layer(z, b, y, out_act, clip_eps, with_loss)
        a_prev = z
    return 0.0, 0  # unreachable: a network has at least one weight layer


@jit
def predict_proba(theta, sizes, w_off, b_off, X, hidden_act, out_act, chunk, out):
    """Output probabilities for every row of ``X``, ``chunk`` rows at a time.

    Parameters
    ----------
    theta, sizes, w_off, b_off, hidden_act, out_act
        As for :func:`forward`.
    X : (N, s_0) float array, C-contiguous
    chunk : int
        Rows per forward pass; bounds the activation buffer at ``chunk * sum(s_1..s_L)``.
    out : (N, s_L) float array
        Written with the probabilities.
    """
    N = X.shape[0]
    n_layers = sizes.shape[0] - 1
    a_off, total = activation_layout(sizes, chunk)
    act_buf = np.empty(total, X.dtype)
    no_y = np.empty((0, 0), X.dtype)
    last = a_off[n_layers - 1]
    k = sizes[n_layers]
    for start in range(0, N, chunk):
        stop = min(start + chunk, N)
        forward(theta, sizes, w_off, b_off, X[start:stop], act_buf, a_off, hidden_act, out_act,
                no_y, 0.0, False)
        copy_rows_into(out[start:stop], rows_view(act_buf, last, stop - start, k))


@jit(parallel=True)
def predict_proba_parallel(theta, sizes, w_off, b_off, X, hidden_act, out_act, chunk,
                           n_threads, out):
    """:func:`predict_proba` with the chunks of rows shared out over ``n_threads`` threads.

    Thread ``t`` takes chunks ``t, t + n_threads, ...``, each with its own activation buffer.
    """
    N = X.shape[0]
    n_layers = sizes.shape[0] - 1
    a_off, total = activation_layout(sizes, chunk)
    act_bufs = np.empty((n_threads, total), X.dtype)
    no_y = np.empty((0, 0), X.dtype)
    last = a_off[n_layers - 1]
    k = sizes[n_layers]
    n_chunks = (N + chunk - 1) // chunk
    for t in prange(n_threads):
        for c in range(t, n_chunks, n_threads):
            start = c * chunk
            stop = min(start + chunk, N)
            forward(theta, sizes, w_off, b_off, X[start:stop], act_bufs[t], a_off, hidden_act,
                    out_act, no_y, 0.0, False)
            copy_rows_into(out[start:stop], rows_view(act_bufs[t], last, stop - start, k))
