"""Compile ahead of time: fill the kernel cache for the paths a user can reach.

Numba compiles a kernel the first time it is called with new argument types, and fastmlp
caches what it compiled on disk (see :mod:`fastmlp._config`). A fresh environment (a new
install, a container image, a CI job, a new Dask worker) therefore pays the compile time in its
first calls. :func:`compile_all` pays it up front, by making the calls: tiny fits and
predictions through the public API, in both dtypes, down every path the engine can take (each
optimizer, dense and sparse input, sample weights, L-BFGS, the row, unit and column splits over
the threads and the parallel predictions, where this machine has threads for them). Since the
calls are the ones users make, the kernels compiled are exactly the specialisations their own
calls will look up. The tasks run in worker processes, which share the cache folder.

``fastmlp compile`` runs it from the shell: the line to put in a Dockerfile or a CI set-up.
It compiles native code for this CPU, whatever kernels the install shipped.

:func:`ship` makes the same calls for a wheel's build (``python -m fastmlp.precompile ship``):
the kernels are compiled for the portable CPU level (``_kernels/_jit.py``) into the package's
``_shipped_kernels`` folder, which the wheel carries.
"""

import argparse
import concurrent.futures
import contextlib
import io
import json
import multiprocessing
import os
import subprocess
import sys
import time
import warnings

import numpy as np

#: The tasks, each run once per dtype: (name, function name in this module).
TASKS = (
    ("Model: sgd, momentum, Nesterov, L2, Adam", "_model_task"),
    ("MLPClassifier: sgd, adam, lbfgs, weights, outputs", "_classifier_task"),
    ("MLPRegressor: sgd, adam, lbfgs, both losses, outputs", "_regressor_task"),
    ("sparse input", "_sparse_task"),
    ("threads: row, unit and column splits, parallel predict and loss", "_parallel_task"),
)
DTYPES = ("float32", "float64")

#: The first calls a newcomer makes, the kernels a plain ``pip install .`` ships: the
#: README's ``fastmlp train``, and scikit-learn's defaults for both estimators on a small and
#: on a digits-sized problem (whose batches split over the threads).
COMMON_TASKS = (("first calls: the README's, scikit-learn's defaults", "_common_task"),)


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
                # views and Fortran order (a DataFrame's .values) are other specialisations
                clf.predict(X[::2])
                clf.predict(np.asfortranarray(X))
                MLPClassifier(**params).fit(X, target, sample_weight=weights)
                if solver != "lbfgs":
                    MLPClassifier(**params, early_stopping=True).fit(X, target)
                    classes = (np.unique(target) if target.ndim == 1
                               else np.arange(target.shape[1]))
                    partial = MLPClassifier(**params)
                    partial.partial_fit(X, target, classes=classes)
                    partial.partial_fit(X, target)


def _regressor_task(dtype):
    from fastmlp import MLPRegressor

    X, y = _data(dtype)
    targets = {"1-D": X[:, 0] + X[:, 1], "2 outputs": X[:, :2] + 0.5}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence: two epochs on purpose
        for target in targets.values():
            for solver in ("sgd", "adam", "lbfgs"):
                for loss in ("squared_error", "poisson"):
                    params = dict(hidden_layer_sizes=(6,), solver=solver, loss=loss,
                                  max_iter=2, random_state=0)
                    reg = MLPRegressor(**params).fit(X, target)
                    MLPRegressor(**params).fit(X[:, 1:], target)  # columns of a table
                    reg.predict(X)
                    reg.score(X, target)
                    MLPRegressor(**params).fit(X, target, sample_weight=np.ones(X.shape[0]))
                    if solver != "lbfgs" and loss == "squared_error":
                        MLPRegressor(**params, early_stopping=True).fit(X, target)
                        MLPRegressor(**params).partial_fit(X, target).partial_fit(X, target)


def _common_task(dtype):
    from sklearn.datasets import load_iris

    from fastmlp import MLPClassifier, MLPRegressor, Model
    from fastmlp.datasets import load_digits

    X, y = load_iris(return_X_y=True)
    X = X.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence: few epochs on purpose
        clf = MLPClassifier(max_iter=2, random_state=0).fit(X, y)  # scikit-learn's defaults
        clf.predict(X)
        clf.predict_proba(X[:1])
        clf.score(X, y)
        if dtype == "float64":
            reg = MLPRegressor(max_iter=2, random_state=0).fit(X[:, 1:], X[:, 0])
            reg.predict(X[:, 1:])
            reg.score(X[:, 1:], X[:, 0])
            # the README's digits example: batches of 200 split over the threads
            Xd, yd = (np.random.default_rng(0).random((600, 64)), np.arange(600) % 10)
            MLPClassifier((100,), max_iter=1, random_state=0).fit(Xd, yd).score(Xd, yd)
    if dtype == "float32":  # the README's `fastmlp train` and library example
        # as the command runs (a process of its own, which inherits this one's settings)
        subprocess.run([sys.executable, "-m", "fastmlp", "train", "--epochs", "1"],
                       capture_output=True, check=True)
        Xd, yd, Xt, yt = load_digits()
        model = Model([64, 32, 10], dtype=dtype, seed=0)
        model.fit(Xd, yd, epochs=1, batch_size=32, learning_rate=0.5,
                  validation_data=(Xt, yt), progress=False)
        model.evaluate(Xt, yt)
        model.gradients(Xt, yt)
        model.predict(Xt)


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

    from fastmlp import MLPClassifier, Model, _config
    from fastmlp._engine import parallel_lanes

    if parallel_lanes() < 2:
        return "skipped: one thread here (FASTMLP_PARALLEL=0, one CPU or no fast threading layer)"
    X, y = _data(dtype, n=2000, n_in=64)
    # rows split: two hidden layers, batch 200; units split: one hidden layer of 128, batch 64;
    # column split: two hidden layers wide enough for every lane
    wide = _config.COLUMN_SPLIT_MIN_UNITS * parallel_lanes()
    for sizes, batch in (([64, 64, 32, 10], 200), ([64, 128, 10], 64),
                         ([64, wide, wide, 10], 64)):
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


def compile_all(processes=None, out=None, tasks=TASKS):
    """Compile every kernel the tasks reach, in both dtypes; print progress to ``out``.

    The kernels are compiled for this CPU: the shipped ones are not loaded, here nor in the
    worker processes (``FASTMLP_SHIPPED=0``).

    Parameters
    ----------
    processes : int, optional
        Worker processes (default: the CPU count, at most 4). With 1 the tasks run here.
    out : file, optional
        Where progress goes (default: nothing).
    tasks : tuple of (name, function name)
        What to run (default: :data:`TASKS`, every path).

    Returns
    -------
    list of (task name, dtype, seconds, compilations, note)
        A compilation is one kernel (or a kernel it calls) compiled for one signature; 0 when
        every kernel the task needed was in the cache already.
    """
    from fastmlp._kernels import _jit

    # a task in both dtypes at once: two processes then compile different specialisations
    jobs = [(name, task, dtype) for name, task in tasks for dtype in DTYPES]
    processes = processes or min(4, os.cpu_count() or 1)
    results = []
    shipping = bool(os.environ.get("FASTMLP_SHIP_INTO"))
    if not shipping:
        os.environ["FASTMLP_SHIPPED"] = "0"  # read by the workers when they start
        _jit.use_shipped(False)

    def report(name, dtype, result):
        seconds, n_compiled, note = result
        results.append((name, dtype, seconds, n_compiled, note))
        if out is not None:
            what = note or f"{n_compiled} compilation{'s' if n_compiled != 1 else ''}"
            print(f"[{len(results)}/{len(jobs)}] {name}, {dtype}: {what} in {seconds:.1f} s",
                  file=out, flush=True)

    if processes == 1 and not shipping:  # (a build's settings reach only new processes)
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


# -- the wheel's kernels --------------------------------------------------------------------------

#: What ``FASTMLP_BUILD_KERNELS`` may ask a wheel's build for.
SHIP_CHOICES = {"all": TASKS, "common": COMMON_TASKS}

#: Settings that change what the kernels compile to; a build uses the defaults, which are
#: what the shipped kernels' stamp then records.
_SETTINGS = ("FASTMLP_FASTMATH", "FASTMLP_BLAS_MIN_FLOPS", "FASTMLP_CACHE", "FASTMLP_CACHE_DIR",
             "NUMBA_CACHE_DIR", "FASTMLP_PARALLEL", "NUMBA_DISABLE_JIT", "NUMBA_OPT",
             "FASTMLP_SHIPPED", "FASTMLP_SHIPPED_DIR")


def ship(into, kernels="all", processes=None, out=None):
    """Compile the kernels for the portable CPU level into the folder ``into``, for a wheel.

    The tasks run in worker processes started with ``NUMBA_CPU_NAME`` set to
    :data:`fastmlp._kernels._jit.PORTABLE_CPU` (no extra features) and
    ``FASTMLP_SHIP_INTO=into``, so each kernel they compile is saved there under the portable
    key and the content stamp. A host that cannot run that level's code compiles nothing.

    Parameters
    ----------
    into : str
        The folder, emptied first: ``fastmlp/_shipped_kernels`` in the wheel's build tree.
    kernels : {"all", "common"}
        Every path (the release wheel), or :data:`COMMON_TASKS`.
    processes, out
        As for :func:`compile_all`.

    Returns
    -------
    dict or None
        What :data:`~fastmlp._kernels._jit.BUILD_INFO` records; None when the host cannot
        build them (the reason is printed).
    """
    import shutil

    import numba

    from fastmlp._kernels import _jit

    out = out or io.StringIO()
    shutil.rmtree(into, ignore_errors=True)
    missing = _jit.missing_cpu_features()
    if missing:
        print(f"fastmlp: no shipped kernels: this build host lacks {', '.join(missing)} "
              f"({_jit.PORTABLE_CPU}), whose code they are; the wheel's kernels will compile "
              "on first use", file=out, flush=True)
        return None
    for name in _SETTINGS:
        os.environ.pop(name, None)
    os.environ.update(NUMBA_CPU_NAME=_jit.PORTABLE_CPU, NUMBA_CPU_FEATURES="",
                      FASTMLP_SHIP_INTO=os.path.abspath(into), PYTHONDONTWRITEBYTECODE="1",
                      # the threads' kernels too, on a build host of one CPU
                      NUMBA_NUM_THREADS=str(max(2, numba.config.NUMBA_NUM_THREADS)))
    processes = processes or min(4, os.cpu_count() or 1)
    tasks = SHIP_CHOICES[kernels]
    print(f"fastmlp: compiling the kernels for {_jit.PORTABLE_CPU} ({kernels}: {len(tasks)} "
          f"tasks x {len(DTYPES)} dtypes, {processes} processes) into {into}", file=out,
          flush=True)
    start = time.perf_counter()
    results = compile_all(processes, out, tasks)
    # the stamp the workers compiled under (this process read the settings before the pops)
    stamp = subprocess.run([sys.executable, "-c", "from fastmlp._kernels._jit import "
                            "KERNELS_STAMP; print(KERNELS_STAMP)"], capture_output=True,
                           text=True, check=True).stdout.strip()
    info = write_build_info(into, kernels, stamp, sum(result[3] for result in results),
                            time.perf_counter() - start)
    print(f"fastmlp: {info['entries']} shipped kernels ({info['bytes'] / 2**20:.1f} MiB) "
          f"compiled in {info['seconds']} s", file=out, flush=True)
    return info


def write_build_info(into, kernels, stamp, compilations, seconds):
    """Record in ``into`` what its shipped kernels were built with and for; return it."""
    import numba

    from fastmlp._kernels import _jit

    files = [entry for entry in os.scandir(into) if entry.is_file()] if os.path.isdir(into) \
        else []
    info = {
        "numba": numba.__version__,
        "python": _jit.python_tag(),
        "cpu_name": _jit.PORTABLE_CPU,
        "cpu_features": "",
        "kernels_stamp": stamp,
        "kernels": kernels,
        "entries": sum(entry.name.endswith(".nbc") for entry in files),
        "bytes": sum(entry.stat().st_size for entry in files),
        "compilations": compilations,
        "seconds": round(seconds, 1),
    }
    os.makedirs(into, exist_ok=True)
    with open(os.path.join(into, _jit.BUILD_INFO), "w", encoding="utf-8") as file:
        json.dump(info, file, indent=1)
    return info


def main(argv=None):
    """``python -m fastmlp.precompile ship FOLDER --kernels all``: a wheel build's step."""
    parser = argparse.ArgumentParser(prog="python -m fastmlp.precompile")
    commands = parser.add_subparsers(dest="command", required=True)
    ship_parser = commands.add_parser("ship", help=ship.__doc__.splitlines()[0])
    ship_parser.add_argument("folder")
    ship_parser.add_argument("--kernels", choices=sorted(SHIP_CHOICES), default="all")
    ship_parser.add_argument("--processes", type=int, default=None)
    args = parser.parse_args(argv)
    ship(args.folder, args.kernels, args.processes, out=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
