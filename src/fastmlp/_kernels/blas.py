"""BLAS ``gemm`` called directly from compiled code, on strided views.

``np.dot`` inside a kernel covers ``out = A @ B`` on contiguous arrays. Two things it cannot do
pay off in the training loop:

- accumulate (``beta = 1``): BP4 and the SGD step fuse into ``W <- W - lr * a^T delta``, one
  pass over ``W`` instead of a write of the gradient, a read of it and a read-modify-write of
  ``W``;
- read and write a block of columns of a weight matrix in place (its rows are strided by the
  full width), which lets each thread own a slice of a layer's units (``train_units``).

The routine is SciPy's ``cython_blas`` ``sgemm``/``dgemm`` (the library ``np.dot`` in Numba
already uses, held to one thread by :func:`fastmlp._engine.blas_single_threaded`), reached
through :func:`numba.extending.get_cython_function_address`.
"""

import llvmlite.binding
import numpy as np
from numba import types
from numba.extending import get_cython_function_address

from fastmlp._kernels._jit import jit

# The routines are called by symbol name, registered with LLVM here, at import, before any
# kernel that calls them is compiled or loaded from the cache. (A ctypes function pointer would
# bake the address into the machine code, and Numba refuses to cache that.)
for _name in ("sgemm", "dgemm"):
    llvmlite.binding.add_symbol(
        f"fastmlp_{_name}", get_cython_function_address("scipy.linalg.cython_blas", _name))
# Fortran BLAS: every argument by pointer.
_GEMM_SIGNATURE = types.void(*([types.voidptr] * 13))
_sgemm = types.ExternalFunction("fastmlp_sgemm", _GEMM_SIGNATURE)
_dgemm = types.ExternalFunction("fastmlp_dgemm", _GEMM_SIGNATURE)

_N = 78  # ord("N"), stored in an int32 whose first byte Fortran reads as the character
_T = 84  # ord("T")


@jit
def _leading_dim(M, itemsize):
    """Row stride of the row-major view ``M`` in elements (its column-major leading dimension).

    A view with one row may report any stride; BLAS never steps by it but checks it is at
    least the row length, so it is raised to that.
    """
    return max(M.strides[0] // itemsize, M.shape[1], 1)


@jit
def gemm(trans_a, trans_b, alpha, A, B, beta, C):
    """``C <- alpha * op(A) @ op(B) + beta * C`` for row-major 2-D views of one float dtype.

    Parameters
    ----------
    trans_a, trans_b : bool
        ``op(M)`` is ``M.T`` when set, else ``M``.
    alpha, beta : float
        Cast to the arrays' dtype. With ``beta == 0``, ``C`` is not read (may hold garbage).
    A, B, C : 2-D float32 or float64 arrays
        Each with unit stride along its last axis (any row stride: a block of columns of a
        larger C-contiguous matrix is fine). ``C`` is ``(m, n)``, ``op(A)`` ``(m, k)`` and
        ``op(B)`` ``(k, n)``.

    Raises
    ------
    ValueError
        If the shapes do not agree or a view is not unit-stride along its rows.
    """
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    a_rows = A.shape[1] if trans_a else A.shape[0]
    b_rows = B.shape[1] if trans_b else B.shape[0]
    b_cols = B.shape[0] if trans_b else B.shape[1]
    if a_rows != m or b_rows != k or b_cols != n:
        raise ValueError("gemm: shapes of op(A), op(B) and C do not agree")
    it = C.itemsize
    if A.itemsize != it or B.itemsize != it:
        raise ValueError("gemm: A, B and C must share one dtype")
    if m == 0 or n == 0:
        return
    if k == 0:
        # BLAS would scale C by beta; lda/ldb of an empty view are not worth the risk
        for i in range(m):
            for j in range(n):
                C[i, j] = 0 if beta == 0 else beta * C[i, j]
        return
    if ((A.shape[1] > 1 and A.strides[1] != it) or (B.shape[1] > 1 and B.strides[1] != it)
            or (C.shape[1] > 1 and C.strides[1] != it)):
        raise ValueError("gemm: every view needs unit stride along its rows")
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, and a row-major matrix
    # is its own transpose in column-major order: call gemm with the operands swapped.
    ints = np.empty(8, np.int32)
    ints[0] = _T if trans_b else _N
    ints[1] = _T if trans_a else _N
    ints[2] = n
    ints[3] = m
    ints[4] = k
    ints[5] = _leading_dim(B, it)
    ints[6] = _leading_dim(A, it)
    ints[7] = _leading_dim(C, it)
    scalars = np.empty(2, C.dtype)
    scalars[0] = alpha
    scalars[1] = beta
    args = (ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes, ints[3:].ctypes, ints[4:].ctypes,
            scalars[0:].ctypes, B.ctypes, ints[5:].ctypes, A.ctypes, ints[6:].ctypes,
            scalars[1:].ctypes, C.ctypes, ints[7:].ctypes)
    if it == 4:
        _sgemm(*args)
    else:
        _dgemm(*args)
