"""The limit: BLAS matrix products through numpy, all threads, float32 and float64.

The 2048 x 2048 x 2048 product gives each dtype's GEMM peak on this machine (also measured on
one thread); the training summary divides each row's GFLOP/s by it. The forward products of
the training workloads (batch x fan_in x fan_out) show what BLAS reaches on those shapes, and
those of the ``predict_proba`` rows (10000 x fan_in x fan_out) give the time numpy's BLAS
needs for a forward pass's products alone, which the predict summary sets beside fastmlp's
whole call.
"""

import _benchlib as bl
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

PEAK = (2048, 2048, 2048)


def _shapes():
    shapes = {PEAK}
    for w in bl.WORKLOADS:
        shapes.update(bl.gemm_shapes(w))
    shapes.update(bl.predict_gemm_shapes())
    return sorted(shapes, key=lambda s: s[0] * s[1] * s[2])


CASES = [pytest.param(s, bl.N_THREADS, id="x".join(map(str, s)) + f"-t{bl.N_THREADS}")
         for s in _shapes()]
if bl.N_THREADS > 1:
    CASES.append(pytest.param(PEAK, 1, id="x".join(map(str, PEAK)) + "-t1"))


@pytest.mark.parametrize("shape,threads", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm(benchmark, dtype, shape, threads):
    m, k, n = shape
    rng = np.random.default_rng(0)
    A = rng.random((m, k)).astype(dtype)
    B = rng.random((k, n)).astype(dtype)
    out = np.empty((m, n), dtype=dtype)
    flops = 2 * m * k * n
    benchmark.group = f"gemm {dtype}"
    benchmark.extra_info.update(kind="gemm", impl="numpy", dtype=dtype, m=m, k=k, n=n,
                                threads=threads, flops=flops, peak=shape == PEAK)
    # about 50 ms a round at 20 GFLOP/s
    iterations = max(1, min(10000, round(1e9 / flops)))
    with threadpool_limits(threads, user_api="blas"):
        bl.time_calls(benchmark, np.dot, args=(A, B, out), iterations=iterations,
                      rounds=bl.ROUNDS)
