"""Training out of core (issue 12): one epoch from a memmap, a zarr and a dask array.

Fashion-MNIST's 60000 training rows (784 float32 pixels / 255), one epoch of
``fastmlp.Model([784, 100, 10], dtype="float32")``, SGD, batch 32, learning rate 0.1, with X:

- ``in-memory``: the C-contiguous ndarray (the reference);
- ``memmap``: ``np.load(path, mmap_mode="r")`` of an ``.npy`` copy, the file in the page cache
  (read once before the timing); blocks of ``BLOCK_BYTES`` (64 MiB: 3 blocks), the default;
- ``zarr``: a zarr array on disk, chunks of 8192 rows, zarr's default compressor; one block
  per chunk (8 blocks);
- ``dask``: ``dask.array.from_array(memmap, chunks=(8192, 784))``; one block per chunk;
- ``memmap-8192``: the memmap again, ``block_rows=8192`` (8 blocks, as zarr's and dask's):
  how much of the memmap's cost is its default's few large blocks (the first block's read is
  not hidden behind training).

Each is an ``epoch`` row of its own (``Model.fit(X, y, epochs=1)``, the same model trained on,
one warm-up epoch first: compilation, the page cache, zarr's codecs), and its
``extra_info["ratio_vs_in_memory"]`` is the in-memory row's median over its own, from the same
run: the share of the in-memory speed (issue 12's target for the memmap: >= 0.8). The rows run
one after another, so a change in the machine's load between them moves the ratios; the
``paired`` row measures them again with the sources taking turns in every round, which a slow
spell then hits alike, and keeps each source's median and ratio in its ``extra_info``.

Also ``fastmlp.MLPClassifier(hidden_layer_sizes=(100,), max_iter=1, random_state=0)`` (Adam,
batch "auto" = 200) ``fit`` from the memmap vs in memory.

Rounds: ``FASTMLP_BENCH_OOC_ROUNDS`` (default 7) per row, ``FASTMLP_BENCH_OOC_PAIRED_ROUNDS``
(default 7) for the paired row, enough for a stable median on a quiet machine. With
``--benchmark-disable`` (CI) every body runs once on the first ``FASTMLP_BENCH_SMOKE_ROWS`` rows
(files of that many rows), without warm-up. Skipped with the reason when Fashion-MNIST, zarr
or dask is missing.

Page cache: a file's pages can leave the page cache between rounds even on an idle machine
with free memory (a kernel that reclaims cold pages itself, e.g. a DAMON ``pageout`` scheme in
a VM): the next epoch then reads them from the disk. Each out-of-core row records in
``extra_info`` the file pages read back meanwhile (``/proc/vmstat``'s
``workingset_refault_file`` and ``pgmajfault``, over its timed rounds, all processes), so a
slow round can be told from a slow fit.

Run ``python -m pytest benchmarks/bench_outofcore.py --benchmark-only
--benchmark-columns=min,median,max,rounds``; the ratios are in ``--benchmark-json``'s
``extra_info``.
"""

import os
import statistics
import time
import warnings

import _benchlib as bl
import numpy as np
import pytest

#: Timed rounds of each epoch row (after one warm-up epoch).
ROUNDS = int(os.environ.get("FASTMLP_BENCH_OOC_ROUNDS", "7"))
#: Rounds of the paired row: each round trains one epoch from every source, in turn.
PAIRED_ROUNDS = int(os.environ.get("FASTMLP_BENCH_OOC_PAIRED_ROUNDS", "7"))
LAYERS = [784, 100, 10]
BATCH = 32
LEARNING_RATE = 0.1
CHUNK_ROWS = 8192
SOURCES = ("in-memory", "memmap", "memmap-8192", "zarr", "dask")

_DATA = {}  # rows -> {"X": ndarray, "y": ndarray, "npy": path, "zarr": path}
_MEDIANS = {}  # (group, source) -> median seconds of the row, this run


def _data(tmp_path_factory, rows):
    """Fashion-MNIST (its first ``rows`` rows; None: all) in memory, as an ``.npy`` file and as
    a zarr array on disk (chunks of ``CHUNK_ROWS`` rows), written once per session."""
    X, y = bl.dataset("fashion", "float32")  # skips when Fashion-MNIST is missing
    if rows not in _DATA:
        X_path, y_path = bl.fashion_npy(tmp_path_factory, "float32", rows)
        X, y = np.load(X_path), np.load(y_path)
        _DATA[rows] = {"X": X, "y": y, "npy": X_path, "zarr": None}
    return _DATA[rows]


def _zarr_path(tmp_path_factory, data):
    zarr = pytest.importorskip("zarr", reason="needs zarr (pip install '.[dask]')")
    if data["zarr"] is None:
        path = str(tmp_path_factory.mktemp("fashion-zarr") / "X.zarr")
        z = zarr.open_array(path, mode="w", shape=data["X"].shape, dtype="float32",
                            chunks=(CHUNK_ROWS, data["X"].shape[1]))
        z[:] = data["X"]
        data["zarr"] = path
    return data["zarr"]


def _read_into_page_cache(path):
    """Read every byte of a file once (not mapped: the process does not keep its pages)."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def _source(name, tmp_path_factory, data):
    """X as ``name`` gives it; each file is read once first, into the page cache."""
    if name == "in-memory":
        return data["X"]
    if name == "zarr":
        zarr = pytest.importorskip("zarr", reason="needs zarr (pip install '.[dask]')")
        path = _zarr_path(tmp_path_factory, data)
        for root, _, files in os.walk(path):
            for file in files:
                _read_into_page_cache(os.path.join(root, file))
        return zarr.open_array(path, mode="r")
    _read_into_page_cache(data["npy"])
    memmap = np.load(data["npy"], mmap_mode="r")
    if name.startswith("memmap"):
        return memmap
    da = pytest.importorskip("dask.array", reason="needs dask (pip install 'dask[array]')")
    return da.from_array(memmap, chunks=(CHUNK_ROWS, memmap.shape[1]))


def _blocks(X, block_rows=None):
    from fastmlp._outofcore import RowBlocks, is_out_of_core

    return len(RowBlocks(X, block_rows)) if is_out_of_core(X) else 1


def _block_rows(source):
    return CHUNK_ROWS if source == "memmap-8192" else None


def _epoch_body(X, y, block_rows=None):
    """``body()``: one ``Model.fit`` epoch from ``X``, continuing one model; returns the loss."""
    import fastmlp

    model = fastmlp.Model(LAYERS, dtype="float32", seed=0)

    def body():
        history = model.fit(X, y, epochs=1, batch_size=BATCH, learning_rate=LEARNING_RATE,
                            progress=False, block_rows=block_rows)
        return history.loss[-1]

    return body


def _vmstat():
    """``{name: count}`` of the file-page counters of ``/proc/vmstat`` (empty off Linux)."""
    try:
        with open("/proc/vmstat") as f:
            pairs = (line.split() for line in f)
            return {k: int(v) for k, v in pairs if k in ("workingset_refault_file",
                                                          "pgmajfault")}
    except OSError:
        return {}


def _time_rows(benchmark, body, rounds):
    """One warm-up call, then ``rounds`` timed ones; once, no warm-up, when disabled.

    Records the file pages read back from the disk during the timed rounds (see above).
    """
    if benchmark.disabled:
        return benchmark.pedantic(body, rounds=1, iterations=1)
    body()
    before = _vmstat()
    result = benchmark.pedantic(body, rounds=rounds, iterations=1, warmup_rounds=0)
    after = _vmstat()
    for name, count in before.items():
        benchmark.extra_info[name] = after[name] - count
    return result


def _record_ratio(benchmark, group, name, reference="in-memory"):
    """Keep this row's median; store the reference row's median over it (its relative speed)."""
    if benchmark.disabled or benchmark.stats is None:
        return
    median = benchmark.stats.stats.median
    _MEDIANS[group, name] = median
    benchmark.extra_info["median_s"] = median
    ref = _MEDIANS.get((group, reference))
    if ref is not None and name != reference:
        benchmark.extra_info["ratio_vs_in_memory"] = ref / median


@pytest.mark.parametrize("source", SOURCES)
def test_epoch(benchmark, tmp_path_factory, source):
    data = _data(tmp_path_factory, bl.smoke_rows(benchmark))
    X = _source(source, tmp_path_factory, data)
    n = X.shape[0]
    group = f"out of core: one epoch 784-100-10 float32 sgd b{BATCH} ({n} rows)"
    benchmark.group = group
    benchmark.extra_info.update(kind="outofcore-epoch", source=source, n_rows=n,
                                blocks=_blocks(X, _block_rows(source)), layer_sizes=LAYERS,
                                batch_size=BATCH,
                                solver="sgd", dtype="float32", threads=bl.N_THREADS)
    with bl.numba_threads(bl.N_THREADS):
        loss = _time_rows(benchmark, _epoch_body(X, data["y"], _block_rows(source)), ROUNDS)
    assert np.isfinite(loss)
    _record_ratio(benchmark, group, source)


def test_epoch_paired(benchmark, tmp_path_factory):
    """The sources taking turns, one epoch each per round; medians and ratios in
    ``extra_info``."""
    data = _data(tmp_path_factory, bl.smoke_rows(benchmark))
    sources = {name: _source(name, tmp_path_factory, data) for name in SOURCES}
    n = data["X"].shape[0]
    benchmark.group = f"out of core: the sources taking turns ({n} rows)"
    rounds = 1 if benchmark.disabled else PAIRED_ROUNDS
    benchmark.extra_info.update(kind="outofcore-paired", n_rows=n, rounds=rounds,
                                threads=bl.N_THREADS)
    bodies = {name: _epoch_body(X, data["y"], _block_rows(name)) for name, X in sources.items()}
    seconds = {name: [] for name in SOURCES}

    def body():
        if not benchmark.disabled:
            for name in SOURCES:  # warm-up
                bodies[name]()
        for _ in range(rounds):
            for name in SOURCES:
                start = time.perf_counter()
                loss = bodies[name]()
                seconds[name].append(time.perf_counter() - start)
                assert np.isfinite(loss)

    before = _vmstat()
    with bl.numba_threads(bl.N_THREADS):
        # one round: the row's time is all its epochs; what counts is in extra_info
        bl.time_calls(benchmark, body, rounds=1, warmup_rounds=0)
    after = _vmstat()
    for name, count in before.items():
        benchmark.extra_info[name] = after[name] - count
    ref = statistics.median(seconds["in-memory"])
    for name, values in seconds.items():
        benchmark.extra_info[f"{name}: seconds"] = values
        benchmark.extra_info[f"{name}: median"] = statistics.median(values)
        benchmark.extra_info[f"{name}: ratio_vs_in_memory"] = ref / statistics.median(values)


@pytest.mark.parametrize("source", ["in-memory", "memmap"])
def test_classifier_fit(benchmark, tmp_path_factory, source):
    """``fastmlp.MLPClassifier(hidden_layer_sizes=(100,), max_iter=1)`` (Adam) ``fit``."""
    import fastmlp

    data = _data(tmp_path_factory, bl.smoke_rows(benchmark))
    X = _source(source, tmp_path_factory, data)
    group = f"out of core: MLPClassifier(100,) adam max_iter=1 fit ({X.shape[0]} rows)"
    benchmark.group = group
    benchmark.extra_info.update(kind="outofcore-call", source=source, n_rows=X.shape[0],
                                blocks=_blocks(X), call="fit", solver="adam",
                                threads=bl.N_THREADS)

    def body():
        clf = fastmlp.MLPClassifier(hidden_layer_sizes=(100,), max_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: one epoch by design
            clf.fit(X, data["y"])
        return clf.loss_

    with bl.numba_threads(bl.N_THREADS):
        loss = _time_rows(benchmark, body, ROUNDS)
    assert np.isfinite(loss)
    _record_ratio(benchmark, group, source)
