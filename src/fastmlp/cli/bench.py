"""``fastmlp bench``: fastmlp, scikit-learn and PyTorch timed on the same training run."""

import argparse
import sys
import time
import warnings

import numpy as np

from fastmlp.cli._common import (
    _add_threads,
    _positive_float,
    _positive_int,
    check_threads,
    thread_limits,
)
from fastmlp.cli._data import _DATA_HELP, _labels, load_data
from fastmlp.model import Model

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


def add_parser(sub):
    """Add ``fastmlp bench`` to the subcommands ``sub``; return its parser."""
    raw = argparse.RawDescriptionHelpFormatter
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
    bench.set_defaults(func=run)
    return bench


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


def run(args, out=None):
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
