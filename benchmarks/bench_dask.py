"""One L-BFGS fit on a Dask cluster against the same fit in process (issue 12).

The issue: "Measured: distributed L-BFGS on a 2-worker ``LocalCluster`` against the
in-process fit (time per iteration, and the share spent in communication)."

Data: 100000 x 100 float64 (Gaussian, 10 classes from a random linear map plus noise),
``fastmlp.MLPClassifier(solver="lbfgs", hidden_layer_sizes=(64,), max_iter=20,
random_state=0)``, ``n_iter_`` checked to be 20. Rows:

- ``in-process``: the fit on the NumPy array, in this process, on numba's default thread
  count (the engine's parallel loss-and-gradient);
- ``distributed-<k>blocks``: the fit on the dask array of the same rows in ``k`` row blocks
  (2: one per worker; 8), scattered to a ``LocalCluster`` of 2 worker processes with 1 thread
  each (round robin) before the timing: the data lives on the workers, as when loaded there.
  The client is in this process. The timed fit includes checking the blocks on the workers.

Each row's time is the whole ``fit``; ``extra_info`` has ``s_per_iteration`` (fit time /
``n_iter_``) and, for the distributed rows, per loss-and-gradient evaluation (from
``fastmlp.sklearn._distributed.timings``): ``wall_s`` (the client's wait, from sending
``theta`` to the summed gradient), ``kernel_s`` (the slowest worker's seconds in the compiled
kernel, the critical path of the computation), and ``outside_share`` = 1 - kernel_s / wall_s
summed over the fit's evaluations: the share of each evaluation spent outside the workers'
kernel (scheduling, sending ``theta`` and the gradients, the reduction, the client's L2 term).
``setup_s`` is the fit's time outside its evaluations (block checks, validation, scipy).

``test_client_side`` (issue 26): the client's side as the rows grow, 0.5, 2 and 4 M rows made
on the workers, by ``tests/client_memory.py`` in a fresh client process (see there): the
client's peak-RSS growth during the fit, its CPU time per evaluation and in the setup, and
its wait per evaluation, in ``extra_info``; the time is the whole script's.

Timing: warm-up fits of 1 iteration (compiles the kernels, in the workers too) and 2 (estimates
the fit), then ``_benchlib.budget_rounds`` timed fits, the best reported. With
``--benchmark-disable`` each body runs once on ``FASTMLP_BENCH_SMOKE_ROWS`` rows. Skipped when
the ``dask`` extra is missing. The machine's other load shows in every row: check it before.
"""

import json
import os
import subprocess
import sys
import time
import warnings

import _benchlib as bl
import numpy as np
import pytest

N_ROWS, N_FEATURES, N_CLASSES = 100_000, 100, 10
HIDDEN = (64,)
MAX_ITER = 20
BLOCKS = (2, 8)
OPTIONS = dict(solver="lbfgs", hidden_layer_sizes=HIDDEN, max_iter=MAX_ITER, random_state=0)

_DATA = {}


def data(rows):
    """The benchmark's ``(X, y)``: its first ``rows`` rows (None: all); the same rows either way."""
    rows = N_ROWS if rows is None else min(rows, N_ROWS)
    if rows not in _DATA:
        rng = np.random.default_rng(0)
        W = rng.standard_normal((N_FEATURES, N_CLASSES))
        X = rng.standard_normal((rows, N_FEATURES))  # row-major draws: a prefix of all rows'
        noise = np.random.default_rng(1).standard_normal((rows, N_CLASSES))
        _DATA[rows] = X, (X @ W + noise).argmax(axis=1)
    return _DATA[rows]


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed", reason="needs the dask extra: pip install '.[dask]'")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def _fit(X, y, **more):
    from sklearn.exceptions import ConvergenceWarning

    from fastmlp import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 20 iterations do not converge
        return MLPClassifier(**{**OPTIONS, **more}).fit(X, y)


def _timed(benchmark, body):
    """Time ``body`` (a whole fit): a 2-iteration warm-up estimates it, then the rounds."""
    if benchmark.disabled:
        return benchmark.pedantic(body, rounds=1, iterations=1)
    body(max_iter=1)  # compiles (here and in the workers)
    start = time.perf_counter()
    body(max_iter=2)  # estimates the fit
    estimate = (time.perf_counter() - start) * MAX_ITER / 2
    benchmark.extra_info["estimated_s"] = estimate
    return benchmark.pedantic(body, rounds=bl.budget_rounds(estimate), iterations=1,
                              warmup_rounds=0)


def _info(benchmark, impl, X, **more):
    benchmark.group = f"dask: L-BFGS {X.shape[0]}x{X.shape[1]} float64, hidden {HIDDEN}"
    benchmark.extra_info.update(kind="dask", impl=impl, n_samples=X.shape[0],
                                layer_sizes=[X.shape[1], *HIDDEN, N_CLASSES],
                                max_iter=MAX_ITER, **more)


def test_in_process(benchmark):
    X, y = data(bl.smoke_rows(benchmark))
    _info(benchmark, "in-process", X, threads=bl.N_THREADS)
    runs = []

    def body(**more):
        start = time.perf_counter()
        clf = _fit(X, y, **more)
        runs.append((time.perf_counter() - start, clf.n_iter_))
        return clf

    with bl.numba_threads(bl.N_THREADS):
        clf = _timed(benchmark, body)
    assert clf.n_iter_ == MAX_ITER and np.isfinite(clf.loss_)
    total, n_iter = min(runs if benchmark.disabled else runs[2:])  # not the warm-ups
    benchmark.extra_info.update(s_per_iteration=total / n_iter)


@pytest.mark.parametrize("blocks", BLOCKS)
def test_distributed(benchmark, client, blocks):
    import dask.array as da
    from distributed import wait

    from fastmlp.sklearn import _distributed

    X, y = data(bl.smoke_rows(benchmark))
    rows = -(-X.shape[0] // blocks)
    # the blocks are put on the workers (scattered, round robin) before the timing; a
    # from_array of the whole array would send it inside the graph at every fit
    parts = client.scatter([X[a:a + rows] for a in range(0, X.shape[0], rows)])
    wait(parts)
    dX = da.concatenate([da.from_delayed(f, shape=(min(rows, X.shape[0] - i * rows),
                                                   X.shape[1]), dtype=X.dtype)
                         for i, f in enumerate(parts)])
    _info(benchmark, f"distributed-{blocks}blocks", X, workers=2, threads_per_worker=1,
          blocks=blocks)
    runs = []

    def body(**more):
        start = time.perf_counter()
        with _distributed.timings() as evaluations:
            clf = _fit(dX, y, **more)
        runs.append((time.perf_counter() - start, clf.n_iter_, evaluations))
        return clf

    clf = _timed(benchmark, body)
    assert clf.n_iter_ == MAX_ITER and np.isfinite(clf.loss_)
    timed = runs if benchmark.disabled else runs[2:]  # not the warm-ups
    total, n_iter, evaluations = min(timed, key=lambda r: r[0])
    wall = sum(e["wall_s"] for e in evaluations)
    kernel = sum(max(e["kernel_s"].values()) for e in evaluations)
    benchmark.extra_info.update(
        s_per_iteration=total / n_iter, evaluations=len(evaluations),
        wall_s=wall / len(evaluations), kernel_s=kernel / len(evaluations),
        outside_share=1.0 - kernel / wall, setup_s=total - wall)


CLIENT_ROWS = (500_000, 2_000_000, 4_000_000)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_client_side(benchmark, client, kind):
    script = os.path.join(os.path.dirname(__file__), "..", "tests", "client_memory.py")
    rows = CLIENT_ROWS if not benchmark.disabled else (bl.SMOKE_ROWS or 20_000,)
    benchmark.group = "dask: the client's side, L-BFGS on rows made on the workers"
    benchmark.extra_info.update(kind="dask-client", impl=kind, workers=2,
                                threads_per_worker=1)

    def body():
        out = subprocess.run([sys.executable, script, client.scheduler.address, kind,
                              ",".join(map(str, rows))], capture_output=True, text=True,
                             check=True)
        return [json.loads(line) for line in out.stdout.splitlines()]

    runs = benchmark.pedantic(body, rounds=1, iterations=1)
    benchmark.extra_info["runs"] = runs
    assert all(r["n_iter"] == 3 for r in runs)
