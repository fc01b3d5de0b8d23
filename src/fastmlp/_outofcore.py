"""Training on arrays that are not in memory: one block of rows at a time.

A ``numpy.memmap``, a zarr array, a dask array (anything sliced by rows that is not an
``ndarray`` in memory) is read in blocks of whole rows. Each epoch visits the blocks in a
shuffled order and the rows of each block in a shuffled order. The next block is read, and
checked and converted to the model's dtype, on a second thread while the current one trains,
so the reading hides behind the compiled epoch. Memory holds about two blocks, not the data.

The order differs from an in-memory shuffle of all rows: a batch never mixes rows of two
blocks, and the last batch of each block may be short. The numbers are therefore not those of
the in-memory fit (which keeps scikit-learn's); the gradient of each batch is the same
formula over its rows. See docs/outofcore.md.
"""

import mmap
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Bytes per block when the array has no chunks of its own (a ``numpy.memmap``): large enough
#: that a block's per-call costs vanish next to its batches, small enough that two blocks are
#: a small share of any machine's memory and that the first block, read before any training,
#: is read fast. Fashion-MNIST epochs from a memmap in the page cache, against in memory
#: (benchmarks/bench_outofcore.py, 2 cores): 16 MiB blocks 0.85, 64 MiB blocks 0.66.
BLOCK_BYTES = int(os.environ.get("FASTMLP_BLOCK_BYTES", 16 << 20))


def block_rows_for(n_features, itemsize):
    """Rows of ``n_features`` entries of ``itemsize`` bytes in a block of :data:`BLOCK_BYTES`."""
    return max(1, BLOCK_BYTES // max(1, itemsize * n_features))


def is_out_of_core(X):
    """Whether ``X`` is an array read in blocks: a memmap, a zarr or a dask array."""
    if isinstance(X, np.memmap):
        return True
    if isinstance(X, np.ndarray) or not hasattr(X, "shape") or not hasattr(X, "dtype"):
        return False
    module = type(X).__module__.split(".")[0]
    return module in ("zarr", "dask", "h5py")


class RowBlocks:
    """The row blocks of an out-of-core array ``X`` of shape ``(n_rows, n_features)``.

    Parameters
    ----------
    X : numpy.memmap, zarr.Array, dask.array.Array or h5py.Dataset
    block_rows : int, optional
        Rows per block. Default: the array's own row chunks (zarr, dask), else as many rows
        as fit in :data:`BLOCK_BYTES`.
    """

    def __init__(self, X, block_rows=None):
        if len(X.shape) != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        if any(np.isnan(d) for d in X.shape):
            raise ValueError("X is a dask array whose chunk sizes are unknown (after boolean "
                             "indexing, for instance): call X.compute_chunk_sizes() first")
        n = int(X.shape[0])
        if n == 0 or X.shape[1] == 0:
            raise ValueError(f"X is empty: shape {tuple(X.shape)}")
        dtype = np.dtype(X.dtype)
        if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or dtype.kind == "c":
            raise TypeError(f"X must be real numbers (int or float), got dtype {dtype}")
        self.X = X
        self.shape = (n, int(X.shape[1]))
        self.dtype = dtype
        self._dask = type(X).__module__.split(".")[0] == "dask"
        if block_rows is not None:
            block_rows = int(block_rows)
            if block_rows < 1:
                raise ValueError(f"block_rows must be >= 1, got {block_rows}")
            edges = list(range(0, n, block_rows)) + [n]
        elif getattr(X, "chunks", None) and not isinstance(X, np.ndarray):
            # zarr 3 reads a sharded array a shard at a time: a block is a shard, not one of
            # its inner chunks
            rows = (getattr(X, "shards", None) or X.chunks)[0]
            if isinstance(rows, tuple):  # dask: the size of each row chunk
                edges = [0, *np.cumsum(rows).tolist()]
            else:  # zarr, h5py: one chunk size
                edges = list(range(0, n, int(rows))) + [n]
        else:
            rows = block_rows_for(self.shape[1], dtype.itemsize)
            edges = list(range(0, n, rows)) + [n]
        self.bounds = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)
                       if b > a]
        # A memmap's blocks are copied into two buffers in turn, kept for the next blocks: a
        # fresh block of tens of MiB is a fresh mapping from the allocator, whose page faults
        # (on the reading thread, beside the training threads) cost more than the copy.
        self._buffers = [None, None]
        self._turn = 0

    def __len__(self):
        return len(self.bounds)

    def read(self, i):
        """Return block ``i``'s rows as an ndarray in memory."""
        start, stop = self.bounds[i]
        rows = self.X[start:stop]
        if self._dask:
            return np.asarray(rows.compute())
        if isinstance(rows, np.memmap):
            # A copy, then the mapping's pages of these rows let go: pages of a file mapping
            # that a process has touched count in its memory (RSS) until it unmaps them, so
            # reading a whole memmap would grow the process by the file, however small the
            # blocks. The file stays in the page cache, for the next epoch.
            copy = self._buffer(rows.shape, rows.dtype)
            copy[...] = rows
            _release_pages(rows)
            return copy
        return np.asarray(rows)

    def _buffer(self, shape, dtype):
        """Return the next of the two block buffers, as ``shape``, valid for two reads.

        :func:`stream_epoch` holds at most two blocks, the one training and the one being
        read, so a block's buffer is reused only once its block has trained.
        """
        size = shape[0] * shape[1]
        buffer = self._buffers[self._turn]
        if buffer is None or buffer.dtype != dtype or buffer.size < size:
            buffer = self._buffers[self._turn] = np.empty(size, dtype=dtype)
        self._turn = 1 - self._turn
        return buffer[:size].reshape(shape)


def _release_pages(rows):
    """Drop a read-only memmap slice's pages from this process (``MADV_DONTNEED``)."""
    mapping = getattr(rows, "_mmap", None)
    if (mapping is None or getattr(rows, "mode", None) != "r" or not hasattr(mapping, "madvise")
            or not hasattr(mmap, "MADV_DONTNEED") or not rows.flags.c_contiguous):
        return  # a writable or copy-on-write mapping's pages may hold the only copy of a change
    base = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    start = rows.ctypes.data - base
    stop = start + rows.nbytes
    start -= start % mmap.PAGESIZE
    stop = min(len(mapping), stop + (-stop) % mmap.PAGESIZE)
    if stop > start:
        mapping.madvise(mmap.MADV_DONTNEED, start, stop - start)


def stream_epoch(trainer, theta, blocks, Y, prepare, rng, shuffle=True, on_block=None):
    """Train one epoch over ``blocks``, reading the next block while one trains.

    Parameters
    ----------
    trainer : fastmlp._engine.Trainer
    theta : ndarray
        The parameters, updated in place.
    blocks : RowBlocks
    Y : ndarray of shape (n_rows, n_outputs)
        The targets of every row, in memory (a label per row is small next to ``X``).
    prepare : callable
        ``prepare(rows, start, stop)``: the block's rows as the kernel takes them (checked,
        C-contiguous, the model's dtype). Runs on the reading thread.
    rng : numpy.random.Generator or numpy.random.RandomState
        Draws the block order and each block's row order (``permutation``).
    shuffle : bool
        Whether to shuffle; otherwise the blocks and rows go in file order.
    on_block : callable, optional
        ``on_block(n_rows)`` after each block (a progress bar).

    Returns
    -------
    loss_sum, n_correct, n_seen
        As :meth:`fastmlp._engine.Trainer.epoch` over all the rows: one running cost sum.
    """
    order_of_blocks = rng.permutation(len(blocks)) if shuffle else np.arange(len(blocks))

    def load(i):
        start, stop = blocks.bounds[i]
        return prepare(blocks.read(i), start, stop)

    loss_sum, n_correct, n_seen = 0.0, 0, 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastmlp-read") as reader:
        pending = reader.submit(load, order_of_blocks[0])
        try:
            for k, i in enumerate(order_of_blocks):
                X_block = pending.result()
                if k + 1 < len(order_of_blocks):
                    pending = reader.submit(load, order_of_blocks[k + 1])
                start, stop = blocks.bounds[i]
                m = stop - start
                order = (rng.permutation(m) if shuffle else np.arange(m)).astype(np.int64)
                loss_sum, correct, seen = trainer.epoch(theta, X_block, Y[start:stop], order,
                                                        loss_sum)
                n_correct += correct
                n_seen += seen
                if seen < m:  # a batch's cost was not finite: stop, as the in-memory epoch
                    break
                if on_block is not None:
                    on_block(m)
        finally:
            pending.cancel()
    return loss_sum, n_correct, n_seen
