import subprocess
import sys

import numpy as np
import pytest

from fastmlp import Model


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastmlp", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_train_on_digits_and_save(tmp_path):
    path = tmp_path / "digits.npz"
    result = run("train", "--epochs", "3", "--save", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split()[:3] == ["epoch", "loss", "accuracy"]
    assert [line.split()[0] for line in lines[2:5]] == ["1", "2", "3"]
    assert "test accuracy" in lines[5] and "samples/s" in lines[5]
    model = Model.load(path)
    assert model.layer_sizes == (64, 32, 10)


def test_train_on_npz_with_string_labels(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5)).astype(np.float32)
    y = np.where(X[:, 0] > 0, "pos", "neg")
    data = tmp_path / "data.npz"
    np.savez(data, X_train=X[:150], y_train=y[:150], X_test=X[150:], y_test=y[150:])
    result = run("train", "--data", str(data), "--hidden", "8", "--epochs", "20",
                 "--optimizer", "adam", "--learning-rate", "0.01", "--quiet")
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split()[2])
    assert accuracy > 0.85


@pytest.mark.parametrize("args,message", [
    (["--data", "nonexistent.npz"], "No such file"),
    (["--data", "what"], "--data 'what'"),
    (["--epochs", "0"], "positive integer"),
    (["--learning-rate", "-1"], "positive number"),
    (["--momentum", "1.5"], "momentum"),
])
def test_user_errors_exit_2_without_traceback(args, message):
    result = run("train", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_has_examples():
    result = run("train", "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and "--data" in result.stdout
