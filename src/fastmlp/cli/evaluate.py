"""``fastmlp evaluate``: loss, accuracy and per-class precision and recall of a saved model."""

import argparse
import sys

import numpy as np

from fastmlp import tables
from fastmlp.cli._common import (
    UserError,
    _add_threads,
    _load_model,
    _os_error_text,
    _require_plotting,
    check_threads,
    thread_limits,
)
from fastmlp.cli._data import (
    _DATA_HELP,
    DEFAULT_DATA,
    _read_table,
    _regression_targets,
    _table_features_for,
    _table_target,
    load_data,
)

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


def add_parser(sub):
    """Add ``fastmlp evaluate`` to the subcommands ``sub``; return its parser."""
    raw = argparse.RawDescriptionHelpFormatter
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
    evaluate.set_defaults(func=run)
    return evaluate


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


def run(args, out=None):
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
    from sklearn.metrics import confusion_matrix  # here: the other commands do not need it

    matrix = confusion_matrix(y_test, y_pred, labels=np.arange(n_classes))
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
