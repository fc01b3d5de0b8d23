"""Whole calls of ``fastmlp.MLPRegressor`` vs scikit-learn's ``MLPRegressor`` (and PyTorch
where it has an equivalent), measured in the same run (issue 11; bodies in ``_regress.py``).

1. a whole ``fit`` from a fresh estimator, ``random_state=0``, ``n_iter_no_change`` larger
   than ``max_iter`` (every library runs exactly ``max_iter`` epochs; checked on ``n_iter_``),
   other parameters the defaults (squared error, relu, alpha 1e-4, learning rate 1e-3):

   * diabetes (442 x 10, X and y standardised, float64), hidden (32,), SGD, batch 32, 50
     epochs: overhead-bound, target >= 10x scikit-learn;
   * ``make_regression(100000, 200, n_targets=3, random_state=0)`` (X float32, y scaled to
     unit variance), hidden (256,), Adam, batch 200, 3 epochs: target >= 2x;
   * the same data, L-BFGS, 20 iterations: target >= 1.5x; no PyTorch row
     (``torch.optim.LBFGS`` is another algorithm).

   PyTorch: a plain loop with the same network, optimizer, batch and epochs, half the mean
   squared error, identity output (``_regress.torch_fit``);
2. ``predict`` of a fitted model (the make_regression data, hidden (256,), one Adam epoch,
   fitted before the timing) on 1 row (200 calls a round, the time is per call) and on 10000
   rows; fastmlp vs scikit-learn.

Timing as in ``bench_calls.py``: fastmlp in this process at numba's default thread count,
scikit-learn and PyTorch in their worker processes on as many threads; every row warmed up
first (the fits on their first ``16 * batch`` rows, which also estimates the round), each row's
best round reported. With ``--benchmark-disable`` every body runs once, the fits (and the fit
a ``predict`` row starts from) on ``FASTMLP_BENCH_SMOKE_ROWS`` rows.
"""


import _benchlib as bl
import _regress
import pytest

IMPLS = list(_regress.LIBRARIES)


def _build(impl, builder, **kwargs):
    """``(body, info)`` of ``_regress.<builder>``: here for fastmlp, in a worker otherwise."""
    if impl == "fastmlp":
        return getattr(_regress, builder)(impl, **kwargs)
    return bl.remote_build(impl, f"_regress:{builder}", **kwargs)


def _info(benchmark, impl, workload, call, **more):
    benchmark.extra_info.update(kind="regress-call", workload=workload, impl=impl, call=call,
                                threads=bl.N_THREADS, **more)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(_regress.FIT_CALLS))
def test_fit(benchmark, name, impl):
    call = _regress.FIT_CALLS[name]
    if call.solver == "lbfgs" and impl == "torch":
        pytest.skip(_regress.TORCH_NO_EQUIVALENT["lbfgs"])
    data_rows = bl.smoke_rows(benchmark)  # the smoke run makes only the rows it fits on
    X, y = _regress.regress_data(call.data, call.dtype, data_rows)
    benchmark.group = f"regressor: {call}"
    _info(benchmark, impl, str(call), "fit", dtype=call.dtype, solver=call.solver,
          batch_size=call.batch(X.shape[0]), max_iter=call.max_iter, target=call.target,
          layer_sizes=[X.shape[1], *call.hidden, 1 if y.ndim == 1 else y.shape[1]],
          n_samples=X.shape[0])
    result = {}
    with bl.numba_threads(bl.N_THREADS):
        fit, info = _build(impl, "build_fit", name=name, data_rows=data_rows)
        benchmark.extra_info.update(info)

        def timed(rows=None):
            result.update(fit(rows=rows))
            return result["n_iter"]

        # warm-up: the same fit on the first 16 batches' rows (estimates the whole fit)
        estimate = bl.time_epochs(benchmark, timed, X.shape[0], call.batch(X.shape[0]))
    if estimate is not None:
        benchmark.extra_info["estimated_s"] = estimate
    benchmark.extra_info.update(n_iter=result["n_iter"], loss=result["loss"])
    # every library did the same work: max_iter epochs (iterations for L-BFGS)
    assert result["n_iter"] == call.max_iter, result


@pytest.mark.parametrize("impl", ["fastmlp", "sklearn"])
@pytest.mark.parametrize("case", list(_regress.PREDICT_CASES))
def test_predict(benchmark, case, impl):
    n_rows, calls = _regress.PREDICT_CASES[case]
    label = _regress.predict_label(n_rows)
    benchmark.group = f"regressor: {label}"
    _info(benchmark, impl, label, "predict", dtype=_regress.PREDICT_MODEL.dtype, calls=calls,
          n_rows=n_rows)
    with bl.numba_threads(bl.N_THREADS):
        run, info = _build(impl, "build_predict", n_rows=n_rows, calls=calls,
                           fit_rows=bl.smoke_rows(benchmark))
        benchmark.extra_info.update(info)
        shape, finite = bl.time_fixed_call(benchmark, run)
    assert shape == (info["n_rows"], 3)
    assert finite
