"""How many threads run a parallel kernel's lanes: chosen by measuring, while training runs.

A parallel kernel splits its work in lanes (one per thread of Numba's pool) and joins them at
least once per batch, so a thread that the operating system deschedules holds up every batch.
On a machine with busy neighbours (a browser, other CI jobs, other Dask tasks) the lanes then
wait on each other for longer than they compute, and one thread running every lane in turn is
several times faster (benchmarks/bench_busy.py). Which is faster is a property of the moment,
so it is measured, not guessed: a :class:`ThreadGovernor` times each piece of work at the
thread count it runs with, now and then tries a neighbouring count (a short *probe*), and
moves to whichever is faster per row. Probes of a count that loses come ever more rarely (the
interval doubles, up to ``MAX_PROBE_INTERVAL`` pieces); when the running count suddenly slows
down (a neighbour started), a probe comes at once.

The number of *lanes* never changes, only the threads that run them, so the lanes' sums, and
every result, are the same whatever the governor picks. It stands aside (the count is left as
it is) when the user chose one: ``NUMBA_NUM_THREADS`` in the environment,
``numba.set_num_threads`` below the pool size, or ``FASTMLP_ADAPT_THREADS=0``.
"""

import contextlib
import os

import numba

from fastmlp import _config

#: Target seconds of one piece of an epoch: long enough that its fixed costs (the call, a
#: unit-split kernel's packing) are under 1%, short enough to react within a fraction of a
#: second.
PIECE_SECONDS = 0.04
#: A probe lasts about this fraction of a piece (at the probed count's last known speed).
PROBE_FRACTION = 0.25
#: Pieces between probes: the first interval, and the longest one.
MIN_PROBE_INTERVAL = 4
MAX_PROBE_INTERVAL = 64
#: Switch to the probed count when it is faster per row by at least this factor.
SWITCH_GAIN = 0.85
#: The running count slowed down this much against its best speed: probe now.
SLOWDOWN = 1.5
#: Weight of the newest piece in the running count's speed (an exponential average).
SMOOTHING = 0.3


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


class ThreadGovernor:
    """Chooses the thread count of one kind of work, from its measured seconds per row.

    Parameters
    ----------
    lanes : int
        The kernel's lanes (Numba's pool size): the most threads worth running.

    The candidates are ``lanes, lanes // 2, ..., 1``; a probe tries a neighbour of the current
    one, below it first. Use: ``threads, probe = governor.next()``, run that much work on
    ``threads`` threads, then ``governor.record(threads, seconds, rows)``.
    """

    def __init__(self, lanes):
        counts = []
        n = lanes
        while n >= 1:
            counts.append(n)
            n //= 2
        if counts[-1] != 1:
            counts.append(1)
        self.counts = counts
        self.current = 0  # index into counts: start with every thread
        self.speed = {}  # threads -> seconds per row (running average; a probe's last value)
        self.best = {}  # threads -> the least seconds per row seen
        self.interval = MIN_PROBE_INTERVAL
        self.until_probe = MIN_PROBE_INTERVAL
        self._probe_up = False  # which neighbour the next probe tries, from the middle
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
        """Return ``(threads, probe)``: the count for the next piece, and whether it is a probe."""
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
        self.best[threads] = min(rate, self.best.get(threads, rate))
        if not probe:
            old = self.speed.get(threads)
            self.speed[threads] = rate if old is None else old + SMOOTHING * (rate - old)
            self.until_probe -= 1
            if rate > SLOWDOWN * self.best[threads] and self.interval > MIN_PROBE_INTERVAL:
                # a neighbour may have started: look at the alternatives soon
                self.interval = MIN_PROBE_INTERVAL
                self.until_probe = min(self.until_probe, 0)
            return
        self.speed[threads] = rate
        current = self.speed.get(self.threads)
        if current is not None and rate < SWITCH_GAIN * current:
            self.current = self.counts.index(threads)
            self.switches += 1
            self.interval = MIN_PROBE_INTERVAL
        else:
            self.interval = min(2 * self.interval, MAX_PROBE_INTERVAL)
        self.until_probe = self.interval
