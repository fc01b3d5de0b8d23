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
    env = {**__import__("os").environ, "FASTMLP_BLAS": backend}
    env.pop("OPENBLAS_NUM_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
