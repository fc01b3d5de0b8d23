"""A slow, readable, float64 NumPy MLP: the oracle every compiled kernel is checked against.

Written to be obviously correct, not fast (cf. ``stumpy/tests/naive.py``): each step is the
textbook formula (Nielsen, *Neural Networks and Deep Learning*, ch. 2-3), with rows as samples,
so ``z^l = a^{l-1} W^l + b^l`` with ``W^l`` of shape ``(fan_in, fan_out)`` as in scikit-learn.

Nothing here imports fastmlp: the reference must stay independent of the code it checks.
Derivatives are taken from ``z`` (the kernels take them from ``a = f(z)``), the sigmoid is
``exp(-softplus(-z))`` (the kernels branch on the sign of ``z``), and the exact cost goes through
``np.logaddexp`` and a log-softmax (the kernels keep a running maximum and a gap sum), so the two
sides share no formula.

Parameters are two lists, ``Ws`` and ``bs``; every function that updates them does so in place.
"""

import numpy as np

# -- activations and their derivatives (functions of z) ----------------------------------------


def sigmoid(z):
    """``1 / (1 + e^-z)``, written as ``e^{-softplus(-z)}`` (``-ln sigma(z) = ln(1 + e^-z)``).

    The same function, without overflow, and accurate to the last bits in both tails (where
    ``1 / (1 + e^-z)`` overflows and ``(1 + tanh(z/2)) / 2`` loses every digit below 1e-16).
    """
    return np.exp(-softplus(-z))


def sigmoid_prime(z):
    """``sigma'(z) = sigma(z) (1 - sigma(z))``."""
    s = sigmoid(z)
    return s * (1.0 - s)


def tanh(z):
    return np.tanh(z)


def tanh_prime(z):
    """``tanh'(z) = 1 - tanh(z)^2``."""
    return 1.0 - np.tanh(z) ** 2


def relu(z):
    return np.maximum(z, 0.0)


def relu_prime(z):
    """``relu'(z) = 1 if z > 0 else 0`` (0 at the kink, as scikit-learn)."""
    return (z > 0).astype(np.float64)


def identity(z):
    return z.copy()


def identity_prime(z):
    return np.ones_like(z)


#: name -> (f, f')
ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_prime),
    "logistic": (sigmoid, sigmoid_prime),
    "tanh": (tanh, tanh_prime),
    "relu": (relu, relu_prime),
    "identity": (identity, identity_prime),
}


def softplus(x):
    """``log(1 + e^x)``."""
    return np.logaddexp(0.0, x)


def softmax(z):
    """Row-wise ``a_i = e^{z_i} / sum_j e^{z_j}`` (the row maximum subtracted: same value)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(z):
    """Row-wise ``ln a_i = z_i - ln sum_j e^{z_j}`` (log-sum-exp), finite for any finite z."""
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def softmax_jacobian(a):
    """For one row ``a`` of softmax output: ``J[i, j] = da_j / dz_i = a_i (delta_ij - a_j)``."""
    return np.diag(a) - np.outer(a, a)


#: Output activations: "softmax" (multiclass), "logistic" (independent sigmoids), "identity"
#: (regression) or "exp" (regression of counts: a = e^z > 0).
OUTPUTS = {"softmax": softmax, "logistic": sigmoid, "identity": identity, "exp": np.exp}


# -- the cost ------------------------------------------------------------------------------------


def cost_per_example(zL, y, output, clip_eps=0.0):
    """The cost ``C_x`` of every row, from the output pre-activations ``z^L``.

    Identity: the half squared error ``C_x = 1/2 sum_i (a_i - y_i)^2`` (with ``clip_eps > 0``,
    scikit-learn's ``squared_loss``, also divided by the number of outputs). Exp: the half
    Poisson deviance ``C_x = sum_i (y_i ln(y_i / a_i) - y_i + a_i)``, ``a = e^z``, where
    ``y ln(y / a)`` is 0 for ``y = 0`` (its limit).

    Otherwise the cross-entropy. ``clip_eps == 0``: exact. Softmax: ``C_x = -sum_i y_i ln a_i``
    with ``ln a`` by log-sum-exp.
    Logistic: ``C_x = -sum_i [y_i ln a_i + (1 - y_i) ln(1 - a_i)]``, with
    ``-ln sigma(z) = softplus(-z)`` and ``-ln(1 - sigma(z)) = softplus(z)``.

    ``clip_eps > 0``: scikit-learn's ``log_loss``/``binary_log_loss``: ``a`` is clipped to
    ``[eps, 1 - eps]`` before the logarithm.
    """
    zL = np.asarray(zL, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if output == "identity":
        per_output = 1.0 / y.shape[1] if clip_eps > 0 else 1.0
        return 0.5 * ((zL - y) ** 2).sum(axis=1) * per_output
    if output == "exp":
        a = np.exp(zL)
        positive = np.where(y > 0, y, 1.0)  # y ln(y / a) -> 0 as y -> 0
        return (np.where(y > 0, y * np.log(positive / a), 0.0) - y + a).sum(axis=1)
    if clip_eps == 0:
        if output == "softmax":
            return -(y * log_softmax(zL)).sum(axis=1)
        return (y * softplus(-zL) + (1.0 - y) * softplus(zL)).sum(axis=1)
    a = np.clip(OUTPUTS[output](zL), clip_eps, 1.0 - clip_eps)
    # y * log(a) is 0 where y is 0 (log(a) is finite once clipped): scikit-learn's xlogy
    if output == "softmax":
        return -(y * np.log(a)).sum(axis=1)
    return -(y * np.log(a) + (1.0 - y) * np.log(1.0 - a)).sum(axis=1)


def l2_coefficient(n, l2=0.0, l2_per_sample=0.0):
    """The L2 coefficient of a batch of ``n`` rows: ``l2 + l2_per_sample / n``."""
    return l2 + l2_per_sample / n


# -- forward and backward ----------------------------------------------------------------------


def as_float64(Ws, bs):
    return [np.array(W, dtype=np.float64) for W in Ws], [np.array(b, dtype=np.float64) for b in bs]


def forward(Ws, bs, x, hidden="sigmoid", output="softmax"):
    """Return ``zs = [z^1 .. z^L]`` and ``activations = [a^0 = x, a^1 .. a^L]``."""
    f = ACTIVATIONS[hidden][0]
    a = np.asarray(x, dtype=np.float64)
    zs, activations = [], [a]
    for layer, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        z = a @ W + b  # z^l = a^{l-1} W^l + b^l
        a = OUTPUTS[output](z) if layer == len(Ws) - 1 else f(z)  # a^l = f(z^l)
        zs.append(z)
        activations.append(a)
    return zs, activations


def backprop(Ws, bs, x, y, hidden="sigmoid", output="softmax"):
    """Gradient of the *mean* cost over the rows of ``(x, y)``, by the four equations.

    Returns
    -------
    grad_Ws, grad_bs : lists of arrays, shaped as ``Ws`` and ``bs``
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.shape[0]
    f_prime = ACTIVATIONS[hidden][1]
    zs, activations = forward(Ws, bs, x, hidden, output)
    L = len(Ws)
    grad_Ws = [None] * L
    grad_bs = [None] * L
    # BP1: delta^L = dC/dz^L = a^L - y per example. For softmax the general form is
    #      a^L * sum_j y_j - y, which is a^L - y because the rows of y sum to 1; for logistic
    #      outputs with the binary cross-entropy, identity outputs with the half squared error
    #      and exp outputs with the half Poisson deviance it is a^L - y column by column (each
    #      the canonical link of its cost). Divided by n because C is the mean over the rows.
    aL = activations[-1]
    if output == "softmax":
        delta = (aL * y.sum(axis=1, keepdims=True) - y) / n
    else:
        delta = (aL - y) / n
    for layer in range(L - 1, -1, -1):
        a_prev = activations[layer]  # a^{l-1}
        # BP3: dC/db^l = delta^l (summed over the rows of the batch)
        grad_bs[layer] = delta.sum(axis=0)
        # BP4: dC/dW^l = a^{l-1} delta^l, i.e. (a^{l-1})^T delta^l with rows as samples
        grad_Ws[layer] = a_prev.T @ delta
        if layer > 0:
            # BP2: delta^{l-1} = (delta^l (W^l)^T) * sigma'(z^{l-1})
            delta = (delta @ Ws[layer].T) * f_prime(zs[layer - 1])
    return grad_Ws, grad_bs


def loss(Ws, bs, x, y, hidden="sigmoid", output="softmax", l2=0.0, l2_per_sample=0.0,
         clip_eps=0.0):
    """Mean cost of ``(x, y)`` plus ``0.5 * coef * sum_l ||W^l||^2``.

    ``coef = l2 + l2_per_sample / n`` for the ``n`` rows of ``x``.
    """
    zs, _ = forward(Ws, bs, x, hidden, output)
    n = np.shape(x)[0]
    coef = l2_coefficient(n, l2, l2_per_sample)
    penalty = 0.5 * coef * sum(float((W**2).sum()) for W in Ws)  # biases are not penalised
    return float(cost_per_example(zs[-1], y, output, clip_eps).mean()) + penalty


def loss_and_gradient(Ws, bs, x, y, hidden="sigmoid", output="softmax", l2=0.0,
                      l2_per_sample=0.0, clip_eps=0.0):
    """:func:`loss` and its gradient (the L2 term adds ``coef * W`` to each weight gradient).

    The gradient is that of the exact cost; with ``clip_eps > 0`` it is, as in scikit-learn,
    still ``a - y`` (the clipping changes only the reported cost).
    """
    n = np.shape(x)[0]
    coef = l2_coefficient(n, l2, l2_per_sample)
    grad_Ws, grad_bs = backprop(Ws, bs, x, y, hidden, output)
    grad_Ws = [gW + coef * W for gW, W in zip(grad_Ws, Ws, strict=True)]
    return loss(Ws, bs, x, y, hidden, output, l2, l2_per_sample, clip_eps), grad_Ws, grad_bs


def n_correct(Ws, bs, x, y, hidden="sigmoid", output="softmax"):
    """Rows predicted right: argmax match (softmax), or every output on the right side of 0.5.

    Regression outputs (identity, exp) have no correct rows: 0.
    """
    if output in ("identity", "exp"):
        return 0
    a = forward(Ws, bs, x, hidden, output)[1][-1]
    y = np.asarray(y)
    if output == "softmax":
        return int((a.argmax(axis=1) == y.argmax(axis=1)).sum())
    return int(((a > 0.5) == (y > 0.5)).all(axis=1).sum())


# -- optimizers (scikit-learn's _stochastic_optimizers, on lists of arrays) ----------------------


class SGD:
    """scikit-learn's ``SGDOptimizer`` with a constant learning rate.

    ``v <- momentum * v - lr * g``; the update is ``v`` (classical) or
    ``momentum * v - lr * g`` with the new ``v`` (Nesterov). ``momentum = 0``: ``-lr * g``.
    """

    def __init__(self, params, learning_rate, momentum=0.0, nesterov=False):
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocities = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        updates = [self.momentum * v - self.learning_rate * g
                   for v, g in zip(self.velocities, grads, strict=True)]
        self.velocities = updates
        if self.nesterov:
            updates = [self.momentum * v - self.learning_rate * g
                       for v, g in zip(self.velocities, grads, strict=True)]
        for p, u in zip(params, updates, strict=True):
            p += u


class Adam:
    """scikit-learn's ``AdamOptimizer``: ``t`` counts batches, bias correction in the rate.

    ``m <- b1 m + (1-b1) g``; ``v <- b2 v + (1-b2) g^2``;
    ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``; ``p <- p - lr_t m / (sqrt(v) + eps)``.
    """

    def __init__(self, params, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.learning_rate_init = learning_rate
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        self.ms = [b1 * m + (1 - b1) * g for m, g in zip(self.ms, grads, strict=True)]
        self.vs = [b2 * v + (1 - b2) * g**2 for v, g in zip(self.vs, grads, strict=True)]
        lr_t = self.learning_rate_init * np.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for p, m, v in zip(params, self.ms, self.vs, strict=True):
            p -= lr_t * m / (np.sqrt(v) + self.epsilon)


def make_optimizer(name, Ws, bs, learning_rate, momentum=0.0, nesterov=False, beta_1=0.9,
                   beta_2=0.999, epsilon=1e-8):
    """``"sgd"`` or ``"adam"`` over the parameter list ``Ws + bs``."""
    params = list(Ws) + list(bs)
    if name == "sgd":
        return SGD(params, learning_rate, momentum, nesterov)
    return Adam(params, learning_rate, beta_1, beta_2, epsilon)


# -- one epoch -------------------------------------------------------------------------------------


def epoch(Ws, bs, X, Y, order, batch_size, optimizer, hidden="sigmoid", output="softmax",
          l2=0.0, l2_per_sample=0.0, clip_eps=0.0):
    """One epoch of mini-batch training; ``Ws``/``bs`` are updated in place.

    Batches are consecutive slices ``order[start : start + batch_size]`` (the last may be short).
    Each batch's cost (mean cross-entropy plus its L2 term) is taken *before* its update.

    Returns
    -------
    loss_sum : float
        ``sum over batches of n_batch * batch cost``.
    n_correct : int
        Correct predictions, each made before its batch's update.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    loss_sum = 0.0
    correct = 0
    for start in range(0, len(order), batch_size):
        rows = np.asarray(order[start : start + batch_size])
        x, y = X[rows], Y[rows]
        cost, grad_Ws, grad_bs = loss_and_gradient(Ws, bs, x, y, hidden, output, l2,
                                                   l2_per_sample, clip_eps)
        loss_sum += len(rows) * cost
        correct += n_correct(Ws, bs, x, y, hidden, output)
        optimizer.step(list(Ws) + list(bs), grad_Ws + grad_bs)
    return loss_sum, correct
