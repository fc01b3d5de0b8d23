import struct
import sys

import numpy as np
import pytest

from fastmlp import History, plotting

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, which follows the 8-byte signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def history():
    return History(loss=[2.0, 1.0, 0.5], accuracy=[0.3, 0.6, 0.8], val_loss=[2.1, 1.2, 0.7],
                   val_accuracy=[0.25, 0.55, 0.75], seconds=[0.1, 0.1, 0.1])


def test_plot_history_writes_png_of_requested_size(tmp_path, history):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    plotting.plot_history(history, path, title="digits")
    assert png_size(path) == (1000, 400)
    path2 = tmp_path / "small.png"
    plotting.plot_history(history, path2, size_px=(640, 320), dpi=80)
    assert png_size(path2) == (640, 320)


def test_plot_history_reads_back_as_an_image(tmp_path, history):
    image = pytest.importorskip("matplotlib.image")
    path = tmp_path / "curves.png"
    plotting.plot_history(history, path)
    pixels = image.imread(path)
    assert pixels.shape[:2] == (400, 1000)
    assert pixels.std() > 0  # something was drawn


def test_plot_history_without_validation_and_from_a_dict(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "train-only.png"
    plotting.plot_history({"loss": [1.0, 0.5], "accuracy": [0.5, 0.7]}, path)
    assert png_size(path) == (1000, 400)


def test_plot_history_many_epochs(tmp_path):
    pytest.importorskip("matplotlib")
    loss = np.linspace(2, 0.1, 200)
    path = tmp_path / "long.png"
    plotting.plot_history(History(loss=list(loss), accuracy=list(1 - loss / 2)), path)
    assert png_size(path) == (1000, 400)


def test_plot_history_refuses_an_empty_history(tmp_path):
    with pytest.raises(ValueError, match="no completed epoch"):
        plotting.plot_history(History(), tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_plot_confusion_matrix(tmp_path):
    pytest.importorskip("matplotlib")
    matrix = np.array([[5, 1, 0], [0, 7, 2], [1, 0, 9]])
    path = tmp_path / "confusion.png"
    plotting.plot_confusion_matrix(matrix, path, labels=["cat", "dog", "bird"], title="t")
    assert png_size(path) == (600, 600)
    path2 = tmp_path / "big.png"
    plotting.plot_confusion_matrix(np.eye(30, dtype=int), path2, size_px=(800, 700))
    assert png_size(path2) == (800, 700)


@pytest.mark.parametrize("matrix,labels,message", [
    (np.zeros((2, 3)), None, "square"),
    (np.zeros(4), None, "square"),
    (np.zeros((2, 2)), ["a", "b", "c"], "3 labels"),
])
def test_plot_confusion_matrix_bad_input(tmp_path, matrix, labels, message):
    with pytest.raises(ValueError, match=message):
        plotting.plot_confusion_matrix(matrix, tmp_path / "x.png", labels=labels)


def test_missing_matplotlib_says_how_to_install(monkeypatch, tmp_path, history):
    # A None entry in sys.modules makes `import matplotlib` raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    hint = r'pip install "\.\[plot\]" in a checkout of fastmlp, or pip install "matplotlib>=3\.7"'
    with pytest.raises(plotting.MatplotlibMissing, match=hint):
        plotting.require_matplotlib()
    with pytest.raises(ImportError, match="matplotlib"):
        plotting.plot_history(history, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_drawing_leaves_the_backend_alone(tmp_path, history):
    pytest.importorskip("matplotlib")
    import matplotlib

    before = matplotlib.get_backend()
    plotting.plot_history(history, tmp_path / "curves.png")
    plotting.plot_confusion_matrix(np.eye(3, dtype=int), tmp_path / "cm.png")
    assert matplotlib.get_backend() == before


@pytest.fixture
def regression_history():
    return History(loss=[2.0, 1.0, 0.5], val_loss=[2.1, 1.2, 0.7], val_rmse=[1.4, 1.1, 0.8],
                   val_r2=[-0.5, 0.2, 0.6], seconds=[0.1, 0.1, 0.1])


def test_plot_history_of_a_regression_model_draws_r2(tmp_path, regression_history,
                                                     monkeypatch):
    pytest.importorskip("matplotlib")
    figures = []
    save = plotting._save
    monkeypatch.setattr(plotting, "_save", lambda fig, path, dpi: (figures.append(fig),
                                                                   save(fig, path, dpi)))
    path = tmp_path / "curves.png"
    plotting.plot_history(regression_history, path)
    assert png_size(path) == (1000, 400)
    loss_ax, r2_ax = figures[-1].axes
    assert (loss_ax.get_ylabel(), r2_ax.get_ylabel()) == ("loss", "R^2")
    assert [line.get_label() for line in r2_ax.get_lines()] == ["validation"]
    np.testing.assert_array_equal(r2_ax.get_lines()[0].get_ydata(), regression_history.val_r2)
    # without validation data (no val_r2): one panel, the loss
    plotting.plot_history({"loss": regression_history.loss}, tmp_path / "bare.png")
    assert png_size(tmp_path / "bare.png") == (1000, 400)
    assert [ax.get_ylabel() for ax in figures[-1].axes] == ["loss"]


@pytest.mark.parametrize("shape", [(50,), (50, 3)])
def test_plot_regression(tmp_path, regression_history, shape):
    image = pytest.importorskip("matplotlib.image")
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=shape)
    y_pred = y_true + 0.3 * rng.normal(size=shape)
    path = tmp_path / "reg.png"
    plotting.plot_regression(regression_history, y_true, y_pred, path, title="diabetes",
                             val_label="test")
    assert png_size(path) == (1000, 400)
    pixels = image.imread(path)
    assert pixels[:, :500].std() > 0 and pixels[:, 500:].std() > 0
    plotting.plot_regression({"loss": [1.0]}, y_true, y_pred, tmp_path / "small.png",
                             size_px=(640, 320), dpi=80)
    assert png_size(tmp_path / "small.png") == (640, 320)


@pytest.mark.parametrize("history,y_true,y_pred,message", [
    (History(), [1.0, 2.0], [1.0, 2.0], "no completed epoch"),
    ({"loss": [1.0]}, [1.0, 2.0], [1.0, 2.0, 3.0], "one shape"),
    ({"loss": [1.0]}, [], [], "non-empty"),
    ({"loss": [1.0]}, np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), r"\(n,\) or"),
])
def test_plot_regression_bad_input(tmp_path, history, y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        plotting.plot_regression(history, y_true, y_pred, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
