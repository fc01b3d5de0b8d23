"""The ``fastmlp`` command, run as a real subprocess (``python -m fastmlp``)."""

import os
import re
import shlex
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from commands import INTERRUPTIBLE_FASTMLP

from fastmlp import Model, datasets

FASHION_DIR = "/usr/share/datasets/fashion-mnist"



def run(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "fastmlp", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path}: not a PNG"
    return struct.unpack(">II", head[16:24])


def assert_user_error(result, message):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastmlp: error: "), result.stderr
    assert message in lines[0], result.stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def digits_model(workdir):
    """A digits model trained and saved by the command; (path, stdout).

    With matplotlib installed the same run also writes learning curves to curves.png, so that
    one subprocess serves both tests.
    """
    path = workdir / "digits.npz"
    plot = ["--plot", workdir / "curves.png"] if have_matplotlib() else []
    result = run("train", "--epochs", "3", "--save", path, *plot)
    assert result.returncode == 0, result.stderr
    return path, result.stdout


@pytest.fixture(scope="module")
def small_npz(workdir):
    """A small 5-feature, 2-class data set with string labels, as an .npz."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5)).astype(np.float32)
    y = np.where(X[:, 0] > 0, "pos", "neg")
    path = workdir / "small.npz"
    np.savez(path, X_train=X[:150], y_train=y[:150], X_test=X[150:], y_test=y[150:])
    return path


# -- train -------------------------------------------------------------------------------------
def test_train_on_digits_prints_a_table_and_saves(digits_model):
    path, stdout = digits_model
    lines = stdout.splitlines()
    assert lines[0].startswith("fastmlp: 1347 training and 450 test samples")
    assert "validation: the test set" in lines[0]
    assert lines[1].split() == ["epoch", "loss", "accuracy", "test_loss", "test_acc",
                                "seconds", "samples/s"]
    assert [line.split()[0] for line in lines[2:5]] == ["1", "2", "3"]
    summary = lines[5]
    assert re.match(r"test accuracy 0\.\d{4}  test loss \d+\.\d{4}  3 epochs in [\d.]+ s  "
                    r"\d+ samples/s$", summary), summary
    assert lines[6] == f"saved {path}"
    assert len(lines) == (8 if have_matplotlib() else 7)
    model = Model.load(path)
    assert model.layer_sizes == (64, 32, 10)
    # The summary's accuracy is the saved model's on the digits test split.
    _, _, X_test, y_test = datasets.load_digits(seed=0)
    assert float(summary.split()[2]) == pytest.approx(
        model.evaluate(X_test, y_test)["accuracy"], abs=1e-4)


def test_train_on_npz_with_string_labels(small_npz):
    result = run("train", "--data", small_npz, "--hidden", "8", "--epochs", "20",
                 "--optimizer", "adam", "--learning-rate", "0.01", "--threads", "1",
                 "--dtype", "float64", "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1  # --quiet: the summary only
    accuracy = float(result.stdout.split()[2])
    assert accuracy > 0.85


def test_train_validation_fraction_and_early_stopping(workdir):
    # Pure noise: the validation loss stops improving quickly, so early stopping must fire.
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 10)).astype(np.float32)
    y = rng.integers(0, 3, 120)
    data = workdir / "noise.npz"
    np.savez(data, X_train=X[:100], y_train=y[:100], X_test=X[100:], y_test=y[100:])
    result = run("train", "--data", data, "--hidden", "16", "--epochs", "500",
                 "--validation-fraction", "0.2", "--early-stopping", "3",
                 "--optimizer", "adam", "--learning-rate", "0.05")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("fastmlp: 80 training and 20 test samples")
    assert "validation: 20 held out from the training set" in lines[0]
    assert lines[1].split()[3:5] == ["val_loss", "val_acc"]
    stop = [line for line in lines if line.startswith("early stopping after epoch")]
    assert len(stop) == 1, result.stdout
    epochs = int(re.search(r"after epoch (\d+)", stop[0]).group(1))
    best = int(re.search(r"at epoch (\d+)", stop[0]).group(1))
    assert epochs == best + 3 < 500
    rows = [line for line in lines if re.match(r"\s+\d+\s", line)]
    assert len(rows) == epochs
    val_loss = [float(row.split()[3]) for row in rows]
    assert min(val_loss[best:]) >= val_loss[best - 1]
    assert f"{epochs} epochs in" in lines[-2]
    # noise has nothing to learn: the last line says so
    assert lines[-1].startswith("note: test accuracy 0.2000 is chance level: always "
                                "predicting the most frequent class ('1') scores 0.2500")
    assert "--scale" not in lines[-1]  # the features' scales are alike: not the cause


def test_train_plot_writes_learning_curves(digits_model, workdir):
    pytest.importorskip("matplotlib")
    png = workdir / "curves.png"
    assert digits_model[1].splitlines()[7] == f"learning curves written to {png}"
    assert png_size(png) == (1000, 400)


def test_interrupt_stops_after_the_epoch_and_still_saves(workdir):
    path = workdir / "interrupted.npz"
    proc = subprocess.Popen(
        [*INTERRUPTIBLE_FASTMLP, "train", "--epochs", "1000000", "--save", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.split()[:1] == ["2"]:  # the table row of epoch 2
                proc.send_signal(signal.SIGINT)
                break
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    match = re.search(r"interrupted: stopped after epoch (\d+) of 1000000", stdout)
    assert match, stdout
    assert int(match.group(1)) >= 2
    assert f"saved {path}" in stdout
    assert Model.load(path).layer_sizes == (64, 32, 10)


@pytest.mark.parametrize("progress", [False, True])
def test_epoch_rows_with_and_without_a_progress_bar(progress):
    # With a bar on the terminal the rows go through tqdm.write, which lifts the bar first.
    import io

    from fastmlp.cli import _EpochPrinter

    out = io.StringIO()
    printer = _EpochPrinter(100, "val", out, progress=progress)
    logs = {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.625, "val_accuracy": 0.5,
            "seconds": 0.25}
    assert printer.on_epoch_end(1, logs) is False
    head, row = out.getvalue().splitlines()
    assert head.split() == ["epoch", "loss", "accuracy", "val_loss", "val_acc", "seconds",
                            "samples/s"]
    assert row.split() == ["1", "0.5000", "0.7500", "0.6250", "0.5000", "0.250", "400"]


@pytest.mark.slow
def test_fashion_mnist_end_to_end(workdir):
    if not os.path.isdir(FASHION_DIR):
        pytest.skip(f"Fashion-MNIST is not installed in {FASHION_DIR} "
                    "(apt-get install dataset-fashion-mnist)")
    path = workdir / "fashion.npz"
    result = run("train", "--data", "fashion-mnist", "--epochs", "1", "--hidden", "32",
                 "--save", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("fastmlp: 60000 training and 10000 test samples")
    assert float(result.stdout.splitlines()[-2].split()[2]) > 0.7
    assert Model.load(path).layer_sizes == (784, 32, 10)


# -- evaluate ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluated(digits_model, workdir):
    """`fastmlp evaluate` on the digits model (with --confusion when matplotlib is there)."""
    confusion = ["--confusion", workdir / "confusion.png"] if have_matplotlib() else []
    result = run("evaluate", digits_model[0], *confusion)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_evaluate_reports_loss_accuracy_and_per_class_table(digits_model, evaluated):
    lines = evaluated.splitlines()
    model = Model.load(digits_model[0])
    _, _, X_test, y_test = datasets.load_digits(seed=0)
    expected = model.evaluate(X_test, y_test)
    assert lines[0] == f"model {digits_model[0]}: layers [64, 32, 10], sigmoid, float32"
    assert lines[1] == "data digits: 450 test samples"
    assert lines[2] == f"loss {expected['loss']:.4f}  accuracy {expected['accuracy']:.4f}"
    assert lines[3].split() == ["class", "precision", "recall", "support"]
    table = [line.split() for line in lines[4:14]]
    predicted = model.predict(X_test)
    for k, (name, precision, recall, support) in enumerate(table):
        assert int(name) == k
        assert int(support) == np.sum(y_test == k)
        assert float(recall) == pytest.approx(np.mean(predicted[y_test == k] == k), abs=1e-4)
        if np.any(predicted == k):
            assert float(precision) == pytest.approx(np.mean(y_test[predicted == k] == k),
                                                     abs=1e-4)
        else:
            assert precision == "-"  # undefined: the class was never predicted


def test_evaluate_confusion_picture(evaluated, workdir):
    pytest.importorskip("matplotlib")
    png = workdir / "confusion.png"
    assert evaluated.splitlines()[14] == f"confusion matrix written to {png}"
    assert png_size(png) == (600, 600)


def test_evaluate_on_npz_with_string_labels(small_npz, workdir):
    path = workdir / "small-model.npz"
    result = run("train", "--data", small_npz, "--hidden", "4", "--epochs", "5", "--quiet",
                 "--save", path)
    assert result.returncode == 0, result.stderr
    result = run("evaluate", path, "--data", small_npz)
    assert result.returncode == 0, result.stderr
    rows = [line.split()[0] for line in result.stdout.splitlines()[4:]]
    assert rows == ["neg", "pos"]
    # predict answers in the data's own labels, which the model file keeps
    with np.load(small_npz) as data:
        X_test = data["X_test"]
    np.save(workdir / "x.npy", X_test)
    result = run("predict", path, workdir / "x.npy")
    assert result.returncode == 0, result.stderr
    model = Model.load(path)
    assert model.classes.tolist() == ["neg", "pos"]
    assert result.stdout.split() == model.classes[model.predict(X_test)].tolist()


# -- predict -----------------------------------------------------------------------------------
def write_input(kind, directory, X_test):
    """Write samples as ``kind``; return (path, the array the model should see)."""
    if kind == "npy":
        path = directory / "samples.npy"
        np.save(path, X_test)
        return path, X_test
    if kind == "csv":
        path = directory / "samples.csv"
        header = ",".join(f"pixel{i}" for i in range(X_test.shape[1]))
        np.savetxt(path, X_test, fmt="%.9g", delimiter=",", header=header, comments="")
        return path, np.loadtxt(path, delimiter=",", skiprows=1)
    # IDX images (n, 8, 8) of uint8, flattened and scaled by 1/255 on reading
    images = np.round(X_test * 255).astype(np.uint8).reshape(-1, 8, 8)
    path = directory / "samples-idx3-ubyte.gz"
    datasets.write_idx(path, images)
    return path, images.reshape(len(images), -1).astype(np.float32) / np.float32(255)


@pytest.mark.parametrize("kind,options", [
    ("npy", []),                   # labels to stdout
    ("csv", ["--proba"]),          # probabilities to stdout
    ("idx", ["--proba", "-o"]),    # probabilities to a file
])
def test_predict_round_trip(kind, options, digits_model, tmp_path):
    path, _ = digits_model
    model = Model.load(path)
    _, _, X_test, _ = datasets.load_digits(seed=0)
    samples, X_seen = write_input(kind, tmp_path, X_test[:60])
    out = tmp_path / "out.csv"
    result = run("predict", path, samples, *options, *([out] if "-o" in options else []))
    assert result.returncode == 0, result.stderr
    if "-o" in options:
        assert result.stdout == ""
        assert f"60 predictions written to {out}" in result.stderr
        text = out.read_text()
    else:
        text = result.stdout
    if kind == "csv":
        # a table in, a table out: a header, the predicted class, then proba_<class> columns
        header, *lines = text.splitlines()
        assert header == ",".join(['"prediction"', *(f'"proba_{c}"' for c in model.classes)])
        rows = np.loadtxt(lines, delimiter=",", dtype=np.float32)
        np.testing.assert_array_equal(rows[:, 0], model.predict(X_seen))
        np.testing.assert_array_equal(rows[:, 1:], model.predict_proba(X_seen))
    elif "--proba" in options:
        # float32 printed with 9 significant digits reads back as the same float32
        proba = np.loadtxt(text.splitlines(), delimiter=",", dtype=np.float32)
        np.testing.assert_array_equal(proba, model.predict_proba(X_seen))
        np.testing.assert_array_equal(proba.argmax(axis=1), model.predict(X_seen))
    else:
        labels = np.array([int(line) for line in text.split()])
        np.testing.assert_array_equal(labels, model.predict(X_seen))


# -- user errors -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_files(workdir, digits_model):
    garbage = workdir / "garbage.bin"
    garbage.write_bytes(b"\x01\x02\x03\x04 this is not IDX")
    (workdir / "garbage.npz").write_bytes(b"PK\x03\x04 truncated zip")
    np.save(workdir / "wrong-features.npy", np.zeros((3, 7), dtype=np.float32))
    np.save(workdir / "one-d.npy", np.zeros(64, dtype=np.float32))
    (workdir / "text.csv").write_text("a,b\nc,d\n")
    (workdir / "empty.csv").write_text("")
    np.savez(workdir / "wide.npz", X_train=np.zeros((4, 3)), y_train=[0, 1, 0, 1],
             X_test=np.zeros((2, 3)), y_test=[0, 1])
    return workdir


@pytest.mark.parametrize("args,message", [
    (["train", "--data", "nonexistent.npz"], "No such file or directory: 'nonexistent.npz'"),
    (["train", "--data", "what"], "--data 'what'"),
    (["train", "--data", "{dir}/garbage.npz"], "garbage.npz"),
    (["train", "--data", "{dir}"], "lacks train-images-idx3-ubyte"),
    (["train", "--epochs", "0"], "positive integer"),
    (["train", "--threads", "100000"], "--threads 100000"),
    (["train", "--save", "/nonexistent-dir/m.npz"], "does not exist"),
    (["train", "--learning-rate", "1e38", "--epochs", "2"], "training diverged in epoch 1"),
    (["evaluate", "missing.npz"], "No such file or directory: 'missing.npz'"),
    (["evaluate", "{dir}/wide.npz"], "is not a fastmlp model file"),
    (["evaluate", "{dir}/garbage.bin"], "is not a fastmlp model file"),
    (["evaluate", "{dir}/digits.npz", "--data", "{dir}/wide.npz"], "takes 64 features"),
    (["predict", "{dir}/digits.npz", "missing.npy"], "No such file or directory"),
    (["predict", "{dir}/digits.npz", "{dir}/wrong-features.npy"], "has 7 features"),
    (["predict", "{dir}/digits.npz", "{dir}/one-d.npy"], "must be 2-D"),
    (["predict", "{dir}/digits.npz", "{dir}/garbage.bin"], "wrong IDX magic number"),
    (["predict", "{dir}/digits.npz", "{dir}/text.csv"], "text.csv"),
    (["predict", "{dir}/digits.npz", "{dir}/empty.csv"], "empty.csv': Empty CSV file"),
    (["predict", "{dir}/digits.npz", "{dir}/one-d.npy", "-o", "/nonexistent-dir/p.csv"],
     "does not exist"),
    ([], "required: COMMAND"),
])
def test_user_errors_exit_2_with_one_line(bad_files, args, message):
    result = run(*(a.replace("{dir}", str(bad_files)) for a in args))
    assert_user_error(result, message.replace("{dir}", str(bad_files)))


@pytest.mark.parametrize("name", ["one-d.npy", "wide.npz", "garbage.bin", "garbage.npz"])
def test_not_a_model_file_is_said_once(bad_files, name):
    result = run("evaluate", bad_files / name)
    assert_user_error(result, f"{str(bad_files / name)!r} is not a fastmlp model file: ")
    assert result.stderr.count("is not a fastmlp model file") == 1, result.stderr
    assert result.stderr.count(name) == 1, result.stderr


@pytest.mark.parametrize("args,message", [
    (["train", "--hidden", "10", "x"], "argument --hidden: expected a positive integer"),
    (["train", "--learning-rate", "-1"], "expected a positive number, got '-1'"),
    (["train", "--momentum", "1.5"], "argument --momentum: expected a number in [0, 1)"),
    (["train", "--l2", "nan"], "expected a number >= 0"),
    (["train", "--validation-fraction", "1"], "between 0 and 1"),
    (["train", "--activation", "softplus"], "invalid choice: 'softplus'"),
    (["train", "--nonsense", "x"], "unrecognized arguments: --nonsense x"),
    (["info", "extra"], "unrecognized arguments: extra"),
    (["evaluate"], "required: MODEL"),
    (["predict", "model.npz"], "required: INPUT"),
    (["bench", "--threads", "0"], "argument --threads: expected a positive integer"),
    (["bench", "--dtype", "float16"], "invalid choice: 'float16'"),
])
def test_option_errors(args, message, capsys):
    # argparse's checks, in-process (the subprocess cases above show the same path end to end)
    from fastmlp.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastmlp: error: "), err
    assert message in err
    assert f"(see 'fastmlp {args[0]} --help')" in err


def test_thread_limits_reach_numba_and_blas_and_are_undone():
    import numba
    from threadpoolctl import threadpool_info

    from fastmlp.cli import thread_limits

    before = numba.get_num_threads()
    with thread_limits(1):
        assert numba.get_num_threads() == 1
        blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
        assert blas and all(lib["num_threads"] == 1 for lib in blas)
    assert numba.get_num_threads() == before
    with thread_limits(None):
        assert numba.get_num_threads() == before


def test_missing_matplotlib_is_a_user_error(workdir):
    # A None entry in sys.modules makes `import matplotlib` fail as if it were not installed.
    code = ("import sys; sys.modules['matplotlib'] = None; from fastmlp.cli import main; "
            f"sys.exit(main(['train', '--plot', {str(workdir / 'x.png')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert_user_error(result, 'pip install ".[plot]" in a checkout of fastmlp, or pip install')
    assert result.stdout == ""  # refused before training, not after


# -- regression --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diabetes_model(workdir):
    """A diabetes regression model trained and saved by the command; (path, stdout).

    With matplotlib installed the same run also draws the regression picture, reg.png.
    """
    path = workdir / "diabetes.npz"
    plot = ["--plot", workdir / "reg.png"] if have_matplotlib() else []
    result = run("train", "--task", "regression", "--epochs", "4", "--save", path, *plot)
    assert result.returncode == 0, result.stderr
    return path, result.stdout


def test_train_regression_on_diabetes(diabetes_model, workdir):
    path, stdout = diabetes_model
    lines = stdout.splitlines()
    assert lines[0] == ("fastmlp: 331 training and 111 test samples, regression (identity "
                        "output), layers [10, 32, 1], sigmoid, adam (learning rate 0.003), "
                        "batch 32, float32; validation: the test set")
    assert lines[1].split() == ["epoch", "loss", "test_loss", "test_rmse", "test_r2",
                                "seconds", "samples/s"]
    rows = [line.split() for line in lines[2:6]]
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    assert float(rows[-1][1]) < float(rows[0][1])  # the training loss falls
    summary = lines[6]
    assert re.match(r"test R\^2 -?\d\.\d{4}  test RMSE \d+\.\d{4}  test loss \d+\.\d{4}  "
                    r"4 epochs in [\d.]+ s  \d+ samples/s$", summary), summary
    assert lines[7] == f"saved {path}"
    model = Model.load(path)
    assert model.output == "identity" and model.layer_sizes == (10, 32, 1)
    assert model.classes is None
    # the summary and the last table row are the saved model's scores on the test split
    _, _, X_test, y_test = datasets.load_diabetes(seed=0)
    expected = model.evaluate(X_test, y_test)
    assert float(summary.split()[2]) == pytest.approx(expected["r2"], abs=1e-4)
    assert float(summary.split()[5]) == pytest.approx(expected["rmse"], abs=1e-4)
    assert rows[-1][2:5] == [f"{expected[k]:.4f}" for k in ("loss", "rmse", "r2")]
    if have_matplotlib():
        png = workdir / "reg.png"
        assert lines[8] == ("the loss curves and the test set's predicted against true values "
                            f"written to {png}")
        assert png_size(png) == (1000, 400)
    assert len(lines) == (9 if have_matplotlib() else 8)


def test_evaluate_and_predict_a_regression_model(diabetes_model, tmp_path):
    path, _ = diabetes_model
    model = Model.load(path)
    _, _, X_test, y_test = datasets.load_diabetes(seed=0)
    result = run("evaluate", path)  # no --task: the file says it is a regression model
    assert result.returncode == 0, result.stderr
    expected = model.evaluate(X_test, y_test)
    assert result.stdout.splitlines() == [
        f"model {path}: layers [10, 32, 1], sigmoid, regression (identity output), float32",
        "data diabetes: 111 test samples",
        f"loss {expected['loss']:.4f}  RMSE {expected['rmse']:.4f}  R^2 {expected['r2']:.4f}",
    ]
    np.save(tmp_path / "x.npy", X_test[:7])
    result = run("predict", path, tmp_path / "x.npy")
    assert result.returncode == 0, result.stderr
    # float32 printed with 9 significant digits reads back as the same float32
    values = np.array(result.stdout.split(), dtype=np.float32)
    np.testing.assert_array_equal(values, model.predict(X_test[:7]))


@pytest.fixture(scope="module")
def two_target_npz(workdir):
    """Regression data with two non-negative targets per row (y 2-D), as an .npz."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((240, 4)).astype(np.float32)
    Y = np.column_stack([np.exp(0.5 * X[:, 0]), np.exp(0.3 * X[:, 2] - 0.4 * X[:, 1])])
    path = workdir / "two.npz"
    np.savez(path, X_train=X[:180], y_train=Y[:180], X_test=X[180:], y_test=Y[180:])
    return path


@pytest.mark.parametrize("output", ["identity", "exp"])
def test_regression_with_two_outputs_end_to_end(two_target_npz, workdir, output):
    path = workdir / f"two-{output}.npz"
    result = run("train", "--task", "regression", "--output-kind", output, "--data", two_target_npz,
                 "--hidden", "16", "--epochs", "40", "--dtype", "float64", "--quiet",
                 "--save", path)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split()[2]) > 0.7  # test R^2 (measured: 0.84 and 0.96)
    model = Model.load(path)
    assert model.output == output and model.layer_sizes == (4, 16, 2)
    with np.load(two_target_npz) as data:
        X_test, y_test = data["X_test"], data["y_test"]
    result = run("evaluate", path, "--data", two_target_npz)
    assert result.returncode == 0, result.stderr
    assert f"R^2 {model.evaluate(X_test, y_test)['r2']:.4f}" in result.stdout
    np.savetxt(workdir / "two.csv", X_test[:5], delimiter=",", fmt="%.9g")
    result = run("predict", path, workdir / "two.csv")
    assert result.returncode == 0, result.stderr
    # a CSV without a header row: its columns in order; the answer a table, one column per
    # output, read back exactly
    header, *lines = result.stdout.splitlines()
    assert header == '"prediction_0","prediction_1"'
    values = np.loadtxt(lines, delimiter=",")
    np.testing.assert_array_equal(values, model.predict(np.loadtxt(workdir / "two.csv",
                                                                   delimiter=",")))


def _main_error(args, capsys):
    from fastmlp.cli import main

    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastmlp: error: "), err
    return err


@pytest.mark.parametrize("args,message", [
    (["train", "--task", "regression", "--data", "digits"],
     "--data 'digits' is a classification data set (class labels); a regression model needs "
     "real-valued targets"),
    (["train", "--task", "regression", "--data", "{dir}"], "is a classification data set"),
    (["train", "--data", "diabetes"], "regression data set (real-valued targets): add --task "
                                      "regression"),
    (["bench", "--data", "diabetes"], "add --task regression"),
    (["train", "--output-kind", "exp"],
     "--output-kind exp is a regression output: add --task regression"),
    (["train", "--task", "regression", "--data", "{dir}/small.npz"],
     "y_train holds <U3 values, not numbers"),
    (["train", "--task", "regression", "--output-kind", "exp", "--data", "{dir}/signed.npz"],
     "has negative targets: --output-kind exp"),
    (["train", "--data", "{dir}/two.npz"], "a classifier takes 1-D labels; 2-D targets are for "
                                           "--task regression"),
    (["evaluate", "{dir}/diabetes.npz", "--data", "digits"], "is a classification data set"),
    (["evaluate", "{dir}/diabetes.npz", "--confusion", "{dir}/c.png"],
     "--confusion is for classifiers"),
    (["evaluate", "{dir}/diabetes.npz", "--data", "{dir}/two.npz"], "takes 10 features"),
    (["evaluate", "{dir}/two-identity.npz", "--data", "{dir}/signed.npz"],
     "the model has 2 outputs but --data"),
    (["evaluate", "{dir}/digits.npz", "--data", "diabetes"], "add --task regression"),
    (["predict", "{dir}/diabetes.npz", "{dir}/x.npy", "--proba"],
     "--proba is for classifiers: "),
])
def test_regression_user_errors(args, message, capsys, workdir, diabetes_model, digits_model,
                                small_npz, two_target_npz):
    if "--confusion" in args:
        pytest.importorskip("matplotlib")  # else the missing matplotlib is the error
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 4))
    np.savez(workdir / "signed.npz", X_train=X[:15], y_train=X[:15, 0], X_test=X[15:],
             y_test=X[15:, 0])
    if not (workdir / "two-identity.npz").exists():
        Model([4, 3, 2], output="identity", seed=0).save(workdir / "two-identity.npz")
    err = _main_error([a.replace("{dir}", str(workdir)) for a in args], capsys)
    assert message.replace("{dir}", str(workdir)) in err, err


def test_regression_epoch_rows():
    import io

    from fastmlp.cli import _EpochPrinter

    out = io.StringIO()
    printer = _EpochPrinter(100, "test", out, regression=True)
    logs = {"loss": 0.5, "val_loss": 0.625, "val_rmse": 1.25, "val_r2": -0.5, "seconds": 0.25}
    assert printer.on_epoch_end(3, logs) is False
    head, row = out.getvalue().splitlines()
    assert head.split() == ["epoch", "loss", "test_loss", "test_rmse", "test_r2", "seconds",
                            "samples/s"]
    assert row.split() == ["3", "0.5000", "0.6250", "1.2500", "-0.5000", "0.250", "400"]


# -- bench and info ----------------------------------------------------------------------------
def test_bench_prints_a_comparison_table():
    result = run("bench", "--epochs", "1", "--hidden", "16", "--threads", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "threads: 1" in lines
    head = lines.index("implementation    s/epoch  test accuracy  speed-up")
    rows = {line.split()[0]: line.split()[1:] for line in lines[head + 1:]
            if not line.startswith("pytorch: not installed")}
    assert {"fastmlp", "scikit-learn"} <= set(rows)
    assert rows["fastmlp"][2] == "1.0x"
    for seconds, accuracy, speed_up in rows.values():
        assert float(seconds) > 0 and 0 <= float(accuracy) <= 1
        assert speed_up.endswith("x")


def test_info_reports_versions_threads_blas_and_cache():
    result = run("info")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("fastmlp", "numpy", "numba", "scipy", "scikit-learn", "cpu count"):
        assert re.search(rf"^{name}\s+\S", out, re.M), name
    assert re.search(r"^numba threads \d+ of \d+, threading layer \w+", out, re.M)
    assert re.search(r"^thread count  (chosen while training runs|one: nothing|fixed)", out,
                     re.M)
    assert re.search(r"^blas\s+\w+", out, re.M)
    cache = re.search(r"^compile cache (.+) \(", out, re.M).group(1)
    assert os.path.isabs(cache)


# -- help --------------------------------------------------------------------------------------
@pytest.mark.parametrize("command,options", [
    ([], ["train", "evaluate", "predict", "bench", "info", "compile", "export"]),
    (["train"], ["--task", "--output-kind", "--data", "--target", "--test", "--test-fraction",
                 "--drop", "--scale", "--fill", "--scheduler", "--hidden", "--activation",
                 "--optimizer", "--epochs",
                 "--batch-size", "--learning-rate", "--momentum", "--l2",
                 "--validation-fraction", "--early-stopping", "--seed", "--dtype", "--threads",
                 "--save", "--plot", "--quiet"]),
    (["evaluate"], ["MODEL", "--data", "--target", "--confusion", "--threads"]),
    (["predict"], ["MODEL", "INPUT", "--keep", "--proba", "--output", "--threads"]),
    (["export"], ["MODEL", "--onnx"]),
    (["bench"], ["--data", "--hidden", "--epochs", "--batch-size", "--learning-rate",
                 "--dtype", "--threads"]),
    (["info"], []),
    (["compile"], ["--processes"]),
])
def test_help_is_complete_with_examples(command, options):
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert f"  fastmlp {command[0] if command else 'train'}" in result.stdout
    for option in options:
        assert option in result.stdout, option


def test_predict_help_says_labels_are_the_models_class_names():
    text = " ".join(run("predict", "--help").stdout.split())
    assert "class indices" not in text
    assert "each line is one sample's label (the model's class names)" in text


# -- the documentation's examples --------------------------------------------------------------
DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC_PAGES = ["index.md", "quickstart.md", "model.md", "migrating.md", "cli.md"]


def code_blocks(page, language):
    return re.findall(rf"^```{language}\n(.*?)^```", (DOCS / page).read_text(), re.M | re.S)


# tests/test_docs_blocks.py runs every block of the pages; this checks, quickly, that each
# `fastmlp` line of their shell blocks parses, those of blocks it does not run included.
@pytest.mark.parametrize("page", [p for p in DOC_PAGES if "\nfastmlp " in "\n" + "\n".join(
    code_blocks(p, "sh"))])
def test_docs_command_lines_parse(page):
    from fastmlp.cli import build_parser

    lines = [line for block in code_blocks(page, "sh") for line in block.splitlines()]
    commands = [shlex.split(line, comments=True) for line in lines
                if line.startswith("fastmlp ")]
    assert commands, page
    for argv in commands:
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{page}: `{' '.join(argv)}` does not parse (exit {exc.code})")


# -- issue 27: what a newcomer meets ------------------------------------------------------------
def test_cli_page_lists_the_commands_as_help_does():
    # docs/cli.md opens with the commands and what each does: the words of `fastmlp --help`
    listed = re.findall(r"^fastmlp (\w+)\s+(.+)$", code_blocks("cli.md", "text")[0], re.M)
    text = " ".join(run("--help").stdout.split())
    assert len(listed) == 7
    for command, what in listed:
        assert f"{command} {what}" in text, (command, what)


def _options(parser):
    """``{option string: (subcommand, action)}`` lists of every subcommand's visible options."""
    import argparse

    found = {}
    for name, sub in parser.commands.items():
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                found.setdefault(option, []).append((name, action))
    return found


def test_one_option_one_meaning_across_subcommands():
    from fastmlp.cli import build_parser

    for option, uses in _options(build_parser()).items():
        kinds = {(a.dest, tuple(a.choices or ()), a.type, a.nargs, a.metavar, type(a).__name__)
                 for _, a in uses}
        assert len(kinds) == 1, (option, [(name, a.dest, a.choices) for name, a in uses])
    # the clash of issue 27: predict's -o/--output is a file; train's kind is --output-kind
    assert [name for name, _ in _options(build_parser())["--output"]] == ["predict"]


def test_train_output_is_deprecated_but_still_works(two_target_npz):
    result = run("train", "--task", "regression", "--output", "exp", "--data", two_target_npz,
                 "--hidden", "4", "--epochs", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "fastmlp: warning: train --output is deprecated and will be removed in the next "
        "release: use --output-kind exp (--output names an output file, as in predict)"]
    assert result.stdout.startswith("test R^2 ")
    assert "--output-kind" in run("train", "--help").stdout


def test_unknown_data_names_every_kind_that_help_lists(capsys):
    err = _main_error(["train", "--data", "nosuch"], capsys)
    for kind in ("'digits'", "'fashion-mnist'", "'mnist'", "'diabetes'", "directory of IDX",
                 ".npz", ".csv", ".parquet", ".zarr", ".npy"):
        assert kind in err, kind


def test_install_hints_work_from_a_checkout():
    # `pip install "fastmlp[x]"` looks fastmlp up on the package index; the README installs
    # from a checkout, where the extra is ".[x]"
    from fastmlp._extras import install_hint

    assert install_hint("tables") == ('pip install ".[tables]" in a checkout of fastmlp, or '
                                      'pip install "pyarrow>=14"')
    for command in ([], ["train"], ["predict"], ["export"]):
        text = run(*command, "--help").stdout
        assert "fastmlp[" not in text, command
    root = Path(__file__).resolve().parent.parent
    for path in [root / "README.md", *DOCS.glob("*.md"), *(root / "src").rglob("*.py")]:
        assert not re.search(r"pip install ['\"]?fastmlp\[", path.read_text()), path


def test_extras_hints_name_what_pyproject_installs():
    import tomllib

    from fastmlp._extras import EXTRAS

    root = Path(__file__).resolve().parent.parent
    with open(root / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    for name, packages in EXTRAS.items():
        assert list(packages) == extras[name], name


def test_features_of_very_different_scales_warn_before_training(tmp_path):
    from sklearn.datasets import load_wine

    wine = load_wine()
    X_train, X_test = wine.data[::2], wine.data[1::2]
    path = tmp_path / "wine.npz"
    np.savez(path, X_train=X_train, y_train=wine.target[::2], X_test=X_test,
             y_test=wine.target[1::2])
    result = run("train", "--data", path, "--epochs", "3")
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1, result.stderr
    assert ("standard deviations range from 0.119 (column 7) to 311 (column 12)"
            in warning[0]), warning
    assert "--scale standard standardises them" in warning[0]
    # a run at chance says so in its last line
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("note: test accuracy ") and "is chance level" in last, last
    assert "try --scale standard" in last
    # standardised, it learns, and neither the warning nor the note is printed
    result = run("train", "--data", path, "--epochs", "30", "--scale", "standard", "--quiet")
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    assert result.stdout.startswith("test accuracy 0.9"), result.stdout
    assert "note:" not in result.stdout
