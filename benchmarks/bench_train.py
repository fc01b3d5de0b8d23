"""Training speed: seconds per epoch of fastmlp, scikit-learn and PyTorch on the same workloads.

Workloads (``_benchlib.WORKLOADS``):

1. digits (1797 x 64), hidden (32,), batch 32, float64, SGD -- overhead-bound;
2. Fashion-MNIST (60000 x 784), hidden (100,), SGD, batch 32 and 200, float32 and float64;
3. the same with Adam;
4. hidden (1024, 1024), batch 256, float32 and float64, on the first 10000 Fashion samples --
   compute-bound.

Every row times one epoch (see ``_benchlib``); fastmlp rows are run at 1, 2 (and all) numba
threads (``numba.set_num_threads``; the engine splits a batch into as many lanes as numba's pool
has threads, whatever that setting) and once with the serial kernel forced ("fastmlp-serial").
``extra_info["flops"]`` holds the epoch's FLOPs, so the summary can give GFLOP/s and the
fraction of the measured GEMM peak (``bench_gemm.py``).

The "products" rows (``products-t1``, ``products-t2``, ...: one per fastmlp thread count) time
the matrix products of the same epoch alone, by numpy, batch by batch on the same rows and
batch size, numpy's BLAS held to the row's threads (``_benchlib.products_epoch``): the summary
sets fastmlp's epoch at t threads beside them ("vs the BLAS's products tT").
"""

import _benchlib as bl
import pytest
from threadpoolctl import threadpool_limits

CASES = (
    [pytest.param("fastmlp", t, "auto", id=f"fastmlp-t{t}") for t in bl.THREAD_COUNTS]
    # the serial kernel on one thread, whatever PARALLEL_MIN_FLOPS says: does splitting pay?
    + [pytest.param("fastmlp", 1, "serial", id="fastmlp-serial")]
    + [pytest.param("sklearn", bl.N_THREADS, "auto", id=f"sklearn-t{bl.N_THREADS}"),
       pytest.param("torch", bl.N_THREADS, "auto", id=f"torch-t{bl.N_THREADS}")]
    # the bound: numpy's BLAS on the epoch's products alone, at each fastmlp thread count
    + [pytest.param("products", t, "auto", id=f"products-t{t}") for t in bl.THREAD_COUNTS]
)


@pytest.mark.parametrize("impl,threads,kernel", CASES)
@pytest.mark.parametrize("workload", bl.WORKLOADS, ids=str)
def test_train_epoch(benchmark, workload, impl, threads, kernel):
    X, y = bl.dataset(workload.data, workload.dtype)
    benchmark.group = workload.group
    benchmark.extra_info.update(
        kind="train", workload=str(workload), impl=impl, threads=threads,
        dtype=workload.dtype, batch_size=workload.batch_size, solver=workload.solver,
        layer_sizes=list(workload.layer_sizes), n_samples=X.shape[0],
        flops=bl.train_flops(workload.layer_sizes, X.shape[0]),
    )
    if kernel != "auto":
        benchmark.extra_info["kernel"] = kernel
    if impl == "products":
        epoch, info = bl.products_epoch(workload, X)
        # the loop multiplies exactly the FLOPs the GFLOP/s column counts for an epoch
        assert info["products_flops"] == benchmark.extra_info["flops"]
        benchmark.extra_info.update(info)
        with threadpool_limits(threads, user_api="blas"):
            estimate = bl.time_epochs(benchmark, epoch, X.shape[0], workload.batch_size)
        if estimate is not None:
            benchmark.extra_info["estimated_s"] = estimate
        return
    with bl.numba_threads(threads):
        if impl == "fastmlp":
            epoch, info = bl.fastmlp_epoch(workload, X, y, kernel=kernel)
        else:  # in the library's own worker process (see _benchlib)
            epoch, info, n_rows = bl.remote_epoch(impl, workload)
            assert n_rows == X.shape[0]
        benchmark.extra_info.update(info)
        estimate = bl.time_epochs(benchmark, epoch, X.shape[0], workload.batch_size)
    if estimate is not None:
        benchmark.extra_info["estimated_s"] = estimate
