"""SGD and Adam state, kept on the estimator as scikit-learn keeps its ``_optimizer``."""

import numpy as np

from fastmlp._engine import Trainer


class StochasticOptimizer:
    """SGD or Adam settings and state (velocity or moments, Adam's step), and the schedule.

    Mirrors scikit-learn's ``SGDOptimizer``/``AdamOptimizer``: the settings are taken when it
    is made (``fit`` makes a new one, ``partial_fit`` keeps it), the learning rate follows
    ``iteration_ends``/``trigger_stopping``. The engine's :class:`~fastmlp._engine.Trainer`
    (buffers sized for one batch size) is built on demand around this state and not pickled.
    """

    def __init__(self, solver, n_params, dtype, *, learning_rate_init, lr_schedule, momentum,
                 nesterov, power_t, beta_1, beta_2, epsilon):
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.state_1 = np.zeros(n_params, dtype=dtype)
        self.state_2 = np.zeros(n_params if solver == "adam" else 0, dtype=dtype)
        self.step = np.zeros(1, dtype=np.int64)  # Adam's t
        self._trainer = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_trainer"] = None  # buffers only; rebuilt on the next partial_fit
        return state

    def trainer(self, network, batch_size, alpha):
        """Return the engine's Trainer for ``network`` and ``batch_size``, on this state."""
        t = self._trainer
        if (t is None or t.batch_size != batch_size or t.network.layer_sizes
                != network.layer_sizes or t.network.dtype != network.dtype
                or t.network.hidden_act != network.hidden_act
                or t.network.out_act != network.out_act):
            dtype = network.dtype
            if self.state_1.dtype != dtype or self.state_1.shape[0] != network.n_params:
                raise ValueError("the network changed shape or dtype since the optimizer was "
                                 "made; refit with fit() instead of partial_fit()")
            t = Trainer(network, batch_size, self.solver, learning_rate=self.learning_rate,
                        momentum=self.momentum if self.solver == "sgd" else 0.0,
                        nesterov=bool(self.nesterov) and self.solver == "sgd",
                        beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                        l2=0.0, l2_per_sample=alpha, clip_eps=float(np.finfo(dtype).eps),
                        # the state lives here, across Trainers (partial_fit, new batch sizes)
                        state=(self.state_1, self.state_2, self.step))
            self._trainer = t
        t.l2_per_sample = float(alpha)
        t.learning_rate = (self.learning_rate if self.solver == "sgd"
                           else self.learning_rate_init)
        return t

    def iteration_ends(self, time_step):
        """Learning-rate update at the end of an epoch ('invscaling' uses ``t_``)."""
        if self.solver == "sgd" and self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """Return True to stop; 'adaptive' SGD divides the rate by 5 until it is <= 1e-6."""
        if self.solver != "sgd" or self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(f"{msg} Setting learning rate to {self.learning_rate:f}")
        return False
