"""One epoch of a network with wide hidden layers, every layer's units split over the lanes.

:func:`fastmlp._kernels.train.train_epoch_parallel` splits a batch's *rows* over lanes: each
lane runs half-batch products over the whole network into a gradient slab of its own, and the
slabs are summed every batch. On a network of two 1024-unit layers that sum reads and writes
three slabs of 1.86 M parameters per batch, and the lanes' half-batch products are slower per
FLOP than whole-batch ones: a float64 epoch ran at 0.67-0.71 of the time numpy's BLAS needs
for its products alone. Here lane ``t`` of ``T`` owns units ``[c_t, c_{t+1})`` of every hidden
layer (``c_t = t * s / T``) and computes every product of the batch *into what it owns*:

- forward, hidden layer ``l``: ``a^l[:, own] = f(a^{l-1} W^l[:, own] + b^l[own])``, a product
  of the whole batch (all of ``a^{l-1}``, which the previous region finished);
- output layer: its share ``a^{L-1}[:, own] W^L[own, :]`` of ``z^L`` (an ``(n, K)`` partial);
  the main thread sums the partials in lane order, applies softmax/logistic, BP1 and BP3 of
  ``b^L``;
- BP2, hidden layer ``l``: ``delta^l[:, own] = (delta^{l+1} W^{l+1}[own, :]^T) * f'``, from
  ``W^{l+1}`` before any lane updates it;
- BP4/BP3 and the update of what it owns: columns ``own`` of each hidden layer's ``W`` and
  ``b``, rows ``own`` of the output layer's ``W``. Every gradient entry is one product over
  the whole batch, written once: no slab, no sum across lanes. Plain SGD fuses BP4 into the
  update (``W <- W - lr a^T delta``, one BLAS call with ``beta = 1``).

A region (one ``prange`` over the lanes) ends where a lane needs what another wrote: per
batch, one per hidden layer going forward (the first also gathers the next batch's rows into
the other input buffer), one for the output layer's BP2 and BP4, and one per hidden layer
below it for BP2, each of which also does BP4 of the layer whose weights the previous
region's BP2 read; the last one, BP4 of the first layer too. Plain SGD takes each step there
(so a layer's weights change only once every BP2 that reads them is done). Any other
optimizer gets the whole gradient written by those regions and takes its step in one more,
each lane over a contiguous range of the parameters.

The lane count is fixed by the caller (Numba's pool size), not by the threads running, and the
partials are summed in lane order: results do not depend on the thread count. They equal
:func:`fastmlp._kernels.train.train_epoch`'s up to the order of floating-point sums.
"""

import numpy as np
from numba import prange

from fastmlp._kernels._jit import jit
from fastmlp._kernels.activations import bias_activation_columns, multiply_derivative_columns
from fastmlp._kernels.blas import gemm
from fastmlp._kernels.layout import (
    add_rows_into,
    bias,
    copy_rows_into,
    lane_range,
    rows_view,
    weight,
)
from fastmlp._kernels.loss import output_delta, output_layer
from fastmlp._kernels.optim import ADAM, SGD, optimizer_step
from fastmlp._kernels.train import gather_rows


@jit
def _column_sums(delta, c0, c1, out):
    """``out[j] = sum_i delta[i, c0 + j]`` (BP3), summed row after row.

    On row slices, which vectorise (see
    :func:`fastmlp._kernels.activations.bias_activation_columns`).
    """
    out[:] = 0
    for i in range(delta.shape[0]):
        row = delta[i, c0:c1]
        for j in range(row.shape[0]):
            out[j] += row[j]


@jit
def _block_gradient(a, delta, theta, grad, w_start, rows, cols, r0, r1, c0, c1, b_start,
                    learning_rate, fused):
    """BP4 (and BP3) of the block ``W[r0:r1, c0:c1]`` of a ``(rows, cols)`` layer.

    ``a`` is the ``(n, r1 - r0)`` input of the block and ``delta[:, c0:c1]`` the error of its
    outputs (``delta`` is the layer's whole C-contiguous ``(n, cols)`` error):
    ``dC/dW[r0:r1, c0:c1] = a^T delta[:, c0:c1]`` over the whole batch, and with
    ``b_start >= 0`` (where ``b`` starts in ``theta``) ``dC/db[c0:c1]`` is the column sums of
    ``delta``. Both go into ``grad``, in ``theta``'s layout; with ``fused`` (plain SGD, no
    L2) the step ``W <- W - lr dC/dW`` is taken instead, in the same product, and the bias's.
    """
    T = theta.dtype.type
    d = delta[:, c0:c1]
    if not fused:
        gemm(True, False, 1.0, a, d, 0.0, rows_view(grad, w_start, rows, cols)[r0:r1, c0:c1])
        if b_start >= 0:
            _column_sums(delta, c0, c1, grad[b_start + c0 : b_start + c1])
        return
    lr = T(learning_rate)
    gemm(True, False, -lr, a, d, 1.0, rows_view(theta, w_start, rows, cols)[r0:r1, c0:c1])
    if b_start >= 0:
        gb = grad[b_start + c0 : b_start + c1]  # free in plain SGD
        _column_sums(delta, c0, c1, gb)
        b = theta[b_start + c0 : b_start + c1]
        for j in range(c1 - c0):
            b[j] -= lr * gb[j]


@jit(parallel=True)
def train_epoch_columns(X, Y, order, batch_size, theta, grad, sizes, w_off, b_off, hidden_act,
                        out_act, x_bufs, y_buf, act_buf, delta_buf, a_off, out_parts, optimizer,
                        learning_rate, momentum, nesterov, beta_1, beta_2, epsilon, state_1,
                        state_2, step, l2, l2_per_sample, clip_eps, loss_start):
    """Train one epoch of a network with hidden layers, their units split over lanes.

    The same epoch as :func:`fastmlp._kernels.train.train_epoch`, scheduled as the module
    docstring describes.

    Parameters
    ----------
    grad : (P,) float array
        The gradient, in ``theta``'s layout (unused by plain SGD).
    x_bufs : (2, batch_size, s_0) float array
        Batch ``b``'s rows are gathered into ``x_bufs[b % 2]`` while batch ``b - 1`` trains.
    act_buf, delta_buf, a_off
        Activations and deltas of a whole batch (``batch_size`` rows), as for
        :func:`fastmlp._kernels.train.train_epoch`.
    out_parts : (T, batch_size, s_L) float array
        Each lane's share of the output pre-activation; ``T`` is the lane count.
    others
        As for :func:`fastmlp._kernels.train.train_epoch`.

    Returns
    -------
    loss_sum, n_correct, n_seen
        As for :func:`fastmlp._kernels.train.train_epoch`.
    """
    n_lanes = out_parts.shape[0]
    L = sizes.shape[0] - 1  # weight layers; hidden layers 1 .. L-1
    K = sizes[L]
    H = sizes[L - 1]  # the last hidden layer
    M = order.shape[0]
    T = theta.dtype.type
    has_2 = state_2.shape[0] > 0
    b_out = bias(theta, sizes, b_off, L - 1)
    P = theta.shape[0]
    n_weights = b_off[0]
    fused = optimizer == SGD and momentum == 0 and not nesterov and l2 == 0 and l2_per_sample == 0
    sum_sqs = np.zeros(n_lanes)
    loss_sum = loss_start
    n_correct = 0
    if M > 0:
        gather_rows(X, order, 0, x_bufs[0, : min(batch_size, M)])
    b = 0
    for start in range(0, M, batch_size):
        n = min(batch_size, M - start)
        x = x_bufs[b % 2, :n]
        next_start = start + batch_size
        next_n = max(0, min(batch_size, M - next_start))
        # Forward, one region per hidden layer; the first also gathers the next batch.
        for layer in range(L - 1):
            fan_out = sizes[layer + 1]
            a_in = x if layer == 0 else rows_view(act_buf, a_off[layer - 1], n, sizes[layer])
            z = rows_view(act_buf, a_off[layer], n, fan_out)
            W = weight(theta, sizes, w_off, layer)
            b_l = bias(theta, sizes, b_off, layer)
            last_hidden = layer == L - 2
            for t in prange(n_lanes):
                if layer == 0 and next_n > 0:
                    r0, r1 = lane_range(n_lanes, t, next_n)
                    gather_rows(X, order, next_start + r0, x_bufs[(b + 1) % 2, r0:r1])
                c0, c1 = lane_range(n_lanes, t, fan_out)
                part = out_parts[t, :n]
                if c1 > c0:
                    gemm(False, False, 1.0, a_in, W[:, c0:c1], 0.0, z[:, c0:c1])
                    bias_activation_columns(z, b_l, hidden_act, c0, c1)
                    if last_hidden:
                        gemm(False, False, 1.0, z[:, c0:c1],
                             weight(theta, sizes, w_off, L - 1)[c0:c1], 0.0, part)
                elif last_hidden:
                    part[:] = 0
        # The output layer on the main thread: the partials summed in lane order, the
        # activation and cost, BP1, and BP3 of b^L (with plain SGD's step).
        out = rows_view(act_buf, a_off[L - 1], n, K)
        y = y_buf[:n]
        gather_rows(Y, order, start, y)
        copy_rows_into(out, out_parts[0, :n])
        for t in range(1, n_lanes):
            add_rows_into(out, out_parts[t, :n])
        batch_loss, correct = output_layer(out, b_out, y, out_act, clip_eps, True)
        if not np.isfinite(batch_loss):
            return loss_sum + batch_loss, n_correct, start  # before this batch's update
        n_correct += correct
        d_out = rows_view(delta_buf, a_off[L - 1], n, K)
        output_delta(out, y, d_out, T(1.0 / n))
        ob = b_off[L - 1]
        _column_sums(d_out, 0, K, grad[ob : ob + K])  # BP3 of the output layer
        if fused:
            lr = T(learning_rate)
            for k in range(K):
                b_out[k] -= lr * grad[ob + k]
        # Backward. Region for weight layer ``layer`` (L-1 down to 0): BP2 into the lane's
        # units of layer ``layer`` (from W^{layer+1}, which no region has changed yet), and
        # BP4/BP3 of what the lane owns in the layers whose BP2 is done: the output layer's
        # rows (region L-1, after its BP2), the hidden layer above, and in the last region
        # the first layer too. Plain SGD takes each step there (BP4 fused into the update),
        # so a layer's weights change only once every BP2 that reads them is done.
        for layer in range(L - 1, -1, -1):
            for t in prange(n_lanes):
                if layer >= 1:
                    fan_in = sizes[layer]
                    c0, c1 = lane_range(n_lanes, t, fan_in)
                    if c1 > c0:
                        d_above = rows_view(delta_buf, a_off[layer], n, sizes[layer + 1])
                        W_above = weight(theta, sizes, w_off, layer)
                        d = rows_view(delta_buf, a_off[layer - 1], n, fan_in)
                        a = rows_view(act_buf, a_off[layer - 1], n, fan_in)
                        gemm(False, True, 1.0, d_above, W_above[c0:c1], 0.0, d[:, c0:c1])
                        multiply_derivative_columns(a, d, hidden_act, c0, c1)
                        if layer == L - 1:
                            # the output layer's rows: read above, and by no other lane
                            _block_gradient(a[:, c0:c1], d_out, theta, grad, w_off[L - 1], H,
                                            K, c0, c1, 0, K, -1, learning_rate, fused)
                first = layer + 1 if layer >= 1 else 0
                for upd in range(first, min(layer + 2, L - 1)):
                    fan_in = sizes[upd]
                    fan_out = sizes[upd + 1]
                    c0, c1 = lane_range(n_lanes, t, fan_out)
                    if c1 > c0:
                        a_in = x if upd == 0 else rows_view(act_buf, a_off[upd - 1], n, fan_in)
                        _block_gradient(a_in, rows_view(delta_buf, a_off[upd], n, fan_out),
                                        theta, grad, w_off[upd], fan_in, fan_out, 0, fan_in,
                                        c0, c1, b_off[upd], learning_rate, fused)
        if fused:
            loss_sum += batch_loss
            b += 1
            continue
        # Any other optimizer: one step over the whole gradient, each lane over a contiguous
        # range of the parameters (one loop over many, which rows of a block are not).
        if optimizer == ADAM:
            step[0] += 1
        adam_t = step[0]
        coef = T(l2 + l2_per_sample / n)
        for t in prange(n_lanes):
            p0, p1 = lane_range(n_lanes, t, P)
            nw = max(0, min(n_weights, p1) - p0)
            sum_sqs[t] = optimizer_step(optimizer, theta[p0:p1], grad[p0:p1], state_1[p0:p1],
                                        state_2[p0:p1] if has_2 else state_2, nw, adam_t,
                                        learning_rate, momentum, nesterov, beta_1, beta_2,
                                        epsilon, coef)
        sum_sq = 0.0
        for t in range(n_lanes):
            sum_sq += sum_sqs[t]
        loss_sum += batch_loss + 0.5 * coef * sum_sq * n
        b += 1
    return loss_sum, n_correct, M
