"""Pictures of a training run: learning curves and confusion matrices, as PNG files.

matplotlib is an optional dependency (the ``plot`` extra: ``pip install "fastmlp[plot]"``);
it is imported only when a picture is drawn, and :func:`require_matplotlib` raises
:class:`MatplotlibMissing` with the install line when it is absent. Figures are drawn on
matplotlib's Agg canvas directly (no ``pyplot``), so no global backend is changed and no
display is needed.

This module takes plain numbers (lists, arrays) and imports nothing else from fastmlp.
"""

import os

import numpy as np

__all__ = ["MatplotlibMissing", "plot_confusion_matrix", "plot_history", "require_matplotlib"]

#: The pip line printed when matplotlib is missing.
INSTALL_HINT = 'pip install matplotlib, or the extra: pip install "fastmlp[plot]"'


class MatplotlibMissing(ImportError):
    """matplotlib is not installed; the message says how to install it."""


def require_matplotlib():
    """Import matplotlib or raise :class:`MatplotlibMissing` with the install line.

    Returns
    -------
    module
        The ``matplotlib`` package.
    """
    try:
        import matplotlib
    except ImportError:
        raise MatplotlibMissing(
            f"plots need matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None
    return matplotlib


def _new_figure(size_px, dpi):
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = size_px
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi):
    # No bbox_inches="tight": the file keeps exactly the requested pixel size.
    fig.savefig(os.fspath(path), dpi=dpi, format="png")


def plot_history(history, path, *, title=None, val_label="validation", size_px=(1000, 400),
                 dpi=100):
    """Write learning curves to a PNG: loss (left) and accuracy (right) per epoch.

    Parameters
    ----------
    history : fastmlp.History or mapping
        Anything with ``loss``, ``accuracy`` and optionally ``val_loss``, ``val_accuracy``
        sequences, one value per epoch, as attributes or keys. Empty validation sequences are
        left out of the picture.
    path : str or os.PathLike
        Output file (PNG).
    title : str, optional
        Title above both panels.
    val_label : str
        Legend entry of the ``val_*`` curves (``"test"`` when they come from the test set).
    size_px : (int, int)
        Width and height of the image in pixels.
    dpi : int
        Resolution used to turn ``size_px`` into inches.

    Raises
    ------
    MatplotlibMissing
        matplotlib is not installed.
    ValueError
        The history holds no epoch.
    OSError
        The file cannot be written.
    """

    def series(name):
        value = history.get(name, ()) if isinstance(history, dict) else getattr(
            history, name, ())
        return np.asarray(value if value is not None else (), dtype=float)

    loss, accuracy = series("loss"), series("accuracy")
    if loss.size == 0:
        raise ValueError("the history holds no completed epoch: nothing to plot")
    val_loss, val_accuracy = series("val_loss"), series("val_accuracy")
    fig = _new_figure(size_px, dpi)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = np.arange(1, loss.size + 1)
    for ax, train, val, label in ((ax_loss, loss, val_loss, "loss (cross-entropy)"),
                                  (ax_acc, accuracy, val_accuracy, "accuracy")):
        ax.plot(epochs[: train.size], train, marker="o", markersize=3, label="train")
        if val.size:
            ax.plot(epochs[: val.size], val, marker="o", markersize=3, label=val_label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
        if loss.size <= 20:
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path, dpi)


def plot_confusion_matrix(matrix, path, *, labels=None, title=None, size_px=(600, 600),
                          dpi=100):
    """Write a confusion matrix to a PNG: rows are true classes, columns predicted ones.

    Parameters
    ----------
    matrix : array-like of shape (K, K)
        ``matrix[i, j]`` counts the samples of true class ``i`` predicted as ``j``.
    path : str or os.PathLike
        Output file (PNG).
    labels : sequence of str, optional
        Class names for the ticks (default ``0..K-1``).
    title : str, optional
    size_px : (int, int)
        Width and height of the image in pixels.
    dpi : int

    Raises
    ------
    MatplotlibMissing
        matplotlib is not installed.
    ValueError
        ``matrix`` is not square or ``labels`` has the wrong length.
    OSError
        The file cannot be written.
    """
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {counts.shape}")
    k = counts.shape[0]
    labels = [str(label) for label in (range(k) if labels is None else labels)]
    if len(labels) != k:
        raise ValueError(f"{len(labels)} labels for a {k}x{k} confusion matrix")
    fig = _new_figure(size_px, dpi)
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(k)
    ax.set_xticks(ticks, labels, rotation=45 if max(map(len, labels)) > 2 else 0)
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:  # numbers in the cells while they stay legible
        threshold = counts.max() / 2 if counts.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{counts[i, j]:g}", ha="center", va="center", fontsize=8,
                        color="white" if counts[i, j] > threshold else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save(fig, path, dpi)
