"""Where compiled kernels are cached: FASTMLP_CACHE_DIR, NUMBA_CACHE_DIR, __pycache__, or a
user folder with a one-line notice when the installed package is read-only."""

import subprocess
import sys

from fastmlp import _config


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
