"""Shared pieces of the benchmark suite: data, workloads, the three implementations, FLOP counts.

Every training benchmark times ONE EPOCH of mini-batch training, as each library is used:

* fastmlp: ``fastmlp._engine.Trainer(...).epoch(theta, X, Y_onehot, order)`` -- the call
  ``Model.fit`` makes once per epoch (the permutation is drawn inside the timed call, as
  ``Model.fit`` draws it every epoch).
* scikit-learn: ``MLPClassifier(...).partial_fit(X, y)``, which is one epoch (shuffled, in
  mini-batches) of ``solver`` with the constructor's settings; the first call (with
  ``classes=``) initialises the weights and is the warm-up.
* PyTorch (CPU): ``nn.Sequential(Linear, Sigmoid, ..., Linear)``, ``CrossEntropyLoss``,
  ``optim.SGD``/``optim.Adam``, one pass over ``torch.randperm`` in index batches, tensors in
  the workload's dtype.
* numpy's products (the bound, not a competitor): the epoch's forward, BP4 and BP2 matrix
  products alone, ``np.dot`` batch by batch on the same rows (:func:`products_epoch`).

Threads: numba gets ``threads`` (``numba.set_num_threads``; the engine holds BLAS to one
thread itself), scikit-learn's BLAS and PyTorch get ``N_THREADS``, numba's default count;
the products rows hold numpy's BLAS to ``threads`` (``threadpoolctl``).

Processes: scikit-learn and PyTorch rows run in a worker process of their own (one per library,
spawned once per session, see :class:`Worker`), as their users run them: the benchmark process
holds numba's OpenMP pool and changes BLAS thread limits, and each library brings its own
thread pool (OpenBLAS, PyTorch's OpenMP and MKL); mixing pools in one process can slow any of
them down, which would be a measurement of the mix, not of the library. The timed call then
includes a pipe round trip (about 0.1 ms).
"""

import atexit
import functools
import importlib.util
import json
import math
import multiprocessing
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass

import numba
import numpy as np
import pytest

#: The OpenMP settings as this process found them (conftest.py records them before anything
#: imports fastmlp, whose import sets GOMP_SPINCOUNT for every GNU OpenMP runtime loaded
#: afterwards). The worker processes restore them, so PyTorch's OpenMP runs with its defaults,
#: as it does for a PyTorch user.
ORIGINAL_OMP_ENV = {
    name: os.environ.get(f"_FASTMLP_BENCH_{name}", os.environ.get(name, "<unset>"))
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
}
ORIGINAL_OMP_WAIT_POLICY = ORIGINAL_OMP_ENV["OMP_WAIT_POLICY"]

#: All threads: numba's default count (``NUMBA_NUM_THREADS``, the number of cores).
N_THREADS = numba.config.NUMBA_NUM_THREADS
#: Thread counts the fastmlp rows are measured at: 1, 2 and all (where there are more).
THREAD_COUNTS = sorted({t for t in (1, 2, N_THREADS) if t <= N_THREADS})
IMPLS = ("fastmlp", "sklearn", "torch")

#: Timed rounds per benchmark, at most (after a warm-up); FASTMLP_BENCH_ROUNDS overrides.
ROUNDS = int(os.environ.get("FASTMLP_BENCH_ROUNDS", "3"))
#: Seconds of timed rounds a training benchmark aims at: a row whose epoch is estimated (from
#: its warm-up) to take longer gets fewer rounds, at least one. Keeps the slowest rows
#: (scikit-learn and PyTorch at batch 32) from making the suite long. FASTMLP_BENCH_BUDGET_S.
ROUND_BUDGET_S = float(os.environ.get("FASTMLP_BENCH_BUDGET_S", "8"))
#: Rows whose epoch is estimated under FAST_EPOCH_S seconds get up to FAST_MAX_ROUNDS rounds
#: (about a second of them): a short epoch is the most easily disturbed by other work.
FAST_EPOCH_S = 0.2
FAST_MAX_ROUNDS = 10
#: With ``--benchmark-disable`` (CI) each training body runs once on this many rows of its
#: data, not the whole set: CI checks that every row runs, not how fast. 0 = all rows.
SMOKE_ROWS = int(os.environ.get("FASTMLP_BENCH_SMOKE_ROWS", "2048"))


# ---------------------------------------------------------------------------------------------
# Optional PyTorch
# ---------------------------------------------------------------------------------------------
@functools.cache
def _torch():
    try:
        import torch
    except ImportError as exc:  # not a dependency of fastmlp: CI has no torch
        return None, f"PyTorch is not installed ({exc}); pip install torch to compare with it"
    return torch, ""


def torch_available():
    """``(True, "")`` or ``(False, reason)``, without importing torch into this process."""
    try:
        found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        found = False
    if not found:
        return False, "PyTorch is not installed; pip install torch to compare with it"
    return True, ""


def skip_without_torch():
    ok, reason = torch_available()
    if not ok:
        pytest.skip(reason)


def require_torch():
    """Return the ``torch`` module, or skip the calling test with the reason."""
    torch, reason = _torch()
    if torch is None:
        pytest.skip(reason)
    torch.set_num_threads(N_THREADS)
    return torch


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
@functools.cache
def digits():
    """scikit-learn's digits, all 1797 rows, pixels / 16, float64; labels int64."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return np.ascontiguousarray(X / 16.0), y.astype(np.int64)


@functools.cache
def _fashion():
    from fastmlp.datasets import load_fashion_mnist

    try:
        X, y, X_test, y_test = load_fashion_mnist()
    except FileNotFoundError as exc:
        return None, str(exc)
    return (X, y, X_test, y_test), ""


def fashion():
    """Fashion-MNIST ``(X_train float32, y_train, X_test, y_test)``, or skip with the reason."""
    data, reason = _fashion()
    if data is None:
        pytest.skip(f"Fashion-MNIST is missing: {reason}")
    return data


@functools.cache
def dataset(name, dtype):
    """``(X, y)`` of a workload's data in ``dtype`` (C-contiguous); skips if it is missing."""
    if name == "digits":
        X, y = digits()
    elif name == "fashion":
        X, y = fashion()[:2]
    elif name == "fashion10k":
        X, y = fashion()[0][:10000], fashion()[1][:10000]
    elif name == "fashion-test":
        X, y = fashion()[2:]
    else:
        raise ValueError(name)
    return np.ascontiguousarray(X, dtype=dtype), y


# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """One training configuration (the network, the data, the optimizer)."""

    data: str
    hidden: tuple
    batch_size: int
    dtype: str
    solver: str

    @property
    def learning_rate(self):
        return 0.1 if self.solver == "sgd" else 1e-3

    @property
    def layer_sizes(self):
        n_in = 64 if self.data == "digits" else 784
        return (n_in, *self.hidden, 10)

    @property
    def group(self):
        net = "x".join(str(h) for h in self.hidden)
        return f"train {self.data} h{net} {self.solver} b{self.batch_size} {self.dtype}"

    def __str__(self):
        return self.group.removeprefix("train ")


def _workloads():
    out = [Workload("digits", (32,), 32, "float64", "sgd")]  # 1: overhead-bound
    for solver in ("sgd", "adam"):  # 2 and 3
        for batch in (32, 200):
            for dtype in ("float32", "float64"):
                out.append(Workload("fashion", (100,), batch, dtype, solver))
    for dtype in ("float32", "float64"):  # 4: compute-bound
        out.append(Workload("fashion10k", (1024, 1024), 256, dtype, "sgd"))
    return out


WORKLOADS = _workloads()


def train_flops(layer_sizes, n_samples):
    """FLOPs of one epoch: forward 2, BP4 2 and BP2 2 per multiply-add, no BP2 into the input.

    ``N * (6 * sum(n_in * n_out) - 2 * n_0 * n_1)``.
    """
    s = layer_sizes
    macs = sum(a * b for a, b in zip(s[:-1], s[1:], strict=False))
    return int(n_samples) * (6 * macs - 2 * s[0] * s[1])


#: The networks ``bench_predict.py`` runs ``predict_proba`` of, on the Fashion-MNIST test set's
#: ``PREDICT_ROWS`` rows; ``bench_gemm.py`` times their forward products at that size too.
PREDICT_NETS = [(784, 100, 10), (784, 1024, 1024, 10)]
PREDICT_ROWS = 10000


def predict_gemm_shapes():
    """The (m, k, n) of every ``predict_proba`` row's forward products, ``m = PREDICT_ROWS``."""
    return [(PREDICT_ROWS, a, b) for s in PREDICT_NETS
            for a, b in zip(s[:-1], s[1:], strict=False)]


def predict_flops(layer_sizes, n_samples):
    """FLOPs of a forward pass over ``n_samples`` rows: ``2 * N * sum(n_in * n_out)``."""
    s = layer_sizes
    return 2 * int(n_samples) * sum(a * b for a, b in zip(s[:-1], s[1:], strict=False))


def gemm_shapes(workload):
    """The (m, k, n) of the workload's forward products at its batch size."""
    s = workload.layer_sizes
    return [(workload.batch_size, a, b) for a, b in zip(s[:-1], s[1:], strict=False)]


# ---------------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------------
class numba_threads:
    """Context: ``numba.set_num_threads(n)`` inside, the previous count restored after."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = numba.get_num_threads()
        numba.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        numba.set_num_threads(self.old)


# ---------------------------------------------------------------------------------------------
# One epoch, per implementation. Each builder returns ``(epoch, info)``: ``epoch(rows=None)``
# trains one epoch over a fresh shuffle of the data, or over its first ``rows`` samples only
# (the warm-up and the CI smoke run use that), and returns the loss; ``info`` goes to
# ``benchmark.extra_info``.
# ---------------------------------------------------------------------------------------------
def fastmlp_model(layer_sizes, dtype, seed=0):
    from fastmlp import Model

    return Model(layer_sizes, hidden_activation="sigmoid", dtype=dtype, seed=seed)


class engine_kernel:
    """Context: Trainers built inside use the ``"serial"`` or ``"parallel"`` kernel, or choose
    (``"auto"``, by ``PARALLEL_MIN_FLOPS``)."""

    def __init__(self, kernel="auto"):
        self.kernel = kernel

    def __enter__(self):
        from fastmlp import _config

        self.old = _config.PARALLEL_MIN_FLOPS
        if self.kernel != "auto":
            _config.PARALLEL_MIN_FLOPS = 0 if self.kernel == "parallel" else 1 << 62
        return self

    def __exit__(self, *exc):
        from fastmlp import _config

        _config.PARALLEL_MIN_FLOPS = self.old


def fastmlp_epoch(workload, X, y, seed=0, kernel="auto"):
    """One epoch with the compiled engine: ``Trainer.epoch``, the call ``Model.fit`` makes.

    ``kernel="serial"`` forces the serial kernel (otherwise the engine chooses). Call it inside
    :class:`numba_threads`.
    """
    from fastmlp._engine import Trainer

    model = fastmlp_model(workload.layer_sizes, workload.dtype, seed)
    Y = np.zeros((X.shape[0], workload.layer_sizes[-1]), dtype=workload.dtype)
    Y[np.arange(X.shape[0]), y] = 1
    with engine_kernel(kernel):
        trainer = Trainer(model._network, workload.batch_size, workload.solver,
                          learning_rate=workload.learning_rate)
    rng = np.random.default_rng(seed)
    theta = model._theta

    def epoch(rows=None):
        n = X.shape[0] if rows is None else rows
        loss_sum, _, n_seen = trainer.epoch(theta, X[:n], Y[:n], rng.permutation(n))
        if n_seen != n:
            raise FloatingPointError(f"fastmlp diverged on {workload}")
        return loss_sum / n

    return epoch, {"engine_lanes": trainer_lanes(trainer)}


def sklearn_classifier(workload, seed=0):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=workload.hidden, activation="logistic", solver=workload.solver,
        batch_size=workload.batch_size, learning_rate_init=workload.learning_rate, max_iter=1,
        shuffle=True, tol=0.0, momentum=0.0, alpha=0.0, random_state=seed)


class sklearn_threads:
    """Context: BLAS on ``N_THREADS`` threads, scikit-learn's warnings silenced."""

    def __enter__(self):
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(N_THREADS, user_api="blas")
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")  # ConvergenceWarning & co.: not what is measured
        return self

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        self._limits.restore_original_limits()


def sklearn_epoch(workload, X, y, seed=0):
    """One ``MLPClassifier.partial_fit`` = one shuffled epoch of ``solver``."""
    clf = sklearn_classifier(workload, seed)
    classes = np.arange(workload.layer_sizes[-1])
    state = {"first": True}

    def epoch(rows=None):
        n = X.shape[0] if rows is None else rows
        with sklearn_threads():
            if state["first"]:
                clf.partial_fit(X[:n], y[:n], classes=classes)
                state["first"] = False
            else:
                clf.partial_fit(X[:n], y[:n])
        return clf.loss_

    import sklearn

    return epoch, {"sklearn_version": sklearn.__version__}


def torch_network(torch, layer_sizes, dtype):
    layers = []
    for i, (a, b) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:], strict=False)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(layer_sizes) - 2:
            layers.append(torch.nn.Sigmoid())
    return torch.nn.Sequential(*layers).to(getattr(torch, dtype))


def torch_epoch(workload, X, y, seed=0):
    """One PyTorch epoch (CPU, ``N_THREADS``): index batches of ``randperm``, SGD or Adam."""
    torch = require_torch()
    torch.manual_seed(seed)
    net = torch_network(torch, workload.layer_sizes, workload.dtype)
    if workload.solver == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=workload.learning_rate)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=workload.learning_rate)
    cost = torch.nn.CrossEntropyLoss()
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    bs = workload.batch_size

    def epoch(rows=None):
        n = X.shape[0] if rows is None else rows
        return torch_train_epoch(torch, net, opt, cost, Xt, yt, n, bs, gen)

    return epoch, {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}


def torch_train_epoch(torch, net, opt, cost, Xt, yt, n, batch_size, gen):
    """One PyTorch epoch over the first ``n`` rows in ``randperm`` order; the mean batch loss."""
    perm = torch.randperm(n, generator=gen)
    total = torch.zeros((), dtype=Xt.dtype)
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = cost(net(Xt[idx]), yt[idx])
        loss.backward()
        opt.step()
        total += loss.detach() * idx.shape[0]
    return float(total) / n


def trainer_lanes(trainer):
    """How many row slices (lanes) the engine splits each batch into; 1 = the serial kernel."""
    for name in ("n_lanes", "n_threads"):  # named n_threads before the engine's lanes
        if hasattr(trainer, name):
            return int(getattr(trainer, name))
    return None


def engine_parallel_width():
    """The lanes the engine's parallel kernels would use here (1: they are not used)."""
    from fastmlp import _engine

    fn = getattr(_engine, "parallel_lanes", None) or _engine.parallel_threads
    return fn()


def products_epoch(workload, X, seed=0):
    """Build one epoch's matrix products alone, numpy's BLAS batch by batch: the bound beside
    fastmlp's epoch.

    For each batch of ``n`` consecutive rows of ``X`` (the workload's batch size, the last batch
    short) and each weight layer ``l`` (``W_l`` of shape ``(s_l, s_{l+1})``): the forward
    product ``a_l @ W_l``, then, from the output layer down, BP4 ``a_l.T @ delta_{l+1}`` and,
    for ``l >= 1``, BP2 ``delta_{l+1} @ W_l.T`` (none into the input layer). Every product is
    ``np.dot`` into a preallocated array (nothing is allocated in the loop but the views of
    the batch); ``a_0`` is the batch of ``X``, ``a_l`` for ``l >= 1`` the forward product
    before it (no activation: only the products are timed), the output layer's delta is random
    and fixed, and each BP2 writes the delta the next BP4 reads. The weights are random and
    fixed (scaled by ``1 / sqrt(s_l)``, so no value grows or turns denormal). The caller holds
    numpy's BLAS to the row's threads (``threadpoolctl``); numba plays no part.

    Returns ``(epoch, info)`` as the other builders: ``epoch(rows=None)`` runs the products of
    an epoch over the first ``rows`` rows (all by default). ``info["products_flops"]`` is the
    FLOPs (2 per multiply-add) of the products of a whole epoch over ``X``, counted by running
    the loop once with a ``dot`` that adds up its products' shapes instead of computing them.
    """
    sizes = workload.layer_sizes
    dtype = np.dtype(workload.dtype)
    bs = workload.batch_size
    n_layers = len(sizes) - 1
    if X.dtype != dtype or not X.flags.c_contiguous:
        raise ValueError(f"X must be C-contiguous {dtype}")
    rng = np.random.default_rng(seed)
    W = [(rng.standard_normal((a, b)) / math.sqrt(a)).astype(dtype)
         for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    WT = [w.T for w in W]
    grads = [np.empty_like(w) for w in W]
    acts = [None] + [np.empty((bs, s), dtype=dtype) for s in sizes[1:]]  # a_l, l >= 1
    deltas = [None] + [np.empty((bs, s), dtype=dtype) for s in sizes[1:]]  # delta_l, l >= 1
    deltas[-1][:] = rng.standard_normal(deltas[-1].shape) / sizes[-1]
    for d in deltas[1:-1]:  # overwritten by BP2 in every batch
        d[:] = 0

    @functools.cache
    def views(m):
        """Return the buffers' first ``m`` rows: ``a``, ``a.T`` and ``delta`` per layer."""
        a = [None] + [x[:m] for x in acts[1:]]
        return a, [None] + [x.T for x in a[1:]], [None] + [x[:m] for x in deltas[1:]]

    def batch(x, dot=np.dot):
        a, aT, d = views(x.shape[0])
        dot(x, W[0], out=a[1])
        for i in range(1, n_layers):
            dot(a[i], W[i], out=a[i + 1])
        for i in range(n_layers - 1, 0, -1):
            dot(aT[i], d[i + 1], out=grads[i])  # BP4
            dot(d[i + 1], WT[i], out=d[i])  # BP2
        dot(x.T, d[1], out=grads[0])  # BP4 of the first layer, no BP2 into the input

    def epoch(rows=None, dot=np.dot):
        n = X.shape[0] if rows is None else rows
        for start in range(0, n, bs):
            batch(X[start : min(start + bs, n)], dot)

    flops = [0]

    def count(A, B, out):
        """Add the FLOPs of ``A @ B`` instead of computing it (checking the shapes)."""
        if A.shape[1] != B.shape[0] or out.shape != (A.shape[0], B.shape[1]):
            raise ValueError(f"{A.shape} @ {B.shape} into {out.shape}")
        flops[0] += 2 * A.shape[0] * A.shape[1] * B.shape[1]

    epoch(dot=count)
    return (lambda rows=None: epoch(rows)), {"products_flops": flops[0], "blas": "numpy.dot"}


EPOCH_BUILDERS = {"fastmlp": fastmlp_epoch, "sklearn": sklearn_epoch, "torch": torch_epoch}


# ---------------------------------------------------------------------------------------------
# predict_proba, per implementation: ``predictor(...)`` returns ``predict()``
# ---------------------------------------------------------------------------------------------
def predictor(impl, layer_sizes, dtype, X, y):
    """A ``predict()`` computing class probabilities for ``X`` (random weights)."""
    if impl == "fastmlp":
        model = fastmlp_model(layer_sizes, dtype)
        return lambda: model.predict_proba(X)
    if impl == "sklearn":
        workload = Workload("fashion", tuple(layer_sizes[1:-1]), 200, dtype, "sgd")
        clf = sklearn_classifier(workload)
        with sklearn_threads():
            clf.partial_fit(X[:200], y[:200], classes=np.arange(layer_sizes[-1]))

        def predict():
            with sklearn_threads():
                return clf.predict_proba(X)

        return predict
    torch = require_torch()
    net = torch_network(torch, layer_sizes, dtype)
    Xt = torch.from_numpy(X)

    def predict():
        with torch.inference_mode():
            return torch.softmax(net(Xt), dim=1).numpy()

    return predict


def proba_summary(proba):
    """``(shape, largest |row sum - 1|)``: what a worker sends back instead of the array."""
    return tuple(proba.shape), float(np.abs(proba.sum(axis=1, dtype=np.float64) - 1).max())


# ---------------------------------------------------------------------------------------------
# Worker processes for scikit-learn and PyTorch
# ---------------------------------------------------------------------------------------------
class Worker:
    """A spawned child process that builds and runs one implementation's benchmark bodies.

    Spawned (not forked), so it inherits no thread pool of this process. ``train`` and
    ``predict`` build the body in the child (the data is loaded there, by name, with the same
    loaders), as does ``build`` with a builder of another module (:func:`remote_build`);
    ``run`` calls it and returns its small result.
    """

    def __init__(self, name):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, name), name=f"bench-{name}",
                                daemon=True)
        self.proc.start()
        child.close()

    def call(self, *message):
        self.conn.send(message)
        ok, value = self.conn.recv()
        if ok:
            return value
        kind, text = value
        if kind == "skip":
            pytest.skip(text)
        raise RuntimeError(f"benchmark worker {self.proc.name}: {text}")

    def close(self):
        if self.proc.is_alive():
            try:
                self.conn.send(("exit",))
            except OSError:
                pass
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


_WORKERS = {}


def worker(impl):
    """The session's worker process for ``impl`` ("sklearn" or "torch"), started if needed."""
    w = _WORKERS.get(impl)
    if w is None or not w.proc.is_alive():
        w = _WORKERS[impl] = Worker(impl)
    return w


@atexit.register
def close_workers():
    while _WORKERS:
        _WORKERS.popitem()[1].close()


def _worker_main(conn, impl):
    # The environment came from the benchmark process, where importing fastmlp set
    # GOMP_SPINCOUNT. Put the originals back before any OpenMP runtime loads here, and load
    # PyTorch's (it reads them once, when loaded) before the data loaders import fastmlp:
    # PyTorch is measured with its own defaults (passive waiting made it 3-4x slower).
    for name, value in ORIGINAL_OMP_ENV.items():
        if value == "<unset>":
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if impl == "torch":
        _torch()
    body = None
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        command = message[0]
        if command == "exit":
            return
        try:
            if command == "train":
                _, impl, workload = message
                X, y = dataset(workload.data, workload.dtype)
                body, info = EPOCH_BUILDERS[impl](workload, X, y)
                result = (info, X.shape[0])
            elif command == "predict":
                _, impl, layer_sizes, dtype = message
                X, y = dataset("fashion-test", dtype)
                predict = predictor(impl, layer_sizes, dtype, X, y)
                body = lambda predict=predict: proba_summary(predict())  # noqa: E731
                result = None
            elif command == "build":  # ("build", "module:function", kwargs), see remote_build
                _, target, kwargs = message
                module, name = target.split(":")
                body, result = getattr(importlib.import_module(module), name)(**kwargs)
            elif command == "run":
                result = body(**message[1])
            else:
                raise ValueError(f"unknown command {command!r}")
        except pytest.skip.Exception as exc:
            conn.send((False, ("skip", str(exc.msg))))
            continue
        except BaseException as exc:  # report it in the test that asked
            conn.send((False, ("error", f"{type(exc).__name__}: {exc}")))
            continue
        conn.send((True, result))


def remote_epoch(impl, workload):
    """``(epoch, info, n_rows)`` for ``impl``'s epoch, run in its worker process."""
    if impl == "torch":
        skip_without_torch()
    w = worker(impl)
    info, n_rows = w.call("train", impl, workload)
    return (lambda rows=None: w.call("run", {"rows": rows})), info, n_rows


def remote_predictor(impl, layer_sizes, dtype):
    """``predict()`` for ``impl`` in its worker process; returns :func:`proba_summary`."""
    if impl == "torch":
        skip_without_torch()
    w = worker(impl)
    w.call("predict", impl, tuple(layer_sizes), dtype)
    return lambda: w.call("run", {})


def remote_build(impl, target, **kwargs):
    """``(body, info)`` from the builder ``target`` ("module:function", e.g.
    ``"_calls:build_fit"``) called as ``target(impl, **kwargs)`` in ``impl``'s worker process;
    the builder returns ``(body, info)`` there, and ``body(**kw)`` here runs it there."""
    if impl == "torch":
        skip_without_torch()
    w = worker(impl)
    info = w.call("build", target, {"impl": impl, **kwargs})
    return (lambda **kw: w.call("run", kw)), info


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
_shipped_cache = {}


def shipped_kernels(folder):
    """The shipped kernels rows load: ``(FASTMLP_SHIPPED_DIR or None, their BUILD.json)``.

    The installed package's own (None) when it ships every kernel (a release wheel, as CI
    installs); else a folder under ``folder`` that ``python -m fastmlp.precompile ship
    --kernels all`` fills once per session (2.5 minutes on 2 cores). Skips where this host
    cannot run the shipped code.
    """
    if "state" not in _shipped_cache:
        from fastmlp._kernels import _jit

        installed = _jit.shipped_state(folder=_jit.PACKAGE_SHIPPED_DIR, environ={})
        if installed.usable and installed.info.get("kernels") == "all":
            _shipped_cache["state"] = (None, installed.info)
        elif _jit.missing_cpu_features():
            _shipped_cache["state"] = f"this host cannot run {_jit.PORTABLE_CPU} code"
        else:
            into = os.path.join(str(folder), "_shipped_kernels")
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("FASTMLP_", "NUMBA_CACHE"))}
            subprocess.run([sys.executable, "-m", "fastmlp.precompile", "ship", into,
                            "--kernels", "all"], env=env, capture_output=True, text=True,
                           timeout=1800, check=True)
            with open(os.path.join(into, _jit.BUILD_INFO), encoding="utf-8") as file:
                _shipped_cache["state"] = (into, json.load(file))
    if isinstance(_shipped_cache["state"], str):
        pytest.skip(_shipped_cache["state"])
    return _shipped_cache["state"]


def time_epochs(benchmark, epoch, n_rows, batch_size):
    """Time whole epochs of ``epoch`` with ``benchmark.pedantic``, after a warm-up.

    The warm-up trains twice over the first ``16 * batch_size`` rows: the first call compiles
    and initialises, the second estimates the epoch's time, from which the number of rounds is
    chosen (``ROUND_BUDGET_S``, at most ``ROUNDS``, at least 1; up to ``FAST_MAX_ROUNDS`` for
    epochs under ``FAST_EPOCH_S``). With ``--benchmark-disable``
    the body runs once, on ``SMOKE_ROWS`` rows.

    Returns the estimated seconds per epoch (None when disabled).
    """
    if benchmark.disabled:
        rows = n_rows if SMOKE_ROWS <= 0 else min(n_rows, SMOKE_ROWS)
        benchmark.pedantic(epoch, kwargs={"rows": rows}, rounds=1, iterations=1)
        return None
    warm_rows = min(n_rows, 16 * batch_size)
    epoch(rows=warm_rows)  # compile (fastmlp), allocate, initialise the weights (sklearn)
    start = time.perf_counter()
    epoch(rows=warm_rows)
    estimate = (time.perf_counter() - start) * n_rows / warm_rows
    benchmark.pedantic(epoch, rounds=budget_rounds(estimate), iterations=1, warmup_rounds=0)
    return estimate


def budget_rounds(estimate):
    """Timed rounds for a body estimated to take ``estimate`` seconds: as many as fit in
    ``ROUND_BUDGET_S`` (at most ``ROUNDS``, at least 1), or up to ``FAST_MAX_ROUNDS`` (about a
    second of them) under ``FAST_EPOCH_S``."""
    if estimate < FAST_EPOCH_S:  # cheap rows get more rounds: their min is then less noisy
        return min(FAST_MAX_ROUNDS, max(ROUNDS, math.ceil(1.0 / max(estimate, 1e-9))))
    return max(1, min(ROUNDS, math.ceil(ROUND_BUDGET_S / estimate)))


def smoke_rows(benchmark):
    """Rows a fit behind a row uses under ``--benchmark-disable`` (None: all)."""
    return SMOKE_ROWS if benchmark.disabled and SMOKE_ROWS > 0 else None


def time_fixed_call(benchmark, body):
    """Time a fixed call: two warm-up calls (compile; estimate), then ``budget_rounds``.

    Once, without warm-up, under ``--benchmark-disable``. Returns the last call's result.
    """
    if benchmark.disabled:
        return benchmark.pedantic(body, rounds=1, iterations=1)
    body()
    start = time.perf_counter()
    body()
    estimate = time.perf_counter() - start
    benchmark.extra_info["estimated_s"] = estimate
    return benchmark.pedantic(body, rounds=budget_rounds(estimate), iterations=1,
                              warmup_rounds=0)


_FASHION_NPY = {}  # (dtype, rows) -> (X path, y path), once per session


def fashion_npy(tmp_path_factory, dtype, rows):
    """The Fashion-MNIST training set (its first ``rows`` rows; None: all) as ``.npy`` files,
    for child processes to load; returns ``(X path, y path)``."""
    key = (dtype, rows)
    if key not in _FASHION_NPY:
        X, y = dataset("fashion", dtype)
        folder = tmp_path_factory.mktemp(f"fashion-{dtype}")
        paths = (str(folder / "X.npy"), str(folder / "y.npy"))
        np.save(paths[0], X[:rows])
        np.save(paths[1], np.asarray(y[:rows], dtype=np.int64))
        _FASHION_NPY[key] = paths
    return _FASHION_NPY[key]


def time_calls(benchmark, fn, *, rounds=None, warmup_rounds=1, iterations=1, **kwargs):
    """``benchmark.pedantic`` with a warm-up; once (no warm-up) when benchmarks are disabled."""
    if benchmark.disabled:
        return benchmark.pedantic(fn, rounds=1, iterations=1, **kwargs)
    return benchmark.pedantic(fn, rounds=ROUNDS if rounds is None else rounds,
                              warmup_rounds=warmup_rounds, iterations=iterations, **kwargs)
