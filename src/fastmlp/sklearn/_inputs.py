"""Input conversions shared by the estimators: sample weights, sparse matrices, validate_data."""

import numbers

import numpy as np
from sklearn.utils.validation import check_array

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.5

    def validate_data(estimator, /, X="no_validation", y="no_validation", **kwargs):
        """Fallback for scikit-learn < 1.6 (the method form of ``validate_data``)."""
        return estimator._validate_data(X, y, **kwargs)


#: The dtypes the engine computes in; other input is converted to float64.
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def compute_dtype(dtype):
    """Return the dtype the engine computes data of ``dtype`` in: itself, or float64."""
    dtype = np.dtype(dtype)
    return dtype if dtype in FLOATS else np.dtype(np.float64)


class NoData(np.ndarray):
    """An array's shape and dtype without its data (zero strides): what validation reads.

    A subclass, so that the estimators' shortcuts for plain NumPy input (which read the rows
    with compiled checks) pass it on to ``validate_data``, which sees only its shape, its
    dtype and one O(1)-memory finiteness sum of zeros.
    """


def stand_in(shape, dtype):
    """Return a :class:`NoData` of ``shape`` in :func:`compute_dtype` of ``dtype``.

    It takes the place of an ``X`` that stays out of memory (read in blocks, or held on a Dask
    cluster) in ``_validate_input``, which checks and records its shape, dtype and feature
    count as for ``X`` itself, and encodes ``y``.
    """
    return np.broadcast_to(np.zeros((), compute_dtype(dtype)), shape).view(NoData)


def check_sample_weight(sample_weight, X):
    """``sample_weight`` as a 1-D float array of length ``n_samples`` (scikit-learn's rules)."""
    n_samples = X.shape[0]
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight)
    else:
        sample_weight = check_array(sample_weight, accept_sparse=False, ensure_2d=False,
                                    dtype=[np.float64, np.float32], order="C",
                                    input_name="sample_weight")
        if sample_weight.ndim != 1:
            raise ValueError(
                f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D array. "
                f"Expected either a scalar value or a 1D array of length {n_samples}."
            )
        if sample_weight.shape != (n_samples,):
            raise ValueError(
                f"sample_weight.shape == {sample_weight.shape}, expected {(n_samples,)}!"
            )
    if np.all(sample_weight == 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sample_weight


def as_csr(X, dtype):
    """``X`` as CSR with sorted, unique indices and data of ``dtype`` (never densified)."""
    X = X.tocsr()  # no copy when it already is CSR (a matrix or an array)
    if X.dtype != dtype:
        X = X.astype(dtype)
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()  # the CSR kernels write entries, they do not add duplicates
    return X
