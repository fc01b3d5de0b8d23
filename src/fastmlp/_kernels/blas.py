"""BLAS ``gemm`` called directly from compiled code, on strided views.

``np.dot`` inside a kernel covers ``out = A @ B`` on contiguous arrays. Two things it cannot do
pay off in the training loop:

- accumulate (``beta = 1``): BP4 and the SGD step fuse into ``W <- W - lr * a^T delta``, one
  pass over ``W`` instead of a write of the gradient, a read of it and a read-modify-write of
  ``W``;
- read and write a block of columns of a weight matrix in place (its rows are strided by the
  full width), which lets each thread own a slice of a layer's units (``train_units``).

The routine comes from NumPy's own OpenBLAS when NumPy's wheel bundles one (its 64-bit-integer
``scipy_sgemm_64_``), else from SciPy's ``cython_blas`` (the library ``np.dot`` in Numba calls).
NumPy's build (OpenBLAS 0.3.31 against SciPy's 0.3.30 here) was measured faster on the
engine's small float32 products, one thread each, 2000 calls in one compiled loop: 26.2 us
against 34.6 for 32 x 784 x 50, 22.5 against 26.5 for the fused update 784 x 32 x 50, 1.39
against 1.89 for 32 x 64 x 32 (float64: the same to 12% faster). A Fashion-MNIST epoch, batch
32, float32, went from 0.142 s to 0.117 s. Both libraries are held to one thread by
:func:`fastmlp._engine.blas_single_threaded`. ``FASTMLP_BLAS=scipy`` forces SciPy's;
:data:`BLAS_LIBRARY` names the one in use.
"""

import ctypes
import glob
import os

import llvmlite.binding
import numpy as np
from numba import types
from numba.extending import get_cython_function_address

from fastmlp._kernels._jit import jit


def _numpy_openblas():
    """``{"sgemm": address, "dgemm": address}`` in NumPy's bundled OpenBLAS, or None."""
    root = os.path.dirname(np.__file__)
    for pattern in (os.path.join(root + ".libs", "*openblas*"),  # Linux, Windows wheels
                    os.path.join(root, ".dylibs", "*openblas*")):  # macOS wheels
        for path in sorted(glob.glob(pattern)):
            try:
                lib = ctypes.CDLL(path)  # already loaded by NumPy: the same handle
            except OSError:
                continue
            found = {}
            for name in ("sgemm", "dgemm"):
                for symbol in (f"scipy_{name}_64_", f"{name}_64_", f"scipy_{name}_", f"{name}_"):
                    if hasattr(lib, symbol):
                        found[name] = ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
                        break
            if len(found) == 2:
                return found, path
    return None, None


def _thread_setters(path):
    """``(get_num_threads, set_num_threads)`` of the OpenBLAS at ``path``, or None.

    Only for an OpenBLAS with its own (pthreads) pool, whose thread count is one process-wide
    setting: a ctypes call of about 1 us, where threadpoolctl's ``limit`` lists every library
    on every call (80-100 us). An OpenMP build keeps a count per calling thread; None then.
    """
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix, suffix in (("scipy_", "64_"), ("", "64_"), ("scipy_", ""), ("", "")):
        get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
        put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
        parallel = getattr(lib, f"{prefix}openblas_get_parallel{suffix}", None)
        if get is not None and put is not None and parallel is not None:
            get.restype = parallel.restype = ctypes.c_int
            get.argtypes = parallel.argtypes = []
            put.restype = None
            put.argtypes = [ctypes.c_int]
            return (get, put) if parallel() == 1 else None  # 1: pthreads, 2: OpenMP
    return None


def _choose_gemm():
    addresses, path = (None, None)
    if os.environ.get("FASTMLP_BLAS", "numpy") != "scipy":
        addresses, path = _numpy_openblas()
    if addresses is None:
        addresses = {name: get_cython_function_address("scipy.linalg.cython_blas", name)
                     for name in ("sgemm", "dgemm")}
        path = "scipy.linalg.cython_blas"
    # The kernels call the routines by symbol name, registered with LLVM here, at import,
    # before any kernel that calls them is compiled or loaded from the cache. (A ctypes
    # function pointer would bake the address into the machine code, which Numba will not
    # cache, and which would not follow the choice above from one process to the next.)
    for name, address in addresses.items():
        llvmlite.binding.add_symbol(f"fastmlp_{name}", address)
    return path


#: The shared library (or SciPy module) whose ``sgemm``/``dgemm`` :func:`gemm` calls.
BLAS_LIBRARY = _choose_gemm()
#: ``(get_num_threads, set_num_threads)`` of that library when it is a pthreads OpenBLAS, for
#: :func:`fastmlp._engine.blas_single_threaded`; None otherwise (threadpoolctl is used).
BLAS_THREADS = None if BLAS_LIBRARY.startswith("scipy.") else _thread_setters(BLAS_LIBRARY)
# Fortran BLAS: every argument by pointer.
_GEMM_SIGNATURE = types.void(*([types.voidptr] * 13))
_sgemm = types.ExternalFunction("fastmlp_sgemm", _GEMM_SIGNATURE)
_dgemm = types.ExternalFunction("fastmlp_dgemm", _GEMM_SIGNATURE)

_N = 78  # ord("N"): Fortran reads the first byte at the pointer as the character
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
    # Integers are stored as int64: a 64-bit-integer BLAS reads them whole, a 32-bit one reads
    # the low half, which on the little-endian machines Numba runs on is the same value.
    ints = np.empty(8, np.int64)
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
