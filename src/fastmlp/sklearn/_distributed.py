"""One L-BFGS fit on a Dask cluster, and fits that run inside Dask workers (issue 12).

``MLPClassifier(solver="lbfgs").fit(X, y)`` and ``MLPRegressor(solver="lbfgs").fit(X, y)``
with ``X`` a dask array, while a ``distributed`` client is active, train as Spark MLlib's
``MultilayerPerceptronClassifier`` does: ``X`` stays in its blocks on the workers that hold
them, and each loss-and-gradient L-BFGS asks for is a map over the blocks (fastmlp's compiled
kernel on each block, on its worker) followed by a sum. Only the parameter vector (out) and
the gradients (back) travel. ``y`` and ``sample_weight`` stay on the workers too, blocked like
``X``'s rows (a dask array as it is; anything else is sent there once, in blocks): each block
reports a summary (its unique labels; for a regressor, its NaN, infinities and negatives), the
estimator's own ``_validate_input`` checks a few rows made from those summaries (so
``classes_`` and the messages are the in-memory ones), and each block binarises or casts its
own targets, on its worker, to the dtype the fit computes in. The client's memory does not grow
with the rows (``tests/client_memory.py`` measures it).

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
import numbers
import sys
import time
import warnings

import numba
import numpy as np
import scipy.optimize
from sklearn.base import is_classifier
from sklearn.utils import check_array, check_consistent_length

from fastmlp import _threads
from fastmlp._engine import LOSS_CHUNK, blas_single_threaded, every_blas_single_threaded
from fastmlp._kernels import train as _train
from fastmlp._kernels import weighted as _weighted
from fastmlp._kernels.checks import all_finite
from fastmlp._kernels.layout import activation_layout
from fastmlp._kernels.optim import add_l2
from fastmlp.sklearn._inputs import compute_dtype, stand_in
from fastmlp.sklearn._lbfgs import check_lbfgs_result

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
    the compiled kernel, summed over that worker's blocks), ``blocks`` and ``client_cpu_s``
    (this process's CPU time in the evaluation: submitting, receiving, the last sums).
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


def prepare(X, y, sample_weight):
    """Set up a distributed fit on the dask array ``X``, when a client is active.

    Returns a :class:`Blocks` (``X``'s checked blocks on the workers, ``y``'s and the
    weights' beside them), or None without a client (the in-memory path).
    """
    client = _client()
    if client is None:
        return None
    return Blocks(client, X, y, sample_weight)


class Blocks:
    """The blocks of a dask array ``X`` on the workers, each checked there, with their targets.

    ``X`` is rechunked to a single chunk across the columns (the row chunks are kept: a block
    is one worker thread's work), and every block is cast to the dtype the fit computes in
    (float32 or float64 as given, anything else float64, as the in-memory validation casts)
    and checked on its worker: 2-D, numbers, finite. Only each block's shape and verdict come
    back. The first bad block in row order raises, naming its rows.

    ``y`` and ``sample_weight`` (dask arrays, or anything else, which is sent to the workers
    in blocks) are blocked like ``X``'s rows and stay on the workers too. Each block reports
    a summary of its targets (its unique labels; or, for a regressor, whether it holds NaN,
    infinity or negative values), and :meth:`validate` checks those with the estimator's own
    ``_validate_input``: the client never holds a row.

    Parameters
    ----------
    client : distributed.Client
    X : dask.array.Array
    y : array-like or dask.array.Array
    sample_weight : array-like, dask.array.Array, number or None
    """

    def __init__(self, client, X, y, sample_weight):
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
        self.y = self._row_blocks(_as_dask(y), "y")
        self.sample_weight = None
        if sample_weight is not None:
            if isinstance(sample_weight, numbers.Number):  # as check_sample_weight's np.full
                import dask.array as da

                sample_weight = da.full(self.n_samples, sample_weight,
                                        chunks=(tuple(self.rows),))
            self.sample_weight = self._row_blocks(_as_dask(sample_weight), "sample_weight")

    @property
    def n_samples(self):
        """Rows of ``X``."""
        return self.starts[-1]

    def stand_in(self):
        """Return an ``(n_samples, n_features)`` array of ``X``'s dtype holding no data."""
        return stand_in((self.n_samples, self.n_features), self.dtype)

    def _row_blocks(self, a, name):
        """Return futures of ``a``'s blocks on the workers, blocked like ``X``'s rows.

        Its length is checked first, from its shape (the same messages as in memory).
        """
        if any(np.isnan(c) for c in a.chunks[0]):  # lengths unknown: only the counts travel
            a = a.compute_chunk_sizes()
        if name == "sample_weight":
            if a.ndim != 1:
                raise ValueError(
                    f"Sample weights must be 1D array or scalar, got {a.ndim}D array. "
                    f"Expected either a scalar value or a 1D array of length {self.n_samples}.")
            if a.shape != (self.n_samples,):
                raise ValueError(
                    f"sample_weight.shape == {a.shape}, expected {(self.n_samples,)}!")
        elif a.shape[0] != self.n_samples:
            check_consistent_length(stand_in((self.n_samples, 1), np.float64),
                                    stand_in((a.shape[0], 1), np.float64))
        a = a.rechunk({0: tuple(self.rows), **{i: -1 for i in range(1, a.ndim)}})
        return self.client.compute(list(a.to_delayed().ravel()))

    def validate(self, est, incremental, reset):
        """Check ``y`` and ``sample_weight`` where they are; return stand-ins for ``_fit``.

        Each block's summary travels: its unique labels (a classifier), or its dtype, NaN,
        infinity and negative counts (a regressor). The estimator's own ``_validate_input``
        checks ``X``'s stand-in with a few rows that have every label (or the NaN or infinity
        found) and fits its ``LabelBinarizer`` on them: ``classes_``, the warm start's check
        and the messages are the in-memory ones. Returns ``(X, Y)``: stand-ins of ``X`` and of
        the encoded targets, ``(n_samples, n_outputs)``, holding no data.
        """
        classifier = is_classifier(est)
        kind = "labels" if classifier else "targets"
        reports = self.client.gather(self.client.map(_target_report, self.y, kind=kind,
                                                     pure=False))
        reports = [r for r, rows in zip(reports, self.rows, strict=True) if rows]
        y_small, negative, smallest = (_labels_stand_in if classifier
                                       else _targets_stand_in)(reports)
        X_small = stand_in((y_small.shape[0], self.n_features), self.dtype)
        _, Y = est._validate_input(X_small, y_small, incremental, reset)
        if negative and getattr(est, "loss", None) == "poisson":
            est._check_poisson_counts(negative, smallest)
        if self.sample_weight is not None:
            weights = self.client.gather(self.client.map(_weights_report, self.sample_weight,
                                                         pure=False))
            for problem, _ in weights:
                if problem is not None:
                    raise ValueError(problem)
            if not any(nonzero for _, nonzero in weights):
                raise ValueError("Sample weights must contain at least one non-zero number.")
        self.encoder = est._label_binarizer if classifier else None
        n_outputs = 1 if Y.ndim == 1 else Y.shape[1]
        return self.stand_in(), stand_in((self.n_samples, n_outputs), np.float64)

    def weight_total(self, dtype):
        """Return the weights' total as the in-memory weighted kernel sums them: in order.

        A chain of tasks, one a block, each adding its weights to the total so far: only the
        running total travels.
        """
        total = dtype.type(0)
        for rows, w in zip(self.rows, self.sample_weight, strict=True):
            if rows:
                total = self.client.submit(_running_total, w, total, dtype.str, pure=False)
        return dtype.type(total.result() if hasattr(total, "result") else total)

    def with_targets(self, w_sum, net, clip_eps):
        """Return futures of the non-empty blocks joined with their targets and the network.

        Each block's targets are encoded on its worker, to the dtype the fit computes in: a
        classifier's labels by its ``LabelBinarizer`` (the classes travel, not the rows).
        """
        spec = _Spec(net, clip_eps, net.dtype.type(1.0 / self.n_samples), w_sum)
        futures = []
        for i, rows in enumerate(self.rows):
            if rows == 0:
                continue
            sw = None if self.sample_weight is None else self.sample_weight[i]
            futures.append(self.client.submit(_Block, self.checked[i], self.y[i], sw, spec,
                                              self.encoder, pure=False))
        # the blocks hold the checked rows and encoded targets now; the checked results and
        # the raw targets are let go (Dask keeps how to make them again, should a worker die)
        # so that the rows are counted once in the workers' memory
        self.checked = self.y = self.sample_weight = None
        return futures


def _as_dask(a):
    """Return ``a`` as a dask array: a dask one as it is, a dask series by its values."""
    import dask.array as da

    if is_dask_array(a):
        return a
    if hasattr(a, "to_dask_array"):  # a dask DataFrame's series: its lengths are counted
        return a.to_dask_array(lengths=True)
    a = np.asarray(a)  # in the client's memory already (the caller's): sent in blocks
    return da.from_array(a, chunks=a.shape or (), name=False)


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


def _target_report(y, kind):
    """On a worker: ``(ndim, columns, values, negatives, smallest)``, a summary of ``y``'s block.

    ``kind="labels"`` (a classifier): ``values`` are the block's unique labels. ``"targets"``
    (a regressor): ``values`` are a zero of the block's dtype, with NaN and infinities when
    the block has them (or its first value, when it holds strings or other non-numbers), and
    ``negatives`` counts the values below zero, ``smallest`` the least of them.
    """
    y = np.asarray(y)
    columns = y.shape[1] if y.ndim == 2 else 0
    flat = y.reshape(-1)
    if kind == "labels":
        try:
            values = np.unique(flat)
        except TypeError:  # mixed types (strings and numbers): unique_labels says so
            values = np.array(list(dict.fromkeys(flat.tolist())), dtype=object)
        return y.ndim, columns, values, 0, None
    if y.dtype.kind == "O" and not any(isinstance(v, (str, bytes)) for v in flat):
        flat = flat.astype(np.float64)  # as validate_data's y_numeric converts it
    if flat.dtype.kind not in "biuf":
        return y.ndim, columns, flat[:1], 0, None
    values = [np.zeros(1, flat.dtype)]
    if flat.dtype.kind == "f" and not all_finite(flat.reshape(-1, 1)):
        values += [np.array([v], flat.dtype) for v in (np.nan, np.inf, -np.inf)
                   if (np.isnan(flat) if v != v else flat == v).any()]
    negative = int(np.count_nonzero(flat < 0))
    smallest = flat[~np.isnan(flat)].min() if negative and flat.dtype.kind == "f" else (
        flat.min() if negative else None)
    return y.ndim, columns, np.concatenate(values), negative, smallest


def _by_columns(values, ndim, columns):
    """``values`` as a 1-D ``y``, or 2-D with each value across ``columns`` columns."""
    return values if ndim == 1 else np.repeat(values.reshape(-1, 1), columns, axis=1)


def _labels_stand_in(reports):
    """Return a few rows of labels, every label of ``y`` once: ``(y, 0, None)``."""
    if not reports:
        return np.empty(0), 0, None
    ndim, columns = reports[0][:2]
    parts = [r[2] for r in reports]
    try:
        values = np.unique(np.concatenate(parts))
    except TypeError:  # mixed types: kept, for unique_labels' own message
        values = np.array(list(dict.fromkeys(np.concatenate(parts).tolist())), dtype=object)
    return _by_columns(values, ndim, columns), 0, None


def _targets_stand_in(reports):
    """Return a few rows of targets: ``y``'s dtype, NaN, infinities; ``(y, negatives, least)``."""
    if not reports:
        return np.empty(0), 0, None
    ndim, columns = reports[0][:2]
    values = np.concatenate([r[2] for r in reports])
    if values.dtype.kind in "biuf":
        values = np.unique(values)
    negative = sum(r[3] for r in reports)
    smallest = min((r[4] for r in reports if r[3]), default=None)
    return _by_columns(values, ndim, columns), negative, smallest


def _weights_report(w):
    """On a worker: ``(problem, any non-zero)`` of a block of ``sample_weight``."""
    try:
        w = check_array(w, accept_sparse=False, ensure_2d=False,
                        dtype=[np.float64, np.float32], input_name="sample_weight",
                        ensure_min_samples=0)
    except ValueError as exc:  # NaN, infinity, not numbers: check_sample_weight's message
        return str(exc), False
    return None, bool(np.any(w != 0))


def _weights(w, dtype):
    """Return a block of weights as ``check_sample_weight`` makes them, then in ``dtype``."""
    w = np.asarray(w)
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float64)
    return np.ascontiguousarray(w, dtype=dtype)


def _running_total(w, total, dtype):
    """On a worker: ``total`` plus this block's weights, added one at a time in ``dtype``."""
    dtype = np.dtype(dtype)
    return np.cumsum(np.concatenate([np.array([total], dtype), _weights(w, dtype)]),
                     dtype=dtype)[-1]


def _encode(y, binarizer, dtype):
    """On a worker: a block of ``y`` as the 2-D targets the kernels take, in ``dtype``.

    A classifier's labels are binarised by its ``LabelBinarizer`` (as ``_validate_input``
    does in memory); a regressor's targets are cast, one column per output.
    """
    y = np.asarray(y)
    if binarizer is not None:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        return np.ascontiguousarray(binarizer.transform(y), dtype=dtype)
    if y.dtype.kind == "O":
        y = y.astype(np.float64)
    return np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype=dtype)


class _Spec:
    """What every block's kernel call needs besides its rows and ``theta`` (sent once)."""

    def __init__(self, net, clip_eps, scale, w_sum):
        self.sizes, self.w_off, self.b_off = net.sizes, net.w_off, net.b_off
        self.dtype = net.dtype
        self.hidden_act, self.out_act = net.hidden_act, net.out_act
        self.n_params = net.n_params
        self.clip_eps = float(clip_eps)
        self.scale = scale  # 1 / n in the dtype, as the in-memory kernel scales each row
        self.w_sum = w_sum  # the weights' total (None: unweighted)


class _Block:
    """On a worker: one block's rows, targets (and weights), and the kernel's settings.

    ``y`` is the block's raw targets, encoded here (``binarizer``: a classifier's
    ``LabelBinarizer``, or None), so that they never pass through the client.
    """

    def __init__(self, checked, y, sample_weight, spec, binarizer):
        self.x = checked[0]
        self.Y = _encode(y, binarizer, spec.dtype)
        self.sw = None if sample_weight is None else _weights(sample_weight, spec.dtype)
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
        start, cpu = time.perf_counter(), time.process_time()
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
                  "blocks": len(self.blocks), "client_cpu_s": time.process_time() - cpu}
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


def fit_lbfgs(est, blocks, layer_units):
    """``est._fit_lbfgs`` over the blocks of a dask array: same start, options and attributes.

    Parameters
    ----------
    est : BaseMultilayerPerceptron
        Initialised by ``_fit`` (its ``_theta`` is the starting point).
    blocks : Blocks
        Validated (:meth:`Blocks.validate`): its targets are encoded on the workers.
    layer_units : list of int
    """
    dtype = est._theta.dtype
    net = est._network(dtype, layer_units)
    # the in-memory weighted kernel's total of the weights: summed in order, in the dtype
    w_sum = None if blocks.sample_weight is None else blocks.weight_total(dtype)
    futures = blocks.with_targets(w_sum, net, float(np.finfo(dtype).eps))
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
    est.n_iter_ = check_lbfgs_result(result, est.max_iter)
    est.loss_ = result.fun
    est._set_theta(np.ascontiguousarray(result.x, dtype=np.float64), layer_units)
