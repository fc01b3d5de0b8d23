"""Compilation options and the dtype policy, decided in one place.

Every compiled kernel is decorated through :func:`fastmlp._kernels._jit.jit`, which reads
these settings; nothing else in the package hard-codes a Numba flag.

Dtype policy: the engine computes in the dtype it is given, float32 or float64, end to end.
The Python layer casts inputs (and scalar hyper-parameters) to the model's dtype before any
kernel is called, so a float32 model never silently promotes to float64.
"""

import os
import sys
import tempfile

import numba
import numpy as np

#: Compiled kernels are cached on disk so that only the first import of a fresh install pays
#: compile time: in ``FASTMLP_CACHE_DIR`` when it is set, else in ``NUMBA_CACHE_DIR``, else in
#: ``__pycache__`` beside the sources (Numba's default). Where that is read-only (a system
#: install, some containers), in a user cache folder, ``$XDG_CACHE_HOME/fastmlp`` or
#: ``~/.cache/fastmlp``, with a one-line notice the first time; never an error. Processes that
#: share the folder share the kernels: Numba writes each cache file whole and renames it into
#: place, so processes compiling at once (Dask workers on one file system) neither crash nor
#: corrupt it (``tests/test_engine.py``).
CACHE = os.environ.get("FASTMLP_CACHE", "1") != "0"


def _writable(directory):
    """Whether files can be created in ``directory`` (made if missing): tried, not assumed.

    ``os.access`` says yes to root on a read-only bind mount's mode bits; a real file says
    what the file system does.
    """
    try:
        os.makedirs(directory, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".fastmlp-probe-")
        os.close(fd)
        os.unlink(name)
        return True
    except OSError:
        return False


def choose_cache_dir(environ=os.environ, package_dir=None, notice=None):
    """Return the folder for the compile cache, or None for Numba's ``__pycache__`` default.

    Parameters
    ----------
    environ : mapping
        ``FASTMLP_CACHE_DIR``, then ``NUMBA_CACHE_DIR`` (which Numba reads itself), then
        ``XDG_CACHE_HOME`` for the fallback.
    package_dir : str, optional
        The installed package, whose ``__pycache__`` is the default (default: this one).
    notice : callable, optional
        Called with the one-line notice when the fallback folder is first made.
    """
    chosen = environ.get("FASTMLP_CACHE_DIR") or None
    if chosen or environ.get("NUMBA_CACHE_DIR"):
        return chosen
    package_dir = package_dir or os.path.dirname(os.path.abspath(__file__))
    if _writable(os.path.join(package_dir, "__pycache__")):
        return None
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    fallback = os.path.join(base, "fastmlp")
    first = not os.path.isdir(fallback)
    if not _writable(fallback):
        fallback = os.path.join(tempfile.gettempdir(), f"fastmlp-cache-{os.getuid()}"
                                if hasattr(os, "getuid") else "fastmlp-cache")
        first = not os.path.isdir(fallback)
    if first and notice is not None:
        notice(f"fastmlp: {package_dir} is read-only; compiled kernels are cached in "
               f"{fallback} (FASTMLP_CACHE_DIR chooses another folder)")
    return fallback


CACHE_DIR = choose_cache_dir(notice=lambda line: print(line, file=sys.stderr)) if CACHE else None
if CACHE_DIR:
    # read by each kernel's cache when the kernel is defined, after this module runs
    numba.config.CACHE_DIR = CACHE_DIR

#: LLVM fast-math flags. ``nnan`` and ``ninf`` are left out on purpose: the engine must see a
#: NaN or an infinity to report divergence, and those flags would let LLVM assume there are none.
#: ``reassoc`` lets sums over a row vectorise. Set ``FASTMLP_FASTMATH=0`` to compile strict IEEE.
FASTMATH = (
    {"nsz", "arcp", "contract", "afn", "reassoc"}
    if os.environ.get("FASTMLP_FASTMATH", "1") != "0"
    else False
)

# Numba's OpenMP threads meet at a barrier twice per batch. A waiting thread that spins long
# starves the thread it waits for when another process holds a core; one that sleeps at once
# pays a wake-up every batch. A short spin serves both (Fashion-MNIST epoch, batch 32, 2 cores,
# benchmarks/README.md): quiet 0.18 s (GNU default 0.18, passive 0.37), one busy process beside
# 0.39 s (default 0.76, passive 0.38). GNU libgomp reads it once, when Numba's OpenMP runtime
# starts, so it is set here, at import; a wait policy or spin count the user chose is kept.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

#: Matrix products of at least this many multiply-adds (m * k * n) go to BLAS; smaller ones run
#: as compiled loops, which skip BLAS's fixed cost per call. ``benchmarks/bench_kernels.py``
#: measured on 2 cores that BLAS wins for every product from 2^12 on, float32 and float64.
#: Override with ``FASTMLP_BLAS_MIN_FLOPS`` (read at import and compiled in as a constant; the
#: cached kernels are stamped with it, so a new value compiles them afresh: ``_kernels/_jit.py``).
BLAS_MIN_FLOPS = int(os.environ.get("FASTMLP_BLAS_MIN_FLOPS", 1 << 12))

#: Use the parallel kernels (Numba's thread pool over the rows of each batch) when more than one
#: thread is available and the batch is big enough to pay for it (``PARALLEL_MIN_FLOPS``).
#: ``FASTMLP_PARALLEL=0`` forces the serial kernels (one thread: BLAS is always held to one).
PARALLEL = os.environ.get("FASTMLP_PARALLEL", "1") != "0"

#: Let the engine choose, while it runs, how many of Numba's threads run a parallel kernel's
#: lanes (``_threads.py``): all of them on a quiet machine, fewer when busy neighbours make the
#: lanes wait on each other. Results do not depend on it. It never overrides a thread count the
#: user chose (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``, ``fastmlp --threads``);
#: ``FASTMLP_ADAPT_THREADS=0`` turns it off (then every thread of the pool runs, always).
ADAPT_THREADS = os.environ.get("FASTMLP_ADAPT_THREADS", "1") != "0"

#: Multiply-adds per batch (``batch_size * sum(fan_in * fan_out)``) from which splitting a batch
#: over threads beats one thread; measured by ``benchmarks/bench_kernels.py``.
PARALLEL_MIN_FLOPS = int(os.environ.get("FASTMLP_PARALLEL_MIN_FLOPS", 1 << 18))

#: Multiply-adds (``rows * sum(fan_in * fan_out)``) from which a full-data cost and gradient
#: (L-BFGS's objective, ``Model.loss``/``gradients``, validation scores) splits its rows over
#: the threads. Set high: such a call is made rarely, below this it takes a few milliseconds
#: on one thread, and a process that never crosses it never compiles the parallel kernel.
LOSS_PARALLEL_MIN_FLOPS = int(os.environ.get("FASTMLP_LOSS_PARALLEL_MIN_FLOPS", 1 << 24))

#: A network with one hidden layer, trained in batches of at most this many rows, splits its
#: hidden units over the lanes (``_kernels/train_units.py``) rather than the batch's rows: one
#: fork/join per batch and no gradient sums. Measured (``benchmarks/bench_kernels.py``, network
#: 784-100-10, float32, 2 threads): units faster at batch 16, 32, 64 (0.0144 s against 0.0201,
#: 0.0126 against 0.0142, 0.0115 against 0.0120), rows faster at 128 and 200 (0.0106 against
#: 0.0110, 0.0101 against 0.0108).
UNIT_SPLIT_MAX_BATCH = int(os.environ.get("FASTMLP_UNIT_SPLIT_MAX_BATCH", 64))

#: ... and at least this many hidden units per lane: with 16 (network 64-32-10) the split lost at
#: every batch size, its products too small to pay for the lanes.
UNIT_SPLIT_MIN_UNITS = 32

#: A network whose every hidden layer has at least this many units per lane splits every
#: layer's units over the lanes (``_kernels/train_columns.py``) rather than the batch's rows
#: (one hidden layer at batches up to ``UNIT_SPLIT_MAX_BATCH`` keeps ``train_units``).
#: Measured on 2 lanes (784 inputs, SGD, both dtypes, time a batch, columns/rows; the grid is
#: in docs/benchmarks.md): with 256 units a layer 0.81-1.01 at batches 32-256, with 512-1024
#: units 0.54-1.00; with 100 units 0.90-1.05 up to batch 64 and 1.10-1.42 from 128, their
#: products too thin.
COLUMN_SPLIT_MIN_UNITS = int(os.environ.get("FASTMLP_COLUMN_SPLIT_MIN_UNITS", 128))

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
