"""``fastmlp info``: versions, CPU, threads, BLAS, the compile cache and shipped kernels."""

import argparse
import os
import sys

import numpy as np

from fastmlp.cli.compile import _cache_contents, _compile_cache_dir

_EPILOG_INFO = """examples:
  fastmlp info
"""


def add_parser(sub):
    """Add ``fastmlp info`` to the subcommands ``sub``; return its parser."""
    raw = argparse.RawDescriptionHelpFormatter
    info = sub.add_parser(
        "info", help="versions, CPU, threads, BLAS and the compile cache",
        formatter_class=raw, epilog=_EPILOG_INFO,
        description="Print what fastmlp runs on: package versions, the CPU, Numba's threads\n"
                    "and threading layer, the BLAS libraries and where compiled kernels are\n"
                    "cached.",
    )
    info.set_defaults(func=run)
    return info


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown"


def _version(module_name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module_name)
    except PackageNotFoundError:
        return "not installed"


def run(args, out=None):
    """Print versions, CPU, threads, BLAS libraries, the compile cache and shipped kernels."""
    out = sys.stdout if out is None else out
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS, listed below once loaded)
    from threadpoolctl import threadpool_info

    import fastmlp
    from fastmlp import _config
    from fastmlp._kernels.train import warm_up_parallel

    try:
        warm_up_parallel(np.zeros(2))  # the threading layer has a name once parallel code ran
        layer = numba.threading_layer()
    except (ValueError, RuntimeError):
        layer = f"{numba.config.THREADING_LAYER} (configured; no parallel code could run)"
    print(f"fastmlp       {fastmlp.__version__}", file=out)
    for name in ("numpy", "numba", "scipy", "scikit-learn", "threadpoolctl", "matplotlib",
                 "torch"):
        print(f"{name:<13} {_version(name)}", file=out)
    print(f"python        {sys.version.split()[0]} ({sys.executable})", file=out)
    print(f"cpu           {_cpu_model()}", file=out)
    print(f"cpu count     {os.cpu_count()}", file=out)
    print(f"numba threads {numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS}, "
          f"threading layer {layer}", file=out)
    from fastmlp import _threads

    if _threads.adaptive(numba.config.NUMBA_NUM_THREADS):
        chosen = ("chosen while training runs, fewer beside busy neighbours "
                  "(FASTMLP_ADAPT_THREADS=0: off)")
    elif numba.config.NUMBA_NUM_THREADS == 1:
        chosen = "one: nothing to choose"
    elif not _config.ADAPT_THREADS:
        chosen = "fixed: FASTMLP_ADAPT_THREADS=0"
    else:
        chosen = "fixed by the user (NUMBA_NUM_THREADS or numba.set_num_threads)"
    print(f"thread count  {chosen}", file=out)
    from fastmlp._kernels.blas import BLAS_LIBRARY

    for lib in threadpool_info():
        path = lib["filepath"]
        user = ("scipy's" if f"{os.sep}scipy" in path
                else "numpy's" if f"{os.sep}numpy" in path else "")
        if path == BLAS_LIBRARY or (user == "scipy's" and BLAS_LIBRARY.startswith("scipy.")):
            user += ", fastmlp's kernels call its gemm"
        details = [lib["internal_api"] + (f" {lib['version']}" if lib.get("version") else ""),
                   f"{lib['num_threads']} threads"]
        if lib.get("threading_layer"):
            details.append(f"{lib['threading_layer']} threading")
        if user:
            details.append(user)
        print(f"{lib['user_api']:<13} {', '.join(details)}: {path}", file=out)
    cache = _compile_cache_dir()
    kernels, size = _cache_contents(cache)
    state = (f"on, {kernels} kernels cached ({size / 2**20:.1f} MiB); `fastmlp compile` fills "
             "it" if _config.CACHE else "off (FASTMLP_CACHE=0)")
    print(f"compile cache {cache} ({state})", file=out)
    from fastmlp._kernels import _jit

    shipped = _jit.SHIPPED
    if shipped.usable:
        what = (f"{shipped.info.get('entries', '?')} kernels ({shipped.info.get('kernels')}), "
                f"{shipped.reason}, used on this CPU after the compile cache (which "
                "`fastmlp compile` fills with native code)")
    else:
        what = f"not used: {shipped.reason}"
    print(f"shipped       {what}", file=out)
    sources = _jit.KERNEL_SOURCES
    print(f"this process  kernels loaded from the shipped code: {sources['shipped']}, from the "
          f"compile cache: {sources['local cache']}, compiled now: {sources['compiled']}",
          file=out)
    fastmath = ",".join(sorted(_config.FASTMATH)) if _config.FASTMATH else "off"
    print(f"fastmath      {fastmath} (never in the optimizer steps and exp, whose rounding "
          "must be NumPy's)", file=out)
    if _config.PARALLEL and layer != "workqueue":
        parallel = (f"on: batches of >= {_config.PARALLEL_MIN_FLOPS} multiply-adds are split "
                    "over Numba's threads, BLAS runs single-threaded inside kernels")
    else:
        parallel = ("off (FASTMLP_PARALLEL=0)" if not _config.PARALLEL
                    else "off (the workqueue threading layer is too slow for it)")
    print(f"parallel      {parallel}", file=out)
    return 0
