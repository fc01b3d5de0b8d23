"""The one decorator every kernel uses, so JIT options live in :mod:`fastmlp._config`.

It also keeps the compile cache honest. Numba stamps a cached kernel with a digest of its own
source file only, so a kernel whose callee in another file changed, or that was compiled
under other settings (``FASTMLP_FASTMATH``, ``FASTMLP_BLAS_MIN_FLOPS``), would be loaded as
it was. Every kernel's stamp here also carries :data:`KERNELS_STAMP`, a digest of all the
kernel sources and those settings: a change to any of them compiles afresh.

And it loads the machine code a wheel ships (:class:`KernelCache`). A wheel's build compiles
the kernels for a portable CPU level, :data:`PORTABLE_CPU`, into the package's
``_shipped_kernels`` folder (``fastmlp.precompile.ship``). Numba keys a cache entry by the
host's CPU name and features, so it would never find them on another CPU; a kernel here looks
them up under the portable key instead, when this host has every feature that level needs,
and the Numba, Python, kernel sources and settings are the ones the wheel was built with.
Anything else compiles as before. The local cache (``fastmlp compile``, native code for this
CPU) is looked up first.
"""

import hashlib
import json
import os
import platform
import sys
from collections import namedtuple

import llvmlite.binding
import numba
import numba.core.caching
import numba.core.dispatcher

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


# -- the machine code a wheel ships ------------------------------------------------------------

#: The CPU level the shipped kernels are compiled for (``NUMBA_CPU_NAME``, with no extra
#: ``NUMBA_CPU_FEATURES``): AVX2, FMA and BMI2, nearly every x86 server and laptop since 2013.
PORTABLE_CPU = "x86-64-v3"

#: LLVM's names for the features :data:`PORTABLE_CPU` requires (x86-64-v2's and v3's): a host
#: that has them all runs the shipped code.
PORTABLE_FEATURES = ("cx16", "sahf", "popcnt", "sse3", "ssse3", "sse4.1", "sse4.2", "avx",
                     "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave")

#: Where an installed wheel keeps its kernels (read-only).
PACKAGE_SHIPPED_DIR = os.path.join(os.path.dirname(KERNELS_DIR), "_shipped_kernels")

#: The folder this process reads them from: the package's, or another of the same form that
#: ``FASTMLP_SHIPPED_DIR`` names (the tests and benchmarks build their own).
SHIPPED_DIR = os.environ.get("FASTMLP_SHIPPED_DIR") or PACKAGE_SHIPPED_DIR

#: The file in that folder that says what the kernels were built with and for.
BUILD_INFO = "BUILD.json"

#: Set only while a wheel is built: the folder the kernels compiled in this process go to,
#: under the content stamp instead of the local cache (``fastmlp.precompile.ship``).
SHIP_INTO = os.environ.get("FASTMLP_SHIP_INTO") or None

#: The source stamp of shipped entries: content, never file times (pip does not keep them).
SHIPPED_STAMP = ("fastmlp shipped kernels", KERNELS_STAMP)

#: What this process's kernels came from so far: counted by :class:`KernelCache`.
KERNEL_SOURCES = {"shipped": 0, "local cache": 0, "compiled": 0}

Shipped = namedtuple("Shipped", "usable reason info notice")
Shipped.__doc__ = """Whether this process loads the shipped kernels, and why (not).

``info`` is the build's :data:`BUILD_INFO` (None without one); ``notice`` is a line to print
when a kernel then compiles, for the reasons a user did not choose (the CPU, another Numba).
"""


def python_tag():
    """Return the Python a cache file is for: Numba names its files by version and ABI flags."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"


def missing_cpu_features(features=None, machine=None):
    """Return the features of :data:`PORTABLE_CPU` this host lacks (none: it runs that code).

    Parameters
    ----------
    features : mapping, optional
        Feature name to bool, as ``llvmlite.binding.get_host_cpu_features()`` (its default).
    machine : str, optional
        ``platform.machine()`` (its default): another architecture lacks them all.
    """
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return [f"an x86-64 CPU (this is {machine})"]
    if features is None:
        try:
            features = llvmlite.binding.get_host_cpu_features()
        except RuntimeError:  # LLVM could not read them: assume the worst
            features = {}
    return [name for name in PORTABLE_FEATURES if not features.get(name)]


def shipped_state(folder=None, environ=os.environ, features=None):
    """Decide, once per process, whether the shipped kernels in ``folder`` can be used.

    Returns
    -------
    Shipped
    """
    folder = folder or SHIPPED_DIR
    try:
        with open(os.path.join(folder, BUILD_INFO), encoding="utf-8") as file:
            info = json.load(file)
    except (OSError, ValueError):
        return Shipped(False, "none in this install (an editable install, or one built with "
                              "FASTMLP_BUILD_KERNELS=0)", None, None)
    rebuild = "; kernels compile on first use and are cached"
    if environ.get("FASTMLP_SHIPPED", "1") == "0":
        return Shipped(False, "off (FASTMLP_SHIPPED=0)", info, None)
    if not _config.CACHE:
        return Shipped(False, "off with the compile cache (FASTMLP_CACHE=0)", info, None)
    if info.get("numba") != numba.__version__:
        why = f"built for numba {info.get('numba')}, and this is numba {numba.__version__}"
        return Shipped(False, why, info, f"fastmlp: the shipped kernels were {why}{rebuild}")
    if info.get("python") != python_tag():
        why = f"built for Python {info.get('python')}, and this is Python {python_tag()}"
        return Shipped(False, why, info, f"fastmlp: the shipped kernels were {why}{rebuild}")
    if info.get("kernels_stamp") != KERNELS_STAMP:
        return Shipped(False, "built from other kernel sources or settings (FASTMLP_FASTMATH, "
                              "FASTMLP_BLAS_MIN_FLOPS)", info, None)
    if numba.config.CPU_NAME is not None or numba.config.CPU_FEATURES is not None:
        return Shipped(False, "not for the target NUMBA_CPU_NAME/NUMBA_CPU_FEATURES chose",
                       info, None)
    missing = missing_cpu_features(features)
    if missing:
        why = f"for {PORTABLE_CPU} CPUs, and this one lacks {', '.join(missing)}"
        return Shipped(False, why, info, f"fastmlp: the shipped kernels are {why}{rebuild}")
    return Shipped(True, f"{PORTABLE_CPU} machine code for numba {info['numba']}", info, None)


#: This process's decision (never while building: the build writes them).
SHIPPED = (Shipped(False, "being built", None, None) if SHIP_INTO
           else shipped_state())
_use_shipped = [SHIPPED.usable]  # fastmlp.precompile turns it off, to compile native code
_noticed = [False]


def use_shipped(enabled):
    """Turn the shipped kernels off (or back on, where usable) for this process's next loads."""
    _use_shipped[0] = bool(enabled) and SHIPPED.usable


def _notice_compile():
    """Say once, at the first compile, why the shipped kernels did not spare it."""
    if SHIPPED.notice and not _noticed[0]:
        _noticed[0] = True
        print(SHIPPED.notice, file=sys.stderr)


_caching = numba.core.caching

#: The Numba internals :class:`KernelCache` builds on (checked on 0.60-0.68); a Numba without
#: them caches kernels its own way, and the shipped kernels are not used.
SHIPPING_SUPPORTED = all(
    hasattr(_caching, name) for name in ("FunctionCache", "IndexDataCacheFile")
) and all(hasattr(_caching.Cache, name)
          for name in ("_index_key", "_load_overload", "_save_overload"))


if SHIPPING_SUPPORTED:
    class KernelCache(_caching.FunctionCache):
        """Numba's cache of one kernel, with the wheel's shipped machine code behind it.

        A load tries the local cache (this CPU's own key), then the shipped folder under the
        portable key. A compile saves to the local cache; while a wheel is built
        (:data:`SHIP_INTO`), to the shipped folder instead, under the content stamp.
        """

        def __init__(self, py_func):
            super().__init__(py_func)
            self._shipped_file = None
            filename_base = self._impl.filename_base
            if SHIP_INTO:
                self._cache_path = SHIP_INTO
                self._cache_file = _caching.IndexDataCacheFile(SHIP_INTO, filename_base,
                                                               SHIPPED_STAMP)
            elif SHIPPED.usable:
                self._shipped_file = _caching.IndexDataCacheFile(SHIPPED_DIR, filename_base,
                                                                 SHIPPED_STAMP)

        def _load_overload(self, sig, target_context):
            data = super()._load_overload(sig, target_context)
            if data is not None:
                KERNEL_SOURCES["local cache"] += 1
                return data
            if self._shipped_file is None or not self._enabled or not _use_shipped[0]:
                return None
            signature, magic, digests = self._index_key(sig, target_context.codegen())
            portable = (signature, (magic[0], PORTABLE_CPU, ""), digests)
            data = self._shipped_file.load(portable)
            if data is None:
                return None
            KERNEL_SOURCES["shipped"] += 1
            return self._impl.rebuild(target_context, data)

        def _save_overload(self, sig, data):
            KERNEL_SOURCES["compiled"] += 1
            _notice_compile()
            if not SHIP_INTO:
                return super()._save_overload(sig, data)
            # Numba's own save would first make the local cache's folder, a __pycache__ inside
            # the package the wheel is built from; the rest is its save, into SHIP_INTO
            if self._enabled and self._impl.check_cachable(data):
                os.makedirs(SHIP_INTO, exist_ok=True)
                key = self._index_key(sig, data.codegen)
                self._cache_file.save(key, self._impl.reduce(data))
            return None


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

    def compile_(f):
        dispatcher = numba.njit(**options)(f)
        if (options["cache"] and SHIPPING_SUPPORTED
                and isinstance(dispatcher, numba.core.dispatcher.Dispatcher)):
            dispatcher._cache = KernelCache(dispatcher.py_func)
        return dispatcher

    return compile_ if func is None else compile_(func)
