"""The thread governor (fastmlp._threads): its choices, and that they never change a result."""

import numba
import numpy as np
import pytest

from fastmlp import _config, _threads
from fastmlp._engine import Network, Trainer, hidden_code, parallel_lanes
from fastmlp._kernels.activations import IDENTITY, SOFTMAX
from fastmlp._threads import ThreadGovernor

POOL = numba.config.NUMBA_NUM_THREADS
needs_threads = pytest.mark.skipif(parallel_lanes() < 2,
                                   reason="needs Numba's pool of >= 2 threads and OpenMP or TBB")


# -- the governor's decisions, with made-up timings --------------------------------------------
def run_pieces(gov, seconds_per_row, n_pieces, rows=100):
    """Feed ``gov`` ``n_pieces`` pieces timed by ``seconds_per_row(threads)``; return its picks."""
    picks = []
    for _ in range(n_pieces):
        threads, probe = gov.next()
        gov.record(threads, seconds_per_row(threads) * rows, rows, probe)
        picks.append((threads, probe))
    return picks


def test_candidates_halve_down_to_one():
    assert ThreadGovernor(8).counts == [8, 4, 2, 1]
    assert ThreadGovernor(6).counts == [6, 3, 1]
    assert ThreadGovernor(2).counts == [2, 1]
    assert ThreadGovernor(1).counts == [1]


def test_stays_on_every_thread_when_that_is_fastest_and_probes_ever_more_rarely():
    gov = ThreadGovernor(2)
    picks = run_pieces(gov, {2: 1.0, 1: 1.8}.get, 200)
    assert gov.threads == 2 and gov.switches == 0
    probes = [i for i, (_, probe) in enumerate(picks) if probe]
    assert probes[0] == 1  # a short fit must not run long on a bad count
    gaps = np.diff(probes)
    assert list(gaps[:5]) == [5, 9, 17, 33, 65]  # 4, 8, 16, 32, 64 pieces between, plus one
    assert all(threads == 1 for threads, probe in picks if probe)


def test_moves_to_one_thread_when_busy_and_back_when_quiet():
    gov = ThreadGovernor(2)
    run_pieces(gov, {2: 1.0, 1: 1.8}.get, 20)
    assert gov.threads == 2
    busy = {2: 6.0, 1: 1.5}.get  # a neighbour: the lanes wait on each other
    picks = run_pieces(gov, busy, 3)  # the slowdown brings the probe forward: the next piece
    assert picks == [(2, False), (1, True), (1, False)]  # a probe, then a whole piece: a trial
    assert gov.threads == 1 and gov.switches == 1
    run_pieces(gov, busy, 300)
    assert gov.threads == 1 and gov.switches == 1
    run_pieces(gov, {2: 1.0, 1: 1.8}.get, 80)  # quiet again: the next probe finds it
    assert gov.threads == 2 and gov.switches == 2


def test_a_lucky_probe_is_not_followed_when_its_trial_loses():
    gov = ThreadGovernor(2)
    run_pieces(gov, {2: 1.0, 1: 1.8}.get, 10)
    threads, probe = gov.next()
    while not probe:  # up to the next probe
        gov.record(threads, 1.0, 1)
        threads, probe = gov.next()
    gov.record(1, 0.5, 1, probe=True)  # lucky: the neighbours were off the cores
    assert gov.next() == (1, False)  # the trial
    gov.record(1, 1.8, 1)
    assert gov.threads == 2 and gov.switches == 0
    assert gov.next() == (2, False)


def test_probes_both_neighbours_from_the_middle():
    gov = ThreadGovernor(8)
    run_pieces(gov, {8: 9.0, 4: 1.0, 2: 1.5, 1: 3.0}.get, 200)
    assert gov.threads == 4
    probed = {t for t, probe in run_pieces(gov, {8: 9.0, 4: 1.0, 2: 1.5, 1: 3.0}.get, 300)
              if probe}
    assert probed == {8, 2}


def test_a_new_governor_starts_where_the_last_one_ran(monkeypatch):
    monkeypatch.setattr(_threads, "_last_run", {})
    assert _threads.new_governor(2).threads == 2
    gov = _threads.new_governor(2)
    run_pieces(gov, {2: 6.0, 1: 2.0}.get, 5)
    assert gov.threads == 1
    assert _threads.new_governor(2).threads == 1  # the machine is still busy, likely
    assert _threads.new_governor(4).threads == 4  # another pool size: no hint
    monkeypatch.setattr(_threads, "HINT_SECONDS", 0.0)
    assert _threads.new_governor(2).threads == 2  # an old hint is no hint


def test_one_lane_has_nothing_to_choose():
    gov = ThreadGovernor(1)
    assert all(not probe for _, probe in run_pieces(gov, {1: 1.0}.get, 20))


# -- standing aside for the user's choice --------------------------------------------------------
@needs_threads
def test_a_thread_count_the_user_set_is_kept(monkeypatch):
    assert _threads.adaptive(POOL)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert not _threads.adaptive(POOL)
    finally:
        numba.set_num_threads(before)
    monkeypatch.setenv("NUMBA_NUM_THREADS", str(POOL))
    assert not _threads.adaptive(POOL)
    monkeypatch.delenv("NUMBA_NUM_THREADS")
    monkeypatch.setattr(_config, "ADAPT_THREADS", False)
    assert not _threads.adaptive(POOL)


def test_running_on_restores_the_count():
    before = numba.get_num_threads()
    with _threads.running_on(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


# -- the results do not depend on the choice -------------------------------------------------------
class Flipping(ThreadGovernor):
    """A governor that changes the thread count at every piece, in tiny pieces."""

    def __init__(self, lanes):
        super().__init__(lanes)
        self.k = 0

    def next(self):
        self.k += 1
        return self.counts[self.k % len(self.counts)], self.k % 3 == 0

    def seconds_per_row(self, threads):
        return 1.0  # with PIECE_SECONDS tiny: the fewest batches a piece may have


def test_a_probe_costs_at_most_a_quarter_of_a_piece():
    """Batches longer than a piece (wide layers) still get pieces of four probes' length."""
    per_piece = _threads.PIECE_SECONDS
    small = per_piece / 1024  # many batches a piece
    assert _threads.piece_batches(small, False) == 1024
    assert _threads.piece_batches(small, True) == 256
    for wide in (per_piece, 3 * per_piece):  # a batch as long as a piece, or longer
        probe = _threads.piece_batches(wide, True)
        assert probe == _threads.MIN_PROBE_BATCHES
        assert _threads.piece_batches(wide, False) * _threads.PROBE_FRACTION >= probe


def epoch_result(monkeypatch, adapt, split_batch, optimizer, out_act, dtype, sizes=(30, 64, 3)):
    monkeypatch.setattr(_config, "ADAPT_THREADS", adapt)
    rng = np.random.default_rng(1)
    net = Network(sizes, hidden_code("tanh"), out_act, dtype)
    X = rng.random((500, sizes[0])).astype(dtype)
    if out_act == SOFTMAX:
        Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 500)]
    else:
        Y = rng.normal(size=(500, 3)).astype(dtype)
    theta = (rng.normal(size=net.n_params) * 0.1).astype(dtype)
    trainer = Trainer(net, split_batch, optimizer, learning_rate=0.01, momentum=0.9,
                      l2_per_sample=1e-3, clip_eps=float(np.finfo(dtype).eps))
    if adapt:
        trainer.governor = Flipping(trainer.n_lanes)
    losses = []
    for _ in range(2):
        order = rng.permutation(500).astype(np.int64)
        losses.append(trainer.epoch(theta, X, Y, order))
    return trainer.split, theta, losses


@needs_threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out_act", [SOFTMAX, IDENTITY], ids=["softmax", "identity"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("batch_size,split,sizes", [(32, "units", (30, 64, 3)),
                                                    (128, "rows", (30, 64, 3)),
                                                    (64, "columns", (30, 64, 40, 3))])
def test_an_epoch_in_pieces_on_any_threads_is_one_call_bit_for_bit(
        monkeypatch, batch_size, split, sizes, optimizer, out_act, dtype):
    monkeypatch.setattr(_threads, "PIECE_SECONDS", 1e-9)
    monkeypatch.setattr(_threads, "MIN_PROBE_BATCHES", 1)  # probes of 1 batch, pieces of 4
    monkeypatch.setattr(_config, "PARALLEL_MIN_FLOPS", 1)
    monkeypatch.setattr(_config, "COLUMN_SPLIT_MIN_UNITS", 16 if split == "columns" else 1 << 30)
    got_split, got_theta, got_losses = epoch_result(monkeypatch, True, batch_size, optimizer,
                                                    out_act, dtype, sizes)
    ref_split, ref_theta, ref_losses = epoch_result(monkeypatch, False, batch_size, optimizer,
                                                    out_act, dtype, sizes)
    assert got_split == ref_split == split
    assert got_losses == ref_losses  # cost sums too: the pieces continue one running sum
    np.testing.assert_array_equal(got_theta, ref_theta)


@needs_threads
@pytest.mark.parametrize("kind", ["predict", "loss"])
def test_predictions_and_gradients_on_any_threads_are_the_same(monkeypatch, kind):
    monkeypatch.setattr(_config, "LOSS_PARALLEL_MIN_FLOPS", 1)
    monkeypatch.setattr(_config, "PARALLEL_MIN_FLOPS", 1)
    rng = np.random.default_rng(2)
    net = Network((20, 40, 4), hidden_code("relu"), SOFTMAX, np.float64)
    theta = rng.normal(size=net.n_params) * 0.2
    X = rng.random((3000, 20))
    Y = np.eye(4)[rng.integers(0, 4, 3000)]

    def call():
        if kind == "predict":
            return net.predict_proba(theta, X)
        return net.loss_and_gradient(theta, X, Y)[2].copy()

    monkeypatch.setattr(_config, "ADAPT_THREADS", False)
    ref = call()
    monkeypatch.setattr(_config, "ADAPT_THREADS", True)
    gov = net._governors[kind] = Flipping(parallel_lanes())
    for _ in range(4):
        np.testing.assert_array_equal(call(), ref)
    assert gov.k == 4  # every call went through the governor
