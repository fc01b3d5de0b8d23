"""``fastmlp predict``: labels, probabilities or values for the samples of a file."""

import argparse
import os
import sys

import numpy as np

from fastmlp import datasets, tables
from fastmlp._files import written_whole
from fastmlp.cli._common import (
    UserError,
    _add_threads,
    _check_output_path,
    _load_model,
    _os_error_text,
    check_threads,
    thread_limits,
)
from fastmlp.cli._data import _read_table, _table_features_for

_EPILOG_PREDICT = """INPUT is a table (.csv or .parquet, read with pyarrow: pip install
".[tables]" in a checkout of fastmlp, or pip install pyarrow), a .npy file (a 2-D array, used
as is) or any other file read as IDX (optionally gzip-compressed): IDX images of shape
(n, rows, cols) are flattened, and uint8 ones scaled by 1/255 like the data loaders do.

A table's feature columns are found by the names the model was trained with (any order;
other columns are ignored); a model trained without names takes every column but --keep,
in order, as does a CSV whose first row is numbers (no header). The model's own
preprocessing (--fill, --scale of `fastmlp train`) is applied. The answer is a table, as CSV
on standard output or in -o OUT.csv / OUT.parquet: the --keep columns, then "prediction"
(the class name; a regression model's value, or prediction_0, prediction_1, ... for several
outputs), then with --proba one "proba_<class>" column per class.

For a .npy or IDX INPUT written to standard output or a .csv, each line is one sample's
label (the model's class names), or with --proba its K comma-separated probabilities in the
order of the class names, or a regression model's values; -o OUT.parquet writes the table
form instead.

examples:
  fastmlp predict wine.npz new-wines.csv --keep id -o predictions.parquet
  fastmlp predict digits.npz samples.npy
  fastmlp predict fashion.npz /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
  fastmlp predict digits.npz samples.npy --proba -o proba.csv
"""


def add_parser(sub):
    """Add ``fastmlp predict`` to the subcommands ``sub``; return its parser."""
    raw = argparse.RawDescriptionHelpFormatter
    predict = sub.add_parser(
        "predict", help="predict labels, probabilities or values for new samples",
        formatter_class=raw, epilog=_EPILOG_PREDICT,
        description="Predict the class of each sample in INPUT with a saved model (a\n"
                    "regression model: its predicted values).",
    )
    predict.add_argument("model", metavar="MODEL", help="a model file written by --save")
    predict.add_argument("input", metavar="INPUT",
                         help="samples: a table (.csv, .parquet), .npy or IDX file")
    predict.add_argument("--keep", nargs="+", default=[], metavar="COLUMN",
                         help="table columns to copy to the output beside the predictions "
                              "(an id, for instance)")
    predict.add_argument("--proba", action="store_true",
                         help="print class probabilities instead of labels (classifiers only)")
    predict.add_argument("-o", "--output", metavar="OUT",
                         help="write to this file: .csv, or .parquet for a Parquet table "
                              "(default: standard output)")
    _add_threads(predict)
    predict.set_defaults(func=run)
    return predict


def _read_npy(name):
    """``np.load(name, allow_pickle=False)`` of a ``.npy`` file, whatever the file holds.

    A corrupt header may declare terabytes (np.load would try to allocate them: MemoryError)
    or fail to tokenize (tokenize.TokenError): both become a ValueError naming the problem.
    """
    with open(name, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version in ((1, 0), (2, 0)):
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(f)
                declared = dtype.itemsize
                for d in shape:
                    declared *= int(d)
                held = os.fstat(f.fileno()).st_size - f.tell()
                if not dtype.hasobject and declared > held:
                    raise ValueError(f"the header declares shape {shape} of {dtype} "
                                     f"({declared} bytes) but the file holds {held}: "
                                     "truncated or corrupt")
            f.seek(0)
            return np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            raise
        except Exception as exc:  # tokenize.TokenError, SyntaxError, ... from a bad header
            raise ValueError(f"not a valid .npy file: {type(exc).__name__}: {exc}") from None


def read_samples(path):
    """Read the samples to predict from a .npy or IDX file (tables: :func:`_read_table`).

    Raises
    ------
    UserError
        A missing or malformed file.
    """
    name = os.fspath(path)
    try:
        if name.endswith(".npy"):
            X = _read_npy(name)
        else:
            X = datasets.load_idx(name)
            if X.ndim == 3:
                images = X
                X = images.reshape(images.shape[0], -1)
                if images.dtype == np.uint8:
                    X = X.astype(np.float32) / np.float32(255.0)
    except OSError as exc:
        raise UserError(_os_error_text(exc)) from None
    except (ValueError, EOFError) as exc:
        raise UserError(f"{name!r}: {exc}") from None
    return X


def _write_rows(rows, fmt, out):
    for row in rows:
        out.write(",".join(fmt % v for v in np.atleast_1d(row)) + "\n")


def _prediction_columns(model, X, keep, proba_too):
    """Return the predict answer as named columns: the kept ones, then the predictions."""
    columns = dict(keep)
    if model.is_regression:
        values = model.predict(X)
        if values.ndim == 1:
            columns["prediction"] = values
        else:
            columns.update({f"prediction_{j}": values[:, j] for j in range(values.shape[1])})
        return columns
    proba = model.predict_proba(X)
    columns["prediction"] = model.classes[np.argmax(proba, axis=1)]
    if proba_too:
        columns.update({f"proba_{c}": proba[:, k] for k, c in enumerate(model.classes)})
    return columns


def _prediction_rows(model, X, proba_too):
    """Return the bare-rows answer (a .npy or IDX input): a line per sample, its format."""
    if model.is_regression:
        # one row per sample, its outputs comma-separated; enough digits to read back exactly
        values = model.predict(X)
        return values, ("%.9g" if values.dtype == np.float32 else "%.17g")
    proba = model.predict_proba(X)
    if proba_too:
        # Enough digits that the numbers read back equal the model's.
        return proba, ("%.9g" if proba.dtype == np.float32 else "%.17g")
    # the model's class names (saved with it by `fastmlp train`), as the data spelled them
    return model.classes[np.argmax(proba, axis=1)], "%s"


def run(args, out=None):
    """Print (or write) predicted labels, probabilities or values for the samples in INPUT."""
    out = sys.stdout if out is None else out
    check_threads(args.threads)
    _check_output_path(args.output, "-o")
    if args.output is not None:
        for what, name in (("INPUT", args.input), ("MODEL", args.model)):
            if (os.path.exists(name) and os.path.exists(args.output)
                    and os.path.samefile(name, args.output)):
                raise UserError(f"-o {args.output!r} is the {what} file itself, which the "
                                "answer would overwrite; give another file name")
    model = _load_model(args.model)
    if model.is_regression and args.proba:
        raise UserError(f"--proba is for classifiers: {args.model!r} is a regression model "
                        f"({model.output} output), which predicts values; leave out --proba")
    table_in = tables.table_format(args.input) is not None
    if table_in:
        table = _read_table(args.input, "INPUT", args.keep)
        # the kept columns are the user's identifiers: read again as the file spells them
        # (007 stays 007, 20 digits stay 20 digits), not through the numbers parsed above
        try:
            keep = tables.read_verbatim(args.input, args.keep) if args.keep else {}
        except KeyError as exc:
            raise UserError(f"--keep: {args.input!r}: {exc.args[0]}") from None
        except ValueError as exc:
            raise UserError(f"INPUT {exc}") from None
        clash = [name for name in keep if name == "prediction" or name.startswith(
            ("prediction_", "proba_"))]
        if clash:
            raise UserError(f"--keep {clash[0]!r}: the answer's own columns are named "
                            "prediction and proba_<class>; keep another column")
        X = _table_features_for(model, table, set(args.keep), args.input, "INPUT")
    else:
        if args.keep:
            raise UserError(f"--keep copies columns of a table (.csv, .parquet); "
                            f"{args.input!r} is not one")
        X = read_samples(args.input)
    as_table = table_in or (args.output is not None
                            and tables.table_format(args.output) == "parquet")
    try:
        with thread_limits(args.threads):
            if as_table:
                columns = _prediction_columns(model, X, keep if table_in else {}, args.proba)
            else:
                rows, fmt = _prediction_rows(model, X, args.proba)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{args.input!r}: {exc}") from None
    try:
        if as_table:
            n = X.shape[0]
            tables.write_table(columns, args.output, out)
        elif args.output is None:
            _write_rows(rows, fmt, out)
            return 0
        else:
            n = len(rows)
            with written_whole(args.output, "w") as f:  # whole or not at all
                _write_rows(rows, fmt, f)
    except tables.MissingExtraError as exc:
        raise UserError(f"-o {args.output!r}: {exc}") from None
    except ValueError as exc:  # a kept column a CSV cannot hold: nothing was written
        where = "standard output" if args.output is None else f"-o {args.output!r}"
        raise UserError(f"{where}: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot write -o {args.output!r}: {_os_error_text(exc)}") from None
    if args.output is not None:
        print(f"{n} predictions written to {args.output}", file=sys.stderr)
    return 0
