"""Out-of-core training (issue 12): X a numpy.memmap, a zarr array or a dask array.

``Model.fit`` (and the estimators' sgd/adam ``fit``/``partial_fit``) read such an X one block
of rows at a time (``fastmlp._outofcore.stream_epoch``): the block order is shuffled, then the
rows of each block, and a batch never crosses blocks. The tests check

* exactness: without shuffling, and blocks a multiple of the batch size, the batches are the
  in-memory fit's, so the fit is that fit bit for bit; with shuffling, the three array kinds
  give the same fit, which is a plain NumPy reference built from the documented order (the
  block order, then each block's row order, drawn from ``np.random.default_rng(seed)`` after
  the initial weights) bit for bit;
* the estimators: memmap, zarr and dask agree with each other, and with one block and no
  shuffling with the in-memory fit; the errors for ``sample_weight`` and ``early_stopping``;
* a block holding NaN: the error names its rows, the weights are those of the last complete
  epoch;
* memory (slow, subprocesses): a fit over a ~300 MB memmap or zarr array on disk grows the
  process by a few blocks, not by the file.

Predictions are always made on in-memory copies of X (block-wise predict is not tested here).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastmlp
from fastmlp import DivergenceError, Model, _outofcore
from fastmlp._outofcore import RowBlocks, is_out_of_core
from fastmlp._params import glorot_uniform

NEEDS_DASK_EXTRA = "needs the dask extra (zarr, dask): pip install 'fastmlp[dask]'"

KINDS = ("memmap", "zarr", "dask")
ignore_convergence = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# -- data and sources ----------------------------------------------------------------------------
def _data(n=240, n_features=7, n_classes=3, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)).astype(dtype)
    y = rng.integers(0, n_classes, n)
    return X, y


def _source(kind, X, block_rows, tmp_path, name="X"):
    """``X`` as an out-of-core array of ``kind`` whose row chunks are ``block_rows``.

    A read-only memmap of an ``.npy`` file (its blocks are set by ``block_rows=`` at fit), an
    in-memory zarr array with chunks of ``block_rows`` rows, or a dask array with those chunks
    (``block_rows`` may be a tuple of chunk sizes for dask).
    """
    if kind == "memmap":
        path = tmp_path / f"{name}.npy"
        np.save(path, X)
        return np.load(path, mmap_mode="r")
    if kind == "zarr":
        zarr = pytest.importorskip("zarr", reason=NEEDS_DASK_EXTRA)
        return zarr.array(X, chunks=(block_rows, X.shape[1]))
    if kind == "dask":
        da = pytest.importorskip("dask.array", reason=NEEDS_DASK_EXTRA)
        return da.from_array(X, chunks=(block_rows, -1))
    raise ValueError(kind)


def _fit_kwargs(optimizer, **more):
    lr = 0.05 if optimizer == "sgd" else 0.01
    return {"batch_size": 8, "learning_rate": lr, "optimizer": optimizer, "progress": False,
            **more}


def _stream_orders(seed, layer_sizes, dtype, bounds, epochs, hidden="sigmoid"):
    """The rows of each epoch in the order ``stream_epoch`` visits them, drawn with NumPy.

    The model's generator is ``default_rng(seed)``; the initial weights are drawn from it first
    (returned, to check against the model's), then each epoch draws the block order
    (``permutation(n_blocks)``) and, for each block in that order, its row order
    (``permutation(rows in the block)``). Returns ``(theta0, [(order, blocks_in_order), ...])``.
    """
    rng = np.random.default_rng(seed)
    theta0 = glorot_uniform(layer_sizes, hidden, rng, np.dtype(dtype))
    epochs_out = []
    for _ in range(epochs):
        block_order = rng.permutation(len(bounds))
        parts = []
        for i in block_order:
            start, stop = bounds[i]
            parts.append(start + rng.permutation(stop - start))
        epochs_out.append((np.concatenate(parts), parts))
    return theta0, epochs_out


# -- which arrays are read in blocks, and their blocks -------------------------------------------
def test_is_out_of_core_and_default_blocks(tmp_path, monkeypatch):
    zarr = pytest.importorskip("zarr", reason=NEEDS_DASK_EXTRA)
    da = pytest.importorskip("dask.array", reason=NEEDS_DASK_EXTRA)
    X, _ = _data(100, 5)
    mm = _source("memmap", X, None, tmp_path)
    assert is_out_of_core(mm)
    assert not is_out_of_core(X)
    assert not is_out_of_core(np.asarray(mm))
    assert not is_out_of_core([[1.0, 2.0]])
    z = zarr.array(X, chunks=(30, 5))
    d = da.from_array(X, chunks=((40, 10, 50), (5,)))
    assert is_out_of_core(z) and is_out_of_core(d)
    # zarr: its row chunks; dask: each row chunk, even unequal ones
    assert RowBlocks(z).bounds == [(0, 30), (30, 60), (60, 90), (90, 100)]
    assert RowBlocks(d).bounds == [(0, 40), (40, 50), (50, 100)]
    # block_rows wins over the chunks
    assert RowBlocks(d, block_rows=60).bounds == [(0, 60), (60, 100)]
    # a memmap: BLOCK_BYTES of whole rows (read when the blocks are made)
    monkeypatch.setattr(_outofcore, "BLOCK_BYTES", 8 * 5 * 35 + 7)
    assert RowBlocks(mm).bounds == [(0, 35), (35, 70), (70, 100)]
    monkeypatch.setattr(_outofcore, "BLOCK_BYTES", 1)  # less than a row: one row per block
    assert len(RowBlocks(mm)) == 100
    with pytest.raises(ValueError, match="block_rows must be >= 1"):
        RowBlocks(mm, block_rows=0)
    with pytest.raises(ValueError, match="2-D"):
        RowBlocks(zarr.array(np.zeros(10), chunks=(5,)))
    with pytest.raises(TypeError, match="real numbers"):
        RowBlocks(zarr.array(np.zeros((4, 2), dtype=complex), chunks=(2, 2)))


# -- exactness -----------------------------------------------------------------------------------
DTYPES = [  # (dtype of the stored X, dtype of the model)
    pytest.param("float64", "float64", id="f64"),
    pytest.param("float32", "float32", id="f32"),
    pytest.param("float64", "float32", id="f64-data-f32-model"),
]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("x_dtype,dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_unshuffled_stream_equals_in_memory_fit(tmp_path, kind, x_dtype, dtype, optimizer):
    X, y = _data(240, 7, dtype=x_dtype)
    kw = _fit_kwargs(optimizer, epochs=3, shuffle=False, momentum=0.5 * (optimizer == "sgd"),
                     l2=1e-3)
    ref = Model([7, 5, 3], dtype=dtype, seed=1)
    h_ref = ref.fit(X, y, **kw)
    model = Model([7, 5, 3], dtype=dtype, seed=1)
    # 6 blocks of 40 rows, 5 batches of 8 each: the batches of the in-memory epoch
    h = model.fit(_source(kind, X, 40, tmp_path), y, block_rows=40, **kw)
    assert_array_equal(model._theta, ref._theta)
    assert model._theta.dtype == np.dtype(dtype)
    assert h.loss == h_ref.loss
    assert h.accuracy == h_ref.accuracy
    assert_array_equal(model.predict_proba(X), ref.predict_proba(X))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_shuffled_stream_is_the_documented_order(tmp_path, dtype, optimizer):
    n, block, epochs, seed = 240, 40, 3, 7
    X, y = _data(n, 7, dtype=dtype)
    kw = _fit_kwargs(optimizer, shuffle=True)
    fits = {}
    for kind in KINDS:
        model = Model([7, 5, 3], dtype=dtype, seed=seed)
        theta0 = model._theta.copy()
        source = _source(kind, X, block, tmp_path)
        hist = model.fit(source, y, epochs=epochs,
                         block_rows=block if kind == "memmap" else None, **kw)
        fits[kind] = (model._theta.copy(), hist)
    for kind in KINDS[1:]:
        assert_array_equal(fits[kind][0], fits["memmap"][0], err_msg=kind)
        assert fits[kind][1].loss == fits["memmap"][1].loss, kind
        assert fits[kind][1].accuracy == fits["memmap"][1].accuracy, kind
    bounds = [(a, a + block) for a in range(0, n, block)]
    ref_theta0, orders = _stream_orders(seed, [7, 5, 3], dtype, bounds, epochs)
    assert_array_equal(ref_theta0, theta0)  # the generator is where the stream found it
    # every block is a whole number of batches, so the epochs' orders, concatenated, trained
    # in file order by one in-memory fit (one optimizer state throughout, as in the stream),
    # are the stream's batches in the stream's order
    rows = np.concatenate([order for order, _ in orders])
    ref = Model([7, 5, 3], dtype=dtype, seed=seed)
    ref.fit(X[rows], y[rows], epochs=1, **{**kw, "shuffle": False})
    assert_array_equal(fits["memmap"][0], ref._theta)
    assert not np.array_equal(fits["memmap"][0], theta0)
    # one epoch: the cost and accuracy of the stream's first epoch are the reference's
    first = Model([7, 5, 3], dtype=dtype, seed=seed)
    h1 = first.fit(X[orders[0][0]], y[orders[0][0]], epochs=1, **{**kw, "shuffle": False})
    again = Model([7, 5, 3], dtype=dtype, seed=seed)
    h2 = again.fit(_source("zarr", X, block, tmp_path), y, epochs=1, **kw)
    assert h2.loss == h1.loss
    assert h2.accuracy == h1.accuracy
    assert_array_equal(again._theta, first._theta)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_ragged_blocks_end_in_a_short_batch(tmp_path, dtype, shuffle):
    # 230 rows in blocks of 45 (the last 5), batch 8: every block ends in a short batch of
    # its own; a dask array with unequal chunks too. Plain SGD keeps no state between
    # batches, so fitting block after block (each its own fit) in the stream's order is the
    # stream, bit for bit.
    n, seed, epochs = 230, 3, 2
    X, y = _data(n, 6, dtype=dtype)
    kw = _fit_kwargs("sgd", shuffle=shuffle)
    cases = {"memmap": 45, "zarr": 45, "dask": 45, "dask-unequal": (60, 25, 90, 55)}
    for name, chunks in cases.items():
        kind = name.split("-")[0]
        model = Model([6, 4, 3], dtype=dtype, seed=seed)
        hist = model.fit(_source(kind, X, chunks, tmp_path, name=name), y, epochs=epochs,
                         block_rows=chunks if kind == "memmap" else None, **kw)
        edges = np.cumsum((0, *chunks)) if isinstance(chunks, tuple) else [
            *range(0, n, chunks), n]
        bounds = list(zip(edges[:-1], edges[1:], strict=False))
        if shuffle:
            _, orders = _stream_orders(seed, [6, 4, 3], dtype, bounds, epochs)
        else:
            orders = [(None, [np.arange(a, b) for a, b in bounds])] * epochs
        ref = Model([6, 4, 3], dtype=dtype, seed=seed)
        losses = []
        for _, parts in orders:
            total = 0.0
            for rows in parts:
                h = ref.fit(X[rows], y[rows], epochs=1, **{**kw, "shuffle": False})
                total += h.loss[0] * len(rows)
            losses.append(total / n)
        assert_array_equal(model._theta, ref._theta, err_msg=name)
        np.testing.assert_allclose(hist.loss, losses, rtol=1e-12, err_msg=name)


def test_regression_model_and_validation_data(tmp_path):
    X, _ = _data(200, 5)
    y = X @ np.arange(1.0, 6.0) / 10
    kw = {"epochs": 2, "batch_size": 10, "learning_rate": 0.01, "optimizer": "adam",
          "shuffle": False, "progress": False, "validation_data": (X[:50], y[:50])}
    ref = Model([5, 4, 1], output="identity", dtype="float64", seed=0)
    h_ref = ref.fit(X, y, **kw)
    for kind in KINDS:
        model = Model([5, 4, 1], output="identity", dtype="float64", seed=0)
        h = model.fit(_source(kind, X, 50, tmp_path), y, block_rows=50, **kw)
        assert_array_equal(model._theta, ref._theta, err_msg=kind)
        assert (h.loss, h.val_loss, h.val_rmse, h.val_r2) == (
            h_ref.loss, h_ref.val_loss, h_ref.val_rmse, h_ref.val_r2)


def test_progress_bar_changes_nothing(tmp_path, capsys):
    X, y = _data(120, 4)
    mm = _source("memmap", X, None, tmp_path)
    quiet, shown = Model([4, 3, 3], seed=2), Model([4, 3, 3], seed=2)
    quiet.fit(mm, y, epochs=2, block_rows=40, **_fit_kwargs("sgd"))
    shown.fit(mm, y, epochs=2, block_rows=40, **_fit_kwargs("sgd", progress=True))
    assert_array_equal(quiet._theta, shown._theta)
    assert "epoch 2/2" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["c", "r+"])
def test_writable_memmap_keeps_its_changes(tmp_path, mode):
    # only a read-only mapping's pages are released after a block is read: a copy-on-write
    # ("c") mapping's changed pages are the only copy of the change, and every epoch must see
    # the changed values, not the file's
    X, y = _data(120, 4)
    changed = X[::-1] * 2
    path = tmp_path / "X.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode=mode)
    mm[:] = changed
    ref, model = Model([4, 3, 3], seed=2), Model([4, 3, 3], seed=2)
    ref.fit(changed, y, epochs=3, **_fit_kwargs("sgd", shuffle=False))
    model.fit(mm, y, epochs=3, block_rows=24, **_fit_kwargs("sgd", shuffle=False))
    assert_array_equal(model._theta, ref._theta)
    assert_array_equal(mm, changed)


def test_read_only_memmap_reads_the_same_after_its_pages_are_released(tmp_path):
    X, y = _data(3000, 50)  # 1.2 MB: blocks of several pages, not aligned to pages
    mm = _source("memmap", X, None, tmp_path)
    model = Model([50, 4, 3], seed=0)
    model.fit(mm, y, epochs=2, block_rows=333, **_fit_kwargs("sgd"))
    assert_array_equal(mm, X)  # the file's values, read again after MADV_DONTNEED
    assert np.isfinite(model._theta).all()


def test_bad_inputs_change_nothing(tmp_path):
    X, y = _data(60, 4)
    mm = _source("memmap", X, None, tmp_path)
    model = Model([5, 3, 3], seed=0)
    with pytest.raises(ValueError, match="X has 4 features, but the model expects 5"):
        model.fit(mm, y, epochs=1, block_rows=20, **_fit_kwargs("sgd"))
    model = Model([4, 3, 3], seed=0)
    before = model._theta.copy()
    with pytest.raises(ValueError):
        model.fit(mm, y[:-1], epochs=1, block_rows=20, **_fit_kwargs("sgd"))
    with pytest.raises(ValueError, match="block_rows must be >= 1"):
        model.fit(mm, y, epochs=1, block_rows=0, **_fit_kwargs("sgd"))
    assert_array_equal(model._theta, before)


# -- a block that is not finite ------------------------------------------------------------------
@pytest.mark.parametrize("bad_row", [5, 57, 239])  # the first, a middle and the last block
@pytest.mark.parametrize("kind", KINDS)
def test_nan_block_in_first_epoch(tmp_path, kind, bad_row):
    X, y = _data(240, 7)
    X[bad_row, 2] = np.nan
    start = bad_row // 20 * 20
    model = Model([7, 5, 3], seed=1)
    before = model._theta.copy()
    msg = rf"the block of X rows {start}\.\.{start + 19} .*NaN or infinity \(first at row " \
          rf"{bad_row - start}, column 2\)"
    with pytest.raises(ValueError, match=msg):
        model.fit(_source(kind, X, 20, tmp_path), y, epochs=3,
                  block_rows=20 if kind == "memmap" else None, **_fit_kwargs("adam"))
    assert_array_equal(model._theta, before)
    assert model.history.epochs == 0


@pytest.mark.parametrize("kind", ["memmap", "zarr"])
def test_nan_block_after_two_epochs_restores_the_second(tmp_path, kind):
    X, y = _data(240, 7)
    if kind == "memmap":
        path = tmp_path / "X.npy"
        np.save(path, X)
        source = np.load(path, mmap_mode="r+")
    else:
        source = _source(kind, X, 20, tmp_path)
    kept = {}

    class SpoilAfterTwo:
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:  # the data goes bad once two epochs are done
                kept["theta"] = model._theta.copy()
                source[130, 0] = np.inf

    model = Model([7, 5, 3], seed=1)
    with pytest.raises(ValueError, match=r"the block of X rows 120\.\.139 .*row 10, column 0"):
        model.fit(source, y, epochs=5, block_rows=20, callbacks=[SpoilAfterTwo()],
                  **_fit_kwargs("sgd", momentum=0.9))
    assert model.history.epochs == 2
    assert_array_equal(model._theta, kept["theta"])
    # the same two epochs on good data give those weights
    ref = Model([7, 5, 3], seed=1)
    ref.fit(_source("dask", X, 20, tmp_path), y, epochs=2, **_fit_kwargs("sgd", momentum=0.9))
    assert_array_equal(model._theta, ref._theta)


@pytest.mark.parametrize("kind", KINDS)
def test_divergence_stops_the_stream_as_in_memory(tmp_path, kind):
    X, _ = _data(240, 7)
    y = X @ np.arange(7.0) * 10
    kw = {"epochs": 3, "batch_size": 8, "learning_rate": 0.2, "shuffle": False,
          "progress": False}
    ref = Model([7, 5, 1], output="identity", hidden_activation="relu", seed=0)
    before = ref._theta.copy()
    with pytest.raises(DivergenceError) as expected:
        ref.fit(X, y, **kw)
    model = Model([7, 5, 1], output="identity", hidden_activation="relu", seed=0)
    with pytest.raises(DivergenceError) as got:
        model.fit(_source(kind, X, 40, tmp_path), y, block_rows=40, **kw)
    assert str(got.value) == str(expected.value)
    assert_array_equal(model._theta, before)
    assert model.history.epochs == ref.history.epochs == 0


def test_value_beyond_float32_names_the_block(tmp_path):
    X, y = _data(100, 3)
    X[71, 1] = 1e300
    model = Model([3, 2, 3], dtype="float32", seed=0)
    before = model._theta.copy()
    with pytest.raises(ValueError, match=r"the block of X rows 60\.\.79 .*beyond the range"):
        model.fit(_source("memmap", X, None, tmp_path), y, epochs=1, block_rows=20,
                  **_fit_kwargs("sgd"))
    assert_array_equal(model._theta, before)


# -- the scikit-learn estimators -----------------------------------------------------------------
def _estimator(name, solver, **params):
    cls = fastmlp.MLPClassifier if name == "classifier" else fastmlp.MLPRegressor
    lr = 0.05 if solver == "sgd" else 0.01
    return cls(hidden_layer_sizes=(5,), solver=solver, batch_size=8, learning_rate_init=lr,
               random_state=0, tol=0.0, n_iter_no_change=100, **params)


def _targets(name, X):
    if name == "classifier":
        return np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    return X[:, :2] @ np.array([[1.0, 0.5], [-0.5, 1.0]])


def _fitted_state(est):
    return ([c.copy() for c in est.coefs_], [b.copy() for b in est.intercepts_],
            list(est.loss_curve_), est.n_iter_, est.t_)


def _assert_same_state(a, b, what):
    for x, y in zip(a[0] + a[1], b[0] + b[1], strict=True):
        assert_array_equal(x, y, err_msg=what)
    assert a[2:] == b[2:], what


def _sources_with_blocks(X, block, tmp_path, monkeypatch):
    """memmap, zarr and dask sources of ``X`` read in blocks of ``block`` rows (the memmap's by
    ``BLOCK_BYTES``: the estimators take no ``block_rows``)."""
    monkeypatch.setattr(_outofcore, "BLOCK_BYTES", block * X.dtype.itemsize * X.shape[1])
    return {kind: _source(kind, X, block, tmp_path) for kind in KINDS}


@ignore_convergence
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("name", ["classifier", "regressor"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_estimator_sources_agree(tmp_path, monkeypatch, name, solver, dtype):
    X, _ = _data(240, 6, dtype=dtype)
    y = _targets(name, X)
    sources = _sources_with_blocks(X, 40, tmp_path, monkeypatch)
    states = {}
    for kind, source in sources.items():
        est = _estimator(name, solver, max_iter=3).fit(source, y)
        assert est.coefs_[0].dtype == np.dtype(dtype)
        assert est.n_features_in_ == 6
        pred = est.predict(X)
        assert pred.shape == y.shape
        partial = _estimator(name, solver)
        extra = {"classes": np.unique(y)} if name == "classifier" else {}
        partial.partial_fit(source, y, **extra)
        partial.partial_fit(source, y)
        states[kind] = (_fitted_state(est), _fitted_state(partial), pred)
    for kind in KINDS[1:]:
        _assert_same_state(states[kind][0], states["memmap"][0], f"fit {kind}")
        _assert_same_state(states[kind][1], states["memmap"][1], f"partial_fit {kind}")
        assert_array_equal(states[kind][2], states["memmap"][2])
    in_memory = _estimator(name, solver, max_iter=3).fit(X, y)
    # shuffled by blocks: not the in-memory order (else this test checks nothing)
    assert not np.array_equal(in_memory.coefs_[0], states["memmap"][0][0][0])


@ignore_convergence
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("name", ["classifier", "regressor"])
@pytest.mark.parametrize("kind", KINDS)
def test_estimator_one_block_unshuffled_equals_in_memory(tmp_path, monkeypatch, kind, name,
                                                         solver):
    X, _ = _data(240, 6)
    y = _targets(name, X)
    source = _sources_with_blocks(X, 240, tmp_path, monkeypatch)[kind]
    assert len(RowBlocks(source)) == 1
    ref = _estimator(name, solver, max_iter=3, shuffle=False).fit(X, y)
    est = _estimator(name, solver, max_iter=3, shuffle=False).fit(source, y)
    _assert_same_state(_fitted_state(est), _fitted_state(ref), "fit")
    assert_array_equal(est.predict(X), ref.predict(X))
    if name == "classifier":
        assert_array_equal(est.classes_, ref.classes_)
        assert_array_equal(est.predict_proba(X), ref.predict_proba(X))
    extra = {"classes": np.unique(y)} if name == "classifier" else {}
    ref = _estimator(name, solver, shuffle=False).partial_fit(X, y, **extra)
    est = _estimator(name, solver, shuffle=False).partial_fit(source, y, **extra)
    ref.partial_fit(X[:100], y[:100])  # and on after an in-memory call
    est.partial_fit(X[:100], y[:100])
    _assert_same_state(_fitted_state(est), _fitted_state(ref), "partial_fit")


@pytest.mark.parametrize("kind", KINDS)
def test_estimator_refuses_sample_weight_and_early_stopping(tmp_path, kind):
    X, _ = _data(100, 4)
    y = _targets("classifier", X)
    source = _source(kind, X, 50, tmp_path)
    with pytest.raises(ValueError, match="sample_weight is not supported for an X read in "
                                         "blocks"):
        _estimator("classifier", "adam", max_iter=2).fit(source, y, sample_weight=np.ones(100))
    with pytest.raises(ValueError, match="sample_weight is not supported"):
        _estimator("regressor", "sgd").partial_fit(source, X[:, 0], sample_weight=np.ones(100))
    for name, target in (("classifier", y), ("regressor", X[:, 0])):
        est = _estimator(name, "sgd", max_iter=2, early_stopping=True)
        with pytest.raises(ValueError, match="early_stopping holds out a validation split"):
            est.fit(source, target)
        assert not hasattr(est, "coefs_")


@ignore_convergence
def test_estimator_lbfgs_on_memmap_is_the_in_memory_fit(tmp_path):
    X, _ = _data(150, 5)
    y = _targets("classifier", X)
    mm = _source("memmap", X, None, tmp_path)
    ref = fastmlp.MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=15,
                                random_state=0).fit(X, y)
    est = fastmlp.MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=15,
                                random_state=0).fit(mm, y)
    for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_estimator_nan_block_leaves_it_as_it_was(tmp_path, monkeypatch, kind):
    X, _ = _data(200, 4)
    y = _targets("classifier", X)
    est = _estimator("classifier", "adam").partial_fit(X, y, classes=np.unique(y))
    before = _fitted_state(est)
    bad = X.copy()
    bad[150, 3] = np.nan
    with pytest.raises(ValueError, match=r"the block of X rows 150\.\.199 .*row 0, column 3"):
        est.partial_fit(_sources_with_blocks(bad, 50, tmp_path, monkeypatch)[kind], y)
    _assert_same_state(_fitted_state(est), before, "after the error")


# -- memory --------------------------------------------------------------------------------------
# The data is written by one process, and the fit measured in another that never held it. The
# peak is VmHWM, reset after the warm-up through /proc/self/clear_refs: ru_maxrss cannot be
# reset, and a subprocess's starts at its parent's (pytest's) RSS, which could hide the growth.
_WRITE = textwrap.dedent("""
    import sys
    import numpy as np
    kind, path, n, f, chunk = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    rng = np.random.default_rng(0)
    if kind == "memmap":
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, f))
    else:
        import zarr
        # open_array, not zarr 3's create_array: zarr 2 (all Python 3.10 gets) has it too
        out = zarr.open_array(path, mode="w", shape=(n, f), chunks=(chunk, f), dtype="float32")
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        out[a:b] = rng.random((b - a, f), dtype=np.float32)
    if kind == "memmap":
        out.flush()
    np.save(path + ".y.npy", rng.integers(0, 10, n))
""")

_MEASURE = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    what, path, block = sys.argv[1], sys.argv[2], int(sys.argv[3])
    kind = what.split("-")[0]
    import fastmlp
    from fastmlp import Model, _outofcore

    def status(key):
        with open("/proc/self/status") as status_file:
            for line in status_file:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return None

    if kind == "memmap":
        X = np.load(path, mmap_mode="r")
    else:
        import zarr
        X = zarr.open_array(path, mode="r")
    y = np.load(path + ".y.npy")
    n, f = X.shape
    if what == "memmap-no-release":  # the measurement must see the file's pages
        _outofcore._release_pages = lambda rows: None
    # warm up (compile, start the threads) on a small array of the same kind, 4 blocks of 64
    if kind == "memmap":
        warm = np.load(path, mmap_mode="r")[:256]
    else:
        warm = zarr.array(np.asarray(X[:256]), chunks=(64, f))
    Model([f, 16, 10], dtype="float32", seed=0).fit(
        warm, y[:256], epochs=1, batch_size=64, learning_rate=0.01, progress=False)
    if what == "memmap-sklearn":
        clf = fastmlp.MLPClassifier(hidden_layer_sizes=(16,), solver="sgd", batch_size=64,
                                    max_iter=1, random_state=0)
        clf.partial_fit(warm, y[:256], classes=np.arange(10))
    del warm
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        reset = True
    except OSError:
        reset = False
    rss0 = status("VmRSS")
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if what == "zarr-read":  # zarr's own share: every chunk read on a thread, two held
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(1) as reader:
            pending = reader.submit(lambda: np.asarray(X[0:block]))
            for a in range(block, n + block, block):
                rows = pending.result()
                if a < n:
                    pending = reader.submit(lambda a=a: np.asarray(X[a:a + block]))
                rows.sum()
        finite = True
    elif what == "memmap-sklearn":  # blocks of `block` rows by FASTMLP_BLOCK_BYTES
        clf.partial_fit(X, y)
        finite = bool(np.isfinite(clf.coefs_[0]).all())
    else:
        model = Model([f, 16, 10], dtype="float32", seed=0)
        model.fit(X, y, epochs=1, batch_size=64, learning_rate=0.01, progress=False,
                  block_rows=block)
        finite = bool(np.isfinite(model._theta).all())
    out = {"rss0": rss0, "hwm": status("VmHWM"), "reset": reset, "maxrss0": maxrss0,
           "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
           "finite": finite}
    print(json.dumps(out))
""")

_N, _F, _BLOCK = 150_000, 500, 8_000  # float32: 300 MB (286 MiB) in blocks of 16 MB


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    """``{"memmap": path, "zarr": path}``: the data on disk, written by a child process."""
    folder = tmp_path_factory.mktemp("outofcore-big")
    paths = {}

    def make(kind):
        if kind not in paths:
            path = str(folder / ("X.npy" if kind == "memmap" else "X.zarr"))
            subprocess.run([sys.executable, "-c", _WRITE, kind, path, str(_N), str(_F),
                            str(_BLOCK)], check=True, timeout=300)
            paths[kind] = path
        return paths[kind]

    return make


def _growth(what, path):
    """Bytes the measured call added to the peak RSS of a fresh process, and its record."""
    env = {**os.environ, "PYTHONWARNINGS": "error",
           "FASTMLP_BLOCK_BYTES": str(_BLOCK * _F * 4)}  # the estimator's memmap blocks
    proc = subprocess.run([sys.executable, "-c", _MEASURE, what, path, str(_BLOCK)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["finite"]
    if out["reset"]:
        return out["hwm"] - out["rss0"], out
    # no clear_refs: ru_maxrss, which cannot be reset (an upper bound of the growth)
    return out["maxrss"] - min(out["maxrss0"], out["rss0"]), out


_FILE_BYTES = _N * _F * 4
_BLOCK_BYTES = _BLOCK * _F * 4
_LIMIT = 6 * _BLOCK_BYTES + _N * 10 * 4 + (32 << 20)  # 6 blocks + the one-hot Y + 32 MB


@pytest.mark.slow
@pytest.mark.parametrize("what", ["memmap", "memmap-sklearn"])
def test_peak_memory_memmap_is_blocks_not_the_file(big_files, what):
    growth, out = _growth(what, big_files("memmap"))
    detail = f"{what}: grew by {growth / 2**20:.0f} MiB (limit {_LIMIT / 2**20:.0f} MiB): {out}"
    assert growth < _LIMIT, detail
    assert growth < _FILE_BYTES / 3, detail
    if what == "memmap":  # the measurement sees the file's pages when they are not released
        unreleased, out = _growth("memmap-no-release", big_files("memmap"))
        assert unreleased > _FILE_BYTES * 0.8, f"without the release: {unreleased}, {out}"


@pytest.mark.slow
def test_peak_memory_zarr_is_blocks_not_the_file(big_files):
    # Reading a zarr array chunk by chunk on a thread, without fastmlp, already grows a
    # process by 100-130 MiB here (zarr's compressed and decoded buffers, kept by glibc's
    # per-thread arenas; it does not grow with more chunks or epochs): the limit is fastmlp's
    # share on top of that: the block being trained, its copies, the one-hot Y and 32 MB (4
    # blocks: both measures vary by +-25 MiB from run to run; fastmlp measured 0-60 MiB above
    # the reading alone).
    path = big_files("zarr")
    zarr_only, out_zarr = _growth("zarr-read", path)
    growth, out = _growth("zarr", path)
    detail = (f"zarr: grew by {growth / 2**20:.0f} MiB, reading alone by "
              f"{zarr_only / 2**20:.0f} MiB: {out} {out_zarr}")
    assert growth - zarr_only < 4 * _BLOCK_BYTES + _N * 10 * 4 + (32 << 20), detail
    assert growth < _FILE_BYTES / 2, detail


# -- found by review ---------------------------------------------------------------------------
def test_dask_chunks_of_unknown_size_get_a_clear_error():
    da = pytest.importorskip("dask.array", reason=NEEDS_DASK_EXTRA)
    X = da.from_array(np.random.default_rng(0).random((100, 4)), chunks=(30, -1))
    X = X[X[:, 0] > -1]  # boolean indexing: the chunk sizes are unknown
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        Model([4, 3, 3], seed=0).fit(X, np.arange(100) % 3, epochs=1, batch_size=8,
                                     learning_rate=0.1, progress=False)


def test_block_rows_is_checked_for_any_x():
    X, y = np.random.default_rng(0).random((20, 4)), np.arange(20) % 3
    with pytest.raises(ValueError, match="block_rows"):
        Model([4, 3, 3]).fit(X, y, epochs=1, batch_size=8, learning_rate=0.1,
                             block_rows=-5, progress=False)


def test_a_sharded_zarr_array_is_read_a_shard_at_a_time(tmp_path):
    zarr = pytest.importorskip("zarr", reason=NEEDS_DASK_EXTRA)
    if not hasattr(zarr, "create_array"):
        pytest.skip("shards are zarr 3's (Python >= 3.11); this zarr is " + zarr.__version__)
    z = zarr.create_array(tmp_path / "s.zarr", shape=(100, 4), chunks=(10, 4),
                          shards=(50, 4), dtype="float64")
    assert _outofcore.RowBlocks(z).bounds == [(0, 50), (50, 100)]


def test_memmap_blocks_reuse_two_buffers(tmp_path):
    X = np.arange(60.0).reshape(30, 2)
    np.save(tmp_path / "x.npy", X)
    blocks = _outofcore.RowBlocks(np.load(tmp_path / "x.npy", mmap_mode="r"), block_rows=10)
    first, second, third = blocks.read(0), blocks.read(1), blocks.read(2)
    assert np.shares_memory(first, third) and not np.shares_memory(first, second)
    np.testing.assert_array_equal(second, X[10:20])
    np.testing.assert_array_equal(third, X[20:30])
