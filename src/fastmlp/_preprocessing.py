"""What a model does to its input columns before the network sees them.

A model trained on a table (``fastmlp train --data table.csv``) keeps the names of its feature
columns, the values that fill their missing entries and the standardisation, and saves them
with its weights, so that ``predict`` and ``evaluate`` apply the very same steps. Plain NumPy,
no table library: the steps are scikit-learn's ``SimpleImputer(strategy="mean")`` followed by
``StandardScaler()``, the pipeline :meth:`fastmlp.Model.to_sklearn` exports.
"""

import numpy as np

from fastmlp._validation import plain_rows

#: The ``fill`` and ``scale`` strategies :meth:`Preprocessing.fit` knows.
FILL_STRATEGIES = ("mean",)
SCALE_STRATEGIES = ("standard",)


class Preprocessing:
    """The column names, missing-value fill and standardisation of a model's inputs.

    :meth:`transform` maps raw rows to what the network takes: each missing entry (NaN)
    becomes its column's ``fill`` value, then each column ``j`` becomes
    ``(x_j - mean_j) / scale_j``. Every step is optional. Computed in float64, as
    scikit-learn's ``SimpleImputer`` and ``StandardScaler`` compute, whatever the model's dtype.

    Parameters
    ----------
    feature_names : sequence of str, optional
        The input columns by name, in the order the network takes them; tables are matched
        by these names.
    fill : array-like of shape (n_features,), optional
        The value that replaces a missing entry of each column. Without it, missing entries
        are an error.
    mean, scale : array-like of shape (n_features,), optional
        Standardisation; given together. ``scale`` entries must be > 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import Preprocessing
    >>> X = np.array([[1.0, 10.0], [np.nan, 20.0], [3.0, 30.0]])
    >>> prep = Preprocessing.fit(X, ["a", "b"], fill="mean", scale="standard")
    >>> prep.fill
    array([ 2., 20.])
    >>> prep.transform(X)[1]
    array([0., 0.])
    """

    def __init__(self, feature_names=None, *, fill=None, mean=None, scale=None):
        n = None
        if isinstance(feature_names, (str, bytes)):
            raise TypeError("feature_names must be a sequence of names, not one string")
        if feature_names is not None:
            names = [str(name) for name in feature_names]
            if len(set(names)) != len(names):
                raise ValueError("feature_names must be distinct")
            n = len(names)
            feature_names = names
        if (mean is None) != (scale is None):
            raise ValueError("mean and scale standardise together: give both or neither")
        arrays = {}
        for name, values in (("fill", fill), ("mean", mean), ("scale", scale)):
            if values is None:
                continue
            arr = np.array(values, dtype=np.float64)
            if arr.ndim != 1 or (n is not None and len(arr) != n):
                raise ValueError(f"{name} must have one entry per feature"
                                 + (f" ({n})" if n is not None else "")
                                 + f", got shape {arr.shape}")
            n = len(arr)
            if not np.isfinite(arr).all():
                raise ValueError(f"{name} must be finite")
            arrays[name] = arr
        if "scale" in arrays and not (arrays["scale"] > 0).all():
            raise ValueError("scale entries must be > 0")
        if n is None:
            raise ValueError("a Preprocessing needs feature_names, fill or mean and scale")
        self.feature_names = feature_names
        self.fill = arrays.get("fill")
        self.mean = arrays.get("mean")
        self.scale = arrays.get("scale")
        self.n_features = n

    @classmethod
    def fit(cls, X, feature_names=None, *, fill=None, scale=None):
        """Learn the fill values and standardisation from training rows ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numbers; NaN marks a missing entry.
        feature_names : sequence of str, optional
            The columns' names; used in error messages and kept.
        fill : {None, "mean"}
            ``"mean"``: a missing entry becomes its column's mean over the entries present.
            ``None``: missing entries are an error.
        scale : {None, "standard"}
            ``"standard"``: subtract each column's mean and divide by its standard deviation
            (``ddof=0``; a constant column is divided by 1), taken after the fill, as
            scikit-learn's ``StandardScaler`` after ``SimpleImputer``.

        Raises
        ------
        ValueError
            Missing entries without ``fill``, a column with no entry at all, infinity, or an
            unknown strategy; the message names the column.
        """
        if fill not in (None, *FILL_STRATEGIES):
            raise ValueError(f"fill must be None or one of {FILL_STRATEGIES}, got {fill!r}")
        if scale not in (None, *SCALE_STRATEGIES):
            raise ValueError(f"scale must be None or one of {SCALE_STRATEGIES}, got {scale!r}")
        X = _as_float_rows(X)
        names = _column_names(feature_names, X.shape[1])
        _check_no_infinity(X, names)
        missing = np.isnan(X).sum(axis=0)
        fill_values = None
        if fill == "mean":
            empty = np.flatnonzero(missing == X.shape[0])
            if empty.size:
                raise ValueError(f"column {names[empty[0]]!r} has no values at all: nothing to "
                                 "fill it with; leave it out")
            unit = _unit(X)
            fill_values = (np.nanmean(X / unit, axis=0) if missing.any()
                           else (X / unit).mean(axis=0)) * unit
            X = np.where(np.isnan(X), fill_values, X)
        else:
            _check_no_missing(missing, names)
        mean = std = None
        if scale == "standard":
            unit = _unit(X)
            mean = (X / unit).mean(axis=0) * unit
            std = (X / unit).std(axis=0) * unit
            std[std == 0] = 1.0  # scikit-learn's StandardScaler leaves a constant column as is
            _check_finite(std, names, "its standard deviation")
        return cls(feature_names, fill=fill_values, mean=mean, scale=std)

    def transform(self, X, dtype=np.float64):
        """Fill and standardise the rows of ``X``; returns a new C-contiguous ``dtype`` array.

        A pandas DataFrame or a pyarrow Table gives its columns by :attr:`feature_names`, in
        any order; an array is taken in the order of the names.

        Raises
        ------
        ValueError
            The wrong number of columns, infinity, or a missing entry (NaN) where there is no
            fill value; the message names the column.
        """
        X = _as_float_rows(self._by_name(X))
        if X.shape[1] != self.n_features:
            raise ValueError(f"X has {X.shape[1]} features, but the model expects "
                             f"{self.n_features}")
        names = _column_names(self.feature_names, X.shape[1])
        _check_no_infinity(X, names)
        nan = np.isnan(X)
        if nan.any():
            if self.fill is None:
                _check_no_missing(nan.sum(axis=0), names)
            X = np.where(nan, self.fill, X)
        if self.mean is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                Z = (X - self.mean) / self.scale
                over = ~np.isfinite(Z)
                if over.any():  # x - mean beyond 1.8e308: the same value, divided first
                    Z = np.where(over, X / self.scale - self.mean / self.scale, Z)
            _check_finite(Z, names, "a standardised value")  # reported in words, by column
            X = Z
        with np.errstate(over="ignore"):  # reported below, in words
            out = np.ascontiguousarray(X, dtype=dtype)
        if out.dtype != X.dtype and not np.isfinite(out).all():  # X is finite here
            j = int(np.flatnonzero(~np.isfinite(out).all(axis=0))[0])
            raise ValueError(f"column {names[j]!r} holds values beyond the range of "
                             f"{out.dtype.name} (+-{np.finfo(out.dtype).max:.4g}); rescale it, "
                             "or use a float64 model")
        return out

    def _by_name(self, X):
        """Return a pandas DataFrame's or pyarrow Table's feature columns, by name."""
        if self.feature_names is None or isinstance(X, np.ndarray):
            return X
        if hasattr(X, "column_names") and hasattr(X, "schema"):  # a pyarrow Table
            from fastmlp import tables

            try:
                return tables.features(X, self.feature_names)
            except KeyError as exc:
                raise ValueError(exc.args[0]) from None
        columns = getattr(X, "columns", None)
        if columns is None or not hasattr(X, "iloc"):
            return X
        names = [str(c) for c in columns]
        absent = [name for name in self.feature_names if name not in names]
        if absent:
            raise ValueError(f"the DataFrame has no column {', '.join(map(repr, absent[:5]))} "
                             f"of the model's {self.n_features} features")
        return plain_rows(X.iloc[:, [names.index(name) for name in self.feature_names]])

    def to_dict(self):
        """Return the settings as JSON-ready values (what a model file's header keeps)."""
        return {"feature_names": self.feature_names,
                "fill": None if self.fill is None else self.fill.tolist(),
                "mean": None if self.mean is None else self.mean.tolist(),
                "scale": None if self.scale is None else self.scale.tolist()}

    @classmethod
    def from_dict(cls, settings):
        """Rebuild from the output of :meth:`to_dict`."""
        unknown = set(settings) - {"feature_names", "fill", "mean", "scale"}
        if unknown:
            raise ValueError(f"unknown preprocessing fields {sorted(unknown)}")
        # The JSON types, before NumPy converts what it can: "1" would become 1.0, and a string
        # of feature names a list of its letters.
        names = settings.get("feature_names")
        if names is not None and not (isinstance(names, list)
                                      and all(isinstance(n, str) for n in names)):
            raise TypeError("feature_names must be a list of strings, got "
                            f"{_json_type(names)}")
        for key in ("fill", "mean", "scale"):
            values = settings.get(key)
            if values is not None and not (isinstance(values, list) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
                raise TypeError(f"{key} must be a list of numbers, got {_json_type(values)}")
        return cls(settings.get("feature_names"), fill=settings.get("fill"),
                   mean=settings.get("mean"), scale=settings.get("scale"))

    def __eq__(self, other):
        if not isinstance(other, Preprocessing):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self):
        steps = [f"{self.n_features} features"]
        if self.fill is not None:
            steps.append("fill")
        if self.mean is not None:
            steps.append("standardise")
        names = "" if self.feature_names is None else "named, "
        return f"<Preprocessing: {names}{', '.join(steps)}>"


def _json_type(value):
    """Describe what a header field held: ``a JSON string``, ``a list holding a JSON string``."""
    kinds = {list: "list", dict: "object", str: "string", bool: "true/false", int: "number",
             float: "number", type(None): "null"}
    if isinstance(value, list):
        odd = [v for v in value if not isinstance(v, (int, float)) or isinstance(v, bool)]
        inner = odd[0] if odd else None
        return f"a list holding a JSON {kinds.get(type(inner), 'value')} ({inner!r})"
    return f"a JSON {kinds.get(type(value), 'value')} ({value!r})"[:120]


def _as_float_rows(X):
    if hasattr(X, "toarray") and not isinstance(X, np.ndarray):
        raise TypeError("a model with preprocessing (fill, standardise) takes dense X; sparse "
                        "matrices lose their zeros when standardised")
    arr = np.asarray(plain_rows(X))
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(f"X must be numeric (int or float), got an array of dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (n_samples, n_features), got shape "
                         f"{arr.shape}")
    return arr.astype(np.float64, copy=False)


def _unit(X):
    """Per-column divisors that keep sums and squares of ``X`` finite: 1 for most columns.

    A column with entries near float64's limit (1e308) overflows its sum and its squares; it
    is divided by its largest magnitude first, and the moments are scaled back. Columns of
    ordinary size keep a divisor of 1, so their results are scikit-learn's to the bit.
    """
    with np.errstate(invalid="ignore"):
        big = np.nanmax(np.abs(X), axis=0)
    return np.where(big > 1e150, big, 1.0)


def _check_finite(values, names, what):
    """ValueError naming the first column whose ``values`` (1-D or rows) are not finite."""
    bad = ~np.isfinite(values)
    if bad.any():
        j = int(np.flatnonzero(bad if bad.ndim == 1 else bad.any(axis=0))[0])
        raise ValueError(f"column {names[j]!r} is too large to standardise ({what} overflows "
                         "float64); rescale that column, or leave out --scale")


def _column_names(feature_names, n):
    if feature_names is None:
        return [f"#{j}" for j in range(n)]
    if len(feature_names) != n:
        raise ValueError(f"{len(feature_names)} feature names for {n} columns")
    return list(feature_names)


def _check_no_infinity(X, names):
    inf = np.isinf(X)
    if inf.any():
        j = int(np.flatnonzero(inf.any(axis=0))[0])
        raise ValueError(f"column {names[j]!r} holds infinity ({int(inf[:, j].sum())} "
                         "entries); remove or replace those values")


def _check_no_missing(missing, names):
    if missing.any():
        bad = np.flatnonzero(missing)
        listed = ", ".join(f"{int(missing[j])} in column {names[j]!r}" for j in bad[:5])
        more = f" and more in {len(bad) - 5} other columns" if len(bad) > 5 else ""
        raise ValueError(f"missing values: {listed}{more}; fill them with the "
                         "column's mean (fastmlp train --fill mean, or "
                         "Preprocessing.fit(..., fill='mean')), or remove those rows")
