"""The first call in a fresh process: compile cache cold, warm, after ``fastmlp compile``, and
installed from a wheel that ships the kernels' machine code.

Each round runs a new Python process that makes one of the first calls issue 14 names, and
times it (the child's own clock, from just before the call to its return), beside the whole
process (interpreter start-up and imports included):

* ``fit float64``: ``fastmlp.MLPClassifier(random_state=0).fit`` on iris (150 x 4, float64,
  scikit-learn's defaults: Adam, 200 epochs), scikit-learn imported before the clock starts,
  as for scikit-learn's own row;
* ``fit float32``: the same on iris as float32;
* ``predict``: ``Model.load`` of a saved digits model (64-32-10, float64), then ``predict`` on
  the 1797 digits;
* ``fastmlp train``: the README's first command, ``fastmlp train`` (digits, 64-32-10, 30
  epochs), as ``fastmlp.cli.main(["train"])`` in the child.

Caches (``NUMBA_CACHE_DIR``):

* cold: a new empty folder for every round, so every kernel the call needs is compiled (a
  new install, a new container, a new Dask worker);
* warm: the folder the cold row's last round filled, so the call loads what it compiled;
* after compile: a folder filled once per session by ``fastmlp compile`` (the Dockerfile
  line), so the call loads kernels that it did not compile itself;
* wheel: a new empty folder, and the x86-64-v3 kernels a wheel ships (``setup.py``): the
  installed package's own when it has them all (a release wheel's install), else a folder
  that ``python -m fastmlp.precompile ship`` fills once per session (``FASTMLP_SHIPPED_DIR``;
  ``_benchlib.shipped_kernels``).

The first three rows never load shipped kernels (``FASTMLP_SHIPPED=0``).

Every child also records where its compile time went: the seconds each kernel's own
compilation took (without the kernels it calls), per kernel and float dtype, in
``extra_info["compile_by_kernel"]``; the report lists the largest of the cold rows.

scikit-learn compiles nothing; its first ``MLPClassifier().fit`` on iris is recorded in the
fit rows' ``extra_info`` (``sklearn_fit_s``, and its whole process ``sklearn_process_s``, the
min of as many fresh processes as the row's rounds) for scale. Under
``--benchmark-disable`` every body runs once: one cold row (``SMOKE_COLD``; the others would
compile for minutes to run the same body), no after-compile row (``fastmlp compile`` would
compile for minutes; ``tests/test_precompile.py`` runs it), and the warm rows use the
caches this process uses, shipped kernels included.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import _benchlib as bl
import numpy as np
import pytest

#: The child: one first call, timed by its own clock; prints one JSON line. Numba's compile
#: events give the seconds each kernel's compilation took itself, without the kernels it
#: called (those are compiled inside it, as it is typed), per kernel and specialisation.
CHILD = """
import collections, json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np
from numba.core import event
import fastmlp
t1 = time.perf_counter()
workload, folder = sys.argv[1], sys.argv[2]
warnings.simplefilter("ignore")  # iris does not converge in 200 Adam epochs
own = collections.Counter()
stack = []

def specialisation(ev):
    dispatcher = ev.data["dispatcher"]
    name = getattr(dispatcher, "py_func", dispatcher).__qualname__.split(".<locals>")[0]
    kinds = sorted({str(t.dtype) for t in ev.data["args"] if hasattr(t, "ndim")
                    and str(getattr(t, "dtype", "")).startswith("float")})
    return f"{name}({', '.join(kinds)})" if kinds else name

class Compiles(event.Listener):
    def on_start(self, ev):
        stack.append([specialisation(ev), time.perf_counter(), 0.0])

    def on_end(self, ev):
        name, start, inner = stack.pop()
        seconds = time.perf_counter() - start
        own[name] += seconds - inner
        if stack:
            stack[-1][2] += seconds

event.register("numba:compile", Compiles())
t2 = time.perf_counter()
if workload.startswith("fit"):
    dtype = workload.split()[1]
    X = np.load(folder + "/iris_X.npy").astype(dtype)
    y = np.load(folder + "/iris_y.npy")
    estimator = fastmlp.MLPClassifier(random_state=0)  # imports scikit-learn: not timed
    t2 = time.perf_counter()
    result = estimator.fit(X, y).loss_
elif workload == "predict":
    X = np.load(folder + "/digits_X.npy")
    t2 = time.perf_counter()
    result = float(fastmlp.Model.load(folder + "/digits.npz").predict(X).sum())
else:  # the README's first command, `fastmlp train`
    from fastmlp.cli import main
    result = main(["train"])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "call_s": t3 - t2, "result": result,
                  "compiled_s": sum(own.values()), "compiled": len(own),
                  "compile_by_kernel": dict(own.most_common())}))
"""

SKLEARN_CHILD = """
import json, sys, time, warnings
import numpy as np
from sklearn.neural_network import MLPClassifier
warnings.simplefilter("ignore")
X, y = np.load(sys.argv[1] + "/iris_X.npy"), np.load(sys.argv[1] + "/iris_y.npy")
t0 = time.perf_counter()
MLPClassifier(random_state=0).fit(X, y)
print(json.dumps({"call_s": time.perf_counter() - t0}))
"""

WORKLOADS = ("fit float64", "fit float32", "predict", "fastmlp train")
CACHES = ("cold", "warm", "after compile", "wheel")
#: The one cold row of a smoke run (``--benchmark-disable``): the cheapest to compile.
SMOKE_COLD = "predict"

# per session: workload -> the cache folder its cold row filled; ("result", workload) -> its
# first result; "compiled" -> fastmlp compile's folder and
# "fastmlp_compile_s"; "shipped" -> the wheel row's FASTMLP_SHIPPED_DIR (None: the install's
# own) and "shipped_info"; "sklearn_fit_s" and "sklearn_process_s"
_state = {}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The data and model files the children read, and their environment."""
    from sklearn.datasets import load_iris

    import fastmlp

    folder = tmp_path_factory.mktemp("startup")
    X, y = load_iris(return_X_y=True)
    np.save(folder / "iris_X.npy", X)
    np.save(folder / "iris_y.npy", y)
    Xd, yd = bl.digits()
    model = bl.fastmlp_model((64, 32, 10), "float64")
    model.save(str(folder / "digits.npz"))
    np.save(folder / "digits_X.npy", Xd)
    env = dict(os.environ)
    # the child imports the same fastmlp as this process (an install, or the source tree)
    src = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    for name in ("NUMBA_DISABLE_JIT", "FASTMLP_CACHE"):
        env.pop(name, None)
    return folder, env


def _child(saved, workload, cache_dir, shipped=False):
    """Run one fresh process; return the child's timings with the whole process's.

    ``shipped``: False, the process loads no shipped kernels; True, the installed package's;
    a folder, that one's.
    """
    folder, env = saved
    env = dict(env, FASTMLP_SHIPPED="1" if shipped is not False else "0")
    env.pop("FASTMLP_SHIPPED_DIR", None)
    if isinstance(shipped, str):
        env["FASTMLP_SHIPPED_DIR"] = shipped
    if cache_dir is not None:  # None: the cache this process uses (see _compiled_cache)
        env = dict(env, NUMBA_CACHE_DIR=cache_dir)
        env.pop("FASTMLP_CACHE_DIR", None)  # it would come before NUMBA_CACHE_DIR
    command = [sys.executable, "-c", CHILD, workload, str(folder)]
    start = time.perf_counter()
    out = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True,
                         timeout=900, check=False)
    process_s = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{workload!r} failed ({out.returncode}):\n{out.stderr}")
    if workload == "fastmlp train":
        assert "test accuracy" in out.stdout, out.stdout
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "process_s": process_s}


def _new_cache(tmp_path_factory):
    return tempfile.mkdtemp(prefix="numba-cache-", dir=tmp_path_factory.getbasetemp())


def _compiled_cache(saved, tmp_path_factory):
    """A cache folder that ``fastmlp compile`` filled (once per session)."""
    if "compiled" not in _state:
        folder, env = saved
        cache_dir = _new_cache(tmp_path_factory)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "fastmlp", "compile"],
                             env=dict(env, FASTMLP_CACHE_DIR=cache_dir), cwd=folder,
                             capture_output=True, text=True, timeout=1800, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"fastmlp compile failed ({out.returncode}):\n{out.stderr}")
        _state["compiled"] = cache_dir
        _state["fastmlp_compile_s"] = time.perf_counter() - start
    return _state["compiled"]


def _shipped(tmp_path_factory):
    """The wheel row's shipped kernels: True for the installed package's, else a folder."""
    folder, info = bl.shipped_kernels(tmp_path_factory.getbasetemp())
    _state["shipped_info"] = info
    return True if folder is None else folder


def _sklearn_fit_s(saved, rounds):
    """scikit-learn's iris fit: (the call's seconds, the whole process's), min of ``rounds``."""
    if "sklearn_fit_s" not in _state:
        folder, env = saved
        calls, processes = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", SKLEARN_CHILD, str(folder)], env=env,
                                 capture_output=True, text=True, timeout=600, check=True)
            processes.append(time.perf_counter() - start)
            calls.append(json.loads(out.stdout.strip().splitlines()[-1])["call_s"])
        _state["sklearn_fit_s"], _state["sklearn_process_s"] = min(calls), min(processes)
    return _state["sklearn_fit_s"], _state["sklearn_process_s"]


@pytest.mark.parametrize("cache", CACHES)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_first_call(benchmark, saved, tmp_path_factory, workload, cache):
    benchmark.group = "first call in a fresh process"
    benchmark.extra_info.update(kind="startup", impl="fastmlp", cache=cache,
                                workload=workload)
    smoke = benchmark.disabled
    if smoke and cache == "cold" and workload != SMOKE_COLD:
        pytest.skip(f"smoke run: the cold body runs once, in the {SMOKE_COLD!r} row (each "
                    "cold row compiles for 15-40 s)")
    if smoke and cache == "after compile":
        pytest.skip("smoke run: fastmlp compile compiles every kernel natively for 2.5 "
                    "minutes; tests/test_precompile.py runs it and checks the fresh process")
    last = {}

    def run(cache_dir, shipped=False):
        last.update(_child(saved, workload, cache_dir, shipped), cache_dir=cache_dir)

    if cache == "cold":
        def setup():
            return (_new_cache(tmp_path_factory),), {}

        bl.time_calls(benchmark, run, setup=setup, warmup_rounds=0, rounds=min(2, bl.ROUNDS))
        _state[workload] = last["cache_dir"]
    elif cache == "wheel":
        shipped = _shipped(tmp_path_factory)
        benchmark.extra_info["shipped"] = _state["shipped_info"]

        def setup():
            return (_new_cache(tmp_path_factory), shipped), {}

        bl.time_calls(benchmark, run, setup=setup, warmup_rounds=0)
        assert last["compiled"] == 0, (workload, last["compile_by_kernel"])
    else:
        shipped = False
        if cache == "warm":
            if workload not in _state and smoke:  # this process's cache: warm (see above)
                _state[workload] = None
            elif workload not in _state:  # the cold row did not run (-k): fill a cache first
                run(_new_cache(tmp_path_factory))
                _state[workload] = last["cache_dir"]
            cache_dir = _state[workload]
            shipped = smoke  # this process's caches: the kernels this install ships too
        else:
            cache_dir = _compiled_cache(saved, tmp_path_factory)
            benchmark.extra_info["fastmlp_compile_s"] = _state["fastmlp_compile_s"]
        bl.time_calls(benchmark, run, args=(cache_dir, shipped), warmup_rounds=0)
    benchmark.extra_info.update({k: v for k, v in last.items() if k != "cache_dir"})
    # compiled now, loaded, or compiled by fastmlp compile's other calls: the same numbers
    first = _state.setdefault(("result", workload), last["result"])
    assert last["result"] == first, (workload, cache, last["result"], first)
    if workload.startswith("fit"):
        fit_s, process_s = _sklearn_fit_s(saved, 1 if benchmark.disabled else bl.ROUNDS)
        benchmark.extra_info.update(sklearn_fit_s=fit_s, sklearn_process_s=process_s)
