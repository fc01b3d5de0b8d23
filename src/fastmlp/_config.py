"""Compilation options and the dtype policy, decided in one place.

Every compiled kernel is decorated through :func:`fastmlp._kernels._jit.jit`, which reads
these settings; nothing else in the package hard-codes a Numba flag.

Dtype policy: the engine computes in the dtype it is given, float32 or float64, end to end.
The Python layer casts inputs (and scalar hyper-parameters) to the model's dtype before any
kernel is called, so a float32 model never silently promotes to float64.
"""

import os

import numpy as np

#: Compiled kernels are cached on disk (``__pycache__`` beside the sources, or
#: ``NUMBA_CACHE_DIR``) so that only the first import of a fresh install pays compile time.
CACHE = os.environ.get("FASTMLP_CACHE", "1") != "0"

#: LLVM fast-math flags. ``nnan`` and ``ninf`` are left out on purpose: the engine must see a
#: NaN or an infinity to report divergence, and those flags would let LLVM assume there are none.
#: ``reassoc`` lets sums over a row vectorise. Set ``FASTMLP_FASTMATH=0`` to compile strict IEEE.
FASTMATH = (
    {"nsz", "arcp", "contract", "afn", "reassoc"}
    if os.environ.get("FASTMLP_FASTMATH", "1") != "0"
    else False
)

#: The float dtypes the engine is compiled for.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype):
    """Return ``dtype`` as a supported numpy float dtype, or raise ValueError.

    Parameters
    ----------
    dtype : str or numpy dtype
        ``"float32"`` or ``"float64"`` (or the numpy equivalents).

    Returns
    -------
    numpy.dtype
    """
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from exc
    if dt not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt
