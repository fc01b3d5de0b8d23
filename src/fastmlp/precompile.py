"""Compile ahead of time: fill the kernel cache for the paths a user can reach.

Numba compiles a kernel the first time it is called with new argument types, and fastmlp
caches what it compiled on disk (see :mod:`fastmlp._config`). A fresh environment (a new
install, a container image, a CI job, a new Dask worker) therefore pays the compile time in its
first calls. :func:`compile_all` pays it up front, by making the calls: tiny fits and
predictions through the public API, in both dtypes, down every path the engine can take (each
optimizer, dense and sparse input, sample weights, L-BFGS, the row and unit splits over the
threads and the parallel predictions, where this machine has threads for them). Since the
calls are the ones users make, the kernels compiled are exactly the specialisations their own
calls will look up. The tasks run in worker processes, which share the cache folder.

``fastmlp compile`` runs it from the shell: the line to put in a Dockerfile or a CI set-up.
"""

import concurrent.futures
import contextlib
import io
import multiprocessing
import os
import time
import warnings

import numpy as np

#: The tasks, each run once per dtype: (name, function name in this module).
TASKS = (
    ("Model: sgd, momentum, Nesterov, L2, Adam", "_model_task"),
    ("MLPClassifier: sgd, adam, lbfgs, weights, outputs", "_classifier_task"),
    ("sparse input", "_sparse_task"),
    ("threads: row and unit splits, parallel predict and loss", "_parallel_task"),
)
DTYPES = ("float32", "float64")


def _data(dtype, n=240, n_in=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, n_in)).astype(dtype)
    y = np.arange(n) % 3
    return X, y


def _model_task(dtype):
    from fastmlp import Model

    X, y = _data(dtype)
    settings = [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                dict(l2=1e-3), dict(optimizer="adam", learning_rate=1e-3)]
    for options in settings:
        options = {"learning_rate": 0.1, **options}
        model = Model([8, 6, 3], dtype=dtype, seed=0)
        model.fit(X, y, epochs=1, batch_size=16, validation_data=(X[:40], y[:40]),
                  progress=False, **options)
    # a progress bar trains the epoch in segments; one-hot targets; every inference call
    with contextlib.redirect_stderr(io.StringIO()):
        model.fit(X, np.eye(3)[y], epochs=1, batch_size=16, learning_rate=0.1, progress=True)
    model.predict(X)
    model.evaluate(X, y)
    model.gradients(X, y)


def _classifier_task(dtype):
    from fastmlp import MLPClassifier

    X, y = _data(dtype)
    targets = {"multiclass": y, "binary": y % 2, "multilabel": np.eye(3, dtype=int)[y]}
    weights = np.linspace(0.5, 1.5, X.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence: two epochs on purpose
        for target in targets.values():
            for solver in ("sgd", "adam", "lbfgs"):
                params = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=2,
                              random_state=0)
                clf = MLPClassifier(**params).fit(X, target)
                clf.predict(X)
                clf.predict_proba(X)
                MLPClassifier(**params).fit(X, target, sample_weight=weights)
                if solver != "lbfgs":
                    MLPClassifier(**params, early_stopping=True).fit(X, target)
                    classes = (np.unique(target) if target.ndim == 1
                               else np.arange(target.shape[1]))
                    partial = MLPClassifier(**params)
                    partial.partial_fit(X, target, classes=classes)
                    partial.partial_fit(X, target)


def _sparse_task(dtype):
    import scipy.sparse as sp

    from fastmlp import MLPClassifier, Model

    X, y = _data(dtype)
    X[X < 0.5] = 0
    X = sp.csr_matrix(X)
    model = Model([8, 6, 3], dtype=dtype, seed=0)
    for options in (dict(learning_rate=0.1), dict(optimizer="adam", learning_rate=1e-3)):
        model.fit(X, y, epochs=1, batch_size=16, progress=False, **options)
    model.predict(X)
    model.gradients(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for solver in ("sgd", "adam", "lbfgs"):
            params = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=2, random_state=0)
            MLPClassifier(**params).fit(X, y).predict_proba(X)
            MLPClassifier(**params).fit(X, y, sample_weight=np.ones(X.shape[0]))


def _parallel_task(dtype):
    import scipy.sparse as sp

    from fastmlp import MLPClassifier, Model
    from fastmlp._engine import parallel_lanes

    if parallel_lanes() < 2:
        return "skipped: one thread here (FASTMLP_PARALLEL=0, one CPU or no fast threading layer)"
    X, y = _data(dtype, n=2000, n_in=64)
    # rows split: two hidden layers, batch 200; units split: one hidden layer of 128, batch 64
    for sizes, batch in (([64, 64, 32, 10], 200), ([64, 128, 10], 64)):
        for options in (dict(learning_rate=0.1), dict(learning_rate=0.1, momentum=0.9),
                        dict(learning_rate=0.1, momentum=0.9, nesterov=True),
                        dict(learning_rate=0.1, l2=1e-3),
                        dict(optimizer="adam", learning_rate=1e-3)):
            model = Model(sizes, dtype=dtype, seed=0)
            model.fit(X[:600], y[:600], epochs=1, batch_size=batch, progress=False, **options)
    model.predict_proba(X[:600])  # parallel prediction from 2^20 multiply-adds
    model.gradients(X, y)  # the full-data pass in row lanes (2000 x 9472 > 2^24)
    model.gradients(sp.csr_matrix(X), y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for solver, batch in (("sgd", 200), ("adam", 200), ("sgd", 64), ("adam", 64)):
            MLPClassifier(hidden_layer_sizes=(128,), solver=solver, batch_size=batch,
                          max_iter=1, random_state=0).fit(X[:600], y[:600])
    return None


def compilations(recorder):
    """How many compilations a ``numba.core.event.install_recorder("numba:compile")`` saw."""
    return sum(1 for _, ev in recorder.buffer if ev.is_start)


def _run(task, dtype):
    """Run one task in this process; return (seconds, compilations, note)."""
    from numba.core import event

    start = time.perf_counter()
    with event.install_recorder("numba:compile") as recorder:
        note = globals()[task](dtype)
    return time.perf_counter() - start, compilations(recorder), note


def compile_all(processes=None, out=None):
    """Compile every kernel the tasks reach, in both dtypes; print progress to ``out``.

    Parameters
    ----------
    processes : int, optional
        Worker processes (default: the CPU count, at most 4). With 1 the tasks run here.
    out : file, optional
        Where progress goes (default: nothing).

    Returns
    -------
    list of (task name, dtype, seconds, compilations, note)
        A compilation is one kernel (or a kernel it calls) compiled for one signature; 0 when
        every kernel the task needed was in the cache already.
    """
    jobs = [(name, task, dtype) for dtype in DTYPES for name, task in TASKS]
    processes = processes or min(4, os.cpu_count() or 1)
    results = []

    def report(name, dtype, result):
        seconds, n_compiled, note = result
        results.append((name, dtype, seconds, n_compiled, note))
        if out is not None:
            what = note or f"{n_compiled} compilation{'s' if n_compiled != 1 else ''}"
            print(f"[{len(results)}/{len(jobs)}] {name}, {dtype}: {what} in {seconds:.1f} s",
                  file=out, flush=True)

    if processes == 1:
        for name, task, dtype in jobs:
            report(name, dtype, _run(task, dtype))
        return results
    # spawn, not fork: a forked child of a process that used OpenMP runs only serial kernels
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = {pool.submit(_run, task, dtype): (name, dtype) for name, task, dtype in jobs}
        for future in concurrent.futures.as_completed(futures):
            report(*futures[future], future.result())
    return results
