"""The Python side of the engine: buffers, optimizer state and calls into the kernels.

Both faces (:class:`fastmlp.Model` and :class:`fastmlp.MLPClassifier`) train through
:class:`Trainer` and predict through :func:`predict_proba`; this is the only module that calls
the training kernels. Arrays reaching it are already validated, C-contiguous and of one dtype.
"""

import numpy as np

from fastmlp._kernels import activations, forward, train
from fastmlp._params import activation_offsets, layout

#: Rows per forward pass at prediction time: bounds the activation buffer, and is large enough
#: that each matrix product is a single efficient BLAS call.
PREDICT_CHUNK = 4096
#: Rows per chunk when computing a full-data cost and gradient (``Model.gradients``, L-BFGS).
LOSS_CHUNK = 8192


class Network:
    """The architecture a flat parameter vector belongs to (sizes, offsets, activations).

    Parameters
    ----------
    layer_sizes : sequence of int
    hidden_act : int
        Activation code of the hidden layers.
    out_act : int
        ``activations.SOFTMAX`` or ``activations.LOGISTIC``.
    dtype : numpy dtype
    """

    def __init__(self, layer_sizes, hidden_act, out_act, dtype):
        self.layer_sizes = tuple(int(s) for s in layer_sizes)
        self.sizes, self.w_off, self.b_off, self.n_params = layout(self.layer_sizes)
        self.n_weights = int(self.b_off[0])
        self.hidden_act = hidden_act
        self.out_act = out_act
        self.dtype = np.dtype(dtype)

    def predict_proba(self, theta, X):
        """Output probabilities for ``X`` (C-contiguous, of ``dtype``)."""
        out = np.empty((X.shape[0], self.layer_sizes[-1]), dtype=self.dtype)
        chunk = max(1, min(PREDICT_CHUNK, X.shape[0]))
        forward.predict_proba(theta, self.sizes, self.w_off, self.b_off, X, self.hidden_act,
                              self.out_act, chunk, out)
        return out

    def loss_and_gradient(self, theta, X, Y, *, l2=0.0, l2_per_sample=0.0, clip_eps=0.0,
                          with_grad=True):
        """Mean cost of ``(X, Y)`` (plus the L2 term) and its gradient as a flat vector.

        Returns
        -------
        loss : float
        n_correct : int
        grad : (P,) array or None
        """
        grad = np.empty(self.n_params if with_grad else 0, dtype=self.dtype)
        chunk = max(1, min(LOSS_CHUNK, X.shape[0]))
        loss, n_correct = train.loss_and_gradient(
            X, Y, theta, grad, self.sizes, self.w_off, self.b_off, self.hidden_act, self.out_act,
            float(l2), float(l2_per_sample), float(clip_eps), with_grad, chunk,
        )
        return float(loss), int(n_correct), (grad if with_grad else None)


class Trainer:
    """Buffers and optimizer state for one fit: one compiled call per epoch, no allocation in it.

    Parameters
    ----------
    network : Network
    batch_size : int
        Largest batch; buffers are sized for it.
    optimizer : {"sgd", "adam"}
    learning_rate, momentum, nesterov, beta_1, beta_2, epsilon
        Optimizer settings (``learning_rate`` may be changed between epochs).
    l2, l2_per_sample : float
        A batch of ``n`` rows is penalised with ``0.5 * (l2 + l2_per_sample / n) * ||W||^2``.
    clip_eps : float
        0 for the exact cost, ``finfo(dtype).eps`` for scikit-learn's clipped one.
    """

    def __init__(self, network, batch_size, optimizer, *, learning_rate, momentum=0.0,
                 nesterov=False, beta_1=0.9, beta_2=0.999, epsilon=1e-8, l2=0.0,
                 l2_per_sample=0.0, clip_eps=0.0):
        net = self.network = network
        dt = net.dtype
        self.batch_size = int(batch_size)
        self.optimizer = {"sgd": train.SGD, "adam": train.ADAM}[optimizer]
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = bool(nesterov)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.l2, self.l2_per_sample, self.clip_eps = float(l2), float(l2_per_sample), clip_eps
        self.x_buf = np.empty((self.batch_size, net.layer_sizes[0]), dtype=dt)
        self.y_buf = np.empty((self.batch_size, net.layer_sizes[-1]), dtype=dt)
        self.a_off, total = activation_offsets(net.layer_sizes, self.batch_size)
        self.act_buf = np.empty(total, dtype=dt)
        self.delta_buf = np.empty(total, dtype=dt)
        self.grad = np.empty(net.n_params, dtype=dt)
        self.state_1 = np.zeros(net.n_params, dtype=dt)
        self.state_2 = np.zeros(net.n_params if self.optimizer == train.ADAM else 0, dtype=dt)
        self.step = np.zeros(1, dtype=np.int64)

    def epoch(self, theta, X, Y, order):
        """Train one epoch over the rows of ``(X, Y)`` in ``order``; ``theta`` is updated.

        Returns
        -------
        loss_sum : float
            Sum over batches of ``n_batch * batch cost``.
        n_correct : int
        n_seen : int
            ``len(order)`` unless a batch's cost was not finite (training stopped there).
        """
        net = self.network
        T = net.dtype.type
        loss_sum, n_correct, n_seen = train.train_epoch(
            X, Y, order, self.batch_size, theta, self.grad, net.sizes, net.w_off, net.b_off,
            net.hidden_act, net.out_act, self.x_buf, self.y_buf, self.act_buf, self.delta_buf,
            self.a_off, self.optimizer, T(self.learning_rate), T(self.momentum), self.nesterov,
            T(self.beta_1), T(self.beta_2), T(self.epsilon), self.state_1, self.state_2,
            self.step, self.l2, self.l2_per_sample, float(self.clip_eps),
        )
        return float(loss_sum), int(n_correct), int(n_seen)


def hidden_code(name):
    """Return the kernel code of a hidden activation name (ValueError lists the valid names)."""
    try:
        return activations.HIDDEN[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(k) for k in activations.HIDDEN)
        raise ValueError(f"hidden_activation must be one of {valid}; got {name!r}") from None
