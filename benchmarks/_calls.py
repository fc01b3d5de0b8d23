"""Whole calls, as users run them: the bodies behind ``bench_calls.py``.

Each builder returns ``(body, info)``: ``body(...)`` makes the whole call (a fresh
estimator's ``fit``, six ``partial_fit`` calls, ``predict_proba`` of a fitted model) and
returns a small summary; ``info`` goes to ``benchmark.extra_info``. The same builders run in
the benchmark process (fastmlp) and in the scikit-learn / PyTorch worker processes of
``_benchlib`` (the worker's ``build`` command imports this module by name).

Run as a script (``python _calls.py memory '<json>'``) it is the fresh process of a
peak-memory row: it loads the data from ``.npy`` files, warms up, fits once and prints its
measurements as JSON (see :func:`memory_main`).

This module imports only NumPy at the top, so that the memory child starts small; the
libraries are imported where they are used.
"""

import gc
import json
import os
import resource
import sys
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np

#: scikit-learn's ``alpha`` default: the L2 penalty, ``0.5 * alpha * ||W||^2 / n_batch``.
ALPHA = 1e-4
#: What each library is called in the tables.
LIBRARIES = ("fastmlp", "sklearn", "torch")


@dataclass(frozen=True)
class FitCall:
    """``MLPClassifier(hidden_layer_sizes=hidden, solver=solver, batch_size=batch_size,
    max_iter=max_iter, random_state=0).fit(X, y)`` on ``data`` in ``dtype``; every other
    parameter is the default (relu, alpha 1e-4, learning rate 1e-3, momentum 0.9 with
    Nesterov for SGD, tol 1e-4 over 10 epochs: never reached in ``max_iter`` epochs)."""

    data: str  # "digits" or "fashion" (the names of _benchlib.dataset)
    dtype: str
    hidden: tuple
    solver: str
    batch_size: object  # int or "auto"
    max_iter: int

    def params(self):
        return dict(hidden_layer_sizes=self.hidden, solver=self.solver,
                    batch_size=self.batch_size, max_iter=self.max_iter, random_state=0)

    def batch(self, n_rows):
        """The batch size the fit uses on ``n_rows`` rows (scikit-learn's rule)."""
        size = 200 if self.batch_size == "auto" else self.batch_size
        return min(size, n_rows)

    def __str__(self):
        net = "x".join(map(str, self.hidden))
        if self.solver == "lbfgs":
            how = f"{self.max_iter} iter"
        else:
            auto = "(auto)" if self.batch_size == "auto" else ""
            how = f"b{self.batch(10**9)}{auto} {self.max_iter} epochs"
        return f"fit {self.data} h{net} {self.solver} {how} {self.dtype}"


_ADAM = FitCall("fashion", "float32", (100,), "adam", "auto", 3)
#: The timed whole fits (``test_fit``).
FIT_CALLS = {
    "fashion-adam": _ADAM,
    "fashion-sgd": FitCall("fashion", "float32", (100,), "sgd", 32, 2),
    "fashion-lbfgs": FitCall("fashion", "float32", (100,), "lbfgs", "auto", 20),
    # overhead-bound: 1797 rows of 64 pixels, 57 batches an epoch
    "digits-sgd": FitCall("digits", "float64", (32,), "sgd", 32, 50),
}
#: The fits whose peak memory is measured (``test_fit_peak_memory``), each in a fresh process.
MEMORY_CALLS = {
    "fashion-lbfgs": FIT_CALLS["fashion-lbfgs"],
    "fashion-lbfgs-f64": replace(FIT_CALLS["fashion-lbfgs"], dtype="float64"),
    "fashion-adam": _ADAM,
}
#: The models ``predict_proba`` is timed on (fitted before the timing): the digits fit, and
#: one Adam epoch on Fashion-MNIST (the prediction's speed does not depend on the weights).
PREDICT_MODELS = {
    "digits": FIT_CALLS["digits-sgd"],
    "fashion": replace(_ADAM, max_iter=1),
}
#: partial_fit: digits, hidden (32,), the default solver (Adam, batch "auto" = 200), six calls
#: on consecutive chunks of 300 rows (the last has 297), the first with ``classes``.
PARTIAL_FIT = replace(FIT_CALLS["digits-sgd"], solver="adam", batch_size="auto", max_iter=1)
PARTIAL_CHUNKS = 6
PARTIAL_CHUNK_ROWS = 300

#: Why PyTorch has no row, per call: it has only the training loop, not these calls.
TORCH_NO_EQUIVALENT = {
    "lbfgs": ("PyTorch has no equivalent of this fit: torch.optim.LBFGS is not scipy's "
              "L-BFGS-B (history size, line search and stopping rule differ), so its time "
              "would not be the same work"),
    "partial_fit": ("PyTorch has no partial_fit: a hand loop over chunks is the training loop "
                    "the whole-fit rows already time"),
}


def partial_fit_label():
    return (f"partial_fit digits h{PARTIAL_FIT.hidden[0]} adam b200(auto) "
            f"{PARTIAL_CHUNKS} x {PARTIAL_CHUNK_ROWS} rows {PARTIAL_FIT.dtype}")


def predict_label(model, n_rows):
    net = "x".join(map(str, PREDICT_MODELS[model].hidden))
    rows = "1 row" if n_rows == 1 else f"{n_rows} rows"
    return f"predict_proba {rows} {model} h{net} {PREDICT_MODELS[model].dtype}"


# ---------------------------------------------------------------------------------------------
# Fitting, per library
# ---------------------------------------------------------------------------------------------
class quiet:
    """Context: ConvergenceWarning silenced (a few epochs never converge; not what is timed)."""

    def __enter__(self):
        from sklearn.exceptions import ConvergenceWarning

        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore", ConvergenceWarning)
        return self

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)


def set_threads(impl, threads):
    """Give ``impl`` ``threads`` threads for the rest of the process (a worker or a memory
    child runs that one library only): scikit-learn's BLAS (``threadpoolctl``), PyTorch's
    ``set_num_threads``; fastmlp uses numba's threads as they are."""
    if impl == "sklearn":
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads, user_api="blas")
    elif impl == "torch":
        import torch

        torch.set_num_threads(threads)


def estimator(impl, call, name="MLPClassifier"):
    """A fresh (unfitted) estimator ``name`` (``MLPClassifier`` or ``MLPRegressor``) of
    ``impl`` with ``call``'s parameters."""
    if impl == "fastmlp":
        import fastmlp as library
    elif impl == "sklearn":
        import sklearn.neural_network as library
    else:
        raise ValueError(f"{impl} has no {name}")
    return getattr(library, name)(**call.params())


def fit_estimator(impl, call, X, y, name="MLPClassifier", torch_loop=None):
    """Fit a fresh estimator ``name`` (or, for ``"torch"``, run ``torch_loop``, by default
    :func:`torch_fit`); return it."""
    if impl == "torch":
        return (torch_loop or torch_fit)(call, X, y)
    est = estimator(impl, call, name)
    with quiet():
        est.fit(X, y)
    return est


def fit_summary(impl, fitted):
    if impl == "torch":
        return {"n_iter": fitted.n_iter_, "loss": fitted.loss_}
    return {"n_iter": int(fitted.n_iter_), "loss": float(fitted.loss_)}


class TorchFit:
    """What :func:`torch_fit` returns: the network, ``n_iter_`` and ``loss_``."""

    def __init__(self, net, n_iter, loss):
        self.net, self.n_iter_, self.loss_ = net, n_iter, loss


def torch_fit(call, X, y):
    """The PyTorch loop doing what ``MLPClassifier.fit`` does for SGD and Adam.

    ``nn.Sequential(Linear, ReLU, ..., Linear)`` in the data's dtype; ``CrossEntropyLoss``
    (softmax + log loss); per epoch one ``torch.randperm`` and a pass over it in index batches
    of ``call.batch`` rows; scikit-learn's defaults: Adam(lr 1e-3, betas (0.9, 0.999),
    eps 1e-8) or SGD(lr 1e-3, momentum 0.9, Nesterov), and its L2 penalty on the weights (not
    the biases), whose gradient ``alpha * W / n_batch`` is ``weight_decay = alpha / batch``.
    Like ``fit``, it reports the mean loss of the last epoch. The initial weights are
    PyTorch's own (the speed does not depend on them); there is no convergence check (``tol``
    is never reached in these few epochs anyway).
    """
    import torch

    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return torch_train(call, X, yt, 10, torch.nn.CrossEntropyLoss())


def torch_train(call, X, yt, n_out, cost):
    """Train ``nn.Sequential(Linear, ReLU, ..., Linear)`` with ``n_out`` outputs on ``(X, yt)``
    for ``call.max_iter`` epochs as :func:`torch_fit` describes, under ``cost(out, yt_batch)``;
    return a :class:`TorchFit`."""
    import _benchlib as bl
    import torch

    if call.solver not in ("sgd", "adam"):
        raise ValueError(f"no PyTorch loop for solver {call.solver!r}")
    torch.manual_seed(0)
    dtype = getattr(torch, str(X.dtype))
    n, n_in = X.shape
    sizes = (n_in, *call.hidden, n_out)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).to(dtype)
    bs = call.batch(n)
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in net.named_parameters() if name.endswith("bias")]
    groups = [{"params": weights, "weight_decay": ALPHA / bs}, {"params": biases}]
    if call.solver == "adam":
        opt = torch.optim.Adam(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(groups, lr=1e-3, momentum=0.9, nesterov=True)
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    gen = torch.Generator().manual_seed(0)
    loss = float("nan")
    for _ in range(call.max_iter):
        loss = bl.torch_train_epoch(torch, net, opt, cost, Xt, yt, n, bs, gen)
    return TorchFit(net, call.max_iter, loss)


def predict_proba(impl, fitted, X):
    """Class probabilities of ``X`` from a fitted estimator (or :class:`TorchFit`)."""
    if impl != "torch":
        return fitted.predict_proba(X)
    import torch

    with torch.inference_mode():
        return torch.softmax(fitted.net(torch.from_numpy(X)), dim=1).numpy()


# ---------------------------------------------------------------------------------------------
# Builders (run in the benchmark process or in a worker; the data comes from _benchlib)
# ---------------------------------------------------------------------------------------------
def prepare(impl):
    """Skip (in the asking test) when PyTorch is missing; the library's threads (N_THREADS)."""
    import _benchlib as bl

    if impl == "torch":
        bl.require_torch()  # also sets its threads
    elif impl == "sklearn":
        set_threads(impl, bl.N_THREADS)


def build_fit(impl, name):
    """``(fit(rows=None), info)``: a whole ``fit`` of ``FIT_CALLS[name]`` on the first ``rows``
    rows (all by default), from a fresh estimator each call."""
    import _benchlib as bl

    call = FIT_CALLS[name]
    if impl == "torch" and call.solver == "lbfgs":
        import pytest

        pytest.skip(TORCH_NO_EQUIVALENT["lbfgs"])
    prepare(impl)
    X, y = bl.dataset(call.data, call.dtype)

    def fit(rows=None):
        n = X.shape[0] if rows is None else rows
        return fit_summary(impl, fit_estimator(impl, call, X[:n], y[:n]))

    return fit, {"n_rows": X.shape[0], **versions(impl)}


def build_partial_fit(impl):
    """``(run(rows=None), info)``: a fresh estimator, then ``PARTIAL_CHUNKS`` ``partial_fit``
    calls on consecutive chunks of digits (``rows`` is ignored: the chunks are the call)."""
    import _benchlib as bl

    if impl == "torch":
        import pytest

        pytest.skip(TORCH_NO_EQUIVALENT["partial_fit"])
    prepare(impl)
    X, y = bl.dataset(PARTIAL_FIT.data, PARTIAL_FIT.dtype)
    chunks = [(X[i * PARTIAL_CHUNK_ROWS : (i + 1) * PARTIAL_CHUNK_ROWS],
               y[i * PARTIAL_CHUNK_ROWS : (i + 1) * PARTIAL_CHUNK_ROWS])
              for i in range(PARTIAL_CHUNKS)]
    classes = np.arange(10)

    def run(rows=None):
        clf = estimator(impl, PARTIAL_FIT)
        with quiet():
            for i, (Xc, yc) in enumerate(chunks):
                if i == 0:
                    clf.partial_fit(Xc, yc, classes=classes)
                else:
                    clf.partial_fit(Xc, yc)
        return {"samples_seen": int(clf.t_), "loss": float(clf.loss_)}

    return run, {"n_rows": sum(len(c[0]) for c in chunks), **versions(impl)}


def build_predict(impl, model, n_rows, calls, fit_rows=None):
    """``(predict(), info)``: ``calls`` times ``predict_proba`` on ``n_rows`` rows.

    The model (``PREDICT_MODELS[model]``, fitted on its first ``fit_rows`` training rows, all
    by default) is built here, outside the timed call. The rows are the first of the digits
    (``"digits"``) or of the Fashion-MNIST test set (``"fashion"``). Returns
    ``_benchlib.proba_summary`` of the last call's probabilities.
    """
    import _benchlib as bl

    call = PREDICT_MODELS[model]
    prepare(impl)
    X_train, y_train = bl.dataset(call.data, call.dtype)
    n = X_train.shape[0] if fit_rows is None else min(fit_rows, X_train.shape[0])
    fitted = fit_estimator(impl, call, X_train[:n], y_train[:n])
    test = "digits" if model == "digits" else "fashion-test"
    X = np.ascontiguousarray(bl.dataset(test, call.dtype)[0][:n_rows])

    def predict():
        with quiet():
            for _ in range(calls):
                proba = predict_proba(impl, fitted, X)
        return bl.proba_summary(proba)

    return predict, {"n_rows": X.shape[0], **versions(impl)}


def versions(impl):
    if impl == "sklearn":
        import sklearn

        return {"sklearn_version": sklearn.__version__}
    if impl == "torch":
        import torch

        return {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}
    import fastmlp

    return {"fastmlp_version": getattr(fastmlp, "__version__", "?")}


# ---------------------------------------------------------------------------------------------
# Peak memory of a fit, in a fresh process
# ---------------------------------------------------------------------------------------------
def _status_kib(field):
    """``VmRSS`` / ``VmHWM`` of this process in KiB (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak():
    """Reset this process's peak RSS (``VmHWM``) to its current RSS; False where impossible.

    Linux (4.0+): writing 5 to ``/proc/self/clear_refs``. ``getrusage``'s ``ru_maxrss`` cannot
    be reset, and in a process started by ``subprocess`` it starts at the *parent's* peak
    (the kernel carries the old address space's high-water mark over ``exec``), so it is
    reported but not used when the reset works.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _maxrss_kib():
    scale = 1024 if sys.platform == "darwin" else 1  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // scale


def memory_main(spec):
    """The fresh process of a peak-memory row; ``spec``: ``impl``, ``name`` (a key of
    ``MEMORY_CALLS``), ``X`` and ``y`` (``.npy`` paths), ``threads``.

    1. import the library, load the data (``np.load``: no transient copy);
    2. warm up: fit the same call on the first 1024 rows for 2 iterations (fastmlp compiles,
       or loads from numba's cache, the kernels the fit uses; every library allocates its
       thread pools), then ``gc.collect()``;
    3. reset the peak, read the RSS (``rss_after_load``: libraries + data + warm-up leftovers);
    4. the fit, timed;
    5. ``peak_rss_mib`` = peak RSS during the fit - ``rss_after_load``: the memory the fit
       itself needs on top of the data.
    """
    impl, call = spec["impl"], MEMORY_CALLS[spec["name"]]
    if impl == "torch":
        import torch  # noqa: F401  (loaded before anything else brings an OpenMP runtime in)
    elif impl == "fastmlp":
        import fastmlp  # noqa: F401
    else:
        import sklearn.neural_network  # noqa: F401
    set_threads(impl, spec["threads"])
    X, y = np.load(spec["X"]), np.load(spec["y"])
    warm = min(1024, X.shape[0])
    fit_estimator(impl, replace(call, max_iter=2), X[:warm], y[:warm])
    gc.collect()
    exact = _reset_peak()
    baseline_kib = _status_kib("VmRSS") if exact else _maxrss_kib()
    start = time.perf_counter()
    fitted = fit_estimator(impl, call, X, y)
    fit_s = time.perf_counter() - start
    peak_kib = _status_kib("VmHWM") if exact else _maxrss_kib()
    out = {
        "peak_rss_mib": (peak_kib - baseline_kib) / 1024,
        "rss_after_load_mib": baseline_kib / 1024,
        "ru_maxrss_mib": _maxrss_kib() / 1024,
        "peak_source": "VmHWM after reset" if exact else "ru_maxrss",
        "data_mib": X.nbytes / 2**20,
        "fit_s": fit_s,
        "n_rows": int(X.shape[0]),
        **fit_summary(impl, fitted),
    }
    print(json.dumps(out))


def memory_env():
    """The child's environment: fastmlp importable as here, OpenMP settings as found."""
    import _benchlib as bl

    import fastmlp

    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    for name, value in bl.ORIGINAL_OMP_ENV.items():
        if value == "<unset>":
            env.pop(name, None)
        else:
            env[name] = value
    env.pop("NUMBA_DISABLE_JIT", None)
    return env


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "memory":
        sys.exit("usage: python _calls.py memory '<json spec>'")
    memory_main(json.loads(sys.argv[2]))
