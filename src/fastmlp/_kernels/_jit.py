"""The one decorator every kernel uses, so JIT options live in :mod:`fastmlp._config`."""

import numba

from fastmlp import _config


def jit(func=None, *, parallel=False, cache=None, strict=False):
    """Compile ``func`` with the package's options (cf. numba-stats ``_jit_custom``).

    Parameters
    ----------
    func : callable, optional
        The function to compile; when omitted, returns a decorator.
    parallel : bool
        Compile with ``parallel=True`` (for kernels that use ``numba.prange``).
    cache : bool, optional
        Override :data:`fastmlp._config.CACHE` for this kernel.
    strict : bool
        Compile without fast-math (IEEE arithmetic in the order written), for code whose
        rounding must be NumPy's: the optimizer steps, which amplify every rounding difference.
    """
    options = dict(
        nogil=True,  # predict from many Python threads at once
        cache=_config.CACHE if cache is None else cache,
        fastmath=False if strict else _config.FASTMATH,
        error_model="numpy",  # no ZeroDivisionError checks in the hot loops
        parallel=parallel,
    )
    if func is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(func)
