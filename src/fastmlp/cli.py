"""The ``fastmlp`` command: train, evaluate, predict, bench and info from a shell.

User errors (a missing file, a bad value, a file that is not a model) print one line
``fastmlp: error: ...`` to stderr and exit with status 2, never a traceback.
"""

import argparse
import contextlib
import os
import sys
import time
import warnings
import zipfile

import numpy as np

from fastmlp import datasets, tables
from fastmlp._extras import install_hint
from fastmlp._files import check_writable, written_whole
from fastmlp._outofcore import RowBlocks, block_rows_for, is_out_of_core
from fastmlp._preprocessing import Preprocessing
from fastmlp.model import DivergenceError, History, Model

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Default step sizes of the two optimizers, for classification.
DEFAULT_LEARNING_RATE = {"sgd": 0.5, "adam": 0.001}
#: ... and for regression, measured on diabetes (1 hidden layer of 32, batch 32, 30 epochs,
#: 5 splits x 3 seeds; a linear model's mean test R^2 is 0.428): adam at 0.003 reaches 95% of
#: its best R^2 in 8 epochs, mean R^2 0.424 after 30 (at 0.001: 21 epochs, 0.423; at 0.01:
#: 4 epochs, 0.412); sgd does best about 0.03 (21 epochs, 0.403).
REGRESSION_LEARNING_RATE = {"sgd": 0.03, "adam": 0.003}
#: The optimizer when --optimizer is not given: adam for regression (measured as above).
DEFAULT_OPTIMIZER = {"classification": "sgd", "regression": "adam"}
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

_EPILOG_MAIN = """Each command has its own --help, with examples.

examples:
  fastmlp train --epochs 10 --save digits.npz
  fastmlp evaluate digits.npz
  fastmlp train --task regression --save diabetes.npz
  fastmlp train --data wine.csv --target cultivar --scale standard --save wine.npz
  fastmlp export wine.npz --onnx wine.onnx
  fastmlp train --help
"""

_EPILOG_TRAIN = """The validation columns of the table come from the test set, or from a held-out
part of the training set with --validation-fraction. Ctrl-C stops after the running epoch,
keeps the weights of the last full epoch, still saves (--save) and plots (--plot), and exits
with status 130.

--task regression trains an identity output (or --output-kind exp) on the half squared error (half
Poisson deviance) and reports RMSE and R^2 instead of accuracy; its data is diabetes or an .npz
with real-valued targets (y 1-D for one output, 2-D for several); the class-labelled data
sets (digits, fashion-mnist, mnist, IDX folders) are refused. Its defaults differ: --data
diabetes, --optimizer adam, --learning-rate 0.003 (0.03 for sgd).

examples:
  fastmlp train                                  # digits, one hidden layer of 32, 30 epochs
  fastmlp train --task regression --save diabetes.npz
  fastmlp train --data fashion-mnist --hidden 100 30 --epochs 10 --save fashion.npz
  fastmlp train --data mydata.npz --hidden 128 64 --optimizer adam --learning-rate 0.001
  fastmlp train --validation-fraction 0.1 --early-stopping 5 --epochs 200 --plot curves.png
  fastmlp train --data wine.csv --target cultivar --drop id --scale standard --save wine.npz

A table (--data .csv or .parquet; pyarrow: pip install ".[tables]" in a checkout) names
its label column with --target; every other column not in --drop is a feature and must hold
numbers. The test set is --test FILE, or a held-out --test-fraction (default 0.25, stratified
for classification, drawn with --seed). Labels may be text: the class names are saved with
the model. Features are used as they are, as in scikit-learn and Keras: train warns, before
training, when their scales differ by orders of magnitude, and a run that ends at chance
says so in its last line. Missing values are an error, counted over the whole table, unless
--fill mean. --scale standard and --fill mean learn from the training rows, and the model
file keeps them and the feature names, so `fastmlp predict` and `evaluate` apply the same
steps to raw tables.
"""

_EPILOG_EVALUATE = """The model is evaluated on the test part of --data, with the labels numbered as
`fastmlp train` numbered them on the same data (sorted distinct labels -> 0..K-1). A
regression model (the file says which it is) prints its loss, RMSE and R^2 instead, on
--data diabetes by default.

examples:
  fastmlp evaluate digits.npz
  fastmlp evaluate diabetes.npz
  fastmlp evaluate fashion.npz --data fashion-mnist --confusion confusion.png
  fastmlp evaluate wine.npz --data wine-new.parquet --target cultivar

A table (--data .csv or .parquet) is evaluated whole, its label column named by --target;
its feature columns are found by the names the model was trained with, in any order.
"""

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

_EPILOG_BENCH = """Each implementation trains the same architecture (sigmoid hidden
layers, softmax output, cross-entropy) with plain mini-batch SGD for the same epochs on the
same data, once. fastmlp and PyTorch are warmed up first, so that loading compiled kernels
and lazy initialisation are not timed. speed-up is the implementation's seconds per epoch
divided by fastmlp's. scikit-learn runs MLPClassifier(activation='logistic', solver='sgd',
momentum=0, alpha=0); PyTorch, when installed, an nn.Sequential of Linear and Sigmoid layers
with torch.optim.SGD and as many threads as fastmlp.

examples:
  fastmlp bench
  fastmlp bench --data fashion-mnist --hidden 100 30 --epochs 2 --threads 1
"""

_EPILOG_INFO = """examples:
  fastmlp info
"""

_EPILOG_COMPILE = """Each task makes tiny fits and predictions through the public API, in float32
and float64, down every path the engine can take on this machine, so that a fresh process's
first calls load their kernels from the cache instead of compiling them. The cache is the folder
`fastmlp info` names (FASTMLP_CACHE_DIR or NUMBA_CACHE_DIR choose it); processes that share it
share the kernels. Put it in a Dockerfile or a CI set-up after the install.

examples:
  fastmlp compile
  FASTMLP_CACHE_DIR=/opt/fastmlp-cache fastmlp compile --processes 2
"""


_EPILOG_EXPORT = """The ONNX file takes float32 rows of the raw features as input "X" (NaN for a
missing value where the model fills them) and gives "label" (the class names) and
"probabilities" (n x K, in the order of the class names), or "variable" for a regression
model. It runs in onnxruntime, or any ONNX runtime, without fastmlp or Python.
Needs skl2onnx and onnxruntime: pip install ".[onnx]" in a checkout of fastmlp, or pip
install skl2onnx onnxruntime.

examples:
  fastmlp export wine.npz --onnx wine.onnx
"""


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in the command's one-line form and exit status 2."""

    def error(self, message):
        """Print ``fastmlp: error: ...`` and a pointer to ``--help``; exit with status 2."""
        self.exit(EXIT_USAGE, f"fastmlp: error: {message} (see '{self.prog} --help')\n")


# -- argument types ----------------------------------------------------------------------------
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _nonneg_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _momentum(text):
    value = _nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _os_error_text(exc):
    """``No such file or directory: 'x'`` rather than ``[Errno 2] ...``."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename!r}"
    return str(exc)


# -- data and models ---------------------------------------------------------------------------
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


def _fit_preprocessing(args, X_train, X_others, feature_names, data_name):
    """Return the train command's :class:`Preprocessing`, or None when nothing is to do."""
    if feature_names is None and args.scale is None and args.fill is None:
        return None
    try:
        prep = Preprocessing.fit(X_train, feature_names, fill=args.fill, scale=args.scale)
    except (TypeError, ValueError) as exc:
        raise UserError(f"--data {data_name!r}: {exc}") from None
    for what, X in X_others:  # fail now, not after training
        try:
            prep.transform(X)
        except ValueError as exc:
            raise UserError(f"{what}: {exc}") from None
    return prep


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


def _steps_text(preprocessing):
    """``"missing values filled with the training means, standardised"``, or ``""``."""
    if preprocessing is None:
        return ""
    steps = [text for text, on in (("missing values filled with the training means",
                                    preprocessing.fill is not None),
                                   ("standardised", preprocessing.mean is not None)) if on]
    return ", ".join(steps)


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


def _load_model(path):
    try:
        return Model.load(path)
    except OSError as exc:
        raise UserError(_os_error_text(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except (RuntimeError, MemoryError) as exc:
        # a corrupt archive: zipfile's NotImplementedError ("compression method not
        # supported") or "encrypted" RuntimeError, or an array header declaring terabytes
        raise UserError(f"{path!r} is not a fastmlp model file: corrupt archive "
                        f"({type(exc).__name__}: {exc})") from None


def _check_output_path(path, option):
    """Fail before a long run, not after it, when an output file cannot be written there."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserError(f"{option} {path!r}: the directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise UserError(f"{option} {path!r} is a directory; give a file name")
    try:  # a temporary file beside it, removed: a folder that cannot be written fails now
        check_writable(path)
    except OSError as exc:
        raise UserError(f"cannot write {option} {path!r}: {_os_error_text(exc)}") from None


def _require_plotting(option, path):
    if path is None:
        return None
    from fastmlp import plotting

    try:
        plotting.require_matplotlib()
    except plotting.MatplotlibMissing as exc:
        raise UserError(f"{option}: {exc}") from None
    _check_output_path(path, option)
    return plotting


def check_threads(n_threads):
    """Raise UserError when ``--threads`` asks for more than Numba's pool holds."""
    if n_threads is None:
        return
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    if n_threads > most:
        raise UserError(f"--threads {n_threads}: at most {most} here (Numba's pool size, "
                        "NUMBA_NUM_THREADS)")


@contextlib.contextmanager
def thread_limits(n_threads):
    """Limit Numba's pool to ``n_threads`` and BLAS (threadpoolctl) likewise, for the block.

    ``None`` changes nothing.
    """
    if n_threads is None:
        yield
        return
    import numba

    # SciPy's BLAS (the kernels' when NumPy bundles none) loads lazily: load it now so the
    # limit reaches it.
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    check_threads(n_threads)
    before = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(before)


# -- train -------------------------------------------------------------------------------------
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


class EarlyStopping:
    """Callback: stop when the validation loss has not improved for ``patience`` epochs.

    Nothing is restored: the model keeps the weights of the last epoch trained.

    Parameters
    ----------
    patience : int
        Epochs without a new lowest ``val_loss`` before training stops.
    """

    def __init__(self, patience):
        self.patience = patience
        self.best = np.inf
        self.best_epoch = 0
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs):
        """Record ``logs["val_loss"]``; return True to stop."""
        if logs["val_loss"] < self.best:
            self.best, self.best_epoch = logs["val_loss"], epoch
        elif epoch - self.best_epoch >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False


def _split_validation(X, y, fraction, seed):
    n = X.shape[0]
    n_val = int(round(fraction * n))
    if not 1 <= n_val < n:
        raise UserError(f"--validation-fraction {fraction:g} of {n} training samples leaves "
                        f"{n_val} for validation and {n - n_val} for training; both need >= 1")
    order = np.random.default_rng(seed).permutation(n)
    val, keep = np.sort(order[:n_val]), np.sort(order[n_val:])
    return X[keep], y[keep], X[val], y[val]


def cmd_train(args, out=None):
    """Train a Model and report per-epoch progress and the final test accuracy (or R^2)."""
    out = sys.stdout if out is None else out
    regression = args.task == "regression"
    if args.output_deprecated is not None:
        print(f"fastmlp: warning: train --output is deprecated and will be removed in the next "
              f"release: use --output-kind {args.output_deprecated} (--output names an output "
              "file, as in predict)", file=sys.stderr)
        if args.output_kind is None:
            args.output_kind = args.output_deprecated
    if args.output_kind is not None and not regression:
        raise UserError(f"--output-kind {args.output_kind} is a regression output: add --task "
                        "regression")
    check_threads(args.threads)
    _check_output_path(args.save, "--save")
    plotting = _require_plotting("--plot", args.plot)
    data_name = args.data or DEFAULT_DATA[args.task]
    optimizer = args.optimizer or DEFAULT_OPTIMIZER[args.task]
    if args.scheduler is not None:
        for option, value in (("--optimizer", args.optimizer),
                              ("--learning-rate", args.learning_rate),
                              ("--validation-fraction", args.validation_fraction),
                              ("--early-stopping", args.early_stopping), ("--plot", args.plot)):
            if value is not None:
                raise UserError(f"{option} is for the epochs of sgd and adam; --scheduler "
                                "trains with L-BFGS (--epochs is its iteration limit)")
    if args.scheduler is not None and (data_name.rstrip("/").endswith(".zarr")
                                       or datasets.is_npy_folder(data_name)):
        return _train_store_on_scheduler(args, data_name, out)
    feature_names = None
    if tables.table_format(data_name):
        X_train, y_train, X_test, y_test, feature_names = load_table_data(args, args.task)
    else:
        for option, value in (("--target", args.target), ("--test", args.test),
                              ("--test-fraction", args.test_fraction),
                              ("--drop", args.drop or None)):
            if value is not None:
                raise UserError(f"{option} is for tables (--data FILE.csv or .parquet); "
                                f"--data {data_name!r} is not one")
        X_train, y_train, X_test, y_test = load_data(data_name, args.task)
    out_of_core = is_out_of_core(X_train)
    if out_of_core:
        for option, value in (("--validation-fraction", args.validation_fraction),
                              ("--scale", args.scale), ("--fill", args.fill)):
            if value is not None:
                raise UserError(f"{option} needs the training set in memory; --data "
                                f"{data_name!r} is read one block at a time (scale the data "
                                "when writing it; the test set validates each epoch)")
    if regression:
        y_train, y_test, n_outputs = _regression_targets(y_train, y_test, data_name)
        output = args.output_kind or "identity"
        if output == "exp" and (y_train.min() < 0 or y_test.min() < 0):
            raise UserError(f"--data {data_name!r} has negative targets: --output-kind exp "
                            "predicts e^z > 0 (a Poisson deviance needs targets >= 0); use "
                            "--output-kind identity")
    else:
        y_train, y_test, classes = _labels(y_train, y_test)
    if args.validation_fraction is not None:
        X_train, y_train, X_val, y_val = _split_validation(X_train, y_train,
                                                           args.validation_fraction, args.seed)
        val_name = "val"
        val_what = f"{X_val.shape[0]} held out from the training set"
    else:
        X_val, y_val = X_test, y_test
        val_name = "test"
        val_what = "the test set"
    preprocessing = _fit_preprocessing(args, X_train, [("the test set", X_test),
                                                       ("the validation set", X_val)],
                                       feature_names, data_name)
    warning = None  # out of core, X_train is not read whole before training
    if args.scale is None and not out_of_core:
        warning = _scale_warning(X_train, feature_names, data_name)
    if warning is not None:
        print(warning, file=sys.stderr)
    if regression:
        sizes = [X_train.shape[1], *args.hidden, n_outputs]
        learning_rate = args.learning_rate or REGRESSION_LEARNING_RATE[optimizer]
        model = Model(sizes, output=output, hidden_activation=args.activation, dtype=args.dtype,
                      seed=args.seed, preprocessing=preprocessing)
        kind = f"regression ({output} output), "
    else:
        sizes = [X_train.shape[1], *args.hidden, len(classes)]
        learning_rate = args.learning_rate or DEFAULT_LEARNING_RATE[optimizer]
        model = Model(sizes, hidden_activation=args.activation, dtype=args.dtype,
                      seed=args.seed, classes=classes, preprocessing=preprocessing)
        kind = ""
    if args.scheduler is not None:
        return _train_on_scheduler(args, model, X_train, y_train, X_test, y_test, data_name,
                                   out)
    if not args.quiet:
        print(f"fastmlp: {X_train.shape[0]} training and {X_test.shape[0]} test samples, "
              f"{kind}layers {sizes}, {args.activation}, {optimizer} (learning rate "
              f"{learning_rate:g}), batch {args.batch_size}, {args.dtype}; "
              f"validation: {val_what}", file=out)
        if out_of_core:
            blocks = RowBlocks(X_train)
            many = "s" if len(blocks) != 1 else ""
            print(f"out of core: X_train is read in {len(blocks)} block{many} of up to "
                  f"{max(b - a for a, b in blocks.bounds)} rows, the next while one trains",
                  file=out)
        if _steps_text(preprocessing):
            print(f"features: {_steps_text(preprocessing)} (saved with the model)", file=out)
    progress = not args.quiet and sys.stderr.isatty()
    callbacks = [] if args.quiet else [_EpochPrinter(X_train.shape[0], val_name, out, progress,
                                                     regression=regression)]
    stopper = None
    if args.early_stopping is not None:
        stopper = EarlyStopping(args.early_stopping)
        callbacks.append(stopper)
    interrupted = False
    start = time.perf_counter()
    with thread_limits(args.threads):
        try:
            model.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                      learning_rate=learning_rate, momentum=args.momentum, l2=args.l2,
                      optimizer=optimizer, validation_data=(X_val, y_val),
                      progress=progress, callbacks=callbacks)
        except KeyboardInterrupt:
            interrupted = True
        except DivergenceError as exc:
            raise UserError(str(exc)) from None
        seconds = time.perf_counter() - start
        result = model.evaluate(X_test, y_test)
    history = model.history or History()  # None if interrupted before fit began
    if interrupted:
        print(f"interrupted: stopped after epoch {history.epochs} of {args.epochs}; keeping "
              f"the weights of epoch {history.epochs}", file=out)
    if stopper is not None and stopper.stopped_epoch is not None:
        print(f"early stopping after epoch {stopper.stopped_epoch}: the {val_name} loss has "
              f"not improved for {args.early_stopping} epochs (best "
              f"{stopper.best:.4f} at epoch {stopper.best_epoch})", file=out)
    train_seconds = sum(history.seconds)
    rate = history.epochs * X_train.shape[0] / train_seconds if train_seconds > 0 else 0.0
    print(f"{_scores_text(result, regression)}  "
          f"{history.epochs} epoch{'' if history.epochs == 1 else 's'} in {seconds:.2f} s  "
          f"{rate:.0f} samples/s", file=out)
    _save(model, args.save, out)
    if plotting is not None:
        if history.epochs == 0:
            print(f"no epoch completed: {args.plot} not written", file=out)
        else:
            title = f"{data_name}: layers {sizes}, {optimizer}"
            try:
                if regression:
                    with thread_limits(args.threads):
                        y_pred = model.predict(X_test)
                    plotting.plot_regression(history, y_test, y_pred, args.plot,
                                             val_label=val_name, title=title)
                else:
                    plotting.plot_history(history, args.plot, val_label=val_name, title=title)
            except OSError as exc:
                raise UserError(f"cannot write --plot {args.plot!r}: "
                                f"{_os_error_text(exc)}") from None
            what = ("the loss curves and the test set's predicted against true values"
                    if regression else "learning curves")
            print(f"{what} written to {args.plot}", file=out)
    if history.epochs:
        note = _chance_note(result, y_train, y_test, None if regression else classes,
                            regression, warning is not None)
        if note is not None:
            print(note, file=out)  # the last line, where a reader looks for the verdict
    return EXIT_INTERRUPTED if interrupted else 0


def _scheduler_imports():
    """``(dask.array, distributed.Client)``, or the extra to install."""
    try:
        import dask.array as da
        from distributed import Client
    except ImportError:
        raise UserError("--scheduler needs dask and distributed: "
                        + install_hint("dask")) from None
    return da, Client


def _connect(address):
    _, Client = _scheduler_imports()
    try:
        return Client(address, timeout=30)
    except OSError as exc:
        raise UserError(f"--scheduler {address!r}: {exc}") from None


def _npy_rows(path, start, stop):
    """On a worker: rows ``start:stop`` of an ``.npy`` file (only those are read)."""
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def _open_for_workers(data_name):
    """Open the training split of a zarr group or ``.npy`` folder as dask arrays for the workers.

    The client opens only the metadata of ``X_train`` and ``y_train`` (shape, dtype, chunks);
    the test split, which the client evaluates, is read into memory.
    """
    da, _ = _scheduler_imports()
    name = data_name.rstrip("/")
    if not os.path.exists(name):
        raise UserError(_os_error_text(FileNotFoundError(2, "No such file or directory", name)))
    try:
        if name.endswith(".zarr"):
            import zarr

            group = zarr.open_group(name, mode="r")
            found = set(group.array_keys())
            missing = [key for key in datasets.SPLIT_KEYS if key not in found]
            if missing:
                raise ValueError(f"{name!r}: missing array(s) {', '.join(missing)}")
            train = [da.from_zarr(name, component=key) for key in ("X_train", "y_train")]
            test = [np.asarray(group[key][...]) for key in ("X_test", "y_test")]
        else:
            train = []
            for key in ("X_train", "y_train"):
                path = os.path.abspath(os.path.join(name, key + ".npy"))
                meta = np.load(path, mmap_mode="r")  # the header: shape and dtype
                rows = block_rows_for(int(np.prod(meta.shape[1:], dtype=np.int64)),
                                      meta.dtype.itemsize)
                train.append(da.concatenate([
                    da.from_delayed(_delayed_npy_rows(path, a, min(a + rows, meta.shape[0])),
                                    shape=(min(a + rows, meta.shape[0]) - a, *meta.shape[1:]),
                                    dtype=meta.dtype)
                    for a in range(0, max(1, meta.shape[0]), rows)]))
                del meta
            test = [np.load(os.path.join(name, key + ".npy"), allow_pickle=False)
                    for key in ("X_test", "y_test")]
    except OSError as exc:
        raise UserError(_os_error_text(exc)) from None
    except (ValueError, KeyError) as exc:
        raise UserError(f"--data {data_name!r}: {exc}") from None
    X_train, y_train = train
    X_test, y_test = test
    for what, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        if X.ndim != 2 or np.dtype(X.dtype).kind not in "biuf":
            raise UserError(f"--data {data_name!r}: X_{what} must be 2-D and numeric, got "
                            f"shape {X.shape}, dtype {X.dtype}")
        if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
            raise UserError(f"--data {data_name!r}: X_{what} has {X.shape[0]} rows but "
                            f"y_{what} has shape {y.shape}")
    if X_train.shape[1] != X_test.shape[1] or y_train.shape[1:] != y_test.shape[1:]:
        raise UserError(f"--data {data_name!r}: the train and test splits differ in their "
                        "columns")
    return X_train, y_train, X_test, y_test


def _delayed_npy_rows(path, start, stop):
    import dask

    return dask.delayed(_npy_rows, pure=True)(path, start, stop)


def _train_store_on_scheduler(args, data_name, out):
    """``fastmlp train --scheduler`` on a zarr group or ``.npy`` folder: X and y on the workers.

    The workers read ``X_train`` and ``y_train`` from the store (a file system they share);
    the class labels come from a reduction over ``y_train``'s blocks there (only the unique
    labels travel), and the estimator checks and encodes ``y_train`` in its blocks.
    """
    for option, value in (("--scale", args.scale), ("--fill", args.fill)):
        if value is not None:
            raise UserError(f"{option} needs the training set in memory; --data {data_name!r} "
                            "is read by the workers (scale the data when writing it)")
    for option, value in (("--target", args.target), ("--test", args.test),
                          ("--test-fraction", args.test_fraction), ("--drop", args.drop or None)):
        if value is not None:
            raise UserError(f"{option} is for tables (--data FILE.csv or .parquet); "
                            f"--data {data_name!r} is not one")
    da, _ = _scheduler_imports()
    X_train, y_train, X_test, y_test = _open_for_workers(data_name)
    client = _connect(args.scheduler)
    try:
        if args.task == "regression":
            for name, y in (("y_train", y_train), ("y_test", y_test)):
                if y.dtype.kind not in "biuf":
                    raise UserError(f"--data {data_name!r}: {name} holds {y.dtype} values, not "
                                    "numbers: regression needs real-valued targets")
            y_test = np.asarray(y_test, dtype=np.float64)
            output = args.output or "identity"
            sizes = [X_train.shape[1], *args.hidden, 1 if y_test.ndim == 1 else y_test.shape[1]]
            model = Model(sizes, output=output, hidden_activation=args.activation,
                          dtype=args.dtype, seed=args.seed)
        else:
            if args.output is not None:
                raise UserError(f"--output {args.output} is a regression output: add --task "
                                "regression")
            if y_train.ndim != 1:
                raise UserError(f"y_train has shape {y_train.shape}: a classifier takes 1-D "
                                "labels; 2-D targets are for --task regression")
            classes = np.unique(client.compute(da.unique(y_train)).result())
            if len(classes) < 2:
                raise UserError("the data has a single class; a classifier needs at least two")
            index = np.searchsorted(classes, y_test)
            if not (index < len(classes)).all() or not (
                    classes[np.minimum(index, len(classes) - 1)] == y_test).all():
                raise UserError(f"--data {data_name!r}: y_test has labels that y_train has not")
            y_test = index
            sizes = [X_train.shape[1], *args.hidden, len(classes)]
            model = Model(sizes, hidden_activation=args.activation, dtype=args.dtype,
                          seed=args.seed, classes=classes)
    except BaseException:
        client.close()
        raise
    return _train_on_scheduler(args, model, X_train, y_train, X_test, y_test, data_name, out,
                               client=client)


def _train_on_scheduler(args, model, X_train, y_train, X_test, y_test, data_name, out,
                        client=None):
    """``fastmlp train --scheduler``: one L-BFGS fit on a running Dask cluster.

    X_train becomes a dask array (a zarr array is read by the workers from its store; other
    arrays are sent to them in blocks; a dask array stays as it is) and
    ``MLPClassifier``/``MLPRegressor(solver="lbfgs")`` fits it there, each loss and gradient
    summed over the blocks on their workers; the network it finds becomes the Model that is
    evaluated and saved. A dask ``y_train`` (labels as they are, not renumbered) stays on the
    workers too.
    """
    da, _ = _scheduler_imports()
    from fastmlp import MLPClassifier, MLPRegressor
    from fastmlp.convert import SKLEARN_ACTIVATIONS, SKLEARN_LOSSES
    from fastmlp.sklearn._distributed import is_dask_array

    if is_dask_array(X_train):
        X_dask = X_train
    elif hasattr(X_train, "store") and type(X_train).__module__.startswith("zarr"):
        X_dask = da.from_zarr(X_train)
    else:
        rows = block_rows_for(X_train.shape[1], 8)  # blocks of float64 rows
        X_dask = da.from_array(X_train, chunks=(rows, X_train.shape[1]))
    if model.preprocessing is not None:
        X_dask = X_dask.map_blocks(model.preprocessing.transform, dtype=np.float64)
    settings = {"hidden_layer_sizes": tuple(args.hidden),
                "activation": SKLEARN_ACTIVATIONS[args.activation],
                "solver": "lbfgs", "alpha": args.l2, "max_iter": args.epochs,
                "random_state": args.seed}
    if model.is_regression:
        settings["loss"] = SKLEARN_LOSSES[model.output]
    estimator = (MLPRegressor if model.is_regression else MLPClassifier)(**settings)
    if client is None:
        client = _connect(args.scheduler)
    with client:
        workers = len(client.scheduler_info().get("workers", {}))
        if not args.quiet:
            print(f"fastmlp: {X_train.shape[0]} training and {X_test.shape[0]} test samples, "
                  f"layers {list(model.layer_sizes)}, {args.activation}, lbfgs (at most "
                  f"{args.epochs} iterations) on {args.scheduler}: {workers} workers, "
                  f"{X_dask.numblocks[0]} blocks of X_train", file=out)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                estimator.fit(X_dask, y_train)
            except ValueError as exc:
                raise UserError(f"--data {data_name!r}: {exc}") from None
        seconds = time.perf_counter() - start
    for warning in caught:  # lbfgs stopping at its limit, or Ctrl-C: one line each
        print(f"note: {str(warning.message).splitlines()[0]}", file=out)
    trained = Model.from_sklearn(estimator)
    trained.preprocessing = model.preprocessing
    if not model.is_regression and not is_dask_array(y_train):
        trained.classes = model.classes  # the estimator saw the labels as 0..K-1
    with thread_limits(args.threads):
        result = trained.evaluate(X_test, y_test)
    print(f"{_scores_text(result, model.is_regression)}  {estimator.n_iter_} iterations in "
          f"{seconds:.2f} s ({seconds / max(1, estimator.n_iter_):.3f} s each)", file=out)
    _save(trained, args.save, out)
    return 0


def _scores_text(result, regression):
    """Return the closing line's scores: test accuracy (or R^2 and RMSE), test loss."""
    scores = (f"test R^2 {result['r2']:.4f}  test RMSE {result['rmse']:.4f}" if regression
              else f"test accuracy {result['accuracy']:.4f}")
    return f"{scores}  test loss {result['loss']:.4f}"


def _save(model, path, out):
    """``--save PATH``: write the model and say so (nothing without the option)."""
    if not path:
        return
    try:
        model.save(path)
    except OSError as exc:
        raise UserError(f"cannot save to {path!r}: {_os_error_text(exc)}") from None
    print(f"saved {path}", file=out)


# -- evaluate ----------------------------------------------------------------------------------
def _class_indices(labels, classes, data_name):
    """Map the data's labels to the model's output indices by the model's class names."""
    labels = np.asarray(labels)
    if (classes.dtype.kind == "U") != (labels.dtype.kind == "U"):
        # a table's labels "1", "2" read as text from one file and as numbers from another
        classes, labels = classes.astype(str), labels.astype(str)
    order = np.argsort(classes, kind="stable")
    sorted_classes = classes[order]
    try:
        pos = np.searchsorted(sorted_classes, labels)
        pos = np.minimum(pos, len(classes) - 1)
        known = sorted_classes[pos] == labels
    except TypeError:  # labels and classes of types that do not compare (str and int)
        known = np.zeros(len(labels), dtype=bool)
    if not np.all(known):
        unknown = np.unique(np.asarray(labels)[~known])[:5]
        raise UserError(f"--data {data_name!r} has labels {', '.join(map(str, unknown))} that "
                        f"are not among the model's classes {', '.join(map(str, classes))}")
    return order[pos], classes


def confusion_matrix(y_true, y_pred, n_classes):
    """``matrix[i, j]``: the number of samples of class ``i`` predicted as ``j``."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _evaluate_regression(args, model, data_name, X_test, y_test, out):
    """``fastmlp evaluate`` of a regression model: loss, RMSE and R^2."""
    _, y_test, n_outputs = _regression_targets(None, y_test, data_name)
    if n_outputs != model.layer_sizes[-1]:
        k = model.layer_sizes[-1]
        raise UserError(f"the model has {k} output{'s' if k > 1 else ''} but --data "
                        f"{data_name!r} has {n_outputs} target{'s' if n_outputs > 1 else ''} "
                        "per row")
    try:
        with thread_limits(args.threads):
            result = model.evaluate(X_test, y_test)
    except ValueError as exc:  # negative targets for an exp model, values beyond float32
        raise UserError(f"--data {data_name!r}: {exc}") from None
    print(f"model {args.model}: layers {list(model.layer_sizes)}, {model.hidden_activation}, "
          f"regression ({model.output} output), {model.dtype.name}", file=out)
    print(f"data {data_name}: {X_test.shape[0]} test samples", file=out)
    print(f"loss {result['loss']:.4f}  RMSE {result['rmse']:.4f}  R^2 {result['r2']:.4f}",
          file=out)
    return 0


def cmd_evaluate(args, out=None):
    """Report loss, accuracy and per-class precision/recall (or RMSE, R^2) of a saved model."""
    out = sys.stdout if out is None else out
    check_threads(args.threads)
    plotting = _require_plotting("--confusion", args.confusion)
    model = _load_model(args.model)
    task = "regression" if model.is_regression else "classification"
    if model.is_regression and args.confusion:
        raise UserError(f"--confusion is for classifiers: {args.model!r} is a regression model "
                        f"({model.output} output)")
    data_name = args.data or DEFAULT_DATA[task]
    if tables.table_format(data_name):
        if args.target is None:
            raise UserError(f"--data {data_name!r} is a table: name its label column with "
                            "--target COLUMN")
        table = _read_table(data_name, "--data", [args.target])
        y_test = _table_target(table, args.target, data_name, "--data")
        X_test = _table_features_for(model, table, {args.target}, data_name, "--data")
    else:
        if args.target is not None:
            raise UserError(f"--target is for tables (--data FILE.csv or .parquet); --data "
                            f"{data_name!r} is not one")
        _, _, X_test, y_test = load_data(data_name, task)
    n_inputs, n_classes = model.layer_sizes[0], model.layer_sizes[-1]
    if X_test.shape[1] != n_inputs:
        raise UserError(f"the model takes {n_inputs} features but --data {data_name!r} has "
                        f"{X_test.shape[1]}")
    if model.is_regression:
        return _evaluate_regression(args, model, data_name, X_test, y_test, out)
    if y_test.ndim != 1:
        raise UserError(f"--data {data_name!r}: y_test has shape {y_test.shape}, but a "
                        "classifier is evaluated on 1-D labels")
    y_test, classes = _class_indices(y_test, model.classes, data_name)
    try:
        with thread_limits(args.threads):
            result = model.evaluate(X_test, y_test)
            y_pred = model.predict(X_test)
    except ValueError as exc:  # missing values the model does not fill, values beyond float32
        raise UserError(f"--data {data_name!r}: {exc}") from None
    matrix = confusion_matrix(y_test, y_pred, n_classes)
    print(f"model {args.model}: layers {list(model.layer_sizes)}, {model.hidden_activation}, "
          f"{model.dtype.name}", file=out)
    print(f"data {data_name}: {X_test.shape[0]} test samples", file=out)
    print(f"loss {result['loss']:.4f}  accuracy {result['accuracy']:.4f}", file=out)
    width = max(5, *(len(str(c)) for c in classes))
    print(f"{'class':>{width}}  {'precision':>9}  {'recall':>9}  {'support':>7}", file=out)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    for k, name in enumerate(classes):
        precision = f"{matrix[k, k] / predicted[k]:.4f}" if predicted[k] else "-"
        recall = f"{matrix[k, k] / support[k]:.4f}" if support[k] else "-"
        print(f"{str(name):>{width}}  {precision:>9}  {recall:>9}  {support[k]:>7}", file=out)
    if plotting is not None:
        try:
            plotting.plot_confusion_matrix(
                matrix, args.confusion, labels=[str(c) for c in classes],
                title=f"{data_name}: accuracy {result['accuracy']:.4f}")
        except OSError as exc:
            raise UserError(f"cannot write --confusion {args.confusion!r}: "
                            f"{_os_error_text(exc)}") from None
        print(f"confusion matrix written to {args.confusion}", file=out)
    return 0


# -- predict -----------------------------------------------------------------------------------
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


def cmd_predict(args, out=None):
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


# -- export ------------------------------------------------------------------------------------
def cmd_export(args, out=None):
    """Write a saved model as an ONNX file (through scikit-learn's estimator and skl2onnx)."""
    out = sys.stdout if out is None else out
    _check_output_path(args.onnx, "--onnx")
    model = _load_model(args.model)
    from fastmlp import export

    try:
        graph = export.to_onnx(model)
    except export.MissingExtraError as exc:
        raise UserError(f"--onnx: {exc}") from None
    except ValueError as exc:  # a setting scikit-learn's estimators do not have
        raise UserError(f"{args.model!r}: {exc}") from None
    try:
        with written_whole(args.onnx) as f:
            f.write(graph.SerializeToString())
    except OSError as exc:
        raise UserError(f"cannot write --onnx {args.onnx!r}: {_os_error_text(exc)}") from None
    outputs = ", ".join(o.name for o in graph.graph.output)
    steps = _steps_text(model.preprocessing)
    steps = f"; the graph has the model's steps: {steps}" if steps else ""
    print(f"wrote {args.onnx}: input X (float32, {model.layer_sizes[0]} features), outputs "
          f"{outputs}, opset {export.onnx_opset(graph)}{steps}", file=out)
    return 0


# -- bench -------------------------------------------------------------------------------------
def _bench_fastmlp(data, sizes, args):
    X_train, y_train, X_test, y_test = data
    fit = dict(batch_size=args.batch_size, learning_rate=args.learning_rate, progress=False)
    # Warm up: load (or compile) the kernels for this dtype before the clock starts.
    warm = Model(sizes, dtype=args.dtype, seed=args.seed)
    warm.fit(X_train[: 2 * args.batch_size], y_train[: 2 * args.batch_size], epochs=1, **fit)
    model = Model(sizes, dtype=args.dtype, seed=args.seed)
    start = time.perf_counter()
    model.fit(X_train, y_train, epochs=args.epochs, **fit)
    seconds = time.perf_counter() - start
    return seconds / args.epochs, model.evaluate(X_test, y_test)["accuracy"]


def _bench_sklearn(data, sizes, args):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X_train, y_train, X_test, y_test = data
    dtype = np.dtype(args.dtype)
    X_train, X_test = X_train.astype(dtype, copy=False), X_test.astype(dtype, copy=False)
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="logistic",
                        solver="sgd", learning_rate_init=args.learning_rate,
                        batch_size=args.batch_size, max_iter=args.epochs, tol=0,
                        n_iter_no_change=args.epochs + 1, momentum=0, alpha=0,
                        random_state=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        seconds = time.perf_counter() - start
    return seconds / clf.n_iter_, clf.score(X_test, y_test)


def _bench_torch(torch, data, sizes, args, n_threads):
    X_train, y_train, X_test, y_test = data
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    torch.manual_seed(args.seed)
    torch.set_num_threads(n_threads)

    def network():
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(torch.nn.Sigmoid())
        return torch.nn.Sequential(*layers).to(dtype)

    def train(net, X, y, epochs, generator):
        loss_fn = torch.nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(net.parameters(), lr=args.learning_rate)
        n = X.shape[0]
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            for i in range(0, n, args.batch_size):
                batch = order[i:i + args.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(net(X[batch]), y[batch])
                loss.backward()
                optimizer.step()

    X = torch.as_tensor(X_train).to(dtype)
    y = torch.as_tensor(y_train, dtype=torch.long)
    # Warm up (PyTorch initialises lazily on the first passes), as fastmlp is warmed up.
    warm = 2 * args.batch_size
    train(network(), X[:warm], y[:warm], 1, torch.Generator().manual_seed(args.seed))
    net = network()
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    train(net, X, y, args.epochs, generator)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        predicted = net(torch.as_tensor(X_test).to(dtype)).argmax(dim=1).numpy()
    return seconds / args.epochs, float(np.mean(predicted == y_test))


def cmd_bench(args, out=None):
    """Time fastmlp, scikit-learn and (when installed) PyTorch on the same training run."""
    out = sys.stdout if out is None else out
    import numba
    import sklearn.neural_network  # noqa: F401  (loaded before the thread limits apply)

    try:
        import torch
    except ImportError:
        torch = None
    check_threads(args.threads)
    X_train, y_train, X_test, y_test = load_data(args.data)
    y_train, y_test, classes = _labels(y_train, y_test)
    data = (X_train, y_train, X_test, y_test)
    sizes = [X_train.shape[1], *args.hidden, len(classes)]
    print(f"bench: {args.data}, {X_train.shape[0]} training and {X_test.shape[0]} test "
          f"samples, layers {sizes}, sigmoid, sgd (learning rate {args.learning_rate:g}), "
          f"batch {args.batch_size}, {args.epochs} epochs, {args.dtype}", file=out)
    rows = []
    with thread_limits(args.threads):
        n_threads = numba.get_num_threads()
        print(f"threads: {n_threads}", file=out, flush=True)
        rows.append(("fastmlp", *_bench_fastmlp(data, sizes, args)))
        rows.append(("scikit-learn", *_bench_sklearn(data, sizes, args)))
        if torch is not None:
            rows.append(("pytorch", *_bench_torch(torch, data, sizes, args, n_threads)))
    base = rows[0][1]
    print(f"{'implementation':<14}  {'s/epoch':>9}  {'test accuracy':>13}  {'speed-up':>8}",
          file=out)
    for name, per_epoch, accuracy in rows:
        speed_up = per_epoch / base if base > 0 else float("inf")
        print(f"{name:<14}  {per_epoch:>9.4f}  {accuracy:>13.4f}  {speed_up:>7.1f}x", file=out)
    if torch is None:
        print("pytorch: not installed, left out", file=out)
    return 0


# -- info --------------------------------------------------------------------------------------
def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown"


def _version(module_name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module_name)
    except PackageNotFoundError:
        return "not installed"


def _compile_cache_dir():
    """Where Numba caches fastmlp's compiled kernels."""
    import numba

    from fastmlp._kernels import activations

    for obj in vars(activations).values():
        cache = getattr(obj, "_cache", None)
        path = getattr(cache, "_cache_path", None)
        if path:
            return path
    if numba.config.CACHE_DIR:
        return numba.config.CACHE_DIR
    return os.path.join(os.path.dirname(activations.__file__), "__pycache__")


def _cache_contents(path):
    """``(kernels, bytes)`` cached in ``path``: index files, and the size of all files."""
    kernels, size = 0, 0
    if os.path.isdir(path):
        for entry in os.scandir(path):
            if entry.is_file():
                kernels += entry.name.endswith(".nbi")
                size += entry.stat().st_size
    return kernels, size


def cmd_compile(args, out=None):
    """Fill the compile cache for every path a user can reach (``fastmlp.precompile``)."""
    out = sys.stdout if out is None else out
    from fastmlp import _config, precompile

    if not _config.CACHE:
        raise UserError("the compile cache is off (FASTMLP_CACHE=0): nothing would be kept")
    cache = _compile_cache_dir()
    processes = args.processes or min(4, os.cpu_count() or 1)
    print(f"compiling fastmlp's kernels into {cache}, {len(precompile.TASKS)} tasks x "
          f"{len(precompile.DTYPES)} dtypes, {processes} process"
          f"{'es' if processes > 1 else ''}", file=out, flush=True)
    start = time.perf_counter()
    results = precompile.compile_all(processes, out=out)
    kernels, size = _cache_contents(cache)
    compiled = sum(r[3] for r in results)
    print(f"done in {time.perf_counter() - start:.1f} s: {compiled} compilations; the cache "
          f"holds {kernels} kernels ({size / 2**20:.1f} MiB) in {cache}", file=out)
    return 0


def cmd_info(args, out=None):
    """Print versions, CPU, threads, BLAS libraries, the compile cache and shipped kernels."""
    out = sys.stdout if out is None else out
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS, listed below once loaded)
    from threadpoolctl import threadpool_info

    import fastmlp
    from fastmlp import _config
    from fastmlp._kernels.train import warm_up_parallel

    try:
        warm_up_parallel(np.zeros(2))  # the threading layer has a name once parallel code ran
        layer = numba.threading_layer()
    except (ValueError, RuntimeError):
        layer = f"{numba.config.THREADING_LAYER} (configured; no parallel code could run)"
    print(f"fastmlp       {fastmlp.__version__}", file=out)
    for name in ("numpy", "numba", "scipy", "scikit-learn", "threadpoolctl", "matplotlib",
                 "torch"):
        print(f"{name:<13} {_version(name)}", file=out)
    print(f"python        {sys.version.split()[0]} ({sys.executable})", file=out)
    print(f"cpu           {_cpu_model()}", file=out)
    print(f"cpu count     {os.cpu_count()}", file=out)
    print(f"numba threads {numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS}, "
          f"threading layer {layer}", file=out)
    from fastmlp import _threads

    if _threads.adaptive(numba.config.NUMBA_NUM_THREADS):
        chosen = ("chosen while training runs, fewer beside busy neighbours "
                  "(FASTMLP_ADAPT_THREADS=0: off)")
    elif numba.config.NUMBA_NUM_THREADS == 1:
        chosen = "one: nothing to choose"
    elif not _config.ADAPT_THREADS:
        chosen = "fixed: FASTMLP_ADAPT_THREADS=0"
    else:
        chosen = "fixed by the user (NUMBA_NUM_THREADS or numba.set_num_threads)"
    print(f"thread count  {chosen}", file=out)
    from fastmlp._kernels.blas import BLAS_LIBRARY

    for lib in threadpool_info():
        path = lib["filepath"]
        user = ("scipy's" if f"{os.sep}scipy" in path
                else "numpy's" if f"{os.sep}numpy" in path else "")
        if path == BLAS_LIBRARY or (user == "scipy's" and BLAS_LIBRARY.startswith("scipy.")):
            user += ", fastmlp's kernels call its gemm"
        details = [lib["internal_api"] + (f" {lib['version']}" if lib.get("version") else ""),
                   f"{lib['num_threads']} threads"]
        if lib.get("threading_layer"):
            details.append(f"{lib['threading_layer']} threading")
        if user:
            details.append(user)
        print(f"{lib['user_api']:<13} {', '.join(details)}: {path}", file=out)
    cache = _compile_cache_dir()
    kernels, size = _cache_contents(cache)
    state = (f"on, {kernels} kernels cached ({size / 2**20:.1f} MiB); `fastmlp compile` fills "
             "it" if _config.CACHE else "off (FASTMLP_CACHE=0)")
    print(f"compile cache {cache} ({state})", file=out)
    from fastmlp._kernels import _jit

    shipped = _jit.SHIPPED
    if shipped.usable:
        what = (f"{shipped.info.get('entries', '?')} kernels ({shipped.info.get('kernels')}), "
                f"{shipped.reason}, used on this CPU after the compile cache (which "
                "`fastmlp compile` fills with native code)")
    else:
        what = f"not used: {shipped.reason}"
    print(f"shipped       {what}", file=out)
    sources = _jit.KERNEL_SOURCES
    print(f"this process  kernels loaded from the shipped code: {sources['shipped']}, from the "
          f"compile cache: {sources['local cache']}, compiled now: {sources['compiled']}",
          file=out)
    fastmath = ",".join(sorted(_config.FASTMATH)) if _config.FASTMATH else "off"
    print(f"fastmath      {fastmath} (never in the optimizer steps and exp, whose rounding "
          "must be NumPy's)", file=out)
    if _config.PARALLEL and layer != "workqueue":
        parallel = (f"on: batches of >= {_config.PARALLEL_MIN_FLOPS} multiply-adds are split "
                    "over Numba's threads, BLAS runs single-threaded inside kernels")
    else:
        parallel = ("off (FASTMLP_PARALLEL=0)" if not _config.PARALLEL
                    else "off (the workqueue threading layer is too slow for it)")
    print(f"parallel      {parallel}", file=out)
    return 0


# -- the parser --------------------------------------------------------------------------------
def _add_threads(parser):
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="use N threads: Numba's pool (numba.set_num_threads) and BLAS "
                             "(threadpoolctl) (default: all, or NUMBA_NUM_THREADS)")


def build_parser():
    """Build the argument parser of the ``fastmlp`` command."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="fastmlp", formatter_class=raw, epilog=_EPILOG_MAIN,
        description="Train fully-connected networks fast on the CPU: classifiers (sigmoid\n"
                    "hidden layers, softmax output, cross-entropy) and regression models\n"
                    "(identity or exp output, squared error or Poisson deviance).",
    )
    from fastmlp import __version__

    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train", help="train a model and report its test accuracy (or R^2)",
        formatter_class=raw,
        description="Train a Model on a data set; print a row per epoch, then the test\n"
                    "accuracy (regression: R^2 and RMSE), the time taken and the samples per\n"
                    "second.",
        epilog=_EPILOG_TRAIN,
    )
    train.add_argument("--task", default="classification",
                       choices=["classification", "regression"],
                       help="classification (softmax output, cross-entropy) or regression "
                            "(identity output, half squared error; see --output-kind) "
                            "(default: classification)")
    train.add_argument("--output-kind", default=None, choices=["identity", "exp"],
                       help="the output layer of a regression model: identity (half squared "
                            "error) or exp (half Poisson deviance, for counts; targets >= 0) "
                            "(default: identity)")
    # The old spelling, for one release: `--output` is predict's output file everywhere else.
    train.add_argument("--output", dest="output_deprecated", default=None,
                       choices=["identity", "exp"], help=argparse.SUPPRESS)
    train.add_argument("--data", default=None, help=_DATA_HELP)
    train.add_argument("--target", metavar="COLUMN",
                       help="a table's label column (classification: text or integers; "
                            "regression: numbers)")
    train.add_argument("--test", metavar="FILE",
                       help="a table to test on (same columns); default: --test-fraction")
    train.add_argument("--test-fraction", type=_fraction, default=None, metavar="F",
                       help="hold out this fraction of a table's rows as the test set, "
                            "stratified by class, drawn with --seed (default: 0.25)")
    train.add_argument("--drop", nargs="+", default=[], metavar="COLUMN",
                       help="table columns that are not features (an id, for instance)")
    train.add_argument("--scale", choices=["standard"], default=None,
                       help="standard: subtract each feature's training mean and divide by "
                            "its standard deviation; saved with the model (default: none, "
                            "as in scikit-learn and Keras; train warns when the features' "
                            "scales differ by orders of magnitude)")
    train.add_argument("--fill", choices=["mean"], default=None,
                       help="mean: a missing value becomes its column's training mean; saved "
                            "with the model (default: missing values are an error)")
    train.add_argument("--hidden", type=_positive_int, nargs="*", default=[32], metavar="N",
                       help="hidden layer sizes, e.g. --hidden 100 30 (default: 32; none "
                            "for no hidden layer)")
    train.add_argument("--activation", default="sigmoid",
                       choices=["sigmoid", "tanh", "relu", "identity"],
                       help="hidden activation (default: sigmoid)")
    train.add_argument("--optimizer", default=None, choices=["sgd", "adam"],
                       help="(default: sgd; adam for regression)")
    train.add_argument("--epochs", type=_positive_int, default=30, help="(default: 30)")
    train.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                       help="(default: 32)")
    train.add_argument("--learning-rate", type=_positive_float, default=None, metavar="ETA",
                       help="step size (default: 0.5 for sgd, 0.001 for adam; for "
                            "regression 0.03 for sgd, 0.003 for adam)")
    train.add_argument("--momentum", type=_momentum, default=0.0,
                       help="SGD momentum, below 1 (default: 0)")
    train.add_argument("--l2", type=_nonneg_float, default=0.0,
                       help="L2 penalty on the weights (default: 0)")
    train.add_argument("--validation-fraction", type=_fraction, default=None, metavar="F",
                       help="hold out this fraction of the training set (drawn with --seed) "
                            "for the per-epoch validation columns, instead of the test set")
    train.add_argument("--early-stopping", type=_positive_int, default=None, metavar="N",
                       help="stop when the validation loss has not improved for N epochs")
    train.add_argument("--seed", type=int, default=0,
                       help="seeds the initial weights, the shuffling and "
                            "--validation-fraction (default: 0)")
    train.add_argument("--scheduler", metavar="ADDRESS",
                       help="train with L-BFGS on the Dask cluster of this scheduler "
                            "(tcp://host:8786): each loss and gradient is summed over "
                            "X_train's blocks on the workers; --epochs is the iteration "
                            "limit; needs the dask extra: pip install \".[dask]\" in a checkout")
    train.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                       help="(default: float32)")
    _add_threads(train)
    train.add_argument("--save", metavar="PATH", help="write the trained model (.npz)")
    train.add_argument("--plot", metavar="PATH.png",
                       help="write learning curves (loss and accuracy per epoch; regression: "
                            "loss per epoch and the test set's predicted against true "
                            'values); needs matplotlib: pip install ".[plot]" in a '
                            "checkout, or pip install matplotlib")
    train.add_argument("--quiet", action="store_true",
                       help="print only the closing summary")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser(
        "evaluate", help="loss, accuracy and per-class precision/recall (or RMSE, R^2) of a "
                         "saved model",
        formatter_class=raw, epilog=_EPILOG_EVALUATE,
        description="Evaluate a saved model on the test part of a data set: loss, accuracy\n"
                    "and a table of per-class precision and recall (a regression model: loss,\n"
                    "RMSE and R^2).",
    )
    evaluate.add_argument("model", metavar="MODEL", help="a model file written by --save")
    evaluate.add_argument("--data", default=None, help=_DATA_HELP)
    evaluate.add_argument("--target", metavar="COLUMN",
                          help="the label column of a table given as --data")
    evaluate.add_argument("--confusion", metavar="PATH.png",
                          help="write the confusion matrix as a picture; needs matplotlib")
    _add_threads(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

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
    predict.set_defaults(func=cmd_predict)

    bench = sub.add_parser(
        "bench", help="time fastmlp against scikit-learn (and PyTorch)",
        formatter_class=raw, epilog=_EPILOG_BENCH,
        description="Train the same sigmoid network with fastmlp, scikit-learn's\n"
                    "MLPClassifier and PyTorch (when installed); print seconds per epoch,\n"
                    "test accuracy and fastmlp's speed-up.",
    )
    bench.add_argument("--data", default="digits", help=_DATA_HELP)
    bench.add_argument("--hidden", type=_positive_int, nargs="*", default=[32], metavar="N",
                       help="hidden layer sizes (default: 32)")
    bench.add_argument("--epochs", type=_positive_int, default=3, help="(default: 3)")
    bench.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                       help="(default: 32)")
    bench.add_argument("--learning-rate", type=_positive_float, default=0.5, metavar="ETA",
                       help="SGD step size (default: 0.5)")
    bench.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                       help="(default: float32)")
    bench.add_argument("--seed", type=int, default=0, help="(default: 0)")
    _add_threads(bench)
    bench.set_defaults(func=cmd_bench)

    info = sub.add_parser(
        "info", help="versions, CPU, threads, BLAS and the compile cache",
        formatter_class=raw, epilog=_EPILOG_INFO,
        description="Print what fastmlp runs on: package versions, the CPU, Numba's threads\n"
                    "and threading layer, the BLAS libraries and where compiled kernels are\n"
                    "cached.",
    )
    info.set_defaults(func=cmd_info)

    compile_ = sub.add_parser(
        "compile", help="compile every kernel natively ahead of time, into the cache",
        formatter_class=raw, epilog=_EPILOG_COMPILE,
        description="Compile fastmlp's kernels for every path a user can reach, in both dtypes,\n"
                    "natively for this CPU, and keep them in the compile cache, so that no later\n"
                    "call waits for the compiler. The cache is looked up before the x86-64-v3\n"
                    "kernels a wheel ships.",
    )
    compile_.add_argument("--processes", type=_positive_int, default=None, metavar="N",
                          help="worker processes (default: the CPU count, at most 4)")
    compile_.set_defaults(func=cmd_compile)
    export = sub.add_parser(
        "export", help="write a saved model as an ONNX file, to serve without fastmlp",
        formatter_class=raw, epilog=_EPILOG_EXPORT,
        description="Convert a saved model to ONNX (through scikit-learn's MLPClassifier or\n"
                    "MLPRegressor and skl2onnx), with its fill and standardisation steps.",
    )
    export.add_argument("model", metavar="MODEL", help="a model file written by --save")
    export.add_argument("--onnx", metavar="PATH.onnx", required=True,
                        help="the ONNX file to write")
    export.set_defaults(func=cmd_export)
    parser.commands = {"train": train, "evaluate": evaluate, "predict": predict, "bench": bench,
                       "info": info, "compile": compile_, "export": export}
    return parser


def main(argv=None):
    """Entry point of the ``fastmlp`` command; returns the exit status."""
    from fastmlp.plotting import MatplotlibMissing

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's own parser, which points at its --help
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (UserError, MatplotlibMissing) as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastmlp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`fastmlp train | head`): stop quietly, as other tools do.
        # Point stdout at /dev/null so that flushing it at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
