"""Pictures of a training run: learning curves, confusion matrices, regression fits, as PNG.

matplotlib is an optional dependency (the ``plot`` extra: ``pip install ".[plot]"`` in a checkout);
it is imported only when a picture is drawn, and :func:`require_matplotlib` raises
:class:`MatplotlibMissing` with the install line when it is absent. Figures are drawn on
matplotlib's Agg canvas directly (no ``pyplot``), so no global backend is changed and no
display is needed.

This module takes plain numbers (lists, arrays) and imports nothing else from fastmlp.
"""

import os

import numpy as np

from fastmlp._extras import install_hint
from fastmlp._metrics import r2_score

__all__ = ["MatplotlibMissing", "plot_confusion_matrix", "plot_history", "plot_regression",
           "require_matplotlib"]

#: The pip line printed when matplotlib is missing.
INSTALL_HINT = install_hint("plot")


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


def _series(history, name):
    value = history.get(name, ()) if isinstance(history, dict) else getattr(history, name, ())
    return np.asarray(value if value is not None else (), dtype=float)


def _curves(ax, train, val, ylabel, val_label, n_epochs):
    """Draw per-epoch ``train`` and ``val`` curves (either may be empty) on ``ax``."""
    epochs = np.arange(1, n_epochs + 1)
    if train.size:
        ax.plot(epochs[: train.size], train, marker="o", markersize=3, label="train")
    if val.size:
        ax.plot(epochs[: val.size], val, marker="o", markersize=3, label=val_label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if train.size or val.size:
        ax.legend()
    if n_epochs <= 20:
        ax.set_xticks(epochs)


def plot_history(history, path, *, title=None, val_label="validation", size_px=(1000, 400),
                 dpi=100):
    """Write learning curves to a PNG: loss (left) and accuracy (right) per epoch.

    A regression model's history (no accuracy) gets the validation R^2 (``val_r2``) on the
    right, or, without validation data, the loss alone.

    Parameters
    ----------
    history : fastmlp.History or mapping
        Anything with ``loss``, ``accuracy`` and optionally ``val_loss``, ``val_accuracy``
        sequences, one value per epoch, as attributes or keys; or, for a regression model,
        ``loss`` and optionally ``val_loss`` and ``val_r2``. Empty validation sequences are
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
    loss, accuracy = _series(history, "loss"), _series(history, "accuracy")
    if loss.size == 0:
        raise ValueError("the history holds no completed epoch: nothing to plot")
    val_loss, val_accuracy = _series(history, "val_loss"), _series(history, "val_accuracy")
    val_r2 = _series(history, "val_r2")
    classifier = accuracy.size > 0 or val_accuracy.size > 0
    fig = _new_figure(size_px, dpi)
    if classifier or val_r2.size:
        ax_loss, ax_right = fig.subplots(1, 2)
    else:  # a regression model trained without validation data: the loss alone
        ax_loss, ax_right = fig.subplots(), None
    if classifier:
        _curves(ax_loss, loss, val_loss, "loss (cross-entropy)", val_label, loss.size)
        _curves(ax_right, accuracy, val_accuracy, "accuracy", val_label, loss.size)
    else:
        _curves(ax_loss, loss, val_loss, "loss", val_label, loss.size)
        if ax_right is not None:
            _curves(ax_right, np.empty(0), val_r2, "R^2", val_label, loss.size)
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


def plot_regression(history, y_true, y_pred, path, *, title=None, val_label="validation",
                    size_px=(1000, 400), dpi=100):
    """Write a regression model's picture to a PNG: loss per epoch, and predicted against true.

    The left panel has the training loss (and ``val_loss``) per epoch; the right one a point
    per sample and output at (true value, predicted value), with the line ``predicted = true``
    and the R^2 of the points in its title.

    Parameters
    ----------
    history : fastmlp.History or mapping
        Anything with a ``loss`` sequence and optionally ``val_loss``, one value per epoch.
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_outputs)
        True and predicted values, of the same shape (the test set's, say). Several outputs
        get a colour each.
    path : str or os.PathLike
        Output file (PNG).
    title : str, optional
        Title above both panels.
    val_label : str
        Legend entry of the ``val_loss`` curve.
    size_px : (int, int)
        Width and height of the image in pixels.
    dpi : int

    Raises
    ------
    MatplotlibMissing
        matplotlib is not installed.
    ValueError
        The history holds no epoch, or ``y_true`` and ``y_pred`` differ in shape or are empty.
    OSError
        The file cannot be written.
    """
    loss = _series(history, "loss")
    if loss.size == 0:
        raise ValueError("the history holds no completed epoch: nothing to plot")
    true = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    if true.shape != pred.shape or true.size == 0 or true.ndim not in (1, 2):
        raise ValueError(f"y_true and y_pred must be non-empty arrays of one shape, (n,) or "
                         f"(n, n_outputs); got {true.shape} and {pred.shape}")
    true, pred = true.reshape(len(true), -1), pred.reshape(len(pred), -1)
    fig = _new_figure(size_px, dpi)
    ax_loss, ax_fit = fig.subplots(1, 2)
    _curves(ax_loss, loss, _series(history, "val_loss"), "loss", val_label, loss.size)
    for j in range(true.shape[1]):
        label = f"output {j}" if true.shape[1] > 1 else None
        ax_fit.scatter(true[:, j], pred[:, j], s=12, alpha=0.6, label=label)
    low, high = min(true.min(), pred.min()), max(true.max(), pred.max())
    ax_fit.plot([low, high], [low, high], color="grey", linewidth=1, label="predicted = true")
    ax_fit.set_xlabel("true value")
    ax_fit.set_ylabel("predicted value")
    ax_fit.grid(True, alpha=0.3)
    ax_fit.legend()
    if len(true) >= 2 and (true.max(axis=0) > true.min(axis=0)).all():  # R^2 is defined
        ax_fit.set_title(f"R^2 {r2_score(true, pred):.4f}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path, dpi)
