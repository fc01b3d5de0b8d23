"""Inference speed: ``predict_proba`` on the 10000 Fashion-MNIST test images.

The networks of training workloads 2 (784-100-10) and 4 (784-1024-1024-10), float32 and
float64, for fastmlp (at 1, 2 and all numba threads), scikit-learn and PyTorch (each in its own
worker process, see ``_benchlib``). The weights are random (speed does not depend on them).
"""

import _benchlib as bl
import pytest

NETS = bl.PREDICT_NETS
CASES = [pytest.param("fastmlp", t, id=f"fastmlp-t{t}") for t in bl.THREAD_COUNTS] + [
    pytest.param("sklearn", bl.N_THREADS, id=f"sklearn-t{bl.N_THREADS}"),
    pytest.param("torch", bl.N_THREADS, id=f"torch-t{bl.N_THREADS}"),
]


@pytest.mark.parametrize("impl,threads", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer_sizes", NETS, ids=lambda s: "h" + "x".join(map(str, s[1:-1])))
def test_predict_proba(benchmark, layer_sizes, dtype, impl, threads):
    X, y = bl.dataset("fashion-test", dtype)
    net = "x".join(str(h) for h in layer_sizes[1:-1])
    benchmark.group = f"predict_proba fashion-test h{net} {dtype}"
    benchmark.extra_info.update(
        kind="predict", workload=f"predict h{net} {dtype}", impl=impl, threads=threads,
        dtype=dtype, layer_sizes=list(layer_sizes), n_samples=X.shape[0],
        flops=bl.predict_flops(layer_sizes, X.shape[0]),
    )
    with bl.numba_threads(threads):
        if impl == "fastmlp":
            predict = bl.predictor(impl, layer_sizes, dtype, X, y)
            summary = bl.proba_summary(bl.time_calls(benchmark, predict, rounds=5))
        else:  # in the library's own worker process (see _benchlib)
            summary = bl.time_calls(benchmark, bl.remote_predictor(impl, layer_sizes, dtype),
                                    rounds=5)
    shape, worst = summary
    assert shape == (X.shape[0], layer_sizes[-1])
    assert worst < 1e-4
