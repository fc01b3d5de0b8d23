"""``fastmlp train --scheduler``: one L-BFGS fit on a running Dask cluster."""

import os
import time
import warnings

import numpy as np

from fastmlp import datasets
from fastmlp._extras import install_hint
from fastmlp._outofcore import block_rows_for
from fastmlp.cli._common import (
    UserError,
    _os_error_text,
    _save,
    _scores_text,
    thread_limits,
)
from fastmlp.model import Model


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
            output = args.output_kind or "identity"
            sizes = [X_train.shape[1], *args.hidden, 1 if y_test.ndim == 1 else y_test.shape[1]]
            model = Model(sizes, output=output, hidden_activation=args.activation,
                          dtype=args.dtype, seed=args.seed)
        else:
            if args.output_kind is not None:
                raise UserError(f"--output-kind {args.output_kind} is a regression output: add "
                                "--task regression")
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
