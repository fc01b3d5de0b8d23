"""Output layer, its cost and BP1.

Three output/cost pairs, each the canonical link of its cost, so BP1 is ``a^L - y`` for all
(docs/derivation.md):

- softmax (or logistic, per output) with cross-entropy: classification;
- identity with half squared error, ``C = 1/2 sum_j (a_j - y_j)^2``: regression;
- exp with half Poisson deviance, ``C = sum_j (y_j log(y_j / a_j) - y_j + a_j)``: counts.

Two conventions for the cost, chosen by ``clip_eps``:

- ``clip_eps == 0``: fastmlp.Model's, exact: cross-entropy through log-sum-exp of the
  pre-activations, so a confident wrong answer costs a large finite number, never
  ``-log(0) = inf``; the Poisson cost through ``log y - z`` rather than ``log(y / e^z)``.
- ``clip_eps > 0``: scikit-learn's (fastmlp.MLPClassifier and MLPRegressor, to reproduce its
  ``loss_curve_``): probabilities clipped to ``[eps, 1 - eps]`` before the log, and the
  squared error averaged over the outputs as well as the rows (its ``squared_loss``; the
  gradient stays that of the sum over outputs, as scikit-learn's does).
"""

import numpy as np

from fastmlp._kernels import expfast
from fastmlp._kernels._jit import jit
from fastmlp._kernels.activations import EXP, IDENTITY, LOGISTIC, sigmoid1


@jit
def softplus1(x):
    """``log(1 + e^x)`` of one scalar, without overflow."""
    zero = type(x)(0)
    return max(x, zero) + np.log1p(np.exp(-abs(x)))


@jit
def regression_cost1(a, t, out_act):
    """One output's cost in float64, as scikit-learn computes it from the prediction ``a``.

    ``1/2 (a - t)^2`` for IDENTITY; ``xlogy(t, t / a) - t + a`` (half Poisson deviance) for EXP.
    """
    a = np.float64(a)
    t = np.float64(t)
    if out_act == IDENTITY:
        d = a - t
        return 0.5 * d * d
    cost = a - t
    if t != 0.0:
        cost += t * np.log(t / a)
    return cost


@jit
def _regression_output_layer(z, b, y, out_act, clip_eps, with_loss):
    """:func:`output_layer` for the IDENTITY and EXP outputs (n_correct is always 0)."""
    n, k = z.shape
    loss_sum = 0.0
    # scikit-learn's squared_loss is a mean over the outputs too (its gradient is not)
    per_output = 1.0 / k if clip_eps > 0 and out_act == IDENTITY else 1.0
    for i in range(n):
        row = 0.0
        for j in range(k):
            v = z[i, j] + b[j]
            a = v if out_act == IDENTITY else np.exp(v)
            z[i, j] = a
            if with_loss:
                t = y[i, j]
                if out_act == EXP and clip_eps == 0:
                    # y log(y / e^v) as y (log y - v): no overflow of y / e^v
                    row += np.float64(a) - np.float64(t)
                    if t != 0:
                        row += np.float64(t) * (np.log(np.float64(t)) - np.float64(v))
                else:
                    row += regression_cost1(a, t, out_act)
        loss_sum += row * per_output
    return loss_sum, 0


@jit
def output_layer(z, b, y, out_act, clip_eps, with_loss):
    """In place ``z <- a^L`` (the output activation of ``z + b``); optionally the summed cost.

    Parameters
    ----------
    z : (n, K) float array
        Output pre-activations without the bias; overwritten by the probabilities ``a^L``.
    b : (K,) float array
        Output bias.
    y : (n, K) float array
        Target rows (one-hot or soft, each summing to 1 for softmax; 0/1 per column for
        logistic outputs; real values for identity, non-negative ones for exp). Read only
        when ``with_loss``.
    out_act : int
        SOFTMAX (multiclass) or LOGISTIC (binary and multilabel, as scikit-learn), IDENTITY
        (squared error) or EXP (Poisson deviance).
    clip_eps : float
        0 for the exact costs; ``finfo(dtype).eps`` for scikit-learn's (see the module).
    with_loss : bool
        Compute the cost and the count of correct rows.

    Returns
    -------
    loss_sum : float
        ``sum_x C_x`` over the n rows (not divided by n); 0 when not ``with_loss``.
    n_correct : int
        Rows whose prediction matches the target's (argmax for softmax; every output
        thresholded at 0.5 for logistic); 0 for regression outputs.
    """
    if out_act == IDENTITY or out_act == EXP:
        return _regression_output_layer(z, b, y, out_act, clip_eps, with_loss)
    n, k = z.shape
    T = z.dtype.type
    zero = T(0)
    one = T(1)
    half = T(0.5)
    eps = T(clip_eps)
    loss_sum = 0.0
    n_correct = 0
    if out_act == LOGISTIC:
        for i in range(n):
            row_ok = True
            for j in range(k):
                v = z[i, j] + b[j]
                a = sigmoid1(v)
                z[i, j] = a
                if with_loss:
                    t = y[i, j]
                    if clip_eps > 0:
                        p = min(max(a, eps), one - eps)
                        if t != zero:
                            loss_sum -= t * np.log(p)
                        if t != one:
                            loss_sum -= (one - t) * np.log(one - p)
                    else:
                        # -log(sigmoid(v)) = softplus(-v); -log(1 - sigmoid(v)) = softplus(v)
                        loss_sum += t * softplus1(-v) + (one - t) * softplus1(v)
                    if (a > half) != (t > half):
                        row_ok = False
            if with_loss and row_ok:
                n_correct += 1
        return loss_sum, n_correct
    # softmax, with the row maximum m subtracted so exp never overflows. Three passes, so the
    # exps run as one flat loop that vectorises (expfast): per row, the maximum, the argmaxes
    # and the cost's sum_j t_j (m - v_j); then e^{v - m} for every entry; then per row the sum
    # and the cost's log term.
    for i in range(n):
        m = z[i, 0] + b[0]
        best_a = 0
        for j in range(1, k):
            v = z[i, j] + b[j]
            if v > m:
                m = v
                best_a = j
        gap = zero  # sum_j t_j (m - v_j), every term >= 0
        best_y = 0
        for j in range(k):
            v = z[i, j] + b[j]
            if with_loss:
                t = y[i, j]
                gap += t * (m - v)
                if t > y[i, best_y]:
                    best_y = j
            z[i, j] = v - m
        if with_loss:
            if clip_eps == 0:
                loss_sum += gap
            if best_a == best_y:
                n_correct += 1
    if z.flags.c_contiguous:
        flat = z.reshape(n * k)
        for q in range(n * k):
            flat[q] = expfast.exp(flat[q])
    else:
        for i in range(n):
            for j in range(k):
                z[i, j] = expfast.exp(z[i, j])
    for i in range(n):
        s = zero
        for j in range(k):
            s += z[i, j]
        inv = one / s
        for j in range(k):
            z[i, j] *= inv
        if with_loss:
            if clip_eps > 0:
                for j in range(k):
                    t = y[i, j]
                    if t != zero:
                        p = min(max(z[i, j], eps), one - eps)
                        loss_sum -= t * np.log(p)
            else:
                # C_x = sum_j t_j (log sum_k e^{v_k} - v_j) = sum_t log(s) + sum_j t_j (m - v_j):
                # a sum of non-negative terms, finite however wrong the prediction (the second
                # sum was added in the first pass).
                sum_t = zero
                for j in range(k):
                    sum_t += y[i, j]
                loss_sum += sum_t * np.log(s)
    return loss_sum, n_correct


@jit
def output_delta(a, y, delta, scale):
    """BP1: ``delta^L = (a^L - y) * scale``, for every output/cost pair of the module.

    Parameters
    ----------
    a, y : (n, K) float arrays
        Outputs and target rows (rows of ``y`` sum to 1 for softmax, so the general
        ``a * sum_j y_j - y`` is ``a - y``).
    delta : (n, K) float array
        Written.
    scale : float
        ``1 / n`` makes ``delta`` the gradient of the *mean* cost with respect to ``z^L``.
    """
    n, k = a.shape
    for i in range(n):
        for j in range(k):
            delta[i, j] = (a[i, j] - y[i, j]) * scale
