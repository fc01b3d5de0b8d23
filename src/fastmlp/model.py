"""``fastmlp.Model``: the textbook network as a thin wrapper over the compiled engine."""

import errno
import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass, field

import numpy as np

from fastmlp import _config, _hooks
from fastmlp._engine import Network, Trainer, hidden_code
from fastmlp._files import check_npz_member, read_npy_header, written_whole
from fastmlp._kernels.activations import EXP, IDENTITY, SOFTMAX
from fastmlp._metrics import r2_score, rmse
from fastmlp._outofcore import RowBlocks, is_out_of_core, stream_epoch
from fastmlp._params import bias_views, glorot_uniform, weight_views
from fastmlp._preprocessing import Preprocessing
from fastmlp._validation import (
    check_float,
    check_positive_int,
    check_regression_targets,
    check_targets,
    check_X,
)

#: Version of the ``.npz`` model file written by :meth:`Model.save`.
FORMAT_VERSION = 1
_FORMAT_NAME = "fastmlp.Model"

#: Output kinds by name, with the cost each one is trained on: the canonical link of its cost,
#: so that BP1 is ``delta^L = a^L - y`` for all three.
OUTPUTS = {"softmax": SOFTMAX, "identity": IDENTITY, "exp": EXP}


class DivergenceError(FloatingPointError):
    """Training produced a non-finite cost or weights; the model keeps its last finite weights."""


@dataclass
class History:
    """What :meth:`Model.fit` recorded, one entry per completed epoch.

    A classifier (``output="softmax"``) records accuracies, a regression model
    (``output="identity"`` or ``"exp"``) RMSE and R^2 on the validation data instead; the
    fields of the other kind stay empty.

    Attributes
    ----------
    loss : list of float
        Mean training cost of the epoch (the output's cost plus the L2 term), each batch's cost
        taken before its update.
    accuracy : list of float
        Training accuracy over the epoch, each batch's predictions made before its update.
        Empty for a regression model.
    val_loss, val_accuracy : list of float
        Cost (no L2 term) and accuracy on ``validation_data`` after the epoch; empty without it.
        ``val_accuracy`` is empty for a regression model.
    val_rmse, val_r2 : list of float
        Regression models only, with ``validation_data``: root mean squared error and R^2
        (as :meth:`Model.evaluate` reports them) on it after the epoch; empty otherwise.
    seconds : list of float
        Wall-clock seconds of each epoch's training (validation excluded).
    stopped_epoch : int or None
        The epoch after which a callback stopped training (an
        :class:`~fastmlp.callbacks.EarlyStopping`); ``None`` when no callback stopped it.
    restored_epoch : int or None
        The epoch whose weights a callback put back when training ended
        (``EarlyStopping(restore_best=True)``); ``None`` when the model holds the weights of
        its last epoch.
    """

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    val_rmse: list = field(default_factory=list)
    val_r2: list = field(default_factory=list)
    stopped_epoch: int | None = None
    restored_epoch: int | None = None

    @property
    def epochs(self):
        """Number of completed epochs."""
        return len(self.loss)


class Model:
    """A fully-connected network: hidden layers, then a softmax, identity or exp output.

    Trained by mini-batch gradient descent with the four equations of backpropagation; each
    epoch runs as one compiled (Numba) call. The output kind chooses the task and the cost:

    - ``"softmax"``: a classifier, cost the cross-entropy ``-sum_j y_j ln a_j`` per row;
    - ``"identity"``: regression, ``a = z``, cost the half squared error
      ``1/2 sum_j (a_j - y_j)^2`` per row;
    - ``"exp"``: regression of counts or rates, ``a = e^z > 0``, cost the half Poisson
      deviance ``sum_j (y_j ln(y_j / a_j) - y_j + a_j)`` per row (targets ``y >= 0``).

    Each is the canonical link of its cost, so BP1 is ``delta^L = a^L - y`` for all three.
    Every cost reported or differentiated is the mean over the rows.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_inputs, hidden_1, ..., n_outputs]``; at least two entries, every one >= 1, and
        the last >= 2 for softmax (the number of classes).
    output : {"softmax", "identity", "exp"}
        The output kind (see above).
    hidden_activation : {"sigmoid", "tanh", "relu", "identity"}
        Activation of the hidden layers (``"logistic"`` is the same as ``"sigmoid"``).
    dtype : {"float32", "float64"}
        Dtype of the parameters and of every computation.
    seed : int or None
        Seeds the initial weights and the shuffling in :meth:`fit`.
    classes : sequence, optional
        Softmax only. Names of the ``n_classes`` outputs (ints, floats or strings), kept with
        the model and saved with it; ``classes[model.predict(X)]`` gives the predictions as
        names. Labels passed to :meth:`fit` are always the indices ``0..K-1``. Default:
        ``0..K-1``. A regression model has no classes (its ``classes`` is ``None``).
    preprocessing : Preprocessing, optional
        Steps applied to ``X`` by every method that takes it (fill missing entries,
        standardise), so that ``X`` stays in the data's own units; saved with the model. The
        network itself sees the transformed columns. ``fastmlp train --data table.csv`` sets
        it; see :class:`Preprocessing`.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[l]`` has shape ``(layer_sizes[l], layer_sizes[l+1])``; live views: writing
        into them changes the model.
    biases : list of ndarray
        ``biases[l]`` has shape ``(layer_sizes[l+1],)``; live views.
    history : History or None
        The record of the last (or running) :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import Model
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((200, 4), dtype=np.float32)
    >>> y = (X[:, 0] > 0.5).astype(int)
    >>> model = Model([4, 8, 2], seed=0)
    >>> history = model.fit(X, y, epochs=5, batch_size=16, learning_rate=1.0, progress=False)
    >>> history.epochs
    5
    >>> model.predict(X[:3]).shape
    (3,)

    Regression: one real-valued output, ``predict`` gives the values.

    >>> reg = Model([4, 8, 1], output="identity", seed=0)
    >>> history = reg.fit(X, X.sum(axis=1), epochs=5, batch_size=16, learning_rate=0.01,
    ...                   optimizer="adam", progress=False)
    >>> reg.predict(X[:3]).shape
    (3,)
    >>> sorted(reg.evaluate(X, X.sum(axis=1)))
    ['loss', 'r2', 'rmse']
    """

    def __init__(self, layer_sizes, *, output="softmax", hidden_activation="sigmoid",
                 dtype="float32", seed=None, classes=None, preprocessing=None):
        out_code = _output_code(output)
        sizes = _check_layer_sizes(layer_sizes, output)
        if output == "softmax":
            self.classes = _check_classes(classes, sizes[-1])
        elif classes is not None:
            raise ValueError(f"classes names the classes of a classifier; a regression model "
                             f"(output={output!r}) has none: leave classes out, or use "
                             "output='softmax' for a classifier")
        else:
            self.classes = None
        self._network = Network(sizes, hidden_code(hidden_activation), out_code,
                                _config.as_dtype(dtype))
        self.output = output
        self.hidden_activation = hidden_activation
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._theta = glorot_uniform(sizes, hidden_activation, self._rng, self._network.dtype)
        self.history = None
        self.preprocessing = preprocessing

    @property
    def preprocessing(self):
        """The :class:`Preprocessing` applied to ``X`` by every method, or ``None``."""
        return self._preprocessing

    @preprocessing.setter
    def preprocessing(self, value):
        if value is not None:
            if not isinstance(value, Preprocessing):
                raise TypeError(f"preprocessing must be a fastmlp.Preprocessing or None, got "
                                f"{type(value).__name__}")
            if value.n_features != self.layer_sizes[0]:
                raise ValueError(f"preprocessing is for {value.n_features} features, but the "
                                 f"network takes {self.layer_sizes[0]}")
        self._preprocessing = value

    # -- the architecture and the parameters ---------------------------------------------------
    @property
    def layer_sizes(self):
        """``(n_inputs, hidden..., n_outputs)``."""
        return self._network.layer_sizes

    @property
    def is_regression(self):
        """Whether the output is ``"identity"`` or ``"exp"`` (not a softmax classifier)."""
        return self.output != "softmax"

    @property
    def dtype(self):
        """The numpy dtype of the parameters and computations."""
        return self._network.dtype

    @property
    def weights(self):
        """Weight matrices, ``(fan_in, fan_out)`` each, as live views into the parameters."""
        return weight_views(self._theta, self.layer_sizes)

    @property
    def biases(self):
        """Bias vectors, ``(fan_out,)`` each, as live views into the parameters."""
        return bias_views(self._theta, self.layer_sizes)

    def __repr__(self):
        output = f"output={self.output!r}, " if self.is_regression else ""
        return (f"Model({list(self.layer_sizes)}, {output}"
                f"hidden_activation={self.hidden_activation!r}, "
                f"dtype={self.dtype.name!r}, seed={self.seed!r})")

    # -- training ------------------------------------------------------------------------------
    def fit(self, X, y, *, epochs, batch_size, learning_rate, momentum=0.0, l2=0.0,
            optimizer="sgd", nesterov=False, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
            validation_data=None, shuffle=True, progress=None, callbacks=(), block_rows=None):
        """Train by mini-batch gradient descent; returns the :class:`History`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In memory, or out of core: a ``numpy.memmap``, a zarr or a dask array is read one
            block of rows at a time (the next block while one trains), in a shuffled block
            order and a shuffled row order within each block; batches do not cross blocks.
            Memory then holds about two blocks. ``y`` is read whole.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Softmax: integer labels ``0..K-1``, or target rows (one-hot or soft) each summing
            to 1. Identity and exp: the real-valued targets, finite, ``>= 0`` for exp; 1-D
            when the model has one output.
        epochs : int
            Passes over the data (>= 1).
        batch_size : int
            Rows per mini-batch (>= 1); the last batch of an epoch may be shorter.
        learning_rate : float
            Step size ``eta`` (> 0).
        momentum : float
            SGD momentum in ``[0, 1)``; 0 is plain SGD.
        l2 : float
            L2 penalty: the cost gains ``0.5 * l2 * sum ||W||^2`` (biases are not penalised).
        optimizer : {"sgd", "adam"}
        nesterov : bool
            Nesterov's momentum instead of the classical one (SGD only).
        beta_1, beta_2, epsilon : float
            Adam's settings.
        validation_data : tuple (X_val, y_val), optional
            Evaluated after every epoch into ``history.val_loss`` and ``val_accuracy`` (a
            regression model: ``val_loss``, ``val_rmse`` and ``val_r2``).
        shuffle : bool
            Draw a new sample order every epoch (from the model's seeded generator).
        progress : bool or None
            Show a progress bar (tqdm); ``None`` shows it only when stderr is a terminal.
        callbacks : sequence
            Objects with ``on_epoch_end(epoch, logs)``; a ``True`` return stops training
            (``history.stopped_epoch`` says after which epoch). ``logs`` holds the epoch's
            ``loss``, ``accuracy``, ``seconds`` and, with validation data, ``val_loss`` and
            ``val_accuracy``; for a regression model ``loss``, ``seconds`` and, with
            validation data, ``val_loss``, ``val_rmse`` and ``val_r2``. A callback's
            ``on_train_begin(model, keys)`` and ``on_train_end(history)``, when it has them,
            are called before the first epoch and after the last (see
            :mod:`fastmlp.callbacks`, whose ``EarlyStopping`` stops on the validation loss).
        block_rows : int, optional
            Rows per block of an out-of-core ``X`` (unused for ``X`` in memory). Default: its
            own row chunks (zarr, dask), else 16 MiB of rows (``FASTMLP_BLOCK_BYTES``).

        Returns
        -------
        History

        Raises
        ------
        ValueError, TypeError
            Bad data or settings; nothing about the model changes.
        DivergenceError
            The cost or the weights stopped being finite; the weights are restored to the end
            of the last finite epoch and ``model.history`` holds the epochs before it.
        KeyboardInterrupt
            Re-raised after the running epoch ends; the weights are those of the last full
            epoch and ``model.history`` holds the epochs so far.
        """
        net = self._network
        blocks = None
        if block_rows is not None:
            block_rows = check_positive_int(block_rows, "block_rows")
        if is_out_of_core(X):
            blocks = RowBlocks(X, block_rows)
            n = blocks.shape[0]
            if self.preprocessing is None and blocks.shape[1] != net.layer_sizes[0]:
                raise ValueError(f"X has {blocks.shape[1]} features, but the model expects "
                                 f"{net.layer_sizes[0]}")
        else:
            X = self._inputs(X)
            n = X.shape[0]
        Y = self._check_targets(y, n)
        epochs = check_positive_int(epochs, "epochs")
        batch_size = min(check_positive_int(batch_size, "batch_size"), n)
        learning_rate = check_float(learning_rate, "learning_rate", low=0, low_inclusive=False)
        momentum = check_float(momentum, "momentum", low=0, high=1, high_inclusive=False)
        l2 = check_float(l2, "l2", low=0)
        beta_1 = check_float(beta_1, "beta_1", low=0, high=1, high_inclusive=False)
        beta_2 = check_float(beta_2, "beta_2", low=0, high=1, high_inclusive=False)
        epsilon = check_float(epsilon, "epsilon", low=0, low_inclusive=False)
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
        if validation_data is not None:
            try:
                X_val, y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a tuple (X_val, y_val)") from None
            if is_out_of_core(X_val):  # scored block by block after each epoch
                Y_val = self._check_targets(y_val, X_val.shape[0], name="validation y")
            else:
                X_val = self._inputs(X_val, name="validation X")
                Y_val = self._check_targets(y_val, X_val.shape[0], name="validation y")
        callbacks = list(callbacks)
        for cb in callbacks:
            if not callable(getattr(cb, "on_epoch_end", None)):
                raise TypeError(f"callback {cb!r} has no on_epoch_end(epoch, logs) method")
        keys = ("loss", "seconds") if self.is_regression else ("loss", "accuracy", "seconds")
        if validation_data is not None:
            keys += (("val_loss", "val_rmse", "val_r2") if self.is_regression
                     else ("val_loss", "val_accuracy"))
        for cb in callbacks:  # a callback may refuse this fit before anything changes
            if callable(getattr(cb, "on_train_begin", None)):
                cb.on_train_begin(self, keys)

        trainer = Trainer(net, batch_size, optimizer, learning_rate=learning_rate,
                          momentum=momentum, nesterov=nesterov, beta_1=beta_1, beta_2=beta_2,
                          epsilon=epsilon, l2=l2)
        history = self.history = History()
        theta = self._theta
        last_good = theta.copy()  # the weights at the end of the last recorded epoch
        bar = _progress_bar(epochs * n, progress)
        try:
            for epoch in range(1, epochs + 1):
                start = time.perf_counter()
                if blocks is not None:
                    if bar is not None:
                        bar.set_description(f"epoch {epoch}/{epochs}", refresh=False)
                    loss_sum, n_correct, n_seen = stream_epoch(
                        trainer, theta, blocks, Y, self._block_inputs, self._rng, shuffle,
                        on_block=None if bar is None else bar.update)
                elif bar is None:
                    order = self._rng.permutation(n) if shuffle else np.arange(n)
                    loss_sum, n_correct, n_seen = trainer.epoch(theta, X, Y, order)
                else:
                    order = self._rng.permutation(n) if shuffle else np.arange(n)
                    bar.set_description(f"epoch {epoch}/{epochs}", refresh=False)
                    loss_sum, n_correct, n_seen = _epoch_in_segments(trainer, theta, X, Y,
                                                                     order, bar)
                seconds = time.perf_counter() - start
                loss = loss_sum / n
                if n_seen < n or not np.isfinite(loss) or not np.isfinite(theta).all():
                    theta[:] = last_good
                    raise DivergenceError(
                        f"training diverged in epoch {epoch}: the cost became {loss} (not "
                        f"finite); the weights are restored to the end of epoch {epoch - 1}. "
                        f"Lower the learning rate (now {learning_rate})."
                    )
                if self.is_regression:  # the kernels count no correct rows for regression
                    logs = {"loss": loss, "seconds": seconds}
                    if validation_data is not None:
                        scores = (self.evaluate(X_val, Y_val) if is_out_of_core(X_val)
                                  else self._regression_scores(X_val, Y_val))
                        logs.update({f"val_{k}": v for k, v in scores.items()})
                else:
                    logs = {"loss": loss, "accuracy": n_correct / n, "seconds": seconds}
                    if validation_data is not None:
                        if is_out_of_core(X_val):
                            logs["val_loss"], n_val_correct = self._cost(X_val, Y_val)[:2]
                        else:
                            logs["val_loss"], n_val_correct, _ = net.loss_and_gradient(
                                theta, X_val, Y_val, with_grad=False)
                        logs["val_accuracy"] = n_val_correct / X_val.shape[0]
                for key, value in logs.items():
                    getattr(history, key).append(value)
                last_good[:] = theta
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "seconds"})
                stop = False
                for cb in callbacks:
                    stop = bool(cb.on_epoch_end(epoch, dict(logs))) or stop
                if stop:
                    history.stopped_epoch = epoch
                    break
        except (KeyboardInterrupt, ValueError, TypeError):
            # The compiled epoch cannot be interrupted; the signal surfaces after it. Keep the
            # weights of the last recorded epoch so weights and history agree. So too when a
            # block of an out-of-core X, checked as it is read, turns out bad mid-epoch.
            theta[:] = last_good
            raise
        finally:
            if bar is not None:
                bar.close()
        for cb in callbacks:  # after the last epoch, or the one a callback stopped at
            if callable(getattr(cb, "on_train_end", None)):
                cb.on_train_end(history)
        return history

    # -- inference -----------------------------------------------------------------------------
    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``, in the model's dtype.

        Raises
        ------
        AttributeError
            The model is a regression model (``output="identity"`` or ``"exp"``): it has no
            classes; :meth:`predict` gives its values.
        """
        if self.is_regression:
            raise AttributeError(
                f"predict_proba gives class probabilities, which a regression model "
                f"(output={self.output!r}) does not have: use predict for its predicted values"
            )
        return self._forward(X)

    def predict(self, X):
        """Predictions for the rows of ``X``.

        Returns
        -------
        ndarray
            Softmax: the predicted class labels ``0..K-1`` (the most probable class), shape
            ``(n_samples,)``. Identity and exp: the predicted values ``a^L`` in the model's
            dtype, shape ``(n_samples,)`` for one output, else ``(n_samples, n_outputs)``.
        """
        out = self._forward(X)
        if not self.is_regression:
            return np.argmax(out, axis=1)
        return out[:, 0] if out.shape[1] == 1 else out

    def loss(self, X, y):
        """Mean cost over ``(X, y)``, without regularisation.

        Softmax: the cross-entropy ``C = -(1/n) sum_x sum_j y_j ln a_j^L``; identity: the half
        squared error ``(1/n) sum_x 1/2 sum_j (a_j^L - y_j)^2``; exp: the half Poisson deviance
        ``(1/n) sum_x sum_j (y_j ln(y_j / a_j^L) - y_j + a_j^L)``.
        """
        return self._cost(X, y)[0]

    def evaluate(self, X, y):
        """Return the mean cost and the model's scores on ``(X, y)``.

        Returns
        -------
        dict
            Softmax: ``{"loss": mean cross-entropy, "accuracy": fraction of argmax matches}``.
            Identity and exp: ``{"loss": mean cost (as :meth:`loss`), "rmse": ..., "r2": ...}``
            where ``rmse`` is the root of the mean squared error over every row and output,
            ``sqrt(mean((predict(X) - y)^2))``, and ``r2`` the coefficient of determination
            ``1 - sum (y - pred)^2 / sum (y - mean(y))^2`` of each output, averaged over the
            outputs: scikit-learn's ``r2_score`` (``multioutput="uniform_average"``). As
            there, an output whose ``y`` is constant scores 1 when predicted exactly, else 0,
            and fewer than two rows give ``nan``.
        """
        if self.is_regression:
            if not is_out_of_core(X):
                return self._regression_scores(*self._check_data(X, y))
            loss, _, _, Y = self._cost(X, y)
            pred = self._forward(X)
            return {"loss": loss, "rmse": rmse(Y, pred), "r2": r2_score(Y, pred)}
        loss, n_correct, _, Y = self._cost(X, y)
        return {"loss": loss, "accuracy": n_correct / Y.shape[0]}

    def _regression_scores(self, X, Y):
        """``{"loss", "rmse", "r2"}`` of checked ``(X, Y)``: one cost pass, one forward pass."""
        net = self._network
        loss = net.loss_and_gradient(self._theta, X, Y, with_grad=False)[0]
        pred = net.predict_proba(self._theta, X)
        return {"loss": loss, "rmse": rmse(Y, pred), "r2": r2_score(Y, pred)}

    def _forward(self, X):
        """Return ``a^L`` for the rows of ``X``, block by block when ``X`` is out of core."""
        net, theta = self._network, self._theta
        if not is_out_of_core(X):
            return net.predict_proba(theta, self._inputs(X))
        n, blocks = self._blocks(X)
        out = np.empty((n, self.layer_sizes[-1]), dtype=self.dtype)
        for start, stop, X_block in blocks:
            out[start:stop] = net.predict_proba(theta, X_block)
        return out

    def _cost(self, X, y, with_grad=False):
        """Return ``(mean cost, n_correct, gradient or None, Y)`` over ``(X, y)``.

        An out-of-core ``X`` is taken block by block: the costs, counts and gradients of the
        blocks are summed, weighted by their rows, and divided by the rows of all.
        """
        net, theta = self._network, self._theta
        if not is_out_of_core(X):
            X, Y = self._check_data(X, y)
            return (*net.loss_and_gradient(theta, X, Y, with_grad=with_grad), Y)
        n, blocks = self._blocks(X)
        Y = self._check_targets(y, n)
        loss_sum, n_correct = 0.0, 0
        grad = np.zeros(net.n_params, dtype=np.float64) if with_grad else None
        for start, stop, X_block in blocks:
            loss, correct, block_grad = net.loss_and_gradient(theta, X_block, Y[start:stop],
                                                              with_grad=with_grad)
            loss_sum += loss * (stop - start)
            n_correct += correct
            if with_grad:
                grad += block_grad * (stop - start)
        if with_grad:
            grad = (grad / n).astype(self.dtype)
        return loss_sum / n, n_correct, grad, Y

    def gradients(self, X, y):
        """Gradient of the mean cost over ``(X, y)`` (no regularisation), as :meth:`loss`.

        Returns
        -------
        grad_weights : list of ndarray
            Shapes as :attr:`weights`.
        grad_biases : list of ndarray
            Shapes as :attr:`biases`.
        """
        grad = self._cost(X, y, with_grad=True)[2]
        return weight_views(grad, self.layer_sizes), bias_views(grad, self.layer_sizes)

    def _check_data(self, X, y):
        X = self._inputs(X)
        return X, self._check_targets(y, X.shape[0])

    def _blocks(self, X):
        """Return the rows of an out-of-core ``X`` and an iterator of its checked blocks.

        The iterator yields ``(start, stop, rows)``; ``X``'s shape and dtype are checked
        here, before any block is read.
        """
        blocks = RowBlocks(X)
        checked = ((start, stop, self._block_inputs(blocks.read(i), start, stop))
                   for i, (start, stop) in enumerate(blocks.bounds))
        return blocks.shape[0], checked

    def _block_inputs(self, rows, start, stop):
        """Return a block of an out-of-core ``X`` as the kernels take it; errors name it."""
        return self._inputs(rows, name=f"the block of X rows {start}..{stop - 1} (its rows "
                                       f"counted from {start} as 0)")

    def _inputs(self, X, name="X"):
        """``X`` as the network takes it: through :attr:`preprocessing`, then checked."""
        if self._preprocessing is not None:
            try:
                X = self._preprocessing.transform(X, self.dtype)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{name}: {exc}") from None
        return check_X(X, self.dtype, self.layer_sizes[0], name=name)

    def _check_targets(self, y, n_samples, name="y"):
        """Target rows ``Y`` (n, K) for the kernels: one-hot from labels, or the values."""
        if self.is_regression:
            return check_regression_targets(y, n_samples, self.layer_sizes[-1], self.dtype,
                                            nonnegative=self.output == "exp", name=name)
        return check_targets(y, n_samples, self.layer_sizes[-1], self.dtype, name=name)

    # -- other libraries -----------------------------------------------------------------------
    def to_sklearn(self):
        """Return a fitted scikit-learn estimator that computes what this model computes.

        A softmax model becomes an ``MLPClassifier`` (``classes_`` the model's class names),
        an identity or exp model an ``MLPRegressor`` (``loss="squared_error"`` or
        ``"poisson"``), with the same weights; with :attr:`preprocessing` that fills or
        standardises, a ``Pipeline`` of ``SimpleImputer``/``StandardScaler`` ending in it.
        Its ``predict_proba`` (or ``predict``) equals this model's to rounding, and
        ``fastmlp export --onnx`` converts it. See docs/tables.md.

        Raises
        ------
        ValueError
            A setting with no scikit-learn equivalent; the message names it.
        """
        # fastmlp.convert does it: a room above Model, reached without importing it (_hooks)
        return _hooks.load("convert").model_to_sklearn(self)

    @classmethod
    def from_sklearn(cls, estimator):
        """Return a Model with the network of a fitted ``MLPClassifier`` or ``MLPRegressor``.

        scikit-learn's estimators or fastmlp's: a classifier gives a softmax model whose
        ``classes`` are its ``classes_`` (a binary one's logistic unit becomes two softmax
        logits with the same probabilities), a regressor an identity or, for
        ``loss="poisson"``, an exp model; the dtype is that of ``coefs_``. Its
        ``predict_proba`` (or ``predict``) equals the estimator's to rounding.

        Raises
        ------
        TypeError
            Not an MLP estimator.
        ValueError
            A multilabel classifier, which a softmax model is not.
        """
        return _hooks.load("convert").model_from_estimator(cls, estimator)

    # -- files ---------------------------------------------------------------------------------
    def save(self, path):
        """Write the model to ``path`` as one ``.npz`` file, atomically.

        The file holds ``weights_<l>`` and ``biases_<l>`` arrays and a JSON ``header`` (format
        version, layer sizes, hidden and output activations, dtype, classes: ``null`` for a
        regression model; the :attr:`preprocessing` settings or ``null``). It is written to a
        temporary file beside ``path`` and renamed over it, so a crash leaves any old file
        intact. The file gets the permissions a plain ``open(path, "w")`` would give it: an
        existing file's, else ``0o666`` less the umask.
        """
        path = os.fspath(path)
        header = {
            "format": _FORMAT_NAME,
            "version": FORMAT_VERSION,
            "layer_sizes": list(self.layer_sizes),
            "hidden_activation": self.hidden_activation,
            "output_activation": self.output,
            "dtype": self.dtype.name,
            "classes": None if self.classes is None else self.classes.tolist(),
            "preprocessing": (None if self.preprocessing is None
                              else self.preprocessing.to_dict()),
        }
        arrays = {"header": np.array(json.dumps(header))}
        for i, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"weights_{i}"] = W
            arrays[f"biases_{i}"] = b
        with written_whole(path) as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`.

        The output kind is the header's ``output_activation``; a file without it (written
        before regression models existed) holds a softmax classifier.

        The file is untrusted bytes: members are refused before they are read (names other
        than the header and the declared network's arrays, compression that could inflate a
        small file), every array's shape and dtype is checked from its own ``.npy`` header
        against the header's network before anything that size is allocated, and no pickle is
        ever loaded. The memory used is bounded by the declared network, not by the file.

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            Not a fastmlp model file: not an ``.npz``, holds pickled objects, a missing or
            malformed header (a field of the wrong JSON type included), an unknown version,
            an unknown member, or an array of the wrong shape or dtype.
        """
        path = os.fspath(path)
        what = f"{path!r} is not a fastmlp model file"
        # Open the file ourselves (np.load leaks its handle when the archive is corrupt); a
        # missing file, a folder or no permission raise their own OSError.
        with open(path, "rb") as f:
            try:
                return _read_model(cls, f)
            except OSError as exc:
                if exc.errno not in (None, errno.EINVAL):
                    raise  # the disk failed, not the format
                raise ValueError(f"{what}: corrupt archive ({exc})") from None
            except ValueError as exc:
                raise ValueError(f"{what}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - zipfile, zlib and numpy raise many types
                raise ValueError(f"{what}: {type(exc).__name__}: {exc}") from None


#: Largest header member read (bytes of NumPy's UTF-32 text): about 8 million characters,
#: room for the preprocessing of some 100000 named features. The header is read before the
#: network is known, so it has a bound of its own.
_MAX_HEADER_BYTES = 32 << 20

#: Bytes read at a time from an archive member into the model's own arrays: no temporary the
#: size of a layer.
_READ_CHUNK = 1 << 20


def _npy_header(stream, name):
    """Read a ``.npy`` header from ``stream``; return ``(shape, fortran_order, dtype)``."""
    version, header = read_npy_header(stream)
    if header is None:
        raise ValueError(f"array {name}: .npy format version {version} (fastmlp writes 1.0)")
    shape, fortran, dtype = header
    if dtype.hasobject:
        raise ValueError("it contains pickled objects, which are never loaded (they could "
                         "run code)")
    return tuple(int(d) for d in shape), fortran, dtype


def _read_member_into(zf, info, name, out):
    """Read the array of member ``info`` into ``out`` (its shape and dtype checked already)."""
    with zf.open(info) as stream:
        shape, fortran, _ = _npy_header(stream, name)
        target = out if not fortran else np.empty(shape[::-1], dtype=out.dtype)
        if not target.flags.c_contiguous:  # pragma: no cover - the model's views are
            target = np.empty_like(target)
        buffer = memoryview(target.reshape(-1).view(np.uint8))
        filled = 0
        while filled < len(buffer):
            chunk = stream.read(min(_READ_CHUNK, len(buffer) - filled))
            if not chunk:
                raise ValueError(f"array {name} is truncated: {filled} of {len(buffer)} "
                                 "bytes")
            buffer[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
        if stream.read(1):  # reading to the end also checks the member's CRC
            raise ValueError(f"array {name} has bytes after its data")
    if fortran:
        out[...] = target.T
    elif target is not out:  # pragma: no cover
        out[...] = target


def _read_model(cls, f):
    """Build the Model of an open model file; ValueError (unprefixed) for a bad one."""
    if f.read(6) == b"\x93NUMPY":
        raise ValueError("it holds a single array, not an .npz archive")
    f.seek(0)
    try:
        zf = zipfile.ZipFile(f)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not an .npz archive ({exc})") from None
    with zf:
        members = {}
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name in members:
                raise ValueError(f"the archive holds {info.filename!r} twice")
            members[name] = info
        info = members.get("header")
        if info is None:
            raise ValueError("no header")
        check_npz_member(info)
        if info.file_size > _MAX_HEADER_BYTES:
            raise ValueError(f"the header member is {info.file_size} bytes, more than the "
                             f"{_MAX_HEADER_BYTES} a header may be")
        with zf.open(info) as stream:
            shape, _, dtype = _npy_header(stream, "header")
            if shape != () or dtype.kind != "U" or dtype.itemsize > _MAX_HEADER_BYTES:
                raise ValueError("no header")
            data = stream.read(dtype.itemsize)
            # reading to the end also checks the CRC
            if len(data) != dtype.itemsize or stream.read(1):
                raise ValueError("the header member is truncated or has bytes after its text")
            raw = np.frombuffer(data, dtype=dtype, count=1)[0]
        header = _read_header(raw)
        sizes = header["layer_sizes"]
        dtype = _config.as_dtype(header["dtype"])
        declared = {}
        for i in range(len(sizes) - 1):
            declared[f"weights_{i}"] = (sizes[i], sizes[i + 1])
            declared[f"biases_{i}"] = (sizes[i + 1],)
        # Refuse what the network does not declare before reading a byte of it.
        unexpected = sorted(set(members) - set(declared) - {"header"})
        if unexpected:
            raise ValueError(f"unexpected arrays {unexpected}")
        # Every array's own header against the declared network, before the network is
        # allocated: a small file cannot make this allocate more than it holds.
        for name, shape in declared.items():
            want = f"{dtype}{list(shape)}"
            info = members.get(name)
            if info is None:
                raise ValueError(f"array {name} should be {want}, got missing")
            check_npz_member(info)
            with zf.open(info) as stream:
                got_shape, _, got_dtype = _npy_header(stream, name)
            if got_shape != shape or got_dtype != dtype:
                raise ValueError(f"array {name} should be {want}, got "
                                 f"{got_dtype}{list(got_shape)}")
            if info.file_size < dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"array {name} should be {want}, but its member holds only "
                                 f"{info.file_size} bytes: truncated")
        model = _model_from_header(cls, header)
        for i, (W, b) in enumerate(zip(model.weights, model.biases, strict=True)):
            for name, view in ((f"weights_{i}", W), (f"biases_{i}", b)):
                _read_member_into(zf, members[name], name, view)
                if not np.isfinite(view).all():
                    raise ValueError(f"array {name} holds NaN or infinity")
    return model


def _model_from_header(cls, header):
    """Build a Model with the header's network and settings (its weights still to be read)."""
    sizes = header["layer_sizes"]
    output = header.get("output_activation", "softmax")
    if output == "softmax":
        try:
            classes = _check_classes(header.get("classes"), sizes[-1])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"header field 'classes': {exc}") from None
    elif header.get("classes") is not None:
        raise ValueError(f"header field 'classes': a regression model (output_activation "
                         f"{output!r}) has no classes")
    else:
        classes = None
    preprocessing = header.get("preprocessing")
    if preprocessing is not None:
        try:
            if not isinstance(preprocessing, dict):
                raise TypeError("not a JSON object")
            preprocessing = Preprocessing.from_dict(preprocessing)
            if preprocessing.n_features != sizes[0]:
                raise ValueError(f"{preprocessing.n_features} features for a network "
                                 f"of {sizes[0]} inputs")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"header field 'preprocessing': {exc}") from None
    return cls(sizes, output=output, hidden_activation=header["hidden_activation"],
               dtype=header["dtype"], classes=classes, preprocessing=preprocessing)


def _read_header(raw):
    """Return the checked JSON header of a model file, from its NumPy text scalar."""
    try:
        header = json.loads(str(raw))
    except json.JSONDecodeError:
        raise ValueError("the header is not valid JSON") from None
    if not isinstance(header, dict) or header.get("format") != _FORMAT_NAME:
        raise ValueError(f"the header does not name the format {_FORMAT_NAME!r}")
    version = header.get("version")
    if type(version) is not int or version != FORMAT_VERSION:  # JSON true is not version 1
        raise ValueError(f"format version {version!r}; this fastmlp reads version "
                         f"{FORMAT_VERSION}")
    for key, kind in (("layer_sizes", list), ("hidden_activation", str), ("dtype", str)):
        if not isinstance(header.get(key), kind):
            raise ValueError(f"header field {key!r} is missing or malformed")
    output = header.get("output_activation", "softmax")
    if not isinstance(output, str) or output not in OUTPUTS:
        raise ValueError(f"header field 'output_activation' is {output!r}; this fastmlp "
                         f"knows {', '.join(map(repr, OUTPUTS))}")
    try:
        _check_layer_sizes(header["layer_sizes"], output)
        hidden_code(header["hidden_activation"])
        _config.as_dtype(header["dtype"])
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    classes = header.get("classes")
    if classes is not None:
        # one JSON type for all: NumPy would make [1, "a"] the strings "1" and "a"
        if not isinstance(classes, list):
            raise ValueError(f"header field 'classes' is a JSON {type(classes).__name__}, "
                             "not a list")
        kinds = {"text" if isinstance(c, str) else "number"
                 if isinstance(c, (int, float)) and not isinstance(c, bool) else "other"
                 for c in classes}
        if "other" in kinds or len(kinds) > 1:
            raise ValueError("header field 'classes' must hold all strings or all numbers")
    return header


def _check_classes(classes, n_classes):
    if classes is None:
        return np.arange(n_classes)
    arr = np.asarray(classes)
    if arr.ndim != 1 or len(arr) != n_classes:
        raise ValueError(f"classes must name the {n_classes} outputs, got {len(classes)!r} "
                         f"entries" if arr.ndim == 1 else "classes must be a 1-D sequence")
    if arr.dtype.kind not in "iufUb":
        raise TypeError(f"classes must be ints, floats or strings, got dtype {arr.dtype}")
    if len(np.unique(arr)) != len(arr):
        raise ValueError("classes must be distinct")
    return arr


def _output_code(output):
    """Return the kernels' code of an output kind name (ValueError lists the valid names)."""
    try:
        return OUTPUTS[output]
    except (KeyError, TypeError):
        valid = ", ".join(repr(k) for k in OUTPUTS)
        raise ValueError(f"output must be one of {valid} (a classifier, regression, regression "
                         f"of counts); got {output!r}") from None


def _check_layer_sizes(layer_sizes, output="softmax"):
    try:
        sizes = list(layer_sizes)
    except TypeError:
        raise TypeError(f"layer_sizes must be a sequence of ints, got {layer_sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes needs at least an input and an output size, got {sizes}")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"layer_sizes must hold ints, got {s!r} in {sizes}")
        if s < 1:
            raise ValueError(f"every layer size must be >= 1, got {sizes}")
    if output == "softmax" and sizes[-1] < 2:
        raise ValueError(f"the output layer needs >= 2 classes for softmax, got {sizes[-1]}; "
                         "for one real-valued output use output='identity'")
    return [int(s) for s in sizes]


def _progress_bar(total_samples, progress):
    if progress is None:
        progress = sys.stderr is not None and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total_samples, unit="sample", unit_scale=True, desc="fit",
                mininterval=0.2)


#: Target seconds per compiled call when a progress bar is shown.
_SEGMENT_SECONDS = 0.25


def _epoch_in_segments(trainer, theta, X, Y, order, bar):
    """Train one epoch as several compiled calls, so the progress bar moves during it.

    Each call trains whole consecutive batches of ``order``, sized from the measured speed to
    last about ``_SEGMENT_SECONDS``: the batches, their order and so the weights are exactly
    those of a single call, and the calls continue one running sum of the cost, so it is the
    single call's too, bit for bit.
    """
    n = len(order)
    batch = trainer.batch_size
    rows = batch * max(1, 2048 // batch)  # a first guess, corrected by the measured speed
    loss_sum, n_correct, pos = 0.0, 0, 0
    while pos < n:
        stop = min(n, pos + rows)
        start = time.perf_counter()
        loss_sum, seg_correct, seen = trainer.epoch(theta, X, Y, order[pos:stop], loss_sum)
        seconds = max(time.perf_counter() - start, 1e-6)
        n_correct += seg_correct
        if seen < stop - pos:
            return loss_sum, n_correct, pos + seen
        bar.update(stop - pos)
        rows = batch * max(1, int((stop - pos) / seconds * _SEGMENT_SECONDS) // batch)
        pos = stop
    return loss_sum, n_correct, n
