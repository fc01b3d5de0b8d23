"""How many threads run a parallel kernel's lanes: chosen by measuring, while training runs.

A parallel kernel splits its work in lanes (one per thread of Numba's pool) and joins them at
least once per batch, so a thread that the operating system deschedules holds up every batch.
On a machine with busy neighbours (a browser, other CI jobs, other Dask tasks) the lanes then
wait on each other for longer than they compute, and one thread running every lane in turn is
several times faster (benchmarks/bench_busy.py). Which is faster is a property of the moment,
so it is measured, not guessed: a :class:`ThreadGovernor` times each piece of work at the
thread count it runs with, now and then tries a neighbouring count (a short *probe*, then,
when it wins, a whole piece to confirm it), and moves to whichever is clearly faster per row.
Probes of a count that loses come ever more rarely (the interval doubles, up to
``MAX_PROBE_INTERVAL`` pieces); when the running count slows down (a neighbour started), a
probe comes at once.

The number of *lanes* never changes, only the threads that run them, so the lanes' sums, and
every result, are the same whatever the governor picks. It stands aside (the count is left as
it is) when the user chose one: ``NUMBA_NUM_THREADS`` in the environment,
``numba.set_num_threads`` below the pool size, or ``FASTMLP_ADAPT_THREADS=0``.
"""

import contextlib
import math
import os
import time

import numba

from fastmlp import _config

#: Target seconds of one piece of an epoch: long enough that its fixed costs (the call, a
#: unit-split kernel's packing) are under 1%, short enough to react within a fraction of a
#: second.
PIECE_SECONDS = 0.04
#: A probe lasts about this fraction of a piece (at the probed count's last known speed), and
#: at least ``MIN_PROBE_BATCHES`` batches (fewer would measure a call's fixed costs).
PROBE_FRACTION = 0.25
MIN_PROBE_BATCHES = 4
#: Pieces between probes: the first interval after a switch, and the longest one. The very
#: first probe comes after one piece: a short fit must not run long on a bad count.
MIN_PROBE_INTERVAL = 4
MAX_PROBE_INTERVAL = 64
#: Move to the probed count when its probe and then a whole piece on it are each faster per
#: row than the current count's average by this factor: noise on a busy machine is large, and
#: a move that does not pay costs a probe's worth every few pieces.
SWITCH_GAIN = 0.8
#: The running count's average slowed down this much against its baseline (the least its
#: average has been since the last such alarm): probe now.
SLOWDOWN = 1.5
#: Weight of the newest piece in the running count's speed (an exponential average).
SMOOTHING = 0.3
#: A new governor starts on the count another one ran on within this many seconds: the
#: machine is likely as busy as it was (many short fits, a cross-validation, a grid search).
HINT_SECONDS = 10.0

_last_run = {}  # lanes -> (threads, time.monotonic()) of the latest piece any governor ran


def user_chose_threads():
    """Return True when the user fixed Numba's thread count (the governor stands aside)."""
    return ("NUMBA_NUM_THREADS" in os.environ
            or numba.get_num_threads() < numba.config.NUMBA_NUM_THREADS)


def adaptive(lanes):
    """Return True when a kernel with ``lanes`` lanes may have its thread count chosen."""
    return lanes > 1 and _config.ADAPT_THREADS and not user_chose_threads()


@contextlib.contextmanager
def running_on(threads):
    """Run the enclosed kernel call on ``threads`` of Numba's threads (this Python thread's)."""
    before = numba.get_num_threads()
    if threads == before:
        yield
        return
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def piece_batches(seconds_per_batch, probe):
    """How many batches the next piece runs: a probe's or a whole piece's worth of time.

    A probe is ``PROBE_FRACTION`` of a piece and at least ``MIN_PROBE_BATCHES`` batches, so a
    piece is at least ``MIN_PROBE_BATCHES / PROBE_FRACTION`` batches: where one batch takes
    longer than a piece (wide layers), the probes still cost a quarter of a piece at most.
    (With pieces of one batch, a probe of four on a count twice as slow cost 8-15% of a wide
    network's float64 epoch, measured against a fixed count.)
    """
    batches = max(1, int(PIECE_SECONDS / seconds_per_batch))
    if probe:
        return max(MIN_PROBE_BATCHES, int(batches * PROBE_FRACTION))
    return max(batches, math.ceil(MIN_PROBE_BATCHES / PROBE_FRACTION))


def new_governor(lanes):
    """Return a :class:`ThreadGovernor` for ``lanes``, on the count run last, when recent."""
    last = _last_run.get(lanes)
    if last is not None and time.monotonic() - last[1] < HINT_SECONDS:
        return ThreadGovernor(lanes, start=last[0])
    return ThreadGovernor(lanes)


class ThreadGovernor:
    """Chooses the thread count of one kind of work, from its measured seconds per row.

    Parameters
    ----------
    lanes : int
        The kernel's lanes (Numba's pool size): the most threads worth running.
    start : int, optional
        The count to start on (one of the candidates); default all ``lanes``.

    The candidates are ``lanes, lanes // 2, ..., 1``. A probe tries a neighbour of the current
    one (below it first) on a short piece; a short piece can be lucky (the neighbours were
    off the cores for its few milliseconds), so a probe that wins is confirmed by a *trial*,
    a whole piece on that count, before the governor moves. Use: ``threads, probe =
    governor.next()``, run that much work (short when ``probe``) on ``threads`` threads, then
    ``governor.record(threads, seconds, rows, probe)``.
    """

    def __init__(self, lanes, start=None):
        counts = []
        n = lanes
        while n >= 1:
            counts.append(n)
            n //= 2
        if counts[-1] != 1:
            counts.append(1)
        self.counts = counts
        self.current = counts.index(start) if start in counts else 0  # index into counts
        self.speed = {}  # threads -> seconds per row (running average; else the last measured)
        self.baseline = {}  # threads -> the least running average since the last alarm
        self.interval = MIN_PROBE_INTERVAL // 2  # doubled by the first probe that loses
        self.until_probe = 1
        self._probe_up = False  # which neighbour the next probe tries, from the middle
        self._trial = None  # a count whose probe won, to run a whole piece on next
        self.switches = 0

    @property
    def threads(self):
        """The thread count the work runs on, between probes."""
        return self.counts[self.current]

    def _probe_index(self):
        i = self.current
        if i == 0:
            return 1
        if i == len(self.counts) - 1:
            return i - 1
        self._probe_up = not self._probe_up
        return i - 1 if self._probe_up else i + 1

    def next(self):
        """Return ``(threads, probe)``: the count for the next piece, and whether it is short."""
        if self._trial is not None:
            return self._trial, False
        if len(self.counts) > 1 and self.until_probe <= 0:
            return self.counts[self._probe_index()], True
        return self.threads, False

    def seconds_per_row(self, threads):
        """Return the last known seconds per row at ``threads`` (None: not measured yet)."""
        return self.speed.get(threads)

    def record(self, threads, seconds, rows, probe=False):
        """Take the measured ``seconds`` of ``rows`` rows of work run on ``threads`` threads."""
        if rows <= 0 or seconds <= 0:
            return
        rate = seconds / rows
        if threads == self.threads and not probe:
            _last_run[self.counts[0]] = (threads, time.monotonic())
            old = self.speed.get(threads)
            average = rate if old is None else old + SMOOTHING * (rate - old)
            self.speed[threads] = average
            baseline = self.baseline[threads] = min(average, self.baseline.get(threads, average))
            self.until_probe -= 1
            if average > SLOWDOWN * baseline:
                # slower for more than a piece: a neighbour may have started; look now, and
                # from now on compare with this level (one alarm per slowdown, not one a piece)
                self.baseline[threads] = average
                self.interval = MIN_PROBE_INTERVAL
                self.until_probe = min(self.until_probe, 0)
            return
        # a probe, or the trial that confirms one: another count than the current one
        self.speed[threads] = rate
        current = self.speed.get(self.threads)
        wins = current is not None and rate < SWITCH_GAIN * current
        trial = self._trial is not None
        self._trial = None
        if wins and not trial:
            self._trial = threads  # promising: a whole piece on it decides
            return
        if wins:
            self.current = self.counts.index(threads)
            self.switches += 1
            self.interval = MIN_PROBE_INTERVAL
        else:
            self.interval = min(2 * self.interval, MAX_PROBE_INTERVAL)
        self.until_probe = self.interval
