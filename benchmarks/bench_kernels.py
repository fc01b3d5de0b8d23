"""The engine thresholds of ``fastmlp._config``, measured.

(a) ``BLAS_MIN_FLOPS``: ``fastmlp._kernels.linalg`` sends a product of ``m * k * n``
    multiply-adds to BLAS (``fastmlp._kernels.blas.gemm``) from that size on, and runs smaller
    ones as compiled loops. Here both paths -- linalg's own loops and its ``gemm`` calls --
    are timed on the products of small networks and on a sweep of cubes, for the three
    products the engine uses (``A @ B`` in the forward pass, ``A.T @ B`` in BP4, ``A @ B.T`` in
    BP2), BLAS on one thread as in the engine.
    Each round calls the kernel ``calls`` times inside one compiled loop, so Python's call
    overhead is not measured.
(b) ``PARALLEL_MIN_FLOPS``: a batch of ``batch * sum(fan_in * fan_out)`` multiply-adds is split
    over numba's threads from that size on. Here whole epochs of ``Trainer`` are timed with
    the serial kernel and with the parallel one (all threads) at several batch and network
    sizes. ``UNIT_SPLIT_MAX_BATCH``: for one hidden layer, the parallel kernel splits the
    hidden units over the threads (``units``) instead of the batch's rows (``parallel``) in
    batches up to that size; both are timed.

The terminal summary (``conftest.py``) and ``report.py`` turn the rows into the thresholds the
numbers support.
"""

import functools

import _benchlib as bl
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastmlp import _config
from fastmlp._kernels._jit import jit
from fastmlp._kernels.blas import gemm
from fastmlp._kernels.linalg import loop_nn, loop_nt, loop_tn


# -- (a) compiled loops vs BLAS -----------------------------------------------------------------
# The engine's own loops and BLAS calls (fastmlp/_kernels/linalg.py) without its size test;
# cache=False for the wrappers because closures over a kernel (below) cannot be cached.
@jit(cache=False)
def blas_nn(A, B, out):
    gemm(False, False, 1.0, A, B, 0.0, out)


@jit(cache=False)
def blas_tn(A, B, out):
    gemm(True, False, 1.0, A, B, 0.0, out)


@jit(cache=False)
def blas_nt(A, B, out):
    gemm(False, True, 1.0, A, B, 0.0, out)


LOOPS = {"nn": loop_nn, "tn": loop_tn, "nt": loop_nt}
BLAS = {"nn": blas_nn, "tn": blas_tn, "nt": blas_nt}


def _repeat(kernel):
    @jit(cache=False)
    def repeat(A, B, out, calls):
        for _ in range(calls):
            kernel(A, B, out)

    return repeat


KERNELS = {
    (op, impl): _repeat((LOOPS if impl == "loop" else BLAS)[op])
    for op in ("nn", "tn", "nt") for impl in ("loop", "blas")
}
OP_NAMES = {"nn": "A @ B (forward)", "tn": "A.T @ B (BP4)", "nt": "A @ B.T (BP2)"}

#: (m, k, n): the products of small networks, then cubes around the threshold.
SHAPES = sorted(
    {(32, 64, 32), (32, 32, 10), (200, 64, 32), (32, 100, 10), (200, 100, 10), (32, 784, 30),
     (32, 784, 100)} | {(s, s, s) for s in (8, 16, 24, 32, 48, 64, 96)},
    key=lambda s: (s[0] * s[1] * s[2], s),
)


def _operands(op, m, k, n, dtype):
    """Arrays such that every op computes ``m * k * n`` multiply-adds."""
    rng = np.random.default_rng(0)
    r = lambda *shape: rng.random(shape).astype(dtype)  # noqa: E731
    if op == "nn":
        return r(m, k), r(k, n), np.empty((m, n), dtype)
    if op == "tn":
        return r(m, k), r(m, n), np.empty((k, n), dtype)
    return r(m, n), r(k, n), np.empty((m, k), dtype)


@pytest.mark.parametrize("impl", ["loop", "blas"])
@pytest.mark.parametrize("op", ["nn", "tn", "nt"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul(benchmark, shape, dtype, op, impl):
    m, k, n = shape
    A, B, out = _operands(op, m, k, n, dtype)
    macs = m * k * n
    calls = max(1, min(200_000, round(2e7 / macs)))  # ~10-40 ms a round
    repeat = KERNELS[op, impl]
    benchmark.group = f"matmul {OP_NAMES[op]} {dtype}"
    benchmark.extra_info.update(kind="matmul", impl=impl, op=op, dtype=dtype, m=m, k=k, n=n,
                                macs=macs, calls=calls,
                                blas_min_flops=_config.BLAS_MIN_FLOPS)
    with threadpool_limits(1, user_api="blas"):  # the engine holds BLAS to one thread
        repeat(A, B, out, 1)  # compile
        bl.time_calls(benchmark, repeat, args=(A, B, out, calls), rounds=5)
    ref = A @ B if op == "nn" else A.T @ B if op == "tn" else A @ B.T
    np.testing.assert_allclose(out, ref, rtol=1e-4 if dtype == "float32" else 1e-10)


# -- (b) serial vs parallel epoch -------------------------------------------------------------
#: (layer sizes, batch size): batches from ~40 thousand to ~16 million multiply-adds.
EPOCHS = [
    ((64, 16, 10), 32), ((64, 16, 10), 128),
    ((64, 32, 10), 32), ((64, 32, 10), 64), ((64, 32, 10), 128), ((64, 32, 10), 256),
    ((784, 30, 10), 8), ((784, 30, 10), 32),
    ((784, 100, 10), 16), ((784, 100, 10), 32), ((784, 100, 10), 64), ((784, 100, 10), 128),
    ((784, 100, 10), 200),
]


@functools.cache
def _epoch_data(n_in, n_out, n_rows=60000):
    """Random float32 inputs and one-hot targets, as many rows as Fashion-MNIST's training set."""
    rng = np.random.default_rng(0)
    X = rng.random((n_rows, n_in), dtype=np.float32)
    Y = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, n_rows)]
    return X, Y


@pytest.mark.parametrize("impl", ["serial", "parallel", "units"])
@pytest.mark.parametrize("layer_sizes,batch_size", EPOCHS,
                         ids=[f"{'-'.join(map(str, s))}-b{b}" for s, b in EPOCHS])
def test_epoch_parallel(benchmark, monkeypatch, layer_sizes, batch_size, impl):
    from fastmlp._engine import Trainer

    if impl != "serial" and bl.engine_parallel_width() < 2:
        pytest.skip(f"the engine runs serially here ({bl.N_THREADS} numba threads, or no fast "
                    "threading layer, or FASTMLP_PARALLEL=0)")
    macs = sum(a * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:], strict=False))
    # about 3 GFLOP per timed epoch, whole batches, 16 batches at least, 60000 rows at most
    n_batches = max(16, min(60000 // batch_size, round(3e9 / (6 * macs) / batch_size)))
    if benchmark.disabled:
        n_batches = 16  # CI smoke run: the body once, quickly
    n = n_batches * batch_size
    X, Y = _epoch_data(layer_sizes[0], layer_sizes[-1])
    model = bl.fastmlp_model(layer_sizes, "float32")
    # force the engine's choice: serial, rows split over the threads, or hidden units
    unit_max_batch = _config.UNIT_SPLIT_MAX_BATCH
    monkeypatch.setattr(_config, "PARALLEL_MIN_FLOPS", 1 << 62 if impl == "serial" else 0)
    monkeypatch.setattr(_config, "UNIT_SPLIT_MAX_BATCH", 1 << 62 if impl == "units" else 0)
    trainer = Trainer(model._network, batch_size, "sgd", learning_rate=0.1)
    monkeypatch.undo()
    if impl == "units" and trainer.split != "units":
        pytest.skip("not a shape the hidden units split over (one hidden layer, enough units)")
    lanes = bl.trainer_lanes(trainer)
    assert (lanes > 1) == (impl != "serial")
    benchmark.group = "epoch: serial vs parallel kernel (float32, SGD)"
    benchmark.extra_info.update(
        kind="parallel", impl=impl, layer_sizes=list(layer_sizes), batch_size=batch_size,
        n_samples=n, threads=bl.N_THREADS if lanes > 1 else 1, lanes=lanes,
        macs_per_batch=batch_size * macs,
        flops=bl.train_flops(layer_sizes, n), parallel_min_flops=_config.PARALLEL_MIN_FLOPS,
        unit_split_max_batch=unit_max_batch)
    # rows drawn at random from all 60000, as a shuffled epoch gathers them (a sequential
    # order, or a small X that fits in cache, flatters the serial kernel)
    order = np.random.default_rng(1).permutation(X.shape[0])[:n]

    def epoch():
        trainer.epoch(model._theta, X, Y, order)

    bl.time_calls(benchmark, epoch, rounds=bl.ROUNDS)
