"""``fastmlp train``: train a Model, report each epoch and the test score, save and plot."""

import argparse
import sys
import time

import numpy as np

from fastmlp import datasets, tables
from fastmlp._outofcore import RowBlocks, is_out_of_core
from fastmlp._preprocessing import Preprocessing
from fastmlp.callbacks import EarlyStopping
from fastmlp.cli._common import (
    EXIT_INTERRUPTED,
    UserError,
    _add_threads,
    _check_output_path,
    _fraction,
    _momentum,
    _nonneg_float,
    _os_error_text,
    _positive_float,
    _positive_int,
    _require_plotting,
    _save,
    _scores_text,
    _steps_text,
    check_threads,
    thread_limits,
)
from fastmlp.cli._data import (
    _DATA_HELP,
    DEFAULT_DATA,
    _labels,
    _regression_targets,
    load_data,
    load_table_data,
)
from fastmlp.cli._report import _chance_note, _EpochPrinter, _scale_warning
from fastmlp.cli._scheduler import _train_on_scheduler, _train_store_on_scheduler
from fastmlp.model import DivergenceError, History, Model

#: Default step sizes of the two optimizers, for classification.
DEFAULT_LEARNING_RATE = {"sgd": 0.5, "adam": 0.001}


#: ... and for regression, measured on diabetes (1 hidden layer of 32, batch 32, 30 epochs,
#: 5 splits x 3 seeds; a linear model's mean test R^2 is 0.428): adam at 0.003 reaches 95% of
#: its best R^2 in 8 epochs, mean R^2 0.424 after 30 (at 0.001: 21 epochs, 0.423; at 0.01:
#: 4 epochs, 0.412); sgd does best about 0.03 (21 epochs, 0.403).
REGRESSION_LEARNING_RATE = {"sgd": 0.03, "adam": 0.003}


#: The optimizer when --optimizer is not given: adam for regression (measured as above).
DEFAULT_OPTIMIZER = {"classification": "sgd", "regression": "adam"}

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


def add_parser(sub):
    """Add ``fastmlp train`` to the subcommands ``sub``; return its parser."""
    raw = argparse.RawDescriptionHelpFormatter
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
    train.set_defaults(func=run)
    return train


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


def _split_validation(X, y, fraction, seed):
    n = X.shape[0]
    n_val = int(round(fraction * n))
    if not 1 <= n_val < n:
        raise UserError(f"--validation-fraction {fraction:g} of {n} training samples leaves "
                        f"{n_val} for validation and {n - n_val} for training; both need >= 1")
    order = np.random.default_rng(seed).permutation(n)
    val, keep = np.sort(order[:n_val]), np.sort(order[n_val:])
    return X[keep], y[keep], X[val], y[val]


def run(args, out=None):
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
        # as before the callback moved to fastmlp.callbacks: the model keeps its last weights
        stopper = EarlyStopping("val_loss", patience=args.early_stopping, restore_best=False)
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
    if stopper is not None and history.stopped_epoch is not None:
        print(f"early stopping after epoch {history.stopped_epoch}: the {val_name} loss has "
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
