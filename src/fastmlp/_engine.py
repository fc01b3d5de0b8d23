"""The Python side of the engine: buffers, optimizer state and calls into the kernels.

Both faces (:class:`fastmlp.Model` and :class:`fastmlp.MLPClassifier`) train through
:class:`Trainer` and predict through :func:`predict_proba`; this is the only module that calls
the training kernels. Arrays reaching it are already validated, C-contiguous and of one dtype.
"""

import contextlib
import os
import threading
import time

import numba
import numpy as np

from fastmlp import _config, _threads
from fastmlp._kernels import activations, blas, forward, train, train_columns, train_units
from fastmlp._params import activation_offsets, layout

#: Rows per forward pass at prediction time: bounds the activation buffer, and is large enough
#: that each matrix product is a single efficient BLAS call.
PREDICT_CHUNK = 4096
#: Rows per chunk when computing a full-data cost and gradient (``Model.gradients``, L-BFGS).
LOSS_CHUNK = 8192
#: Entries (rows times features) of the dense block a sparse epoch makes at a time: its rows
#: are taken in the epoch's order, a whole number of batches, and trained by the dense kernel
#: the engine chose. 2^22 entries are 16 MiB in float32, 32 MiB in float64.
SPARSE_BLOCK_ENTRIES = 1 << 22


_blas_lock = threading.Lock()
_blas_users = 0
_blas_controller = None
_blas_limit = None


def _take_blas_control():
    # threadpoolctl (>= 3.6) lets only the first Python thread that limits OpenBLAS change it
    # again, and ignores the others silently; our lock already serialises the limit, so claim
    # control for whichever thread holds it.
    import threadpoolctl

    controller = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(controller, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


@contextlib.contextmanager
def blas_single_threaded():
    """Hold BLAS to one thread while a kernel runs: Numba's pool is the one owner of threads.

    Two pools spinning on the same cores is the trap DESIGN.md warns of (230x slower); it also
    strikes a serial kernel whose BLAS threads meet Numba's OpenMP workers still spinning after
    a parallel one (measured: 3.2 s instead of 0.6 s per Fashion-MNIST epoch), and BLAS threads
    on a loaded machine. So every kernel call runs with single-threaded BLAS, and parallelism
    comes from the parallel kernels alone. The limit is reference-counted so that concurrent
    calls from several Python threads neither lift it early nor stack it. It is set through
    OpenBLAS's own thread setter where the kernels' BLAS is a pthreads OpenBLAS (about 1 us,
    and only when the count is not 1 already), else through threadpoolctl (about 100 us).
    """
    global _blas_users, _blas_limit
    with _blas_lock:
        if _blas_users == 0:
            _blas_limit = _limit_blas()
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit()
                _blas_limit = None


def _limit_blas():
    """Hold the kernels' BLAS to one thread; return the function that restores it."""
    if blas.BLAS_THREADS is not None:
        get, put = blas.BLAS_THREADS
        before = get()
        if before == 1:
            return _nothing
        put(1)
        return lambda: put(before)
    return _limit_every_blas()


def _nothing():
    pass


def _limit_every_blas():
    """Hold every BLAS library to one thread (threadpoolctl); return the restorer."""
    global _blas_controller
    if _blas_controller is None:
        # Load SciPy's BLAS (the kernels' when NumPy bundles none, see _kernels/blas.py)
        # before threadpoolctl looks for libraries: it may otherwise load only later, and a
        # controller made before would leave it unlimited.
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController()
    _take_blas_control()
    limit = _blas_controller.limit(limits=1, user_api="blas")

    def restore():
        _take_blas_control()
        limit.restore_original_limits()
        _take_blas_control()

    return restore


@contextlib.contextmanager
def every_blas_single_threaded():
    """Hold every BLAS library in the process to one thread, for a whole solver run.

    :func:`blas_single_threaded` limits only the library the kernels call, per call. A solver
    that calls other BLAS between kernel calls needs this too: scipy's L-BFGS-B does level-1
    BLAS on the parameter vector through SciPy's OpenBLAS, whose threads then spin for a while
    and take a core from the next kernel call (measured: a Fashion-MNIST L-BFGS fit, 20
    iterations, 4.4 s instead of 3.2 s). Costs about 100 us (threadpoolctl), once per run.
    """
    with _blas_lock:
        restore = _limit_every_blas()
    try:
        yield
    finally:
        with _blas_lock:
            restore()


_fast_layer = None
_forked_child = False


def _after_fork_in_child():
    # GNU OpenMP is not fork-safe: a parallel region in a forked child of a process that used
    # it hangs or aborts. A forked child therefore runs the serial kernels.
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def parallel_lanes():
    """How many lanes (row slices, each with its own gradient slab) a parallel kernel uses.

    The number of lanes is Numba's pool size, fixed when the process starts, not the number of
    threads currently allowed (``numba.set_num_threads``): the lanes' sums then happen in the
    same order whatever that number, so results are bit-identical on 1 thread and on 2. It is
    1 (the serial kernels) when ``FASTMLP_PARALLEL=0``, in a forked child, or without a fast
    threading layer: Numba's ``workqueue`` layer (used when neither OpenMP nor TBB is
    available) costs about 90 us per parallel region against 1 us for OpenMP, more than it
    saves, and it aborts when two Python threads use it at once.
    """
    global _fast_layer
    if not _config.PARALLEL or _forked_child:
        return 1
    if _fast_layer is None:
        train.warm_up_parallel(np.zeros(2))
        try:
            _fast_layer = numba.threading_layer() != "workqueue"
        except ValueError:  # NUMBA_DISABLE_JIT=1: nothing was compiled, there is no pool
            _fast_layer = False
    return numba.config.NUMBA_NUM_THREADS if _fast_layer else 1


# Placeholders for the kernels' unused arguments: the dense rows of a CSR input, or the CSR
# arrays of a dense one.
_NO_ROWS = {np.dtype(t): np.empty((0, 0), t) for t in (np.float32, np.float64)}
_NO_DATA = {np.dtype(t): np.empty(0, t) for t in (np.float32, np.float64)}
_NO_INDEX = np.empty(0, np.int32)


class Network:
    """The architecture a flat parameter vector belongs to (sizes, offsets, activations).

    Parameters
    ----------
    layer_sizes : sequence of int
    hidden_act : int
        Activation code of the hidden layers.
    out_act : int
        ``activations.SOFTMAX`` or ``activations.LOGISTIC``.
    dtype : numpy dtype
    """

    def __init__(self, layer_sizes, hidden_act, out_act, dtype):
        self.layer_sizes = tuple(int(s) for s in layer_sizes)
        self.sizes, self.w_off, self.b_off, self.n_params = layout(self.layer_sizes)
        # also the multiply-adds of one row's forward pass: sum(fan_in * fan_out)
        self.n_weights = int(self.b_off[0])
        self.hidden_act = hidden_act
        self.out_act = out_act
        self.dtype = np.dtype(dtype)
        self._governors = {}  # "predict"/"loss" -> _threads.ThreadGovernor, made when needed

    def _governor(self, kind, lanes):
        """Return the thread governor of ``kind`` of call (None: the thread count is fixed)."""
        if not _threads.adaptive(lanes):
            return None
        gov = self._governors.get(kind)
        if gov is None or gov.counts[0] != lanes:
            gov = self._governors[kind] = _threads.new_governor(lanes)
        return gov

    def predict_proba(self, theta, X):
        """Return the output layer for ``X`` (C-contiguous, or CSR, of ``dtype``).

        Large inputs run their chunks of rows over the threads, as many as
        :mod:`fastmlp._threads` finds pay on the machine now.
        """
        out = np.empty((X.shape[0], self.layer_sizes[-1]), dtype=self.dtype)
        chunk = max(1, min(PREDICT_CHUNK, X.shape[0]))
        if _is_sparse(X):
            X = _canonical_csr(X)
            for start in range(0, X.shape[0], chunk):
                dense = np.ascontiguousarray(X[start : start + chunk].toarray(), self.dtype)
                out[start : start + chunk] = self.predict_proba(theta, dense)
            return out
        n_rows = X.shape[0]
        flops = n_rows * self.n_weights
        threads = parallel_lanes() if flops >= 4 * _config.PARALLEL_MIN_FLOPS else 1
        with blas_single_threaded():
            if threads > 1:
                # at least two chunks per lane, so uneven chunks still balance
                chunk = max(1, min(chunk, -(-n_rows // (2 * threads))))
                with _governed(self._governor("predict", threads), n_rows):
                    forward.predict_proba_parallel(theta, self.sizes, self.w_off, self.b_off, X,
                                                   self.hidden_act, self.out_act, chunk,
                                                   threads, out)
            else:
                forward.predict_proba(theta, self.sizes, self.w_off, self.b_off, X,
                                      self.hidden_act, self.out_act, chunk, out)
        return out

    def loss_and_gradient(self, theta, X, Y, *, l2=0.0, l2_per_sample=0.0, clip_eps=0.0,
                          with_grad=True):
        """Mean cost of ``(X, Y)`` (plus the L2 term) and its gradient as a flat vector.

        ``X`` is C-contiguous of ``dtype``, or a scipy.sparse matrix with data of ``dtype``
        (made dense a chunk of rows at a time). Large inputs are split in row lanes over the
        threads (``train.loss_and_gradient_parallel``, ``train.loss_parallel``).

        Returns
        -------
        loss : float
        n_correct : int
        grad : (P,) array or None
        """
        N = X.shape[0]
        flops = N * self.n_weights
        lanes = parallel_lanes() if flops >= _config.LOSS_PARALLEL_MIN_FLOPS else 1
        lanes = max(1, min(lanes, N))
        chunk = max(1, min(LOSS_CHUNK, -(-N // lanes)))
        if _is_sparse(X):
            X = _canonical_csr(X)
            x_args = (_NO_ROWS[self.dtype], X.data, X.indices, X.indptr, True)
        else:
            x_args = (X, _NO_DATA[self.dtype], _NO_INDEX, _NO_INDEX, False)
        net_args = (self.sizes, self.w_off, self.b_off, self.hidden_act, self.out_act)
        settings = (float(l2), float(l2_per_sample), float(clip_eps), chunk)
        grads = np.empty((lanes, self.n_params), dtype=self.dtype) if with_grad else None
        with blas_single_threaded():
            # without a gradient, kernels of forward passes only: an evaluation or a
            # validation cost then compiles none of the backward pass (issue 14)
            if lanes > 1:
                with _governed(self._governor("loss", lanes), N):
                    if with_grad:
                        loss, n_correct = train.loss_and_gradient_parallel(
                            *x_args, Y, theta, grads, *net_args, *settings)
                    else:
                        loss, n_correct = train.loss_parallel(*x_args, Y, theta, lanes, *net_args,
                                                              *settings)
            elif with_grad:
                loss, n_correct = train.loss_and_gradient(*x_args, Y, theta, grads[0], *net_args,
                                                          *settings)
            else:
                loss, n_correct = train.loss(*x_args, Y, theta, *net_args, *settings)
        return float(loss), int(n_correct), (grads[0] if with_grad else None)


#: What a :class:`Trainer`'s lanes can split (its ``split``): every one must be tested with
#: dense and with sparse input (tests/test_sparse.py fails when one is not).
SPLITS = ("none", "rows", "units", "columns")


class Trainer:
    """Buffers and optimizer state for one fit: one compiled call per epoch, no allocation in it.

    Parameters
    ----------
    network : Network
    batch_size : int
        Largest batch; buffers are sized for it.
    optimizer : {"sgd", "adam"}
    learning_rate, momentum, nesterov, beta_1, beta_2, epsilon
        Optimizer settings (``learning_rate`` may be changed between epochs).
    l2, l2_per_sample : float
        A batch of ``n`` rows is penalised with ``0.5 * (l2 + l2_per_sample / n) * ||W||^2``.
    clip_eps : float
        0 for the exact cost, ``finfo(dtype).eps`` for scikit-learn's clipped one.
    state : tuple (state_1, state_2, step), optional
        Optimizer state to continue from (velocity or Adam's moments, and Adam's step counter
        as a (1,) int64 array), updated in place; fresh zeros by default.

    Attributes
    ----------
    n_lanes : int
        How many parts each batch is split into (1: the serial kernel).
    split : {"none", "rows", "units", "columns"}
        What the lanes split: nothing, the batch's rows (``train.train_epoch_parallel``), for
        one hidden layer and batches of at most ``_config.UNIT_SPLIT_MAX_BATCH`` rows the
        hidden units (``train_units.train_epoch_units``), or, for hidden layers of at least
        ``_config.COLUMN_SPLIT_MIN_UNITS`` units per lane, every layer's units
        (``train_columns.train_epoch_columns``). Sparse input takes the same kernel (see
        :meth:`epoch`).
    """

    def __init__(self, network, batch_size, optimizer, *, learning_rate, momentum=0.0,
                 nesterov=False, beta_1=0.9, beta_2=0.999, epsilon=1e-8, l2=0.0,
                 l2_per_sample=0.0, clip_eps=0.0, state=None):
        net = self.network = network
        dt = net.dtype
        self.batch_size = int(batch_size)
        self.optimizer = {"sgd": train.SGD, "adam": train.ADAM}[optimizer]
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = bool(nesterov)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.l2, self.l2_per_sample, self.clip_eps = float(l2), float(l2_per_sample), clip_eps
        self.x_buf = np.empty((self.batch_size, net.layer_sizes[0]), dtype=dt)
        self.y_buf = np.empty((self.batch_size, net.layer_sizes[-1]), dtype=dt)
        flops_per_batch = self.batch_size * net.n_weights
        lanes = parallel_lanes() if flops_per_batch >= _config.PARALLEL_MIN_FLOPS else 1
        self.n_lanes = max(1, min(lanes, self.batch_size))
        sizes = net.layer_sizes
        # How a batch is split over the lanes: by hidden unit (one hidden layer, small batches,
        # see train_units; every layer's, for wide layers, see train_columns), by row
        # (train.train_epoch_parallel), or not at all.
        if (self.n_lanes > 1 and len(sizes) == 3
                and self.batch_size <= _config.UNIT_SPLIT_MAX_BATCH
                and sizes[1] >= _config.UNIT_SPLIT_MIN_UNITS * self.n_lanes):
            self.split = "units"
        elif self.n_lanes > 1 and _columns_pay(sizes, self.n_lanes):
            self.split = "columns"
        else:
            self.split = "rows" if self.n_lanes > 1 else "none"
        assert self.split in SPLITS
        # Each row lane gets its own activations, deltas and gradient (one row each).
        row_lanes = self.n_lanes if self.split == "rows" else 1
        rows = -(-self.batch_size // row_lanes)
        self.a_off, total = activation_offsets(sizes, rows)
        self.act_buf = np.empty((row_lanes, total), dtype=dt)
        self.delta_buf = np.empty((row_lanes, total), dtype=dt)
        self.grad = np.empty((row_lanes, net.n_params), dtype=dt)
        if self.split == "columns":
            # the buffers train_columns.train_epoch_columns documents
            self.x_bufs = np.empty((2, self.batch_size, sizes[0]), dtype=dt)
            self.out_parts = np.empty((self.n_lanes, self.batch_size, sizes[-1]), dtype=dt)
        if self.split == "units":
            # the buffers train_units.train_epoch_units documents
            width = -(-sizes[1] // self.n_lanes)
            self.x_bufs = np.empty((3, self.batch_size, sizes[0]), dtype=dt)
            self.unit_act = np.empty((2 * self.n_lanes, self.batch_size * width), dtype=dt)
            self.unit_delta = np.empty((self.n_lanes, self.batch_size * width), dtype=dt)
            self.out_parts = np.empty((self.n_lanes, self.batch_size, sizes[2]), dtype=dt)
            self.out_buf = np.empty((self.batch_size, sizes[2]), dtype=dt)
            pack = width * (sizes[0] + sizes[2] + 1)
            self.theta_packs = np.empty((self.n_lanes, pack), dtype=dt)
            self.grad_packs = np.empty((self.n_lanes, pack), dtype=dt)
            self.state_1_packs = np.empty((self.n_lanes, pack), dtype=dt)
            self.state_2_packs = np.empty(
                (self.n_lanes, pack if self.optimizer == train.ADAM else 0), dtype=dt)
        if state is None:
            state = (np.zeros(net.n_params, dtype=dt),
                     np.zeros(net.n_params if self.optimizer == train.ADAM else 0, dtype=dt),
                     np.zeros(1, dtype=np.int64))
        self.state_1, self.state_2, self.step = state
        self.governor = None  # a _threads.ThreadGovernor, made by the first adaptive epoch

    def epoch(self, theta, X, Y, order, loss_start=0.0):
        """Train one epoch over the rows of ``(X, Y)`` in ``order``; ``theta`` is updated.

        ``X`` is C-contiguous of the network's dtype, or a scipy.sparse matrix with data of
        that dtype. A sparse ``X`` is never made dense whole: the rows of a whole number of
        batches are made dense at a time (``SPARSE_BLOCK_ENTRIES``), in the epoch's order, and
        trained by the same kernel as a dense ``X``. Every batch holds the same rows as it
        would from the dense matrix, so the results are the dense fit's, bit for bit.

        A parallel kernel's epoch runs in pieces of whole batches, each on the number of
        threads :mod:`fastmlp._threads` finds fastest now (all of them on a quiet machine).
        The lanes, and so the results, are the same whatever it picks, and the pieces add
        their costs to one running sum: the epoch is one call's, bit for bit.

        ``loss_start`` is a running sum to add the batches' costs to, so that an epoch trained
        in several calls (``order`` in consecutive slices) sums its cost exactly as one call.

        Returns
        -------
        loss_sum : float
            ``loss_start`` plus, over batches, ``n_batch * batch cost``.
        n_correct : int
        n_seen : int
            ``len(order)`` unless a batch's cost was not finite (training stopped there).
        """
        with blas_single_threaded():
            if not _is_sparse(X):
                return self._governed_epoch(theta, X, Y, order, loss_start)
            X = _canonical_csr(X)
            M = order.shape[0]
            n_features = X.shape[1]
            batches = max(1, SPARSE_BLOCK_ENTRIES // (self.batch_size * max(1, n_features)))
            block = min(M, batches * self.batch_size)
            x_block = np.empty((block, n_features), dtype=self.network.dtype)
            y_block = np.empty((block, Y.shape[1]), dtype=self.network.dtype)
            identity = np.arange(block, dtype=np.int64)
            loss_sum, n_correct = loss_start, 0
            for start in range(0, M, block):
                m = min(block, M - start)
                x, y = x_block[:m], y_block[:m]
                train.gather_rows_csr(X.data, X.indices, X.indptr, order, start, x)
                train.gather_rows(Y, order, start, y)
                loss_sum, part_correct, part_seen = self._governed_epoch(theta, x, y,
                                                                         identity[:m], loss_sum)
                n_correct += part_correct
                if part_seen < m:
                    return loss_sum, n_correct, start + part_seen
            return loss_sum, n_correct, M

    def _governed_epoch(self, theta, X, Y, order, loss_start):
        """:meth:`_dense_epoch`, in pieces on the threads the governor picks, when it may."""
        if not _threads.adaptive(self.n_lanes):
            return self._dense_epoch(theta, X, Y, order, loss_start)
        gov = self.governor
        if gov is None:
            gov = self.governor = _threads.new_governor(self.n_lanes)
        M = order.shape[0]
        B = self.batch_size
        loss_sum, n_correct, pos = loss_start, 0, 0
        while pos < M:
            threads, probe = gov.next()
            per_row = gov.seconds_per_row(threads)
            if per_row is None:  # a first guess: a few GFLOP/s
                per_row = 6 * self.network.n_weights / 4e9
            batches = _threads.piece_batches(per_row * B, probe)
            stop = min(M, pos + B * batches)
            start = time.perf_counter()
            with _threads.running_on(threads):
                loss_sum, correct, seen = self._dense_epoch(theta, X, Y, order[pos:stop],
                                                            loss_sum)
            gov.record(threads, time.perf_counter() - start, stop - pos, probe)
            n_correct += correct
            if seen < stop - pos:
                return loss_sum, n_correct, pos + seen
            pos = stop
        return loss_sum, n_correct, M

    def _dense_epoch(self, theta, X, Y, order, loss_start):
        """:meth:`epoch` on a dense ``X``, through the kernel of ``self.split``, in one call.

        The batches' costs are added to ``loss_start``; returns ``(loss_sum, n_correct,
        n_seen)`` with that running sum.
        """
        net = self.network
        optimizer_args = (
            self.optimizer, float(self.learning_rate), float(self.momentum), self.nesterov,
            float(self.beta_1), float(self.beta_2), float(self.epsilon), self.state_1, self.state_2,
            self.step, self.l2, self.l2_per_sample, float(self.clip_eps), float(loss_start),
        )
        if self.split == "units":
            loss_sum, n_correct, n_seen = train_units.train_epoch_units(
                X, Y, order, self.batch_size, theta, net.sizes, net.hidden_act, net.out_act,
                self.x_bufs, self.y_buf, self.unit_act, self.unit_delta, self.out_parts,
                self.out_buf, self.theta_packs, self.grad_packs, self.state_1_packs,
                self.state_2_packs, *optimizer_args)
        elif self.split == "columns":
            loss_sum, n_correct, n_seen = train_columns.train_epoch_columns(
                X, Y, order, self.batch_size, theta, self.grad[0], net.sizes, net.w_off,
                net.b_off, net.hidden_act, net.out_act, self.x_bufs, self.y_buf,
                self.act_buf[0], self.delta_buf[0], self.a_off, self.out_parts,
                *optimizer_args)
        elif self.split == "rows":
            loss_sum, n_correct, n_seen = train.train_epoch_parallel(
                X, Y, order, self.batch_size, theta, self.grad, net.sizes, net.w_off,
                net.b_off, net.hidden_act, net.out_act, self.x_buf, self.y_buf,
                self.act_buf, self.delta_buf, self.a_off, *optimizer_args)
        else:
            loss_sum, n_correct, n_seen = train.train_epoch(
                X, Y, order, self.batch_size, theta, self.grad[0], net.sizes, net.w_off,
                net.b_off, net.hidden_act, net.out_act, self.x_buf, self.y_buf,
                self.act_buf[0], self.delta_buf[0], self.a_off, *optimizer_args)
        return float(loss_sum), int(n_correct), int(n_seen)


def _columns_pay(sizes, lanes):
    """Whether every hidden layer is wide enough for the column split (``train_columns``)."""
    hidden = sizes[1:-1]
    return len(hidden) > 0 and min(hidden) >= _config.COLUMN_SPLIT_MIN_UNITS * lanes


@contextlib.contextmanager
def _governed(governor, rows):
    """Run the enclosed call on the threads ``governor`` picks, and tell it how long it took."""
    if governor is None:
        yield
        return
    threads, probe = governor.next()
    start = time.perf_counter()
    with _threads.running_on(threads):
        yield
    governor.record(threads, time.perf_counter() - start, rows, probe)


def _is_sparse(X):
    return hasattr(X, "tocsr") and not isinstance(X, np.ndarray)


def _canonical_csr(X):
    """CSR without duplicate entries (the kernels write entries; they do not add them)."""
    X = X.tocsr()
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def hidden_code(name):
    """Return the kernel code of a hidden activation name (ValueError lists the valid names)."""
    try:
        return activations.HIDDEN[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(k) for k in activations.HIDDEN)
        raise ValueError(f"hidden_activation must be one of {valid}; got {name!r}") from None
