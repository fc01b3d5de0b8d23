"""The ``fastmlp`` command: train, evaluate and predict from a shell.

User errors (a missing file, a bad value) print one line to stderr and exit with status 2.
"""

import argparse
import os
import sys
import time

import numpy as np

from fastmlp import datasets
from fastmlp.model import DivergenceError, Model

EXIT_USAGE = 2

_EPILOG_TRAIN = """examples:
  fastmlp train                                  # digits, (32,) hidden, 30 epochs
  fastmlp train --data fashion-mnist --hidden 100 --epochs 10 --save fashion.npz
  fastmlp train --data mydata.npz --hidden 128 64 --optimizer adam --learning-rate 0.001
"""


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


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


def load_data(spec, seed=0):
    """Return ``(X_train, y_train, X_test, y_test)`` for a ``--data`` value.

    ``digits`` (scikit-learn's, embedded), ``fashion-mnist`` (installed IDX files), ``mnist``
    (IDX files in ``$MNIST_DIR``), a directory of the four IDX files, or an ``.npz`` file with
    ``X_train``, ``y_train``, ``X_test``, ``y_test``.
    """
    try:
        if spec == "digits":
            return datasets.load_digits(seed=seed)
        if spec == "fashion-mnist":
            return datasets.load_fashion_mnist()
        if spec == "mnist":
            path = os.environ.get("MNIST_DIR")
            if not path:
                raise UserError("--data mnist needs MNIST_DIR set to a folder with the four "
                                "MNIST IDX files (or pass the folder itself as --data DIR)")
            return datasets.load_mnist(path)
        if os.path.isdir(spec):
            return datasets.load_mnist(spec)
        if spec.endswith(".npz"):
            return datasets.load_npz(spec)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    raise UserError(f"--data {spec!r}: not 'digits', 'fashion-mnist', 'mnist', a directory of "
                    "IDX files, or an .npz file")


def _labels(y_train, y_test):
    """Map arbitrary labels to 0..K-1; returns (y_train, y_test, classes)."""
    classes, y_all = np.unique(np.concatenate([y_train, y_test]), return_inverse=True)
    if len(classes) < 2:
        raise UserError("the data has a single class; a classifier needs at least two")
    return y_all[: len(y_train)], y_all[len(y_train):], classes


class _EpochPrinter:
    """Callback printing one table row per epoch."""

    def __init__(self, n_samples, has_validation, out):
        self.n_samples = n_samples
        self.has_validation = has_validation
        self.out = out
        head = f"{'epoch':>5}  {'loss':>8}  {'accuracy':>8}"
        if has_validation:
            head += f"  {'val_loss':>8}  {'val_acc':>8}"
        head += f"  {'seconds':>8}  {'samples/s':>10}"
        print(head, file=out, flush=True)

    def on_epoch_end(self, epoch, logs):
        row = f"{epoch:>5}  {logs['loss']:>8.4f}  {logs['accuracy']:>8.4f}"
        if self.has_validation:
            row += f"  {logs['val_loss']:>8.4f}  {logs['val_accuracy']:>8.4f}"
        rate = self.n_samples / logs["seconds"] if logs["seconds"] > 0 else float("inf")
        row += f"  {logs['seconds']:>8.3f}  {rate:>10.0f}"
        print(row, file=self.out, flush=True)
        return False


def cmd_train(args, out=sys.stdout):
    """Train a Model and report per-epoch progress and the final test accuracy."""
    X_train, y_train, X_test, y_test = load_data(args.data, seed=args.seed or 0)
    y_train, y_test, classes = _labels(y_train, y_test)
    sizes = [X_train.shape[1], *args.hidden, len(classes)]
    learning_rate = args.learning_rate
    if learning_rate is None:
        learning_rate = 0.001 if args.optimizer == "adam" else 0.5
    model = Model(sizes, hidden_activation=args.activation, dtype=args.dtype, seed=args.seed)
    if not args.quiet:
        print(f"fastmlp: {X_train.shape[0]} training and {X_test.shape[0]} test samples, "
              f"layers {sizes}, {args.activation}, {args.optimizer} (learning rate "
              f"{learning_rate:g}), batch {args.batch_size}, {args.dtype}", file=out)
    callbacks = [] if args.quiet else [_EpochPrinter(X_train.shape[0], True, out)]
    start = time.perf_counter()
    interrupted = False
    try:
        model.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=learning_rate, momentum=args.momentum, l2=args.l2,
                  optimizer=args.optimizer, validation_data=(X_test, y_test), progress=False,
                  callbacks=callbacks)
    except KeyboardInterrupt:
        interrupted = True
        print(f"interrupted: keeping the weights of epoch {model.history.epochs}", file=out)
    except DivergenceError as exc:
        raise UserError(str(exc)) from None
    seconds = time.perf_counter() - start
    result = model.evaluate(X_test, y_test)
    trained = model.history.epochs * X_train.shape[0]
    print(f"test accuracy {result['accuracy']:.4f}  test loss {result['loss']:.4f}  "
          f"{seconds:.2f} s  {trained / seconds:.0f} samples/s", file=out)
    if args.save:
        try:
            model.save(args.save)
        except OSError as exc:
            raise UserError(f"cannot save to {args.save!r}: {exc.strerror or exc}") from None
        print(f"saved {args.save}", file=out)
    return 130 if interrupted else 0


def build_parser():
    """The argument parser of the ``fastmlp`` command."""
    parser = argparse.ArgumentParser(
        prog="fastmlp",
        description="Train fully-connected classifiers (sigmoid/softmax/cross-entropy) fast.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = sub.add_parser(
        "train", help="train a model and report its test accuracy",
        description="Train a Model on a data set; print a row per epoch and the test accuracy.",
        epilog=_EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--data", default="digits",
                       help="digits (default, embedded), fashion-mnist, mnist, a directory of "
                            "IDX files, or an .npz with X_train, y_train, X_test, y_test")
    train.add_argument("--hidden", type=_positive_int, nargs="*", default=[32], metavar="N",
                       help="hidden layer sizes (default: 32)")
    train.add_argument("--activation", default="sigmoid",
                       choices=["sigmoid", "tanh", "relu", "identity"],
                       help="hidden activation (default: sigmoid)")
    train.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    train.add_argument("--epochs", type=_positive_int, default=30, help="(default: 30)")
    train.add_argument("--batch-size", type=_positive_int, default=32, help="(default: 32)")
    train.add_argument("--learning-rate", type=_positive_float, default=None,
                       help="step size (default: 0.5 for sgd, 0.001 for adam)")
    train.add_argument("--momentum", type=_nonneg_float, default=0.0, help="SGD momentum")
    train.add_argument("--l2", type=_nonneg_float, default=0.0, help="L2 penalty on weights")
    train.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument("--save", metavar="PATH", help="write the trained model (.npz)")
    train.add_argument("--quiet", action="store_true", help="print only the final summary")
    train.set_defaults(func=cmd_train)
    return parser


def main(argv=None):
    """Entry point of the ``fastmlp`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "momentum", 0.0) >= 1:
        parser.error("--momentum must be below 1")
    try:
        return args.func(args)
    except UserError as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
