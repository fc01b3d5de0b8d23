"""One L-BFGS fit on a Dask cluster, and fits that run inside Dask workers (issue 12).

``MLPClassifier(solver="lbfgs").fit(X, y)`` and ``MLPRegressor(solver="lbfgs").fit(X, y)``
with ``X`` a dask array, while a ``distributed`` client is active, train as Spark MLlib's
``MultilayerPerceptronClassifier`` does: ``X`` stays in its blocks on the workers that hold
them, and each loss-and-gradient L-BFGS asks for is a map over the blocks (fastmlp's compiled
kernel on each block, on its worker) followed by a sum. Only the parameter vector (out) and
the gradients (back) travel; ``y`` (labels or targets, small) is brought to memory, validated
and encoded by the estimator's own ``_validate_input``, and its rows sent once with their block.

The numbers are the in-memory fit's: each block computes the summed cost of its rows and
their gradient scaled by ``1 / n`` (``n`` all the rows), the arithmetic of the in-memory
kernel's row chunks; the blocks' sums are added in block order (a fixed tree, whichever worker
computes what, so a rerun or a rescheduled block gives the same sum), and the L2 term and the
mean are taken on the client by the in-memory path's own kernel. Only the order of the sums
over rows differs: each loss and gradient equals the in-memory one to rounding (1e-14
relative), and a whole fit to about 1e-10 in float64, the spread L-BFGS shows in memory
too when the rows are summed in two lanes instead of one. With ``sample_weight`` the blocks
compute the weighted cost and gradient (``sum_i w_i C_i / sum_i w_i``) as the in-memory
weighted kernel does, chunk by chunk.

A block's evaluation is one task, the serial kernel on one thread: a worker evaluates as many
blocks at once as it has threads. So ``X`` wants at least as many row blocks as the cluster
has threads, and blocks big enough (megabytes) that the cost of a task (a few milliseconds)
stays small next to its kernel.

Faults: a block's rows that are not finite stop the fit before it starts, with the block's
row range in the error. A worker that dies mid-fit loses its blocks and its part of the
current evaluation; Dask recomputes them from the array's graph on the workers left, and the
fit goes on with the same numbers. Ctrl-C keeps the last complete L-BFGS iteration (with a
warning, as Ctrl-C during an in-memory 'sgd' or 'adam' fit keeps the epochs done).

Without a client (or on a Dask worker, where blocking on other tasks could deadlock), a dask
array takes the in-memory path as before (scikit-learn's validation computes it). Dask is
imported only when a dask array arrives: the core install does not need it.

A fit that runs *inside* a Dask task (``joblib.parallel_backend("dask")``, a
``GridSearchCV(n_jobs=-1)`` on a cluster) holds Numba's threads to its share of the worker's
``nthreads`` (:func:`worker_threads`), so that a worker's tasks do not oversubscribe its cores.
"""

import contextlib
import sys
import time
import warnings

import numba
import numpy as np
import scipy.optimize

from fastmlp import _threads
from fastmlp._engine import LOSS_CHUNK, blas_single_threaded, every_blas_single_threaded
from fastmlp._kernels import train as _train
from fastmlp._kernels import weighted as _weighted
from fastmlp._kernels.checks import all_finite
from fastmlp._kernels.layout import activation_layout
from fastmlp._kernels.optim import add_l2
from fastmlp.sklearn._inputs import compute_dtype, stand_in

#: Block results summed by one task of the reduction tree (the last level is summed on the
#: client): few enough that a sum starts soon, many enough that the tree stays shallow.
FAN_IN = 8
#: ``theta`` goes inside every block's task while the copies total at most this many bytes,
#: else once, as a task of its own that the workers fetch it from.
INLINE_BYTES = 1 << 20

_NO_HOLD = contextlib.nullcontext()
_RECORDERS = []  # lists that timings() handed out: each evaluation's timings go to all


def is_dask_array(X):
    """Return True when ``X`` is a dask array (checked without importing dask)."""
    return type(X).__module__.startswith("dask.array") and hasattr(X, "to_delayed")


def worker_threads():
    """Return a context holding Numba's threads to this task's share of its Dask worker.

    Off a Dask worker (the usual case) it is a no-op context, found in well under a
    microsecond. In a task, the share is the worker's ``nthreads`` divided among the tasks it
    runs now (at least 1), when that is below this thread's Numba count: a worker started with
    ``nthreads=1`` per process then trains on one thread, as Dask expects of its tasks, where
    Numba would run its whole pool (every core) in every worker. Numba's count is per Python
    thread and is put back after; the engine's thread governor stands aside meanwhile.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return _NO_HOLD
    try:
        state = distributed.get_worker().state
    except (ValueError, AttributeError):  # not in a task on a worker
        return _NO_HOLD
    share = max(1, state.nthreads // max(1, state.executing_count))
    if share >= numba.get_num_threads():
        return _NO_HOLD
    return _threads.running_on(share)


@contextlib.contextmanager
def timings():
    """Collect the timings of each distributed loss-and-gradient evaluated inside (benchmarks).

    Yields a list that gets, per evaluation, a dict: ``wall_s`` (the client's wait, from
    submitting ``theta`` to the summed gradient), ``kernel_s`` (worker address -> seconds in
    the compiled kernel, summed over that worker's blocks) and ``blocks``.
    """
    records = []
    _RECORDERS.append(records)
    try:
        yield records
    finally:
        _RECORDERS.remove(records)


def _client():
    """Return the active ``distributed`` client, or None (none, or on a worker)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:  # never imported: there is no client (and no import to pay for)
        return None
    try:
        distributed.get_worker()
        return None  # a task waiting on other tasks could hold the threads they need
    except ValueError:
        pass
    try:
        return distributed.default_client()
    except ValueError:
        return None


def _in_memory(a):
    """Return a dask collection computed (``y``, ``sample_weight``: small), else ``a``."""
    if type(a).__module__.startswith("dask") and hasattr(a, "compute"):
        return a.compute()
    return a


def prepare(X, y, sample_weight):
    """Set up a distributed fit on the dask array ``X``, when a client is active.

    Returns ``(blocks, X, y, sample_weight)``: with a client, ``blocks`` (:class:`Blocks`:
    ``X``'s checked blocks on the workers), ``X`` a stand-in with its shape and dtype for the
    estimator's validation, and ``y`` and ``sample_weight`` in memory; without one,
    ``(None, X, y, sample_weight)`` unchanged (the in-memory path).
    """
    client = _client()
    if client is None:
        return None, X, y, sample_weight
    blocks = Blocks(client, X)
    return blocks, blocks.stand_in(), _in_memory(y), _in_memory(sample_weight)


class Blocks:
    """The blocks of a dask array ``X`` on the workers, each checked there.

    ``X`` is rechunked to a single chunk across the columns (the row chunks are kept: a block
    is one worker thread's work), and every block is cast to the dtype the fit computes in
    (float32 or float64 as given, anything else float64, as the in-memory validation casts)
    and checked on its worker: 2-D, numbers, finite. Only each block's shape and verdict come
    back. The first bad block in row order raises, naming its rows.

    Parameters
    ----------
    client : distributed.Client
    X : dask.array.Array
    """

    def __init__(self, client, X):
        import dask

        if X.ndim != 2:
            raise ValueError(f"Expected a 2-D dask array X, got {X.ndim}-D (shape {X.shape}).")
        if X.dtype.kind == "c":
            raise ValueError("Complex data not supported")
        if X.numblocks[1] > 1:
            X = X.rechunk({1: -1})
        self.client = client
        self.dtype = compute_dtype(X.dtype)
        check = dask.delayed(_check_block, pure=False)
        self.checked = client.compute([check(d, self.dtype.str) for d in X.to_delayed().ravel()])
        reports = client.gather(client.map(_report, self.checked, pure=False))
        self.rows = [r[0] for r in reports]
        self.starts = np.concatenate([[0], np.cumsum(self.rows)]).astype(int).tolist()
        self.n_features = reports[0][1] if reports else X.shape[1]
        for i, (rows, _, problem) in enumerate(reports):
            if problem is not None:
                start = self.starts[i]
                raise ValueError(f"Input X contains {problem} in its block {i}, rows "
                                 f"{start}..{start + rows - 1} (a dask array block).")

    @property
    def n_samples(self):
        """Rows of ``X``."""
        return self.starts[-1]

    def stand_in(self):
        """Return an ``(n_samples, n_features)`` array of ``X``'s dtype holding no data."""
        return stand_in((self.n_samples, self.n_features), self.dtype)

    def with_targets(self, Y, sample_weight, w_sum, net, clip_eps):
        """Return futures of the non-empty blocks joined with their targets and the network.

        Each block's rows of ``Y`` (and of the weights) travel once, inside the task that
        joins them with the block, so a block lost with its worker is rebuilt whole.
        """
        spec = _Spec(net, clip_eps, net.dtype.type(1.0 / self.n_samples), w_sum)
        futures = []
        for i, rows in enumerate(self.rows):
            if rows == 0:
                continue
            a, b = self.starts[i], self.starts[i + 1]
            sw = None if sample_weight is None else sample_weight[a:b]
            futures.append(self.client.submit(_Block, self.checked[i], Y[a:b], sw, spec,
                                              pure=False))
        # the blocks hold the checked rows now; the checked results are let go (Dask keeps
        # how to make them again, should a worker die) so that the rows are counted once in
        # the workers' memory
        self.checked = None
        return futures


def _check_block(x, dtype):
    """On a worker: ``(block, rows, columns, problem)``, the block in ``dtype``, C-contiguous.

    ``problem`` is None or what is wrong (NaN, infinity, not 2-D, not numbers, sparse); the
    block is then None.
    """
    if hasattr(x, "tocsr") and not isinstance(x, np.ndarray):
        return None, x.shape[0], x.shape[1], "sparse rows (not supported: use dense blocks)"
    try:
        x = np.ascontiguousarray(x, dtype=np.dtype(dtype))
    except (TypeError, ValueError) as exc:
        rows = np.shape(x)[0] if np.ndim(x) else 0
        return None, rows, 0, f"values that are not numbers ({exc})"
    if x.ndim != 2:
        return None, x.shape[0] if x.ndim else 0, 0, f"a {x.ndim}-D block"
    if not all_finite(x):
        return None, x.shape[0], x.shape[1], "NaN" if np.isnan(x).any() else "infinity"
    return x, x.shape[0], x.shape[1], None


def _report(checked):
    """On a worker: what the client needs of a checked block (no data)."""
    return checked[1:]


class _Spec:
    """What every block's kernel call needs besides its rows and ``theta`` (sent once)."""

    def __init__(self, net, clip_eps, scale, w_sum):
        self.sizes, self.w_off, self.b_off = net.sizes, net.w_off, net.b_off
        self.hidden_act, self.out_act = net.hidden_act, net.out_act
        self.n_params = net.n_params
        self.clip_eps = float(clip_eps)
        self.scale = scale  # 1 / n in the dtype, as the in-memory kernel scales each row
        self.w_sum = w_sum  # the weights' total (None: unweighted)


class _Block:
    """On a worker: one block's rows, targets (and weights), and the kernel's settings."""

    def __init__(self, checked, Y, sample_weight, spec):
        self.x = checked[0]
        self.Y = np.ascontiguousarray(Y)
        self.sw = None if sample_weight is None else np.ascontiguousarray(sample_weight)
        self.spec = spec

    def __sizeof__(self):
        # what Dask's sizeof reads: the scheduler places each evaluation's task by the size of
        # its inputs, and an object that looks small has its rows moved to wherever theta is
        # (measured: a 16 MB block sent between the workers at every evaluation)
        arrays = (self.x, self.Y) if self.sw is None else (self.x, self.Y, self.sw)
        return object.__sizeof__(self) + sum(a.nbytes for a in arrays)

    def loss_and_gradient(self, theta):
        """Return ``(summed cost, gradient)``: this block's share of the mean cost's gradient.

        Unweighted: the summed cost of the rows and ``1/n`` times their summed gradient, the
        in-memory kernel's row chunks (``_rows_loss_and_gradient``, ``LOSS_CHUNK`` rows at a
        time). Weighted: ``sum_i w_i C_i`` and the gradient of ``sum_i w_i C_i / sum(w)``,
        the in-memory weighted kernel's chunks (``weighted_batch``).
        """
        s = self.spec
        x, Y = self.x, self.Y
        dt = x.dtype
        n = x.shape[0]
        chunk = max(1, min(LOSS_CHUNK, n))
        a_off, total = activation_layout(s.sizes, chunk)
        act, delta = np.empty(total, dt), np.empty(total, dt)
        grad = np.empty(s.n_params, dt)
        chunk_grad = np.empty(s.n_params, dt)
        if self.sw is None:
            no_index = np.empty(0, np.int32)
            loss_sum, _ = _train._rows_loss_and_gradient(
                x, np.empty(0, dt), no_index, no_index, False, Y, 0, n, chunk, s.scale, theta,
                grad, chunk_grad, np.empty((0, s.sizes[0]), dt), act, delta, a_off, s.sizes,
                s.w_off, s.b_off, s.hidden_act, s.out_act, s.clip_eps)
            return float(loss_sum), grad
        grad[:] = 0
        loss_sum = 0.0
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            loss_sum += _weighted.weighted_batch(
                x[start:stop], Y[start:stop], self.sw[start:stop], s.w_sum, theta, chunk_grad,
                s.sizes, s.w_off, s.b_off, s.hidden_act, s.out_act, act, delta, a_off,
                s.clip_eps)
            grad += chunk_grad
        return float(loss_sum), grad


def _theta(theta):
    """On a worker: ``theta`` (a task, not scattered data, so that a lost copy is recomputed)."""
    return theta


def _evaluate_block(block, theta):
    """On a worker: ``(summed cost, gradient, {worker: kernel seconds})`` of one block."""
    from distributed import get_worker

    start = time.perf_counter()
    with blas_single_threaded():
        loss_sum, grad = block.loss_and_gradient(theta)
    return loss_sum, grad, {get_worker().address: time.perf_counter() - start}


def _add_parts(*parts):
    """Add block results in the order given (on a worker, or on the client for the last sum)."""
    loss_sum, grad, seconds = parts[0]
    # a copy: parts[0]'s gradient may be another task's stored result, or (on the client)
    # a read-only view of the bytes received
    grad = grad.copy()
    seconds = dict(seconds)
    for part_loss, part_grad, part_seconds in parts[1:]:
        loss_sum += part_loss
        grad += part_grad
        for worker, s in part_seconds.items():
            seconds[worker] = seconds.get(worker, 0.0) + s
    return loss_sum, grad, seconds


def _gather(client, futures):
    """Return the results of ``futures`` (here, so that tests can interrupt the wait)."""
    return client.gather(futures)


class _Objective:
    """L-BFGS's objective: ``theta -> (loss, gradient)`` summed over the blocks on the cluster.

    Parameters
    ----------
    client : distributed.Client
    blocks : list of distributed.Future
        The :class:`_Block` of each non-empty block.
    net : fastmlp._engine.Network
    n_samples : int
    alpha : float
    w_sum : float or None
        The weights' total (None: unweighted).
    """

    def __init__(self, client, blocks, net, n_samples, alpha, w_sum):
        self.client = client
        self.blocks = blocks
        self.net = net
        self.n_samples = n_samples
        self.alpha = alpha
        self.w_sum = w_sum

    def __call__(self, theta):
        client = self.client
        dtype = self.net.dtype
        theta = np.ascontiguousarray(theta, dtype=dtype)
        start = time.perf_counter()
        if theta.nbytes * len(self.blocks) <= INLINE_BYTES:
            # theta inside each block's task: one hop less than a task of its own that the
            # workers then fetch it from (measured: 12 ms instead of 22 ms per evaluation)
            theta_future = None
            parts = client.map(_evaluate_block, self.blocks, theta=theta, pure=False)
        else:  # sent once, fetched by each worker that needs it
            theta_future = client.submit(_theta, theta, pure=False)
            parts = client.map(_evaluate_block, self.blocks, theta=theta_future, pure=False)
        pending = list(parts)
        try:
            while len(parts) > FAN_IN:  # a fixed tree in block order: the same sums every time
                parts = [client.submit(_add_parts, *parts[i:i + FAN_IN], pure=False)
                         for i in range(0, len(parts), FAN_IN)]
                pending += parts
            loss_sum, grad, kernel = _add_parts(*_gather(client, parts))
        except BaseException:  # Ctrl-C (or a failure): stop what is still running
            client.cancel(pending if theta_future is None else [*pending, theta_future])
            raise
        loss, grad = self._finish(theta, loss_sum, grad)
        record = {"wall_s": time.perf_counter() - start, "kernel_s": kernel,
                  "blocks": len(self.blocks)}
        for records in _RECORDERS:
            records.append(record)
        return loss, grad

    def _finish(self, theta, loss_sum, grad):
        """Return the mean cost plus scikit-learn's L2 term, as the in-memory kernels do."""
        net = self.net
        if self.w_sum is None:
            loss = _train._finish_loss_and_gradient(theta, grad, net.b_off, loss_sum,
                                                    self.n_samples, 0.0, self.alpha)
            return float(loss), grad
        w_sum = float(self.w_sum)
        coef = net.dtype.type(self.alpha / w_sum)
        sum_sq = add_l2(theta, grad, net.b_off[0], coef)
        return loss_sum / w_sum + 0.5 * self.alpha * sum_sq / w_sum, grad


def fit_lbfgs(est, blocks, y, sample_weight, layer_units):
    """``est._fit_lbfgs`` over the blocks of a dask array: same start, options and attributes.

    Parameters
    ----------
    est : BaseMultilayerPerceptron
        Initialised by ``_fit`` (its ``_theta`` is the starting point).
    blocks : Blocks
    y : ndarray
        The encoded targets, 2-D (``_validate_input``'s).
    sample_weight : ndarray or None
        Checked weights (``check_sample_weight``'s).
    layer_units : list of int
    """
    # imported here: _base imports this module
    from fastmlp.sklearn._base import _check_lbfgs_result

    dtype = est._theta.dtype
    net = est._network(dtype, layer_units)
    Y = np.ascontiguousarray(y, dtype=dtype)
    sw = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=dtype)
    # the in-memory weighted kernel's total of the weights: summed in order, in the dtype
    w_sum = None if sw is None else dtype.type(np.cumsum(sw, dtype=dtype)[-1])
    futures = blocks.with_targets(Y, sw, w_sum, net, float(np.finfo(dtype).eps))
    objective = _Objective(blocks.client, futures, net, blocks.n_samples, float(est.alpha),
                           w_sum)
    x0 = est._packed(dtype).copy()
    last = None  # (x, loss, iterations) after the last complete iteration

    def callback(intermediate_result):
        nonlocal last
        done = 1 if last is None else last[2] + 1
        last = (np.array(intermediate_result.x), float(intermediate_result.fun), done)

    try:
        with every_blas_single_threaded():  # scipy's own BLAS threads too, as in memory
            result = scipy.optimize.minimize(objective, x0, method="L-BFGS-B", jac=True,
                                             options=est._lbfgs_options(), callback=callback)
    except KeyboardInterrupt:
        # as an interrupted 'sgd'/'adam' fit: warn, and keep what is complete
        warnings.warn("Training interrupted by user.", stacklevel=5)
        x, loss, n_iter = (x0, None, 0) if last is None else last
        est.n_iter_ = n_iter
        if loss is not None:
            est.loss_ = loss
        est._set_theta(np.ascontiguousarray(x, dtype=np.float64), layer_units)
        return
    est.n_iter_ = _check_lbfgs_result(result, est.max_iter)
    est.loss_ = result.fun
    est._set_theta(np.ascontiguousarray(result.x, dtype=np.float64), layer_units)
