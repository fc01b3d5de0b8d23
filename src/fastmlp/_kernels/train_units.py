"""One epoch of a one-hidden-layer network with each thread owning a slice of the hidden units.

:func:`fastmlp._kernels.train.train_epoch_parallel` splits a batch's *rows* over lanes: every
lane computes a gradient of the whole network, and the lanes meet twice per batch (after the
backward pass, and after summing their gradients and updating). With small batches that
meeting and the sum of gradient slabs cost as much as the products. Here lane ``t`` owns hidden
units ``[c_t, c_{t+1})`` of the network ``s_0 -> H -> K`` instead, and with them columns
``c_t..`` of ``W^1`` and ``b^1`` and rows ``c_t..`` of ``W^2``. For a batch it computes

- forward: ``a^1[:, own] = f(x W^1[:, own] + b^1[own])`` and its share of the output
  pre-activation, ``a^1[:, own] W^2[own, :]`` (a ``(n, K)`` partial sum);
- backward (BP2-BP4), once ``delta^2`` is known: ``delta^1[:, own]``, then the update of the
  parameters it owns. Plain SGD fuses BP4 into the update: ``W <- W - lr a^T delta`` is one
  BLAS call with ``beta = 1`` (:func:`fastmlp._kernels.blas.gemm`).

No lane reads what another writes, except the ``(n, K)`` output: the main thread sums the
partials in lane order, applies softmax/BP1 and updates ``b^2``. A lane's backward pass of
batch ``b`` and forward pass of batch ``b+1`` touch only its own parameters, so they share one
parallel region: one fork and join per batch, and no gradient is ever summed across lanes. In
the same region each lane gathers its share of the next batch's rows (three input buffers
rotate: the batch being updated, the one going forward, the one being gathered).

For the epoch, each lane's parameters (and gradient and optimizer state) are packed into its
own contiguous buffer: the columns of ``W^1`` it owns share cache lines with its neighbour's in
``theta`` (a row of 100 float32 is 6.25 cache lines), and two threads writing one line in turn
cost more than the products (measured: SGD with momentum 0.79 s an epoch in place against
0.28 s by rows). The optimizer then runs over one contiguous range per lane.

The lane count is fixed by the caller (Numba's pool size), not by the threads running, and the
output partials are summed in lane order: results do not depend on the thread count. They equal
:func:`fastmlp._kernels.train.train_epoch`'s up to the order of floating-point sums.
"""

import numpy as np
from numba import prange

from fastmlp._kernels._jit import jit
from fastmlp._kernels.activations import bias_activation, multiply_derivative
from fastmlp._kernels.blas import gemm
from fastmlp._kernels.layout import add_rows_into, copy_into, copy_rows_into, lane_range
from fastmlp._kernels.loss import output_delta, output_layer
from fastmlp._kernels.optim import ADAM, SGD, optimizer_step
from fastmlp._kernels.train import gather_rows


@jit
def _lane_block(buf, rows, cols):
    """Return the first ``rows * cols`` entries of a lane's flat buffer as ``(rows, cols)``."""
    return buf[: rows * cols].reshape((rows, cols))


@jit
def pack_lane(flat, pack, s0, H, K, c0, c1, unpack):
    """Copy lane ``[c0, c1)``'s parameters between ``theta``'s layout and the lane's pack.

    The pack of a lane of ``w`` units is ``W^1[:, c0:c1]`` (``(s_0, w)``, row-major), then
    ``W^2[c0:c1, :]`` (``(w, K)``), then ``b^1[c0:c1]``: weights first, so an optimizer sees
    ``w * (s_0 + K)`` weights followed by ``w`` biases. ``unpack`` copies the other way.
    """
    w = c1 - c0
    W1 = flat[: s0 * H].reshape((s0, H))[:, c0:c1]
    W1_pack = pack[: s0 * w].reshape((s0, w))
    w2_start = s0 * H + c0 * K
    b1_start = s0 * H + H * K + c0
    rest = pack[s0 * w : w * (s0 + K + 1)]  # W^2's rows and b^1's entries, contiguous in both
    if unpack:
        copy_rows_into(W1, W1_pack)
        copy_into(flat[w2_start : w2_start + w * K], rest[: w * K])
        copy_into(flat[b1_start : b1_start + w], rest[w * K :])
    else:
        copy_rows_into(W1_pack, W1)
        copy_into(rest[: w * K], flat[w2_start : w2_start + w * K])
        copy_into(rest[w * K :], flat[b1_start : b1_start + w])


@jit(parallel=True)
def _pack_all(theta, state_1, state_2, theta_packs, state_1_packs, state_2_packs, s0, H, K,
              unpack):
    """:func:`pack_lane` for every lane, of the parameters and each optimizer state in use."""
    n_lanes = theta_packs.shape[0]
    for t in prange(n_lanes):
        c0, c1 = lane_range(n_lanes, t, H)
        pack_lane(theta, theta_packs[t], s0, H, K, c0, c1, unpack)
        if state_1_packs.shape[1] > 0:
            pack_lane(state_1, state_1_packs[t], s0, H, K, c0, c1, unpack)
        if state_2_packs.shape[1] > 0:
            pack_lane(state_2, state_2_packs[t], s0, H, K, c0, c1, unpack)


@jit
def _lane_backward(x, a, delta, delta_out, pack, grad_pack, state_1, state_2, s0, K, w,
                   hidden_act, optimizer, learning_rate, momentum, nesterov, beta_1, beta_2,
                   epsilon, adam_t, coef, fused):
    """BP2-BP4 and the update of a lane's ``w`` units (its pack); returns their ``sum(W**2)``.

    ``a``/``delta`` are the lane's ``(n, w)`` activations and delta buffer, ``delta_out`` the
    batch's ``(n, K)`` ``delta^2`` and ``x`` its input. Every gradient is of the batch's mean
    cost (``delta_out`` carries the ``1/n``).
    """
    T = pack.dtype.type
    W1 = pack[: s0 * w].reshape((s0, w))
    W2 = pack[s0 * w : w * (s0 + K)].reshape((w, K))
    b1 = pack[w * (s0 + K) : w * (s0 + K + 1)]
    # BP2: delta^1 = (delta^2 W^2[own]^T) * f'(z^1), from W^2 before its update
    gemm(False, True, 1.0, delta_out, W2, 0.0, delta)
    multiply_derivative(a, delta, hidden_act)
    if fused:
        # plain SGD, no L2: BP4 and the step in one product per weight block
        lr = T(learning_rate)
        gemm(True, False, -lr, a, delta_out, 1.0, W2)
        gemm(True, False, -lr, x, delta, 1.0, W1)
        for j in range(w):
            s = T(0)
            for i in range(delta.shape[0]):
                s += delta[i, j]
            b1[j] -= lr * s
        return 0.0
    # BP4 and BP3 into the lane's gradient (laid out as its pack), then one optimizer step
    size = w * (s0 + K + 1)
    gemm(True, False, 1.0, x, delta, 0.0, grad_pack[: s0 * w].reshape((s0, w)))
    gemm(True, False, 1.0, a, delta_out, 0.0, grad_pack[s0 * w : w * (s0 + K)].reshape((w, K)))
    gb1 = grad_pack[w * (s0 + K) : size]
    gb1[:] = 0
    for i in range(delta.shape[0]):
        for j in range(w):
            gb1[j] += delta[i, j]
    return optimizer_step(optimizer, pack[:size], grad_pack[:size], state_1[:size],
                          state_2[: size if state_2.shape[0] > 0 else 0], w * (s0 + K), adam_t,
                          learning_rate, momentum, nesterov, beta_1, beta_2, epsilon, coef)


@jit(parallel=True)
def train_epoch_units(X, Y, order, batch_size, theta, sizes, hidden_act, out_act, x_bufs, y_buf,
                      act_bufs, delta_bufs, out_parts, out_buf, theta_packs, grad_packs,
                      state_1_packs, state_2_packs, optimizer, learning_rate, momentum,
                      nesterov, beta_1, beta_2, epsilon, state_1, state_2, step, l2,
                      l2_per_sample, clip_eps, loss_start):
    """Train one epoch of a network ``s_0 -> H -> K``, its hidden units split over lanes.

    The same epoch as :func:`fastmlp._kernels.train.train_epoch`, scheduled as the module
    docstring describes.

    Parameters
    ----------
    sizes : (3,) int64 array
        ``(s_0, H, K)``.
    x_bufs : (3, batch_size, s_0) float array
        Rotating input buffers: batch ``b`` is in ``x_bufs[b % 3]``.
    y_buf : (batch_size, K) float array
    act_bufs, delta_bufs : (2 * T, batch_size * ceil(H / T)) and (T, same) float arrays
        Lane ``t``'s hidden activations of batch ``b`` are row ``(b % 2) * T + t`` (the
        previous batch's are still needed by its backward pass), its ``delta^1`` row ``t``.
    out_parts : (T, batch_size, K) float array
        Each lane's share of the output pre-activation.
    out_buf : (batch_size, K) float array
        The output layer: probabilities, then ``delta^2``.
    theta_packs, grad_packs : (T, ceil(H / T) * (s_0 + K + 1)) float arrays
        Each lane's parameters and gradient (see :func:`pack_lane`); ``grad_packs`` is unused
        by plain SGD.
    state_1_packs, state_2_packs : (T, same or 0) float arrays
        The lanes' packs of ``state_1`` and ``state_2`` (0 columns: a state the optimizer does
        not have, SGD's ``state_2``).
    others
        As for :func:`fastmlp._kernels.train.train_epoch` (which takes the same optimizer
        arguments, with ``theta`` in the same layout).

    Returns
    -------
    loss_sum, n_correct, n_seen
        As for :func:`fastmlp._kernels.train.train_epoch`.
    """
    n_lanes = out_parts.shape[0]
    s0 = sizes[0]
    H = sizes[1]
    K = sizes[2]
    M = order.shape[0]
    T = theta.dtype.type
    b2_start = s0 * H + H * K + H
    b2 = theta[b2_start : b2_start + K]
    grad_b2 = np.empty(K, theta.dtype)
    n_batches = (M + batch_size - 1) // batch_size
    fused = optimizer == SGD and momentum == 0 and not nesterov and l2 == 0 and l2_per_sample == 0
    _pack_all(theta, state_1, state_2, theta_packs, state_1_packs, state_2_packs, s0, H, K,
              False)
    sum_sqs = np.zeros(n_lanes)
    loss_sum = loss_start
    n_correct = 0
    n_seen = M
    pending_loss = 0.0  # batch b-1's cost, waiting for its sum(W**2), known after its update
    pending_rows = 0
    pending_coef = T(0)
    if M > 0:
        gather_rows(X, order, 0, x_bufs[0, : min(batch_size, M)])
    # Region b: backward pass and update of batch b-1, forward pass of batch b, gather of b+1.
    for b in range(n_batches + 1):
        start = b * batch_size
        n = min(batch_size, M - start) if b < n_batches else 0
        prev_n = pending_rows
        next_start = start + batch_size
        next_n = min(batch_size, M - next_start) if b + 1 < n_batches else 0
        adam_t = step[0]  # already advanced for batch b-1 (by the main thread, with b^2)
        for t in prange(n_lanes):
            c0, c1 = lane_range(n_lanes, t, H)
            w = c1 - c0
            pack = theta_packs[t]
            sum_sqs[t] = 0.0
            if prev_n > 0 and w > 0:
                a = _lane_block(act_bufs[((b - 1) % 2) * n_lanes + t], prev_n, w)
                sum_sqs[t] = _lane_backward(
                    x_bufs[(b - 1) % 3, :prev_n], a, _lane_block(delta_bufs[t], prev_n, w),
                    out_buf[:prev_n], pack, grad_packs[t], state_1_packs[t], state_2_packs[t],
                    s0, K, w, hidden_act, optimizer, learning_rate, momentum, nesterov, beta_1,
                    beta_2, epsilon, adam_t, pending_coef, fused)
            if next_n > 0:
                r0, r1 = lane_range(n_lanes, t, next_n)
                gather_rows(X, order, next_start + r0, x_bufs[(b + 1) % 3, r0:r1])
            if n > 0:
                part = out_parts[t, :n]
                if w > 0:
                    z = _lane_block(act_bufs[(b % 2) * n_lanes + t], n, w)
                    gemm(False, False, 1.0, x_bufs[b % 3, :n], pack[: s0 * w].reshape((s0, w)),
                         0.0, z)
                    bias_activation(z, pack[w * (s0 + K) : w * (s0 + K + 1)], hidden_act)
                    gemm(False, False, 1.0, z, pack[s0 * w : w * (s0 + K)].reshape((w, K)), 0.0,
                         part)
                else:
                    part[:] = 0
        if prev_n > 0:
            sum_sq = 0.0
            for t in range(n_lanes):
                sum_sq += sum_sqs[t]
            loss_sum += pending_loss + 0.5 * pending_coef * sum_sq * prev_n
            pending_rows = 0
        if n == 0:
            break
        # The output layer of batch b, on the main thread: sum the lanes' partials in order,
        # softmax/logistic and the cost, BP1, and the update of b^2.
        y = y_buf[:n]
        gather_rows(Y, order, start, y)
        out = out_buf[:n]
        copy_rows_into(out, out_parts[0, :n])
        for t in range(1, n_lanes):
            add_rows_into(out, out_parts[t, :n])
        batch_loss, correct = output_layer(out, b2, y, out_act, clip_eps, True)
        if not np.isfinite(batch_loss):
            # stop before batch b's update; batch b-1's is done and counted
            loss_sum += batch_loss
            n_seen = start
            break
        n_correct += correct
        output_delta(out, y, out, T(1.0 / n))
        if optimizer == ADAM:
            step[0] += 1
        grad_b2[:] = 0
        for i in range(n):
            for k in range(K):
                grad_b2[k] += out[i, k]
        optimizer_step(optimizer, b2, grad_b2, state_1[b2_start : b2_start + K],
                       state_2[b2_start : b2_start + K], 0, step[0], learning_rate, momentum,
                       nesterov, beta_1, beta_2, epsilon, T(0))
        pending_loss = batch_loss
        pending_rows = n
        pending_coef = T(l2 + l2_per_sample / n)
    _pack_all(theta, state_1, state_2, theta_packs, state_1_packs, state_2_packs, s0, H, K,
              True)
    return loss_sum, n_correct, n_seen
