import os
import subprocess
import sys
import textwrap

import pytest


@pytest.mark.parametrize("backend", ["numpy", "scipy"])
def test_blas_is_held_to_one_thread_from_a_fresh_process(backend):
    # The BLAS the kernels call (NumPy's bundled OpenBLAS, or SciPy's with FASTMLP_BLAS=scipy,
    # which is not loaded in a fresh process until a kernel runs) must be held to one thread
    # inside a kernel call, or Numba's threads and BLAS's fight (an epoch measured 37 s instead
    # of 0.2 s); and given back its threads after.
    code = textwrap.dedent("""
        import os
        from threadpoolctl import threadpool_info
        from fastmlp._engine import blas_single_threaded
        from fastmlp._kernels import blas

        def kernels_blas():
            found = [lib["num_threads"] for lib in threadpool_info()
                     if lib["user_api"] == "blas" and (
                         os.path.realpath(lib["filepath"]) == os.path.realpath(blas.BLAS_LIBRARY)
                         or (blas.BLAS_LIBRARY.startswith("scipy.") and "scipy" in lib["filepath"]
                             and "numpy" not in lib["filepath"]))]
            assert len(found) == 1, (blas.BLAS_LIBRARY, threadpool_info())
            return found[0]

        before = kernels_blas()
        with blas_single_threaded():
            inside = kernels_blas()
        after = kernels_blas()
        print(blas.BLAS_LIBRARY, before, inside, after)
        assert inside == 1, inside
        assert after == before, (before, after)
    """)
    env = {**os.environ, "FASTMLP_BLAS": backend}
    env.pop("OPENBLAS_NUM_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


_FIRST_FIT = textwrap.dedent("""
    import os
    import numpy as np
    from numba.core import event
    from fastmlp import Model
    from fastmlp.cli import _compile_cache_dir

    X = np.random.default_rng(0).random((64, 5))
    y = np.arange(64) % 3
    with event.install_recorder("numba:compile") as compiled:
        model = Model([5, 4, 3], dtype="float64", seed=0)
        model.fit(X, y, epochs=2, batch_size=8, learning_rate=0.1, progress=False)
        loss = model.loss(X, y)
    print(len(compiled.buffer), repr(loss), _compile_cache_dir())
""")


def _first_fits(cache_dir, n):
    """Start ``n`` fresh processes at once, each making a first fit; their outputs."""
    # FASTMLP_SHIPPED=0: a wheel's shipped kernels would spare the compile this test needs
    env = {**os.environ, "FASTMLP_CACHE_DIR": str(cache_dir), "FASTMLP_SHIPPED": "0"}
    env.pop("NUMBA_CACHE_DIR", None)
    procs = [subprocess.Popen([sys.executable, "-c", _FIRST_FIT], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(n)]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        outs.append(stdout.split())
    return outs


def test_cache_dir_is_shared_by_processes_compiling_at_once(tmp_path):
    # FASTMLP_CACHE_DIR chooses the cache; two processes compiling into it at once (Dask
    # workers on one file system) both finish with the same model; a third compiles nothing.
    cache = tmp_path / "kernels"
    first = _first_fits(cache, 2)
    for n_compiled, _, where in first:
        assert int(n_compiled) > 0  # an empty cache: each compiled
        assert where.startswith(str(cache))
    assert first[0][1] == first[1][1]
    assert any(path.suffix == ".nbi" for path in cache.rglob("*"))
    (n_compiled, loss, where), = _first_fits(cache, 1)
    assert int(n_compiled) == 0  # every kernel of a first fit loaded from the cache
    assert loss == first[0][1]
