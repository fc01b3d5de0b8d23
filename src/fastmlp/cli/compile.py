"""``fastmlp compile``: every kernel compiled natively ahead of time, into the cache."""

import argparse
import os
import sys
import time

from fastmlp.cli._common import UserError, _positive_int

_EPILOG_COMPILE = """Each task makes tiny fits and predictions through the public API, in float32
and float64, down every path the engine can take on this machine, so that a fresh process's
first calls load their kernels from the cache instead of compiling them. The cache is the folder
`fastmlp info` names (FASTMLP_CACHE_DIR or NUMBA_CACHE_DIR choose it); processes that share it
share the kernels. Put it in a Dockerfile or a CI set-up after the install.

examples:
  fastmlp compile
  FASTMLP_CACHE_DIR=/opt/fastmlp-cache fastmlp compile --processes 2
"""


def add_parser(sub):
    """Add ``fastmlp compile`` to the subcommands ``sub``; return its parser."""
    raw = argparse.RawDescriptionHelpFormatter
    compile_ = sub.add_parser(
        "compile", help="compile every kernel natively ahead of time, into the cache",
        formatter_class=raw, epilog=_EPILOG_COMPILE,
        description="Compile fastmlp's kernels for every path a user can reach, in both dtypes,\n"
                    "natively for this CPU, and keep them in the compile cache, so that no later\n"
                    "call waits for the compiler. The cache is looked up before the x86-64-v3\n"
                    "kernels a wheel ships.",
    )
    compile_.add_argument("--processes", type=_positive_int, default=None, metavar="N",
                          help="worker processes (default: the CPU count, at most 4)")
    compile_.set_defaults(func=run)
    return compile_


def _compile_cache_dir():
    """Where Numba caches fastmlp's compiled kernels."""
    import numba

    from fastmlp._kernels import activations

    for obj in vars(activations).values():
        cache = getattr(obj, "_cache", None)
        path = getattr(cache, "_cache_path", None)
        if path:
            return path
    if numba.config.CACHE_DIR:
        return numba.config.CACHE_DIR
    return os.path.join(os.path.dirname(activations.__file__), "__pycache__")


def _cache_contents(path):
    """``(kernels, bytes)`` cached in ``path``: index files, and the size of all files."""
    kernels, size = 0, 0
    if os.path.isdir(path):
        for entry in os.scandir(path):
            if entry.is_file():
                kernels += entry.name.endswith(".nbi")
                size += entry.stat().st_size
    return kernels, size


def run(args, out=None):
    """Fill the compile cache for every path a user can reach (``fastmlp.precompile``)."""
    out = sys.stdout if out is None else out
    from fastmlp import _config, precompile

    if not _config.CACHE:
        raise UserError("the compile cache is off (FASTMLP_CACHE=0): nothing would be kept")
    cache = _compile_cache_dir()
    processes = args.processes or min(4, os.cpu_count() or 1)
    print(f"compiling fastmlp's kernels into {cache}, {len(precompile.TASKS)} tasks x "
          f"{len(precompile.DTYPES)} dtypes, {processes} process"
          f"{'es' if processes > 1 else ''}", file=out, flush=True)
    start = time.perf_counter()
    results = precompile.compile_all(processes, out=out)
    kernels, size = _cache_contents(cache)
    compiled = sum(r[3] for r in results)
    print(f"done in {time.perf_counter() - start:.1f} s: {compiled} compilations; the cache "
          f"holds {kernels} kernels ({size / 2**20:.1f} MiB) in {cache}", file=out)
    return 0
