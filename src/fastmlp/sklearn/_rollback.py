"""Put an estimator back as it was when a ``fit`` or ``partial_fit`` raises."""

import numpy as np

from fastmlp.sklearn._optimizer import StochasticOptimizer


class Rollback:
    """The estimator's state before a ``fit``/``partial_fit``, put back if the call raises.

    A failed call (bad data or settings, a cost that stopped being finite) must not leave a
    half-changed model: new ``classes_`` or ``n_features_in_`` with the old weights, or
    weights moved by part of an epoch. Training rebinds the attributes, except the
    parameters, the optimizer's state and the curves, which it updates in place; those are
    copied (or, for the curves, their lengths noted). A ``RandomState`` passed as
    ``random_state`` is put back too, so a retry draws what the failed call drew.
    """

    def __init__(self, est):
        self.est = est
        self.attrs = est.__dict__.copy()
        self.arrays = []
        theta = self.attrs.get("_theta")
        if isinstance(theta, np.ndarray):
            self.arrays.append((theta, theta.copy()))
        self.optimizer = self.attrs.get("_optimizer")
        self.optimizer_attrs = None
        if isinstance(self.optimizer, StochasticOptimizer):
            self.optimizer_attrs = self.optimizer.__dict__.copy()
            for a in (self.optimizer.state_1, self.optimizer.state_2, self.optimizer.step):
                self.arrays.append((a, a.copy()))
        self.curves = [(self.attrs[k], len(self.attrs[k]))
                       for k in ("loss_curve_", "validation_scores_")
                       if isinstance(self.attrs.get(k), list)]
        rs = est.random_state
        self.random_state = (rs, rs.get_state()) if isinstance(rs, np.random.RandomState) else None

    def restore(self):
        for arr, saved in self.arrays:
            arr[...] = saved
        for curve, n in self.curves:
            del curve[n:]
        if self.optimizer_attrs is not None:
            self.optimizer.__dict__.clear()
            self.optimizer.__dict__.update(self.optimizer_attrs)
        if self.random_state is not None:
            self.random_state[0].set_state(self.random_state[1])
        self.est.__dict__.clear()
        self.est.__dict__.update(self.attrs)
