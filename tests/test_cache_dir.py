"""Where compiled kernels are cached: FASTMLP_CACHE_DIR, NUMBA_CACHE_DIR, __pycache__, or a
user folder with a one-line notice when the installed package is read-only."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from fastmlp import _config
from fastmlp._kernels import _jit


def read_only(monkeypatch, prefix):
    writable = _config._writable
    monkeypatch.setattr(_config, "_writable",
                        lambda path: False if path.startswith(prefix) else writable(path))


def test_the_users_choice_wins(tmp_path):
    assert _config.choose_cache_dir({"FASTMLP_CACHE_DIR": str(tmp_path)}) == str(tmp_path)
    # NUMBA_CACHE_DIR: Numba reads it itself
    assert _config.choose_cache_dir({"NUMBA_CACHE_DIR": str(tmp_path)}) is None


def test_a_writable_package_keeps_numbas_default(tmp_path):
    assert _config.choose_cache_dir({}, package_dir=str(tmp_path)) is None


def test_a_read_only_package_falls_back_to_a_user_folder_with_one_notice(tmp_path,
                                                                        monkeypatch):
    read_only(monkeypatch, "/read-only")
    notices = []
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    first = _config.choose_cache_dir(env, "/read-only/site-packages/fastmlp", notices.append)
    again = _config.choose_cache_dir(env, "/read-only/site-packages/fastmlp", notices.append)
    assert first == again == str(tmp_path / "fastmlp")
    assert len(notices) == 1 and "is read-only" in notices[0] and first in notices[0]


def test_without_a_writable_home_it_uses_the_temporary_folder(tmp_path, monkeypatch):
    read_only(monkeypatch, str(tmp_path))
    chosen = _config.choose_cache_dir({"XDG_CACHE_HOME": str(tmp_path / "home")},
                                      str(tmp_path / "pkg"))
    assert chosen.startswith(_config.tempfile.gettempdir())


def test_import_prints_nothing_where_the_package_is_writable():
    result = subprocess.run([sys.executable, "-c", "import fastmlp.model"],
                            capture_output=True, text=True, check=True)
    assert result.stderr == ""


# -- freshness: a cached kernel is reused only when nothing it was compiled from changed ------

_CHECK_CALL = """
import numpy as np
from numba.core import event
from fastmlp._kernels.checks import all_finite
from fastmlp._kernels.linalg import matmul
from fastmlp.precompile import compilations

with event.install_recorder("numba:compile") as recorder:
    all_finite(np.zeros((2, 2)))
    matmul(np.ones((3, 4)), np.ones((4, 5)), np.empty((3, 5)))
print(compilations(recorder))
"""


def _compilations(cache_dir, **settings):
    # FASTMLP_SHIPPED=0: a wheel's shipped kernels would spare the compiles this counts
    env = {**os.environ, "FASTMLP_CACHE_DIR": str(cache_dir), "FASTMLP_SHIPPED": "0",
           **settings}
    env.pop("NUMBA_CACHE_DIR", None)
    for name in ("FASTMLP_FASTMATH", "FASTMLP_BLAS_MIN_FLOPS"):
        if name not in settings:
            env.pop(name, None)
    run = subprocess.run([sys.executable, "-c", _CHECK_CALL], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return int(run.stdout.split()[-1])


def test_a_kernel_compiled_under_other_settings_is_compiled_again(tmp_path):
    cache = tmp_path / "kernels"
    assert _compilations(cache) > 0  # empty: compiled
    assert _compilations(cache) == 0  # the same sources and settings: loaded
    # settings compiled into the kernels as constants: Numba's own stamp (the kernel's file)
    # would have loaded the old machine code
    assert _compilations(cache, FASTMLP_BLAS_MIN_FLOPS="1") > 0
    assert _compilations(cache, FASTMLP_FASTMATH="0") > 0
    assert _compilations(cache, FASTMLP_FASTMATH="0") == 0


def test_the_stamp_covers_every_kernel_source_and_the_compiled_in_settings(tmp_path):
    folder = tmp_path / "_kernels"
    shutil.copytree(_jit.KERNELS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    stamp = _jit.kernels_stamp(str(folder))
    assert stamp == _jit.KERNELS_STAMP  # the copy is what this process compiled from
    layout = folder / "layout.py"  # a callee of most kernels, in a file of its own
    layout.write_text(layout.read_text() + "\n# an edit\n")
    assert _jit.kernels_stamp(str(folder)) != stamp
    (folder / "layout.py").write_text((Path(_jit.KERNELS_DIR) / "layout.py").read_text())
    assert _jit.kernels_stamp(str(folder)) == stamp
    assert _jit.kernels_stamp(str(folder), fastmath={"contract"}) != stamp
    assert _jit.kernels_stamp(str(folder), blas_min_flops=_config.BLAS_MIN_FLOPS + 1) != stamp


def test_only_the_kernels_get_the_wider_stamp(tmp_path):
    from fastmlp._kernels.checks import all_finite

    locator = all_finite._cache._impl.locator
    assert isinstance(locator, _jit.KernelsCacheLocator)
    # Numba reads the source path off a locator to warn of a kernel it cannot cache
    assert locator._py_file == os.path.join(_jit.KERNELS_DIR, "checks.py")
    other = tmp_path / "other.py"
    other.write_text("def f():\n    return 1\n")
    assert _jit.KernelsCacheLocator.from_function(None, str(other)) is None
