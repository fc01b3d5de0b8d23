"""Regression scores in NumPy, as scikit-learn computes them (``Model.evaluate``, the plots).

scikit-learn is not imported: ``fastmlp.Model`` and the command stay usable without it.
"""

import numpy as np


def rmse(Y, pred):
    """Root mean squared error over every entry, in float64."""
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(Y, dtype=np.float64)
    return float(np.sqrt(np.mean(diff * diff)))


def r2_score(Y, pred):
    """R^2 of each column, averaged: scikit-learn's ``r2_score`` (uniform average), in float64.

    A column whose targets are constant scores 1 when predicted exactly, else 0 (scikit-learn's
    ``force_finite=True``); fewer than two rows: ``nan``.
    """
    Y = np.asarray(Y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if Y.shape[0] < 2:
        return float("nan")
    ss_res = ((Y - pred) ** 2).sum(axis=0)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    scores = np.ones(Y.shape[1])
    valid = (ss_tot != 0) & (ss_res != 0)
    scores[valid] = 1.0 - ss_res[valid] / ss_tot[valid]
    scores[(ss_res != 0) & (ss_tot == 0)] = 0.0
    return float(scores.mean())
