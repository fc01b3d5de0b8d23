"""Epochs on the shipped x86-64-v3 machine code against natively compiled kernels.

A wheel's kernels are compiled for a portable CPU level (``setup.py``), this host's own for
its exact CPU (``fastmlp compile``, or a first call). Each row trains the same workload in
fresh processes that take turns: one loads the shipped kernels (an empty compile cache), the
other the native ones (``FASTMLP_SHIPPED=0``, a cache compiled in this session). Each child
trains a warm-up epoch, then times ``EPOCHS`` epochs and reports the fastest; the row keeps
each side's fastest over ``bl.ROUNDS`` turns. Same data, seed, shuffles and threads: only the
machine code differs.

``extra_info``: ``shipped_epoch_s``, ``native_epoch_s`` and ``shipped_over_native`` (the
target: at most 1.05). The benchmark's own time is a turn, both children's whole processes.
Under ``--benchmark-disable`` the shipped child alone runs, one epoch on ``bl.SMOKE_ROWS``
rows (the native one would compile for half a minute to run the same body).
"""

import json
import os
import subprocess
import sys
import time

import _benchlib as bl
import pytest

#: The rows: the suite's overhead-bound digits row and the two Fashion-MNIST rows of issue 24.
ROWS = [bl.Workload("digits", (32,), 32, "float64", "sgd"),
        bl.Workload("fashion", (100,), 32, "float32", "sgd"),
        bl.Workload("fashion", (100,), 200, "float64", "sgd")]

EPOCHS = 3

CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numba
import _benchlib as bl
from fastmlp._kernels import _jit
data, hidden, batch, dtype, solver, epochs, rows = sys.argv[2:]
workload = bl.Workload(data, tuple(json.loads(hidden)), int(batch), dtype, solver)
X, y = bl.dataset(workload.data, workload.dtype)
rows = int(rows) or None
with bl.numba_threads(numba.config.NUMBA_NUM_THREADS):
    epoch, _ = bl.fastmlp_epoch(workload, X[:rows], y[:rows])
    epoch()  # loads (or compiles) the kernels, warms the caches
    times = []
    for _ in range(int(epochs)):
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
print(json.dumps({"epoch_s": min(times), "sources": _jit.KERNEL_SOURCES}))
"""


def _child(workload, env, epochs, rows):
    command = [sys.executable, "-c", CHILD, os.path.dirname(os.path.abspath(__file__)),
               workload.data, json.dumps(workload.hidden), str(workload.batch_size),
               workload.dtype, workload.solver, str(epochs), str(rows or 0)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800,
                         check=False)
    if out.returncode != 0:
        if "Fashion-MNIST is missing" in out.stderr or "Skipped" in out.stderr:
            pytest.skip(out.stderr.strip().splitlines()[-1])
        raise RuntimeError(f"{workload} failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("workload", ROWS, ids=str)
def test_shipped_against_native_epochs(benchmark, tmp_path_factory, workload):
    benchmark.group = "shipped x86-64-v3 kernels against native ones"
    benchmark.extra_info.update(kind="shipped", workload=str(workload))
    if workload.data.startswith("fashion"):
        bl.fashion()  # skips, with the reason, where the data set is missing
    folder, info = bl.shipped_kernels(tmp_path_factory.getbasetemp())
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("FASTMLP_", "NUMBA_CACHE", "NUMBA_CPU"))}
    shipped_env = dict(base, FASTMLP_CACHE_DIR=str(tmp_path_factory.mktemp("empty")))
    if folder is not None:
        shipped_env["FASTMLP_SHIPPED_DIR"] = folder
    native_env = dict(base, FASTMLP_SHIPPED="0",
                      FASTMLP_CACHE_DIR=str(tmp_path_factory.getbasetemp() / "native"))
    smoke = benchmark.disabled
    epochs, rows = (1, bl.SMOKE_ROWS) if smoke else (EPOCHS, None)
    if not smoke:
        _child(workload, native_env, 1, 2048)  # compiles the native kernels, untimed
    best = {"shipped": float("inf"), "native": float("inf")}
    sources = {}

    sides = (("shipped", shipped_env),) if smoke else (("shipped", shipped_env),
                                                       ("native", native_env))

    def turn():
        for side, env in sides:
            result = _child(workload, env, epochs, rows)
            best[side] = min(best[side], result["epoch_s"])
            sources[side] = result["sources"]

    start = time.perf_counter()
    bl.time_calls(benchmark, turn, warmup_rounds=0)
    assert sources["shipped"]["compiled"] == 0 and sources["shipped"]["shipped"] > 0, sources
    if smoke:
        return
    assert sources["native"]["shipped"] == 0, sources
    benchmark.extra_info.update(shipped_epoch_s=best["shipped"], native_epoch_s=best["native"],
                                shipped_over_native=best["shipped"] / best["native"],
                                turns_s=time.perf_counter() - start,
                                shipped_kernels=info.get("kernels"))
