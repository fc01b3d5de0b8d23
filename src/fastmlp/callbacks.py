"""Callbacks for :meth:`fastmlp.Model.fit`: early stopping, and the hooks every callback may use.

A callback is any object with ``on_epoch_end(epoch, logs)``; a ``True`` return stops training
after that epoch. Two more hooks are called when a callback has them (Keras' habit, from
``keras/callbacks/``):

- ``on_train_begin(model, keys)``: once, before the first epoch, with the model and the names
  every epoch's ``logs`` will hold (``"loss"``, ``"accuracy"``, ``"val_loss"``, ...). Raising
  here stops ``fit`` before anything about the model changes.
- ``on_train_end(history)``: once, after the last epoch, or after the epoch a callback stopped
  training (not after an interruption or a divergence, which ``fit`` handles itself).

This module is a leaf: it imports NumPy only. ``Model.fit`` calls the hooks by name and does
not import it, so the command and library users share one :class:`EarlyStopping`.
"""

import numpy as np

__all__ = ["EarlyStopping"]

#: The names a monitored value may have, and whether lower is better.
_LOWER_IS_BETTER = {"loss": True, "val_loss": True, "val_rmse": True,
                    "accuracy": False, "val_accuracy": False, "val_r2": False}


class EarlyStopping:
    """Stop training when a monitored value has stopped improving; keep the best weights.

    Parameters
    ----------
    monitor : {"val_loss", "loss", "val_accuracy", "accuracy", "val_rmse", "val_r2"}
        The entry of each epoch's logs to watch. Losses and RMSE improve downwards, accuracies
        and R^2 upwards. The ``val_`` values need ``fit(validation_data=...)``; a classifier
        logs no RMSE or R^2, a regression model no accuracy.
    patience : int
        Epochs without improvement before training stops (>= 0; 0 stops at the first epoch
        that does not improve). The default is scikit-learn's ``n_iter_no_change``.
    min_delta : float
        The least change that counts as an improvement (>= 0).
    restore_best : bool
        When training ends, stopped or not, put back the weights of the best epoch, bit for
        bit (``history.restored_epoch`` then says which). With ``False`` the model keeps the
        weights of its last epoch.

    Attributes
    ----------
    best : float
        The best monitored value so far.
    best_epoch : int
        The epoch that reached it (0 before the first epoch).
    stopped_epoch : int or None
        The epoch after which this callback stopped training; ``None`` if it did not.

    Raises
    ------
    ValueError
        An unknown ``monitor``, a negative ``patience`` or ``min_delta``; in ``fit``, before
        the first epoch, a ``monitor`` that this fit does not log.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import Model
    >>> from fastmlp.callbacks import EarlyStopping
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.random((200, 4)), rng.integers(0, 2, 200)
    >>> stopper = EarlyStopping(patience=2)
    >>> history = Model([4, 8, 2], seed=0).fit(
    ...     X[:150], y[:150], epochs=100, batch_size=16, learning_rate=0.5,
    ...     validation_data=(X[150:], y[150:]), callbacks=[stopper], progress=False)
    >>> history.stopped_epoch == stopper.stopped_epoch == history.epochs < 100
    True
    >>> history.restored_epoch == stopper.best_epoch
    True
    """

    def __init__(self, monitor="val_loss", *, patience=10, min_delta=0.0, restore_best=True):
        if not isinstance(monitor, str) or monitor not in _LOWER_IS_BETTER:
            hint = (" (the first argument is the monitored value: pass patience by name, "
                    f"EarlyStopping(patience={monitor!r}))"
                    if isinstance(monitor, (int, np.integer)) else "")
            raise ValueError(f"EarlyStopping: monitor must be one of "
                             f"{', '.join(map(repr, _LOWER_IS_BETTER))}; got {monitor!r}{hint}")
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) \
                or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        if not np.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be a number >= 0, got {min_delta!r}")
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best = bool(restore_best)
        self._reset()

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta:g}, restore_best={self.restore_best})")

    def _reset(self):
        self._lower = _LOWER_IS_BETTER[self.monitor]
        self.best = np.inf if self._lower else -np.inf
        self.best_epoch = 0
        self.stopped_epoch = None
        self._model = None
        self._best_weights = None

    def on_train_begin(self, model, keys):
        """Start afresh for a ``fit`` of ``model``; refuse a monitor it does not log."""
        if self.monitor not in keys:
            why = ("pass validation_data to fit" if self.monitor.startswith("val_")
                   and not any(k.startswith("val_") for k in keys)
                   else "this model does not log it")
            raise ValueError(f"EarlyStopping(monitor={self.monitor!r}): this fit logs "
                             f"{', '.join(map(repr, keys))}; {why}")
        self._reset()
        self._model = model

    def on_epoch_end(self, epoch, logs):
        """Record the monitored value of ``logs``; return True to stop."""
        value = logs[self.monitor]
        improved = (value < self.best - self.min_delta if self._lower
                    else value > self.best + self.min_delta)
        if improved:
            self.best, self.best_epoch = value, epoch
            if self.restore_best and self._model is not None:
                self._best_weights = ([W.copy() for W in self._model.weights],
                                      [b.copy() for b in self._model.biases])
        elif epoch - self.best_epoch >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, history):
        """Put back the best epoch's weights (``restore_best``) and say so in ``history``."""
        model, best = self._model, self._best_weights
        self._model = self._best_weights = None  # hold no copy of the model after fit
        if best is None or self.best_epoch == history.epochs:
            return  # the last epoch was the best (or none improved): nothing to put back
        for views, saved in zip((model.weights, model.biases), best, strict=True):
            for view, array in zip(views, saved, strict=True):
                view[...] = array
        history.restored_epoch = self.best_epoch
