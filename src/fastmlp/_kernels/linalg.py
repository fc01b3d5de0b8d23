"""Matrix products: BLAS for large shapes, compiled loops for small ones.

A BLAS call from compiled code costs a few microseconds however small the matrices are; for
the products of a small network (digits: 32 x 64 x 32) that overhead dominates, and a plain
loop that vectorises along the last axis is faster. ``_config.BLAS_MIN_FLOPS`` is the size
(``m * k * n`` multiply-adds) from which BLAS wins, chosen by ``benchmarks/bench_kernels.py``.
BLAS is :func:`fastmlp._kernels.blas.gemm` (NumPy's OpenBLAS where it has one). The loops
are separate functions so that the benchmark times exactly them, without the size test.
"""


from fastmlp._config import BLAS_MIN_FLOPS
from fastmlp._kernels._jit import jit
from fastmlp._kernels.blas import gemm


@jit
def loop_nn(A, B, out):
    """``out = A @ B`` by compiled loops (vectorised along ``out``'s rows)."""
    m, k = A.shape
    n = B.shape[1]
    out[:] = 0
    for i in range(m):
        for p in range(k):
            a = A[i, p]
            for j in range(n):
                out[i, j] += a * B[p, j]


@jit
def loop_tn(A, B, out, alpha=1.0, beta=0.0):
    """``out = alpha * A.T @ B + beta * out`` by compiled loops; ``beta`` is 0 or 1."""
    m, k = A.shape
    n = B.shape[1]
    if beta == 0:
        out[:] = 0
    T = out.dtype.type
    for i in range(m):
        for p in range(k):
            a = T(alpha) * A[i, p]
            for j in range(n):
                out[p, j] += a * B[i, j]


@jit
def loop_nt(A, B, out):
    """``out = A @ B.T`` by compiled loops (a dot product per entry)."""
    m, n = A.shape
    k = B.shape[0]
    for i in range(m):
        for p in range(k):
            s = out.dtype.type(0)
            for j in range(n):
                s += A[i, j] * B[p, j]
            out[i, p] = s


@jit
def matmul(A, B, out):
    """``out = A @ B`` for ``A`` (m, k), ``B`` (k, n), ``out`` (m, n) C-contiguous."""
    m, k = A.shape
    n = B.shape[1]
    if m * k * n >= BLAS_MIN_FLOPS:
        gemm(False, False, 1.0, A, B, 0.0, out)
    else:
        loop_nn(A, B, out)


@jit
def matmul_tn(A, B, out, alpha=1.0, beta=0.0):
    """``out = alpha * A.T @ B + beta * out`` for ``A`` (m, k), ``B`` (m, n), ``out`` (k, n).

    ``out`` is C-contiguous; ``beta`` is 0 (overwrite) or 1 (accumulate: BP4 fused into an
    SGD step).
    """
    m, k = A.shape
    n = B.shape[1]
    if m * k * n >= BLAS_MIN_FLOPS:
        gemm(True, False, alpha, A, B, beta, out)
    else:
        loop_tn(A, B, out, alpha, beta)


@jit
def matmul_nt(A, B, out):
    """``out = A @ B.T`` for ``A`` (m, n), ``B`` (k, n), ``out`` (m, k) C-contiguous."""
    m, n = A.shape
    k = B.shape[0]
    if m * k * n >= BLAS_MIN_FLOPS:
        gemm(False, True, 1.0, A, B, 0.0, out)
    else:
        loop_nt(A, B, out)
