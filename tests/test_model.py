import os
import pickle
import stat

import numpy as np
import pytest

from fastmlp import DivergenceError, History, Model


def small_data(rng, n=120, n_in=6, k=3, dtype=np.float64):
    X = rng.standard_normal((n, n_in)).astype(dtype)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    return X, y % k


# -- training -------------------------------------------------------------------------------------
def test_digits_reaches_95_percent(digits):
    X_train, y_train, X_test, y_test = digits
    model = Model([64, 32, 10], seed=0)
    history = model.fit(X_train, y_train, epochs=30, batch_size=32, learning_rate=0.5,
                        progress=False)
    assert history.epochs == 30
    assert history.loss[-1] < history.loss[0]
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.95


def test_float32_and_float64_agree(digits):
    X_train, y_train, X_test, y_test = digits
    acc = {}
    for dtype in ("float32", "float64"):
        model = Model([64, 32, 10], dtype=dtype, seed=1)
        model.fit(X_train, y_train, epochs=20, batch_size=32, learning_rate=0.5, progress=False)
        assert model.weights[0].dtype == np.dtype(dtype)
        assert model.predict_proba(X_test).dtype == np.dtype(dtype)
        acc[dtype] = model.evaluate(X_test, y_test)["accuracy"]
    assert abs(acc["float32"] - acc["float64"]) <= 1e-3


@pytest.mark.parametrize("optimizer,kwargs", [
    ("sgd", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("adam", {}), ("sgd", {"l2": 1e-3}),
])
def test_same_seed_gives_bit_identical_weights(digits, optimizer, kwargs):
    X_train, y_train, _, _ = digits
    lr = 0.001 if optimizer == "adam" else 0.1
    runs = []
    for _ in range(2):
        model = Model([64, 16, 10], seed=7)
        model.fit(X_train, y_train, epochs=3, batch_size=50, learning_rate=lr,
                  optimizer=optimizer, progress=False, **kwargs)
        runs.append(np.concatenate([w.ravel() for w in model.weights + model.biases]))
    assert np.array_equal(runs[0], runs[1])
    other = Model([64, 16, 10], seed=8)
    assert not np.array_equal(other.weights[0], Model([64, 16, 10], seed=7).weights[0])


def test_every_hidden_activation_learns(rng):
    X, y = small_data(rng, n=300)
    for act in ("sigmoid", "tanh", "relu", "identity"):
        model = Model([6, 12, 3], hidden_activation=act, dtype="float64", seed=0)
        before = model.loss(X, y)
        model.fit(X, y, epochs=20, batch_size=16, learning_rate=0.1, progress=False)
        assert model.loss(X, y) < before, act


def test_soft_targets_equal_integer_labels_when_one_hot(rng):
    X, y = small_data(rng)
    a = Model([6, 5, 3], dtype="float64", seed=3)
    b = Model([6, 5, 3], dtype="float64", seed=3)
    ha = a.fit(X, y, epochs=2, batch_size=10, learning_rate=0.3, progress=False)
    hb = b.fit(X, np.eye(3)[y], epochs=2, batch_size=10, learning_rate=0.3, progress=False)
    assert ha.loss == hb.loss
    assert np.array_equal(a.weights[0], b.weights[0])
    soft = np.full((len(y), 3), 0.1)
    soft[np.arange(len(y)), y] = 0.8
    b.fit(X, soft, epochs=1, batch_size=10, learning_rate=0.3, progress=False)


def test_no_hidden_layer_is_softmax_regression(rng):
    X, y = small_data(rng, n=200)
    model = Model([6, 3], dtype="float64", seed=0)
    model.fit(X, y, epochs=100, batch_size=20, learning_rate=0.5, progress=False)
    from sklearn.linear_model import LogisticRegression

    expected = LogisticRegression(C=1e4, max_iter=2000).fit(X, y).score(X, y)
    assert model.evaluate(X, y)["accuracy"] >= expected - 0.02


def test_history_validation_and_callbacks(digits):
    X_train, y_train, X_test, y_test = digits
    seen = []

    class StopAtThree:
        def on_epoch_end(self, epoch, logs):
            seen.append((epoch, sorted(logs)))
            return epoch == 3

    model = Model([64, 16, 10], seed=0)
    history = model.fit(X_train, y_train, epochs=10, batch_size=32, learning_rate=0.5,
                        validation_data=(X_test, y_test), callbacks=[StopAtThree()],
                        progress=False)
    assert isinstance(history, History) and model.history is history
    assert history.epochs == 3 and [e for e, _ in seen] == [1, 2, 3]
    assert seen[0][1] == ["accuracy", "loss", "seconds", "val_accuracy", "val_loss"]
    assert len(history.val_loss) == len(history.val_accuracy) == len(history.seconds) == 3
    assert history.val_loss[-1] == pytest.approx(model.loss(X_test, y_test), rel=1e-6)
    assert history.val_accuracy[-1] == model.evaluate(X_test, y_test)["accuracy"]
    assert all(s > 0 for s in history.seconds)


def test_progress_bar_runs(digits, capsys):
    X_train, y_train, _, _ = digits
    Model([64, 8, 10], seed=0).fit(X_train, y_train, epochs=2, batch_size=64,
                                   learning_rate=0.5, progress=True)
    assert "2/2" in capsys.readouterr().err


def test_shuffle_off_is_deterministic_and_differs_from_shuffled(rng):
    X, y = small_data(rng)
    w = []
    for shuffle, seed in ((False, 0), (False, 1), (True, 0)):
        model = Model([6, 4, 3], dtype="float64", seed=0)
        model._rng = np.random.default_rng(seed)  # only the shuffling stream differs
        model.fit(X, y, epochs=2, batch_size=7, learning_rate=0.2, shuffle=shuffle,
                  progress=False)
        w.append(model.weights[0].copy())
    assert np.array_equal(w[0], w[1])
    assert not np.array_equal(w[0], w[2])


# -- parameters are live views --------------------------------------------------------------------
def test_weights_and_biases_are_live_views(rng):
    model = Model([4, 3, 2], dtype="float64", seed=0)
    assert [w.shape for w in model.weights] == [(4, 3), (3, 2)]
    assert [b.shape for b in model.biases] == [(3,), (2,)]
    X = rng.standard_normal((5, 4))
    for W in model.weights:
        W[...] = 0
    for b in model.biases:
        b[...] = 0
    np.testing.assert_array_equal(model.predict_proba(X), np.full((5, 2), 0.5))
    model.biases[-1][:] = [0.0, np.log(3.0)]
    np.testing.assert_allclose(model.predict_proba(X), np.tile([0.25, 0.75], (5, 1)))


def test_predict_is_argmax_of_predict_proba(digits):
    X_train, y_train, X_test, _ = digits
    model = Model([64, 16, 10], seed=0)
    model.fit(X_train, y_train, epochs=2, batch_size=32, learning_rate=0.5, progress=False)
    proba = model.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(X_test), proba.argmax(axis=1))


# -- save / load ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trips_bit_for_bit(tmp_path, digits, dtype):
    X_train, y_train, X_test, _ = digits
    model = Model([64, 16, 12, 10], hidden_activation="tanh", dtype=dtype, seed=0)
    model.fit(X_train, y_train, epochs=1, batch_size=32, learning_rate=0.1, progress=False)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = Model.load(path)
    assert loaded.layer_sizes == model.layer_sizes
    assert loaded.hidden_activation == "tanh" and loaded.dtype == np.dtype(dtype)
    for a, b in zip(model.weights + model.biases, loaded.weights + loaded.biases, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    np.testing.assert_array_equal(model.predict_proba(X_test), loaded.predict_proba(X_test))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left behind


def test_load_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, header=np.array([{"format": "fastmlp.Model"}], dtype=object))
    with pytest.raises(ValueError, match="pickled"):
        Model.load(path)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a fastmlp model file"):
        Model.load(plain)


def test_load_refuses_bad_files(tmp_path):
    model = Model([3, 2], seed=0)
    good = tmp_path / "good.npz"
    model.save(good)
    with pytest.raises(FileNotFoundError):
        Model.load(tmp_path / "missing.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a fastmlp model file"):
        Model.load(truncated)
    with np.load(good) as data:
        arrays = dict(data)
    wrong_shape = dict(arrays, weights_0=np.zeros((2, 2), np.float32))
    np.savez(tmp_path / "shape.npz", **wrong_shape)
    with pytest.raises(ValueError, match="weights_0"):
        Model.load(tmp_path / "shape.npz")
    version = dict(arrays, header=np.array(str(arrays["header"]).replace('"version": 1',
                                                                        '"version": 99')))
    np.savez(tmp_path / "version.npz", **version)
    with pytest.raises(ValueError, match="version 99"):
        Model.load(tmp_path / "version.npz")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    Model([3, 2], seed=0).save(path)
    before = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        Model([3, 2], seed=1).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_save_gives_the_mode_open_would(tmp_path, umask):
    """A new file is 0666 less the umask, as open() makes it (not mkstemp's 0600); a file
    saved over keeps its mode, as open(path, "w") keeps it."""
    old = os.umask(umask)
    try:
        Model([3, 2], seed=0).save(tmp_path / "new.npz")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode) == 0o666 & ~umask
    os.chmod(tmp_path / "new.npz", 0o640)
    Model([3, 2], seed=1).save(tmp_path / "new.npz")
    assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["new.npz", "plain"]


# -- bad input leaves the model as it was ---------------------------------------------------------
def _params(model):
    return np.concatenate([p.ravel() for p in model.weights + model.biases]).copy()


@pytest.mark.parametrize("make_args,error,match", [
    (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), y),
     ValueError, "NaN"),
    (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), y),
     ValueError, "infinity"),
    (lambda X, y: (X, np.where(np.arange(len(y)) == 2, np.nan, y)), ValueError, "integer"),
    (lambda X, y: (X[0], y), ValueError, "2-D"),
    (lambda X, y: (X, y[:-1]), ValueError, "rows"),
    (lambda X, y: (X[:0], y[:0]), ValueError, "empty"),
    (lambda X, y: (X[:, :3], y), ValueError, "features"),
    (lambda X, y: (X.astype(str), y), TypeError, "numeric"),
    (lambda X, y: (X.astype(object), y), TypeError, "numeric"),
    (lambda X, y: (X, y + 5), ValueError, "labels"),
    (lambda X, y: (X, np.full((len(y), 3), 0.5)), ValueError, "sum to 1"),
    (lambda X, y: (X, -np.eye(3)[y]), ValueError, "negative"),
])
def test_bad_data_raises_and_keeps_model(rng, make_args, error, match):
    X, y = small_data(rng)
    model = Model([6, 4, 3], dtype="float64", seed=0)
    before = _params(model)
    Xb, yb = make_args(X.copy(), y.copy())
    with pytest.raises(error, match=match):
        model.fit(Xb, yb, epochs=1, batch_size=8, learning_rate=0.1, progress=False)
    assert np.array_equal(_params(model), before)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"epochs": 0}, ValueError, "epochs"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"learning_rate": 0.0}, ValueError, "learning_rate"),
    ({"learning_rate": -1.0}, ValueError, "learning_rate"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
    ({"momentum": 1.0}, ValueError, "momentum"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
    ({"epochs": 1.5}, TypeError, "epochs"),
])
def test_bad_settings_raise_and_keep_model(rng, kwargs, error, match):
    X, y = small_data(rng)
    model = Model([6, 4, 3], dtype="float64", seed=0)
    before = _params(model)
    args = dict(epochs=1, batch_size=8, learning_rate=0.1, progress=False)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        model.fit(X, y, **args)
    assert np.array_equal(_params(model), before)


@pytest.mark.parametrize("sizes,error", [
    ([4], ValueError), ([4, 0, 2], ValueError), ([4, -1, 2], ValueError), ([4, 1], ValueError),
    ([4, 2.5, 2], TypeError), (None, TypeError),
])
def test_bad_layer_sizes(sizes, error):
    with pytest.raises(error):
        Model(sizes)


def test_bad_constructor_options():
    with pytest.raises(ValueError, match="hidden_activation"):
        Model([2, 2], hidden_activation="softplus")
    with pytest.raises(ValueError, match="dtype"):
        Model([2, 2], dtype="float16")


def test_predict_checks_features(rng):
    model = Model([6, 4, 3], seed=0)
    with pytest.raises(ValueError, match="expects 6"):
        model.predict(rng.standard_normal((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.full((2, 6), np.inf))


# -- faults ---------------------------------------------------------------------------------------
def test_divergence_restores_last_finite_weights(rng):
    X, y = small_data(rng, n=200)
    X = X * 1e3
    model = Model([6, 64, 3], hidden_activation="identity", dtype="float32", seed=0)
    snapshots = []

    class Snapshot:
        def on_epoch_end(self, epoch, logs):
            snapshots.append(_params(model))

    with pytest.raises(DivergenceError, match="epoch"):
        model.fit(X, y, epochs=50, batch_size=10, learning_rate=1e6, callbacks=[Snapshot()],
                  progress=False)
    params = _params(model)
    assert np.isfinite(params).all()
    expected = snapshots[-1] if snapshots else None
    if expected is not None:
        assert np.array_equal(params, expected)
    assert model.history.epochs == len(snapshots)


def test_keyboard_interrupt_keeps_last_full_epoch(digits):
    X_train, y_train, _, _ = digits
    model = Model([64, 8, 10], seed=0)
    snapshots = []

    class Interrupt:
        def on_epoch_end(self, epoch, logs):
            snapshots.append(_params(model))
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(X_train, y_train, epochs=5, batch_size=32, learning_rate=0.5,
                  callbacks=[Interrupt()], progress=False)
    assert model.history.epochs == 2
    assert np.array_equal(_params(model), snapshots[-1])


def test_progress_segments_train_exactly_the_same_batches(digits, monkeypatch):
    # With a progress bar an epoch runs as several compiled calls; the weights must not change.
    import fastmlp.model

    X_train, y_train, _, _ = digits
    plain = Model([64, 16, 10], seed=0)
    plain.fit(X_train, y_train, epochs=2, batch_size=7, learning_rate=0.5, progress=False)
    monkeypatch.setattr(fastmlp.model, "_SEGMENT_SECONDS", 1e-6)  # one batch per call
    segmented = Model([64, 16, 10], seed=0)
    history = segmented.fit(X_train, y_train, epochs=2, batch_size=7, learning_rate=0.5,
                            progress=True)
    assert np.array_equal(plain._theta, segmented._theta)
    np.testing.assert_allclose(history.loss, plain.history.loss, rtol=1e-12)


def test_classes_are_kept_and_saved(tmp_path, rng):
    X, y = small_data(rng)
    model = Model([6, 4, 3], seed=0, classes=["cat", "dog", "eel"])
    model.fit(X, y, epochs=1, batch_size=8, learning_rate=0.1, progress=False)
    model.save(tmp_path / "m.npz")
    loaded = Model.load(tmp_path / "m.npz")
    assert loaded.classes.tolist() == ["cat", "dog", "eel"]
    np.testing.assert_array_equal(loaded.classes[loaded.predict(X)],
                                  model.classes[model.predict(X)])
    assert Model([6, 3]).classes.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="3 outputs"):
        Model([6, 3], classes=[1, 2])
    with pytest.raises(ValueError, match="distinct"):
        Model([6, 3], classes=[1, 1, 2])
