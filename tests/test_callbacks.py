import numpy as np
import pytest

from fastmlp import History, Model
from fastmlp.callbacks import EarlyStopping


def noisy_data(rng, n=300, n_in=5, k=3):
    # labels mostly noise: the validation loss soon stops improving
    X = rng.standard_normal((n, n_in))
    y = ((X[:, 0] > 0).astype(int) + rng.integers(0, 2, n)) % k
    return X[:200], y[:200], X[200:], y[200:]


FIT = dict(epochs=60, batch_size=16, learning_rate=1.0, progress=False)


class Recorder:
    """Copies of the weights and biases after every epoch, as the epoch left them."""

    def __init__(self, model):
        self.model, self.params = model, {}

    def on_epoch_end(self, epoch, logs):
        self.params[epoch] = ([W.copy() for W in self.model.weights],
                              [b.copy() for b in self.model.biases])


def expected_stop(values, patience, min_delta=0.0):
    """The rule written out: the first epoch ``patience`` epochs after the last improvement."""
    best, best_epoch = np.inf, 0
    for epoch, value in enumerate(values, start=1):
        if value < best - min_delta:
            best, best_epoch = value, epoch
        elif epoch - best_epoch >= patience:
            return epoch, best_epoch
    return None, best_epoch


@pytest.mark.parametrize("patience,min_delta", [(1, 0.0), (3, 0.0), (2, 0.01)])
def test_stops_at_the_right_epoch(rng, patience, min_delta):
    X, y, X_val, y_val = noisy_data(rng)
    full = Model([5, 16, 3], dtype="float64", seed=0).fit(
        X, y, validation_data=(X_val, y_val), **FIT)
    stop, best = expected_stop(full.val_loss, patience, min_delta)
    assert stop is not None and stop < FIT["epochs"]  # the data is noisy enough to stop

    stopper = EarlyStopping(patience=patience, min_delta=min_delta, restore_best=False)
    history = Model([5, 16, 3], dtype="float64", seed=0).fit(
        X, y, validation_data=(X_val, y_val), callbacks=[stopper], **FIT)
    assert history.epochs == stop
    assert history.stopped_epoch == stopper.stopped_epoch == stop
    assert history.restored_epoch is None  # restore_best=False: the last epoch's weights
    assert stopper.best_epoch == best and stopper.best == full.val_loss[best - 1]
    assert history.val_loss == full.val_loss[:stop]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_restores_the_best_weights_bit_for_bit(rng, dtype):
    X, y, X_val, y_val = noisy_data(rng)
    model = Model([5, 16, 3], dtype=dtype, seed=0)
    recorder = Recorder(model)
    stopper = EarlyStopping(patience=3)
    history = model.fit(X, y, validation_data=(X_val, y_val),
                        callbacks=[recorder, stopper], **FIT)
    best = int(np.argmin(history.val_loss)) + 1
    assert history.stopped_epoch == history.epochs < FIT["epochs"]
    assert history.restored_epoch == stopper.best_epoch == best < history.epochs
    weights, biases = recorder.params[best]
    for got, expected in zip([*model.weights, *model.biases], [*weights, *biases], strict=True):
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected)  # bit for bit, not close
    assert not np.array_equal(model.weights[0], recorder.params[history.epochs][0][0])
    # and the model scores what the best epoch scored
    assert model.loss(X_val, y_val) == pytest.approx(history.val_loss[best - 1], rel=1e-5)


def test_nothing_to_restore_when_the_last_epoch_is_the_best(rng):
    X, y, X_val, y_val = noisy_data(rng)
    model = Model([5, 16, 3], dtype="float64", seed=0)
    recorder = Recorder(model)
    # a small step: the training loss falls every epoch, so the last epoch is the best
    history = model.fit(X, y, validation_data=(X_val, y_val), epochs=5, batch_size=16,
                        learning_rate=0.1, progress=False,
                        callbacks=[recorder, EarlyStopping("loss", patience=10)])
    assert int(np.argmin(history.loss)) == 4  # the premise: the last epoch is the best
    assert history.epochs == 5 and history.stopped_epoch is None
    assert history.restored_epoch is None
    assert np.array_equal(model.weights[0], recorder.params[5][0][0])


def test_monitors_that_improve_upwards():
    stopper = EarlyStopping("val_accuracy", patience=2, min_delta=0.05)
    stops = [stopper.on_epoch_end(e, {"val_accuracy": a})
             for e, a in enumerate([0.5, 0.6, 0.62, 0.64], start=1)]
    # 0.62 and 0.64 are within min_delta of 0.6: the second of them stops
    assert stops == [False, False, False, True]
    assert (stopper.best, stopper.best_epoch, stopper.stopped_epoch) == (0.6, 2, 4)


def test_regression_models_monitor_r2(rng):
    X = rng.standard_normal((150, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.standard_normal(150)
    stopper = EarlyStopping("val_r2", patience=2)
    history = Model([4, 8, 1], output="identity", dtype="float64", seed=0).fit(
        X[:100], y[:100], validation_data=(X[100:], y[100:]), epochs=200, batch_size=16,
        learning_rate=0.01, optimizer="adam", progress=False, callbacks=[stopper])
    assert stopper.best == max(history.val_r2)


@pytest.mark.parametrize("monitor,match", [
    ("val_los", "monitor must be one of 'loss', 'val_loss'"),
    ("", "got ''"),
    (None, "got None"),
    (5, r"pass patience by name, EarlyStopping\(patience=5\)"),
])
def test_a_bad_monitor_is_a_clear_error(monitor, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(monitor)


@pytest.mark.parametrize("kwargs,match", [
    ({"patience": -1}, "patience must be an integer >= 0"),
    ({"patience": 1.5}, "patience must be an integer >= 0"),
    ({"min_delta": -0.1}, "min_delta must be a number >= 0"),
])
def test_bad_settings_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


@pytest.mark.parametrize("monitor,output,validation,match", [
    ("val_loss", "softmax", False, "pass validation_data to fit"),
    ("val_r2", "softmax", True, "this model does not log it"),
    ("accuracy", "identity", True, "this model does not log it"),
])
def test_a_monitor_the_fit_does_not_log_fails_before_training(rng, monitor, output, validation,
                                                                match):
    X = rng.standard_normal((40, 3))
    y = rng.integers(0, 2, 40) if output == "softmax" else rng.standard_normal(40)
    model = Model([3, 4, 2 if output == "softmax" else 1], output=output, seed=0)
    before = [W.copy() for W in model.weights]
    model.history = History(loss=[1.0])
    with pytest.raises(ValueError, match=match):
        model.fit(X, y, epochs=3, batch_size=8, learning_rate=0.1, progress=False,
                  validation_data=(X, y) if validation else None,
                  callbacks=[EarlyStopping(monitor)])
    assert all(np.array_equal(a, b) for a, b in zip(model.weights, before, strict=True))
    assert model.history.loss == [1.0]  # nothing about the model changed


def test_history_has_no_stop_without_a_stopping_callback(rng):
    X, y, X_val, y_val = noisy_data(rng)
    history = Model([5, 4, 3], seed=0).fit(X, y, epochs=2, batch_size=32, learning_rate=0.1,
                                           progress=False)
    assert history.stopped_epoch is None and history.restored_epoch is None


def test_the_command_uses_it():
    from fastmlp.cli import EarlyStopping as cli_stopping
    from fastmlp.cli import train

    assert cli_stopping is EarlyStopping and train.EarlyStopping is EarlyStopping
