"""The one decorator every kernel uses, so JIT options live in :mod:`fastmlp._config`.

It also keeps the compile cache honest. Numba stamps a cached kernel with a digest of its own
source file only, so a kernel whose callee in another file changed, or that was compiled
under other settings (``FASTMLP_FASTMATH``, ``FASTMLP_BLAS_MIN_FLOPS``), would be loaded as
it was. Every kernel's stamp here also carries :data:`KERNELS_STAMP`, a digest of all the
kernel sources and those settings: a change to any of them compiles afresh.
"""

import hashlib
import os

import numba
import numba.core.caching

from fastmlp import _config

KERNELS_DIR = os.path.dirname(os.path.abspath(__file__))


def kernels_stamp(folder=KERNELS_DIR, fastmath=None, blas_min_flops=None):
    """Digest of what compiled kernels depend on beyond their own file.

    Parameters
    ----------
    folder : str
        The kernels' package: every ``.py`` file in it is read.
    fastmath, blas_min_flops
        The compile-time settings (default: :mod:`fastmlp._config`'s).

    Returns
    -------
    str
        A SHA-256 hex digest.
    """
    fastmath = _config.FASTMATH if fastmath is None else fastmath
    blas_min_flops = _config.BLAS_MIN_FLOPS if blas_min_flops is None else blas_min_flops
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as source:
                digest.update(name.encode() + b"\0" + source.read() + b"\0")
    settings = (sorted(fastmath) if fastmath else False, int(blas_min_flops))
    digest.update(repr(settings).encode())
    return digest.hexdigest()


#: :func:`kernels_stamp` of this install and process, added to every kernel's cache stamp.
KERNELS_STAMP = kernels_stamp()


class KernelsCacheLocator(numba.core.caching._CacheLocator):
    """Numba's own cache locator for a kernel, its stamp joined with :data:`KERNELS_STAMP`.

    The folder, the file names and the disambiguation are the locator's Numba would choose;
    only freshness is widened.
    """

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        # what Numba reads of a locator besides its interface (``_py_file`` in the warning
        # for a kernel it cannot cache) is the inner locator's
        return getattr(self._inner, name)

    def ensure_cache_path(self):
        self._inner.ensure_cache_path()

    def get_cache_path(self):
        return self._inner.get_cache_path()

    def get_source_stamp(self):
        return (self._inner.get_source_stamp(), KERNELS_STAMP)

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != KERNELS_DIR:
            return None  # another library's function: Numba's locators, untouched
        for locator_class in _locator_classes():
            if locator_class is not cls:
                inner = locator_class.from_function(py_func, py_file)
                if inner is not None:
                    return cls(inner)
        return None


def _locator_classes():
    """Numba's list of cache locator classes (``CacheImpl``; ``_CacheImpl`` before 0.61)."""
    caching = numba.core.caching
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    return getattr(impl, "_locator_classes", None)


def _install_locator():
    """Put :class:`KernelsCacheLocator` first in Numba's list, before any kernel is defined.

    Numba tries the list in order for every cached function, and ours declines all but the
    kernels. Should a Numba version lack the list, kernels are cached with Numba's own stamp.
    """
    classes = _locator_classes()
    if isinstance(classes, list) and KernelsCacheLocator not in classes:
        classes.insert(0, KernelsCacheLocator)


_install_locator()


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
