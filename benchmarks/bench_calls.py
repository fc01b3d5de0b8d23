"""Whole calls, as users run them: ``fastmlp.MLPClassifier`` vs scikit-learn's ``MLPClassifier``
(and PyTorch where it has an equivalent), measured in the same run.

The other files time the engine's pieces (an epoch, a forward pass); these rows time the
estimator's public calls end to end, input validation, initialisation, the per-epoch
bookkeeping and the L-BFGS driver included (bodies in ``_calls.py``):

1. a whole ``fit`` from a fresh estimator, ``random_state=0``, other parameters the defaults
   (relu, alpha 1e-4, learning rate 1e-3): on Fashion-MNIST (60000 x 784, float32), hidden
   (100,), Adam with batch "auto" (= 200) for 3 epochs, SGD with batch 32 for 2 epochs, L-BFGS
   for 20 iterations; and on digits (1797 x 64 / 16, float64), hidden (32,), SGD, batch 32, 50
   epochs (overhead-bound). PyTorch: a plain loop with the same network, optimizer, batch and
   epochs (``_calls.torch_fit``); none for L-BFGS (``torch.optim.LBFGS`` is another
   algorithm);
2. ``partial_fit``: a fresh estimator (digits, hidden (32,), Adam), then 6 calls on
   consecutive 300-row chunks, the first with ``classes=np.arange(10)``; no PyTorch row;
3. ``predict_proba`` of a fitted model (fitted before the timing) on 1 digits row (the digits
   model; 200 calls a round, the time is per call) and on the 10000 Fashion-MNIST test rows
   (hidden (100,), one Adam epoch);
4. the peak memory of a fit (Fashion, hidden (100,): L-BFGS 20 iterations in float32 and in
   float64, and the Adam fit of 1.), each in a fresh process per library
   (``_calls.memory_main``): the most RSS the fit added over the RSS after the libraries, the
   data and a warm-up were in, in ``extra_info["peak_rss_mib"]``.

Timing: fastmlp runs in this process at numba's default thread count, scikit-learn and PyTorch
in their worker processes (``_benchlib``) on as many threads. Every row is warmed up first
(compilation excluded): the fits warm up on their first ``16 * batch`` rows, which also
estimates a round, and get as many rounds as ``FASTMLP_BENCH_BUDGET_S`` allows (at most
``FASTMLP_BENCH_ROUNDS``; see ``_benchlib.time_epochs``); the other calls warm up on the call
itself. With ``--benchmark-disable`` every body runs once, the fits (and the fits a
``predict_proba`` or memory row starts from) on ``FASTMLP_BENCH_SMOKE_ROWS`` rows.
"""

import json
import os
import subprocess
import sys

import _benchlib as bl
import _calls
import pytest

IMPLS = list(_calls.LIBRARIES)


def _build(impl, builder, **kwargs):
    """``(body, info)`` of ``_calls.<builder>``: here for fastmlp, in a worker otherwise."""
    if impl == "fastmlp":
        return getattr(_calls, builder)(impl, **kwargs)
    return bl.remote_build(impl, f"_calls:{builder}", **kwargs)


def _skip_torch_if(impl, what):
    if impl == "torch":
        pytest.skip(_calls.TORCH_NO_EQUIVALENT[what])


def _info(benchmark, impl, workload, call, **more):
    benchmark.extra_info.update(kind="call", workload=workload, impl=impl, call=call,
                                threads=bl.N_THREADS, **more)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(_calls.FIT_CALLS))
def test_fit(benchmark, name, impl):
    call = _calls.FIT_CALLS[name]
    if call.solver == "lbfgs":
        _skip_torch_if(impl, "lbfgs")
    X, _ = bl.dataset(call.data, call.dtype)  # skips when Fashion-MNIST is missing
    benchmark.group = f"calls: {call}"
    _info(benchmark, impl, str(call), "fit", dtype=call.dtype, solver=call.solver,
          batch_size=call.batch(X.shape[0]), max_iter=call.max_iter,
          layer_sizes=[X.shape[1], *call.hidden, 10], n_samples=X.shape[0])
    with bl.numba_threads(bl.N_THREADS):
        fit, info = _build(impl, "build_fit", name=name)
        benchmark.extra_info.update(info)
        # warm-up: the same fit on the first 16 batches' rows (estimates the whole fit)
        estimate = bl.time_epochs(benchmark, fit, X.shape[0], call.batch(X.shape[0]))
    if estimate is not None:
        benchmark.extra_info["estimated_s"] = estimate


@pytest.mark.parametrize("impl", IMPLS)
def test_partial_fit(benchmark, impl):
    _skip_torch_if(impl, "partial_fit")
    benchmark.group = f"calls: {_calls.partial_fit_label()}"
    _info(benchmark, impl, _calls.partial_fit_label(), "partial_fit",
          dtype=_calls.PARTIAL_FIT.dtype, chunks=_calls.PARTIAL_CHUNKS,
          chunk_rows=_calls.PARTIAL_CHUNK_ROWS)
    with bl.numba_threads(bl.N_THREADS):
        run, info = _build(impl, "build_partial_fit")
        benchmark.extra_info.update(info)
        result = bl.time_fixed_call(benchmark, run)
    assert result["samples_seen"] == info["n_rows"]  # every chunk was trained on


PREDICT_CASES = [  # (model, rows, predict_proba calls per round)
    pytest.param("digits", 1, 200, id="digits-1row"),
    pytest.param("fashion", 10000, 1, id="fashion-10000rows"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("model,n_rows,calls", PREDICT_CASES)
def test_predict_proba(benchmark, model, n_rows, calls, impl):
    call = _calls.PREDICT_MODELS[model]
    bl.dataset(call.data, call.dtype)  # skips when Fashion-MNIST is missing
    label = _calls.predict_label(model, n_rows)
    benchmark.group = f"calls: {label}"
    _info(benchmark, impl, label, "predict_proba", dtype=call.dtype, calls=calls,
          n_rows=n_rows)
    with bl.numba_threads(bl.N_THREADS):
        predict, info = _build(impl, "build_predict", model=model, n_rows=n_rows,
                               calls=calls, fit_rows=bl.smoke_rows(benchmark))
        benchmark.extra_info.update(info)
        shape, worst = bl.time_fixed_call(benchmark, predict)
    assert shape == (info["n_rows"], 10)
    assert worst < 1e-4


# ---------------------------------------------------------------------------------------------
# Peak memory of a fit, one fresh process per library
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(_calls.MEMORY_CALLS))
def test_fit_peak_memory(benchmark, tmp_path_factory, name, impl):
    call = _calls.MEMORY_CALLS[name]
    if call.solver == "lbfgs":
        _skip_torch_if(impl, "lbfgs")
    if impl == "torch":
        bl.skip_without_torch()
    bl.dataset(call.data, call.dtype)  # skips when Fashion-MNIST is missing
    X_path, y_path = bl.fashion_npy(tmp_path_factory, call.dtype, bl.smoke_rows(benchmark))
    benchmark.group = f"calls: peak memory of {call}"
    benchmark.extra_info.update(kind="call-memory", workload=str(call), impl=impl, call="fit",
                                threads=bl.N_THREADS, dtype=call.dtype, solver=call.solver)
    spec = {"impl": impl, "name": name, "X": X_path, "y": y_path, "threads": bl.N_THREADS}
    out = {}

    def run():
        proc = subprocess.run([sys.executable, os.path.abspath(_calls.__file__), "memory",
                               json.dumps(spec)], env=_calls.memory_env(), capture_output=True,
                              text=True, timeout=1800, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child ({impl}, {name}) failed ({proc.returncode}):\n"
                               f"{proc.stderr[-4000:]}")
        out.update(json.loads(proc.stdout.strip().splitlines()[-1]))

    # one round: the row's time is the whole child process; what counts is in extra_info
    bl.time_calls(benchmark, run, rounds=1, warmup_rounds=0)
    benchmark.extra_info.update(out)
    assert out["peak_rss_mib"] >= 0
