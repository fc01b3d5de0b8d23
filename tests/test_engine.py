import subprocess
import sys
import textwrap


def test_blas_is_held_to_one_thread_from_a_fresh_process():
    # In a fresh process SciPy's BLAS (the one Numba's np.dot calls) is not loaded until a
    # kernel runs; the limit must cover it anyway, or Numba's threads and BLAS's fight (an
    # epoch measured 37 s instead of 0.2 s).
    code = textwrap.dedent("""
        import numba
        from threadpoolctl import threadpool_info
        from fastmlp._engine import blas_single_threaded
        with blas_single_threaded():
            inside = [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()
                      if lib["user_api"] == "blas"]
        print(inside)
        assert any("scipy.libs" in path for path, _ in inside), inside  # SciPy's own
        assert all(n == 1 for _, n in inside), inside
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
