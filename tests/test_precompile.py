"""``fastmlp compile`` fills the cache: afterwards a fresh process's first calls compile nothing."""

import os
import subprocess
import sys
import textwrap

import pytest

from fastmlp import precompile

FIRST_CALLS = textwrap.dedent("""
    import warnings
    import numpy as np
    from numba.core import event
    from sklearn.datasets import load_iris
    from fastmlp import MLPClassifier, MLPRegressor, Model
    from fastmlp.datasets import load_digits
    from fastmlp.precompile import compilations

    warnings.simplefilter("ignore")  # convergence
    X, y = load_iris(return_X_y=True)
    Xd, yd, Xt, yt = load_digits()
    with event.install_recorder("numba:compile") as recorder:
        for dtype in (np.float64, np.float32):  # the issue's first calls
            clf = MLPClassifier().fit(X.astype(dtype), y)
            clf.predict(X.astype(dtype))
            MLPClassifier(solver="lbfgs").fit(X.astype(dtype), y)
            MLPRegressor().fit(X[:, 1:].astype(dtype), X[:, 0]).predict(X[:, 1:])
        model = Model([64, 32, 10], seed=0)  # the README's `fastmlp train`
        model.fit(Xd, yd, epochs=2, batch_size=32, learning_rate=0.5,
                  validation_data=(Xt, yt), progress=False)
        model.save("m.npz")
        Model.load("m.npz").predict(Xt)
    print(compilations(recorder))
""")


COLD_CALL = textwrap.dedent("""
    import numpy as np
    from numba.core import event
    from fastmlp._kernels.checks import all_finite
    from fastmlp.precompile import compilations

    with event.install_recorder("numba:compile") as recorder:
        all_finite(np.zeros((2, 2)))
    print(compilations(recorder))
""")


def _compile_into(folder, env):
    """Run ``fastmlp compile`` into the empty ``folder``; return its output lines and folder."""
    run = subprocess.run([sys.executable, "-m", "fastmlp", "compile", "--processes", "2"],
                         env={**env, "FASTMLP_CACHE_DIR": str(folder)}, cwd=folder.parent,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines(), str(folder)


@pytest.mark.slow
def test_after_compile_a_fresh_process_compiles_nothing(tmp_path):
    env = dict(os.environ)
    for name in ("NUMBA_CACHE_DIR", "FASTMLP_SHIPPED"):
        env.pop(name, None)
    lines, compiled_into = _compile_into(tmp_path / "cache", env)
    assert lines[0].startswith(f"compiling fastmlp's kernels into {compiled_into}")
    jobs = len(precompile.TASKS) * len(precompile.DTYPES)
    assert [line.split("]")[0] for line in lines[1:jobs + 1]] == [
        f"[{i}/{jobs}" for i in range(1, jobs + 1)]
    assert lines[-1].startswith("done in ") and compiled_into in lines[-1]
    env["FASTMLP_CACHE_DIR"] = str(tmp_path / "cache")
    env["FASTMLP_SHIPPED"] = "0"  # only what the command compiled may serve (not a wheel's)
    first = subprocess.run([sys.executable, "-c", FIRST_CALLS], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["0"], first.stdout
    # and a first call on an empty cache does compile: the check can fail (one small call,
    # not all of them: they would compile for a minute to show the same)
    env["FASTMLP_CACHE_DIR"] = str(tmp_path / "empty")  # (FASTMLP_SHIPPED=0 still)
    cold = subprocess.run([sys.executable, "-c", COLD_CALL], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert cold.returncode == 0, cold.stderr
    assert int(cold.stdout.split()[0]) > 0


def test_compile_refuses_without_a_cache():
    env = {**os.environ, "FASTMLP_CACHE": "0"}
    run = subprocess.run([sys.executable, "-m", "fastmlp", "compile"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "the compile cache is off (FASTMLP_CACHE=0)" in run.stderr
