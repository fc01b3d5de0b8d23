import json
import os
import pickle
import stat

import numpy as np
import pytest

from fastmlp import DivergenceError, History, Model, datasets


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
    assert history.val_rmse == history.val_r2 == []  # regression models' fields
    assert history.val_loss[-1] == pytest.approx(model.loss(X_test, y_test), rel=1e-6)
    assert history.val_accuracy[-1] == model.evaluate(X_test, y_test)["accuracy"]
    assert all(s > 0 for s in history.seconds)


def test_progress_bar_runs(digits, capsys):
    X_train, y_train, _, _ = digits
    Model([64, 8, 10], seed=0).fit(X_train, y_train, epochs=2, batch_size=64,
                                   learning_rate=0.5, progress=True)
    assert "2/2" in capsys.readouterr().err


def test_an_epoch_in_progress_bar_segments_is_one_call_bit_for_bit(digits, monkeypatch):
    # the progress bar trains an epoch in several calls; they continue one running cost sum
    import fastmlp.model as model_module

    monkeypatch.setattr(model_module, "_SEGMENT_SECONDS", 1e-9)  # one batch per call
    X_train, y_train, _, _ = digits
    runs = []
    for progress in (False, True):
        model = Model([64, 16, 10], dtype="float64", seed=0)
        history = model.fit(X_train, y_train, epochs=2, batch_size=50, learning_rate=0.5,
                            progress=progress)
        runs.append((history.loss, history.accuracy, model.weights[0].copy()))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == runs[1][1]
    assert np.array_equal(runs[0][2], runs[1][2])


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


def test_one_output_is_for_regression_only():
    with pytest.raises(ValueError, match=r">= 2 classes for softmax.*output='identity'"):
        Model([4, 1])
    for output in ("identity", "exp"):
        assert Model([4, 1], output=output).layer_sizes == (4, 1)
    with pytest.raises(ValueError, match=">= 1"):
        Model([4, 0], output="identity")


def test_bad_constructor_options():
    with pytest.raises(ValueError, match="hidden_activation"):
        Model([2, 2], hidden_activation="softplus")
    with pytest.raises(ValueError, match="dtype"):
        Model([2, 2], dtype="float16")
    with pytest.raises(ValueError, match=r"output must be one of 'softmax', 'identity', 'exp'"):
        Model([2, 2], output="poisson")
    with pytest.raises(ValueError, match="output must be"):
        Model([2, 2], output=None)
    for output in ("identity", "exp"):
        with pytest.raises(ValueError, match="a regression model .* has none: leave classes"):
            Model([2, 2], output=output, classes=["a", "b"])


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


# -- regression: identity and exp outputs ---------------------------------------------------------
@pytest.fixture(scope="module")
def diabetes():
    return datasets.load_diabetes(seed=0)


def test_regression_on_diabetes_learns_as_well_as_a_linear_model(diabetes):
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    X_train, y_train, X_test, y_test = diabetes
    model = Model([10, 32, 1], output="identity", seed=0)
    before = model.loss(X_test, y_test)
    history = model.fit(X_train, y_train, epochs=30, batch_size=32, learning_rate=0.001,
                        optimizer="adam", validation_data=(X_test, y_test), progress=False)
    assert history.loss[-1] < history.loss[0] / 5
    assert model.loss(X_test, y_test) < before / 5
    linear = r2_score(y_test, LinearRegression().fit(X_train, y_train).predict(X_test))
    assert linear > 0.3
    assert model.evaluate(X_test, y_test)["r2"] >= linear - 0.03


def test_regression_history_records_rmse_and_r2_not_accuracy(diabetes):
    X_train, y_train, X_test, y_test = diabetes
    seen = []

    class Record:
        def on_epoch_end(self, epoch, logs):
            seen.append(sorted(logs))

    model = Model([10, 8, 1], output="identity", seed=0)
    history = model.fit(X_train, y_train, epochs=3, batch_size=32, learning_rate=0.01,
                        optimizer="adam", validation_data=(X_test, y_test), callbacks=[Record()],
                        progress=False)
    assert seen == [["loss", "seconds", "val_loss", "val_r2", "val_rmse"]] * 3
    assert history.accuracy == history.val_accuracy == []
    assert len(history.loss) == len(history.val_loss) == len(history.val_rmse) == 3
    assert len(history.val_r2) == len(history.seconds) == 3
    final = model.evaluate(X_test, y_test)
    assert history.val_loss[-1] == pytest.approx(final["loss"], rel=1e-12)
    assert history.val_rmse[-1] == final["rmse"] and history.val_r2[-1] == final["r2"]
    without = Model([10, 8, 1], output="identity", seed=0).fit(
        X_train, y_train, epochs=2, batch_size=32, learning_rate=0.01, progress=False)
    assert without.val_loss == without.val_rmse == without.val_r2 == []


@pytest.mark.parametrize("output", ["identity", "exp"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regression_predict_shapes_and_values(rng, output, dtype):
    import reference as ref

    X = rng.standard_normal((9, 4))
    for k in (1, 3):
        model = Model([4, 5, k], output=output, hidden_activation="tanh", dtype=dtype, seed=0)
        pred = model.predict(X)
        assert pred.shape == ((9,) if k == 1 else (9, k)) and pred.dtype == np.dtype(dtype)
        Ws, bs = ref.as_float64(model.weights, model.biases)
        expected = ref.forward(Ws, bs, X, "tanh", output)[1][-1]
        # float32: each output sums a few products of float32 roundings (eps 1.2e-7)
        tol = 1e-5 if dtype == "float32" else 1e-13
        np.testing.assert_allclose(pred.reshape(9, k), expected, rtol=tol,
                                   atol=tol * np.abs(expected).max())
        if output == "exp":
            assert (pred > 0).all()
        with pytest.raises(AttributeError, match="use predict for its predicted values"):
            model.predict_proba(X)


@pytest.mark.parametrize("k", [1, 3])
def test_regression_evaluate_matches_scikit_learn(rng, k):
    from sklearn.metrics import mean_squared_error, r2_score

    X = rng.standard_normal((40, 4))
    Y = rng.normal(1.0, 2.0, (40, k))
    y = Y[:, 0] if k == 1 else Y
    model = Model([4, 6, k], output="identity", dtype="float64", seed=0)
    model.fit(X, y, epochs=20, batch_size=8, learning_rate=0.01, optimizer="adam",
              progress=False)
    result = model.evaluate(X, y)
    assert sorted(result) == ["loss", "r2", "rmse"]
    pred = model.predict(X)
    assert result["r2"] == pytest.approx(r2_score(y, pred), rel=1e-12)
    assert result["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)), rel=1e-12)
    assert result["loss"] == pytest.approx(0.5 * np.sum((pred - y) ** 2) / 40, rel=1e-12)
    assert result["loss"] == model.loss(X, y)


def test_r2_edge_cases_are_scikit_learns(rng):
    from sklearn.metrics import r2_score

    X = rng.standard_normal((6, 2))
    model = Model([2, 3], output="identity", dtype="float64", seed=0)
    pred = model.predict(X)
    # a constant column predicted wrong scores 0, one predicted exactly 1 (force_finite)
    Y = np.column_stack([np.full(6, 2.0), pred[:, 1], rng.standard_normal(6)])
    got = model.evaluate(X, Y)["r2"]
    assert got == pytest.approx(r2_score(Y, pred), rel=1e-12)
    assert got == pytest.approx((0.0 + 1.0 + r2_score(Y[:, 2], pred[:, 2])) / 3, rel=1e-12)
    assert np.isnan(model.evaluate(X[:1], Y[:1])["r2"])  # R^2 needs two rows


def test_exp_output_learns_poisson_counts(rng):
    X = rng.standard_normal((400, 3))
    rate = np.exp(0.5 + 0.8 * X[:, 0] - 0.5 * X[:, 1])
    y = rng.poisson(rate).astype(float)
    model = Model([3, 8, 1], output="exp", dtype="float64", seed=0)
    before = model.loss(X, y)
    history = model.fit(X, y, epochs=30, batch_size=20, learning_rate=0.01, optimizer="adam",
                        progress=False)
    assert history.loss[-1] < history.loss[0]
    assert model.loss(X, y) < 0.7 * before
    pred = model.predict(X)
    assert (pred > 0).all()
    assert np.corrcoef(pred, rate)[0, 1] > 0.9
    # the cost is the mean half Poisson deviance
    from scipy.special import xlogy

    deviance = np.mean(xlogy(y, y / pred) - y + pred)
    assert model.loss(X, y) == pytest.approx(deviance, rel=1e-10)


def test_regression_integer_targets_are_values_not_labels(rng):
    X = rng.standard_normal((30, 3))
    y = rng.integers(0, 5, 30)
    model = Model([3, 4, 1], output="identity", dtype="float64", seed=0)
    assert model.loss(X, y) == model.loss(X, y.astype(float))
    grads_int, grads_float = model.gradients(X, y), model.gradients(X, y.astype(float))
    for a, b in zip(grads_int[0] + grads_int[1], grads_float[0] + grads_float[1], strict=True):
        np.testing.assert_array_equal(a, b)
    # one output and a column vector are the same targets
    assert model.loss(X, y.reshape(-1, 1)) == model.loss(X, y)


@pytest.mark.parametrize("output,sizes,make_y,error,match", [
    ("identity", [4, 3, 1], lambda y: np.where(np.arange(len(y)) == 2, np.nan, y), ValueError,
     r"y contains NaN or infinity \(first at row 2\)"),
    ("identity", [4, 3, 1], lambda y: np.where(np.arange(len(y)) == 5, np.inf, y), ValueError,
     "NaN or infinity"),
    ("exp", [4, 3, 1], lambda y: np.where(np.arange(len(y)) == 3, -1.5, y), ValueError,
     r"negative values \(first -1.5 at row 3\).*output='identity'"),
    ("exp", [4, 3, 2], lambda y: np.column_stack([y, -y]), ValueError, "column 1"),
    ("identity", [4, 3, 2], lambda y: y, ValueError,
     r"2 outputs: give (validation )?y the shape \(40, 2\)"),
    ("identity", [4, 3, 1], lambda y: np.column_stack([y, y]), ValueError,
     r"shape \(40, 2\), but the model has 1 output"),
    ("identity", [4, 3, 1], lambda y: y[:-1], ValueError, "rows"),
    ("identity", [4, 3, 1], lambda y: y.astype(str), TypeError, "numbers"),
    ("identity", [4, 3, 1], lambda y: y * 1e300, ValueError, "beyond the range"),
])
def test_bad_regression_targets_raise_and_keep_model(rng, output, sizes, make_y, error, match):
    X = rng.standard_normal((40, 4))
    y = rng.random(40) + 0.5
    model = Model(sizes, output=output, dtype="float32", seed=0)
    before = _params(model)
    bad = make_y(y.copy())
    for call in (lambda: model.fit(X, bad, epochs=1, batch_size=8, learning_rate=0.1,
                                   progress=False),
                 lambda: model.fit(X, y if sizes[-1] == 1 else np.column_stack([y, y]),
                                   epochs=1, batch_size=8, learning_rate=0.1, progress=False,
                                   validation_data=(X, bad)),
                 lambda: model.evaluate(X, bad), lambda: model.loss(X, bad),
                 lambda: model.gradients(X, bad)):
        with pytest.raises(error, match=match):
            call()
        assert np.array_equal(_params(model), before)
        assert model.history is None


@pytest.mark.parametrize("output", ["softmax", "identity", "exp"])
def test_save_load_round_trips_each_output_kind(tmp_path, rng, output):
    X = rng.standard_normal((20, 4))
    model = Model([4, 5, 2], output=output, hidden_activation="relu", dtype="float64", seed=3)
    path = tmp_path / f"{output}.npz"
    model.save(path)
    with np.load(path) as data:
        header = json.loads(str(data["header"]))
    assert header["output_activation"] == output
    assert header["classes"] == ([0, 1] if output == "softmax" else None)
    loaded = Model.load(path)
    assert loaded.output == output and loaded.is_regression == (output != "softmax")
    assert repr(loaded) == repr(model).replace("seed=3", "seed=None")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if output == "softmax":
        assert loaded.classes.tolist() == [0, 1]
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    else:
        assert loaded.classes is None
        assert f"output={output!r}" in repr(loaded)


def _rewrite_header(src, dst, change):
    with np.load(src) as data:
        arrays = dict(data)
    header = json.loads(str(arrays["header"]))
    change(header)
    arrays["header"] = np.array(json.dumps(header))
    np.savez(dst, **arrays)


def test_files_without_output_activation_load_as_softmax(tmp_path, rng):
    model = Model([4, 3, 3], seed=0, classes=["a", "b", "c"])
    model.save(tmp_path / "m.npz")
    _rewrite_header(tmp_path / "m.npz", tmp_path / "old.npz",
                    lambda h: h.pop("output_activation"))
    old = Model.load(tmp_path / "old.npz")
    assert old.output == "softmax" and old.classes.tolist() == ["a", "b", "c"]
    assert "output=" not in repr(old)
    X = rng.standard_normal((5, 4))
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))


def test_load_refuses_bad_output_headers(tmp_path):
    Model([4, 3, 1], output="identity", seed=0).save(tmp_path / "reg.npz")
    Model([4, 3, 2], seed=0).save(tmp_path / "clf.npz")
    cases = [
        ("reg.npz", lambda h: h.update(output_activation="poisson"),
         "header field 'output_activation' is 'poisson'"),
        ("reg.npz", lambda h: h.update(classes=[0]), "a regression model .* has no classes"),
        ("reg.npz", lambda h: h.update(output_activation="softmax"), ">= 2 classes"),
        ("clf.npz", lambda h: h.update(output_activation=3), "output_activation"),
        ("clf.npz", lambda h: h.update(output_activation=["softmax"]), "output_activation"),
    ]
    for i, (name, change, match) in enumerate(cases):
        _rewrite_header(tmp_path / name, tmp_path / f"bad{i}.npz", change)
        with pytest.raises(ValueError, match=match):
            Model.load(tmp_path / f"bad{i}.npz")
