"""The data sources train, evaluate and predict share: named data sets, files and tables.

``--data`` names ``digits``, ``fashion-mnist``, ``mnist``, ``diabetes``, a folder of IDX files,
an ``.npz``, a ``.zarr`` group or ``.npy`` folder (read one block at a time), or a table
(``.csv``, ``.parquet``) with ``--target``. Every error is a :class:`UserError` naming the option.
"""

import os
import zipfile

import numpy as np

from fastmlp import datasets, tables
from fastmlp._extras import install_hint
from fastmlp.cli._common import UserError, _os_error_text

#: The data when --data is not given.
DEFAULT_DATA = {"classification": "digits", "regression": "diabetes"}


#: The data sets that have class labels, and those that have real-valued targets.
_CLASSIFICATION_DATA = ("digits", "fashion-mnist", "mnist")


_REGRESSION_DATA = ("diabetes",)

_DATA_HELP = ("digits (the default for classification: scikit-learn's 8x8 digits, embedded), "
              "fashion-mnist, mnist (the folder in $MNIST_DIR), a directory of the four "
              "MNIST-format IDX files, diabetes (the default for regression: scikit-learn's "
              "diabetes data, embedded), an .npz with X_train, y_train, X_test, y_test (or, read "
              "one block at a time, a .zarr group or a folder of .npy files of those names), "
              "or a "
              "table (.csv, .parquet) with --target COLUMN; tables need pyarrow: "
              + install_hint("tables"))


def load_data(spec, task="classification"):
    """Return ``(X_train, y_train, X_test, y_test)`` for a ``--data`` value.

    ``digits`` (scikit-learn's, embedded; always the same stratified 75/25 split, so that
    ``train`` and ``evaluate`` see the same test set), ``fashion-mnist`` (installed IDX files),
    ``mnist`` (IDX files in ``$MNIST_DIR``), a directory of the four IDX files, ``diabetes``
    (scikit-learn's, embedded, for regression: always the same 75/25 split), or an ``.npz``
    file with ``X_train``, ``y_train``, ``X_test``, ``y_test``.

    Raises
    ------
    UserError
        Unknown value, missing or malformed files, or a data set of the other task: class
        labels for ``task="regression"``, real-valued targets (diabetes) for classification.
    """
    out_of_core = spec.rstrip("/").endswith(".zarr") or datasets.is_npy_folder(spec)
    if task == "regression" and (spec in _CLASSIFICATION_DATA
                                 or (os.path.isdir(spec) and not out_of_core)):
        raise UserError(f"--data {spec!r} is a classification data set (class labels); a "
                        "regression model needs real-valued targets: --data diabetes or an "
                        ".npz file")
    if task == "classification" and spec in _REGRESSION_DATA:
        raise UserError(f"--data {spec!r} is a regression data set (real-valued targets): add "
                        "--task regression")
    try:
        if spec == "diabetes":
            return datasets.load_diabetes(seed=0)
        if spec == "digits":
            return datasets.load_digits(seed=0)
        if spec == "fashion-mnist":
            return datasets.load_fashion_mnist()
        if spec == "mnist":
            path = os.environ.get("MNIST_DIR")
            if not path:
                raise UserError("--data mnist needs MNIST_DIR set to a folder with the four "
                                "MNIST IDX files (or pass the folder itself as --data DIR)")
            return datasets.load_mnist(path)
        if out_of_core:
            return datasets.load_out_of_core(spec)
        if os.path.isdir(spec):
            return datasets.load_mnist(spec)
        if spec.endswith(".npz"):
            return datasets.load_npz(spec)
    except OSError as exc:
        raise UserError(_os_error_text(exc)) from None
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"--data {spec!r}: {exc}") from None
    raise UserError(f"--data {spec!r}: not 'digits', 'fashion-mnist', 'mnist', 'diabetes', a "
                    "directory of IDX files, an .npz file, a table (.csv, .csv.gz, .tsv, "
                    ".parquet, with --target COLUMN), a .zarr group or a folder of .npy files")


# -- tables ------------------------------------------------------------------------------------
def _read_table(path, option, exclude=()):
    """``tables.read_table``, its errors as one line naming the option.

    Numeric columns are parsed straight into float64, the features' type, except those in
    ``exclude`` (the target, the ``--keep`` columns), which keep their own.
    """
    try:
        return tables.read_table(path, float_dtype=np.float64, exclude=exclude)
    except tables.MissingExtraError as exc:
        raise UserError(f"{option} {path!r} is a table: {exc}") from None
    except OSError as exc:
        raise UserError(_os_error_text(exc)) from None
    except ValueError as exc:
        raise UserError(f"{option} {exc}") from None


def _table_part(table, names, target, path, option, fill=None):
    """Feature rows and the target column of a table, checked."""
    try:
        X = tables.features(table, names)
    except (KeyError, TypeError) as exc:
        raise UserError(f"{option} {path!r}: {exc.args[0]}") from None
    if fill is None:
        _check_missing(X, names, path, option)
    return X, _table_target(table, target, path, option)


def _check_missing(X, names, path, option):
    """Refuse missing values, counted over the whole table as read, naming their first rows.

    Counted before any split, so that the count is the file's, not the training part's.
    Rows are numbered from 1, the header not counted (a spreadsheet's row 2 is row 1).
    """
    nan = np.isnan(X)
    if not nan.any():
        return
    counts = nan.sum(axis=0)
    bad = np.flatnonzero(counts)
    listed = []
    for j in bad[:5]:
        rows = np.flatnonzero(nan[:, j])[:4] + 1
        shown = ", ".join(map(str, rows[:3])) + (", ..." if len(rows) > 3 else "")
        name = names[j] if names is not None else f"{j}"
        listed.append(f"{int(counts[j])} in column {name!r} "
                      f"(row{'s' if len(rows) > 1 else ''} {shown})")
    more = f" and more in {len(bad) - 5} other columns" if len(bad) > 5 else ""
    raise UserError(f"{option} {path!r}: missing values: {'; '.join(listed)}{more}, rows "
                    "counted from 1 after the header; fill them with the column's training "
                    "mean (fastmlp train --fill mean) or remove those rows")


def _table_target(table, target, path, option):
    try:
        y = tables.column(table, target)
    except KeyError as exc:
        raise UserError(f"{option} {path!r}: {exc.args[0]} (--target names the label "
                        "column)") from None
    missing = tables.missing_count(table, target)  # nulls and empty labels
    if missing:
        raise UserError(f"{option} {path!r}: the target column {target!r} has {missing} "
                        "missing values; remove those rows")
    return y


def load_table_data(args, task):
    """``(X_train, y_train, X_test, y_test, feature_names)`` of ``--data TABLE --target COL``.

    The test set is ``--test FILE``, or ``--test-fraction`` of the rows (default 0.25), drawn
    with ``--seed`` and stratified by class for classification.
    """
    if args.target is None:
        raise UserError(f"--data {args.data!r} is a table: name its label column with "
                        "--target COLUMN")
    if args.test is not None and args.test_fraction is not None:
        raise UserError("give --test FILE or --test-fraction F, not both")
    table = _read_table(args.data, "--data", [args.target, *args.drop])
    try:
        names, X, y = tables.split_features(table, args.target, args.drop)
    except KeyError as exc:
        raise UserError(f"--data {args.data!r}: {exc.args[0]}") from None
    except TypeError as exc:
        raise UserError(f"--data {args.data!r}: {exc}; --drop COLUMN leaves a column "
                        "out") from None
    except ValueError as exc:
        raise UserError(f"--data {args.data!r}: {exc}") from None
    if args.fill is None:
        _check_missing(X, names, args.data, "--data")
    if args.test is not None:
        test_table = _read_table(args.test, "--test", [args.target])
        X_test, y_test = _table_part(test_table, names, args.target, args.test, "--test",
                                     fill=args.fill)
        return X, y, X_test, y_test, names
    from sklearn.model_selection import train_test_split

    fraction = 0.25 if args.test_fraction is None else args.test_fraction
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=fraction, random_state=args.seed,
            stratify=y if task == "classification" else None)
    except ValueError as exc:  # a class too small to stratify, a fraction leaving no rows
        raise UserError(f"--test-fraction {fraction:g} of the {len(y)} rows of "
                        f"{args.data!r}: {exc}") from None
    return X_train, y_train, X_test, y_test, names


def _table_features_for(model, table, exclude, path, option):
    """Return a table's feature rows for ``model``: by the names it was trained with.

    A model trained without names, or a CSV without a header (columns ``f0, f1, ...``), takes
    every column not in ``exclude``, in the table's order.
    """
    names = None if model.preprocessing is None else model.preprocessing.feature_names
    headerless = table.column_names == [f"f{j}" for j in range(table.num_columns)]
    if names is None or (headerless and not set(names) <= set(table.column_names)):
        names = [name for name in table.column_names if name not in exclude]
    try:
        X = tables.features(table, names)
    except (KeyError, TypeError) as exc:
        raise UserError(f"{option} {path!r}: {exc.args[0]}") from None
    if X.shape[1] != model.layer_sizes[0]:
        raise UserError(f"{option} {path!r} has {X.shape[1]} feature columns, but the model "
                        f"takes {model.layer_sizes[0]}")
    if model.preprocessing is None or model.preprocessing.fill is None:
        _check_missing(X, names, path, option)
    return X


# -- targets -----------------------------------------------------------------------------------
def _labels(y_train, y_test):
    """Renumber the labels 0..K-1 in sorted order; return (y_train, y_test, classes)."""
    if y_train.ndim != 1:
        raise UserError(f"y_train has shape {y_train.shape}: a classifier takes 1-D labels; "
                        "2-D targets are for --task regression")
    classes, y_all = np.unique(np.concatenate([y_train, y_test]), return_inverse=True)
    if len(classes) < 2:
        raise UserError("the data has a single class; a classifier needs at least two")
    return y_all[: len(y_train)], y_all[len(y_train):], classes


def _regression_targets(y_train, y_test, data_name):
    """Return the targets of ``--data`` as floats, checked for a regression model.

    Returns ``(y_train, y_test, n_outputs)``; ``y_train`` may be ``None`` (evaluate).
    """
    checked = []
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if y is not None and y.dtype.kind not in "biuf":
            raise UserError(f"--data {data_name!r}: {name} holds {y.dtype} values, not numbers: "
                            "regression needs real-valued targets (class labels train a "
                            "classifier: leave out --task regression)")
        checked.append(None if y is None else np.asarray(y, dtype=np.float64))
    n_outputs = 1 if y_test.ndim == 1 else y_test.shape[1]
    return checked[0], checked[1], n_outputs
