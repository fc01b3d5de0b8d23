"""Input checks shared by the faces: clear errors before any kernel sees the data."""

import numbers

import numpy as np

from fastmlp._kernels.checks import all_finite


def plain_rows(X):
    """Return a pandas DataFrame with extension columns as float64 rows, NaN where missing.

    pandas' nullable columns (``Int64``, ``Float64``, ``boolean``) and pyarrow-backed ones
    (``int64[pyarrow]``) become an array of dtype object under ``np.asarray``, which no
    kernel takes; scikit-learn's own checks convert them, and so does this. A DataFrame of
    NumPy columns, a column of text, and anything that is not a DataFrame come back as they
    are (text is refused later, with the usual error).
    """
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "iloc") or not hasattr(X, "to_numpy"):
        return X
    try:
        dtypes = list(dtypes)
    except TypeError:  # a Series: one dtype
        return X
    if all(isinstance(d, np.dtype) for d in dtypes):
        return X
    if not all(getattr(d, "kind", "O") in "biuf" for d in dtypes):
        return X
    return X.to_numpy(dtype=np.float64, na_value=np.nan)


def check_X(X, dtype, n_features=None, name="X"):
    """Return ``X`` as a finite, non-empty, C-contiguous 2-D array of ``dtype``.

    No copy is made when ``X`` already is one (a float32 C-contiguous array for a float32 model).

    Raises
    ------
    TypeError
        ``X`` is not numeric (strings, objects, complex).
    ValueError
        ``X`` is not 2-D, is empty, holds NaN or infinity, or has the wrong number of columns.
    """
    if hasattr(X, "toarray") and not isinstance(X, np.ndarray):
        X = X.toarray()
    X = plain_rows(X)
    try:
        arr = np.asarray(X)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{name} is not a rectangular array of numbers: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(
            f"{name} must be numeric (int or float), got an array of dtype {arr.dtype}; "
            "convert it with np.asarray(X, dtype=float)"
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}; "
            "use X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}; at least one sample and feature")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but the model expects {n_features}"
        )
    original = arr
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, in words
        arr = np.ascontiguousarray(arr, dtype=dtype)  # no copy when it already is
    if not all_finite(arr):
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = f"row {bad[0]}, column {bad[1]}"
        if np.isfinite(original[bad[0], bad[1]]):
            raise ValueError(
                f"{name} holds {original[bad[0], bad[1]]} at {where}, beyond the range of "
                f"the model's {np.dtype(dtype).name} (largest {np.finfo(dtype).max:.3g}); "
                "scale the data, or use a float64 model"
            )
        raise ValueError(
            f"{name} contains NaN or infinity (first at {where}); remove or impute those values"
        )
    return arr


def _real_rows(y, n_samples, name, must, advice=""):
    """``y`` as a NumPy array of real numbers (or booleans) with ``n_samples`` rows.

    A non-numeric dtype raises ``TypeError(must + ", got dtype ..." + advice)``.
    """
    try:
        arr = np.asarray(y)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{name} is not a rectangular array of numbers: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(f"{must}, got dtype {arr.dtype}{advice}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.shape[:1] != (n_samples,):
        raise ValueError(f"{name} has {arr.shape[0] if arr.ndim else 0} rows but X has "
                         f"{n_samples}; they must match")
    return arr


def check_targets(y, n_samples, n_classes, dtype, name="y"):
    """Target rows ``Y`` (n, K) of ``dtype`` from integer labels or from rows summing to 1.

    Raises
    ------
    TypeError
        ``y`` is not numeric.
    ValueError
        Wrong length or shape, labels outside ``0..K-1`` or not integers, non-finite or negative
        entries, or rows that do not sum to 1.
    """
    arr = _real_rows(y, n_samples, name,
                     f"{name} must be integer labels or numeric target rows")
    if arr.ndim == 1:
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError(f"{name} as 1-D must hold integer class labels 0..{n_classes - 1}")
        # the range is checked before the cast, which would wrap or overflow huge values
        low, high = arr.min(), arr.max()
        if low < 0 or high >= n_classes:
            raise ValueError(
                f"{name} holds labels from {low} to {high}, but the model has "
                f"{n_classes} outputs: labels must be in 0..{n_classes - 1}"
            )
        labels = arr.astype(np.int64)
        Y = np.zeros((n_samples, n_classes), dtype=dtype)
        Y[np.arange(n_samples), labels] = 1
        return Y
    if arr.ndim != 2 or arr.shape[1] != n_classes:
        raise ValueError(
            f"{name} must be 1-D labels or 2-D target rows of shape ({n_samples}, {n_classes}); "
            f"got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if (arr < 0).any():
        raise ValueError(f"{name} has negative entries: target rows must be probabilities")
    with np.errstate(over="ignore"):  # a value beyond the dtype's range fails the sum check
        Y = np.ascontiguousarray(arr, dtype=dtype)
        sums = Y.sum(axis=1, dtype=np.float64)
    if not np.allclose(sums, 1.0, rtol=0, atol=1e-5):
        i = int(np.argmax(np.abs(sums - 1)))
        raise ValueError(f"{name}'s rows must each sum to 1 (one-hot or soft targets); "
                         f"row {i} sums to {sums[i]:.6g}")
    return Y


def check_regression_targets(y, n_samples, n_outputs, dtype, *, nonnegative=False, name="y"):
    """Target rows ``Y`` (n, K) of ``dtype`` from real-valued regression targets.

    ``y`` of shape ``(n,)`` is accepted for one output (``K == 1``), ``(n, K)`` for any. The
    values are used as they are: integers are numbers here, not class labels.

    Parameters
    ----------
    nonnegative : bool
        Refuse negative values (an exp output: its Poisson deviance needs ``y >= 0``).

    Raises
    ------
    TypeError
        ``y`` is not numeric.
    ValueError
        Wrong length or shape, NaN or infinity, a value beyond the range of ``dtype``, or
        (with ``nonnegative``) a negative value.
    """
    arr = _real_rows(y, n_samples, name, f"{name} must hold numbers (regression targets)",
                     "; convert it with np.asarray(y, dtype=float)")
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(n_samples, 1)
    elif arr.ndim != 2 or arr.shape[1] != n_outputs:
        shapes = f"({n_samples},) or ({n_samples}, 1)" if n_outputs == 1 else \
            f"({n_samples}, {n_outputs})"
        raise ValueError(f"{name} has shape {arr.shape}, but the model has {n_outputs} "
                         f"output{'s' if n_outputs > 1 else ''}: give {name} the shape {shapes}")
    finite = np.isfinite(arr)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        raise ValueError(f"{name} contains NaN or infinity (first at row {i}"
                         f"{f', column {j}' if n_outputs > 1 else ''}); remove or impute "
                         "those values")
    if nonnegative and (arr < 0).any():
        i, j = np.argwhere(arr < 0)[0]
        raise ValueError(f"{name} has negative values (first {arr[i, j]} at row {i}"
                         f"{f', column {j}' if n_outputs > 1 else ''}): an exp output predicts "
                         "e^z > 0 and its Poisson deviance needs targets >= 0; use "
                         "output='identity' for targets of any sign")
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, in words
        Y = np.ascontiguousarray(arr, dtype=dtype)
    if not all_finite(Y):
        i, j = np.argwhere(~np.isfinite(Y))[0]
        raise ValueError(f"{name} holds {arr[i, j]} at row {i}, beyond the range of the "
                         f"model's {np.dtype(dtype).name} (largest {np.finfo(dtype).max:.3g}); "
                         "scale the targets, or use a float64 model")
    return Y


def check_positive_int(value, name, minimum=1):
    """``value`` as an int >= ``minimum``, or a ValueError/TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(value, name, *, low=None, high=None, low_inclusive=True, high_inclusive=True):
    """``value`` as a finite float within the given bounds, or a ValueError/TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    ok = np.isfinite(v)
    if ok and low is not None:
        ok = v >= low if low_inclusive else v > low
    if ok and high is not None:
        ok = v <= high if high_inclusive else v < high
    if not ok:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = f"{'[' if low_inclusive else '('}{lo}, {hi}{']' if high_inclusive else ')'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return v
