"""Shipped machine code: kernels compiled for x86-64-v3 load where the host runs them, and
nowhere else.

A small shipped folder is built here the way a wheel's build makes one (``NUMBA_CPU_NAME``
set to the portable level, ``FASTMLP_SHIP_INTO``), and fresh processes read it through
``FASTMLP_SHIPPED_DIR``. The installed package's own shipped kernels (a wheel built with
``FASTMLP_BUILD_KERNELS=all``, as ``.ci/run`` installs it) are checked against the first calls
users make.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastmlp._kernels import _jit

#: Two kernels from two files, called as the engine calls them; prints the results, the
#: compilations and where the kernels came from.
CALLS = textwrap.dedent("""
    import json, sys
    PATCH
    import numpy as np
    from numba.core import event
    from fastmlp._kernels import _jit
    from fastmlp._kernels.checks import all_finite
    from fastmlp._kernels.linalg import matmul
    from fastmlp.precompile import compilations

    A = np.arange(12.0).reshape(3, 4) / 7
    B = np.arange(20.0).reshape(4, 5) / 3
    C = np.empty((3, 5))
    with event.install_recorder("numba:compile") as recorder:
        finite = bool(all_finite(A))
        matmul(A, B, C)
    print(json.dumps({"compilations": compilations(recorder), "sources": _jit.KERNEL_SOURCES,
                      "finite": finite, "C": C.tolist(), "usable": _jit.SHIPPED.usable,
                      "reason": _jit.SHIPPED.reason}))
""")

#: A host without AVX2, FMA and BMI2: LLVM's feature map without them, for Numba's own
#: compile (which then targets that CPU) and for fastmlp's check alike.
NO_AVX2 = textwrap.dedent("""
    import llvmlite.binding as ll
    _features = ll.get_host_cpu_features
    def _without(*args):
        features = _features(*args)
        for name in ("avx2", "fma", "bmi2"):
            features[name] = False
        return features
    ll.get_host_cpu_features = _without
""")

SETTINGS = ("NUMBA_CACHE_DIR", "FASTMLP_CACHE_DIR", "FASTMLP_SHIPPED", "FASTMLP_SHIPPED_DIR",
            "FASTMLP_FASTMATH", "FASTMLP_BLAS_MIN_FLOPS", "NUMBA_CPU_NAME",
            "NUMBA_CPU_FEATURES", "FASTMLP_SHIP_INTO", "NUMBA_DISABLE_JIT", "FASTMLP_CACHE")


def _env(**settings):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(settings)
    return env


def _run(env, patch="", cwd=None):
    result = subprocess.run([sys.executable, "-c", CALLS.replace("PATCH", patch)], env=env,
                            capture_output=True, text=True, timeout=600, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


missing = _jit.missing_cpu_features()
needs_v3 = pytest.mark.skipif(bool(missing), reason=f"this host lacks {missing}: it cannot "
                              "run x86-64-v3 code, so no shipped kernels load here")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A shipped folder holding the two kernels, built as ``precompile.ship`` builds one."""
    folder = tmp_path_factory.mktemp("shipped") / "_shipped_kernels"
    env = _env(NUMBA_CPU_NAME=_jit.PORTABLE_CPU, NUMBA_CPU_FEATURES="",
               FASTMLP_SHIP_INTO=str(folder))
    built, _ = _run(env)
    n = built["sources"]["compiled"]  # the two, and the kernels they call
    assert built["compilations"] > 0 and n >= 2
    suffixes = [p.suffix for p in folder.iterdir()]
    assert suffixes.count(".nbc") == n and suffixes.count(".nbi") >= 2
    from fastmlp.precompile import write_build_info

    write_build_info(str(folder), "test", _jit.KERNELS_STAMP, built["compilations"], 0.0)
    return folder, built


def _ship_env(folder, tmp_path, **settings):
    """A fresh process's settings: the shipped folder, and an empty local cache."""
    return _env(FASTMLP_SHIPPED_DIR=str(folder), FASTMLP_CACHE_DIR=str(tmp_path / "local"),
                **settings)


def _same_results(a, b):
    assert a["finite"] == b["finite"]
    np.testing.assert_allclose(a["C"], b["C"], rtol=1e-15)


@needs_v3
def test_shipped_kernels_load_where_the_host_runs_them(shipped, tmp_path):
    folder, built = shipped
    loaded, stderr = _run(_ship_env(folder, tmp_path))
    assert loaded["usable"], loaded["reason"]
    assert loaded["compilations"] == 0
    assert loaded["sources"]["shipped"] >= 2
    assert loaded["sources"]["local cache"] == loaded["sources"]["compiled"] == 0
    assert stderr == ""
    _same_results(loaded, built)


def test_a_host_without_avx2_compiles_natively_and_says_so_once(shipped, tmp_path):
    folder, built = shipped
    result, stderr = _run(_ship_env(folder, tmp_path), patch=NO_AVX2)
    assert not result["usable"]
    assert "lacks avx2, bmi2, fma" in result["reason"]
    assert result["compilations"] > 0 and result["sources"]["shipped"] == 0
    notices = [line for line in stderr.splitlines() if line.startswith("fastmlp:")]
    assert len(notices) == 1 and "lacks avx2" in notices[0] and "compile on first use" \
        in notices[0], stderr
    _same_results(result, built)


@needs_v3
@pytest.mark.parametrize("field, value, says", [
    ("numba", "0.0.1", "built for numba 0.0.1"),
    ("python", "2.7", "built for Python 2.7"),
])
def test_another_numba_or_python_compiles_and_says_so(shipped, tmp_path, field, value, says):
    folder, _ = shipped
    other = tmp_path / "_shipped_kernels"
    other.mkdir()
    for path in folder.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    info = json.loads((other / _jit.BUILD_INFO).read_text())
    (other / _jit.BUILD_INFO).write_text(json.dumps({**info, field: value}))
    result, stderr = _run(_ship_env(other, tmp_path))
    assert says in result["reason"]
    assert result["sources"]["shipped"] == 0 and result["sources"]["compiled"] >= 2
    assert says in stderr and stderr.count("fastmlp:") == 1


@needs_v3
@pytest.mark.parametrize("settings, says", [
    ({"FASTMLP_BLAS_MIN_FLOPS": "1"}, "other kernel sources or settings"),
    ({"FASTMLP_FASTMATH": "0"}, "other kernel sources or settings"),
    ({"FASTMLP_SHIPPED": "0"}, "off (FASTMLP_SHIPPED=0)"),
    ({"NUMBA_CPU_NAME": "generic"}, "NUMBA_CPU_NAME"),
])
def test_other_settings_compile_quietly(shipped, tmp_path, settings, says):
    folder, _ = shipped
    result, stderr = _run(_ship_env(folder, tmp_path, **settings))
    assert says in result["reason"]
    assert result["sources"]["shipped"] == 0 and result["sources"]["compiled"] >= 2
    assert "fastmlp:" not in stderr  # the user chose these: nothing to explain


@needs_v3
def test_the_local_cache_comes_first(shipped, tmp_path):
    folder, built = shipped
    native, _ = _run(_ship_env(folder, tmp_path, FASTMLP_SHIPPED="0"))  # fills the local one
    assert native["sources"]["compiled"] >= 2
    again, _ = _run(_ship_env(folder, tmp_path))
    assert again["sources"]["local cache"] >= 2
    assert again["sources"]["shipped"] == again["sources"]["compiled"] == 0
    _same_results(again, built)


def test_the_feature_check():
    assert _jit.missing_cpu_features(dict.fromkeys(_jit.PORTABLE_FEATURES, True),
                                     "x86_64") == []
    assert _jit.missing_cpu_features({**dict.fromkeys(_jit.PORTABLE_FEATURES, True),
                                      "avx2": False}, "x86_64") == ["avx2"]
    assert _jit.missing_cpu_features({}, "aarch64") == ["an x86-64 CPU (this is aarch64)"]
    state = _jit.shipped_state(folder="/nonexistent")
    assert not state.usable and "none in this install" in state.reason


# -- the installed package's own shipped kernels ---------------------------------------------

INSTALLED = _jit.shipped_state(folder=_jit.PACKAGE_SHIPPED_DIR, environ={})

#: The first calls of issue 24, in one fresh process: each must load, none compile.
FIRST_CALLS = textwrap.dedent("""
    import contextlib, io, json, warnings
    import numpy as np
    import scipy.sparse as sp
    from numba.core import event
    from sklearn.datasets import load_iris
    from fastmlp import MLPClassifier, MLPRegressor, Model
    from fastmlp._kernels import _jit
    from fastmlp.cli import main
    from fastmlp.datasets import load_digits
    from fastmlp.precompile import compilations

    warnings.simplefilter("ignore")  # convergence
    X, y = load_iris(return_X_y=True)
    Xd, yd, Xt, yt = load_digits()
    with event.install_recorder("numba:compile") as recorder:
        for dtype in (np.float64, np.float32):
            Xc = X.astype(dtype)
            clf = MLPClassifier().fit(Xc, y)
            clf.predict(Xc), clf.predict_proba(Xc), clf.score(Xc, y)
            MLPRegressor().fit(Xc[:, 1:], Xc[:, 0]).predict(Xc[:, 1:])
            MLPClassifier(solver="lbfgs").fit(Xc, y).predict(Xc)
            MLPClassifier().fit(sp.csr_matrix(Xc), y).predict_proba(sp.csr_matrix(Xc))
            MLPClassifier().partial_fit(Xc, y, classes=[0, 1, 2]).partial_fit(Xc, y)
        model = Model([64, 32, 10], seed=0)
        model.fit(Xd, yd, epochs=2, batch_size=32, learning_rate=0.5,
                  validation_data=(Xt, yt), progress=False)
        model.evaluate(Xt, yt)
        model.save("m.npz")
        Model.load("m.npz").predict(Xt)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["train"]) == 0  # the README's first command
    print(json.dumps({"compilations": compilations(recorder),
                      "sources": _jit.KERNEL_SOURCES}))
""")


@pytest.mark.skipif(INSTALLED.info is None or INSTALLED.info.get("kernels") != "all",
                    reason="the installed fastmlp ships no release kernels (an editable or "
                           "source install; .ci/run installs a FASTMLP_BUILD_KERNELS=all "
                           "wheel, where this runs)")
@needs_v3
def test_the_installed_wheel_compiles_nothing_on_first_calls(tmp_path):
    assert INSTALLED.usable, INSTALLED.reason
    home = tmp_path / "home"
    home.mkdir()
    # no cache settings, an empty home, and an empty local cache: only shipped code can serve
    env = _env(HOME=str(home), FASTMLP_CACHE_DIR=str(tmp_path / "local"))
    env.pop("XDG_CACHE_HOME", None)
    result = subprocess.run([sys.executable, "-c", FIRST_CALLS], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["compilations"] == 0, found
    assert found["sources"]["compiled"] == 0 and found["sources"]["shipped"] > 0, found
