"""One epoch of mini-batch training in one compiled call."""

import numpy as np
from numba import prange

from fastmlp._kernels._jit import jit
from fastmlp._kernels.backward import backward
from fastmlp._kernels.forward import forward
from fastmlp._kernels.layout import activation_layout, lane_range, rows_view
from fastmlp._kernels.loss import output_delta
from fastmlp._kernels.optim import ADAM, SGD, add_l2, optimizer_step  # noqa: F401 (train.SGD)


@jit
def gather_rows(X, order, start, x):
    """``x[i] = X[order[start + i]]`` for every row of ``x`` (dense ``X``)."""
    for i in range(x.shape[0]):
        row = order[start + i]
        for j in range(x.shape[1]):
            x[i, j] = X[row, j]


@jit
def csr_row(data, indices, indptr, row, out):
    """``out[:] = X[row]`` (dense), ``X`` given as CSR arrays."""
    out[:] = 0
    for p in range(indptr[row], indptr[row + 1]):
        out[indices[p]] = data[p]


@jit
def gather_rows_csr(data, indices, indptr, order, start, x):
    """``x[i] = X[order[start + i]]`` for every row of ``x``, ``X`` given as CSR arrays."""
    for i in range(x.shape[0]):
        csr_row(data, indices, indptr, order[start + i], x[i])


@jit
def forward_backward(x, y, scale, theta, grad, sizes, w_off, b_off, hidden_act, out_act,
                     act_buf, delta_buf, a_off, clip_eps, sgd_rate=0.0):
    """Forward pass, BP1 (times ``scale``) and BP2-BP4 of the rows ``(x, y)`` into ``grad``.

    With ``sgd_rate > 0`` the plain SGD step is applied to ``theta`` instead (see
    :func:`fastmlp._kernels.backward.backward`).

    Returns
    -------
    loss_sum : float
        The cost summed over the rows; when it is not finite, ``grad`` is not computed.
    n_correct : int
    """
    n = x.shape[0]
    k = y.shape[1]
    n_layers = sizes.shape[0] - 1
    loss_sum, n_correct = forward(theta, sizes, w_off, b_off, x, act_buf, a_off, hidden_act,
                                  out_act, y, clip_eps, True)
    if not np.isfinite(loss_sum):
        return loss_sum, n_correct
    # BP1; with scale = 1/batch rows every delta and gradient is of the batch's mean cost
    a_out = rows_view(act_buf, a_off[n_layers - 1], n, k)
    output_delta(a_out, y, rows_view(delta_buf, a_off[n_layers - 1], n, k), scale)
    backward(theta, sizes, w_off, b_off, x, act_buf, delta_buf, a_off, hidden_act, grad,
             sgd_rate)
    return loss_sum, n_correct


@jit
def train_batch(x, y, theta, grad, sizes, w_off, b_off, hidden_act, out_act, act_buf, delta_buf,
                a_off, optimizer, learning_rate, momentum, nesterov, beta_1, beta_2, epsilon,
                state_1, state_2, step, l2, l2_per_sample, clip_eps):
    """Forward pass, BP1-BP4 and one optimizer update on the batch ``(x, y)``.

    Arguments are those of :func:`train_epoch`, with ``x``/``y`` the gathered batch.

    Returns
    -------
    batch_loss_sum : float
        ``n * batch cost`` (cross-entropy summed over the rows plus ``n`` times the L2 term);
        not finite when training must stop (the parameters are then left untouched).
    n_correct : int
    """
    n = x.shape[0]
    n_weights = b_off[0]
    T = theta.dtype.type
    # plain SGD: BP4 and the step fused, no gradient stored
    fused = (optimizer == SGD and momentum == 0 and not nesterov and l2 == 0
             and l2_per_sample == 0 and learning_rate > 0)
    loss_sum, n_correct = forward_backward(x, y, T(1.0 / n), theta, grad, sizes, w_off, b_off,
                                           hidden_act, out_act, act_buf, delta_buf, a_off,
                                           clip_eps, learning_rate if fused else 0.0)
    if fused or not np.isfinite(loss_sum):
        return loss_sum, n_correct
    coef = T(l2 + l2_per_sample / n)
    if optimizer == ADAM:
        step[0] += 1
    sum_sq = optimizer_step(optimizer, theta, grad, state_1, state_2, n_weights, step[0],
                            learning_rate, momentum, nesterov, beta_1, beta_2, epsilon, coef)
    return loss_sum + 0.5 * coef * sum_sq * n, n_correct


@jit
def train_epoch(X, Y, order, batch_size, theta, grad, sizes, w_off, b_off, hidden_act, out_act,
                x_buf, y_buf, act_buf, delta_buf, a_off, optimizer, learning_rate, momentum,
                nesterov, beta_1, beta_2, epsilon, state_1, state_2, step, l2, l2_per_sample,
                clip_eps, loss_start):
    """Train one epoch: every mini-batch's forward pass, BP1-BP4 and update, in one call.

    Batches are consecutive slices of ``order`` (the last may be short); the rows of ``X`` and
    ``Y`` they name are gathered into ``x_buf``/``y_buf``. Nothing is allocated.

    Parameters
    ----------
    X : (N, s_0) float array, C-contiguous
    Y : (N, s_L) float array
        Target rows.
    order : (M,) int64 array
        The rows to train on, in order (a permutation of ``0..N-1``, or the identity).
    batch_size : int
    theta, grad : (P,) float arrays
        Parameters (updated in place) and a gradient buffer.
    sizes, w_off, b_off, a_off, hidden_act, out_act
        See :func:`fastmlp._kernels.forward.forward`.
    x_buf : (batch_size, s_0) float array
    y_buf : (batch_size, s_L) float array
    act_buf, delta_buf : float arrays
        ``batch_size * sum(s_1..s_L)`` entries each.
    optimizer : int
        ``SGD`` or ``ADAM``.
    learning_rate, momentum, beta_1, beta_2, epsilon : float
        float64 settings (see :mod:`fastmlp._kernels.optim` for how each is used).
    nesterov : bool
    state_1, state_2 : (P,) float arrays
        SGD velocity (``state_2`` unused), or Adam's first and second moments.
    step : (1,) int64 array
        Adam's step counter, advanced once per batch.
    l2, l2_per_sample : float
        The L2 coefficient of a batch of ``n`` rows is ``l2 + l2_per_sample / n``
        (``Model`` uses ``l2``; scikit-learn's ``alpha`` is ``l2_per_sample``).
    clip_eps : float
        See :func:`fastmlp._kernels.loss.output_layer`.
    loss_start : float
        The running sum to add the batches' costs to, in order: 0, or the sum so far of an
        epoch trained in several calls (which then sums exactly as one call).

    Returns
    -------
    loss_sum : float
        ``loss_start`` plus, over batches, ``n_batch * batch cost`` (divide by the epoch's
        rows for its mean).
    n_correct : int
        Correct predictions, each made before its batch's update.
    n_seen : int
        Rows trained on: M unless a batch's cost was not finite, in which case training
        stopped at that batch, before its update.
    """
    M = order.shape[0]
    loss_sum = loss_start
    n_correct = 0
    for start in range(0, M, batch_size):
        n = min(batch_size, M - start)
        x = x_buf[:n]
        y = y_buf[:n]
        gather_rows(X, order, start, x)
        gather_rows(Y, order, start, y)
        batch_loss, correct = train_batch(
            x, y, theta, grad, sizes, w_off, b_off, hidden_act, out_act, act_buf, delta_buf,
            a_off, optimizer, learning_rate, momentum, nesterov, beta_1, beta_2, epsilon,
            state_1, state_2, step, l2, l2_per_sample, clip_eps)
        if not np.isfinite(batch_loss):
            return loss_sum + batch_loss, n_correct, start
        loss_sum += batch_loss
        n_correct += correct
    return loss_sum, n_correct, M


@jit
def sum_lane_slabs(grads, p0, p1):
    """Add the lanes' slabs ``grads[1:, p0:p1]`` into ``grads[0, p0:p1]``, in lane order.

    The order does not depend on the threads, so neither does the sum. Returns the sum.
    """
    g = grads[0, p0:p1]
    for s in range(1, grads.shape[0]):
        gs = grads[s, p0:p1]
        for i in range(p1 - p0):
            g[i] += gs[i]
    return g


@jit
def _chunk_rows(X, data, indices, indptr, is_csr, x_buf, start, stop):
    """Rows ``start .. stop - 1`` of ``X``; of a CSR ``X``, made dense in ``x_buf``."""
    if is_csr:
        x = x_buf[: stop - start]
        for i in range(stop - start):
            csr_row(data, indices, indptr, start + i, x[i])
        return x
    return X[start:stop]


@jit
def _mean_cost(theta, b_off, loss_sum, N, l2, l2_per_sample):
    """``loss_sum / N`` plus the L2 term ``0.5 * coef * ||W||^2``, without a gradient.

    ``coef = l2 + l2_per_sample / N``; :func:`_finish_loss_and_gradient` is the same with a
    gradient, to which it also adds ``coef * W``.
    """
    T = theta.dtype.type
    coef = T(l2 + l2_per_sample / N)
    sum_sq = 0.0
    if coef != 0:
        for i in range(b_off[0]):
            sum_sq += theta[i] * theta[i]
    return loss_sum / N + 0.5 * coef * sum_sq


@jit
def _rows_loss(X, data, indices, indptr, is_csr, Y, r0, r1, chunk, theta, x_buf, act_buf, a_off,
               sizes, w_off, b_off, hidden_act, out_act, clip_eps):
    """Cost summed over rows ``r0 .. r1 - 1``, ``chunk`` at a time: forward passes only."""
    loss_sum = 0.0
    n_correct = 0
    for start in range(r0, r1, chunk):
        stop = min(start + chunk, r1)
        x = _chunk_rows(X, data, indices, indptr, is_csr, x_buf, start, stop)
        chunk_loss, chunk_correct = forward(theta, sizes, w_off, b_off, x, act_buf, a_off,
                                            hidden_act, out_act, Y[start:stop], clip_eps, True)
        loss_sum += chunk_loss
        n_correct += chunk_correct
    return loss_sum, n_correct


@jit
def _rows_loss_and_gradient(X, data, indices, indptr, is_csr, Y, r0, r1, chunk, scale, theta,
                            grad, chunk_grad, x_buf, act_buf, delta_buf, a_off, sizes, w_off,
                            b_off, hidden_act, out_act, clip_eps):
    """Cost summed over rows ``r0 .. r1 - 1``, and ``scale`` times their gradient into ``grad``.

    The rows go ``chunk`` at a time (a CSR ``X``'s made dense in ``x_buf``); their gradients
    add up in ``grad``, which is zeroed first.
    """
    grad[:] = 0
    loss_sum = 0.0
    n_correct = 0
    for start in range(r0, r1, chunk):
        stop = min(start + chunk, r1)
        x = _chunk_rows(X, data, indices, indptr, is_csr, x_buf, start, stop)
        chunk_loss, chunk_correct = forward_backward(
            x, Y[start:stop], scale, theta, chunk_grad, sizes, w_off, b_off, hidden_act,
            out_act, act_buf, delta_buf, a_off, clip_eps)
        for i in range(grad.shape[0]):
            grad[i] += chunk_grad[i]
        loss_sum += chunk_loss
        n_correct += chunk_correct
    return loss_sum, n_correct


@jit
def loss(X, data, indices, indptr, is_csr, Y, theta, sizes, w_off, b_off, hidden_act, out_act,
         l2, l2_per_sample, clip_eps, chunk):
    """Mean cost of ``(X, Y)`` (plus the L2 term): forward passes only, ``chunk`` rows at a time.

    For ``Model.loss``/``evaluate`` and the validation cost of every epoch: a call that needs
    no gradient compiles none of the backward pass. Arguments as for
    :func:`loss_and_gradient`, without ``grad``.

    Returns
    -------
    loss : float
    n_correct : int
    """
    N = Y.shape[0]
    dt = theta.dtype
    a_off, total = activation_layout(sizes, chunk)
    x_buf = np.empty((chunk if is_csr else 0, sizes[0]), dt)
    loss_sum, n_correct = _rows_loss(X, data, indices, indptr, is_csr, Y, 0, N, chunk, theta,
                                     x_buf, np.empty(total, dt), a_off, sizes, w_off, b_off,
                                     hidden_act, out_act, clip_eps)
    return _mean_cost(theta, b_off, loss_sum, N, l2, l2_per_sample), n_correct


@jit
def _lane_totals(losses, corrects):
    """Return the lanes' cost sums and correct counts, added in lane order (not by thread)."""
    loss_sum = 0.0
    n_correct = 0
    for t in range(losses.shape[0]):
        loss_sum += losses[t]
        n_correct += corrects[t]
    return loss_sum, n_correct


@jit(parallel=True)
def loss_parallel(X, data, indices, indptr, is_csr, Y, theta, n_lanes, sizes, w_off, b_off,
                  hidden_act, out_act, l2, l2_per_sample, clip_eps, chunk):
    """:func:`loss` with the rows split in ``n_lanes`` lanes over threads (Numba's pool).

    Lane ``t`` of ``T = n_lanes`` takes rows ``[t*N/T, (t+1)*N/T)``; the lanes' sums are added
    in lane order, so the result does not depend on how many threads run them.
    """
    N = Y.shape[0]
    dt = theta.dtype
    a_off, total = activation_layout(sizes, chunk)
    x_bufs = np.empty((n_lanes, chunk if is_csr else 0, sizes[0]), dt)
    act_bufs = np.empty((n_lanes, total), dt)
    losses = np.zeros(n_lanes)
    corrects = np.zeros(n_lanes, np.int64)
    for t in prange(n_lanes):
        r0, r1 = lane_range(n_lanes, t, N)
        losses[t], corrects[t] = _rows_loss(
            X, data, indices, indptr, is_csr, Y, r0, r1, chunk, theta, x_bufs[t], act_bufs[t],
            a_off, sizes, w_off, b_off, hidden_act, out_act, clip_eps)
    loss_sum, n_correct = _lane_totals(losses, corrects)
    return _mean_cost(theta, b_off, loss_sum, N, l2, l2_per_sample), n_correct


@jit
def _finish_loss_and_gradient(theta, grad, b_off, loss_sum, N, l2, l2_per_sample):
    """Mean cost plus the L2 term ``0.5 * coef * ||W||^2``; adds ``coef * W`` to ``grad``."""
    T = theta.dtype.type
    coef = T(l2 + l2_per_sample / N)
    sum_sq = add_l2(theta, grad, b_off[0], coef) if coef != 0 else 0.0
    return loss_sum / N + 0.5 * coef * sum_sq


@jit
def loss_and_gradient(X, data, indices, indptr, is_csr, Y, theta, grad, sizes, w_off, b_off,
                      hidden_act, out_act, l2, l2_per_sample, clip_eps, chunk):
    """Mean cost of ``(X, Y)`` and its gradient into ``grad``.

    Used for ``Model.gradients`` and as L-BFGS's objective (:func:`loss` gives the cost
    alone). ``chunk`` rows are processed at a time (bounding memory); their gradients add
    up. The L2 coefficient is ``coef = l2 + l2_per_sample / N``: the cost includes
    ``0.5 * coef * ||W||^2`` and the gradient ``coef * W``.

    Parameters
    ----------
    X : (N, s_0) float array, C-contiguous
        The rows, unless ``is_csr``: then they are the CSR arrays ``data``, ``indices``,
        ``indptr``, and ``chunk`` rows at a time are made dense.
    data, indices, indptr : arrays
    is_csr : bool
    Y : (N, s_L) float array
    theta : (P,) float array
    grad : (P,) float array
        Written.
    sizes, w_off, b_off, hidden_act, out_act, clip_eps
        See :func:`fastmlp._kernels.forward.forward`.
    l2, l2_per_sample : float
    chunk : int

    Returns
    -------
    loss : float
    n_correct : int
    """
    N = Y.shape[0]
    dt = theta.dtype
    a_off, total = activation_layout(sizes, chunk)
    x_buf = np.empty((chunk if is_csr else 0, sizes[0]), dt)
    loss_sum, n_correct = _rows_loss_and_gradient(
        X, data, indices, indptr, is_csr, Y, 0, N, chunk, dt.type(1.0 / N), theta, grad,
        np.empty_like(grad), x_buf, np.empty(total, dt), np.empty(total, dt), a_off, sizes,
        w_off, b_off, hidden_act, out_act, clip_eps)
    loss = _finish_loss_and_gradient(theta, grad, b_off, loss_sum, N, l2, l2_per_sample)
    return loss, n_correct


@jit(parallel=True)
def loss_and_gradient_parallel(X, data, indices, indptr, is_csr, Y, theta, grads, sizes, w_off,
                               b_off, hidden_act, out_act, l2, l2_per_sample, clip_eps, chunk):
    """:func:`loss_and_gradient` with the rows split in lanes over threads (Numba's pool).

    Lane ``t`` of ``T = grads.shape[0]`` takes rows ``[t*N/T, (t+1)*N/T)``, ``chunk`` at a
    time, into its own gradient slab ``grads[t]``; then the lanes split the parameter vector
    and each sums the slabs over its range, in lane order, into ``grads[0]`` (the gradient).
    The sums do not depend on how many threads run the lanes, so neither does the result.
    """
    N = Y.shape[0]
    n_lanes = grads.shape[0]
    P = grads.shape[1]
    dt = theta.dtype
    scale = dt.type(1.0 / N)
    a_off, total = activation_layout(sizes, chunk)
    x_bufs = np.empty((n_lanes, chunk if is_csr else 0, sizes[0]), dt)
    act_bufs = np.empty((n_lanes, total), dt)
    delta_bufs = np.empty((n_lanes, total), dt)
    chunk_grads = np.empty((n_lanes, P), dt)
    losses = np.zeros(n_lanes)
    corrects = np.zeros(n_lanes, np.int64)
    for t in prange(n_lanes):
        r0, r1 = lane_range(n_lanes, t, N)
        losses[t], corrects[t] = _rows_loss_and_gradient(
            X, data, indices, indptr, is_csr, Y, r0, r1, chunk, scale, theta, grads[t],
            chunk_grads[t], x_bufs[t], act_bufs[t], delta_bufs[t], a_off, sizes, w_off, b_off,
            hidden_act, out_act, clip_eps)
    for t in prange(n_lanes):
        p0, p1 = lane_range(n_lanes, t, P)
        sum_lane_slabs(grads, p0, p1)
    loss_sum, n_correct = _lane_totals(losses, corrects)
    loss = _finish_loss_and_gradient(theta, grads[0], b_off, loss_sum, N, l2, l2_per_sample)
    return loss, n_correct


@jit(parallel=True)
def train_epoch_parallel(X, Y, order, batch_size, theta, grads, sizes, w_off, b_off,
                         hidden_act, out_act, x_buf, y_buf, act_bufs, delta_bufs, a_off,
                         optimizer, learning_rate, momentum, nesterov, beta_1, beta_2, epsilon,
                         state_1, state_2, step, l2, l2_per_sample, clip_eps, loss_start):
    """:func:`train_epoch` with each batch split in lanes over threads (Numba's pool).

    Lane ``t`` of ``T`` takes rows ``[t*n/T, (t+1)*n/T)`` of every batch: it gathers them,
    runs the forward pass and BP1-BP4 into its own gradient slab ``grads[t]`` (no sharing, no
    locks). Then the lanes split the parameter vector: each sums the slabs over its range, in
    lane order, and applies the optimizer there. The lanes run on however many threads Numba
    allows; the sums do not depend on that, so neither do the results. BLAS must be
    single-threaded meanwhile (the caller sees to it). The result equals :func:`train_epoch`'s
    up to the order of floating-point sums.

    Parameters
    ----------
    grads : (T, P) float array
        One gradient slab per lane.
    act_bufs, delta_bufs : (T, ceil(batch_size / T) * sum(s_1..s_L)) float arrays
    a_off : (L,) int64 array
        Layer offsets within one lane's buffer row.
    others
        As for :func:`train_epoch`.

    Returns
    -------
    loss_sum, n_correct, n_seen
        As for :func:`train_epoch`.
    """
    n_threads = grads.shape[0]
    M = order.shape[0]
    P = theta.shape[0]
    n_weights = b_off[0]
    T = theta.dtype.type
    losses = np.zeros(n_threads)
    corrects = np.zeros(n_threads, np.int64)
    sum_sqs = np.zeros(n_threads)
    loss_sum = loss_start
    n_correct = 0
    for start in range(0, M, batch_size):
        n = min(batch_size, M - start)
        scale = T(1.0 / n)
        for t in prange(n_threads):
            r0, r1 = lane_range(n_threads, t, n)
            if r1 == r0:
                grads[t, :] = 0
                losses[t] = 0.0
                corrects[t] = 0
                continue
            x = x_buf[r0:r1]
            y = y_buf[r0:r1]
            gather_rows(X, order, start + r0, x)
            gather_rows(Y, order, start + r0, y)
            losses[t], corrects[t] = forward_backward(
                x, y, scale, theta, grads[t], sizes, w_off, b_off, hidden_act, out_act,
                act_bufs[t], delta_bufs[t], a_off, clip_eps)
        batch_loss = 0.0
        for t in range(n_threads):
            batch_loss += losses[t]
        if not np.isfinite(batch_loss):
            return loss_sum + batch_loss, n_correct, start
        for t in range(n_threads):
            n_correct += corrects[t]
        coef = T(l2 + l2_per_sample / n)
        adam_t = step[0] + 1
        for t in prange(n_threads):
            p0, p1 = lane_range(n_threads, t, P)
            g = sum_lane_slabs(grads, p0, p1)
            nw = max(0, min(n_weights, p1) - p0)
            sum_sqs[t] = optimizer_step(optimizer, theta[p0:p1], g, state_1[p0:p1],
                                        state_2[p0:p1], nw, adam_t, learning_rate, momentum,
                                        nesterov, beta_1, beta_2, epsilon, coef)
        if optimizer == ADAM:
            step[0] = adam_t
        sum_sq = 0.0
        for t in range(n_threads):
            sum_sq += sum_sqs[t]
        loss_sum += batch_loss + 0.5 * coef * sum_sq * n
    return loss_sum, n_correct, M


@jit(parallel=True)
def warm_up_parallel(a):
    """Run a trivial parallel loop, which starts Numba's threading layer so it can be named."""
    for i in prange(a.shape[0]):
        a[i] += 1.0
