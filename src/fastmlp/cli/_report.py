"""What ``fastmlp train`` prints as it goes: the epoch rows, the scale warning, the verdict."""

import warnings

import numpy as np

#: ``train`` warns when the features' standard deviations span this factor or more (and the
#: largest is above 1): a sigmoid network then trains to chance on raw columns (issue 27:
#: the wine table, 0.1 to 1680, scored 0.33 without --scale). Pixels scaled to [0, 1] span
#: less than this, and their deviations stay below 1.
SCALE_SPREAD_WARN = 100.0


def _scale_warning(X, names, data_name):
    """Return the warning printed before training on features of very different scales, or None."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] < 2:
        return None
    sample = X[:: max(1, X.shape[0] // 10000)]  # an estimate of the scales is enough
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
        std = np.nanstd(sample.astype(np.float64, copy=False), axis=0)
    varying = np.flatnonzero(np.isfinite(std) & (std > 0))
    if varying.size == 0:
        return None
    lo, hi = varying[np.argmin(std[varying])], varying[np.argmax(std[varying])]
    if not (std[hi] >= SCALE_SPREAD_WARN * std[lo] and std[hi] > 1.0):
        return None
    name = (lambda j: repr(names[j])) if names is not None else (lambda j: f"{j}")
    return (f"fastmlp: warning: --data {data_name!r}: the features' standard deviations range "
            f"from {std[lo]:.3g} (column {name(lo)}) to {std[hi]:.3g} (column {name(hi)}); "
            "a network trains poorly on features whose scales differ by orders of magnitude: "
            "--scale standard standardises them (and saves that with the model)")


def _chance_note(result, y_train, y_test, classes, regression, warned):
    """Return the last line of a run whose test score is no better than a constant's, or None."""
    hint = ("the features' scales differ by orders of magnitude: try --scale standard" if warned
            else "try another --learning-rate or more --epochs, or the features may not "
            "predict the target")
    if regression:
        if result["r2"] > 0.0:
            return None
        return (f"note: test R^2 {result['r2']:.4f}: no better than predicting the mean "
                f"target; the network learned nothing ({hint})")
    counts = np.bincount(y_train, minlength=len(classes))
    majority = int(np.argmax(counts))
    constant = float(np.mean(y_test == majority)) if len(y_test) else 0.0
    if result["accuracy"] > constant + 0.01:
        return None
    return (f"note: test accuracy {result['accuracy']:.4f} is chance level: always predicting "
            f"the most frequent class ({str(classes[majority])!r}) scores {constant:.4f}; the "
            f"network learned nothing ({hint})")


class _EpochPrinter:
    """Callback printing one table row per epoch.

    With a progress bar on the terminal, rows go through ``tqdm.write``, which lifts the bar
    while a row is written and redraws it below, instead of appending the row to the bar's line.
    """

    def __init__(self, n_samples, val_name, out, progress=False, regression=False):
        self.n_samples = n_samples
        self.out = out
        self.regression = regression
        self.write = print
        if progress:
            from tqdm.auto import tqdm

            self.write = lambda text, file, flush: tqdm.write(text, file=file)
        if regression:  # no training accuracy; RMSE and R^2 of the validation data
            head = f"{'epoch':>5}  {'loss':>8}  {val_name + '_loss':>9}"
            head += f"  {val_name + '_rmse':>9}  {val_name + '_r2':>9}"
        else:
            head = f"{'epoch':>5}  {'loss':>8}  {'accuracy':>8}"
            head += f"  {val_name + '_loss':>9}  {val_name[:4] + '_acc':>9}"
        head += f"  {'seconds':>8}  {'samples/s':>10}"
        print(head, file=out, flush=True)

    def on_epoch_end(self, epoch, logs):
        if self.regression:
            row = f"{epoch:>5}  {logs['loss']:>8.4f}  {logs['val_loss']:>9.4f}"
            row += f"  {logs['val_rmse']:>9.4f}  {logs['val_r2']:>9.4f}"
        else:
            row = f"{epoch:>5}  {logs['loss']:>8.4f}  {logs['accuracy']:>8.4f}"
            row += f"  {logs['val_loss']:>9.4f}  {logs['val_accuracy']:>9.4f}"
        rate = self.n_samples / logs["seconds"] if logs["seconds"] > 0 else float("inf")
        row += f"  {logs['seconds']:>8.3f}  {rate:>10.0f}"
        self.write(row, file=self.out, flush=True)
        return False
